/*
 * test_coord_replica.c - the replica store: sibling sets in a real storage
 * engine, read-modify-write under concurrency, corruption handling, the
 * encodings and digests handed out with a write.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica.h"
#include "lsm/lsm.h"
#include "qtest.h"
#include "util/qerr.h"

static lsm_db *open_db(void)
{
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	lsm_db *db = NULL;
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/db", qtest_tmpdir);
	ASSERT_OK(lsm_open(dir, &o, &db));
	return db;
}

static obj_write wr(const char *v, int64_t t)
{
	obj_write w = {0, q_slice_str(v), NULL, t};
	return w;
}

QTEST(update_get_and_context)
{
	lsm_db *db = open_db();
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	obj_set *s = NULL;
	ASSERT_EQ(replica_get(r, q_slice_str("k"), &s), Q_ENOTFOUND);
	ASSERT(s == NULL);
	obj_write w = wr("v1", 10);
	obj_set *s1 = NULL;
	ASSERT_OK(replica_update(r, q_slice_str("k"), NULL, &w, &s1));
	ASSERT_OK(replica_get(r, q_slice_str("k"), &s));
	ASSERT(obj_set_equal(s, s1));
	obj_set_free(s);
	/* a write with the read context replaces; a blind one adds a sibling */
	w = wr("v2", 20);
	obj_set *s2 = NULL;
	ASSERT_OK(replica_update(r, q_slice_str("k"), obj_set_ctx(s1), &w, &s2));
	ASSERT_EQ(obj_set_live_count(s2), 1);
	w = wr("v3", 30);
	obj_set *s3 = NULL;
	ASSERT_OK(replica_update(r, q_slice_str("k"), NULL, &w, &s3));
	ASSERT_EQ(obj_set_live_count(s3), 2);
	/* user keys live under the data prefix */
	q_buf raw = Q_BUF_INIT;
	uint8_t lk[2] = {LSM_KS_DATA, 'k'};
	ASSERT_OK(lsm_get(db, q_slice_make(lk, 2), &raw));
	q_buf raw2 = Q_BUF_INIT;
	ASSERT_OK(replica_get_raw(r, q_slice_str("k"), &raw2));
	ASSERT_EQ(raw.len, raw2.len);
	ASSERT_MEMEQ(raw.p, raw2.p, raw.len);
	q_buf_free(&raw);
	q_buf_free(&raw2);
	obj_set_free(s1);
	obj_set_free(s2);
	obj_set_free(s3);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

QTEST(merge_is_idempotent_and_skips_unchanged)
{
	lsm_db *db = open_db();
	replica *a = NULL, *b = NULL;
	ASSERT_OK(replica_new(db, "a", &a));
	ASSERT_OK(replica_new(db, "b", &b));
	obj_write w = wr("x", 5);
	obj_set *s = NULL, *m = NULL;
	ASSERT_OK(replica_update(a, q_slice_str("key"), NULL, &w, &s));
	ASSERT_OK(replica_merge(b, q_slice_str("other"), s, &m));
	ASSERT(obj_set_equal(m, s));
	obj_set_free(m);
	replica_stats st;
	replica_get_stats(b, &st);
	ASSERT_U64_EQ(st.merges_unchanged, 0);
	ASSERT_OK(replica_merge(b, q_slice_str("other"), s, &m));
	obj_set_free(m);
	replica_get_stats(b, &st);
	ASSERT_U64_EQ(st.merges, 2);
	ASSERT_U64_EQ(st.merges_unchanged, 1);
	obj_set_free(s);
	replica_free(a);
	replica_free(b);
	ASSERT_OK(lsm_close(db));
}

typedef struct wctx {
	replica *r;
	int id;
	int n;
} wctx;

static void *writer(void *arg)
{
	wctx *c = arg;
	char v[32];
	for (int i = 0; i < c->n; i++) {
		snprintf(v, sizeof(v), "w%d-%d", c->id, i);
		obj_write w = wr(v, 100 + i);
		/* blind writes: each must survive as a sibling */
		if (replica_update(c->r, q_slice_str("hot"), NULL, &w, NULL) != 0)
			abort();
	}
	return NULL;
}

QTEST(concurrent_writers_lose_nothing)
{
	lsm_db *db = open_db();
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	enum { T = 4, N = 25 };
	pthread_t th[T];
	wctx c[T];
	for (int i = 0; i < T; i++) {
		c[i] = (wctx){r, i, N};
		ASSERT_OK(pthread_create(&th[i], NULL, writer, &c[i]));
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	obj_set *s = NULL;
	ASSERT_OK(replica_get(r, q_slice_str("hot"), &s));
	ASSERT_EQ(obj_set_live_count(s), T * N);
	ASSERT_U64_EQ(obj_ctx_get(obj_set_ctx(s), "n1"), T * N);
	obj_set_free(s);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

QTEST(corrupt_value_is_reported_and_healed_by_merge)
{
	lsm_db *db = open_db();
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	uint8_t lk[4] = {LSM_KS_DATA, 'b', 'a', 'd'};
	ASSERT_OK(lsm_put(db, q_slice_make(lk, 4), q_slice_str("not an object")));
	obj_set *s = NULL;
	ASSERT_EQ(replica_get(r, q_slice_str("bad"), &s), Q_ECORRUPT);
	obj_write w = wr("v", 1);
	ASSERT_EQ(replica_update(r, q_slice_str("bad"), NULL, &w, NULL), Q_ECORRUPT);
	obj_set *good = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, "n2", &w, NULL, 1, &good));
	ASSERT_OK(replica_merge(r, q_slice_str("bad"), good, NULL));
	ASSERT_OK(replica_get(r, q_slice_str("bad"), &s));
	ASSERT(obj_set_equal(s, good));
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT(st.corrupt >= 2);
	obj_set_free(s);
	obj_set_free(good);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

QTEST(survives_reopen)
{
	lsm_db *db = open_db();
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		obj_write w = wr(k, i);
		ASSERT_OK(replica_update(r, q_slice_str(k), NULL, &w, NULL));
	}
	replica_free(r);
	ASSERT_OK(lsm_close(db));
	db = open_db();
	ASSERT_OK(replica_new(db, "n1", &r));
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		obj_set *s = NULL;
		ASSERT_OK(replica_get(r, q_slice_str(k), &s));
		obj_sibling sb;
		obj_set_sibling(s, 0, &sb);
		ASSERT_EQ(sb.value.n, strlen(k));
		ASSERT_MEMEQ(sb.value.p, k, sb.value.n);
		obj_set_free(s);
	}
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

/* What the after hook saw last (old and new digests, 0 = none). */
typedef struct hook_log {
	int calls;
	uint64_t old_d, new_d;
} hook_log;

static void log_after(void *arg, q_slice key, const uint64_t *old_digest,
		      const uint64_t *new_digest, const obj_set *stored)
{
	(void)key;
	hook_log *h = arg;
	h->calls++;
	h->old_d = old_digest ? *old_digest : 0;
	h->new_d = new_digest ? *new_digest : 0;
	if (new_digest && *new_digest != obj_set_digest(stored))
		abort();
}

/* The digest of the stored bytes as read from the engine. */
static uint64_t stored_digest(replica *r, const char *key)
{
	q_buf raw = Q_BUF_INIT;
	obj_set *s = NULL;
	ASSERT_OK(replica_get_raw(r, q_slice_str(key), &raw));
	ASSERT_OK(obj_set_decode(raw.p, raw.len, &s));
	uint64_t d = obj_set_digest(s);
	ASSERT_U64_EQ(d, obj_set_digest_encoded(s, raw.p, raw.len));
	obj_set_free(s);
	q_buf_free(&raw);
	return d;
}

/* replica_update_enc hands out exactly the bytes it stored;
 * replica_merge_digest the digest of the stored result, changed or not;
 * the after hook gets the previous set's digest (taken from the bytes read,
 * not from encoding the set again), and replica_remove_if/drop_if match on
 * it. */
QTEST(encodings_and_digests_of_what_is_stored)
{
	lsm_db *db = open_db();
	replica *a = NULL, *b = NULL;
	ASSERT_OK(replica_new(db, "a", &a));
	ASSERT_OK(replica_new(db, "b", &b));
	hook_log hl = {0, 0, 0};
	replica_hooks h = {.batch = NULL, .after = log_after, .arg = &hl};
	replica_set_hooks(a, &h);
	replica_set_hooks(b, &h);

	q_buf enc = Q_BUF_INIT, raw = Q_BUF_INIT, again = Q_BUF_INIT;
	ASSERT_OK(q_buf_append(&enc, "stale", 5)); /* reset by the call */
	obj_write w = wr("one", 10);
	obj_set *s1 = NULL;
	ASSERT_OK(replica_update_enc(a, q_slice_str("k"), NULL, &w, &s1, &enc));
	ASSERT_OK(replica_get_raw(a, q_slice_str("k"), &raw));
	ASSERT_EQ(enc.len, raw.len);
	ASSERT_MEMEQ(enc.p, raw.p, raw.len);
	ASSERT_OK(obj_set_encode(s1, &again));
	ASSERT_EQ(again.len, enc.len);
	ASSERT_MEMEQ(again.p, enc.p, enc.len);
	ASSERT_EQ(hl.calls, 1);
	ASSERT_U64_EQ(hl.old_d, 0);
	uint64_t d1 = stored_digest(a, "k");
	ASSERT_U64_EQ(hl.new_d, d1);

	/* a second write: the hook's old digest is the first set's */
	w = wr("two", 20);
	obj_set *s2 = NULL;
	ASSERT_OK(replica_update_enc(a, q_slice_str("k"), NULL, &w, &s2, &enc));
	ASSERT_EQ(hl.calls, 2);
	ASSERT_U64_EQ(hl.old_d, d1);
	uint64_t d2 = stored_digest(a, "k");
	ASSERT_U64_EQ(hl.new_d, d2);
	ASSERT(d1 != d2);

	/* a merge that changes the stored set, then one that does not */
	obj_set *m = NULL;
	uint64_t md = 0;
	ASSERT_OK(replica_merge_digest(b, q_slice_str("k2"), s1, &m, &md));
	ASSERT_U64_EQ(md, obj_set_digest(m));
	ASSERT_U64_EQ(md, stored_digest(b, "k2"));
	obj_set_free(m);
	ASSERT_OK(replica_merge_digest(b, q_slice_str("k2"), s2, NULL, &md));
	ASSERT_U64_EQ(md, stored_digest(b, "k2"));
	ASSERT_U64_EQ(hl.old_d, obj_set_digest(s1));
	int calls = hl.calls;
	uint64_t md2 = 0;
	ASSERT_OK(replica_merge_digest(b, q_slice_str("k2"), s1, NULL, &md2));
	ASSERT_EQ(hl.calls, calls); /* unchanged: nothing written */
	ASSERT_U64_EQ(md2, md);

	/* removal matches on the stored digest */
	ASSERT_EQ(replica_drop_if(b, q_slice_str("k2"), md ^ 1), 0);
	ASSERT_EQ(replica_drop_if(b, q_slice_str("k2"), md), 1);
	ASSERT_U64_EQ(hl.old_d, md);
	ASSERT_U64_EQ(hl.new_d, 0);
	ASSERT_EQ(replica_get_raw(b, q_slice_str("k2"), &raw), Q_ENOTFOUND);

	q_buf_free(&enc);
	q_buf_free(&raw);
	q_buf_free(&again);
	obj_set_free(s1);
	obj_set_free(s2);
	replica_free(a);
	replica_free(b);
	ASSERT_OK(lsm_close(db));
}

QTEST_MAIN(QT(update_get_and_context), QT(merge_is_idempotent_and_skips_unchanged),
	   QT(encodings_and_digests_of_what_is_stored),
	   QT(concurrent_writers_lose_nothing), QT(corrupt_value_is_reported_and_healed_by_merge),
	   QT(survives_reopen))
