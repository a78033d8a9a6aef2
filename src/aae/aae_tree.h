/*
 * aae_tree.h - the Merkle tree of one replicated key range (anti-entropy).
 *
 * A tree has fixed fan-out 16 and depth d (1..6, default 4): 16^d leaf
 * buckets. A key belongs to bucket aae_bucket_of(key, d) (top 4d bits of
 * q_hash64(key, AAE_BUCKET_SEED)). A leaf's hash is the sum mod 2^64 of
 * aae_pair_hash(key, digest) over the (key, object digest) pairs in it, so a
 * write updates its leaf in O(1) without knowing the bucket's other keys. An
 * inner node hashes its 16 children (docs/aae.md argues both choices).
 * Inner hashes are recomputed lazily: an update marks its ancestors dirty,
 * and reading a hash (root, children) recomputes only dirty nodes.
 *
 * Invariants:
 *  1. leaf[b] == sum of pair hashes of the pairs added and not removed in b
 *     (the tree trusts its caller to pass the digest a key really had when
 *     removing or replacing it; a wrong old digest leaves a wrong leaf, which
 *     an exchange detects and aae_tree_fix_leaf repairs).
 *  2. A clean inner node equals q_hash64 of its children; a dirty one is
 *     recomputed before it is read.
 *  3. ready == 0 until the tree was rebuilt, loaded, or explicitly marked
 *     ready: an exchange must not use (or answer from) a tree that is not
 *     ready, since an empty tree would "prove" equality it never saw.
 *
 * Rebuild while writes continue: aae_tree_rebuild_begin starts a fresh leaf
 * array and a per-bucket delta array; updates keep changing the live tree
 * and also add their leaf delta to the delta array; rebuild_add feeds the
 * scanned pairs into the fresh leaves; rebuild_end adds the deltas and swaps.
 * Exact when the caller takes its store snapshot in the same critical
 * section as rebuild_begin (no update between the two): see docs/aae.md.
 *
 * Errors: 0 or negative (util/qerr.h): -EINVAL bad arguments, -ENOMEM,
 * -EBUSY for a rebuild already running; loading: -ENOENT (no file),
 * Q_ECORRUPT (bad checksum, structure), Q_ETRUNC, Q_EVERSION, -ESTALE (file
 * is for another range, depth or stamp).
 *
 * Ownership: aae_tree_new/aae_tree_load hand out a tree the caller frees
 * with aae_tree_free. No other pointer is handed out.
 *
 * Thread safety: every function locks the tree's own mutex, so writers,
 * a rebuild and an exchange may use one tree from different threads. The
 * pure helpers (aae_bucket_of, aae_pair_hash, aae_tree_decode) need no lock.
 */
#ifndef Q_AAE_TREE_H
#define Q_AAE_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "aae/aae_format.h"
#include "util/buf.h"
#include "util/env.h"

typedef struct aae_tree aae_tree;

/* Bucket of a key in a tree of the given depth (0 .. 16^depth - 1). */
uint32_t aae_bucket_of(q_slice key, unsigned depth);
/* Hash of one (key, digest) pair; a leaf is the sum of these. */
uint64_t aae_pair_hash(q_slice key, uint64_t digest);
/* Nodes at a level (16^level). */
static inline uint32_t aae_level_width(unsigned level)
{
	return (uint32_t)1 << (AAE_FANOUT_BITS * level);
}

/* New empty tree (not ready) for the range (start, end] of the ring. */
int aae_tree_new(unsigned depth, uint64_t range_start, uint64_t range_end, aae_tree **out);
void aae_tree_free(aae_tree *t);

unsigned aae_tree_depth(const aae_tree *t);
uint32_t aae_tree_buckets(const aae_tree *t);
void aae_tree_range(const aae_tree *t, uint64_t *start, uint64_t *end);
/* Pairs added minus pairs removed (>= 0 for a consistent caller). */
int64_t aae_tree_keys(aae_tree *t);
int aae_tree_ready(aae_tree *t);
void aae_tree_set_ready(aae_tree *t, int ready);

/*
 * A write changed key from old_digest to new_digest. NULL old = the key was
 * absent (an insert); NULL new = the key is gone (a removal, e.g. a reaped
 * tombstone). Both NULL is a no-op.
 */
int aae_tree_update(aae_tree *t, q_slice key, const uint64_t *old_digest,
		    const uint64_t *new_digest);
static inline int aae_tree_insert(aae_tree *t, q_slice key, uint64_t digest)
{
	return aae_tree_update(t, key, NULL, &digest);
}
static inline int aae_tree_remove(aae_tree *t, q_slice key, uint64_t digest)
{
	return aae_tree_update(t, key, &digest, NULL);
}
/* Empties the tree (keeps ready as is). */
void aae_tree_clear(aae_tree *t);

/* Root hash (recomputing dirty nodes). */
uint64_t aae_tree_root(aae_tree *t);
/* Hash of node index at level (0 = root, depth = leaves). */
int aae_tree_node(aae_tree *t, unsigned level, uint32_t index, uint64_t *out);
/* The 16 children (at level + 1) of node index at level < depth. */
int aae_tree_children(aae_tree *t, unsigned level, uint32_t index, uint64_t out[AAE_FANOUT]);
/* Self-repair after an exchange listed a bucket from the store and found the
 * leaf wrong: sets leaf[bucket] = hash only if it still equals expected (the
 * value read before the listing), so an update racing with the listing is
 * never lost. Returns 1 if set, 0 if the leaf had moved on, or -EINVAL. */
int aae_tree_fix_leaf(aae_tree *t, uint32_t bucket, uint64_t expected, uint64_t hash);

/* ---- rebuild from a scan ---- */
int aae_tree_rebuild_begin(aae_tree *t);
int aae_tree_rebuild_add(aae_tree *t, q_slice key, uint64_t digest);
/* ok != 0: install the rebuilt leaves (+ deltas of concurrent updates) and
 * mark the tree ready; ok == 0: abandon the rebuild. */
int aae_tree_rebuild_end(aae_tree *t, int ok);
int aae_tree_rebuilding(aae_tree *t);

/* Pull-style source of (key, digest) pairs: returns 1 and fills *key (valid
 * until the next call) and *digest, 0 at the end, or a negative error. */
typedef int (*aae_pair_next_fn)(void *ctx, q_slice *key, uint64_t *digest);
/* begin + add every pair + end; on a source error the rebuild is abandoned
 * and the error returned. */
int aae_tree_rebuild(aae_tree *t, aae_pair_next_fn next, void *ctx);

/* ---- persistence (format in aae_format.h, docs/aae.md) ---- */
/* Appends the encoding of t with the caller's freshness stamp to out. */
int aae_tree_encode(aae_tree *t, uint64_t stamp, q_buf *out);
/* Pure decoder. The file must be for exactly this depth, range and stamp
 * (-ESTALE otherwise). On success *out is a new ready tree (caller frees). */
int aae_tree_decode(const uint8_t *p, size_t n, unsigned depth, uint64_t range_start,
		    uint64_t range_end, uint64_t stamp, aae_tree **out);
/* Durable write-tmp/sync/rename/sync-dir of the encoding. */
int aae_tree_save(aae_tree *t, q_env *env, const char *path, uint64_t stamp);
/* Reads and decodes path; see aae_tree_decode. A caller seeing any error
 * rebuilds the tree from the store instead of trusting the file. */
int aae_tree_load(q_env *env, const char *path, unsigned depth, uint64_t range_start,
		  uint64_t range_end, uint64_t stamp, aae_tree **out);

#endif
