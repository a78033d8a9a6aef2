/*
 * ring.h - consistent hashing over virtual-node tokens, preference lists.
 *
 * A ring is an immutable, versioned value built from a set of members (node
 * id, zone, token count). Each member owns `tokens` points on a 64-bit hash
 * circle; token i of node X is q_hash64("X" NUL varint(i), RING_TOKEN_SEED),
 * so every node computes the same ring from the same member list (only the
 * member list travels in gossip). A key lies at ring_key_hash(key); it is
 * owned by the first token clockwise at or after that point (wrapping), and
 * its preference list walks clockwise from there taking the first N distinct
 * physical nodes, preferring nodes in zones not yet used (a node in an
 * already used zone is taken only when no unused zone remains anywhere on the
 * ring). The nodes after the N primaries, in ring order of first appearance,
 * are the fallbacks for a sloppy quorum.
 *
 * Token ties (two tokens with the same hash) are broken by node id, so the
 * order is total and identical everywhere.
 *
 * Versions: ring_build takes an explicit version; ring_add / ring_remove
 * produce a new ring with version + 1. Gossip keeps the ring with the higher
 * version (equal versions with different digests are a conflict the caller
 * resolves, e.g. by the larger digest).
 *
 * Format (docs/ring.md; constants here): RING_MAGIC, RING_FORMAT_V1.
 *
 * Errors: 0 or a negative code (util/qerr.h): -ENOMEM; -EINVAL for bad
 * arguments (empty/overlong node id or zone, tokens 0 or over
 * RING_TOKENS_MAX, duplicate node); -EEXIST from ring_add of a present node;
 * Q_ENOTFOUND for an unknown node; Q_ETOOBIG beyond RING_MEMBERS_MAX or
 * RING_TOTAL_TOKENS_MAX; ring_decode: Q_ETRUNC, Q_EVERSION, Q_ETOOBIG,
 * Q_ECORRUPT (bad magic, unsorted or duplicate members, trailing bytes, ...).
 *
 * Ownership: a ring comes from ring_build/ring_add/ring_remove/ring_decode
 * and is freed with ring_free (NULL is fine). Strings handed out (node ids,
 * zones) borrow from the ring and live as long as it. Arrays documented as
 * "caller frees" are malloc'ed: free() them.
 *
 * Thread safety: a ring never changes after it is made, so any number of
 * threads may read it at once; swap rings by pointer under the caller's lock.
 */
#ifndef Q_RING_H
#define Q_RING_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* ---- format and placement constants (docs/ring.md) ---- */
#define RING_MAGIC 0xA7u
#define RING_FORMAT_V1 1u
#define RING_TOKEN_SEED 0x72696e67746f6bULL /* "ringtok" */
#define RING_KEY_SEED 0x72696e676b6579ULL   /* "ringkey" */

#define RING_TOKENS_DEFAULT 256
#define RING_NODE_MAX 255              /* bytes in a node id */
#define RING_ZONE_MAX 255              /* bytes in a zone label */
#define RING_TOKENS_MAX 4096           /* tokens of one member */
#define RING_MEMBERS_MAX 1024
#define RING_TOTAL_TOKENS_MAX (1u << 18)

typedef struct ring ring;

/* A member as input to ring_build/ring_add, and as returned by
 * ring_member_get (then the strings borrow from the ring). zone NULL or ""
 * means "no zone" (all zoneless members count as one zone ""). */
typedef struct ring_member {
	const char *node;
	const char *zone;
	uint32_t tokens;  /* 0 in input means RING_TOKENS_DEFAULT */
} ring_member;

/* A half-open arc of the hash circle, (start, end]: keys whose hash h has
 * start < h <= end, or, when start >= end, h > start or h <= end (the arc
 * wraps through 0). start == end denotes the whole circle. */
typedef struct ring_range {
	uint64_t start;
	uint64_t end;
} ring_range;

/* Builds a ring of n members (n may be 0: an empty ring, every lookup finds
 * nothing) with the given version. The member array and its strings are
 * copied. */
int ring_build(const ring_member *m, size_t n, uint64_t version, ring **out);
void ring_free(ring *r);

/* New ring = r plus m (version + 1). -EEXIST if m->node is already a member. */
int ring_add(const ring *r, const ring_member *m, ring **out);
/* New ring = r minus node (version + 1). Q_ENOTFOUND if absent. */
int ring_remove(const ring *r, const char *node, ring **out);

uint64_t ring_version(const ring *r);
/* xxHash over the canonical encoding: equal rings give equal digests. */
uint64_t ring_digest(const ring *r);
size_t ring_member_count(const ring *r);
/* Members in node-id order; 0 <= i < count. */
void ring_member_get(const ring *r, size_t i, ring_member *out);
/* Index of node among the members, or Q_ENOTFOUND. */
int ring_member_find(const ring *r, const char *node);
/* Number of distinct zones among the members. */
size_t ring_zone_count(const ring *r);
/* Total number of tokens. */
size_t ring_token_count(const ring *r);

/* Where a key lies on the circle. */
uint64_t ring_key_hash(const void *key, size_t klen);

/*
 * Preference list for the point h (normally ring_key_hash(key)): writes up to
 * max member indices into out (use ring_member_get for ids and zones): first
 * min(n, members) primaries (distinct nodes, distinct zones while unused
 * zones remain), then the fallbacks in ring order. Returns the number
 * written; *nprimary (may be NULL) gets the number of primaries among them.
 * Never repeats a node.
 */
size_t ring_preflist(const ring *r, uint64_t h, size_t n, size_t *out, size_t max,
		     size_t *nprimary);
/* Convenience: preflist of a key, node ids (borrowed) instead of indices. */
size_t ring_preflist_key(const ring *r, const void *key, size_t klen, size_t n,
			 const char **out, size_t max, size_t *nprimary);
/* The primary owner (first node clockwise) of point h, or Q_ENOTFOUND on an
 * empty ring; else a member index >= 0. */
int ring_owner(const ring *r, uint64_t h);

/* Share of the hash circle (0..1) for which each member is the first owner;
 * shares[i] for member i; shares must have ring_member_count entries. */
void ring_ownership(const ring *r, double *shares);

/*
 * The arcs of the circle for which node is among the n primaries of the
 * preference list (what it replicates: for anti-entropy and handoff), merged
 * where adjacent, in clockwise order starting after the lowest token.
 * *out is malloc'ed (caller frees; NULL when *count is 0).
 * Q_ENOTFOUND if node is not a member.
 */
int ring_ranges(const ring *r, const char *node, size_t n, ring_range **out, size_t *count);
/*
 * The elementary arcs node replicates, for anti-entropy: a ring_arc is an
 * arc on which the replica set (the n primaries of the preference list) is
 * constant, with that set. Two nodes of one replica set compute exactly the
 * same arcs for it, so per-arc state (Merkle trees) is comparable between
 * them. With merge = 0 every non-empty interval between consecutive tokens
 * is one arc; with merge = 1 clockwise-adjacent arcs with the same replica
 * set (as a set, any order) are joined (empty arcs join their successor),
 * which is still identical on every replica (it depends only on the ring)
 * and turns, e.g., a 3-node N=3 ring into one arc: the whole circle,
 * always reported as (0, 0). Arcs are listed in ascending (start, end) order of
 * their encoding; replicas[] holds member indices in preference-list order.
 * *out is malloc'ed (caller frees; NULL when *count is 0).
 * Q_ENOTFOUND if node is not a member.
 */
#define RING_ARC_MAX_N 16
typedef struct ring_arc {
	ring_range range;
	uint32_t nreplicas;
	uint32_t replicas[RING_ARC_MAX_N];
} ring_arc;
int ring_arcs(const ring *r, const char *node, size_t n, int merge, ring_arc **out,
	      size_t *count);
/* 1 if h lies in range rr. */
int ring_range_contains(ring_range rr, uint64_t h);

/* Canonical encoding of the ring state (version + members), appended to out. */
int ring_encode(const ring *r, q_buf *out);
/* Decodes and builds (derives tokens). *out is new; caller frees. */
int ring_decode(const void *p, size_t n, ring **out);

#endif
