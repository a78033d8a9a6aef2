/*
 * qfs_obj.c - encoding, decoding and mutation of filesystem objects (see
 * qfs_obj.h for the model and docs/filesystem.md for the byte layout).
 *
 * The decoder validates everything the rest of the filesystem relies on
 * (limits, sortedness, type/mode agreement, body/size agreement, checksum),
 * so code above it never sees an inconsistent object.
 */
#include "fuse/qfs_obj.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

/* ------------------------------------------------------------------ */
/* Lifetime                                                             */

void qfs_obj_init(qfs_obj *o)
{
	memset(o, 0, sizeof(*o));
}

static void dirent_free(qfs_dirent *e)
{
	free(e->name);
	free(e->dots);
	memset(e, 0, sizeof(*e));
}

void qfs_obj_free(qfs_obj *o)
{
	for (size_t i = 0; i < o->nxattr; i++) {
		free(o->xattr[i].name);
		free(o->xattr[i].value);
	}
	free(o->xattr);
	free(o->inline_data);
	free(o->chunks);
	free(o->target);
	free(o->clock);
	free(o->cloud);
	for (size_t i = 0; i < o->nent; i++)
		dirent_free(&o->ent[i]);
	free(o->ent);
	qfs_obj_init(o);
}

static void *memdup_(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);
	if (q && n)
		memcpy(q, p, n);
	return q;
}

int qfs_obj_copy(qfs_obj *dst, const qfs_obj *src)
{
	*dst = *src;
	dst->xattr = NULL;
	dst->inline_data = NULL;
	dst->chunks = NULL;
	dst->target = NULL;
	dst->clock = NULL;
	dst->cloud = NULL;
	dst->ent = NULL;
	dst->nxattr = dst->nent = 0;
	if (src->nxattr) {
		dst->xattr = calloc(src->nxattr, sizeof(qfs_xattr));
		if (!dst->xattr)
			goto fail;
		for (size_t i = 0; i < src->nxattr; i++) {
			dst->nxattr = i + 1;
			dst->xattr[i].name = strdup(src->xattr[i].name);
			dst->xattr[i].value = memdup_(src->xattr[i].value, src->xattr[i].len);
			dst->xattr[i].len = src->xattr[i].len;
			if (!dst->xattr[i].name || !dst->xattr[i].value)
				goto fail;
		}
	}
	if (src->inline_data && !(dst->inline_data = memdup_(src->inline_data, src->size)))
		goto fail;
	if (src->chunks &&
	    !(dst->chunks = memdup_(src->chunks, src->nchunks * sizeof(qfs_chunkref))))
		goto fail;
	if (src->target && !(dst->target = strdup(src->target)))
		goto fail;
	if (src->clock && !(dst->clock = memdup_(src->clock, src->nclock * sizeof(qfs_dot))))
		goto fail;
	if (src->cloud && !(dst->cloud = memdup_(src->cloud, src->ncloud * sizeof(qfs_dot))))
		goto fail;
	if (src->nent) {
		dst->ent = calloc(src->nent, sizeof(qfs_dirent));
		if (!dst->ent)
			goto fail;
		for (size_t i = 0; i < src->nent; i++) {
			dst->nent = i + 1;
			dst->ent[i].name = strdup(src->ent[i].name);
			dst->ent[i].type = src->ent[i].type;
			dst->ent[i].ndots = src->ent[i].ndots;
			dst->ent[i].dots = memdup_(src->ent[i].dots, src->ent[i].ndots * sizeof(qfs_dot));
			if (!dst->ent[i].name || !dst->ent[i].dots)
				goto fail;
		}
	}
	return 0;
fail:
	qfs_obj_free(dst);
	return -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Types                                                                */

uint8_t qfs_type_of_mode(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return QFS_T_REG;
	case S_IFDIR: return QFS_T_DIR;
	case S_IFLNK: return QFS_T_LNK;
	case S_IFIFO: return QFS_T_FIFO;
	case S_IFSOCK: return QFS_T_SOCK;
	case S_IFCHR: return QFS_T_CHR;
	case S_IFBLK: return QFS_T_BLK;
	default: return 0;
	}
}

unsigned qfs_type_to_dt(uint8_t type)
{
	switch (type) {
	case QFS_T_REG: return DT_REG;
	case QFS_T_DIR: return DT_DIR;
	case QFS_T_LNK: return DT_LNK;
	case QFS_T_FIFO: return DT_FIFO;
	case QFS_T_SOCK: return DT_SOCK;
	case QFS_T_CHR: return DT_CHR;
	case QFS_T_BLK: return DT_BLK;
	default: return DT_UNKNOWN;
	}
}

int qfs_name_check(const char *name, size_t n)
{
	if (n == 0 || (n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (n > QFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', n) || memchr(name, 0, n))
		return -EINVAL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

static uint64_t zz_enc(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t zz_dec(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int put_dot(q_buf *b, qfs_dot d)
{
	Q_RET(q_put_fixed64(b, d.actor));
	return q_put_varint(b, d.counter);
}

int qfs_obj_encode(const qfs_obj *o, q_buf *out)
{
	size_t start = out->len;
	int rc;
	Q_ERR(q_put_fixed16(out, QFS_OBJ_MAGIC));
	Q_ERR(q_buf_append_byte(out, QFS_OBJ_VERSION));
	Q_ERR(q_buf_append_byte(out, o->type));
	Q_ERR(q_put_varint(out, o->mode));
	Q_ERR(q_put_varint(out, o->uid));
	Q_ERR(q_put_varint(out, o->gid));
	Q_ERR(q_put_varint(out, o->rdev));
	Q_ERR(q_put_varint(out, zz_enc(o->atime_ns)));
	Q_ERR(q_put_varint(out, zz_enc(o->mtime_ns)));
	Q_ERR(q_put_varint(out, zz_enc(o->ctime_ns)));
	Q_ERR(q_put_varint(out, o->size));
	Q_ERR(q_put_lenbytes(out, o->origin, strnlen(o->origin, QFS_ORIGIN_MAX)));
	Q_ERR(q_put_varint(out, o->nxattr));
	for (size_t i = 0; i < o->nxattr; i++) {
		Q_ERR(q_put_lenbytes(out, o->xattr[i].name, strlen(o->xattr[i].name)));
		Q_ERR(q_put_lenbytes(out, o->xattr[i].value, o->xattr[i].len));
	}
	switch (o->type) {
	case QFS_T_REG:
		Q_ERR(q_buf_append_byte(out, o->layout));
		if (o->layout == QFS_LAYOUT_INLINE) {
			Q_ERR(q_put_lenbytes(out, o->inline_data, (size_t)o->size));
		} else {
			Q_ERR(q_put_varint(out, o->chunk_size));
			Q_ERR(q_put_varint(out, o->nchunks));
			for (size_t i = 0; i < o->nchunks; i++) {
				Q_ERR(q_buf_append_byte(out, o->chunks[i].kind));
				if (o->chunks[i].kind == QFS_CHUNK_DATA)
					Q_ERR(q_buf_append(out, o->chunks[i].id, QFS_CHUNK_ID_LEN));
			}
		}
		break;
	case QFS_T_LNK:
		Q_ERR(q_put_lenbytes(out, o->target, o->target ? strlen(o->target) : 0));
		break;
	case QFS_T_DIR:
		Q_ERR(q_put_varint(out, o->nclock));
		for (size_t i = 0; i < o->nclock; i++)
			Q_ERR(put_dot(out, o->clock[i]));
		Q_ERR(q_put_varint(out, o->ncloud));
		for (size_t i = 0; i < o->ncloud; i++)
			Q_ERR(put_dot(out, o->cloud[i]));
		Q_ERR(q_put_varint(out, o->nent));
		for (size_t i = 0; i < o->nent; i++) {
			const qfs_dirent *e = &o->ent[i];
			Q_ERR(q_put_lenbytes(out, e->name, strlen(e->name)));
			Q_ERR(q_buf_append_byte(out, e->type));
			Q_ERR(q_put_varint(out, e->ndots));
			for (uint32_t j = 0; j < e->ndots; j++)
				Q_ERR(put_dot(out, e->dots[j]));
		}
		break;
	default:
		break;
	}
	Q_ERR(q_put_fixed32(out, q_csum32(out->p + start, out->len - start)));
	return 0;
fail:
	out->len = start;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

static int get_u64(q_reader *r, uint64_t max, uint64_t *v)
{
	Q_RET(q_get_varint64(r, v));
	return *v > max ? Q_ECORRUPT : 0;
}

static int get_str(q_reader *r, size_t max, char **out)
{
	q_slice s;
	Q_RET(q_get_lenbytes(r, max, &s));
	if (memchr(s.p, 0, s.n))
		return Q_ECORRUPT;
	*out = (char *)q_slice_dup(s);
	return *out ? 0 : -ENOMEM;
}

static int get_dot(q_reader *r, qfs_dot *d)
{
	Q_RET(q_get_fixed64(r, &d->actor));
	return q_get_varint64(r, &d->counter);
}

static uint64_t clock_get(const qfs_obj *o, uint64_t actor)
{
	size_t lo = 0, hi = o->nclock;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (o->clock[mid].actor < actor)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < o->nclock && o->clock[lo].actor == actor ? o->clock[lo].counter : 0;
}

static int dot_cmp(qfs_dot a, qfs_dot b)
{
	if (a.actor != b.actor)
		return a.actor < b.actor ? -1 : 1;
	return a.counter < b.counter ? -1 : a.counter > b.counter;
}

static int cloud_has(const qfs_obj *o, qfs_dot d)
{
	size_t lo = 0, hi = o->ncloud;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = dot_cmp(o->cloud[mid], d);
		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Has this version seen dot d? */
static int covers(const qfs_obj *o, qfs_dot d)
{
	return d.counter <= clock_get(o, d.actor) || cloud_has(o, d);
}

int qfs_obj_decode(const uint8_t *p, size_t n, qfs_obj *o)
{
	int rc;
	uint64_t v;
	uint16_t magic;
	uint8_t ver;
	qfs_obj_init(o);
	if (n < 4)
		return Q_ETRUNC;
	uint32_t want = q_dec_fixed32(p + n - 4);
	if (q_csum32(p, n - 4) != want)
		return Q_ECORRUPT;
	q_reader r = q_reader_make(p, n - 4);
	Q_ERR(q_get_fixed16(&r, &magic));
	if (magic != QFS_OBJ_MAGIC)
		return Q_ECORRUPT;
	Q_ERR(q_get_u8(&r, &ver));
	if (ver != QFS_OBJ_VERSION)
		return Q_EVERSION;
	Q_ERR(q_get_u8(&r, &o->type));
	Q_ERR(get_u64(&r, UINT32_MAX, &v));
	o->mode = (uint32_t)v;
	if (o->type == 0 || qfs_type_of_mode(o->mode) != o->type) {
		rc = Q_ECORRUPT;
		goto fail;
	}
	Q_ERR(get_u64(&r, UINT32_MAX, &v));
	o->uid = (uint32_t)v;
	Q_ERR(get_u64(&r, UINT32_MAX, &v));
	o->gid = (uint32_t)v;
	Q_ERR(q_get_varint64(&r, &o->rdev));
	Q_ERR(q_get_varint64(&r, &v));
	o->atime_ns = zz_dec(v);
	Q_ERR(q_get_varint64(&r, &v));
	o->mtime_ns = zz_dec(v);
	Q_ERR(q_get_varint64(&r, &v));
	o->ctime_ns = zz_dec(v);
	Q_ERR(get_u64(&r, QFS_FILE_SIZE_MAX, &o->size));
	{
		q_slice s;
		Q_ERR(q_get_lenbytes(&r, QFS_ORIGIN_MAX, &s));
		if (memchr(s.p, 0, s.n)) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		memcpy(o->origin, s.p, s.n);
		o->origin[s.n] = 0;
	}
	Q_ERR(get_u64(&r, QFS_XATTR_COUNT_MAX, &v));
	if (v) {
		/* every xattr takes at least two bytes: bound the allocation */
		if (v > q_reader_left(&r) / 2) {
			rc = Q_ETRUNC;
			goto fail;
		}
		o->xattr = calloc((size_t)v, sizeof(qfs_xattr));
		if (!o->xattr) {
			rc = -ENOMEM;
			goto fail;
		}
		for (uint64_t i = 0; i < v; i++) {
			q_slice val;
			qfs_xattr *x = &o->xattr[i];
			o->nxattr = (size_t)i + 1;
			Q_ERR(get_str(&r, QFS_XATTR_NAME_MAX, &x->name));
			Q_ERR(q_get_lenbytes(&r, QFS_XATTR_VALUE_MAX, &val));
			if (!x->name[0] || (i > 0 && strcmp(o->xattr[i - 1].name, x->name) >= 0)) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			x->value = memdup_(val.p, val.n);
			x->len = val.n;
			if (!x->value) {
				rc = -ENOMEM;
				goto fail;
			}
		}
	}
	switch (o->type) {
	case QFS_T_REG:
		Q_ERR(q_get_u8(&r, &o->layout));
		if (o->layout == QFS_LAYOUT_INLINE) {
			q_slice s;
			Q_ERR(q_get_lenbytes(&r, QFS_INLINE_MAX, &s));
			if (s.n != o->size) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			o->inline_data = memdup_(s.p, s.n);
			if (!o->inline_data) {
				rc = -ENOMEM;
				goto fail;
			}
		} else if (o->layout == QFS_LAYOUT_CHUNKED) {
			Q_ERR(q_get_varint64(&r, &v));
			if (v < QFS_CHUNK_SIZE_MIN || v > QFS_CHUNK_SIZE_MAX) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			o->chunk_size = (uint32_t)v;
			Q_ERR(get_u64(&r, QFS_CHUNKS_MAX, &v));
			if (v != qfs_chunks_for(o->size, o->chunk_size)) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			if (v > q_reader_left(&r)) {
				rc = Q_ETRUNC;
				goto fail;
			}
			o->nchunks = (size_t)v;
			o->chunks = calloc(o->nchunks ? o->nchunks : 1, sizeof(qfs_chunkref));
			if (!o->chunks) {
				rc = -ENOMEM;
				goto fail;
			}
			for (size_t i = 0; i < o->nchunks; i++) {
				Q_ERR(q_get_u8(&r, &o->chunks[i].kind));
				if (o->chunks[i].kind == QFS_CHUNK_DATA) {
					q_slice s;
					Q_ERR(q_get_bytes(&r, QFS_CHUNK_ID_LEN, &s));
					memcpy(o->chunks[i].id, s.p, QFS_CHUNK_ID_LEN);
				} else if (o->chunks[i].kind != QFS_CHUNK_HOLE) {
					rc = Q_ECORRUPT;
					goto fail;
				}
			}
		} else {
			rc = Q_ECORRUPT;
			goto fail;
		}
		break;
	case QFS_T_LNK:
		Q_ERR(get_str(&r, QFS_PATH_MAX, &o->target));
		if (!o->target[0] || strlen(o->target) != o->size) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		break;
	case QFS_T_DIR:
		Q_ERR(get_u64(&r, QFS_CLOCK_MAX, &v));
		if (v > q_reader_left(&r) / 9) {
			rc = Q_ETRUNC;
			goto fail;
		}
		o->nclock = (size_t)v;
		o->clock = calloc(o->nclock ? o->nclock : 1, sizeof(qfs_dot));
		if (!o->clock) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < o->nclock; i++) {
			Q_ERR(get_dot(&r, &o->clock[i]));
			if (o->clock[i].counter == 0 ||
			    (i > 0 && o->clock[i - 1].actor >= o->clock[i].actor)) {
				rc = Q_ECORRUPT;
				goto fail;
			}
		}
		Q_ERR(get_u64(&r, QFS_CLOCK_MAX, &v));
		if (v > q_reader_left(&r) / 9) {
			rc = Q_ETRUNC;
			goto fail;
		}
		o->ncloud = (size_t)v;
		o->cloud = calloc(o->ncloud ? o->ncloud : 1, sizeof(qfs_dot));
		if (!o->cloud) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < o->ncloud; i++) {
			Q_ERR(get_dot(&r, &o->cloud[i]));
			if (o->cloud[i].counter <= clock_get(o, o->cloud[i].actor) + 1 ||
			    (i > 0 && dot_cmp(o->cloud[i - 1], o->cloud[i]) >= 0)) {
				rc = Q_ECORRUPT;
				goto fail;
			}
		}
		Q_ERR(get_u64(&r, QFS_DIR_ENTRIES_MAX, &v));
		if (v > q_reader_left(&r) / 12) {
			rc = Q_ETRUNC;
			goto fail;
		}
		if (v) {
			o->ent = calloc((size_t)v, sizeof(qfs_dirent));
			if (!o->ent) {
				rc = -ENOMEM;
				goto fail;
			}
		}
		for (size_t i = 0; i < v; i++) {
			qfs_dirent *e = &o->ent[i];
			uint64_t nd;
			o->nent = i + 1;
			Q_ERR(get_str(&r, QFS_NAME_MAX, &e->name));
			if (qfs_name_check(e->name, strlen(e->name)) ||
			    (i > 0 && strcmp(o->ent[i - 1].name, e->name) >= 0)) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			Q_ERR(q_get_u8(&r, &e->type));
			if (e->type < QFS_T_REG || e->type > QFS_T_BLK) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			Q_ERR(get_u64(&r, QFS_DOTS_MAX, &nd));
			if (nd == 0) {
				rc = Q_ECORRUPT;
				goto fail;
			}
			e->dots = calloc((size_t)nd, sizeof(qfs_dot));
			if (!e->dots) {
				rc = -ENOMEM;
				goto fail;
			}
			e->ndots = (uint32_t)nd;
			for (uint32_t j = 0; j < e->ndots; j++) {
				Q_ERR(get_dot(&r, &e->dots[j]));
				if (!covers(o, e->dots[j])) {
					rc = Q_ECORRUPT;
					goto fail;
				}
			}
		}
		if (o->size != 0) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		break;
	default:
		break;
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_ECORRUPT;
		goto fail;
	}
	return 0;
fail:
	qfs_obj_free(o);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */

static long xattr_find(const qfs_obj *o, const char *name, int *found)
{
	size_t lo = 0, hi = o->nxattr;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(o->xattr[mid].name, name);
		if (c == 0) {
			*found = 1;
			return (long)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return (long)lo;
}

const qfs_xattr *qfs_xattr_get(const qfs_obj *o, const char *name)
{
	int found;
	long i = xattr_find(o, name, &found);
	return found ? &o->xattr[i] : NULL;
}

int qfs_xattr_set(qfs_obj *o, const char *name, const void *value, size_t len, int flags)
{
	int found;
	size_t nl = strlen(name);
	if (nl == 0 || nl > QFS_XATTR_NAME_MAX)
		return nl ? -ERANGE : -EINVAL;
	if (len > QFS_XATTR_VALUE_MAX)
		return -E2BIG;
	long i = xattr_find(o, name, &found);
	if (found && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!found && (flags & XATTR_REPLACE))
		return -ENODATA;
	uint8_t *v = memdup_(value, len);
	if (!v)
		return -ENOMEM;
	if (found) {
		free(o->xattr[i].value);
		o->xattr[i].value = v;
		o->xattr[i].len = len;
		return 0;
	}
	if (o->nxattr >= QFS_XATTR_COUNT_MAX) {
		free(v);
		return -ENOSPC;
	}
	char *nm = strdup(name);
	qfs_xattr *nx = realloc(o->xattr, (o->nxattr + 1) * sizeof(qfs_xattr));
	if (!nm || !nx) {
		free(nm);
		free(v);
		if (nx)
			o->xattr = nx;
		return -ENOMEM;
	}
	o->xattr = nx;
	memmove(&nx[i + 1], &nx[i], (o->nxattr - (size_t)i) * sizeof(qfs_xattr));
	nx[i].name = nm;
	nx[i].value = v;
	nx[i].len = len;
	o->nxattr++;
	return 0;
}

int qfs_xattr_remove(qfs_obj *o, const char *name)
{
	int found;
	long i = xattr_find(o, name, &found);
	if (!found)
		return -ENODATA;
	free(o->xattr[i].name);
	free(o->xattr[i].value);
	memmove(&o->xattr[i], &o->xattr[i + 1], (o->nxattr - (size_t)i - 1) * sizeof(qfs_xattr));
	o->nxattr--;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Regular files                                                        */

uint64_t qfs_chunks_for(uint64_t size, uint32_t cs)
{
	return cs ? (size + cs - 1) / cs : 0;
}

int qfs_obj_set_chunked_size(qfs_obj *o, uint64_t size)
{
	if (size > QFS_FILE_SIZE_MAX)
		return -EFBIG;
	uint64_t want = qfs_chunks_for(size, o->chunk_size);
	if (want > QFS_CHUNKS_MAX)
		return -EFBIG;
	if (want > o->nchunks) {
		qfs_chunkref *nc = realloc(o->chunks, (size_t)want * sizeof(qfs_chunkref));
		if (!nc)
			return -ENOMEM;
		memset(nc + o->nchunks, 0, ((size_t)want - o->nchunks) * sizeof(qfs_chunkref));
		o->chunks = nc;
	}
	o->nchunks = (size_t)want;
	o->size = size;
	return 0;
}

void qfs_chunk_id(const void *data, size_t n, uint8_t id[QFS_CHUNK_ID_LEN])
{
	q_enc_fixed64(id, q_hash64(data, n, 0x63686e6b31ull));
	q_enc_fixed64(id + 8, q_hash64(data, n, 0x63686e6b32ull ^ n));
}

void qfs_chunk_key(const uint8_t id[QFS_CHUNK_ID_LEN], char *buf)
{
	static const char hex[] = "0123456789abcdef";
	memcpy(buf, QFS_KEY_CHUNK, 2);
	for (int i = 0; i < QFS_CHUNK_ID_LEN; i++) {
		buf[2 + 2 * i] = hex[id[i] >> 4];
		buf[3 + 2 * i] = hex[id[i] & 15];
	}
	buf[QFS_CHUNK_KEY_LEN] = 0;
}

/* ------------------------------------------------------------------ */
/* Directories (ORSWOT)                                                 */

static long dir_search(const qfs_obj *o, const char *name, int *found)
{
	size_t lo = 0, hi = o->nent;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(o->ent[mid].name, name);
		if (c == 0) {
			*found = 1;
			return (long)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return (long)lo;
}

long qfs_dir_find(const qfs_obj *o, const char *name)
{
	int found;
	long i = dir_search(o, name, &found);
	return found ? i : -1;
}

uint64_t qfs_dir_clock(const qfs_obj *o, uint64_t actor)
{
	uint64_t c = clock_get(o, actor);
	for (size_t i = 0; i < o->ncloud; i++)
		if (o->cloud[i].actor == actor && o->cloud[i].counter > c)
			c = o->cloud[i].counter;
	return c;
}

static int clock_set(qfs_obj *o, qfs_dot d)
{
	size_t i = 0;
	while (i < o->nclock && o->clock[i].actor < d.actor)
		i++;
	if (i < o->nclock && o->clock[i].actor == d.actor) {
		if (o->clock[i].counter < d.counter)
			o->clock[i].counter = d.counter;
		return 0;
	}
	if (o->nclock >= QFS_CLOCK_MAX)
		return -ENOSPC;
	qfs_dot *nc = realloc(o->clock, (o->nclock + 1) * sizeof(qfs_dot));
	if (!nc)
		return -ENOMEM;
	o->clock = nc;
	memmove(&nc[i + 1], &nc[i], (o->nclock - i) * sizeof(qfs_dot));
	nc[i] = d;
	o->nclock++;
	return 0;
}

/* Moves cloud dots that became contiguous into the clock and drops the ones
 * the clock already covers. The cloud is sorted, so one pass suffices. */
static int compact(qfs_obj *o)
{
	size_t k = 0;
	for (size_t i = 0; i < o->ncloud; i++) {
		qfs_dot d = o->cloud[i];
		uint64_t c = clock_get(o, d.actor);
		if (d.counter <= c)
			continue;
		if (d.counter == c + 1) {
			Q_RET(clock_set(o, d));
			continue;
		}
		o->cloud[k++] = d;
	}
	o->ncloud = k;
	return 0;
}

static int cloud_add(qfs_obj *o, qfs_dot d)
{
	size_t i = 0;
	while (i < o->ncloud && dot_cmp(o->cloud[i], d) < 0)
		i++;
	if (i < o->ncloud && dot_cmp(o->cloud[i], d) == 0)
		return 0;
	if (o->ncloud >= QFS_CLOCK_MAX)
		return -ENOSPC;
	qfs_dot *nc = realloc(o->cloud, (o->ncloud + 1) * sizeof(qfs_dot));
	if (!nc)
		return -ENOMEM;
	o->cloud = nc;
	memmove(&nc[i + 1], &nc[i], (o->ncloud - i) * sizeof(qfs_dot));
	nc[i] = d;
	o->ncloud++;
	return 0;
}

/* Records that this version has seen dot d. */
static int see_dot(qfs_obj *o, qfs_dot d)
{
	uint64_t c = clock_get(o, d.actor);
	if (d.counter <= c)
		return 0;
	if (d.counter == c + 1) {
		Q_RET(clock_set(o, d));
		return compact(o);
	}
	return cloud_add(o, d);
}

int qfs_dir_add(qfs_obj *o, const char *name, uint8_t type, uint64_t actor, uint64_t floor,
		uint64_t *counter_out)
{
	int found;
	Q_RET(qfs_name_check(name, strlen(name)));
	if (o->nent >= QFS_DIR_ENTRIES_MAX)
		return -ENOSPC;
	uint64_t c = qfs_dir_clock(o, actor);
	if (c < floor)
		c = floor;
	qfs_dot d = {actor, c + 1};
	qfs_dot *dots = malloc(sizeof(qfs_dot));
	if (!dots)
		return -ENOMEM;
	dots[0] = d;
	int rc = see_dot(o, d);
	if (rc) {
		free(dots);
		return rc;
	}
	long i = dir_search(o, name, &found);
	if (found) {
		free(o->ent[i].dots);
		o->ent[i].dots = dots;
		o->ent[i].ndots = 1;
		o->ent[i].type = type;
	} else {
		char *nm = strdup(name);
		qfs_dirent *ne = nm ? realloc(o->ent, (o->nent + 1) * sizeof(qfs_dirent)) : NULL;
		if (!ne) {
			free(nm);
			free(dots);
			return -ENOMEM;
		}
		o->ent = ne;
		memmove(&ne[i + 1], &ne[i], (o->nent - (size_t)i) * sizeof(qfs_dirent));
		ne[i].name = nm;
		ne[i].type = type;
		ne[i].ndots = 1;
		ne[i].dots = dots;
		o->nent++;
	}
	if (counter_out)
		*counter_out = d.counter;
	return 0;
}

int qfs_dir_remove(qfs_obj *o, const char *name)
{
	long i = qfs_dir_find(o, name);
	if (i < 0)
		return Q_ENOTFOUND;
	dirent_free(&o->ent[i]);
	memmove(&o->ent[i], &o->ent[i + 1], (o->nent - (size_t)i - 1) * sizeof(qfs_dirent));
	o->nent--;
	return 0;
}

static int dot_in(const qfs_dirent *e, qfs_dot d)
{
	if (!e)
		return 0;
	for (uint32_t i = 0; i < e->ndots; i++)
		if (e->dots[i].actor == d.actor && e->dots[i].counter == d.counter)
			return 1;
	return 0;
}

/* Dots of the merged entry: in both, or in one and unseen by the other. */
static int merge_dots(const qfs_dirent *a, const qfs_obj *ao, const qfs_dirent *b,
		      const qfs_obj *bo, qfs_dot *out, uint32_t *nout)
{
	uint32_t n = 0;
	for (uint32_t i = 0; a && i < a->ndots; i++) {
		qfs_dot d = a->dots[i];
		if (dot_in(b, d) || !covers(bo, d))
			if (n < QFS_DOTS_MAX)
				out[n++] = d;
	}
	for (uint32_t i = 0; b && i < b->ndots; i++) {
		qfs_dot d = b->dots[i];
		if (dot_in(a, d))
			continue; /* already taken above */
		if (!covers(ao, d))
			if (n < QFS_DOTS_MAX)
				out[n++] = d;
	}
	*nout = n;
	return 0;
}

static int meta_newer(const qfs_obj *a, const qfs_obj *b)
{
	if (a->ctime_ns != b->ctime_ns)
		return a->ctime_ns > b->ctime_ns;
	if (a->mtime_ns != b->mtime_ns)
		return a->mtime_ns > b->mtime_ns;
	if (a->mode != b->mode)
		return a->mode > b->mode;
	if (a->uid != b->uid)
		return a->uid > b->uid;
	return a->gid > b->gid;
}

int qfs_dir_merge(qfs_obj *dst, const qfs_obj *src)
{
	if (dst->type != QFS_T_DIR || src->type != QFS_T_DIR)
		return -EINVAL;
	int rc = 0;
	size_t cap = dst->nent + src->nent;
	qfs_dirent *ne = calloc(cap ? cap : 1, sizeof(qfs_dirent));
	qfs_dot tmp[QFS_DOTS_MAX];
	size_t n = 0, i = 0, j = 0;
	if (!ne)
		return -ENOMEM;
	while (i < dst->nent || j < src->nent) {
		const qfs_dirent *a = NULL, *b = NULL;
		int c;
		if (i >= dst->nent)
			c = 1;
		else if (j >= src->nent)
			c = -1;
		else
			c = strcmp(dst->ent[i].name, src->ent[j].name);
		if (c <= 0)
			a = &dst->ent[i];
		if (c >= 0)
			b = &src->ent[j];
		uint32_t nd;
		merge_dots(a, dst, b, src, tmp, &nd);
		if (nd) {
			qfs_dirent *e = &ne[n];
			const qfs_dirent *from = a ? a : b;
			e->name = strdup(from->name);
			e->dots = malloc(nd * sizeof(qfs_dot));
			if (!e->name || !e->dots) {
				free(e->name);
				free(e->dots);
				rc = -ENOMEM;
				goto fail;
			}
			/* concurrent re-adds with different types: the newer dot's side wins */
			e->type = from->type;
			if (a && b && a->type != b->type)
				e->type = (b->dots[0].counter > a->dots[0].counter ||
					   (b->dots[0].counter == a->dots[0].counter &&
					    b->dots[0].actor > a->dots[0].actor))
						  ? b->type
						  : a->type;
			memcpy(e->dots, tmp, nd * sizeof(qfs_dot));
			e->ndots = nd;
			n++;
		}
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
	for (size_t k = 0; k < src->nclock; k++) {
		rc = clock_set(dst, src->clock[k]);
		if (rc)
			goto fail;
	}
	for (size_t k = 0; k < src->ncloud; k++) {
		rc = cloud_add(dst, src->cloud[k]);
		if (rc)
			goto fail;
	}
	rc = compact(dst);
	if (rc)
		goto fail;
	for (size_t k = 0; k < dst->nent; k++)
		dirent_free(&dst->ent[k]);
	free(dst->ent);
	dst->ent = ne;
	dst->nent = n;
	if (meta_newer(src, dst)) {
		dst->mode = src->mode;
		dst->uid = src->uid;
		dst->gid = src->gid;
		dst->atime_ns = src->atime_ns;
		dst->mtime_ns = src->mtime_ns;
		dst->ctime_ns = src->ctime_ns;
		memcpy(dst->origin, src->origin, sizeof(dst->origin));
		/* xattrs travel with the newer metadata */
		qfs_obj tmpo;
		qfs_obj_init(&tmpo);
		tmpo.nxattr = src->nxattr;
		tmpo.xattr = src->xattr;
		qfs_obj cp;
		rc = qfs_obj_copy(&cp, &tmpo);
		if (rc)
			return rc;
		for (size_t k = 0; k < dst->nxattr; k++) {
			free(dst->xattr[k].name);
			free(dst->xattr[k].value);
		}
		free(dst->xattr);
		dst->xattr = cp.xattr;
		dst->nxattr = cp.nxattr;
	}
	return 0;
fail:
	for (size_t k = 0; k < n; k++)
		dirent_free(&ne[k]);
	free(ne);
	return rc;
}
