/*
 * aae_reap.h - tombstone-reaping bookkeeping: when may a deleted key be
 * removed physically without anti-entropy bringing it back?
 *
 * Rule (docs/aae.md, "Reaping"): a key of range R may be reaped at now when
 *   1. its object is all tombstones (the caller checks the object: e.g.
 *      obj_set_tombstone_only) and the newest tombstone was stored here at
 *      tomb_ns with now - tomb_ns >= grace, and
 *   2. the replica set of R is known (aae_reap_set_replicas) and for every
 *      other replica P of R the latest exchange recorded for (R, P) is
 *      complete (DONE, not truncated), started after tomb_ns, and did not
 *      list the key as differing. That exchange compared our tombstone with
 *      P's copy and found equal digests, so P holds the same tombstone.
 * A range with no other replica (N = 1) needs only rule 1.
 *
 * Times: tomb_ns, started_ns and now_ns must come from one clock of this
 * node (wall ns when the tombstone was stored locally, and when the exchange
 * started), so clock skew between nodes does not matter.
 *
 * Differing keys are kept as 64-bit hashes: a hash collision can only make
 * a key look differing (not reapable), never the reverse.
 *
 * Records live in memory only: after a restart nothing is reapable until new
 * exchanges complete, which is safe.
 *
 * Errors: -EINVAL, -ENOMEM. Ownership: aae_reap_new hands out a tracker
 * freed by aae_reap_free; peer ids and keys are copied.
 * Thread safety: one internal mutex; any thread may call any function.
 */
#ifndef Q_AAE_REAP_H
#define Q_AAE_REAP_H

#include <stddef.h>
#include <stdint.h>

#include "aae/aae_exchange.h"
#include "util/buf.h"

typedef struct aae_reap aae_reap;

int aae_reap_new(int64_t grace_ns, aae_reap **out);
void aae_reap_free(aae_reap *r);

/* The other replicas (not this node) of range (start, end]; replaces the
 * previous set, keeping the records of peers still in it. */
int aae_reap_set_replicas(aae_reap *r, uint64_t start, uint64_t end,
			  const char *const *peers, size_t n);
/* Forget a range (no longer replicated here). */
void aae_reap_forget_range(aae_reap *r, uint64_t start, uint64_t end);

/* Records a finished exchange with peer about the range: keys[0..n) are
 * the keys it found differing. complete = 0 (failed or truncated) erases
 * the peer's record, since the latest state is unknown. Unknown range or
 * peer: -EINVAL. */
int aae_reap_record(aae_reap *r, uint64_t start, uint64_t end, const char *peer,
		    int64_t started_ns, int complete, const q_slice *keys, size_t n);
/* Convenience: records exchange x (complete iff DONE and not truncated). */
int aae_reap_record_exchange(aae_reap *r, const char *peer, int64_t started_ns,
			     const aae_exchange *x);

/* 1 if key may be reaped now, 0 if not (see the rule above). */
int aae_can_reap(aae_reap *r, uint64_t start, uint64_t end, q_slice key, int tombstone_only,
		 int64_t tomb_ns, int64_t now_ns);

#endif
