/*
 * hint.h - the durable hint store of the sloppy quorum (hinted handoff).
 *
 * When a primary replica is down, the coordinator writes to a fallback node
 * and that node keeps a hint: the object bytes it must deliver to the
 * intended owner once the owner is seen alive again. This store keeps those
 * hints in the node's LSM store (lsm.h) under the LSM_KS_HINT key prefix,
 * one record per (intended owner, key):
 *
 *   key   = LSM_KS_HINT, u8 owner length, owner bytes, cluster key bytes
 *   value = HINT_MAGIC, HINT_FORMAT_V1, varint seq, fixed64 created_ms,
 *           fixed64 updated_ms, lenbytes object, fixed32 checksum
 *   (docs/handoff.md; constants below)
 *
 * A second hint for the same (owner, key) is merged into the first with the
 * store's merge function (normally hint_merge_objects: obj_set_sync of the
 * two sibling sets), so no write is lost while the owner is away. Each put
 * gives the record a new sequence number; a deliverer deletes a hint with
 * hint_delete_if(seq) so that a write merged in while it was delivering is
 * not lost. Hints survive restarts because the LSM does (with sync=always a
 * hint is durable when hint_put returns).
 *
 * Statistics (count, bytes = key + value bytes, oldest creation time, corrupt
 * records) are computed by a scan at hint_store_open and kept up to date by
 * every put and delete; the oldest time is rescanned lazily after the oldest
 * hint was deleted.
 *
 * Errors: 0 or a negative code (util/qerr.h): -EINVAL for an empty or
 * overlong owner (HINT_OWNER_MAX) or an empty key; Q_ENOTFOUND; -EAGAIN from
 * hint_delete_if when the hint changed since it was read; Q_ECORRUPT for a
 * record whose checksum or structure is wrong; any lsm_* error.
 *
 * Ownership: hint_store_open borrows the lsm_db, which must outlive the
 * store. Slices in a hint_entry borrow from the iterator and are valid until
 * it moves or is freed. Output buffers are the caller's.
 *
 * Thread safety: a hint_store may be used from any number of threads: puts
 * and deletes are serialized by an internal mutex (a put is a
 * read-merge-write). An iterator belongs to one thread; it reads a snapshot.
 */
#ifndef Q_HINT_H
#define Q_HINT_H

#include <stddef.h>
#include <stdint.h>

#include "lsm/lsm.h"
#include "util/buf.h"

/* ---- record format (docs/handoff.md) ---- */
#define HINT_MAGIC 0x48u      /* 'H' */
#define HINT_FORMAT_V1 1u
#define HINT_OWNER_MAX 255u   /* bytes of an owner node id (fits the u8 length) */
#define HINT_OBJECT_MAX (256u << 20)

typedef struct hint_store hint_store;
typedef struct hint_iter hint_iter;

/* Merges two encodings of the same key's object into *out (appended; out is
 * empty on entry). Must be commutative and idempotent. */
typedef int (*hint_merge_fn)(void *ud, q_slice older, q_slice newer, q_buf *out);

typedef struct hint_stats {
	uint64_t count;     /* hints (corrupt ones included) */
	uint64_t bytes;     /* key + value bytes of all hints */
	uint64_t oldest_ms; /* created_ms of the oldest hint; 0 when none */
	uint64_t corrupt;   /* records that failed their checksum */
} hint_stats;

typedef struct hint_entry {
	q_slice owner;
	q_slice key;       /* the cluster key */
	q_slice object;    /* object bytes to deliver (empty if corrupt) */
	uint64_t seq;
	uint64_t created_ms;
	uint64_t updated_ms;
	int status;        /* 0, or Q_ECORRUPT: delete it, the data is lost */
} hint_entry;

/* The merge function for real objects: decodes both as obj_set, obj_set_sync,
 * encodes the result. Returns the decoder's error for bytes that are not an
 * object. ud is unused. */
int hint_merge_objects(void *ud, q_slice older, q_slice newer, q_buf *out);

/* Opens the store over db (scans the hint keyspace for the statistics).
 * merge NULL means hint_merge_objects. Free with hint_store_close. */
int hint_store_open(lsm_db *db, hint_merge_fn merge, void *merge_ud, hint_store **out);
void hint_store_close(hint_store *s);

/* Records (or merges into) the hint for (owner, key). now_ms: wall-clock
 * milliseconds (the time users see in status). *seq_out (may be NULL) gets
 * the record's new sequence number. */
int hint_put(hint_store *s, const char *owner, q_slice key, q_slice object, uint64_t now_ms,
	     uint64_t *seq_out);

/* Reads one hint: object appended to obj (reset first) if obj is not NULL;
 * meta (may be NULL) gets seq and times (its slices are not set). */
int hint_get(hint_store *s, const char *owner, q_slice key, q_buf *obj, hint_entry *meta);

/* Deletes the hint if its sequence number is still seq (it was delivered as
 * read). -EAGAIN if it changed, Q_ENOTFOUND if absent. */
int hint_delete_if(hint_store *s, const char *owner, q_slice key, uint64_t seq);
/* Deletes unconditionally (e.g. a corrupt record). Q_ENOTFOUND if absent. */
int hint_delete(hint_store *s, const char *owner, q_slice key);

/* hint_delete_if for each of v[0..n) (owner, key, seq: the caller's),
 * those that pass written as one LSM batch (one sync under sync = always).
 * Each v[i].rc gets 0 (deleted), -EAGAIN (changed since it was read: kept),
 * Q_ENOTFOUND, -EINVAL (bad owner or key, or listed twice: only the first
 * counts) or a read error. Returns 0, or the batch write's error (then
 * nothing was deleted and each v[i].rc that was to be 0 has it), or
 * -ENOMEM (every v[i].rc has it). */
typedef struct hint_del {
	const char *owner;
	q_slice key;
	uint64_t seq;
	int rc;            /* out */
} hint_del;
int hint_delete_if_many(hint_store *s, hint_del *v, size_t n);

void hint_get_stats(hint_store *s, hint_stats *out);
/* Statistics of one owner's hints, by scan. */
int hint_owner_stats(hint_store *s, const char *owner, hint_stats *out);

/* Iterates the hints of owner (NULL: all owners, grouped by owner; owners
 * in the order of hint_owners) in key order over a snapshot. Typical loop:
 *   for (hint_iter_new(s, o, &it); hint_iter_valid(it); hint_iter_next(it))
 *           hint_iter_entry(it, &e) ...
 *   rc = hint_iter_status(it); hint_iter_free(it); */
int hint_iter_new(hint_store *s, const char *owner, hint_iter **out);
int hint_iter_valid(const hint_iter *it);
void hint_iter_next(hint_iter *it);
void hint_iter_entry(const hint_iter *it, hint_entry *out);
/* 0, or the error that stopped iteration. */
int hint_iter_status(const hint_iter *it);
void hint_iter_free(hint_iter *it);

/* A batch of hints copied out of the store, for delivery code that cannot
 * hold an iterator across asynchronous sends (the event loop). */
typedef struct hint_item {
	uint8_t *key;      /* cluster key (malloc'ed, owned by the batch) */
	size_t klen;
	uint8_t *object;   /* object bytes (owned by the batch); NULL if corrupt */
	size_t olen;
	uint64_t seq;      /* pass to hint_delete_if after delivery */
	int status;        /* 0 or Q_ECORRUPT (then hint_delete it) */
} hint_item;

typedef struct hint_batch {
	hint_item *v;
	size_t n;
	int more;          /* 1 if the owner has hints after the last one here */
} hint_batch;

/* Loads up to max_items hints of owner (and at most about max_bytes of
 * objects; at least one hint when any is left) whose keys sort after
 * `after` (empty slice: from the first). Resume with the last item's key.
 * Free with hint_batch_free. */
int hint_batch_load(hint_store *s, const char *owner, q_slice after, size_t max_items,
		    size_t max_bytes, hint_batch *out);
void hint_batch_free(hint_batch *b);

/* Calls fn once per owner that has hints, in key order (shorter owner ids
 * first, then memcmp order), with that owner's
 * statistics; stops early if fn returns non-zero (returned). */
typedef int (*hint_owner_fn)(void *ud, const char *owner, const hint_stats *st);
int hint_owners(hint_store *s, hint_owner_fn fn, void *ud);

/* Key and value codecs (pure, fuzzed). hint_key_encode appends the LSM key;
 * hint_key_decode checks the prefix and splits it (slices borrow from p).
 * hint_value_decode: the object slice borrows from p. */
int hint_key_encode(const char *owner, q_slice key, q_buf *out);
int hint_key_decode(const void *p, size_t n, q_slice *owner, q_slice *key);
int hint_value_encode(uint64_t seq, uint64_t created_ms, uint64_t updated_ms, q_slice object,
		      q_buf *out);
int hint_value_decode(const void *p, size_t n, hint_entry *out);

#endif
