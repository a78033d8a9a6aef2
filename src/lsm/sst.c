/*
 * sst.c - sorted tables: block format, bloom filters, builder, reader and
 * iterators (see sst.h; byte layout in docs/lsm.md).
 *
 * Reader invariants: sst_open checks the footer (magic, version, checksum)
 * and loads the index block and the filter (both checksummed) into memory.
 * Data blocks are read on demand, checked, decompressed and shared through
 * the block cache. Every length and offset read from disk is bounds-checked
 * before use, so a damaged file yields Q_ECORRUPT, never a crash.
 */
#include "lsm/sst.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm/lsm_format.h"
#include "lsm/mapg.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"

#define SST_MAX_BLOCK (256u << 20)

/* ================= blocks ================= */

/* Fills b's layout fields from the decoded contents (data, n); 0 or
 * Q_ECORRUPT. */
static int block_layout(sst_block *b, const uint8_t *data, size_t n)
{
	if (n < 4)
		return Q_ECORRUPT;
	uint32_t nr = q_dec_fixed32(data + n - 4);
	if (nr == 0 || nr > (n - 4) / 4)
		return Q_ECORRUPT;
	b->data = data;
	b->size = n - 4 - (size_t)nr * 4; /* bytes of entries */
	b->restarts = data + b->size;
	b->nrestarts = nr;
	atomic_init(&b->refs, 1);
	return 0;
}

int sst_block_new(const uint8_t *data, size_t n, uint8_t *owned, sst_block **out)
{
	sst_block tmp;
	if (block_layout(&tmp, data, n)) {
		free(owned);
		return Q_ECORRUPT;
	}
	sst_block *b = malloc(sizeof(*b));
	if (!b) {
		free(owned);
		return -ENOMEM;
	}
	*b = tmp;
	atomic_init(&b->refs, 1);
	b->cap = 0;
	b->owned = owned;
	*out = b;
	return 0;
}

/* Blocks read from disk keep their contents in the same allocation as the
 * struct (one allocation per block). When such a block is freed, its memory
 * goes to a small stash of the freeing thread and the next block read by
 * that thread reuses it: with a full cache every miss evicts (frees) one
 * block and reads one, so the read path mostly skips malloc and free of a
 * few KiB. Capacities are rounded up to 1 KiB; a stashed buffer is reused
 * only for contents it fits without wasting more than 2 KiB. A thread's
 * stash is freed when the thread exits (key destructor). */
#define STASH_N 4
#define STASH_ROUND 1024u
#define STASH_SLACK 2048u

typedef struct blk_stash {
	sst_block *b[STASH_N];
	int n;
} blk_stash;

static __thread blk_stash tl_stash;
static __thread int tl_stash_armed;
static pthread_key_t g_stash_key;
static pthread_once_t g_stash_once = PTHREAD_ONCE_INIT;
static int g_stash_ok;

/* Key destructor, run by the exiting thread itself: the stash is that
 * thread's. A block freed by a later destructor of the same thread arms
 * the key again, so it is drained in the next destructor round. */
static void stash_drain(void *arg)
{
	blk_stash *st = arg;
	for (int i = 0; i < st->n; i++)
		free(st->b[i]);
	st->n = 0;
	tl_stash_armed = 0;
}

static void stash_key_init(void)
{
	g_stash_ok = pthread_key_create(&g_stash_key, stash_drain) == 0;
}

/* Frees an inline block's memory, or keeps it in the thread's stash. */
static void block_release(sst_block *b)
{
	blk_stash *st = &tl_stash;
	if (LSM_RECYCLE && st->n < STASH_N) {
		if (!tl_stash_armed) {
			pthread_once(&g_stash_once, stash_key_init);
			if (g_stash_ok && pthread_setspecific(g_stash_key, st) == 0)
				tl_stash_armed = 1;
		}
		if (tl_stash_armed) {
			st->b[st->n++] = b;
			return;
		}
	}
	free(b);
}

/* A block whose contents (dlen bytes) follow the struct in its allocation;
 * the caller fills the contents, then calls block_inline_finish. */
static sst_block *block_inline_alloc(size_t dlen, uint8_t **contents)
{
	blk_stash *st = &tl_stash;
	sst_block *b = NULL;
	for (int i = st->n - 1; i >= 0; i--)
		if (st->b[i]->cap >= dlen && st->b[i]->cap - dlen <= STASH_SLACK) {
			b = st->b[i];
			st->b[i] = st->b[--st->n];
			break;
		}
	if (!b) {
		size_t cap = dlen ? dlen : 1;
		cap = (cap + STASH_ROUND - 1) / STASH_ROUND * STASH_ROUND;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
	}
	*contents = (uint8_t *)(b + 1);
	return b;
}

static int block_inline_finish(sst_block *b, size_t dlen, sst_block **out)
{
	size_t cap = b->cap;
	if (block_layout(b, (const uint8_t *)(b + 1), dlen)) {
		b->cap = cap;
		block_release(b);
		return Q_ECORRUPT;
	}
	b->cap = cap;
	b->owned = NULL;
	*out = b;
	return 0;
}

void sst_block_ref(sst_block *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void sst_block_unref(sst_block *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
		if (b->cap) {
			block_release(b);
			return;
		}
		free(b->owned);
		free(b);
	}
}

typedef struct blk_iter {
	lsm_it base;
	sst_block *b;
	int ikeys;
	size_t cur;       /* offset of current entry; == size when invalid */
	size_t next_off;  /* offset of the entry after cur */
	uint8_t *kp;      /* current key: kin, or heap memory once it outgrows it */
	size_t klen, kcap;
	q_slice val;
	int status;
	int valid;
	uint8_t kin[96];
} blk_iter;

static inline q_slice bi_keyslice(const blk_iter *bi)
{
	return q_slice_make(bi->kp, bi->klen);
}

/* key = key[0..shared) + p[0..n) */
static int bi_setkey(blk_iter *bi, size_t shared, const uint8_t *p, size_t n)
{
	size_t need = shared + n;
	if (need > bi->kcap) {
		size_t cap = need * 2;
		uint8_t *nk = malloc(cap);
		if (!nk)
			return -ENOMEM;
		memcpy(nk, bi->kp, shared);
		if (bi->kp != bi->kin)
			free(bi->kp);
		bi->kp = nk;
		bi->kcap = cap;
	}
	if (n)
		memcpy(bi->kp + shared, p, n);
	bi->klen = need;
	return 0;
}

static int bi_cmp(blk_iter *bi, q_slice a, q_slice b)
{
	if (bi->ikeys)
		return ikey_cmp(a, b);
	return ukey_cmp(a.p, a.n, b.p, b.n);
}

static void bi_corrupt(blk_iter *bi)
{
	bi->status = Q_ECORRUPT;
	bi->valid = 0;
}

/* Decodes the three lengths of the entry at off (< size) into h[0..2] (shared,
 * non-shared, value length); returns the first byte after them or NULL if
 * they are malformed or run past the entries. The common case (each length
 * below 128, one byte each) is decoded inline; the general case goes through
 * the checked varint reader, so both accept exactly the same encodings. */
static inline const uint8_t *entry_header(const sst_block *b, size_t off, uint32_t h[3])
{
	const uint8_t *p = b->data + off;
	if (b->size - off >= 3 && (p[0] | p[1] | p[2]) < 0x80) {
		h[0] = p[0];
		h[1] = p[1];
		h[2] = p[2];
		return p + 3;
	}
	q_reader r = q_reader_make(p, b->size - off);
	if (q_get_varint32(&r, &h[0]) || q_get_varint32(&r, &h[1]) || q_get_varint32(&r, &h[2]))
		return NULL;
	return r.p;
}

/* Decodes the entry at off into key/val; 0 or Q_ECORRUPT. */
static int bi_decode_at(blk_iter *bi, size_t off)
{
	uint32_t h[3];
	const uint8_t *p = entry_header(bi->b, off, h);
	if (!p)
		return Q_ECORRUPT;
	uint32_t shared = h[0], nonshared = h[1], vlen = h[2];
	q_reader r = q_reader_make(p, (size_t)(bi->b->data + bi->b->size - p));
	if (shared > bi->klen || q_reader_left(&r) < (size_t)nonshared + vlen)
		return Q_ECORRUPT;
	if (bi_setkey(bi, shared, r.p, nonshared))
		return -ENOMEM;
	if (bi->ikeys && bi->klen < IKEY_TRAILER)
		return Q_ECORRUPT;
	bi->val = q_slice_make(r.p + nonshared, vlen);
	bi->cur = off;
	bi->next_off = (size_t)(r.p - bi->b->data) + nonshared + vlen;
	bi->valid = 1;
	return 0;
}

static size_t bi_restart(const blk_iter *bi, uint32_t i)
{
	return q_dec_fixed32(bi->b->restarts + 4 * (size_t)i);
}

/* Positions at restart i; 0 or error. */
static int bi_seek_restart(blk_iter *bi, uint32_t i)
{
	size_t off = bi_restart(bi, i);
	if (off >= bi->b->size)
		return Q_ECORRUPT;
	bi->klen = 0;
	return bi_decode_at(bi, off);
}

static int bi_valid(lsm_it *it) { return ((blk_iter *)it)->valid; }

static void bi_seek_first(lsm_it *it)
{
	blk_iter *bi = (blk_iter *)it;
	bi->valid = 0;
	if (bi->status)
		return;
	if (bi->b->size == 0)
		return;
	int rc = bi_seek_restart(bi, 0);
	if (rc) {
		bi->status = rc;
		bi->valid = 0;
	}
}

static void bi_next(lsm_it *it)
{
	blk_iter *bi = (blk_iter *)it;
	if (!bi->valid)
		return;
	if (bi->next_off >= bi->b->size) {
		bi->valid = 0;
		return;
	}
	int rc = bi_decode_at(bi, bi->next_off);
	if (rc) {
		bi->status = rc;
		bi->valid = 0;
	}
}

/* The key stored at restart i, in place (a restart entry shares nothing
 * with its predecessor); 0 or Q_ECORRUPT under the same checks as
 * bi_seek_restart. */
static int bi_restart_key(const blk_iter *bi, uint32_t i, q_slice *key)
{
	size_t off = bi_restart(bi, i);
	const sst_block *b = bi->b;
	if (off >= b->size)
		return Q_ECORRUPT;
	uint32_t h[3];
	const uint8_t *p = entry_header(b, off, h);
	if (!p || h[0] != 0 || (size_t)(b->data + b->size - p) < (size_t)h[1] + h[2])
		return Q_ECORRUPT;
	if (bi->ikeys && h[1] < IKEY_TRAILER)
		return Q_ECORRUPT;
	*key = q_slice_make(p, h[1]);
	return 0;
}

static void bi_seek(lsm_it *it, q_slice target)
{
	blk_iter *bi = (blk_iter *)it;
	bi->valid = 0;
	if (bi->status || bi->b->size == 0)
		return;
	/* binary search: last restart whose key < target (keys compared where
	 * they lie in the block, nothing copied) */
	uint32_t lo = 0, hi = bi->b->nrestarts - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		q_slice mk;
		int rc = bi_restart_key(bi, mid, &mk);
		if (rc) {
			bi->status = rc;
			bi->valid = 0;
			return;
		}
		if (bi_cmp(bi, mk, target) < 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	int rc = bi_seek_restart(bi, lo);
	if (rc) {
		bi_corrupt(bi);
		bi->status = rc;
		return;
	}
	for (;;) {
		if (bi_cmp(bi, bi_keyslice(bi), target) >= 0)
			return;
		bi_next(it);
		if (!bi->valid)
			return;
	}
}

static q_slice bi_key(lsm_it *it) { return bi_keyslice((blk_iter *)it); }
static q_slice bi_value(lsm_it *it) { return ((blk_iter *)it)->val; }
static int bi_status(lsm_it *it) { return ((blk_iter *)it)->status; }

/* Stack use (point lookups): bi_init / bi_destroy, no allocation unless a
 * key outgrows the inline buffer. */
static void bi_destroy(blk_iter *bi)
{
	sst_block_unref(bi->b);
	if (bi->kp != bi->kin)
		free(bi->kp);
}

static void bi_free(lsm_it *it)
{
	bi_destroy((blk_iter *)it);
	free(it);
}

static const struct lsm_it_ops blk_iter_ops = {
	bi_valid, bi_seek_first, bi_seek, bi_next, bi_key, bi_value, bi_status, bi_free,
};

static void bi_init(blk_iter *bi, sst_block *b, int ikeys)
{
	bi->base.ops = &blk_iter_ops;
	sst_block_ref(b);
	bi->b = b;
	bi->ikeys = ikeys;
	bi->cur = bi->next_off = 0;
	bi->kp = bi->kin;
	bi->klen = 0;
	bi->kcap = sizeof(bi->kin);
	bi->val = q_slice_make(NULL, 0);
	bi->status = 0;
	bi->valid = 0;
}

lsm_it *sst_block_iter(sst_block *b, int ikeys)
{
	blk_iter *bi = malloc(sizeof(*bi));
	if (!bi)
		return NULL;
	bi_init(bi, b, ikeys);
	return &bi->base;
}

/* ---- block builder ---- */

void sst_bb_init(sst_block_builder *bb)
{
	memset(bb, 0, sizeof(*bb));
	bb->restart_interval = SST_RESTART_INTERVAL;
}

void sst_bb_free(sst_block_builder *bb)
{
	q_buf_free(&bb->buf);
	q_buf_free(&bb->last);
	free(bb->restarts);
	int ri = bb->restart_interval;
	memset(bb, 0, sizeof(*bb));
	bb->restart_interval = ri;
}

void sst_bb_reset(sst_block_builder *bb)
{
	q_buf_reset(&bb->buf);
	q_buf_reset(&bb->last);
	bb->nrestarts = 0;
	bb->counter = 0;
	bb->entries = 0;
}

static int bb_push_restart(sst_block_builder *bb, uint32_t off)
{
	if (bb->nrestarts == bb->caprestarts) {
		size_t cap = bb->caprestarts ? bb->caprestarts * 2 : 64;
		uint32_t *n = realloc(bb->restarts, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		bb->restarts = n;
		bb->caprestarts = cap;
	}
	bb->restarts[bb->nrestarts++] = off;
	return 0;
}

int sst_bb_add(sst_block_builder *bb, q_slice key, q_slice value)
{
	size_t shared = 0;
	if (bb->counter < bb->restart_interval && bb->entries > 0) {
		size_t m = bb->last.len < key.n ? bb->last.len : key.n;
		while (shared < m && bb->last.p[shared] == key.p[shared])
			shared++;
	} else {
		Q_RET(bb_push_restart(bb, (uint32_t)bb->buf.len));
		bb->counter = 0;
	}
	uint8_t hdr[3 * Q_VARINT32_MAX];
	size_t h = q_enc_varint64(hdr, shared);
	h += q_enc_varint64(hdr + h, key.n - shared);
	h += q_enc_varint64(hdr + h, value.n);
	Q_RET(q_buf_reserve(&bb->buf, h + key.n - shared + value.n));
	q_buf_append(&bb->buf, hdr, h);
	q_buf_append(&bb->buf, key.p + shared, key.n - shared);
	q_buf_append(&bb->buf, value.p, value.n);
	bb->last.len = shared;
	Q_RET(q_buf_append(&bb->last, key.p + shared, key.n - shared));
	bb->counter++;
	bb->entries++;
	return 0;
}

int sst_bb_finish(sst_block_builder *bb, q_slice *out)
{
	if (bb->nrestarts == 0)
		Q_RET(bb_push_restart(bb, 0));
	Q_RET(q_buf_reserve(&bb->buf, 4 * bb->nrestarts + 4));
	for (size_t i = 0; i < bb->nrestarts; i++)
		q_put_fixed32(&bb->buf, bb->restarts[i]);
	q_put_fixed32(&bb->buf, (uint32_t)bb->nrestarts);
	*out = q_buf_slice(&bb->buf);
	return 0;
}

size_t sst_bb_size_estimate(const sst_block_builder *bb)
{
	return bb->buf.len + 4 * bb->nrestarts + 4;
}

/* ---- stored block decoding ---- */

int sst_decode_block(const uint8_t *raw, size_t n, sst_block **out)
{
	if (n < SST_BLOCK_TRAILER)
		return Q_ECORRUPT;
	size_t len = n - SST_BLOCK_TRAILER;
	uint8_t type = raw[len];
	uint32_t want = q_dec_fixed32(raw + len + 1);
	/* contents and type byte are adjacent: one-shot hash of both */
	if (q_csum32(raw, len + 1) != want)
		return Q_ECORRUPT;
	uint8_t *contents;
	sst_block *b;
	size_t dlen;
	if (type == SST_COMP_NONE) {
		dlen = len;
		if (!(b = block_inline_alloc(dlen, &contents)))
			return -ENOMEM;
		memcpy(contents, raw, len);
	} else if (type == SST_COMP_SNAPPY) {
		if (snappy_uncompressed_length((const char *)raw, len, &dlen) != SNAPPY_OK ||
		    dlen > SST_MAX_BLOCK)
			return Q_ECORRUPT;
		if (!(b = block_inline_alloc(dlen, &contents)))
			return -ENOMEM;
		size_t got = dlen;
		if (snappy_uncompress((const char *)raw, len, (char *)contents, &got) != SNAPPY_OK ||
		    got != dlen) {
			block_release(b);
			return Q_ECORRUPT;
		}
	} else {
		return Q_ECORRUPT;
	}
	return block_inline_finish(b, dlen, out);
}

/* ================= bloom filters ================= */

uint64_t bloom_hash(q_slice ukey)
{
	return q_hash64(ukey.p, ukey.n, BLOOM_SEED);
}

/* Filters are blocked: the filter is an array of 512-bit lines and all k
 * probes of a key fall in one line, picked by the high 32 bits of its hash
 * (one cache miss per lookup instead of k). The last byte is k | 0x80.
 * Filters of earlier tables (whole-filter probes, last byte k) are still
 * read; a binary without the blocked layout sees k > BLOOM_MAX_K and treats
 * the filter as "may match", so its reads stay correct. */
static inline size_t bloom_line_of(uint64_t hash, size_t lines)
{
	return (size_t)(((hash >> 32) * (uint64_t)lines) >> 32);
}

int bloom_build(const uint64_t *hashes, size_t n, int bits_per_key, q_buf *out)
{
	int k = (int)(bits_per_key * 0.69);
	if (k < 1)
		k = 1;
	if (k > BLOOM_MAX_K)
		k = BLOOM_MAX_K;
	size_t bits = n * (size_t)bits_per_key;
	size_t lines = (bits + BLOOM_LINE_BITS - 1) / BLOOM_LINE_BITS;
	if (lines < 1)
		lines = 1;
	if (lines > UINT32_MAX)
		return Q_ETOOBIG;
	size_t bytes = lines * (BLOOM_LINE_BITS / 8);
	size_t base = out->len;
	Q_RET(q_buf_reserve(out, bytes + 1));
	memset(out->p + base, 0, bytes);
	out->len += bytes;
	uint8_t *a = out->p + base;
	for (size_t i = 0; i < n; i++) {
		uint8_t *line = a + bloom_line_of(hashes[i], lines) * (BLOOM_LINE_BITS / 8);
		uint32_t h = (uint32_t)hashes[i];
		uint32_t delta = (h >> 17) | (h << 15);
		for (int j = 0; j < k; j++) {
			uint32_t pos = h & (BLOOM_LINE_BITS - 1);
			line[pos / 8] |= (uint8_t)(1u << (pos % 8));
			h += delta;
		}
	}
	return q_buf_append_byte(out, (uint8_t)(k | BLOOM_BLOCKED));
}

/* The whole-filter layout of earlier tables. */
static int bloom_may_match_flat(const uint8_t *f, size_t n, int k, uint64_t hash)
{
	size_t bits = (n - 1) * 8;
	uint32_t h = (uint32_t)hash;
	uint32_t delta = (uint32_t)(hash >> 32) | 1;
	if (bits <= UINT32_MAX) {
		/* h < 2^32: the same positions with a 32-bit division */
		uint32_t bits32 = (uint32_t)bits;
		for (int j = 0; j < k; j++) {
			uint32_t pos = h % bits32;
			if (!(f[pos / 8] & (1u << (pos % 8))))
				return 0;
			h += delta;
		}
		return 1;
	}
	for (int j = 0; j < k; j++) {
		uint32_t pos = (uint32_t)(h % bits);
		if (!(f[pos / 8] & (1u << (pos % 8))))
			return 0;
		h += delta;
	}
	return 1;
}

int bloom_may_match(const uint8_t *f, size_t n, uint64_t hash)
{
	if (n < 2)
		return 1;
	unsigned t = f[n - 1];
	int k = (int)(t & ~BLOOM_BLOCKED);
	if (k < 1 || k > BLOOM_MAX_K)
		return 1;
	if (!(t & BLOOM_BLOCKED))
		return bloom_may_match_flat(f, n, k, hash);
	size_t bytes = n - 1;
	if (bytes % (BLOOM_LINE_BITS / 8) != 0)
		return 1;
	size_t lines = bytes / (BLOOM_LINE_BITS / 8);
	if (lines > UINT32_MAX)
		return 1;
	const uint8_t *line = f + bloom_line_of(hash, lines) * (BLOOM_LINE_BITS / 8);
	uint32_t h = (uint32_t)hash;
	uint32_t delta = (h >> 17) | (h << 15);
	for (int j = 0; j < k; j++) {
		uint32_t pos = h & (BLOOM_LINE_BITS - 1);
		if (!(line[pos / 8] & (1u << (pos % 8))))
			return 0;
		h += delta;
	}
	return 1;
}

/* ================= table builder ================= */

struct sst_builder {
	q_env *env;
	q_file *f;
	char path[512];
	sst_opts o;
	uint64_t off;
	uint64_t entries;
	sst_block_builder data, index;
	q_buf last_key;
	uint64_t *hashes;
	size_t nhashes, caphashes;
	uint64_t last_hash;
	q_buf comp;
	uint64_t last_off, last_size; /* the block just written */
};

int sst_builder_new(q_env *env, const char *path, const sst_opts *o, sst_builder **out)
{
	sst_builder *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (snprintf(b->path, sizeof(b->path), "%s", path) >= (int)sizeof(b->path)) {
		free(b);
		return -ENAMETOOLONG;
	}
	int rc = q_env_open(env, path, Q_OPEN_CREATE | Q_OPEN_EXCL, &b->f);
	if (rc) {
		free(b);
		return rc;
	}
	b->env = env;
	b->o = *o;
	if (b->o.block_size < 256)
		b->o.block_size = 256;
	sst_bb_init(&b->data);
	sst_bb_init(&b->index);
	/* every index entry a restart point: a lookup's index search is a
	 * binary search over keys compared in place, with no linear scan */
	b->index.restart_interval = SST_INDEX_RESTART_INTERVAL;
	*out = b;
	return 0;
}

/* Writes contents + trailer; returns the handle. */
static int builder_write_block(sst_builder *b, q_slice raw, int try_compress, uint64_t *off,
			       uint64_t *size)
{
	const uint8_t *p = raw.p;
	size_t n = raw.n;
	uint8_t type = SST_COMP_NONE;
	if (try_compress && b->o.compression) {
		size_t max = snappy_max_compressed_length(raw.n);
		q_buf_reset(&b->comp);
		Q_RET(q_buf_reserve(&b->comp, max));
		size_t clen = max;
		if (snappy_compress((const char *)raw.p, raw.n, (char *)b->comp.p, &clen) == SNAPPY_OK &&
		    clen < raw.n - raw.n / SST_MIN_SAVING_DIV) {
			p = b->comp.p;
			n = clen;
			type = SST_COMP_SNAPPY;
		}
	}
	uint8_t tr[SST_BLOCK_TRAILER];
	tr[0] = type;
	q_enc_fixed32(tr + 1, q_csum32_2(p, n, &type, 1));
	Q_RET(q_file_append(b->f, p, n));
	Q_RET(q_file_append(b->f, tr, sizeof(tr)));
	*off = b->off;
	*size = n;
	b->off += n + SST_BLOCK_TRAILER;
	return 0;
}

/* Index entry for the block just written: its last key -> its handle. */
static int builder_add_index(sst_builder *b)
{
	uint8_t h[2 * Q_VARINT64_MAX];
	size_t hn = q_enc_varint64(h, b->last_off);
	hn += q_enc_varint64(h + hn, b->last_size);
	return sst_bb_add(&b->index, q_buf_slice(&b->last_key), q_slice_make(h, hn));
}

static int builder_flush_data(sst_builder *b)
{
	if (b->data.entries == 0)
		return 0;
	q_slice raw;
	Q_RET(sst_bb_finish(&b->data, &raw));
	Q_RET(builder_write_block(b, raw, 1, &b->last_off, &b->last_size));
	sst_bb_reset(&b->data);
	return builder_add_index(b);
}

int sst_builder_add(sst_builder *b, q_slice ikey, q_slice value)
{
	if (b->o.bloom_bits_per_key > 0) {
		q_slice uk = ikey_user(ikey);
		uint64_t h = bloom_hash(uk);
		/* versions of one key are adjacent: hash each user key once */
		if (b->nhashes == 0 || h != b->last_hash ||
		    ukey_cmp(uk.p, uk.n, b->last_key.p, b->last_key.len - IKEY_TRAILER) != 0) {
			if (b->nhashes == b->caphashes) {
				size_t cap = b->caphashes ? b->caphashes * 2 : 1024;
				uint64_t *nh = realloc(b->hashes, cap * sizeof(*nh));
				if (!nh)
					return -ENOMEM;
				b->hashes = nh;
				b->caphashes = cap;
			}
			b->hashes[b->nhashes++] = h;
			b->last_hash = h;
		}
	}
	Q_RET(sst_bb_add(&b->data, ikey, value));
	q_buf_reset(&b->last_key);
	Q_RET(q_buf_append(&b->last_key, ikey.p, ikey.n));
	b->entries++;
	if (sst_bb_size_estimate(&b->data) >= b->o.block_size)
		Q_RET(builder_flush_data(b));
	return 0;
}

uint64_t sst_builder_size(const sst_builder *b)
{
	return b->off + sst_bb_size_estimate(&b->data);
}

uint64_t sst_builder_entries(const sst_builder *b)
{
	return b->entries;
}

static void builder_release(sst_builder *b)
{
	sst_bb_free(&b->data);
	sst_bb_free(&b->index);
	q_buf_free(&b->last_key);
	q_buf_free(&b->comp);
	free(b->hashes);
	free(b);
}

int sst_builder_finish(sst_builder *b, uint64_t *size)
{
	int rc;
	uint64_t foff = 0, fsize = 0, ioff, isize;
	q_buf filt = Q_BUF_INIT;
	Q_ERR(builder_flush_data(b));
	if (b->o.bloom_bits_per_key > 0) {
		Q_ERR(bloom_build(b->hashes, b->nhashes, b->o.bloom_bits_per_key, &filt));
		Q_ERR(builder_write_block(b, q_buf_slice(&filt), 0, &foff, &fsize));
	}
	q_slice raw;
	Q_ERR(sst_bb_finish(&b->index, &raw));
	Q_ERR(builder_write_block(b, raw, 0, &ioff, &isize));
	uint8_t ft[SST_FOOTER_SIZE];
	q_enc_fixed64(ft, foff);
	q_enc_fixed64(ft + 8, fsize);
	q_enc_fixed64(ft + 16, ioff);
	q_enc_fixed64(ft + 24, isize);
	q_enc_fixed64(ft + 32, b->entries);
	q_enc_fixed32(ft + 40, SST_VERSION);
	q_enc_fixed32(ft + 44, q_csum32(ft, 44));
	q_enc_fixed64(ft + 48, SST_MAGIC);
	Q_ERR(q_file_append(b->f, ft, sizeof(ft)));
	b->off += sizeof(ft);
	Q_ERR(q_file_sync(b->f));
	rc = q_file_close(b->f);
	b->f = NULL;
	if (rc)
		goto fail;
	*size = b->off;
	q_buf_free(&filt);
	builder_release(b);
	return 0;
fail:
	q_buf_free(&filt);
	sst_builder_abandon(b);
	return rc;
}

void sst_builder_abandon(sst_builder *b)
{
	if (!b)
		return;
	q_file_close(b->f);
	q_env_unlink(b->env, b->path);
	builder_release(b);
}

/* ================= table reader ================= */

/* A read-only in-memory file, so the fuzzer can open tables from a buffer. */
typedef struct memfile {
	q_file base;
	uint8_t *data;
	size_t n;
} memfile;

static int mf_pread(q_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
	memfile *m = (memfile *)f;
	if (off >= m->n) {
		*got = 0;
		return 0;
	}
	size_t k = m->n - off < n ? m->n - (size_t)off : n;
	memcpy(buf, m->data + off, k);
	*got = k;
	return 0;
}
static int mf_append(q_file *f, const void *p, size_t n) { return -EBADF; }
static int mf_sync(q_file *f) { return 0; }
static int mf_size(q_file *f, uint64_t *out)
{
	*out = ((memfile *)f)->n;
	return 0;
}
static int mf_truncate(q_file *f, uint64_t len) { return -EBADF; }
static int mf_close(q_file *f)
{
	free(((memfile *)f)->data);
	free(f);
	return 0;
}
static const struct q_file_ops memfile_ops = {
	mf_pread, mf_append, mf_sync, mf_size, mf_truncate, mf_close,
};

static int read_exact(sst_table *t, void *buf, size_t n, uint64_t off)
{
	if (t->map) {
		if (off > t->size || n > t->size - off)
			return Q_ECORRUPT;
		/* a page lost under the mapping (file truncated behind our back,
		 * disk read error) is an error here, not a SIGBUS */
		if (mapg_copy(buf, t->map + off, n))
			return Q_ECORRUPT;
		return 0;
	}
	size_t got;
	Q_RET(q_file_pread(t->f, buf, n, off, &got));
	return got == n ? 0 : Q_ECORRUPT;
}

static void report_corrupt(sst_table *t, uint64_t off, const char *what)
{
	atomic_fetch_add(&t->reads_failed, 1);
	Q_ERROR("lsm", "corruption in table %s at offset %llu: %s", t->path,
		(unsigned long long)off, what);
	if (t->on_corrupt)
		t->on_corrupt(t->owner, t);
}

/* Reads and checks the block at (off, size); returns a referenced block. */
static int read_block(sst_table *t, uint64_t off, uint64_t size, sst_block **out)
{
	if (size > SST_MAX_BLOCK || off > t->size || size + SST_BLOCK_TRAILER > t->size - off) {
		report_corrupt(t, off, "block handle out of range");
		return Q_ECORRUPT;
	}
	size_t n = (size_t)size + SST_BLOCK_TRAILER;
	/* mapped or not, the stored block is first copied out (for a mapping
	 * through mapg_copy), then checked and decoded from the copy */
	uint8_t sbuf[16384];
	uint8_t *raw = n <= sizeof(sbuf) ? sbuf : malloc(n);
	if (!raw)
		return -ENOMEM;
	int rc = read_exact(t, raw, n, off);
	if (rc == 0) {
		rc = sst_decode_block(raw, n, out);
		if (rc == Q_ECORRUPT)
			report_corrupt(t, off, "block checksum or contents");
	} else if (rc == Q_ECORRUPT) {
		report_corrupt(t, off, t->map ? "block unreadable (file shorter than mapped?)"
					      : "block past end of file");
	}
	if (raw != sbuf)
		free(raw);
	return rc;
}

/* read_block, then into the block cache if fill_cache (the cache already
 * searched by the caller). */
static int load_block(sst_table *t, uint64_t off, uint64_t size, int fill_cache, sst_block **out)
{
	Q_RET(read_block(t, off, size, out));
	if (t->cache && fill_cache)
		cache_insert(t->cache, t->number, off, *out);
	return 0;
}

static int get_block(sst_table *t, uint64_t off, uint64_t size, int fill_cache, sst_block **out)
{
	if (t->cache) {
		sst_block *b = cache_lookup(t->cache, t->number, off);
		if (b) {
			*out = b;
			return 0;
		}
	}
	return load_block(t, off, size, fill_cache, out);
}

static int decode_handle(q_slice v, uint64_t *off, uint64_t *size)
{
	q_reader r = q_reader_make(v.p, v.n);
	if (q_get_varint64(&r, off) || q_get_varint64(&r, size))
		return Q_ECORRUPT;
	return 0;
}

static int sst_load(sst_table *t)
{
	uint8_t ft[SST_FOOTER_SIZE];
	int rc;
	if (t->size < SST_FOOTER_SIZE) {
		report_corrupt(t, 0, "file shorter than a footer");
		return Q_ECORRUPT;
	}
	uint64_t fo = t->size - SST_FOOTER_SIZE;
	Q_RET(read_exact(t, ft, sizeof(ft), fo));
	if (q_dec_fixed64(ft + 48) != SST_MAGIC) {
		report_corrupt(t, fo + 48, "bad magic");
		return Q_ECORRUPT;
	}
	if (q_csum32(ft, 44) != q_dec_fixed32(ft + 44)) {
		report_corrupt(t, fo, "footer checksum mismatch");
		return Q_ECORRUPT;
	}
	if (q_dec_fixed32(ft + 40) != SST_VERSION) {
		Q_ERROR("lsm", "table %s: unknown version %u", t->path, q_dec_fixed32(ft + 40));
		return Q_EVERSION;
	}
	uint64_t foff = q_dec_fixed64(ft), fsize = q_dec_fixed64(ft + 8);
	uint64_t ioff = q_dec_fixed64(ft + 16), isize = q_dec_fixed64(ft + 24);
	t->entries = q_dec_fixed64(ft + 32);
	Q_RET(read_block(t, ioff, isize, &t->index));
	if (fsize > 0) {
		/* the filter is stored as a plain block: contents are the bits */
		if (fsize > SST_MAX_BLOCK || foff > fo || fsize + SST_BLOCK_TRAILER > fo - foff) {
			report_corrupt(t, foff, "filter handle out of range");
			return Q_ECORRUPT;
		}
		size_t n = (size_t)fsize + SST_BLOCK_TRAILER;
		/* line-aligned: a filter line is one cache line */
		void *mem = NULL;
		if (posix_memalign(&mem, 64, n))
			return -ENOMEM;
		uint8_t *raw = mem;
		rc = read_exact(t, raw, n, foff);
		if (rc == 0) {
			uint8_t type = raw[fsize];
			if (type != SST_COMP_NONE ||
			    q_csum32(raw, (size_t)fsize + 1) != q_dec_fixed32(raw + fsize + 1)) {
				report_corrupt(t, foff, "filter checksum mismatch");
				rc = Q_ECORRUPT;
			}
		}
		if (rc) {
			free(raw);
			return rc;
		}
		t->filter = raw;
		t->filter_len = (size_t)fsize;
	}
	return 0;
}

/* Takes ownership of f, or of the mapping (map, maplen) when f is NULL. */
static int sst_open_file(q_file *f, const uint8_t *map, size_t maplen, const char *path,
			 uint64_t number, blk_cache *cache, sst_table **out)
{
	sst_table *t = calloc(1, sizeof(*t));
	if (!t) {
		q_file_close(f);
		if (map)
			munmap((void *)map, maplen);
		return -ENOMEM;
	}
	t->f = f;
	t->map = map;
	t->number = number;
	t->cache = cache;
	snprintf(t->path, sizeof(t->path), "%s", path);
	int rc = 0;
	if (map)
		t->size = maplen;
	else
		rc = q_file_size(f, &t->size);
	if (rc == 0)
		rc = sst_load(t);
	if (rc) {
		sst_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* Maps path read-only; 0 with *map = NULL if mapping is not possible (the
 * caller then reads through the env). */
static int sst_map(const char *path, const uint8_t **map, size_t *len)
{
	*map = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			*map = p;
			*len = (size_t)st.st_size;
		}
	}
	close(fd);
	return 0;
}

int sst_open(q_env *env, const char *path, uint64_t number, blk_cache *cache, int use_mmap,
	     sst_table **out)
{
	if (use_mmap && env == q_env_posix() && mapg_init() == 0) {
		const uint8_t *map;
		size_t len = 0;
		Q_RET(sst_map(path, &map, &len));
		if (map)
			return sst_open_file(NULL, map, len, path, number, cache, out);
	}
	q_file *f;
	Q_RET(q_env_open(env, path, Q_OPEN_READ, &f));
	return sst_open_file(f, NULL, 0, path, number, cache, out);
}

int sst_open_mem(const uint8_t *data, size_t n, sst_table **out)
{
	memfile *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->data = malloc(n ? n : 1);
	if (!m->data) {
		free(m);
		return -ENOMEM;
	}
	memcpy(m->data, data, n);
	m->n = n;
	m->base.ops = &memfile_ops;
	return sst_open_file(&m->base, NULL, 0, "(memory)", 0, NULL, out);
}

void sst_drop_pages(sst_table *t)
{
	/* a shared read-only file mapping: only this process's page table
	 * entries go; a later read faults the pages in again from the cache */
	if (t && t->map)
		madvise((void *)t->map, (size_t)t->size, MADV_DONTNEED);
}

void sst_close(sst_table *t)
{
	if (!t)
		return;
	sst_block_unref(t->index);
	free(t->filter);
	if (t->on_corrupt)
		free(t->owner);
	q_file_close(t->f);
	if (t->map)
		munmap((void *)t->map, (size_t)t->size);
	free(t);
}

/* Pages of a block that map_resident checks at most (a larger block is
 * taken as not resident). */
#define RESIDENT_MAX_PAGES 64

/* 1 if t is mapped and every page under its bytes [off, off + n) is in the
 * page cache (mincore: copying them out takes no disk read), else 0 (also
 * for a range outside the file, left to read_block to report). */
static int map_resident(const sst_table *t, uint64_t off, uint64_t n)
{
	if (!t->map || n == 0 || off > t->size || n > t->size - off)
		return 0;
	long page = sysconf(_SC_PAGESIZE); /* glibc: no system call */
	if (page <= 0)
		return 0;
	uintptr_t a = (uintptr_t)(t->map + off) & ~(uintptr_t)(page - 1);
	uintptr_t e = (uintptr_t)(t->map + off + n);
	size_t pages = (size_t)((e - a + (uintptr_t)page - 1) / (uintptr_t)page);
	unsigned char vec[RESIDENT_MAX_PAGES];
	if (pages > RESIDENT_MAX_PAGES || mincore((void *)a, (size_t)(e - a), vec))
		return 0;
	for (size_t i = 0; i < pages; i++)
		if (!(vec[i] & 1))
			return 0;
	return 1;
}

/* A data block for a lookup: with cached_only, from the block cache, or
 * with page_cache from the mapping when its pages are resident (and then
 * cached), or -EAGAIN (nothing read, nothing inserted). */
static int lookup_block(sst_table *t, uint64_t off, uint64_t size, int cached_only,
			int page_cache, sst_block **out)
{
	if (!cached_only)
		return get_block(t, off, size, 1, out);
	sst_block *b = t->cache ? cache_lookup(t->cache, t->number, off) : NULL;
	if (b) {
		*out = b;
		return 0;
	}
	/* load_block, not get_block: the cache was just searched (a second
	 * search would count a second miss) */
	if (page_cache && size <= SST_MAX_BLOCK && map_resident(t, off, size + SST_BLOCK_TRAILER))
		return load_block(t, off, size, 1, out);
	return -EAGAIN;
}

static int table_get(sst_table *t, q_slice ukey, uint64_t hash, q_slice seek_ikey, int *kind,
		     q_buf *out, int cached_only, int page_cache)
{
	if (t->filter && !bloom_may_match(t->filter, t->filter_len, hash))
		return 0;
	int rc = 0;
	blk_iter ii, bi;
	sst_block *b = NULL;
	bi_init(&ii, t->index, 1);
	bi_seek(&ii.base, seek_ikey);
	if (!ii.valid) {
		rc = ii.status;
		if (rc)
			report_corrupt(t, 0, "index block entries");
		bi_destroy(&ii);
		return rc;
	}
	uint64_t off, size;
	rc = decode_handle(ii.val, &off, &size);
	bi_destroy(&ii);
	if (rc) {
		report_corrupt(t, 0, "index block handle");
		return Q_ECORRUPT;
	}
	Q_RET(lookup_block(t, off, size, cached_only, page_cache, &b));
	bi_init(&bi, b, 1);
	sst_block_unref(b); /* the iterator holds its own reference */
	bi_seek(&bi.base, seek_ikey);
	if (!bi.valid) {
		rc = bi.status;
		if (rc)
			report_corrupt(t, off, "data block entries");
		goto out;
	}
	q_slice k = bi_keyslice(&bi);
	q_slice uk = ikey_user(k);
	if (ukey_cmp(uk.p, uk.n, ukey.p, ukey.n) != 0)
		goto out;
	*kind = ikey_kind(k);
	if (*kind != KIND_PUT && *kind != KIND_DEL && *kind != KIND_BLOB) {
		report_corrupt(t, off, "unknown entry kind");
		rc = Q_ECORRUPT;
		goto out;
	}
	if ((*kind == KIND_PUT || *kind == KIND_BLOB) && out) {
		q_buf_reset(out);
		if ((rc = q_buf_append(out, bi.val.p, bi.val.n)))
			goto out;
	}
	rc = 1;
out:
	bi_destroy(&bi);
	return rc;
}

int sst_get(sst_table *t, q_slice ukey, uint64_t hash, q_slice seek_ikey, int *kind, q_buf *out)
{
	return table_get(t, ukey, hash, seek_ikey, kind, out, 0, 0);
}

int sst_get_cached(sst_table *t, q_slice ukey, uint64_t hash, q_slice seek_ikey, int *kind,
		   q_buf *out, int page_cache)
{
	return table_get(t, ukey, hash, seek_ikey, kind, out, 1, page_cache);
}

/* ---- two-level table iterator ---- */

typedef struct tbl_iter {
	lsm_it base;
	sst_table *t;
	lsm_it *index;
	lsm_it *data;
	uint64_t data_off;
	int fill_cache;
	int status;
} tbl_iter;

static void ti_set_status(tbl_iter *ti, int rc)
{
	if (rc && !ti->status)
		ti->status = rc;
}

/* Opens the data block the index iterator points at (or clears data). */
static void ti_load(tbl_iter *ti)
{
	it_free(ti->data);
	ti->data = NULL;
	if (!it_valid(ti->index)) {
		int rc = it_status(ti->index);
		if (rc) {
			report_corrupt(ti->t, 0, "index block entries");
			ti_set_status(ti, rc);
		}
		return;
	}
	uint64_t off, size;
	if (decode_handle(it_value(ti->index), &off, &size)) {
		report_corrupt(ti->t, 0, "index block handle");
		ti_set_status(ti, Q_ECORRUPT);
		return;
	}
	sst_block *b;
	int rc = get_block(ti->t, off, size, ti->fill_cache, &b);
	if (rc) {
		ti_set_status(ti, rc);
		return;
	}
	ti->data = sst_block_iter(b, 1);
	ti->data_off = off;
	sst_block_unref(b);
	if (!ti->data)
		ti_set_status(ti, -ENOMEM);
}

/* Moves forward over empty or exhausted blocks. */
static void ti_skip(tbl_iter *ti)
{
	while (!ti->status && (!ti->data || !it_valid(ti->data))) {
		if (ti->data) {
			int rc = it_status(ti->data);
			if (rc) {
				report_corrupt(ti->t, ti->data_off, "data block entries");
				ti_set_status(ti, rc);
				return;
			}
		}
		if (!it_valid(ti->index)) {
			ti_load(ti); /* records index status, clears data */
			return;
		}
		it_next(ti->index);
		ti_load(ti);
		if (ti->data)
			it_seek_first(ti->data);
	}
}

static int ti_valid(lsm_it *it)
{
	tbl_iter *ti = (tbl_iter *)it;
	return !ti->status && ti->data && it_valid(ti->data);
}
static void ti_seek_first(lsm_it *it)
{
	tbl_iter *ti = (tbl_iter *)it;
	if (ti->status)
		return;
	it_seek_first(ti->index);
	ti_load(ti);
	if (ti->data)
		it_seek_first(ti->data);
	ti_skip(ti);
}
static void ti_seek(lsm_it *it, q_slice k)
{
	tbl_iter *ti = (tbl_iter *)it;
	if (ti->status)
		return;
	it_seek(ti->index, k);
	ti_load(ti);
	if (ti->data)
		it_seek(ti->data, k);
	ti_skip(ti);
}
static void ti_next(lsm_it *it)
{
	tbl_iter *ti = (tbl_iter *)it;
	if (!ti_valid(it))
		return;
	it_next(ti->data);
	ti_skip(ti);
}
static q_slice ti_key(lsm_it *it) { return it_key(((tbl_iter *)it)->data); }
static q_slice ti_value(lsm_it *it) { return it_value(((tbl_iter *)it)->data); }
static int ti_status(lsm_it *it) { return ((tbl_iter *)it)->status; }
static void ti_free(lsm_it *it)
{
	tbl_iter *ti = (tbl_iter *)it;
	it_free(ti->data);
	it_free(ti->index);
	free(ti);
}

static const struct lsm_it_ops tbl_iter_ops = {
	ti_valid, ti_seek_first, ti_seek, ti_next, ti_key, ti_value, ti_status, ti_free,
};

lsm_it *sst_iter_new(sst_table *t, int fill_cache)
{
	tbl_iter *ti = calloc(1, sizeof(*ti));
	if (!ti)
		return NULL;
	ti->base.ops = &tbl_iter_ops;
	ti->t = t;
	ti->fill_cache = fill_cache;
	ti->index = sst_block_iter(t->index, 1);
	if (!ti->index) {
		free(ti);
		return NULL;
	}
	return &ti->base;
}

int sst_verify(sst_table *t)
{
	lsm_it *it = sst_iter_new(t, 0);
	if (!it)
		return -ENOMEM;
	uint64_t n = 0;
	for (it_seek_first(it); it_valid(it); it_next(it))
		n++;
	int rc = it_status(it);
	it_free(it);
	if (rc == 0 && n != t->entries) {
		report_corrupt(t, 0, "entry count differs from footer");
		rc = Q_ECORRUPT;
	}
	return rc;
}
