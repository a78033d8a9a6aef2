/*
 * test_coord_replica.c - the replica store: sibling sets in a real storage
 * engine, read-modify-write under concurrency, corruption handling, the
 * encodings and digests handed out with a write, the forms that never
 * block (same bytes as the blocking ones; -EAGAIN on a held stripe or an
 * engine that would wait, with nothing changed), a store that refuses
 * writes reported in the log once per change of state.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/replica.h"
#include "lsm/lsm.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

/* nowait_page_cache for the next open_db_at */
static int page_cache = 1;

static lsm_db *open_db_at(const char *name, lsm_sync sync)
{
	lsm_options o;
	lsm_options_default(&o);
	o.sync = sync;
	o.nowait_page_cache = page_cache;
	lsm_db *db = NULL;
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/%s", qtest_tmpdir, name);
	ASSERT_OK(lsm_open(dir, &o, &db));
	return db;
}

static lsm_db *open_db(void)
{
	return open_db_at("db", LSM_SYNC_NONE);
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

/* The digests the after hook saw, in order. */
typedef struct digest_log {
	uint64_t d[2048];
	int n;
} digest_log;

static void log_digests(void *arg, q_slice key, const uint64_t *old_digest,
			const uint64_t *new_digest, const obj_set *stored)
{
	(void)key;
	(void)stored;
	digest_log *l = arg;
	if (l->n + 2 <= (int)(sizeof(l->d) / sizeof(l->d[0]))) {
		l->d[l->n++] = old_digest ? *old_digest : 0;
		l->d[l->n++] = new_digest ? *new_digest : 0;
	}
}

/* One step of the workload below on replica r: a nowait form first when
 * nowait is set (the blocking form after an -EAGAIN, as the coordinator
 * does). Returns the encoding or digest handed out in out. */
static void step(replica *r, int nowait, int i, const obj_set *peer_set, q_buf *out,
		 int *loop_done)
{
	char k[16];
	snprintf(k, sizeof(k), "k%d", i % 37);
	q_slice key = q_slice_str(k);
	char v[32];
	snprintf(v, sizeof(v), "v%d", i);
	obj_write w = wr(v, 1000 + i);
	int rc = -EAGAIN;
	replica_retry *t = NULL;
	q_buf_reset(out);
	if (i % 3 == 2) {
		uint64_t d = 0;
		if (nowait)
			rc = replica_merge_digest_nowait(r, key, peer_set, NULL, &d, &t);
		*loop_done += rc != -EAGAIN;
		if (rc == -EAGAIN)
			rc = replica_merge_digest_retry(r, key, peer_set, NULL, &d, t);
		ASSERT_OK(rc);
		ASSERT_OK(q_put_fixed64(out, d));
	} else {
		/* every other update with the context of what is stored */
		obj_set *cur = NULL;
		if (i % 2) {
			int grc = nowait ? replica_get_nowait(r, key, &cur) : -EAGAIN;
			if (grc == -EAGAIN)
				grc = replica_get(r, key, &cur);
			ASSERT(grc == 0 || grc == Q_ENOTFOUND);
		}
		if (nowait)
			rc = replica_update_enc_nowait(r, key, cur ? obj_set_ctx(cur) : NULL, &w, NULL,
						       out, &t);
		*loop_done += rc != -EAGAIN;
		if (rc == -EAGAIN)
			rc = replica_update_enc_retry(r, key, cur ? obj_set_ctx(cur) : NULL, &w, NULL,
						      out, t);
		ASSERT_OK(rc);
		obj_set_free(cur);
	}
}

/* The same workload through the nowait forms (falling back on -EAGAIN)
 * and through the blocking forms stores the same bytes, hands out the same
 * encodings and digests and tells the hooks the same digests. A flush in
 * the middle leaves the keys in a table whose blocks are not cached, so
 * the nowait reads give -EAGAIN until a blocking read caches them. */
QTEST(nowait_forms_store_what_blocking_forms_store)
{
	/* nowait reads only from the block cache: a flushed key is then
	 * never answered from memory until a blocking read cached it */
	page_cache = 0;
	lsm_db *da = open_db_at("a", LSM_SYNC_NONE), *db = open_db_at("b", LSM_SYNC_NONE);
	lsm_db *dp = open_db_at("p", LSM_SYNC_NONE);
	replica *ra = NULL, *rb = NULL, *rp = NULL;
	ASSERT_OK(replica_new(da, "n1", &ra));
	ASSERT_OK(replica_new(db, "n1", &rb));
	ASSERT_OK(replica_new(dp, "n2", &rp)); /* a peer whose sets are merged in */
	static digest_log la, lb;
	replica_hooks ha = {.after = log_digests, .arg = &la};
	replica_hooks hb = {.after = log_digests, .arg = &lb};
	replica_set_hooks(ra, &ha);
	replica_set_hooks(rb, &hb);
	q_buf oa = Q_BUF_INIT, ob = Q_BUF_INIT;
	int loop_done = 0, unused = 0, fell_back = 0;
	for (int i = 0; i < 300; i++) {
		obj_set *ps = NULL;
		if (i % 3 == 2) {
			char v[32];
			snprintf(v, sizeof(v), "p%d", i);
			obj_write w = wr(v, 5000 + i);
			char k[16];
			snprintf(k, sizeof(k), "k%d", i % 37);
			ASSERT_OK(replica_update(rp, q_slice_str(k), NULL, &w, &ps));
		}
		if (i == 150) {
			ASSERT_OK(lsm_flush(da));
			ASSERT_OK(lsm_flush(db));
			/* cold: a nowait read of a flushed key needs the disk */
			obj_set *t = NULL;
			ASSERT_EQ(replica_get_nowait(rb, q_slice_str("k0"), &t), -EAGAIN);
			q_buf raw = Q_BUF_INIT;
			ASSERT_EQ(replica_get_raw_nowait(rb, q_slice_str("k0"), &raw), -EAGAIN);
			q_buf_free(&raw);
			fell_back = 1;
		}
		step(ra, 0, i, ps, &oa, &unused);
		step(rb, 1, i, ps, &ob, &loop_done);
		ASSERT_EQ(oa.len, ob.len);
		ASSERT_MEMEQ(oa.p, ob.p, oa.len);
		obj_set_free(ps);
	}
	ASSERT(fell_back);
	ASSERT(unused == 0);
	ASSERT(loop_done > 100); /* most steps were done by the nowait forms */
	ASSERT(loop_done < 300); /* and some fell back */
	for (int i = 0; i < 37; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		q_buf a = Q_BUF_INIT, b = Q_BUF_INIT;
		ASSERT_OK(replica_get_raw(ra, q_slice_str(k), &a));
		ASSERT_OK(replica_get_raw(rb, q_slice_str(k), &b));
		ASSERT_EQ(a.len, b.len);
		ASSERT_MEMEQ(a.p, b.p, a.len);
		q_buf_free(&a);
		q_buf_free(&b);
	}
	ASSERT_EQ(la.n, lb.n);
	ASSERT_MEMEQ(la.d, lb.d, (size_t)la.n * sizeof(uint64_t));
	replica_stats sa, sb;
	replica_get_stats(ra, &sa);
	replica_get_stats(rb, &sb);
	ASSERT_U64_EQ(sa.updates, sb.updates);
	ASSERT_U64_EQ(sa.merges, sb.merges);
	ASSERT_U64_EQ(sa.merges_unchanged, sb.merges_unchanged);
	q_buf_free(&oa);
	q_buf_free(&ob);
	replica_free(ra);
	replica_free(rb);
	replica_free(rp);
	ASSERT_OK(lsm_close(da));
	ASSERT_OK(lsm_close(db));
	ASSERT_OK(lsm_close(dp));
}

/* A batch hook that holds the write of key "held" (with its stripe
 * locked) until the test opens the gate. */
typedef struct hold_gate {
	atomic_int entered, open;
} hold_gate;

static int hold_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	(void)b;
	(void)nd;
	hold_gate *g = arg;
	if (key.n == 4 && !memcmp(key.p, "held", 4)) {
		atomic_store(&g->entered, 1);
		for (int i = 0; i < 20000 && !atomic_load(&g->open); i++)
			q_sleep_ms(1);
	}
	return 0;
}

typedef struct bg_update {
	replica *r;
	int rc;
} bg_update;

static void *update_thread(void *arg)
{
	bg_update *u = arg;
	obj_write w = wr("blocking", 1);
	u->rc = replica_update(u->r, q_slice_str("held"), NULL, &w, NULL);
	return NULL;
}

/* While another thread's read-modify-write holds a key's stripe, the
 * nowait writes of that key (and of any key of the stripe) give -EAGAIN
 * and change nothing; reads and keys of other stripes go on. */
QTEST(nowait_write_again_while_the_stripe_is_held)
{
	lsm_db *db = open_db();
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	hold_gate g = {0, 0};
	replica_hooks h = {.batch = hold_batch, .arg = &g};
	replica_set_hooks(r, &h);
	replica *r2 = NULL; /* another node's set, merged in below */
	ASSERT_OK(replica_new(db, "n2", &r2));
	obj_write w0 = wr("before", 0);
	ASSERT_OK(replica_update(r2, q_slice_str("other"), NULL, &w0, NULL));
	/* a key of another stripe */
	char free_key[16] = "";
	for (int i = 0; i < 1000 && !free_key[0]; i++) {
		char k[16];
		snprintf(k, sizeof(k), "f%d", i);
		if (replica_stripe(q_slice_str(k)) != replica_stripe(q_slice_str("held")))
			snprintf(free_key, sizeof(free_key), "%s", k);
	}
	ASSERT(free_key[0]);
	bg_update u = {r, -1};
	pthread_t t;
	ASSERT_EQ(pthread_create(&t, NULL, update_thread, &u), 0);
	int held = 0;
	for (int i = 0; i < 10000 && !(held = atomic_load(&g.entered)); i++)
		q_sleep_ms(1);
	replica_stats s0, s1;
	replica_get_stats(r, &s0);
	obj_write w = wr("nowait", 2);
	int urc = held ? replica_update_enc_nowait(r, q_slice_str("held"), NULL, &w, NULL, NULL, NULL) : 0;
	obj_set *in = NULL;
	ASSERT_OK(replica_get(r, q_slice_str("other"), &in));
	int mrc = held ? replica_merge_digest_nowait(r, q_slice_str("held"), in, NULL, NULL, NULL) : 0;
	obj_set *got = NULL;
	int grc = held ? replica_get_nowait(r, q_slice_str("held"), &got) : 0;
	int frc = held ? replica_update_enc_nowait(r, q_slice_str(free_key), NULL, &w, NULL, NULL,
						   NULL)
		       : -1;
	replica_get_stats(r, &s1);
	atomic_store(&g.open, 1);
	pthread_join(t, NULL);
	ASSERT(held);
	ASSERT_EQ(urc, -EAGAIN);
	ASSERT_EQ(mrc, -EAGAIN);
	ASSERT_EQ(grc, Q_ENOTFOUND); /* the held write is not done yet */
	ASSERT_OK(frc);
	ASSERT_U64_EQ(s1.updates, s0.updates + 1); /* the free key's only */
	ASSERT_U64_EQ(s1.merges, s0.merges);
	ASSERT_OK(u.rc);
	/* only the blocking write is stored; the stripe is free again */
	ASSERT_OK(replica_get(r, q_slice_str("held"), &got));
	ASSERT_EQ(obj_set_count(got), 1);
	obj_set_free(got);
	ASSERT_OK(replica_merge_digest_nowait(r, q_slice_str("held"), in, &got, NULL, NULL));
	ASSERT_EQ(obj_set_count(got), 2);
	obj_set_free(got);
	obj_set_free(in);
	replica_free(r);
	replica_free(r2);
	ASSERT_OK(lsm_close(db));
}

/* Under sync=always every engine write waits for an fsync: the nowait
 * writes give -EAGAIN without storing, counting or calling the hooks;
 * reads from memory still answer. */
QTEST(nowait_write_again_under_sync_always)
{
	lsm_db *db = open_db_at("db", LSM_SYNC_ALWAYS);
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	hook_log hl = {0, 0, 0};
	replica_hooks h = {.after = log_after, .arg = &hl};
	replica_set_hooks(r, &h);
	obj_write w = wr("v", 1);
	q_buf enc = Q_BUF_INIT, raw = Q_BUF_INIT;
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("k"), NULL, &w, NULL, &enc, NULL), -EAGAIN);
	obj_set *s = NULL;
	ASSERT_OK(replica_update(r, q_slice_str("src"), NULL, &w, &s));
	ASSERT_EQ(hl.calls, 1);
	ASSERT_EQ(replica_merge_digest_nowait(r, q_slice_str("k"), s, NULL, NULL, NULL), -EAGAIN);
	ASSERT_EQ(hl.calls, 1);
	ASSERT_EQ(replica_get_raw(r, q_slice_str("k"), &raw), Q_ENOTFOUND);
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.updates, 1);
	ASSERT_U64_EQ(st.merges, 0);
	ASSERT_OK(replica_get_raw_nowait(r, q_slice_str("src"), &raw));
	/* a merge that changes nothing writes nothing: answered without waiting */
	uint64_t d = 0;
	ASSERT_OK(replica_merge_digest_nowait(r, q_slice_str("src"), s, NULL, &d, NULL));
	ASSERT_U64_EQ(d, obj_set_digest(s));
	obj_set_free(s);
	q_buf_free(&enc);
	q_buf_free(&raw);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

/* The node log goes to qtest_tmpdir/node.log (its path in path) from now
 * on; q_log_set_stream(stderr) and fclose undo it. */
static FILE *capture_log(char *path, size_t cap)
{
	snprintf(path, cap, "%s/node.log", qtest_tmpdir);
	FILE *lf = fopen(path, "w");
	ASSERT(lf != NULL);
	q_log_set_stream(lf);
	return lf;
}

/* The store at qtest_tmpdir/db opened with o and a replica "n1" over it. */
static replica *open_replica_in_tmp(const lsm_options *o, lsm_db **db)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/db", qtest_tmpdir);
	*db = NULL;
	ASSERT_OK(lsm_open(dir, o, db));
	replica *r = NULL;
	ASSERT_OK(replica_new(*db, "n1", &r));
	return r;
}

/*
 * A full disk met when the engine opens the next commit log at a memtable
 * switch: the engine fails the write with ENOSPC and logs nothing of it (a
 * replica of a cluster then failed every write for a minute without a line
 * in its log). The replica logs the first refused write, not the later
 * ones, counts all of them, and logs once when writes succeed again; the
 * refused writes stored nothing, the acknowledged ones are all there.
 */
QTEST(refused_writes_are_logged_once_and_counted)
{
	char logpath[512];
	FILE *lf = capture_log(logpath, sizeof(logpath));
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_options o;
	lsm_options_default(&o);
	o.env = fe;
	o.sync = LSM_SYNC_ALWAYS;
	o.write_buffer_size = 256u << 10;
	lsm_db *db;
	replica *r = open_replica_in_tmp(&o, &db);
	static char big[16u << 10];
	memset(big, 'v', sizeof(big) - 1);
	obj_write w = wr(big, 1);
	/* every file the engine opens from now on: no space */
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 1, -ENOSPC, 1);
	int acked = 0, refused = 0;
	char k[32];
	for (int i = 0; i < 200 && refused < 5; i++) {
		snprintf(k, sizeof(k), "k%03d", i);
		int rc = replica_update(r, q_slice_str(k), NULL, &w, NULL);
		if (rc == 0) {
			ASSERT_EQ(refused, 0);
			acked++;
		} else {
			ASSERT_EQ(rc, -ENOSPC);
			refused++;
		}
	}
	ASSERT(acked > 0);
	ASSERT_EQ(refused, 5);
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.write_errors, 5);
	ASSERT_U64_EQ(st.updates, (uint64_t)acked);
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath, "the store refuses writes: No space left on device"), 1);
	ASSERT_EQ(qtest_count_in_file(logpath, "takes writes again"), 0);
	/* space again: writes succeed and, once a second has passed since the
	 * last line (at most one a second), the next one says so, once */
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 0, 0, 0);
	ASSERT_OK(replica_update(r, q_slice_str("after"), NULL, &w, NULL));
	q_sleep_ms(1100);
	ASSERT_OK(replica_update(r, q_slice_str("after2"), NULL, &w, NULL));
	ASSERT_OK(replica_update(r, q_slice_str("after3"), NULL, &w, NULL));
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath,
				"the store takes writes again after 5 failed (No space left on device)"), 1);
	ASSERT_EQ(qtest_count_in_file(logpath, "refuses writes"), 1);
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.write_errors, 5);
	for (int i = 0; i < acked + 5; i++) {
		snprintf(k, sizeof(k), "k%03d", i);
		obj_set *s = NULL;
		ASSERT_EQ(replica_get(r, q_slice_str(k), &s), i < acked ? 0 : Q_ENOTFOUND);
		obj_set_free(s);
	}
	replica_free(r);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
	q_log_set_stream(stderr);
	fclose(lf);
}

/*
 * A write the engine refuses for its own size (a sibling set over the
 * engine's value limit) is that request's error, not the store's: it is
 * neither counted in write_errors nor logged as the store refusing writes,
 * however many such requests come.
 */
QTEST(oversized_writes_are_not_store_errors)
{
	char logpath[512];
	FILE *lf = capture_log(logpath, sizeof(logpath));
	lsm_options o;
	lsm_options_default(&o);
	o.max_value_size = 4u << 10;
	lsm_db *db;
	replica *r = open_replica_in_tmp(&o, &db);
	static char big[8u << 10];
	memset(big, 'v', sizeof(big) - 1);
	obj_write wb = wr(big, 1), ws = wr("small", 1);
	for (int i = 0; i < 10; i++) {
		ASSERT_EQ(replica_update(r, q_slice_str("big"), NULL, &wb, NULL), Q_ETOOBIG);
		ASSERT_OK(replica_update(r, q_slice_str("small"), NULL, &ws, NULL));
	}
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.write_errors, 0);
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath, "refuses writes"), 0);
	ASSERT_EQ(qtest_count_in_file(logpath, "takes writes again"), 0);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
	q_log_set_stream(stderr);
	fclose(lf);
}

/*
 * A merge onto a copy that does not decode, tried without blocking while
 * the engine cannot take the write at once (sync = always): the try gives
 * -EAGAIN and neither counts nor logs the corrupt copy; its blocking retry
 * replaces the copy and counts and logs it once.
 */
QTEST(corrupt_copy_is_reported_once_across_a_fallback)
{
	char logpath[512];
	FILE *lf = capture_log(logpath, sizeof(logpath));
	lsm_db *db = open_db_at("db", LSM_SYNC_ALWAYS);
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	uint8_t lk[4] = {LSM_KS_DATA, 'b', 'a', 'd'};
	ASSERT_OK(lsm_put(db, q_slice_make(lk, 4), q_slice_str("not an object")));
	obj_write w = wr("v", 1);
	obj_set *good = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, "n2", &w, NULL, 1, &good));
	ASSERT_EQ(replica_merge_digest_nowait(r, q_slice_str("bad"), good, NULL, NULL, NULL), -EAGAIN);
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.corrupt, 0);
	uint64_t d = 0;
	ASSERT_OK(replica_merge_digest(r, q_slice_str("bad"), good, NULL, &d));
	ASSERT_U64_EQ(d, obj_set_digest(good));
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.corrupt, 1);
	ASSERT_U64_EQ(st.merges, 1);
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath, "does not decode"), 1);
	obj_set *s = NULL;
	ASSERT_OK(replica_get(r, q_slice_str("bad"), &s));
	ASSERT(obj_set_equal(s, good));
	obj_set_free(s);
	obj_set_free(good);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
	q_log_set_stream(stderr);
	fclose(lf);
}

/* A batch hook as the anti-entropy index's: an entry per write, under
 * LSM_KS_META "i" || key, holding the new digest (deleted on removal). */
typedef struct batch_log {
	int calls;
} batch_log;

static int log_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *new_digest)
{
	batch_log *l = arg;
	l->calls++;
	uint8_t k[64];
	if (key.n + 2 > sizeof(k))
		return -EINVAL;
	k[0] = LSM_KS_META;
	k[1] = 'i';
	memcpy(k + 2, key.p, key.n);
	uint8_t v[8];
	q_enc_fixed64(v, new_digest ? *new_digest : 0);
	return new_digest ? lsm_batch_put(b, q_slice_make(k, key.n + 2), q_slice_make(v, 8))
			  : lsm_batch_delete(b, q_slice_make(k, key.n + 2));
}

static uint64_t index_entry(lsm_db *db, const char *key)
{
	uint8_t k[64];
	k[0] = LSM_KS_META;
	k[1] = 'i';
	memcpy(k + 2, key, strlen(key));
	q_buf v = Q_BUF_INIT;
	ASSERT_OK(lsm_get(db, q_slice_make(k, strlen(key) + 2), &v));
	ASSERT_EQ(v.len, 8);
	uint64_t d = q_dec_fixed64(v.p);
	q_buf_free(&v);
	return d;
}

/* The batch/after hooks of both: counted; the after hook's last digests. */
typedef struct both_log {
	batch_log b;
	hook_log a;
} both_log;

static int both_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	return log_batch(&((both_log *)arg)->b, b, key, nd);
}

static void both_after(void *arg, q_slice key, const uint64_t *od, const uint64_t *nd,
		       const obj_set *stored)
{
	log_after(&((both_log *)arg)->a, key, od, nd, stored);
}

/*
 * A nowait write that the engine refuses after its batch was built (sync =
 * always: every nowait write is refused) hands that batch to its retry,
 * which stores it as it is: the batch hook is called once per write, the
 * after hook once, and what is stored (set, digest, the hook's entry) is
 * what the blocking form stores. When the key changes between the try and
 * the retry, the retry does the whole write again over the new set (a
 * different write: the hook is called for it), losing nothing.
 */
/* A kept batch is stored only by a retry of the write it was built for:
 * passed with another key, or to the other kind of write, whose stored
 * bytes match (both keys absent), the retry does its own operation. */
QTEST(kept_batch_serves_only_its_own_write)
{
	lsm_db *db = open_db_at("db", LSM_SYNC_ALWAYS);
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	obj_write wa = wr("for-a", 1), wb = wr("for-b", 1);
	q_buf enc = Q_BUF_INIT, raw = Q_BUF_INIT;
	obj_set *s = NULL;
	replica_retry *t = NULL;
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("a"), NULL, &wa, NULL, &enc, &t), -EAGAIN);
	ASSERT(t != NULL);
	ASSERT_OK(replica_update_enc_retry(r, q_slice_str("b"), NULL, &wb, &s, &enc, t));
	ASSERT_EQ(replica_get_raw(r, q_slice_str("a"), &raw), Q_ENOTFOUND);
	ASSERT_EQ(obj_set_count(s), 1);
	obj_sibling sb;
	obj_set_sibling(s, 0, &sb);
	ASSERT_EQ(sb.value.n, 5);
	ASSERT_MEMEQ(sb.value.p, "for-b", 5);
	obj_set_free(s);
	s = NULL;
	/* an update's batch handed to a merge of another set */
	obj_write wp = wr("peer", 2);
	obj_set *peer = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, "n2", &wp, NULL, 2, &peer));
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("c"), NULL, &wa, NULL, &enc, &t), -EAGAIN);
	ASSERT(t != NULL);
	uint64_t d = 0;
	ASSERT_OK(replica_merge_digest_retry(r, q_slice_str("c"), peer, &s, &d, t));
	ASSERT_EQ(obj_set_count(s), 1);
	obj_set_sibling(s, 0, &sb);
	ASSERT_EQ(sb.value.n, 4);
	ASSERT_MEMEQ(sb.value.p, "peer", 4);
	ASSERT_U64_EQ(d, obj_set_digest(s));
	obj_set_free(s);
	obj_set_free(peer);
	q_buf_free(&enc);
	q_buf_free(&raw);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

QTEST(batch_hook_runs_once_across_a_fallback)
{
	lsm_db *db = open_db_at("db", LSM_SYNC_ALWAYS);
	replica *r = NULL;
	ASSERT_OK(replica_new(db, "n1", &r));
	both_log hl;
	memset(&hl, 0, sizeof(hl));
	replica_hooks h = {both_batch, both_after, &hl};
	replica_set_hooks(r, &h);
	obj_write w = wr("v", 1);
	q_buf enc = Q_BUF_INIT, raw = Q_BUF_INIT;
	obj_set *s = NULL;

	/* update */
	replica_retry *t = NULL;
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("k"), NULL, &w, NULL, &enc, &t), -EAGAIN);
	ASSERT(t != NULL);
	ASSERT_EQ(hl.b.calls, 1);
	ASSERT_EQ(hl.a.calls, 0);
	ASSERT_EQ(replica_get_raw(r, q_slice_str("k"), &raw), Q_ENOTFOUND);
	ASSERT_OK(replica_update_enc_retry(r, q_slice_str("k"), NULL, &w, &s, &enc, t));
	ASSERT_EQ(hl.b.calls, 1);
	ASSERT_EQ(hl.a.calls, 1);
	ASSERT_U64_EQ(hl.a.old_d, 0);
	ASSERT_U64_EQ(hl.a.new_d, obj_set_digest(s));
	ASSERT_OK(replica_get_raw(r, q_slice_str("k"), &raw));
	ASSERT_EQ(raw.len, enc.len);
	ASSERT_MEMEQ(raw.p, enc.p, enc.len);
	ASSERT_U64_EQ(index_entry(db, "k"), obj_set_digest(s));
	replica_stats st;
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.updates, 1);
	/* the same write through the blocking form stores the same bytes */
	{
		lsm_db *db2 = open_db_at("db2", LSM_SYNC_ALWAYS);
		replica *r2 = NULL;
		ASSERT_OK(replica_new(db2, "n1", &r2));
		q_buf enc2 = Q_BUF_INIT;
		ASSERT_OK(replica_update_enc(r2, q_slice_str("k"), NULL, &w, NULL, &enc2));
		ASSERT_EQ(enc2.len, enc.len);
		ASSERT_MEMEQ(enc2.p, enc.p, enc.len);
		q_buf_free(&enc2);
		replica_free(r2);
		ASSERT_OK(lsm_close(db2));
	}

	/* merge */
	obj_write w2 = wr("peer", 2);
	obj_set *peer = NULL, *m = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, "n2", &w2, NULL, 2, &peer));
	uint64_t d = 0;
	ASSERT_EQ(replica_merge_digest_nowait(r, q_slice_str("k"), peer, NULL, &d, &t), -EAGAIN);
	ASSERT(t != NULL);
	ASSERT_EQ(hl.b.calls, 2);
	ASSERT_EQ(hl.a.calls, 1);
	ASSERT_OK(replica_merge_digest_retry(r, q_slice_str("k"), peer, &m, &d, t));
	ASSERT_EQ(hl.b.calls, 2);
	ASSERT_EQ(hl.a.calls, 2);
	ASSERT_EQ(obj_set_count(m), 2);
	ASSERT_U64_EQ(d, obj_set_digest(m));
	ASSERT_U64_EQ(d, stored_digest(r, "k"));
	ASSERT_U64_EQ(hl.a.old_d, obj_set_digest(s));
	ASSERT_U64_EQ(index_entry(db, "k"), d);
	obj_set_free(m);

	/* the key changes between the try and the retry */
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("k2"), NULL, &w, NULL, NULL, &t), -EAGAIN);
	ASSERT(t != NULL);
	ASSERT_EQ(hl.b.calls, 3);
	ASSERT_OK(replica_update(r, q_slice_str("k2"), NULL, &w2, NULL));
	ASSERT_EQ(hl.b.calls, 4);
	ASSERT_OK(replica_update_enc_retry(r, q_slice_str("k2"), NULL, &w, &m, NULL, t));
	ASSERT_EQ(hl.b.calls, 5);
	ASSERT_EQ(obj_set_live_count(m), 2); /* blind writes: both kept */
	ASSERT_U64_EQ(stored_digest(r, "k2"), obj_set_digest(m));
	ASSERT_U64_EQ(index_entry(db, "k2"), obj_set_digest(m));
	obj_set_free(m);

	/* a refused try whose retry never comes: freed, nothing stored */
	ASSERT_EQ(replica_merge_digest_nowait(r, q_slice_str("k3"), peer, NULL, NULL, &t), -EAGAIN);
	ASSERT(t != NULL);
	replica_retry_free(t);
	ASSERT_EQ(replica_get_raw(r, q_slice_str("k3"), &raw), Q_ENOTFOUND);
	/* with keep NULL the refused try hands nothing over (nor leaks) */
	ASSERT_EQ(replica_update_enc_nowait(r, q_slice_str("k3"), NULL, &w, NULL, NULL, NULL),
		  -EAGAIN);
	replica_get_stats(r, &st);
	ASSERT_U64_EQ(st.updates, 3);
	ASSERT_U64_EQ(st.merges, 1);

	obj_set_free(s);
	obj_set_free(peer);
	q_buf_free(&enc);
	q_buf_free(&raw);
	replica_free(r);
	ASSERT_OK(lsm_close(db));
}

QTEST_MAIN(QT(update_get_and_context), QT(merge_is_idempotent_and_skips_unchanged),
	   QT(encodings_and_digests_of_what_is_stored),
	   QT(concurrent_writers_lose_nothing), QT(corrupt_value_is_reported_and_healed_by_merge),
	   QT(survives_reopen), QT(nowait_forms_store_what_blocking_forms_store),
	   QT(nowait_write_again_while_the_stripe_is_held),
	   QT(nowait_write_again_under_sync_always),
	   QT(refused_writes_are_logged_once_and_counted),
	   QT(oversized_writes_are_not_store_errors),
	   QT(corrupt_copy_is_reported_once_across_a_fallback),
	   QT(batch_hook_runs_once_across_a_fallback), QT(kept_batch_serves_only_its_own_write))
