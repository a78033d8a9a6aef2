/*
 * aae_exchange.h - comparing one range's Merkle tree with a peer's, as a
 * transport-agnostic state machine, and the peer's side (aae_serve).
 *
 * Design notes
 * ------------
 * The initiator owns an aae_exchange over its local tree and asks the peer
 * questions; the caller moves the bytes (any transport, any threading). One
 * request is outstanding at a time.
 *
 *            aae_exchange_next          aae_exchange_consume(ROOT_RESP)
 *   [START] -------------------> [WAIT_ROOT] -----------------------+
 *                                     | roots equal                 | differ
 *                                     v                             v
 *                                  [DONE] <---- all queues empty -- [DESCEND]
 *                                     ^                             | next: CHILDREN_REQ of up to
 *                                     |                             | max_nodes differing parents
 *                                     |                             | at level L; consume: children
 *                                     |                             | that differ go to level L+1,
 *                                     |                             | or, at the leaves, to the
 *                                     |                             v bucket queue
 *                                     +------ bucket queue empty -- [BUCKETS]
 *                                                                    next: BUCKETS_REQ of up to
 *                                                                    max_buckets differing leaves;
 *                                                                    consume: per answered bucket,
 *                                                                    list local pairs (keysrc),
 *                                                                    merge both sorted lists,
 *                                                                    record differing keys
 *   Any error (bad or unexpected message, ERROR from the peer, depth
 *   mismatch, keysrc failure) -> [FAILED], sticky.
 *
 * Invariants:
 *  1. Only children of differing parents are ever requested, level by level,
 *     in ascending node order; so the nodes compared are at most 1 + 16 x
 *     (differing inner nodes), never the whole tree unless all differs.
 *  2. A bucket answer must be a non-empty prefix of the buckets asked for
 *     (the peer bounds its message size); the rest are asked again.
 *  3. A key is reported at most once, with both sides' digests (or absence):
 *     exactly the keys present on one side only or with different digests,
 *     among the buckets whose leaf hashes differed.
 *  4. At most max_diffs keys are collected; past that the exchange ends DONE
 *     with truncated = 1 (the rest is found by the next exchange). A
 *     truncated or failed exchange proves nothing for tombstone reaping.
 *  5. A local leaf found wrong while listing a bucket is repaired with
 *     aae_tree_fix_leaf (compare-and-set against the value read before).
 *
 * The keysrc is the local store's view of a bucket; aae_exchange_consume
 * calls it synchronously, so run the exchange where blocking on the store
 * is fine (a worker thread), not on the event loop.
 *
 * Errors: 0 or negative (util/qerr.h). Q_EPROTO for a malformed or
 * unexpected message, Q_ECLOSED after FAILED, the peer's code after an
 * ERROR message, -EINVAL for a tree that is not ready, -ENOMEM.
 *
 * Ownership: aae_exchange_new hands out an exchange freed by
 * aae_exchange_free; the tree and keysrc are borrowed and must outlive it.
 * Diff key slices point into the exchange and live as long as it.
 *
 * Thread safety: an exchange belongs to one thread at a time; the tree it
 * borrows may be updated concurrently (it has its own lock). A concurrent
 * update can make an exchange report a key that was just changed, or miss
 * one changed during the exchange: the next exchange settles both.
 */
#ifndef Q_AAE_EXCHANGE_H
#define Q_AAE_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "aae/aae_msg.h"
#include "aae/aae_tree.h"
#include "util/buf.h"

/* Called by a keysrc for each pair; a negative return stops the listing
 * and is returned by the keysrc. */
typedef int (*aae_emit_fn)(void *ectx, q_slice key, uint64_t digest);

/* The local store's pairs of one bucket of one range, in any order; the
 * key slice need only be valid during the emit call. */
typedef struct aae_keysrc {
	int (*list)(void *ctx, uint64_t range_start, uint64_t range_end, unsigned depth,
		    uint32_t bucket, aae_emit_fn emit, void *ectx);
	void *ctx;
} aae_keysrc;

typedef struct aae_exchange_opts {
	uint32_t max_nodes_per_req;   /* parents per CHILDREN_REQ, default 256 */
	uint32_t max_buckets_per_req; /* buckets per BUCKETS_REQ, default 64 */
	size_t max_diffs;             /* default 1,000,000 */
} aae_exchange_opts;

void aae_exchange_opts_default(aae_exchange_opts *o);

typedef enum aae_xstate {
	AAE_X_START = 0,
	AAE_X_WAIT_ROOT,
	AAE_X_DESCEND,
	AAE_X_BUCKETS,
	AAE_X_DONE,
	AAE_X_FAILED
} aae_xstate;

typedef struct aae_diff {
	q_slice key;           /* owned by the exchange */
	uint64_t local_digest;  /* valid if local_has */
	uint64_t remote_digest; /* valid if remote_has */
	uint8_t local_has, remote_has;
} aae_diff;

typedef struct aae_exchange_stats {
	uint64_t requests;
	uint64_t bytes_sent;       /* request bytes produced */
	uint64_t bytes_received;   /* response bytes consumed */
	uint64_t nodes_compared;   /* tree hashes compared, root included */
	uint64_t buckets_compared; /* differing leaves whose keys were compared */
	uint64_t keys_local;       /* pairs listed locally in those buckets */
	uint64_t keys_remote;      /* pairs received in those buckets */
	uint64_t diffs;            /* differing keys found */
	uint64_t leaves_fixed;     /* local leaves repaired (invariant 5) */
	int truncated;             /* stopped at max_diffs */
} aae_exchange_stats;

typedef struct aae_exchange aae_exchange;

/* xid: an id the caller picks (unique among its live exchanges). Fails
 * with -EINVAL if the tree is not ready. */
int aae_exchange_new(aae_tree *local, const aae_keysrc *src, const aae_exchange_opts *o,
		     uint64_t xid, aae_exchange **out);
void aae_exchange_free(aae_exchange *x);

/* Appends the next request to out: returns 1 if it did, 0 if the exchange
 * is DONE (nothing to send), a negative error if FAILED, -EBUSY while a
 * response is awaited. */
int aae_exchange_next(aae_exchange *x, q_buf *out);
/* Feeds the response to the outstanding request. */
int aae_exchange_consume(aae_exchange *x, const uint8_t *p, size_t n);
/* Marks the exchange FAILED with err (e.g. the transport timed out). */
void aae_exchange_abort(aae_exchange *x, int err);

aae_xstate aae_exchange_state(const aae_exchange *x);
/* The ring range of the exchange's tree. */
int aae_exchange_range(const aae_exchange *x, uint64_t *start, uint64_t *end);
/* The error that failed the exchange, or 0. */
int aae_exchange_error(const aae_exchange *x);
void aae_exchange_get_stats(const aae_exchange *x, aae_exchange_stats *st);
size_t aae_exchange_ndiffs(const aae_exchange *x);
/* i < ndiffs; valid once DONE (keys sorted within each bucket, buckets
 * ascending). */
void aae_exchange_diff(const aae_exchange *x, size_t i, aae_diff *out);

/*
 * The peer's side: answers one request about tree t (which must cover the
 * request's range) from t's hashes and src's listings. Always appends a
 * response to resp when the request's header decodes (an ERROR message for
 * a bad request, a range mismatch, or a tree that is not ready) and
 * returns 0; returns a negative code without a response when not even the
 * header decodes. A BUCKETS_RESP stays within max_resp_bytes except that
 * the first bucket is always included (up to AAE_MAX_MSG).
 */
int aae_serve(aae_tree *t, const aae_keysrc *src, const uint8_t *req, size_t n,
	      size_t max_resp_bytes, q_buf *resp);

/* Finds this node's tree for range (start, end], or NULL. Must be safe to
 * call from the thread running aae_serve_node. */
typedef aae_tree *(*aae_tree_lookup_fn)(void *ctx, uint64_t start, uint64_t end);

/*
 * The peer's side for a whole node: ROOTS_REQ is answered from lookup (one
 * status and root per range asked); every other request is routed to the
 * tree of its range (ERROR Q_ENOTFOUND when there is none) and answered as
 * aae_serve does. Same return contract as aae_serve.
 */
int aae_serve_node(aae_tree_lookup_fn lookup, void *lctx, const aae_keysrc *src,
		   const uint8_t *req, size_t n, size_t max_resp_bytes, q_buf *resp);

/*
 * Many roots in one round trip, so a node holding hundreds of ranges with a
 * peer starts full exchanges only for the ranges whose roots differ.
 * trees[0..n) must be in strictly ascending (start, end) order (-EINVAL
 * otherwise), 1 <= n <= AAE_MAX_RANGES_PER_MSG. aae_roots_compare checks
 * that resp answers exactly those ranges (Q_EPROTO otherwise; the peer's
 * code for an ERROR answer) and sets out[i] to 0 (equal), 1 (differ: run an
 * exchange), or -1 (cannot compare: a tree on either side is missing or not
 * ready, or the depths differ).
 */
int aae_roots_request(aae_tree *const *trees, size_t n, uint64_t xid, q_buf *out);
int aae_roots_compare(aae_tree *const *trees, size_t n, uint64_t xid, const uint8_t *resp,
		      size_t rn, int *out);

#endif
