/*
 * lsm.h - the public API of the storage engine (src/lsm).
 *
 * An lsm_db is an ordered map of byte-string keys to byte-string values kept
 * in a directory: a commit log, a memtable, SSTables in levels, a manifest.
 * Keys compare with memcmp order (shorter first on a common prefix).
 *
 * Keyspaces: the engine itself treats keys as opaque. Users of the engine
 * keep node-local data apart from user data by a one-byte key prefix; the
 * prefixes in use are listed here so that they never collide:
 *   LSM_KS_DATA  user objects (cluster key -> encoded sibling set)
 *   LSM_KS_HINT  hinted-handoff records
 *   LSM_KS_META  node-local metadata (ring state, Merkle metadata, ...)
 *
 * Durability: with LSM_SYNC_ALWAYS a successful lsm_put/lsm_delete/lsm_write
 * is on stable storage when it returns (concurrent writers share one fsync:
 * group commit). LSM_SYNC_BATCH syncs every sync_batch_ms; LSM_SYNC_NONE
 * leaves it to the OS.
 *
 * Errors: 0 or a negative code (util/qerr.h). Q_ENOTFOUND from lsm_get for an
 * absent key; Q_ECORRUPT if the only copy of the data is corrupt (the bad
 * table is quarantined and reported in the log with file and offset; a bad
 * record of a blob file fails that key's reads, also reported).
 *
 * Signals: with mmap_reads (the default) the first table opened installs a
 * process-wide SIGBUS handler (src/lsm/mapg.h) that turns a fault on a
 * table mapping cut short under the store into Q_ECORRUPT; other SIGBUS
 * faults go to the handler installed before it. A program that installs
 * its own SIGBUS handler afterwards must chain to the previous one.
 *
 * Thread safety: an lsm_db may be used by any number of threads at once.
 * An lsm_iter belongs to one thread. Background threads flush and compact.
 */
#ifndef Q_LSM_H
#define Q_LSM_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/env.h"

enum {
	LSM_KS_DATA = 0x01,
	LSM_KS_HINT = 0x02,
	LSM_KS_META = 0x03
};

typedef enum lsm_sync {
	LSM_SYNC_ALWAYS = 0,
	LSM_SYNC_BATCH = 1,
	LSM_SYNC_NONE = 2
} lsm_sync;

typedef struct lsm_options {
	q_env *env;                /* NULL = q_env_posix() */
	int create_if_missing;     /* default 1 */
	lsm_sync sync;             /* default LSM_SYNC_ALWAYS */
	uint64_t sync_batch_ms;    /* for LSM_SYNC_BATCH, default 10 */
	size_t write_buffer_size;  /* memtable bytes before a flush, default 4 MiB */
	unsigned write_buffer_jitter; /* percent, 0 (default) to 50: each memtable
	                            * is flushed at a size drawn per memtable
	                            * from [100 - jitter, 100]% of
	                            * write_buffer_size, so that stores taking
	                            * the same writes (replicas) do not flush at
	                            * the same moment; larger values are capped */
	size_t block_size;         /* uncompressed data block target, default 4 KiB */
	int bloom_bits_per_key;    /* default 10; 0 disables bloom filters */
	size_t block_cache_size;   /* bytes, default 8 MiB; 0 disables */
	int compression;           /* 1 = snappy where it helps (default), 0 = none */
	size_t max_key_size;       /* default 64 KiB; larger keys get Q_ETOOBIG */
	size_t max_value_size;     /* default 64 MiB; larger values get Q_ETOOBIG */
	int mmap_reads;            /* 1 = map tables read-only when env is the POSIX
	                            * env (default); 0 = pread through the env */
	size_t blob_threshold;     /* values of at least this many bytes are kept
	                            * in blob files, the tree holds a pointer
	                            * (key-value separation); default 64 KiB,
	                            * 0 = off (docs/lsm.md) */
	int log_values;            /* 1 (default): a flush leaves such a value
	                            * that does not compress in the commit log
	                            * it was written to (the log is kept while
	                            * tables point into it) instead of copying
	                            * it into a blob file; 0 = always copy */
	size_t log_early_write;    /* a buffered commit log (LSM_SYNC_NONE,
	                            * LSM_SYNC_BATCH) keeps up to 64 KiB in a
	                            * user-space buffer; lsm_write hands it to
	                            * the OS once it holds this many bytes
	                            * (lsm_write_nowait never does), so nowait
	                            * writes seldom find it full; default 16 KiB,
	                            * 0 = only when full. Durability is the same
	                            * either way */
	int nowait_page_cache;     /* 1 (default): lsm_get_nowait also reads a
	                            * data block of a mapped table (mmap_reads)
	                            * whose pages are all in the OS page cache
	                            * (mincore), and caches it; 0: block cache
	                            * only */
} lsm_options;

typedef struct lsm_db lsm_db;
typedef struct lsm_batch lsm_batch;
typedef struct lsm_iter lsm_iter;

typedef struct lsm_stats {
	uint64_t disk_bytes;       /* tables + logs + manifest */
	uint64_t memtable_bytes;
	uint64_t num_tables;
	uint64_t tables_per_level[8];
	uint64_t quarantined_tables;
	uint64_t corrupt_records_skipped; /* reported during log replay */
	uint64_t flushes, compactions, compaction_bytes_written;
	uint64_t stall_ms;         /* total time writers waited on flush/compaction */
	uint64_t cache_hits, cache_misses;
	uint64_t commit_groups;    /* log appends (one per group commit) */
	uint64_t commit_writes;    /* writes they carried (groups share a sync) */
	uint64_t manifest_fallback; /* 1: this open found MANIFEST corrupt and
	                             * recovered from MANIFEST.prev */
	uint64_t blob_files;       /* blob files of the current version (kept
	                            * commit logs included) */
	uint64_t blob_bytes;       /* their size (also counted in disk_bytes) */
	uint64_t blob_garbage_bytes; /* of which no longer referenced (estimate) */
	uint64_t blob_moved_bytes; /* record bytes moved by blob garbage collection */
	uint64_t blob_corrupt_skipped; /* iterator entries passed over: their
	                                * blob record failed its checks */
	/* -EAGAIN answers of the calls that never block, by cause */
	uint64_t nowait_get_read;   /* lsm_get_nowait: a block not cached, a
	                             * table not open or a separated value */
	uint64_t nowait_write_queue; /* another writer in the queue */
	uint64_t nowait_write_room; /* memtable full, level-0 slowdown or
	                             * stall, pending resume */
	uint64_t nowait_write_log_busy; /* the log's lock was held */
	uint64_t nowait_write_log_full; /* the record would not stay in the
	                                 * log's buffer */
	uint64_t nowait_write_log_mark; /* the first after the buffer passed
	                                 * log_early_write (lsm_write writes
	                                 * it out) */
	uint64_t nowait_write_sync; /* LSM_SYNC_ALWAYS: every nowait write
	                             * (each waits for an fsync) */
	uint64_t log_early_writes;  /* buffer write-outs by lsm_write before
	                             * the buffer was full (log_early_write) */
} lsm_stats;

void lsm_options_default(lsm_options *o);

/* Opens (creating if allowed) the store in dir. One process at a time:
 * Q_EBUSY if another holds it. The caller closes it with lsm_close. */
int lsm_open(const char *dir, const lsm_options *o, lsm_db **out);
/* Flushes the commit log, stops background work, frees db. */
int lsm_close(lsm_db *db);

int lsm_put(lsm_db *db, q_slice key, q_slice value);
int lsm_delete(lsm_db *db, q_slice key);
/* On success the value is appended to out (out is reset first). */
int lsm_get(lsm_db *db, q_slice key, q_buf *out);

/* Atomic write batches: all or nothing, also across a crash. */
lsm_batch *lsm_batch_new(void);
int lsm_batch_put(lsm_batch *b, q_slice key, q_slice value);
int lsm_batch_delete(lsm_batch *b, q_slice key);
void lsm_batch_clear(lsm_batch *b);
void lsm_batch_free(lsm_batch *b);
int lsm_write(lsm_db *db, lsm_batch *b);

/*
 * Calls that never block, for an event-loop thread (docs/lsm.md, "Calls
 * that never block"). Each either does what its blocking twin does, with
 * the same result, or returns -EAGAIN (== -EWOULDBLOCK) having changed
 * nothing and read nothing from a file; the caller then makes the
 * blocking call from a thread that may wait. Both take the engine's mutex
 * briefly: it is never held across I/O, nor by a thread waiting for a lock
 * that is (the commit log's, during the periodic fsync of LSM_SYNC_BATCH).
 *
 * lsm_get_nowait answers from the memtables, the tables' in-memory
 * filters and indexes and the block cache, and (nowait_page_cache, mapped
 * tables) from a data block whose pages are all in the OS page cache
 * (then cached): -EAGAIN when the answer needs a data block that is
 * neither (the cache is not filled by it) or a value kept in a blob file or
 * commit log. (A page evicted between the residency check and the copy
 * would be read from the disk by the copy: only under memory pressure.)
 * Q_ENOTFOUND when every table that could hold the key is excluded by its
 * key range or bloom filter or by a cached block. (Rarely, the lookup
 * holds the last reference to a version a flush or compaction just
 * replaced: it hands that version to the flush thread, which closes and
 * deletes its obsolete files.)
 *
 * lsm_write_nowait gives -EAGAIN, before anything is written, whenever
 * lsm_write would wait or do I/O on the way: under LSM_SYNC_ALWAYS (every
 * write waits for an fsync), when another writer is in the queue, when
 * the memtable is full (a switch creates a log) or level 0 asks writers to
 * slow down or stall, when the commit log's lock is held (the periodic
 * sync of LSM_SYNC_BATCH), when the record would not fit in the log's
 * user-space buffer (no write() on the caller's thread), once when the
 * buffer has passed log_early_write (lsm_write would write it out: the
 * caller's blocking retry then does), and when a write would try to
 * resume after a failed log write. Otherwise it appends to
 * that buffer and the memtable exactly as lsm_write does, with the same
 * durability (under LSM_SYNC_BATCH the periodic sync covers it) and
 * errors (a background error is returned as lsm_write returns it).
 */
int lsm_get_nowait(lsm_db *db, q_slice key, q_buf *out);
int lsm_write_nowait(lsm_db *db, lsm_batch *b);

/* Ordered iteration over a consistent snapshot taken at lsm_iter_new.
 * Key and value slices are valid until the next move or lsm_iter_free. */
int lsm_iter_new(lsm_db *db, lsm_iter **out);
void lsm_iter_seek_first(lsm_iter *it);
void lsm_iter_seek(lsm_iter *it, q_slice target); /* first key >= target */
int lsm_iter_valid(const lsm_iter *it);
void lsm_iter_next(lsm_iter *it);
q_slice lsm_iter_key(const lsm_iter *it);
q_slice lsm_iter_value(const lsm_iter *it);
/* 0, or the error that stopped iteration (e.g. Q_ECORRUPT from a damaged
 * table block; the table is quarantined). */
int lsm_iter_status(const lsm_iter *it);
/* Entries passed over because their separated value (blob record) failed
 * its checks: each is logged with file and offset and reads as Q_ECORRUPT
 * through lsm_get; iteration goes on past it. A caller that needs a
 * complete listing (e.g. marking live data before a deletion) must treat
 * a non-zero count as an error. */
uint64_t lsm_iter_skipped(const lsm_iter *it);
void lsm_iter_free(lsm_iter *it);

/* Forces the memtable to a table and waits for it. */
int lsm_flush(lsm_db *db);
/* Compacts everything into the last level and waits. */
int lsm_compact_all(lsm_db *db);
void lsm_get_stats(lsm_db *db, lsm_stats *out);

#endif
