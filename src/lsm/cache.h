/*
 * cache.h - the block cache: a sharded LRU of decoded (uncompressed,
 * checksum-verified) table blocks keyed by (table number, block offset).
 *
 * Ownership: the cache holds one reference on every block it keeps; a
 * lookup or insert hands the caller one more reference, which the caller
 * drops with sst_block_unref. Eviction only drops the cache's reference, so
 * a block in use stays valid. Capacity counts block bytes; capacity 0 keeps
 * nothing (inserts just return).
 *
 * Thread safety: all calls may come from any thread (one mutex per shard).
 */
#ifndef Q_LSM_CACHE_H
#define Q_LSM_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sst_block sst_block;
typedef struct blk_cache blk_cache;

blk_cache *cache_new(size_t capacity);
void cache_free(blk_cache *c);
/* A referenced block or NULL. */
sst_block *cache_lookup(blk_cache *c, uint64_t id, uint64_t off);
/* Adds b (the cache takes its own reference; the caller keeps its own). */
void cache_insert(blk_cache *c, uint64_t id, uint64_t off, sst_block *b);
void cache_stats(blk_cache *c, uint64_t *hits, uint64_t *misses, size_t *usage);

#endif
