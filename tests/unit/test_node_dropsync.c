/*
 * test_node_dropsync.c - power loss on the node's storage write path.
 *
 * The node's store as quorumd opens it: the engine options come from a
 * node configuration (node_conf_load of "sync = always", a 64k memtable so
 * flushes and compactions run often) and are set the way src/node/node.c
 * sets them; on top of the engine the replica (sibling sets, read-modify-
 * write under stripe locks) with the anti-entropy bucket index kept in the
 * same atomic batch as each data write (the hook src/node/node_aae.c
 * installs), and the hint store of hinted handoff. Everything goes through
 * the fault env. Some values are 64-100 KiB, which the engine keeps in blob
 * files (key-value separation) at the node's default threshold.
 *
 * A cycle opens the store, runs a random mix of client updates (with the
 * context read, or blind), deletes, merges of sets coordinated elsewhere,
 * hint puts and hint deletes, then cuts the power: every later env call
 * fails (sticky EIO), the store is closed (its closing writes fail too), and
 * the fault env drops every byte not fsynced and every file created or
 * renamed after the last directory fsync (LevelDB's fault_injection_test).
 * Half the cycles cut at a chosen point (after some number of ops), half at
 * the Nth env call from the start, so the cut lands inside foreground writes,
 * flushes, compactions and manifest installs.
 *
 * After each cut the store must open, and:
 *   - every acknowledged write is there exactly: the stored encoding of each
 *     key equals the set the acknowledged call returned; a write that failed
 *     at the cut may be there or not (the key then holds the previous set or
 *     a set with the failed write's value), never anything else;
 *   - the bucket index agrees with the data: one entry per stored key with
 *     the digest of the stored set, none for absent keys, no orphans;
 *   - every acknowledged hint is there with its object.
 *
 * Default: 24 cycles (a few seconds under ASan). QFS_LONG=1: 300 cycles.
 * QFS_DROPSYNC_SEED=N replays a seed (the seed is printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aae/aae_lsm.h"
#include "cluster/replica.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "node/node_conf.h"
#include "object/obj.h"
#include "qtest.h"
#include "util/conf.h"
#include "util/log.h"
#include "util/qerr.h"

#define NKEYS 24
#define NHKEYS 8
#define NOWNERS 2

static const char *const OWNERS[NOWNERS] = {"owner-a", "owner-b"};

static uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t x = rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng = x;
}
static int rndn(int n) { return (int)(rnd() % (uint64_t)n); }

typedef struct {
	int present;
	q_buf enc;        /* acknowledged stored encoding */
	int uncertain;    /* an operation on it failed at the cut: */
	int64_t failed_wall; /* a write whose sibling has this wall time, or */
	int failed_delete;   /* a hint delete (absent is fine too) */
} kstate;

typedef struct {
	lsm_options lo;
	char dbdir[512];
	q_env *fe;
	lsm_db *db;
	replica *rep;
	hint_store *hs;
	kstate keys[NKEYS];
	kstate hints[NOWNERS][NHKEYS];
	uint64_t seq;
	uint64_t acked, failed, hints_acked;
} world;

static int hook_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	(void)arg;
	return aae_lsm_index_batch(b, key, nd);
}

static void key_of(char *k, int i)
{
	snprintf(k, 16, "key-%02d", i);
}

/* The engine options of a node, from a node configuration, as node.c sets them. */
static void node_options(world *W)
{
	q_conf *conf = q_conf_new();
	ASSERT(conf);
	char text[1024], err[256];
	snprintf(text, sizeof(text),
		 "data_dir = %s/node\nlisten = 127.0.0.1:7000\nsync = always\n"
		 "memtable_size = 64k\ncache_size = 1M\n", qtest_tmpdir);
	ASSERT_OK(q_conf_parse(conf, text, strlen(text)));
	node_conf c;
	memset(&c, 0, sizeof(c));
	int rc = node_conf_load(conf, &c, err, sizeof(err));
	if (rc)
		QTEST_FAIL_("node_conf_load: %s", err);
	ASSERT_EQ(c.sync, LSM_SYNC_ALWAYS);
	lsm_options_default(&W->lo);
	W->lo.sync = (lsm_sync)c.sync;
	W->lo.sync_batch_ms = c.sync_batch_ms;
	W->lo.write_buffer_size = (size_t)c.memtable_size;
	W->lo.block_cache_size = (size_t)c.cache_size;
	W->lo.env = W->fe;
	snprintf(W->dbdir, sizeof(W->dbdir), "%s/db", c.data_dir);
	ASSERT_OK(q_env_mkdirs(q_env_posix(), c.data_dir));
	node_conf_free(&c);
	q_conf_free(conf);
}

static void store_open(world *W)
{
	int rc = lsm_open(W->dbdir, &W->lo, &W->db);
	if (rc)
		QTEST_FAIL_("the store does not open after a power cut: %s", q_strerror(rc));
	ASSERT_OK(replica_new(W->db, "node-1", &W->rep));
	replica_hooks h = {hook_batch, NULL, NULL};
	replica_set_hooks(W->rep, &h);
	ASSERT_OK(hint_store_open(W->db, NULL, NULL, &W->hs));
}

/* Power cut: every env call from now fails; close; drop what was not durable. */
static void power_cut(world *W)
{
	q_fault_env_fail_at(W->fe, Q_FAULT_ALL, 1, -EIO, 1);
	hint_store_close(W->hs);
	replica_free(W->rep);
	(void)lsm_close(W->db); /* its closing writes fail: that is the point */
	W->hs = NULL;
	W->rep = NULL;
	W->db = NULL;
	ASSERT_OK(q_fault_env_drop_unsynced(W->fe));
	q_fault_env_fail_at(W->fe, 0, 0, 0, 0);
}

static int set_has_wall(const obj_set *s, int64_t wall)
{
	for (size_t i = 0; i < obj_set_count(s); i++) {
		obj_sibling b;
		obj_set_sibling(s, i, &b);
		if (b.wall_ns == wall)
			return 1;
	}
	return 0;
}

/* Checks a stored encoding (rc, got) against the expected state; adopts it. */
static void check_one(kstate *ks, int rc, q_buf *got, const char *what, int idx)
{
	int same = ks->present ? (rc == 0 && got->len == ks->enc.len &&
				  !memcmp(got->p, ks->enc.p, got->len))
			       : rc == Q_ENOTFOUND;
	if (rc != 0 && rc != Q_ENOTFOUND)
		QTEST_FAIL_("%s %d: read failed: %s", what, idx, q_strerror(rc));
	if (!same) {
		obj_set *s = NULL;
		if (!ks->uncertain)
			QTEST_FAIL_("%s %d: an acknowledged write was lost or changed (stored %s)",
				    what, idx, rc ? "nothing" : "other bytes");
		if (rc != 0 && !ks->failed_delete)
			QTEST_FAIL_("%s %d: the key vanished after a failed write", what, idx);
		if (rc == 0) {
			if (ks->failed_delete)
				QTEST_FAIL_("%s %d: changed by a failed delete", what, idx);
			if (obj_set_decode(got->p, got->len, &s))
				QTEST_FAIL_("%s %d: stored bytes do not decode", what, idx);
			if (!set_has_wall(s, ks->failed_wall))
				QTEST_FAIL_("%s %d: neither the acknowledged set nor the failed write",
					    what, idx);
			obj_set_free(s);
			q_buf_reset(&ks->enc);
			ASSERT_OK(q_buf_append(&ks->enc, got->p, got->len));
		}
		ks->present = rc == 0;
	}
	ks->uncertain = 0;
}

static void verify(world *W)
{
	q_buf got = Q_BUF_INIT, ik = Q_BUF_INIT, iv = Q_BUF_INIT;
	int nstored = 0;
	for (int i = 0; i < NKEYS; i++) {
		char k[16];
		key_of(k, i);
		int rc = replica_get_raw(W->rep, q_slice_str(k), &got);
		check_one(&W->keys[i], rc, &got, "key", i);
		/* the bucket index agrees with the data */
		q_buf_reset(&ik);
		ASSERT_OK(aae_lsm_index_key(q_slice_str(k), &ik));
		int irc = lsm_get(W->db, q_buf_slice(&ik), &iv);
		if (!W->keys[i].present) {
			if (irc != Q_ENOTFOUND)
				QTEST_FAIL_("key %d: an index entry for an absent key", i);
			continue;
		}
		nstored++;
		if (irc)
			QTEST_FAIL_("key %d: no index entry: %s", i, q_strerror(irc));
		obj_set *s = NULL;
		ASSERT_OK(obj_set_decode(got.p, got.len, &s));
		uint64_t d = obj_set_digest(s), id = 0;
		obj_set_free(s);
		ASSERT_EQ(iv.len, 8);
		for (int j = 7; j >= 0; j--)
			id = id << 8 | iv.p[j];
		if (id != d)
			QTEST_FAIL_("key %d: index digest differs from the stored set", i);
	}
	/* no orphan index entries */
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(W->db, &it));
	uint8_t pfx[2] = {LSM_KS_META, AAE_LSM_INDEX_TAG};
	lsm_iter_seek(it, q_slice_make(pfx, 2));
	int nidx = 0;
	for (; lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it);
		if (k.n < 2 || memcmp(k.p, pfx, 2))
			break;
		nidx++;
	}
	ASSERT_OK(lsm_iter_status(it));
	lsm_iter_free(it);
	ASSERT_EQ(nidx, nstored);
	for (int o = 0; o < NOWNERS; o++)
		for (int i = 0; i < NHKEYS; i++) {
			char k[16];
			key_of(k, i);
			int rc = hint_get(W->hs, OWNERS[o], q_slice_str(k), &got, NULL);
			check_one(&W->hints[o][i], rc, &got, "hint", o * NHKEYS + i);
		}
	q_buf_free(&got);
	q_buf_free(&ik);
	q_buf_free(&iv);
}

static void make_value(q_buf *v, const char *tag)
{
	/* mostly small; one in six 8-40 KiB, so the 64k memtable flushes often;
	 * one in twenty-five 64-100 KiB (kept in blob files by the engine) */
	int sel = rndn(150);
	size_t n = sel < 6 ? 65536 + (size_t)rndn(36 * 1024)
		 : sel < 31 ? 8192 + (size_t)rndn(32768)
			    : (size_t)rndn(200);
	q_buf_reset(v);
	ASSERT_OK(q_buf_append(v, tag, strlen(tag)));
	ASSERT_OK(q_buf_reserve(v, n + 1));
	for (size_t i = 0; i < n; i++)
		v->p[v->len + i] = (uint8_t)('a' + (i * 7 + i / 13) % 26);
	v->len += n;
}

static void mark_failed(kstate *ks, int64_t wall, int del)
{
	ks->uncertain = 1;
	ks->failed_wall = wall;
	ks->failed_delete = del;
}

/* An object as another coordinator made it: one sibling with a fresh dot
 * (peer, seq + 1) and wall time wall. The caller frees it. */
static obj_set *peer_set(const char *peer, uint64_t seq, const obj_write *w)
{
	obj_set *s = NULL;
	obj_ctx *c = obj_ctx_new();
	ASSERT(c);
	ASSERT_OK(obj_ctx_set(c, peer, seq, w->wall_ns));
	ASSERT_OK(obj_set_update(NULL, c, peer, w, NULL, w->wall_ns, &s));
	obj_ctx_free(c);
	return s;
}

/* One operation; returns 0 if acknowledged, else the error (the cut). Every
 * write has a unique wall time, which identifies it among siblings. */
static int one_op(world *W, q_buf *val)
{
	int op = rndn(10);
	char k[16];
	W->seq++;
	int64_t wall = (int64_t)W->seq * 1000;
	make_value(val, "v");
	if (op < 7) {
		int i = rndn(NKEYS);
		key_of(k, i);
		kstate *ks = &W->keys[i];
		obj_set *out = NULL, *cur = NULL;
		int del = op == 6;
		obj_write w = {del, q_buf_slice(val), NULL, wall};
		int rc;
		if (op < 5 || del) { /* a client update, with the context read (or blind) */
			const obj_ctx *ctx = NULL;
			if (rndn(5) != 0) {
				rc = replica_get(W->rep, q_slice_str(k), &cur);
				if (rc && rc != Q_ENOTFOUND) {
					obj_set_free(cur);
					return rc; /* nothing was written */
				}
				ctx = cur ? obj_set_ctx(cur) : NULL;
			}
			rc = replica_update(W->rep, q_slice_str(k), ctx, &w, &out);
		} else { /* a set coordinated elsewhere, merged in */
			obj_set *in = peer_set(rndn(2) ? "node-2" : "node-3", W->seq, &w);
			rc = replica_merge(W->rep, q_slice_str(k), in, &out);
			obj_set_free(in);
		}
		obj_set_free(cur);
		if (rc) {
			mark_failed(ks, wall, 0);
			obj_set_free(out);
			return rc;
		}
		q_buf_reset(&ks->enc);
		ASSERT_OK(obj_set_encode(out, &ks->enc));
		ks->present = 1;
		obj_set_free(out);
		W->acked++;
		return 0;
	}
	int o = rndn(NOWNERS), i = rndn(NHKEYS);
	key_of(k, i);
	kstate *hs = &W->hints[o][i];
	if (op < 9) {
		obj_write w = {0, q_buf_slice(val), NULL, wall};
		obj_set *s = peer_set("node-4", W->seq, &w);
		q_buf enc = Q_BUF_INIT;
		ASSERT_OK(obj_set_encode(s, &enc));
		obj_set_free(s);
		int rc = hint_put(W->hs, OWNERS[o], q_slice_str(k), q_buf_slice(&enc),
				  (uint64_t)W->seq, NULL);
		q_buf_free(&enc);
		if (rc) {
			mark_failed(hs, wall, 0);
			return rc;
		}
		/* what the store now holds for it (merged with an earlier hint) */
		rc = hint_get(W->hs, OWNERS[o], q_slice_str(k), &hs->enc, NULL);
		if (rc) { /* the cut came between: the hint must hold this write */
			mark_failed(hs, wall, 0);
			return rc;
		}
		hs->present = 1;
		W->hints_acked++;
		return 0;
	}
	int rc = hint_delete(W->hs, OWNERS[o], q_slice_str(k));
	if (rc == Q_ENOTFOUND && !hs->present)
		return 0;
	if (rc) {
		mark_failed(hs, 0, 1);
		return rc;
	}
	hs->present = 0;
	return 0;
}

static int long_mode(void)
{
	const char *l = getenv("QFS_LONG");
	return l && !strcmp(l, "1");
}

QTEST(power_cuts_keep_acked_writes)
{
	world *W = calloc(1, sizeof(*W));
	ASSERT(W);
	const char *sd = getenv("QFS_DROPSYNC_SEED");
	uint64_t seed = sd && *sd ? strtoull(sd, NULL, 10) : (uint64_t)time(NULL);
	rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	printf("dropsync: seed %llu (QFS_DROPSYNC_SEED to replay)\n", (unsigned long long)seed);
	q_log_set_level(Q_LOG_OFF); /* the cut makes the engine log every failed call */
	W->fe = q_fault_env_new(q_env_posix());
	ASSERT(W->fe);
	node_options(W);
	int cycles = long_mode() ? 300 : 24;
	q_buf val = Q_BUF_INIT;
	uint64_t tables = 0, flushes = 0, compactions = 0, blob_files = 0;
	store_open(W);
	for (int c = 0; c < cycles; c++) {
		int by_calls = c % 2;
		int nops = 10 + rndn(80);
		if (by_calls) /* the cut at the Nth env call from here */
			q_fault_env_fail_at(W->fe, Q_FAULT_ALL, 1 + (uint64_t)rndn(300), -EIO, 1);
		for (int j = 0; j < nops; j++) {
			int rc = one_op(W, &val);
			if (rc) {
				if (!by_calls)
					QTEST_FAIL_("cycle %d: an operation failed before the cut: %s", c,
						    q_strerror(rc));
				W->failed++;
				break;
			}
		}
		lsm_stats st;
		lsm_get_stats(W->db, &st);
		flushes += st.flushes;
		compactions += st.compactions;
		power_cut(W);
		store_open(W);
		verify(W);
		lsm_get_stats(W->db, &st);
		tables = st.num_tables;
		if (st.blob_files > blob_files)
			blob_files = st.blob_files;
	}
	/* a clean close and open at the end holds the same */
	hint_store_close(W->hs);
	replica_free(W->rep);
	ASSERT_OK(lsm_close(W->db));
	store_open(W);
	verify(W);
	hint_store_close(W->hs);
	replica_free(W->rep);
	ASSERT_OK(lsm_close(W->db));
	printf("dropsync: %d power cuts, %llu acknowledged writes, %llu acknowledged hints, "
	       "%llu operations cut, %llu flushes, %llu compactions, %llu tables at the end, "
	       "at most %llu blob files\n",
	       cycles, (unsigned long long)W->acked, (unsigned long long)W->hints_acked,
	       (unsigned long long)W->failed, (unsigned long long)flushes,
	       (unsigned long long)compactions, (unsigned long long)tables,
	       (unsigned long long)blob_files);
	ASSERT(W->acked > 0);
	ASSERT(flushes > 0);
	for (int i = 0; i < NKEYS; i++)
		q_buf_free(&W->keys[i].enc);
	for (int o = 0; o < NOWNERS; o++)
		for (int i = 0; i < NHKEYS; i++)
			q_buf_free(&W->hints[o][i].enc);
	q_buf_free(&val);
	q_fault_env_free(W->fe);
	free(W);
}

QTEST_MAIN(QT(power_cuts_keep_acked_writes))
