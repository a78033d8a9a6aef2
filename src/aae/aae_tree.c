/*
 * aae_tree.c - Merkle tree of one key range (see aae_tree.h, docs/aae.md).
 *
 * Layout: hash[l] is an array of 16^l uint64 for l = 0..depth (hash[depth]
 * are the leaves). dirty[l] (l < depth) is a bitmap of inner nodes whose
 * hash is out of date. One mutex guards everything.
 */
#include "aae/aae_tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

struct aae_tree {
	pthread_mutex_t mu;
	unsigned depth;
	uint64_t range_start, range_end;
	int64_t keys;
	int ready;
	uint64_t *hash[AAE_DEPTH_MAX + 1];
	uint8_t *dirty[AAE_DEPTH_MAX];
	/* rebuild state: fresh leaves, concurrent-update deltas */
	uint64_t *rb_leaf;
	uint64_t *rb_delta;
	int64_t rb_keys, rb_delta_keys;
};

/* ---- pure helpers ---------------------------------------------------------- */

uint32_t aae_bucket_of(q_slice key, unsigned depth)
{
	if (depth < AAE_DEPTH_MIN || depth > AAE_DEPTH_MAX)
		return 0;
	uint64_t h = q_hash64(key.p ? key.p : (const uint8_t *)"", key.n, AAE_BUCKET_SEED);
	return (uint32_t)(h >> (64 - AAE_FANOUT_BITS * depth));
}

uint64_t aae_pair_hash(q_slice key, uint64_t digest)
{
	return q_hash64(key.p ? key.p : (const uint8_t *)"", key.n, AAE_PAIR_SEED ^ digest);
}

static uint64_t inner_hash(const uint64_t *children, unsigned level)
{
	uint8_t b[AAE_FANOUT * 8];
	for (unsigned i = 0; i < AAE_FANOUT; i++)
		q_enc_fixed64(b + 8 * i, children[i]);
	return q_hash64(b, sizeof b, AAE_NODE_SEED ^ (uint64_t)level);
}

/* ---- lifetime ---------------------------------------------------------------- */

static void tree_free_arrays(aae_tree *t)
{
	for (unsigned l = 0; l <= AAE_DEPTH_MAX; l++) {
		free(t->hash[l]);
		t->hash[l] = NULL;
	}
	for (unsigned l = 0; l < AAE_DEPTH_MAX; l++) {
		free(t->dirty[l]);
		t->dirty[l] = NULL;
	}
	free(t->rb_leaf);
	free(t->rb_delta);
	t->rb_leaf = t->rb_delta = NULL;
}

/* Recomputes every inner node from the leaves (all clean afterwards). */
static void recompute_all(aae_tree *t)
{
	for (unsigned l = t->depth; l-- > 0;) {
		uint32_t w = aae_level_width(l);
		for (uint32_t i = 0; i < w; i++)
			t->hash[l][i] = inner_hash(t->hash[l + 1] + (size_t)i * AAE_FANOUT, l);
		memset(t->dirty[l], 0, (w + 7) / 8);
	}
}

int aae_tree_new(unsigned depth, uint64_t range_start, uint64_t range_end, aae_tree **out)
{
	*out = NULL;
	if (depth < AAE_DEPTH_MIN || depth > AAE_DEPTH_MAX)
		return -EINVAL;
	aae_tree *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->depth = depth;
	t->range_start = range_start;
	t->range_end = range_end;
	for (unsigned l = 0; l <= depth; l++) {
		t->hash[l] = calloc(aae_level_width(l), sizeof(uint64_t));
		if (!t->hash[l])
			goto fail;
		if (l < depth) {
			t->dirty[l] = calloc((aae_level_width(l) + 7) / 8, 1);
			if (!t->dirty[l])
				goto fail;
		}
	}
	if (pthread_mutex_init(&t->mu, NULL))
		goto fail;
	recompute_all(t);
	*out = t;
	return 0;
fail:
	tree_free_arrays(t);
	free(t);
	return -ENOMEM;
}

void aae_tree_free(aae_tree *t)
{
	if (!t)
		return;
	tree_free_arrays(t);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

unsigned aae_tree_depth(const aae_tree *t)
{
	return t->depth; /* immutable */
}

uint32_t aae_tree_buckets(const aae_tree *t)
{
	return aae_level_width(t->depth);
}

void aae_tree_range(const aae_tree *t, uint64_t *start, uint64_t *end)
{
	*start = t->range_start; /* immutable */
	*end = t->range_end;
}

int64_t aae_tree_keys(aae_tree *t)
{
	pthread_mutex_lock(&t->mu);
	int64_t k = t->keys;
	pthread_mutex_unlock(&t->mu);
	return k;
}

int aae_tree_ready(aae_tree *t)
{
	pthread_mutex_lock(&t->mu);
	int r = t->ready;
	pthread_mutex_unlock(&t->mu);
	return r;
}

void aae_tree_set_ready(aae_tree *t, int ready)
{
	pthread_mutex_lock(&t->mu);
	t->ready = ready != 0;
	pthread_mutex_unlock(&t->mu);
}

/* ---- updates ------------------------------------------------------------------ */

static void mark_dirty(aae_tree *t, uint32_t bucket)
{
	uint32_t i = bucket;
	for (unsigned l = t->depth; l-- > 0;) {
		i >>= AAE_FANOUT_BITS;
		t->dirty[l][i / 8] |= (uint8_t)(1u << (i % 8));
	}
}

static void leaf_add(aae_tree *t, uint32_t b, uint64_t delta, int64_t dkeys)
{
	if (delta == 0 && dkeys == 0)
		return;
	t->hash[t->depth][b] += delta;
	t->keys += dkeys;
	mark_dirty(t, b);
	if (t->rb_delta) {
		t->rb_delta[b] += delta;
		t->rb_delta_keys += dkeys;
	}
}

int aae_tree_update(aae_tree *t, q_slice key, const uint64_t *old_digest,
		    const uint64_t *new_digest)
{
	if (key.n && !key.p)
		return -EINVAL;
	if (!old_digest && !new_digest)
		return 0;
	uint32_t b = aae_bucket_of(key, t->depth);
	uint64_t delta = 0;
	int64_t dkeys = 0;
	if (old_digest) {
		delta -= aae_pair_hash(key, *old_digest);
		dkeys--;
	}
	if (new_digest) {
		delta += aae_pair_hash(key, *new_digest);
		dkeys++;
	}
	pthread_mutex_lock(&t->mu);
	leaf_add(t, b, delta, dkeys);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

void aae_tree_clear(aae_tree *t)
{
	pthread_mutex_lock(&t->mu);
	memset(t->hash[t->depth], 0, (size_t)aae_level_width(t->depth) * sizeof(uint64_t));
	t->keys = 0;
	recompute_all(t);
	pthread_mutex_unlock(&t->mu);
}

int aae_tree_fix_leaf(aae_tree *t, uint32_t bucket, uint64_t expected, uint64_t hash)
{
	if (bucket >= aae_level_width(t->depth))
		return -EINVAL;
	pthread_mutex_lock(&t->mu);
	int fixed = t->hash[t->depth][bucket] == expected;
	if (fixed) {
		/* not through leaf_add: a rebuild's scan already sees the store */
		t->hash[t->depth][bucket] = hash;
		mark_dirty(t, bucket);
	}
	pthread_mutex_unlock(&t->mu);
	return fixed;
}

/* ---- reading hashes ------------------------------------------------------------ */

static int is_dirty(const aae_tree *t, unsigned l, uint32_t i)
{
	return (t->dirty[l][i / 8] >> (i % 8)) & 1;
}

/* Makes node (l, i) clean, recomputing dirty descendants first. */
static void clean_node(aae_tree *t, unsigned l, uint32_t i)
{
	if (l >= t->depth || !is_dirty(t, l, i))
		return;
	uint32_t first = i * AAE_FANOUT;
	for (uint32_t c = 0; c < AAE_FANOUT; c++)
		clean_node(t, l + 1, first + c);
	t->hash[l][i] = inner_hash(t->hash[l + 1] + first, l);
	t->dirty[l][i / 8] &= (uint8_t)~(1u << (i % 8));
}

uint64_t aae_tree_root(aae_tree *t)
{
	pthread_mutex_lock(&t->mu);
	clean_node(t, 0, 0);
	uint64_t h = t->hash[0][0];
	pthread_mutex_unlock(&t->mu);
	return h;
}

int aae_tree_node(aae_tree *t, unsigned level, uint32_t index, uint64_t *out)
{
	if (level > t->depth || index >= aae_level_width(level))
		return -EINVAL;
	pthread_mutex_lock(&t->mu);
	clean_node(t, level, index);
	*out = t->hash[level][index];
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int aae_tree_children(aae_tree *t, unsigned level, uint32_t index, uint64_t out[AAE_FANOUT])
{
	if (level >= t->depth || index >= aae_level_width(level))
		return -EINVAL;
	pthread_mutex_lock(&t->mu);
	uint32_t first = index * AAE_FANOUT;
	for (uint32_t c = 0; c < AAE_FANOUT; c++) {
		clean_node(t, level + 1, first + c);
		out[c] = t->hash[level + 1][first + c];
	}
	pthread_mutex_unlock(&t->mu);
	return 0;
}

/* ---- rebuild ---------------------------------------------------------------- */

int aae_tree_rebuild_begin(aae_tree *t)
{
	size_t n = aae_level_width(t->depth);
	uint64_t *leaf = calloc(n, sizeof(uint64_t));
	uint64_t *delta = calloc(n, sizeof(uint64_t));
	if (!leaf || !delta) {
		free(leaf);
		free(delta);
		return -ENOMEM;
	}
	pthread_mutex_lock(&t->mu);
	if (t->rb_leaf) {
		pthread_mutex_unlock(&t->mu);
		free(leaf);
		free(delta);
		return -EBUSY;
	}
	t->rb_leaf = leaf;
	t->rb_delta = delta;
	t->rb_keys = t->rb_delta_keys = 0;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int aae_tree_rebuild_add(aae_tree *t, q_slice key, uint64_t digest)
{
	if (key.n && !key.p)
		return -EINVAL;
	uint32_t b = aae_bucket_of(key, t->depth);
	uint64_t h = aae_pair_hash(key, digest);
	pthread_mutex_lock(&t->mu);
	if (!t->rb_leaf) {
		pthread_mutex_unlock(&t->mu);
		return -EINVAL;
	}
	t->rb_leaf[b] += h;
	t->rb_keys++;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int aae_tree_rebuild_end(aae_tree *t, int ok)
{
	pthread_mutex_lock(&t->mu);
	if (!t->rb_leaf) {
		pthread_mutex_unlock(&t->mu);
		return -EINVAL;
	}
	uint64_t *leaf = t->rb_leaf, *delta = t->rb_delta;
	t->rb_leaf = t->rb_delta = NULL;
	if (ok) {
		uint32_t n = aae_level_width(t->depth);
		for (uint32_t b = 0; b < n; b++)
			leaf[b] += delta[b];
		free(t->hash[t->depth]);
		t->hash[t->depth] = leaf;
		leaf = NULL;
		t->keys = t->rb_keys + t->rb_delta_keys;
		recompute_all(t);
		t->ready = 1;
	}
	pthread_mutex_unlock(&t->mu);
	free(leaf);
	free(delta);
	return 0;
}

int aae_tree_rebuilding(aae_tree *t)
{
	pthread_mutex_lock(&t->mu);
	int r = t->rb_leaf != NULL;
	pthread_mutex_unlock(&t->mu);
	return r;
}

int aae_tree_rebuild(aae_tree *t, aae_pair_next_fn next, void *ctx)
{
	Q_RET(aae_tree_rebuild_begin(t));
	int rc;
	for (;;) {
		q_slice k;
		uint64_t d;
		rc = next(ctx, &k, &d);
		if (rc <= 0)
			break;
		rc = aae_tree_rebuild_add(t, k, d);
		if (rc < 0)
			break;
	}
	aae_tree_rebuild_end(t, rc == 0);
	return rc;
}

/* ---- persistence ---------------------------------------------------------- */

int aae_tree_encode(aae_tree *t, uint64_t stamp, q_buf *out)
{
	size_t start = out->len;
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	const uint64_t *leaf = t->hash[t->depth];
	uint32_t n = aae_level_width(t->depth);
	uint64_t m = 0;
	for (uint32_t b = 0; b < n; b++)
		m += leaf[b] != 0;
	uint8_t hdr[AAE_TREE_HDR_LEN];
	memcpy(hdr, AAE_TREE_MAGIC, 8);
	q_enc_fixed32(hdr + 8, AAE_TREE_VERSION);
	hdr[12] = AAE_FANOUT_BITS;
	hdr[13] = (uint8_t)t->depth;
	q_enc_fixed16(hdr + 14, 0);
	q_enc_fixed64(hdr + 16, t->range_start);
	q_enc_fixed64(hdr + 24, t->range_end);
	q_enc_fixed64(hdr + 32, stamp);
	q_enc_fixed64(hdr + 40, (uint64_t)(t->keys < 0 ? 0 : t->keys));
	q_enc_fixed64(hdr + 48, m);
	Q_ERR(q_buf_append(out, hdr, sizeof hdr));
	Q_ERR(q_buf_reserve(out, (size_t)m * (8 + Q_VARINT32_MAX) + 4));
	uint32_t prev = 0;
	for (uint32_t b = 0; b < n; b++) {
		if (!leaf[b])
			continue;
		/* gap = index - previous index (first: index + 1), always >= 1 */
		Q_ERR(q_put_varint(out, (uint64_t)b + 1 - prev));
		Q_ERR(q_put_fixed64(out, leaf[b]));
		prev = b + 1;
	}
	Q_ERR(q_put_fixed32(out, q_csum32(out->p + start, out->len - start)));
	pthread_mutex_unlock(&t->mu);
	return 0;
fail:
	pthread_mutex_unlock(&t->mu);
	out->len = start;
	return rc;
}

int aae_tree_decode(const uint8_t *p, size_t n, unsigned depth, uint64_t range_start,
		    uint64_t range_end, uint64_t stamp, aae_tree **out)
{
	*out = NULL;
	if (n < AAE_TREE_HDR_LEN + 4)
		return Q_ETRUNC;
	if (memcmp(p, AAE_TREE_MAGIC, 8))
		return Q_ECORRUPT;
	if (q_dec_fixed32(p + 8) != AAE_TREE_VERSION)
		return Q_EVERSION;
	if (q_csum32(p, n - 4) != q_dec_fixed32(p + n - 4))
		return Q_ECORRUPT;
	if (p[12] != AAE_FANOUT_BITS || p[13] < AAE_DEPTH_MIN || p[13] > AAE_DEPTH_MAX ||
	    q_dec_fixed16(p + 14) != 0)
		return Q_ECORRUPT;
	if (p[13] != depth || q_dec_fixed64(p + 16) != range_start ||
	    q_dec_fixed64(p + 24) != range_end || q_dec_fixed64(p + 32) != stamp)
		return -ESTALE;
	uint64_t keys = q_dec_fixed64(p + 40);
	uint64_t m = q_dec_fixed64(p + 48);
	uint32_t width = aae_level_width(depth);
	if (m > width || keys > (uint64_t)INT64_MAX)
		return Q_ECORRUPT;
	aae_tree *t;
	Q_RET(aae_tree_new(depth, range_start, range_end, &t));
	q_reader r = q_reader_make(p + AAE_TREE_HDR_LEN, n - 4 - AAE_TREE_HDR_LEN);
	uint64_t prev = 0;
	int rc = 0;
	for (uint64_t i = 0; i < m; i++) {
		uint64_t gap, h;
		Q_ERR(q_get_varint_canon(&r, &gap)); /* one value, one encoding */
		Q_ERR(q_get_fixed64(&r, &h));
		if (gap == 0 || gap > width || prev + gap > width || h == 0) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		prev += gap;
		t->hash[depth][prev - 1] = h;
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_ECORRUPT;
		goto fail;
	}
	t->keys = (int64_t)keys;
	recompute_all(t);
	t->ready = 1;
	*out = t;
	return 0;
fail:
	aae_tree_free(t);
	return rc == Q_ETRUNC ? Q_ECORRUPT : rc;
}

int aae_tree_save(aae_tree *t, q_env *env, const char *path, uint64_t stamp)
{
	q_buf b = Q_BUF_INIT;
	int rc;
	Q_ERR(aae_tree_encode(t, stamp, &b));
	rc = q_env_write_atomic(env, path, b.p, b.len);
fail:
	q_buf_free(&b);
	return rc;
}

int aae_tree_load(q_env *env, const char *path, unsigned depth, uint64_t range_start,
		  uint64_t range_end, uint64_t stamp, aae_tree **out)
{
	uint8_t *data = NULL;
	size_t n = 0;
	*out = NULL;
	Q_RET(q_env_read_all(env, path, &data, &n));
	int rc = aae_tree_decode(data, n, depth, range_start, range_end, stamp, out);
	free(data);
	return rc;
}
