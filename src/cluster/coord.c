/*
 * coord.c - the coordinator (see coord.h for the contract).
 *
 * ===================================================================
 * Design notes
 * ===================================================================
 *
 * Threads. Everything below runs on the net_loop thread except the bodies
 * of disk jobs (job_work, on libuv's worker pool: they only call replica_*
 * and hint_put), the hint store jobs of a delivery round ("Hint delivery")
 * and the *_sync entry points (caller threads: they post to the loop and
 * wait on a condition variable, or take the single-node fast path). With
 * io = auto (the default) a job is first tried on the loop thread with the
 * replica's _nowait calls (job_try_loop), which do it from memory or give
 * up having changed nothing; only what they give up on goes to a worker.
 * A job may therefore complete inside job_submit: callers take their
 * references before submitting.
 *
 * Invariants:
 *   1. An op (one client get or put) is answered exactly once: op_reply
 *      sets o->replied and every later outcome is ignored.
 *   2. An op is freed only when nothing refers to it: o->refs counts its
 *      timer plus every outstanding disk job and peer request; each of
 *      those drops one reference when its callback runs (the pool and libuv
 *      guarantee exactly one callback each), so no callback ever sees a
 *      freed op.
 *   3. A put is acknowledged only after the coordinating replica's own
 *      write is durable (replica_update returned) and W-1 other replicas
 *      acknowledged a durable merge of the same set.
 *   4. Read repair sends the merge of every answer received, never a set
 *      older than what the replica reported.
 *   5. Membership is read through a view (ring + member addresses) rebuilt
 *      on the loop thread whenever the members' version moves.
 *   6. A loop job never overtakes a single-key job of its key that is
 *      with the workers: while key_pend of the key's slot > 0
 *      (COORD_PEND_SLOTS slots by key hash), a later single-key job of that
 *      slot goes to the workers too. Among themselves worker jobs keep no
 *      order (two batches, or with job_batch = 1 several jobs, may run at
 *      once), as with io = worker; multi-key reads are not counted. Per-key
 *      atomicity of read-modify-writes is the replica's stripe mutex, which
 *      the loop only ever try-locks; merges commute and a write is answered
 *      only once stored, so no acknowledged write depends on the order.
 *
 * Get (coord_get):
 *
 *     coord_get ---> FANOUT: REPL_GET to the N primaries
 *                      |  (rep_done: ok++ [found++ if it held a set]
 *                      |   and merge, or failed++); read_verdict decides:
 *                      |-- enough answers ---------> REPLIED(0 / ENOTFOUND)
 *                      |-- R out of reach ---------> REPLIED(EQUORUM)
 *                      |-- timer (get_timeout) ----> REPLIED(ETIMEOUT)
 *                      v
 *                  all answered or timer: get_finish
 *                      --> READ REPAIR: REPL_PUT(merge) to each answering
 *                          replica whose digest differs (fire and forget)
 *                      --> timer closed; op freed at refs == 0
 *
 *   Sloppy read quorum (cfg.sloppy_quorum): a primary marked down at the
 *   start, or one that turns out unreachable while the get is undecided,
 *   is replaced in its rep slot by the next healthy fallback of the
 *   preference list (read_fallback; r->hint_for keeps the owner). Read
 *   repair to such a fallback is a HINT_PUT for the owner. Multi-key gets
 *   substitute only members known down at the start (mkey.owner).
 *
 * Read verdict (read_verdict, docs/cluster.md "Not-found answers"):
 *   notfound_ok = 1: a not-found answer counts toward R like a found one.
 *   notfound_ok = 0 (default): only found answers (a replica holding a
 *   sibling set, tombstones included) count toward R, so an empty replica
 *   (wiped, freshly joined) answering first cannot hide a key. The read
 *   answers when found >= R; or when nothing is pending any more and at
 *   least R replicas answered (the merge of whatever was found, or
 *   not-found); or early not-found (basic quorum) when a majority of the
 *   replicas said not-found, none found it, and the pending ones can no
 *   longer bring found up to R. Fewer than R answers possible: EQUORUM.
 *   At the request timer, if R replicas answered, their answer stands
 *   (op_timeout, mop_timeout); else ETIMEOUT.
 *
 * Put (coord_put):
 *
 *     coord_put --(self not a primary)--> FORWARD: KV_PUT to primaries in
 *         |                                  order (fwd_try / fwd_done);
 *         |                                  answer = first reachable one's
 *         v
 *     LOCAL: disk job replica_update (new dot, durable)  [put_local_done]
 *         |-- error ---------------------------------> REPLIED(error)
 *         v
 *     REPLICATE: REPL_PUT(result) to the other N-1 primaries
 *         |-- acks (own included) >= W --------------> REPLIED(0)
 *         |-- acks + pending < W --------------------> REPLIED(EQUORUM)
 *         |-- timer ---------------------------------> REPLIED(ETIMEOUT)
 *         v
 *     all answered or timer: timer closed; op freed at refs == 0
 *
 * Replica side (coord_handle): REPL_GET reads the stored bytes, REPL_PUT
 * decodes and merges (replica_merge), both in disk jobs; the reply is sent
 * from the job's completion on the loop thread.
 */
#include "cluster/coord.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "net/net_msg.h"
#include "net/net_pool.h"
#include "net/net_server.h"
#include "ring/ring.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

/* Key slots of invariant 6: finer than the replica's stripes, so that
 * unrelated keys seldom follow each other to the workers. */
#define COORD_PEND_SLOTS 4096

#define HELLO_RETRY_MS 1000

enum { OP_GET = 1, OP_PUT = 2 };
enum { REP_PENDING = 0, REP_OK = 1, REP_FAIL = 2, REP_IDLE = 3 };

typedef struct op op;

typedef struct rep {
	op *o;
	int self;
	int state;
	int rc;
	obj_set *set;            /* get: what the replica holds (NULL: nothing) */
	char id[MEMBER_ID_MAX + 1];
	char addr[MEMBER_ADDR_MAX + 1];
	char hint_for[MEMBER_ID_MAX + 1]; /* put to a fallback: the down owner */
} rep;

struct op {
	op *next, *prev;
	coord *c;
	int kind;
	int refs;
	int replied, finished, timer_closing, timed_out;
	uv_timer_t timer;
	coord_done_fn cb;
	void *arg;
	uint8_t *key;
	size_t klen;
	int nrep, need, ok, failed;
	int found;               /* get: answers that held a sibling set */
	obj_set *merged;         /* get: merge of answers; put: the new set */
	int local_only;
	uint64_t deadline_ms;
	/* put */
	obj_ctx *cctx;
	uint8_t *ctxb;
	size_t ctxn;
	obj_write w;
	uint8_t *val;
	int want_set;
	int req_n, req_w;
	int fwd_next;
	int fb_next;             /* get, sloppy: next preference-list position
				  * to consider as a fallback (0: not set) */
	q_buf enc;               /* put: encoded new set sent to replicas */
	int cap;                 /* entries of reps (nrep <= cap <= COORD_MAX_N);
				  * sized to the request's N so an op stays a
				  * small allocation */
	rep reps[];
};

typedef struct peer_pending {
	coord *c;
	char addr[MEMBER_ADDR_MAX + 1];
	char zone[MEMBER_ID_MAX + 1];  /* "" = not configured */
	int inflight, resolved;
} peer_pending;

struct coord {
	coord_config cfg;
	char node_id[MEMBER_ID_MAX + 1];
	char listen[MEMBER_ADDR_MAX + 1];
	char bound[NET_ADDR_STRLEN];
	replica *rep;
	members *mem;
	net_loop *loop;
	net_server *srv;
	net_pool *pool;
	int closing;             /* loop thread */
	int stopping;            /* atomic: any thread */
	/* view, loop thread only */
	ring *ring;
	member *mv;
	size_t mn;
	uint64_t view_version;
	op *ops;
	/* peers known only by address, resolved by HELLO */
	peer_pending *unres;
	size_t nunres;
	uv_timer_t hello_timer;
	int hello_timer_on;
	coord_stats st;          /* atomics */
	uint64_t sib_hist[COORD_SIB_BUCKETS]; /* atomics: siblings per answered get */
	coord_status_fn hook;
	void *hook_arg;
	hint_store *hints;
	coord_departed_fn departed; /* owner left the cluster for good? */
	void *departed_arg;
	uv_timer_t hint_timer;
	int hint_timer_on;
	uv_timer_t probe_timer;  /* down-member probes (probe_tick) */
	int probe_timer_on;
	int probe_inflight;
	struct hint_round *hint_round; /* delivery round under way (loop thread) */
	uint64_t hints_delivered, hints_stored; /* atomics */
	struct {
		coord_msg_fn fn;
		void *arg;
		uint8_t first, last;
	} msg_hooks[COORD_MSG_HOOKS_MAX];
	size_t nmsg_hooks;
	/* disk jobs gathered during this loop iteration (job_submit), handed
	 * to one worker as a batch before the loop polls again */
	uv_prepare_t jb_prep;
	int jb_init;
	struct job *jb_head, *jb_tail;
	size_t jb_n;
	int jb_inflight;         /* batches handed to workers, not yet done */
	/* single-key jobs with the workers, per key slot (invariant 6) */
	uint32_t key_pend[COORD_PEND_SLOTS];
	coord_test_hooks th;     /* tests only (coord.h) */
};

#define STAT_INC(c, f) __atomic_add_fetch(&(c)->st.f, 1, __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* View: ring + addresses                                              */

static int view_refresh(coord *c)
{
	uint64_t v = members_version(c->mem);
	if (c->ring && v == c->view_version)
		return 0;
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	Q_RET(members_snapshot(c->mem, &mv, &mn, &ver));
	ring_member *rm = calloc(mn, sizeof(ring_member));
	if (!rm) {
		free(mv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < mn; i++) {
		rm[i].node = mv[i].id;
		rm[i].zone = mv[i].zone;
		rm[i].tokens = (uint32_t)c->cfg.ring_tokens;
	}
	ring *r = NULL;
	int rc = ring_build(rm, mn, ver, &r);
	free(rm);
	if (rc < 0) {
		free(mv);
		Q_ERROR("coord", "cannot build the ring from %zu members: %s", mn, q_strerror(rc));
		return rc;
	}
	ring_free(c->ring);
	free(c->mv);
	c->ring = r;
	c->mv = mv;
	c->mn = mn;
	c->view_version = ver;
	Q_INFO("coord", "ring version %llu: %zu members", (unsigned long long)ver, mn);
	return 0;
}

static const member *view_member(coord *c, const char *id)
{
	for (size_t i = 0; i < c->mn; i++)
		if (!strcmp(c->mv[i].id, id))
			return &c->mv[i];
	return NULL;
}

/* Primaries of key: fills reps (ids, addresses, self flag). */
static int view_primaries(coord *c, q_slice key, int n, rep *reps)
{
	const char *ids[COORD_MAX_N];
	size_t nprim = 0;
	size_t got = ring_preflist_key(c->ring, key.p, key.n, (size_t)n, ids, (size_t)n, &nprim);
	if (got > nprim)
		got = nprim;
	int k = 0;
	for (size_t i = 0; i < got; i++) {
		const member *m = view_member(c, ids[i]);
		if (!m)
			continue;
		memset(&reps[k], 0, sizeof(rep));
		snprintf(reps[k].id, sizeof(reps[k].id), "%s", m->id);
		snprintf(reps[k].addr, sizeof(reps[k].addr), "%s", m->addr);
		reps[k].self = m->self;
		k++;
	}
	return k;
}

static int eff_n(coord *c, int req_n)
{
	int n = req_n > 0 ? req_n : c->cfg.n;
	if (n > COORD_MAX_N)
		n = COORD_MAX_N;
	if ((size_t)n > c->mn)
		n = (int)c->mn;
	return n < 1 ? 1 : n;
}

static int clamp_q(int want, int def, int n)
{
	int q = want > 0 ? want : def;
	if (q > n)
		q = n;
	return q < 1 ? 1 : q;
}

/* 1 if a request's transport status says the peer could not be reached
 * (it is then marked down). */
static int peer_unreachable(int status)
{
	return status == Q_ETIMEOUT || status == Q_ECLOSED || status == -ECONNREFUSED ||
	       status == -ECONNRESET || status == -EHOSTUNREACH || status == -ENETUNREACH ||
	       status == -EPIPE || status == Q_EPROTO;
}

static void note_peer(coord *c, const char *id, int status)
{
	if (status == 0 || status == Q_ENOTFOUND)
		members_set_state(c->mem, id, MEMBER_UP);
	else if (peer_unreachable(status))
		members_set_state(c->mem, id, MEMBER_DOWN);
}

/* ------------------------------------------------------------------ */
/* Ops: lifetime                                                       */

static void op_free(op *o)
{
	coord *c = o->c;
	if (o->prev)
		o->prev->next = o->next;
	else if (c->ops == o)
		c->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
	for (int i = 0; i < o->nrep; i++)
		obj_set_free(o->reps[i].set);
	obj_set_free(o->merged);
	obj_ctx_free(o->cctx);
	free(o->ctxb);
	free(o->val);
	free(o->key);
	q_buf_free(&o->enc);
	free(o);
}

static void op_unref(op *o)
{
	if (--o->refs == 0)
		op_free(o);
}

static void op_timer_closed(uv_handle_t *h)
{
	op_unref((op *)h->data);
}

static void op_end_timer(op *o)
{
	if (o->timer_closing)
		return;
	o->timer_closing = 1;
	uv_timer_stop(&o->timer);
	uv_close((uv_handle_t *)&o->timer, op_timer_closed);
}

static void op_reply(op *o, int rc, obj_set *set)
{
	if (o->replied) {
		obj_set_free(set);
		return;
	}
	o->replied = 1;
	if (rc == Q_EQUORUM)
		STAT_INC(o->c, quorum_failures);
	else if (rc == Q_ETIMEOUT)
		STAT_INC(o->c, timeouts);
	if (o->kind == OP_GET && (rc == 0 || rc == Q_ENOTFOUND)) {
		size_t ns = rc == 0 && set ? obj_set_live_count(set) : 0;
		__atomic_add_fetch(&o->c->sib_hist[ns < COORD_SIB_BUCKETS ? ns : COORD_SIB_BUCKETS - 1],
				   1, __ATOMIC_RELAXED);
	}
	o->cb(o->arg, rc, set);
}

static void op_timeout(uv_timer_t *t);

static op *op_new(coord *c, int kind, q_slice key, int nreps, uint64_t timeout_ms,
		  coord_done_fn cb, void *arg)
{
	if (nreps < 1)
		nreps = 1;
	if (nreps > COORD_MAX_N)
		nreps = COORD_MAX_N;
	op *o = calloc(1, sizeof(*o) + (size_t)nreps * sizeof(rep));
	if (!o)
		return NULL;
	o->cap = nreps;
	o->key = q_slice_dup(key);
	if (!o->key) {
		free(o);
		return NULL;
	}
	o->klen = key.n;
	o->c = c;
	o->kind = kind;
	o->cb = cb;
	o->arg = arg;
	q_buf_init(&o->enc);
	uv_timer_init(net_loop_uv(c->loop), &o->timer);
	o->timer.data = o;
	o->refs = 1; /* the timer */
	uint64_t t = timeout_ms ? timeout_ms : c->cfg.timeout_ms;
	o->deadline_ms = q_mono_ms() + t;
	uv_timer_start(&o->timer, op_timeout, t, 0);
	o->next = c->ops;
	if (c->ops)
		c->ops->prev = o;
	c->ops = o;
	return o;
}

static uint64_t op_remaining(const op *o)
{
	uint64_t now = q_mono_ms();
	return o->deadline_ms > now ? o->deadline_ms - now : 1;
}

static q_slice op_key(const op *o)
{
	return q_slice_make(o->key, o->klen);
}

/* ------------------------------------------------------------------ */
/* Disk jobs                                                           */

enum {
	JOB_GET = 1,        /* op get: local replica read */
	JOB_UPDATE,         /* op put: local coordinated write */
	JOB_MERGE,          /* read repair of the local replica (standalone) */
	JOB_SERVE_GET,      /* REPL_GET from a peer */
	JOB_SERVE_PUT,      /* REPL_PUT from a peer */
	JOB_SERVE_MGET,     /* REPL_MGET from a peer */
	JOB_SERVE_HINT,     /* HINT_PUT from a peer: merge + keep a hint */
	JOB_MGET_LOCAL      /* multi-key op: this node's replica reads */
};

/* One hint on its way: to its owner (one REPL_PUT) or, when the owner left
 * the cluster, to the key's current primaries (a JOB_MERGE for this node,
 * REPL_PUT to the others). The hint is deleted once every send succeeded
 * (hint_delete_if: not if a write was merged into it meanwhile), by the
 * delete job of its round (see "Hint delivery"). Loop thread, until that
 * job reads it. */
typedef struct hint_round hint_round;
typedef struct hint_dlv {
	coord *c;
	hint_round *round;       /* owns it */
	struct hint_dlv *next;   /* the round's list */
	char owner[MEMBER_ID_MAX + 1];
	const uint8_t *key;      /* borrowed from the round's batch */
	size_t klen;
	uint64_t seq;
	int pending;             /* sends outstanding, +1 while issuing them */
	int failed;
} hint_dlv;

typedef struct job {
	uv_work_t w;
	struct job *bnext;   /* next job of the same worker batch */
	coord *c;
	int kind;
	rep *r;
	net_request *req;
	uint8_t *key;        /* JOB_MERGE: owned copy */
	size_t klen;
	char hint_for[MEMBER_ID_MAX + 1]; /* JOB_MERGE on a fallback: the owner */
	obj_set *in;         /* JOB_MERGE: owned */
	obj_set *out;
	int rc;
	uint64_t digest;
	q_buf buf;
	q_buf *bufs;         /* JOB_SERVE_MGET */
	size_t nbufs;
	int *rcs;            /* multi-key: one per key */
	size_t nrcs;
	struct mpeer *mp;    /* JOB_MGET_LOCAL */
	obj_set **sets;      /* JOB_MGET_LOCAL: one per key of mp (nrcs) */
	int slot;            /* key slot of a single-key job, else -1 */
	int pend;            /* counted in c->key_pend (with the workers) */
	int partial;         /* multi-key: the loop answered the keys whose rc
			      * is not -EAGAIN; the worker does the rest */
	replica_retry *retry; /* a write the engine refused on the loop: its
			       * batch, for the worker's retry (replica.h) */
	hint_dlv *dlv;       /* JOB_MERGE of a hint redirected to this node
			       * (its owner left): the delivery it is part of */
} job;

static void mget_local_work(job *j);
static int mget_local_try(job *j);
static void mget_local_done(job *j);

static void job_work(uv_work_t *w)
{
	job *j = w->data;
	replica *rp = j->c->rep;
	switch (j->kind) {
	case JOB_GET: {
		op *o = j->r->o;
		j->rc = replica_get(rp, op_key(o), &j->out);
		break;
	}
	case JOB_UPDATE: {
		op *o = j->r->o;
		/* j->buf: the stored encoding, sent on to the other replicas */
		j->rc = replica_update_enc_retry(rp, op_key(o), o->cctx, &o->w, &j->out, &j->buf,
						 j->retry);
		j->retry = NULL;
		if (j->rc == 0 && j->r->hint_for[0] && j->c->hints) {
			/* this node wrote as the fallback of a down owner: keep
			 * the hint, as a HINT_PUT receiver would */
			j->rc = hint_put(j->c->hints, j->r->hint_for, op_key(o),
					 q_buf_slice(&j->buf), q_wall_ns() / 1000000u, NULL);
			if (j->rc < 0) {
				obj_set_free(j->out);
				j->out = NULL;
			}
		}
		break;
	}
	case JOB_MERGE:
		j->rc = replica_merge_digest_retry(rp, q_slice_make(j->key, j->klen), j->in, NULL,
						   NULL, j->retry);
		j->retry = NULL;
		if (j->rc == 0 && j->hint_for[0] && j->c->hints) {
			/* repaired as the fallback of a down owner: keep a
			 * hint so the owner receives the merge too */
			q_buf enc = Q_BUF_INIT;
			j->rc = obj_set_encode(j->in, &enc);
			if (j->rc == 0)
				j->rc = hint_put(j->c->hints, j->hint_for,
						 q_slice_make(j->key, j->klen), q_buf_slice(&enc),
						 q_wall_ns() / 1000000u, NULL);
			q_buf_free(&enc);
		}
		break;
	case JOB_SERVE_GET:
		j->rc = replica_get_raw(rp, j->req->msg.u.repl_get.key, &j->buf);
		break;
	case JOB_SERVE_PUT: {
		/* decoded already if the loop tried it first */
		q_slice ob = j->req->msg.u.repl_put.object;
		j->rc = j->in ? 0 : obj_set_decode(ob.p, ob.n, &j->in);
		if (j->rc == 0) {
			j->rc = replica_merge_digest_retry(rp, j->req->msg.u.repl_put.key, j->in,
							   NULL, &j->digest, j->retry);
			j->retry = NULL; /* freed by the call */
		}
		break;
	}
	case JOB_SERVE_HINT: {
		const net_hint_put *h = &j->req->msg.u.hint_put;
		char owner[NET_MAX_NODE_ID + 1];
		memcpy(owner, h->owner.p, h->owner.n);
		owner[h->owner.n] = 0;
		obj_set *in = NULL;
		j->rc = obj_set_decode(h->object.p, h->object.n, &in);
		if (j->rc == 0)
			j->rc = replica_merge_digest(rp, h->key, in, NULL, &j->digest);
		if (j->rc == 0)
			j->rc = hint_put(j->c->hints, owner, h->key, h->object,
					 q_wall_ns() / 1000000u, NULL);
		obj_set_free(in);
		break;
	}
	case JOB_SERVE_MGET: {
		const net_mget *m = &j->req->msg.u.mget;
		for (size_t i = 0; i < m->nkeys; i++)
			if (!j->partial || j->rcs[i] == -EAGAIN)
				j->rcs[i] = replica_get_raw(rp, m->keys[i], &j->bufs[i]);
		j->rc = 0;
		break;
	}
	case JOB_MGET_LOCAL:
		mget_local_work(j);
		break;
	}
}

static void job_done(uv_work_t *w, int status);

/*
 * Worker batches (cfg.job_batch > 1). Every job submitted during one loop
 * iteration joins c->jb_head; the prepare handle (run just before the loop
 * blocks in poll) hands the whole list to one worker as a single uv_work_t
 * (the first job's), which runs the jobs in order; the completion runs
 * their job_done in the same order on the loop thread. One thread hop and
 * one wake-up per batch instead of per job. At most JB_MAX_INFLIGHT batches
 * are with the workers at a time: jobs arriving meanwhile wait for one to
 * finish and leave together with the next batch (so batches grow with the
 * load, and workers do not contend with each other for the engine's
 * locks). A batch reaching job_batch jobs is handed over as soon as that
 * limit allows. Once the coordinator closes, jobs go one by one.
 */
#define JB_MAX_INFLIGHT 2

static void jb_flush(coord *c, int force);

static int job_key(const job *j, q_slice *key);

/* job_work on a worker thread (the test hook first). */
static void job_work_pool(uv_work_t *w)
{
	job *j = w->data;
	if (j->c->th.work) {
		q_slice key = q_slice_make(NULL, 0);
		job_key(j, &key);
		j->c->th.work(j->c->th.arg, key);
	}
	job_work(w);
}

static void batch_work(uv_work_t *w)
{
	for (job *j = w->data; j; j = j->bnext)
		job_work_pool(&j->w);
}

/* uv_queue_work, unless the test hook fails the hand-off. */
static int job_queue(coord *c, uv_work_t *w, uv_work_cb work, uv_after_work_cb done)
{
	if (c->th.handoff) {
		int rc = c->th.handoff(c->th.arg);
		if (rc < 0)
			return rc;
	}
	return uv_queue_work(net_loop_uv(c->loop), w, work, done);
}

static void batch_done(uv_work_t *w, int status)
{
	job *j = w->data;
	coord *c = j->c;
	c->jb_inflight--;
	while (j) {
		job *next = j->bnext; /* job_done frees j (and w with the first) */
		job_done(&j->w, status);
		j = next;
	}
	if (c->jb_head && c->jb_n >= c->cfg.job_batch)
		jb_flush(c, 0); /* else the prepare handle hands them over */
}

/* Hands the gathered jobs to a worker, unless JB_MAX_INFLIGHT batches are
 * out already and force is 0 (batch_done or the prepare handle will). */
static void jb_flush(coord *c, int force)
{
	job *first = c->jb_head;
	if (!first || (!force && c->jb_inflight >= JB_MAX_INFLIGHT))
		return;
	c->jb_head = c->jb_tail = NULL;
	c->jb_n = 0;
	c->jb_inflight++;
	int rc = job_queue(c, &first->w, batch_work, batch_done);
	if (rc < 0)
		batch_done(&first->w, rc); /* every job fails with Q_ECLOSED */
}

static void jb_prepare_cb(uv_prepare_t *h)
{
	coord *c = h->data;
	jb_flush(c, 0);
	if (!c->jb_head)
		uv_prepare_stop(&c->jb_prep);
}

/* The key a single-key job reads or writes (its slot orders it). */
static int job_key(const job *j, q_slice *key)
{
	switch (j->kind) {
	case JOB_GET:
	case JOB_UPDATE:
		*key = op_key(j->r->o);
		return 1;
	case JOB_MERGE:
		*key = q_slice_make(j->key, j->klen);
		return 1;
	case JOB_SERVE_GET:
		*key = j->req->msg.u.repl_get.key;
		return 1;
	case JOB_SERVE_PUT:
		*key = j->req->msg.u.repl_put.key;
		return 1;
	case JOB_SERVE_HINT:
		*key = j->req->msg.u.hint_put.key;
		return 1;
	}
	return 0; /* multi-key reads */
}

/* The keys of a multi-key job on the loop: 0 if every key was answered,
 * -EAGAIN if some were not (rcs[i] == -EAGAIN marks them; the worker reads
 * those, job->partial). */
static int mget_try_loop(job *j)
{
	replica *rp = j->c->rep;
	int again = 0;
	if (j->kind == JOB_SERVE_MGET) {
		const net_mget *m = &j->req->msg.u.mget;
		for (size_t i = 0; i < m->nkeys; i++)
			again |= (j->rcs[i] = replica_get_raw_nowait(rp, m->keys[i],
								     &j->bufs[i])) == -EAGAIN;
	} else {
		again = mget_local_try(j);
	}
	j->partial = 1;
	return again ? -EAGAIN : 0;
}

/*
 * io = auto: does j on the loop thread with the replica's calls that never
 * block. 1 if it is done (results set as job_work sets them), 0 if it goes
 * to a worker: the engine would wait or read a file, the key's stripe is
 * held (by a worker or another thread), a job of the same key slot is with
 * the workers (invariant 6), or it keeps a hint (the hint store has no
 * call that never blocks).
 */
/* io = auto leaves a write of this many value bytes or more to the
 * workers without trying it on the loop: its log record would seldom stay
 * in the storage engine's log buffer (lsm_write_nowait refuses it), and
 * the decode, merge, encode and digest done on the loop first would be
 * thrown away, at the cost of a loop stall for a large value. */
#define COORD_LOOP_MAX_VALUE (16u << 10)

/* Value bytes of every sibling of s. */
static size_t set_value_bytes(const obj_set *s)
{
	size_t n = 0, k = obj_set_count(s);
	for (size_t i = 0; i < k; i++) {
		obj_sibling sb;
		obj_set_sibling(s, i, &sb);
		n += sb.value.n;
	}
	return n;
}

static int job_try_loop(coord *c, job *j)
{
	replica *rp = c->rep;
	q_slice key;
	int rc;
	if (j->slot >= 0 && c->key_pend[j->slot])
		return 0;
	job_key(j, &key);
	switch (j->kind) {
	case JOB_GET:
		rc = replica_get_nowait(rp, key, &j->out);
		break;
	case JOB_UPDATE: {
		op *o = j->r->o;
		if (c->cfg.sync_writes || j->r->hint_for[0] ||
		    o->w.value.n >= COORD_LOOP_MAX_VALUE)
			return 0;
		rc = replica_update_enc_nowait(rp, key, o->cctx, &o->w, &j->out, &j->buf,
					       &j->retry);
		break;
	}
	case JOB_MERGE:
		if (c->cfg.sync_writes || j->hint_for[0] ||
		    set_value_bytes(j->in) >= COORD_LOOP_MAX_VALUE)
			return 0;
		rc = replica_merge_digest_nowait(rp, key, j->in, NULL, NULL, &j->retry);
		break;
	case JOB_SERVE_GET:
		rc = replica_get_raw_nowait(rp, key, &j->buf);
		break;
	case JOB_SERVE_PUT: {
		q_slice ob = j->req->msg.u.repl_put.object;
		if (c->cfg.sync_writes || ob.n >= COORD_LOOP_MAX_VALUE)
			return 0;
		rc = obj_set_decode(ob.p, ob.n, &j->in);
		if (rc == 0)
			rc = replica_merge_digest_nowait(rp, key, j->in, NULL, &j->digest,
							 &j->retry);
		break;
	}
	case JOB_SERVE_MGET:
	case JOB_MGET_LOCAL:
		rc = mget_try_loop(j);
		break;
	default:
		return 0;
	}
	if (rc == -EAGAIN)
		return 0;
	j->rc = rc;
	return 1;
}

/* A job counted in key_pend that was not queued after all (the caller
 * frees it): uncounted. */
static void job_unpend(coord *c, job *j)
{
	if (j->pend) {
		c->key_pend[j->slot]--;
		j->pend = 0;
	}
}

/* A hand-off to the workers failed with rc: a single-key job is uncounted
 * and the error returned (the caller frees it); a multi-key job completes
 * at once, its keys not answered on the loop getting the error (job_done),
 * and 0 is returned. */
static int job_handoff_failed(coord *c, job *j, int rc)
{
	job_unpend(c, j);
	if (j->slot >= 0)
		return rc;
	job_done(&j->w, rc);
	return 0;
}

static int job_submit(coord *c, job *j)
{
	j->w.data = j;
	j->c = c;
	j->bnext = NULL;
	q_slice key;
	j->slot = job_key(j, &key)
		? (int)(q_hash64(key.p, key.n, 0x70656e64ULL) % COORD_PEND_SLOTS) : -1;
	if (c->cfg.io == COORD_IO_INLINE) {
		/* disk work on the loop thread (io = inline): no worker hop */
		STAT_INC(c, jobs_loop);
		job_work(&j->w);
		job_done(&j->w, 0);
		return 0;
	}
	if (c->cfg.io == COORD_IO_AUTO && !c->closing && job_try_loop(c, j)) {
		STAT_INC(c, jobs_loop);
		job_done(&j->w, 0);
		return 0;
	}
	STAT_INC(c, jobs_worker);
	if (j->slot >= 0) {
		/* counted before it can complete (a failed hand-off below
		 * completes it at once); job_done uncounts it */
		c->key_pend[j->slot]++;
		j->pend = 1;
	}
	if (c->cfg.job_batch > 1 && !c->closing) {
		if (!c->jb_init) {
			int rc = uv_prepare_init(net_loop_uv(c->loop), &c->jb_prep);
			if (rc < 0)
				return job_handoff_failed(c, j, rc);
			c->jb_prep.data = c;
			c->jb_init = 1;
		}
		if (c->jb_tail)
			c->jb_tail->bnext = j;
		else
			c->jb_head = j;
		c->jb_tail = j;
		if (++c->jb_n == 1)
			uv_prepare_start(&c->jb_prep, jb_prepare_cb);
		if (c->jb_n >= c->cfg.job_batch)
			jb_flush(c, 0);
		return 0;
	}
	int rc = job_queue(c, &j->w, job_work_pool, job_done);
	return rc < 0 ? job_handoff_failed(c, j, rc) : 0;
}

static job *job_new(int kind)
{
	job *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = kind;
		q_buf_init(&j->buf);
	}
	return j;
}

static void job_free(job *j)
{
	q_buf_free(&j->buf);
	for (size_t i = 0; j->bufs && i < j->nbufs; i++)
		q_buf_free(&j->bufs[i]); /* not through j->req: replying freed it */
	free(j->bufs);
	free(j->rcs);
	free(j->sets);
	free(j->key);
	obj_set_free(j->in);
	obj_set_free(j->out);
	replica_retry_free(j->retry);
	free(j);
}

/* ------------------------------------------------------------------ */
/* Get                                                                 */

static void get_finish(op *o);

enum { READ_WAIT = 0, READ_ANSWER = 1, READ_NOQUORUM = 2 };

/*
 * The quorum rule shared by single and multi-key reads (see "Read verdict"
 * above): ok answers (found + not-found) and failed ones out of nrep, need
 * = R. Pure function of the counts.
 */
static int read_verdict(int notfound_ok, int nrep, int need, int ok, int found, int failed)
{
	int pending = nrep - ok - failed;
	if (notfound_ok) {
		if (ok >= need)
			return READ_ANSWER;
		return ok + pending < need ? READ_NOQUORUM : READ_WAIT;
	}
	if (found >= need)
		return READ_ANSWER;
	if (ok + pending < need)
		return READ_NOQUORUM;
	if (pending == 0)
		return READ_ANSWER; /* ok >= need here: merge of what was found */
	int notfound = ok - found;
	if (found == 0 && found + pending < need && notfound >= nrep / 2 + 1)
		return READ_ANSWER; /* basic quorum: a majority said not-found */
	return READ_WAIT;
}

static void get_result(op *o)
{
	obj_set *s = NULL;
	int rc = Q_ENOTFOUND;
	if (o->merged && obj_set_count(o->merged) > 0) {
		s = obj_set_clone(o->merged);
		if (!s) {
			op_reply(o, -ENOMEM, NULL);
			return;
		}
		rc = obj_set_live_count(s) > 0 ? 0 : Q_ENOTFOUND;
	}
	op_reply(o, rc, s);
}

static void get_check(op *o)
{
	int pending = o->nrep - o->ok - o->failed;
	if (!o->replied) {
		int v = read_verdict(o->c->cfg.notfound_ok, o->nrep, o->need, o->ok, o->found,
				     o->failed);
		if (v == READ_ANSWER)
			get_result(o);
		else if (v == READ_NOQUORUM)
			op_reply(o, Q_EQUORUM, NULL);
	}
	if (pending == 0)
		get_finish(o);
}

/* One replica's answer to a get: takes ownership of set. */
static void get_rep_done(rep *r, int rc, obj_set *set)
{
	op *o = r->o;
	if (rc == 0 || rc == Q_ENOTFOUND) {
		r->state = REP_OK;
		r->set = set;
		o->ok++;
		if (set && obj_set_count(set) > 0)
			o->found++;
		if (set && !o->finished) {
			obj_set *m = NULL;
			if (obj_set_sync(o->merged, set, &m) == 0) {
				obj_set_free(o->merged);
				o->merged = m;
			}
		}
	} else {
		/* a corrupt copy is no answer, but read repair replaces it */
		r->state = rc == Q_ECORRUPT ? REP_OK : REP_FAIL;
		r->rc = rc;
		obj_set_free(set);
		o->failed++;
		Q_DEBUG("coord", "replica %s failed a read: %s", r->id, q_strerror(rc));
	}
	if (!o->finished)
		get_check(o);
}

static int get_send(op *o, rep *r);
static int read_fallback(coord *c, op *o, rep *r);

/* Sloppy read quorum: r could not be reached; ask the next healthy
 * fallback in its place. 1 if a request to one is under way. */
static int get_retry_fallback(op *o, rep *r)
{
	coord *c = o->c;
	if (!c->cfg.sloppy_quorum || o->local_only || o->replied || o->finished || c->closing)
		return 0;
	while (read_fallback(c, o, r)) {
		Q_DEBUG("coord", "read from fallback %s for %s", r->id, r->hint_for);
		if (get_send(o, r) == 0)
			return 1;
	}
	return 0;
}

static void get_peer_cb(void *arg, int status, const net_msg *resp)
{
	rep *r = arg;
	op *o = r->o;
	obj_set *set = NULL;
	int rc = status;
	if (peer_unreachable(status) && r->state == REP_PENDING) {
		note_peer(o->c, r->id, status);
		/* a request timeout has spent the op's deadline: no retry */
		if (status != Q_ETIMEOUT && get_retry_fallback(o, r)) {
			op_unref(o);
			return;
		}
	}
	if (status == 0) {
		const net_obj_resp *gr = &resp->u.obj_resp;
		rc = gr->status;
		if (rc == 0) {
			rc = obj_set_decode(gr->object.p, gr->object.n, &set);
			if (rc < 0) {
				Q_WARN("coord", "replica %s sent an object that does not decode: %s",
				       r->id, q_strerror(rc));
				/* counts as a failed answer, but is repaired below */
				r->state = REP_FAIL;
			}
		}
	}
	note_peer(o->c, r->id, status);
	if (r->state == REP_PENDING)
		get_rep_done(r, rc, set);
	else { /* undecodable: repair it with the merge, do not count it */
		o->failed++;
		r->state = REP_OK; /* eligible for read repair with an empty set */
		r->rc = rc;
		if (!o->finished)
			get_check(o);
	}
	op_unref(o);
}

static void repair_peer_cb(void *arg, int status, const net_msg *resp)
{
	(void)resp;
	coord *c = arg;
	if (status != 0)
		Q_DEBUG("coord", "read repair not applied: %s", q_strerror(status));
	(void)c;
}

static void read_repair(op *o)
{
	coord *c = o->c;
	if (!c->cfg.read_repair || c->closing || o->local_only || !o->merged ||
	    obj_set_count(o->merged) == 0)
		return;
	q_buf enc = Q_BUF_INIT;
	for (int i = 0; i < o->nrep; i++) {
		rep *r = &o->reps[i];
		if (r->state != REP_OK)
			continue;
		if (r->set && obj_set_equal(r->set, o->merged))
			continue;
		STAT_INC(c, read_repairs);
		if (r->self) {
			job *j = job_new(JOB_MERGE);
			if (!j)
				continue;
			j->key = q_slice_dup(op_key(o));
			j->klen = o->klen;
			j->in = obj_set_clone(o->merged);
			snprintf(j->hint_for, sizeof(j->hint_for), "%s", r->hint_for);
			if (!j->key || !j->in || job_submit(c, j) < 0)
				job_free(j);
			continue;
		}
		if (enc.len == 0 && obj_set_encode(o->merged, &enc) < 0)
			break;
		net_msg m;
		if (r->hint_for[0]) {
			/* a fallback read in place of a down owner: the repair
			 * is a hinted write, handed to the owner when it is back */
			net_msg_init(&m, NET_MSG_HINT_PUT);
			m.u.hint_put.owner = q_slice_str(r->hint_for);
			m.u.hint_put.key = op_key(o);
			m.u.hint_put.object = q_buf_slice(&enc);
		} else {
			net_msg_init(&m, NET_MSG_REPL_PUT);
			m.u.repl_put.key = op_key(o);
			m.u.repl_put.object = q_buf_slice(&enc);
		}
		int rc = net_pool_request(c->pool, r->addr, &m, c->cfg.timeout_ms, repair_peer_cb, c);
		if (rc < 0)
			Q_DEBUG("coord", "read repair to %s refused: %s", r->id, q_strerror(rc));
		else
			Q_DEBUG("coord", "read repair of a key to %s", r->id);
	}
	q_buf_free(&enc);
}

static void get_finish(op *o)
{
	if (o->finished)
		return;
	o->finished = 1;
	read_repair(o);
	op_end_timer(o);
}

void coord_get(coord *c, q_slice key, const coord_req *q, coord_done_fn cb, void *arg)
{
	static const coord_req none;
	if (!q)
		q = &none;
	if (c->closing) {
		cb(arg, Q_ECLOSED, NULL);
		return;
	}
	if (key.n == 0) {
		cb(arg, -EINVAL, NULL);
		return;
	}
	if (key.n > c->cfg.max_key) {
		cb(arg, Q_ETOOBIG, NULL);
		return;
	}
	int rc = view_refresh(c);
	if (rc < 0) {
		cb(arg, rc, NULL);
		return;
	}
	STAT_INC(c, gets);
	op *o = op_new(c, OP_GET, key, q->local_only ? 1 : eff_n(c, q->n), q->timeout_ms, cb, arg);
	if (!o) {
		cb(arg, -ENOMEM, NULL);
		return;
	}
	if (q->local_only) {
		o->local_only = 1;
		o->nrep = 1;
		memset(&o->reps[0], 0, sizeof(rep));
		o->reps[0].self = 1;
		snprintf(o->reps[0].id, sizeof(o->reps[0].id), "%s", c->node_id);
		o->need = 1;
	} else {
		int n = eff_n(c, q->n);
		o->req_n = n; /* get: the effective N (fallback positions follow) */
		o->nrep = view_primaries(c, key, n, o->reps);
		o->need = clamp_q(q->r, c->cfg.r, o->nrep);
	}
	for (int i = 0; i < o->nrep; i++)
		o->reps[i].o = o;
	if (c->cfg.sloppy_quorum && !o->local_only) {
		/* primaries known to be down are replaced up front by healthy
		 * fallbacks, which hold the hinted copies of writes */
		for (int i = 0; i < o->nrep; i++) {
			rep *r = &o->reps[i];
			if (!r->self && members_state_of(c->mem, r->id) == MEMBER_DOWN &&
			    read_fallback(c, o, r))
				Q_DEBUG("coord", "primary %s is down: read from fallback %s",
					r->hint_for, r->id);
		}
	}
	for (int i = 0; i < o->nrep; i++) {
		rep *r = &o->reps[i];
		rc = get_send(o, r);
		/* refused at once for being unreachable (not for backpressure:
		 * a busy primary is not replaced) */
		if (rc < 0 && !r->self && peer_unreachable(rc) && rc != Q_ETIMEOUT &&
		    get_retry_fallback(o, r))
			continue;
		if (rc < 0) {
			r->state = REP_FAIL;
			r->rc = rc;
			o->failed++;
		}
	}
	get_check(o);
}

/* Sends o's read to r: a disk job for this node, REPL_GET for a peer. 0
 * when under way (o holds a reference for it). */
static int get_send(op *o, rep *r)
{
	coord *c = o->c;
	r->state = REP_PENDING;
	if (r->self) {
		job *j = job_new(JOB_GET);
		if (!j)
			return -ENOMEM;
		j->r = r;
		o->refs++; /* before: an inline job completes at once */
		int rc = job_submit(c, j);
		if (rc == 0)
			return 0;
		o->refs--;
		job_free(j);
		return rc;
	}
	net_msg m;
	net_msg_init(&m, NET_MSG_REPL_GET);
	m.u.repl_get.key = op_key(o);
	int rc = net_pool_request(c->pool, r->addr, &m, op_remaining(o), get_peer_cb, r);
	if (rc == 0)
		o->refs++;
	return rc;
}

/*
 * Sloppy read quorum (docs/cluster.md, "Reads from fallbacks"): the next
 * member of key's preference list past its n primaries, from *cursor on,
 * that is not marked down and not one of the nrep already in reps. r
 * becomes its stand-in for the unreachable owner (r->hint_for keeps the
 * first owner's id, which read repair uses). 1 if one was found; r is
 * unchanged if not. *cursor only moves forward.
 */
static int next_fallback(coord *c, q_slice key, int n, const rep *reps, int nrep, int *cursor,
			 rep *r)
{
	const char *ids[COORD_MAX_N * 4];
	size_t nprim = 0;
	size_t max = c->mn < COORD_MAX_N * 4 ? c->mn : COORD_MAX_N * 4;
	size_t got = ring_preflist_key(c->ring, key.p, key.n, (size_t)n, ids, max, &nprim);
	if (*cursor < (int)nprim)
		*cursor = (int)nprim;
	while (*cursor < (int)got) {
		const member *m = view_member(c, ids[(*cursor)++]);
		if (!m || members_state_of(c->mem, m->id) == MEMBER_DOWN)
			continue;
		int dup = 0;
		for (int i = 0; i < nrep && !dup; i++)
			dup = !strcmp(reps[i].id, m->id);
		if (dup)
			continue;
		if (!r->hint_for[0])
			snprintf(r->hint_for, sizeof(r->hint_for), "%s", r->id);
		snprintf(r->id, sizeof(r->id), "%s", m->id);
		snprintf(r->addr, sizeof(r->addr), "%s", m->addr);
		r->self = m->self;
		return 1;
	}
	return 0;
}

static int read_fallback(coord *c, op *o, rep *r)
{
	return next_fallback(c, op_key(o), o->req_n, o->reps, o->nrep, &o->fb_next, r);
}

/* ------------------------------------------------------------------ */
/* Put                                                                 */

static void put_check(op *o)
{
	int pending = o->nrep - o->ok - o->failed;
	if (!o->replied) {
		if (o->ok >= o->need) {
			obj_set *s = NULL;
			if (o->want_set && o->merged)
				s = obj_set_clone(o->merged);
			op_reply(o, 0, s);
		} else if (o->ok + pending < o->need) {
			op_reply(o, Q_EQUORUM, NULL);
		}
	}
	if (pending == 0)
		op_end_timer(o);
}

static void put_peer_cb(void *arg, int status, const net_msg *resp)
{
	rep *r = arg;
	op *o = r->o;
	int rc = status;
	if (status == 0)
		rc = resp->u.repl_put_resp.status;
	note_peer(o->c, r->id, status);
	if (rc == 0) {
		r->state = REP_OK;
		o->ok++;
	} else {
		r->state = REP_FAIL;
		r->rc = rc;
		o->failed++;
		Q_DEBUG("coord", "replica %s failed a write: %s", r->id, q_strerror(rc));
	}
	put_check(o);
	op_unref(o);
}

/* enc: set's encoding as the replica stored it (moved into o->enc). */
static void put_local_done(op *o, rep *self, int rc, obj_set *set, q_buf *enc)
{
	coord *c = o->c;
	if (rc < 0) {
		obj_set_free(set);
		self->state = REP_FAIL;
		/* the write was not applied anywhere: answer with the cause */
		for (int i = 0; i < o->nrep; i++)
			if (o->reps[i].state == REP_IDLE)
				o->reps[i].state = REP_FAIL;
		o->failed = o->nrep;
		o->ok = 0;
		op_reply(o, rc, NULL);
		op_end_timer(o);
		return;
	}
	self->state = REP_OK;
	o->ok++;
	o->merged = set;
	if (enc->len && o->enc.len == 0) {
		q_buf t = o->enc;
		o->enc = *enc;
		*enc = t;
	}
	int enc_rc = 0;
	for (int i = 0; i < o->nrep; i++) {
		rep *r = &o->reps[i];
		if (r->self || r->state != REP_IDLE)
			continue;
		r->state = REP_PENDING;
		if (c->closing) {
			r->state = REP_FAIL;
			o->failed++;
			continue;
		}
		if (o->enc.len == 0 && enc_rc == 0)
			enc_rc = obj_set_encode(set, &o->enc);
		if (enc_rc < 0) {
			r->state = REP_FAIL;
			o->failed++;
			continue;
		}
		net_msg m;
		if (r->hint_for[0]) {
			net_msg_init(&m, NET_MSG_HINT_PUT);
			m.u.hint_put.owner = q_slice_str(r->hint_for);
			m.u.hint_put.key = op_key(o);
			m.u.hint_put.object = q_buf_slice(&o->enc);
		} else {
			net_msg_init(&m, NET_MSG_REPL_PUT);
			m.u.repl_put.key = op_key(o);
			m.u.repl_put.object = q_buf_slice(&o->enc);
		}
		int prc = net_pool_request(c->pool, r->addr, &m, op_remaining(o), put_peer_cb, r);
		if (prc == 0) {
			o->refs++;
		} else {
			r->state = REP_FAIL;
			r->rc = prc;
			o->failed++;
		}
	}
	put_check(o);
}

static void fwd_try(op *o);

static void fwd_cb(void *arg, int status, const net_msg *resp)
{
	op *o = arg;
	rep *r = &o->reps[o->fwd_next];
	note_peer(o->c, r->id, status);
	if (!o->replied) {
		if (status == 0) {
			const net_obj_resp *pr = &resp->u.obj_resp;
			obj_set *s = NULL;
			int rc = pr->status;
			if (rc == 0 && pr->object.n && o->want_set) {
				rc = obj_set_decode(pr->object.p, pr->object.n, &s);
				if (rc < 0)
					s = NULL;
			}
			op_reply(o, rc, s);
		} else if (resp && resp->type == NET_MSG_ERROR) {
			op_reply(o, status, NULL); /* the coordinating replica's verdict */
		} else {
			o->fwd_next++; /* unreachable: try the next primary */
			fwd_try(o);
		}
	}
	if (o->replied)
		op_end_timer(o);
	op_unref(o);
}

/* 1 if every primary of o is marked down. */
static int all_primaries_down(coord *c, op *o)
{
	for (int i = 0; i < o->nrep; i++)
		if (members_state_of(c->mem, o->reps[i].id) != MEMBER_DOWN)
			return 0;
	return 1;
}

/* Forwarding order: primaries marked down go last (stable), so a hung or
 * dead first primary does not use up the whole request timeout. */
static void fwd_order(coord *c, op *o)
{
	rep tmp[COORD_MAX_N];
	int k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < o->nrep; i++)
			if ((members_state_of(c->mem, o->reps[i].id) == MEMBER_DOWN) == pass)
				tmp[k++] = o->reps[i];
	memcpy(o->reps, tmp, sizeof(rep) * (size_t)o->nrep);
}

static void fwd_try(op *o)
{
	coord *c = o->c;
	while (!o->replied && o->fwd_next < o->nrep && !c->closing) {
		rep *r = &o->reps[o->fwd_next];
		net_msg m;
		net_msg_init(&m, NET_MSG_KV_PUT);
		m.u.kv_put.key = op_key(o);
		m.u.kv_put.ctx = q_slice_make(o->ctxb, o->ctxn);
		m.u.kv_put.value = o->w.tombstone ? q_slice_make(NULL, 0) : o->w.value;
		m.u.kv_put.flags = (o->w.tombstone ? NET_PUT_DELETE : 0) |
				   (o->want_set ? NET_PUT_RETURN_OBJ : 0);
		m.u.kv_put.n = (uint8_t)o->req_n;
		m.u.kv_put.w = (uint8_t)o->req_w;
		uint64_t rem = op_remaining(o);
		m.u.kv_put.timeout_ms = (uint32_t)(rem > 1 ? rem - 1 : 1);
		int rc = net_pool_request(c->pool, r->addr, &m, rem, fwd_cb, o);
		if (rc == 0) {
			o->refs++;
			STAT_INC(c, forwards);
			return;
		}
		o->fwd_next++;
	}
	if (!o->replied) {
		op_reply(o, c->closing ? Q_ECLOSED : Q_EQUORUM, NULL);
		op_end_timer(o);
	}
}

/* Sloppy quorum: each primary that membership reports down is replaced by
 * the next fallback of the key's preference list that is not down; the
 * write to it carries the owner's id (HINT_PUT). A primary without a
 * healthy fallback left stays and fails as before. */
static void sloppy_substitute(coord *c, op *o, q_slice key, int n)
{
	const char *ids[COORD_MAX_N * 4];
	size_t nprim = 0;
	size_t max = c->mn < COORD_MAX_N * 4 ? c->mn : COORD_MAX_N * 4;
	size_t got = ring_preflist_key(c->ring, key.p, key.n, (size_t)n, ids, max, &nprim);
	size_t next = nprim;
	for (int i = 0; i < o->nrep; i++) {
		rep *r = &o->reps[i];
		if (r->self || members_state_of(c->mem, r->id) != MEMBER_DOWN)
			continue;
		while (next < got) {
			const member *m = view_member(c, ids[next++]);
			if (!m || m->self || members_state_of(c->mem, m->id) == MEMBER_DOWN)
				continue;
			Q_DEBUG("coord", "primary %s is down: hinted write to %s", r->id, m->id);
			snprintf(r->hint_for, sizeof(r->hint_for), "%s", r->id);
			snprintf(r->id, sizeof(r->id), "%s", m->id);
			snprintf(r->addr, sizeof(r->addr), "%s", m->addr);
			break;
		}
	}
}

void coord_put(coord *c, q_slice key, q_slice ctx, const obj_write *w, const coord_req *q,
	       coord_done_fn cb, void *arg)
{
	static const coord_req none;
	if (!q)
		q = &none;
	if (c->closing) {
		cb(arg, Q_ECLOSED, NULL);
		return;
	}
	if (key.n == 0) {
		cb(arg, -EINVAL, NULL);
		return;
	}
	if (key.n > c->cfg.max_key || (!w->tombstone && w->value.n > c->cfg.max_value)) {
		cb(arg, Q_ETOOBIG, NULL);
		return;
	}
	obj_ctx *cctx = NULL;
	if (ctx.n) {
		int rc = obj_ctx_decode(ctx.p, ctx.n, &cctx);
		if (rc < 0) {
			cb(arg, Q_EBADCTX, NULL);
			return;
		}
	}
	int rc = view_refresh(c);
	if (rc < 0) {
		obj_ctx_free(cctx);
		cb(arg, rc, NULL);
		return;
	}
	STAT_INC(c, puts);
	op *o = op_new(c, OP_PUT, key, eff_n(c, q->n), q->timeout_ms, cb, arg);
	if (!o) {
		obj_ctx_free(cctx);
		cb(arg, -ENOMEM, NULL);
		return;
	}
	o->cctx = cctx;
	o->want_set = q->want_object;
	o->req_n = q->n;
	o->req_w = q->w;
	o->w = *w;
	if (!w->tombstone && w->value.n) {
		o->val = malloc(w->value.n);
		if (!o->val)
			goto nomem;
		memcpy(o->val, w->value.p, w->value.n);
		o->w.value = q_slice_make(o->val, w->value.n);
	} else {
		o->w.value = q_slice_make(NULL, 0);
	}
	o->w.content_type = NULL;
	if (ctx.n) {
		o->ctxb = malloc(ctx.n);
		if (!o->ctxb)
			goto nomem;
		memcpy(o->ctxb, ctx.p, ctx.n);
		o->ctxn = ctx.n;
	}
	int n = eff_n(c, q->n);
	o->nrep = view_primaries(c, key, n, o->reps);
	o->need = clamp_q(q->w, c->cfg.w, o->nrep);
	rep *self = NULL;
	for (int i = 0; i < o->nrep; i++) {
		o->reps[i].o = o;
		o->reps[i].state = REP_IDLE;
		if (o->reps[i].self)
			self = &o->reps[i];
	}
	if (!self && c->cfg.sloppy_quorum && c->hints && o->nrep > 0 &&
	    all_primaries_down(c, o)) {
		/* nobody to forward to (e.g. this side of a partition holds no
		 * primary of the key): coordinate here as the first fallback,
		 * with a hint for the first primary */
		rep *r = &o->reps[0];
		snprintf(r->hint_for, sizeof(r->hint_for), "%s", r->id);
		snprintf(r->id, sizeof(r->id), "%s", c->node_id);
		snprintf(r->addr, sizeof(r->addr), "%s", c->bound);
		r->self = 1;
		self = r;
		Q_DEBUG("coord", "every primary is down: this node writes as a fallback of %s",
			r->hint_for);
	}
	if (!self) {
		fwd_order(c, o);
		fwd_try(o);
		return;
	}
	if (c->cfg.sloppy_quorum)
		sloppy_substitute(c, o, key, n);
	job *j = job_new(JOB_UPDATE);
	if (!j)
		goto nomem;
	j->r = self;
	self->state = REP_PENDING;
	o->refs++; /* before: an inline job completes at once */
	rc = job_submit(c, j);
	if (rc < 0) {
		o->refs--;
		job_free(j);
		goto fail;
	}
	return;
nomem:
	rc = -ENOMEM;
fail: /* answered with the cause (a failed hand-off is not -ENOMEM) */
	op_reply(o, rc, NULL);
	op_end_timer(o);
}

/* ------------------------------------------------------------------ */
/* Multi-key get: one request per replica for many keys               */

/*
 * A mop asks each member for all the keys it replicates among those asked
 * (REPL_MGET; its own replica through one disk job), then decides each key
 * as a get would (read_verdict, notfound_ok): when enough answers came for
 * that key (merge), or when R can no longer be reached (EQUORUM), or at the
 * timer (ETIMEOUT). The whole answer
 * goes out when every key is decided; read repair per key follows once
 * every member answered or the timer fired.
 */
typedef struct mkey {
	int nrep;
	int rp[COORD_MAX_N];       /* member (mpeer) index of each replica */
	int st[COORD_MAX_N];       /* REP_* */
	int has[COORD_MAX_N];      /* replica answered with a set */
	uint64_t dig[COORD_MAX_N]; /* its digest */
	int ok, failed, need, decided, rc;
	int found;                 /* answers that held a sibling set */
	int owner[COORD_MAX_N];    /* replica read from a fallback: 1 + mpeer
				    * index of the down owner it stands in
				    * for; 0 for a primary */
	obj_set *merged;
	obj_set *result;           /* handed to the callback */
} mkey;

typedef struct mpeer {
	struct mop *m;
	char id[MEMBER_ID_MAX + 1];
	char addr[MEMBER_ADDR_MAX + 1];
	int self;
	size_t nk;
	size_t *kidx;              /* keys asked of this member */
	int *slot;                 /* replica slot of this member in each key */
} mpeer;

typedef struct mop {
	coord *c;
	uv_timer_t timer;
	int refs, replied, finished, timer_closing;
	size_t n, undecided;
	q_slice *keys;             /* copies, in one block after the array */
	mkey *k;
	mpeer *p;
	size_t np;
	coord_mget_fn cb;
	void *arg;
	uint64_t deadline_ms;
} mop;

static void mop_free(mop *m)
{
	for (size_t i = 0; i < m->n; i++) {
		obj_set_free(m->k[i].merged);
		obj_set_free(m->k[i].result);
	}
	for (size_t i = 0; i < m->np; i++) {
		free(m->p[i].kidx);
		free(m->p[i].slot);
	}
	free(m->p);
	free(m->k);
	free(m->keys);
	free(m);
}

static void mop_unref(mop *m)
{
	if (--m->refs == 0)
		mop_free(m);
}

static void mop_timer_closed(uv_handle_t *h)
{
	mop_unref(h->data);
}

static void mop_end_timer(mop *m)
{
	if (m->timer_closing)
		return;
	m->timer_closing = 1;
	uv_timer_stop(&m->timer);
	uv_close((uv_handle_t *)&m->timer, mop_timer_closed);
}

static void mop_reply(mop *m)
{
	if (m->replied)
		return;
	m->replied = 1;
	obj_set **sets = calloc(m->n ? m->n : 1, sizeof(obj_set *));
	int *rcs = calloc(m->n ? m->n : 1, sizeof(int));
	if (!sets || !rcs) {
		free(sets);
		free(rcs);
		m->cb(m->arg, -ENOMEM, NULL, NULL, m->n);
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		mkey *k = &m->k[i];
		rcs[i] = k->decided ? k->rc : Q_ETIMEOUT;
		sets[i] = k->result;
		k->result = NULL;
		if (rcs[i] == Q_EQUORUM)
			STAT_INC(m->c, quorum_failures);
	}
	m->cb(m->arg, 0, sets, rcs, m->n);
	free(sets);
	free(rcs);
}

static void mkey_decide(mop *m, mkey *k, int rc)
{
	if (k->decided)
		return;
	k->decided = 1;
	k->rc = rc;
	if (rc == 0) {
		k->rc = Q_ENOTFOUND;
		if (k->merged && obj_set_count(k->merged) > 0) {
			k->result = obj_set_clone(k->merged);
			if (!k->result)
				k->rc = -ENOMEM;
			else
				k->rc = obj_set_live_count(k->result) > 0 ? 0 : Q_ENOTFOUND;
		}
	}
	if (--m->undecided == 0)
		mop_reply(m);
}

static void mkey_check(mop *m, mkey *k)
{
	if (k->decided)
		return;
	int v = read_verdict(m->c->cfg.notfound_ok, k->nrep, k->need, k->ok, k->found, k->failed);
	if (v == READ_ANSWER)
		mkey_decide(m, k, 0);
	else if (v == READ_NOQUORUM)
		mkey_decide(m, k, Q_EQUORUM);
}

/* Replica slot j of key k answered: takes ownership of set (may be NULL). */
static void mkey_answer(mop *m, mkey *k, int j, int rc, obj_set *set)
{
	if (k->st[j] != REP_PENDING) {
		obj_set_free(set);
		return;
	}
	if (rc == 0 || rc == Q_ENOTFOUND) {
		k->st[j] = REP_OK;
		k->ok++;
		if (set && obj_set_count(set) > 0)
			k->found++;
		if (set) {
			k->has[j] = 1;
			k->dig[j] = obj_set_digest(set);
			obj_set *mm = NULL;
			if (obj_set_sync(k->merged, set, &mm) == 0) {
				obj_set_free(k->merged);
				k->merged = mm;
			}
		}
	} else {
		/* a corrupt copy is no answer, but read repair replaces it */
		k->st[j] = rc == Q_ECORRUPT ? REP_OK : REP_FAIL;
		k->failed++;
	}
	obj_set_free(set);
	if (!m->finished)
		mkey_check(m, k);
}

static void mop_finish(mop *m)
{
	if (m->finished)
		return;
	m->finished = 1;
	coord *c = m->c;
	if (c->cfg.read_repair && !c->closing) {
		q_buf enc = Q_BUF_INIT;
		for (size_t i = 0; i < m->n; i++) {
			mkey *k = &m->k[i];
			if (!k->merged || obj_set_count(k->merged) == 0)
				continue;
			uint64_t d = obj_set_digest(k->merged);
			q_buf_reset(&enc);
			for (int j = 0; j < k->nrep; j++) {
				if (k->st[j] != REP_OK || (k->has[j] && k->dig[j] == d))
					continue;
				mpeer *p = &m->p[k->rp[j]];
				/* a fallback's repair is a hint for the owner */
				const char *owner = k->owner[j] ? m->p[k->owner[j] - 1].id : NULL;
				STAT_INC(c, read_repairs);
				if (p->self) {
					job *jb = job_new(JOB_MERGE);
					if (!jb)
						continue;
					jb->key = q_slice_dup(m->keys[i]);
					jb->klen = m->keys[i].n;
					jb->in = obj_set_clone(k->merged);
					if (owner)
						snprintf(jb->hint_for, sizeof(jb->hint_for), "%s", owner);
					if (!jb->key || !jb->in || job_submit(c, jb) < 0)
						job_free(jb);
					continue;
				}
				if (enc.len == 0 && obj_set_encode(k->merged, &enc) < 0)
					break;
				net_msg msg;
				if (owner) {
					net_msg_init(&msg, NET_MSG_HINT_PUT);
					msg.u.hint_put.owner = q_slice_str(owner);
					msg.u.hint_put.key = m->keys[i];
					msg.u.hint_put.object = q_buf_slice(&enc);
				} else {
					net_msg_init(&msg, NET_MSG_REPL_PUT);
					msg.u.repl_put.key = m->keys[i];
					msg.u.repl_put.object = q_buf_slice(&enc);
				}
				net_pool_request(c->pool, p->addr, &msg, c->cfg.timeout_ms, repair_peer_cb, c);
			}
		}
		q_buf_free(&enc);
	}
	mop_end_timer(m);
}

static void mop_peer_done(mop *m)
{
	/* refs = timer + outstanding member requests */
	if (m->refs == 2 && !m->finished)
		mop_finish(m);
	mop_unref(m);
}

static void mget_peer_cb(void *arg, int status, const net_msg *resp)
{
	mpeer *p = arg;
	mop *m = p->m;
	note_peer(m->c, p->id, status);
	int ok = status == 0 && resp->u.mget_resp.n == p->nk;
	for (size_t i = 0; i < p->nk; i++) {
		mkey *k = &m->k[p->kidx[i]];
		obj_set *set = NULL;
		int rc = ok ? resp->u.mget_resp.entries[i].status : (status ? status : Q_EPROTO);
		if (rc == 0) {
			q_slice ob = resp->u.mget_resp.entries[i].object;
			if (obj_set_decode(ob.p, ob.n, &set) < 0) {
				/* undecodable: not an answer, but repair it */
				set = NULL;
				if (k->st[p->slot[i]] == REP_PENDING) {
					k->st[p->slot[i]] = REP_OK;
					k->failed++;
					if (!m->finished)
						mkey_check(m, k);
				}
				continue;
			}
		}
		mkey_answer(m, k, p->slot[i], rc, set);
	}
	mop_peer_done(m);
}

static void mget_local_work(job *j)
{
	mpeer *p = j->mp;
	mop *m = p->m;
	for (size_t i = 0; i < p->nk; i++)
		if (!j->partial || j->rcs[i] == -EAGAIN)
			j->rcs[i] = replica_get(j->c->rep, m->keys[p->kidx[i]], &j->sets[i]);
}

/* mget_local_work on the loop: 1 if some key needs the worker. */
static int mget_local_try(job *j)
{
	mpeer *p = j->mp;
	int again = 0;
	for (size_t i = 0; i < p->nk; i++)
		again |= (j->rcs[i] = replica_get_nowait(j->c->rep, p->m->keys[p->kidx[i]],
							 &j->sets[i])) == -EAGAIN;
	return again;
}

static void mget_local_done(job *j)
{
	mpeer *p = j->mp;
	mop *m = p->m;
	for (size_t i = 0; i < p->nk; i++) {
		mkey_answer(m, &m->k[p->kidx[i]], p->slot[i], j->rcs[i], j->sets[i]);
		j->sets[i] = NULL;
	}
	mop_peer_done(m);
}

static void mop_timeout(uv_timer_t *t)
{
	mop *m = t->data;
	for (size_t i = 0; i < m->n && !m->replied; i++) {
		mkey *k = &m->k[i];
		if (!k->decided)
			mkey_decide(m, k,
				    !m->c->cfg.notfound_ok && k->ok >= k->need ? 0 : Q_ETIMEOUT);
	}
	mop_finish(m);
}

void coord_mget(coord *c, const q_slice *keys, size_t n, const coord_req *q,
		coord_mget_fn cb, void *arg)
{
	static const coord_req none;
	if (!q)
		q = &none;
	if (c->closing) {
		cb(arg, Q_ECLOSED, NULL, NULL, n);
		return;
	}
	int rc = view_refresh(c);
	if (rc < 0) {
		cb(arg, rc, NULL, NULL, n);
		return;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += keys[i].n;
	mop *m = calloc(1, sizeof(*m));
	if (!m) {
		cb(arg, -ENOMEM, NULL, NULL, n);
		return;
	}
	m->c = c;
	m->cb = cb;
	m->arg = arg;
	m->n = n;
	m->keys = malloc(n * sizeof(q_slice) + bytes + 1);
	m->k = calloc(n ? n : 1, sizeof(mkey));
	m->p = calloc(c->mn ? c->mn : 1, sizeof(mpeer));
	if (!m->keys || !m->k || !m->p) {
		mop_free(m);
		cb(arg, -ENOMEM, NULL, NULL, n);
		return;
	}
	uint8_t *kb = (uint8_t *)(m->keys + n);
	for (size_t i = 0; i < n; i++) {
		if (keys[i].n)
			memcpy(kb, keys[i].p, keys[i].n);
		m->keys[i] = q_slice_make(kb, keys[i].n);
		kb += keys[i].n;
	}
	/* members as potential peers, in view order */
	m->np = c->mn;
	for (size_t i = 0; i < c->mn; i++) {
		m->p[i].m = m;
		snprintf(m->p[i].id, sizeof(m->p[i].id), "%s", c->mv[i].id);
		snprintf(m->p[i].addr, sizeof(m->p[i].addr), "%s", c->mv[i].addr);
		m->p[i].self = c->mv[i].self;
	}
	int neff = eff_n(c, q->n);
	m->undecided = n;
	uv_timer_init(net_loop_uv(c->loop), &m->timer);
	m->timer.data = m;
	m->refs = 1;
	uint64_t t = q->timeout_ms ? q->timeout_ms : c->cfg.timeout_ms;
	m->deadline_ms = q_mono_ms() + t;
	uv_timer_start(&m->timer, mop_timeout, t, 0);
	STAT_INC(c, gets);
	/* key -> replicas; count keys per member */
	size_t *count = calloc(c->mn ? c->mn : 1, sizeof(size_t));
	if (!count)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		mkey *k = &m->k[i];
		if (keys[i].n == 0 || keys[i].n > c->cfg.max_key) {
			k->decided = 1;
			k->rc = keys[i].n ? Q_ETOOBIG : -EINVAL;
			m->undecided--;
			continue;
		}
		rep reps[COORD_MAX_N];
		k->nrep = view_primaries(c, keys[i], neff, reps);
		k->need = clamp_q(q->r, c->cfg.r, k->nrep);
		int cursor = 0;
		for (int j = 0; j < k->nrep; j++) {
			/* sloppy read quorum: a primary known to be down is
			 * replaced by the next healthy fallback */
			if (c->cfg.sloppy_quorum && !reps[j].self &&
			    members_state_of(c->mem, reps[j].id) == MEMBER_DOWN &&
			    next_fallback(c, keys[i], neff, reps, k->nrep, &cursor, &reps[j])) {
				for (size_t x = 0; x < c->mn; x++)
					if (!strcmp(c->mv[x].id, reps[j].hint_for))
						k->owner[j] = (int)x + 1;
			}
			int pi = -1;
			for (size_t x = 0; x < c->mn; x++)
				if (!strcmp(c->mv[x].id, reps[j].id))
					pi = (int)x;
			k->rp[j] = pi;
			k->st[j] = pi < 0 ? REP_FAIL : REP_PENDING;
			if (pi < 0)
				k->failed++;
			else
				count[pi]++;
		}
	}
	for (size_t x = 0; x < c->mn; x++) {
		if (!count[x])
			continue;
		m->p[x].kidx = malloc(count[x] * sizeof(size_t));
		m->p[x].slot = malloc(count[x] * sizeof(int));
		if (!m->p[x].kidx || !m->p[x].slot) {
			free(count);
			goto nomem;
		}
	}
	free(count);
	for (size_t i = 0; i < n; i++) {
		mkey *k = &m->k[i];
		for (int j = 0; j < k->nrep; j++) {
			if (k->rp[j] < 0)
				continue;
			mpeer *p = &m->p[k->rp[j]];
			p->kidx[p->nk] = i;
			p->slot[p->nk] = j;
			p->nk++;
		}
	}
	/* one request per member (keys beyond the frame limit fail that
	 * replica). The local job may complete inside job_submit: a reference
	 * held over the loop keeps mop_peer_done from finishing the op before
	 * every member was asked */
	m->refs++;
	for (size_t x = 0; x < m->np; x++) {
		mpeer *p = &m->p[x];
		if (!p->nk)
			continue;
		int sent = 0;
		if (p->self) {
			job *j = job_new(JOB_MGET_LOCAL);
			if (j) {
				j->mp = p;
				j->rcs = calloc(p->nk, sizeof(int));
				j->sets = calloc(p->nk, sizeof(obj_set *));
				j->nrcs = j->rcs && j->sets ? p->nk : 0;
				m->refs++;
				if (j->rcs && j->sets && job_submit(c, j) == 0)
					sent = 1;
				else {
					m->refs--;
					job_free(j);
				}
			}
		} else if (p->nk <= NET_MAX_MGET_KEYS) {
			q_slice *ks = malloc(p->nk * sizeof(q_slice));
			if (ks) {
				for (size_t i = 0; i < p->nk; i++)
					ks[i] = m->keys[p->kidx[i]];
				net_msg msg;
				net_msg_init(&msg, NET_MSG_REPL_MGET);
				msg.u.mget.nkeys = p->nk;
				msg.u.mget.keys = ks;
				m->refs++;
				if (net_pool_request(c->pool, p->addr, &msg, t, mget_peer_cb, p) == 0)
					sent = 1;
				else
					m->refs--;
				free(ks);
			}
		}
		if (!sent)
			for (size_t i = 0; i < p->nk; i++)
				mkey_answer(m, &m->k[p->kidx[i]], p->slot[i], Q_EQUORUM, NULL);
	}
	m->refs--; /* the timer keeps m */
	if (m->undecided == 0)
		mop_reply(m);
	if (m->refs == 1)
		mop_finish(m);
	return;
nomem:
	for (size_t i = 0; i < n; i++)
		if (!m->k[i].decided)
			mkey_decide(m, &m->k[i], -ENOMEM);
	mop_finish(m);
}

/* ------------------------------------------------------------------ */
/* Timer and job completion                                            */

static void op_timeout(uv_timer_t *t)
{
	op *o = t->data;
	o->timed_out = 1;
	/* notfound_ok = 0 kept waiting for a found answer: if R replicas did
	 * answer, their answer stands (see "Read verdict") */
	if (o->kind == OP_GET && !o->replied && !o->c->cfg.notfound_ok && o->ok >= o->need)
		get_result(o);
	op_reply(o, Q_ETIMEOUT, NULL);
	if (o->kind == OP_GET)
		get_finish(o);
	else
		op_end_timer(o);
}

static void serve_reply_obj(net_request *req, uint8_t resp_type, int rc, q_slice obj);
static void hint_dlv_done(hint_dlv *d);

static void job_done(uv_work_t *w, int status)
{
	job *j = w->data;
	coord *c = j->c;
	if (j->pend)
		c->key_pend[j->slot]--;
	if (status < 0 && j->rc == 0)
		j->rc = Q_ECLOSED; /* cancelled */
	if (status < 0 && (j->kind == JOB_MGET_LOCAL || j->kind == JOB_SERVE_MGET)) {
		/* the keys the worker was to read get the error (those the
		 * loop answered keep their answers) */
		for (size_t i = 0; i < j->nrcs; i++)
			if (!j->partial || j->rcs[i] == -EAGAIN)
				j->rcs[i] = j->rc;
	}
	switch (j->kind) {
	case JOB_GET: {
		op *o = j->r->o;
		obj_set *s = j->out;
		j->out = NULL;
		get_rep_done(j->r, j->rc, s);
		op_unref(o);
		break;
	}
	case JOB_UPDATE: {
		op *o = j->r->o;
		obj_set *s = j->out;
		j->out = NULL;
		if (!o->replied)
			put_local_done(o, j->r, j->rc, s, &j->buf);
		else { /* timed out before the disk answered */
			obj_set_free(s);
			j->r->state = j->rc == 0 ? REP_OK : REP_FAIL;
			op_end_timer(o);
		}
		op_unref(o);
		break;
	}
	case JOB_MERGE:
		if (j->dlv) {
			if (j->rc < 0) {
				Q_WARN("coord", "merging a hint for departed %s here: %s",
				       j->dlv->owner, q_strerror(j->rc));
				j->dlv->failed = 1;
			}
			hint_dlv_done(j->dlv);
		} else if (j->rc < 0) {
			Q_WARN("coord", "local read repair failed: %s", q_strerror(j->rc));
		}
		break;
	case JOB_SERVE_GET:
		STAT_INC(c, repl_gets_served);
		serve_reply_obj(j->req, NET_MSG_REPL_GET_RESP, j->rc, q_buf_slice(&j->buf));
		break;
	case JOB_SERVE_PUT: {
		STAT_INC(c, repl_puts_served);
		if (j->rc < 0) {
			net_reply_error(j->req, j->rc, NULL);
			break;
		}
		net_msg m;
		net_msg_init(&m, NET_MSG_REPL_PUT_RESP);
		m.u.repl_put_resp.status = 0;
		m.u.repl_put_resp.digest = j->digest;
		net_reply_send(j->req, &m);
		break;
	}
	case JOB_SERVE_HINT: {
		if (j->rc < 0) {
			Q_WARN("coord", "cannot keep a hint: %s", q_strerror(j->rc));
			net_reply_error(j->req, j->rc, NULL);
			break;
		}
		__atomic_add_fetch(&c->hints_stored, 1, __ATOMIC_RELAXED);
		net_msg m;
		net_msg_init(&m, NET_MSG_HINT_PUT_RESP);
		m.u.repl_put_resp.status = 0;
		m.u.repl_put_resp.digest = j->digest;
		net_reply_send(j->req, &m);
		break;
	}
	case JOB_MGET_LOCAL:
		mget_local_done(j);
		break;
	case JOB_SERVE_MGET: {
		const net_mget *mg = &j->req->msg.u.mget;
		net_mget_entry *ents = calloc(mg->nkeys, sizeof(net_mget_entry));
		if (!ents) {
			net_reply_error(j->req, -ENOMEM, NULL);
			break;
		}
		for (size_t i = 0; i < mg->nkeys; i++) {
			ents[i].status = j->rcs[i];
			if (j->rcs[i] == 0)
				ents[i].object = q_buf_slice(&j->bufs[i]);
		}
		net_msg m;
		net_msg_init(&m, NET_MSG_REPL_MGET_RESP);
		m.u.mget_resp.n = mg->nkeys;
		m.u.mget_resp.entries = ents;
		net_reply_send(j->req, &m);
		free(ents);
		break;
	}
	}
	job_free(j);
}

/* ------------------------------------------------------------------ */
/* Serving requests                                                    */

static void serve_reply_obj(net_request *req, uint8_t resp_type, int rc, q_slice obj)
{
	if (rc != 0 && rc != Q_ENOTFOUND) {
		net_reply_error(req, rc, NULL);
		return;
	}
	net_msg m;
	net_msg_init(&m, resp_type);
	m.u.obj_resp.status = rc;
	m.u.obj_resp.object = obj;
	net_reply_send(req, &m);
}

static void serve_get_done(void *arg, int rc, obj_set *set)
{
	net_request *req = arg;
	q_buf enc = Q_BUF_INIT;
	if (set && obj_set_encode(set, &enc) < 0)
		rc = -ENOMEM;
	serve_reply_obj(req, NET_MSG_KV_GET_RESP, rc, q_buf_slice(&enc));
	q_buf_free(&enc);
	obj_set_free(set);
}

static void serve_put_done(void *arg, int rc, obj_set *set)
{
	net_request *req = arg;
	int want = req->msg.u.kv_put.flags & NET_PUT_RETURN_OBJ;
	q_buf enc = Q_BUF_INIT;
	if (rc == 0 && want && set && obj_set_encode(set, &enc) < 0)
		rc = -ENOMEM;
	if (rc < 0) {
		const char *text = NULL;
		if (rc == Q_EQUORUM)
			text = "not enough replicas acknowledged the write";
		net_reply_error(req, rc, text);
	} else {
		net_msg m;
		net_msg_init(&m, NET_MSG_KV_PUT_RESP);
		m.u.obj_resp.status = 0;
		m.u.obj_resp.object = q_buf_slice(&enc);
		net_reply_send(req, &m);
	}
	q_buf_free(&enc);
	obj_set_free(set);
}

/* KV_MGET: one multi-key op (one REPL_MGET per replica). */
static void serve_mget_done(void *arg, int rc, obj_set **sets, int *rcs, size_t n)
{
	net_request *req = arg;
	if (rc < 0) {
		for (size_t i = 0; sets && i < n; i++)
			obj_set_free(sets[i]);
		net_reply_error(req, rc, NULL);
		return;
	}
	net_mget_entry *ents = calloc(n ? n : 1, sizeof(net_mget_entry));
	q_buf *enc = calloc(n ? n : 1, sizeof(q_buf));
	if (!ents || !enc) {
		net_reply_error(req, -ENOMEM, NULL);
	} else {
		for (size_t i = 0; i < n; i++) {
			ents[i].status = rcs[i];
			if (sets[i] && obj_set_encode(sets[i], &enc[i]) < 0)
				ents[i].status = -ENOMEM;
			ents[i].object = q_buf_slice(&enc[i]);
		}
		net_msg m;
		net_msg_init(&m, NET_MSG_KV_MGET_RESP);
		m.u.mget_resp.n = n;
		m.u.mget_resp.entries = ents;
		net_reply_send(req, &m);
	}
	for (size_t i = 0; i < n; i++) {
		if (enc)
			q_buf_free(&enc[i]);
		obj_set_free(sets[i]);
	}
	free(enc);
	free(ents);
}

static void serve_mget(coord *c, net_request *req)
{
	const net_mget *m = &req->msg.u.mget;
	coord_req q = {.n = m->n, .r = m->r, .timeout_ms = m->timeout_ms};
	coord_mget(c, m->keys, m->nkeys, &q, serve_mget_done, req);
}

static void serve_hello(coord *c, net_request *req)
{
	const net_hello *h = &req->msg.u.hello;
	if (h->node_id.n && h->listen_addr.n && h->node_id.n <= MEMBER_ID_MAX &&
	    h->listen_addr.n <= MEMBER_ADDR_MAX) {
		char id[MEMBER_ID_MAX + 1], addr[MEMBER_ADDR_MAX + 1];
		memcpy(id, h->node_id.p, h->node_id.n);
		id[h->node_id.n] = 0;
		memcpy(addr, h->listen_addr.p, h->listen_addr.n);
		addr[h->listen_addr.n] = 0;
		if (strcmp(id, c->node_id)) {
			int ch = members_upsert(c->mem, id, addr, NULL);
			if (ch > 0)
				Q_INFO("coord", "member %s at %s (from its HELLO)", id, addr);
			members_set_state(c->mem, id, MEMBER_UP);
		}
	}
	net_msg m;
	net_msg_init(&m, NET_MSG_HELLO_OK);
	m.u.hello_ok.node_id = q_slice_str(c->node_id);
	m.u.hello_ok.proto_version = NET_PROTO_VERSION;
	net_reply_send(req, &m);
}

static void coord_handle(void *ctx, net_request *req)
{
	coord *c = ctx;
	if (c->closing) {
		net_reply_error(req, Q_ECLOSED, "node is shutting down");
		return;
	}
	for (size_t i = 0; i < c->nmsg_hooks; i++) {
		if (req->type >= c->msg_hooks[i].first && req->type <= c->msg_hooks[i].last) {
			c->msg_hooks[i].fn(c->msg_hooks[i].arg, req);
			return;
		}
	}
	switch (req->type) {
	case NET_MSG_HELLO:
		serve_hello(c, req);
		return;
	case NET_MSG_PING: {
		net_msg m;
		net_msg_init(&m, NET_MSG_PONG);
		m.u.ping.nonce = req->msg.u.ping.nonce;
		net_reply_send(req, &m);
		return;
	}
	case NET_MSG_KV_GET: {
		const net_kv_get *g = &req->msg.u.kv_get;
		coord_req q = {.n = g->n, .r = g->r, .timeout_ms = g->timeout_ms};
		coord_get(c, g->key, &q, serve_get_done, req);
		return;
	}
	case NET_MSG_KV_PUT: {
		const net_kv_put *p = &req->msg.u.kv_put;
		obj_write w = {
			.tombstone = (p->flags & NET_PUT_DELETE) ? 1 : 0,
			.value = p->value,
			.content_type = NULL,
			.wall_ns = (int64_t)q_wall_ns(),
		};
		coord_req q = {.n = p->n, .w = p->w, .timeout_ms = p->timeout_ms,
			       .want_object = (p->flags & NET_PUT_RETURN_OBJ) ? 1 : 0};
		coord_put(c, p->key, p->ctx, &w, &q, serve_put_done, req);
		return;
	}
	case NET_MSG_KV_MGET:
		serve_mget(c, req);
		return;
	case NET_MSG_HINT_PUT:
		if (!c->hints) {
			net_reply_error(req, Q_EPROTO, "this node keeps no hints");
			return;
		}
		/* fall through */
	case NET_MSG_REPL_GET:
	case NET_MSG_REPL_PUT:
	case NET_MSG_REPL_MGET: {
		int kind = req->type == NET_MSG_REPL_GET   ? JOB_SERVE_GET
			   : req->type == NET_MSG_REPL_PUT ? JOB_SERVE_PUT
			   : req->type == NET_MSG_HINT_PUT ? JOB_SERVE_HINT
							   : JOB_SERVE_MGET;
		job *j = job_new(kind);
		if (!j) {
			net_reply_error(req, -ENOMEM, NULL);
			return;
		}
		j->req = req;
		if (kind == JOB_SERVE_MGET) {
			size_t n = req->msg.u.mget.nkeys;
			j->bufs = calloc(n, sizeof(q_buf));
			j->nbufs = j->bufs ? n : 0;
			j->rcs = calloc(n, sizeof(int));
			j->nrcs = j->rcs ? n : 0;
			if (!j->bufs || !j->rcs) {
				j->req = NULL;
				job_free(j);
				net_reply_error(req, -ENOMEM, NULL);
				return;
			}
		}
		int rc = job_submit(c, j);
		if (rc < 0) {
			j->req = NULL;
			job_free(j);
			net_reply_error(req, rc, NULL);
		}
		return;
	}
	case NET_MSG_STATUS: {
		q_buf out = Q_BUF_INIT;
		int rc = coord_status_json(c, &out);
		if (rc < 0) {
			net_reply_error(req, rc, NULL);
		} else {
			net_msg m;
			net_msg_init(&m, NET_MSG_STATUS_RESP);
			m.u.status_resp.text = q_buf_slice(&out);
			net_reply_send(req, &m);
		}
		q_buf_free(&out);
		return;
	}
	default:
		net_reply_error(req, Q_EPROTO, "request type not served by this node");
		return;
	}
}

/* ------------------------------------------------------------------ */
/* Membership handshakes with peers known only by address              */

static void hello_cb(void *arg, int status, const net_msg *resp)
{
	peer_pending *p = arg;
	p->inflight = 0;
	if (status != 0 || resp->type != NET_MSG_HELLO_OK)
		return;
	const net_hello_ok *h = &resp->u.hello_ok;
	if (!h->node_id.n || h->node_id.n > MEMBER_ID_MAX)
		return;
	char id[MEMBER_ID_MAX + 1];
	memcpy(id, h->node_id.p, h->node_id.n);
	id[h->node_id.n] = 0;
	if (!strcmp(id, p->c->node_id)) {
		Q_WARN("coord", "peer %s is this node itself; ignored", p->addr);
		p->resolved = 1;
		return;
	}
	if (members_upsert(p->c->mem, id, p->addr, p->zone[0] ? p->zone : NULL) >= 0) {
		members_set_state(p->c->mem, id, MEMBER_UP);
		p->resolved = 1;
		Q_INFO("coord", "peer %s is node %s", p->addr, id);
	}
}

static void hello_tick(uv_timer_t *t)
{
	coord *c = t->data;
	int left = 0;
	for (size_t i = 0; i < c->nunres; i++) {
		peer_pending *p = &c->unres[i];
		if (p->resolved)
			continue;
		left++;
		if (p->inflight || c->closing)
			continue;
		net_msg m;
		net_msg_init(&m, NET_MSG_HELLO);
		m.u.hello.node_id = q_slice_str(c->node_id);
		m.u.hello.listen_addr = q_slice_str(c->bound);
		m.u.hello.proto_version = NET_PROTO_VERSION;
		if (net_pool_request(c->pool, p->addr, &m, HELLO_RETRY_MS, hello_cb, p) == 0)
			p->inflight = 1;
	}
	if (!left && c->hello_timer_on)
		uv_timer_stop(&c->hello_timer);
}

int coord_add_peer(coord *c, const char *id, const char *addr, const char *zone)
{
	if (id && id[0])
		return members_upsert(c->mem, id, addr, zone) < 0 ? -EINVAL : 0;
	if (!addr || !addr[0] || strlen(addr) > MEMBER_ADDR_MAX ||
	    (zone && strlen(zone) > MEMBER_ID_MAX))
		return -EINVAL;
	peer_pending *np = realloc(c->unres, (c->nunres + 1) * sizeof(peer_pending));
	if (!np)
		return -ENOMEM;
	c->unres = np;
	peer_pending *p = &c->unres[c->nunres++];
	memset(p, 0, sizeof(*p));
	p->c = c;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(p->zone, sizeof(p->zone), "%s", zone ? zone : "");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

int coord_new(const coord_config *cfg, replica *store, members *mem, net_loop *loop,
	      coord **out)
{
	if (!cfg->node_id || !cfg->node_id[0] || strlen(cfg->node_id) > MEMBER_ID_MAX ||
	    !cfg->listen || strlen(cfg->listen) > MEMBER_ADDR_MAX)
		return -EINVAL;
	coord *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	snprintf(c->node_id, sizeof(c->node_id), "%s", cfg->node_id);
	snprintf(c->listen, sizeof(c->listen), "%s", cfg->listen);
	snprintf(c->bound, sizeof(c->bound), "%s", cfg->listen);
	c->cfg.node_id = c->node_id;
	c->cfg.listen = c->listen;
	if (c->cfg.n < 1)
		c->cfg.n = 1;
	if (c->cfg.r < 1)
		c->cfg.r = 1;
	if (c->cfg.w < 1)
		c->cfg.w = 1;
	if (!c->cfg.timeout_ms)
		c->cfg.timeout_ms = 2000;
	if (!c->cfg.max_key)
		c->cfg.max_key = 4096;
	if (!c->cfg.max_value || c->cfg.max_value > NET_MAX_VALUE)
		c->cfg.max_value = NET_MAX_VALUE;
	if (c->cfg.ring_tokens < 1)
		c->cfg.ring_tokens = 64;
	c->rep = store;
	c->mem = mem;
	c->loop = loop;
	*out = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Hint delivery
 *
 * The loop thread never touches the hint store: its reads and deletes
 * (and its statistics, which may rescan) wait for the disk, and for a
 * worker's hint_put holding the store's mutex through an fsync. A round,
 * one at a time (c->hint_round), started by hint_tick every
 * COORD_HINT_INTERVAL_MS:
 *   1. LOAD, a worker (hint_load_work): nothing if the store is empty;
 *      else lists the owners (hint_owners) and loads a batch
 *      (hint_batch_load, HINT_BATCH_ITEMS / HINT_BATCH_BYTES) for each
 *      owner the loop's snapshot of the view calls deliverable: a member
 *      up and not this node, or (not a member) one that left for good.
 *      Corrupt hints are deleted there.
 *   2. SEND, the loop (hint_load_done): each owner is checked again
 *      against the current view; each hint is sent (hint_deliver_owner,
 *      hint_redirect). A hint_dlv completes once all its sends did.
 *   3. DELETE, a worker (hint_delete_work), once every delivery of the
 *      round completed: hint_delete_if_many, the hint_delete_if(seq) of
 *      each hint whose every send succeeded in one store batch, so a hint
 *      into which a write was merged meanwhile stays for the next round.
 * The round is freed on the loop after its last step. Once the
 * coordinator closes no round starts, a loaded round sends nothing and a
 * round whose sends complete queues no delete job (a delete job already
 * queued deletes what was delivered). libuv runs the completion of every
 * queued job before the loop ends, and the loop ends before coord_free,
 * so no job outlives the coordinator.
 */

#define HINT_BATCH_ITEMS 64
#define HINT_BATCH_BYTES (4u << 20)

typedef struct hint_owner_batch {
	char owner[MEMBER_ID_MAX + 1];
	int departed;            /* not a member: left for good */
	hint_batch b;
} hint_owner_batch;

typedef struct hint_view_entry {
	char id[MEMBER_ID_MAX + 1];
	int up;                  /* up and not this node */
} hint_view_entry;

struct hint_round {
	uv_work_t lw, dw;        /* the load and the delete job */
	coord *c;
	hint_view_entry *view;   /* the view when the round started */
	size_t nview;
	hint_owner_batch *ob;    /* loaded by the worker */
	size_t nob;
	hint_dlv *dlvs;          /* this round's deliveries */
	int outstanding;         /* deliveries not done, +1 while sending */
	int any_ok;              /* some delivery succeeded: delete job */
};

static void hint_round_free(hint_round *h)
{
	h->c->hint_round = NULL;
	while (h->dlvs) {
		hint_dlv *d = h->dlvs;
		h->dlvs = d->next;
		free(d);
	}
	for (size_t i = 0; i < h->nob; i++)
		hint_batch_free(&h->ob[i].b);
	free(h->ob);
	free(h->view);
	free(h);
}

/* The test hook (coord.h) on the worker, before a round's store work. */
static void hint_job_hook(coord *c)
{
	if (c->th.work)
		c->th.work(c->th.arg, q_slice_make(NULL, 0));
}

/* Worker: step 3 of a round, every delivered hint in one store batch
 * (one sync under sync = always). */
static void hint_delete_work(uv_work_t *w)
{
	hint_round *h = w->data;
	coord *c = h->c;
	hint_job_hook(c);
	size_t n = 0;
	for (hint_dlv *d = h->dlvs; d; d = d->next)
		n += !d->failed;
	hint_del *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		Q_WARN("coord", "deleting delivered hints: %s", q_strerror(-ENOMEM));
		return; /* kept: delivered again by a later round */
	}
	size_t i = 0;
	for (hint_dlv *d = h->dlvs; d; d = d->next)
		if (!d->failed)
			v[i++] = (hint_del){d->owner, q_slice_make(d->key, d->klen), d->seq, 0};
	hint_delete_if_many(c->hints, v, n);
	for (i = 0; i < n; i++) {
		if (v[i].rc == 0)
			__atomic_add_fetch(&c->hints_delivered, 1, __ATOMIC_RELAXED);
		else if (v[i].rc != -EAGAIN && v[i].rc != Q_ENOTFOUND)
			Q_WARN("coord", "deleting a delivered hint for %s: %s", v[i].owner,
			       q_strerror(v[i].rc));
	}
	free(v);
}

static void hint_delete_done(uv_work_t *w, int status)
{
	(void)status;
	hint_round_free(w->data);
}

/* One delivery of the round completed, or the sending is over: the last
 * one hands the deletes to a worker (or ends the round). */
static void hint_round_release(hint_round *h)
{
	if (--h->outstanding > 0)
		return;
	coord *c = h->c;
	if (!h->any_ok || c->closing ||
	    job_queue(c, &h->dw, hint_delete_work, hint_delete_done) < 0)
		hint_round_free(h);
}

static void hint_dlv_done(hint_dlv *d)
{
	if (--d->pending > 0)
		return;
	if (!d->failed)
		d->round->any_ok = 1;
	hint_round_release(d->round);
}

static void hint_dlv_cb(void *arg, int status, const net_msg *resp)
{
	hint_dlv *d = arg;
	if (status != 0 || resp->u.repl_put_resp.status != 0) {
		Q_DEBUG("coord", "hint for %s not delivered: %s", d->owner,
			q_strerror(status ? status : resp->u.repl_put_resp.status));
		d->failed = 1;
	}
	hint_dlv_done(d);
}

/* A delivery of it (key borrowed from the round's batch), counted in the
 * round; one pending share, released by hint_dlv_done after the sends. */
static hint_dlv *hint_dlv_new(hint_round *h, const char *owner, const hint_item *it)
{
	hint_dlv *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->c = h->c;
	d->round = h;
	snprintf(d->owner, sizeof(d->owner), "%s", owner);
	d->key = it->key;
	d->klen = it->klen;
	d->seq = it->seq;
	d->pending = 1;
	d->next = h->dlvs;
	h->dlvs = d;
	h->outstanding++;
	return d;
}

static void hint_redirect(hint_round *h, const char *owner, const hint_item *it)
{
	coord *c = h->c;
	q_slice k = q_slice_make(it->key, it->klen);
	rep reps[COORD_MAX_N];
	int nr = view_primaries(c, k, eff_n(c, 0), reps);
	if (nr <= 0)
		return;
	hint_dlv *f = hint_dlv_new(h, owner, it);
	if (!f)
		return;
	for (int i = 0; i < nr; i++) {
		if (reps[i].self) {
			/* a disk job like any replica write (not a blocking
			 * merge on the loop thread); it releases its share of
			 * f when done */
			job *j = job_new(JOB_MERGE);
			int rc = j ? obj_set_decode(it->object, it->olen, &j->in) : -ENOMEM;
			if (rc == 0) {
				j->key = q_slice_dup(k);
				j->klen = k.n;
				j->dlv = f;
				rc = -ENOMEM;
				if (j->key) {
					f->pending++;
					rc = job_submit(c, j);
					if (rc < 0)
						f->pending--;
				}
			}
			if (rc < 0) {
				Q_WARN("coord", "merging a hint for departed %s here: %s", owner,
				       q_strerror(rc));
				f->failed = 1;
				if (j)
					job_free(j);
			}
			continue;
		}
		if (members_state_of(c->mem, reps[i].id) != MEMBER_UP) {
			f->failed = 1; /* kept for a later round */
			continue;
		}
		net_msg msg;
		net_msg_init(&msg, NET_MSG_REPL_PUT);
		msg.u.repl_put.key = k;
		msg.u.repl_put.object = q_slice_make(it->object, it->olen);
		f->pending++;
		if (net_pool_request(c->pool, reps[i].addr, &msg, c->cfg.timeout_ms, hint_dlv_cb,
				     f) != 0) {
			f->pending--;
			f->failed = 1;
		}
	}
	hint_dlv_done(f);
}

static void hint_deliver_owner(hint_round *h, const hint_owner_batch *ob)
{
	coord *c = h->c;
	const member *m = view_member(c, ob->owner);
	if (ob->departed ? m != NULL
			 : !m || m->self || members_state_of(c->mem, ob->owner) != MEMBER_UP)
		return; /* changed since the round started: a later round */
	for (size_t i = 0; i < ob->b.n; i++) {
		const hint_item *it = &ob->b.v[i];
		if (it->status == Q_ECORRUPT)
			continue; /* deleted by the load */
		if (ob->departed) {
			hint_redirect(h, ob->owner, it);
			continue;
		}
		hint_dlv *d = hint_dlv_new(h, ob->owner, it);
		if (!d)
			break;
		net_msg msg;
		net_msg_init(&msg, NET_MSG_REPL_PUT);
		msg.u.repl_put.key = q_slice_make(it->key, it->klen);
		msg.u.repl_put.object = q_slice_make(it->object, it->olen);
		if (net_pool_request(c->pool, m->addr, &msg, c->cfg.timeout_ms, hint_dlv_cb, d) !=
		    0) {
			d->failed = 1;
			hint_dlv_done(d);
			break;
		}
	}
}

typedef struct owner_list {
	char (*v)[MEMBER_ID_MAX + 1];
	size_t n, cap;
} owner_list;

static int collect_owner(void *ud, const char *owner, const hint_stats *st)
{
	(void)st;
	owner_list *l = ud;
	if (strlen(owner) > MEMBER_ID_MAX)
		return 0; /* not a member id: cannot be delivered */
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		void *nv = realloc(l->v, nc * sizeof(*l->v));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	snprintf(l->v[l->n++], MEMBER_ID_MAX + 1, "%s", owner);
	return 0;
}

/* Worker: step 1 of a round (see above). */
static void hint_load_work(uv_work_t *w)
{
	hint_round *h = w->data;
	coord *c = h->c;
	hint_job_hook(c);
	hint_stats st;
	hint_get_stats(c->hints, &st);
	if (st.count == 0)
		return;
	owner_list l = {NULL, 0, 0};
	int rc = hint_owners(c->hints, collect_owner, &l);
	if (rc < 0)
		Q_WARN("coord", "listing hint owners: %s", q_strerror(rc));
	h->ob = l.n ? calloc(l.n, sizeof(*h->ob)) : NULL;
	for (size_t i = 0; h->ob && i < l.n; i++) {
		const char *owner = l.v[i];
		int known = 0, up = 0;
		for (size_t k = 0; k < h->nview && !known; k++)
			if (!strcmp(h->view[k].id, owner)) {
				known = 1;
				up = h->view[k].up;
			}
		int departed = !known && c->departed && c->departed(c->departed_arg, owner);
		if (!up && !departed)
			continue;
		hint_owner_batch *ob = &h->ob[h->nob];
		rc = hint_batch_load(c->hints, owner, q_slice_make(NULL, 0), HINT_BATCH_ITEMS,
				     HINT_BATCH_BYTES, &ob->b);
		if (rc < 0) {
			Q_WARN("coord", "loading hints for %s: %s", owner, q_strerror(rc));
			hint_batch_free(&ob->b);
			continue;
		}
		snprintf(ob->owner, sizeof(ob->owner), "%s", owner);
		ob->departed = departed;
		h->nob++;
		for (size_t k = 0; k < ob->b.n; k++) {
			const hint_item *it = &ob->b.v[k];
			if (it->status == Q_ECORRUPT) {
				Q_ERROR("coord", "dropping a corrupt hint for %s", owner);
				hint_delete(c->hints, owner, q_slice_make(it->key, it->klen));
			}
		}
	}
	free(l.v);
}

/* Loop: step 2 of a round. */
static void hint_load_done(uv_work_t *w, int status)
{
	hint_round *h = w->data;
	coord *c = h->c;
	h->outstanding = 1; /* released once every send is issued */
	if (status == 0 && !c->closing && view_refresh(c) == 0)
		for (size_t i = 0; i < h->nob; i++)
			hint_deliver_owner(h, &h->ob[i]);
	hint_round_release(h);
}

static void hint_tick(uv_timer_t *t)
{
	coord *c = t->data;
	if (c->closing || !c->hints || c->hint_round || view_refresh(c) < 0)
		return;
	hint_round *h = calloc(1, sizeof(*h));
	if (!h)
		return;
	h->view = calloc(c->mn ? c->mn : 1, sizeof(*h->view));
	if (!h->view) {
		free(h);
		return;
	}
	h->c = c;
	h->lw.data = h;
	h->dw.data = h;
	for (size_t i = 0; i < c->mn; i++) {
		const member *m = &c->mv[i];
		snprintf(h->view[i].id, sizeof(h->view[i].id), "%s", m->id);
		h->view[i].up = !m->self && members_state_of(c->mem, m->id) == MEMBER_UP;
	}
	h->nview = c->mn;
	c->hint_round = h;
	if (job_queue(c, &h->lw, hint_load_work, hint_load_done) < 0)
		hint_round_free(h);
}

void coord_set_hints(coord *c, hint_store *hs)
{
	c->hints = hs;
}

void coord_set_departed_fn(coord *c, coord_departed_fn fn, void *arg)
{
	c->departed = fn;
	c->departed_arg = arg;
}

/*
 * Down-member probes. Gets and puts go to fallbacks in place of members
 * marked down, so they no longer contact those members; a member that was
 * marked down by a failed request (note_peer) while gossip kept calling it
 * alive would then stay down, since gossip reports only changes. Every
 * COORD_PROBE_INTERVAL_MS each member marked down gets a PING; an answer
 * marks it up again (as any successful request would). One round at a time.
 */
#define COORD_PROBE_INTERVAL_MS 1000

typedef struct probe {
	coord *c;
	char id[MEMBER_ID_MAX + 1];
} probe;

static void probe_cb(void *arg, int status, const net_msg *resp)
{
	probe *p = arg;
	coord *c = p->c;
	(void)resp;
	c->probe_inflight--;
	if (status == 0 && !c->closing)
		members_set_state(c->mem, p->id, MEMBER_UP);
	free(p);
}

static void probe_tick(uv_timer_t *t)
{
	coord *c = t->data;
	if (c->closing || c->probe_inflight > 0 || view_refresh(c) < 0)
		return;
	for (size_t i = 0; i < c->mn; i++) {
		const member *m = &c->mv[i];
		if (m->self || members_state_of(c->mem, m->id) != MEMBER_DOWN)
			continue;
		probe *p = calloc(1, sizeof(*p));
		if (!p)
			return;
		p->c = c;
		snprintf(p->id, sizeof(p->id), "%s", m->id);
		net_msg msg;
		net_msg_init(&msg, NET_MSG_PING);
		if (net_pool_request(c->pool, m->addr, &msg, COORD_PROBE_INTERVAL_MS, probe_cb, p) == 0)
			c->probe_inflight++;
		else
			free(p);
	}
}

int coord_start(coord *c)
{
	int rc = view_refresh(c);
	if (rc < 0)
		return rc;
	net_server_opts so = {
		.listen = c->listen,
		.handler = coord_handle,
		.ctx = c,
	};
	rc = net_server_start(c->loop, &so, &c->srv);
	if (rc < 0) {
		Q_ERROR("coord", "cannot listen on %s: %s", c->listen, q_strerror(rc));
		return rc;
	}
	snprintf(c->bound, sizeof(c->bound), "%s", net_server_addr(c->srv));
	net_pool_opts po = {
		.node_id = c->node_id,
		.listen_addr = c->bound,
		.connect_timeout_ms = c->cfg.timeout_ms,
	};
	rc = net_pool_new(c->loop, &po, &c->pool);
	if (rc < 0) {
		net_server_close(c->srv);
		c->srv = NULL;
		return rc;
	}
	if (c->hints) {
		uv_timer_init(net_loop_uv(c->loop), &c->hint_timer);
		c->hint_timer.data = c;
		c->hint_timer_on = 1;
		uv_timer_start(&c->hint_timer, hint_tick, COORD_HINT_INTERVAL_MS,
			       COORD_HINT_INTERVAL_MS);
	}
	uv_timer_init(net_loop_uv(c->loop), &c->probe_timer);
	c->probe_timer.data = c;
	c->probe_timer_on = 1;
	uv_timer_start(&c->probe_timer, probe_tick, COORD_PROBE_INTERVAL_MS, COORD_PROBE_INTERVAL_MS);
	if (c->nunres) {
		uv_timer_init(net_loop_uv(c->loop), &c->hello_timer);
		c->hello_timer.data = c;
		c->hello_timer_on = 1;
		uv_timer_start(&c->hello_timer, hello_tick, 0, HELLO_RETRY_MS);
	}
	Q_INFO("coord", "node %s serving on %s (n=%d r=%d w=%d)", c->node_id, c->bound, c->cfg.n,
	       c->cfg.r, c->cfg.w);
	return 0;
}

void coord_set_loop(coord *c, net_loop *loop)
{
	c->loop = loop;
}

const char *coord_listen_addr(const coord *c)
{
	return c->bound;
}

void coord_close(coord *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	__atomic_store_n(&c->stopping, 1, __ATOMIC_SEQ_CST);
	if (c->hello_timer_on) {
		uv_timer_stop(&c->hello_timer);
		uv_close((uv_handle_t *)&c->hello_timer, NULL);
		c->hello_timer_on = 0;
	}
	if (c->hint_timer_on) {
		uv_timer_stop(&c->hint_timer);
		uv_close((uv_handle_t *)&c->hint_timer, NULL);
		c->hint_timer_on = 0;
	}
	if (c->probe_timer_on) {
		uv_timer_stop(&c->probe_timer);
		uv_close((uv_handle_t *)&c->probe_timer, NULL);
		c->probe_timer_on = 0;
	}
	for (op *o = c->ops; o; o = o->next) {
		op_reply(o, Q_ECLOSED, NULL);
		o->finished = 1;
		op_end_timer(o);
	}
	if (c->jb_init) {
		jb_flush(c, 1); /* jobs already gathered still run and answer */
		uv_close((uv_handle_t *)&c->jb_prep, NULL);
		c->jb_init = 0;
	}
	if (c->srv)
		net_server_close(c->srv);
	c->srv = NULL;
	if (c->pool)
		net_pool_close(c->pool);
	c->pool = NULL;
}

void coord_free(coord *c)
{
	if (!c)
		return;
	ring_free(c->ring);
	free(c->mv);
	free(c->unres);
	free(c);
}

/* ------------------------------------------------------------------ */
/* Blocking entry points for other threads                            */

enum { SW_GET = 1, SW_PUT, SW_MGET };

typedef struct swait swait;

struct swait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int rc;
	obj_set *set;
	coord *c;
	int kind;
	q_slice key, ctx;
	const obj_write *w;
	coord_req q;
	const q_slice *keys;
	size_t nk;
	obj_set **outs;
	int *rcs;
};

static void sw_signal(swait *s)
{
	pthread_mutex_lock(&s->mu);
	s->done = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void sw_cb(void *arg, int rc, obj_set *set)
{
	swait *s = arg;
	s->rc = rc;
	s->set = set;
	sw_signal(s);
}

static void sw_mget_cb(void *arg, int rc, obj_set **sets, int *rcs, size_t n)
{
	swait *s = arg;
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			s->outs[i] = sets[i];
			s->rcs[i] = rcs[i];
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (sets)
				obj_set_free(sets[i]);
			s->rcs[i] = rc;
		}
	}
	s->rc = rc;
	sw_signal(s);
}

static void sw_start(void *arg)
{
	swait *s = arg;
	switch (s->kind) {
	case SW_GET:
		coord_get(s->c, s->key, &s->q, sw_cb, s);
		break;
	case SW_PUT:
		coord_put(s->c, s->key, s->ctx, s->w, &s->q, sw_cb, s);
		break;
	case SW_MGET:
		coord_mget(s->c, s->keys, s->nk, &s->q, sw_mget_cb, s);
		break;
	}
}

static int sw_run(coord *c, swait *s)
{
	if (net_loop_on_thread(c->loop))
		return -EDEADLK; /* waiting here would stop the loop it waits for */
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->c = c;
	uint64_t limit = q_mono_ms() + (s->q.timeout_ms ? s->q.timeout_ms : c->cfg.timeout_ms);
	int rc;
	for (;;) {
		rc = net_loop_post(c->loop, sw_start, s);
		if (rc != Q_EBUSY || q_mono_ms() >= limit)
			break;
		q_sleep_ms(1); /* the loop's queue is full: back off briefly */
	}
	if (rc == 0) {
		pthread_mutex_lock(&s->mu);
		while (!s->done)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		rc = s->rc;
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	return rc;
}

static int single_node(coord *c)
{
	return !__atomic_load_n(&c->stopping, __ATOMIC_SEQ_CST) && members_count(c->mem) == 1;
}

/* The one-replica read as the loop path would do it with N = 1. */
static int local_get(coord *c, q_slice key, obj_set **out)
{
	*out = NULL;
	if (key.n == 0)
		return -EINVAL;
	if (key.n > c->cfg.max_key)
		return Q_ETOOBIG;
	STAT_INC(c, gets);
	obj_set *s = NULL;
	int rc = replica_get(c->rep, key, &s);
	if (rc < 0)
		return rc;
	if (obj_set_count(s) == 0) {
		obj_set_free(s);
		return Q_ENOTFOUND;
	}
	*out = s;
	return obj_set_live_count(s) > 0 ? 0 : Q_ENOTFOUND;
}

int coord_get_sync(coord *c, q_slice key, const coord_req *o, obj_set **out)
{
	static const coord_req none;
	if (!o)
		o = &none;
	*out = NULL;
	if (single_node(c) || (o->local_only && net_loop_on_thread(c->loop)))
		return local_get(c, key, out);
	swait s;
	memset(&s, 0, sizeof(s));
	s.kind = SW_GET;
	s.key = key;
	s.q = *o;
	int rc = sw_run(c, &s);
	*out = s.set;
	return rc;
}

int coord_put_sync(coord *c, q_slice key, q_slice ctx, const obj_write *w, const coord_req *o,
		   obj_set **out)
{
	static const coord_req none;
	if (!o)
		o = &none;
	if (out)
		*out = NULL;
	if (single_node(c)) {
		if (key.n == 0)
			return -EINVAL;
		if (key.n > c->cfg.max_key || (!w->tombstone && w->value.n > c->cfg.max_value))
			return Q_ETOOBIG;
		obj_ctx *cctx = NULL;
		if (ctx.n && obj_ctx_decode(ctx.p, ctx.n, &cctx) < 0)
			return Q_EBADCTX;
		STAT_INC(c, puts);
		int rc = replica_update(c->rep, key, cctx, w, out);
		obj_ctx_free(cctx);
		return rc;
	}
	swait s;
	memset(&s, 0, sizeof(s));
	s.kind = SW_PUT;
	s.key = key;
	s.ctx = ctx;
	s.w = w;
	s.q = *o;
	s.q.want_object = out != NULL;
	int rc = sw_run(c, &s);
	if (out)
		*out = s.set;
	else
		obj_set_free(s.set);
	return rc;
}

int coord_mget_sync(coord *c, const q_slice *keys, size_t n, const coord_req *o,
		    obj_set **outs, int *rcs)
{
	static const coord_req none;
	if (!o)
		o = &none;
	for (size_t i = 0; i < n; i++) {
		outs[i] = NULL;
		rcs[i] = 0;
	}
	if (n == 0)
		return 0;
	if (single_node(c)) {
		for (size_t i = 0; i < n; i++)
			rcs[i] = local_get(c, keys[i], &outs[i]);
		return 0;
	}
	swait s;
	memset(&s, 0, sizeof(s));
	s.kind = SW_MGET;
	s.keys = keys;
	s.nk = n;
	s.outs = outs;
	s.rcs = rcs;
	s.q = *o;
	return sw_run(c, &s);
}

/* ------------------------------------------------------------------ */
/* Status                                                              */

static int json_str(q_buf *b, const char *s)
{
	Q_RET(q_buf_append_byte(b, '"'));
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			Q_RET(q_buf_printf(b, "\\%c", ch));
		else if (ch < 0x20)
			Q_RET(q_buf_printf(b, "\\u%04x", ch));
		else
			Q_RET(q_buf_append_byte(b, ch));
	}
	return q_buf_append_byte(b, '"');
}

static const char *state_name(member_state s)
{
	return s == MEMBER_UP ? "up" : s == MEMBER_DOWN ? "down" : "unknown";
}

int coord_status_json(coord *c, q_buf *b)
{
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	Q_RET(members_snapshot(c->mem, &mv, &mn, &ver));
	double *shares = calloc(mn ? mn : 1, sizeof(double));
	ring_member *rm = calloc(mn ? mn : 1, sizeof(ring_member));
	ring *r = NULL;
	int rc = -ENOMEM;
	if (!shares || !rm)
		goto out;
	for (size_t i = 0; i < mn; i++) {
		rm[i].node = mv[i].id;
		rm[i].zone = mv[i].zone;
		rm[i].tokens = (uint32_t)c->cfg.ring_tokens;
	}
	rc = ring_build(rm, mn, ver, &r);
	if (rc < 0)
		goto out;
	ring_ownership(r, shares);
	coord_stats st;
	coord_get_stats(c, &st);
	uint64_t now = q_mono_ms();
	rc = q_buf_printf(b, "{\"node_id\":");
	if (rc == 0)
		rc = json_str(b, c->node_id);
	if (rc == 0)
		rc = q_buf_printf(b, ",\"listen\":");
	if (rc == 0)
		rc = json_str(b, c->bound);
	if (rc == 0)
		rc = q_buf_printf(b,
				  ",\"n\":%d,\"r\":%d,\"w\":%d,\"request_timeout_ms\":%llu,"
				  "\"read_repair\":%s,\"ring_version\":%llu,\"members\":[",
				  c->cfg.n, c->cfg.r, c->cfg.w,
				  (unsigned long long)c->cfg.timeout_ms,
				  c->cfg.read_repair ? "true" : "false", (unsigned long long)ver);
	for (size_t i = 0; i < mn && rc == 0; i++) {
		int idx = ring_member_find(r, mv[i].id);
		double share = idx >= 0 ? shares[idx] : 0.0;
		rc = q_buf_printf(b, "%s{\"id\":", i ? "," : "");
		if (rc == 0)
			rc = json_str(b, mv[i].id);
		if (rc == 0)
			rc = q_buf_printf(b, ",\"addr\":");
		if (rc == 0)
			rc = json_str(b, mv[i].addr);
		if (rc == 0)
			rc = q_buf_printf(b, ",\"zone\":");
		if (rc == 0)
			rc = json_str(b, mv[i].zone);
		if (rc == 0)
			rc = q_buf_printf(b,
					  ",\"state\":\"%s\",\"self\":%s,\"since_ms\":%llu,"
					  "\"ownership\":%.4f}",
					  state_name(mv[i].state), mv[i].self ? "true" : "false",
					  (unsigned long long)(now - mv[i].state_since_ms), share);
	}
	if (rc == 0)
		rc = q_buf_printf(b,
				  "],\"ops\":{\"gets\":%llu,\"puts\":%llu,\"forwards\":%llu,"
				  "\"read_repairs\":%llu,\"quorum_failures\":%llu,"
				  "\"timeouts\":%llu,\"repl_gets_served\":%llu,"
				  "\"repl_puts_served\":%llu,\"jobs_loop\":%llu,"
				  "\"jobs_worker\":%llu}",
				  (unsigned long long)st.gets, (unsigned long long)st.puts,
				  (unsigned long long)st.forwards, (unsigned long long)st.read_repairs,
				  (unsigned long long)st.quorum_failures,
				  (unsigned long long)st.timeouts,
				  (unsigned long long)st.repl_gets_served,
				  (unsigned long long)st.repl_puts_served,
				  (unsigned long long)st.jobs_loop,
				  (unsigned long long)st.jobs_worker);
	if (rc == 0 && c->hook) {
		rc = q_buf_append_byte(b, ',');
		if (rc == 0)
			rc = c->hook(c->hook_arg, b);
	}
	if (rc == 0)
		rc = q_buf_append_byte(b, '}');
out:
	ring_free(r);
	free(rm);
	free(shares);
	free(mv);
	return rc;
}

void coord_get_stats(coord *c, coord_stats *out)
{
	out->gets = __atomic_load_n(&c->st.gets, __ATOMIC_RELAXED);
	out->puts = __atomic_load_n(&c->st.puts, __ATOMIC_RELAXED);
	out->forwards = __atomic_load_n(&c->st.forwards, __ATOMIC_RELAXED);
	out->read_repairs = __atomic_load_n(&c->st.read_repairs, __ATOMIC_RELAXED);
	out->quorum_failures = __atomic_load_n(&c->st.quorum_failures, __ATOMIC_RELAXED);
	out->timeouts = __atomic_load_n(&c->st.timeouts, __ATOMIC_RELAXED);
	out->repl_gets_served = __atomic_load_n(&c->st.repl_gets_served, __ATOMIC_RELAXED);
	out->repl_puts_served = __atomic_load_n(&c->st.repl_puts_served, __ATOMIC_RELAXED);
	out->jobs_loop = __atomic_load_n(&c->st.jobs_loop, __ATOMIC_RELAXED);
	out->jobs_worker = __atomic_load_n(&c->st.jobs_worker, __ATOMIC_RELAXED);
}

void coord_get_sibling_hist(coord *c, uint64_t out[COORD_SIB_BUCKETS])
{
	for (int i = 0; i < COORD_SIB_BUCKETS; i++)
		out[i] = __atomic_load_n(&c->sib_hist[i], __ATOMIC_RELAXED);
}

void coord_set_test_hooks(coord *c, const coord_test_hooks *h)
{
	if (h)
		c->th = *h;
	else
		memset(&c->th, 0, sizeof(c->th));
}

void coord_set_status_hook(coord *c, coord_status_fn fn, void *arg)
{
	c->hook = fn;
	c->hook_arg = arg;
}

int coord_set_msg_hook(coord *c, uint8_t first, uint8_t last, coord_msg_fn fn, void *arg)
{
	if (!fn || first > last || first < NET_MSG_GOSSIP_FIRST)
		return -EINVAL;
	for (size_t i = 0; i < c->nmsg_hooks; i++)
		if (first <= c->msg_hooks[i].last && last >= c->msg_hooks[i].first)
			return -EEXIST;
	if (c->nmsg_hooks == COORD_MSG_HOOKS_MAX)
		return -ENOSPC;
	c->msg_hooks[c->nmsg_hooks].fn = fn;
	c->msg_hooks[c->nmsg_hooks].arg = arg;
	c->msg_hooks[c->nmsg_hooks].first = first;
	c->msg_hooks[c->nmsg_hooks].last = last;
	c->nmsg_hooks++;
	return 0;
}

int coord_ring_snapshot(coord *c, ring **out)
{
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	*out = NULL;
	Q_RET(members_snapshot(c->mem, &mv, &mn, &ver));
	ring_member *rm = calloc(mn ? mn : 1, sizeof(ring_member));
	int rc = -ENOMEM;
	if (rm) {
		for (size_t i = 0; i < mn; i++) {
			rm[i].node = mv[i].id;
			rm[i].zone = mv[i].zone;
			rm[i].tokens = (uint32_t)c->cfg.ring_tokens;
		}
		rc = ring_build(rm, mn, ver, out);
	}
	free(rm);
	free(mv);
	return rc;
}

net_pool *coord_pool(coord *c)
{
	return c->closing ? NULL : c->pool;
}
