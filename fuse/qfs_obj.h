/*
 * qfs_obj.h - the filesystem's object model: what one "f:" key holds.
 *
 * A qfs_obj is the metadata of one path (type, mode, owner, nanosecond
 * times, size, origin node, extended attributes) plus a body that depends on
 * the type:
 *   - regular file: inline bytes (small files) or a list of fixed-size chunk
 *     references, each a hole or a 128-bit content hash naming a "c:" key;
 *   - symlink: the target;
 *   - directory: an add-wins set of entries (name, type), kept as an
 *     observed-remove set without tombstones (ORSWOT): a clock of
 *     (actor, counter) pairs and, per entry, the dots that added it. Merging
 *     two versions keeps an entry if both have it or if the side that lacks
 *     it has not seen (its clock does not cover) the dot that added it. So
 *     concurrent creates both survive, a remove that saw an add wins over it,
 *     and an add concurrent with a remove survives (add wins). As in dotted
 *     version vectors, the clock is contiguous per actor plus a "cloud" of
 *     dots seen beyond it, so an add made on a stale copy (a dot past
 *     clock + 1) never claims to have seen dots it has not.
 *
 * Invariants (checked by qfs_obj_decode, kept by every mutator here):
 *   - mode's S_IFMT bits agree with type;
 *   - inline: inline_len == size; chunked: nchunks == ceil(size/chunk_size);
 *   - directory entries are sorted by name (bytewise), unique, each with
 *     1..QFS_DOTS_MAX dots, each dot covered by the clock or the cloud; the
 *     clock is sorted by actor with no duplicates and no zero counter; the
 *     cloud is sorted by (actor, counter), unique, and holds only dots past
 *     the clock's counter + 1;
 *   - every limit in qfs_format.h holds.
 *
 * Ownership: a qfs_obj owns every pointer in it; qfs_obj_free releases them
 * and leaves an empty object. qfs_obj_decode fills a fresh object that owns
 * copies of the data (nothing points into the input). Thread safety: none;
 * an object belongs to one thread at a time (callers lock).
 */
#ifndef QFS_OBJ_H
#define QFS_OBJ_H

#include <stddef.h>
#include <stdint.h>

#include "fuse/qfs_format.h"
#include "util/buf.h"

typedef struct qfs_dot {
	uint64_t actor;
	uint64_t counter;
} qfs_dot;

typedef struct qfs_dirent {
	char *name;   /* owned, NUL-terminated */
	uint8_t type; /* QFS_T_* */
	uint32_t ndots;
	qfs_dot *dots; /* owned */
} qfs_dirent;

typedef struct qfs_xattr {
	char *name;     /* owned, NUL-terminated */
	uint8_t *value; /* owned (may be NULL when len is 0) */
	size_t len;
} qfs_xattr;

typedef struct qfs_chunkref {
	uint8_t kind; /* QFS_CHUNK_HOLE or QFS_CHUNK_DATA */
	uint8_t id[QFS_CHUNK_ID_LEN];
} qfs_chunkref;

typedef struct qfs_obj {
	uint8_t type;
	uint32_t mode; /* st_mode, type bits included */
	uint32_t uid, gid;
	uint64_t rdev;
	int64_t atime_ns, mtime_ns, ctime_ns; /* since the epoch, UTC */
	uint64_t size;
	char origin[QFS_ORIGIN_MAX + 1]; /* node id of the mount that wrote it */

	size_t nxattr;
	qfs_xattr *xattr; /* sorted by name */

	/* QFS_T_REG */
	uint8_t layout;
	uint8_t *inline_data; /* inline: size bytes */
	uint32_t chunk_size;  /* chunked */
	size_t nchunks;
	qfs_chunkref *chunks;

	/* QFS_T_LNK */
	char *target;

	/* QFS_T_DIR */
	size_t nclock;
	qfs_dot *clock;  /* contiguous knowledge: every dot up to counter seen */
	size_t ncloud;
	qfs_dot *cloud;  /* dots seen beyond the contiguous part (gaps) */
	size_t nent;
	qfs_dirent *ent;
} qfs_obj;

void qfs_obj_init(qfs_obj *o);
void qfs_obj_free(qfs_obj *o);
/* Deep copy; dst must be empty (initialised or freed). */
int qfs_obj_copy(qfs_obj *dst, const qfs_obj *src);

/* QFS_T_* for an st_mode, or 0 if the file type is not supported. */
uint8_t qfs_type_of_mode(uint32_t mode);
/* DT_* value for readdir. */
unsigned qfs_type_to_dt(uint8_t type);

/* Appends the encoding of o to out. */
int qfs_obj_encode(const qfs_obj *o, q_buf *out);
/* Decodes a whole value. Q_ETRUNC, Q_ECORRUPT, Q_ETOOBIG or Q_EVERSION on bad
 * input (never crashes, never reads past the input); o is empty on error. */
int qfs_obj_decode(const uint8_t *p, size_t n, qfs_obj *o);

/* ---- extended attributes ---- */
/* Returns the xattr or NULL. */
const qfs_xattr *qfs_xattr_get(const qfs_obj *o, const char *name);
/* flags: 0, XATTR_CREATE (-EEXIST if present), XATTR_REPLACE (-ENODATA if
 * absent). */
int qfs_xattr_set(qfs_obj *o, const char *name, const void *value, size_t len, int flags);
int qfs_xattr_remove(qfs_obj *o, const char *name); /* -ENODATA if absent */

/* ---- regular-file body ---- */
/* Number of chunks a file of size bytes has with chunk size cs. */
uint64_t qfs_chunks_for(uint64_t size, uint32_t cs);
/* Resizes the chunk list for a new size (new references are holes). Only for
 * chunked layout. */
int qfs_obj_set_chunked_size(qfs_obj *o, uint64_t size);
/* Chunk id of data: two seeded 64-bit hashes. */
void qfs_chunk_id(const void *data, size_t n, uint8_t id[QFS_CHUNK_ID_LEN]);
/* "c:" + hex id, NUL-terminated; buf has room for QFS_CHUNK_KEY_LEN + 1. */
void qfs_chunk_key(const uint8_t id[QFS_CHUNK_ID_LEN], char *buf);

/* ---- directory body (ORSWOT) ---- */
/* Index of name in o->ent, or -1. */
long qfs_dir_find(const qfs_obj *o, const char *name);
/* The clock's counter for actor (0 if absent). */
uint64_t qfs_dir_clock(const qfs_obj *o, uint64_t actor);
/* Adds (or re-adds) name with a fresh dot of actor. The counter is one past
 * the largest counter of actor this copy has seen (clock or cloud) and past
 * floor (callers remember the last counter they used in this directory, so
 * dots stay unique even when they modify a stale copy). Replaces the entry's
 * previous dots (they were observed). */
int qfs_dir_add(qfs_obj *o, const char *name, uint8_t type, uint64_t actor, uint64_t floor,
		uint64_t *counter_out);
/* Removes name; Q_ENOTFOUND if absent. */
int qfs_dir_remove(qfs_obj *o, const char *name);
/* Merges src into dst (both directories): ORSWOT merge of entries and
 * clocks; dst keeps the metadata with the larger (ctime, mtime) pair. */
int qfs_dir_merge(qfs_obj *dst, const qfs_obj *src);

/* Checks a single path component: not empty, not "." or "..", no '/' or NUL,
 * at most QFS_NAME_MAX bytes. Returns 0 or -EINVAL / -ENAMETOOLONG. */
int qfs_name_check(const char *name, size_t n);

#endif
