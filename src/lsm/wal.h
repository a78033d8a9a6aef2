/*
 * wal.h - the commit log (write-ahead log): writer and reader.
 *
 * A log is a sequence of WAL_BLOCK_SIZE blocks. A logical record (one write
 * batch) is stored as one or more physical records (FULL, or FIRST MIDDLE*
 * LAST) that never cross a block boundary; each physical record carries an
 * xxHash checksum over its type and payload. The format is in docs/lsm.md,
 * the constants in lsm_format.h.
 *
 * Writer invariants: a failed append leaves the writer in a failed state
 * (every later call returns the first error), because the file may end in a
 * torn record; the owner must switch to a new log. With buffered = 1 the
 * writer keeps up to 64 KiB in memory until wal_flush/wal_sync (used for the
 * `none` and `batch` sync policies, as the data would not be durable anyway).
 *
 * Preallocation (wal_writer_open_prealloc, POSIX env only): the file is
 * extended with zeros, chunk by chunk ahead of the records, and records
 * overwrite the zeros. An fdatasync of a record then writes only data
 * blocks: the file size and block map did not change, so no journal
 * commit is needed (on ext4 this roughly halves the cost of a sync). The
 * file then ends in zeros, which the reader takes for block padding.
 *
 * Reader invariants: the reader works on a byte array (the whole file). It
 * returns every intact logical record in order; a record whose checksum or
 * framing is wrong is never returned: it is reported through the callback
 * with its offset and skipped (resynchronising at the next block). A record
 * cut short by the end of the data is a torn tail: reading stops cleanly
 * there and the callback hears about it with torn = 1. So is a damaged
 * record followed by nothing but zeros up to the end of the data (a
 * preallocated log whose last write was torn by a power loss).
 *
 * Thread safety: a writer or reader belongs to one thread at a time.
 */
#ifndef Q_LSM_WAL_H
#define Q_LSM_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/env.h"

typedef struct wal_writer wal_writer;

/* Creates path (must not exist) and returns a writer; close with
 * wal_writer_close. */
int wal_writer_open(q_env *env, const char *path, int buffered, wal_writer **out);
/* The same, but with env the POSIX env the writer uses the file's
 * descriptor directly: with chunk > 0 the file is preallocated with zeros
 * chunk bytes at a time (see above), and records of 64 KiB or more are
 * written with pwritev from the caller's memory (any buffered bytes
 * first) instead of through the buffer. With another env exactly
 * wal_writer_open. */
int wal_writer_open_prealloc(q_env *env, const char *path, int buffered, size_t chunk,
			     wal_writer **out);
/* Appends one logical record (n may be 0). */
int wal_add(wal_writer *w, const void *p, size_t n);
/* wal_add that also sets *start (if not NULL) to the file offset of the
 * record's first physical header (after any block padding). */
int wal_add_at(wal_writer *w, const void *p, size_t n, uint64_t *start);
/* The file offset of byte `logical` of the payload of a logical record
 * whose first header is at file offset start. A record's fragments fill
 * every block to its end, so the payload bytes from there run to the end
 * of the block and go on after the header at the start of the next one:
 * wal_payload_offset(start, i + 1) == wal_payload_offset(start, i) + 1
 * unless the latter is the last byte of a block. */
uint64_t wal_payload_offset(uint64_t start, uint64_t logical);
/* Hands buffered bytes to the OS. */
int wal_flush(wal_writer *w);
/* wal_flush, then fsync. */
int wal_sync(wal_writer *w);
/* 1 if wal_add of a record of n bytes would only append to the writer's
 * user-space buffer (no system call): the writer is buffered, has not
 * failed, and the record with its headers and padding leaves the buffer
 * below the size at which it is written out. 0 otherwise. Pure. */
int wal_fits_buffer(const wal_writer *w, size_t n);
/* Bytes waiting in the writer's user-space buffer (not yet handed to the
 * OS). Pure. */
size_t wal_buffered(const wal_writer *w);
/* Bytes in the log so far (written or buffered). */
uint64_t wal_size(const wal_writer *w);
/* The first write or sync error of w (sticky: a torn record may follow the
 * last good one), or 0. An allocation failure while buffering is not one. */
int wal_failed(const wal_writer *w);
/* Flushes (no fsync) and closes; frees w. */
int wal_writer_close(wal_writer *w);

/* Called for every dropped piece: offset of the physical record, bytes
 * dropped, why, and whether it is a torn tail rather than corruption. */
typedef void (*wal_report_fn)(void *arg, uint64_t off, size_t bytes, const char *why, int torn);

typedef struct wal_reader {
	const uint8_t *data;
	size_t n;
	size_t pos;
	q_buf frag;          /* logical record being assembled */
	uint64_t frag_off;
	int in_frag;
	wal_report_fn report;
	void *arg;
	uint64_t corrupt;    /* physical records reported as corrupt */
} wal_reader;

/* data is borrowed and must outlive the reader. */
void wal_reader_init(wal_reader *r, const uint8_t *data, size_t n, wal_report_fn fn, void *arg);
/* 1 and *rec = the next logical record (valid until the next call), or 0 at
 * the end, or -ENOMEM. */
int wal_read(wal_reader *r, q_slice *rec);
void wal_reader_free(wal_reader *r);

#endif
