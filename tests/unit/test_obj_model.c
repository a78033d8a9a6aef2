/*
 * test_obj_model.c - property tests of src/object against a reference model.
 *
 * The model knows nothing of version vectors. Each write w gets the set of
 * writes its client had seen, H[w] (its causal history). A replica holds a
 * set K of writes (closed under H); the writes it must show as siblings are
 * the maximal ones: those in K that no other write in K has in its history.
 * Random histories of reads, writes, deletes, replication of a coordinator's
 * result and anti-entropy syncs run over three simulated replicas and several
 * clients; after every step each replica's sibling set must equal the
 * model's exactly (so no acknowledged write is lost and nothing obsolete
 * survives), the sibling count must stay within the number of clients (each
 * client is one sequential writer), and sync must be commutative,
 * associative and idempotent on the states reached.
 *
 * Default: 24 seeds x 250 steps (about a second under ASan). QFS_LONG=1:
 * 400 seeds x 900 steps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "qtest.h"
#include "util/qerr.h"

#define NREP 3
#define NCLI 4
#define MAXW 1024
#define WORDS (MAXW / 64)

typedef struct { uint64_t w[WORDS]; } bits;

static void bset(bits *b, int i) { b->w[i / 64] |= 1ULL << (i % 64); }
static int bget(const bits *b, int i) { return (int)((b->w[i / 64] >> (i % 64)) & 1); }
static void bor(bits *a, const bits *b)
{
	for (int i = 0; i < WORDS; i++)
		a->w[i] |= b->w[i];
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}
static int rndn(int n) { return (int)(rnd() % (uint64_t)n); }

static const char *const REP[NREP] = {"Sx", "Sy", "Sz"};

struct world {
	obj_set *set[NREP];
	bits K[NREP];
	obj_ctx *ctx[NCLI];
	bits CH[NCLI];
	bits H[MAXW];
	int is_del[MAXW];
	int dot_w[NREP][MAXW + 1]; /* (replica, counter) -> write id */
	int nw;
};

static int rep_index(const char *node)
{
	for (int i = 0; i < NREP; i++)
		if (strcmp(REP[i], node) == 0)
			return i;
	QTEST_FAIL_("unknown node %s", node);
}

/* model siblings of a history */
static bits model_max(const struct world *W, const bits *k)
{
	bits obs = {{0}}, out = {{0}};
	for (int w = 1; w <= W->nw; w++)
		if (bget(k, w))
			bor(&obs, &W->H[w]);
	for (int i = 0; i < WORDS; i++)
		out.w[i] = k->w[i] & ~obs.w[i];
	return out;
}

static bits impl_siblings(const struct world *W, const obj_set *s)
{
	bits out = {{0}};
	for (size_t i = 0; i < obj_set_count(s); i++) {
		obj_sibling b;
		obj_set_sibling(s, i, &b);
		int r = rep_index(b.node);
		ASSERT(b.counter >= 1 && b.counter <= MAXW);
		int w = W->dot_w[r][b.counter];
		ASSERT(w > 0);
		ASSERT(!bget(&out, w)); /* no duplicate */
		ASSERT_EQ(b.tombstone, W->is_del[w]);
		if (!b.tombstone) {
			char v[24];
			snprintf(v, sizeof(v), "w%d", w);
			ASSERT(q_slice_eq(b.value, q_slice_str(v)));
		}
		bset(&out, w);
	}
	return out;
}

static void check_replica(const struct world *W, int r)
{
	bits want = model_max(W, &W->K[r]);
	bits got = impl_siblings(W, W->set[r]);
	if (memcmp(&want, &got, sizeof(want)) != 0) {
		for (int w = 1; w <= W->nw; w++)
			if (bget(&want, w) != bget(&got, w))
				fprintf(stderr, "replica %s write %d: model %d impl %d\n", REP[r], w,
					bget(&want, w), bget(&got, w));
		QTEST_FAIL_("replica %s differs from the model", REP[r]);
	}
	ASSERT(obj_set_count(W->set[r]) <= NCLI);
}

static void check_algebra(obj_set *a, obj_set *b, obj_set *c)
{
	obj_set *ab, *ba, *aa, *ab_c, *bc, *a_bc;
	ASSERT_OK(obj_set_sync(a, b, &ab));
	ASSERT_OK(obj_set_sync(b, a, &ba));
	ASSERT(obj_set_equal(ab, ba));
	ASSERT_U64_EQ(obj_set_digest(ab), obj_set_digest(ba));
	ASSERT_OK(obj_set_sync(a, a, &aa));
	ASSERT(obj_set_equal(aa, a));
	ASSERT_OK(obj_set_sync(ab, c, &ab_c));
	ASSERT_OK(obj_set_sync(b, c, &bc));
	ASSERT_OK(obj_set_sync(a, bc, &a_bc));
	ASSERT(obj_set_equal(ab_c, a_bc));
	ASSERT_U64_EQ(obj_set_digest(ab_c), obj_set_digest(a_bc));
	/* digests differ exactly when sets differ (on these states) */
	ASSERT_EQ(obj_set_digest(a) == obj_set_digest(b), obj_set_equal(a, b));
	obj_set_free(ab);
	obj_set_free(ba);
	obj_set_free(aa);
	obj_set_free(ab_c);
	obj_set_free(bc);
	obj_set_free(a_bc);
}

/* dst := sync(dst, src) */
static void sync_into(struct world *W, int dst, int src)
{
	obj_set *m;
	ASSERT_OK(obj_set_sync(W->set[dst], W->set[src], &m));
	obj_set_free(W->set[dst]);
	W->set[dst] = m;
	bor(&W->K[dst], &W->K[src]);
}

static void client_read(struct world *W, int c, int r)
{
	ASSERT_OK(obj_ctx_merge(W->ctx[c], obj_set_ctx(W->set[r])));
	bor(&W->CH[c], &W->K[r]);
}

static void client_write(struct world *W, int c, int r, int del)
{
	int w = ++W->nw;
	ASSERT(w < MAXW);
	char v[24];
	snprintf(v, sizeof(v), "w%d", w);
	obj_write wr = {del, q_slice_str(v), del ? NULL : "text/plain", (int64_t)w * 1000};
	obj_set *n;
	/* the encoded context, as a client would carry it */
	q_buf cb = Q_BUF_INIT;
	obj_ctx *cc;
	ASSERT_OK(obj_ctx_encode(W->ctx[c], &cb));
	ASSERT_OK(obj_ctx_decode(cb.p, cb.len, &cc));
	q_buf_free(&cb);
	ASSERT_OK(obj_set_update(W->set[r], cc, REP[r], &wr, NULL, wr.wall_ns, &n));
	obj_ctx_free(cc);
	uint64_t ctr = obj_ctx_get(obj_set_ctx(n), REP[r]);
	ASSERT(ctr >= 1 && ctr <= MAXW);
	ASSERT_EQ(W->dot_w[r][ctr], 0); /* a fresh dot */
	W->dot_w[r][ctr] = w;
	W->is_del[w] = del;
	W->H[w] = W->CH[c];
	bor(&W->K[r], &W->CH[c]);
	bset(&W->K[r], w);
	/* the stored copy goes through the codec, like the LSM would */
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(n, &b));
	obj_set_free(n);
	obj_set_free(W->set[r]);
	ASSERT_OK(obj_set_decode(b.p, b.len, &W->set[r]));
	q_buf_free(&b);
	/* the client gets the new context back (read-your-writes) */
	client_read(W, c, r);
	/* replicate the coordinator's result to some replicas */
	for (int o = 0; o < NREP; o++)
		if (o != r && rndn(3) != 0)
			sync_into(W, o, r);
}

static int run_seed(uint64_t seed, int steps)
{
	struct world *W = calloc(1, sizeof(*W));
	ASSERT(W);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (int r = 0; r < NREP; r++)
		W->set[r] = obj_set_new();
	for (int c = 0; c < NCLI; c++)
		W->ctx[c] = obj_ctx_new();
	int max_sib = 0;
	for (int s = 0; s < steps && W->nw < MAXW - 2; s++) {
		int op = rndn(10);
		if (op < 3) {
			client_read(W, rndn(NCLI), rndn(NREP));
		} else if (op < 7) {
			client_write(W, rndn(NCLI), rndn(NREP), 0);
		} else if (op < 8) {
			client_write(W, rndn(NCLI), rndn(NREP), 1);
		} else {
			int a = rndn(NREP), b = rndn(NREP);
			sync_into(W, a, b);
			if (rndn(2))
				sync_into(W, b, a);
		}
		for (int r = 0; r < NREP; r++) {
			check_replica(W, r);
			if ((int)obj_set_count(W->set[r]) > max_sib)
				max_sib = (int)obj_set_count(W->set[r]);
		}
		if (s % 7 == 0)
			check_algebra(W->set[rndn(NREP)], W->set[rndn(NREP)], W->set[rndn(NREP)]);
	}
	/* anti-entropy to convergence; no acknowledged write is lost */
	for (int r = 1; r < NREP; r++)
		sync_into(W, 0, r);
	for (int r = 1; r < NREP; r++)
		sync_into(W, r, 0);
	for (int r = 0; r < NREP; r++) {
		check_replica(W, r);
		ASSERT(obj_set_equal(W->set[r], W->set[0]));
		ASSERT_U64_EQ(obj_set_digest(W->set[r]), obj_set_digest(W->set[0]));
	}
	bits sib = impl_siblings(W, W->set[0]);
	for (int w = 1; w <= W->nw; w++) {
		if (bget(&sib, w))
			continue;
		int covered = 0;
		for (int w2 = w + 1; w2 <= W->nw && !covered; w2++)
			covered = bget(&W->H[w2], w);
		ASSERT(covered);
	}
	for (int r = 0; r < NREP; r++)
		obj_set_free(W->set[r]);
	for (int c = 0; c < NCLI; c++)
		obj_ctx_free(W->ctx[c]);
	free(W);
	return max_sib;
}

static int long_mode(void)
{
	const char *l = getenv("QFS_LONG");
	return l && strcmp(l, "1") == 0;
}

QTEST(random_histories_match_model)
{
	int seeds = long_mode() ? 400 : 24;
	int steps = long_mode() ? 900 : 250;
	int max_sib = 0;
	for (int s = 1; s <= seeds; s++) {
		int m = run_seed((uint64_t)s, steps);
		if (m > max_sib)
			max_sib = m;
	}
	/* the histories really produced concurrency */
	ASSERT(max_sib >= 2);
	printf("model: %d seeds x %d steps, max siblings seen %d (clients %d)\n", seeds, steps,
	       max_sib, NCLI);
}

/* Merge algebra on sets with colliding dots (same dot, different content:
 * only lost data can cause it): sync stays commutative and associative. */
QTEST(sync_algebra_with_dot_collisions)
{
	obj_write w1 = {0, q_slice_str("one"), NULL, 5};
	obj_write w2 = {0, q_slice_str("two"), NULL, 5};
	obj_write w3 = {1, {NULL, 0}, NULL, 7};
	obj_set *a, *b, *c;
	ASSERT_OK(obj_set_update(NULL, NULL, "n", &w1, NULL, 0, &a));
	ASSERT_OK(obj_set_update(NULL, NULL, "n", &w2, NULL, 0, &b));
	ASSERT_OK(obj_set_update(NULL, NULL, "m", &w3, NULL, 0, &c));
	check_algebra(a, b, c);
	check_algebra(c, a, b);
	check_algebra(b, c, a);
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(c);
}

QTEST_MAIN(QT(random_histories_match_model), QT(sync_algebra_with_dot_collisions))
