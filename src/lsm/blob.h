/*
 * blob.h - blob files: key-value separation for large values.
 *
 * A put whose value has at least lsm_options.blob_threshold bytes keeps its
 * value in the tree only while it sits in the memtable (and the commit log).
 * The flush appends the value to a blob file (NNNNNN.blob) and the table
 * gets an entry of kind KIND_BLOB whose value is a blob pointer
 * (blob number, record offset, value length). Compaction then moves the
 * small pointer, not the value. Format in docs/lsm.md, constants in
 * lsm_format.h.
 *
 * A value that does not compress and is still in the memtable's sealed
 * commit log stays there instead: the pointer (BLOB_PTR_LOG) names the log
 * and the offset of the value's first byte, and carries a checksum of key
 * and value; the log's lsm_blob (is_log) then lives like a blob file (the
 * manifest lists it; it is unlinked when no version points into it). The
 * log was written once and is fsynced by the flush before any table
 * points into it, so the invariants below hold for it too.
 *
 * Invariants:
 *  - A blob file is written once, fsynced, and never changed afterwards;
 *    it is fsynced before any manifest names a table that points into it.
 *  - Every table (lsm_file) holds a reference on each blob file it points
 *    into, and every version holds the blob files of its tables. A blob
 *    file is marked obsolete when it leaves the current version and
 *    unlinked when its last reference goes (so iterators, readers and the
 *    version kept for MANIFEST.prev keep it on disk).
 *  - A record is returned only after its checksum, its lengths and its key
 *    have been checked against the pointer and the key looked up: never
 *    wrong data. Failures are Q_ECORRUPT, logged with file and offset.
 *
 * Reads go through q_file_pread of the store's env (no mapping), so a
 * file cut short under the store is a short read (Q_ECORRUPT), not SIGBUS,
 * and the fault env sees every read.
 *
 * Thread safety: an lsm_blob may be read from any number of threads;
 * refs and garbage are atomic. A blob_writer belongs to one thread.
 */
#ifndef Q_LSM_BLOB_H
#define Q_LSM_BLOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lsm/lsm_format.h"
#include "util/buf.h"
#include "util/env.h"

typedef struct lsm_blob {
	uint64_t number;
	uint64_t size;               /* file size the manifest records */
	_Atomic uint64_t garbage;    /* bytes of records no table points to
	                              * any more (an estimate: see docs) */
	atomic_int refs;
	atomic_int obsolete;         /* unlink when the last reference goes */
	atomic_int quarantined;      /* it left the store with a quarantined
	                              * table: renamed NNNNNN.blob.bad (kept for
	                              * study and salvage) when the last
	                              * reference goes, never unlinked */
	atomic_int gc_failed;        /* a record could not be moved: no more GC */
	atomic_int gc_read_errors;   /* records GC could not read (not corrupt) */
	_Atomic(q_file *) f;         /* NULL: not open yet (the next read opens it) */
	atomic_int unusable;         /* missing file or bad header: reads fail
	                              * with Q_ECORRUPT, no more open attempts */
	int is_log;                  /* a kept commit log (NNNNNN.log), not a
	                              * blob file: values are read from the
	                              * payload of its records (BLOB_PTR_LOG) */
	q_env *env;
	char path[512];
} lsm_blob;

/* Pointer kinds (docs/lsm.md, "Blob pointers") */
enum { BLOB_PTR_REC = 0, BLOB_PTR_LOG = 1 };

typedef struct blob_ptr {
	uint64_t number;  /* blob file or kept log */
	uint64_t offset;  /* REC: of the record; LOG: of the value's first byte */
	uint64_t vlen;    /* stored value length (compressed, if it is) */
	int kind;         /* BLOB_PTR_REC or BLOB_PTR_LOG */
	uint32_t csum;    /* LOG: blob_log_csum(key, value) */
} blob_ptr;

void blob_path(char *out, size_t cap, const char *dir, uint64_t number);

/* A handle on blob file `number` with one reference; NULL on ENOMEM. The
 * file is not opened (see blob_open). */
lsm_blob *blob_new(q_env *env, const char *dir, uint64_t number, uint64_t size,
		   uint64_t garbage);
/* A handle on kept commit log `number` (values in place, see is_log) with
 * one reference; NULL on ENOMEM. Not opened. */
lsm_blob *blob_new_log(q_env *env, const char *dir, uint64_t number, uint64_t size,
		       uint64_t garbage);
/* Bytes of b that hold records (the size less a blob file's header). */
uint64_t blob_data_size(const lsm_blob *b);
/* The checksum a BLOB_PTR_LOG pointer carries: of the key, then the value. */
uint32_t blob_log_csum(q_slice key, q_slice value);
/* The pointer to a value of key in kept log lognum: its first byte at
 * offset, vlen bytes (running on per wal_payload_offset). */
void blob_ptr_log(blob_ptr *p, uint64_t lognum, uint64_t offset, q_slice key, q_slice value);
/* The file bytes a log-kept value of vlen bytes starting at offset spans
 * (value and the block headers inside it). */
uint64_t blob_log_span(uint64_t offset, uint64_t vlen);

/* Opens the file for reading and checks its header (a kept log has none): 0, Q_ECORRUPT (bad
 * header, logged; b is then unusable), -ENOENT (likewise) or another env
 * error (e.g. -EMFILE: b stays closed and the next read tries again). A
 * size other than the manifest's (b->size) is logged but not an error:
 * each record is checked on its own, so a file cut short loses only the
 * records past its end. Safe to call from several threads. */
int blob_open(lsm_blob *b);
void blob_ref(lsm_blob *b);
/* Drops a reference; the last one closes the file and, if quarantined,
 * renames it NNNNNN.blob.bad, else if obsolete unlinks it. */
void blob_unref(lsm_blob *b);
/* Adds n bytes to the garbage count (clamped to the file's record bytes). */
void blob_add_garbage(lsm_blob *b, uint64_t n);
/* 1 if the garbage share makes the file worth collecting. */
int blob_needs_gc(lsm_blob *b);
/* 1 if a value is worth trying to compress: its first BLOB_SAMPLE bytes
 * (or all, if fewer) compressed save 1/SST_MIN_SAVING_DIV. 0 for values
 * under 64 bytes. scratch is reused. */
int blob_worth_compressing(q_slice value, q_buf *scratch);

/* ---- pointers ---- */
/* Encodes p into out (BLOB_PTR_MAX bytes); returns the length. A REC
 * pointer is three varints (number, offset, vlen); a LOG pointer adds
 * kind u8 (1) | csum u32. */
size_t blob_ptr_encode(uint8_t *out, const blob_ptr *p);
/* 0 or Q_ECORRUPT (trailing bytes, bad varints, impossible offsets). */
int blob_ptr_decode(q_slice v, blob_ptr *p);
/* Bytes a record of this key and value length occupies. */
uint64_t blob_rec_size(size_t klen, uint64_t vlen);

/* ---- reading ---- */
/* Reads the value p points to, checks the record (checksum, lengths, key
 * equal to key, a decompressed length within BLOB_SNAPPY_MAX_OUT; for a
 * LOG pointer: pointer kind equal to the file's, the span within the file
 * and blob_log_csum of key and the bytes read) and puts the
 * value in out (reset first). Opens the file first if it is not open. 0,
 * Q_ECORRUPT (logged with file and offset), or an env error (transient:
 * EMFILE, EIO; a retry may succeed). */
int blob_read(lsm_blob *b, q_slice key, const blob_ptr *p, q_buf *out);

/* Pure decoder of one record at the start of p[0..n) (for scans and the
 * fuzzer): 0 with key/stored value pointing into p, *comp its compression
 * (SST_COMP_*) and *used = record size, or Q_ECORRUPT (checksum, truncated
 * record, unknown compression). */
int blob_rec_decode(const uint8_t *p, size_t n, q_slice *key, q_slice *value, int *comp,
		    size_t *used);
/* Decompresses a stored value of compression comp into out (reset first):
 * 0 or Q_ECORRUPT (also when the announced length exceeds max; nothing is
 * allocated for it then). */
int blob_value_decode(q_slice stored, int comp, uint64_t max, q_buf *out);
/* 0 if p[0..n) starts with the blob file header, else Q_ECORRUPT. */
int blob_header_check(const uint8_t *p, size_t n);

/* ---- writing ---- */
typedef struct blob_writer blob_writer;
/* Creates path (truncating a leftover) and writes the header; compress: 1 =
 * snappy-compress values where that saves at least 1/8. */
int blob_writer_new(q_env *env, const char *path, uint64_t number, int compress,
		    blob_writer **out);
/* Appends a record; *ptr says where it is. */
int blob_writer_add(blob_writer *w, q_slice key, q_slice value, blob_ptr *ptr);
uint64_t blob_writer_size(const blob_writer *w);
/* fsyncs and closes; *size = file size. Frees w whatever happens (on error
 * the file is unlinked). */
int blob_writer_finish(blob_writer *w, uint64_t *size);
/* Closes and unlinks the unfinished file; frees w (NULL is fine). */
void blob_writer_abandon(blob_writer *w);

#endif
