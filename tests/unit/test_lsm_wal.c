/*
 * test_lsm_wal.c - the commit log (fragmentation across blocks, torn tails,
 * corrupt records reported and skipped), write batches and the memtable,
 * and large values handed from a batch to the memtable without a copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/batch.h"
#include "lsm/lsm.h"
#include "lsm/lsm_format.h"
#include "lsm/mem.h"
#include "lsm/wal.h"
#include "qtest.h"
#include "util/qerr.h"

static char logpath[400];

typedef struct rep {
	int corrupt, torn;
	uint64_t first_off;
} rep;

static void on_report(void *arg, uint64_t off, size_t bytes, const char *why, int torn)
{
	rep *r = arg;
	if (torn)
		r->torn++;
	else {
		if (!r->corrupt)
			r->first_off = off;
		r->corrupt++;
	}
}

/* Record i: i*977 % 70000 bytes (some span several blocks), byte j = i+j. */
static size_t rec_len(int i)
{
	return (size_t)(i * 977) % 70000;
}

static void fill(uint8_t *p, int i, size_t n)
{
	for (size_t j = 0; j < n; j++)
		p[j] = (uint8_t)(i + j);
}

static void write_log(int n, int buffered)
{
	snprintf(logpath, sizeof(logpath), "%s/000001.log", qtest_tmpdir);
	wal_writer *w;
	ASSERT_OK(wal_writer_open(q_env_posix(), logpath, buffered, &w));
	uint8_t *buf = malloc(70000);
	for (int i = 0; i < n; i++) {
		fill(buf, i, rec_len(i));
		ASSERT_OK(wal_add(w, buf, rec_len(i)));
	}
	ASSERT_OK(wal_sync(w));
	ASSERT_OK(wal_writer_close(w));
	free(buf);
}

/* Reads the log; returns the number of records, checking each one that is
 * returned is intact and in order (records may be missing). */
static int read_log(const uint8_t *d, size_t n, rep *r, int *last_index)
{
	wal_reader rd;
	wal_reader_init(&rd, d, n, on_report, r);
	q_slice rec;
	int got = 0, idx = -1;
	uint8_t *want = malloc(70000);
	while (wal_read(&rd, &rec) == 1) {
		/* find which record this is: the next index with this length */
		int i = idx + 1;
		while (i < 1000 && rec_len(i) != rec.n)
			i++;
		ASSERT(i < 1000);
		fill(want, i, rec.n);
		ASSERT_MEMEQ(rec.p, want, rec.n);
		idx = i;
		got++;
	}
	free(want);
	wal_reader_free(&rd);
	if (last_index)
		*last_index = idx;
	return got;
}

QTEST(wal_roundtrip)
{
	for (int buffered = 0; buffered < 2; buffered++) {
		write_log(200, buffered);
		uint8_t *d;
		size_t n;
		ASSERT_OK(q_env_read_all(q_env_posix(), logpath, &d, &n));
		rep r = {0};
		ASSERT_EQ(read_log(d, n, &r, NULL), 200);
		ASSERT_EQ(r.corrupt, 0);
		ASSERT_EQ(r.torn, 0);
		free(d);
		ASSERT_OK(q_env_unlink(q_env_posix(), logpath));
	}
}

QTEST(wal_torn_tail_at_every_length)
{
	write_log(12, 0);
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), logpath, &d, &n));
	size_t step = n / 600 + 1;
	for (size_t cut = 0; cut <= n; cut += step) {
		rep r = {0};
		int last;
		int got = read_log(d, cut, &r, &last);
		/* a prefix of the records, in order, no corruption reported */
		ASSERT_EQ(r.corrupt, 0);
		ASSERT_EQ(got, last + 1);
	}
	free(d);
}

QTEST(wal_corrupt_record_skipped_and_reported)
{
	write_log(40, 0);
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), logpath, &d, &n));
	unsigned seed = 1;
	for (int trial = 0; trial < 300; trial++) {
		size_t pos = (size_t)rand_r(&seed) % n;
		uint8_t old = d[pos];
		d[pos] ^= (uint8_t)(1 + rand_r(&seed) % 255);
		rep r = {0};
		int got = read_log(d, n, &r, NULL);
		/* the flipped record is never returned (read_log checks contents);
		 * it is reported unless it only hit padding */
		ASSERT(got < 40 || r.corrupt == 0);
		if (got < 40)
			ASSERT(r.corrupt + r.torn > 0);
		d[pos] = old;
	}
	free(d);
}

QTEST(wal_zero_tail_is_clean)
{
	write_log(5, 0);
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), logpath, &d, &n));
	uint8_t *z = calloc(1, n + 100000);
	memcpy(z, d, n);
	rep r = {0};
	ASSERT_EQ(read_log(z, n + 100000, &r, NULL), 5);
	ASSERT_EQ(r.corrupt, 0);
	free(z);
	free(d);
}

/* Garbage or padding that ends within the last header-size bytes of a block
 * must end the read, not spin (found by the fuzzer). */
QTEST(wal_reader_ends_near_block_end)
{
	uint8_t *d = malloc(WAL_BLOCK_SIZE * 2);
	for (int fillc = 0; fillc < 2; fillc++) {
		memset(d, fillc ? 0xff : 0, WAL_BLOCK_SIZE * 2);
		for (size_t n = WAL_BLOCK_SIZE - 8; n <= WAL_BLOCK_SIZE + 8; n++) {
			wal_reader r;
			rep rp = {0};
			wal_reader_init(&r, d, n, on_report, &rp);
			q_slice rec;
			ASSERT_EQ(wal_read(&r, &rec), 0);
			ASSERT_EQ(wal_read(&r, &rec), 0);
			wal_reader_free(&r);
		}
	}
	free(d);
}

static int count_op(void *arg, uint64_t seq, int kind, q_slice k, q_slice v)
{
	(*(int *)arg)++;
	return 0;
}

QTEST(batch_encode_decode)
{
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, q_slice_str("a"), q_slice_str("1")));
	ASSERT_OK(lsm_batch_delete(b, q_slice_str("b")));
	batch_set_seq(b, 77);
	q_slice rep_ = q_buf_slice(&b->rep);
	ASSERT_U64_EQ(batch_rep_seq(rep_), 77);
	ASSERT_EQ(batch_rep_count(rep_), 2);
	int n = 0;
	ASSERT_OK(batch_decode(rep_, count_op, &n));
	ASSERT_EQ(n, 2);
	/* truncations and a wrong count are rejected before anything applies */
	for (size_t cut = 0; cut < rep_.n; cut++) {
		n = 0;
		ASSERT(batch_decode(q_slice_make(rep_.p, cut), count_op, &n) < 0);
		ASSERT_EQ(n, 0);
	}
	b->rep.p[8] = 3;
	n = 0;
	ASSERT_EQ(batch_decode(q_buf_slice(&b->rep), count_op, &n), Q_ECORRUPT);
	ASSERT_EQ(n, 0);
	lsm_batch_free(b);
}

QTEST(memtable_versions_and_iter)
{
	mem_table *m = mem_new();
	char k[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(k, sizeof(k), "k%04d", (i * 7) % 1000);
		ASSERT_OK(mem_add(m, (uint64_t)i + 1, KIND_PUT, q_slice_str(k), q_slice_str(k)));
	}
	ASSERT_OK(mem_add(m, 2000, KIND_DEL, q_slice_str("k0007"), q_slice_make(NULL, 0)));
	ASSERT_OK(mem_add(m, 2001, KIND_PUT, q_slice_str("k0008"), q_slice_str("new")));
	q_buf out = Q_BUF_INIT;
	int kind;
	ASSERT_EQ(mem_get(m, q_slice_str("k0007"), 5000, &kind, &out), 1);
	ASSERT_EQ(kind, KIND_DEL);
	ASSERT_EQ(mem_get(m, q_slice_str("k0007"), 1999, &kind, &out), 1);
	ASSERT_EQ(kind, KIND_PUT);
	ASSERT_EQ(mem_get(m, q_slice_str("k0008"), 5000, &kind, &out), 1);
	ASSERT_EQ(out.len, 3);
	ASSERT_EQ(mem_get(m, q_slice_str("k0008"), 2000, &kind, &out), 1);
	ASSERT_MEMEQ(out.p, "k0008", 5);
	ASSERT_EQ(mem_get(m, q_slice_str("k0008"), 0, &kind, &out), 0);
	ASSERT_EQ(mem_get(m, q_slice_str("zzz"), 5000, &kind, &out), 0);
	lsm_it *it = mem_iter_new(m);
	int n = 0;
	q_buf prev = Q_BUF_INIT;
	for (it_seek_first(it); it_valid(it); it_next(it)) {
		if (n)
			ASSERT(ikey_cmp(q_buf_slice(&prev), it_key(it)) < 0);
		q_buf_reset(&prev);
		q_buf_append(&prev, it_key(it).p, it_key(it).n);
		n++;
	}
	ASSERT_EQ(n, 1002);
	it_free(it);
	mem_unref(m);
	q_buf_free(&out);
	q_buf_free(&prev);
}

static void fill_big(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

/* A shared encoding: the memtable references a large value inside it, and
 * whatever the batch does afterwards (more puts, a new seq, clear, reuse,
 * free) leaves the referenced bytes as they were. */
QTEST(batch_shared_with_memtable)
{
	enum { BIG = 100000 };
	uint8_t *v1 = malloc(BIG), *v2 = malloc(BIG);
	fill_big(v1, BIG, 1);
	fill_big(v2, BIG, 2);
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, q_slice_str("big"), q_slice_make(v1, BIG)));
	ASSERT_OK(lsm_batch_put(b, q_slice_str("small"), q_slice_str("s")));
	ASSERT_OK(batch_set_seq(b, 10));
	batch_hold *h = batch_share(b);
	ASSERT(h != NULL);
	mem_table *m = mem_new();
	/* the value's bytes inside the encoding: the op ends the big key's
	 * record, so find it by content */
	q_slice rep_ = q_buf_slice(&b->rep);
	const uint8_t *vp = NULL;
	for (size_t i = 0; i + BIG <= rep_.n && !vp; i++)
		if (memcmp(rep_.p + i, v1, BIG) == 0)
			vp = rep_.p + i;
	ASSERT(vp != NULL);
	ASSERT_OK(mem_add_ref(m, 10, KIND_PUT, q_slice_str("big"), q_slice_make(vp, BIG), h));
	ASSERT_OK(mem_add(m, 11, KIND_PUT, q_slice_str("small"), q_slice_str("s")));
	batch_hold_unref(h);
	ASSERT(mem_usage(m) >= BIG);
	/* changes copy first: the shared bytes stay */
	ASSERT_OK(batch_set_seq(b, 99));
	ASSERT_U64_EQ(batch_rep_seq(q_buf_slice(&b->rep)), 99);
	ASSERT_OK(lsm_batch_put(b, q_slice_str("more"), q_slice_make(v2, BIG)));
	ASSERT_EQ(batch_rep_count(q_buf_slice(&b->rep)), 3);
	lsm_batch_clear(b);
	ASSERT_OK(lsm_batch_put(b, q_slice_str("big"), q_slice_make(v2, BIG)));
	/* shared twice, then an append into it */
	h = batch_share(b);
	batch_hold *h2 = batch_share(b);
	ASSERT(h == h2);
	lsm_batch *c = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(c, q_slice_str("c"), q_slice_str("c")));
	ASSERT_OK(batch_append(b, c));
	ASSERT_EQ(batch_rep_count(q_buf_slice(&b->rep)), 2);
	batch_hold_unref(h);
	batch_hold_unref(h2);
	lsm_batch_free(c);
	lsm_batch_free(b);
	q_buf out = Q_BUF_INIT;
	int kind;
	ASSERT_EQ(mem_get(m, q_slice_str("big"), 50, &kind, &out), 1);
	ASSERT_EQ(kind, KIND_PUT);
	ASSERT_EQ(out.len, BIG);
	ASSERT_MEMEQ(out.p, v1, BIG);
	lsm_it *it = mem_iter_new(m);
	it_seek_first(it);
	ASSERT(it_valid(it));
	ASSERT_EQ(it_value(it).n, BIG);
	ASSERT_MEMEQ(it_value(it).p, v1, BIG);
	it_next(it);
	ASSERT(it_valid(it));
	ASSERT_EQ(it_value(it).n, 1);
	mem_unref(m); /* the iterator still holds the memtable */
	it_seek_first(it);
	ASSERT_MEMEQ(it_value(it).p, v1, BIG);
	it_free(it);
	q_buf_free(&out);
	free(v1);
	free(v2);
}

/* A memtable is charged for the whole encoding its referenced values keep
 * alive (small values and slack too), once per encoding. */
QTEST(memtable_charges_the_pinned_encoding)
{
	enum { BIG = 20000 };
	uint8_t *v = malloc(BIG);
	ASSERT(v != NULL);
	fill_big(v, BIG, 3);
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, q_slice_str("big1"), q_slice_make(v, BIG)));
	ASSERT_OK(lsm_batch_put(b, q_slice_str("big2"), q_slice_make(v, BIG)));
	char k[32], sv[1000];
	memset(sv, 's', sizeof(sv));
	for (int i = 0; i < 60; i++) {
		snprintf(k, sizeof(k), "small%02d", i);
		ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_slice_make(sv, sizeof(sv))));
	}
	ASSERT_OK(batch_set_seq(b, 1));
	size_t enc = b->rep.len;
	batch_hold *h = batch_share(b);
	ASSERT(h != NULL);
	ASSERT(batch_hold_size(h) >= enc);
	mem_table *m = mem_new();
	size_t u0 = mem_usage(m);
	q_slice rep_ = q_buf_slice(&b->rep);
	const uint8_t *vp[2] = {NULL, NULL};
	for (size_t i = 0, f = 0; i + BIG <= rep_.n && f < 2; i++)
		if (memcmp(rep_.p + i, v, BIG) == 0) {
			vp[f++] = rep_.p + i;
			i += BIG - 1;
		}
	ASSERT(vp[0] && vp[1]);
	ASSERT_OK(mem_add_ref(m, 1, KIND_PUT, q_slice_str("big1"), q_slice_make(vp[0], BIG), h));
	size_t u1 = mem_usage(m);
	ASSERT(u1 - u0 >= enc); /* the 60 KB of small values count too */
	ASSERT_OK(mem_add_ref(m, 2, KIND_PUT, q_slice_str("big2"), q_slice_make(vp[1], BIG), h));
	ASSERT(mem_usage(m) - u1 < BIG); /* the same encoding: not charged again */
	batch_hold_unref(h);
	lsm_batch_free(b);
	q_buf out = Q_BUF_INIT;
	int kind;
	ASSERT_EQ(mem_get(m, q_slice_str("big2"), 50, &kind, &out), 1);
	ASSERT_EQ(out.len, BIG);
	ASSERT_MEMEQ(out.p, v, BIG);
	q_buf_free(&out);
	mem_unref(m);
	free(v);
}

/* Through the engine: large values (referenced by the memtable) read back
 * from the memtable after the caller reuses or frees its batch, and after
 * a reopen: the older ones from tables and blob files (memtable switches
 * at 1 MiB), the last ones from the commit log. */
QTEST(engine_large_values_by_reference)
{
	enum { BIG = 70000, N = 40 };
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/db", qtest_tmpdir);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	o.write_buffer_size = 1u << 20; /* several memtable switches */
	uint8_t *v = malloc(BIG);
	q_buf out = Q_BUF_INIT;
	char k[32];
	for (int round = 0; round < 2; round++) {
		lsm_db *db;
		ASSERT_OK(lsm_open(dir, &o, &db));
		if (round == 0) {
			lsm_batch *b = lsm_batch_new();
			for (int i = 0; i < N; i++) {
				snprintf(k, sizeof(k), "k%03d", i);
				fill_big(v, BIG, (unsigned)i);
				lsm_batch_clear(b);
				ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_slice_make(v, BIG)));
				ASSERT_OK(lsm_write(db, b)); /* the batch is reused */
				if (i % 3 == 0)
					ASSERT_OK(lsm_put(db, q_slice_str("p"), q_slice_make(v, BIG)));
			}
			/* resubmitting the same batch copies its encoding for the
			 * new sequence number */
			ASSERT_OK(lsm_write(db, b));
			lsm_batch_free(b);
		}
		for (int i = 0; i < N; i++) {
			snprintf(k, sizeof(k), "k%03d", i);
			fill_big(v, BIG, (unsigned)i);
			ASSERT_OK(lsm_get(db, q_slice_str(k), &out));
			ASSERT_EQ(out.len, BIG);
			ASSERT_MEMEQ(out.p, v, BIG);
		}
		fill_big(v, BIG, 39);
		ASSERT_OK(lsm_get(db, q_slice_str("p"), &out));
		ASSERT_MEMEQ(out.p, v, BIG);
		ASSERT_OK(lsm_close(db));
	}
	free(v);
	q_buf_free(&out);
}

/* A preallocated log (sync=always): records overwrite zeros written ahead
 * of them; the zero tail reads as padding; a last record torn by a power
 * loss (part of it still zeros) is a torn tail, not corruption; a damaged
 * record earlier is still reported; close trims the unused zeros. */
QTEST(wal_preallocated_log)
{
	snprintf(logpath, sizeof(logpath), "%s/000002.log", qtest_tmpdir);
	wal_writer *w;
	ASSERT_OK(wal_writer_open_prealloc(q_env_posix(), logpath, 0, 64 << 10, &w));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), logpath, &sz));
	ASSERT_EQ(sz, 64 << 10);
	uint8_t *buf = malloc(70000);
	for (int i = 0; i < 30; i++) {
		fill(buf, i, rec_len(i));
		ASSERT_OK(wal_add(w, buf, rec_len(i)));
		ASSERT_OK(wal_sync(w));
	}
	free(buf);
	uint64_t logical = wal_size(w);
	ASSERT_OK(q_env_file_size(q_env_posix(), logpath, &sz));
	ASSERT(sz > logical && sz % (64 << 10) == 0);
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), logpath, &d, &n));
	rep r = {0};
	ASSERT_EQ(read_log(d, n, &r, NULL), 30);
	ASSERT_EQ(r.corrupt, 0);
	ASSERT_EQ(r.torn, 0);
	/* the end of the last record never reached the disk */
	memset(d + logical - 100, 0, 100);
	memset(&r, 0, sizeof(r));
	int last;
	ASSERT_EQ(read_log(d, n, &r, &last), 29);
	ASSERT_EQ(last, 28);
	ASSERT_EQ(r.corrupt, 0);
	ASSERT(r.torn >= 1);
	/* a damaged record with intact records after it is corruption */
	d[logical - 100] = 1;
	memset(d + logical - 99, 0, 99);
	d[100] ^= 0x55;
	memset(&r, 0, sizeof(r));
	read_log(d, n, &r, NULL);
	ASSERT(r.corrupt >= 1);
	free(d);
	ASSERT_OK(wal_writer_close(w));
	ASSERT_OK(q_env_file_size(q_env_posix(), logpath, &sz));
	ASSERT_EQ(sz, logical);
}

/* Large records on a log written through its descriptor (preallocated
 * and unbuffered, or buffered) are written from the caller's memory with
 * pwritev (wal_add_direct): the file must be byte for byte what the
 * env's append path writes, the record starts the same, and
 * wal_payload_offset must find every payload byte in the file (records
 * that start with fewer than 7 bytes left in a block, fill a block exactly,
 * span more fragments than one pwritev carries). */
QTEST(wal_direct_writes_and_payload_offsets)
{
	static const size_t lens[] = {100, 32761 - 7 - 100 - 3, 70000, 5, 2u << 20, 65536,
				      32761, 1, 3u << 20, 65535, 65537, 40, 200000};
	const int nrec = (int)(sizeof(lens) / sizeof(lens[0]));
	char pa[400], pb[400], pc[400];
	snprintf(pa, sizeof(pa), "%s/000003.log", qtest_tmpdir);
	snprintf(pb, sizeof(pb), "%s/000004.log", qtest_tmpdir);
	snprintf(pc, sizeof(pc), "%s/000005.log", qtest_tmpdir);
	wal_writer *wa, *wb, *wc;
	ASSERT_OK(wal_writer_open(q_env_posix(), pa, 0, &wa));
	ASSERT_OK(wal_writer_open_prealloc(q_env_posix(), pb, 0, 64 << 10, &wb));
	/* buffered, not preallocated (sync=batch and none) */
	ASSERT_OK(wal_writer_open_prealloc(q_env_posix(), pc, 1, 0, &wc));
	uint8_t *buf = malloc(3u << 20);
	ASSERT(buf != NULL);
	uint64_t starts[sizeof(lens) / sizeof(lens[0])];
	for (int i = 0; i < nrec; i++) {
		fill(buf, i, lens[i]);
		uint64_t sa = 1, sb = 2;
		ASSERT_OK(wal_add_at(wa, buf, lens[i], &sa));
		ASSERT_OK(wal_add_at(wb, buf, lens[i], &sb));
		ASSERT_OK(wal_sync(wb));
		ASSERT_EQ(sa, sb);
		ASSERT_OK(wal_add_at(wc, buf, lens[i], &sb));
		ASSERT_EQ(sa, sb);
		ASSERT_EQ(wal_size(wa), wal_size(wb));
		starts[i] = sa;
	}
	ASSERT_OK(wal_writer_close(wa));
	ASSERT_OK(wal_writer_close(wb));
	ASSERT_OK(wal_writer_close(wc));
	uint8_t *da, *db;
	size_t na, nb;
	ASSERT_OK(q_env_read_all(q_env_posix(), pa, &da, &na));
	ASSERT_OK(q_env_read_all(q_env_posix(), pb, &db, &nb));
	ASSERT_EQ(na, nb);
	ASSERT_MEMEQ(da, db, na);
	free(db);
	ASSERT_OK(q_env_read_all(q_env_posix(), pc, &db, &nb));
	ASSERT_EQ(na, nb);
	ASSERT_MEMEQ(da, db, na);
	for (int i = 0; i < nrec; i++) {
		fill(buf, i, lens[i]);
		for (size_t j = 0; j < lens[i]; j++) {
			uint64_t off = wal_payload_offset(starts[i], j);
			if (off >= na || da[off] != buf[j])
				QTEST_FAIL_("record %d byte %zu: offset %llu wrong", i, j,
					    (unsigned long long)off);
		}
	}
	free(da);
	free(db);
	free(buf);
}

QTEST_MAIN(QT(wal_roundtrip), QT(wal_torn_tail_at_every_length),
	   QT(wal_corrupt_record_skipped_and_reported), QT(wal_zero_tail_is_clean),
	   QT(wal_reader_ends_near_block_end), QT(wal_preallocated_log),
	   QT(wal_direct_writes_and_payload_offsets),
	   QT(batch_encode_decode), QT(memtable_versions_and_iter),
	   QT(batch_shared_with_memtable), QT(engine_large_values_by_reference),
	   QT(memtable_charges_the_pinned_encoding))
