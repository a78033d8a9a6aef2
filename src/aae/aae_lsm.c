/*
 * aae_lsm.c - bucket index, keysrc and rebuilds over the storage engine
 * (see aae_lsm.h).
 */
#include "aae/aae_lsm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "object/obj.h"
#include "ring/ring.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"
#include "util/qtime.h"

static uint32_t hash_prefix(q_slice key)
{
	uint64_t h = q_hash64(key.p ? key.p : (const uint8_t *)"", key.n, AAE_BUCKET_SEED);
	return (uint32_t)(h >> 32);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int aae_lsm_index_key(q_slice key, q_buf *out)
{
	uint8_t hdr[AAE_LSM_INDEX_HDR] = {LSM_KS_META, AAE_LSM_INDEX_TAG};
	put_be32(hdr + 2, hash_prefix(key));
	size_t start = out->len;
	int rc;
	Q_ERR(q_buf_append(out, hdr, sizeof hdr));
	Q_ERR(q_buf_append(out, key.p, key.n));
	return 0;
fail:
	out->len = start;
	return rc;
}

int aae_lsm_index_batch(lsm_batch *b, q_slice key, const uint64_t *digest)
{
	q_buf k = Q_BUF_INIT;
	int rc;
	Q_ERR(aae_lsm_index_key(key, &k));
	if (digest) {
		uint8_t v[8];
		q_enc_fixed64(v, *digest);
		rc = lsm_batch_put(b, q_buf_slice(&k), q_slice_make(v, sizeof v));
	} else {
		rc = lsm_batch_delete(b, q_buf_slice(&k));
	}
fail:
	q_buf_free(&k);
	return rc;
}

/* ---- keysrc ------------------------------------------------------------------ */

static int index_list(void *ctx, uint64_t range_start, uint64_t range_end, unsigned depth,
		      uint32_t bucket, aae_emit_fn emit, void *ectx)
{
	lsm_db *db = ctx;
	if (depth < AAE_DEPTH_MIN || depth > AAE_DEPTH_MAX || bucket >= aae_level_width(depth))
		return -EINVAL;
	unsigned shift = 32 - AAE_FANOUT_BITS * depth;
	uint32_t first = bucket << shift;
	uint8_t seek[AAE_LSM_INDEX_HDR] = {LSM_KS_META, AAE_LSM_INDEX_TAG};
	put_be32(seek + 2, first);
	ring_range rr = {range_start, range_end};
	lsm_iter *it;
	Q_RET(lsm_iter_new(db, &it));
	int rc = 0;
	for (lsm_iter_seek(it, q_slice_make(seek, sizeof seek)); lsm_iter_valid(it);
	     lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it), v = lsm_iter_value(it);
		if (k.n < AAE_LSM_INDEX_HDR || k.p[0] != LSM_KS_META || k.p[1] != AAE_LSM_INDEX_TAG)
			break;
		if ((get_be32(k.p + 2) >> shift) != bucket)
			break;
		q_slice key = q_slice_make(k.p + AAE_LSM_INDEX_HDR, k.n - AAE_LSM_INDEX_HDR);
		if (v.n != 8) {
			rc = Q_ECORRUPT; /* an index value is always a fixed64 */
			break;
		}
		if (!ring_range_contains(rr, ring_key_hash(key.p, key.n)))
			continue;
		rc = emit(ectx, key, q_dec_fixed64(v.p));
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = lsm_iter_status(it);
	lsm_iter_free(it);
	return rc;
}

void aae_lsm_keysrc(aae_keysrc *src, lsm_db *db)
{
	src->list = index_list;
	src->ctx = db;
}

/* ---- rebuild ----------------------------------------------------------------- */

static void pace(aae_rate *rl, uint64_t bytes)
{
	if (!rl)
		return;
	uint64_t wait = aae_rate_reserve(rl, q_mono_ns(), bytes);
	if (wait) {
		struct timespec ts = {(time_t)(wait / 1000000000ULL), (long)(wait % 1000000000ULL)};
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
}

int aae_lsm_rebuild(lsm_db *db, aae_tree *const *trees, size_t n, aae_lsm_source from,
		    aae_rate *rl, aae_lsm_rebuild_stats *st)
{
	aae_lsm_rebuild_stats local = {0};
	ring_range *rr = NULL;
	lsm_iter *it = NULL;
	size_t begun = 0;
	int rc = 0;
	if (!st)
		st = &local;
	memset(st, 0, sizeof *st);
	if (n == 0)
		return 0;
	if (!trees || (from != AAE_LSM_FROM_INDEX && from != AAE_LSM_FROM_DATA))
		return -EINVAL;
	rr = calloc(n, sizeof *rr);
	if (!rr)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		aae_tree_range(trees[i], &rr[i].start, &rr[i].end);
	for (; begun < n; begun++)
		Q_ERR(aae_tree_rebuild_begin(trees[begun]));
	Q_ERR(lsm_iter_new(db, &it));
	uint8_t first[2] = {from == AAE_LSM_FROM_DATA ? LSM_KS_DATA : LSM_KS_META,
			    AAE_LSM_INDEX_TAG};
	lsm_iter_seek(it, q_slice_make(first, from == AAE_LSM_FROM_DATA ? 1 : 2));
	uint64_t unpaced = 0;
	for (; lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it), v = lsm_iter_value(it);
		q_slice key;
		uint64_t digest;
		if (from == AAE_LSM_FROM_DATA) {
			if (k.n < 1 || k.p[0] != LSM_KS_DATA)
				break;
			key = q_slice_make(k.p + 1, k.n - 1);
			obj_set *s;
			if (obj_set_decode(v.p, v.n, &s) < 0) {
				st->bad_values++;
				continue;
			}
			digest = obj_set_digest(s);
			obj_set_free(s);
		} else {
			if (k.n < AAE_LSM_INDEX_HDR || k.p[0] != LSM_KS_META ||
			    k.p[1] != AAE_LSM_INDEX_TAG)
				break;
			if (v.n != 8) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			key = q_slice_make(k.p + AAE_LSM_INDEX_HDR, k.n - AAE_LSM_INDEX_HDR);
			digest = q_dec_fixed64(v.p);
		}
		st->keys_scanned++;
		st->bytes_read += k.n + v.n;
		unpaced += k.n + v.n;
		if (unpaced >= 64 * 1024) {
			pace(rl, unpaced);
			unpaced = 0;
		}
		uint64_t h = ring_key_hash(key.p, key.n);
		for (size_t i = 0; i < n; i++) {
			if (!ring_range_contains(rr[i], h))
				continue;
			Q_ERR(aae_tree_rebuild_add(trees[i], key, digest));
			st->keys_added++;
		}
	}
	Q_ERR(lsm_iter_status(it));
	pace(rl, unpaced);
fail:
	lsm_iter_free(it);
	for (size_t i = 0; i < begun; i++)
		aae_tree_rebuild_end(trees[i], rc == 0);
	free(rr);
	return rc;
}
