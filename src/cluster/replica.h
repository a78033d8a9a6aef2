/*
 * replica.h - this node's copy of the keys it replicates: sibling sets
 * (src/object) stored in the storage engine (src/lsm).
 *
 * Every user key K is stored under the LSM key LSM_KS_DATA || K, its value
 * the canonical encoding of the key's obj_set. Two writes change a stored
 * set, both read-modify-write:
 *   replica_update  the coordinator applies a client's put/delete with its
 *                   own node id (obj_set_update: a new dot);
 *   replica_merge   a replica folds in a set sent by a coordinator or by
 *                   read repair (obj_set_sync).
 * Each runs under a striped per-key mutex (REPLICA_STRIPES stripes chosen by
 * the key's hash), since several coordinators may write one key at once; the
 * write is durable per the engine's sync policy before the call returns, so
 * a replica acknowledges only what it holds. A merge that changes nothing
 * writes nothing.
 *
 * A stored set that fails to decode is reported (log and
 * replica_stats.corrupt, once per call that meets it, never by a _nowait
 * call that gives -EAGAIN; Q_ECORRUPT from replica_get and replica_update);
 * replica_merge replaces it with the incoming set, which is how read
 * repair heals it.
 *
 * A store that refuses writes (disk full, I/O errors) is reported in the
 * log once when its writes start failing, again when the error changes,
 * and once when they succeed again, whichever engine path refused them;
 * replica_stats.write_errors counts the failed writes.
 *
 * Blocking: every call does disk I/O; never call from the event-loop thread,
 * except the _nowait forms below.
 * Thread safety: any number of threads at once.
 * Ownership: sets returned through out parameters belong to the caller
 * (obj_set_free). The lsm_db is borrowed and must outlive the replica.
 */
#ifndef Q_REPLICA_H
#define Q_REPLICA_H

#include <stdint.h>

#include "lsm/lsm.h"
#include "object/obj.h"
#include "util/buf.h"

#define REPLICA_STRIPES 256

typedef struct replica replica;

typedef struct replica_stats {
	uint64_t gets, updates, merges, merges_unchanged, corrupt;
	uint64_t write_errors; /* engine writes that failed (full disk, I/O
				* error, ...); -EAGAIN of the nowait forms,
				* writes refused while closing and errors of
				* one request (too large, invalid) not counted */
} replica_stats;

/* node_id: this node's id (copied); dots of local updates carry it. */
int replica_new(lsm_db *db, const char *node_id, replica **out);
void replica_free(replica *r);

/* The stored set of key: 0 and *out, or Q_ENOTFOUND (*out NULL), or an
 * error (Q_ECORRUPT, -EIO, ...). */
int replica_get(replica *r, q_slice key, obj_set **out);
/* The stored encoding as it is (no decode): appended to out after reset. */
int replica_get_raw(replica *r, q_slice key, q_buf *out);

/* Applies a client write made with context client (NULL = blind). On
 * success *out (if not NULL) receives the new stored set. */
int replica_update(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
		   obj_set **out);
/* replica_update, and on success enc (if not NULL; reset first) holds the
 * canonical encoding of the new set, the bytes that were stored (so a
 * caller sending the set on does not encode it again). */
int replica_update_enc(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
		       obj_set **out, q_buf *enc);

/* Merges in (not modified) into the stored set. On success *out (if not
 * NULL) receives the stored result. */
int replica_merge(replica *r, q_slice key, const obj_set *in, obj_set **out);
/* replica_merge, and on success *digest (if not NULL) is the stored
 * result's obj_set_digest (taken from the bytes read or written, without
 * encoding the set again). */
int replica_merge_digest(replica *r, q_slice key, const obj_set *in, obj_set **out,
			 uint64_t *digest);

/*
 * Forms that never block, for the event-loop thread: the same operation
 * with the engine's nowait calls (lsm.h) and a trylock of the key's stripe.
 * -EAGAIN when the stripe is held by another thread or the engine would
 * have to wait or read a file: nothing was stored, counted or told to the
 * hooks, and the caller does the blocking form from a worker instead. Any
 * other result is what the blocking form would have returned.
 *
 * A write the engine itself refuses (-EAGAIN from lsm_write_nowait) comes
 * after its batch was built, the batch hook's entries included. With keep
 * not NULL that batch is handed over in *keep (NULL when there is none;
 * the caller owns it) and the caller's retry passes it to the _retry form
 * with the same arguments: under the key's stripe, if the key still holds
 * the bytes the batch was built from, the retry stores that batch as it is
 * (same set, same digest; the batch hook is not called again), else the
 * key changed meanwhile and the retry does the whole operation (a
 * different write: the hook is called for it; so is a retry passed with
 * another key, or an update's batch passed to a merge or the other way
 * round, which does its own operation). So the batch hook is called once
 * per write, fallback included, unless the key changes in between.
 * The _retry forms are blocking forms (t NULL: exactly the blocking form)
 * and free t; replica_retry_free frees one not retried.
 */
typedef struct replica_retry replica_retry;
int replica_get_nowait(replica *r, q_slice key, obj_set **out);
int replica_get_raw_nowait(replica *r, q_slice key, q_buf *out);
int replica_update_enc_nowait(replica *r, q_slice key, const obj_ctx *client,
			      const obj_write *w, obj_set **out, q_buf *enc, replica_retry **keep);
int replica_merge_digest_nowait(replica *r, q_slice key, const obj_set *in, obj_set **out,
				uint64_t *digest, replica_retry **keep);
int replica_update_enc_retry(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
			     obj_set **out, q_buf *enc, replica_retry *t);
int replica_merge_digest_retry(replica *r, q_slice key, const obj_set *in, obj_set **out,
			       uint64_t *digest, replica_retry *t);
void replica_retry_free(replica_retry *t);
/* The stripe (0..REPLICA_STRIPES-1) of key: two keys with the same stripe
 * share one mutex. Pure. */
unsigned replica_stripe(q_slice key);

/*
 * Write hooks (anti-entropy, src/node/node_aae.c): both run with the key's
 * stripe mutex held, so hook calls for one key are serialised in the order
 * of the writes.
 *   batch  before the write: adds entries that must commit atomically with
 *          the data write (the AAE bucket index) to b; new_digest is the
 *          obj_set_digest of the set about to be stored, NULL when the key is
 *          being removed. A negative return fails the write (nothing stored).
 *   after  after the engine accepted the write: old_digest is the digest of
 *          the set that was stored before (NULL if none, or it did not
 *          decode), new_digest as above, stored the new set (NULL on
 *          removal; borrowed for the call).
 * A merge that changes nothing calls neither. Each is called once per
 * write stored; a _nowait write the engine refuses has called batch (not
 * after), and its retry stores that batch without calling it again unless
 * the key changed meanwhile (see the _nowait forms); batch only adds to b,
 * so a batch that is never written has no effect. Through the _nowait forms
 * they run on the event-loop thread, so they must not wait long (no I/O,
 * only short critical sections). Set before the replica is used; hooks
 * NULL clears them.
 */
typedef struct replica_hooks {
	int (*batch)(void *arg, lsm_batch *b, q_slice key, const uint64_t *new_digest);
	void (*after)(void *arg, q_slice key, const uint64_t *old_digest,
		      const uint64_t *new_digest, const obj_set *stored);
	void *arg;
} replica_hooks;
void replica_set_hooks(replica *r, const replica_hooks *h);

/* Physical removal of a reaped tombstone: deletes key (and, through the
 * hooks, its index entry) only if the stored set is tombstone-only and its
 * digest is still digest. Returns 1 if removed, 0 if the key changed or is
 * absent (nothing done), or a negative error. */
int replica_remove_if(replica *r, q_slice key, uint64_t digest);

/* Physical removal of a key this node no longer replicates (range handoff
 * after a ring change): deletes key only if its stored set's digest is
 * still digest (the version the new owners acknowledged). Returns 1 if
 * removed, 0 if the key changed or is absent, or a negative error. */
int replica_drop_if(replica *r, q_slice key, uint64_t digest);

void replica_get_stats(replica *r, replica_stats *out);

#endif
