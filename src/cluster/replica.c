/*
 * replica.c - sibling sets in the storage engine (see replica.h).
 *
 * Invariants:
 *   1. A stored value is always a canonical obj_set encoding (we only ever
 *      write obj_set_encode output).
 *   2. Read-modify-write of a key happens with the key's stripe mutex held,
 *      so two writers of one key never lose each other's siblings.
 *   3. A call returns success only after the engine accepted the write
 *      (durable under sync=always).
 *   4. Every stored change is one lsm_batch: the data entry plus whatever
 *      the batch hook adds (the AAE bucket index), so they agree after a
 *      crash; the after hook runs only once that batch is accepted.
 *   5. The _nowait forms run the same code with the engine's nowait calls
 *      and a trylock of the stripe; an -EAGAIN from either returns before
 *      anything is stored or counted (the after hook has not run; a stored
 *      set that did not decode is counted and logged only by the call that
 *      gives the outcome, note_corrupt), so the caller's retry through the
 *      blocking form does the whole operation. Except: a write the engine
 *      refused had its batch built (batch hook called); that batch and the
 *      stored bytes it was built from go to the caller (replica_retry), and
 *      the retry writes it unchanged when the key still holds those bytes
 *      (the same read-modify-write would build the same batch), so the
 *      batch hook is called once per write.
 *   6. A store that refuses writes says so in the node's log whatever path
 *      of the engine refused them (some, such as a new commit log that
 *      cannot be created on a full disk, log nothing themselves): the first
 *      failed engine write of a run, and each change of its error, is
 *      logged as an error; a success after a run logs how many failed.
 *      Errors of one request (too large, invalid) are not the store's and
 *      are neither counted nor logged. At most one line per change of
 *      state, and at most one a second except the first failure after a
 *      logged success (so at most two a second for a store that flaps); a
 *      change not logged within the second is logged by the first write
 *      after it. A success costs one atomic load when the log shows the
 *      store taking writes.
 * Threading: stripes are plain pthread mutexes; write_errors is an atomic;
 * the log state (werr_shown, werr_run, werr_line_ns) is under werr_mu,
 * werr_shown also read atomically on the success path.
 */
#include "cluster/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

struct replica {
	lsm_db *db;
	char node[OBJ_NODE_MAX + 1];
	pthread_mutex_t stripe[REPLICA_STRIPES];
	uint64_t gets, updates, merges, unchanged, corrupt;
	uint64_t write_errors;   /* engine writes that failed */
	pthread_mutex_t werr_mu; /* invariant 6 */
	int werr_shown;          /* the state the log shows: the error of the
				  * last line logged, 0 if none or it said
				  * writes work again */
	uint64_t werr_run;       /* failed engine writes since the last line
				  * saying writes work again */
	uint64_t werr_line_ns;   /* when the last line was logged */
	replica_hooks hooks;
};

int replica_new(lsm_db *db, const char *node_id, replica **out)
{
	if (!node_id || !node_id[0] || strlen(node_id) > OBJ_NODE_MAX)
		return -EINVAL;
	replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->db = db;
	strcpy(r->node, node_id);
	for (int i = 0; i < REPLICA_STRIPES; i++)
		pthread_mutex_init(&r->stripe[i], NULL);
	pthread_mutex_init(&r->werr_mu, NULL);
	*out = r;
	return 0;
}

void replica_free(replica *r)
{
	if (!r)
		return;
	for (int i = 0; i < REPLICA_STRIPES; i++)
		pthread_mutex_destroy(&r->stripe[i]);
	pthread_mutex_destroy(&r->werr_mu);
	free(r);
}

unsigned replica_stripe(q_slice key)
{
	return (unsigned)(q_hash64(key.p, key.n, 0x7265706cULL) % REPLICA_STRIPES);
}

static pthread_mutex_t *stripe_of(replica *r, q_slice key)
{
	return &r->stripe[replica_stripe(key)];
}

/* Takes the stripe: waiting, or with nowait -EAGAIN if another holds it. */
static int stripe_lock(pthread_mutex_t *mu, int nowait)
{
	if (!nowait) {
		pthread_mutex_lock(mu);
		return 0;
	}
	return pthread_mutex_trylock(mu) ? -EAGAIN : 0;
}

/* LSM key = LSM_KS_DATA || key, in a small stack buffer when it fits. */
typedef struct lkey {
	uint8_t small[256];
	uint8_t *p;
	size_t n;
} lkey;

static int lkey_make(lkey *k, q_slice key)
{
	k->n = key.n + 1;
	k->p = k->n <= sizeof(k->small) ? k->small : malloc(k->n);
	if (!k->p)
		return -ENOMEM;
	k->p[0] = LSM_KS_DATA;
	if (key.n)
		memcpy(k->p + 1, key.p, key.n);
	return 0;
}

static void lkey_free(lkey *k)
{
	if (k->p != k->small)
		free(k->p);
}

/* Counts and logs a stored set that does not decode (decode_rc: the
 * decoder's error). Called once the operation that met it has its outcome,
 * never for one that gives -EAGAIN (its blocking retry reads it again). */
static void note_corrupt(replica *r, q_slice key, int decode_rc)
{
	__atomic_add_fetch(&r->corrupt, 1, __ATOMIC_RELAXED);
	Q_WARN("replica", "stored object of a %zu-byte key does not decode: %s", key.n,
	       q_strerror(decode_rc));
}

/* Reads the stored bytes of k into raw (reset first) and decodes them;
 * *out NULL and Q_ENOTFOUND if absent. *digest (if not NULL) receives the
 * set's obj_set_digest, hashed from the stored bytes: a decoder that
 * accepts only canonical input makes them the set's encoding
 * (encode(decode(x)) == x, obj.h), so the set is not encoded again for it.
 * Bytes that do not decode give Q_ECORRUPT, the decoder's error in *bad
 * (else 0), for the caller's note_corrupt. */
static int load(replica *r, const lkey *k, q_buf *raw, obj_set **out, uint64_t *digest,
		int *bad, int nowait)
{
	*out = NULL;
	*bad = 0;
	q_buf_reset(raw);
	q_slice lk = q_slice_make(k->p, k->n);
	int rc = nowait ? lsm_get_nowait(r->db, lk, raw) : lsm_get(r->db, lk, raw);
	if (rc == 0) {
		rc = obj_set_decode(raw->p, raw->len, out);
		if (rc < 0) {
			*bad = rc;
			rc = Q_ECORRUPT;
		} else if (digest) {
			*digest = obj_set_digest_encoded(*out, raw->p, raw->len);
		}
	}
	return rc;
}

void replica_set_hooks(replica *r, const replica_hooks *h)
{
	if (h)
		r->hooks = *h;
	else
		memset(&r->hooks, 0, sizeof(r->hooks));
}

/* Counts and logs the outcome rc of an engine write (invariant 6). -EAGAIN
 * of a nowait call (nothing tried), Q_ECLOSED (the node is stopping) and
 * the errors of one request (Q_ETOOBIG, -EINVAL) say nothing about the
 * store and are left out. */
static void note_write(replica *r, int rc)
{
	if (rc == -EAGAIN || rc == Q_ECLOSED || rc == Q_ETOOBIG || rc == -EINVAL)
		return;
	if (rc >= 0 && __atomic_load_n(&r->werr_shown, __ATOMIC_RELAXED) == 0)
		return;
	int state = rc < 0 ? rc : 0;
	pthread_mutex_lock(&r->werr_mu);
	if (rc < 0) {
		__atomic_add_fetch(&r->write_errors, 1, __ATOMIC_RELAXED);
		r->werr_run++;
	}
	uint64_t now = q_mono_ns();
	if (state != r->werr_shown &&
	    (r->werr_shown == 0 || now - r->werr_line_ns >= 1000000000ull)) {
		if (state) {
			Q_ERROR("replica", "the store refuses writes: %s (logged again when the "
				"error changes or writes succeed)", q_strerror(state));
		} else {
			Q_WARN("replica", "the store takes writes again after %llu failed (%s)",
			       (unsigned long long)r->werr_run, q_strerror(r->werr_shown));
			r->werr_run = 0;
		}
		__atomic_store_n(&r->werr_shown, state, __ATOMIC_RELAXED);
		r->werr_line_ns = now;
	}
	pthread_mutex_unlock(&r->werr_mu);
}

/* The batch that stores s (NULL: deletes the key): the data entry and
 * the batch hook's entries, in *bp (the caller frees it); s's digest in
 * *nd and its encoding appended to enc (when s is not NULL). */
static int build(replica *r, const lkey *k, q_slice key, const obj_set *s, lsm_batch **bp,
		 q_buf *enc, uint64_t *nd)
{
	lsm_batch *b = NULL;
	int rc = 0;
	*nd = 0;
	if (s) {
		Q_ERR(obj_set_encode(s, enc));
		*nd = obj_set_digest_encoded(s, enc->p, enc->len);
	}
	b = lsm_batch_new();
	rc = -ENOMEM;
	if (!b)
		goto fail;
	if (s)
		rc = lsm_batch_put(b, q_slice_make(k->p, k->n), q_buf_slice(enc));
	else
		rc = lsm_batch_delete(b, q_slice_make(k->p, k->n));
	if (rc < 0)
		goto fail;
	if (r->hooks.batch)
		Q_ERR(r->hooks.batch(r->hooks.arg, b, key, s ? nd : NULL));
	*bp = b;
	return 0;
fail:
	lsm_batch_free(b);
	return rc;
}

/* Writes b (built by build for s) and, once the engine accepted it, tells
 * the after hook. od: the digest of the set stored before, when cur is
 * set (there was one and it decoded). Called with the key's stripe held. */
static int commit(replica *r, lsm_batch *b, q_slice key, int cur, uint64_t od,
		  const obj_set *s, uint64_t nd, int nowait)
{
	int rc = nowait ? lsm_write_nowait(r->db, b) : lsm_write(r->db, b);
	note_write(r, rc);
	if (rc == 0 && r->hooks.after)
		r->hooks.after(r->hooks.arg, key, cur ? &od : NULL, s ? &nd : NULL, s);
	return rc;
}

/* What a _nowait write refused by the engine leaves for its retry
 * (replica.h): the batch built (hook entries included) and the stored
 * bytes it was built from. */
struct replica_retry {
	q_buf key;        /* the key and kind of write it was built for: */
	int merge;        /* a retry for another stores nothing of it */
	int had;          /* a value was stored (raw) */
	q_buf raw;        /* the bytes read */
	int cur;          /* they decoded (od is their digest) */
	int bad;          /* they did not decode: the decoder's error */
	uint64_t od, nd;
	lsm_batch *b;     /* stores next */
	obj_set *next;
	q_buf enc;        /* next's encoding */
};

void replica_retry_free(replica_retry *t)
{
	if (!t)
		return;
	q_buf_free(&t->key);
	q_buf_free(&t->raw);
	lsm_batch_free(t->b);
	obj_set_free(t->next);
	q_buf_free(&t->enc);
	free(t);
}

static int get_impl(replica *r, q_slice key, obj_set **out, int nowait)
{
	lkey k;
	q_buf raw = Q_BUF_INIT;
	int bad;
	*out = NULL;
	Q_RET(lkey_make(&k, key));
	int rc = load(r, &k, &raw, out, NULL, &bad, nowait);
	if (bad)
		note_corrupt(r, key, bad);
	if (rc != -EAGAIN)
		__atomic_add_fetch(&r->gets, 1, __ATOMIC_RELAXED);
	q_buf_free(&raw);
	lkey_free(&k);
	return rc;
}

int replica_get(replica *r, q_slice key, obj_set **out)
{
	return get_impl(r, key, out, 0);
}

int replica_get_nowait(replica *r, q_slice key, obj_set **out)
{
	return get_impl(r, key, out, 1);
}

static int get_raw_impl(replica *r, q_slice key, q_buf *out, int nowait)
{
	lkey k;
	Q_RET(lkey_make(&k, key));
	q_slice lk = q_slice_make(k.p, k.n);
	int rc = nowait ? lsm_get_nowait(r->db, lk, out) : lsm_get(r->db, lk, out);
	if (rc != -EAGAIN)
		__atomic_add_fetch(&r->gets, 1, __ATOMIC_RELAXED);
	lkey_free(&k);
	return rc;
}

int replica_get_raw(replica *r, q_slice key, q_buf *out)
{
	return get_raw_impl(r, key, out, 0);
}

int replica_get_raw_nowait(replica *r, q_slice key, q_buf *out)
{
	return get_raw_impl(r, key, out, 1);
}

/*
 * One read-modify-write under the key's stripe: a merge of in when in is
 * not NULL (a stored set that does not decode is replaced), else an update
 * with client and w (Q_ECORRUPT on such a set). On success *out (if not
 * NULL) receives the stored set, enc (if not NULL; updates only) its
 * encoding in place of what it held, *digest (if not NULL) its digest. nowait: the _nowait form;
 * an engine that refuses the write then leaves the batch in *keep (if not
 * NULL). t (blocking, may be NULL; freed): the batch a _nowait call left,
 * stored as it is if the key still holds the bytes it was built from.
 */
static int rmw(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
	       const obj_set *in, obj_set **out, q_buf *enc, uint64_t *digest, int nowait,
	       replica_retry **keep, replica_retry *t)
{
	lkey k;
	obj_set *cur = NULL, *next = NULL;
	uint64_t od = 0, nd = 0;
	q_buf raw = Q_BUF_INIT, nenc = Q_BUF_INIT;
	lsm_batch *b = NULL;
	int bad = 0, had = 0, has_cur = 0, rc;
	if (keep)
		*keep = NULL;
	rc = lkey_make(&k, key);
	if (rc < 0) {
		replica_retry_free(t);
		return rc;
	}
	pthread_mutex_t *mu = stripe_of(r, key);
	if (stripe_lock(mu, nowait)) {
		lkey_free(&k);
		return -EAGAIN; /* only nowait, which has no t */
	}
	rc = load(r, &k, &raw, &cur, &od, &bad, nowait);
	if (rc == -EAGAIN || (rc < 0 && rc != Q_ENOTFOUND && rc != Q_ECORRUPT))
		goto out;
	had = rc != Q_ENOTFOUND;
	has_cur = cur != NULL;
	if (t && t->merge == (in != NULL) && t->key.len == key.n &&
	    (!key.n || !memcmp(t->key.p, key.p, key.n)) && t->had == had &&
	    t->raw.len == raw.len && (!raw.len || !memcmp(t->raw.p, raw.p, raw.len))) {
		/* the bytes the kept batch was built from: the same write, its
		 * batch (hook entries included) stored as it is */
		b = t->b;
		t->b = NULL;
		next = t->next;
		t->next = NULL;
		q_buf_free(&nenc);
		nenc = t->enc;
		q_buf_init(&t->enc);
		od = t->od;
		nd = t->nd;
		has_cur = t->cur;
		bad = t->bad;
		rc = commit(r, b, key, has_cur, od, next, nd, 0);
		if (rc < 0)
			goto out;
		goto stored;
	}
	if (!in) {
		if (rc == Q_ECORRUPT)
			goto out;
		rc = obj_set_update(cur, client, r->node, w, &OBJ_PRUNE_DEFAULT, w->wall_ns, &next);
		if (rc < 0)
			goto out;
	} else {
		/* a corrupt local copy is replaced by the incoming one */
		rc = obj_set_sync(cur, in, &next);
		if (rc < 0)
			goto out;
		if (cur && obj_set_equal(cur, next)) {
			__atomic_add_fetch(&r->unchanged, 1, __ATOMIC_RELAXED);
			nd = od; /* equal sets encode to equal bytes */
			goto stored;
		}
	}
	rc = build(r, &k, key, next, &b, &nenc, &nd);
	if (rc < 0)
		goto out;
	rc = commit(r, b, key, has_cur, od, next, nd, nowait);
	if (rc == -EAGAIN && keep) {
		replica_retry *kt = calloc(1, sizeof(*kt));
		if (kt && q_buf_append(&kt->key, key.p, key.n) < 0) {
			free(kt);
			kt = NULL; /* the retry does the whole write */
		}
		if (kt) {
			kt->merge = in != NULL;
			kt->had = had;
			kt->raw = raw;
			q_buf_init(&raw);
			kt->cur = has_cur;
			kt->bad = bad;
			kt->od = od;
			kt->nd = nd;
			kt->b = b;
			b = NULL;
			kt->next = next;
			next = NULL;
			kt->enc = nenc;
			q_buf_init(&nenc);
			*keep = kt;
		}
	}
	if (rc < 0)
		goto out;
stored:
	__atomic_add_fetch(in ? &r->merges : &r->updates, 1, __ATOMIC_RELAXED);
	if (digest)
		*digest = nd;
	if (enc) {
		q_buf tb = *enc;
		*enc = nenc;
		nenc = tb;
		q_buf_reset(&nenc);
	}
out:
	if (bad && rc != -EAGAIN)
		note_corrupt(r, key, bad); /* once: not on the try a retry repeats */
	pthread_mutex_unlock(mu);
	lkey_free(&k);
	obj_set_free(cur);
	if (rc == 0 && out)
		*out = next;
	else
		obj_set_free(next);
	lsm_batch_free(b);
	q_buf_free(&raw);
	q_buf_free(&nenc);
	replica_retry_free(t);
	return rc;
}

int replica_update(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
		   obj_set **out)
{
	return rmw(r, key, client, w, NULL, out, NULL, NULL, 0, NULL, NULL);
}

int replica_update_enc(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
		       obj_set **out, q_buf *enc)
{
	return rmw(r, key, client, w, NULL, out, enc, NULL, 0, NULL, NULL);
}

int replica_update_enc_nowait(replica *r, q_slice key, const obj_ctx *client,
			      const obj_write *w, obj_set **out, q_buf *enc, replica_retry **keep)
{
	return rmw(r, key, client, w, NULL, out, enc, NULL, 1, keep, NULL);
}

int replica_update_enc_retry(replica *r, q_slice key, const obj_ctx *client, const obj_write *w,
			     obj_set **out, q_buf *enc, replica_retry *t)
{
	return rmw(r, key, client, w, NULL, out, enc, NULL, 0, NULL, t);
}

int replica_merge(replica *r, q_slice key, const obj_set *in, obj_set **out)
{
	return rmw(r, key, NULL, NULL, in, out, NULL, NULL, 0, NULL, NULL);
}

int replica_merge_digest(replica *r, q_slice key, const obj_set *in, obj_set **out,
			 uint64_t *digest)
{
	return rmw(r, key, NULL, NULL, in, out, NULL, digest, 0, NULL, NULL);
}

int replica_merge_digest_nowait(replica *r, q_slice key, const obj_set *in, obj_set **out,
				uint64_t *digest, replica_retry **keep)
{
	return rmw(r, key, NULL, NULL, in, out, NULL, digest, 1, keep, NULL);
}

int replica_merge_digest_retry(replica *r, q_slice key, const obj_set *in, obj_set **out,
			       uint64_t *digest, replica_retry *t)
{
	return rmw(r, key, NULL, NULL, in, out, NULL, digest, 0, NULL, t);
}

static int remove_when(replica *r, q_slice key, uint64_t digest, int tomb_only)
{
	lkey k;
	obj_set *cur = NULL;
	uint64_t od = 0, nd;
	q_buf raw = Q_BUF_INIT, enc = Q_BUF_INIT;
	lsm_batch *b = NULL;
	Q_RET(lkey_make(&k, key));
	pthread_mutex_t *mu = stripe_of(r, key);
	pthread_mutex_lock(mu);
	int bad;
	int rc = load(r, &k, &raw, &cur, &od, &bad, 0);
	if (bad)
		note_corrupt(r, key, bad);
	if (rc == Q_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	if ((tomb_only && !obj_set_tombstone_only(cur)) || od != digest) {
		rc = 0;
		goto out;
	}
	rc = build(r, &k, key, NULL, &b, &enc, &nd);
	if (rc == 0)
		rc = commit(r, b, key, 1, od, NULL, nd, 0);
	if (rc == 0)
		rc = 1;
out:
	pthread_mutex_unlock(mu);
	lkey_free(&k);
	obj_set_free(cur);
	lsm_batch_free(b);
	q_buf_free(&raw);
	q_buf_free(&enc);
	return rc;
}

int replica_remove_if(replica *r, q_slice key, uint64_t digest)
{
	return remove_when(r, key, digest, 1);
}

int replica_drop_if(replica *r, q_slice key, uint64_t digest)
{
	return remove_when(r, key, digest, 0);
}

void replica_get_stats(replica *r, replica_stats *out)
{
	out->gets = __atomic_load_n(&r->gets, __ATOMIC_RELAXED);
	out->updates = __atomic_load_n(&r->updates, __ATOMIC_RELAXED);
	out->merges = __atomic_load_n(&r->merges, __ATOMIC_RELAXED);
	out->merges_unchanged = __atomic_load_n(&r->unchanged, __ATOMIC_RELAXED);
	out->corrupt = __atomic_load_n(&r->corrupt, __ATOMIC_RELAXED);
	out->write_errors = __atomic_load_n(&r->write_errors, __ATOMIC_RELAXED);
}
