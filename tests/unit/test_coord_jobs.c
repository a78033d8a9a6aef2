/*
 * test_coord_jobs.c - the coordinator's disk jobs with io = auto and
 * io = worker on one real node (storage engine, replica, event loop,
 * coordinator; no network peers): a job of a key that is with the workers
 * keeps later loop-eligible jobs of that key off the loop until it is done
 * (invariant 6 of coord.c: key_pend), and the key runs on the loop again
 * afterwards; a failed hand-off to the workers gives the keys of a
 * multi-key read (local, and served to a peer as REPL_MGET) an explicit
 * error; a write the engine refuses on the loop calls the replica's batch
 * hook once, its batch stored by the worker; with sync = always writes are
 * not tried on the loop at all; a hint whose owner left is
 * merged here by a disk job, not on the loop thread; a hint delivery
 * round reads and deletes the hint store at a worker while the loop goes
 * on serving, keeps a hint into which a write was merged during its
 * delivery, keeps a hint whose delivery failed, and deletes what it
 * delivered in one store write.
 *
 * The coordinator's test hooks (coord.h) hold jobs at the workers and fail
 * hand-offs. The worker pool has one thread (UV_THREADPOOL_SIZE, set before
 * the first job of the test's process), so jobs at the workers run in the
 * order they were handed over and a held job holds every later one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "cluster/replica.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "net/net_loop.h"
#include "net/net_msg.h"
#include "net/net_pool.h"
#include "qtest.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define WAIT_MS 20000

typedef struct rig {
	lsm_db *db;
	replica *rep;
	members *mem;
	net_loop *loop;
	coord *c;
	hint_store *hints;      /* if set before rig_start: the node keeps hints,
				 * and their owner "gone" has left for good */
	int sync_writes;        /* coord_config.sync_writes, if set before
				 * rig_start */
} rig;

/* The engine without a block cache and without page-cache reads: a key
 * whose value is in a table is never read on the loop (-EAGAIN), one in
 * the memtable always is. */
static void rig_open_sync(rig *g, lsm_sync sync)
{
	memset(g, 0, sizeof(*g));
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = sync;
	o.block_cache_size = 0;
	o.nowait_page_cache = 0;
	static int opened; /* a fresh store per rig */
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/db%d", qtest_tmpdir, opened++);
	ASSERT_OK(lsm_open(dir, &o, &g->db));
	ASSERT_OK(replica_new(g->db, "solo", &g->rep));
}

static void rig_open(rig *g)
{
	rig_open_sync(g, LSM_SYNC_NONE);
}

static void start_on_loop(void *arg)
{
	rig *g = arg;
	ASSERT_OK(coord_start(g->c));
}

static void close_on_loop(void *arg)
{
	rig *g = arg;
	coord_close(g->c);
}

static int departed_gone(void *arg, const char *id)
{
	(void)arg;
	return !strcmp(id, "gone");
}

static void rig_start(rig *g, int io, size_t job_batch, const coord_test_hooks *h)
{
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", qtest_free_port());
	ASSERT_OK(members_new("solo", listen, "default", &g->mem));
	coord_config cc = {
		.node_id = "solo",
		.listen = listen,
		.n = 1,
		.r = 1,
		.w = 1,
		.timeout_ms = WAIT_MS,
		.read_repair = 1,
		.max_key = 1024,
		.max_value = 1 << 20,
		.ring_tokens = 16,
		.io = io,
		.job_batch = job_batch,
		.sync_writes = g->sync_writes,
	};
	ASSERT_OK(net_loop_start(0, "test-loop", &g->loop));
	ASSERT_OK(coord_new(&cc, g->rep, g->mem, g->loop, &g->c));
	coord_set_test_hooks(g->c, h);
	if (g->hints) {
		coord_set_hints(g->c, g->hints);
		coord_set_departed_fn(g->c, departed_gone, NULL);
	}
	ASSERT_OK(net_loop_call(g->loop, start_on_loop, g));
}

static void rig_stop(rig *g)
{
	ASSERT_OK(net_loop_call(g->loop, close_on_loop, g));
	net_loop_stop(g->loop);
	coord_free(g->c);
	members_free(g->mem);
	hint_store_close(g->hints);
	replica_free(g->rep);
	ASSERT_OK(lsm_close(g->db));
}

static void noop(void *arg)
{
	(void)arg;
}

/* Returns once everything posted to the loop before it has run. */
static void loop_barrier(rig *g)
{
	ASSERT_OK(net_loop_call(g->loop, noop, NULL));
}

/* ---- requests posted to the loop ------------------------------------- */

static atomic_int finished; /* completions so far: the order of calls */

typedef struct call {
	rig *g;
	const char *key;
	q_slice value;          /* put */
	int put;
	atomic_int done;
	int rc;
	int order;              /* value of finished when it completed */
	obj_set *set;
} call;

static void call_done(void *arg, int rc, obj_set *set)
{
	call *k = arg;
	k->rc = rc;
	k->set = set;
	k->order = atomic_fetch_add(&finished, 1);
	atomic_store(&k->done, 1);
}

static void call_start(void *arg)
{
	call *k = arg;
	if (k->put) {
		obj_write w = {0, k->value, NULL, (int64_t)q_wall_ns()};
		coord_put(k->g->c, q_slice_str(k->key), q_slice_make(NULL, 0), &w, NULL, call_done,
			  k);
	} else {
		coord_get(k->g->c, q_slice_str(k->key), NULL, call_done, k);
	}
}

static void post(rig *g, call *k, const char *key, int put, q_slice value)
{
	memset(k, 0, sizeof(*k));
	k->g = g;
	k->key = key;
	k->put = put;
	k->value = value;
	ASSERT_OK(net_loop_post(g->loop, call_start, k));
}

static void wait_done(call *k)
{
	ASSERT_EQ(qtest_wait_flag(&k->done, WAIT_MS), 1);
}

/* ---- holding jobs at the workers ------------------------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int held;               /* jobs of key wait while set */
	const char *key;
	int seen;               /* jobs of key that reached a worker */
	atomic_int arrived;     /* a job of key is waiting */
} hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL, 0, 0};

static void hold_work(void *arg, q_slice key)
{
	(void)arg;
	pthread_mutex_lock(&hold.mu);
	if (hold.key && key.n == strlen(hold.key) && !memcmp(key.p, hold.key, key.n)) {
		hold.seen++;
		atomic_store(&hold.arrived, 1);
		uint64_t limit = q_mono_ms() + WAIT_MS;
		while (hold.held && q_mono_ms() < limit) {
			pthread_mutex_unlock(&hold.mu);
			q_sleep_ms(1);
			pthread_mutex_lock(&hold.mu);
		}
	}
	pthread_mutex_unlock(&hold.mu);
}

static void hold_set(const char *key, int held)
{
	pthread_mutex_lock(&hold.mu);
	hold.key = key;
	hold.held = held;
	pthread_mutex_unlock(&hold.mu);
}

static int hold_seen(void)
{
	pthread_mutex_lock(&hold.mu);
	int n = hold.seen;
	pthread_mutex_unlock(&hold.mu);
	return n;
}

static coord_stats stats(rig *g)
{
	coord_stats st;
	coord_get_stats(g->c, &st);
	return st;
}

static size_t live_values(const obj_set *s, const char *v1, size_t n1, const char *v2, size_t n2)
{
	size_t hits = 0, k = obj_set_count(s);
	for (size_t i = 0; i < k; i++) {
		obj_sibling sb;
		obj_set_sibling(s, i, &sb);
		if ((sb.value.n == n1 && !memcmp(sb.value.p, v1, n1)) ||
		    (sb.value.n == n2 && !memcmp(sb.value.p, v2, n2)))
			hits++;
	}
	return hits;
}

/*
 * A put of "k" large enough to skip the loop goes to the (one) worker and
 * is held there. A small put and a get of "k" would each be done on the
 * loop from memory, but must follow it to the worker: neither is done
 * when the loop has run everything posted, and once the held put is let
 * go they complete in order, the get seeing both puts. An unrelated key is
 * still served on the loop meanwhile. After the worker is done with "k",
 * a get of "k" runs on the loop again (its key slot was uncounted).
 */
QTEST(loop_jobs_of_a_key_follow_its_worker_job)
{
	rig g;
	rig_open(&g);
	coord_test_hooks h = {hold_work, NULL, NULL};
	rig_start(&g, COORD_IO_AUTO, 64, &h);
	static char big[20 << 10];
	memset(big, 'b', sizeof(big));
	hold_set("k", 1);
	call p1, p2, get, other;
	post(&g, &p1, "k", 1, q_slice_make(big, sizeof(big)));
	ASSERT_EQ(qtest_wait_flag(&hold.arrived, WAIT_MS), 1);
	post(&g, &p2, "k", 1, q_slice_str("small"));
	post(&g, &get, "k", 0, q_slice_make(NULL, 0));
	post(&g, &other, "other", 1, q_slice_str("x"));
	loop_barrier(&g);
	wait_done(&other); /* an unrelated key is done on the loop */
	ASSERT_OK(other.rc);
	ASSERT_EQ(atomic_load(&p1.done), 0);
	ASSERT_EQ(atomic_load(&p2.done), 0); /* not done on the loop */
	ASSERT_EQ(atomic_load(&get.done), 0);
	coord_stats st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, 3);
	ASSERT_U64_EQ(st.jobs_loop, 1);
	hold_set("k", 0);
	wait_done(&p1);
	wait_done(&p2);
	wait_done(&get);
	ASSERT_OK(p1.rc);
	ASSERT_OK(p2.rc);
	ASSERT_OK(get.rc);
	ASSERT(p1.order < p2.order);
	ASSERT(p2.order < get.order);
	/* two blind puts: two siblings, both seen by the get */
	ASSERT_EQ(obj_set_count(get.set), 2);
	ASSERT_EQ(live_values(get.set, big, sizeof(big), "small", 5), 2);
	ASSERT_EQ(hold_seen(), 3);
	/* the worker is done with "k": its jobs run on the loop again */
	call again;
	post(&g, &again, "k", 0, q_slice_make(NULL, 0));
	wait_done(&again);
	ASSERT_OK(again.rc);
	ASSERT_EQ(obj_set_count(again.set), 2);
	st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, 3);
	ASSERT_U64_EQ(st.jobs_loop, 2);
	ASSERT_EQ(hold_seen(), 3);
	obj_set_free(p1.set);
	obj_set_free(p2.set);
	obj_set_free(get.set);
	obj_set_free(again.set);
	obj_set_free(other.set);
	rig_stop(&g);
}

/* ---- multi-key reads whose hand-off fails --------------------------- */

static atomic_int handoff_fails;

static int fail_handoff(void *arg)
{
	(void)arg;
	return atomic_load(&handoff_fails) ? -EIO : 0;
}

typedef struct mcall {
	rig *g;
	q_slice keys[3];
	atomic_int done;
	int rc;
	int rcs[3];
	obj_set *sets[3];
} mcall;

static void mcall_done(void *arg, int rc, obj_set **sets, int *rcs, size_t n)
{
	mcall *m = arg;
	m->rc = rc;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		m->rcs[i] = rcs[i];
		m->sets[i] = sets[i];
	}
	atomic_store(&m->done, 1);
}

static void mcall_start(void *arg)
{
	mcall *m = arg;
	coord_mget(m->g->c, m->keys, 3, NULL, mcall_done, m);
}

/* mget of "disk" (in a table: never read on the loop), "mem" (in the
 * memtable) and "none" (absent), waited for. */
static void mget3(rig *g, mcall *m)
{
	memset(m, 0, sizeof(*m));
	m->g = g;
	m->keys[0] = q_slice_str("disk");
	m->keys[1] = q_slice_str("mem");
	m->keys[2] = q_slice_str("none");
	ASSERT_OK(net_loop_post(g->loop, mcall_start, m));
	ASSERT_EQ(qtest_wait_flag(&m->done, WAIT_MS), 1);
	ASSERT_OK(m->rc);
}

static void mget3_free(mcall *m)
{
	for (int i = 0; i < 3; i++)
		obj_set_free(m->sets[i]);
}

/* A REPL_MGET for "disk", "mem" and "none" sent to the node over TCP, as
 * a peer coordinating a multi-key read would: the entries' statuses in
 * st[], 1 in has[] where an entry came with an object. */
static net_pool *probe_pool;

static void probe_pool_new(void *arg)
{
	net_pool_opts po;
	memset(&po, 0, sizeof(po));
	ASSERT_OK(net_pool_new(((rig *)arg)->loop, &po, &probe_pool));
}

static void probe_pool_close(void *arg)
{
	(void)arg;
	net_pool_close(probe_pool);
	probe_pool = NULL;
}

static void repl_mget3(rig *g, int st[3], int has[3])
{
	ASSERT_OK(net_loop_call(g->loop, probe_pool_new, g));
	q_slice keys[3] = {q_slice_str("disk"), q_slice_str("mem"), q_slice_str("none")};
	net_msg m, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_REPL_MGET);
	m.u.mget.nkeys = 3;
	m.u.mget.keys = keys;
	ASSERT_OK(net_pool_call(g->loop, probe_pool, coord_listen_addr(g->c), &m, WAIT_MS, &resp,
				&buf));
	ASSERT_EQ(resp.u.mget_resp.n, 3);
	for (int i = 0; i < 3; i++) {
		st[i] = resp.u.mget_resp.entries[i].status;
		has[i] = resp.u.mget_resp.entries[i].object.n > 0;
	}
	net_msg_clear(&resp);
	q_buf_free(&buf);
	ASSERT_OK(net_loop_call(g->loop, probe_pool_close, NULL));
}

static void put_local(rig *g, const char *key)
{
	obj_write w = {0, q_slice_str(key), NULL, (int64_t)q_wall_ns()};
	ASSERT_OK(replica_update(g->rep, q_slice_str(key), NULL, &w, NULL));
}

/*
 * A multi-key read whose hand-off to the workers fails (a batch or a
 * single job) answers each key the workers were to read with an error,
 * not with a silent not-found and not never; keys answered on the loop
 * (io = auto) keep their answers. Once hand-offs work again the same read
 * is answered right.
 */
static void failed_handoff_case(int io, size_t batch)
{
	rig g;
	rig_open(&g);
	put_local(&g, "disk");
	ASSERT_OK(lsm_flush(g.db));
	put_local(&g, "mem");
	coord_test_hooks h = {NULL, fail_handoff, NULL};
	rig_start(&g, io, batch, &h);
	atomic_store(&handoff_fails, 1);
	mcall m;
	mget3(&g, &m);
	ASSERT_EQ(m.rcs[0], Q_EQUORUM);
	ASSERT_EQ(m.sets[0], NULL);
	if (io == COORD_IO_AUTO) {
		ASSERT_OK(m.rcs[1]);
		ASSERT_EQ(obj_set_count(m.sets[1]), 1);
		ASSERT_EQ(m.rcs[2], Q_ENOTFOUND);
	} else {
		ASSERT_EQ(m.rcs[1], Q_EQUORUM);
		ASSERT_EQ(m.rcs[2], Q_EQUORUM);
	}
	mget3_free(&m);
	/* the same keys asked by a peer (REPL_MGET): each key the workers
	 * were to read has an error status, not 0 without an object */
	int st[3], has[3];
	repl_mget3(&g, st, has);
	ASSERT_EQ(st[0], Q_ECLOSED);
	if (io == COORD_IO_AUTO) {
		ASSERT_OK(st[1]);
		ASSERT_EQ(has[1], 1);
		ASSERT_EQ(st[2], Q_ENOTFOUND);
	} else {
		ASSERT_EQ(st[1], Q_ECLOSED);
		ASSERT_EQ(st[2], Q_ECLOSED);
	}
	atomic_store(&handoff_fails, 0);
	repl_mget3(&g, st, has);
	ASSERT_OK(st[0]);
	ASSERT_OK(st[1]);
	ASSERT_EQ(st[2], Q_ENOTFOUND);
	ASSERT_EQ(has[0] + has[1] + has[2], 2);
	mget3(&g, &m);
	ASSERT_OK(m.rcs[0]);
	ASSERT_OK(m.rcs[1]);
	ASSERT_EQ(m.rcs[2], Q_ENOTFOUND);
	ASSERT_EQ(obj_set_count(m.sets[0]), 1);
	ASSERT_EQ(obj_set_count(m.sets[1]), 1);
	mget3_free(&m);
	rig_stop(&g);
}

QTEST(failed_handoff_fails_the_keys_of_a_multi_key_read)
{
	failed_handoff_case(COORD_IO_WORKER, 64);
	failed_handoff_case(COORD_IO_WORKER, 1);
	failed_handoff_case(COORD_IO_AUTO, 64);
	failed_handoff_case(COORD_IO_AUTO, 1);
}

/* A put whose write cannot be handed to the workers is answered with
 * that error (the failed hand-off's own, or Q_ECLOSED for a batch that
 * could not go), not with -ENOMEM; nothing is stored. */
QTEST(failed_handoff_answers_a_put_with_its_cause)
{
	size_t batches[2] = {1, 64};
	int want[2] = {-EIO, Q_ECLOSED};
	for (int i = 0; i < 2; i++) {
		rig g;
		rig_open(&g);
		coord_test_hooks h = {NULL, fail_handoff, NULL};
		rig_start(&g, COORD_IO_WORKER, batches[i], &h);
		atomic_store(&handoff_fails, 1);
		call p;
		post(&g, &p, "k", 1, q_slice_str("v"));
		wait_done(&p);
		ASSERT_EQ(p.rc, want[i]);
		ASSERT_EQ(p.set, NULL);
		atomic_store(&handoff_fails, 0);
		obj_set *got = NULL;
		ASSERT_EQ(replica_get(g.rep, q_slice_str("k"), &got), Q_ENOTFOUND);
		rig_stop(&g);
	}
}

/* ---- the replica's batch hook across a fallback ---------------------- */

static atomic_int batch_calls, after_calls;

static int count_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	(void)arg;
	(void)b;
	(void)key;
	(void)nd;
	atomic_fetch_add(&batch_calls, 1);
	return 0;
}

static void count_after(void *arg, q_slice key, const uint64_t *od, const uint64_t *nd,
			const obj_set *stored)
{
	(void)arg;
	(void)key;
	(void)od;
	(void)nd;
	(void)stored;
	atomic_fetch_add(&after_calls, 1);
}

/*
 * With sync = always the engine refuses every write on the loop, after the
 * replica built its batch: each put is tried on the loop and falls back to
 * the worker, which stores the batch the loop built. The replica's batch
 * hook is called once per put, as the after hook is.
 */
QTEST(fallback_writes_call_the_batch_hook_once)
{
	rig g;
	rig_open_sync(&g, LSM_SYNC_ALWAYS);
	replica_hooks rh = {count_batch, count_after, NULL};
	replica_set_hooks(g.rep, &rh);
	rig_start(&g, COORD_IO_AUTO, 1, NULL);
	enum { PUTS = 5 };
	call p[PUTS];
	for (int i = 0; i < PUTS; i++) {
		post(&g, &p[i], i % 2 ? "a" : "b", 1, q_slice_str("v"));
		wait_done(&p[i]);
		ASSERT_OK(p[i].rc);
		obj_set_free(p[i].set);
	}
	coord_stats st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, PUTS);
	ASSERT_EQ(atomic_load(&after_calls), PUTS);
	ASSERT_EQ(atomic_load(&batch_calls), PUTS);
	call get;
	post(&g, &get, "a", 0, q_slice_make(NULL, 0));
	wait_done(&get);
	ASSERT_OK(get.rc);
	ASSERT_EQ(obj_set_count(get.set), 2); /* two blind puts of "a" */
	obj_set_free(get.set);
	rig_stop(&g);
}

/*
 * With a store that syncs every write, as the node configures it
 * (sync_writes), writes go to the workers without a try on the loop: the
 * engine refuses no nowait write (it is asked for none), each put is one
 * worker job, and reads are still served on the loop.
 */
QTEST(sync_always_writes_go_to_the_workers_untried)
{
	rig g;
	rig_open_sync(&g, LSM_SYNC_ALWAYS);
	g.sync_writes = 1;
	rig_start(&g, COORD_IO_AUTO, 1, NULL);
	enum { PUTS = 5 };
	for (int i = 0; i < PUTS; i++) {
		call p;
		post(&g, &p, i % 2 ? "a" : "b", 1, q_slice_str("v"));
		wait_done(&p);
		ASSERT_OK(p.rc);
		obj_set_free(p.set);
	}
	lsm_stats ls;
	lsm_get_stats(g.db, &ls);
	ASSERT_U64_EQ(ls.nowait_write_sync, 0);
	coord_stats st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, PUTS);
	call get;
	post(&g, &get, "a", 0, q_slice_make(NULL, 0));
	wait_done(&get);
	ASSERT_OK(get.rc);
	ASSERT_EQ(obj_set_count(get.set), 2);
	obj_set_free(get.set);
	ASSERT_U64_EQ(stats(&g).jobs_loop, st.jobs_loop + 1); /* the get, from the memtable */
	rig_stop(&g);
}

/* ---- hints of an owner that left ------------------------------------- */

static uint64_t hint_count(rig *g)
{
	hint_stats hs;
	hint_get_stats(g->hints, &hs);
	return hs.count;
}

/* The replica holds want for key. */
static void replica_holds(rig *g, const char *key, const obj_set *want)
{
	obj_set *got = NULL;
	ASSERT_OK(replica_get(g->rep, q_slice_str(key), &got));
	ASSERT(obj_set_equal(got, want));
	obj_set_free(got);
}

/*
 * A hint kept for an owner that left the cluster goes to the key's current
 * primaries; this node's share is merged by a disk job like any replica
 * write, not by a blocking merge on the loop thread. Its value is large, so
 * io = auto leaves the merge to the worker: held there, it keeps the hint
 * (deleted only once stored) while the loop goes on serving other keys;
 * let go, the set is stored and the hint deleted.
 */
QTEST(hint_of_a_departed_owner_is_merged_by_a_disk_job)
{
	rig g;
	rig_open(&g);
	ASSERT_OK(hint_store_open(g.db, NULL, NULL, &g.hints));
	static char big[20 << 10];
	memset(big, 'h', sizeof(big));
	obj_write w = {0, q_slice_make(big, sizeof(big)), NULL, 1};
	obj_set *s = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, "gone", &w, NULL, 1, &s));
	q_buf enc = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(s, &enc));
	ASSERT_OK(hint_put(g.hints, "gone", q_slice_str("hk"), q_buf_slice(&enc),
			   q_wall_ns() / 1000000u, NULL));
	hold_set("hk", 1);
	coord_test_hooks h = {hold_work, NULL, NULL};
	rig_start(&g, COORD_IO_AUTO, 64, &h);
	/* the delivery tick (every COORD_HINT_INTERVAL_MS) hands it over */
	ASSERT_EQ(qtest_wait_flag(&hold.arrived, WAIT_MS), 1);
	call other;
	post(&g, &other, "other", 1, q_slice_str("x"));
	wait_done(&other);
	ASSERT_OK(other.rc);
	obj_set_free(other.set);
	ASSERT_U64_EQ(hint_count(&g), 1);
	hold_set("hk", 0);
	for (int i = 0; i < WAIT_MS && hint_count(&g); i++)
		q_sleep_ms(1);
	ASSERT_U64_EQ(hint_count(&g), 0);
	replica_holds(&g, "hk", s);
	obj_set_free(s);
	q_buf_free(&enc);
	rig_stop(&g);
}

/* ---- hint delivery keeps the hint store off the loop ----------------- */

/* Gate for the jobs the workers get with an empty key (in these tests,
 * only the hint store jobs of a delivery round: no multi-key reads): the
 * i-th such job (from 0) waits at the worker until pass > i. */
static struct {
	pthread_mutex_t mu;
	int arrivals;
	int pass;
} gate = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

static void gate_work(void *arg, q_slice key)
{
	(void)arg;
	if (key.n)
		return;
	pthread_mutex_lock(&gate.mu);
	int me = gate.arrivals++;
	uint64_t limit = q_mono_ms() + WAIT_MS;
	while (me >= gate.pass && q_mono_ms() < limit) {
		pthread_mutex_unlock(&gate.mu);
		q_sleep_ms(1);
		pthread_mutex_lock(&gate.mu);
	}
	pthread_mutex_unlock(&gate.mu);
}

/* Lets the first pass gated jobs run (pass < 0: as before); returns how
 * many reached the worker so far. */
static int gate_ctl(int pass)
{
	pthread_mutex_lock(&gate.mu);
	if (pass >= 0)
		gate.pass = pass;
	int n = gate.arrivals;
	pthread_mutex_unlock(&gate.mu);
	return n;
}

/* Waits until n gated jobs reached the worker. */
static void gate_wait(int n)
{
	for (int i = 0; i < WAIT_MS && gate_ctl(-1) < n; i++)
		q_sleep_ms(1);
	ASSERT(gate_ctl(-1) >= n);
}

static void wait_hint_count(rig *g, uint64_t n)
{
	for (int i = 0; i < WAIT_MS && hint_count(g) != n; i++)
		q_sleep_ms(1);
	ASSERT_U64_EQ(hint_count(g), n);
}

/* A set of one sibling, value v, written by node; its encoding in enc. */
static obj_set *one_sibling(const char *node, q_slice v, q_buf *enc)
{
	obj_write w = {0, v, NULL, 1};
	obj_set *s = NULL;
	ASSERT_OK(obj_set_update(NULL, NULL, node, &w, NULL, 1, &s));
	q_buf_reset(enc);
	ASSERT_OK(obj_set_encode(s, enc));
	return s;
}

/* Opens g with a hint store holding one hint for "gone" (an owner that
 * left) of key "hk": a set of one sibling of value v (returned; its
 * encoding in enc). */
static obj_set *rig_with_hint(rig *g, q_slice v, q_buf *enc)
{
	rig_open(g);
	ASSERT_OK(hint_store_open(g->db, NULL, NULL, &g->hints));
	obj_set *s = one_sibling("gone", v, enc);
	ASSERT_OK(hint_put(g->hints, "gone", q_slice_str("hk"), q_buf_slice(enc),
			   q_wall_ns() / 1000000u, NULL));
	return s;
}

/* A get of key posted to the loop, answered with rc; its set (or NULL). */
static obj_set *loop_get(rig *g, const char *key, int rc)
{
	call k;
	post(g, &k, key, 0, q_slice_make(NULL, 0));
	wait_done(&k);
	ASSERT_EQ(k.rc, rc);
	return k.set;
}

/*
 * A delivery round's hint store work is done at a worker: with the
 * round's load held there (the loop has not read the store), the loop
 * answers a get from memory; let go, the hint (its owner left: delivered
 * to this node, the key's primary, by a merge done on the loop from
 * memory) is merged into the replica while its delete is held at the
 * worker in turn, the hint still stored and the loop still answering,
 * the delivered key included. Let go, the hint is deleted. With the store
 * read on the loop thread no job of the round ever reaches the worker.
 */
QTEST(hint_delivery_reads_and_deletes_the_store_at_a_worker)
{
	rig g;
	q_buf enc = Q_BUF_INIT;
	obj_set *s = rig_with_hint(&g, q_slice_str("hv"), &enc);
	put_local(&g, "mem");
	gate_ctl(0);
	coord_test_hooks h = {gate_work, NULL, NULL};
	rig_start(&g, COORD_IO_AUTO, 64, &h);
	gate_wait(1); /* the round's load, held */
	obj_set *got = loop_get(&g, "mem", 0);
	ASSERT_EQ(obj_set_count(got), 1);
	obj_set_free(got);
	coord_stats st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, 0);
	ASSERT_U64_EQ(st.jobs_loop, 1);
	ASSERT_U64_EQ(hint_count(&g), 1);
	ASSERT_EQ(replica_get(g.rep, q_slice_str("hk"), &got), Q_ENOTFOUND);
	gate_ctl(1);
	gate_wait(2); /* the round's delete, held */
	replica_holds(&g, "hk", s);
	ASSERT_U64_EQ(hint_count(&g), 1);
	got = loop_get(&g, "hk", 0);
	ASSERT(obj_set_equal(got, s));
	obj_set_free(got);
	st = stats(&g);
	ASSERT_U64_EQ(st.jobs_worker, 0); /* the merge was done on the loop */
	gate_ctl(1000);
	wait_hint_count(&g, 0);
	obj_set_free(s);
	q_buf_free(&enc);
	rig_stop(&g);
}

/*
 * A write merged into a hint while its round's delete waits at the worker
 * gives the hint a new sequence number: the delete leaves it (the merged
 * write was not delivered yet), and a later round delivers the merge and
 * deletes it.
 */
QTEST(hint_merged_into_during_its_delivery_is_kept)
{
	rig g;
	q_buf enc = Q_BUF_INIT;
	obj_set *s1 = rig_with_hint(&g, q_slice_str("v1"), &enc);
	gate_ctl(1);
	coord_test_hooks h = {gate_work, NULL, NULL};
	rig_start(&g, COORD_IO_AUTO, 64, &h);
	gate_wait(2); /* loaded and merged here; the delete held */
	obj_set *s2 = one_sibling("late", q_slice_str("v2"), &enc);
	uint64_t seq = 0;
	ASSERT_OK(hint_put(g.hints, "gone", q_slice_str("hk"), q_buf_slice(&enc),
			   q_wall_ns() / 1000000u, &seq));
	gate_ctl(2);
	gate_wait(3); /* the next round's load: the first round is over */
	ASSERT_U64_EQ(hint_count(&g), 1);
	hint_entry meta;
	ASSERT_OK(hint_get(g.hints, "gone", q_slice_str("hk"), NULL, &meta));
	ASSERT_U64_EQ(meta.seq, seq);
	obj_set *got = NULL;
	ASSERT_OK(replica_get(g.rep, q_slice_str("hk"), &got));
	ASSERT_EQ(obj_set_count(got), 1); /* v2 not delivered yet */
	obj_set_free(got);
	gate_ctl(1000);
	wait_hint_count(&g, 0);
	ASSERT_OK(replica_get(g.rep, q_slice_str("hk"), &got));
	ASSERT_EQ(obj_set_count(got), 2);
	ASSERT_EQ(live_values(got, "v1", 2, "v2", 2), 2);
	obj_set_free(got);
	obj_set_free(s1);
	obj_set_free(s2);
	q_buf_free(&enc);
	rig_stop(&g);
}

static atomic_int handoff_calls;

static int count_fail_handoff(void *arg)
{
	(void)arg;
	if (!atomic_load(&handoff_fails))
		return 0;
	atomic_fetch_add(&handoff_calls, 1);
	return -EIO;
}

/*
 * A hint whose delivery failed stays: its owner left, and the merge here
 * (a large value: a worker job) cannot be handed to the workers. The
 * round ends without deleting it (the next round's hand-off is attempted,
 * which happens only once the first round is over); once hand-offs work
 * again a later round delivers and deletes it.
 */
QTEST(hint_whose_delivery_failed_is_kept)
{
	rig g;
	static char big[20 << 10];
	memset(big, 'f', sizeof(big));
	q_buf enc = Q_BUF_INIT;
	obj_set *s = rig_with_hint(&g, q_slice_make(big, sizeof(big)), &enc);
	gate_ctl(0);
	coord_test_hooks h = {gate_work, count_fail_handoff, NULL};
	rig_start(&g, COORD_IO_AUTO, 1, &h);
	gate_wait(1); /* the load, held */
	atomic_store(&handoff_fails, 1);
	gate_ctl(1000);
	/* the merge's hand-off fails, then the next round's load's */
	for (int i = 0; i < WAIT_MS && atomic_load(&handoff_calls) < 2; i++)
		q_sleep_ms(1);
	ASSERT(atomic_load(&handoff_calls) >= 2);
	ASSERT_U64_EQ(hint_count(&g), 1);
	obj_set *got = NULL;
	ASSERT_EQ(replica_get(g.rep, q_slice_str("hk"), &got), Q_ENOTFOUND);
	atomic_store(&handoff_fails, 0);
	wait_hint_count(&g, 0);
	replica_holds(&g, "hk", s);
	obj_set_free(s);
	q_buf_free(&enc);
	rig_stop(&g);
}

/*
 * With sync = always a round's deletes are one store write (one log sync)
 * however many hints it delivered, not one each.
 */
QTEST(hint_round_deletes_in_one_write)
{
	rig g;
	rig_open_sync(&g, LSM_SYNC_ALWAYS);
	g.sync_writes = 1;
	ASSERT_OK(hint_store_open(g.db, NULL, NULL, &g.hints));
	enum { HINTS = 5 };
	q_buf enc = Q_BUF_INIT;
	obj_set *s = one_sibling("gone", q_slice_str("v"), &enc);
	for (int i = 0; i < HINTS; i++) {
		char key[8];
		snprintf(key, sizeof(key), "h%d", i);
		ASSERT_OK(hint_put(g.hints, "gone", q_slice_str(key), q_buf_slice(&enc),
				   q_wall_ns() / 1000000u, NULL));
	}
	gate_ctl(1);
	coord_test_hooks h = {gate_work, NULL, NULL};
	rig_start(&g, COORD_IO_AUTO, 64, &h);
	gate_wait(2); /* merged here; the delete held */
	ASSERT_U64_EQ(hint_count(&g), HINTS);
	lsm_stats before, after;
	lsm_get_stats(g.db, &before);
	gate_ctl(1000);
	wait_hint_count(&g, 0);
	lsm_get_stats(g.db, &after);
	ASSERT_U64_EQ(after.commit_groups, before.commit_groups + 1);
	replica_holds(&g, "h0", s);
	obj_set_free(s);
	q_buf_free(&enc);
	rig_stop(&g);
}

QTEST_MAIN(QT(loop_jobs_of_a_key_follow_its_worker_job),
	   QT(failed_handoff_fails_the_keys_of_a_multi_key_read),
	   QT(failed_handoff_answers_a_put_with_its_cause),
	   QT(fallback_writes_call_the_batch_hook_once),
	   QT(sync_always_writes_go_to_the_workers_untried),
	   QT(hint_of_a_departed_owner_is_merged_by_a_disk_job),
	   QT(hint_delivery_reads_and_deletes_the_store_at_a_worker),
	   QT(hint_merged_into_during_its_delivery_is_kept),
	   QT(hint_whose_delivery_failed_is_kept),
	   QT(hint_round_deletes_in_one_write))
