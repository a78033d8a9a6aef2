/*
 * obj_ops_fuzzer.c - operation-sequence fuzz target for sibling sets under
 * dotted version vectors (src/object), checked against a causal model.
 *
 * The input is a program over one key held by three replicas ("ra", "rb",
 * "rc") and written by four clients. Operations:
 *   read       a client reads a replica: its context absorbs the replica's
 *   write      a client puts (or deletes) through a coordinating replica with
 *              the context it holds (wall time and content type from the
 *              input); the coordinator's result is queued as a message to
 *              each other replica
 *   deliver    a queued message is merged into its replica (any order,
 *              some twice, some never)
 *   sync       anti-entropy between two replicas, one way or both
 *   forget     a client drops its context (its next write is blind)
 *   restore    a replica's set goes through encode/decode (as the store keeps it)
 * The model knows no version vectors: every write w records the writes its
 * client had seen (its history H[w]); a replica knows a set K of writes; the
 * siblings it must show are the writes of K that no write in K has seen.
 *
 * Checks after every step (abort on divergence):
 *   - each replica's siblings equal the model's (so no acknowledged write
 *     disappears unless a later write observed it, and nothing it observed
 *     survives), every write's value and tombstone flag are intact;
 *   - every client's context covers the dot of every write it has seen;
 *   - live and total sibling counts stay within the number of client
 *     sessions (clients plus forgets);
 *   - merge is commutative, associative and idempotent on the states
 *     reached, digests agree exactly when sets are equal, and a set's
 *     encoding decodes to an equal set.
 * At the end every replica syncs with every other; all must be equal, and
 * every write is a sibling or was seen by a later write.
 *
 * Bounds: at most 300 operations and 250 writes per input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "util/buf.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREP 3
#define NCLI 4
#define MAXW 256
#define WORDS (MAXW / 64)
#define MAX_OPS 300
#define MAX_MSG 64

typedef struct {
	uint64_t w[WORDS];
} bits;

static void bset(bits *b, int i) { b->w[i / 64] |= 1ULL << (i % 64); }
static int bget(const bits *b, int i) { return (int)((b->w[i / 64] >> (i % 64)) & 1); }
static void bor(bits *a, const bits *b)
{
	for (int i = 0; i < WORDS; i++)
		a->w[i] |= b->w[i];
}

static const char *const REP[NREP] = {"ra", "rb", "rc"};

typedef struct {
	obj_set *set;  /* the coordinator's result */
	bits K;        /* the writes it carries */
	int to;        /* destination replica */
} msg;

typedef struct {
	obj_set *set[NREP];
	bits K[NREP];
	obj_ctx *ctx[NCLI];
	bits CH[NCLI];        /* writes each client has seen */
	bits H[MAXW];         /* history of each write */
	uint8_t is_del[MAXW];
	uint8_t rep_of[MAXW]; /* dot of each write: (REP[rep_of], ctr_of) */
	uint64_t ctr_of[MAXW];
	int dot_w[NREP][MAXW + 1];
	int nw;
	int sessions;
	msg q[MAX_MSG];
	int nq;
	int step;
} world;

static void die(const world *W, const char *what)
{
	fprintf(stderr, "obj_ops: step %d: %s\n", W->step, what);
	abort();
}

static void ok(const world *W, int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "obj_ops: step %d: %s: %s\n", W->step, what, q_strerror(rc));
		abort();
	}
}

typedef struct {
	const uint8_t *p;
	size_t n, off;
} rd;

static uint8_t u8(rd *r)
{
	return r->off < r->n ? r->p[r->off++] : 0;
}

static int rep_index(const char *node)
{
	for (int i = 0; i < NREP; i++)
		if (!strcmp(REP[i], node))
			return i;
	return -1;
}

static bits model_max(const world *W, const bits *k)
{
	bits obs = {{0}}, out = {{0}};
	for (int w = 1; w <= W->nw; w++)
		if (bget(k, w))
			bor(&obs, &W->H[w]);
	for (int i = 0; i < WORDS; i++)
		out.w[i] = k->w[i] & ~obs.w[i];
	return out;
}

static bits impl_siblings(const world *W, const obj_set *s)
{
	bits out = {{0}};
	for (size_t i = 0; i < obj_set_count(s); i++) {
		obj_sibling b;
		obj_set_sibling(s, i, &b);
		int r = rep_index(b.node);
		if (r < 0 || b.counter < 1 || b.counter > MAXW)
			die(W, "a sibling with a dot nobody issued");
		int w = W->dot_w[r][b.counter];
		if (w <= 0)
			die(W, "a sibling with a dot nobody issued");
		if (bget(&out, w))
			die(W, "a write shows twice");
		if (b.tombstone != W->is_del[w])
			die(W, "tombstone flag changed");
		if (!b.tombstone) {
			char v[24];
			snprintf(v, sizeof(v), "w%d", w);
			if (!q_slice_eq(b.value, q_slice_str(v)))
				die(W, "sibling value changed");
		}
		bset(&out, w);
	}
	return out;
}

static void check_replica(const world *W, int r)
{
	bits want = model_max(W, &W->K[r]);
	bits got = impl_siblings(W, W->set[r]);
	if (memcmp(&want, &got, sizeof(want))) {
		for (int w = 1; w <= W->nw; w++)
			if (bget(&want, w) != bget(&got, w))
				fprintf(stderr, "replica %s write %d: model %d, set %d\n", REP[r], w,
					bget(&want, w), bget(&got, w));
		die(W, "replica differs from the model");
	}
	if ((int)obj_set_count(W->set[r]) > W->sessions)
		die(W, "more siblings than concurrent client sessions");
}

static void check_ctx(const world *W, int c)
{
	for (int w = 1; w <= W->nw; w++)
		if (bget(&W->CH[c], w) &&
		    !obj_ctx_covers(W->ctx[c], REP[W->rep_of[w]], W->ctr_of[w]))
			die(W, "a client's context does not cover a write it saw");
}

static obj_set *sync2(const world *W, const obj_set *a, const obj_set *b)
{
	obj_set *m = NULL;
	ok(W, obj_set_sync(a, b, &m), "sync");
	return m;
}

static void check_algebra(const world *W, const obj_set *a, const obj_set *b, const obj_set *c)
{
	obj_set *ab = sync2(W, a, b), *ba = sync2(W, b, a), *aa = sync2(W, a, a);
	if (!obj_set_equal(ab, ba) || obj_set_digest(ab) != obj_set_digest(ba))
		die(W, "sync is not commutative");
	if (!obj_set_equal(aa, a))
		die(W, "sync is not idempotent");
	obj_set *ab_c = sync2(W, ab, c), *bc = sync2(W, b, c), *a_bc = sync2(W, a, bc);
	if (!obj_set_equal(ab_c, a_bc) || obj_set_digest(ab_c) != obj_set_digest(a_bc))
		die(W, "sync is not associative");
	obj_set *ab_b = sync2(W, ab, b);
	if (!obj_set_equal(ab_b, ab))
		die(W, "sync(sync(a, b), b) != sync(a, b)");
	if ((obj_set_digest(a) == obj_set_digest(b)) != obj_set_equal(a, b))
		die(W, "digest equality differs from set equality");
	obj_set_free(ab);
	obj_set_free(ba);
	obj_set_free(aa);
	obj_set_free(ab_c);
	obj_set_free(bc);
	obj_set_free(a_bc);
	obj_set_free(ab_b);
}

static obj_set *roundtrip(const world *W, const obj_set *s)
{
	q_buf b = Q_BUF_INIT;
	obj_set *d = NULL;
	ok(W, obj_set_encode(s, &b), "encode");
	ok(W, obj_set_decode(b.p, b.len, &d), "decode of an encoding");
	if (!obj_set_equal(d, s))
		die(W, "decode(encode(s)) != s");
	q_buf_free(&b);
	return d;
}

static void merge_into(world *W, int dst, const obj_set *in, const bits *K)
{
	obj_set *m = sync2(W, W->set[dst], in);
	obj_set_free(W->set[dst]);
	W->set[dst] = m;
	bor(&W->K[dst], K);
}

static void client_read(world *W, int c, int r)
{
	ok(W, obj_ctx_merge(W->ctx[c], obj_set_ctx(W->set[r])), "ctx merge");
	bor(&W->CH[c], &W->K[r]);
}

static void client_write(world *W, rd *r, int c, int rep, int del)
{
	int w = ++W->nw;
	char v[24];
	snprintf(v, sizeof(v), "w%d", w);
	static const char *const ct[4] = {NULL, "text/plain", "application/octet-stream", "x"};
	uint8_t t = u8(r);
	obj_write wr = {del, q_slice_str(v), ct[t & 3], (int64_t)(t >> 2) * 1000000000LL};
	/* the context as a client carries it: encoded and decoded */
	q_buf cb = Q_BUF_INIT;
	obj_ctx *cc = NULL;
	ok(W, obj_ctx_encode(W->ctx[c], &cb), "ctx encode");
	ok(W, obj_ctx_decode(cb.p, cb.len, &cc), "ctx decode");
	q_buf_free(&cb);
	obj_set *n = NULL;
	ok(W, obj_set_update(W->set[rep], cc, REP[rep], &wr, NULL, wr.wall_ns, &n), "update");
	obj_ctx_free(cc);
	uint64_t ctr = obj_ctx_get(obj_set_ctx(n), REP[rep]);
	if (ctr < 1 || ctr > MAXW || W->dot_w[rep][ctr])
		die(W, "update did not issue a fresh dot");
	W->dot_w[rep][ctr] = w;
	W->rep_of[w] = (uint8_t)rep;
	W->ctr_of[w] = ctr;
	W->is_del[w] = (uint8_t)del;
	W->H[w] = W->CH[c];
	bor(&W->K[rep], &W->CH[c]);
	bset(&W->K[rep], w);
	obj_set_free(W->set[rep]);
	W->set[rep] = n;
	/* the new sibling is there, and the client reads its own write */
	client_read(W, c, rep);
	/* queue the coordinator's result for the other replicas */
	for (int o = 0; o < NREP; o++) {
		if (o == rep || W->nq == MAX_MSG)
			continue;
		msg *m = &W->q[W->nq++];
		m->set = obj_set_clone(n);
		if (!m->set)
			die(W, "clone");
		m->K = W->K[rep];
		m->to = o;
	}
}

static void deliver(world *W, int i, int keep)
{
	msg *m = &W->q[i];
	merge_into(W, m->to, m->set, &m->K);
	if (keep)
		return; /* a duplicate may arrive later */
	obj_set_free(m->set);
	W->q[i] = W->q[--W->nq];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rd r = {data, size, 0};
	world *W = calloc(1, sizeof(*W));
	if (!W)
		return 0;
	for (int i = 0; i < NREP; i++)
		if (!(W->set[i] = obj_set_new()))
			abort();
	for (int c = 0; c < NCLI; c++)
		if (!(W->ctx[c] = obj_ctx_new()))
			abort();
	W->sessions = NCLI;
	for (W->step = 0; W->step < MAX_OPS && r.off < r.n && W->nw < MAXW - 1; W->step++) {
		uint8_t op = u8(&r);
		uint8_t a = u8(&r);
		int c = a % NCLI, rep = (a >> 2) % NREP, rep2 = (a >> 4) % NREP;
		switch (op % 12) {
		case 0: case 1:
			client_read(W, c, rep);
			break;
		case 2: case 3: case 4:
			client_write(W, &r, c, rep, 0);
			break;
		case 5:
			client_write(W, &r, c, rep, 1);
			break;
		case 6: case 7:
			if (W->nq)
				deliver(W, u8(&r) % W->nq, (a & 0x80) != 0);
			break;
		case 8:
			merge_into(W, rep, W->set[rep2], &W->K[rep2]);
			if (a & 0x80)
				merge_into(W, rep2, W->set[rep], &W->K[rep]);
			break;
		case 9:
			obj_ctx_free(W->ctx[c]);
			if (!(W->ctx[c] = obj_ctx_new()))
				abort();
			memset(&W->CH[c], 0, sizeof(W->CH[c]));
			W->sessions++;
			break;
		case 10: {
			obj_set *d = roundtrip(W, W->set[rep]);
			obj_set_free(W->set[rep]);
			W->set[rep] = d;
			break;
		}
		case 11:
			check_algebra(W, W->set[rep], W->set[rep2], W->set[(rep + 1) % NREP]);
			if (W->nq)
				check_algebra(W, W->q[u8(&r) % W->nq].set, W->set[rep], W->set[rep2]);
			break;
		}
		for (int i = 0; i < NREP; i++)
			check_replica(W, i);
		for (int i = 0; i < NCLI; i++)
			check_ctx(W, i);
	}
	/* heal: every message delivered, anti-entropy all round */
	while (W->nq)
		deliver(W, W->nq - 1, 0);
	for (int i = 1; i < NREP; i++)
		merge_into(W, 0, W->set[i], &W->K[i]);
	for (int i = 1; i < NREP; i++)
		merge_into(W, i, W->set[0], &W->K[0]);
	for (int i = 0; i < NREP; i++) {
		check_replica(W, i);
		if (!obj_set_equal(W->set[i], W->set[0]) ||
		    obj_set_digest(W->set[i]) != obj_set_digest(W->set[0]))
			die(W, "replicas differ after a full sync");
	}
	bits sib = impl_siblings(W, W->set[0]);
	for (int w = 1; w <= W->nw; w++) {
		if (bget(&sib, w))
			continue;
		int seen = 0;
		for (int w2 = w + 1; w2 <= W->nw && !seen; w2++)
			seen = bget(&W->H[w2], w);
		if (!seen)
			die(W, "a write vanished that no later write had seen");
	}
	obj_set *d = roundtrip(W, W->set[0]);
	obj_set_free(d);
	for (int i = 0; i < NREP; i++)
		obj_set_free(W->set[i]);
	for (int c = 0; c < NCLI; c++)
		obj_ctx_free(W->ctx[c]);
	free(W);
	return 0;
}
