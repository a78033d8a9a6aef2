/*
 * lsm_format.h - every constant of the storage engine's on-disk formats, in
 * one place. The formats themselves are described in docs/lsm.md; change a
 * constant here only together with that document and a version bump.
 *
 * Files in a store directory (NNNNNN = decimal file number, 6+ digits):
 *   LOCK            advisory lock held by the process that has the store open
 *   MANIFEST        the current version (file list, counters), replaced
 *                   atomically (write MANIFEST.tmp, fsync, rename MANIFEST to
 *                   MANIFEST.prev, rename MANIFEST.tmp to MANIFEST, fsync dir)
 *   MANIFEST.prev   the manifest before the current one; recovery falls back
 *                   to it when MANIFEST is corrupt or missing
 *   MANIFEST.bad    a corrupt manifest set aside by such a fallback
 *   NNNNNN.log      commit log of one memtable; after its flush kept (and
 *                   listed in the manifest with the blob files) while
 *                   tables point at values in it
 *   NNNNNN.sst      a sorted table
 *   NNNNNN.sst.bad  a quarantined table (checksum failure), kept for study
 *   NNNNNN.blob     a blob file: large values kept out of the tree
 */
#ifndef Q_LSM_FORMAT_H
#define Q_LSM_FORMAT_H

/* ---- commit log ---- */
#define WAL_BLOCK_SIZE 32768u
/* preallocation step of logs under sync=always (write_buffer_size / 4,
 * clamped to these bounds) */
#define WAL_PREALLOC_MIN (64u << 10)
#define WAL_PREALLOC_MAX (1u << 20)
/* Writes resume after a full disk only with at least this much free (lsm.c
 * try_resume): room for a few log buffers' worth of records. */
#define LSM_RESUME_MIN_FREE (1u << 20)
/* record header: checksum (4) | length (2) | type (1) */
#define WAL_HEADER_SIZE 7u
enum wal_rec_type {
	WAL_ZERO = 0,   /* padding / preallocated zeroes: skip rest of block */
	WAL_FULL = 1,
	WAL_FIRST = 2,
	WAL_MIDDLE = 3,
	WAL_LAST = 4
};
#define WAL_MAX_TYPE 4

/* ---- write batch (the payload of one logical log record) ---- */
/* seq (fixed64) | count (fixed32) | ops */
#define BATCH_HEADER_SIZE 12u
enum batch_op { BATCH_DEL = 0, BATCH_PUT = 1 };

/* ---- internal keys: user key | fixed64(seq << 8 | kind) ---- */
#define IKEY_TRAILER 8u
enum ikey_kind {
	KIND_DEL = 0,
	KIND_PUT = 1,
	KIND_BLOB = 2 /* tables only: the value is a blob pointer (blob.h) */
};
/* kind used in seek keys: sorts before every stored kind of the same seq,
 * so a seek to (key, seq) finds entries written at seq whatever their kind */
#define KIND_SEEK 0xff
#define SEQ_MAX ((1ULL << 56) - 1)

/* ---- sorted tables ---- */
#define SST_MAGIC 0x71667373745f7631ULL /* bytes "1v_tssfq" */
#define SST_VERSION 1u
/* block trailer: compression (1) | checksum (4) */
#define SST_BLOCK_TRAILER 5u
enum sst_compression { SST_COMP_NONE = 0, SST_COMP_SNAPPY = 1 };
/* footer: filter off (8) size (8) | index off (8) size (8) | entries (8) |
 * version (4) | checksum of the preceding 44 bytes (4) | magic (8) */
#define SST_FOOTER_SIZE 56u
#define SST_RESTART_INTERVAL 16
#define SST_INDEX_RESTART_INTERVAL 1 /* of index blocks (readers take any) */
/* compress only if it saves at least 1/8 of the block */
#define SST_MIN_SAVING_DIV 8
/* bloom filter block: bit array | k (1 byte) */
#define BLOOM_SEED 0x626c6f6f6dULL /* "bloom" */
#define BLOOM_MAX_K 30
#define BLOOM_BLOCKED 0x80u   /* in the filter's last byte: blocked layout */
#define BLOOM_LINE_BITS 512u  /* bits of one line of a blocked filter */

/* ---- manifest ---- */
#define MANIFEST_MAGIC 0x716673666d616e31ULL /* "qfsfman1" */
#define MANIFEST_VERSION 3u    /* 2: blob references and blob files;
                                * 3: a kind byte per blob file (kept logs) */
#define MANIFEST_BLOB_FILE 0u  /* manifest blob entry kinds */
#define MANIFEST_BLOB_LOG 1u
#define MANIFEST_VERSION_MIN 1u /* version 1 (no blobs) is still read */
#define MANIFEST_NAME "MANIFEST"
#define MANIFEST_PREV_SUFFIX ".prev"
#define MANIFEST_BAD_SUFFIX ".bad"

/* ---- blob files (key-value separation) ---- */
#define BLOB_MAGIC 0x31626f6c62736671ULL /* bytes "qfsblob1" */
#define BLOB_FILE_HEADER 8u  /* magic u64, then records */
/* record: checksum u32 | key length u32 | stored length u32 | compression u8
 * (SST_COMP_*) | key | stored value, checksum = xxh3 of everything after the
 * checksum field; the value is snappy-compressed when that saves at least
 * 1/SST_MIN_SAVING_DIV */
#define BLOB_REC_HEADER 13u
/* the longest value a snappy-compressed record of n stored bytes can
 * decode to (a 3-byte copy element yields at most 64 bytes), checked before
 * anything is allocated for it; independent of the store's options, so
 * values stored under a larger max_value_size keep reading */
#define BLOB_SNAPPY_MAX_OUT(n) ((uint64_t)(n) * 22u + 64u)
/* a pointer (table value of a KIND_BLOB entry): three varints, then for a
 * value kept in a commit log: kind u8 (BLOB_PTR_LOG) | checksum u32 */
#define BLOB_PTR_MAX 35u
#define BLOB_PTR_LOG_TAIL 5u
/* a large value is compressed (at a flush, or when collection moves it)
 * only if its first BLOB_SAMPLE bytes compress (save 1/SST_MIN_SAVING_DIV);
 * an incompressible value of a sealed log stays in the log */
#define BLOB_SAMPLE (8u << 10)
/* default lsm_options.blob_threshold */
#define BLOB_THRESHOLD_DEFAULT (64u << 10)
/* a compaction that moves records starts a new blob file past this size
 * (overridable at build time only to test the cut) */
#ifndef BLOB_FILE_TARGET
#define BLOB_FILE_TARGET (128ULL << 20)
#endif
/* a blob file whose garbage exceeds size * NUM / DEN is collected */
#define BLOB_GC_NUM 1
#define BLOB_GC_DEN 2
/* records of a blob file GC may fail to read (I/O errors, not corruption)
 * before it stops collecting the file until the store is reopened */
#define BLOB_GC_READ_TRIES 3

/* ---- levels ---- */
#define LSM_LEVELS 7
#define L0_COMPACT_TRIGGER 4
#define L0_SLOWDOWN 8
#define L0_STOP 12
#define L1_MAX_BYTES (10ULL << 20)
#define LEVEL_MULTIPLIER 10
#define TABLE_TARGET_SIZE (2ULL << 20)
/* an output table stops growing once it overlaps this much of the next
 * level, so a later compaction of it stays cheap */
#define MAX_GRANDPARENT_OVERLAP (10 * TABLE_TARGET_SIZE)

/* ---- build switch (not a format constant) ----
 * Memory recycling inside the engine (the batch buffer pool, the per-thread
 * block stash, the block cache's spare entry) is off under AddressSanitizer,
 * so that a use of recycled memory after its release is reported there. */
#if defined(__SANITIZE_ADDRESS__)
#define LSM_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LSM_RECYCLE 0
#endif
#endif
#ifndef LSM_RECYCLE
#define LSM_RECYCLE 1
#endif

#endif
