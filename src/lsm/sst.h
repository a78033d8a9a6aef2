/*
 * sst.h - sorted tables: blocks, bloom filters, the table builder and the
 * table reader. Byte layout in docs/lsm.md, constants in lsm_format.h.
 *
 * A table holds internal keys in order. Data blocks (prefix-compressed
 * entries with restart points) are snappy-compressed when that saves at
 * least 1/8, and each carries a checksum. An index block maps the last key
 * of every data block to its position; one bloom filter over the user keys
 * covers the whole table; a fixed-size footer with magic and version ends
 * the file.
 *
 * Corruption: every read is checked (checksums, bounds, decompression);
 * failures return Q_ECORRUPT and log the file and offset. Nothing from a
 * block that failed a check is ever returned.
 *
 * Thread safety: a builder belongs to one thread. An sst_table is immutable
 * after sst_open and may be read from any number of threads; iterators
 * belong to one thread. Blocks are reference counted (atomic).
 */
#ifndef Q_LSM_SST_H
#define Q_LSM_SST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lsm/cache.h"
#include "lsm/lsm_internal.h"
#include "util/buf.h"
#include "util/env.h"

/* ---- blocks ---- */

struct sst_block {
	const uint8_t *data;  /* entries, restart array, restart count */
	size_t size;
	const uint8_t *restarts;
	uint32_t nrestarts;
	atomic_int refs;
	size_t cap;           /* contents capacity when they follow the struct in
	                       * its allocation (recycled, see sst.c), else 0 */
	uint8_t *owned;       /* freed with the block (may be NULL: the contents are
	                       * borrowed or follow the struct in its allocation) */
};

/* Parses a decoded block; on success *out owns `owned` (if non-NULL) and has
 * one reference. On error owned is freed and Q_ECORRUPT returned. */
int sst_block_new(const uint8_t *data, size_t n, uint8_t *owned, sst_block **out);
void sst_block_ref(sst_block *b);
void sst_block_unref(sst_block *b);
/* Iterator over a block with internal keys (ikeys = 1) or plain byte keys;
 * takes a reference on b. */
lsm_it *sst_block_iter(sst_block *b, int ikeys);

typedef struct sst_block_builder {
	q_buf buf;
	q_buf last;
	uint32_t *restarts;
	size_t nrestarts, caprestarts;
	int counter;
	int restart_interval; /* entries per restart point (init: 16) */
	uint64_t entries;
} sst_block_builder;

void sst_bb_init(sst_block_builder *bb);
void sst_bb_free(sst_block_builder *bb);
void sst_bb_reset(sst_block_builder *bb);
int sst_bb_add(sst_block_builder *bb, q_slice key, q_slice value);
/* Finishes the block; the result stays valid until the next reset. */
int sst_bb_finish(sst_block_builder *bb, q_slice *out);
size_t sst_bb_size_estimate(const sst_block_builder *bb);

/* Decodes a stored block (contents + trailer) read at file offset off:
 * verifies the checksum, decompresses. Pure; used by the reader and fuzzed. */
int sst_decode_block(const uint8_t *raw, size_t n, sst_block **out);

/* ---- bloom filters ---- */

/* Appends a filter for the given key hashes to out. */
int bloom_build(const uint64_t *hashes, size_t n, int bits_per_key, q_buf *out);
/* 1 if the key may be present (also for malformed or empty filters). */
int bloom_may_match(const uint8_t *f, size_t n, uint64_t hash);
uint64_t bloom_hash(q_slice ukey);

/* ---- table builder ---- */

typedef struct sst_opts {
	size_t block_size;
	int bloom_bits_per_key;
	int compression;
} sst_opts;

typedef struct sst_builder sst_builder;

/* Creates path (must not exist). */
int sst_builder_new(q_env *env, const char *path, const sst_opts *o, sst_builder **out);
/* Keys must come in strictly increasing internal-key order. */
int sst_builder_add(sst_builder *b, q_slice ikey, q_slice value);
uint64_t sst_builder_size(const sst_builder *b);
uint64_t sst_builder_entries(const sst_builder *b);
/* Writes filter, index and footer, fsyncs and closes; *size = file size.
 * Frees b whatever happens. */
int sst_builder_finish(sst_builder *b, uint64_t *size);
/* Closes and unlinks the unfinished file; frees b. */
void sst_builder_abandon(sst_builder *b);

/* ---- table reader ---- */

typedef struct sst_table {
	q_file *f;            /* NULL when the file is mapped */
	const uint8_t *map;   /* read-only mapping of the whole file, or NULL */
	uint64_t number;
	uint64_t size;
	uint64_t entries;
	sst_block *index;
	uint8_t *filter;
	size_t filter_len;
	blk_cache *cache;
	char path[512];
	atomic_uint_fast64_t reads_failed;
	/* Told about every checksum/structure failure (may be NULL). Called
	 * from the reading thread; must be thread-safe. */
	void (*on_corrupt)(void *owner, struct sst_table *t);
	void *owner;
} sst_table;

/* Opens the table file at path (reads and checks footer, index, filter);
 * cache is borrowed (may be NULL). With use_mmap and the POSIX env the
 * file is mapped read-only (tables are immutable; reads then cost no
 * system call); any other env reads through q_file_pread, so fault
 * injection sees every read. */
int sst_open(q_env *env, const char *path, uint64_t number, blk_cache *cache, int use_mmap,
	     sst_table **out);
/* Opens a table held in memory (for the fuzzer): data is copied. */
int sst_open_mem(const uint8_t *data, size_t n, sst_table **out);
void sst_close(sst_table *t);
/* Releases the resident pages of a mapped table from this process (they
 * stay in the page cache; reads still work). For tables that left the
 * current version but are kept for MANIFEST.prev or old readers. */
void sst_drop_pages(sst_table *t);
/* Looks up the newest entry for ukey at or below the seq in seek_ikey
 * (hash = bloom_hash(ukey), computed once per lookup by the caller):
 * 1 and *kind (+ value into out) if found, 0 if not, <0 on error. */
int sst_get(sst_table *t, q_slice ukey, uint64_t hash, q_slice seek_ikey, int *kind, q_buf *out);
/* sst_get that takes no disk read: it consults the filter and the index
 * (both in memory since sst_open) and the block cache, and returns -EAGAIN
 * when the answer needs a data block that is not cached (the cache is not
 * filled then), except, with page_cache set and a mapped table, a block
 * whose pages are all in the OS page cache (mincore): that one is copied
 * out of the mapping and cached as sst_get does. (A page evicted between
 * the check and the copy, which takes microseconds, would be read back
 * from the disk by that copy: possible only under memory pressure.) */
int sst_get_cached(sst_table *t, q_slice ukey, uint64_t hash, q_slice seek_ikey, int *kind,
		   q_buf *out, int page_cache);
/* Iterator over the table (NULL only on allocation failure). The table must
 * outlive the iterator. */
lsm_it *sst_iter_new(sst_table *t, int fill_cache);
/* Reads every block and checks it: 0 or Q_ECORRUPT. */
int sst_verify(sst_table *t);

#endif
