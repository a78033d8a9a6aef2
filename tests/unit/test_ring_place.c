/*
 * test_ring_place.c - unit tests of src/ring: measured balance and movement
 * over 1M keys, preference-list rules (distinct nodes, distinct zones,
 * fallbacks), owned ranges, determinism and the ring-state codec.
 *
 * The key count is 1M in both modes (lookups are a binary search: about a
 * second under ASan); QFS_LONG=1 also repeats the balance check for other
 * cluster sizes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtest.h"
#include "ring/ring.h"
#include "util/qerr.h"

#define NKEYS 1000000

static int long_mode(void)
{
	const char *l = getenv("QFS_LONG");
	return l && strcmp(l, "1") == 0;
}

static uint64_t key_hash(int i)
{
	char k[32];
	int n = snprintf(k, sizeof(k), "key-%d", i);
	return ring_key_hash(k, (size_t)n);
}

static ring *make_ring(int nodes, int zones, uint32_t tokens)
{
	ring_member m[64];
	char names[64][16], zn[64][16];
	for (int i = 0; i < nodes; i++) {
		snprintf(names[i], sizeof(names[i]), "node%02d", i);
		snprintf(zn[i], sizeof(zn[i]), "zone%d", zones ? i % zones : 0);
		m[i].node = names[i];
		m[i].zone = zones ? zn[i] : NULL;
		m[i].tokens = tokens;
	}
	ring *r = NULL;
	ASSERT_OK(ring_build(m, (size_t)nodes, 1, &r));
	return r;
}

/* Owner of every key, by node index into the ring's member list. */
static uint16_t *owners(const ring *r)
{
	uint16_t *o = malloc(NKEYS * sizeof(*o));
	ASSERT(o);
	for (int i = 0; i < NKEYS; i++) {
		int m = ring_owner(r, key_hash(i));
		ASSERT(m >= 0);
		o[i] = (uint16_t)m;
	}
	return o;
}

static double check_balance(int nodes)
{
	ring *r = make_ring(nodes, 0, 0);
	uint16_t *o = owners(r);
	long cnt[64] = {0};
	for (int i = 0; i < NKEYS; i++)
		cnt[o[i]]++;
	double mean = (double)NKEYS / nodes, mx = 0, mn = 1e18;
	for (int i = 0; i < nodes; i++) {
		if (cnt[i] > mx)
			mx = (double)cnt[i];
		if (cnt[i] < mn)
			mn = (double)cnt[i];
	}
	printf("balance: %d nodes x %d tokens, %d keys: largest %.4f of mean, smallest %.4f\n",
	       nodes, RING_TOKENS_DEFAULT, NKEYS, mx / mean, mn / mean);
	/* the analytical shares agree with the key counts */
	double shares[64], sum = 0;
	ring_ownership(r, shares);
	for (int i = 0; i < nodes; i++) {
		sum += shares[i];
		double frac = (double)cnt[i] / NKEYS;
		ASSERT(frac > shares[i] - 0.005 && frac < shares[i] + 0.005);
	}
	ASSERT(sum > 0.999999 && sum < 1.000001);
	free(o);
	ring_free(r);
	return mx / mean;
}

QTEST(balance_10_nodes)
{
	double worst = check_balance(10);
	ASSERT(worst <= 1.10);
	if (long_mode()) {
		int sizes[] = {3, 5, 20, 40};
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			ASSERT(check_balance(sizes[i]) <= 1.15);
	}
}

QTEST(add_node_moves_only_to_it)
{
	ring *r10 = make_ring(10, 0, 0);
	uint16_t *o10 = owners(r10);
	ring_member m = {"node10", NULL, 0};
	ring *r11 = NULL;
	ASSERT_OK(ring_add(r10, &m, &r11));
	ASSERT_U64_EQ(ring_version(r11), ring_version(r10) + 1);
	uint16_t *o11 = owners(r11);
	int newidx = ring_member_find(r11, "node10");
	ASSERT(newidx >= 0);
	long moved = 0;
	for (int i = 0; i < NKEYS; i++) {
		ring_member a, b;
		ring_member_get(r10, o10[i], &a);
		ring_member_get(r11, o11[i], &b);
		if (strcmp(a.node, b.node) != 0) {
			moved++;
			ASSERT_EQ(o11[i], newidx);
		}
	}
	double frac = (double)moved / NKEYS, ideal = 1.0 / 11;
	printf("add 11th node: moved %.4f of keys (ideal %.4f, ratio %.3f)\n", frac, ideal,
	       frac / ideal);
	ASSERT(frac >= ideal * 0.8 && frac <= ideal * 1.2);
	free(o10);
	free(o11);
	ring_free(r10);
	ring_free(r11);
}

QTEST(remove_node_moves_only_its_keys)
{
	ring *r10 = make_ring(10, 0, 0);
	uint16_t *o10 = owners(r10);
	ring *r9 = NULL;
	ASSERT_OK(ring_remove(r10, "node03", &r9));
	ASSERT_EQ(ring_member_count(r9), 9);
	ASSERT_EQ(ring_member_find(r9, "node03"), Q_ENOTFOUND);
	uint16_t *o9 = owners(r9);
	int gone = ring_member_find(r10, "node03");
	long moved = 0, had = 0;
	for (int i = 0; i < NKEYS; i++) {
		ring_member a, b;
		ring_member_get(r10, o10[i], &a);
		ring_member_get(r9, o9[i], &b);
		if (o10[i] == gone)
			had++;
		if (strcmp(a.node, b.node) != 0) {
			moved++;
			ASSERT_EQ(o10[i], gone);
		}
	}
	printf("remove a node: moved %.4f of keys, all of them the removed node's\n",
	       (double)moved / NKEYS);
	ASSERT_EQ(moved, had);
	free(o10);
	free(o9);
	ring_free(r10);
	ring_free(r9);
}

static void check_preflists(const ring *r, size_t n, int keys)
{
	size_t nm = ring_member_count(r), nz = ring_zone_count(r);
	size_t want_primary = n < nm ? n : nm;
	size_t want_zones = want_primary < nz ? want_primary : nz;
	for (int i = 0; i < keys; i++) {
		size_t out[64], np;
		size_t k = ring_preflist(r, key_hash(i), n, out, 64, &np);
		ASSERT_EQ(k, nm);
		ASSERT_EQ(np, want_primary);
		/* the first one is the owner */
		ASSERT_EQ((int)out[0], ring_owner(r, key_hash(i)));
		for (size_t a = 0; a < k; a++)
			for (size_t b = a + 1; b < k; b++)
				ASSERT(out[a] != out[b]);
		/* distinct zones among the primaries, as many as possible */
		const char *zs[64];
		size_t dz = 0;
		for (size_t a = 0; a < np; a++) {
			ring_member m;
			ring_member_get(r, out[a], &m);
			int dup = 0;
			for (size_t b = 0; b < dz; b++)
				dup |= strcmp(zs[b], m.zone) == 0;
			if (!dup)
				zs[dz++] = m.zone;
		}
		ASSERT_EQ(dz, want_zones);
		/* a shorter max gives a prefix */
		size_t out2[2], np2;
		size_t k2 = ring_preflist(r, key_hash(i), n, out2, 2, &np2);
		ASSERT_EQ(k2, nm < 2 ? nm : 2);
		for (size_t a = 0; a < k2; a++)
			ASSERT_EQ(out2[a], out[a]);
	}
}

QTEST(preflist_distinct_nodes_and_zones)
{
	int keys = long_mode() ? 200000 : 20000;
	ring *r = make_ring(10, 3, 0); /* 3 zones, unequal sizes (4,3,3) */
	check_preflists(r, 3, keys);
	check_preflists(r, 5, keys / 4);
	ring_free(r);
	r = make_ring(10, 2, 0); /* fewer zones than N: both used */
	check_preflists(r, 3, keys / 4);
	ring_free(r);
	r = make_ring(10, 0, 0); /* no zones */
	check_preflists(r, 3, keys / 4);
	ring_free(r);
	r = make_ring(2, 2, 0); /* N above the member count */
	check_preflists(r, 3, keys / 4);
	ring_free(r);
	/* zone-skew: one node alone in its zone is a primary of every key */
	ring_member m[4] = {{"a", "z1", 64}, {"b", "z1", 64}, {"c", "z1", 64}, {"d", "z2", 64}};
	ASSERT_OK(ring_build(m, 4, 1, &r));
	for (int i = 0; i < 2000; i++) {
		const char *ids[4];
		size_t np;
		char k[16];
		int kn = snprintf(k, sizeof(k), "%d", i);
		size_t n = ring_preflist_key(r, k, (size_t)kn, 2, ids, 4, &np);
		ASSERT_EQ(n, 4);
		ASSERT_EQ(np, 2);
		ASSERT(strcmp(ids[0], "d") == 0 || strcmp(ids[1], "d") == 0);
	}
	ring_free(r);
}

QTEST(ranges_match_preflists)
{
	ring *r = make_ring(6, 3, 64);
	size_t n = 3;
	for (size_t mi = 0; mi < ring_member_count(r); mi++) {
		ring_member m;
		ring_member_get(r, mi, &m);
		ring_range *rr;
		size_t nr;
		ASSERT_OK(ring_ranges(r, m.node, n, &rr, &nr));
		ASSERT(nr > 0);
		for (int i = 0; i < 20000; i++) {
			uint64_t h = key_hash(i);
			size_t out[8], np;
			ring_preflist(r, h, n, out, 8, &np);
			int in_pl = 0, in_rr = 0;
			for (size_t a = 0; a < np; a++)
				in_pl |= out[a] == mi;
			for (size_t a = 0; a < nr; a++)
				in_rr |= ring_range_contains(rr[a], h);
			ASSERT_EQ(in_pl, in_rr);
		}
		/* token boundaries themselves */
		for (size_t a = 0; a < nr; a++) {
			size_t out[8], np;
			ring_preflist(r, rr[a].end, n, out, 8, &np);
			int in_pl = 0;
			for (size_t b = 0; b < np; b++)
				in_pl |= out[b] == mi;
			ASSERT(in_pl);
		}
		free(rr);
	}
	ring_range *rr;
	size_t nr;
	ASSERT_EQ(ring_ranges(r, "nobody", n, &rr, &nr), Q_ENOTFOUND);
	ring_free(r);
	/* one node: the whole circle */
	r = make_ring(1, 0, 8);
	ASSERT_OK(ring_ranges(r, "node00", 3, &rr, &nr));
	ASSERT_EQ(nr, 1);
	ASSERT_U64_EQ(rr[0].start, rr[0].end);
	ASSERT(ring_range_contains(rr[0], 0));
	ASSERT(ring_range_contains(rr[0], UINT64_MAX));
	free(rr);
	ring_free(r);
	ring_range w = {UINT64_MAX - 5, 5};
	ASSERT(ring_range_contains(w, 0));
	ASSERT(ring_range_contains(w, 5));
	ASSERT(!ring_range_contains(w, 6));
	ASSERT(!ring_range_contains(w, UINT64_MAX - 5));
	ASSERT(ring_range_contains(w, UINT64_MAX));
}

QTEST(deterministic_and_versioned)
{
	ring_member a[3] = {{"n1", "z1", 0}, {"n2", "z2", 0}, {"n3", "z1", 100}};
	ring_member b[3] = {a[2], a[0], a[1]};
	ring *ra, *rb;
	ASSERT_OK(ring_build(a, 3, 7, &ra));
	ASSERT_OK(ring_build(b, 3, 7, &rb));
	ASSERT_U64_EQ(ring_digest(ra), ring_digest(rb));
	ASSERT_EQ(ring_token_count(ra), 256 + 256 + 100);
	for (int i = 0; i < 10000; i++)
		ASSERT_EQ(ring_owner(ra, key_hash(i)), ring_owner(rb, key_hash(i)));
	ring_member got;
	ring_member_get(ra, 0, &got);
	ASSERT_STREQ(got.node, "n1");
	ASSERT_STREQ(got.zone, "z1");
	ASSERT_EQ(got.tokens, RING_TOKENS_DEFAULT);
	ASSERT_EQ(ring_zone_count(ra), 2);
	/* errors */
	ring *x = (ring *)1;
	ring_member dup[2] = {{"n1", NULL, 1}, {"n1", NULL, 1}};
	ASSERT_EQ(ring_build(dup, 2, 1, &x), -EINVAL);
	ASSERT(x == NULL);
	ring_member bad = {"", NULL, 1};
	ASSERT_EQ(ring_build(&bad, 1, 1, &x), -EINVAL);
	bad.node = "ok";
	bad.tokens = RING_TOKENS_MAX + 1;
	ASSERT_EQ(ring_build(&bad, 1, 1, &x), -EINVAL);
	ASSERT_EQ(ring_add(ra, &a[0], &x), -EEXIST);
	ASSERT_EQ(ring_remove(ra, "zz", &x), Q_ENOTFOUND);
	/* an empty ring finds nothing */
	ring *e;
	ASSERT_OK(ring_build(NULL, 0, 0, &e));
	size_t out[4], np = 9;
	ASSERT_EQ(ring_preflist(e, 123, 3, out, 4, &np), 0);
	ASSERT_EQ(np, 0);
	ASSERT_EQ(ring_owner(e, 5), Q_ENOTFOUND);
	ring_free(e);
	ring_free(ra);
	ring_free(rb);
}

QTEST(codec)
{
	ring *r = make_ring(5, 2, 16);
	ring *r2;
	ring_member m = {"late", "zone9", 33};
	ASSERT_OK(ring_add(r, &m, &r2));
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(ring_encode(r2, &b));
	ring *d = NULL;
	ASSERT_OK(ring_decode(b.p, b.len, &d));
	ASSERT_U64_EQ(ring_version(d), 2);
	ASSERT_U64_EQ(ring_digest(d), ring_digest(r2));
	ASSERT_EQ(ring_member_count(d), 6);
	for (int i = 0; i < 5000; i++)
		ASSERT_EQ(ring_owner(d, key_hash(i)), ring_owner(r2, key_hash(i)));
	for (size_t n = 0; n < b.len; n++) {
		ring *x = (ring *)1;
		ASSERT(ring_decode(b.p, n, &x) < 0);
		ASSERT(x == NULL);
	}
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			q_buf c = Q_BUF_INIT;
			ASSERT_OK(q_buf_append(&c, b.p, b.len));
			c.p[i] ^= (uint8_t)(1u << bit);
			ring *x = NULL;
			int rc = ring_decode(c.p, c.len, &x);
			if (rc == 0) {
				q_buf e = Q_BUF_INIT;
				ASSERT_OK(ring_encode(x, &e));
				ASSERT_EQ(e.len, c.len);
				ASSERT_MEMEQ(e.p, c.p, c.len);
				q_buf_free(&e);
				ring_free(x);
			} else {
				ASSERT(rc == Q_ECORRUPT || rc == Q_ETRUNC || rc == Q_ETOOBIG ||
				       rc == Q_EVERSION);
			}
			q_buf_free(&c);
		}
	}
	ring *x;
	uint8_t v2[] = {RING_MAGIC, 2, 0, 0};
	ASSERT_EQ(ring_decode(v2, sizeof(v2), &x), Q_EVERSION);
	uint8_t unsorted[] = {RING_MAGIC, 1, 1, 2, 1, 'b', 0, 1, 1, 'a', 0, 1};
	ASSERT_EQ(ring_decode(unsorted, sizeof(unsorted), &x), Q_ECORRUPT);
	uint8_t zerotok[] = {RING_MAGIC, 1, 1, 1, 1, 'a', 0, 0};
	ASSERT_EQ(ring_decode(zerotok, sizeof(zerotok), &x), Q_ECORRUPT);
	uint8_t manytok[] = {RING_MAGIC, 1, 1, 1, 1, 'a', 0, 0x81, 0x40};
	ASSERT_EQ(ring_decode(manytok, sizeof(manytok), &x), Q_ETOOBIG);
	uint8_t trailing[] = {RING_MAGIC, 1, 1, 1, 1, 'a', 0, 1, 0};
	ASSERT_EQ(ring_decode(trailing, sizeof(trailing), &x), Q_ECORRUPT);
	q_buf_free(&b);
	ring_free(d);
	ring_free(r);
	ring_free(r2);
}

QTEST_MAIN(QT(balance_10_nodes), QT(add_node_moves_only_to_it),
	   QT(remove_node_moves_only_its_keys), QT(preflist_distinct_nodes_and_zones),
	   QT(ranges_match_preflists), QT(deterministic_and_versioned), QT(codec))
