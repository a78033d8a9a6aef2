/*
 * batch.h - write batches: the unit of atomicity of the engine and the
 * payload of one commit-log record.
 *
 * Encoding (docs/lsm.md): seq fixed64 | count fixed32 | count ops, each
 * op byte (BATCH_PUT/BATCH_DEL) | varint key length | key
 * [| varint value length | value]. The seq field is filled in when the
 * batch is committed; op i gets seq + i.
 *
 * Sharing: the commit leader may hand the encoding of a batch carrying
 * large values to the memtable without copying it (batch_share): the bytes
 * then belong to a reference-counted hold, the batch reads them through
 * an alias, and any later change of the batch (put, delete, set_seq,
 * append into it) first copies them into a buffer of its own, so what the
 * memtable references never changes. lsm_batch_clear/lsm_batch_free (and
 * batch_release for a batch not made by lsm_batch_new) drop the alias.
 *
 * Thread safety: a batch belongs to one thread; lsm_write only reads it
 * (apart from sharing, which leaves its contents as they are). A hold's
 * references are atomic; its bytes are read-only, so any thread may read
 * them while it holds a reference.
 */
#ifndef Q_LSM_BATCH_H
#define Q_LSM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "lsm/lsm.h"
#include "util/buf.h"

struct lsm_batch {
	q_buf rep;       /* always holds at least the header once used */
	uint32_t count;
	int err;         /* first allocation failure, reported by lsm_write */
	size_t max_key;  /* largest key and value, for the size limits */
	size_t max_value;
	struct batch_hold *hold; /* non-NULL: rep.p belongs to this hold */
};

/* The shared bytes of a batch encoding (see Sharing above). */
typedef struct batch_hold batch_hold;

/* Called for every op of a decoded batch; a negative return stops. */
typedef int (*batch_op_fn)(void *arg, uint64_t seq, int kind, q_slice key, q_slice value);

/* Decodes and validates rep fully before calling fn for any op (so a bad
 * batch applies nothing): Q_ECORRUPT/Q_ETRUNC on malformed input. */
int batch_decode(q_slice rep, batch_op_fn fn, void *arg);
/* Header accessors on an encoded batch (rep.n >= BATCH_HEADER_SIZE). */
uint64_t batch_rep_seq(q_slice rep);
uint32_t batch_rep_count(q_slice rep);
/* Writes seq into the header; -ENOMEM only when a shared encoding had to
 * be copied first and could not be. */
int batch_set_seq(lsm_batch *b, uint64_t seq);
/* Appends the ops of src to dst (group commit merges batches). */
int batch_append(lsm_batch *dst, const lsm_batch *src);
/* Makes b's encoding shared and returns its hold with one reference for
 * the caller (batch_hold_unref when done), or NULL when out of memory
 * (nothing changed). The bytes b->rep.p..+rep.len stay valid and unchanged
 * while the reference is held, whatever happens to b afterwards. b must
 * own its encoding on the heap (made by lsm_batch_new or the lsm_batch_*
 * functions, not an encoding on the stack). */
batch_hold *batch_share(lsm_batch *b);
void batch_hold_ref(batch_hold *h);
/* The first byte of the hold's encoding (the bytes batch_share aliased). */
const uint8_t *batch_hold_data(const batch_hold *h);
/* Bytes of memory the hold keeps alive (its buffer's capacity). */
size_t batch_hold_size(const batch_hold *h);
void batch_hold_unref(batch_hold *h);
/* Records that the first len bytes of h are the payload of the logical
 * record whose first header is at offset start of commit log lognum (set
 * by the commit leader right after the log write, before the hold is
 * handed to the memtable; never changed afterwards). */
void batch_hold_set_log(batch_hold *h, uint64_t lognum, uint64_t start, size_t len);
/* 1 if p..p+n lies in the logged bytes of h: *lognum, *start as set and
 * *logical = the offset of p in the record's payload; else 0. */
int batch_hold_log_pos(const batch_hold *h, const uint8_t *p, size_t n, uint64_t *lognum,
		       uint64_t *start, uint64_t *logical);
/* Frees what a batch not made by lsm_batch_new holds (its encoding or its
 * reference on a hold); the batch is empty afterwards. */
void batch_release(lsm_batch *b);

#endif
