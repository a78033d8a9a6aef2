/*
 * test_aae_replica.c - the anti-entropy write hook in the replica store
 * (src/cluster/replica.c hooks, wired as node_aae does): data and bucket
 * index in one lsm batch, tree updated after the write. Checks that the
 * tree and the index follow updates, merges, unchanged merges and removals
 * exactly (equal to trees rebuilt from the data and from the index), that
 * a failing batch hook stores nothing, that replica_remove_if only
 * removes an unchanged tombstone and replica_drop_if only the version it
 * was given.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_lsm.h"
#include "cluster/replica.h"
#include "lsm/lsm.h"
#include "object/obj.h"
#include "qtest.h"
#include "util/qerr.h"

typedef struct fx {
	lsm_db *db;
	replica *rep;
	aae_tree *tree;  /* whole circle */
	int fail_batch;
	int afters;
} fx;

static int h_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	fx *f = arg;
	if (f->fail_batch)
		return -EIO;
	return aae_lsm_index_batch(b, key, nd);
}

static void h_after(void *arg, q_slice key, const uint64_t *od, const uint64_t *nd,
		    const obj_set *stored)
{
	fx *f = arg;
	f->afters++;
	ASSERT((nd == NULL) == (stored == NULL));
	if (nd)
		ASSERT_U64_EQ(*nd, obj_set_digest(stored));
	ASSERT_OK(aae_tree_update(f->tree, key, od, nd));
}

static void fx_open(fx *f)
{
	memset(f, 0, sizeof(*f));
	char dir[512];
	snprintf(dir, sizeof dir, "%s/db", qtest_tmpdir);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	ASSERT_OK(lsm_open(dir, &o, &f->db));
	ASSERT_OK(replica_new(f->db, "n1", &f->rep));
	ASSERT_OK(aae_tree_new(3, 7, 7, &f->tree));
	aae_tree_set_ready(f->tree, 1);
	replica_hooks h = {h_batch, h_after, f};
	replica_set_hooks(f->rep, &h);
}

static void fx_close(fx *f)
{
	replica_free(f->rep);
	aae_tree_free(f->tree);
	ASSERT_OK(lsm_close(f->db));
}

/* The live tree equals trees rebuilt from the data and from the index. */
static void check_exact(fx *f)
{
	for (int src = 0; src < 2; src++) {
		aae_tree *t;
		ASSERT_OK(aae_tree_new(3, 7, 7, &t));
		ASSERT_OK(aae_lsm_rebuild(f->db, &t, 1,
					  src ? AAE_LSM_FROM_DATA : AAE_LSM_FROM_INDEX, NULL, NULL));
		ASSERT_U64_EQ(aae_tree_root(t), aae_tree_root(f->tree));
		ASSERT_EQ(aae_tree_keys(t), aae_tree_keys(f->tree));
		aae_tree_free(t);
	}
}

static obj_write wr(const char *v, int64_t t, int tomb)
{
	obj_write w = {tomb, q_slice_str(v), NULL, t};
	return w;
}

QTEST(tree_and_index_follow_updates_and_merges)
{
	fx f;
	fx_open(&f);
	char k[32];
	/* inserts and overwrites through replica_update */
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof k, "key-%04d", i);
		obj_write w = wr("v1", 1000 + i, 0);
		ASSERT_OK(replica_update(f.rep, q_slice_str(k), NULL, &w, NULL));
	}
	ASSERT_EQ(aae_tree_keys(f.tree), 300);
	check_exact(&f);
	for (int i = 0; i < 300; i += 3) {
		snprintf(k, sizeof k, "key-%04d", i);
		obj_set *cur = NULL;
		ASSERT_OK(replica_get(f.rep, q_slice_str(k), &cur));
		obj_write w = wr("v2", 5000 + i, i % 2);
		ASSERT_OK(replica_update(f.rep, q_slice_str(k), obj_set_ctx(cur), &w, NULL));
		obj_set_free(cur);
	}
	ASSERT_EQ(aae_tree_keys(f.tree), 300);
	check_exact(&f);
	/* merges of sets made elsewhere: new keys and concurrent siblings */
	int afters = f.afters;
	for (int i = 250; i < 400; i++) {
		snprintf(k, sizeof k, "key-%04d", i);
		obj_write w = wr("remote", 9000 + i, 0);
		obj_set *s;
		ASSERT_OK(obj_set_update(NULL, NULL, "n2", &w, NULL, 9000 + i, &s));
		ASSERT_OK(replica_merge(f.rep, q_slice_str(k), s, NULL));
		obj_set_free(s);
	}
	ASSERT_EQ(f.afters, afters + 150);
	ASSERT_EQ(aae_tree_keys(f.tree), 400);
	check_exact(&f);
	/* a merge that changes nothing calls no hook */
	afters = f.afters;
	snprintf(k, sizeof k, "key-%04d", 10);
	obj_set *same;
	ASSERT_OK(replica_get(f.rep, q_slice_str(k), &same));
	uint64_t root = aae_tree_root(f.tree);
	ASSERT_OK(replica_merge(f.rep, q_slice_str(k), same, NULL));
	obj_set_free(same);
	ASSERT_EQ(f.afters, afters);
	ASSERT_U64_EQ(aae_tree_root(f.tree), root);
	fx_close(&f);
}

QTEST(failing_batch_hook_stores_nothing)
{
	fx f;
	fx_open(&f);
	obj_write w = wr("v", 1, 0);
	ASSERT_OK(replica_update(f.rep, q_slice_str("a"), NULL, &w, NULL));
	f.fail_batch = 1;
	ASSERT_EQ(replica_update(f.rep, q_slice_str("b"), NULL, &w, NULL), -EIO);
	obj_set *s = NULL;
	ASSERT_EQ(replica_get(f.rep, q_slice_str("b"), &s), Q_ENOTFOUND);
	f.fail_batch = 0;
	ASSERT_EQ(aae_tree_keys(f.tree), 1);
	check_exact(&f);
	fx_close(&f);
}

QTEST(remove_if_only_unchanged_tombstones)
{
	fx f;
	fx_open(&f);
	obj_write w = wr("v", 1, 0);
	obj_set *s = NULL, *t = NULL;
	ASSERT_OK(replica_update(f.rep, q_slice_str("live"), NULL, &w, &s));
	/* a live value is never removed */
	ASSERT_EQ(replica_remove_if(f.rep, q_slice_str("live"), obj_set_digest(s)), 0);
	obj_write d = wr("", 2, 1);
	ASSERT_OK(replica_update(f.rep, q_slice_str("dead"), NULL, &d, &t));
	ASSERT_EQ(aae_tree_keys(f.tree), 2);
	/* a stale digest: the key changed since it was judged reapable */
	ASSERT_EQ(replica_remove_if(f.rep, q_slice_str("dead"), obj_set_digest(t) ^ 1), 0);
	ASSERT_EQ(replica_remove_if(f.rep, q_slice_str("dead"), obj_set_digest(t)), 1);
	obj_set *g = NULL;
	ASSERT_EQ(replica_get(f.rep, q_slice_str("dead"), &g), Q_ENOTFOUND);
	ASSERT_EQ(aae_tree_keys(f.tree), 1);
	check_exact(&f);
	/* absent: nothing to do */
	ASSERT_EQ(replica_remove_if(f.rep, q_slice_str("dead"), obj_set_digest(t)), 0);
	obj_set_free(s);
	obj_set_free(t);
	fx_close(&f);
}

QTEST(drop_if_only_the_version_judged)
{
	fx f;
	fx_open(&f);
	obj_write w = wr("v1", 1, 0);
	obj_set *s = NULL, *t = NULL;
	ASSERT_OK(replica_update(f.rep, q_slice_str("moved"), NULL, &w, &s));
	ASSERT_OK(replica_update(f.rep, q_slice_str("stays"), NULL, &w, &t));
	ASSERT_EQ(aae_tree_keys(f.tree), 2);
	/* written again after the version sent was judged: kept */
	obj_set *s2 = NULL;
	obj_write w2 = wr("v2", 2, 0);
	ASSERT_OK(replica_update(f.rep, q_slice_str("moved"), NULL, &w2, &s2));
	ASSERT_EQ(replica_drop_if(f.rep, q_slice_str("moved"), obj_set_digest(s)), 0);
	obj_set *g = NULL;
	ASSERT_OK(replica_get(f.rep, q_slice_str("moved"), &g));
	obj_set_free(g);
	/* the current version, live: removed, index and tree follow */
	ASSERT_EQ(replica_drop_if(f.rep, q_slice_str("moved"), obj_set_digest(s2)), 1);
	ASSERT_EQ(replica_get(f.rep, q_slice_str("moved"), &g), Q_ENOTFOUND);
	ASSERT_EQ(aae_tree_keys(f.tree), 1);
	check_exact(&f);
	/* absent: nothing to do */
	ASSERT_EQ(replica_drop_if(f.rep, q_slice_str("moved"), obj_set_digest(s2)), 0);
	obj_set_free(s);
	obj_set_free(s2);
	obj_set_free(t);
	fx_close(&f);
}

QTEST_MAIN(QT(tree_and_index_follow_updates_and_merges), QT(failing_batch_hook_stores_nothing),
	   QT(remove_if_only_unchanged_tombstones), QT(drop_if_only_the_version_judged))
