/*
 * test_lsm_db.c - the storage engine end to end: put/get/delete, batches,
 * iterators, recovery, flush and compaction, concurrency, limits.
 * (Fault-env and corruption tests: test_lsm_fault.c.)
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm.h"
#include "lsm/mem.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"

static char dbdir[300];

static lsm_db *open_db(const lsm_options *o)
{
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db = NULL;
	int rc = lsm_open(dbdir, o, &db);
	if (rc)
		QTEST_FAIL_("lsm_open: %s", q_strerror(rc));
	return db;
}

static q_slice S(const char *s)
{
	return q_slice_str(s);
}

static void expect(lsm_db *db, const char *k, const char *v)
{
	q_buf out = Q_BUF_INIT;
	int rc = lsm_get(db, S(k), &out);
	if (!v) {
		if (rc != Q_ENOTFOUND)
			QTEST_FAIL_("get %s: want not found, got %d", k, rc);
	} else {
		if (rc)
			QTEST_FAIL_("get %s: %s", k, q_strerror(rc));
		if (out.len != strlen(v) || (out.len && memcmp(out.p, v, out.len)))
			QTEST_FAIL_("get %s: value differs (len %zu)", k, out.len);
	}
	q_buf_free(&out);
}

static void small_opts(lsm_options *o)
{
	lsm_options_default(o);
	o->write_buffer_size = 64 << 10;
	o->block_size = 512;
	o->sync = LSM_SYNC_NONE;
}

QTEST(basic_put_get_delete)
{
	lsm_db *db = open_db(NULL);
	expect(db, "a", NULL);
	ASSERT_OK(lsm_put(db, S("a"), S("1")));
	ASSERT_OK(lsm_put(db, S("b"), S("2")));
	expect(db, "a", "1");
	expect(db, "b", "2");
	ASSERT_OK(lsm_put(db, S("a"), S("3")));
	expect(db, "a", "3");
	ASSERT_OK(lsm_delete(db, S("a")));
	expect(db, "a", NULL);
	ASSERT_OK(lsm_delete(db, S("never")));
	ASSERT_OK(lsm_put(db, S(""), S("empty key")));
	expect(db, "", "empty key");
	ASSERT_OK(lsm_put(db, S("e"), S("")));
	expect(db, "e", "");
	ASSERT_OK(lsm_close(db));
}

QTEST(reopen_recovers_log)
{
	lsm_db *db = open_db(NULL);
	ASSERT_OK(lsm_put(db, S("k1"), S("v1")));
	ASSERT_OK(lsm_put(db, S("k2"), S("v2")));
	ASSERT_OK(lsm_delete(db, S("k1")));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL);
	expect(db, "k1", NULL);
	expect(db, "k2", "v2");
	ASSERT_OK(lsm_put(db, S("k3"), S("v3")));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL);
	expect(db, "k2", "v2");
	expect(db, "k3", "v3");
	ASSERT_OK(lsm_close(db));
}

QTEST(lock_busy)
{
	lsm_db *db = open_db(NULL);
	lsm_db *db2 = NULL;
	ASSERT_EQ(lsm_open(dbdir, NULL, &db2), Q_EBUSY);
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL);
	ASSERT_OK(lsm_close(db));
}

QTEST(no_create)
{
	lsm_options o;
	lsm_options_default(&o);
	o.create_if_missing = 0;
	char d[400];
	snprintf(d, sizeof(d), "%s/none", qtest_tmpdir);
	lsm_db *db = NULL;
	ASSERT(lsm_open(d, &o, &db) < 0);
}

QTEST(limits)
{
	lsm_options o;
	lsm_options_default(&o);
	o.max_key_size = 8;
	o.max_value_size = 16;
	lsm_db *db = open_db(&o);
	ASSERT_EQ(lsm_put(db, S("123456789"), S("v")), Q_ETOOBIG);
	ASSERT_EQ(lsm_put(db, S("k"), S("12345678901234567")), Q_ETOOBIG);
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, S("ok"), S("fine")));
	ASSERT_OK(lsm_batch_put(b, S("k"), S("12345678901234567")));
	ASSERT_EQ(lsm_write(db, b), Q_ETOOBIG);
	expect(db, "ok", NULL); /* all or nothing */
	lsm_batch_free(b);
	expect(db, "k", NULL);
	ASSERT_OK(lsm_close(db));
}

QTEST(batch_atomic)
{
	lsm_db *db = open_db(NULL);
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, S("x"), S("1")));
	ASSERT_OK(lsm_batch_put(b, S("y"), S("2")));
	ASSERT_OK(lsm_batch_delete(b, S("x")));
	ASSERT_OK(lsm_write(db, b));
	expect(db, "x", NULL);
	expect(db, "y", "2");
	lsm_batch_clear(b);
	ASSERT_OK(lsm_write(db, b)); /* empty batch is fine */
	ASSERT_OK(lsm_batch_put(b, S("z"), S("3")));
	ASSERT_OK(lsm_write(db, b));
	lsm_batch_free(b);
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL);
	expect(db, "x", NULL);
	expect(db, "y", "2");
	expect(db, "z", "3");
	ASSERT_OK(lsm_close(db));
}

/* A model: N keys, each either absent or holding a known value. */
#define NK 3000
static char *model[NK];

static void mkey(char *buf, int i)
{
	snprintf(buf, 32, "key%06d", i);
}

static void model_check(lsm_db *db)
{
	char k[32];
	q_buf out = Q_BUF_INIT;
	for (int i = 0; i < NK; i++) {
		mkey(k, i);
		int rc = lsm_get(db, S(k), &out);
		if (!model[i]) {
			if (rc != Q_ENOTFOUND)
				QTEST_FAIL_("%s: want absent, rc %d", k, rc);
		} else {
			if (rc)
				QTEST_FAIL_("%s: %s", k, q_strerror(rc));
			if (out.len != strlen(model[i]) || memcmp(out.p, model[i], out.len))
				QTEST_FAIL_("%s: wrong value", k);
		}
	}
	/* and a full scan sees exactly the live keys in order */
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int i = 0;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		while (i < NK && !model[i])
			i++;
		ASSERT(i < NK);
		mkey(k, i);
		q_slice key = lsm_iter_key(it), v = lsm_iter_value(it);
		if (key.n != strlen(k) || memcmp(key.p, k, key.n))
			QTEST_FAIL_("scan: got %.*s want %s", (int)key.n, key.p, k);
		ASSERT_EQ(v.n, strlen(model[i]));
		ASSERT_MEMEQ(v.p, model[i], v.n);
		i++;
	}
	ASSERT_OK(lsm_iter_status(it));
	while (i < NK && !model[i])
		i++;
	ASSERT_EQ(i, NK);
	lsm_iter_free(it);
	q_buf_free(&out);
}

static void model_set(int i, const char *v)
{
	free(model[i]);
	model[i] = v ? strdup(v) : NULL;
}

static void random_ops(lsm_db *db, unsigned *seed, int n)
{
	char k[32], v[300];
	for (int j = 0; j < n; j++) {
		int i = rand_r(seed) % NK;
		mkey(k, i);
		if (rand_r(seed) % 5 == 0) {
			ASSERT_OK(lsm_delete(db, S(k)));
			model_set(i, NULL);
		} else {
			int len = 10 + rand_r(seed) % 200;
			for (int c = 0; c < len; c++)
				v[c] = (char)('a' + (c * 7 + j) % 26);
			snprintf(v, sizeof(v), "%d-%d", i, j);
			v[strlen(v)] = '.';
			v[len] = 0;
			ASSERT_OK(lsm_put(db, S(k), S(v)));
			model_set(i, v);
		}
	}
}

QTEST(model_flush_compact_reopen)
{
	lsm_options o;
	small_opts(&o);
	lsm_db *db = open_db(&o);
	unsigned seed = 42;
	for (int round = 0; round < 4; round++) {
		random_ops(db, &seed, 6000);
		model_check(db);
		if (round == 1)
			ASSERT_OK(lsm_flush(db));
		if (round == 2)
			ASSERT_OK(lsm_compact_all(db));
		ASSERT_OK(lsm_close(db));
		db = open_db(&o);
		model_check(db);
	}
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.flushes > 0 || st.num_tables > 0);
	ASSERT_OK(lsm_compact_all(db));
	lsm_get_stats(db, &st);
	int nonempty = 0;
	for (int l = 0; l < 8; l++)
		nonempty += st.tables_per_level[l] > 0;
	ASSERT_EQ(nonempty, 1);
	ASSERT_EQ(st.tables_per_level[0], 0);
	model_check(db);
	ASSERT_OK(lsm_close(db));
	for (int i = 0; i < NK; i++)
		model_set(i, NULL);
}

QTEST(background_compaction_bounds_level0)
{
	lsm_options o;
	small_opts(&o);
	o.write_buffer_size = 32 << 10;
	lsm_db *db = open_db(&o);
	unsigned seed = 7;
	random_ops(db, &seed, 30000);
	model_check(db);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.flushes >= 10);
	ASSERT(st.compactions >= 1);
	ASSERT(st.tables_per_level[0] < 12);
	ASSERT_OK(lsm_close(db));
	for (int i = 0; i < NK; i++)
		model_set(i, NULL);
}

QTEST(iter_seek_and_snapshot)
{
	lsm_options o;
	small_opts(&o);
	lsm_db *db = open_db(&o);
	char k[32];
	for (int i = 0; i < 500; i += 2) {
		mkey(k, i);
		ASSERT_OK(lsm_put(db, S(k), S("old")));
	}
	ASSERT_OK(lsm_flush(db));
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	/* writes after the snapshot are invisible to it */
	for (int i = 0; i < 500; i++) {
		mkey(k, i);
		ASSERT_OK(lsm_put(db, S(k), S("new")));
	}
	mkey(k, 0);
	ASSERT_OK(lsm_delete(db, S(k)));
	ASSERT_OK(lsm_compact_all(db));
	mkey(k, 101);
	lsm_iter_seek(it, S(k));
	ASSERT(lsm_iter_valid(it));
	mkey(k, 102);
	ASSERT_EQ(lsm_iter_key(it).n, strlen(k));
	ASSERT_MEMEQ(lsm_iter_key(it).p, k, strlen(k));
	ASSERT_MEMEQ(lsm_iter_value(it).p, "old", 3);
	int n = 0;
	for (; lsm_iter_valid(it); lsm_iter_next(it))
		n++;
	ASSERT_EQ(n, (500 - 102) / 2);
	lsm_iter_seek(it, S("zzz"));
	ASSERT(!lsm_iter_valid(it));
	lsm_iter_seek_first(it);
	mkey(k, 0);
	ASSERT_MEMEQ(lsm_iter_key(it).p, k, strlen(k));
	ASSERT_OK(lsm_iter_status(it));
	lsm_iter_free(it);
	/* a fresh iterator sees the new state */
	ASSERT_OK(lsm_iter_new(db, &it));
	n = 0;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		ASSERT_MEMEQ(lsm_iter_value(it).p, "new", 3);
		n++;
	}
	ASSERT_EQ(n, 499);
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
}

QTEST(big_values)
{
	lsm_options o;
	small_opts(&o);
	o.sync = LSM_SYNC_ALWAYS;
	lsm_db *db = open_db(&o);
	size_t n = 300000;
	char *v = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		v[i] = (char)('A' + (i * 31 % 26));
	v[n] = 0;
	ASSERT_OK(lsm_put(db, S("big"), q_slice_make(v, n)));
	ASSERT_OK(lsm_put(db, S("big2"), q_slice_make(v, n / 3)));
	ASSERT_OK(lsm_close(db));
	db = open_db(&o);
	q_buf out = Q_BUF_INIT;
	ASSERT_OK(lsm_get(db, S("big"), &out));
	ASSERT_EQ(out.len, n);
	ASSERT_MEMEQ(out.p, v, n);
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_get(db, S("big2"), &out));
	ASSERT_EQ(out.len, n / 3);
	ASSERT_MEMEQ(out.p, v, n / 3);
	q_buf_free(&out);
	free(v);
	ASSERT_OK(lsm_close(db));
}

typedef struct wctx {
	lsm_db *db;
	int id;
	int n;
} wctx;

static void *writer_main(void *arg)
{
	wctx *c = arg;
	char k[64], v[64];
	for (int i = 0; i < c->n; i++) {
		snprintf(k, sizeof(k), "w%d-%05d", c->id, i);
		snprintf(v, sizeof(v), "value-%d-%d", c->id, i);
		if (lsm_put(c->db, S(k), S(v)))
			abort();
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	wctx *c = arg;
	q_buf out = Q_BUF_INIT;
	char k[64];
	for (int i = 0; i < c->n; i++) {
		snprintf(k, sizeof(k), "w0-%05d", i % 100);
		int rc = lsm_get(c->db, S(k), &out);
		if (rc != 0 && rc != Q_ENOTFOUND)
			abort();
	}
	q_buf_free(&out);
	return NULL;
}

QTEST(concurrent_writers_group_commit)
{
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 128 << 10;
	lsm_db *db = open_db(&o);
	enum { T = 6, N = 400 };
	pthread_t th[T + 1];
	wctx c[T + 1];
	for (int i = 0; i < T; i++) {
		c[i] = (wctx){db, i, N};
		pthread_create(&th[i], NULL, writer_main, &c[i]);
	}
	c[T] = (wctx){db, T, 4000};
	pthread_create(&th[T], NULL, reader_main, &c[T]);
	for (int i = 0; i <= T; i++)
		pthread_join(th[i], NULL);
	ASSERT_OK(lsm_close(db));
	db = open_db(&o);
	char k[64], v[64];
	for (int t = 0; t < T; t++)
		for (int i = 0; i < N; i++) {
			snprintf(k, sizeof(k), "w%d-%05d", t, i);
			snprintf(v, sizeof(v), "value-%d-%d", t, i);
			expect(db, k, v);
		}
	ASSERT_OK(lsm_close(db));
}

QTEST(sync_batch_mode)
{
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_BATCH;
	o.sync_batch_ms = 5;
	lsm_db *db = open_db(&o);
	char k[32];
	for (int i = 0; i < 200; i++) {
		mkey(k, i);
		ASSERT_OK(lsm_put(db, S(k), S("b")));
	}
	ASSERT_OK(lsm_close(db));
	db = open_db(&o);
	for (int i = 0; i < 200; i++) {
		mkey(k, i);
		expect(db, k, "b");
	}
	ASSERT_OK(lsm_close(db));
}

QTEST(no_bloom_no_cache_no_compression)
{
	lsm_options o;
	small_opts(&o);
	o.bloom_bits_per_key = 0;
	o.block_cache_size = 0;
	o.compression = 0;
	lsm_db *db = open_db(&o);
	unsigned seed = 3;
	random_ops(db, &seed, 5000);
	ASSERT_OK(lsm_compact_all(db));
	model_check(db);
	ASSERT_OK(lsm_close(db));
	for (int i = 0; i < NK; i++)
		model_set(i, NULL);
}

/* Node-local data lives under its own one-byte prefix; a range scan over
 * one keyspace sees exactly its keys, in order, across memtable and tables. */
QTEST(keyspace_range_scan)
{
	lsm_options o;
	small_opts(&o);
	lsm_db *db = open_db(&o);
	const uint8_t spaces[3] = {LSM_KS_DATA, LSM_KS_HINT, LSM_KS_META};
	uint8_t k[16];
	for (int i = 0; i < 900; i++) {
		k[0] = spaces[i % 3];
		snprintf((char *)k + 1, sizeof(k) - 1, "%05d", i);
		ASSERT_OK(lsm_put(db, q_slice_make(k, 6), q_slice_make(k, 6)));
		if (i == 450)
			ASSERT_OK(lsm_flush(db));
	}
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	uint8_t prefix = LSM_KS_HINT;
	int n = 0, last = -1;
	for (lsm_iter_seek(it, q_slice_make(&prefix, 1)); lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice key = lsm_iter_key(it);
		if (key.n < 1 || key.p[0] != prefix)
			break;
		char num[8];
		memcpy(num, key.p + 1, 5);
		num[5] = 0;
		int i = atoi(num);
		ASSERT_EQ(i % 3, 1);
		ASSERT(i > last);
		last = i;
		n++;
	}
	ASSERT_OK(lsm_iter_status(it));
	ASSERT_EQ(n, 300);
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
}

/* The memtable's key filter never hides a key it holds: every inserted key
 * is found (for 200k keys, far past the filter's 64 KiB, where false
 * positives are common), under its own and the caller's hash. */
QTEST(memtable_filter_no_false_negative)
{
	mem_table *m = mem_new();
	ASSERT(m != NULL);
	char k[32];
	for (int i = 0; i < 200000; i++) {
		snprintf(k, sizeof(k), "mf%09d", i * 7);
		ASSERT_OK(mem_add(m, (uint64_t)i + 1, KIND_PUT, S(k), S(k)));
	}
	q_buf out = Q_BUF_INIT;
	int kind, absent_found = 0;
	for (int i = 0; i < 200000; i++) {
		snprintf(k, sizeof(k), "mf%09d", i * 7);
		ASSERT_EQ(mem_get(m, S(k), UINT64_MAX >> 8, &kind, &out), 1);
		ASSERT_EQ(kind, KIND_PUT);
		ASSERT_EQ(out.len, strlen(k));
		ASSERT_MEMEQ(out.p, k, out.len);
		ASSERT_EQ(mem_get_hashed(m, S(k), mem_key_hash(S(k)), UINT64_MAX >> 8, &kind, &out),
			  1);
		/* a key between two held ones is never reported */
		snprintf(k, sizeof(k), "mf%09d", i * 7 + 3);
		absent_found += mem_get(m, S(k), UINT64_MAX >> 8, &kind, &out);
	}
	ASSERT_EQ(absent_found, 0);
	q_buf_free(&out);
	mem_unref(m);
}

typedef struct rw_ctx {
	lsm_db *db;
	_Atomic int done;   /* keys [0, done) are acknowledged */
	_Atomic int stop;
	int n;
	int failed;
	uint64_t reads;
} rw_ctx;

static void *filter_reader(void *arg)
{
	rw_ctx *c = arg;
	uint64_t s = 88172645463325252ULL ^ (uint64_t)(uintptr_t)&s;
	q_buf out = Q_BUF_INIT;
	char k[32];
	while (!atomic_load(&c->stop) && c->reads < 2000000) {
		int d = atomic_load(&c->done);
		if (d == 0)
			continue;
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		/* mostly the newest keys: the ones in the memtable being written */
		int j = (s & 1) ? d - 1 - (int)((s >> 1) % (uint64_t)(d < 64 ? d : 64))
				: (int)((s >> 1) % (uint64_t)d);
		snprintf(k, sizeof(k), "rw%08d", j);
		int rc = lsm_get(c->db, S(k), &out);
		if (rc != 0 || out.len != strlen(k) || memcmp(out.p, k, out.len)) {
			c->failed = j + 1;
			break;
		}
		c->reads++;
	}
	q_buf_free(&out);
	return NULL;
}

/* A key acknowledged to the writer is visible to every reader that starts
 * afterwards, while the writer keeps filling (and switching) memtables: the
 * memtable filters never hide a freshly written key. */
QTEST(reads_see_acknowledged_writes_during_fill)
{
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 64 << 10;
	o.sync = LSM_SYNC_NONE;
	rw_ctx c = {.db = open_db(&o), .n = 30000};
	atomic_init(&c.done, 0);
	atomic_init(&c.stop, 0);
	pthread_t th;
	ASSERT_OK(pthread_create(&th, NULL, filter_reader, &c));
	char k[32];
	for (int i = 0; i < c.n && !c.failed; i++) {
		snprintf(k, sizeof(k), "rw%08d", i);
		ASSERT_OK(lsm_put(c.db, S(k), S(k)));
		atomic_store(&c.done, i + 1);
	}
	atomic_store(&c.stop, 1);
	pthread_join(th, NULL);
	if (c.failed)
		QTEST_FAIL_("key %d acknowledged but not found", c.failed - 1);
	ASSERT(c.reads > 0);
	ASSERT_OK(lsm_close(c.db));
}

/* The highest commit log number in dir (a new one starts at each memtable
 * switch). */
static uint64_t newest_log(const char *dir)
{
	DIR *d = opendir(dir);
	uint64_t best = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		unsigned long long n;
		char tail[8];
		if (sscanf(e->d_name, "%llu.%7s", &n, tail) == 2 && !strcmp(tail, "log") && n > best)
			best = n;
	}
	closedir(d);
	return best;
}

/* Writes 1 KiB values into a fresh store under sub and records how many
 * writes each memtable took before the switch (up to cap memtables). */
static size_t writes_per_memtable(const char *sub, unsigned jitter, int *per, size_t cap)
{
	lsm_options o;
	small_opts(&o);
	o.write_buffer_jitter = jitter;
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%s", qtest_tmpdir, sub);
	lsm_db *db = NULL;
	ASSERT_OK(lsm_open(dir, &o, &db));
	char k[32], v[1024];
	memset(v, 'v', sizeof(v));
	uint64_t log = newest_log(dir);
	size_t n = 0;
	int count = 0;
	for (int i = 0; i < 4000 && n < cap; i++) {
		snprintf(k, sizeof(k), "j%08d", i);
		ASSERT_OK(lsm_put(db, S(k), q_slice_make(v, sizeof(v))));
		uint64_t now = newest_log(dir);
		if (now != log) {
			per[n++] = count; /* the previous memtable, full before this write */
			count = 0;
			log = now;
		}
		count++;
	}
	ASSERT_OK(lsm_close(db));
	return n;
}

QTEST(memtable_flush_points_jitter)
{
	/* 64 KiB memtables of 1 KiB values: without jitter every memtable
	 * takes the same number of writes; with 50% each is full somewhere in
	 * [1/2, 1] of the size, different from one memtable to the next and
	 * from one store to another taking the same writes */
	int a[16], b[16], z[16];
	size_t nz = writes_per_memtable("exact", 0, z, 16);
	size_t na = writes_per_memtable("j1", 50, a, 16);
	size_t nb = writes_per_memtable("j2", 50, b, 16);
	ASSERT_EQ(nz, 16);
	ASSERT_EQ(na, 16);
	ASSERT_EQ(nb, 16);
	for (size_t i = 1; i < nz; i++)
		ASSERT_EQ(z[i], z[0]);
	int full = z[0]; /* writes in a memtable of the full size */
	ASSERT(full > 40);
	int distinct = 0, differ = 0;
	for (size_t i = 0; i < 16; i++) {
		/* never more than the full size, never less than half of it
		 * (one write of slack for rounding) */
		ASSERT(a[i] <= full && b[i] <= full);
		ASSERT(a[i] >= full / 2 - 1 && b[i] >= full / 2 - 1);
		distinct += i > 0 && a[i] != a[0];
		differ += a[i] != b[i];
	}
	ASSERT(distinct > 0);
	ASSERT(differ > 0);
}

int main(int argc, char **argv)
{
	q_log_set_level(Q_LOG_WARN);
	static const struct qtest_case cases[] = {
		QT(basic_put_get_delete), QT(reopen_recovers_log), QT(lock_busy), QT(no_create),
		QT(limits), QT(batch_atomic), QT(model_flush_compact_reopen),
		QT(background_compaction_bounds_level0), QT(iter_seek_and_snapshot),
		QT(big_values), QT(concurrent_writers_group_commit), QT(sync_batch_mode),
		QT(no_bloom_no_cache_no_compression), QT(keyspace_range_scan),
		QT(memtable_filter_no_false_negative), QT(reads_see_acknowledged_writes_during_fill),
		QT(memtable_flush_points_jitter),
	};
	return qtest_run(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
