/*
 * node_handoff.c - range handoff and leave wired into the node (see
 * node_handoff.h for the behaviour).
 *
 * Threads: the sender thread (run) owns the base ring, the plan and the
 * scan; it talks to peers with net_pool_call, which posts to the loop and
 * waits. The request handlers (handle) and the merge completions run on the
 * loop thread; merges themselves run on libuv workers. `mu` guards the
 * status fields and the leave request, which every thread may touch.
 *
 * Invariants:
 *   - base only moves forward to a ring whose whole plan was acknowledged
 *     by every receiver, and it is persisted before the status says so;
 *   - during a leave the target ring never contains this node, so the plan
 *     hands every range this node replicates to someone else;
 *   - the sender thread is joined before the loop stops (node_handoff_stop),
 *     so no net_pool_call is outstanding when the pool closes.
 */
#include "node/node_handoff.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "handoff/handoff.h"
#include "handoff/handoff_msg.h"
#include "net/net_msg.h"
#include "net/net_pool.h"
#include "net/net_proto.h"
#include "object/obj.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define RECV_MAX 256         /* receivers of one plan (status shows them all) */
#define SEND_RETRIES 3
#define SEND_RETRY_MS 500u
#define SINGLE_MAX (NET_MAX_GOSSIP - 64u * 1024u) /* larger entries go as REPL_PUT */
#define MEMBERS_DIGEST_SEED 0x686f6d656d62ULL

enum hstate { HS_IDLE = 0, HS_SETTLING, HS_SENDING, HS_RETRY, HS_LEAVING, HS_LEFT };

static const char *state_name(int s)
{
	switch (s) {
	case HS_IDLE: return "idle";
	case HS_SETTLING: return "settling";
	case HS_SENDING: return "sending";
	case HS_RETRY: return "retry";
	case HS_LEAVING: return "leaving";
	case HS_LEFT: return "left";
	default: return "unknown";
	}
}

typedef struct recv_stat {
	char id[MEMBER_ID_MAX + 1];
	char addr[MEMBER_ADDR_MAX + 1];
	uint64_t ranges, keys, bytes;
	int done, failed;
	/* sender thread only: the batch being filled */
	q_buf body;
	uint64_t count;
} recv_stat;

struct node_handoff {
	node_handoff_config cfg;
	char self[MEMBER_ID_MAX + 1];
	char *data_dir;
	uint64_t rate_bps, settle_ms;
	int leave_exit;
	int drop_moved;          /* handoff_drop: delete moved keys after a plan */
	net_pool *pool;          /* set on the loop thread at start */
	pthread_t th;
	int th_on;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;                /* under mu */
	int leave;               /* under mu: 1 = leave requested */
	/* status, under mu */
	int state;
	uint64_t ring_digest, base_digest;
	uint64_t plans, failures, ranges_total, ranges_done, keys_scanned;
	uint64_t keys_sent, bytes_sent;
	uint64_t keys_dropped, drop_kept; /* moved keys deleted here / kept */
	recv_stat recv[RECV_MAX];
	size_t nrecv;
	/* receiver side, atomics */
	uint64_t batches_received, keys_received, rejected;
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */

uint64_t node_handoff_members_digest(const ring *r)
{
	q_buf b = Q_BUF_INIT;
	size_t n = r ? ring_member_count(r) : 0;
	for (size_t i = 0; i < n; i++) {
		ring_member m;
		ring_member_get(r, i, &m);
		const char *z = m.zone ? m.zone : "";
		if (q_put_lenbytes(&b, m.node, strlen(m.node)) < 0 ||
		    q_put_lenbytes(&b, z, strlen(z)) < 0 || q_put_varint(&b, m.tokens) < 0) {
			q_buf_free(&b);
			return 0;
		}
	}
	uint64_t d = q_hash64(b.p ? b.p : (const uint8_t *)"", b.len, MEMBERS_DIGEST_SEED);
	q_buf_free(&b);
	return d;
}

/* Sleeps up to ms, waking early on stop (or a leave request). Returns 1 if
 * stopping. */
static int nap(node_handoff *h, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (ms % 1000u) * 1000000u;
	ts.tv_sec += (time_t)(ms / 1000u + ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&h->mu);
	if (!h->stop)
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	int s = h->stop;
	pthread_mutex_unlock(&h->mu);
	return s;
}

static void set_state(node_handoff *h, int st)
{
	pthread_mutex_lock(&h->mu);
	h->state = st;
	pthread_mutex_unlock(&h->mu);
}

static void ring_path(node_handoff *h, char *p, size_t cap)
{
	snprintf(p, cap, "%s/%s", h->data_dir, HANDOFF_RING_FILE);
}

/* The persisted base ring, or NULL (none yet, or unreadable: logged). */
static ring *load_base(node_handoff *h)
{
	char p[4200];
	ring_path(h, p, sizeof(p));
	uint8_t *data = NULL;
	size_t n = 0;
	int rc = q_env_read_all(q_env_posix(), p, &data, &n);
	if (rc < 0) {
		if (rc != -ENOENT && rc != Q_ENOTFOUND)
			Q_WARN("handoff", "cannot read %s: %s", p, q_strerror(rc));
		return NULL;
	}
	ring *r = NULL;
	rc = ring_decode(data, n, &r);
	free(data);
	if (rc < 0) {
		Q_WARN("handoff", "%s does not decode (%s); starting from the current ring", p,
		       q_strerror(rc));
		return NULL;
	}
	return r;
}

static void save_base(node_handoff *h, const ring *r)
{
	char p[4200];
	ring_path(h, p, sizeof(p));
	q_buf b = Q_BUF_INIT;
	int rc = ring_encode(r, &b);
	if (rc == 0)
		rc = q_env_write_atomic(q_env_posix(), p, b.p, b.len);
	if (rc < 0)
		Q_WARN("handoff", "cannot save %s: %s (the last handoff may be redone)", p,
		       q_strerror(rc));
	q_buf_free(&b);
}

/* A copy of r with version 1 (rings here are compared by members only). */
static int ring_copy(const ring *r, ring **out)
{
	size_t n = ring_member_count(r);
	ring_member *m = calloc(n ? n : 1, sizeof(ring_member));
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ring_member_get(r, i, &m[i]);
	int rc = ring_build(m, n, 1, out);
	free(m);
	return rc;
}

static int alive_any(void *ud, const char *node)
{
	node_handoff *h = ud;
	if (!strcmp(node, h->self))
		return 1;
	/* a member that left is no longer in the list: not counted on to
	 * send (if it is still streaming its leave, ranges go twice) */
	int st = members_state_of(h->cfg.mem, node);
	return st >= 0 && st != MEMBER_DOWN;
}

static int alive_self_only(void *ud, const char *node)
{
	node_handoff *h = ud;
	return !strcmp(node, h->self);
}

/* 1 if a member of base other than this node is missing from target
 * although gossip has not marked it left. */
static int lost_members(node_handoff *h, const ring *base, const ring *target)
{
	for (size_t i = 0; i < ring_member_count(base); i++) {
		ring_member m;
		ring_member_get(base, i, &m);
		if (strcmp(m.node, h->self) && ring_member_find(target, m.node) < 0 &&
		    !node_gossip_is_left(h->cfg.gossip, m.node))
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* sender                                                              */

static int send_batch(node_handoff *h, recv_stat *rs)
{
	if (rs->count == 0)
		return 0;
	q_buf msgb = Q_BUF_INIT;
	int rc = q_buf_append_byte(&msgb, HANDOFF_MSG_V1);
	if (rc == 0)
		rc = q_put_lenbytes(&msgb, h->self, strlen(h->self));
	if (rc == 0)
		rc = q_put_varint(&msgb, rs->count);
	if (rc == 0)
		rc = q_buf_append(&msgb, rs->body.p, rs->body.len);
	if (rc < 0)
		goto out;
	net_msg m;
	net_msg_init(&m, NET_MSG_HANDOFF_BATCH);
	m.u.gossip.payload = q_buf_slice(&msgb);
	for (int attempt = 0; attempt < SEND_RETRIES; attempt++) {
		if (attempt && nap(h, SEND_RETRY_MS)) {
			rc = Q_ECLOSED;
			break;
		}
		net_msg resp;
		q_buf rb = Q_BUF_INIT;
		rc = net_pool_call(h->cfg.loop, h->pool, rs->addr, &m, h->cfg.timeout_ms, &resp,
				   &rb);
		if (rc == 0) {
			uint64_t merged = 0, rejected = 0;
			rc = handoff_batch_resp_decode(resp.u.gossip.payload.p,
						       resp.u.gossip.payload.n, &merged, &rejected);
			if (rc == 0 && rejected)
				Q_WARN("handoff", "%s rejected %llu of %llu keys (corrupt sets)",
				       rs->id, (unsigned long long)rejected,
				       (unsigned long long)rs->count);
		}
		net_msg_clear(&resp);
		q_buf_free(&rb);
		if (rc == 0)
			break;
		Q_DEBUG("handoff", "batch to %s (%s): %s", rs->id, rs->addr, q_strerror(rc));
	}
	if (rc == 0) {
		pthread_mutex_lock(&h->mu);
		rs->keys += rs->count;
		rs->bytes += rs->body.len;
		h->keys_sent += rs->count;
		h->bytes_sent += rs->body.len;
		pthread_mutex_unlock(&h->mu);
	}
out:
	q_buf_free(&msgb);
	q_buf_reset(&rs->body);
	rs->count = 0;
	return rc;
}

static int put_to(node_handoff *h, const char *addr, q_slice key, q_slice obj);

/* One entry too large for a batch: a plain REPL_PUT (merged the same way). */
static int send_single(node_handoff *h, recv_stat *rs, q_slice key, q_slice obj)
{
	int rc = put_to(h, rs->addr, key, obj);
	if (rc == 0) {
		pthread_mutex_lock(&h->mu);
		rs->keys++;
		rs->bytes += key.n + obj.n;
		h->keys_sent++;
		h->bytes_sent += key.n + obj.n;
		pthread_mutex_unlock(&h->mu);
	}
	return rc;
}

static void throttle(node_handoff *h, handoff_rate *rl, uint64_t bytes)
{
	uint64_t wait = handoff_rate_reserve(rl, bytes, q_mono_ns());
	if (wait)
		nap(h, (wait + 999999u) / 1000000u);
}

static recv_stat *find_recv(node_handoff *h, const char *id)
{
	for (size_t i = 0; i < h->nrecv; i++)
		if (!strcmp(h->recv[i].id, id))
			return &h->recv[i];
	return NULL;
}

/* Fills the receiver table for plan p (keeping `done` marks of receivers
 * already served for the same plan when keep is set). */
static int setup_receivers(node_handoff *h, const handoff_plan *p, int keep)
{
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	Q_RET(members_snapshot(h->cfg.mem, &mv, &mn, &ver));
	recv_stat old[RECV_MAX];
	size_t nold = 0;
	pthread_mutex_lock(&h->mu);
	if (keep) {
		nold = h->nrecv;
		for (size_t i = 0; i < nold; i++) {
			old[i] = h->recv[i];
			memset(&old[i].body, 0, sizeof(q_buf));
		}
	}
	for (size_t i = 0; i < h->nrecv; i++)
		q_buf_free(&h->recv[i].body);
	memset(h->recv, 0, sizeof(h->recv));
	h->nrecv = 0;
	int rc = 0;
	for (size_t i = 0; i < p->n; i++) {
		recv_stat *rs = find_recv(h, p->v[i].target);
		if (!rs) {
			if (h->nrecv == RECV_MAX) {
				rc = Q_ETOOBIG;
				break;
			}
			rs = &h->recv[h->nrecv++];
			snprintf(rs->id, sizeof(rs->id), "%s", p->v[i].target);
			for (size_t k = 0; k < nold; k++)
				if (!strcmp(old[k].id, rs->id) && old[k].done) {
					rs->done = 1;
					rs->keys = old[k].keys;
					rs->bytes = old[k].bytes;
				}
			for (size_t k = 0; k < mn; k++)
				if (!strcmp(mv[k].id, rs->id))
					snprintf(rs->addr, sizeof(rs->addr), "%s", mv[k].addr);
		}
		rs->ranges++;
	}
	h->ranges_total = p->n;
	h->ranges_done = 0;
	for (size_t i = 0; i < h->nrecv; i++)
		if (h->recv[i].done)
			h->ranges_done += h->recv[i].ranges;
	h->keys_scanned = 0;
	pthread_mutex_unlock(&h->mu);
	free(mv);
	return rc;
}

/* One pass over the replica keyspace for plan p. 0 when every receiver got
 * everything; -EAGAIN when some receiver failed (retried later); another
 * negative code for a local failure. */
static int transfer(node_handoff *h, const handoff_plan *p)
{
	int rc = 0;
	handoff_rate rl;
	/* burst: one second's worth, so a low rate really paces small moves */
	handoff_rate_init(&rl, h->rate_bps, h->rate_bps, q_mono_ns());
	size_t pending = 0;
	for (size_t i = 0; i < h->nrecv; i++) {
		recv_stat *rs = &h->recv[i];
		if (rs->done)
			continue;
		if (!rs->addr[0]) {
			Q_WARN("handoff", "receiver %s has no known address; retrying later",
			       rs->id);
			rs->failed = 1;
			continue;
		}
		rs->failed = 0;
		pending++;
	}
	if (pending == 0)
		goto finish;
	lsm_iter *it = NULL;
	rc = lsm_iter_new(h->cfg.db, &it);
	if (rc < 0)
		return rc;
	uint8_t ks = LSM_KS_DATA;
	lsm_iter_seek(it, q_slice_make(&ks, 1));
	uint64_t scanned = 0;
	for (; lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it);
		if (k.n < 2 || k.p[0] != LSM_KS_DATA)
			break;
		q_slice ukey = q_slice_make(k.p + 1, k.n - 1);
		q_slice val = lsm_iter_value(it);
		if ((++scanned & 255u) == 0) {
			pthread_mutex_lock(&h->mu);
			h->keys_scanned = scanned;
			int s = h->stop;
			pthread_mutex_unlock(&h->mu);
			if (s) {
				rc = Q_ECLOSED;
				break;
			}
		}
		const char *tg[COORD_MAX_N];
		size_t nt = handoff_plan_targets(p, ring_key_hash(ukey.p, ukey.n), tg, COORD_MAX_N);
		for (size_t t = 0; t < nt; t++) {
			recv_stat *rs = find_recv(h, tg[t]);
			if (!rs || rs->done || rs->failed || val.n == 0)
				continue;
			if (ukey.n + val.n > SINGLE_MAX) {
				throttle(h, &rl, ukey.n + val.n);
				if (send_single(h, rs, ukey, val) < 0)
					rs->failed = 1;
				continue;
			}
			if (rs->body.len + ukey.n + val.n + 16 > SINGLE_MAX ||
			    rs->count == HANDOFF_BATCH_MAX_KEYS) {
				throttle(h, &rl, rs->body.len);
				if (send_batch(h, rs) < 0) {
					rs->failed = 1;
					continue;
				}
			}
			if (q_put_lenbytes(&rs->body, ukey.p, ukey.n) < 0 ||
			    q_put_lenbytes(&rs->body, val.p, val.n) < 0) {
				rc = -ENOMEM;
				break;
			}
			rs->count++;
			if (rs->body.len >= HANDOFF_BATCH_TARGET_BYTES) {
				throttle(h, &rl, rs->body.len);
				if (send_batch(h, rs) < 0)
					rs->failed = 1;
			}
		}
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = lsm_iter_status(it);
	lsm_iter_free(it);
	for (size_t i = 0; i < h->nrecv; i++) {
		recv_stat *rs = &h->recv[i];
		if (rc == 0 && !rs->done && !rs->failed) {
			throttle(h, &rl, rs->body.len);
			if (send_batch(h, rs) < 0)
				rs->failed = 1;
		}
		q_buf_reset(&rs->body);
		rs->count = 0;
	}
	pthread_mutex_lock(&h->mu);
	h->keys_scanned = scanned;
	pthread_mutex_unlock(&h->mu);
	if (rc < 0)
		return rc;
finish:
	pthread_mutex_lock(&h->mu);
	int failed = 0;
	h->ranges_done = 0;
	for (size_t i = 0; i < h->nrecv; i++) {
		recv_stat *rs = &h->recv[i];
		if (!rs->failed && rs->addr[0])
			rs->done = 1;
		if (rs->done)
			h->ranges_done += rs->ranges;
		else
			failed = 1;
	}
	pthread_mutex_unlock(&h->mu);
	return failed ? -EAGAIN : 0;
}

/* One object to one receiver as a REPL_PUT, with retries; no statistics. */
static int put_to(node_handoff *h, const char *addr, q_slice key, q_slice obj)
{
	net_msg m;
	net_msg_init(&m, NET_MSG_REPL_PUT);
	m.u.repl_put.key = key;
	m.u.repl_put.object = obj;
	int rc = 0;
	for (int attempt = 0; attempt < SEND_RETRIES; attempt++) {
		if (attempt && nap(h, SEND_RETRY_MS))
			return Q_ECLOSED;
		net_msg resp;
		q_buf rb = Q_BUF_INIT;
		rc = net_pool_call(h->cfg.loop, h->pool, addr, &m, h->cfg.timeout_ms, &resp, &rb);
		if (rc == 0 && resp.u.repl_put_resp.status < 0)
			rc = resp.u.repl_put_resp.status;
		net_msg_clear(&resp);
		q_buf_free(&rb);
		if (rc == 0)
			break;
	}
	return rc;
}

/* Primaries of key under r (ids borrowed from r), at most n. */
static size_t primaries(const ring *r, q_slice key, int n, const char **ids)
{
	size_t nprim = 0;
	size_t got = ring_preflist_key(r, key.p, key.n, (size_t)n, ids, COORD_MAX_N, &nprim);
	return got < nprim ? got : nprim;
}

static int in_list(const char *const *ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ids[i], id))
			return 1;
	return 0;
}

/*
 * After the plan base -> target completed (not a leave): each key this
 * node replicated under base but not under target is sent once more, as it
 * is now, to the primaries that gained it (those of target not in base;
 * all of target's if none), and deleted here when every one of them stored
 * it and it did not change meanwhile (replica_drop_if on the digest of the
 * version sent). The plan names one sender per range, which need not be
 * this node, hence the own send: the version deleted is always one the new
 * owners acknowledged, and a key written here during the pass is kept.
 * Keys this node did not replicate under base (a fallback's copies) are
 * left alone. Best effort: a failure keeps the key (it only costs disk).
 */
static void drop_moved(node_handoff *h, const ring *base, const ring *target)
{
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	if (members_snapshot(h->cfg.mem, &mv, &mn, &ver) < 0)
		return;
	handoff_rate rl;
	handoff_rate_init(&rl, h->rate_bps, h->rate_bps, q_mono_ns());
	lsm_iter *it = NULL;
	if (lsm_iter_new(h->cfg.db, &it) < 0) {
		free(mv);
		return;
	}
	uint8_t ks = LSM_KS_DATA;
	lsm_iter_seek(it, q_slice_make(&ks, 1));
	uint64_t scanned = 0, dropped = 0, kept = 0;
	for (; lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it);
		if (k.n < 2 || k.p[0] != LSM_KS_DATA)
			break;
		if ((++scanned & 255u) == 0) {
			pthread_mutex_lock(&h->mu);
			int s = h->stop;
			pthread_mutex_unlock(&h->mu);
			if (s)
				break;
		}
		q_slice ukey = q_slice_make(k.p + 1, k.n - 1);
		q_slice val = lsm_iter_value(it);
		const char *now_ids[COORD_MAX_N], *was_ids[COORD_MAX_N];
		size_t nnow = primaries(target, ukey, h->cfg.n, now_ids);
		if (val.n == 0 || nnow == 0 || in_list(now_ids, nnow, h->self))
			continue;
		size_t nwas = primaries(base, ukey, h->cfg.n, was_ids);
		if (!in_list(was_ids, nwas, h->self))
			continue;
		obj_set *cur = NULL;
		if (obj_set_decode(val.p, val.n, &cur) < 0) {
			kept++;
			continue;
		}
		uint64_t digest = obj_set_digest(cur);
		obj_set_free(cur);
		size_t ngain = 0;
		for (size_t t = 0; t < nnow; t++)
			ngain += !in_list(was_ids, nwas, now_ids[t]);
		int ok = 1;
		for (size_t t = 0; t < nnow && ok; t++) {
			if (ngain && in_list(was_ids, nwas, now_ids[t]))
				continue;
			const char *addr = NULL;
			for (size_t m = 0; m < mn && !addr; m++)
				if (!strcmp(mv[m].id, now_ids[t]))
					addr = mv[m].addr;
			throttle(h, &rl, ukey.n + val.n);
			ok = addr && put_to(h, addr, ukey, val) == 0;
		}
		if (ok && replica_drop_if(h->cfg.rep, ukey, digest) == 1)
			dropped++;
		else
			kept++;
	}
	lsm_iter_free(it);
	free(mv);
	pthread_mutex_lock(&h->mu);
	h->keys_dropped += dropped;
	h->drop_kept += kept;
	pthread_mutex_unlock(&h->mu);
	if (dropped || kept)
		Q_INFO("handoff", "moved keys: %llu deleted here, %llu kept",
		       (unsigned long long)dropped, (unsigned long long)kept);
}

static void *run(void *arg)
{
	node_handoff *h = arg;
	ring *base = load_base(h);
	uint64_t seen = 0, seen_since = q_mono_ms(), started = q_mono_ms();
	uint64_t plan_key = 0;   /* digest pair of the plan whose receivers are tracked */
	uint64_t leave_done_ms = 0;
	int exit_sent = 0;
	if (base) {
		Q_INFO("handoff", "resuming from the ring of %zu members in %s/%s",
		       ring_member_count(base), h->data_dir, HANDOFF_RING_FILE);
		pthread_mutex_lock(&h->mu);
		h->base_digest = node_handoff_members_digest(base);
		pthread_mutex_unlock(&h->mu);
	}
	while (!nap(h, HANDOFF_POLL_MS)) {
		pthread_mutex_lock(&h->mu);
		int leaving = h->leave;
		pthread_mutex_unlock(&h->mu);
		ring *snap = NULL, *target = NULL;
		int rc = coord_ring_snapshot(h->cfg.c, &snap);
		if (rc < 0) {
			Q_WARN("handoff", "ring snapshot: %s", q_strerror(rc));
			continue;
		}
		if (leaving && ring_member_find(snap, h->self) >= 0) {
			rc = ring_remove(snap, h->self, &target);
			if (rc < 0) {
				Q_WARN("handoff", "ring without this node: %s", q_strerror(rc));
				ring_free(snap);
				continue;
			}
		} else {
			target = snap;
		}
		uint64_t d = node_handoff_members_digest(target);
		uint64_t now = q_mono_ms();
		if (d != seen) {
			seen = d;
			seen_since = now;
		}
		pthread_mutex_lock(&h->mu);
		h->ring_digest = d;
		pthread_mutex_unlock(&h->mu);
		if (!base) {
			/* a node without a base ring (first start) adopts the
			 * current one (with itself) once it has settled: it held
			 * nothing before; a leave adopts it at once */
			if (leaving || (now - seen_since >= h->settle_ms && now - started >= h->settle_ms)) {
				if (ring_copy(snap, &base) == 0) {
					save_base(h, base);
					pthread_mutex_lock(&h->mu);
					h->base_digest = node_handoff_members_digest(base);
					h->state = leaving ? h->state : HS_IDLE;
					pthread_mutex_unlock(&h->mu);
				}
			} else {
				set_state(h, HS_SETTLING);
			}
			if (!leaving || !base) {
				if (target != snap)
					ring_free(snap);
				ring_free(target);
				continue;
			}
		}
		if (target != snap)
			ring_free(snap);
		snap = NULL;
		uint64_t bd = node_handoff_members_digest(base);
		if (bd == d) {
			ring_free(target);
			if (leaving) {
				if (!leave_done_ms) {
					leave_done_ms = now;
					set_state(h, HS_LEFT);
					Q_INFO("handoff", "leave complete: every range handed off");
				}
				if (h->leave_exit && !exit_sent &&
				    now - leave_done_ms >= HANDOFF_LEAVE_LINGER_MS) {
					exit_sent = 1;
					Q_INFO("handoff", "left the cluster; stopping the process");
					kill(getpid(), SIGTERM);
				}
			} else {
				set_state(h, HS_IDLE);
			}
			continue;
		}
		if (!leaving && lost_members(h, base, target)) {
			/* a member is missing without having left (gossip still
			 * filling in after a restart): not a real change */
			set_state(h, HS_SETTLING);
			ring_free(target);
			continue;
		}
		if (!leaving && now - seen_since < h->settle_ms) {
			set_state(h, HS_SETTLING);
			ring_free(target);
			continue;
		}
		handoff_plan plan;
		rc = handoff_plan_make(base, target, h->self, (size_t)h->cfg.n,
				       leaving ? alive_self_only : alive_any, h, &plan);
		if (rc < 0) {
			Q_WARN("handoff", "plan: %s", q_strerror(rc));
			ring_free(target);
			continue;
		}
		uint64_t key = bd * 31u + d;
		rc = setup_receivers(h, &plan, key == plan_key);
		plan_key = key;
		if (rc == 0) {
			set_state(h, leaving ? HS_LEAVING : HS_SENDING);
			if (plan.n)
				Q_INFO("handoff", "ring changed (%zu -> %zu members): %zu ranges to "
				       "%zu receivers", ring_member_count(base),
				       ring_member_count(target), plan.n, h->nrecv);
			rc = transfer(h, &plan);
		}
		if (rc == 0 && !leaving && h->drop_moved)
			drop_moved(h, base, target);
		handoff_plan_free(&plan);
		if (rc == 0) {
			ring *nb = NULL;
			if (ring_copy(target, &nb) == 0) {
				save_base(h, nb);
				ring_free(base);
				base = nb;
				pthread_mutex_lock(&h->mu);
				h->base_digest = d;
				h->plans++;
				if (!leaving)
					h->state = HS_IDLE;
				pthread_mutex_unlock(&h->mu);
			}
		} else if (rc != Q_ECLOSED) {
			pthread_mutex_lock(&h->mu);
			h->failures++;
			if (!leaving)
				h->state = HS_RETRY;
			pthread_mutex_unlock(&h->mu);
			Q_WARN("handoff", "handoff incomplete (%s); retrying", q_strerror(rc));
			nap(h, 1000);
		}
		ring_free(target);
	}
	ring_free(base);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* receiver and LEAVE (loop thread)                                    */

typedef struct merge_job {
	uv_work_t w;
	node_handoff *h;
	net_request *req;
	handoff_batch b;
	uint64_t merged, rejected;
	int rc;
} merge_job;

static void merge_work(uv_work_t *w)
{
	merge_job *j = w->data;
	for (size_t i = 0; i < j->b.n; i++) {
		obj_set *in = NULL;
		int rc = obj_set_decode(j->b.v[i].object.p, j->b.v[i].object.n, &in);
		if (rc == 0)
			rc = replica_merge(j->h->cfg.rep, j->b.v[i].key, in, NULL);
		obj_set_free(in);
		if (rc == 0) {
			j->merged++;
		} else if (rc == -ENOMEM || rc == -EIO || rc == -ENOSPC || rc == Q_ECLOSED) {
			j->rc = rc; /* a local failure: the sender must retry */
			break;
		} else {
			j->rejected++;
		}
	}
}

static void merge_done(uv_work_t *w, int status)
{
	merge_job *j = w->data;
	node_handoff *h = j->h;
	if (status < 0 && j->rc == 0)
		j->rc = status;
	if (j->rc < 0) {
		net_reply_error(j->req, j->rc, "handoff merge failed");
	} else {
		__atomic_add_fetch(&h->batches_received, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->keys_received, j->merged, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->rejected, j->rejected, __ATOMIC_RELAXED);
		if (j->rejected)
			Q_WARN("handoff", "batch from %.*s: %llu sets did not decode",
			       (int)j->b.sender.n, (const char *)j->b.sender.p,
			       (unsigned long long)j->rejected);
		q_buf b = Q_BUF_INIT;
		int rc = handoff_batch_resp_encode(j->merged, j->rejected, &b);
		if (rc < 0) {
			net_reply_error(j->req, rc, "cannot encode reply");
		} else {
			net_msg m;
			net_msg_init(&m, NET_MSG_HANDOFF_BATCH_RESP);
			m.u.gossip.payload = q_buf_slice(&b);
			net_reply_send(j->req, &m);
		}
		q_buf_free(&b);
	}
	handoff_batch_clear(&j->b);
	free(j);
}

static void handle_batch(node_handoff *h, net_request *req)
{
	merge_job *j = calloc(1, sizeof(*j));
	if (!j) {
		net_reply_error(req, -ENOMEM, NULL);
		return;
	}
	q_slice pl = req->msg.u.gossip.payload;
	int rc = handoff_batch_decode(pl.p, pl.n, &j->b);
	if (rc < 0) {
		Q_WARN("handoff", "bad handoff batch from %s: %s", req->peer, q_strerror(rc));
		net_reply_error(req, rc, "malformed handoff batch");
		free(j);
		return;
	}
	j->h = h;
	j->req = req;
	j->w.data = j;
	rc = uv_queue_work(net_loop_uv(h->cfg.loop), &j->w, merge_work, merge_done);
	if (rc < 0) {
		net_reply_error(req, Q_ECLOSED, "cannot queue the merge");
		handoff_batch_clear(&j->b);
		free(j);
	}
}

static void reply_text(net_request *req, const char *text)
{
	q_buf b = Q_BUF_INIT;
	int rc = handoff_leave_resp_encode(q_slice_str(text), &b);
	if (rc < 0) {
		net_reply_error(req, rc, NULL);
	} else {
		net_msg m;
		net_msg_init(&m, NET_MSG_LEAVE_RESP);
		m.u.gossip.payload = q_buf_slice(&b);
		net_reply_send(req, &m);
	}
	q_buf_free(&b);
}

static void fwd_cb(void *arg, int status, const net_msg *resp)
{
	net_request *req = arg;
	if (status != 0) {
		char t[NET_MAX_ERRTEXT + 64];
		if (resp && resp->type == NET_MSG_ERROR)
			snprintf(t, sizeof(t), "the node refused: %.*s",
				 (int)resp->u.error.text.n, (const char *)resp->u.error.text.p);
		else
			snprintf(t, sizeof(t), "the node did not answer: %s", q_strerror(status));
		net_reply_error(req, status, t);
		return;
	}
	q_slice text;
	if (handoff_leave_resp_decode(resp->u.gossip.payload.p, resp->u.gossip.payload.n,
				      &text) < 0) {
		net_reply_error(req, Q_EPROTO, "bad answer from the node");
		return;
	}
	char t[HANDOFF_TEXT_MAX + 1];
	snprintf(t, sizeof(t), "%.*s", (int)text.n, (const char *)text.p);
	reply_text(req, t);
}

static void handle_leave(node_handoff *h, net_request *req)
{
	q_slice pl = req->msg.u.gossip.payload;
	q_slice id;
	int rc = handoff_leave_decode(pl.p, pl.n, &id);
	if (rc < 0) {
		net_reply_error(req, rc, "malformed LEAVE");
		return;
	}
	char ids[HANDOFF_ID_MAX + 1];
	snprintf(ids, sizeof(ids), "%.*s", (int)id.n, (const char *)id.p);
	if (!ids[0] || !strcmp(ids, h->self)) {
		pthread_mutex_lock(&h->mu);
		int already = h->leave;
		h->leave = 1;
		if (!already)
			h->state = HS_LEAVING;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		if (already) {
			reply_text(req, "already leaving");
			return;
		}
		rc = node_gossip_leave(h->cfg.gossip);
		if (rc < 0) {
			Q_WARN("handoff", "announcing the leave: %s", q_strerror(rc));
			/* the handoff goes on; gossip carries the news once it can */
		}
		Q_INFO("handoff", "leaving the cluster: handing every range to its new owners");
		reply_text(req, "leaving: handing off data (see status \"handoff\")");
		return;
	}
	int st = members_state_of(h->cfg.mem, ids);
	if (st < 0) {
		net_reply_error(req, Q_ENOTFOUND, "no such member");
		return;
	}
	if (st == MEMBER_DOWN) {
		rc = node_gossip_remove(h->cfg.gossip, ids);
		if (rc == -EBUSY) {
			net_reply_error(req, -EBUSY,
					"the node is suspect, not yet down: retry after gossip_down_after");
			return;
		}
		if (rc < 0) {
			net_reply_error(req, rc, "cannot remove the node");
			return;
		}
		Q_INFO("handoff", "removed down node %s from the cluster", ids);
		reply_text(req, "removed (node is down): surviving replicas hand its ranges off");
		return;
	}
	member *mv = NULL;
	size_t mn = 0;
	uint64_t ver = 0;
	char addr[MEMBER_ADDR_MAX + 1] = "";
	if (members_snapshot(h->cfg.mem, &mv, &mn, &ver) == 0) {
		for (size_t i = 0; i < mn; i++)
			if (!strcmp(mv[i].id, ids))
				snprintf(addr, sizeof(addr), "%s", mv[i].addr);
		free(mv);
	}
	net_pool *pool = coord_pool(h->cfg.c);
	if (!addr[0] || !pool) {
		net_reply_error(req, Q_ENOTFOUND, "no address for the member");
		return;
	}
	net_msg m;
	net_msg_init(&m, NET_MSG_LEAVE);
	m.u.gossip.payload = pl; /* the same request, naming the node itself */
	rc = net_pool_request(pool, addr, &m, h->cfg.timeout_ms, fwd_cb, req);
	if (rc < 0)
		net_reply_error(req, rc, "cannot reach the node");
}

static void handle(void *arg, net_request *req)
{
	node_handoff *h = arg;
	if (req->type == NET_MSG_HANDOFF_BATCH)
		handle_batch(h, req);
	else if (req->type == NET_MSG_LEAVE)
		handle_leave(h, req);
	else
		net_reply_error(req, Q_EPROTO, "request type not served by this node");
}

/* ------------------------------------------------------------------ */
/* lifecycle and status                                                */

int node_handoff_new(q_conf *conf, const node_handoff_config *cfg, char *err, size_t errcap,
		     node_handoff **out)
{
	err[0] = 0;
	node_handoff *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->cfg = *cfg;
	snprintf(h->self, sizeof(h->self), "%s", cfg->self_id);
	h->cfg.self_id = h->self;
	int rc = -ENOMEM;
	h->data_dir = strdup(cfg->data_dir);
	if (!h->data_dir)
		goto fail;
	h->cfg.data_dir = h->data_dir;
	if (h->cfg.timeout_ms < 5000)
		h->cfg.timeout_ms = 5000;
	rc = q_conf_get_size(conf, "handoff_rate", HANDOFF_RATE_DEFAULT, &h->rate_bps);
	if (rc == 0)
		rc = q_conf_get_ms(conf, "handoff_settle", HANDOFF_SETTLE_DEFAULT_MS, &h->settle_ms);
	if (rc == 0)
		rc = q_conf_get_bool(conf, "leave_exit", 1, &h->leave_exit);
	if (rc == 0)
		rc = q_conf_get_bool(conf, "handoff_drop", 1, &h->drop_moved);
	if (rc < 0) {
		snprintf(err, errcap, "config: %s", q_conf_error(conf));
		goto fail;
	}
	rc = coord_set_msg_hook(cfg->c, NET_MSG_HANDOFF_BATCH, NET_MSG_HINT_LAST, handle, h);
	if (rc == 0)
		rc = coord_set_msg_hook(cfg->c, NET_MSG_LEAVE, NET_MSG_LEAVE + 7, handle, h);
	if (rc < 0) {
		snprintf(err, errcap, "handoff: cannot register its messages: %s", q_strerror(rc));
		goto fail;
	}
	*out = h;
	return 0;
fail:
	node_handoff_free(h);
	return rc;
}

int node_handoff_start(node_handoff *h)
{
	h->pool = coord_pool(h->cfg.c);
	if (!h->pool)
		return Q_ECLOSED;
	int rc = pthread_create(&h->th, NULL, run, h);
	if (rc != 0) {
		Q_ERROR("handoff", "cannot start the handoff thread: %s", strerror(rc));
		return -rc;
	}
	h->th_on = 1;
	Q_INFO("handoff", "range handoff on: rate %llu bytes/s, settle %llu ms",
	       (unsigned long long)h->rate_bps, (unsigned long long)h->settle_ms);
	return 0;
}

void node_handoff_stop(node_handoff *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->th_on) {
		pthread_join(h->th, NULL);
		h->th_on = 0;
	}
}

void node_handoff_free(node_handoff *h)
{
	if (!h)
		return;
	node_handoff_stop(h);
	for (size_t i = 0; i < RECV_MAX; i++)
		q_buf_free(&h->recv[i].body);
	free(h->data_dir);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

int node_handoff_status_json(node_handoff *h, q_buf *out)
{
	if (!h)
		return 0;
	pthread_mutex_lock(&h->mu);
	int rc = q_buf_printf(
		out,
		",\"handoff\":{\"state\":\"%s\",\"ring_digest\":\"%016llx\","
		"\"base_digest\":\"%016llx\",\"rate\":%llu,\"plans\":%llu,\"failures\":%llu,"
		"\"ranges_total\":%llu,\"ranges_done\":%llu,\"keys_scanned\":%llu,"
		"\"keys_sent\":%llu,\"bytes_sent\":%llu,\"keys_dropped\":%llu,"
		"\"drop_kept\":%llu,\"batches_received\":%llu,"
		"\"keys_received\":%llu,\"rejected\":%llu,\"receivers\":[",
		state_name(h->state), (unsigned long long)h->ring_digest,
		(unsigned long long)h->base_digest, (unsigned long long)h->rate_bps,
		(unsigned long long)h->plans, (unsigned long long)h->failures,
		(unsigned long long)h->ranges_total, (unsigned long long)h->ranges_done,
		(unsigned long long)h->keys_scanned, (unsigned long long)h->keys_sent,
		(unsigned long long)h->bytes_sent, (unsigned long long)h->keys_dropped,
		(unsigned long long)h->drop_kept,
		(unsigned long long)__atomic_load_n(&h->batches_received, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&h->keys_received, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&h->rejected, __ATOMIC_RELAXED));
	for (size_t i = 0; i < h->nrecv && rc == 0; i++) {
		const recv_stat *rs = &h->recv[i];
		/* ids are validated node ids (no quotes or control characters) */
		rc = q_buf_printf(out,
				  "%s{\"id\":\"%s\",\"ranges\":%llu,\"ranges_done\":%llu,"
				  "\"keys\":%llu,\"bytes\":%llu,\"done\":%s}",
				  i ? "," : "", rs->id, (unsigned long long)rs->ranges,
				  (unsigned long long)(rs->done ? rs->ranges : 0),
				  (unsigned long long)rs->keys, (unsigned long long)rs->bytes,
				  rs->done ? "true" : "false");
	}
	if (rc == 0)
		rc = q_buf_printf(out, "]}");
	pthread_mutex_unlock(&h->mu);
	return rc;
}
