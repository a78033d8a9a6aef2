/* Unit tests: src/aae/aae_tree (Merkle tree, incremental updates, rebuild,
 * persistence and corruption detection). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_tree.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/hash.h"
#include "util/qerr.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

#define NKEYS 5000
static char keys[NKEYS][24];
static uint64_t digests[NKEYS];

static void make_keys(void)
{
	for (int i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof keys[i], "k/%08llx", (unsigned long long)rnd());
		digests[i] = rnd();
	}
}

static q_slice K(int i)
{
	return q_slice_str(keys[i]);
}

/* Rebuild source over the arrays. */
typedef struct src {
	int i, n;
	int fail_at; /* -1: never */
} src;

static int src_next(void *ctx, q_slice *key, uint64_t *digest)
{
	src *s = ctx;
	if (s->i == s->fail_at)
		return -EIO;
	if (s->i >= s->n)
		return 0;
	*key = K(s->i);
	*digest = digests[s->i];
	s->i++;
	return 1;
}

static void assert_same(aae_tree *a, aae_tree *b)
{
	ASSERT_U64_EQ(aae_tree_root(a), aae_tree_root(b));
	for (uint32_t i = 0; i < aae_tree_buckets(a); i++) {
		uint64_t x, y;
		ASSERT_OK(aae_tree_node(a, aae_tree_depth(a), i, &x));
		ASSERT_OK(aae_tree_node(b, aae_tree_depth(b), i, &y));
		ASSERT_U64_EQ(x, y);
	}
	ASSERT_EQ(aae_tree_keys(a), aae_tree_keys(b));
}

QTEST(new_bad_depth)
{
	aae_tree *t;
	ASSERT_EQ(aae_tree_new(0, 0, 0, &t), -EINVAL);
	ASSERT_EQ(aae_tree_new(AAE_DEPTH_MAX + 1, 0, 0, &t), -EINVAL);
	ASSERT_OK(aae_tree_new(1, 0, 0, &t));
	ASSERT_EQ(aae_tree_buckets(t), 16);
	ASSERT_EQ(aae_tree_ready(t), 0);
	aae_tree_free(t);
}

QTEST(insert_order_independent)
{
	make_keys();
	aae_tree *a, *b, *c;
	ASSERT_OK(aae_tree_new(3, 10, 20, &a));
	ASSERT_OK(aae_tree_new(3, 10, 20, &b));
	ASSERT_OK(aae_tree_new(3, 10, 20, &c));
	uint64_t empty = aae_tree_root(a);
	for (int i = 0; i < NKEYS; i++)
		ASSERT_OK(aae_tree_insert(a, K(i), digests[i]));
	for (int i = NKEYS - 1; i >= 0; i--)
		ASSERT_OK(aae_tree_insert(b, K(i), digests[i]));
	assert_same(a, b);
	ASSERT_EQ(aae_tree_keys(a), NKEYS);
	ASSERT(aae_tree_root(a) != empty);
	/* one digest different: root differs */
	for (int i = 0; i < NKEYS; i++)
		ASSERT_OK(aae_tree_insert(c, K(i), i == 77 ? digests[i] ^ 1 : digests[i]));
	ASSERT(aae_tree_root(a) != aae_tree_root(c));
	/* exactly one leaf differs */
	int ndiff = 0;
	for (uint32_t i = 0; i < aae_tree_buckets(a); i++) {
		uint64_t x, y;
		ASSERT_OK(aae_tree_node(a, 3, i, &x));
		ASSERT_OK(aae_tree_node(c, 3, i, &y));
		if (x != y) {
			ndiff++;
			ASSERT_EQ(i, aae_bucket_of(K(77), 3));
		}
	}
	ASSERT_EQ(ndiff, 1);
	/* inner node = hash of its children, consistently on both trees */
	uint64_t ch[AAE_FANOUT], ch2[AAE_FANOUT];
	ASSERT_OK(aae_tree_children(a, 0, 0, ch));
	ASSERT_OK(aae_tree_children(b, 0, 0, ch2));
	ASSERT_MEMEQ(ch, ch2, sizeof ch);
	ASSERT_EQ(aae_tree_children(a, 3, 0, ch), -EINVAL);
	aae_tree_free(a);
	aae_tree_free(b);
	aae_tree_free(c);
}

QTEST(incremental_equals_rebuild)
{
	make_keys();
	aae_tree *live, *fresh;
	ASSERT_OK(aae_tree_new(4, 0, 0, &live));
	ASSERT_OK(aae_tree_new(4, 0, 0, &fresh));
	static int present[NKEYS];
	memset(present, 0, sizeof present);
	/* random inserts, replaces and removes, reading the root in between so
	 * lazily cleaned nodes are exercised */
	for (int step = 0; step < 40000; step++) {
		int i = (int)(rnd() % NKEYS);
		uint64_t nd = rnd();
		int op = (int)(rnd() % 3);
		if (!present[i]) {
			ASSERT_OK(aae_tree_insert(live, K(i), nd));
			present[i] = 1;
			digests[i] = nd;
		} else if (op == 0) {
			ASSERT_OK(aae_tree_remove(live, K(i), digests[i]));
			present[i] = 0;
		} else {
			ASSERT_OK(aae_tree_update(live, K(i), &digests[i], &nd));
			digests[i] = nd;
		}
		if (step % 997 == 0)
			(void)aae_tree_root(live);
	}
	ASSERT_OK(aae_tree_update(live, K(0), NULL, NULL)); /* no-op */
	ASSERT_OK(aae_tree_rebuild_begin(fresh));
	int n = 0;
	for (int i = 0; i < NKEYS; i++)
		if (present[i]) {
			ASSERT_OK(aae_tree_rebuild_add(fresh, K(i), digests[i]));
			n++;
		}
	ASSERT_OK(aae_tree_rebuild_end(fresh, 1));
	ASSERT_EQ(aae_tree_ready(fresh), 1);
	ASSERT_EQ(aae_tree_keys(fresh), n);
	assert_same(live, fresh);
	/* removing everything gives the empty tree's root */
	aae_tree *empty;
	ASSERT_OK(aae_tree_new(4, 0, 0, &empty));
	for (int i = 0; i < NKEYS; i++)
		if (present[i])
			ASSERT_OK(aae_tree_remove(live, K(i), digests[i]));
	assert_same(live, empty);
	aae_tree_free(empty);
	aae_tree_free(live);
	aae_tree_free(fresh);
}

QTEST(rebuild_with_concurrent_updates)
{
	make_keys();
	aae_tree *t, *want;
	ASSERT_OK(aae_tree_new(3, 0, 0, &t));
	ASSERT_OK(aae_tree_new(3, 0, 0, &want));
	/* the store snapshot holds keys 0..2999; during the scan, writes add
	 * keys 3000..3999 and change keys 0..99 */
	ASSERT_OK(aae_tree_rebuild_begin(t));
	ASSERT_EQ(aae_tree_rebuild_begin(t), -EBUSY);
	ASSERT_EQ(aae_tree_rebuilding(t), 1);
	for (int i = 0; i < 3000; i++) {
		ASSERT_OK(aae_tree_rebuild_add(t, K(i), digests[i]));
		if (i < 1000) {
			ASSERT_OK(aae_tree_insert(t, K(3000 + i), digests[3000 + i]));
		}
		if (i < 100) {
			uint64_t nd = digests[i] + 1;
			ASSERT_OK(aae_tree_update(t, K(i), &digests[i], &nd));
		}
	}
	ASSERT_OK(aae_tree_rebuild_end(t, 1));
	ASSERT_EQ(aae_tree_rebuilding(t), 0);
	for (int i = 0; i < 4000; i++)
		ASSERT_OK(aae_tree_insert(want, K(i), i < 100 ? digests[i] + 1 : digests[i]));
	assert_same(t, want);
	aae_tree_free(t);
	aae_tree_free(want);
}

QTEST(rebuild_from_source_and_failure)
{
	make_keys();
	aae_tree *t, *want;
	ASSERT_OK(aae_tree_new(2, 0, 0, &t));
	ASSERT_OK(aae_tree_new(2, 0, 0, &want));
	for (int i = 0; i < 100; i++)
		ASSERT_OK(aae_tree_insert(want, K(i), digests[i]));
	src s = {0, 100, 50};
	ASSERT_EQ(aae_tree_rebuild(t, src_next, &s), -EIO);
	ASSERT_EQ(aae_tree_ready(t), 0); /* failed rebuild: not trusted */
	ASSERT_EQ(aae_tree_keys(t), 0);
	src s2 = {0, 100, -1};
	ASSERT_OK(aae_tree_rebuild(t, src_next, &s2));
	ASSERT_EQ(aae_tree_ready(t), 1);
	assert_same(t, want);
	aae_tree_free(t);
	aae_tree_free(want);
}

QTEST(buckets_spread_within_ring_range)
{
	/* keys whose ring positions are close must still spread over buckets */
	aae_tree *t;
	ASSERT_OK(aae_tree_new(2, 0, 0, &t));
	static int hit[256];
	memset(hit, 0, sizeof hit);
	char k[32];
	for (int i = 0; i < 4096; i++) {
		snprintf(k, sizeof k, "user/%d", i);
		hit[aae_bucket_of(q_slice_str(k), 2)]++;
	}
	int used = 0;
	for (int i = 0; i < 256; i++)
		used += hit[i] > 0;
	ASSERT(used >= 250); /* 16 keys per bucket expected; empty is ~1e-7 */
	ASSERT_EQ(aae_bucket_of(q_slice_str("x"), 0), 0);
	ASSERT(aae_bucket_of(q_slice_str("x"), 6) < (1u << 24));
	aae_tree_free(t);
}

QTEST(fix_leaf_compare_and_set)
{
	aae_tree *t;
	ASSERT_OK(aae_tree_new(2, 0, 0, &t));
	ASSERT_OK(aae_tree_insert(t, q_slice_str("a"), 1));
	uint32_t b = aae_bucket_of(q_slice_str("a"), 2);
	uint64_t cur;
	ASSERT_OK(aae_tree_node(t, 2, b, &cur));
	ASSERT_U64_EQ(cur, aae_pair_hash(q_slice_str("a"), 1));
	uint64_t root = aae_tree_root(t);
	ASSERT_EQ(aae_tree_fix_leaf(t, b, cur + 1, 5), 0); /* moved on: untouched */
	ASSERT_U64_EQ(aae_tree_root(t), root);
	ASSERT_EQ(aae_tree_fix_leaf(t, b, cur, 5), 1);
	ASSERT(aae_tree_root(t) != root);
	ASSERT_OK(aae_tree_node(t, 2, b, &cur));
	ASSERT_U64_EQ(cur, 5);
	ASSERT_EQ(aae_tree_fix_leaf(t, 1u << 8, 0, 0), -EINVAL);
	aae_tree_free(t);
}

static char path[512];

QTEST(persist_round_trip)
{
	make_keys();
	q_env *env = q_env_posix();
	aae_tree *t, *back;
	ASSERT_OK(aae_tree_new(4, 111, 222, &t));
	for (int i = 0; i < NKEYS; i++)
		ASSERT_OK(aae_tree_insert(t, K(i), digests[i]));
	snprintf(path, sizeof path, "%s/tree", qtest_tmpdir);
	ASSERT_EQ(aae_tree_load(env, path, 4, 111, 222, 7, &back), -ENOENT);
	ASSERT_OK(aae_tree_save(t, env, path, 7));
	ASSERT_OK(aae_tree_load(env, path, 4, 111, 222, 7, &back));
	ASSERT_EQ(aae_tree_ready(back), 1);
	assert_same(t, back);
	/* and it keeps working incrementally */
	ASSERT_OK(aae_tree_remove(back, K(5), digests[5]));
	ASSERT_OK(aae_tree_remove(t, K(5), digests[5]));
	assert_same(t, back);
	aae_tree_free(back);
	/* stale: other stamp, range or depth */
	ASSERT_EQ(aae_tree_load(env, path, 4, 111, 222, 8, &back), -ESTALE);
	ASSERT_EQ(aae_tree_load(env, path, 4, 111, 223, 7, &back), -ESTALE);
	ASSERT_EQ(aae_tree_load(env, path, 3, 111, 222, 7, &back), -ESTALE);
	ASSERT(back == NULL);
	/* empty tree round trip */
	aae_tree *e;
	ASSERT_OK(aae_tree_new(1, 0, 0, &e));
	ASSERT_OK(aae_tree_save(e, env, path, 0));
	ASSERT_OK(aae_tree_load(env, path, 1, 0, 0, 0, &back));
	assert_same(e, back);
	aae_tree_free(back);
	aae_tree_free(e);
	aae_tree_free(t);
}

QTEST(persist_corruption_detected)
{
	make_keys();
	aae_tree *t, *back;
	ASSERT_OK(aae_tree_new(2, 1, 2, &t));
	for (int i = 0; i < 300; i++)
		ASSERT_OK(aae_tree_insert(t, K(i), digests[i]));
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(aae_tree_encode(t, 9, &b));
	ASSERT_OK(aae_tree_decode(b.p, b.len, 2, 1, 2, 9, &back));
	aae_tree_free(back);
	/* every single-bit flip is rejected (checksum), never trusted */
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			b.p[i] ^= (uint8_t)(1 << bit);
			int rc = aae_tree_decode(b.p, b.len, 2, 1, 2, 9, &back);
			ASSERT(rc == Q_ECORRUPT || rc == Q_EVERSION || rc == -ESTALE);
			ASSERT(back == NULL);
			b.p[i] ^= (uint8_t)(1 << bit);
		}
	}
	/* every truncation is rejected */
	for (size_t n = 0; n < b.len; n++) {
		int rc = aae_tree_decode(b.p, n, 2, 1, 2, 9, &back);
		ASSERT(rc == Q_ETRUNC || rc == Q_ECORRUPT);
	}
	/* a future version with a valid checksum: Q_EVERSION */
	q_enc_fixed32(b.p + 8, AAE_TREE_VERSION + 1);
	q_enc_fixed32(b.p + b.len - 4, q_csum32(b.p, b.len - 4));
	ASSERT_EQ(aae_tree_decode(b.p, b.len, 2, 1, 2, 9, &back), Q_EVERSION);
	/* valid checksum but a leaf index gap past the end: Q_ECORRUPT */
	q_enc_fixed32(b.p + 8, AAE_TREE_VERSION);
	b.p[AAE_TREE_HDR_LEN] = 0; /* gap 0 is never valid */
	q_enc_fixed32(b.p + b.len - 4, q_csum32(b.p, b.len - 4));
	ASSERT_EQ(aae_tree_decode(b.p, b.len, 2, 1, 2, 9, &back), Q_ECORRUPT);
	/* on disk: a flipped byte in the file makes load fail, caller rebuilds */
	q_env *env = q_env_posix();
	snprintf(path, sizeof path, "%s/tree", qtest_tmpdir);
	ASSERT_OK(aae_tree_save(t, env, path, 9));
	FILE *f = fopen(path, "r+b");
	ASSERT(f);
	fseek(f, 60, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 60, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
	ASSERT_EQ(aae_tree_load(env, path, 2, 1, 2, 9, &back), Q_ECORRUPT);
	q_buf_free(&b);
	aae_tree_free(t);
}

QTEST(save_failure_keeps_old_file)
{
	make_keys();
	q_env *fe = q_fault_env_new(q_env_posix());
	aae_tree *t, *back;
	ASSERT_OK(aae_tree_new(2, 0, 0, &t));
	ASSERT_OK(aae_tree_insert(t, K(1), 1));
	snprintf(path, sizeof path, "%s/tree", qtest_tmpdir);
	ASSERT_OK(aae_tree_save(t, fe, path, 1));
	uint64_t root = aae_tree_root(t);
	ASSERT_OK(aae_tree_insert(t, K(2), 2));
	q_fault_env_fail_at(fe, Q_FAULT_WRITE | Q_FAULT_SYNC, 1, -ENOSPC, 1);
	ASSERT(aae_tree_save(t, fe, path, 2) < 0);
	q_fault_env_fail_at(fe, Q_FAULT_ALL, 0, 0, 0);
	ASSERT_OK(aae_tree_load(fe, path, 2, 0, 0, 1, &back));
	ASSERT_U64_EQ(aae_tree_root(back), root);
	aae_tree_free(back);
	aae_tree_free(t);
	q_fault_env_free(fe);
}

/* Writers on several threads, a reader and a rebuild at the same time: the
 * tree's mutex keeps every update, and the result equals a sequential
 * build. */
typedef struct writer_arg {
	aae_tree *t;
	int first, n;
} writer_arg;

static void *writer(void *p)
{
	writer_arg *a = p;
	for (int i = a->first; i < a->first + a->n; i++) {
		if (aae_tree_insert(a->t, K(i), digests[i]))
			abort();
		if (i % 2 == 0) {
			uint64_t nd = digests[i] + 7;
			if (aae_tree_update(a->t, K(i), &digests[i], &nd))
				abort();
		}
	}
	return NULL;
}

QTEST(concurrent_writers_reader_rebuild)
{
	make_keys();
	aae_tree *t, *want;
	ASSERT_OK(aae_tree_new(3, 0, 0, &t));
	ASSERT_OK(aae_tree_new(3, 0, 0, &want));
	pthread_t th[4];
	writer_arg args[4];
	/* a rebuild whose scan saw nothing: everything comes from the deltas */
	ASSERT_OK(aae_tree_rebuild_begin(t));
	for (int i = 0; i < 4; i++) {
		args[i].t = t;
		args[i].first = i * (NKEYS / 4);
		args[i].n = NKEYS / 4;
		ASSERT_OK(pthread_create(&th[i], NULL, writer, &args[i]));
	}
	for (int r = 0; r < 200; r++) {
		uint64_t ch[AAE_FANOUT];
		(void)aae_tree_root(t);
		ASSERT_OK(aae_tree_children(t, 1, (uint32_t)r % 16, ch));
	}
	for (int i = 0; i < 4; i++)
		ASSERT_OK(pthread_join(th[i], NULL));
	ASSERT_OK(aae_tree_rebuild_end(t, 1));
	for (int i = 0; i < NKEYS; i++)
		ASSERT_OK(aae_tree_insert(want, K(i), i % 2 == 0 ? digests[i] + 7 : digests[i]));
	assert_same(t, want);
	aae_tree_free(t);
	aae_tree_free(want);
}

QTEST_MAIN(QT(concurrent_writers_reader_rebuild), QT(new_bad_depth), QT(insert_order_independent), QT(incremental_equals_rebuild),
	   QT(rebuild_with_concurrent_updates), QT(rebuild_from_source_and_failure),
	   QT(buckets_spread_within_ring_range), QT(fix_leaf_compare_and_set),
	   QT(persist_round_trip), QT(persist_corruption_detected),
	   QT(save_failure_keeps_old_file))
