/*
 * coord.h - the coordinator: quorum get/put/delete for any key, the
 * replica side of node-to-node requests, and read repair.
 *
 * Any node coordinates any key. A get asks all N replicas of the key's
 * preference list (REPL_GET; the local replica through a disk worker) and
 * answers when R have answered, with the sync (merge) of their sibling sets;
 * when every replica has answered or the request timed out, replicas whose
 * set differs from the merge get it written back (read repair, REPL_PUT).
 * With sloppy_quorum, unreachable primaries are replaced by the next
 * healthy fallbacks of the preference list (docs/cluster.md, "Reads from
 * fallbacks"), whose repair is a HINT_PUT for the down owner.
 * A put is coordinated by a replica of the key: the receiving node forwards
 * it (KV_PUT) to the first reachable primary if it is not one itself; the
 * coordinating replica applies the write to its own set with its own node
 * id (a new dot), durably, sends the result to the other N-1 replicas
 * (REPL_PUT) and answers after W acknowledgements, its own included.
 * Effective N is min(N, members); R and W are capped at effective N, so a
 * one-node cluster works with the default N=3 R=2 W=2. Design notes and the
 * state diagrams are at the top of coord.c.
 *
 * Errors a caller sees: Q_ENOTFOUND (get: no live sibling anywhere),
 * Q_EQUORUM (too few replicas could answer), Q_ETIMEOUT (too few answered
 * in time), Q_ETOOBIG (key or value over the configured limit), Q_EBADCTX
 * (context bytes do not decode), -EINVAL (empty key), Q_ECLOSED (node
 * stopping).
 *
 * Threading: coord_start, coord_close, coord_get, coord_put, coord_mget and
 * the request handler run on the net_loop thread. coord_get_sync,
 * coord_put_sync and coord_mget_sync are for any other thread: they post to
 * the loop and block until the answer, except that a node alone in its
 * cluster serves them directly on the calling thread (no loop hop).
 *
 * Ownership: the coord borrows replica, members and loop (they outlive it).
 * Sets handed to callbacks or returned through out parameters belong to the
 * receiver (obj_set_free).
 */
#ifndef Q_COORD_H
#define Q_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/members.h"
#include "cluster/replica.h"
#include "handoff/hint.h"
#include "net/net_loop.h"
#include "net/net_pool.h"
#include "net/net_server.h"
#include "object/obj.h"
#include "ring/ring.h"
#include "util/buf.h"

#define COORD_MAX_N 16 /* largest replication factor */

/* Where the replica work of requests (reads, read-modify-writes) runs
 * (docs/cluster.md, "Threads of a node"). */
enum {
	COORD_IO_AUTO = 0,   /* on the loop thread when the engine can do it
			      * from memory without waiting (the replica's
			      * _nowait calls), else on a worker (default) */
	COORD_IO_WORKER = 1, /* always on libuv worker threads */
	COORD_IO_INLINE = 2  /* always on the loop thread (a slow disk or an
			      * engine stall stalls the loop) */
};

typedef struct coord coord;

typedef struct coord_config {
	const char *node_id;     /* copied */
	const char *listen;      /* "host:port" to serve on; copied */
	int n, r, w;             /* cluster defaults */
	uint64_t timeout_ms;     /* default request timeout */
	int read_repair;         /* 1 = repair stale replicas after reads */
	int notfound_ok;         /* 1: a not-found answer counts toward R;
				  * 0 (default): only found answers do (see
				  * docs/cluster.md, "Not-found answers") */
	size_t max_key;          /* bytes; longer keys get Q_ETOOBIG */
	size_t max_value;        /* bytes; larger values get Q_ETOOBIG */
	int ring_tokens;         /* virtual nodes per member */
	int sloppy_quorum;       /* 1: a down primary's write goes to the next
				  * healthy fallback as a hint, which counts
				  * toward W; 0: strict (it just fails) */
	int io;                  /* where replica disk work runs: COORD_IO_* */
	size_t job_batch;        /* worker mode: at most this many disk jobs
				  * gathered in one loop iteration go to one
				  * worker together (one thread hop for all);
				  * 0 or 1: one job per worker hand-off. Keep 1
				  * with a per-write fsync, where concurrent
				  * writers share their syncs in the engine */
	int sync_writes;         /* 1: the storage engine syncs every write
				  * (sync = always), so io = auto does not try
				  * writes on the loop: the engine would refuse
				  * each one without blocking, after the loop
				  * had read and merged for it */
} coord_config;

/* Per-request options; 0 = the cluster default. */
typedef struct coord_req {
	int n, r, w;
	uint64_t timeout_ms;
	int local_only;          /* get: read only this node's replica (debug) */
	int want_object;         /* put: hand the stored set to the callback */
} coord_req;

/* Outcome of a get or put. rc as above; set (may be NULL) belongs to the
 * callback. For a get, Q_ENOTFOUND may come with a tombstone-only set (its
 * context lets a later put supersede the delete). */
typedef void (*coord_done_fn)(void *arg, int rc, obj_set *set);

typedef struct coord_stats {
	uint64_t gets, puts, forwards, read_repairs, quorum_failures, timeouts;
	uint64_t repl_gets_served, repl_puts_served;
	uint64_t jobs_loop;      /* replica jobs done on the loop thread */
	uint64_t jobs_worker;    /* replica jobs handed to a worker */
} coord_stats;

/* Creates the coordinator (any thread). */
int coord_new(const coord_config *cfg, replica *rep, members *mem, net_loop *loop,
	      coord **out);
/* Before coord_start: the loop the coordinator runs on (if coord_new was
 * given NULL). */
void coord_set_loop(coord *c, net_loop *loop);
/* Before coord_start: a peer from the config. With an id it joins the
 * membership at once; with only an address it is resolved by a HELLO
 * handshake (retried every second until it answers). */
int coord_add_peer(coord *c, const char *id, const char *addr, const char *zone);
/* Loop thread: opens the listener and the peer pool, starts membership
 * handshakes with peers known only by address, and the probes that PING
 * members marked down every second (an answer marks them up). */
int coord_start(coord *c);
/* The address actually bound (after coord_start). */
const char *coord_listen_addr(const coord *c);
/* Loop thread: fails new and outstanding requests with Q_ECLOSED, closes
 * the listener and the pool. */
void coord_close(coord *c);
/* Any thread, after the loop has stopped: frees c. */
void coord_free(coord *c);

/* Loop thread. key, ctx and the value in w are copied before return. */
void coord_get(coord *c, q_slice key, const coord_req *o, coord_done_fn cb, void *arg);
void coord_put(coord *c, q_slice key, q_slice ctx, const obj_write *w, const coord_req *o,
	       coord_done_fn cb, void *arg);

/* Multi-key get: one REPL_MGET per replica for all the keys it holds,
 * each key decided as coord_get would (R answers, merged). rc < 0 when the
 * request as a whole failed (then sets/rcs are NULL); else sets[i] (may be
 * NULL) and rcs[i] per key; the callback owns the sets, not the arrays. */
typedef void (*coord_mget_fn)(void *arg, int rc, obj_set **sets, int *rcs, size_t n);
void coord_mget(coord *c, const q_slice *keys, size_t n, const coord_req *o,
		coord_mget_fn cb, void *arg);

/* Blocking forms for threads other than the loop thread. */
int coord_get_sync(coord *c, q_slice key, const coord_req *o, obj_set **out);
int coord_put_sync(coord *c, q_slice key, q_slice ctx, const obj_write *w, const coord_req *o,
		   obj_set **out);
/* rcs[i] and outs[i] (NULL unless a set came back) per key; returns 0 unless
 * the request as a whole failed. */
int coord_mget_sync(coord *c, const q_slice *keys, size_t n, const coord_req *o,
		    obj_set **outs, int *rcs);

/* JSON status text (members, ring, counters), appended to out. Any thread. */
int coord_status_json(coord *c, q_buf *out);
void coord_get_stats(coord *c, coord_stats *out);
/* Live siblings in the answers of single-key gets coordinated here: out[i]
 * counts gets answered with i live siblings (0: not found, or tombstones
 * only), out[COORD_SIB_BUCKETS - 1] those with that many or more. Any
 * thread. */
#define COORD_SIB_BUCKETS 6
void coord_get_sibling_hist(coord *c, uint64_t out[COORD_SIB_BUCKETS]);

/* Hook for the node: extra JSON fields (without braces) added to status. */
typedef int (*coord_status_fn)(void *arg, q_buf *out);
void coord_set_status_hook(coord *c, coord_status_fn fn, void *arg);

/* Before coord_start: the hint store (handoff/hint.h, borrowed; it must
 * outlive the coordinator and its loop). With it the node accepts HINT_PUT
 * as a fallback and, every COORD_HINT_INTERVAL_MS, delivers its hints to
 * owners that are up (REPL_PUT) and deletes them (hint_delete_if); the
 * store is read and written only by disk workers, never on the loop
 * thread. Without it HINT_PUT is refused. */
#define COORD_HINT_INTERVAL_MS 500
void coord_set_hints(coord *c, hint_store *hs);

/* Before coord_start: fn(arg, id) says whether member id left the cluster
 * for good (gossip's LEFT; any thread). Hints for such an owner, no longer
 * in the view, are delivered to each key's current primaries (this node
 * merges its own share) and deleted once all of them stored the object.
 * Without fn, hints for an owner missing from the view wait for it. */
typedef int (*coord_departed_fn)(void *arg, const char *id);
void coord_set_departed_fn(coord *c, coord_departed_fn fn, void *arg);

/* Hooks for message types the coordinator does not serve itself (gossip,
 * NET_MSG_GOSSIP_FIRST..LAST; anti-entropy; admin): requests of type
 * first..last go to fn on the loop thread, which must reply to or drop req.
 * Up to COORD_MSG_HOOKS_MAX hooks with disjoint type ranges, all at or above
 * NET_MSG_GOSSIP_FIRST. Before coord_start. -EINVAL, -EEXIST (overlap),
 * -ENOSPC (full). */
#define COORD_MSG_HOOKS_MAX 8
typedef void (*coord_msg_fn)(void *arg, net_request *req);
int coord_set_msg_hook(coord *c, uint8_t first, uint8_t last, coord_msg_fn fn, void *arg);
/* The ring of the current membership view (same tokens the coordinator
 * routes by), built fresh; the caller frees it with ring_free. Any thread.
 * Compare ring_version / ring_digest to notice changes. */
int coord_ring_snapshot(coord *c, ring **out);
/* Loop thread, between coord_start and coord_close: the peer pool, for
 * subsystems that send their own messages. NULL outside that window. */
net_pool *coord_pool(coord *c);

/*
 * Fault hooks for tests of the disk jobs (tests/unit/test_coord_jobs.c);
 * a node never sets them. Before coord_start; NULL clears.
 *   work     on the worker thread, before the replica work of each job
 *            handed to the workers; key is the job's key, empty for a
 *            multi-key read and for the hint store jobs of a delivery
 *            round (its load, its delete). It may wait (to hold a job at
 *            the workers).
 *   handoff  on the loop thread, before each hand-off to the workers (one
 *            job, or a batch); a negative result fails that hand-off as a
 *            failing uv_queue_work would.
 */
typedef struct coord_test_hooks {
	void (*work)(void *arg, q_slice key);
	int (*handoff)(void *arg);
	void *arg;
} coord_test_hooks;
void coord_set_test_hooks(coord *c, const coord_test_hooks *h);

#endif
