/*
 * test_lsm_blob.c - key-value separation in the storage engine: large
 * values in blob files, pointers in the tree, garbage accounting, garbage
 * collection inside compaction, deletion of dead blob files only once no
 * version, iterator or manifest needs them, and the blob record codec.
 * (Blob files under injected faults and damage: test_lsm_fault.c; under
 * kill -9: test_lsm_crash.c.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsm/blob.h"
#include "lsm/lsm.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

static char dbdir[300];

/* threshold 1 KiB, small memtable: every flush writes a blob file */
static lsm_db *open_blob(size_t threshold)
{
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 256 << 10;
	o.block_size = 1024;
	o.sync = LSM_SYNC_NONE;
	o.blob_threshold = threshold;
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db = NULL;
	int rc = lsm_open(dbdir, &o, &db);
	if (rc)
		QTEST_FAIL_("lsm_open: %s", q_strerror(rc));
	return db;
}

static void key_of(char *k, int i)
{
	snprintf(k, 32, "key%06d", i);
}

/* Value of key i in generation gen: length varies from 10 bytes (inline)
 * to 40 KiB (blob); the content depends on i and gen. */
static size_t val_of(q_buf *v, int i, int gen)
{
	size_t len = (i % 5 == 0) ? 10 + (size_t)(i % 50) : 1024 + ((size_t)i * 977 % 40000);
	q_buf_reset(v);
	if (q_buf_reserve(v, len))
		QTEST_FAIL_("ENOMEM");
	for (size_t j = 0; j < len; j++)
		v->p[j] = (uint8_t)(j * 31 + (size_t)i * 7 + (size_t)gen * 131);
	v->len = len;
	return len;
}

static void expect(lsm_db *db, int i, int gen)
{
	char k[32];
	key_of(k, i);
	q_buf out = Q_BUF_INIT, want = Q_BUF_INIT;
	int rc = lsm_get(db, q_slice_str(k), &out);
	if (gen < 0) {
		if (rc != Q_ENOTFOUND)
			QTEST_FAIL_("%s: want absent, got %d", k, rc);
	} else {
		if (rc)
			QTEST_FAIL_("%s: %s", k, q_strerror(rc));
		val_of(&want, i, gen);
		if (out.len != want.len || memcmp(out.p, want.p, want.len))
			QTEST_FAIL_("%s: wrong value (len %zu, want %zu)", k, out.len, want.len);
	}
	q_buf_free(&out);
	q_buf_free(&want);
}

static void put_gen(lsm_db *db, int i, int gen)
{
	char k[32];
	key_of(k, i);
	q_buf v = Q_BUF_INIT;
	val_of(&v, i, gen);
	ASSERT_OK(lsm_put(db, q_slice_str(k), q_buf_slice(&v)));
	q_buf_free(&v);
}

/* Full scan against gens[] (gen < 0 = absent). */
static void scan_check(lsm_db *db, const int *gens, int n)
{
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int i = 0;
	q_buf want = Q_BUF_INIT;
	char k[32];
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		while (i < n && gens[i] < 0)
			i++;
		ASSERT(i < n);
		key_of(k, i);
		q_slice key = lsm_iter_key(it), val = lsm_iter_value(it);
		ASSERT_EQ(key.n, strlen(k));
		ASSERT_MEMEQ(key.p, k, key.n);
		val_of(&want, i, gens[i]);
		ASSERT_EQ(val.n, want.len);
		ASSERT_MEMEQ(val.p, want.p, want.len);
		i++;
	}
	ASSERT_OK(lsm_iter_status(it));
	while (i < n && gens[i] < 0)
		i++;
	ASSERT_EQ(i, n);
	lsm_iter_free(it);
	q_buf_free(&want);
}

static int count_files(const char *suffix)
{
	char **names;
	size_t n;
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &names, &n));
	int c = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if (l > strlen(suffix) && !strcmp(names[i] + l - strlen(suffix), suffix))
			c++;
	}
	q_env_list_free(names, n);
	return c;
}

static int file_exists(const char *path)
{
	uint64_t sz;
	return q_env_file_size(q_env_posix(), path, &sz) == 0;
}

/* The path of the lowest-numbered file of dbdir ending in suffix; 0 if none. */
static int lowest_with(const char *suffix, char *path)
{
	char **names;
	size_t n;
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &names, &n));
	long best = -1;
	size_t sl = strlen(suffix);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if (l > sl && !strcmp(names[i] + l - sl, suffix)) {
			long num = atol(names[i]);
			if (best < 0 || num < best)
				best = num;
		}
	}
	q_env_list_free(names, n);
	if (best >= 0)
		snprintf(path, 400, "%s/%06ld%s", dbdir, best, suffix);
	return best >= 0;
}

/* The version field of dbdir's MANIFEST. */
static uint32_t manifest_version(void)
{
	char p[400];
	uint8_t *d = NULL;
	size_t n = 0;
	snprintf(p, sizeof(p), "%s/MANIFEST", dbdir);
	ASSERT_OK(q_env_read_all(q_env_posix(), p, &d, &n));
	ASSERT(n >= 12);
	uint32_t v = q_dec_fixed32(d + 8);
	free(d);
	return v;
}

#define N 200

QTEST(large_values_round_trip_reopen)
{
	int gens[N];
	lsm_db *db = open_blob(1024);
	for (int i = 0; i < N; i++) {
		put_gen(db, i, 0);
		gens[i] = 0;
	}
	/* from the memtable, then from tables + blob files */
	for (int i = 0; i < N; i++)
		expect(db, i, 0);
	scan_check(db, gens, N);
	ASSERT_OK(lsm_flush(db));
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.blob_files >= 1);
	ASSERT(st.blob_bytes > 100u * 1024);
	for (int i = 0; i < N; i++)
		expect(db, i, 0);
	scan_check(db, gens, N);
	/* the tree itself stays small: values are not in the tables */
	ASSERT(st.disk_bytes - st.blob_bytes < st.blob_bytes / 10);
	ASSERT_OK(lsm_compact_all(db));
	for (int i = 0; i < N; i++)
		expect(db, i, 0);
	ASSERT_OK(lsm_close(db));
	db = open_blob(1024);
	for (int i = 0; i < N; i++)
		expect(db, i, 0);
	scan_check(db, gens, N);
	/* seeks land on blob and inline values alike */
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	for (int i = 0; i < N; i += 37) {
		char k[32];
		key_of(k, i);
		lsm_iter_seek(it, q_slice_str(k));
		ASSERT(lsm_iter_valid(it));
		ASSERT_MEMEQ(lsm_iter_key(it).p, k, strlen(k));
		q_buf want = Q_BUF_INIT;
		val_of(&want, i, 0);
		ASSERT_EQ(lsm_iter_value(it).n, want.len);
		ASSERT_MEMEQ(lsm_iter_value(it).p, want.p, want.len);
		q_buf_free(&want);
	}
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
	/* no kept log: still written as version 2, so a binary that predates
	 * kept logs opens the store */
	ASSERT_EQ(manifest_version(), 2);
}

QTEST(threshold_zero_writes_no_blob_files)
{
	lsm_db *db = open_blob(0);
	for (int i = 0; i < 50; i++)
		put_gen(db, i, 1);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 0);
	ASSERT_OK(lsm_close(db));
	/* a store written without blobs opens with them on, and back */
	db = open_blob(1024);
	for (int i = 0; i < 50; i++)
		expect(db, i, 1);
	for (int i = 0; i < 50; i += 2)
		put_gen(db, i, 2);
	ASSERT_OK(lsm_flush(db));
	ASSERT(count_files(".blob") > 0);
	ASSERT_OK(lsm_close(db));
	db = open_blob(0);
	for (int i = 0; i < 50; i++)
		expect(db, i, i % 2 ? 1 : 2);
	ASSERT_OK(lsm_close(db));
}

/* Overwrites and deletes make garbage; a blob file past half garbage is
 * collected (its live records move, in compaction); a fully dead blob file
 * leaves the disk once no manifest or reader needs it. */
QTEST(overwrite_delete_garbage_and_gc)
{
	int gens[N];
	lsm_db *db = open_blob(1024);
	for (int i = 0; i < N; i++) {
		put_gen(db, i, 0);
		gens[i] = 0;
	}
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_compact_all(db));
	char first[400];
	ASSERT(lowest_with(".blob", first));
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.blob_garbage_bytes, 0);
	uint64_t blob0 = st.blob_bytes;
	/* three keys in four change: overwrite or delete */
	for (int i = 0; i < N; i++) {
		char k[32];
		key_of(k, i);
		if (i % 4 == 1) {
			put_gen(db, i, 1);
			gens[i] = 1;
		} else if (i % 4 == 2 || i % 4 == 3) {
			ASSERT_OK(lsm_delete(db, q_slice_str(k)));
			gens[i] = -1;
		}
	}
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_compact_all(db));
	lsm_get_stats(db, &st);
	/* the dropped pointers were counted as garbage (files fully dead
	 * left the version; the rest may already be collected) */
	ASSERT(st.blob_garbage_bytes > 0 || st.blob_moved_bytes > 0);
	ASSERT(st.blob_files > 0);
	(void)blob0;
	for (int i = 0; i < N; i++)
		expect(db, i, gens[i]);
	/* the compaction thread collects the first blob files (past half
	 * garbage) by itself: wait for the moved bytes, bounded */
	uint64_t t0 = q_mono_ms();
	do {
		lsm_get_stats(db, &st);
		if (st.blob_moved_bytes > 0 && !file_exists(first))
			break;
		/* a checkpoint lets the manifest before the collection go */
		if (st.blob_moved_bytes > 0)
			ASSERT_OK(lsm_compact_all(db));
		q_sleep_ms(20);
	} while (q_mono_ms() - t0 < 30000);
	ASSERT(st.blob_moved_bytes > 0);
	ASSERT(!file_exists(first));
	for (int i = 0; i < N; i++)
		expect(db, i, gens[i]);
	scan_check(db, gens, N);
	lsm_get_stats(db, &st);
	/* what is left is mostly live */
	ASSERT(st.blob_garbage_bytes * 2 <= st.blob_bytes);
	/* a manual full compaction gives all the space back: once the
	 * garbage it finds is counted, the next one moves every live record
	 * out of files with garbage */
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_compact_all(db));
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.blob_garbage_bytes, 0);
	ASSERT_EQ((uint64_t)count_files(".blob"), st.blob_files);
	for (int i = 0; i < N; i++)
		expect(db, i, gens[i]);
	ASSERT_OK(lsm_close(db));
	db = open_blob(1024);
	for (int i = 0; i < N; i++)
		expect(db, i, gens[i]);
	scan_check(db, gens, N);
	/* everything deleted: every blob file goes */
	for (int i = 0; i < N; i++) {
		char k[32];
		key_of(k, i);
		ASSERT_OK(lsm_delete(db, q_slice_str(k)));
		gens[i] = -1;
	}
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_compact_all(db));
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.blob_files, 0);
	ASSERT_EQ(count_files(".blob"), 0);
	scan_check(db, gens, N);
	ASSERT_OK(lsm_close(db));
}

/* An iterator (a snapshot) keeps the blob files of its version on disk and
 * readable, however the store changes meanwhile. */
QTEST(iterator_holds_old_blob_alive)
{
	lsm_db *db = open_blob(1024);
	for (int i = 0; i < N; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_flush(db));
	char first[400];
	ASSERT(lowest_with(".blob", first));
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	lsm_iter_seek_first(it);
	ASSERT(lsm_iter_valid(it));
	/* every key deleted, everything compacted twice: no version but the
	 * iterator's points into the first blob file */
	for (int i = 0; i < N; i++) {
		char k[32];
		key_of(k, i);
		ASSERT_OK(lsm_delete(db, q_slice_str(k)));
	}
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_compact_all(db));
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.blob_files, 0);
	ASSERT(file_exists(first));
	expect(db, 5, -1);
	/* the iterator still reads the old values, blob and inline */
	int i = 0;
	q_buf want = Q_BUF_INIT;
	for (; lsm_iter_valid(it); lsm_iter_next(it), i++) {
		val_of(&want, i, 0);
		ASSERT_EQ(lsm_iter_value(it).n, want.len);
		ASSERT_MEMEQ(lsm_iter_value(it).p, want.p, want.len);
	}
	ASSERT_OK(lsm_iter_status(it));
	ASSERT_EQ(i, N);
	q_buf_free(&want);
	lsm_iter_free(it);
	/* the last reference gone, the file goes */
	ASSERT(!file_exists(first));
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 0);
}

/* A value in the memtable shadows a blob value of a table, and a newer blob
 * value shadows an older one, at every step of flush and compaction. */
QTEST(versions_across_blob_and_inline)
{
	lsm_db *db = open_blob(1024);
	q_buf big = Q_BUF_INIT, out = Q_BUF_INIT;
	ASSERT_OK(q_buf_reserve(&big, 5000));
	memset(big.p, 'B', 5000);
	big.len = 5000;
	ASSERT_OK(lsm_put(db, q_slice_str("k"), q_buf_slice(&big)));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_put(db, q_slice_str("k"), q_slice_str("small")));
	ASSERT_OK(lsm_get(db, q_slice_str("k"), &out));
	ASSERT_EQ(out.len, 5);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_get(db, q_slice_str("k"), &out));
	ASSERT_EQ(out.len, 5);
	memset(big.p, 'C', 5000);
	ASSERT_OK(lsm_put(db, q_slice_str("k"), q_buf_slice(&big)));
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_get(db, q_slice_str("k"), &out));
	ASSERT_EQ(out.len, 5000);
	ASSERT_EQ(out.p[4999], 'C');
	ASSERT_OK(lsm_delete(db, q_slice_str("k")));
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(lsm_get(db, q_slice_str("k"), &out), Q_ENOTFOUND);
	ASSERT_OK(lsm_close(db));
	q_buf_free(&big);
	q_buf_free(&out);
}

/* The record codec: what the writer writes, the reader and the pure
 * decoder accept; any changed byte is refused. */
QTEST(blob_record_codec)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/000007.blob", qtest_tmpdir);
	blob_writer *w;
	ASSERT_OK(blob_writer_new(q_env_posix(), path, 7, 1, &w));
	blob_ptr p1, p2, p3;
	ASSERT_OK(blob_writer_add(w, q_slice_str("alpha"), q_slice_str("first value"), &p1));
	ASSERT_OK(blob_writer_add(w, q_slice_str("beta"), q_slice_make("", 0), &p2));
	char zz[5000];
	memset(zz, 'z', sizeof(zz));
	ASSERT_OK(blob_writer_add(w, q_slice_str("gamma"), q_slice_make(zz, sizeof(zz)), &p3));
	ASSERT(p3.vlen < 1000); /* compressed */
	uint64_t size;
	ASSERT_OK(blob_writer_finish(w, &size));
	ASSERT_EQ(p1.offset, BLOB_FILE_HEADER);
	uint8_t pb[BLOB_PTR_MAX];
	blob_ptr d;
	ASSERT_OK(blob_ptr_decode(q_slice_make(pb, blob_ptr_encode(pb, &p2)), &d));
	ASSERT_EQ(d.number, 7);
	ASSERT_EQ(d.offset, p2.offset);
	ASSERT_EQ(d.vlen, 0);
	ASSERT_EQ(blob_ptr_decode(q_slice_make(pb, 2), &d), Q_ECORRUPT);

	lsm_blob *b = blob_new(q_env_posix(), qtest_tmpdir, 7, size, 0);
	ASSERT_OK(blob_open(b));
	q_buf out = Q_BUF_INIT;
	ASSERT_OK(blob_read(b, q_slice_str("alpha"), &p1, &out));
	ASSERT_EQ(out.len, 11);
	ASSERT_MEMEQ(out.p, "first value", 11);
	ASSERT_OK(blob_read(b, q_slice_str("beta"), &p2, &out));
	ASSERT_EQ(out.len, 0);
	ASSERT_OK(blob_read(b, q_slice_str("gamma"), &p3, &out));
	ASSERT_EQ(out.len, sizeof(zz));
	ASSERT_MEMEQ(out.p, zz, sizeof(zz));
	q_log_set_level(Q_LOG_OFF);
	/* wrong key, wrong length, past the end */
	ASSERT_EQ(blob_read(b, q_slice_str("alphx"), &p1, &out), Q_ECORRUPT);
	blob_ptr bad = p1;
	bad.vlen = 10;
	ASSERT_EQ(blob_read(b, q_slice_str("alpha"), &bad, &out), Q_ECORRUPT);
	bad = p1;
	bad.offset = size - 3;
	ASSERT_EQ(blob_read(b, q_slice_str("alpha"), &bad, &out), Q_ECORRUPT);
	blob_unref(b);

	uint8_t *data;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), path, &data, &n));
	ASSERT_EQ(n, size);
	ASSERT_OK(blob_header_check(data, n));
	q_slice k, v;
	size_t used;
	int comp;
	ASSERT_OK(blob_rec_decode(data + p1.offset, n - p1.offset, &k, &v, &comp, &used));
	ASSERT_EQ(comp, 0);
	ASSERT_EQ(k.n, 5);
	ASSERT_EQ(v.n, 11);
	ASSERT_EQ(p1.offset + used, p2.offset);
	/* every single flipped bit of the first record is caught */
	for (size_t i = p1.offset; i < p2.offset; i++) {
		for (int bit = 0; bit < 8; bit++) {
			data[i] ^= (uint8_t)(1u << bit);
			int rc = blob_rec_decode(data + p1.offset, n - p1.offset, &k, &v, &comp,
						 &used);
			data[i] ^= (uint8_t)(1u << bit);
			ASSERT_EQ(rc, Q_ECORRUPT);
		}
	}
	/* and through the file reader */
	data[p1.offset + BLOB_REC_HEADER + 7] ^= 1;
	q_file *f;
	ASSERT_OK(q_env_open(q_env_posix(), path, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, data, n));
	ASSERT_OK(q_file_close(f));
	b = blob_new(q_env_posix(), qtest_tmpdir, 7, size, 0);
	ASSERT_OK(blob_open(b));
	ASSERT_EQ(blob_read(b, q_slice_str("alpha"), &p1, &out), Q_ECORRUPT);
	ASSERT_EQ(out.len, 0);
	ASSERT_OK(blob_read(b, q_slice_str("beta"), &p2, &out));
	ASSERT_OK(blob_read(b, q_slice_str("gamma"), &p3, &out));
	blob_unref(b);
	/* a flip inside the compressed value: refused, not decompressed */
	data[p3.offset + BLOB_REC_HEADER + 5 + 3] ^= 0x10;
	ASSERT_OK(q_env_open(q_env_posix(), path, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, data, n));
	ASSERT_OK(q_file_close(f));
	b = blob_new(q_env_posix(), qtest_tmpdir, 7, size, 0);
	ASSERT_OK(blob_open(b));
	ASSERT_EQ(blob_read(b, q_slice_str("gamma"), &p3, &out), Q_ECORRUPT);
	blob_unref(b);
	ASSERT(file_exists(path)); /* not obsolete: not deleted */
	free(data);
	q_buf_free(&out);
}

/* Writes a blob file of three records (the last one 2 MiB, compressible)
 * at dir/000009.blob; p[] gets their pointers, *size the file size. */
static void three_records(blob_ptr p[3], uint64_t *size, q_buf *big)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/000009.blob", qtest_tmpdir);
	blob_writer *w;
	ASSERT_OK(blob_writer_new(q_env_posix(), path, 9, 1, &w));
	ASSERT_OK(blob_writer_add(w, q_slice_str("one"), q_slice_str("first"), &p[0]));
	ASSERT_OK(blob_writer_add(w, q_slice_str("two"), q_slice_str("second"), &p[1]));
	q_buf_reset(big);
	ASSERT_OK(q_buf_reserve(big, 2u << 20));
	for (size_t i = 0; i < (2u << 20); i++)
		big->p[i] = (uint8_t)('a' + (i / 1000) % 26);
	big->len = 2u << 20;
	ASSERT_OK(blob_writer_add(w, q_slice_str("three"), q_buf_slice(big), &p[2]));
	ASSERT(p[2].vlen < big->len / 2); /* stored compressed */
	ASSERT_OK(blob_writer_finish(w, size));
}

/* A blob file shorter than the manifest says (a torn tail, a partial
 * restore) still serves every record before the cut; only the records
 * past it fail (Q_ECORRUPT), one by one. */
QTEST(short_blob_file_serves_records_before_the_cut)
{
	q_log_set_level(Q_LOG_OFF);
	blob_ptr p[3];
	uint64_t size;
	q_buf big = Q_BUF_INIT, out = Q_BUF_INIT;
	three_records(p, &size, &big);
	char path[400];
	snprintf(path, sizeof(path), "%s/000009.blob", qtest_tmpdir);
	ASSERT_EQ(truncate(path, (off_t)(p[2].offset + 20)), 0);
	lsm_blob *b = blob_new(q_env_posix(), qtest_tmpdir, 9, size, 0);
	ASSERT_OK(blob_open(b));
	ASSERT_OK(blob_read(b, q_slice_str("one"), &p[0], &out));
	ASSERT_EQ(out.len, 5);
	ASSERT_MEMEQ(out.p, "first", 5);
	ASSERT_OK(blob_read(b, q_slice_str("two"), &p[1], &out));
	ASSERT_EQ(out.len, 6);
	ASSERT_EQ(blob_read(b, q_slice_str("three"), &p[2], &out), Q_ECORRUPT);
	ASSERT_EQ(out.len, 0);
	blob_unref(b);
	/* a header cut makes the whole file unusable (nothing to trust) */
	ASSERT_EQ(truncate(path, 4), 0);
	b = blob_new(q_env_posix(), qtest_tmpdir, 9, size, 0);
	ASSERT_EQ(blob_open(b), Q_ECORRUPT);
	ASSERT_EQ(blob_read(b, q_slice_str("one"), &p[0], &out), Q_ECORRUPT);
	blob_unref(b);
	q_buf_free(&big);
	q_buf_free(&out);
}

/* Through the engine: one blob file holding every large value is cut to
 * half its size at rest; after reopening, the values before the cut are
 * still served, the ones past it fail, no value is ever wrong. */
QTEST(short_blob_file_in_store)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 64 << 20; /* one flush: one blob file */
	o.sync = LSM_SYNC_NONE;
	o.blob_threshold = 1024;
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db;
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	for (int i = 0; i < N; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char first[400];
	ASSERT(lowest_with(".blob", first));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), first, &sz));
	ASSERT_EQ(count_files(".blob"), 1);
	ASSERT_EQ(truncate(first, (off_t)(sz / 2)), 0);
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	int ok = 0, corrupt = 0;
	q_buf out = Q_BUF_INIT, want = Q_BUF_INIT;
	char k[32];
	for (int i = 0; i < N; i++) {
		key_of(k, i);
		int rc = lsm_get(db, q_slice_str(k), &out);
		if (rc == Q_ECORRUPT) {
			corrupt++;
			continue;
		}
		ASSERT_OK(rc);
		val_of(&want, i, 0);
		ASSERT_EQ(out.len, want.len);
		ASSERT_MEMEQ(out.p, want.p, want.len);
		ok++;
	}
	ASSERT(corrupt > 0);
	/* more than the inline values: some of the cut file's too */
	int inline_values = 0;
	for (int i = 0; i < N; i++)
		inline_values += i % 5 == 0;
	ASSERT(ok > inline_values + 20);
	q_buf_free(&out);
	q_buf_free(&want);
	ASSERT_OK(lsm_close(db));
}

/* A record whose snappy stream announces more than its stored bytes can
 * decode to is refused before anything that large is allocated. */
QTEST(decompressed_length_bounded)
{
	q_log_set_level(Q_LOG_OFF);
	blob_ptr p[3];
	uint64_t size;
	q_buf big = Q_BUF_INIT, out = Q_BUF_INIT;
	three_records(p, &size, &big);
	lsm_blob *b = blob_new(q_env_posix(), qtest_tmpdir, 9, size, 0);
	ASSERT_OK(blob_open(b));
	ASSERT_OK(blob_read(b, q_slice_str("three"), &p[2], &out));
	ASSERT_EQ(out.len, big.len);
	ASSERT_MEMEQ(out.p, big.p, big.len);
	blob_unref(b);
	/* the stream's length varint (2 MiB: 80 80 80 01) now announces
	 * 256 MiB - 1 in the same four bytes; the checksum is made to match */
	char path[400];
	snprintf(path, sizeof(path), "%s/000009.blob", qtest_tmpdir);
	uint8_t *data;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), path, &data, &n));
	uint8_t *rec = data + p[2].offset;
	size_t hn = BLOB_REC_HEADER + strlen("three");
	uint8_t *sv = rec + hn;
	ASSERT(sv[0] == 0x80 && sv[1] == 0x80 && sv[2] == 0x80 && sv[3] == 0x01);
	sv[0] = sv[1] = sv[2] = 0xff;
	sv[3] = 0x7f;
	q_enc_fixed32(rec, q_csum32_2(rec + 4, hn - 4, sv, (size_t)p[2].vlen));
	ASSERT_OK(q_env_write_atomic(q_env_posix(), path, data, n));
	free(data);
	ASSERT(BLOB_SNAPPY_MAX_OUT(p[2].vlen) < 0x0fffffffu);
	b = blob_new(q_env_posix(), qtest_tmpdir, 9, size, 0);
	ASSERT_OK(blob_open(b));
	ASSERT_EQ(blob_read(b, q_slice_str("three"), &p[2], &out), Q_ECORRUPT);
	ASSERT_EQ(out.len, 0);
	ASSERT_OK(blob_read(b, q_slice_str("one"), &p[0], &out));
	blob_unref(b);
	q_buf_free(&big);
	q_buf_free(&out);
}

/* The bound on a stored value is the record's, not the store's current
 * max_value_size: after a reopen with a smaller one, larger values stored
 * before still read (new writes of that size are refused). */
QTEST(values_read_after_max_value_size_lowered)
{
	q_log_set_level(Q_LOG_OFF);
	snprintf(dbdir, sizeof(dbdir), "%s/lowered", qtest_tmpdir);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	o.max_value_size = 4u << 20;
	q_buf v = Q_BUF_INIT, out = Q_BUF_INIT;
	ASSERT_OK(q_buf_reserve(&v, 2u << 20));
	for (size_t i = 0; i < (2u << 20); i++)
		v.p[i] = (uint8_t)('a' + (i / 1000) % 26); /* compresses: stored snappy */
	v.len = 2u << 20;
	lsm_db *db;
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	ASSERT_OK(lsm_put(db, q_slice_str("big"), q_buf_slice(&v)));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 1);
	o.max_value_size = 1u << 20;
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	ASSERT_OK(lsm_get(db, q_slice_str("big"), &out));
	ASSERT_EQ(out.len, v.len);
	ASSERT_MEMEQ(out.p, v.p, v.len);
	ASSERT_EQ(lsm_put(db, q_slice_str("big2"), q_buf_slice(&v)), Q_ETOOBIG);
	ASSERT_OK(lsm_close(db));
	q_buf_free(&v);
	q_buf_free(&out);
}

/* EMFILE (or any transient error) when a blob file is opened is not
 * fatal: the read that needs the file opens it again and reports the
 * transient error itself if that fails too, never Q_ECORRUPT. */
QTEST(blob_open_failure_retried_at_read)
{
	q_log_set_level(Q_LOG_OFF);
	blob_ptr p[3];
	uint64_t size;
	q_buf big = Q_BUF_INIT, out = Q_BUF_INIT;
	three_records(p, &size, &big);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_blob *b = blob_new(fe, qtest_tmpdir, 9, size, 0);
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 1, -EMFILE, 0);
	ASSERT_EQ(blob_open(b), -EMFILE);
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 1, -EMFILE, 0);
	ASSERT_EQ(blob_read(b, q_slice_str("one"), &p[0], &out), -EMFILE);
	ASSERT_OK(blob_read(b, q_slice_str("one"), &p[0], &out));
	ASSERT_EQ(out.len, 5);
	ASSERT_OK(blob_read(b, q_slice_str("two"), &p[1], &out));
	blob_unref(b);
	q_fault_env_free(fe);
	q_buf_free(&big);
	q_buf_free(&out);
}

/* Small memtables and blocks, 1 KiB blob threshold, through env fe. */
static void gc_opts(lsm_options *o, q_env *fe)
{
	lsm_options_default(o);
	o->env = fe;
	o->write_buffer_size = 256 << 10;
	o->block_size = 1024;
	o->sync = LSM_SYNC_NONE;
	o->blob_threshold = 1024;
}

/* The same through the engine: for each open call of lsm_open in turn, that
 * open fails with EMFILE. Either lsm_open fails cleanly, or every value
 * reads back right; and when the failed open was a blob file's, lsm_open
 * succeeds (the file is opened by its first read). */
QTEST(store_open_with_emfile_on_each_open)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_blob(1024);
	for (int i = 0; i < 60; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_flush(db));
	for (int i = 60; i < 120; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_close(db));
	int nblob = count_files(".blob");
	ASSERT(nblob >= 2);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_options o;
	gc_opts(&o, fe);
	uint64_t before = q_fault_env_count(fe, Q_FAULT_OPEN);
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	uint64_t opens = q_fault_env_count(fe, Q_FAULT_OPEN) - before;
	ASSERT_OK(lsm_close(db));
	int lazily_opened = 0;
	for (uint64_t n = 1; n <= opens; n++) {
		q_fault_env_fail_at(fe, Q_FAULT_OPEN, n, -EMFILE, 0);
		int rc = lsm_open(dbdir, &o, &db);
		q_fault_env_fail_at(fe, Q_FAULT_OPEN, 0, 0, 0);
		if (rc) {
			ASSERT_EQ(rc, -EMFILE);
			continue;
		}
		uint64_t c0 = q_fault_env_count(fe, Q_FAULT_OPEN);
		for (int i = 0; i < 120; i++)
			expect(db, i, 0);
		if (q_fault_env_count(fe, Q_FAULT_OPEN) > c0)
			lazily_opened++;
		ASSERT_OK(lsm_close(db));
	}
	ASSERT(lazily_opened >= nblob);
	q_fault_env_free(fe);
}

/* A transient read error while the collector moves a record does not pin
 * the blob file for good: whichever read of the collecting compaction
 * fails (a blob record: its pointer is kept; a table: that compaction
 * fails and is retried), a later compaction collects the file. */
QTEST(gc_transient_read_error_retried)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_options o;
	gc_opts(&o, fe);
	uint64_t reads = 0;
	for (uint64_t n = 0; n <= reads + 1 && n < 400; n++) {
		snprintf(dbdir, sizeof(dbdir), "%s/gc%llu", qtest_tmpdir, (unsigned long long)n);
		lsm_db *db;
		ASSERT_OK(lsm_open(dbdir, &o, &db));
		for (int i = 0; i < 20; i++)
			put_gen(db, i, 0);
		ASSERT_OK(lsm_compact_all(db));
		/* 8 of 20 overwritten: garbage below the automatic collection's
		 * share, so only the next manual compaction collects */
		for (int i = 0; i < 8; i++)
			put_gen(db, i, 1);
		ASSERT_OK(lsm_compact_all(db)); /* counts the garbage of the first file */
		lsm_stats st;
		lsm_get_stats(db, &st);
		ASSERT_EQ(st.blob_moved_bytes, 0);
		char first[400];
		ASSERT(lowest_with(".blob", first));
		/* n = 0: a clean run counts the reads of the collecting compaction */
		uint64_t r0 = q_fault_env_count(fe, Q_FAULT_READ);
		if (n)
			q_fault_env_fail_at(fe, Q_FAULT_READ, n, -EIO, 0);
		int rc = lsm_compact_all(db);
		q_fault_env_fail_at(fe, Q_FAULT_READ, 0, 0, 0);
		if (n == 0) {
			ASSERT_OK(rc);
			reads = q_fault_env_count(fe, Q_FAULT_READ) - r0;
		}
		/* every live record leaves the first file, which then goes
		 * (once the manifest before the collection is replaced) */
		for (int k = 0; k < 10 && file_exists(first); k++) {
			q_sleep_ms(10);
			(void)lsm_compact_all(db);
		}
		if (file_exists(first))
			QTEST_FAIL_("read %llu of %llu failed: %s is never collected",
				    (unsigned long long)n, (unsigned long long)reads, first);
		for (int i = 0; i < 20; i++)
			expect(db, i, i < 8 ? 1 : 0);
		ASSERT_OK(lsm_close(db));
	}
	ASSERT(reads > 0);
	q_fault_env_free(fe);
}

/* A region of a blob file that stays unreadable (a bad sector: EIO, not
 * corruption) does not stop compactions: the pointer to the record there
 * is kept, the rest of the file is collected, after BLOB_GC_READ_TRIES
 * failed reads the file is no longer collected, and writes and flushes go
 * on (with failing compactions level 0 would fill and refuse them). Once
 * the region reads again, a reopened store collects the file. */
QTEST(gc_unreadable_region_keeps_compactions_going)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_options o;
	gc_opts(&o, fe);
	o.compression = 0; /* key 19's record is the file's last 19 KiB */
	o.log_values = 0;  /* ... of a blob file */
	snprintf(dbdir, sizeof(dbdir), "%s/bad", qtest_tmpdir);
	lsm_db *db;
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	for (int i = 0; i < 20; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_compact_all(db));
	char first[400], k[32];
	ASSERT(lowest_with(".blob", first));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), first, &sz));
	ASSERT_OK(q_fault_env_bad_region(fe, first, sz - 4096, -EIO));
	for (int i = 0; i < 12; i++)
		put_gen(db, i, 1);
	for (int t = 0; t < 2 * BLOB_GC_READ_TRIES; t++)
		ASSERT_OK(lsm_compact_all(db));
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.blob_moved_bytes > 0); /* keys 12..18 left the file */
	ASSERT(file_exists(first));      /* key 19 keeps it */
	for (int i = 0; i < 19; i++)
		expect(db, i, i < 12 ? 1 : 0);
	q_buf out = Q_BUF_INIT;
	key_of(k, 19);
	ASSERT_EQ(lsm_get(db, q_slice_str(k), &out), -EIO);
	for (int r = 0; r < 40; r++) {
		for (int i = 0; i < 20; i++) {
			char sk[48];
			snprintf(sk, sizeof(sk), "key%06d-%d", i, r);
			ASSERT_OK(lsm_put(db, q_slice_str(sk), q_slice_str("small")));
		}
		ASSERT_OK(lsm_flush(db));
	}
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_close(db));
	/* readable again: the reopened store collects the file */
	ASSERT_OK(q_fault_env_bad_region(fe, NULL, 0, 0));
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	for (int t = 0; t < 10 && file_exists(first); t++) {
		ASSERT_OK(lsm_compact_all(db));
		q_sleep_ms(10);
	}
	ASSERT(!file_exists(first));
	for (int i = 0; i < 20; i++)
		expect(db, i, i < 12 ? 1 : 0);
	ASSERT_OK(lsm_close(db));
	q_buf_free(&out);
	q_fault_env_free(fe);
}

static lsm_db *open_big_buffer(void)
{
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 64 << 20; /* one flush per lsm_flush */
	o.sync = LSM_SYNC_NONE;
	o.blob_threshold = 1024;
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db = NULL;
	ASSERT_OK(lsm_open(dbdir, &o, &db));
	return db;
}

static void flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	ASSERT(f != NULL);
	if (off < 0) {
		ASSERT_EQ(fseek(f, off, SEEK_END), 0);
	} else {
		ASSERT_EQ(fseek(f, off, SEEK_SET), 0);
	}
	int c = fgetc(f);
	ASSERT(c != EOF);
	ASSERT_EQ(fseek(f, -1, SEEK_CUR), 0);
	fputc(c ^ 0x5a, f);
	ASSERT_EQ(fclose(f), 0);
}

/* Two flushes: keys 0..99 (table T1, blob file B1), keys 100..199 (T2,
 * B2); T1 is then damaged at rest, at its footer (found at open) or in its
 * first data block (found by a read). Either way T1 is quarantined
 * (.sst.bad) and B1, which only T1 points into, is kept as .blob.bad, not
 * deleted; T2's values are all served. */
static void quarantine_case(int at_open)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_big_buffer();
	for (int i = 0; i < 100; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_flush(db));
	for (int i = 100; i < N; i++)
		put_gen(db, i, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 2);
	char t1[400], b1[400], bad[420];
	ASSERT(lowest_with(".sst", t1));
	ASSERT(lowest_with(".blob", b1));
	snprintf(bad, sizeof(bad), "%s.bad", b1);
	flip_byte(t1, at_open ? -1 : 40);
	db = open_big_buffer();
	if (!at_open) {
		q_buf out = Q_BUF_INIT;
		char k[32];
		int corrupt = 0;
		for (int i = 0; i < 100; i++) {
			key_of(k, i);
			corrupt += lsm_get(db, q_slice_str(k), &out) == Q_ECORRUPT;
		}
		q_buf_free(&out);
		ASSERT(corrupt > 0);
		lsm_stats st;
		uint64_t t0 = q_mono_ms();
		do {
			lsm_get_stats(db, &st);
			if (st.quarantined_tables > 0)
				break;
			q_sleep_ms(10);
		} while (q_mono_ms() - t0 < 20000);
		ASSERT(st.quarantined_tables > 0);
		/* a manifest written after the drop lets the previous one go */
		ASSERT_OK(lsm_compact_all(db));
		ASSERT_OK(lsm_compact_all(db));
	}
	for (int i = 100; i < N; i++)
		expect(db, i, 0);
	ASSERT_OK(lsm_close(db));
	ASSERT(!file_exists(b1));
	ASSERT(file_exists(bad));
	/* and it stays there across another open */
	db = open_big_buffer();
	for (int i = 100; i < N; i++)
		expect(db, i, 0);
	ASSERT_OK(lsm_close(db));
	ASSERT(file_exists(bad));
	ASSERT_EQ(count_files(".blob"), 1);
}

QTEST(quarantined_at_open_keeps_blob_as_bad)
{
	quarantine_case(1);
}

QTEST(quarantined_by_read_keeps_blob_as_bad)
{
	quarantine_case(0);
}

/* ---- values left in their commit log (lsm_options.log_values) ---- */

#define LV_N 40
#define LV_LEN (20u << 10) /* held by reference (>= 16 KiB), above the threshold */

/* Incompressible value of key i, generation gen (xorshift bytes). */
static void lv_val(q_buf *v, int i, int gen)
{
	q_buf_reset(v);
	if (q_buf_reserve(v, LV_LEN))
		QTEST_FAIL_("ENOMEM");
	uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) + (uint64_t)gen * 7919 + 1;
	for (size_t j = 0; j < LV_LEN; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v->p[j] = (uint8_t)x;
	}
	v->len = LV_LEN;
}

static void lv_put(lsm_db *db, int i, int gen)
{
	char k[32];
	q_buf v = Q_BUF_INIT;
	key_of(k, i);
	lv_val(&v, i, gen);
	ASSERT_OK(lsm_put(db, q_slice_str(k), q_buf_slice(&v)));
	q_buf_free(&v);
}

static void lv_expect(lsm_db *db, int i, int gen)
{
	char k[32];
	q_buf out = Q_BUF_INIT, want = Q_BUF_INIT;
	key_of(k, i);
	int rc = lsm_get(db, q_slice_str(k), &out);
	if (rc)
		QTEST_FAIL_("%s: %s", k, q_strerror(rc));
	lv_val(&want, i, gen);
	if (out.len != want.len || memcmp(out.p, want.p, want.len))
		QTEST_FAIL_("%s: wrong value", k);
	q_buf_free(&out);
	q_buf_free(&want);
}

static lsm_db *lv_open(q_env *env, int sync)
{
	lsm_options o;
	lsm_options_default(&o);
	o.env = env;
	o.write_buffer_size = 64 << 20; /* one flush per lsm_flush */
	o.sync = sync;
	o.blob_threshold = 1024;
	snprintf(dbdir, sizeof(dbdir), "%s/lv", qtest_tmpdir);
	lsm_db *db = NULL;
	int rc = lsm_open(dbdir, &o, &db);
	if (rc)
		QTEST_FAIL_("lsm_open: %s", q_strerror(rc));
	return db;
}

static void lv_put_all(lsm_db *db, int gen)
{
	for (int i = 0; i < LV_N; i++)
		lv_put(db, i, gen);
}

static void lv_expect_all(lsm_db *db, int gen)
{
	for (int i = 0; i < LV_N; i++)
		lv_expect(db, i, gen);
}

/* Cuts the power of fe (the store is closed), reopens and finds every
 * value of generation 0; frees fe. */
static void lv_after_power_cut(q_env *fe, int sync)
{
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	lsm_db *db = lv_open(fe, sync);
	lv_expect_all(db, 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* A flush writes no blob file for incompressible values of a sealed log:
 * the log stays (listed in the manifest), is not replayed at the next
 * open, and serves the values through reopen and compaction. */
QTEST(incompressible_values_stay_in_their_log)
{
	lsm_db *db = lv_open(NULL, LSM_SYNC_ALWAYS);
	lv_put_all(db, 0);
	put_gen(db, LV_N + 1, 0); /* a compressible large value: a blob file */
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 1);
	char kept[400];
	ASSERT(lowest_with(".log", kept));
	uint64_t sz = 0;
	ASSERT_OK(q_env_file_size(q_env_posix(), kept, &sz));
	ASSERT(sz >= (uint64_t)LV_N * LV_LEN); /* the values are in it, trimmed of its zeros */
	ASSERT(sz < (uint64_t)LV_N * LV_LEN + (64u << 10));
	lv_expect_all(db, 0);
	ASSERT_OK(lsm_close(db));
	db = lv_open(NULL, LSM_SYNC_ALWAYS);
	ASSERT(file_exists(kept));
	lv_expect_all(db, 0);
	expect(db, LV_N + 1, 0);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 1); /* reopening copied nothing */
	ASSERT_EQ(manifest_version(), 3);    /* it lists a kept log */
}

/* A flipped byte inside a value kept in a log, and a log cut short in the
 * middle of its last value, are reported as corruption (never returned);
 * the other values are served and a scan passes over the damaged ones. */
QTEST(corrupt_byte_in_log_value)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = lv_open(NULL, LSM_SYNC_NONE);
	lv_put_all(db, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 0);
	char kept[400];
	ASSERT(lowest_with(".log", kept));
	uint8_t *data = NULL;
	size_t n = 0;
	ASSERT_OK(q_env_read_all(q_env_posix(), kept, &data, &n));
	q_buf v = Q_BUF_INIT;
	lv_val(&v, 7, 0);
	uint8_t *at = memmem(data, n, v.p, 64);
	ASSERT(at != NULL);
	long off = (long)(at - data) + 5000;
	/* and the log loses its tail in the middle of the last value */
	lv_val(&v, LV_N - 1, 0);
	uint8_t *last = memmem(data, n, v.p, 64);
	ASSERT(last != NULL);
	ASSERT_EQ(truncate(kept, (off_t)(last - data) + 100), 0);
	free(data);
	flip_byte(kept, off);
	db = lv_open(NULL, LSM_SYNC_NONE);
	char k[32];
	key_of(k, 7);
	q_buf out = Q_BUF_INIT;
	ASSERT_EQ(lsm_get(db, q_slice_str(k), &out), Q_ECORRUPT);
	ASSERT_EQ(out.len, 0);
	key_of(k, LV_N - 1);
	ASSERT_EQ(lsm_get(db, q_slice_str(k), &out), Q_ECORRUPT);
	ASSERT_EQ(out.len, 0);
	for (int i = 0; i < LV_N - 1; i++)
		if (i != 7)
			lv_expect(db, i, 0);
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int seen = 0;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		seen++;
	ASSERT_OK(lsm_iter_status(it));
	ASSERT_EQ(seen, LV_N - 2);
	ASSERT_EQ(lsm_iter_skipped(it), 2);
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
	q_buf_free(&v);
	q_buf_free(&out);
}

/* A kept log whose values are all overwritten is garbage: compaction
 * drops it like a dead blob file; with some values still live, a full
 * compaction moves them out into a blob file and deletes the log. */
QTEST(kept_log_collected)
{
	lsm_db *db = lv_open(NULL, LSM_SYNC_NONE);
	lv_put_all(db, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 0);
	char first[400];
	ASSERT(lowest_with(".log", first));
	lv_put_all(db, 1);
	ASSERT_OK(lsm_flush(db));
	char second[400];
	ASSERT(lowest_with(".log", second) && strcmp(first, second) == 0);
	ASSERT_OK(lsm_compact_all(db));
	ASSERT(!file_exists(first)); /* every value of it was dead */
	lv_expect_all(db, 1);
	ASSERT(lowest_with(".log", second));
	ASSERT(strcmp(first, second) != 0);
	/* the second generation's log: half its values overwritten, then a
	 * full compaction moves the rest into a blob file */
	for (int i = 0; i < LV_N / 2; i++)
		lv_put(db, i, 2);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_compact_all(db));
	ASSERT(!file_exists(second));
	ASSERT(count_files(".blob") >= 1);
	for (int i = 0; i < LV_N; i++)
		lv_expect(db, i, i < LV_N / 2 ? 2 : 1);
	ASSERT_OK(lsm_close(db));
	db = lv_open(NULL, LSM_SYNC_NONE);
	for (int i = 0; i < LV_N; i++)
		lv_expect(db, i, i < LV_N / 2 ? 2 : 1);
	ASSERT_OK(lsm_close(db));
}

/* Under sync=none the log's records need not be durable when its memtable
 * fills: the flush that leaves values in it fsyncs it before the manifest
 * names it, so a power cut right after the flush loses none of them. */
QTEST(log_values_survive_power_cut_after_flush)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = lv_open(fe, LSM_SYNC_NONE);
	lv_put_all(db, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 0);
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	lsm_close(db); /* the power cut came first; what close writes is moot */
	lv_after_power_cut(fe, LSM_SYNC_NONE);
}

/* A crash between the flush's table and its manifest (here: the manifest
 * cannot be renamed into place, then power is cut) must leave the log:
 * the values are replayed from it at the next open. */
QTEST(log_kept_when_flush_manifest_fails)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = lv_open(fe, LSM_SYNC_ALWAYS);
	lv_put_all(db, 0);
	q_fault_env_fail_at(fe, Q_FAULT_RENAME, 1, -EIO, 1);
	(void)lsm_flush(db);
	lsm_close(db);
	q_fault_env_fail_at(fe, 0, 0, 0, 0);
	lv_after_power_cut(fe, LSM_SYNC_ALWAYS);
}

/* A copy of the store taken right after a flush that kept its log (what
 * a kill -9 there leaves), with MANIFEST then found corrupt: recovery
 * falls back to MANIFEST.prev from before the flush, which does not list
 * the log as kept but still needs it as a log: it is replayed (not
 * deleted as an old log, not skipped as a kept one), and every value is
 * there. */
QTEST(manifest_fallback_replays_kept_log)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = lv_open(NULL, LSM_SYNC_ALWAYS);
	lv_put_all(db, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 0);
	char snap[290], cmd[1200];
	snprintf(snap, sizeof(snap), "%s/snap", qtest_tmpdir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s' && rm -f '%s/LOCK'", dbdir, snap, snap);
	ASSERT_EQ(system(cmd), 0);
	ASSERT_OK(lsm_close(db));
	snprintf(dbdir, sizeof(dbdir), "%s", snap);
	char mp[300];
	snprintf(mp, sizeof(mp), "%s/MANIFEST", snap);
	flip_byte(mp, 20);
	lsm_options o;
	lsm_options_default(&o);
	o.blob_threshold = 1024;
	ASSERT_OK(lsm_open(snap, &o, &db));
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.manifest_fallback, 1);
	lv_expect_all(db, 0);
	ASSERT_OK(lsm_close(db));
	ASSERT_OK(lsm_open(snap, &o, &db));
	lv_expect_all(db, 0);
	ASSERT_OK(lsm_close(db));
}

/* Values kept in their log are found whatever the order of keys, writes and
 * batches: 200 values inserted in scrambled key order, one to three per
 * batch (so a batch encoding holds several), are all left in the log (no
 * blob file) and read back after the flush and after reopening. */
QTEST(values_in_log_found_in_any_order)
{
	lsm_db *db = lv_open(NULL, LSM_SYNC_NONE); /* N (200) values */
	q_buf v = Q_BUF_INIT;
	int i = 0;
	for (int done = 0; done < N;) {
		lsm_batch *b = lsm_batch_new();
		ASSERT(b != NULL);
		int per = 1 + done % 3;
		for (int j = 0; j < per && done < N; j++, done++) {
			i = (done * 67) % N; /* 67 and 200 coprime: every key once */
			char k[32];
			key_of(k, i);
			lv_val(&v, i, 0);
			ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_buf_slice(&v)));
		}
		ASSERT_OK(lsm_write(db, b));
		lsm_batch_free(b);
	}
	q_buf_free(&v);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 0);
	for (i = 0; i < N; i++)
		lv_expect(db, i, 0);
	ASSERT_OK(lsm_close(db));
	db = lv_open(NULL, LSM_SYNC_NONE);
	for (i = 0; i < N; i++)
		lv_expect(db, i, 0);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".blob"), 0);
	ASSERT_EQ(manifest_version(), 3);
}

/* A log made mostly of other bytes is not kept (blob GC would collect it
 * at once, reading every value back): small records around two large
 * values, then a large value overwritten twice, each memtable's large
 * values go to a blob file and the manifest lists no kept log. */
QTEST(log_mostly_other_bytes_not_kept)
{
	lsm_db *db = lv_open(NULL, LSM_SYNC_NONE);
	lv_put(db, 0, 0);
	for (int i = 0; i < 3000; i++) {
		char k[32], v[100];
		snprintf(k, sizeof(k), "small%05d", i);
		memset(v, 'a' + i % 26, sizeof(v));
		ASSERT_OK(lsm_put(db, q_slice_str(k), q_slice_make(v, sizeof(v))));
	}
	lv_put(db, 1, 0);
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 1);
	lv_put(db, 2, 0);
	lv_put(db, 2, 1);
	lv_put(db, 2, 2); /* two thirds of this log are overwritten versions */
	ASSERT_OK(lsm_flush(db));
	ASSERT_EQ(count_files(".blob"), 2);
	lv_expect(db, 0, 0);
	lv_expect(db, 1, 0);
	lv_expect(db, 2, 2);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(manifest_version(), 2);
	db = lv_open(NULL, LSM_SYNC_NONE);
	lv_expect(db, 0, 0);
	lv_expect(db, 2, 2);
	ASSERT_OK(lsm_close(db));
}

QTEST_MAIN(QT(large_values_round_trip_reopen), QT(threshold_zero_writes_no_blob_files),
	   QT(overwrite_delete_garbage_and_gc), QT(iterator_holds_old_blob_alive),
	   QT(versions_across_blob_and_inline), QT(blob_record_codec),
	   QT(short_blob_file_serves_records_before_the_cut), QT(short_blob_file_in_store),
	   QT(decompressed_length_bounded), QT(values_read_after_max_value_size_lowered), QT(blob_open_failure_retried_at_read),
	   QT(store_open_with_emfile_on_each_open), QT(gc_transient_read_error_retried),
	   QT(gc_unreadable_region_keeps_compactions_going),
	   QT(quarantined_at_open_keeps_blob_as_bad), QT(quarantined_by_read_keeps_blob_as_bad),
	   QT(incompressible_values_stay_in_their_log), QT(corrupt_byte_in_log_value),
	   QT(kept_log_collected), QT(log_values_survive_power_cut_after_flush),
	   QT(log_kept_when_flush_manifest_fails), QT(manifest_fallback_replays_kept_log),
	   QT(values_in_log_found_in_any_order),
	   QT(log_mostly_other_bytes_not_kept))
