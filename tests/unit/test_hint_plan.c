/* Unit tests for src/handoff/handoff_plan.c and handoff_rate.c: the range
 * handoff planner over real rings (src/ring), checked point by point against
 * the preference lists, and the token-bucket rate limiter. */
#include "qtest.h"
#include "handoff/handoff.h"
#include "ring/ring.h"
#include "util/qerr.h"

#define NPTS 20000
#define TOKENS 64

static ring *make_ring(int nodes, uint64_t version)
{
	ring_member m[16];
	static char names[16][8], zones[16][8];
	for (int i = 0; i < nodes; i++) {
		snprintf(names[i], sizeof(names[i]), "n%d", i + 1);
		snprintf(zones[i], sizeof(zones[i]), "z%d", i % 3);
		m[i].node = names[i];
		m[i].zone = zones[i];
		m[i].tokens = TOKENS;
	}
	ring *r;
	ASSERT_OK(ring_build(m, (size_t)nodes, version, &r));
	return r;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t prims(const ring *r, uint64_t h, size_t n, const char **ids)
{
	size_t idx[16], np = 0;
	if (ring_member_count(r) == 0)
		return 0;
	size_t got = ring_preflist(r, h, n, idx, n, &np);
	ASSERT(np <= got);
	for (size_t i = 0; i < np; i++) {
		ring_member m;
		ring_member_get(r, idx[i], &m);
		ids[i] = m.node;
	}
	return np;
}

static int has(const char *id, const char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(id, ids[i]))
			return 1;
	return 0;
}

static const char *dead_node;
static int alive_fn(void *ud, const char *node)
{
	(void)ud;
	return !dead_node || strcmp(node, dead_node) != 0;
}

/* Checks the global plan against the preference lists at NPTS random points
 * (plus every range boundary); returns the fraction of points that move to
 * at least one new node. */
static double check_plan(const ring *o, const ring *nw, size_t n, handoff_alive_fn alive)
{
	handoff_move *mv;
	size_t cnt;
	ASSERT_OK(handoff_plan_all(o, nw, n, alive, NULL, &mv, &cnt));
	/* invariant: within a (sender, target) group ranges are not adjacent */
	for (size_t i = 1; i < cnt; i++)
		if (!strcmp(mv[i].sender, mv[i - 1].sender) && !strcmp(mv[i].target, mv[i - 1].target))
			ASSERT(mv[i - 1].range.end != mv[i].range.start);
	uint64_t seed = 42;
	size_t moved = 0;
	for (size_t p = 0; p < NPTS + 2 * cnt; p++) {
		uint64_t h;
		if (p < NPTS)
			h = splitmix(&seed);
		else if ((p - NPTS) % 2 == 0)
			h = mv[(p - NPTS) / 2].range.end; /* inside (start, end] */
		else
			h = mv[(p - NPTS) / 2].range.start + 1;
		const char *op[16], *np_[16];
		size_t no = prims(o, h, n, op), nn = prims(nw, h, n, np_);
		size_t want = 0;
		for (size_t j = 0; j < nn; j++)
			want += !has(np_[j], op, no);
		int any_alive = 0;
		for (size_t j = 0; j < no; j++)
			any_alive |= !alive || alive(NULL, op[j]);
		/* the moves covering h */
		size_t got = 0;
		const char *sender = NULL;
		for (size_t i = 0; i < cnt; i++) {
			if (!ring_range_contains(mv[i].range, h))
				continue;
			got++;
			ASSERT(!has(mv[i].target, op, no)); /* receiver is new */
			ASSERT(has(mv[i].target, np_, nn));
			ASSERT(has(mv[i].sender, op, no));  /* sender holds it */
			ASSERT(!alive || alive(NULL, mv[i].sender));
			if (sender)
				ASSERT_STREQ(sender, mv[i].sender); /* one sender per point */
			sender = mv[i].sender;
		}
		ASSERT_EQ(got, any_alive ? want : 0);
		if (p < NPTS && want)
			moved++;
	}
	handoff_moves_free(mv, cnt);
	return (double)moved / NPTS;
}

QTEST(join_moves_only_changed_ranges)
{
	ring *o = make_ring(4, 1);
	ring_member m5 = {"n5", "z1", TOKENS};
	ring *nw;
	ASSERT_OK(ring_add(o, &m5, &nw));
	double f1 = check_plan(o, nw, 1, NULL);
	double f3 = check_plan(o, nw, 3, NULL);
	printf("# join 4->5 nodes: %.3f of keys gain a replica at n=1 (ideal 0.200), %.3f at n=3\n",
	       f1, f3);
	/* n=1: about 1/(nodes) of the circle moves, and only to n5 */
	ASSERT(f1 > 0.10 && f1 < 0.32);
	ASSERT(f3 > 0.35 && f3 < 0.85);
	/* every receiver is the new node */
	handoff_move *mv;
	size_t cnt;
	ASSERT_OK(handoff_plan_all(o, nw, 3, NULL, NULL, &mv, &cnt));
	ASSERT(cnt > 0);
	for (size_t i = 0; i < cnt; i++)
		ASSERT_STREQ(mv[i].target, "n5");
	handoff_moves_free(mv, cnt);
	ring_free(o);
	ring_free(nw);
}

QTEST(leave_hands_off_to_successors)
{
	ring *o = make_ring(5, 1);
	ring *nw;
	ASSERT_OK(ring_remove(o, "n3", &nw));
	double f = check_plan(o, nw, 2, NULL);
	printf("# leave 5->4 nodes, n=2: %.3f of keys gain a replica\n", f);
	ASSERT(f > 0.2 && f < 0.6);
	/* the leaving node may send, but never receives */
	handoff_move *mv;
	size_t cnt;
	ASSERT_OK(handoff_plan_all(o, nw, 2, NULL, NULL, &mv, &cnt));
	size_t from_leaver = 0;
	for (size_t i = 0; i < cnt; i++) {
		ASSERT(strcmp(mv[i].target, "n3") != 0);
		from_leaver += !strcmp(mv[i].sender, "n3");
	}
	ASSERT(from_leaver > 0 && from_leaver < cnt); /* the work is spread */
	handoff_moves_free(mv, cnt);
	/* the leaving node stays out of sending if it is dead */
	dead_node = "n3";
	check_plan(o, nw, 2, alive_fn);
	dead_node = NULL;
	ring_free(o);
	ring_free(nw);
}

QTEST(same_ring_moves_nothing)
{
	ring *o = make_ring(4, 1);
	handoff_move *mv;
	size_t cnt;
	ASSERT_OK(handoff_plan_all(o, o, 3, NULL, NULL, &mv, &cnt));
	ASSERT_EQ(cnt, 0);
	handoff_moves_free(mv, cnt);
	handoff_plan p;
	ASSERT_OK(handoff_plan_make(o, o, "n1", 3, NULL, NULL, &p));
	ASSERT_EQ(p.n, 0);
	handoff_plan_free(&p);
	ring_free(o);
}

QTEST(growing_from_one_node)
{
	/* a single-node cluster with n=3: the second node gets everything */
	ring *o = make_ring(1, 1);
	ring_member m2 = {"n2", "z1", TOKENS};
	ring *nw;
	ASSERT_OK(ring_add(o, &m2, &nw));
	double f = check_plan(o, nw, 3, NULL);
	ASSERT(f == 1.0);
	handoff_plan p;
	ASSERT_OK(handoff_plan_make(o, nw, "n1", 3, NULL, NULL, &p));
	ASSERT(p.n >= 1);
	const char *t[4];
	uint64_t seed = 7;
	for (int i = 0; i < 1000; i++) {
		size_t k = handoff_plan_targets(&p, splitmix(&seed), t, 4);
		ASSERT_EQ(k, 1);
		ASSERT_STREQ(t[0], "n2");
	}
	ASSERT_U64_EQ(p.old_version, 1);
	ASSERT_U64_EQ(p.new_version, 2);
	handoff_plan_free(&p);
	/* the newcomer itself sends nothing */
	ASSERT_OK(handoff_plan_make(o, nw, "n2", 3, NULL, NULL, &p));
	ASSERT_EQ(p.n, 0);
	handoff_plan_free(&p);
	ring_free(o);
	ring_free(nw);
}

QTEST(per_node_plans_partition_the_work)
{
	ring *o = make_ring(6, 1);
	ring_member m7 = {"n7", "z2", TOKENS};
	ring *nw;
	ASSERT_OK(ring_add(o, &m7, &nw));
	dead_node = "n2";
	handoff_plan plans[6];
	char id[8];
	size_t total = 0;
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "n%d", i + 1);
		ASSERT_OK(handoff_plan_make(o, nw, id, 3, alive_fn, NULL, &plans[i]));
		total += plans[i].n;
	}
	ASSERT_EQ(plans[1].n, 0); /* the dead node is never asked */
	ASSERT(total > 0);
	/* every point that must move is sent by exactly one node's plan */
	uint64_t seed = 99;
	for (int k = 0; k < NPTS; k++) {
		uint64_t h = splitmix(&seed);
		const char *op[8], *np_[8], *t[8];
		size_t no = prims(o, h, 3, op), nn = prims(nw, h, 3, np_);
		size_t want = 0;
		for (size_t j = 0; j < nn; j++)
			want += !has(np_[j], op, no);
		size_t got = 0;
		for (int i = 0; i < 6; i++)
			got += handoff_plan_targets(&plans[i], h, t, 8);
		ASSERT_EQ(got, want);
	}
	for (int i = 0; i < 6; i++)
		handoff_plan_free(&plans[i]);
	dead_node = NULL;
	ring_free(o);
	ring_free(nw);
}

QTEST(plan_bad_args)
{
	ring *o = make_ring(2, 1);
	handoff_plan p;
	ASSERT_EQ(handoff_plan_make(o, o, NULL, 3, NULL, NULL, &p), -EINVAL);
	ASSERT_EQ(handoff_plan_make(o, o, "n1", 0, NULL, NULL, &p), -EINVAL);
	ring *empty;
	ASSERT_OK(ring_build(NULL, 0, 0, &empty));
	ASSERT_OK(handoff_plan_make(empty, o, "n1", 3, NULL, NULL, &p));
	ASSERT_EQ(p.n, 0); /* nothing stored yet: nothing to send */
	handoff_plan_free(&p);
	ring_free(empty);
	ring_free(o);
}

QTEST(rate_limits_long_run)
{
	handoff_rate r;
	const uint64_t rate = 1000000; /* 1 MB/s */
	uint64_t now = 5000000000ull;
	handoff_rate_init(&r, rate, 100000, now);
	/* the burst goes out at once */
	ASSERT_U64_EQ(handoff_rate_reserve(&r, 100000, now), 0);
	/* then a 50 KB chunk waits 50 ms */
	uint64_t w = handoff_rate_reserve(&r, 50000, now);
	ASSERT(w >= 49000000 && w <= 51000000);
	/* simulate a sender: 10 s of 4 KiB chunks, sleeping as told */
	handoff_rate_init(&r, rate, 65536, now);
	uint64_t start = now, sent = 0;
	while (now - start < 10000000000ull) {
		now += handoff_rate_reserve(&r, 4096, now);
		sent += 4096;
	}
	double elapsed = (double)(now - start) / 1e9;
	double achieved = (double)sent / elapsed;
	printf("# token bucket: %.0f bytes/s achieved for 1000000 configured\n", achieved);
	ASSERT((double)sent <= rate * elapsed + 65536 + 4096);
	ASSERT(achieved > 0.97 * rate);
	/* a chunk bigger than the burst still goes, after a wait */
	handoff_rate_init(&r, 1000, 100, now);
	ASSERT_U64_EQ(handoff_rate_reserve(&r, 100, now), 0);
	w = handoff_rate_reserve(&r, 5000, now);
	ASSERT(w >= 4999000000ull && w <= 5001000000ull);
	/* unlimited */
	handoff_rate_init(&r, 0, 0, now);
	ASSERT_U64_EQ(handoff_rate_reserve(&r, 1u << 30, now), 0);
	/* raising the rate shortens the wait */
	handoff_rate_init(&r, 1000, 1000, now);
	handoff_rate_reserve(&r, 1000, now);
	uint64_t slow = handoff_rate_reserve(&r, 1000, now);
	handoff_rate_init(&r, 1000, 1000, now);
	handoff_rate_reserve(&r, 1000, now);
	handoff_rate_set(&r, 100000, now);
	uint64_t fast = handoff_rate_reserve(&r, 1000, now);
	ASSERT(fast * 50 < slow);
}

QTEST_MAIN(QT(join_moves_only_changed_ranges), QT(leave_hands_off_to_successors),
	   QT(same_ring_moves_nothing), QT(growing_from_one_node),
	   QT(per_node_plans_partition_the_work), QT(plan_bad_args), QT(rate_limits_long_run))
