/*
 * aae_lsm.h - anti-entropy on top of the storage engine: the bucket index
 * that lets a replica list the keys of one Merkle bucket cheaply, the keysrc
 * over it, and tree rebuilds from an ordered LSM scan.
 *
 * The bucket index lives in the node-local keyspace:
 *   LSM key   LSM_KS_META 'A' be32(top 32 bits of q_hash64(key, AAE_BUCKET_SEED)) key
 *   LSM value fixed64 LE object digest (obj_set_digest of the stored set)
 * A bucket of a depth-d tree is a contiguous run of these hash prefixes, so
 * listing it is one seek plus a short ordered scan, for every depth. The
 * index spans all ranges; a listing keeps the keys whose ring position
 * (ring_key_hash) lies in the asked range. The write path keeps the index
 * in the same atomic lsm_batch as the data write (aae_lsm_index_batch), so
 * the index and the data never disagree, also across a crash.
 *
 * Rebuild sources: AAE_LSM_FROM_INDEX (8-byte values, no decoding: the
 * normal one) or AAE_LSM_FROM_DATA (decodes every LSM_KS_DATA value and
 * digests it: the ground truth, used when the index itself is suspect).
 * Both run one ordered scan for all the trees given, charge the bytes they
 * read to an optional aae_rate and sleep as it says (run them on a worker
 * thread), and call aae_tree_rebuild_begin for every tree immediately
 * before taking the scan's snapshot (see aae_tree.h on exactness).
 *
 * Errors: 0 or negative (util/qerr.h); lsm errors pass through. A data
 * value that does not decode is skipped and counted (the object layer
 * reports and read repair heals it), never fed to a tree.
 *
 * Thread safety: as lsm.h (any thread). Ownership: nothing handed out.
 */
#ifndef Q_AAE_LSM_H
#define Q_AAE_LSM_H

#include <stddef.h>
#include <stdint.h>

#include "aae/aae_exchange.h"
#include "aae/aae_rate.h"
#include "aae/aae_tree.h"
#include "lsm/lsm.h"

#define AAE_LSM_INDEX_TAG 'A'
#define AAE_LSM_INDEX_HDR 6 /* LSM_KS_META, tag, be32 hash prefix */

/* The index key of a user key, appended to out. */
int aae_lsm_index_key(q_slice key, q_buf *out);
/* Adds the index change for a write of key to b: digest NULL deletes the
 * entry (the key is gone), else sets it. */
int aae_lsm_index_batch(lsm_batch *b, q_slice key, const uint64_t *digest);

/* A keysrc listing buckets from db's index (ctx = db, borrowed). */
void aae_lsm_keysrc(aae_keysrc *src, lsm_db *db);

typedef enum aae_lsm_source {
	AAE_LSM_FROM_INDEX = 0,
	AAE_LSM_FROM_DATA = 1
} aae_lsm_source;

typedef struct aae_lsm_rebuild_stats {
	uint64_t keys_scanned;  /* entries read */
	uint64_t keys_added;    /* (key, tree) feeds */
	uint64_t bytes_read;    /* key + value bytes read */
	uint64_t bad_values;    /* data values that did not decode */
} aae_lsm_rebuild_stats;

/* Rebuilds trees[0..n) (their ranges must not overlap) from one scan. On
 * error every rebuild is abandoned (the trees keep their old state and
 * readiness). st may be NULL; rl may be NULL (no rate limit). */
int aae_lsm_rebuild(lsm_db *db, aae_tree *const *trees, size_t n, aae_lsm_source from,
		    aae_rate *rl, aae_lsm_rebuild_stats *st);

#endif
