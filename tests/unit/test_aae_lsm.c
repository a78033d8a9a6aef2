/* Unit tests: src/aae/aae_lsm (bucket index, keysrc, rebuild from LSM
 * scans) on real stores: objects are real sibling sets (src/object) in a
 * real storage engine (src/lsm) in the test's temporary directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_lsm.h"
#include "lsm/lsm.h"
#include "object/obj.h"
#include "qtest.h"
#include "ring/ring.h"
#include "util/qerr.h"

#define HALF (1ULL << 63)

typedef struct store {
	lsm_db *db;
	aae_tree *t[2]; /* ranges (0, HALF] and (HALF, 0] */
} store;

/* The number in a test key ("key-0000123", "file/00123"); keys in slices
 * are not NUL-terminated. */
static int key_index(q_slice k)
{
	char tmp[32];
	size_t n = k.n < sizeof tmp - 1 ? k.n : sizeof tmp - 1;
	memcpy(tmp, k.p, n);
	tmp[n] = 0;
	return n > 5 ? atoi(tmp + 5) : -1;
}

static void st_open(store *s, const char *name)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/%s", qtest_tmpdir, name);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	ASSERT_OK(lsm_open(dir, &o, &s->db));
	ASSERT_OK(aae_tree_new(3, 0, HALF, &s->t[0]));
	ASSERT_OK(aae_tree_new(3, HALF, 0, &s->t[1]));
}

static void st_close(store *s)
{
	aae_tree_free(s->t[0]);
	aae_tree_free(s->t[1]);
	ASSERT_OK(lsm_close(s->db));
}

static aae_tree *tree_of(store *s, q_slice key)
{
	ring_range r0 = {0, HALF};
	return ring_range_contains(r0, ring_key_hash(key.p, key.n)) ? s->t[0] : s->t[1];
}

/* The write path as the node will wire it: data and index in one batch,
 * then the tree of the key's range. */
static uint64_t st_write(store *s, const char *k, const char *val, int tombstone)
{
	q_slice key = q_slice_str(k);
	obj_write w = {tombstone, q_slice_str(val), NULL, 1000};
	obj_set *set;
	ASSERT_OK(obj_set_update(NULL, NULL, "n1", &w, NULL, 1000, &set));
	q_buf enc = Q_BUF_INIT, lk = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(set, &enc));
	uint64_t d = obj_set_digest(set);
	ASSERT_OK(q_buf_append_byte(&lk, LSM_KS_DATA));
	ASSERT_OK(q_buf_append(&lk, key.p, key.n));
	lsm_batch *b = lsm_batch_new();
	ASSERT(b);
	/* the old digest, for the tree update */
	q_buf old = Q_BUF_INIT;
	uint64_t od = 0;
	int had = lsm_get(s->db, q_buf_slice(&lk), &old) == 0;
	if (had) {
		obj_set *os;
		ASSERT_OK(obj_set_decode(old.p, old.len, &os));
		od = obj_set_digest(os);
		obj_set_free(os);
	}
	ASSERT_OK(lsm_batch_put(b, q_buf_slice(&lk), q_buf_slice(&enc)));
	ASSERT_OK(aae_lsm_index_batch(b, key, &d));
	ASSERT_OK(lsm_write(s->db, b));
	ASSERT_OK(aae_tree_update(tree_of(s, key), key, had ? &od : NULL, &d));
	lsm_batch_free(b);
	obj_set_free(set);
	q_buf_free(&enc);
	q_buf_free(&lk);
	q_buf_free(&old);
	return d;
}

/* Physical removal (e.g. a reaped tombstone). */
static void st_remove(store *s, const char *k, uint64_t d)
{
	q_slice key = q_slice_str(k);
	q_buf lk = Q_BUF_INIT;
	ASSERT_OK(q_buf_append_byte(&lk, LSM_KS_DATA));
	ASSERT_OK(q_buf_append(&lk, key.p, key.n));
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_delete(b, q_buf_slice(&lk)));
	ASSERT_OK(aae_lsm_index_batch(b, key, NULL));
	ASSERT_OK(lsm_write(s->db, b));
	ASSERT_OK(aae_tree_remove(tree_of(s, key), key, d));
	lsm_batch_free(b);
	q_buf_free(&lk);
}

static void assert_same_tree(aae_tree *a, aae_tree *b)
{
	ASSERT_U64_EQ(aae_tree_root(a), aae_tree_root(b));
	ASSERT_EQ(aae_tree_keys(a), aae_tree_keys(b));
}

static char kbuf[32];
static const char *key_name(int i)
{
	snprintf(kbuf, sizeof kbuf, "file/%05d", i);
	return kbuf;
}

QTEST(rebuild_from_index_and_data_equals_incremental)
{
	store s;
	st_open(&s, "a");
	uint64_t dig[1500];
	for (int i = 0; i < 1500; i++)
		dig[i] = st_write(&s, key_name(i), i % 7 ? "value" : "", i % 7 == 0);
	for (int i = 0; i < 1500; i += 3) /* overwrite some */
		dig[i] = st_write(&s, key_name(i), "second", 0);
	for (int i = 1; i < 1500; i += 50) /* remove some */
		st_remove(&s, key_name(i), dig[i]);
	ASSERT_OK(lsm_put(s.db, q_slice_str("\x03zz-other-meta"), q_slice_str("x")));
	ASSERT(aae_tree_keys(s.t[0]) > 500 && aae_tree_keys(s.t[1]) > 500);

	for (int from = 0; from < 2; from++) {
		aae_tree *fresh[2];
		ASSERT_OK(aae_tree_new(3, 0, HALF, &fresh[0]));
		ASSERT_OK(aae_tree_new(3, HALF, 0, &fresh[1]));
		aae_lsm_rebuild_stats st;
		ASSERT_OK(aae_lsm_rebuild(s.db, fresh, 2, (aae_lsm_source)from, NULL, &st));
		ASSERT_EQ(st.keys_scanned, 1500 - 30);
		ASSERT_EQ(st.keys_added, 1500 - 30);
		ASSERT_EQ(st.bad_values, 0);
		ASSERT_EQ(aae_tree_ready(fresh[0]), 1);
		assert_same_tree(fresh[0], s.t[0]);
		assert_same_tree(fresh[1], s.t[1]);
		aae_tree_free(fresh[0]);
		aae_tree_free(fresh[1]);
	}
	/* a rate limiter is charged with every byte the scan read */
	{
		aae_rate rl;
		ASSERT_OK(aae_rate_init(&rl, 1ULL << 40, 0, 0)); /* high: no real wait */
		aae_tree *f;
		ASSERT_OK(aae_tree_new(3, 0, HALF, &f));
		aae_lsm_rebuild_stats st;
		ASSERT_OK(aae_lsm_rebuild(s.db, &f, 1, AAE_LSM_FROM_DATA, &rl, &st));
		ASSERT_U64_EQ(aae_rate_total(&rl), st.bytes_read);
		ASSERT(st.bytes_read > 1500 * 10);
		aae_rate_destroy(&rl);
		aae_tree_free(f);
	}
	/* after a flush and compaction (data in tables, not the memtable) */
	ASSERT_OK(lsm_compact_all(s.db));
	aae_tree *f1;
	ASSERT_OK(aae_tree_new(3, HALF, 0, &f1));
	ASSERT_OK(aae_lsm_rebuild(s.db, &f1, 1, AAE_LSM_FROM_DATA, NULL, NULL));
	assert_same_tree(f1, s.t[1]);
	aae_tree_free(f1);
	st_close(&s);
}

QTEST(rebuild_skips_undecodable_values)
{
	store s;
	st_open(&s, "a");
	for (int i = 0; i < 100; i++)
		st_write(&s, key_name(i), "v", 0);
	ASSERT_OK(lsm_put(s.db, q_slice_str("\x01garbage"), q_slice_str("not an object")));
	aae_tree *f;
	ASSERT_OK(aae_tree_new(3, 0, 0, &f)); /* whole circle */
	aae_lsm_rebuild_stats st;
	ASSERT_OK(aae_lsm_rebuild(s.db, &f, 1, AAE_LSM_FROM_DATA, NULL, &st));
	ASSERT_EQ(st.bad_values, 1);
	ASSERT_EQ(aae_tree_keys(f), 100);
	aae_tree_free(f);
	st_close(&s);
}

typedef struct collect {
	int n;
	int seen[2000];
} collect;

static int collect_emit(void *ectx, q_slice key, uint64_t digest)
{
	collect *c = ectx;
	(void)digest;
	int i = key_index(key);
	if (i < 0 || i >= 2000 || c->seen[i])
		return -EINVAL;
	c->seen[i] = 1;
	c->n++;
	return 0;
}

QTEST(keysrc_lists_exactly_a_bucket)
{
	store s;
	st_open(&s, "a");
	for (int i = 0; i < 2000; i++)
		st_write(&s, key_name(i), "v", 0);
	aae_keysrc src;
	aae_lsm_keysrc(&src, s.db);
	for (unsigned depth = 1; depth <= 4; depth += 3) {
		for (uint32_t b = 0; b < 20 && b < aae_level_width(depth); b++) {
			collect *c = calloc(1, sizeof *c);
			ASSERT(c);
			ASSERT_OK(src.list(src.ctx, HALF, 0, depth, b, collect_emit, c));
			int want = 0;
			ring_range rr = {HALF, 0};
			for (int i = 0; i < 2000; i++) {
				q_slice k = q_slice_str(key_name(i));
				int in = aae_bucket_of(k, depth) == b &&
					 ring_range_contains(rr, ring_key_hash(k.p, k.n));
				ASSERT_EQ(c->seen[i], in);
				want += in;
			}
			ASSERT_EQ(c->n, want);
			free(c);
		}
	}
	ASSERT_EQ(src.list(src.ctx, 0, 0, 1, 16, collect_emit, NULL), -EINVAL);
	st_close(&s);
}

static aae_exchange *exchange(aae_tree *a, aae_keysrc *asrc, aae_tree *b, aae_keysrc *bsrc)
{
	aae_exchange *x;
	ASSERT_OK(aae_exchange_new(a, asrc, NULL, 9, &x));
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	for (int i = 0; i < 1000; i++) {
		q_buf_reset(&req);
		if (aae_exchange_next(x, &req) <= 0)
			break;
		q_buf_reset(&resp);
		ASSERT_OK(aae_serve(b, bsrc, req.p, req.len, 64 * 1024, &resp));
		if (aae_exchange_consume(x, resp.p, resp.len) < 0)
			break;
	}
	q_buf_free(&req);
	q_buf_free(&resp);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	return x;
}

QTEST(exchange_between_two_stores)
{
	store a, b;
	st_open(&a, "a");
	st_open(&b, "b");
	for (int i = 0; i < 1500; i++) {
		st_write(&a, key_name(i), "same", 0);
		st_write(&b, key_name(i), "same", 0);
	}
	/* a misses 5 keys, b has 5 other values */
	for (int i = 1500; i < 1505; i++)
		st_write(&b, key_name(i), "only-b", 0);
	for (int i = 0; i < 5; i++)
		st_write(&b, key_name(i * 100), "changed", 0);
	for (int r = 0; r < 2; r++) {
		aae_tree_set_ready(a.t[r], 1);
		aae_tree_set_ready(b.t[r], 1);
	}
	aae_keysrc as, bs;
	aae_lsm_keysrc(&as, a.db);
	aae_lsm_keysrc(&bs, b.db);
	size_t total = 0;
	for (int r = 0; r < 2; r++) {
		aae_exchange *x = exchange(a.t[r], &as, b.t[r], &bs);
		for (size_t j = 0; j < aae_exchange_ndiffs(x); j++) {
			aae_diff d;
			aae_exchange_diff(x, j, &d);
			int i = key_index(d.key);
			ASSERT((i >= 1500 && i < 1505 && !d.local_has && d.remote_has) ||
			       (i % 100 == 0 && i < 500 && d.local_has && d.remote_has));
		}
		aae_exchange_stats st;
		aae_exchange_get_stats(x, &st);
		ASSERT_EQ(st.leaves_fixed, 0);
		total += aae_exchange_ndiffs(x);
		aae_exchange_free(x);
	}
	ASSERT_EQ(total, 10);
	st_close(&a);
	st_close(&b);
}

QTEST(tree_survives_restart)
{
	store s;
	st_open(&s, "a");
	for (int i = 0; i < 300; i++)
		st_write(&s, key_name(i), "v", 0);
	char path[600];
	snprintf(path, sizeof path, "%s/tree0", qtest_tmpdir);
	ASSERT_OK(aae_tree_save(s.t[0], q_env_posix(), path, 1));
	uint64_t root = aae_tree_root(s.t[0]);
	st_close(&s);
	st_open(&s, "a");
	aae_tree *loaded;
	ASSERT_OK(aae_tree_load(q_env_posix(), path, 3, 0, HALF, 1, &loaded));
	ASSERT_U64_EQ(aae_tree_root(loaded), root);
	/* and a rebuild from the reopened store agrees */
	ASSERT_OK(aae_lsm_rebuild(s.db, &s.t[0], 1, AAE_LSM_FROM_INDEX, NULL, NULL));
	ASSERT_U64_EQ(aae_tree_root(s.t[0]), root);
	aae_tree_free(loaded);
	st_close(&s);
}

QTEST_MAIN(QT(rebuild_from_index_and_data_equals_incremental),
	   QT(rebuild_skips_undecodable_values), QT(keysrc_lists_exactly_a_bucket),
	   QT(exchange_between_two_stores), QT(tree_survives_restart))
