/*
 * node_aae.c - anti-entropy wired into the node (see node_aae.h and
 * docs/aae.md, "In the node").
 *
 * Arc table: arcs[] sorted by (start, end), one entry per arc this node
 * replicates (ring_arcs with merge = 1, so every replica of an arc computes
 * the identical arc), each with its tree and the other replicas' ids.
 * Guarded by tmu (a writer-preferring rwlock): writers' hooks and answers
 * take it shared, the worker takes it exclusively only to swap the table.
 * Entries are reference counted (refs, atomic): the table holds one
 * reference; a builder or an exchange takes its own before releasing tmu.
 *
 * Tree depth: aae_depth if set, else from the arc's width (a function of
 * the arc alone, so all replicas agree): whole circle or >= 1/16 of it: 4;
 * >= 1/256: 3; smaller: 2.
 *
 * Tombstones: the after-write hook records in toms (key -> local store
 * time) every key whose stored set is tombstone-only; a sweep (once per
 * second) asks aae_can_reap for those older than the grace period and
 * removes them with replica_remove_if. After a restart the table is
 * refilled by one scan of the data with the scan time as store time (the
 * grace period starts again: safe).
 *
 * Reaping and peers that lack a key: an exchange diff where this node holds
 * a tombstone-only set and the peer holds nothing does not block reaping
 * (no replica holds a live value then), and such a tombstone older than the
 * grace period is not copied to that peer (it would only be reaped again).
 * Every other diff blocks reaping until a later clean exchange.
 *
 * Persistence: trees are saved on clean shutdown only (node_aae_save) to
 * DATA/aae/<start>-<end>.tree with a fresh random stamp, written last to
 * the store under LSM_KS_META "aae-stamp". node_aae_new reads that stamp
 * and immediately replaces it with another random value, so after a crash
 * no file matches and every tree is rebuilt.
 */
#include "node/node_aae.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aae/aae_exchange.h"
#include "aae/aae_lsm.h"
#include "aae/aae_rate.h"
#include "aae/aae_reap.h"
#include "aae/aae_sync.h"
#include "aae/aae_tree.h"
#include "net/net_msg.h"
#include "net/net_pool.h"
#include "net/net_proto.h"
#include "net/net_server.h"
#include "object/obj.h"
#include "ring/ring.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define AAE_STAMP_KEY "aae-stamp"
#define AAE_ANSWER_BUDGET (1u << 20)      /* BUCKETS_RESP budget */
#define AAE_SYNC_BATCH_KEYS 256u
#define AAE_SYNC_BATCH_BYTES (1u << 20)
#define AAE_TICK_MS 200u
#define AAE_SWEEP_MS 1000u
#define TOMB_BUCKETS 4096u
#define AAE_KEY_COST 4096u /* bytes charged per synced key besides its bytes */
#define AAE_PEER_STATS 64u /* peers shown in status */

typedef struct arc {
	ring_range r;
	unsigned depth;
	aae_tree *t;
	char peers[RING_ARC_MAX_N][MEMBER_ID_MAX + 1]; /* other replicas */
	size_t npeers;
	int refs;              /* atomic */
	int building;          /* atomic: a builder owns the rebuild */
	uint64_t built_ns;     /* mono ns of the last completed build/load */
} arc;

typedef struct tomb {
	struct tomb *next;
	int64_t tomb_ns;
	size_t n;
	uint8_t key[];
} tomb;

struct node_aae {
	/* config */
	coord *c;
	replica *rep;
	lsm_db *db;
	members *mem;
	net_loop *loop;
	char self[MEMBER_ID_MAX + 1];
	char *tree_dir;
	int n;
	int enabled;
	unsigned depth_cfg;          /* 0 = from the arc width */
	uint64_t interval_ms, rebuild_ms, timeout_ms, max_diffs;
	uint64_t rate, burst, repair_rate;
	unsigned builds;
	int64_t grace_ns;
	uint64_t stamp_loaded;       /* stamp the saved trees must carry */
	int stamp_valid;

	net_pool *pool;              /* the coordinator's, between start and stop */
	aae_keysrc src;
	aae_rate rl, repair_rl;
	aae_slots slots;
	aae_reap *reap;

	pthread_rwlock_t tmu;        /* arcs */
	arc **arcs;
	size_t narcs;
	uint64_t ring_ver, ring_dig;
	int have_ring;

	pthread_mutex_t tombmu;
	tomb *toms[TOMB_BUCKETS];
	size_t ntoms;

	pthread_mutex_t mu;          /* worker state, repair job, builders */
	pthread_cond_t cv;
	pthread_t worker;
	int worker_on, stop;
	int builders;                /* running builder threads */
	int repair_pending;
	aae_repair_req repair_req;
	aae_repair_status job;       /* current / last repair */
	uint64_t job_start_ns;
	uint64_t next_job;
	size_t rr_peer;              /* round-robin cursor */

	/* per peer: last round (guarded by mu) */
	struct peer_stat {
		char id[MEMBER_ID_MAX + 1];
		uint64_t last_ok_ns;   /* mono ns of the last round with no failure */
		uint64_t rounds, failed_pairs;
	} peerst[AAE_PEER_STATS];
	size_t npeerst;

	/* counters (atomic) */
	uint64_t exchanges, exchange_failures, rounds, keys_differing, keys_sent,
		keys_received, bytes_exchange, bytes_sync, leaves_fixed, reaped, builds_done,
		last_exchange_ns, trees_loaded;
};

/* ------------------------------------------------------------------ */
/* arcs                                                                */

static void arc_unref(arc *a)
{
	if (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		aae_tree_free(a->t);
		free(a);
	}
}

static void arc_ref(arc *a)
{
	__atomic_add_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);
}

static int arc_cmp_range(const arc *a, uint64_t s, uint64_t e)
{
	if (a->r.start != s)
		return a->r.start < s ? -1 : 1;
	if (a->r.end != e)
		return a->r.end < e ? -1 : 1;
	return 0;
}

/* Exact (start, end) lookup; tmu held. */
static arc *find_range(node_aae *na, uint64_t s, uint64_t e)
{
	size_t lo = 0, hi = na->narcs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = arc_cmp_range(na->arcs[mid], s, e);
		if (c == 0)
			return na->arcs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The arc holding ring point h; tmu held. Arcs are disjoint: the one with
 * the largest start below h, else the one wrapping through 0. */
static arc *find_point(node_aae *na, uint64_t h)
{
	size_t lo = 0, hi = na->narcs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (na->arcs[mid]->r.start < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && ring_range_contains(na->arcs[lo - 1]->r, h))
		return na->arcs[lo - 1];
	/* the wrapping arc (start >= end) is the last one by start */
	if (na->narcs > 0 && ring_range_contains(na->arcs[na->narcs - 1]->r, h))
		return na->arcs[na->narcs - 1];
	return NULL;
}

static unsigned depth_for(node_aae *na, ring_range r)
{
	if (na->depth_cfg)
		return na->depth_cfg;
	if (r.start == r.end)
		return 4;
	uint64_t w = r.end - r.start; /* wraps correctly mod 2^64 */
	if (w >= (1ULL << 60))
		return 4;
	if (w >= (1ULL << 56))
		return 3;
	return 2;
}

static void tree_path(node_aae *na, ring_range r, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 "-%016" PRIx64 ".tree", na->tree_dir, r.start, r.end);
}

/* ------------------------------------------------------------------ */
/* tombstones                                                          */

static size_t tomb_slot(q_slice key)
{
	return (size_t)(q_hash64(key.p, key.n, 0x746f6d62ULL) % TOMB_BUCKETS);
}

/* Sets (tomb_ns >= 0) or removes (tomb_ns < 0) key's entry; keep_older:
 * an existing entry keeps its time. */
static void tomb_set(node_aae *na, q_slice key, int64_t tomb_ns, int keep_older)
{
	size_t s = tomb_slot(key);
	pthread_mutex_lock(&na->tombmu);
	tomb **pp = &na->toms[s];
	while (*pp && !((*pp)->n == key.n && !memcmp((*pp)->key, key.p, key.n)))
		pp = &(*pp)->next;
	if (tomb_ns < 0) {
		if (*pp) {
			tomb *t = *pp;
			*pp = t->next;
			free(t);
			na->ntoms--;
		}
	} else if (*pp) {
		if (!keep_older)
			(*pp)->tomb_ns = tomb_ns;
	} else {
		tomb *t = malloc(sizeof(*t) + key.n);
		if (t) {
			t->next = NULL;
			t->tomb_ns = tomb_ns;
			t->n = key.n;
			memcpy(t->key, key.p, key.n);
			*pp = t;
			na->ntoms++;
		}
	}
	pthread_mutex_unlock(&na->tombmu);
}

/* Local store time of key's tombstone, or -1. */
static int64_t tomb_get(node_aae *na, q_slice key)
{
	int64_t r = -1;
	pthread_mutex_lock(&na->tombmu);
	for (tomb *t = na->toms[tomb_slot(key)]; t; t = t->next)
		if (t->n == key.n && !memcmp(t->key, key.p, key.n)) {
			r = t->tomb_ns;
			break;
		}
	pthread_mutex_unlock(&na->tombmu);
	return r;
}

/* ------------------------------------------------------------------ */
/* write hooks                                                         */

static int hook_batch(void *arg, lsm_batch *b, q_slice key, const uint64_t *nd)
{
	(void)arg;
	return aae_lsm_index_batch(b, key, nd);
}

static void hook_after(void *arg, q_slice key, const uint64_t *od, const uint64_t *nd,
		       const obj_set *stored)
{
	node_aae *na = arg;
	pthread_rwlock_rdlock(&na->tmu);
	arc *a = find_point(na, ring_key_hash(key.p, key.n));
	if (a)
		aae_tree_update(a->t, key, od, nd);
	pthread_rwlock_unlock(&na->tmu);
	if (stored && obj_set_tombstone_only(stored))
		tomb_set(na, key, (int64_t)q_wall_ns(), 0);
	else
		tomb_set(na, key, -1, 0);
}

/* ------------------------------------------------------------------ */
/* stamp                                                               */

static void stamp_key(q_buf *k)
{
	q_buf_append_byte(k, LSM_KS_META);
	q_buf_append(k, AAE_STAMP_KEY, strlen(AAE_STAMP_KEY));
}

static uint64_t random_stamp(void)
{
	uint64_t x[2] = {q_wall_ns(), q_mono_ns() ^ (uint64_t)(uintptr_t)&x};
	return q_hash64(x, sizeof(x), 0x7374616d70ULL) | 1;
}

static int stamp_write(node_aae *na, uint64_t v)
{
	q_buf k = Q_BUF_INIT, val = Q_BUF_INIT;
	stamp_key(&k);
	int rc = q_put_fixed64(&val, v);
	if (rc == 0)
		rc = lsm_put(na->db, q_buf_slice(&k), q_buf_slice(&val));
	q_buf_free(&k);
	q_buf_free(&val);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ring changes and builds                                             */

typedef struct build_job {
	node_aae *na;
	arc **arcs;
	size_t n;
} build_job;

static void *builder_main(void *p)
{
	build_job *j = p;
	node_aae *na = j->na;
	aae_tree **trees = calloc(j->n, sizeof(*trees));
	aae_lsm_rebuild_stats st = {0, 0, 0, 0};
	int rc = -ENOMEM;
	if (trees) {
		for (size_t i = 0; i < j->n; i++)
			trees[i] = j->arcs[i]->t;
		rc = aae_lsm_rebuild(na->db, trees, j->n, AAE_LSM_FROM_INDEX, &na->rl, &st);
	}
	if (rc < 0)
		Q_WARN("aae", "rebuilding %zu trees: %s (retried later)", j->n, q_strerror(rc));
	else
		Q_INFO("aae", "built %zu trees from %llu index entries", j->n,
		       (unsigned long long)st.keys_scanned);
	uint64_t now = q_mono_ns();
	for (size_t i = 0; i < j->n; i++) {
		if (rc == 0) {
			j->arcs[i]->built_ns = now;
			__atomic_add_fetch(&na->builds_done, 1, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&j->arcs[i]->building, 0, __ATOMIC_RELEASE);
		arc_unref(j->arcs[i]);
	}
	free(trees);
	free(j->arcs);
	free(j);
	aae_slots_release(&na->slots);
	pthread_mutex_lock(&na->mu);
	na->builders--;
	pthread_cond_broadcast(&na->cv);
	pthread_mutex_unlock(&na->mu);
	return NULL;
}

/* Worker: starts one builder for every arc that needs a (re)build, when a
 * slot is free. Arcs whose tree is not ready come first; else the oldest
 * ready tree past aae_rebuild_interval. */
static void maybe_build(node_aae *na)
{
	if (!aae_slots_try_acquire(&na->slots))
		return;
	build_job *j = calloc(1, sizeof(*j));
	uint64_t now = q_mono_ns();
	pthread_rwlock_rdlock(&na->tmu);
	if (j)
		j->arcs = calloc(na->narcs ? na->narcs : 1, sizeof(arc *));
	if (j && j->arcs) {
		for (size_t i = 0; i < na->narcs; i++) {
			arc *a = na->arcs[i];
			if (__atomic_load_n(&a->building, __ATOMIC_ACQUIRE))
				continue;
			if (!aae_tree_ready(a->t)) {
				arc_ref(a);
				__atomic_store_n(&a->building, 1, __ATOMIC_RELEASE);
				j->arcs[j->n++] = a;
			}
		}
		if (j->n == 0 && na->rebuild_ms) {
			for (size_t i = 0; i < na->narcs; i++) {
				arc *a = na->arcs[i];
				if (!__atomic_load_n(&a->building, __ATOMIC_ACQUIRE) &&
				    now - a->built_ns > na->rebuild_ms * 1000000ULL) {
					arc_ref(a);
					__atomic_store_n(&a->building, 1, __ATOMIC_RELEASE);
					j->arcs[j->n++] = a;
					break; /* one periodic rebuild at a time */
				}
			}
		}
	}
	pthread_rwlock_unlock(&na->tmu);
	if (!j || !j->arcs || j->n == 0) {
		if (j)
			free(j->arcs);
		free(j);
		aae_slots_release(&na->slots);
		return;
	}
	j->na = na;
	pthread_t th;
	pthread_mutex_lock(&na->mu);
	na->builders++;
	pthread_mutex_unlock(&na->mu);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, builder_main, j) != 0) {
		Q_WARN("aae", "cannot start a tree builder thread");
		for (size_t i = 0; i < j->n; i++) {
			__atomic_store_n(&j->arcs[i]->building, 0, __ATOMIC_RELEASE);
			arc_unref(j->arcs[i]);
		}
		free(j->arcs);
		free(j);
		aae_slots_release(&na->slots);
		pthread_mutex_lock(&na->mu);
		na->builders--;
		pthread_mutex_unlock(&na->mu);
	}
	pthread_attr_destroy(&at);
}

/* Worker: follows the ring. New arcs get a tree loaded from its file (first
 * table only, with the start-up stamp) or a fresh one to build; arcs that
 * stay keep their tree; dropped arcs are forgotten. */
static void refresh_ring(node_aae *na)
{
	ring *r = NULL;
	if (coord_ring_snapshot(na->c, &r) < 0 || !r)
		return;
	uint64_t ver = ring_version(r), dig = ring_digest(r);
	if (na->have_ring && ver == na->ring_ver && dig == na->ring_dig) {
		ring_free(r);
		return;
	}
	ring_arc *ra = NULL;
	size_t nra = 0;
	int rc = ring_arcs(r, na->self, (size_t)na->n, 1, &ra, &nra);
	if (rc < 0) {
		ring_free(r);
		return;
	}
	arc **nt = calloc(nra ? nra : 1, sizeof(arc *));
	if (!nt) {
		free(ra);
		ring_free(r);
		return;
	}
	size_t nn = 0;
	pthread_rwlock_rdlock(&na->tmu);
	for (size_t i = 0; i < nra; i++) {
		ring_range rr = ra[i].range;
		unsigned d = depth_for(na, rr);
		arc *old = find_range(na, rr.start, rr.end);
		arc *a = calloc(1, sizeof(*a));
		if (!a)
			continue;
		a->r = rr;
		a->depth = d;
		a->refs = 1;
		for (uint32_t k = 0; k < ra[i].nreplicas; k++) {
			ring_member m;
			ring_member_get(r, ra[i].replicas[k], &m);
			if (strcmp(m.node, na->self) && a->npeers < RING_ARC_MAX_N)
				snprintf(a->peers[a->npeers++], MEMBER_ID_MAX + 1, "%s", m.node);
		}
		if (old && old->depth == d) {
			/* same arc: share the tree (the old entry keeps no
			 * ownership of it once it is dropped) */
			free(a);
			a = old;
			arc_ref(a);
			/* replica set may have changed: copy the new one */
			a->npeers = 0;
			for (uint32_t k = 0; k < ra[i].nreplicas; k++) {
				ring_member m;
				ring_member_get(r, ra[i].replicas[k], &m);
				if (strcmp(m.node, na->self) && a->npeers < RING_ARC_MAX_N)
					snprintf(a->peers[a->npeers++], MEMBER_ID_MAX + 1, "%s",
						 m.node);
			}
		} else {
			int lrc = -ENOENT;
			if (!na->have_ring && na->stamp_valid) {
				char path[4200];
				tree_path(na, rr, path, sizeof(path));
				lrc = aae_tree_load(q_env_posix(), path, d, rr.start, rr.end,
						    na->stamp_loaded, &a->t);
				if (lrc == 0) {
					a->built_ns = q_mono_ns();
					__atomic_add_fetch(&na->trees_loaded, 1, __ATOMIC_RELAXED);
				}
			}
			if (lrc < 0 && aae_tree_new(d, rr.start, rr.end, &a->t) < 0) {
				free(a);
				continue;
			}
		}
		nt[nn++] = a;
	}
	pthread_rwlock_unlock(&na->tmu);
	/* replica sets for the reaper */
	for (size_t i = 0; i < nn; i++) {
		const char *ps[RING_ARC_MAX_N];
		for (size_t k = 0; k < nt[i]->npeers; k++)
			ps[k] = nt[i]->peers[k];
		aae_reap_set_replicas(na->reap, nt[i]->r.start, nt[i]->r.end, ps, nt[i]->npeers);
	}
	/* swap */
	pthread_rwlock_wrlock(&na->tmu);
	arc **old = na->arcs;
	size_t nold = na->narcs;
	na->arcs = nt;
	na->narcs = nn;
	na->ring_ver = ver;
	na->ring_dig = dig;
	int first = !na->have_ring;
	na->have_ring = 1;
	pthread_rwlock_unlock(&na->tmu);
	for (size_t i = 0; i < nold; i++) {
		arc *o = old[i];
		int kept = 0;
		for (size_t k = 0; k < nn && !kept; k++)
			kept = nt[k] == o;
		if (!kept)
			aae_reap_forget_range(na->reap, o->r.start, o->r.end);
		arc_unref(o);
	}
	free(old);
	if (!first || nn)
		Q_INFO("aae", "ring v%llu: %zu arcs replicated here", (unsigned long long)ver, nn);
	free(ra);
	ring_free(r);
}

/* ------------------------------------------------------------------ */
/* talking to peers                                                    */

/* Peer's address if it is up; 0 or -1. */
static int peer_addr(node_aae *na, const char *id, char *addr, size_t cap)
{
	member *ms = NULL;
	size_t n = 0;
	uint64_t v;
	if (members_snapshot(na->mem, &ms, &n, &v) < 0)
		return -1;
	int rc = -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ms[i].id, id) && ms[i].state == MEMBER_UP) {
			snprintf(addr, cap, "%s", ms[i].addr);
			rc = 0;
		}
	free(ms);
	return rc;
}

static int is_stopping(node_aae *na)
{
	return __atomic_load_n(&na->stop, __ATOMIC_ACQUIRE);
}

/* Waits as the limiter says, in slices so stop stays prompt. */
static void charge(node_aae *na, aae_rate *rl, uint64_t bytes)
{
	uint64_t w = aae_rate_reserve(rl, q_mono_ns(), bytes);
	while (w > 0 && !is_stopping(na)) {
		uint64_t s = w > 50000000ULL ? 50000000ULL : w;
		q_sleep_ms(s / 1000000ULL ? s / 1000000ULL : 1);
		w -= s;
	}
}

/* One blocking request; *resp_buf holds the response blob on 0. */
static int call(node_aae *na, const char *addr, uint8_t type, const q_buf *req, q_buf *out)
{
	if (!na->pool || is_stopping(na))
		return Q_ECLOSED;
	net_msg m, resp;
	q_buf rb = Q_BUF_INIT;
	net_msg_init(&m, type);
	m.u.blob.payload = q_buf_slice(req);
	int rc = net_pool_call(na->loop, na->pool, addr, &m, na->timeout_ms, &resp, &rb);
	if (rc == 0) {
		out->len = 0;
		rc = q_buf_append(out, resp.u.blob.payload.p, resp.u.blob.payload.n);
	}
	net_msg_clear(&resp);
	q_buf_free(&rb);
	return rc;
}

typedef struct round_stats {
	uint64_t pairs, differing, failures, nodes, diffs, sent, received, xbytes, sbytes_out,
		sbytes_in;
} round_stats;

/* Runs fn(ctx, i) for i in [0, n) on up to AAE_MERGE_THREADS threads, so
 * the replica writes of a sync batch share the engine's group commit
 * instead of paying one fsync each in turn. Returns the first error. */
#define AAE_MERGE_THREADS 4
typedef int (*par_fn)(void *ctx, uint32_t i);
typedef struct par {
	par_fn fn;
	void *ctx;
	uint32_t n;
	uint32_t next; /* atomic */
	int rc;        /* atomic: first error */
} par;

static void *par_main(void *p)
{
	par *pp = p;
	for (;;) {
		uint32_t i = __atomic_fetch_add(&pp->next, 1, __ATOMIC_RELAXED);
		if (i >= pp->n || __atomic_load_n(&pp->rc, __ATOMIC_RELAXED) < 0)
			break;
		int rc = pp->fn(pp->ctx, i);
		if (rc < 0) {
			int zero = 0;
			__atomic_compare_exchange_n(&pp->rc, &zero, rc, 0, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static int par_run(par_fn fn, void *ctx, uint32_t n, int threads)
{
	par pp = {fn, ctx, n, 0, 0};
	pthread_t th[AAE_MERGE_THREADS];
	int started = 0;
	if (threads > AAE_MERGE_THREADS)
		threads = AAE_MERGE_THREADS;
	for (int t = 1; t < threads && (uint32_t)t < n; t++)
		if (pthread_create(&th[started], NULL, par_main, &pp) == 0)
			started++;
	par_main(&pp);
	for (int t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	return pp.rc;
}

typedef struct pull_ctx {
	node_aae *na;
	aae_sync_msg *m;
	const aae_sync_item *asked;
	const char *addr;
	uint64_t received, bytes; /* atomic */
} pull_ctx;

/* Initiator: merge one object the peer sent back. */
static int pull_one(void *p, uint32_t k)
{
	pull_ctx *c = p;
	aae_sync_item *it = &c->m->items[k];
	if (!it->has)
		return 0;
	if (!q_slice_eq(it->key, c->asked[k].key))
		return Q_EPROTO;
	obj_set *in = NULL;
	int drc = obj_set_decode(it->object.p, it->object.n, &in);
	if (drc < 0) {
		Q_WARN("aae", "peer %s sent an object that does not decode: %s", c->addr,
		       q_strerror(drc));
		return 0;
	}
	int rc = replica_merge(c->na->rep, it->key, in, NULL);
	obj_set_free(in);
	if (rc == 0) {
		__atomic_add_fetch(&c->received, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->bytes, it->object.n, __ATOMIC_RELAXED);
	}
	return rc;
}

/* Copies the differing keys both ways (docs/aae.md "Sync"). */
static int sync_diffs(node_aae *na, const char *addr, aae_exchange *x, aae_rate *rl,
		      round_stats *rs, q_slice **blocking, size_t *nblocking)
{
	size_t nd = aae_exchange_ndiffs(x);
	int rc = 0;
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	q_buf *objs = calloc(AAE_SYNC_BATCH_KEYS, sizeof(q_buf));
	aae_sync_item *items = calloc(AAE_SYNC_BATCH_KEYS, sizeof(*items));
	q_slice *blk = calloc(nd ? nd : 1, sizeof(q_slice));
	size_t nblk = 0;
	if (!objs || !items || !blk) {
		rc = -ENOMEM;
		goto out;
	}
	int64_t now = (int64_t)q_wall_ns();
	size_t i = 0;
	while (i < nd && rc == 0 && !is_stopping(na)) {
		uint32_t n = 0;
		size_t bytes = 0;
		for (; i < nd && n < AAE_SYNC_BATCH_KEYS && bytes < AAE_SYNC_BATCH_BYTES; i++) {
			aae_diff d;
			aae_exchange_diff(x, i, &d);
			aae_sync_item *it = &items[n];
			it->key = d.key;
			it->has = 0;
			objs[n].len = 0;
			int blocks = 1;
			if (d.local_has) {
				int g = replica_get_raw(na->rep, d.key, &objs[n]);
				if (g == 0 && objs[n].len > 0) {
					obj_set *s = NULL;
					int tomb_only = obj_set_decode(objs[n].p, objs[n].len, &s) == 0 &&
							obj_set_tombstone_only(s);
					obj_set_free(s);
					if (tomb_only && !d.remote_has) {
						/* peer lacks the key, we hold only a
						 * tombstone: no live value there */
						blocks = 0;
						int64_t tn = tomb_get(na, d.key);
						if (tn >= 0 && now - tn >= na->grace_ns)
							continue; /* old: not worth copying */
					}
					it->has = 1;
					it->object = q_buf_slice(&objs[n]);
					bytes += objs[n].len;
				}
			}
			if (blocks)
				blk[nblk++] = d.key;
			n++;
		}
		if (n == 0)
			continue;
		req.len = 0;
		rc = aae_sync_encode(&req, AAE_SYNC_KIND_REQ, 0, items, n);
		if (rc < 0)
			break;
		/* every key costs a replica write on one side or the other:
		 * charge at least a page per key, so many small objects are
		 * limited like their I/O, not like their few bytes */
		charge(na, rl, req.len + (uint64_t)n * AAE_KEY_COST);
		rc = call(na, addr, NET_MSG_AAE_SYNC, &req, &resp);
		if (rc < 0)
			break;
		for (uint32_t k = 0; k < n; k++)
			if (items[k].has) {
				rs->sent++;
				rs->sbytes_out += items[k].object.n;
				__atomic_add_fetch(&na->keys_sent, 1, __ATOMIC_RELAXED);
				__atomic_add_fetch(&na->bytes_sync, items[k].object.n,
						   __ATOMIC_RELAXED);
			}
		aae_sync_msg m;
		rc = aae_sync_decode(resp.p, resp.len, &m);
		if (rc < 0)
			break;
		if (m.kind != AAE_SYNC_KIND_RESP || m.n != n) {
			aae_sync_msg_free(&m);
			rc = Q_EPROTO;
			break;
		}
		charge(na, rl, resp.len);
		pull_ctx pc = {na, &m, items, addr, 0, 0};
		/* on-demand repair merges on all threads; background work on
		 * one, so it competes less with foreground writes */
		rc = par_run(pull_one, &pc, m.n, rl == &na->repair_rl ? AAE_MERGE_THREADS : 1);
		rs->received += pc.received;
		rs->sbytes_in += pc.bytes;
		/* node totals as batches finish, so status shows a long sync */
		__atomic_add_fetch(&na->keys_received, pc.received, __ATOMIC_RELAXED);
		__atomic_add_fetch(&na->bytes_sync, pc.bytes, __ATOMIC_RELAXED);
		aae_sync_msg_free(&m);
	}
out:
	if (objs)
		for (size_t k = 0; k < AAE_SYNC_BATCH_KEYS; k++)
			q_buf_free(&objs[k]);
	free(objs);
	free(items);
	q_buf_free(&req);
	q_buf_free(&resp);
	if (rc == 0) {
		*blocking = blk;
		*nblocking = nblk;
	} else {
		free(blk);
	}
	return rc;
}

/* One full exchange of arc a with peer at addr, then its sync. */
static int run_exchange(node_aae *na, arc *a, const char *peer, const char *addr,
			aae_rate *rl, round_stats *rs)
{
	aae_exchange_opts o;
	aae_exchange_opts_default(&o);
	o.max_diffs = (size_t)na->max_diffs;
	int64_t started = (int64_t)q_wall_ns();
	aae_exchange *x = NULL;
	static uint64_t xid_ctr;
	uint64_t xid = __atomic_add_fetch(&xid_ctr, 1, __ATOMIC_RELAXED) ^ q_mono_ns();
	int rc = aae_exchange_new(a->t, &na->src, &o, xid, &x);
	if (rc < 0)
		return rc;
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	for (;;) {
		req.len = 0;
		rc = aae_exchange_next(x, &req);
		if (rc <= 0)
			break;
		charge(na, rl, req.len);
		rc = call(na, addr, NET_MSG_AAE, &req, &resp);
		if (rc < 0) {
			aae_exchange_abort(x, rc);
			break;
		}
		charge(na, rl, resp.len);
		rc = aae_exchange_consume(x, resp.p, resp.len);
		if (rc < 0)
			break;
	}
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	rs->nodes += st.nodes_compared;
	rs->xbytes += st.bytes_sent + st.bytes_received;
	__atomic_add_fetch(&na->leaves_fixed, st.leaves_fixed, __ATOMIC_RELAXED);
	q_slice *blk = NULL;
	size_t nblk = 0;
	if (rc == 0 && aae_exchange_state(x) == AAE_X_DONE) {
		rs->diffs += st.diffs;
		rc = sync_diffs(na, addr, x, rl, rs, &blk, &nblk);
	} else if (rc == 0) {
		rc = aae_exchange_error(x) ? aae_exchange_error(x) : Q_EPROTO;
	}
	int complete = rc == 0 && !st.truncated;
	aae_reap_record(na->reap, a->r.start, a->r.end, peer, started, complete, blk, nblk);
	free(blk);
	__atomic_add_fetch(&na->exchanges, 1, __ATOMIC_RELAXED);
	if (rc < 0)
		__atomic_add_fetch(&na->exchange_failures, 1, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&na->last_exchange_ns, q_mono_ns(), __ATOMIC_RELAXED);
	aae_exchange_free(x);
	q_buf_free(&req);
	q_buf_free(&resp);
	return rc;
}

/* Arcs shared with peer (ready trees, inside the filter when given),
 * referenced; caller unrefs and frees. */
static arc **shared_arcs(node_aae *na, const char *peer, const aae_repair_req *flt, size_t *n)
{
	*n = 0;
	pthread_rwlock_rdlock(&na->tmu);
	arc **v = calloc(na->narcs ? na->narcs : 1, sizeof(arc *));
	for (size_t i = 0; v && i < na->narcs; i++) {
		arc *a = na->arcs[i];
		int has = 0;
		for (size_t k = 0; k < a->npeers; k++)
			has |= !strcmp(a->peers[k], peer);
		if (!has || !aae_tree_ready(a->t))
			continue;
		if (flt && flt->has_range) {
			/* arcs overlapping the asked range: either end inside */
			ring_range q = {flt->start, flt->end};
			int ov = q.start == q.end || a->r.start == a->r.end ||
				 ring_range_contains(q, a->r.end) ||
				 ring_range_contains(a->r, q.end);
			if (!ov)
				continue;
		}
		arc_ref(a);
		v[(*n)++] = a;
	}
	pthread_rwlock_unlock(&na->tmu);
	return v;
}

/* Compares every shared arc with one peer: one ROOTS round trip per 4096
 * arcs, then exchanges for the differing ones. prog (may be NULL) is the
 * repair job to update as pairs finish. Returns pairs failed. */
static uint64_t round_with_peer(node_aae *na, const char *peer, const aae_repair_req *flt,
				aae_rate *rl, round_stats *rs, int repair)
{
	char addr[MEMBER_ADDR_MAX + 1];
	size_t n = 0;
	arc **v = shared_arcs(na, peer, flt, &n);
	if (!v)
		return 0;
	uint64_t failed = 0;
	int up = peer_addr(na, peer, addr, sizeof(addr)) == 0;
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	for (size_t off = 0; off < n && !is_stopping(na); off += AAE_MAX_RANGES_PER_MSG) {
		size_t m = n - off < AAE_MAX_RANGES_PER_MSG ? n - off : AAE_MAX_RANGES_PER_MSG;
		aae_tree **trees = calloc(m, sizeof(*trees));
		int *cmp = calloc(m, sizeof(int));
		int rc = trees && cmp ? 0 : -ENOMEM;
		for (size_t i = 0; rc == 0 && i < m; i++)
			trees[i] = v[off + i]->t;
		int64_t started = (int64_t)q_wall_ns();
		uint64_t xid = q_mono_ns();
		if (rc == 0 && !up)
			rc = Q_EQUORUM;
		if (rc == 0) {
			req.len = 0;
			rc = aae_roots_request(trees, m, xid, &req);
		}
		if (rc == 0) {
			charge(na, rl, req.len);
			rc = call(na, addr, NET_MSG_AAE, &req, &resp);
		}
		if (rc == 0) {
			charge(na, rl, resp.len);
			rs->xbytes += req.len + resp.len;
			rc = aae_roots_compare(trees, m, xid, resp.p, resp.len, cmp);
			if (rc == 0)
				__atomic_store_n(&na->last_exchange_ns, q_mono_ns(),
						 __ATOMIC_RELAXED);
		}
		for (size_t i = 0; i < m; i++) {
			arc *a = v[off + i];
			rs->pairs++;
			if (rc < 0 || cmp[i] < 0) {
				rs->failures++;
				failed++;
				aae_reap_record(na->reap, a->r.start, a->r.end, peer, started, 0,
						NULL, 0);
			} else if (cmp[i] == 0) {
				rs->nodes++;
				aae_reap_record(na->reap, a->r.start, a->r.end, peer, started, 1,
						NULL, 0);
			} else {
				rs->differing++;
				rs->nodes++;
				if (is_stopping(na) ||
				    run_exchange(na, a, peer, addr, rl, rs) < 0) {
					rs->failures++;
					failed++;
				}
			}
			if (repair) {
				pthread_mutex_lock(&na->mu);
				na->job.ranges_done++;
				na->job.ranges_differing = rs->differing;
				na->job.failures = rs->failures;
				na->job.nodes_compared = rs->nodes;
				na->job.keys_differing = rs->diffs;
				na->job.keys_sent = rs->sent;
				na->job.keys_received = rs->received;
				na->job.bytes_exchange = rs->xbytes;
				na->job.bytes_sent = rs->sbytes_out;
				na->job.bytes_received = rs->sbytes_in;
				pthread_mutex_unlock(&na->mu);
			}
		}
		if (rc < 0)
			Q_DEBUG("aae", "roots with %s: %s", peer, q_strerror(rc));
		free(trees);
		free(cmp);
	}
	for (size_t i = 0; i < n; i++)
		arc_unref(v[i]);
	free(v);
	q_buf_free(&req);
	q_buf_free(&resp);
	__atomic_add_fetch(&na->rounds, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&na->mu);
	size_t k = 0;
	while (k < na->npeerst && strcmp(na->peerst[k].id, peer))
		k++;
	if (k == na->npeerst && k < AAE_PEER_STATS) {
		memset(&na->peerst[k], 0, sizeof(na->peerst[k]));
		snprintf(na->peerst[k].id, sizeof(na->peerst[k].id), "%s", peer);
		na->npeerst++;
	}
	if (k < na->npeerst) {
		na->peerst[k].rounds++;
		na->peerst[k].failed_pairs += failed;
		if (!failed && n > 0)
			na->peerst[k].last_ok_ns = q_mono_ns();
	}
	pthread_mutex_unlock(&na->mu);
	return failed;
}

static void add_totals(node_aae *na, const round_stats *rs)
{
	/* keys and bytes synced are added as each batch finishes */
	__atomic_add_fetch(&na->keys_differing, rs->diffs, __ATOMIC_RELAXED);
	__atomic_add_fetch(&na->bytes_exchange, rs->xbytes, __ATOMIC_RELAXED);
}

/* Distinct peers of all arcs (ids), sorted; caller frees. */
static size_t all_peers(node_aae *na, char (**out)[MEMBER_ID_MAX + 1])
{
	pthread_rwlock_rdlock(&na->tmu);
	size_t cap = 0;
	for (size_t i = 0; i < na->narcs; i++)
		cap += na->arcs[i]->npeers;
	char(*v)[MEMBER_ID_MAX + 1] = calloc(cap ? cap : 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; v && i < na->narcs; i++)
		for (size_t k = 0; k < na->arcs[i]->npeers; k++) {
			size_t j = 0;
			while (j < n && strcmp(v[j], na->arcs[i]->peers[k]))
				j++;
			if (j == n)
				snprintf(v[n++], MEMBER_ID_MAX + 1, "%s", na->arcs[i]->peers[k]);
		}
	pthread_rwlock_unlock(&na->tmu);
	qsort(v, n, sizeof(*v), (int (*)(const void *, const void *))strcmp);
	*out = v;
	return v ? n : 0;
}

/* The on-demand repair: every shared arc (or those in the range) with
 * every peer, at the repair rate. */
static void run_repair(node_aae *na, aae_repair_req q)
{
	char(*peers)[MEMBER_ID_MAX + 1] = NULL;
	size_t np = all_peers(na, &peers);
	uint64_t total = 0;
	for (size_t i = 0; i < np; i++) {
		size_t n = 0;
		arc **v = shared_arcs(na, peers[i], &q, &n);
		for (size_t k = 0; k < n; k++)
			arc_unref(v[k]);
		free(v);
		total += n;
	}
	pthread_mutex_lock(&na->mu);
	na->job.ranges_total = total;
	pthread_mutex_unlock(&na->mu);
	round_stats rs;
	memset(&rs, 0, sizeof(rs));
	uint64_t failed = 0;
	for (size_t i = 0; i < np && !is_stopping(na); i++)
		failed += round_with_peer(na, peers[i], &q, &na->repair_rl, &rs, 1);
	/* trees not ready yet count as failures: nothing was compared */
	pthread_rwlock_rdlock(&na->tmu);
	uint64_t notready = 0;
	for (size_t i = 0; i < na->narcs; i++)
		if (!aae_tree_ready(na->arcs[i]->t))
			notready += na->arcs[i]->npeers;
	pthread_rwlock_unlock(&na->tmu);
	add_totals(na, &rs);
	pthread_mutex_lock(&na->mu);
	na->job.failures = rs.failures + notready;
	na->job.ranges_total += notready;
	na->job.ranges_done += notready;
	na->job.elapsed_ms = (q_mono_ns() - na->job_start_ns) / 1000000ULL;
	na->job.state = failed || notready ? AAE_REPAIR_PARTIAL : AAE_REPAIR_DONE;
	pthread_mutex_unlock(&na->mu);
	Q_INFO("aae",
	       "repair %llu: %llu range pairs, %llu differing, %llu keys differing, %llu sent, "
	       "%llu received, %llu failed",
	       (unsigned long long)na->job.job, (unsigned long long)rs.pairs,
	       (unsigned long long)rs.differing, (unsigned long long)rs.diffs,
	       (unsigned long long)rs.sent, (unsigned long long)rs.received,
	       (unsigned long long)(failed + notready));
	free(peers);
}

/* Background: one round with the next peer (round robin). */
static void background_round(node_aae *na)
{
	char(*peers)[MEMBER_ID_MAX + 1] = NULL;
	size_t np = all_peers(na, &peers);
	if (np > 0) {
		const char *p = peers[na->rr_peer++ % np];
		round_stats rs;
		memset(&rs, 0, sizeof(rs));
		round_with_peer(na, p, NULL, &na->rl, &rs, 0);
		add_totals(na, &rs);
		if (rs.diffs)
			Q_INFO("aae", "background exchange with %s: %llu keys differed, %llu sent, "
				      "%llu received", p, (unsigned long long)rs.diffs,
			       (unsigned long long)rs.sent, (unsigned long long)rs.received);
	}
	free(peers);
}

/* ------------------------------------------------------------------ */
/* tombstone reaping                                                   */

/* Refills the tombstone table from a data scan (start-up). */
static void scan_tombstones(node_aae *na)
{
	lsm_iter *it = NULL;
	if (lsm_iter_new(na->db, &it) < 0)
		return;
	uint8_t ks = LSM_KS_DATA;
	int64_t now = (int64_t)q_wall_ns();
	size_t found = 0;
	for (lsm_iter_seek(it, q_slice_make(&ks, 1)); lsm_iter_valid(it) && !is_stopping(na);
	     lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it);
		if (k.n < 1 || k.p[0] != LSM_KS_DATA)
			break;
		q_slice v = lsm_iter_value(it);
		obj_set *s = NULL;
		if (obj_set_decode(v.p, v.n, &s) == 0 && obj_set_tombstone_only(s)) {
			tomb_set(na, q_slice_make(k.p + 1, k.n - 1), now, 1);
			found++;
		}
		obj_set_free(s);
	}
	lsm_iter_free(it);
	if (found)
		Q_INFO("aae", "%zu tombstones found at start-up; grace period starts now", found);
}

static void sweep(node_aae *na)
{
	int64_t now = (int64_t)q_wall_ns();
	/* candidates (copies) past the grace period */
	typedef struct cand {
		q_buf key;
		int64_t tomb_ns;
	} cand;
	cand *c = NULL;
	size_t nc = 0, cap = 0;
	pthread_mutex_lock(&na->tombmu);
	for (size_t b = 0; b < TOMB_BUCKETS && nc < 4096; b++)
		for (tomb *t = na->toms[b]; t && nc < 4096; t = t->next) {
			if (now - t->tomb_ns < na->grace_ns)
				continue;
			if (nc == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				cand *nv = realloc(c, ncap * sizeof(*c));
				if (!nv)
					break;
				c = nv;
				cap = ncap;
			}
			q_buf_init(&c[nc].key);
			q_buf_append(&c[nc].key, t->key, t->n);
			c[nc].tomb_ns = t->tomb_ns;
			nc++;
		}
	pthread_mutex_unlock(&na->tombmu);
	for (size_t i = 0; i < nc; i++) {
		q_slice key = q_buf_slice(&c[i].key);
		ring_range r = {0, 0};
		int found = 0;
		pthread_rwlock_rdlock(&na->tmu);
		arc *a = find_point(na, ring_key_hash(key.p, key.n));
		if (a) {
			r = a->r;
			found = 1;
		}
		pthread_rwlock_unlock(&na->tmu);
		if (!found)
			continue; /* not replicated here (a hint): leave it */
		if (aae_can_reap(na->reap, r.start, r.end, key, 1, c[i].tomb_ns, now) != 1)
			continue;
		obj_set *s = NULL;
		if (replica_get(na->rep, key, &s) == 0 && obj_set_tombstone_only(s)) {
			int rc = replica_remove_if(na->rep, key, obj_set_digest(s));
			if (rc == 1)
				__atomic_add_fetch(&na->reaped, 1, __ATOMIC_RELAXED);
		}
		obj_set_free(s);
	}
	for (size_t i = 0; i < nc; i++)
		q_buf_free(&c[i].key);
	free(c);
}

/* ------------------------------------------------------------------ */
/* the worker                                                          */

static void *worker_main(void *p)
{
	node_aae *na = p;
	scan_tombstones(na);
	uint64_t next_bg = q_mono_ms() + na->interval_ms;
	uint64_t next_sweep = q_mono_ms() + AAE_SWEEP_MS;
	while (!is_stopping(na)) {
		refresh_ring(na);
		maybe_build(na);
		pthread_mutex_lock(&na->mu);
		int rep = na->repair_pending;
		aae_repair_req q = na->repair_req;
		na->repair_pending = 0;
		pthread_mutex_unlock(&na->mu);
		if (rep)
			run_repair(na, q);
		uint64_t now = q_mono_ms();
		if (na->enabled && now >= next_bg) {
			background_round(na);
			next_bg = q_mono_ms() + na->interval_ms;
		}
		if (now >= next_sweep) {
			sweep(na);
			next_sweep = q_mono_ms() + AAE_SWEEP_MS;
		}
		pthread_mutex_lock(&na->mu);
		if (!na->stop && !na->repair_pending) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)AAE_TICK_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&na->cv, &na->mu, &ts);
		}
		pthread_mutex_unlock(&na->mu);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* serving peers (loop thread + libuv workers)                         */

typedef struct serve_job {
	uv_work_t w;
	node_aae *na;
	net_request *req;
	uint8_t type;
	q_buf resp;
	int rc;
} serve_job;

static aae_tree *lookup_tree(void *ctx, uint64_t s, uint64_t e)
{
	arc *a = find_range(ctx, s, e);
	return a ? a->t : NULL;
}

static void serve_aae(serve_job *j)
{
	node_aae *na = j->na;
	q_slice p = j->req->msg.u.blob.payload;
	pthread_rwlock_rdlock(&na->tmu);
	j->rc = aae_serve_node(lookup_tree, na, &na->src, p.p, p.n, AAE_ANSWER_BUDGET, &j->resp);
	pthread_rwlock_unlock(&na->tmu);
	if (j->rc == 0 && j->resp.len == 0)
		j->rc = Q_EPROTO;
}

typedef struct serve_ctx {
	node_aae *na;
	aae_sync_msg *m;
	aae_sync_item *out;
	q_buf *objs;
	int64_t now;
} serve_ctx;

/* Peer: merge one incoming object (or read the key) and decide whether to
 * send the stored set back. */
static int serve_one(void *p, uint32_t i)
{
	serve_ctx *c = p;
	node_aae *na = c->na;
	aae_sync_item *it = &c->m->items[i];
	c->out[i].key = it->key;
	obj_set *in = NULL, *stored = NULL;
	int rc;
	if (it->has) {
		if (obj_set_decode(it->object.p, it->object.n, &in) < 0)
			return Q_EPROTO;
		rc = replica_merge(na->rep, it->key, in, &stored);
		if (rc == 0) {
			__atomic_add_fetch(&na->keys_received, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&na->bytes_sync, it->object.n, __ATOMIC_RELAXED);
		}
	} else {
		rc = replica_get(na->rep, it->key, &stored);
		if (rc == Q_ENOTFOUND)
			rc = 0;
	}
	if (rc == 0 && stored && (!in || obj_set_digest(in) != obj_set_digest(stored))) {
		int send = 1;
		if (!in && obj_set_tombstone_only(stored)) {
			/* the asker lacks the key; an old tombstone is not worth
			 * copying (it would only be reaped again) */
			int64_t tn = tomb_get(na, it->key);
			if (tn >= 0 && c->now - tn >= na->grace_ns)
				send = 0;
		}
		if (send) {
			rc = obj_set_encode(stored, &c->objs[i]);
			c->out[i].has = 1;
			c->out[i].object = q_buf_slice(&c->objs[i]);
			__atomic_add_fetch(&na->keys_sent, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&na->bytes_sync, c->objs[i].len, __ATOMIC_RELAXED);
		}
	}
	obj_set_free(in);
	obj_set_free(stored);
	return rc;
}

static void serve_sync(serve_job *j)
{
	node_aae *na = j->na;
	q_slice p = j->req->msg.u.blob.payload;
	aae_sync_msg m;
	j->rc = aae_sync_decode(p.p, p.n, &m);
	if (j->rc < 0)
		return;
	if (m.kind != AAE_SYNC_KIND_REQ) {
		aae_sync_msg_free(&m);
		j->rc = Q_EPROTO;
		return;
	}
	aae_sync_item *out = calloc(m.n, sizeof(*out));
	q_buf *objs = calloc(m.n, sizeof(q_buf));
	int rc = out && objs ? 0 : -ENOMEM;
	serve_ctx sc = {na, &m, out, objs, (int64_t)q_wall_ns()};
	if (rc == 0)
		rc = par_run(serve_one, &sc, m.n, AAE_MERGE_THREADS / 2);
	if (rc == 0)
		rc = aae_sync_encode(&j->resp, AAE_SYNC_KIND_RESP, m.xid, out, m.n);
	for (uint32_t i = 0; objs && i < m.n; i++)
		q_buf_free(&objs[i]);
	free(objs);
	free(out);
	aae_sync_msg_free(&m);
	j->rc = rc;
}

static void work_cb(uv_work_t *w)
{
	serve_job *j = w->data;
	if (j->type == NET_MSG_AAE)
		serve_aae(j);
	else
		serve_sync(j);
}

static void after_cb(uv_work_t *w, int status)
{
	serve_job *j = w->data;
	if (status < 0 || j->rc < 0) {
		net_reply_error(j->req, status < 0 ? Q_ECLOSED : j->rc, "anti-entropy request failed");
	} else {
		net_msg m;
		net_msg_init(&m, j->type == NET_MSG_AAE ? NET_MSG_AAE_RESP : NET_MSG_AAE_SYNC_RESP);
		m.u.blob.payload = q_buf_slice(&j->resp);
		net_reply_send(j->req, &m);
	}
	q_buf_free(&j->resp);
	free(j);
}

static void reply_status(node_aae *na, net_request *req)
{
	q_buf b = Q_BUF_INIT;
	pthread_mutex_lock(&na->mu);
	aae_repair_status s = na->job;
	if (s.state == AAE_REPAIR_RUNNING)
		s.elapsed_ms = (q_mono_ns() - na->job_start_ns) / 1000000ULL;
	pthread_mutex_unlock(&na->mu);
	int rc = aae_repair_status_encode(&b, &s);
	if (rc < 0) {
		net_reply_error(req, rc, "repair status");
	} else {
		net_msg m;
		net_msg_init(&m, NET_MSG_AAE_REPAIR_RESP);
		m.u.blob.payload = q_buf_slice(&b);
		net_reply_send(req, &m);
	}
	q_buf_free(&b);
}

static void handle(void *arg, net_request *req)
{
	node_aae *na = arg;
	if (is_stopping(na) || !na->pool) {
		net_reply_error(req, Q_ECLOSED, "anti-entropy not running");
		return;
	}
	if (req->type == NET_MSG_AAE_REPAIR) {
		aae_repair_req q;
		q_slice p = req->msg.u.blob.payload;
		int rc = aae_repair_req_decode(p.p, p.n, &q);
		if (rc < 0) {
			net_reply_error(req, rc, "bad repair request");
			return;
		}
		if (q.op == AAE_REPAIR_START) {
			pthread_mutex_lock(&na->mu);
			if (na->job.state == AAE_REPAIR_RUNNING) {
				pthread_mutex_unlock(&na->mu);
				net_reply_error(req, Q_EBUSY, "a repair is already running");
				return;
			}
			memset(&na->job, 0, sizeof(na->job));
			na->job.state = AAE_REPAIR_RUNNING;
			na->job.job = ++na->next_job;
			na->job_start_ns = q_mono_ns();
			na->repair_req = q;
			na->repair_pending = 1;
			pthread_cond_broadcast(&na->cv);
			pthread_mutex_unlock(&na->mu);
		}
		reply_status(na, req);
		return;
	}
	if (req->type != NET_MSG_AAE && req->type != NET_MSG_AAE_SYNC) {
		net_reply_error(req, Q_EPROTO, "request type not served by this node");
		return;
	}
	serve_job *j = calloc(1, sizeof(*j));
	if (!j) {
		net_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	j->na = na;
	j->req = req;
	j->type = req->type;
	j->w.data = j;
	q_buf_init(&j->resp);
	int rc = uv_queue_work(net_loop_uv(na->loop), &j->w, work_cb, after_cb);
	if (rc < 0) {
		net_reply_error(req, Q_EBUSY, "cannot queue the anti-entropy request");
		free(j);
	}
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                           */

static int conf_err(char *err, size_t cap, q_conf *conf, int rc)
{
	snprintf(err, cap, "config: %s", q_conf_error(conf));
	return rc;
}

int node_aae_new(q_conf *conf, const node_aae_config *cfg, char *err, size_t errcap,
		 node_aae **out)
{
	int rc;
	err[0] = 0;
	node_aae *na = calloc(1, sizeof(*na));
	if (!na)
		return -ENOMEM;
	na->c = cfg->c;
	na->rep = cfg->rep;
	na->db = cfg->db;
	na->mem = cfg->mem;
	na->loop = cfg->loop;
	na->n = cfg->n;
	snprintf(na->self, sizeof(na->self), "%s", cfg->self_id);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&na->tmu, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&na->tombmu, NULL);
	pthread_mutex_init(&na->mu, NULL);
	pthread_cond_init(&na->cv, NULL);
	aae_lsm_keysrc(&na->src, na->db);

	uint64_t depth, builds, grace_ms, maxd;
	if ((rc = q_conf_get_bool(conf, "aae", 1, &na->enabled)) < 0 ||
	    (rc = q_conf_get_u64(conf, "aae_depth", 0, &depth)) < 0 ||
	    (rc = q_conf_get_ms(conf, "aae_interval", 60000, &na->interval_ms)) < 0 ||
	    (rc = q_conf_get_size(conf, "aae_rate", 8ULL << 20, &na->rate)) < 0 ||
	    (rc = q_conf_get_size(conf, "aae_burst", 0, &na->burst)) < 0 ||
	    (rc = q_conf_get_size(conf, "aae_repair_rate", 0, &na->repair_rate)) < 0 ||
	    (rc = q_conf_get_u64(conf, "aae_builds", 1, &builds)) < 0 ||
	    (rc = q_conf_get_ms(conf, "aae_rebuild_interval", 7ULL * 24 * 3600 * 1000,
				&na->rebuild_ms)) < 0 ||
	    (rc = q_conf_get_ms(conf, "aae_tombstone_grace", 10ULL * 24 * 3600 * 1000,
				&grace_ms)) < 0 ||
	    (rc = q_conf_get_u64(conf, "aae_max_diffs", 1000000, &maxd)) < 0 ||
	    (rc = q_conf_get_ms(conf, "aae_timeout", 10000, &na->timeout_ms)) < 0) {
		conf_err(err, errcap, conf, rc);
		goto fail;
	}
	rc = -EINVAL;
	if (depth && (depth < AAE_DEPTH_MIN || depth > AAE_DEPTH_MAX)) {
		snprintf(err, errcap, "config: aae_depth must be 0 (automatic) or %u..%u",
			 AAE_DEPTH_MIN, AAE_DEPTH_MAX);
		goto fail;
	}
	if (builds < 1 || builds > 64) {
		snprintf(err, errcap, "config: aae_builds must be 1..64");
		goto fail;
	}
	if (na->interval_ms < 10 || maxd < 1) {
		snprintf(err, errcap, "config: aae_interval must be >= 10ms, aae_max_diffs >= 1");
		goto fail;
	}
	na->depth_cfg = (unsigned)depth;
	na->builds = (unsigned)builds;
	na->grace_ns = (int64_t)grace_ms * 1000000LL;
	na->max_diffs = maxd;
	uint64_t now = q_mono_ns();
	if ((rc = aae_rate_init(&na->rl, na->rate, na->burst, now)) < 0 ||
	    (rc = aae_rate_init(&na->repair_rl, na->repair_rate, 0, now)) < 0 ||
	    (rc = aae_slots_init(&na->slots, na->builds)) < 0 ||
	    (rc = aae_reap_new(na->grace_ns, &na->reap)) < 0)
		goto fail;

	size_t dl = strlen(cfg->data_dir) + 8;
	na->tree_dir = malloc(dl);
	rc = -ENOMEM;
	if (!na->tree_dir)
		goto fail;
	snprintf(na->tree_dir, dl, "%s/aae", cfg->data_dir);
	rc = q_env_mkdirs(q_env_posix(), na->tree_dir);
	if (rc < 0) {
		snprintf(err, errcap, "cannot create %s: %s", na->tree_dir, q_strerror(rc));
		goto fail;
	}
	/* the stamp saved trees must match; then a new one, so a crash from
	 * here on leaves files nothing matches */
	{
		q_buf k = Q_BUF_INIT, v = Q_BUF_INIT;
		stamp_key(&k);
		if (lsm_get(na->db, q_buf_slice(&k), &v) == 0 && v.len == 8) {
			na->stamp_loaded = q_dec_fixed64(v.p);
			na->stamp_valid = 1;
		}
		q_buf_free(&k);
		q_buf_free(&v);
		rc = stamp_write(na, random_stamp());
		if (rc < 0) {
			snprintf(err, errcap, "cannot write the tree stamp: %s", q_strerror(rc));
			goto fail;
		}
	}
	rc = coord_set_msg_hook(na->c, NET_MSG_AAE_FIRST, NET_MSG_AAE_LAST, handle, na);
	if (rc < 0) {
		snprintf(err, errcap, "cannot register the anti-entropy messages: %s",
			 q_strerror(rc));
		goto fail;
	}
	replica_hooks h = {hook_batch, hook_after, na};
	replica_set_hooks(na->rep, &h);
	/* the first arc table before any write is accepted: the only moment
	 * saved trees (matching the store as it was at shutdown) may load */
	refresh_ring(na);
	*out = na;
	return 0;
fail:
	node_aae_free(na);
	return rc;
}

int node_aae_start(node_aae *na)
{
	na->pool = coord_pool(na->c);
	if (!na->pool)
		return Q_ECLOSED;
	if (pthread_create(&na->worker, NULL, worker_main, na) != 0)
		return -EAGAIN;
	na->worker_on = 1;
	Q_INFO("aae", "anti-entropy %s: interval %llu ms, rate %llu B/s, grace %lld ms",
	       na->enabled ? "on" : "off (repair on demand only)",
	       (unsigned long long)na->interval_ms, (unsigned long long)na->rate,
	       (long long)(na->grace_ns / 1000000LL));
	return 0;
}

void node_aae_stop(node_aae *na)
{
	if (!na)
		return;
	pthread_mutex_lock(&na->mu);
	__atomic_store_n(&na->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&na->cv);
	pthread_mutex_unlock(&na->mu);
	if (na->worker_on) {
		pthread_join(na->worker, NULL);
		na->worker_on = 0;
	}
	/* builders finish their scan (bounded by the store size) */
	pthread_mutex_lock(&na->mu);
	while (na->builders > 0)
		pthread_cond_wait(&na->cv, &na->mu);
	pthread_mutex_unlock(&na->mu);
	na->pool = NULL;
}

int node_aae_save(node_aae *na)
{
	if (!na)
		return 0;
	uint64_t stamp = random_stamp();
	size_t saved = 0;
	int rc = 0;
	pthread_rwlock_rdlock(&na->tmu);
	for (size_t i = 0; i < na->narcs; i++) {
		arc *a = na->arcs[i];
		if (!aae_tree_ready(a->t) || aae_tree_rebuilding(a->t))
			continue;
		char path[4200];
		tree_path(na, a->r, path, sizeof(path));
		int src = aae_tree_save(a->t, q_env_posix(), path, stamp);
		if (src < 0) {
			Q_WARN("aae", "saving %s: %s (rebuilt at start)", path, q_strerror(src));
			rc = src;
		} else {
			saved++;
		}
	}
	pthread_rwlock_unlock(&na->tmu);
	if (saved) {
		int src = stamp_write(na, stamp);
		if (src < 0)
			rc = src;
		else
			Q_INFO("aae", "saved %zu trees", saved);
	}
	return rc;
}

void node_aae_free(node_aae *na)
{
	if (!na)
		return;
	node_aae_stop(na);
	if (na->rep)
		replica_set_hooks(na->rep, NULL);
	for (size_t i = 0; i < na->narcs; i++)
		arc_unref(na->arcs[i]);
	free(na->arcs);
	for (size_t b = 0; b < TOMB_BUCKETS; b++)
		while (na->toms[b]) {
			tomb *t = na->toms[b];
			na->toms[b] = t->next;
			free(t);
		}
	aae_reap_free(na->reap);
	aae_rate_destroy(&na->rl);
	aae_rate_destroy(&na->repair_rl);
	aae_slots_destroy(&na->slots);
	free(na->tree_dir);
	pthread_rwlock_destroy(&na->tmu);
	pthread_mutex_destroy(&na->tombmu);
	pthread_mutex_destroy(&na->mu);
	pthread_cond_destroy(&na->cv);
	free(na);
}

int node_aae_status_json(node_aae *na, q_buf *out)
{
	if (!na)
		return 0;
	size_t ready = 0, building = 0;
	pthread_rwlock_rdlock(&na->tmu);
	size_t narcs = na->narcs;
	for (size_t i = 0; i < na->narcs; i++) {
		if (aae_tree_ready(na->arcs[i]->t))
			ready++;
		if (__atomic_load_n(&na->arcs[i]->building, __ATOMIC_ACQUIRE))
			building++;
	}
	pthread_rwlock_unlock(&na->tmu);
	uint64_t last = __atomic_load_n(&na->last_exchange_ns, __ATOMIC_RELAXED);
	long long age = last ? (long long)((q_mono_ns() - last) / 1000000ULL) : -1;
	pthread_mutex_lock(&na->tombmu);
	size_t ntoms = na->ntoms;
	pthread_mutex_unlock(&na->tombmu);
	int rc = q_buf_printf(
		out,
		",\"aae\":{\"enabled\":%s,\"arcs\":%zu,\"trees_ready\":%zu,\"trees_building\":%zu,"
		"\"trees_loaded\":%llu,\"builds\":%llu,\"rounds\":%llu,\"exchanges\":%llu,"
		"\"exchange_failures\":%llu,\"last_exchange_age_ms\":%lld,\"keys_differing\":%llu,"
		"\"keys_sent\":%llu,\"keys_received\":%llu,\"keys_repaired\":%llu,"
		"\"bytes_exchange\":%llu,\"bytes_sync\":%llu,\"leaves_fixed\":%llu,"
		"\"tombstones\":%zu,\"reaped\":%llu,\"peers\":[",
		na->enabled ? "true" : "false", narcs, ready, building,
		(unsigned long long)na->trees_loaded, (unsigned long long)na->builds_done,
		(unsigned long long)na->rounds, (unsigned long long)na->exchanges,
		(unsigned long long)na->exchange_failures, age,
		(unsigned long long)na->keys_differing, (unsigned long long)na->keys_sent,
		(unsigned long long)na->keys_received,
		(unsigned long long)(na->keys_sent + na->keys_received),
		(unsigned long long)na->bytes_exchange, (unsigned long long)na->bytes_sync,
		(unsigned long long)na->leaves_fixed, ntoms, (unsigned long long)na->reaped);
	/* per peer: rounds, failed (arc, peer) pairs, age of the last round
	 * that compared every shared arc */
	pthread_mutex_lock(&na->mu);
	uint64_t nowm = q_mono_ns();
	for (size_t i = 0; rc == 0 && i < na->npeerst; i++) {
		const struct peer_stat *ps = &na->peerst[i];
		rc = q_buf_printf(out,
				  "%s{\"id\":\"%s\",\"rounds\":%llu,\"failed_pairs\":%llu,"
				  "\"last_ok_age_ms\":%lld}",
				  i ? "," : "", ps->id, (unsigned long long)ps->rounds,
				  (unsigned long long)ps->failed_pairs,
				  ps->last_ok_ns ? (long long)((nowm - ps->last_ok_ns) / 1000000ULL)
						 : -1LL);
	}
	pthread_mutex_unlock(&na->mu);
	if (rc == 0)
		rc = q_buf_printf(out, "],\"roots\":[");
	/* roots per arc (the first 256), for operators and tests */
	pthread_rwlock_rdlock(&na->tmu);
	for (size_t i = 0; rc == 0 && i < na->narcs && i < 256; i++) {
		arc *a = na->arcs[i];
		int rd = aae_tree_ready(a->t);
		rc = q_buf_printf(out,
				  "%s{\"start\":\"%016" PRIx64 "\",\"end\":\"%016" PRIx64
				  "\",\"depth\":%u,\"ready\":%s,\"keys\":%lld,\"root\":\"%016" PRIx64
				  "\"}",
				  i ? "," : "", a->r.start, a->r.end, a->depth, rd ? "true" : "false",
				  (long long)aae_tree_keys(a->t), rd ? aae_tree_root(a->t) : 0);
	}
	pthread_rwlock_unlock(&na->tmu);
	if (rc == 0)
		rc = q_buf_printf(out, "]}");
	return rc;
}
