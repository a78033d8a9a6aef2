/*
 * hint.c - durable hints over the LSM store (see hint.h, docs/handoff.md).
 *
 * Invariants:
 *   1. Every key this file writes starts with LSM_KS_HINT and a length-
 *      prefixed owner, so one owner's hints form one contiguous key range
 *      (the length prefix keeps "n1" apart from "n10").
 *   2. s->count/s->bytes/s->corrupt equal what a full scan would give, as
 *      long as only this store writes the hint keyspace; s->oldest is exact
 *      unless s->oldest_stale is set, and then recomputed by the next
 *      hint_get_stats.
 *   3. s->next_seq is above every seq stored (set from the scan at open).
 *
 * Threading: s->mu serializes puts, deletes and the counters; iterators
 * read an LSM snapshot without it.
 */
#include "handoff/hint.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"

#define LOGC "hint"

struct hint_store {
	lsm_db *db;
	hint_merge_fn merge;
	void *merge_ud;
	pthread_mutex_t mu;
	uint64_t count, bytes, corrupt;
	uint64_t oldest;
	int oldest_stale;
	uint64_t next_seq;
};

struct hint_iter {
	lsm_iter *it;
	q_buf prefix;
	hint_entry cur;
	int valid;
	int status;
};

/* ---------------------------------------------------------------------
 * Codecs
 * ------------------------------------------------------------------- */

static int owner_ok(const char *owner)
{
	size_t n = owner ? strlen(owner) : 0;
	return n >= 1 && n <= HINT_OWNER_MAX;
}

static int prefix_encode(const char *owner, q_buf *out)
{
	size_t n = strlen(owner);
	Q_RET(q_buf_append_byte(out, LSM_KS_HINT));
	Q_RET(q_buf_append_byte(out, (uint8_t)n));
	return q_buf_append(out, owner, n);
}

int hint_key_encode(const char *owner, q_slice key, q_buf *out)
{
	if (!owner_ok(owner) || key.n == 0)
		return -EINVAL;
	size_t start = out->len;
	int rc;
	Q_ERR(prefix_encode(owner, out));
	Q_ERR(q_buf_append(out, key.p, key.n));
	return 0;
fail:
	out->len = start;
	return rc;
}

int hint_key_decode(const void *p, size_t n, q_slice *owner, q_slice *key)
{
	q_reader r = q_reader_make(p, n);
	uint8_t ks, on;
	Q_RET(q_get_u8(&r, &ks));
	if (ks != LSM_KS_HINT)
		return Q_ECORRUPT;
	Q_RET(q_get_u8(&r, &on));
	if (on == 0)
		return Q_ECORRUPT;
	Q_RET(q_get_bytes(&r, on, owner));
	if (q_reader_left(&r) == 0)
		return Q_ECORRUPT;
	return q_get_bytes(&r, q_reader_left(&r), key);
}

int hint_value_encode(uint64_t seq, uint64_t created_ms, uint64_t updated_ms, q_slice object,
		      q_buf *out)
{
	if (object.n > HINT_OBJECT_MAX)
		return Q_ETOOBIG;
	size_t start = out->len;
	int rc;
	Q_ERR(q_buf_append_byte(out, HINT_MAGIC));
	Q_ERR(q_buf_append_byte(out, HINT_FORMAT_V1));
	Q_ERR(q_put_varint(out, seq));
	Q_ERR(q_put_fixed64(out, created_ms));
	Q_ERR(q_put_fixed64(out, updated_ms));
	Q_ERR(q_put_lenbytes(out, object.p, object.n));
	Q_ERR(q_put_fixed32(out, q_csum32(out->p + start, out->len - start)));
	return 0;
fail:
	out->len = start;
	return rc;
}

int hint_value_decode(const void *p, size_t n, hint_entry *out)
{
	q_reader r = q_reader_make(p, n);
	uint8_t magic, ver;
	memset(out, 0, sizeof(*out));
	if (n < 4)
		return Q_ETRUNC;
	Q_RET(q_get_u8(&r, &magic));
	if (magic != HINT_MAGIC)
		return Q_ECORRUPT;
	Q_RET(q_get_u8(&r, &ver));
	if (ver != HINT_FORMAT_V1)
		return Q_EVERSION;
	if (q_csum32(p, n - 4) != q_dec_fixed32((const uint8_t *)p + n - 4))
		return Q_ECORRUPT;
	r.end -= 4;
	Q_RET(q_get_varint64(&r, &out->seq));
	Q_RET(q_get_fixed64(&r, &out->created_ms));
	Q_RET(q_get_fixed64(&r, &out->updated_ms));
	Q_RET(q_get_lenbytes(&r, HINT_OBJECT_MAX, &out->object));
	if (q_reader_left(&r) != 0)
		return Q_ECORRUPT;
	return 0;
}

int hint_merge_objects(void *ud, q_slice older, q_slice newer, q_buf *out)
{
	obj_set *a = NULL, *b = NULL, *m = NULL;
	int rc;
	(void)ud;
	Q_ERR(obj_set_decode(older.p, older.n, &a));
	Q_ERR(obj_set_decode(newer.p, newer.n, &b));
	Q_ERR(obj_set_sync(a, b, &m));
	Q_ERR(obj_set_encode(m, out));
fail:
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(m);
	return rc;
}

/* ---------------------------------------------------------------------
 * Open, scan, statistics
 * ------------------------------------------------------------------- */

/* One past every key starting with prefix (prefix + 0xff.. bumped). Returns
 * 0 if there is no such key (prefix all 0xff). */
static int prefix_successor(q_buf *b)
{
	while (b->len > 0) {
		if (b->p[b->len - 1] != 0xff) {
			b->p[b->len - 1]++;
			return 1;
		}
		b->len--;
	}
	return 0;
}

static int has_prefix(q_slice k, const q_buf *prefix)
{
	return k.n >= prefix->len && memcmp(k.p, prefix->p, prefix->len) == 0;
}

/* Scans keys under prefix into st; *max_seq gets the largest seq seen. */
static int scan(lsm_db *db, const q_buf *prefix, hint_stats *st, uint64_t *max_seq)
{
	lsm_iter *it;
	memset(st, 0, sizeof(*st));
	Q_RET(lsm_iter_new(db, &it));
	uint64_t ms = 0;
	for (lsm_iter_seek(it, q_buf_slice(prefix)); lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it), v = lsm_iter_value(it);
		if (!has_prefix(k, prefix))
			break;
		hint_entry e;
		st->count++;
		st->bytes += k.n + v.n;
		if (hint_value_decode(v.p, v.n, &e) < 0) {
			st->corrupt++;
			continue;
		}
		if (e.seq > ms)
			ms = e.seq;
		if (st->oldest_ms == 0 || e.created_ms < st->oldest_ms)
			st->oldest_ms = e.created_ms;
	}
	int rc = lsm_iter_status(it);
	lsm_iter_free(it);
	if (max_seq)
		*max_seq = ms;
	return rc;
}

static int scan_all(hint_store *s, hint_stats *st, uint64_t *max_seq)
{
	q_buf p = Q_BUF_INIT;
	Q_RET(q_buf_append_byte(&p, LSM_KS_HINT));
	int rc = scan(s->db, &p, st, max_seq);
	q_buf_free(&p);
	return rc;
}

int hint_store_open(lsm_db *db, hint_merge_fn merge, void *merge_ud, hint_store **out)
{
	hint_store *s = calloc(1, sizeof(*s));
	hint_stats st;
	uint64_t max_seq;
	int rc;
	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->db = db;
	s->merge = merge ? merge : hint_merge_objects;
	s->merge_ud = merge_ud;
	rc = scan_all(s, &st, &max_seq);
	if (rc < 0) {
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->count = st.count;
	s->bytes = st.bytes;
	s->corrupt = st.corrupt;
	s->oldest = st.oldest_ms;
	s->next_seq = max_seq + 1;
	if (st.count)
		Q_INFO(LOGC, "%llu hints (%llu bytes, %llu corrupt) pending",
		       (unsigned long long)st.count, (unsigned long long)st.bytes,
		       (unsigned long long)st.corrupt);
	*out = s;
	return 0;
}

void hint_store_close(hint_store *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void hint_get_stats(hint_store *s, hint_stats *out)
{
	pthread_mutex_lock(&s->mu);
	if (s->oldest_stale) {
		hint_stats st;
		if (scan_all(s, &st, NULL) == 0) {
			s->oldest = st.oldest_ms;
			s->oldest_stale = 0;
		}
	}
	out->count = s->count;
	out->bytes = s->bytes;
	out->oldest_ms = s->oldest;
	out->corrupt = s->corrupt;
	pthread_mutex_unlock(&s->mu);
}

int hint_owner_stats(hint_store *s, const char *owner, hint_stats *out)
{
	if (!owner_ok(owner))
		return -EINVAL;
	q_buf p = Q_BUF_INIT;
	Q_RET(prefix_encode(owner, &p));
	int rc = scan(s->db, &p, out, NULL);
	q_buf_free(&p);
	return rc;
}

/* ---------------------------------------------------------------------
 * Put, get, delete
 * ------------------------------------------------------------------- */

/* Accounting for a record that disappears. */
static void account_remove(hint_store *s, size_t klen, q_slice oldv, int old_ok,
			   const hint_entry *olde)
{
	s->count--;
	s->bytes -= klen + oldv.n;
	if (!old_ok)
		s->corrupt--;
	else if (olde->created_ms <= s->oldest)
		s->oldest_stale = 1;
}

int hint_put(hint_store *s, const char *owner, q_slice key, q_slice object, uint64_t now_ms,
	     uint64_t *seq_out)
{
	q_buf k = Q_BUF_INIT, old = Q_BUF_INIT, merged = Q_BUF_INIT, v = Q_BUF_INIT;
	int rc, locked = 0;
	Q_ERR(hint_key_encode(owner, key, &k));
	if (object.n > HINT_OBJECT_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	pthread_mutex_lock(&s->mu);
	locked = 1;
	rc = lsm_get(s->db, q_buf_slice(&k), &old);
	if (rc < 0 && rc != Q_ENOTFOUND)
		goto fail;
	int exists = rc == 0;
	hint_entry olde;
	memset(&olde, 0, sizeof(olde));
	int old_ok = 0;
	uint64_t created = now_ms;
	q_slice body = object;
	if (exists) {
		old_ok = hint_value_decode(old.p, old.len, &olde) == 0;
		if (old_ok) {
			Q_ERR(s->merge(s->merge_ud, olde.object, object, &merged));
			body = q_buf_slice(&merged);
			created = olde.created_ms;
		} else {
			Q_WARN(LOGC, "corrupt hint for %s replaced by a new write", owner);
		}
	}
	uint64_t seq = s->next_seq;
	Q_ERR(hint_value_encode(seq, created, now_ms, body, &v));
	Q_ERR(lsm_put(s->db, q_buf_slice(&k), q_buf_slice(&v)));
	s->next_seq++;
	if (exists) {
		/* same record rewritten: created time kept unless it was corrupt */
		s->bytes = s->bytes - old.len + v.len;
		if (!old_ok)
			s->corrupt--;
	} else {
		s->count++;
		s->bytes += k.len + v.len;
	}
	if (!s->oldest_stale && (s->oldest == 0 || created < s->oldest))
		s->oldest = created;
	if (seq_out)
		*seq_out = seq;
	rc = 0;
fail:
	if (locked)
		pthread_mutex_unlock(&s->mu);
	q_buf_free(&k);
	q_buf_free(&old);
	q_buf_free(&merged);
	q_buf_free(&v);
	return rc;
}

int hint_get(hint_store *s, const char *owner, q_slice key, q_buf *obj, hint_entry *meta)
{
	q_buf k = Q_BUF_INIT, v = Q_BUF_INIT;
	hint_entry e;
	int rc;
	Q_ERR(hint_key_encode(owner, key, &k));
	Q_ERR(lsm_get(s->db, q_buf_slice(&k), &v));
	rc = hint_value_decode(v.p, v.len, &e);
	if (rc < 0) {
		Q_WARN(LOGC, "corrupt hint record for owner %s: %s", owner, q_strerror(rc));
		rc = Q_ECORRUPT;
		goto fail;
	}
	if (obj) {
		q_buf_reset(obj);
		Q_ERR(q_buf_append(obj, e.object.p, e.object.n));
	}
	if (meta) {
		memset(meta, 0, sizeof(*meta));
		meta->seq = e.seq;
		meta->created_ms = e.created_ms;
		meta->updated_ms = e.updated_ms;
	}
fail:
	q_buf_free(&k);
	q_buf_free(&v);
	return rc;
}

/* Under s->mu: reads the record at LSM key k into *old (olde's slices
 * borrow from it; *old_ok: it decodes). -EAGAIN if check is set and the
 * record is corrupt or its seq is not seq. */
static int read_for_delete(hint_store *s, q_slice k, int check, uint64_t seq, q_buf *old,
			   hint_entry *olde, int *old_ok)
{
	Q_RET(lsm_get(s->db, k, old));
	*old_ok = hint_value_decode(old->p, old->len, olde) == 0;
	if (check && (!*old_ok || olde->seq != seq))
		return -EAGAIN;
	return 0;
}

static int delete_impl(hint_store *s, const char *owner, q_slice key, int check, uint64_t seq)
{
	q_buf k = Q_BUF_INIT, old = Q_BUF_INIT;
	int rc, locked = 0, old_ok = 0;
	hint_entry olde;
	Q_ERR(hint_key_encode(owner, key, &k));
	pthread_mutex_lock(&s->mu);
	locked = 1;
	Q_ERR(read_for_delete(s, q_buf_slice(&k), check, seq, &old, &olde, &old_ok));
	Q_ERR(lsm_delete(s->db, q_buf_slice(&k)));
	account_remove(s, k.len, q_buf_slice(&old), old_ok, &olde);
	rc = 0;
fail:
	if (locked)
		pthread_mutex_unlock(&s->mu);
	q_buf_free(&k);
	q_buf_free(&old);
	return rc;
}

int hint_delete_if(hint_store *s, const char *owner, q_slice key, uint64_t seq)
{
	return delete_impl(s, owner, key, 1, seq);
}

int hint_delete(hint_store *s, const char *owner, q_slice key)
{
	return delete_impl(s, owner, key, 0, 0);
}

/* Keys listed before v[i] that encode as k[i] (a hint listed twice). */
static int listed_before(const q_buf *k, const hint_del *v, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (v[j].rc == 0 && k[j].len == k[i].len && !memcmp(k[j].p, k[i].p, k[i].len))
			return 1;
	return 0;
}

int hint_delete_if_many(hint_store *s, hint_del *v, size_t n)
{
	if (n == 0)
		return 0;
	q_buf *k = calloc(n, sizeof(*k));
	uint64_t *created = calloc(n, sizeof(*created));
	size_t *vlen = calloc(n, sizeof(*vlen));
	lsm_batch *b = lsm_batch_new();
	q_buf old = Q_BUF_INIT;
	size_t ndel = 0;
	int rc = 0;
	if (!k || !created || !vlen || !b) {
		rc = -ENOMEM;
		for (size_t i = 0; i < n; i++)
			v[i].rc = rc;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		q_buf_init(&k[i]);
		v[i].rc = hint_key_encode(v[i].owner, v[i].key, &k[i]);
		if (v[i].rc == 0 && listed_before(k, v, i))
			v[i].rc = -EINVAL;
	}
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (v[i].rc < 0)
			continue;
		hint_entry olde;
		int old_ok = 0;
		q_buf_reset(&old);
		v[i].rc = read_for_delete(s, q_buf_slice(&k[i]), 1, v[i].seq, &old, &olde, &old_ok);
		if (v[i].rc == 0)
			v[i].rc = lsm_batch_delete(b, q_buf_slice(&k[i]));
		if (v[i].rc == 0) {
			vlen[i] = old.len;
			created[i] = olde.created_ms;
			ndel++;
		}
	}
	if (ndel)
		rc = lsm_write(s->db, b);
	for (size_t i = 0; ndel && i < n; i++) {
		if (v[i].rc < 0)
			continue;
		if (rc < 0) {
			v[i].rc = rc;
			continue;
		}
		hint_entry olde;
		olde.created_ms = created[i];
		account_remove(s, k[i].len, q_slice_make(NULL, vlen[i]), 1, &olde);
	}
	pthread_mutex_unlock(&s->mu);
out:
	for (size_t i = 0; k && i < n; i++)
		q_buf_free(&k[i]); /* zeroed by calloc: Q_BUF_INIT */
	free(k);
	free(created);
	free(vlen);
	lsm_batch_free(b);
	q_buf_free(&old);
	return rc;
}

/* ---------------------------------------------------------------------
 * Iteration
 * ------------------------------------------------------------------- */

static void iter_load(hint_iter *h)
{
	h->valid = 0;
	if (!lsm_iter_valid(h->it)) {
		h->status = lsm_iter_status(h->it);
		return;
	}
	q_slice k = lsm_iter_key(h->it), v = lsm_iter_value(h->it);
	if (!has_prefix(k, &h->prefix))
		return;
	memset(&h->cur, 0, sizeof(h->cur));
	if (hint_key_decode(k.p, k.n, &h->cur.owner, &h->cur.key) < 0) {
		/* a foreign key inside our keyspace: report, do not touch */
		h->status = Q_ECORRUPT;
		return;
	}
	q_slice owner = h->cur.owner, key = h->cur.key;
	if (hint_value_decode(v.p, v.n, &h->cur) < 0) {
		memset(&h->cur, 0, sizeof(h->cur));
		h->cur.status = Q_ECORRUPT;
	}
	h->cur.owner = owner;
	h->cur.key = key;
	h->valid = 1;
}

int hint_iter_new(hint_store *s, const char *owner, hint_iter **out)
{
	hint_iter *h = calloc(1, sizeof(*h));
	int rc;
	*out = NULL;
	if (!h)
		return -ENOMEM;
	q_buf_init(&h->prefix);
	if (owner) {
		if (!owner_ok(owner)) {
			rc = -EINVAL;
			goto fail;
		}
		Q_ERR(prefix_encode(owner, &h->prefix));
	} else {
		Q_ERR(q_buf_append_byte(&h->prefix, LSM_KS_HINT));
	}
	Q_ERR(lsm_iter_new(s->db, &h->it));
	lsm_iter_seek(h->it, q_buf_slice(&h->prefix));
	iter_load(h);
	*out = h;
	return 0;
fail:
	q_buf_free(&h->prefix);
	free(h);
	return rc;
}

int hint_iter_valid(const hint_iter *it)
{
	return it->valid;
}

void hint_iter_next(hint_iter *it)
{
	if (!it->valid)
		return;
	lsm_iter_next(it->it);
	iter_load(it);
}

void hint_iter_entry(const hint_iter *it, hint_entry *out)
{
	*out = it->cur;
}

int hint_iter_status(const hint_iter *it)
{
	return it->status;
}

void hint_iter_free(hint_iter *it)
{
	if (!it)
		return;
	lsm_iter_free(it->it);
	q_buf_free(&it->prefix);
	free(it);
}

int hint_owners(hint_store *s, hint_owner_fn fn, void *ud)
{
	lsm_iter *it;
	q_buf seek = Q_BUF_INIT, prefix = Q_BUF_INIT;
	char owner[HINT_OWNER_MAX + 1];
	int rc = 0;
	Q_RET(lsm_iter_new(s->db, &it));
	Q_ERR(q_buf_append_byte(&seek, LSM_KS_HINT));
	for (int guard = 0; guard < 1000000; guard++) {
		lsm_iter_seek(it, q_buf_slice(&seek));
		if (!lsm_iter_valid(it))
			break;
		q_slice k = lsm_iter_key(it), o, key;
		if (k.n == 0 || k.p[0] != LSM_KS_HINT)
			break;
		if (hint_key_decode(k.p, k.n, &o, &key) < 0) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		memcpy(owner, o.p, o.n);
		owner[o.n] = '\0';
		q_buf_reset(&prefix);
		Q_ERR(prefix_encode(owner, &prefix));
		hint_stats st;
		Q_ERR(scan(s->db, &prefix, &st, NULL));
		rc = fn(ud, owner, &st);
		if (rc)
			goto fail;
		/* jump past this owner's keys */
		q_buf_reset(&seek);
		Q_ERR(q_buf_append(&seek, prefix.p, prefix.len));
		if (!prefix_successor(&seek))
			break;
	}
	rc = lsm_iter_status(it);
fail:
	lsm_iter_free(it);
	q_buf_free(&seek);
	q_buf_free(&prefix);
	return rc;
}

/* ---------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------- */

void hint_batch_free(hint_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].key);
		free(b->v[i].object);
	}
	free(b->v);
	memset(b, 0, sizeof(*b));
}

static uint8_t *dup_bytes(q_slice x)
{
	uint8_t *p = malloc(x.n ? x.n : 1);
	if (p && x.n)
		memcpy(p, x.p, x.n);
	return p;
}

int hint_batch_load(hint_store *s, const char *owner, q_slice after, size_t max_items,
		    size_t max_bytes, hint_batch *out)
{
	q_buf prefix = Q_BUF_INIT, seek = Q_BUF_INIT;
	lsm_iter *it = NULL;
	size_t bytes = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if (!owner_ok(owner) || max_items == 0)
		return -EINVAL;
	Q_ERR(prefix_encode(owner, &prefix));
	Q_ERR(q_buf_append(&seek, prefix.p, prefix.len));
	Q_ERR(q_buf_append(&seek, after.p, after.n));
	out->v = calloc(max_items, sizeof(*out->v));
	if (!out->v) {
		rc = -ENOMEM;
		goto fail;
	}
	Q_ERR(lsm_iter_new(s->db, &it));
	for (lsm_iter_seek(it, q_buf_slice(&seek)); lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it), v = lsm_iter_value(it), o, key;
		if (!has_prefix(k, &prefix))
			break;
		if (hint_key_decode(k.p, k.n, &o, &key) < 0)
			continue;
		if (after.n && q_slice_cmp(key, after) <= 0)
			continue;
		if (out->n == max_items || (out->n > 0 && bytes >= max_bytes)) {
			out->more = 1;
			break;
		}
		hint_item *h = &out->v[out->n];
		hint_entry e;
		h->key = dup_bytes(key);
		h->klen = key.n;
		if (!h->key) {
			rc = -ENOMEM;
			goto fail;
		}
		if (hint_value_decode(v.p, v.n, &e) < 0) {
			h->status = Q_ECORRUPT;
		} else {
			h->object = dup_bytes(e.object);
			if (!h->object) {
				free(h->key);
				h->key = NULL;
				rc = -ENOMEM;
				goto fail;
			}
			h->olen = e.object.n;
			h->seq = e.seq;
			bytes += e.object.n;
		}
		out->n++;
	}
	rc = lsm_iter_status(it);
	if (rc < 0)
		goto fail;
	lsm_iter_free(it);
	q_buf_free(&prefix);
	q_buf_free(&seek);
	return 0;
fail:
	lsm_iter_free(it);
	q_buf_free(&prefix);
	q_buf_free(&seek);
	hint_batch_free(out);
	return rc;
}
