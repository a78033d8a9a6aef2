/*
 * qfs_gc.c - move records, the chunk id set and chunk key parsing for chunk
 * collection (qfs_gc.h).
 *
 * Invariants: the move record encoder writes one canonical form, the decoder
 * checks the magic, version, count bound, exact length and checksum before
 * handing out anything. The id set keeps its load under 1/2 (linear probing
 * over the first 8 bytes of the id, which are already a hash).
 * Threading: none.
 */
#include "fuse/qfs_gc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

int qfs_move_encode(int64_t wall_ns, const uint8_t *ids, size_t n, q_buf *out)
{
	size_t start = out->len;
	int rc;
	if (n > QFS_CHUNKS_MAX || wall_ns < 0)
		return -EINVAL;
	Q_ERR(q_put_fixed16(out, QFS_MOVE_MAGIC));
	Q_ERR(q_buf_append_byte(out, QFS_MOVE_VERSION));
	Q_ERR(q_put_fixed64(out, (uint64_t)wall_ns));
	Q_ERR(q_put_varint(out, n));
	Q_ERR(q_buf_append(out, ids, n * QFS_CHUNK_ID_LEN));
	Q_ERR(q_put_fixed32(out, q_csum32(out->p + start, out->len - start)));
	return 0;
fail:
	out->len = start;
	return rc;
}

int qfs_move_decode(const uint8_t *p, size_t len, int64_t *wall_ns, const uint8_t **ids,
		    size_t *n)
{
	if (len < 4)
		return Q_ETRUNC;
	q_reader r = q_reader_make(p, len - 4);
	uint16_t magic;
	uint8_t ver;
	uint64_t w, cnt;
	q_slice body;
	Q_RET(q_get_fixed16(&r, &magic));
	if (magic != QFS_MOVE_MAGIC)
		return Q_ECORRUPT;
	Q_RET(q_get_u8(&r, &ver));
	if (ver != QFS_MOVE_VERSION)
		return Q_EVERSION;
	Q_RET(q_get_fixed64(&r, &w));
	Q_RET(q_get_varint_canon(&r, &cnt));
	if (cnt > QFS_CHUNKS_MAX)
		return Q_ETOOBIG;
	if (w > INT64_MAX)
		return Q_ECORRUPT;
	Q_RET(q_get_bytes(&r, (size_t)cnt * QFS_CHUNK_ID_LEN, &body));
	if (q_reader_left(&r))
		return Q_ECORRUPT;
	if (q_csum32(p, len - 4) != q_dec_fixed32(p + len - 4))
		return Q_ECORRUPT;
	*wall_ns = (int64_t)w;
	*ids = body.p;
	*n = (size_t)cnt;
	return 0;
}

void qfs_move_key(int64_t wall_ns, uint64_t rnd, char *buf)
{
	snprintf(buf, QFS_MOVE_KEY_LEN + 1, "%s%016llx%016llx", QFS_KEY_MOVES,
		 (unsigned long long)wall_ns, (unsigned long long)rnd);
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int qfs_chunk_key_parse(q_slice key, uint8_t id[QFS_CHUNK_ID_LEN])
{
	if (key.n != QFS_CHUNK_KEY_LEN || memcmp(key.p, QFS_KEY_CHUNK, 2) != 0)
		return -EINVAL;
	for (size_t i = 0; i < QFS_CHUNK_ID_LEN; i++) {
		int hi = hexval(key.p[2 + 2 * i]), lo = hexval(key.p[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void qfs_idset_init(qfs_idset *s)
{
	memset(s, 0, sizeof(*s));
}

void qfs_idset_free(qfs_idset *s)
{
	free(s->slots);
	free(s->used);
	memset(s, 0, sizeof(*s));
}

static size_t slot_of(const uint8_t *id, size_t cap)
{
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	h ^= h >> 29;
	h *= 0x9e3779b97f4a7c15ull;
	return (size_t)(h & (cap - 1));
}

static size_t probe(const qfs_idset *s, const uint8_t *id)
{
	size_t i = slot_of(id, s->cap);
	while (s->used[i] && memcmp(s->slots + i * QFS_CHUNK_ID_LEN, id, QFS_CHUNK_ID_LEN) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int grow(qfs_idset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024;
	qfs_idset t = {calloc(ncap, QFS_CHUNK_ID_LEN), calloc(ncap, 1), ncap, 0};
	if (!t.slots || !t.used) {
		free(t.slots);
		free(t.used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->used[i])
			continue;
		size_t j = probe(&t, s->slots + i * QFS_CHUNK_ID_LEN);
		memcpy(t.slots + j * QFS_CHUNK_ID_LEN, s->slots + i * QFS_CHUNK_ID_LEN,
		       QFS_CHUNK_ID_LEN);
		t.used[j] = 1;
		t.n++;
	}
	qfs_idset_free(s);
	*s = t;
	return 0;
}

int qfs_idset_add(qfs_idset *s, const uint8_t id[QFS_CHUNK_ID_LEN])
{
	if ((s->n + 1) * 2 > s->cap)
		Q_RET(grow(s));
	size_t i = probe(s, id);
	if (s->used[i])
		return 0;
	memcpy(s->slots + i * QFS_CHUNK_ID_LEN, id, QFS_CHUNK_ID_LEN);
	s->used[i] = 1;
	s->n++;
	return 1;
}

int qfs_idset_has(const qfs_idset *s, const uint8_t id[QFS_CHUNK_ID_LEN])
{
	if (!s->cap)
		return 0;
	return s->used[probe(s, id)];
}
