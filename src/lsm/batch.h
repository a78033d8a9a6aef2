/*
 * batch.h - write batches: the unit of atomicity of the engine and the
 * payload of one commit-log record.
 *
 * Encoding (docs/lsm.md): seq fixed64 | count fixed32 | count ops, each
 * op byte (BATCH_PUT/BATCH_DEL) | varint key length | key
 * [| varint value length | value]. The seq field is filled in when the
 * batch is committed; op i gets seq + i.
 *
 * Thread safety: a batch belongs to one thread; lsm_write only reads it.
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
};

/* Called for every op of a decoded batch; a negative return stops. */
typedef int (*batch_op_fn)(void *arg, uint64_t seq, int kind, q_slice key, q_slice value);

/* Decodes and validates rep fully before calling fn for any op (so a bad
 * batch applies nothing): Q_ECORRUPT/Q_ETRUNC on malformed input. */
int batch_decode(q_slice rep, batch_op_fn fn, void *arg);
/* Header accessors on an encoded batch (rep.n >= BATCH_HEADER_SIZE). */
uint64_t batch_rep_seq(q_slice rep);
uint32_t batch_rep_count(q_slice rep);
void batch_set_seq(lsm_batch *b, uint64_t seq);
/* Appends the ops of src to dst (group commit merges batches). */
int batch_append(lsm_batch *dst, const lsm_batch *src);

#endif
