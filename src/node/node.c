/*
 * node.c - a cluster node's lifecycle (see node.h).
 *
 * Start order (each step undone in reverse by q_node_stop, and by the
 * failure ladder of q_node_start):
 *   1. typed config (node_conf_load), log level;
 *   2. data directory and persistent node id (node_conf_identity);
 *   3. the storage engine in DATA_DIR/db (its own lock: one process per
 *      data directory; its background threads at a lower CPU priority, see
 *      open_engine_background), the replica store over it;
 *   4. the membership list (self + configured peers) and the coordinator;
 *   5. the event-loop thread; on it the coordinator opens its listener and
 *      peer pool (net_loop_call, so a bind error reaches the caller), then
 *      gossip starts ticking (node_gossip.h; seeded by peers/seeds);
 *   6. the in-process client.
 * Stop: the coordinator closes on the loop thread (outstanding requests get
 * Q_ECLOSED), the loop drains and joins (disk jobs finish first), then the
 * engine flushes and closes.
 *
 * Threading: start/stop from one thread; the client from any.
 */
#include "node/node.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "cluster/replica.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "net/net_auth.h"
#include "net/net_loop.h"
#include "node/node_conf.h"
#include "node/node_fault.h"
#include "node/node_fs.h"
#include "node/node_aae.h"
#include "node/node_gossip.h"
#include "node/node_metrics.h"
#include "node/node_handoff.h"
#include "util/env.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define GOSSIP_SEEDS_MAX_NODE 64 /* == GOSSIP_SEEDS_MAX */

struct q_node {
	node_conf cfg;
	char id[NODE_ID_MAX + 1];
	lsm_db *db;
	node_fault *fault; /* test facility (node_fault.h); NULL = off */
	hint_store *hints;
	replica *rep;
	members *mem;
	coord *coord;
	node_gossip *gossip;
	node_aae *aae;
	node_handoff *handoff;
	net_loop *loop;
	qc_client *client;
	int started;
	node_metrics *metrics;
	node_fs *fs;
	uint8_t secret[NET_AUTH_KEY_LEN]; /* until handed to the loop; then wiped */
};

typedef struct start_arg {
	q_node *n;
	int rc;
} start_arg;

static void start_on_loop(void *arg)
{
	start_arg *a = arg;
	a->rc = coord_start(a->n->coord);
	if (a->rc == 0)
		a->rc = node_gossip_start(a->n->gossip);
	if (a->rc == 0)
		a->rc = node_aae_start(a->n->aae);
	if (a->rc == 0)
		a->rc = node_handoff_start(a->n->handoff);
	if (a->rc == 0)
		a->rc = node_metrics_start(a->n->metrics);
	if (a->rc == 0)
		a->rc = node_fs_start(a->n->fs);
	if (a->rc < 0) {
		node_metrics_stop(a->n->metrics);
		node_gossip_stop(a->n->gossip);
		coord_close(a->n->coord);
	}
}

static void close_on_loop(void *arg)
{
	q_node *n = arg;
	node_fs_stop(n->fs);
	node_metrics_stop(n->metrics);
	node_gossip_stop(n->gossip);
	coord_close(n->coord);
}

static int status_gossip(q_node *n, q_buf *out)
{
	size_t g[4] = {0, 0, 0, 0};
	if (n->gossip)
		node_gossip_counts(n->gossip, g);
	return q_buf_printf(out,
			    ",\"gossip\":{\"alive\":%zu,\"suspect\":%zu,\"down\":%zu,\"left\":%zu}",
			    g[0], g[1], g[2], g[3]);
}

static int status_hints(q_node *n, q_buf *out)
{
	hint_stats hs = {0, 0, 0, 0};
	if (n->hints)
		hint_get_stats(n->hints, &hs);
	uint64_t now = q_wall_ns() / 1000000u;
	uint64_t age = hs.oldest_ms && now > hs.oldest_ms ? now - hs.oldest_ms : 0;
	return q_buf_printf(out,
			    ",\"hints\":{\"count\":%llu,\"bytes\":%llu,\"oldest_ms\":%llu,"
			    "\"oldest_age_ms\":%llu,\"corrupt\":%llu}",
			    (unsigned long long)hs.count, (unsigned long long)hs.bytes,
			    (unsigned long long)hs.oldest_ms, (unsigned long long)age,
			    (unsigned long long)hs.corrupt);
}

/* coord_departed_fn: gossip marked the member left. */
static int member_departed(void *arg, const char *id)
{
	return node_gossip_is_left(arg, id);
}

static int status_hook(void *arg, q_buf *out)
{
	q_node *n = arg;
	lsm_stats st;
	lsm_get_stats(n->db, &st);
	replica_stats rs;
	replica_get_stats(n->rep, &rs);
	int rc = q_buf_printf(out,
			    "\"zone\":\"%s\",\"sync\":\"%s\",\"storage\":{\"disk_bytes\":%llu,"
			    "\"memtable_bytes\":%llu,\"tables\":%llu,\"quarantined_tables\":%llu,"
			    "\"flushes\":%llu,\"compactions\":%llu,\"stall_ms\":%llu,"
			    "\"nowait_again\":{\"get_read\":%llu,\"write_queue\":%llu,"
			    "\"write_room\":%llu,\"write_log_busy\":%llu,\"write_log_full\":%llu,"
			    "\"write_log_mark\":%llu,\"write_sync\":%llu},"
			    "\"log_early_writes\":%llu},"
			    "\"replica\":{\"gets\":%llu,\"updates\":%llu,\"merges\":%llu,"
			    "\"merges_unchanged\":%llu,\"corrupt\":%llu,\"write_errors\":%llu}",
			    n->cfg.zone,
			    n->cfg.sync == LSM_SYNC_ALWAYS  ? "always"
			    : n->cfg.sync == LSM_SYNC_BATCH ? "batch"
							    : "none",
			    (unsigned long long)st.disk_bytes, (unsigned long long)st.memtable_bytes,
			    (unsigned long long)st.num_tables,
			    (unsigned long long)st.quarantined_tables,
			    (unsigned long long)st.flushes, (unsigned long long)st.compactions,
			    (unsigned long long)st.stall_ms,
			    (unsigned long long)st.nowait_get_read,
			    (unsigned long long)st.nowait_write_queue,
			    (unsigned long long)st.nowait_write_room,
			    (unsigned long long)st.nowait_write_log_busy,
			    (unsigned long long)st.nowait_write_log_full,
			    (unsigned long long)st.nowait_write_log_mark,
			    (unsigned long long)st.nowait_write_sync,
			    (unsigned long long)st.log_early_writes,
			    (unsigned long long)rs.gets, (unsigned long long)rs.updates,
			    (unsigned long long)rs.merges, (unsigned long long)rs.merges_unchanged,
			    (unsigned long long)rs.corrupt, (unsigned long long)rs.write_errors);
	if (rc == 0)
		rc = status_gossip(n, out);
	if (rc == 0)
		rc = node_aae_status_json(n->aae, out);
	if (rc == 0)
		rc = node_handoff_status_json(n->handoff, out);
	if (rc == 0 && n->metrics)
		rc = node_metrics_status_json(n->metrics, out);
	return rc < 0 ? rc : status_hints(n, out);
}

static void node_free(q_node *n)
{
	if (n->client)
		qc_close(n->client);
	node_fs_free(n->fs);
	node_handoff_free(n->handoff);
	node_aae_free(n->aae);
	node_gossip_free(n->gossip);
	coord_free(n->coord);
	hint_store_close(n->hints);
	replica_free(n->rep);
	members_free(n->mem);
	if (n->db) {
		int rc = lsm_close(n->db);
		if (rc < 0)
			Q_ERROR("node", "closing the store: %s", q_strerror(rc));
	}
	node_fault_free(n->fault);
	node_metrics_free(n->metrics);
	sodium_memzero(n->secret, sizeof(n->secret));
	node_conf_free(&n->cfg);
	free(n);
}

/*
 * The engine's flush and compaction threads run below the request path's
 * CPU priority (NODE_BG_NICE above the starting thread's nice value, at
 * most 19, and SCHED_BATCH): on a machine with fewer
 * cores than busy threads, a flush or compaction burst competing as an
 * equal delays every request queued behind it (docs/cluster.md, "Background
 * work at a lower priority"). Linux keeps nice and the policy per thread and
 * a new thread inherits its creator's, so the engine is opened from a short
 * thread that lowers its own priority first; the caller's thread, the event
 * loop and the disk workers keep theirs. A refused change (a sandbox) only
 * loses the priority, never the start.
 */
#define NODE_BG_NICE 10

/* percent of memtable_size by which each memtable's flush point is drawn
 * lower (lsm_options.write_buffer_jitter) */
#define NODE_MEMTABLE_JITTER 25

typedef struct bg_open {
	const char *dir;
	const lsm_options *lo;
	lsm_db *db;
	int rc;
} bg_open;

static void *bg_open_main(void *arg)
{
	bg_open *b = arg;
	struct sched_param sp = {.sched_priority = 0};
	if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
		Q_DEBUG("node", "background threads: SCHED_BATCH refused: %s", strerror(errno));
	errno = 0;
	int cur = getpriority(PRIO_PROCESS, (id_t)gettid());
	if (cur == -1 && errno)
		cur = 0;
	int want = cur + NODE_BG_NICE > 19 ? 19 : cur + NODE_BG_NICE;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), want) < 0)
		Q_DEBUG("node", "background threads: nice %d refused: %s", want, strerror(errno));
	b->rc = lsm_open(b->dir, b->lo, &b->db);
	return NULL;
}

static int open_engine_background(const char *dir, const lsm_options *lo, lsm_db **out)
{
	bg_open b = {.dir = dir, .lo = lo, .db = NULL, .rc = 0};
	pthread_t th;
	int rc = pthread_create(&th, NULL, bg_open_main, &b);
	if (rc != 0)
		return lsm_open(dir, lo, out); /* same engine, default priority */
	pthread_join(th, NULL);
	*out = b.db;
	return b.rc;
}

int q_node_start(q_conf *conf, q_node **out)
{
	char err[512];
	int rc;
	q_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	rc = node_conf_load(conf, &n->cfg, err, sizeof(err));
	if (rc < 0) {
		Q_ERROR("node", "%s", err[0] ? err : q_strerror(rc));
		goto fail;
	}
	q_log_set_level((q_log_level)n->cfg.log_level);
	if (n->cfg.secret_file) {
		rc = net_auth_key_load(n->cfg.secret_file, n->secret, err, sizeof(err));
		if (rc < 0) {
			Q_ERROR("node", "%s", err);
			goto fail;
		}
	}
	{
		/* a write to a peer that just closed must fail with EPIPE, not
		 * kill the process; a handler the program installed is kept */
		struct sigaction old;
		if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			signal(SIGPIPE, SIG_IGN);
	}

	rc = q_env_mkdirs(q_env_posix(), n->cfg.data_dir);
	if (rc < 0) {
		Q_ERROR("node", "cannot create data directory %s: %s", n->cfg.data_dir,
			q_strerror(rc));
		goto fail;
	}
	rc = node_conf_identity(n->cfg.data_dir, n->cfg.node_id, n->id, err, sizeof(err));
	if (rc < 0) {
		Q_ERROR("node", "%s", err);
		goto fail;
	}

	char dbdir[4096];
	snprintf(dbdir, sizeof(dbdir), "%s/db", n->cfg.data_dir);
	lsm_options lo;
	lsm_options_default(&lo);
	lo.sync = (lsm_sync)n->cfg.sync;
	lo.sync_batch_ms = n->cfg.sync_batch_ms;
	lo.write_buffer_size = (size_t)n->cfg.memtable_size;
	/* the replicas of a key take the same writes, so their memtables fill
	 * in step: without a per-memtable spread they flush at the same moment
	 * and every request of the cluster waits behind three flushes at once
	 * (docs/cluster.md, "Flushes out of step") */
	lo.write_buffer_jitter = NODE_MEMTABLE_JITTER;
	lo.block_cache_size = (size_t)n->cfg.cache_size;
	rc = node_fault_open(&n->fault);
	if (rc < 0) {
		Q_ERROR("node", "cannot start the fault injection of %s: %s", NODE_FAULT_ENV_VAR,
			q_strerror(rc));
		goto fail;
	}
	if (n->fault)
		lo.env = node_fault_env(n->fault);
	rc = open_engine_background(dbdir, &lo, &n->db);
	if (rc < 0) {
		Q_ERROR("node", "cannot open the store in %s: %s", dbdir, q_strerror(rc));
		n->db = NULL;
		goto fail;
	}
	Q_ERR(replica_new(n->db, n->id, &n->rep));
	rc = hint_store_open(n->db, NULL, NULL, &n->hints);
	if (rc < 0) {
		Q_ERROR("node", "cannot open the hint store: %s", q_strerror(rc));
		n->hints = NULL;
		goto fail;
	}
	Q_ERR(members_new(n->id, n->cfg.listen, n->cfg.zone, &n->mem));

	coord_config cc = {
		.node_id = n->id,
		.listen = n->cfg.listen,
		.n = n->cfg.n,
		.r = n->cfg.r,
		.w = n->cfg.w,
		.timeout_ms = n->cfg.request_timeout_ms,
		.read_repair = n->cfg.read_repair,
		.notfound_ok = n->cfg.notfound_ok,
		.max_key = (size_t)n->cfg.max_key_size,
		.max_value = (size_t)n->cfg.max_value_size,
		.ring_tokens = n->cfg.ring_tokens,
		.io = n->cfg.io,
		.job_batch = n->cfg.sync == LSM_SYNC_ALWAYS ? 1 : 64,
		.sync_writes = n->cfg.sync == LSM_SYNC_ALWAYS,
		.sloppy_quorum = n->cfg.sloppy_quorum,
	};
	Q_ERR(coord_new(&cc, n->rep, n->mem, NULL, &n->coord));
	for (size_t i = 0; i < n->cfg.npeers; i++) {
		node_peer *p = &n->cfg.peers[i];
		if (!strcmp(p->addr, n->cfg.listen) || (p->id[0] && !strcmp(p->id, n->id)))
			continue; /* a shared peer list may name this node too */
		rc = coord_add_peer(n->coord, p->id[0] ? p->id : NULL, p->addr,
				    p->zone[0] ? p->zone : NULL);
		if (rc < 0) {
			Q_ERROR("node", "peer %s: %s", p->addr, q_strerror(rc));
			goto fail;
		}
	}
	coord_set_status_hook(n->coord, status_hook, n);
	coord_set_hints(n->coord, n->hints);

	/* libuv's worker pool runs the disk jobs; its size is read once per
	 * process, from the environment, at the first job */
	if (!getenv("UV_THREADPOOL_SIZE")) {
		char nw[16];
		snprintf(nw, sizeof(nw), "%d", n->cfg.workers);
		setenv("UV_THREADPOOL_SIZE", nw, 0);
	}
	rc = net_loop_start(0, "quorumd-loop", &n->loop);
	if (rc < 0) {
		Q_ERROR("node", "cannot start the event loop: %s", q_strerror(rc));
		n->loop = NULL;
		goto fail;
	}
	coord_set_loop(n->coord, n->loop);
	if (n->cfg.secret_file) {
		rc = net_loop_set_secret(n->loop, n->secret);
		net_loop_set_encrypt(n->loop, n->cfg.encrypt);
		sodium_memzero(n->secret, sizeof(n->secret));
		if (rc < 0) {
			Q_ERROR("node", "cannot keep the cluster secret: %s", q_strerror(rc));
			net_loop_stop(n->loop);
			n->loop = NULL;
			goto fail;
		}
	}
	{
		/* every configured peer or seed other than this node seeds gossip */
		const char *seeds[GOSSIP_SEEDS_MAX_NODE];
		size_t ns = 0;
		for (size_t i = 0; i < n->cfg.npeers && ns < GOSSIP_SEEDS_MAX_NODE; i++)
			if (strcmp(n->cfg.peers[i].addr, n->cfg.listen))
				seeds[ns++] = n->cfg.peers[i].addr;
		rc = node_gossip_new(conf, n->coord, n->mem, n->loop, n->id, n->cfg.zone, seeds, ns,
				     err, sizeof(err), &n->gossip);
		if (rc == 0)
			rc = node_gossip_set_state_dir(n->gossip, n->cfg.data_dir);
		if (rc == 0)
			coord_set_departed_fn(n->coord, member_departed, n->gossip);
		node_handoff_config hc = {n->coord, n->mem, n->rep, n->db, n->gossip, n->loop,
					  n->id, n->cfg.data_dir, n->cfg.n, n->cfg.request_timeout_ms};
		if (rc == 0)
			rc = node_handoff_new(conf, &hc, err, sizeof(err), &n->handoff);
		if (rc < 0) {
			Q_ERROR("node", "%s", err[0] ? err : q_strerror(rc));
			net_loop_stop(n->loop);
			n->loop = NULL;
			goto fail;
		}
	}
	{
		node_aae_config ac = {n->coord, n->rep, n->db, n->mem, n->loop,
				      n->id, n->cfg.data_dir, n->cfg.n};
		rc = node_aae_new(conf, &ac, err, sizeof(err), &n->aae);
		if (rc < 0) {
			Q_ERROR("node", "%s", err[0] ? err : q_strerror(rc));
			net_loop_stop(n->loop);
			n->loop = NULL;
			goto fail;
		}
	}
	{
		node_metrics_src ms = {n->coord, n->mem, n->db, n->rep, n->hints, n->gossip,
				       n->loop, n->id, n->cfg.n, n->cfg.secret_file != NULL};
		rc = node_metrics_new(&ms, n->cfg.metrics_listen, &n->metrics);
		if (rc == 0)
			rc = coord_set_msg_hook(n->coord, NET_MSG_RING, NET_MSG_ADMIN_LAST,
						node_metrics_admin, n->metrics);
		if (rc < 0) {
			net_loop_stop(n->loop);
			n->loop = NULL;
			goto fail;
		}
	}
	{
		node_fs_config fc = {n->coord, n->mem, n->db, n->hints, n->loop, n->cfg.data_dir,
				     n->cfg.n};
		rc = node_fs_new(&fc, &n->fs);
		if (rc == 0)
			rc = coord_set_msg_hook(n->coord, NET_MSG_FS_FIRST, NET_MSG_FS_LAST,
						node_fs_handle, n->fs);
		if (rc < 0) {
			net_loop_stop(n->loop);
			n->loop = NULL;
			goto fail;
		}
	}
	start_arg sa = {n, 0};
	rc = net_loop_call(n->loop, start_on_loop, &sa);
	if (rc == 0)
		rc = sa.rc;
	if (rc < 0) {
		net_loop_stop(n->loop);
		n->loop = NULL;
		goto fail;
	}
	Q_ERR(qc_inproc_new(n->coord, &n->client));
	n->started = 1;
	Q_INFO("node", "node %s up: data %s, listening on %s, %zu peers configured", n->id,
	       n->cfg.data_dir, coord_listen_addr(n->coord), n->cfg.npeers);
	*out = n;
	return 0;
fail:
	node_handoff_stop(n->handoff);
	node_aae_stop(n->aae);
	if (n->loop) {
		net_loop_call(n->loop, close_on_loop, n);
		net_loop_stop(n->loop);
	}
	node_free(n);
	return rc;
}

qc_client *q_node_client(q_node *n)
{
	return n->client;
}

const char *q_node_id(const q_node *n)
{
	return n->id;
}

const char *q_node_listen_addr(const q_node *n)
{
	return coord_listen_addr(n->coord);
}

struct coord *q_node_coord(q_node *n)
{
	return n->coord;
}

struct node_fs *q_node_fs(q_node *n)
{
	return n->fs;
}

int q_node_stop(q_node *n)
{
	if (!n)
		return 0;
	Q_INFO("node", "node %s stopping", n->id);
	node_aae_stop(n->aae);         /* joins its threads while the loop runs */
	node_handoff_stop(n->handoff); /* joins its thread while the loop runs */
	if (n->loop) {
		int rc = net_loop_call(n->loop, close_on_loop, n);
		if (rc < 0)
			Q_WARN("node", "closing the coordinator: %s", q_strerror(rc));
		net_loop_stop(n->loop);
		n->loop = NULL;
	}
	int rc = 0;
	hint_store_close(n->hints);
	n->hints = NULL;
	node_aae_save(n->aae); /* after the last write, before the store closes */
	if (n->db) {
		rc = lsm_close(n->db);
		n->db = NULL;
		if (rc < 0)
			Q_ERROR("node", "closing the store: %s", q_strerror(rc));
	}
	Q_INFO("node", "node %s stopped", n->id);
	node_free(n);
	return rc;
}
