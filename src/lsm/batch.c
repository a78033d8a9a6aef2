/*
 * batch.c - write batch encoding and decoding, and shared encodings (see
 * batch.h). Invariant: while b->hold is set, b->rep.p is the hold's buffer
 * and nothing writes through it; batch_own() gives the batch a private copy
 * before any change.
 *
 * Buffer pool: the encodings of batches with large values live until their
 * memtable is flushed, so without reuse every such batch would get fresh
 * memory from the allocator (page faults on every page, a large share of
 * the cost of a large put). A batch that takes a value of at least
 * POOL_MIN bytes therefore gets a buffer of exactly the size it needs,
 * from the pool when one fits, and a buffer of at least POOL_MIN bytes
 * goes back to the pool when its batch or last hold reference lets go of
 * it. The pool is process-wide, under pool_mu, and bounded (POOL_MAX_BUFS
 * buffers, POOL_MAX_BYTES bytes); past that, buffers are freed.
 */
#include "lsm/batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_format.h"
#include "util/coding.h"
#include "util/qerr.h"

struct batch_hold {
	atomic_int refs;
	uint8_t *p; /* malloc'd, freed (or pooled) with the last reference */
	size_t cap;
	/* where these bytes lie in a commit log (batch_hold_set_log) */
	size_t log_len;      /* bytes of the logged record, 0: not logged */
	uint64_t log_num;
	uint64_t log_start;  /* offset of the record's first header */
};

#define POOL_MIN (16u << 10)
#define POOL_MAX_BUFS 128
#define POOL_MAX_BYTES (96u << 20)

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint8_t *p;
	size_t cap;
} pool[POOL_MAX_BUFS];
static size_t pool_n, pool_bytes;

/* Frees p (cap bytes) or keeps it for reuse. */
static void pool_put(uint8_t *p, size_t cap)
{
	if (!p)
		return;
	if (LSM_RECYCLE && cap >= POOL_MIN) {
		pthread_mutex_lock(&pool_mu);
		if (pool_n < POOL_MAX_BUFS && pool_bytes + cap <= POOL_MAX_BYTES) {
			pool[pool_n].p = p;
			pool[pool_n].cap = cap;
			pool_n++;
			pool_bytes += cap;
			p = NULL;
		}
		pthread_mutex_unlock(&pool_mu);
	}
	free(p);
}

/* A pooled buffer of need..need + need/4 bytes (*cap set), or NULL. */
static uint8_t *pool_get(size_t need, size_t *cap)
{
	uint8_t *p = NULL;
	pthread_mutex_lock(&pool_mu);
	for (size_t i = pool_n; i-- > 0;) {
		if (pool[i].cap >= need && pool[i].cap - need <= need / 4) {
			p = pool[i].p;
			*cap = pool[i].cap;
			pool_bytes -= pool[i].cap;
			pool[i] = pool[--pool_n];
			break;
		}
	}
	pthread_mutex_unlock(&pool_mu);
	return p;
}

/* Makes room for extra more bytes in b->rep (not shared): at exactly the
 * size needed for a batch's first op, doubling after that, and from the
 * pool when the result is large (see above). */
static int batch_reserve(lsm_batch *b, size_t extra)
{
	q_buf *r = &b->rep;
	if (extra > SIZE_MAX / 2 - r->len)
		return -ENOMEM;
	size_t need = r->len + extra;
	if (need <= r->cap)
		return 0;
	if (need < POOL_MIN)
		return q_buf_reserve(r, extra);
	/* a batch growing past its first op (several large puts, or a group
	 * commit merging batches) doubles, so appends stay linear */
	if (r->len > BATCH_HEADER_SIZE && need < 2 * r->cap)
		need = 2 * r->cap;
	size_t cap = 0;
	uint8_t *p = pool_get(need, &cap);
	if (!p) {
		cap = need + need / 16;
		p = malloc(cap);
		if (!p)
			return -ENOMEM;
	}
	if (r->len)
		memcpy(p, r->p, r->len);
	pool_put(r->p, r->cap);
	r->p = p;
	r->cap = cap;
	return 0;
}

size_t batch_hold_size(const batch_hold *h)
{
	return h->cap;
}

void batch_hold_ref(batch_hold *h)
{
	atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void batch_hold_unref(batch_hold *h)
{
	if (!h || atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
		return;
	pool_put(h->p, h->cap);
	free(h);
}

batch_hold *batch_share(lsm_batch *b)
{
	if (!b->hold) {
		batch_hold *h = malloc(sizeof(*h));
		if (!h)
			return NULL;
		atomic_init(&h->refs, 1); /* the batch's alias */
		h->p = b->rep.p;
		h->cap = b->rep.cap;
		h->log_len = 0;
		h->log_num = h->log_start = 0;
		b->hold = h;
	}
	batch_hold_ref(b->hold);
	return b->hold;
}

void batch_hold_set_log(batch_hold *h, uint64_t lognum, uint64_t start, size_t len)
{
	h->log_num = lognum;
	h->log_start = start;
	h->log_len = len;
}

const uint8_t *batch_hold_data(const batch_hold *h)
{
	return h->p;
}

int batch_hold_log_pos(const batch_hold *h, const uint8_t *p, size_t n, uint64_t *lognum,
		       uint64_t *start, uint64_t *logical)
{
	if (!h->log_len || p < h->p || n > h->log_len || (size_t)(p - h->p) > h->log_len - n)
		return 0;
	*lognum = h->log_num;
	*start = h->log_start;
	*logical = (uint64_t)(p - h->p);
	return 1;
}

/* Drops the alias (the batch is empty afterwards). */
static void batch_unshare(lsm_batch *b)
{
	batch_hold_unref(b->hold);
	b->hold = NULL;
	q_buf_init(&b->rep);
}

/* Gives a shared batch a private copy of its encoding before a change. */
static int batch_own(lsm_batch *b)
{
	if (!b->hold)
		return 0;
	q_buf own;
	q_buf_init(&own);
	int rc = q_buf_append(&own, b->rep.p, b->rep.len);
	if (rc) {
		q_buf_free(&own);
		return rc;
	}
	batch_hold_unref(b->hold);
	b->hold = NULL;
	b->rep = own;
	return 0;
}

void batch_release(lsm_batch *b)
{
	if (b->hold) {
		batch_unshare(b);
	} else {
		pool_put(b->rep.p, b->rep.cap);
		q_buf_init(&b->rep);
	}
}

static int batch_ensure_header(lsm_batch *b)
{
	Q_RET(batch_own(b));
	if (b->rep.len >= BATCH_HEADER_SIZE)
		return 0;
	uint8_t h[BATCH_HEADER_SIZE] = {0};
	return q_buf_append(&b->rep, h, sizeof(h));
}

lsm_batch *lsm_batch_new(void)
{
	lsm_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	q_buf_init(&b->rep);
	return b;
}

void lsm_batch_free(lsm_batch *b)
{
	if (!b)
		return;
	batch_release(b);
	free(b);
}

void lsm_batch_clear(lsm_batch *b)
{
	if (b->hold)
		batch_unshare(b);
	else
		q_buf_reset(&b->rep);
	b->count = 0;
	b->err = 0;
	b->max_key = b->max_value = 0;
}

static int batch_add(lsm_batch *b, int op, q_slice key, const q_slice *value)
{
	if (b->err)
		return b->err;
	size_t old = b->rep.len;
	int rc = batch_ensure_header(b);
	if (rc == 0 && value && value->n >= POOL_MIN)
		rc = batch_reserve(b, 1 + 2 * Q_VARINT64_MAX + key.n + value->n);
	if (rc == 0)
		rc = q_buf_append_byte(&b->rep, (uint8_t)op);
	if (rc == 0)
		rc = q_put_lenbytes(&b->rep, key.p, key.n);
	if (rc == 0 && value)
		rc = q_put_lenbytes(&b->rep, value->p, value->n);
	if (rc) {
		b->rep.len = old;
		b->err = rc;
		return rc;
	}
	b->count++;
	q_enc_fixed32(b->rep.p + 8, b->count);
	if (key.n > b->max_key)
		b->max_key = key.n;
	if (value && value->n > b->max_value)
		b->max_value = value->n;
	return 0;
}

int lsm_batch_put(lsm_batch *b, q_slice key, q_slice value)
{
	return batch_add(b, BATCH_PUT, key, &value);
}

int lsm_batch_delete(lsm_batch *b, q_slice key)
{
	return batch_add(b, BATCH_DEL, key, NULL);
}

uint64_t batch_rep_seq(q_slice rep)
{
	return q_dec_fixed64(rep.p);
}

uint32_t batch_rep_count(q_slice rep)
{
	return q_dec_fixed32(rep.p + 8);
}

int batch_set_seq(lsm_batch *b, uint64_t seq)
{
	Q_RET(batch_ensure_header(b));
	q_enc_fixed64(b->rep.p, seq);
	return 0;
}

int batch_append(lsm_batch *dst, const lsm_batch *src)
{
	if (src->count == 0)
		return 0;
	int rc = batch_ensure_header(dst);
	if (rc == 0 && src->max_value >= POOL_MIN)
		rc = batch_reserve(dst, src->rep.len - BATCH_HEADER_SIZE);
	if (rc == 0)
		rc = q_buf_append(&dst->rep, src->rep.p + BATCH_HEADER_SIZE,
				  src->rep.len - BATCH_HEADER_SIZE);
	if (rc)
		return rc;
	dst->count += src->count;
	q_enc_fixed32(dst->rep.p + 8, dst->count);
	if (src->max_key > dst->max_key)
		dst->max_key = src->max_key;
	if (src->max_value > dst->max_value)
		dst->max_value = src->max_value;
	return 0;
}

/* One pass that only validates (fn == NULL) or applies. */
static int batch_walk(q_slice rep, batch_op_fn fn, void *arg)
{
	if (rep.n < BATCH_HEADER_SIZE)
		return Q_ETRUNC;
	uint64_t seq = batch_rep_seq(rep);
	uint32_t count = batch_rep_count(rep);
	if (count > 0 && seq + count - 1 > SEQ_MAX)
		return Q_ECORRUPT;
	q_reader r = q_reader_make(rep.p + BATCH_HEADER_SIZE, rep.n - BATCH_HEADER_SIZE);
	uint32_t seen = 0;
	while (q_reader_left(&r) > 0) {
		uint8_t op;
		q_slice k, v = {NULL, 0};
		Q_RET(q_get_u8(&r, &op));
		if (op != BATCH_PUT && op != BATCH_DEL)
			return Q_ECORRUPT;
		Q_RET(q_get_lenbytes(&r, SIZE_MAX, &k));
		if (op == BATCH_PUT)
			Q_RET(q_get_lenbytes(&r, SIZE_MAX, &v));
		if (seen == count)
			return Q_ECORRUPT;
		if (fn)
			Q_RET(fn(arg, seq + seen, op == BATCH_PUT ? KIND_PUT : KIND_DEL, k, v));
		seen++;
	}
	return seen == count ? 0 : Q_ECORRUPT;
}

int batch_decode(q_slice rep, batch_op_fn fn, void *arg)
{
	Q_RET(batch_walk(rep, NULL, NULL));
	return fn ? batch_walk(rep, fn, arg) : 0;
}
