/* Unit tests: src/aae/aae_exchange (tree exchange state machine and
 * responder), run between two replicas held in memory: each replica is a
 * sorted key -> digest table (its "store") and an aae_tree kept up to date
 * on every write, as the node will do. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_exchange.h"
#include "qtest.h"
#include "util/qerr.h"
#include "util/qtime.h"

/* The number in a test key ("key-0000123", "file/00123"); keys in slices
 * are not NUL-terminated. */
static int key_index(q_slice k)
{
	char tmp[32];
	size_t n = k.n < sizeof tmp - 1 ? k.n : sizeof tmp - 1;
	memcpy(tmp, k.p, n);
	tmp[n] = 0;
	return n > 4 ? atoi(tmp + 4) : -1;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

#define MAXK 40000
typedef struct replica {
	char (*key)[20];
	uint64_t *digest;
	uint8_t *has;
	int n;           /* key slots; slot i holds key name i */
	aae_tree *tree;
	aae_keysrc src;
	uint64_t listings;
} replica;

static int rep_list(void *ctx, uint64_t rs, uint64_t re, unsigned depth, uint32_t bucket,
		    aae_emit_fn emit, void *ectx)
{
	replica *r = ctx;
	(void)rs;
	(void)re;
	r->listings++;
	for (int i = 0; i < r->n; i++) {
		if (!r->has[i])
			continue;
		q_slice k = q_slice_str(r->key[i]);
		if (aae_bucket_of(k, depth) != bucket)
			continue;
		int rc = emit(ectx, k, r->digest[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void rep_init(replica *r, int n, unsigned depth)
{
	memset(r, 0, sizeof *r);
	r->key = calloc((size_t)n, sizeof *r->key);
	r->digest = calloc((size_t)n, sizeof *r->digest);
	r->has = calloc((size_t)n, 1);
	ASSERT(r->key && r->digest && r->has);
	r->n = n;
	for (int i = 0; i < n; i++)
		snprintf(r->key[i], sizeof r->key[i], "key-%07d", i);
	ASSERT_OK(aae_tree_new(depth, 100, 200, &r->tree));
	aae_tree_set_ready(r->tree, 1);
	r->src.list = rep_list;
	r->src.ctx = r;
}

static void rep_free(replica *r)
{
	aae_tree_free(r->tree);
	free(r->key);
	free(r->digest);
	free(r->has);
}

/* A write on a replica: store and tree together. */
static void rep_put(replica *r, int i, uint64_t d)
{
	q_slice k = q_slice_str(r->key[i]);
	ASSERT_OK(aae_tree_update(r->tree, k, r->has[i] ? &r->digest[i] : NULL, &d));
	r->digest[i] = d;
	r->has[i] = 1;
}

static void rep_del(replica *r, int i)
{
	ASSERT(r->has[i]);
	ASSERT_OK(aae_tree_remove(r->tree, q_slice_str(r->key[i]), r->digest[i]));
	r->has[i] = 0;
}

/* Runs an exchange from a against b to completion; bounded in rounds. */
static aae_exchange *run(replica *a, replica *b, const aae_exchange_opts *o,
			 size_t max_resp)
{
	aae_exchange *x;
	ASSERT_OK(aae_exchange_new(a->tree, &a->src, o, 42, &x));
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	for (int round = 0; round < 100000; round++) {
		q_buf_reset(&req);
		int rc = aae_exchange_next(x, &req);
		if (rc <= 0)
			break;
		ASSERT_EQ(aae_exchange_next(x, &req), -EBUSY);
		q_buf_reset(&resp);
		ASSERT_OK(aae_serve(b->tree, &b->src, req.p, req.len, max_resp, &resp));
		if (aae_exchange_consume(x, resp.p, resp.len) < 0)
			break;
	}
	q_buf_free(&req);
	q_buf_free(&resp);
	return x;
}

static int total_nodes(unsigned depth)
{
	int n = 0;
	for (unsigned l = 0; l <= depth; l++)
		n += (int)aae_level_width(l);
	return n;
}

QTEST(equal_trees_one_round)
{
	replica a, b;
	rep_init(&a, 5000, 4);
	rep_init(&b, 5000, 4);
	for (int i = 0; i < 5000; i++) {
		uint64_t d = rnd();
		rep_put(&a, i, d);
		rep_put(&b, i, d);
	}
	aae_exchange *x = run(&a, &b, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	ASSERT_EQ(st.requests, 1);
	ASSERT_EQ(st.nodes_compared, 1);
	ASSERT_EQ(aae_exchange_ndiffs(x), 0);
	ASSERT_EQ(a.listings + b.listings, 0);
	aae_exchange_free(x);
	rep_free(&a);
	rep_free(&b);
}

/* Diverges k keys (a third missing on a, a third missing on b, a third with
 * different digests) and checks the exchange finds exactly them. */
static void diverge_and_check(int n, int k, unsigned depth, size_t max_resp,
			      const aae_exchange_opts *o)
{
	replica a, b;
	rep_init(&a, n, depth);
	rep_init(&b, n, depth);
	for (int i = 0; i < n; i++) {
		uint64_t d = rnd();
		rep_put(&a, i, d);
		rep_put(&b, i, d);
	}
	uint8_t *kind = calloc((size_t)n, 1); /* 0 same, 1 only b, 2 only a, 3 differ */
	ASSERT(kind);
	int made = 0;
	while (made < k) {
		int i = (int)(rnd() % (uint64_t)n);
		if (kind[i])
			continue;
		kind[i] = (uint8_t)(1 + made % 3);
		if (kind[i] == 1)
			rep_del(&a, i);
		else if (kind[i] == 2)
			rep_del(&b, i);
		else
			rep_put(&b, i, b.digest[i] + 1);
		made++;
	}
	aae_exchange *x = run(&a, &b, o, max_resp);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	ASSERT_EQ(aae_exchange_ndiffs(x), k);
	int *seen = calloc((size_t)n, sizeof(int));
	ASSERT(seen);
	for (size_t j = 0; j < aae_exchange_ndiffs(x); j++) {
		aae_diff d;
		aae_exchange_diff(x, j, &d);
		int i = key_index(d.key);
		ASSERT(i >= 0 && i < n);
		ASSERT_EQ(d.key.n, strlen(a.key[i]));
		ASSERT(kind[i] != 0);
		ASSERT_EQ(seen[i], 0);
		seen[i] = 1;
		ASSERT_EQ(d.local_has, a.has[i]);
		ASSERT_EQ(d.remote_has, b.has[i]);
		if (d.local_has)
			ASSERT_U64_EQ(d.local_digest, a.digest[i]);
		if (d.remote_has)
			ASSERT_U64_EQ(d.remote_digest, b.digest[i]);
	}
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	ASSERT_EQ(st.diffs, k);
	ASSERT_EQ(st.leaves_fixed, 0);
	/* compared nodes: root + 16 per differing inner node; at most
	 * 1 + 16 * k * depth and far fewer than the whole tree */
	ASSERT(st.nodes_compared <= 1 + (uint64_t)AAE_FANOUT * (uint64_t)k * depth);
	if ((uint64_t)k * depth * AAE_FANOUT * 10 < (uint64_t)total_nodes(depth))
		ASSERT(st.nodes_compared * 10 < (uint64_t)total_nodes(depth));
	if (k == 1)
		ASSERT_EQ(st.nodes_compared, 1 + AAE_FANOUT * depth);
	/* only differing buckets were listed: at most k locally; the peer
	 * lists a bucket it had to drop from a full answer once more */
	ASSERT(st.buckets_compared <= (uint64_t)k);
	ASSERT(a.listings <= (uint64_t)k && b.listings <= 2 * (uint64_t)k);
	fprintf(stderr, "  n=%d k=%d depth=%u: %llu nodes compared of %d, %llu buckets, "
		"%llu requests, %llu+%llu bytes\n", n, k, depth,
		(unsigned long long)st.nodes_compared, total_nodes(depth),
		(unsigned long long)st.buckets_compared, (unsigned long long)st.requests,
		(unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_received);

	/* sync both ways (merge = the larger digest wins on both sides, a key
	 * present on one side is copied to the other): roots become equal */
	for (size_t j = 0; j < aae_exchange_ndiffs(x); j++) {
		aae_diff d;
		aae_exchange_diff(x, j, &d);
		int i = key_index(d.key);
		uint64_t m = !d.local_has ? d.remote_digest : !d.remote_has ? d.local_digest :
			     d.local_digest > d.remote_digest ? d.local_digest : d.remote_digest;
		rep_put(&a, i, m);
		rep_put(&b, i, m);
	}
	ASSERT_U64_EQ(aae_tree_root(a.tree), aae_tree_root(b.tree));
	aae_exchange_free(x);
	x = run(&a, &b, o, max_resp);
	ASSERT_EQ(aae_exchange_ndiffs(x), 0);
	aae_exchange_free(x);
	free(seen);
	free(kind);
	rep_free(&a);
	rep_free(&b);
}

QTEST(finds_exactly_one_key)
{
	diverge_and_check(20000, 1, 4, 1 << 20, NULL);
}

static int long_run(void)
{
	const char *l = getenv("QFS_LONG");
	return l && l[0] == '1';
}

QTEST(finds_exactly_k_keys)
{
	diverge_and_check(20000, 10, 4, 1 << 20, NULL);
	diverge_and_check(20000, 200, 4, 1 << 20, NULL);
	diverge_and_check(3000, 3000, 2, 1 << 20, NULL); /* everything differs */
	if (long_run()) {
		/* QFS_LONG=1: larger stores, more seeds, every depth */
		for (unsigned d = 1; d <= 5; d++)
			for (int seed = 0; seed < 3; seed++)
				diverge_and_check(MAXK, 1 + (int)(rnd() % 400), d, 1 << 16, NULL);
	}
}

QTEST(small_batches_and_messages)
{
	aae_exchange_opts o;
	aae_exchange_opts_default(&o);
	o.max_nodes_per_req = 3;
	o.max_buckets_per_req = 5;
	/* 200 bytes: most bucket answers carry one bucket, the rest is asked
	 * again (the prefix rule) */
	diverge_and_check(20000, 150, 3, 200, &o);
}

QTEST(empty_side)
{
	replica a, b;
	rep_init(&a, 2000, 3);
	rep_init(&b, 2000, 3);
	for (int i = 0; i < 2000; i++)
		rep_put(&b, i, rnd());
	aae_exchange *x = run(&a, &b, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	ASSERT_EQ(aae_exchange_ndiffs(x), 2000);
	for (size_t j = 0; j < 2000; j++) {
		aae_diff d;
		aae_exchange_diff(x, j, &d);
		ASSERT(!d.local_has && d.remote_has);
	}
	aae_exchange_free(x);
	rep_free(&a);
	rep_free(&b);
}

QTEST(truncates_at_max_diffs)
{
	replica a, b;
	rep_init(&a, 3000, 3);
	rep_init(&b, 3000, 3);
	for (int i = 0; i < 3000; i++)
		rep_put(&b, i, rnd());
	aae_exchange_opts o;
	aae_exchange_opts_default(&o);
	o.max_diffs = 100;
	aae_exchange *x = run(&a, &b, &o, 1 << 20);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	ASSERT_EQ(st.truncated, 1);
	ASSERT_EQ(aae_exchange_ndiffs(x), 100);
	aae_exchange_free(x);
	rep_free(&a);
	rep_free(&b);
}

QTEST(wrong_local_leaf_is_repaired)
{
	replica a, b;
	rep_init(&a, 2000, 3);
	rep_init(&b, 2000, 3);
	for (int i = 0; i < 2000; i++) {
		uint64_t d = rnd();
		rep_put(&a, i, d);
		rep_put(&b, i, d);
	}
	/* a's tree misses an update its store has (a lost hook) */
	uint32_t bk = aae_bucket_of(q_slice_str(a.key[7]), 3);
	uint64_t leaf;
	ASSERT_OK(aae_tree_node(a.tree, 3, bk, &leaf));
	ASSERT_EQ(aae_tree_fix_leaf(a.tree, bk, leaf, leaf + 12345), 1);
	aae_exchange *x = run(&a, &b, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_ndiffs(x), 0); /* stores are equal */
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	ASSERT_EQ(st.leaves_fixed, 1);
	ASSERT_U64_EQ(aae_tree_root(a.tree), aae_tree_root(b.tree));
	aae_exchange_free(x);
	rep_free(&a);
	rep_free(&b);
}

QTEST(refuses_unready_and_mismatched)
{
	replica a, b;
	rep_init(&a, 10, 3);
	rep_init(&b, 10, 3);
	rep_put(&a, 1, 1);
	aae_exchange *x;
	/* not-ready local tree: no exchange */
	aae_tree_set_ready(a.tree, 0);
	ASSERT_EQ(aae_exchange_new(a.tree, &a.src, NULL, 1, &x), -EINVAL);
	aae_tree_set_ready(a.tree, 1);
	/* not-ready remote: the peer answers ERROR(Q_EBUSY) */
	aae_tree_set_ready(b.tree, 0);
	x = run(&a, &b, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_FAILED);
	ASSERT_EQ(aae_exchange_error(x), Q_EBUSY);
	aae_exchange_free(x);
	aae_tree_set_ready(b.tree, 1);
	/* a peer with another range: ERROR(Q_ENOTFOUND) */
	replica c;
	rep_init(&c, 10, 3);
	aae_tree_free(c.tree);
	ASSERT_OK(aae_tree_new(3, 100, 201, &c.tree));
	aae_tree_set_ready(c.tree, 1);
	x = run(&a, &c, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_error(x), Q_ENOTFOUND);
	aae_exchange_free(x);
	/* a peer with another depth: Q_EPROTO */
	aae_tree_free(c.tree);
	ASSERT_OK(aae_tree_new(2, 100, 200, &c.tree));
	aae_tree_set_ready(c.tree, 1);
	x = run(&a, &c, NULL, 1 << 20);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_FAILED);
	ASSERT_EQ(aae_exchange_error(x), Q_EPROTO);
	/* sticky */
	q_buf req = Q_BUF_INIT;
	ASSERT_EQ(aae_exchange_next(x, &req), Q_EPROTO);
	aae_exchange_free(x);
	rep_free(&c);
	rep_free(&a);
	rep_free(&b);
	q_buf_free(&req);
}

QTEST(rejects_bad_responses)
{
	replica a, b;
	rep_init(&a, 100, 2);
	rep_init(&b, 100, 2);
	rep_put(&a, 1, 1);
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	aae_exchange *x;
	aae_msg_hdr h = {0, 42, 100, 200};

	/* response without a request */
	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	ASSERT_OK(aae_msg_put_root_resp(&resp, &h, 2, 5, 0));
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_EPROTO);
	aae_exchange_free(x);

	/* garbage, wrong xid, wrong type, bad children answer */
	const uint8_t junk[] = {1, 2, 3};
	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	ASSERT(aae_exchange_consume(x, junk, sizeof junk) < 0);
	ASSERT_EQ(aae_exchange_state(x), AAE_X_FAILED);
	aae_exchange_free(x);

	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 43, &x));
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_EPROTO); /* xid 42 != 43 */
	aae_exchange_free(x);

	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	q_buf_reset(&req);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	q_buf_reset(&resp);
	uint32_t bucket = 0;
	ASSERT_OK(aae_msg_put_buckets_req(&resp, &h, &bucket, 1)); /* a request, not an answer */
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_EPROTO);
	aae_exchange_free(x);

	/* children for other nodes than asked */
	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	q_buf_reset(&req);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	q_buf_reset(&resp);
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	aae_tree_set_ready(b.tree, 1);
	q_buf_reset(&resp);
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_OK(aae_exchange_consume(x, resp.p, resp.len));
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DESCEND);
	q_buf_reset(&req);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	uint32_t node = 0;
	uint64_t hashes[AAE_FANOUT] = {0};
	q_buf_reset(&resp);
	ASSERT_OK(aae_msg_put_children_resp(&resp, &h, 1, &node, hashes, 1)); /* level 1, asked 0 */
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_EPROTO);
	aae_exchange_free(x);

	/* a bucket answer holding a key of another bucket */
	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	for (int round = 0; round < 10 && aae_exchange_state(x) != AAE_X_BUCKETS; round++) {
		q_buf_reset(&req);
		ASSERT_EQ(aae_exchange_next(x, &req), 1);
		q_buf_reset(&resp);
		ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
		ASSERT_OK(aae_exchange_consume(x, resp.p, resp.len));
	}
	ASSERT_EQ(aae_exchange_state(x), AAE_X_BUCKETS);
	q_buf_reset(&req);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	aae_msg m;
	ASSERT_OK(aae_msg_decode(req.p, req.len, &m));
	ASSERT_EQ(m.nbuckets, 1);
	ASSERT_EQ(m.buckets[0], aae_bucket_of(q_slice_str(a.key[1]), 2));
	aae_bresp_writer w;
	q_buf_reset(&resp);
	ASSERT_OK(aae_bresp_begin(&w, &resp, &h));
	ASSERT_OK(aae_bresp_bucket(&w, m.buckets[0]));
	const char *other = NULL;
	for (int i = 0; i < 100; i++)
		if (aae_bucket_of(q_slice_str(a.key[i]), 2) != m.buckets[0]) {
			other = a.key[i];
			break;
		}
	ASSERT(other);
	ASSERT_OK(aae_bresp_pair(&w, q_slice_str(other), 9));
	aae_bresp_end(&w);
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_EPROTO);
	aae_msg_free(&m);
	aae_exchange_free(x);

	/* abort (transport timeout) */
	ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, 42, &x));
	q_buf_reset(&req);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	aae_exchange_abort(x, Q_ETIMEOUT);
	ASSERT_EQ(aae_exchange_error(x), Q_ETIMEOUT);
	aae_exchange_free(x);

	q_buf_free(&req);
	q_buf_free(&resp);
	rep_free(&a);
	rep_free(&b);
}

QTEST(serve_rejects_bad_requests)
{
	replica b;
	rep_init(&b, 10, 2);
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	aae_msg_hdr h = {0, 1, 100, 200};
	aae_msg m;
	/* undecodable header: no response */
	const uint8_t junk[] = {9, 9};
	ASSERT(aae_serve(b.tree, &b.src, junk, sizeof junk, 1 << 20, &resp) < 0);
	ASSERT_EQ(resp.len, 0);
	/* children below the leaves */
	uint32_t node = 0;
	ASSERT_OK(aae_msg_put_children_req(&req, &h, 2, &node, 1));
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_OK(aae_msg_decode(resp.p, resp.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ERROR);
	ASSERT_EQ(m.code, Q_EPROTO);
	aae_msg_free(&m);
	/* node index out of range for the level */
	q_buf_reset(&req);
	q_buf_reset(&resp);
	node = 16;
	ASSERT_OK(aae_msg_put_children_req(&req, &h, 0, &node, 1));
	ASSERT_EQ(aae_msg_decode(req.p, req.len, &m), Q_EPROTO); /* the codec already refuses */
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_OK(aae_msg_decode(resp.p, resp.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ERROR);
	aae_msg_free(&m);
	/* bucket beyond this tree's leaves */
	q_buf_reset(&req);
	q_buf_reset(&resp);
	uint32_t bk = 256;
	ASSERT_OK(aae_msg_put_buckets_req(&req, &h, &bk, 1));
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_OK(aae_msg_decode(resp.p, resp.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ERROR);
	aae_msg_free(&m);
	/* a response sent as a request */
	q_buf_reset(&req);
	q_buf_reset(&resp);
	ASSERT_OK(aae_msg_put_root_resp(&req, &h, 2, 0, 0));
	ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_OK(aae_msg_decode(resp.p, resp.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ERROR);
	ASSERT_EQ(m.h.xid, 1);
	aae_msg_free(&m);
	q_buf_free(&req);
	q_buf_free(&resp);
	rep_free(&b);
}

/* Writes keep landing on both replicas while exchanges run; after each
 * exchange the diffs are synced both ways. Replicas must converge once the
 * writes stop, within a bounded number of rounds. */
QTEST(converges_under_concurrent_writes)
{
	replica a, b;
	const int n = 4000;
	rep_init(&a, n, 3);
	rep_init(&b, n, 3);
	for (int i = 0; i < n; i += 2) {
		uint64_t d = rnd();
		rep_put(&a, i, d);
		rep_put(&b, i, d);
	}
	int rounds = 0, writing = 1;
	for (; rounds < 20; rounds++) {
		aae_exchange *x;
		ASSERT_OK(aae_exchange_new(a.tree, &a.src, NULL, (uint64_t)rounds, &x));
		q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
		for (int step = 0; step < 10000; step++) {
			q_buf_reset(&req);
			if (aae_exchange_next(x, &req) <= 0)
				break;
			/* foreground writes between the exchange's steps */
			for (int w = 0; writing && w < 5; w++) {
				int i = (int)(rnd() % (uint64_t)n);
				if (rnd() & 1)
					rep_put(&a, i, rnd());
				else
					rep_put(&b, i, rnd());
			}
			q_buf_reset(&resp);
			ASSERT_OK(aae_serve(b.tree, &b.src, req.p, req.len, 4096, &resp));
			ASSERT_OK(aae_exchange_consume(x, resp.p, resp.len));
		}
		ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
		size_t nd = aae_exchange_ndiffs(x);
		/* sync: re-read both current values (they may have moved on
		 * since the exchange saw them) and merge: larger digest wins */
		for (size_t j = 0; j < nd; j++) {
			aae_diff d;
			aae_exchange_diff(x, j, &d);
			int i = key_index(d.key);
			ASSERT(i >= 0 && i < n);
			if (!a.has[i] && !b.has[i])
				continue;
			uint64_t m = !a.has[i] ? b.digest[i] : !b.has[i] ? a.digest[i] :
				     a.digest[i] > b.digest[i] ? a.digest[i] : b.digest[i];
			rep_put(&a, i, m);
			rep_put(&b, i, m);
		}
		aae_exchange_free(x);
		q_buf_free(&req);
		q_buf_free(&resp);
		if (rounds == 5)
			writing = 0; /* writes stop; the next rounds must converge */
		if (!writing && nd == 0)
			break;
	}
	ASSERT(rounds < 20);
	ASSERT_U64_EQ(aae_tree_root(a.tree), aae_tree_root(b.tree));
	for (int i = 0; i < n; i++) {
		ASSERT_EQ(a.has[i], b.has[i]);
		if (a.has[i])
			ASSERT_U64_EQ(a.digest[i], b.digest[i]);
	}
	rep_free(&a);
	rep_free(&b);
}

/* A node's lookup over a small array of trees. */
typedef struct node_trees {
	aae_tree *t[4];
	int n;
} node_trees;

static aae_tree *nt_lookup(void *ctx, uint64_t start, uint64_t end)
{
	node_trees *nt = ctx;
	for (int i = 0; i < nt->n; i++) {
		uint64_t s, e;
		aae_tree_range(nt->t[i], &s, &e);
		if (s == start && e == end)
			return nt->t[i];
	}
	return NULL;
}

QTEST(roots_of_many_ranges)
{
	/* this node: ranges (0,10] (10,20] (20,30] (30,40]; the peer holds
	 * the first three, the third not ready, the second with a difference */
	node_trees me = {{0}, 4}, peer = {{0}, 3};
	for (int i = 0; i < 4; i++) {
		ASSERT_OK(aae_tree_new(2, (uint64_t)i * 10, (uint64_t)i * 10 + 10, &me.t[i]));
		aae_tree_set_ready(me.t[i], 1);
		ASSERT_OK(aae_tree_insert(me.t[i], q_slice_str("k"), (uint64_t)i));
		if (i < 3) {
			ASSERT_OK(aae_tree_new(2, (uint64_t)i * 10, (uint64_t)i * 10 + 10, &peer.t[i]));
			aae_tree_set_ready(peer.t[i], i != 2);
			ASSERT_OK(aae_tree_insert(peer.t[i], q_slice_str("k"), i == 1 ? 99 : (uint64_t)i));
		}
	}
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	ASSERT_OK(aae_roots_request(me.t, 4, 31, &req));
	replica dummy;
	rep_init(&dummy, 1, 2);
	ASSERT_OK(aae_serve_node(nt_lookup, &peer, &dummy.src, req.p, req.len, 1 << 20, &resp));
	int out[4];
	ASSERT_OK(aae_roots_compare(me.t, 4, 31, resp.p, resp.len, out));
	ASSERT_EQ(out[0], 0);
	ASSERT_EQ(out[1], 1);
	ASSERT_EQ(out[2], -1); /* not ready there */
	ASSERT_EQ(out[3], -1); /* unknown there */
	ASSERT_EQ(aae_roots_compare(me.t, 4, 32, resp.p, resp.len, out), Q_EPROTO); /* xid */
	ASSERT_EQ(aae_roots_compare(me.t, 3, 31, resp.p, resp.len, out), Q_EPROTO); /* count */
	aae_tree *unsorted[2] = {me.t[1], me.t[0]};
	ASSERT_EQ(aae_roots_request(unsorted, 2, 1, &req), -EINVAL);
	/* a per-range request through the node-wide responder */
	aae_exchange *x;
	ASSERT_OK(aae_exchange_new(me.t[3], &dummy.src, NULL, 1, &x));
	q_buf_reset(&req);
	q_buf_reset(&resp);
	ASSERT_EQ(aae_exchange_next(x, &req), 1);
	ASSERT_OK(aae_serve_node(nt_lookup, &peer, &dummy.src, req.p, req.len, 1 << 20, &resp));
	ASSERT_EQ(aae_exchange_consume(x, resp.p, resp.len), Q_ENOTFOUND);
	aae_exchange_free(x);
	for (int i = 0; i < 4; i++)
		aae_tree_free(me.t[i]);
	for (int i = 0; i < 3; i++)
		aae_tree_free(peer.t[i]);
	rep_free(&dummy);
	q_buf_free(&req);
	q_buf_free(&resp);
}

/* ---- figures: a large range, bucket-indexed in-memory stores ----------------
 * Prints the cost of finding 1% differing keys (10,000 of 1M keys with
 * QFS_LONG=1, 1,000 of 100k otherwise) and checks it stays proportional to
 * the differences: every differing key found, and the bytes exchanged per
 * differing key bounded by the keys of one bucket. */
typedef struct bigstore {
	int n;
	char (*key)[16];
	uint64_t *dig;
	uint8_t *has;
	uint32_t *order, *bstart; /* key numbers sorted by bucket */
	unsigned depth;
} bigstore;

static int big_list(void *ctx, uint64_t rs, uint64_t re, unsigned depth, uint32_t b,
		    aae_emit_fn emit, void *ectx)
{
	bigstore *s = ctx;
	(void)rs;
	(void)re;
	(void)depth;
	for (uint32_t j = s->bstart[b]; j < s->bstart[b + 1]; j++) {
		uint32_t i = s->order[j];
		if (s->has[i])
			Q_RET(emit(ectx, q_slice_str(s->key[i]), s->dig[i]));
	}
	return 0;
}

static uint32_t *sort_bk;
static int by_bucket(const void *a, const void *b)
{
	uint32_t x = sort_bk[*(const uint32_t *)a], y = sort_bk[*(const uint32_t *)b];
	return x < y ? -1 : x > y;
}

QTEST(figures_one_percent)
{
	const int n = long_run() ? 1000000 : 100000;
	const unsigned depth = 4;
	bigstore a = {0}, b = {0};
	a.n = b.n = n;
	a.depth = b.depth = depth;
	a.key = malloc((size_t)n * sizeof *a.key);
	a.dig = malloc((size_t)n * 8);
	b.dig = malloc((size_t)n * 8);
	a.has = malloc((size_t)n);
	b.has = malloc((size_t)n);
	a.order = malloc((size_t)n * 4);
	sort_bk = malloc((size_t)n * 4);
	uint32_t nb = aae_level_width(depth);
	a.bstart = calloc(nb + 1, 4);
	ASSERT(a.key && a.dig && b.dig && a.has && b.has && a.order && sort_bk && a.bstart);
	b.key = a.key;
	b.order = a.order;
	b.bstart = a.bstart;
	aae_tree *ta, *tb;
	ASSERT_OK(aae_tree_new(depth, 0, 0, &ta));
	ASSERT_OK(aae_tree_new(depth, 0, 0, &tb));
	for (int i = 0; i < n; i++) {
		snprintf(a.key[i], sizeof a.key[i], "key%09d", i);
		a.dig[i] = b.dig[i] = rnd();
		a.has[i] = b.has[i] = 1;
		sort_bk[i] = aae_bucket_of(q_slice_str(a.key[i]), depth);
		a.order[i] = (uint32_t)i;
		a.bstart[sort_bk[i] + 1]++;
	}
	qsort(a.order, (size_t)n, 4, by_bucket);
	for (uint32_t k = 0; k < nb; k++)
		a.bstart[k + 1] += a.bstart[k];
	/* 1%: a third missing on b, the rest with another digest on b */
	int k = n / 100;
	uint64_t diff_bytes = 0;
	for (int j = 0; j < k; j++) {
		int i = j * 100;
		if (j % 3 == 0)
			b.has[i] = 0;
		else
			b.dig[i] ^= 1;
		diff_bytes += strlen(a.key[i]) + 8;
	}
	uint64_t t0 = q_mono_ns();
	for (int i = 0; i < n; i++) {
		ASSERT_OK(aae_tree_insert(ta, q_slice_str(a.key[i]), a.dig[i]));
		if (b.has[i])
			ASSERT_OK(aae_tree_insert(tb, q_slice_str(b.key[i]), b.dig[i]));
	}
	uint64_t t1 = q_mono_ns();
	aae_tree_set_ready(ta, 1);
	aae_tree_set_ready(tb, 1);
	aae_keysrc sa = {big_list, &a}, sb = {big_list, &b};
	aae_exchange *x;
	ASSERT_OK(aae_exchange_new(ta, &sa, NULL, 5, &x));
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	uint64_t t2 = q_mono_ns();
	for (int round = 0; round < 100000; round++) {
		q_buf_reset(&req);
		if (aae_exchange_next(x, &req) <= 0)
			break;
		q_buf_reset(&resp);
		ASSERT_OK(aae_serve(tb, &sb, req.p, req.len, 1 << 20, &resp));
		ASSERT_OK(aae_exchange_consume(x, resp.p, resp.len));
	}
	uint64_t t3 = q_mono_ns();
	ASSERT_EQ(aae_exchange_state(x), AAE_X_DONE);
	ASSERT_EQ(aae_exchange_ndiffs(x), k);
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	uint64_t bytes = st.bytes_sent + st.bytes_received;
	double per_key = (double)bytes / k;
	double keys_per_bucket = (double)n / nb;
	fprintf(stderr, "  %d keys, %d differ, depth %u: tree updates %.0f ns/key; exchange %.1f ms, "
		"%llu requests, %llu of %u nodes compared, %llu buckets listed, %llu bytes "
		"(%.0f per differing key; differing pairs themselves %llu bytes)\n",
		n, k, depth, (double)(t1 - t0) / (2.0 * n), (t3 - t2) / 1e6,
		(unsigned long long)st.requests, (unsigned long long)st.nodes_compared,
		(nb * AAE_FANOUT - 1) / (AAE_FANOUT - 1), (unsigned long long)st.buckets_compared,
		(unsigned long long)bytes, per_key, (unsigned long long)diff_bytes);
	/* a differing key costs at most its bucket's listing (keys_per_bucket
	 * pairs of ~21 bytes, with slack for uneven buckets) plus the hashes
	 * of its descent path (16 x 8 bytes per level) */
	ASSERT(per_key < (keys_per_bucket * 3 + 4) * 21 + depth * AAE_FANOUT * 8);
	aae_exchange_free(x);
	q_buf_free(&req);
	q_buf_free(&resp);
	aae_tree_free(ta);
	aae_tree_free(tb);
	free(a.key);
	free(a.dig);
	free(b.dig);
	free(a.has);
	free(b.has);
	free(a.order);
	free(a.bstart);
	free(sort_bk);
}

QTEST_MAIN(QT(equal_trees_one_round), QT(finds_exactly_one_key), QT(finds_exactly_k_keys),
	   QT(small_batches_and_messages), QT(empty_side), QT(truncates_at_max_diffs),
	   QT(wrong_local_leaf_is_repaired), QT(refuses_unready_and_mismatched),
	   QT(rejects_bad_responses), QT(serve_rejects_bad_requests),
	   QT(converges_under_concurrent_writes), QT(roots_of_many_ranges),
	   QT(figures_one_percent))
