/*
 * qfs_gc.h - pieces of chunk collection shared by the mount and the
 * collector (`quorumctl fs-gc`, src/cli/cli_fs.c); the design and its safety
 * argument are in docs/filesystem.md, "Chunk collection".
 *
 *  - move records (format in qfs_format.h): a rename of a chunked file
 *    stores one before the renamed version, so that a mark which reads the
 *    new name before the rename and the old name after it still finds the
 *    chunks;
 *  - a set of chunk ids (open addressing over the 16-byte ids), the mark;
 *  - chunk key parsing.
 *
 * Ownership: qfs_move_decode's ids point into its input; a qfs_idset owns
 * its table (qfs_idset_free). Threading: none inside; a set belongs to one
 * thread.
 */
#ifndef QFS_GC_H
#define QFS_GC_H

#include <stddef.h>
#include <stdint.h>

#include "fuse/qfs_format.h"
#include "util/buf.h"

/* Appends a move record (n ids of QFS_CHUNK_ID_LEN bytes each, ids[]
 * contiguous) to out. */
int qfs_move_encode(int64_t wall_ns, const uint8_t *ids, size_t n, q_buf *out);
/* Decodes a whole record: *ids points into p (n * QFS_CHUNK_ID_LEN bytes).
 * Q_ECORRUPT / Q_ETRUNC / Q_ETOOBIG / Q_EVERSION on bad input. */
int qfs_move_decode(const uint8_t *p, size_t len, int64_t *wall_ns, const uint8_t **ids,
		    size_t *n);
/* The key of a new move record at wall_ns with 64 random bits; buf has room
 * for QFS_MOVE_KEY_LEN + 1 bytes. */
void qfs_move_key(int64_t wall_ns, uint64_t rnd, char *buf);

/* Chunk key ("c:" + 32 lowercase hex digits) to its id; -EINVAL if key is
 * not one. */
int qfs_chunk_key_parse(q_slice key, uint8_t id[QFS_CHUNK_ID_LEN]);

typedef struct qfs_idset {
	uint8_t *slots; /* cap * QFS_CHUNK_ID_LEN bytes */
	uint8_t *used;  /* cap flags */
	size_t cap, n;
} qfs_idset;

void qfs_idset_init(qfs_idset *s);
void qfs_idset_free(qfs_idset *s);
/* Returns 1 if added, 0 if already present, -ENOMEM. */
int qfs_idset_add(qfs_idset *s, const uint8_t id[QFS_CHUNK_ID_LEN]);
int qfs_idset_has(const qfs_idset *s, const uint8_t id[QFS_CHUNK_ID_LEN]);

#endif
