/*
 * test_ring_arcs.c - unit tests of ring_arcs (src/ring): the elementary
 * arcs a node replicates, with their replica sets, as anti-entropy keys its
 * per-arc Merkle trees. Checks: every arc's replica set is the preference
 * list of points inside it; a node's arcs cover exactly its ring_ranges;
 * every replica of an arc lists the identical arc with the same set (so
 * their trees compare); merged arcs are still identical across replicas and
 * cover the same points; a 3-node N=3 ring merges to the whole circle.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtest.h"
#include "ring/ring.h"
#include "util/hash.h"
#include "util/qerr.h"

static ring *make_ring(int nodes, uint32_t tokens)
{
	ring_member m[16];
	char names[16][16];
	for (int i = 0; i < nodes; i++) {
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		m[i].node = names[i];
		m[i].zone = NULL;
		m[i].tokens = tokens;
	}
	ring *r = NULL;
	if (ring_build(m, (size_t)nodes, 1, &r) < 0)
		return NULL;
	return r;
}

static int set_has(const ring_arc *a, uint32_t m)
{
	for (uint32_t i = 0; i < a->nreplicas; i++)
		if (a->replicas[i] == m)
			return 1;
	return 0;
}

/* Preflist primaries of point h equal (as a set) the arc's replicas. */
static int preflist_matches(const ring *r, uint64_t h, size_t n, const ring_arc *a)
{
	size_t pl[RING_ARC_MAX_N], np = 0;
	size_t k = ring_preflist(r, h, n, pl, RING_ARC_MAX_N, &np);
	if (k < np || np != a->nreplicas)
		return 0;
	for (size_t i = 0; i < np; i++)
		if (!set_has(a, (uint32_t)pl[i]))
			return 0;
	return 1;
}

static int arcs_contain(const ring_arc *a, size_t n, uint64_t h)
{
	int c = 0;
	for (size_t i = 0; i < n; i++)
		c += ring_range_contains(a[i].range, h);
	return c;
}

/* Points to probe: both ends of each arc and pseudo-random points. */
static void check_node(const ring *r, const char *node, size_t nrep, int merge)
{
	ring_arc *a = NULL;
	size_t na = 0;
	ASSERT_EQ(ring_arcs(r, node, nrep, merge, &a, &na), 0);
	ASSERT(na > 0);
	ring_range *rr = NULL;
	size_t nr = 0;
	ASSERT_EQ(ring_ranges(r, node, nrep, &rr, &nr), 0);
	int me = ring_member_find(r, node);
	ASSERT(me >= 0);
	for (size_t i = 0; i < na; i++) {
		ASSERT(set_has(&a[i], (uint32_t)me));
		if (i > 0) /* ascending (start, end) */
			ASSERT(a[i - 1].range.start < a[i].range.start ||
				    (a[i - 1].range.start == a[i].range.start &&
				     a[i - 1].range.end < a[i].range.end));
		/* the set holds at the end point and one past the start */
		ASSERT(preflist_matches(r, a[i].range.end, nrep, &a[i]));
		if (!merge)
			ASSERT(preflist_matches(r, a[i].range.start + 1, nrep, &a[i]));
	}
	/* coverage: same points as ring_ranges, each in exactly one arc */
	uint64_t x = 0x12345678u;
	for (int i = 0; i < 20000; i++) {
		x = q_hash64(&x, sizeof(x), 7);
		int in_ranges = 0;
		for (size_t j = 0; j < nr; j++)
			in_ranges |= ring_range_contains(rr[j], x);
		int c = arcs_contain(a, na, x);
		ASSERT_EQ(c, in_ranges);
		if (c && !merge) {
			for (size_t j = 0; j < na; j++)
				if (ring_range_contains(a[j].range, x))
					ASSERT(preflist_matches(r, x, nrep, &a[j]));
		}
	}
	/* every other replica lists the identical arc with the same set */
	for (size_t i = 0; i < na; i++) {
		for (uint32_t j = 0; j < a[i].nreplicas; j++) {
			if (a[i].replicas[j] == (uint32_t)me)
				continue;
			ring_member m;
			ring_member_get(r, a[i].replicas[j], &m);
			ring_arc *b = NULL;
			size_t nb = 0;
			ASSERT_EQ(ring_arcs(r, m.node, nrep, merge, &b, &nb), 0);
			int found = 0;
			for (size_t k = 0; k < nb; k++)
				if (b[k].range.start == a[i].range.start &&
				    b[k].range.end == a[i].range.end) {
					ASSERT_EQ(b[k].nreplicas, a[i].nreplicas);
					for (uint32_t q = 0; q < b[k].nreplicas; q++)
						ASSERT(set_has(&a[i], b[k].replicas[q]));
					found = 1;
				}
			ASSERT(found);
			free(b);
			if (i > 8)
				break; /* enough pairs checked per node */
		}
	}
	free(rr);
	free(a);
}

QTEST(elementary_arcs_5_nodes)
{
	ring *r = make_ring(5, 32);
	ASSERT(r != NULL);
	for (int i = 0; i < 5; i++) {
		char nm[8];
		snprintf(nm, sizeof(nm), "n%d", i);
		check_node(r, nm, 3, 0);
	}
	/* unmerged: one arc per non-empty token interval that node holds */
	ring_arc *a = NULL;
	size_t na = 0;
	ASSERT_EQ(ring_arcs(r, "n0", 3, 0, &a, &na), 0);
	ASSERT(na >= 32 && na <= 5 * 32);
	free(a);
	ring_free(r);
}

QTEST(merged_arcs_5_nodes)
{
	ring *r = make_ring(5, 32);
	ASSERT(r != NULL);
	for (int i = 0; i < 5; i++) {
		char nm[8];
		snprintf(nm, sizeof(nm), "n%d", i);
		check_node(r, nm, 3, 1);
	}
	ring_arc *a = NULL, *u = NULL;
	size_t na = 0, nu = 0;
	ASSERT_EQ(ring_arcs(r, "n1", 3, 1, &a, &na), 0);
	ASSERT_EQ(ring_arcs(r, "n1", 3, 0, &u, &nu), 0);
	ASSERT(na <= nu);
	free(a);
	free(u);
	ring_free(r);
}

QTEST(three_nodes_n3_is_whole_circle)
{
	ring *r = make_ring(3, 64);
	ASSERT(r != NULL);
	ring_arc *a = NULL;
	size_t na = 0;
	ASSERT_EQ(ring_arcs(r, "n2", 3, 1, &a, &na), 0);
	ASSERT_EQ(na, 1u);
	ASSERT_U64_EQ(a[0].range.start, 0); ASSERT_U64_EQ(a[0].range.end, 0);
	ASSERT_EQ(a[0].nreplicas, 3u);
	free(a);
	/* unmerged: every token interval, all held by every node */
	ASSERT_EQ(ring_arcs(r, "n2", 3, 0, &a, &na), 0);
	ASSERT_EQ(na, ring_token_count(r));
	free(a);
	/* N=1: only the node's own arcs */
	ASSERT_EQ(ring_arcs(r, "n0", 1, 0, &a, &na), 0);
	ASSERT(na >= 1 && na <= 64);
	for (size_t i = 0; i < na; i++)
		ASSERT_EQ(a[i].nreplicas, 1u);
	free(a);
	ring_free(r);
}

QTEST(single_node_and_errors)
{
	ring *r = make_ring(1, 8);
	ASSERT(r != NULL);
	ring_arc *a = NULL;
	size_t na = 0;
	ASSERT_EQ(ring_arcs(r, "n0", 3, 1, &a, &na), 0);
	ASSERT_EQ(na, 1u);
	ASSERT_U64_EQ(a[0].range.start, 0); ASSERT_U64_EQ(a[0].range.end, 0);
	free(a);
	ASSERT_EQ(ring_arcs(r, "nobody", 3, 1, &a, &na), Q_ENOTFOUND);
	ASSERT(a == NULL && na == 0);
	ring_free(r);
	ASSERT_EQ(ring_build(NULL, 0, 1, &r), 0);
	ASSERT_EQ(ring_arcs(r, "n0", 3, 1, &a, &na), Q_ENOTFOUND);
	ring_free(r);
}

QTEST_MAIN(QT(elementary_arcs_5_nodes), QT(merged_arcs_5_nodes),
	   QT(three_nodes_n3_is_whole_circle), QT(single_node_and_errors))
