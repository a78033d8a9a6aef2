/*
 * Unit tests for src/gossip/gossip.c: N gossip instances exchange encoded
 * messages through an in-memory network driven by a simulated clock. This
 * tests the algorithm (merge rules, detector, peer selection, refutation,
 * join, leave, ring convergence), not sockets: the integration tests of the
 * node cover those.
 *
 * The network delivers every message of a round (and the replies it
 * provokes) before the next round; a node that is "stopped" neither ticks
 * nor receives; a "cut" node's messages are dropped both ways; an optional
 * loss rate drops messages at random (deterministic PRNG).
 */
#include "qtest.h"
#include "gossip/gossip.h"
#include "util/log.h"
#include "util/qerr.h"

#define NMAX 24
#define IV 1000u /* tick interval, ms */
#define SUSPECT_MS 5000u
#define DOWN_MS 12000u

typedef struct sim {
	gossip *g[NMAX];
	char id[NMAX][16];
	char addr[NMAX][32];
	int running[NMAX];
	int cut[NMAX];
	size_t n;
	uint64_t now;
	unsigned loss_pct;
	uint64_t rng;
	/* per node: how many messages were addressed to each node */
	size_t sent_to[NMAX];
	/* callback log */
	int ring_cb[NMAX];
	size_t member_cb[NMAX];
} sim;

static sim S_;
static uint64_t seed_base; /* varied by the many-seeds test */

static uint64_t sim_rand(sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static void on_member(void *ud, const gossip_member *m, int old)
{
	size_t i = (size_t)(uintptr_t)ud;
	S_.member_cb[i]++;
	(void)m;
	(void)old;
}

static void on_ring(void *ud, uint64_t v, const void *p, size_t n)
{
	size_t i = (size_t)(uintptr_t)ud;
	S_.ring_cb[i]++;
	(void)v;
	(void)p;
	(void)n;
}

static int addr_idx(sim *s, const char *addr)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->addr[i], addr))
			return (int)i;
	return -1;
}

/* Starts node i (new or restarted) with the given seeds. */
static void sim_start(sim *s, size_t i, uint64_t inc, const char *const *seeds, size_t nseeds)
{
	gossip_config c;
	gossip_config_default(&c);
	snprintf(s->id[i], sizeof(s->id[i]), "n%02zu", i);
	snprintf(s->addr[i], sizeof(s->addr[i]), "127.0.0.1:%zu", 7000 + i);
	c.id = s->id[i];
	c.addr = s->addr[i];
	c.zone = (i % 2) ? "z1" : "z0";
	c.incarnation = inc;
	c.seeds = seeds;
	c.nseeds = nseeds;
	c.suspect_after_ms = SUSPECT_MS;
	c.down_after_ms = DOWN_MS;
	c.rng_seed = 1000 + i * 7919 + inc + seed_base * 104729;
	c.on_member = on_member;
	c.on_ring = on_ring;
	c.ud = (void *)(uintptr_t)i;
	if (s->g[i])
		gossip_free(s->g[i]);
	ASSERT_OK(gossip_new(&c, s->now, &s->g[i]));
	s->running[i] = 1;
	if (i >= s->n)
		s->n = i + 1;
}

/* n nodes, all with node 0 as seed (node 0 has none). */
static sim *sim_make(size_t n)
{
	sim *s = &S_;
	memset(s, 0, sizeof(*s));
	s->rng = 88172645463325252ull + seed_base * 2654435761ull;
	s->now = 1000000;
	q_log_set_level(Q_LOG_WARN);
	static const char *seed0[] = {"127.0.0.1:7000"};
	for (size_t i = 0; i < n; i++)
		sim_start(s, i, 1, i ? seed0 : NULL, i ? 1 : 0);
	return s;
}

static void sim_free(sim *s)
{
	for (size_t i = 0; i < s->n; i++)
		gossip_free(s->g[i]);
	memset(s->g, 0, sizeof(s->g));
}

/* Delivers everything in q (and what it provokes), FIFO. */
static void deliver(sim *s, gossip_outbox *q, size_t from)
{
	/* a simple FIFO of (from, addr, bytes) */
	typedef struct item {
		size_t from;
		int to;
		q_buf msg;
	} item;
	size_t cap = 4096, head = 0, tail = 0;
	item *fifo = calloc(cap, sizeof(*fifo));
	ASSERT(fifo);
	for (size_t i = 0; i < q->n; i++) {
		ASSERT(tail < cap);
		fifo[tail].from = from;
		fifo[tail].to = addr_idx(s, q->v[i].addr);
		fifo[tail].msg = q->v[i].msg;
		q_buf_init(&q->v[i].msg);
		tail++;
	}
	gossip_outbox_clear(q);
	gossip_outbox out;
	gossip_outbox_init(&out);
	while (head < tail) {
		item it = fifo[head++];
		int to = it.to;
		int drop = to < 0 || !s->running[to] || s->cut[to] || s->cut[it.from] ||
			   (s->loss_pct && sim_rand(s) % 100 < s->loss_pct);
		if (to >= 0)
			s->sent_to[to]++;
		if (!drop) {
			int rc = gossip_receive(s->g[to], it.msg.p, it.msg.len, s->now, &out);
			ASSERT_OK(rc);
			for (size_t i = 0; i < out.n; i++) {
				ASSERT(tail < cap);
				fifo[tail].from = (size_t)to;
				fifo[tail].to = addr_idx(s, out.v[i].addr);
				fifo[tail].msg = out.v[i].msg;
				q_buf_init(&out.v[i].msg);
				tail++;
			}
			gossip_outbox_clear(&out);
		}
		q_buf_free(&it.msg);
	}
	gossip_outbox_free(&out);
	free(fifo);
}

/* One interval: every running node ticks (in a rotating order), messages are
 * delivered, the clock advances. */
static void sim_round(sim *s)
{
	gossip_outbox out;
	gossip_outbox_init(&out);
	size_t start = (size_t)(sim_rand(s) % s->n);
	for (size_t k = 0; k < s->n; k++) {
		size_t i = (start + k) % s->n;
		if (!s->running[i])
			continue;
		ASSERT_OK(gossip_tick(s->g[i], s->now, &out));
		deliver(s, &out, i);
	}
	gossip_outbox_free(&out);
	s->now += IV;
}

/* Status of node j as seen by node i (-1 unknown). */
static int seen(sim *s, size_t i, size_t j)
{
	int st = gossip_status_of(s->g[i], s->id[j]);
	return st < 0 ? -1 : st;
}

/* 1 if every running, uncut node knows every node in `want` with status
 * st, and all running views agree on incarnations. */
static int all_see(sim *s, size_t j, int st)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!s->running[i] || s->cut[i] || i == j)
			continue;
		if (seen(s, i, j) != st)
			return 0;
	}
	return 1;
}

static int converged_alive(sim *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!s->running[i])
			continue;
		if (gossip_member_count(s->g[i]) != s->n)
			return 0;
		for (size_t j = 0; j < s->n; j++)
			if (seen(s, i, j) != GOSSIP_ALIVE)
				return 0;
	}
	return 1;
}

/* Runs rounds until pred holds; returns rounds taken or -1 after max. */
#define RUN_UNTIL(s, max, pred) ({ \
	int r_ = -1; \
	for (int k_ = 0; k_ <= (max); k_++) { \
		if (pred) { r_ = k_; break; } \
		sim_round(s); \
	} \
	r_; })

QTEST(converge_from_seed)
{
	sim *s = sim_make(16);
	int r = RUN_UNTIL(s, 30, converged_alive(s));
	ASSERT(r >= 0);
	printf("# 16 nodes converged in %d rounds\n", r);
	/* every view agrees on every member's address and zone */
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->n; j++) {
			gossip_member m;
			ASSERT_OK(gossip_member_find(s->g[i], s->id[j], &m));
			ASSERT_STREQ(m.addr, s->addr[j]);
			ASSERT_STREQ(m.zone, (j % 2) ? "z1" : "z0");
			ASSERT_EQ(m.is_self, i == j);
		}
	sim_free(s);
}

QTEST(no_false_suspicion)
{
	sim *s = sim_make(12);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	/* long steady state: nobody is ever suspected */
	for (int k = 0; k < 120; k++) {
		sim_round(s);
		ASSERT(converged_alive(s));
	}
	sim_free(s);
}

QTEST(stopped_node_suspected_then_down)
{
	sim *s = sim_make(10);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	for (int k = 0; k < 5; k++)
		sim_round(s);
	const size_t X = 3;
	s->running[X] = 0;
	uint64_t t0 = s->now;
	uint64_t t_suspect = 0, t_down = 0;
	for (int k = 0; k < 40 && !t_down; k++) {
		sim_round(s);
		/* nobody may decide before a full suspect_after without progress
		 * (the last heartbeat reached some nodes at most one interval
		 * before the stop) */
		for (size_t i = 0; i < s->n; i++) {
			if (i == X)
				continue;
			int st = seen(s, i, X);
			if (st != GOSSIP_ALIVE)
				ASSERT(s->now >= t0 + SUSPECT_MS - 2 * IV);
			if (st == GOSSIP_DOWN)
				ASSERT(s->now >= t0 + DOWN_MS - 2 * IV);
		}
		if (!t_suspect && all_see(s, X, GOSSIP_SUSPECT))
			t_suspect = s->now;
		if (all_see(s, X, GOSSIP_DOWN)) {
			if (!t_suspect)
				t_suspect = s->now;
			t_down = s->now;
		}
	}
	ASSERT(t_suspect && t_down);
	printf("# suspect everywhere after %llu ms, down after %llu ms (bounds %u/%u ms + 3 intervals)\n",
	       (unsigned long long)(t_suspect - t0), (unsigned long long)(t_down - t0), SUSPECT_MS,
	       DOWN_MS);
	ASSERT(t_suspect - t0 <= SUSPECT_MS + 3 * IV);
	ASSERT(t_down - t0 <= DOWN_MS + 3 * IV);
	/* down members stay down, never vanish, never come back by themselves */
	for (int k = 0; k < 20; k++)
		sim_round(s);
	ASSERT(all_see(s, X, GOSSIP_DOWN));
	sim_free(s);
}

/* The detection bounds over many random schedules (QFS_LONG=1: more, and
 * bigger clusters). Every other member must stay alive everywhere. */
QTEST(detection_bounds_many_seeds)
{
	int long_run = getenv("QFS_LONG") && !strcmp(getenv("QFS_LONG"), "1");
	int runs = long_run ? 60 : 6;
	uint64_t worst_s = 0, worst_d = 0;
	for (int k = 0; k < runs; k++) {
		seed_base = (uint64_t)k + 1;
		size_t nodes = 4 + (size_t)(k % (long_run ? 20 : 8));
		sim *s = sim_make(nodes);
		ASSERT(RUN_UNTIL(s, 40, converged_alive(s)) >= 0);
		for (int r = 0; r < 3; r++)
			sim_round(s);
		size_t X = 1 + (size_t)(sim_rand(s) % (nodes - 1));
		s->running[X] = 0;
		uint64_t t0 = s->now, ts = 0, td = 0;
		for (int r = 0; r < 40 && !td; r++) {
			sim_round(s);
			for (size_t i = 0; i < nodes; i++)
				for (size_t j = 0; j < nodes; j++)
					if (i != X && j != X)
						ASSERT_EQ(seen(s, i, j), GOSSIP_ALIVE);
			if (!ts && all_see(s, X, GOSSIP_SUSPECT))
				ts = s->now;
			if (all_see(s, X, GOSSIP_DOWN)) {
				ts = ts ? ts : s->now;
				td = s->now;
			}
		}
		ASSERT(ts && td);
		ASSERT(ts - t0 <= SUSPECT_MS + 3 * IV);
		ASSERT(td - t0 <= DOWN_MS + 3 * IV);
		worst_s = ts - t0 > worst_s ? ts - t0 : worst_s;
		worst_d = td - t0 > worst_d ? td - t0 : worst_d;
		sim_free(s);
	}
	seed_base = 0;
	printf("# %d schedules: worst suspect-everywhere %llu ms, worst down-everywhere %llu ms\n",
	       runs, (unsigned long long)worst_s, (unsigned long long)worst_d);
}

QTEST(down_member_probed_now_and_then)
{
	sim *s = sim_make(6);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	s->running[5] = 0;
	ASSERT(RUN_UNTIL(s, 40, all_see(s, 5, GOSSIP_DOWN)) >= 0);
	size_t before = s->sent_to[5];
	for (int k = 0; k < 60; k++)
		sim_round(s);
	size_t probes = s->sent_to[5] - before;
	printf("# %zu probes of a down member in 60 rounds of 5 nodes\n", probes);
	/* each of 5 nodes probes with chance 1/(4+1): about 60 expected; far fewer than live peers get */
	ASSERT(probes > 5);
	ASSERT(probes < 5 * 60 / 2);
	sim_free(s);
}

QTEST(refute_after_partition)
{
	sim *s = sim_make(8);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	const size_t X = 6;
	uint64_t inc0 = gossip_self_incarnation(s->g[X]);
	s->cut[X] = 1;
	ASSERT(RUN_UNTIL(s, 40, all_see(s, X, GOSSIP_DOWN)) >= 0);
	/* X, cut off, sees everyone else down, which is its own problem */
	s->cut[X] = 0;
	int r = RUN_UNTIL(s, 20, converged_alive(s));
	ASSERT(r >= 0);
	printf("# refuted and back to all-alive in %d rounds\n", r);
	ASSERT(gossip_self_incarnation(s->g[X]) > inc0);
	gossip_member m;
	ASSERT_OK(gossip_member_find(s->g[0], s->id[X], &m));
	ASSERT_U64_EQ(m.incarnation, gossip_self_incarnation(s->g[X]));
	sim_free(s);
}

QTEST(refute_suspicion_directly)
{
	/* A single ACK saying "you are suspect" makes a node bump its
	 * incarnation at once. */
	sim *s = sim_make(2);
	ASSERT(RUN_UNTIL(s, 10, converged_alive(s)) >= 0);
	gossip_member me;
	ASSERT_OK(gossip_member_find(s->g[1], s->id[1], &me));
	gossip_state st = {q_slice_str(s->id[1]), q_slice_str(s->addr[1]), q_slice_str("z1"),
			   me.incarnation, me.heartbeat, GOSSIP_SUSPECT};
	gossip_msg m;
	memset(&m, 0, sizeof(m));
	m.type = GOSSIP_MSG_ACK2;
	m.cluster = q_slice_str(GOSSIP_CLUSTER_DEFAULT);
	m.from_id = q_slice_str(s->id[0]);
	m.from_addr = q_slice_str(s->addr[0]);
	m.states = &st;
	m.nstates = 1;
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&m, &b));
	gossip_outbox out;
	gossip_outbox_init(&out);
	ASSERT_OK(gossip_receive(s->g[1], b.p, b.len, s->now, &out));
	ASSERT_U64_EQ(gossip_self_incarnation(s->g[1]), me.incarnation + 1);
	ASSERT_EQ(seen(s, 1, 1), GOSSIP_ALIVE);
	/* a higher incarnation heard about oneself (an earlier life) too */
	st.incarnation = me.incarnation + 50;
	st.status = GOSSIP_DOWN;
	q_buf_reset(&b);
	ASSERT_OK(gossip_msg_encode(&m, &b));
	ASSERT_OK(gossip_receive(s->g[1], b.p, b.len, s->now, &out));
	ASSERT_U64_EQ(gossip_self_incarnation(s->g[1]), me.incarnation + 51);
	ASSERT_EQ(out.n, 0);
	gossip_outbox_free(&out);
	q_buf_free(&b);
	sim_free(s);
}

QTEST(restart_rejoins)
{
	sim *s = sim_make(6);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	const size_t X = 4;
	s->running[X] = 0;
	ASSERT(RUN_UNTIL(s, 40, all_see(s, X, GOSSIP_DOWN)) >= 0);
	/* restart with a LOWER incarnation than before: it must adopt one
	 * above what the cluster remembers */
	static const char *seed0[] = {"127.0.0.1:7000"};
	sim_start(s, X, 1, seed0, 1);
	ASSERT_EQ(gossip_member_count(s->g[X]), 1);
	int r = RUN_UNTIL(s, 20, converged_alive(s));
	ASSERT(r >= 0);
	printf("# restarted node alive everywhere after %d rounds\n", r);
	ASSERT(gossip_self_incarnation(s->g[X]) > 1);
	sim_free(s);
}

QTEST(join_through_seed)
{
	sim *s = sim_make(5);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	/* a newcomer that knows only node 2's address */
	static const char *seed2[] = {"127.0.0.1:7002"};
	sim_start(s, 5, 1, seed2, 1);
	int r = RUN_UNTIL(s, 20, converged_alive(s));
	ASSERT(r >= 0);
	printf("# newcomer known to all 6 after %d rounds\n", r);
	/* the others reported it through on_member */
	for (size_t i = 0; i < 5; i++)
		ASSERT(S_.member_cb[i] >= 5);
	/* a seed that is down does not stop a join through another seed */
	s->running[0] = 0;
	static const char *seeds[] = {"127.0.0.1:7000", "127.0.0.1:7001"};
	sim_start(s, 6, 1, seeds, 2);
	ASSERT(RUN_UNTIL(s, 20, all_see(s, 6, GOSSIP_ALIVE) &&
				    gossip_member_count(s->g[6]) == 7) >= 0);
	sim_free(s);
}

QTEST(leave_is_final)
{
	sim *s = sim_make(6);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	const size_t X = 2;
	ASSERT_OK(gossip_leave(s->g[X], s->now));
	ASSERT_EQ(seen(s, X, X), GOSSIP_LEFT);
	ASSERT(RUN_UNTIL(s, 10, all_see(s, X, GOSSIP_LEFT)) >= 0);
	s->running[X] = 0;
	size_t before = s->sent_to[X];
	/* long past down_after: still left, never down, never gossiped to */
	for (int k = 0; k < 30; k++)
		sim_round(s);
	ASSERT(all_see(s, X, GOSSIP_LEFT));
	ASSERT_EQ(s->sent_to[X], before);
	size_t counts[GOSSIP_STATUS_MAX + 1];
	gossip_counts(s->g[0], counts);
	ASSERT_EQ(counts[GOSSIP_ALIVE], 5);
	ASSERT_EQ(counts[GOSSIP_LEFT], 1);
	sim_free(s);
}

QTEST(remove_dead_member)
{
	sim *s = sim_make(5);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	ASSERT_EQ(gossip_remove(s->g[0], s->id[3], s->now), -EBUSY); /* still alive */
	ASSERT_EQ(gossip_remove(s->g[0], s->id[0], s->now), -EINVAL);
	ASSERT_EQ(gossip_remove(s->g[0], "nobody", s->now), Q_ENOTFOUND);
	s->running[3] = 0;
	ASSERT(RUN_UNTIL(s, 40, all_see(s, 3, GOSSIP_DOWN)) >= 0);
	ASSERT_OK(gossip_remove(s->g[1], s->id[3], s->now));
	ASSERT(RUN_UNTIL(s, 10, all_see(s, 3, GOSSIP_LEFT)) >= 0);
	size_t before = s->sent_to[3];
	for (int k = 0; k < 30; k++)
		sim_round(s);
	ASSERT_EQ(s->sent_to[3], before); /* no longer probed */
	sim_free(s);
}

static int ring_all(sim *s, uint64_t v, const char *bytes)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!s->running[i])
			continue;
		uint64_t gv;
		q_slice b;
		gossip_ring(s->g[i], &gv, &b);
		if (gv != v || !q_slice_eq(b, q_slice_str(bytes)))
			return 0;
	}
	return 1;
}

QTEST(ring_converges)
{
	sim *s = sim_make(10);
	ASSERT(RUN_UNTIL(s, 30, converged_alive(s)) >= 0);
	ASSERT_OK(gossip_set_ring(s->g[7], 1, "ring-one", 8));
	ASSERT_EQ(gossip_set_ring(s->g[7], 1, "ring-one", 8), -ESTALE);
	ASSERT_EQ(gossip_set_ring(s->g[7], 0, "x", 1), -EINVAL);
	int r = RUN_UNTIL(s, 15, ring_all(s, 1, "ring-one"));
	ASSERT(r >= 0);
	printf("# ring version 1 everywhere after %d rounds\n", r);
	for (size_t i = 0; i < s->n; i++)
		ASSERT_EQ(S_.ring_cb[i], i == 7 ? 0 : 1);

	/* two nodes make conflicting version-2 rings at once: all converge on
	 * the one with the larger hash */
	ASSERT_OK(gossip_set_ring(s->g[1], 2, "ring-two-a", 10));
	ASSERT_OK(gossip_set_ring(s->g[8], 2, "ring-two-b", 10));
	const char *win = gossip_ring_hash("ring-two-a", 10) > gossip_ring_hash("ring-two-b", 10)
				  ? "ring-two-a"
				  : "ring-two-b";
	ASSERT(RUN_UNTIL(s, 15, ring_all(s, 2, win)) >= 0);
	/* a newcomer learns the ring on joining */
	static const char *seed0[] = {"127.0.0.1:7000"};
	sim_start(s, 10, 1, seed0, 1);
	ASSERT(RUN_UNTIL(s, 15, ring_all(s, 2, win)) >= 0);
	sim_free(s);
}

static int reject_ring(void *ud, uint64_t v, const void *p, size_t n)
{
	(void)ud;
	(void)v;
	return (n >= 3 && !memcmp(p, "bad", 3)) ? Q_ECORRUPT : 0;
}

QTEST(ring_check_refuses)
{
	sim *s = sim_make(3);
	/* node 2 refuses "bad..." rings */
	gossip_config c;
	gossip_config_default(&c);
	static const char *seed0[] = {"127.0.0.1:7000"};
	c.id = "n02";
	c.addr = "127.0.0.1:7002";
	c.seeds = seed0;
	c.nseeds = 1;
	c.incarnation = 1;
	c.rng_seed = 3;
	c.suspect_after_ms = SUSPECT_MS;
	c.down_after_ms = DOWN_MS;
	c.ring_check = reject_ring;
	gossip_free(s->g[2]);
	ASSERT_OK(gossip_new(&c, s->now, &s->g[2]));
	ASSERT(RUN_UNTIL(s, 20, converged_alive(s)) >= 0);
	ASSERT_OK(gossip_set_ring(s->g[0], 4, "bad-ring", 8));
	for (int k = 0; k < 10; k++)
		sim_round(s);
	uint64_t v;
	q_slice b;
	gossip_ring(s->g[2], &v, &b);
	ASSERT_U64_EQ(v, 0);
	gossip_ring(s->g[1], &v, &b);
	ASSERT_U64_EQ(v, 4);
	sim_free(s);
}

QTEST(converges_with_message_loss)
{
	sim *s = sim_make(12);
	s->loss_pct = 30;
	int r = RUN_UNTIL(s, 60, converged_alive(s));
	ASSERT(r >= 0);
	printf("# 12 nodes, 30%% loss: converged in %d rounds\n", r);
	ASSERT_OK(gossip_set_ring(s->g[5], 3, "ring-3", 6));
	ASSERT(RUN_UNTIL(s, 40, ring_all(s, 3, "ring-3")) >= 0);
	sim_free(s);
}

static void bad_case(gossip *g, const void *p, size_t n, int want)
{
	gossip_outbox out;
	gossip_outbox_init(&out);
	ASSERT_EQ(gossip_receive(g, p, n, 5000, &out), want);
	ASSERT_EQ(out.n, 0);
	ASSERT_EQ(gossip_member_count(g), 1);
	gossip_outbox_free(&out);
}

QTEST(bad_messages_rejected)
{
	gossip_config c;
	gossip_config_default(&c);
	c.id = "me";
	c.addr = "127.0.0.1:1";
	c.incarnation = 9;
	c.rng_seed = 5;
	gossip *g;
	ASSERT_OK(gossip_new(&c, 0, &g));
	q_log_set_level(Q_LOG_OFF);

	bad_case(g, "", 0, Q_ETRUNC);
	bad_case(g, "\x01\x01", 2, Q_ETRUNC);
	bad_case(g, "\x07garbage", 8, Q_EVERSION);

	gossip_state st = {q_slice_str("other"), q_slice_str("h:2"), q_slice_str(""), 1, 1,
			   GOSSIP_ALIVE};
	gossip_msg m;
	memset(&m, 0, sizeof(m));
	m.type = GOSSIP_MSG_ACK2;
	m.cluster = q_slice_str("another-cluster");
	m.from_id = q_slice_str("other");
	m.from_addr = q_slice_str("h:2");
	m.states = &st;
	m.nstates = 1;
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&m, &b));
	bad_case(g, b.p, b.len, Q_EPROTO); /* other cluster */
	m.cluster = q_slice_str(GOSSIP_CLUSTER_DEFAULT);
	m.from_id = q_slice_str("me");
	q_buf_reset(&b);
	ASSERT_OK(gossip_msg_encode(&m, &b));
	bad_case(g, b.p, b.len, Q_EPROTO); /* claims our id */
	/* the same message from a proper sender is accepted */
	m.from_id = q_slice_str("other");
	q_buf_reset(&b);
	ASSERT_OK(gossip_msg_encode(&m, &b));
	gossip_outbox out;
	gossip_outbox_init(&out);
	ASSERT_OK(gossip_receive(g, b.p, b.len, 5000, &out));
	ASSERT_EQ(gossip_member_count(g), 2);
	gossip_outbox_free(&out);
	q_buf_free(&b);
	gossip_free(g);
}

QTEST(config_checks)
{
	gossip_config c;
	gossip *g;
	gossip_config_default(&c);
	c.addr = "h:1";
	ASSERT_EQ(gossip_new(&c, 0, &g), -EINVAL); /* no id */
	c.id = "has space";
	ASSERT_EQ(gossip_new(&c, 0, &g), -EINVAL);
	c.id = "ok";
	c.suspect_after_ms = 5000;
	c.down_after_ms = 5000;
	ASSERT_EQ(gossip_new(&c, 0, &g), -EINVAL);
	c.down_after_ms = 0;
	ASSERT_OK(gossip_new(&c, 0, &g));
	ASSERT(gossip_self_incarnation(g) > 1000000000ull); /* wall-clock ms */
	ASSERT_STREQ(gossip_self_id(g), "ok");
	gossip_free(g);

	q_conf *conf = q_conf_new();
	const char text[] = "gossip_interval = 200ms\ngossip_suspect_after = 2s\n"
			    "gossip_down_after = 6s\ngossip_fanout = 4\ncluster_name = blue\n";
	ASSERT_OK(q_conf_parse(conf, text, sizeof(text) - 1));
	ASSERT_OK(q_conf_check_known(conf, gossip_conf_keys));
	uint64_t iv;
	gossip_config_default(&c);
	ASSERT_OK(gossip_config_from_conf(conf, &c, &iv));
	ASSERT_U64_EQ(iv, 200);
	ASSERT_U64_EQ(c.suspect_after_ms, 2000);
	ASSERT_U64_EQ(c.down_after_ms, 6000);
	ASSERT_EQ(c.fanout, 4);
	ASSERT_STREQ(c.cluster, "blue");
	q_log_set_level(Q_LOG_OFF);
	ASSERT_OK(q_conf_set(conf, "gossip_down_after", "1s"));
	ASSERT_EQ(gossip_config_from_conf(conf, &c, &iv), -EINVAL);
	ASSERT_OK(q_conf_set(conf, "gossip_down_after", "soon"));
	ASSERT_EQ(gossip_config_from_conf(conf, &c, &iv), -EINVAL);
	q_conf_free(conf);
}

QTEST_MAIN(QT(converge_from_seed), QT(no_false_suspicion), QT(stopped_node_suspected_then_down),
	   QT(detection_bounds_many_seeds),
	   QT(down_member_probed_now_and_then), QT(refute_after_partition),
	   QT(refute_suspicion_directly), QT(restart_rejoins), QT(join_through_seed),
	   QT(leave_is_final), QT(remove_dead_member), QT(ring_converges), QT(ring_check_refuses),
	   QT(converges_with_message_loss), QT(bad_messages_rejected), QT(config_checks))
