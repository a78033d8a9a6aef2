/*
 * handoff.h - range handoff planning for ring changes, and the token-bucket
 * rate limiter the streaming code uses.
 *
 * Planner. Given the ring before and after a change (a join, a leave), the
 * replication factor n and this node's id, handoff_plan_make lists the key
 * ranges this node must stream to which node. The rules (docs/handoff.md):
 *   1. The circle is cut at every boundary of every member's replica ranges
 *      (ring_ranges) in both rings; on each resulting elementary arc the set
 *      of primaries is constant in each ring.
 *   2. For an arc, the receivers are the new primaries that were not old
 *      primaries (only ranges whose owners change move; an arc whose
 *      replica set is unchanged moves nothing).
 *   3. One old primary sends: among the old primaries that the `alive`
 *      predicate accepts (all of them if it is NULL), the one with the
 *      smallest q_hash64(node id, seed = arc end). Hashing per arc spreads
 *      the sending over the old owners. If no old primary is alive, nobody
 *      sends (anti-entropy repairs the range later).
 *   4. Adjacent arcs with the same receiver are merged; the plan lists
 *      (receiver, range) sorted by receiver, ranges in clockwise order.
 * Every node computes the same global plan from the same two rings and the
 * same liveness view, so the work is split without coordination; a
 * difference in liveness views can only duplicate a transfer (harmless: the
 * receiver merges with obj_set_sync) or skip one (anti-entropy repairs it).
 *
 * Rate limiter. A token bucket in bytes: `rate` bytes per second refill it up
 * to `burst` bytes. handoff_rate_reserve takes n bytes and says how long to
 * wait before sending them; the bucket may go into debt, so over any long
 * period no more than rate * time + burst bytes are released, and a single
 * chunk larger than the burst is still allowed (after a wait).
 *
 * Errors: 0 or a negative code (util/qerr.h); -EINVAL for n == 0 or a NULL
 * self; -ENOMEM.
 *
 * Ownership: a plan owns its receiver strings; free it with
 * handoff_plan_free. The rings are only read during handoff_plan_make.
 *
 * Thread safety: the planner is a pure function of its inputs. A
 * handoff_rate belongs to one thread (or is guarded by the caller).
 */
#ifndef Q_HANDOFF_H
#define Q_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "ring/ring.h"

typedef struct handoff_xfer {
	char *target;     /* receiving node id (owned by the plan) */
	ring_range range; /* (start, end] of the hash circle */
} handoff_xfer;

typedef struct handoff_plan {
	handoff_xfer *v;
	size_t n;
	uint64_t old_version, new_version;
} handoff_plan;

/* 1 if node is alive (worth asking to send). */
typedef int (*handoff_alive_fn)(void *ud, const char *node);

/* The transfers self must make. self need not be in either ring (then the
 * plan is empty). *out is filled even when empty; free it with
 * handoff_plan_free. */
int handoff_plan_make(const ring *old_ring, const ring *new_ring, const char *self, size_t n,
		      handoff_alive_fn alive, void *ud, handoff_plan *out);
/* The whole cluster's plan: every (sender, receiver, range). sender strings
 * are owned by the plan, like targets. For status and tests. */
typedef struct handoff_move {
	char *sender;
	char *target;
	ring_range range;
} handoff_move;
int handoff_plan_all(const ring *old_ring, const ring *new_ring, size_t n, handoff_alive_fn alive,
		     void *ud, handoff_move **out, size_t *count);
void handoff_moves_free(handoff_move *v, size_t count);
void handoff_plan_free(handoff_plan *p);

/* Receivers of the point h (normally ring_key_hash(key)) under plan p:
 * writes up to max target ids (borrowed from p) into out, returns how many.
 * The streaming code calls it for each key of a local LSM scan. */
size_t handoff_plan_targets(const handoff_plan *p, uint64_t h, const char **out, size_t max);

/* ---- rate limiter ---- */
typedef struct handoff_rate {
	double rate;     /* bytes per second; 0 = unlimited */
	double burst;    /* bucket size in bytes */
	double tokens;   /* may be negative (debt) */
	uint64_t last_ns;
} handoff_rate;

/* burst 0 = one second's worth (at least 64 KiB). now_ns: monotonic. */
void handoff_rate_init(handoff_rate *r, uint64_t bytes_per_sec, uint64_t burst, uint64_t now_ns);
/* Changes the rate (operator command), keeping the tokens. */
void handoff_rate_set(handoff_rate *r, uint64_t bytes_per_sec, uint64_t now_ns);
/* Takes n bytes; returns the nanoseconds to wait before sending them
 * (0: send now). */
uint64_t handoff_rate_reserve(handoff_rate *r, uint64_t n, uint64_t now_ns);

#endif
