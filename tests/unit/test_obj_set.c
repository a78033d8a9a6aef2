/*
 * test_obj_set.c - unit tests of src/object: the D1..D4 example, updates,
 * sync, context comparison, codecs and their error paths, pruning, digests
 * and the tombstone-reaping decision.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "object/obj.h"
#include "qtest.h"
#include "util/qerr.h"

static obj_set *put(const obj_set *cur, const obj_ctx *ctx, const char *node, const char *val,
		    int64_t wall)
{
	obj_write w = {0, q_slice_str(val), NULL, wall};
	obj_set *out = NULL;
	ASSERT_OK(obj_set_update(cur, ctx, node, &w, NULL, wall, &out));
	return out;
}

static obj_set *del(const obj_set *cur, const obj_ctx *ctx, const char *node, int64_t wall)
{
	obj_write w = {1, {NULL, 0}, NULL, wall};
	obj_set *out = NULL;
	ASSERT_OK(obj_set_update(cur, ctx, node, &w, NULL, wall, &out));
	return out;
}

static int has_value(const obj_set *s, const char *val)
{
	for (size_t i = 0; i < obj_set_count(s); i++) {
		obj_sibling b;
		obj_set_sibling(s, i, &b);
		if (!b.tombstone && q_slice_eq(b.value, q_slice_str(val)))
			return 1;
	}
	return 0;
}

static obj_set *roundtrip(const obj_set *s)
{
	q_buf b = Q_BUF_INIT;
	obj_set *d = NULL;
	ASSERT_OK(obj_set_encode(s, &b));
	ASSERT_OK(obj_set_decode(b.p, b.len, &d));
	ASSERT(obj_set_equal(s, d));
	ASSERT_U64_EQ(obj_set_digest(s), obj_set_digest(d));
	q_buf b2 = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(d, &b2));
	ASSERT_EQ(b.len, b2.len);
	ASSERT_MEMEQ(b.p, b2.p, b.len);
	q_buf_free(&b);
	q_buf_free(&b2);
	return d;
}

/* The seed design's example: D1..D5 over Sx, Sy, Sz. */
QTEST(dynamo_d1_d5)
{
	obj_set *d1 = put(NULL, NULL, "Sx", "D1", 1);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d1), "Sx"), 1);
	ASSERT_EQ(obj_ctx_count(obj_set_ctx(d1)), 1);

	obj_set *d2 = put(d1, obj_set_ctx(d1), "Sx", "D2", 2);
	ASSERT_EQ(obj_set_count(d2), 1);
	ASSERT(has_value(d2, "D2"));
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d2), "Sx"), 2);
	ASSERT_EQ(obj_ctx_compare(obj_set_ctx(d1), obj_set_ctx(d2)), OBJ_BEFORE);

	/* Sy and Sz hold D2 (replicated), each coordinates one write from D2 */
	obj_set *sy, *sz;
	ASSERT_OK(obj_set_sync(NULL, d2, &sy));
	ASSERT_OK(obj_set_sync(NULL, d2, &sz));
	obj_set *d3 = put(sy, obj_set_ctx(d2), "Sy", "D3", 3);
	obj_set *d4 = put(sz, obj_set_ctx(d2), "Sz", "D4", 4);
	ASSERT_EQ(obj_set_count(d3), 1);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d3), "Sx"), 2);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d3), "Sy"), 1);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d4), "Sx"), 2);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d4), "Sz"), 1);
	ASSERT_EQ(obj_ctx_compare(obj_set_ctx(d3), obj_set_ctx(d4)), OBJ_CONCURRENT);
	ASSERT_EQ(obj_ctx_compare(obj_set_ctx(d2), obj_set_ctx(d3)), OBJ_BEFORE);
	ASSERT_EQ(obj_ctx_compare(obj_set_ctx(d4), obj_set_ctx(d2)), OBJ_AFTER);

	/* a read that reaches both sees D3 and D4 as siblings */
	obj_set *rd;
	ASSERT_OK(obj_set_sync(d3, d4, &rd));
	ASSERT_EQ(obj_set_count(rd), 2);
	ASSERT(has_value(rd, "D3"));
	ASSERT(has_value(rd, "D4"));

	/* the client resolves through Sx (which still holds only D2) */
	obj_set *sx;
	ASSERT_OK(obj_set_sync(d2, NULL, &sx));
	obj_set *d5 = put(sx, obj_set_ctx(rd), "Sx", "D5", 5);
	ASSERT_EQ(obj_set_count(d5), 1);
	ASSERT(has_value(d5, "D5"));
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d5), "Sx"), 3);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d5), "Sy"), 1);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d5), "Sz"), 1);
	obj_sibling b;
	obj_set_sibling(d5, 0, &b);
	ASSERT_STREQ(b.node, "Sx");
	ASSERT_EQ(b.counter, 3);

	/* D5 replaces both siblings wherever it meets them */
	obj_set *m1, *m2;
	ASSERT_OK(obj_set_sync(d3, d5, &m1));
	ASSERT_OK(obj_set_sync(m1, d4, &m2));
	ASSERT_EQ(obj_set_count(m2), 1);
	ASSERT(has_value(m2, "D5"));
	ASSERT(obj_set_equal(m2, d5));

	obj_set *all[] = {d1, d2, sy, sz, d3, d4, rd, sx, d5, m1, m2};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		obj_set *rt = roundtrip(all[i]);
		obj_set_free(rt);
		obj_set_free(all[i]);
	}
}

QTEST(blind_writes_are_siblings)
{
	obj_set *a = put(NULL, NULL, "n1", "a", 10);
	obj_set *b = put(a, NULL, "n1", "b", 11);
	ASSERT_EQ(obj_set_count(b), 2);
	/* canonical order: newest first */
	obj_sibling s;
	obj_set_sibling(b, 0, &s);
	ASSERT(q_slice_eq(s.value, q_slice_str("b")));
	ASSERT_EQ(s.counter, 2);
	obj_set *c = put(b, obj_set_ctx(b), "n1", "c", 12);
	ASSERT_EQ(obj_set_count(c), 1);
	ASSERT(has_value(c, "c"));
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(c);
}

/* The riak_test#383 pattern: two clients keep writing through one
 * coordinator, each with the context its own last write returned. With
 * per-server dots the siblings stay at two, however many writes. */
QTEST(no_sibling_explosion)
{
	obj_set *s = NULL;
	obj_ctx *ca = obj_ctx_new(), *cb = obj_ctx_new();
	ASSERT(ca && cb);
	for (int i = 0; i < 200; i++) {
		obj_ctx **mine = (i % 2) ? &cb : &ca;
		char v[32];
		snprintf(v, sizeof(v), "v%d", i);
		obj_set *n = put(s, *mine, "Sx", v, 100 + i);
		obj_set_free(s);
		s = n;
		obj_ctx_free(*mine);
		*mine = obj_ctx_clone(obj_set_ctx(s));
		ASSERT(*mine);
		ASSERT(obj_set_count(s) <= 2);
	}
	ASSERT_EQ(obj_set_count(s), 2);
	ASSERT_EQ(obj_ctx_count(obj_set_ctx(s)), 1);
	obj_ctx_free(ca);
	obj_ctx_free(cb);
	obj_set_free(s);
}

QTEST(delete_is_tombstone)
{
	obj_set *a = put(NULL, NULL, "n1", "a", 10);
	obj_set *d = del(a, obj_set_ctx(a), "n2", 20);
	ASSERT_EQ(obj_set_count(d), 1);
	ASSERT_EQ(obj_set_live_count(d), 0);
	ASSERT(obj_set_tombstone_only(d));
	obj_sibling s;
	obj_set_sibling(d, 0, &s);
	ASSERT(s.tombstone);
	ASSERT_EQ(s.value.n, 0);
	ASSERT(s.content_type == NULL);
	/* a stale replica holding "a" does not resurrect it */
	obj_set *m;
	ASSERT_OK(obj_set_sync(a, d, &m));
	ASSERT(obj_set_equal(m, d));
	obj_set_free(m);
	/* a concurrent write survives beside the tombstone, live first */
	obj_set *c = put(a, obj_set_ctx(a), "n1", "c", 15);
	ASSERT_OK(obj_set_sync(c, d, &m));
	ASSERT_EQ(obj_set_count(m), 2);
	ASSERT_EQ(obj_set_live_count(m), 1);
	obj_set_sibling(m, 0, &s);
	ASSERT(!s.tombstone);
	obj_set_sibling(m, 1, &s);
	ASSERT(s.tombstone);
	ASSERT(!obj_set_tombstone_only(m));
	obj_set_free(m);
	obj_set_free(c);
	obj_set_free(a);
	obj_set_free(d);
}

QTEST(reapable_needs_all_replicas_equal)
{
	obj_set *a = put(NULL, NULL, "n1", "a", 10);
	obj_set *d = del(a, obj_set_ctx(a), "n1", 1000);
	obj_set *d2 = obj_set_clone(d);
	const obj_set *reps[3] = {d, d2, a};
	ASSERT_EQ(obj_reapable(reps, 2, 1000 + 500, 500), 1);
	ASSERT_EQ(obj_reapable(reps, 2, 1000 + 499, 500), 0); /* grace not over */
	ASSERT_EQ(obj_reapable(reps, 3, 1000 + 500, 500), 0); /* one replica stale */
	const obj_set *withnull[2] = {d, NULL};
	ASSERT_EQ(obj_reapable(withnull, 2, 5000, 500), 0);
	ASSERT_EQ(obj_reapable(reps, 0, 5000, 500), 0);
	obj_set *empty = obj_set_new();
	const obj_set *e[1] = {empty};
	ASSERT_EQ(obj_reapable(e, 1, 5000, 500), 0); /* nothing to reap */
	/* a replica with the same tombstone but a bigger context differs */
	obj_set *other = del(d2, obj_set_ctx(d2), "n2", 1000);
	const obj_set *r2[2] = {d, other};
	ASSERT_EQ(obj_reapable(r2, 2, 5000, 500), 0);
	obj_set_free(other);
	obj_set_free(empty);
	obj_set_free(a);
	obj_set_free(d);
	obj_set_free(d2);
}

QTEST(ctx_compare_and_merge)
{
	obj_ctx *a = obj_ctx_new(), *b = obj_ctx_new();
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_EQUAL);
	ASSERT_EQ(obj_ctx_compare(NULL, a), OBJ_EQUAL);
	ASSERT_OK(obj_ctx_set(a, "x", 2, 5));
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_AFTER);
	ASSERT_EQ(obj_ctx_compare(b, a), OBJ_BEFORE);
	ASSERT_OK(obj_ctx_set(b, "y", 1, 5));
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_CONCURRENT);
	ASSERT_OK(obj_ctx_set(b, "x", 2, 5));
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_BEFORE);
	ASSERT_OK(obj_ctx_set(a, "x", 3, 9));
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_CONCURRENT);
	ASSERT_OK(obj_ctx_merge(a, b));
	ASSERT_EQ(obj_ctx_get(a, "x"), 3);
	ASSERT_EQ(obj_ctx_get(a, "y"), 1);
	ASSERT_EQ(obj_ctx_compare(a, b), OBJ_AFTER);
	ASSERT(obj_ctx_covers(a, "x", 3));
	ASSERT(!obj_ctx_covers(a, "x", 4));
	ASSERT(!obj_ctx_covers(a, "z", 1));
	ASSERT_EQ(obj_ctx_set(a, "", 1, 0), -EINVAL);
	ASSERT_EQ(obj_ctx_set(a, "x", 0, 0), -EINVAL);
	/* max-assign never lowers */
	ASSERT_OK(obj_ctx_set(a, "x", 1, 0));
	ASSERT_EQ(obj_ctx_get(a, "x"), 3);
	const char *node;
	uint64_t ctr;
	int64_t wall;
	obj_ctx_entry(a, 0, &node, &ctr, &wall);
	ASSERT_STREQ(node, "x");
	ASSERT_EQ(ctr, 3);
	ASSERT_EQ(wall, 9);
	obj_ctx_free(a);
	obj_ctx_free(b);
}

QTEST(ctx_codec)
{
	obj_ctx *a = obj_ctx_new();
	ASSERT_OK(obj_ctx_set(a, "node-b", 7, 123456789));
	ASSERT_OK(obj_ctx_set(a, "node-a", 1, 0));
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(obj_ctx_encode(a, &b));
	obj_ctx *d = NULL;
	ASSERT_OK(obj_ctx_decode(b.p, b.len, &d));
	ASSERT_EQ(obj_ctx_compare(a, d), OBJ_EQUAL);
	/* every truncation and every single-byte corruption is rejected or
	 * decodes to something that re-encodes identically */
	for (size_t n = 0; n < b.len; n++) {
		obj_ctx *x = (obj_ctx *)1;
		ASSERT_EQ(obj_ctx_decode(b.p, n, &x), Q_EBADCTX);
		ASSERT(x == NULL);
	}
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			q_buf c = Q_BUF_INIT;
			ASSERT_OK(q_buf_append(&c, b.p, b.len));
			c.p[i] ^= (uint8_t)(1u << bit);
			obj_ctx *x = NULL;
			int rc = obj_ctx_decode(c.p, c.len, &x);
			if (rc == 0) {
				q_buf e = Q_BUF_INIT;
				ASSERT_OK(obj_ctx_encode(x, &e));
				ASSERT_EQ(e.len, c.len);
				ASSERT_MEMEQ(e.p, c.p, c.len);
				q_buf_free(&e);
				obj_ctx_free(x);
			} else {
				ASSERT_EQ(rc, Q_EBADCTX);
			}
			q_buf_free(&c);
		}
	}
	/* trailing byte, a set passed as a context, garbage */
	ASSERT_OK(q_buf_append_byte(&b, 0));
	obj_ctx *x = NULL;
	ASSERT_EQ(obj_ctx_decode(b.p, b.len, &x), Q_EBADCTX);
	obj_set *s = put(NULL, NULL, "n", "v", 1);
	q_buf sb = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(s, &sb));
	ASSERT_EQ(obj_ctx_decode(sb.p, sb.len, &x), Q_EBADCTX);
	ASSERT_EQ(obj_ctx_decode("hello", 5, &x), Q_EBADCTX);
	/* unsorted entries are not canonical */
	static const uint8_t unsorted[] = {OBJ_CTX_MAGIC, OBJ_FORMAT_V1, 2, 1, 'b', 1, 0, 1, 'a', 1, 0};
	ASSERT_EQ(obj_ctx_decode(unsorted, sizeof(unsorted), &x), Q_EBADCTX);
	static const uint8_t sorted[] = {OBJ_CTX_MAGIC, OBJ_FORMAT_V1, 2, 1, 'a', 1, 0, 1, 'b', 1, 0};
	ASSERT_OK(obj_ctx_decode(sorted, sizeof(sorted), &x));
	obj_ctx_free(x);
	obj_set_free(s);
	q_buf_free(&sb);
	q_buf_free(&b);
	obj_ctx_free(a);
	obj_ctx_free(d);
}

QTEST(set_codec_errors)
{
	obj_set *a = put(NULL, NULL, "n1", "alpha", 10);
	obj_write w = {0, q_slice_str("beta"), "text/plain", 20};
	obj_set *b = NULL;
	ASSERT_OK(obj_set_update(a, NULL, "n2", &w, NULL, 20, &b));
	obj_set *c = del(b, NULL, "n3", 30);
	obj_set *rt = roundtrip(c);
	ASSERT_EQ(obj_set_count(rt), 3);
	obj_sibling s;
	int found = 0;
	for (size_t i = 0; i < 3; i++) {
		obj_set_sibling(rt, i, &s);
		if (s.content_type) {
			ASSERT_STREQ(s.content_type, "text/plain");
			ASSERT(q_slice_eq(s.value, q_slice_str("beta")));
			found = 1;
		}
	}
	ASSERT(found);
	q_buf e = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(c, &e));
	obj_set *x = (obj_set *)1;
	for (size_t n = 0; n < e.len; n++) {
		int rc = obj_set_decode(e.p, n, &x);
		ASSERT(rc < 0);
		ASSERT(x == NULL);
	}
	for (size_t i = 0; i < e.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			q_buf m = Q_BUF_INIT;
			ASSERT_OK(q_buf_append(&m, e.p, e.len));
			m.p[i] ^= (uint8_t)(1u << bit);
			int rc = obj_set_decode(m.p, m.len, &x);
			if (rc == 0) {
				q_buf r2 = Q_BUF_INIT;
				ASSERT_OK(obj_set_encode(x, &r2));
				ASSERT_EQ(r2.len, m.len);
				ASSERT_MEMEQ(r2.p, m.p, m.len);
				q_buf_free(&r2);
				obj_set_free(x);
			} else {
				ASSERT(rc == Q_ECORRUPT || rc == Q_ETRUNC || rc == Q_ETOOBIG ||
				       rc == Q_EVERSION);
			}
			q_buf_free(&m);
		}
	}
	/* specific errors */
	uint8_t v2[] = {OBJ_SET_MAGIC, 2, 0, 0};
	ASSERT_EQ(obj_set_decode(v2, sizeof(v2), &x), Q_EVERSION);
	uint8_t badmagic[] = {0x00, 1, 0, 0};
	ASSERT_EQ(obj_set_decode(badmagic, sizeof(badmagic), &x), Q_ECORRUPT);
	uint8_t empty[] = {OBJ_SET_MAGIC, OBJ_FORMAT_V1, 0, 0};
	ASSERT_OK(obj_set_decode(empty, sizeof(empty), &x));
	ASSERT_EQ(obj_set_count(x), 0);
	ASSERT_U64_EQ(obj_set_digest(x), 0);
	obj_set_free(x);
	/* sibling whose dot is not covered by the context */
	uint8_t uncovered[] = {OBJ_SET_MAGIC, OBJ_FORMAT_V1, 1, 1, 'n', 1, 0, 1, 0, 2, 0, 0, 0};
	ASSERT_EQ(obj_set_decode(uncovered, sizeof(uncovered), &x), Q_ECORRUPT);
	uncovered[9] = 1; /* counter 1: fine */
	ASSERT_OK(obj_set_decode(uncovered, sizeof(uncovered), &x));
	obj_set_free(x);
	/* duplicate dot */
	uint8_t dup[] = {OBJ_SET_MAGIC, OBJ_FORMAT_V1, 1, 1, 'n', 1, 0, 2,
			 0, 1, 0, 5, 0, 0, 1, 0, 4, 0};
	ASSERT_EQ(obj_set_decode(dup, sizeof(dup), &x), Q_ECORRUPT);
	/* huge declared counts do not allocate: Q_ETOOBIG / Q_ETRUNC */
	uint8_t huge[] = {OBJ_SET_MAGIC, OBJ_FORMAT_V1, 0xff, 0xff, 0x03};
	ASSERT_EQ(obj_set_decode(huge, sizeof(huge), &x), Q_ETOOBIG);
	uint8_t many[] = {OBJ_SET_MAGIC, OBJ_FORMAT_V1, 0x80, 0x20};
	ASSERT_EQ(obj_set_decode(many, sizeof(many), &x), Q_ETRUNC);
	q_buf_free(&e);
	obj_set_free(rt);
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(c);
}

QTEST(update_rejects_bad_args)
{
	obj_set *out = (obj_set *)1;
	obj_write w = {0, q_slice_str("v"), NULL, 1};
	ASSERT_EQ(obj_set_update(NULL, NULL, "", &w, NULL, 0, &out), -EINVAL);
	ASSERT(out == NULL);
	ASSERT_EQ(obj_set_update(NULL, NULL, NULL, &w, NULL, 0, &out), -EINVAL);
	char longid[OBJ_NODE_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	ASSERT_EQ(obj_set_update(NULL, NULL, longid, &w, NULL, 0, &out), -EINVAL);
	w.wall_ns = -1;
	ASSERT_EQ(obj_set_update(NULL, NULL, "n", &w, NULL, 0, &out), -EINVAL);
	w.wall_ns = 1;
	w.content_type = "";
	ASSERT_EQ(obj_set_update(NULL, NULL, "n", &w, NULL, 0, &out), -EINVAL);
	w.content_type = NULL;
	w.value.n = (size_t)OBJ_VALUE_MAX + 1;
	ASSERT_EQ(obj_set_update(NULL, NULL, "n", &w, NULL, 0, &out), -EINVAL);
	ASSERT(out == NULL);
}

/* The client's context may be ahead of the coordinator (it read elsewhere):
 * the new dot must still be fresh. */
QTEST(fresh_dot_from_client_ctx)
{
	obj_set *a = put(NULL, NULL, "x", "a", 1);
	obj_set *b = put(a, obj_set_ctx(a), "x", "b", 2); /* x:2 */
	obj_set *c = put(b, obj_set_ctx(b), "x", "c", 3); /* x:3 */
	/* coordinator x lost its copy; the client read c elsewhere */
	obj_set *d = put(NULL, obj_set_ctx(c), "x", "d", 4);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(d), "x"), 4);
	obj_set *m;
	ASSERT_OK(obj_set_sync(c, d, &m));
	ASSERT_EQ(obj_set_count(m), 1);
	ASSERT(has_value(m, "d"));
	obj_set_free(m);
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(c);
	obj_set_free(d);
}

QTEST(prune_entries)
{
	/* 30 servers each wrote once in turn, each write seeing the last */
	obj_set *s = NULL;
	char node[16];
	int64_t sec = 1000000000LL;
	for (int i = 0; i < 30; i++) {
		snprintf(node, sizeof(node), "s%02d", i);
		obj_set *n = put(s, s ? obj_set_ctx(s) : NULL, node, "v", (int64_t)i * sec);
		obj_set_free(s);
		s = n;
	}
	ASSERT_EQ(obj_ctx_count(obj_set_ctx(s)), 30);
	obj_prune p = {.min_entries = 5, .max_entries = 10, .young_ns = 5 * sec, .max_age_ns = 0};
	obj_set *c = obj_set_clone(s);
	/* at t=29s: entries younger than 5 s (s25..s29) stay; max 10 kept */
	int k = obj_set_prune(c, &p, 29 * sec, "s00");
	ASSERT_EQ(k, 20); /* s01..s20, oldest first, down to max 10 */
	ASSERT_EQ(obj_ctx_count(obj_set_ctx(c)), 10);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(c), "s00"), 1); /* keep_node */
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(c), "s29"), 1); /* the dot's entry */
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(c), "s01"), 0);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(c), "s20"), 0);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(c), "s21"), 1);
	obj_set_free(c);
	/* young entries protect themselves */
	c = obj_set_clone(s);
	ASSERT_EQ(obj_set_prune(c, &p, 0, NULL), 0);
	obj_set_free(c);
	/* age limit only */
	obj_prune age = {.min_entries = 2, .max_entries = 0, .young_ns = 0, .max_age_ns = 10 * sec};
	c = obj_set_clone(s);
	k = obj_set_prune(c, &age, 29 * sec, NULL);
	ASSERT_EQ(k, 19); /* s00..s18 are older than 10 s */
	/* the pruned set still decodes: invariants hold */
	obj_set *rt = roundtrip(c);
	obj_set_free(rt);
	/* effect on false conflicts: an old replica's sibling s05:1 comes back
	 * against the pruned set (documented in docs/objects.md) */
	obj_set *old = put(NULL, NULL, "s05", "old", 5 * sec);
	obj_set *m;
	ASSERT_OK(obj_set_sync(c, old, &m));
	ASSERT_EQ(obj_set_count(m), 2);
	obj_set_free(m);
	ASSERT_OK(obj_set_sync(s, old, &m));
	ASSERT_EQ(obj_set_count(m), 1);
	obj_set_free(m);
	obj_set_free(old);
	obj_set_free(c);
	/* pruning in update keeps the coordinator's own entry */
	obj_set *u = NULL;
	obj_write w = {0, q_slice_str("z"), NULL, 100 * sec};
	ASSERT_OK(obj_set_update(s, obj_set_ctx(s), "s00", &w, &age, 100 * sec, &u));
	ASSERT_EQ(obj_ctx_count(obj_set_ctx(u)), 2);
	ASSERT_EQ(obj_ctx_get(obj_set_ctx(u), "s00"), 2);
	obj_set_free(u);
	obj_set_free(s);
}

QTEST(digest_and_equal)
{
	obj_set *a = put(NULL, NULL, "n1", "a", 10);
	obj_set *b = put(NULL, NULL, "n1", "b", 10);
	ASSERT(!obj_set_equal(a, b));
	ASSERT(obj_set_digest(a) != obj_set_digest(b));
	obj_set *a2 = obj_set_clone(a);
	ASSERT(obj_set_equal(a, a2));
	ASSERT_U64_EQ(obj_set_digest(a), obj_set_digest(a2));
	ASSERT(obj_set_digest(a) != 0);
	ASSERT_U64_EQ(obj_set_digest(NULL), 0);
	obj_set *e = obj_set_new();
	ASSERT(obj_set_equal(e, NULL));
	ASSERT_U64_EQ(obj_set_digest(e), 0);
	/* from an encoding the caller made: the same digest */
	q_buf enc = Q_BUF_INIT;
	ASSERT_EQ(obj_set_encode(a, &enc), 0);
	ASSERT_U64_EQ(obj_set_digest_encoded(a, enc.p, enc.len), obj_set_digest(a));
	q_buf_reset(&enc);
	ASSERT_EQ(obj_set_encode(e, &enc), 0);
	ASSERT_U64_EQ(obj_set_digest_encoded(e, enc.p, enc.len), 0);
	q_buf_free(&enc);
	obj_set_free(e);
	obj_set_free(a);
	obj_set_free(a2);
	obj_set_free(b);
}

QTEST_MAIN(QT(dynamo_d1_d5), QT(blind_writes_are_siblings), QT(no_sibling_explosion),
	   QT(delete_is_tombstone), QT(reapable_needs_all_replicas_equal), QT(ctx_compare_and_merge),
	   QT(ctx_codec), QT(set_codec_errors), QT(update_rejects_bad_args),
	   QT(fresh_dot_from_client_ctx), QT(prune_entries), QT(digest_and_equal))
