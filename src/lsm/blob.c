/*
 * blob.c - blob files: handles, pointers, the record reader and writer
 * (see blob.h; format in docs/lsm.md).
 */
#include "lsm/blob.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "lsm/wal.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"

void blob_path(char *out, size_t cap, const char *dir, uint64_t number)
{
	snprintf(out, cap, "%s/%06llu.blob", dir, (unsigned long long)number);
}

lsm_blob *blob_new(q_env *env, const char *dir, uint64_t number, uint64_t size,
		   uint64_t garbage)
{
	lsm_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->number = number;
	b->size = size;
	atomic_init(&b->garbage, garbage);
	atomic_init(&b->refs, 1);
	b->env = env;
	blob_path(b->path, sizeof(b->path), dir, number);
	return b;
}

lsm_blob *blob_new_log(q_env *env, const char *dir, uint64_t number, uint64_t size,
		       uint64_t garbage)
{
	lsm_blob *b = blob_new(env, dir, number, size, garbage);
	if (!b)
		return NULL;
	b->is_log = 1;
	snprintf(b->path, sizeof(b->path), "%s/%06llu.log", dir, (unsigned long long)number);
	return b;
}

uint64_t blob_data_size(const lsm_blob *b)
{
	uint64_t h = b->is_log ? 0 : BLOB_FILE_HEADER;
	return b->size > h ? b->size - h : 0;
}

uint32_t blob_log_csum(q_slice key, q_slice value)
{
	return q_csum32_2(key.p, key.n, value.p, value.n);
}

void blob_ptr_log(blob_ptr *p, uint64_t lognum, uint64_t offset, q_slice key, q_slice value)
{
	p->number = lognum;
	p->offset = offset;
	p->vlen = value.n;
	p->kind = BLOB_PTR_LOG;
	p->csum = blob_log_csum(key, value);
}

uint64_t blob_log_span(uint64_t offset, uint64_t vlen)
{
	uint64_t room = WAL_BLOCK_SIZE - offset % WAL_BLOCK_SIZE;
	if (vlen <= room)
		return vlen;
	uint64_t per = WAL_BLOCK_SIZE - WAL_HEADER_SIZE;
	uint64_t blocks = (vlen - room + per - 1) / per; /* further blocks it enters */
	return vlen + blocks * WAL_HEADER_SIZE;
}

int blob_open(lsm_blob *b)
{
	q_file *f = NULL;
	uint8_t hdr[BLOB_FILE_HEADER];
	size_t got = 0;
	uint64_t size = 0;
	if (atomic_load(&b->f))
		return 0;
	int rc = q_env_open(b->env, b->path, Q_OPEN_READ, &f);
	if (rc) {
		if (rc == -ENOENT)
			atomic_store(&b->unusable, 1);
		return rc;
	}
	Q_ERR(q_file_size(f, &size));
	if (!b->is_log)
		Q_ERR(q_file_pread(f, hdr, sizeof(hdr), 0, &got));
	if (!b->is_log && blob_header_check(hdr, got)) {
		Q_ERROR("lsm", "blob file %s: bad header at offset 0", b->path);
		atomic_store(&b->unusable, 1);
		rc = Q_ECORRUPT;
		goto fail;
	}
	if (size != b->size)
		Q_ERROR("lsm", "blob file %s is %llu bytes, the manifest says %llu: records "
			"past the end read as corrupt, the others are served", b->path,
			(unsigned long long)size, (unsigned long long)b->size);
	q_file *none = NULL;
	if (!atomic_compare_exchange_strong(&b->f, &none, f))
		q_file_close(f); /* another reader opened it first */
	return 0;
fail:
	q_file_close(f);
	return rc;
}

void blob_ref(lsm_blob *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void blob_unref(lsm_blob *b)
{
	if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	q_file *f = atomic_load(&b->f);
	if (f)
		q_file_close(f);
	if (atomic_load(&b->quarantined)) {
		char bad[600];
		snprintf(bad, sizeof(bad), "%s.bad", b->path);
		int rc = q_env_rename(b->env, b->path, bad);
		if (rc && rc != -ENOENT)
			Q_WARN("lsm", "cannot move blob file %s of a quarantined table aside: %s",
			       b->path, q_strerror(rc));
	} else if (atomic_load(&b->obsolete)) {
		int rc = q_env_unlink(b->env, b->path);
		if (rc && rc != -ENOENT)
			Q_WARN("lsm", "cannot delete obsolete blob file %s: %s", b->path,
			       q_strerror(rc));
	}
	free(b);
}

void blob_add_garbage(lsm_blob *b, uint64_t n)
{
	uint64_t cap = blob_data_size(b);
	uint64_t g = atomic_load(&b->garbage);
	for (;;) {
		uint64_t ng = g + n > cap || g + n < g ? cap : g + n;
		if (atomic_compare_exchange_weak(&b->garbage, &g, ng))
			return;
	}
}

int blob_needs_gc(lsm_blob *b)
{
	uint64_t g = atomic_load(&b->garbage);
	uint64_t data = blob_data_size(b);
	return !atomic_load(&b->unusable) && !atomic_load(&b->gc_failed) && data > 0 &&
	       g * BLOB_GC_DEN > data * BLOB_GC_NUM;
}

int blob_worth_compressing(q_slice value, q_buf *scratch)
{
	if (value.n < 64)
		return 0;
	size_t n = value.n < BLOB_SAMPLE ? value.n : BLOB_SAMPLE;
	size_t max = snappy_max_compressed_length(n);
	q_buf_reset(scratch);
	if (q_buf_reserve(scratch, max))
		return 1; /* no memory for the sample: let the writer decide */
	size_t clen = max;
	if (snappy_compress((const char *)value.p, n, (char *)scratch->p, &clen) != SNAPPY_OK)
		return 1;
	return clen <= n - n / SST_MIN_SAVING_DIV;
}

/* ---- pointers ---- */

size_t blob_ptr_encode(uint8_t *out, const blob_ptr *p)
{
	size_t n = q_enc_varint64(out, p->number);
	n += q_enc_varint64(out + n, p->offset);
	n += q_enc_varint64(out + n, p->vlen);
	if (p->kind == BLOB_PTR_LOG) {
		out[n++] = BLOB_PTR_LOG;
		q_enc_fixed32(out + n, p->csum);
		n += 4;
	}
	return n;
}

int blob_ptr_decode(q_slice v, blob_ptr *p)
{
	q_reader r = q_reader_make(v.p, v.n);
	if (q_get_varint64(&r, &p->number) || q_get_varint64(&r, &p->offset) ||
	    q_get_varint64(&r, &p->vlen))
		return Q_ECORRUPT;
	p->kind = BLOB_PTR_REC;
	p->csum = 0;
	if (q_reader_left(&r) == BLOB_PTR_LOG_TAIL) {
		uint8_t kind;
		if (q_get_u8(&r, &kind) || kind != BLOB_PTR_LOG || q_get_fixed32(&r, &p->csum))
			return Q_ECORRUPT;
		p->kind = BLOB_PTR_LOG;
	}
	if (q_reader_left(&r) != 0 || p->vlen > UINT32_MAX || p->offset > UINT64_MAX / 2)
		return Q_ECORRUPT;
	if (p->kind == BLOB_PTR_REC && p->offset < BLOB_FILE_HEADER)
		return Q_ECORRUPT;
	/* a log value starts after a record header inside a block */
	if (p->kind == BLOB_PTR_LOG && p->offset % WAL_BLOCK_SIZE < WAL_HEADER_SIZE)
		return Q_ECORRUPT;
	return 0;
}

uint64_t blob_rec_size(size_t klen, uint64_t vlen)
{
	return BLOB_REC_HEADER + (uint64_t)klen + vlen;
}

/* ---- reading ---- */

/* off: the pointer's offset (of a record in a blob file, of the value's
 * first byte in a kept commit log) */
static int blob_bad(const lsm_blob *b, uint64_t off, const char *why)
{
	Q_ERROR("lsm", "%s: corrupt stored value (%s at offset %llu): %s", b->path,
		b->is_log ? "value" : "record", (unsigned long long)off, why);
	return Q_ECORRUPT;
}

/* Reads a value kept in a commit log: its whole span (value and the block
 * headers inside it) with one pread into out, so a cold read is one large
 * request and not one per block, then the pieces are moved together over
 * the headers, then the pointer's checksum. f is open. */
static int blob_read_log(lsm_blob *b, q_file *f, q_slice key, const blob_ptr *p, q_buf *out)
{
	if (p->kind != BLOB_PTR_LOG)
		return blob_bad(b, p->offset, "record pointer into a commit log");
	uint64_t span = blob_log_span(p->offset, p->vlen);
	if (p->offset > b->size || span > b->size - p->offset)
		return blob_bad(b, p->offset, "pointer past the end of the log");
	Q_RET(q_buf_reserve(out, (size_t)span + 1));
	size_t got = 0;
	int rc = span ? q_file_pread(f, out->p, (size_t)span, p->offset, &got) : 0;
	if (rc)
		return rc;
	if (got != span)
		return blob_bad(b, p->offset, "value cut short");
	size_t done = 0, src = 0;
	uint64_t off = p->offset;
	while (done < p->vlen) {
		uint64_t room = WAL_BLOCK_SIZE - off % WAL_BLOCK_SIZE;
		size_t k = p->vlen - done < room ? (size_t)(p->vlen - done) : (size_t)room;
		if (src != done)
			memmove(out->p + done, out->p + src, k);
		done += k;
		src += k + WAL_HEADER_SIZE; /* past the next block's header */
		off += k + WAL_HEADER_SIZE;
	}
	if (blob_log_csum(key, q_slice_make(out->p, (size_t)p->vlen)) != p->csum)
		return blob_bad(b, p->offset, "checksum mismatch");
	out->len = (size_t)p->vlen;
	return 0;
}

int blob_read(lsm_blob *b, q_slice key, const blob_ptr *p, q_buf *out)
{
	q_buf_reset(out);
	q_file *f = atomic_load(&b->f);
	if (!f) {
		if (atomic_load(&b->unusable))
			return blob_bad(b, p->offset, "blob file unavailable");
		int orc = blob_open(b);
		if (orc == Q_ECORRUPT || orc == -ENOENT)
			return blob_bad(b, p->offset, "blob file unavailable");
		if (orc) {
			Q_WARN("lsm", "blob file %s cannot be opened: %s", b->path,
			       q_strerror(orc));
			return orc;
		}
		f = atomic_load(&b->f);
	}
	if (b->is_log)
		return blob_read_log(b, f, key, p, out);
	if (p->kind != BLOB_PTR_REC)
		return blob_bad(b, p->offset, "log pointer into a blob file");
	uint64_t rs = blob_rec_size(key.n, p->vlen);
	if (p->offset < BLOB_FILE_HEADER || p->offset > b->size || rs > b->size - p->offset)
		return blob_bad(b, p->offset, "pointer past the end of the file");
	uint8_t stack[512];
	uint8_t *raw = NULL, *dst;
	size_t hn = BLOB_REC_HEADER + key.n;
	uint8_t *h = hn <= sizeof(stack) ? stack : malloc(hn);
	if (!h)
		return -ENOMEM;
	size_t got = 0;
	int rc = q_file_pread(f, h, hn, p->offset, &got);
	if (rc)
		goto out;
	if (got != hn) {
		rc = blob_bad(b, p->offset, "record cut short");
		goto out;
	}
	if (q_dec_fixed32(h + 4) != key.n || q_dec_fixed32(h + 8) != p->vlen) {
		rc = blob_bad(b, p->offset, "lengths differ from the pointer");
		goto out;
	}
	int comp = h[12];
	if (comp != SST_COMP_NONE && comp != SST_COMP_SNAPPY) {
		rc = blob_bad(b, p->offset, "unknown compression");
		goto out;
	}
	if (key.n && memcmp(h + BLOB_REC_HEADER, key.p, key.n) != 0) {
		rc = blob_bad(b, p->offset, "record of another key");
		goto out;
	}
	/* an uncompressed value is read straight into out */
	if (comp == SST_COMP_SNAPPY) {
		raw = malloc(p->vlen ? (size_t)p->vlen : 1);
		if (!raw) {
			rc = -ENOMEM;
			goto out;
		}
		dst = raw;
	} else {
		if ((rc = q_buf_reserve(out, (size_t)p->vlen + 1)))
			goto out;
		dst = out->p;
	}
	got = 0;
	if (p->vlen && (rc = q_file_pread(f, dst, (size_t)p->vlen, p->offset + hn, &got)))
		goto out;
	if (got != p->vlen) {
		rc = blob_bad(b, p->offset, "value cut short");
		goto out;
	}
	if (q_csum32_2(h + 4, hn - 4, dst, (size_t)p->vlen) != q_dec_fixed32(h)) {
		rc = blob_bad(b, p->offset, "checksum mismatch");
		goto out;
	}
	if (comp == SST_COMP_SNAPPY) {
		uint64_t max = BLOB_SNAPPY_MAX_OUT(p->vlen);
		rc = blob_value_decode(q_slice_make(raw, (size_t)p->vlen), comp, max, out);
		if (rc == Q_ECORRUPT)
			blob_bad(b, p->offset, "bad compressed value");
	} else {
		out->len = (size_t)p->vlen;
	}
out:
	if (rc)
		q_buf_reset(out);
	if (h != stack)
		free(h);
	free(raw);
	return rc;
}

int blob_value_decode(q_slice stored, int comp, uint64_t max, q_buf *out)
{
	q_buf_reset(out);
	if (max > UINT32_MAX)
		max = UINT32_MAX;
	if (comp == SST_COMP_NONE)
		return stored.n > max ? Q_ECORRUPT : q_buf_append(out, stored.p, stored.n);
	if (comp != SST_COMP_SNAPPY)
		return Q_ECORRUPT;
	size_t dlen = 0;
	if (snappy_uncompressed_length((const char *)stored.p, stored.n, &dlen) != SNAPPY_OK ||
	    dlen > max)
		return Q_ECORRUPT;
	Q_RET(q_buf_reserve(out, dlen + 1));
	size_t got = dlen;
	if (snappy_uncompress((const char *)stored.p, stored.n, (char *)out->p, &got) !=
	    SNAPPY_OK || got != dlen)
		return Q_ECORRUPT;
	out->len = dlen;
	return 0;
}

int blob_rec_decode(const uint8_t *p, size_t n, q_slice *key, q_slice *value, int *comp,
		    size_t *used)
{
	if (n < BLOB_REC_HEADER)
		return Q_ECORRUPT;
	uint64_t kl = q_dec_fixed32(p + 4), vl = q_dec_fixed32(p + 8);
	if (kl + vl > n - BLOB_REC_HEADER)
		return Q_ECORRUPT;
	if (p[12] != SST_COMP_NONE && p[12] != SST_COMP_SNAPPY)
		return Q_ECORRUPT;
	*comp = p[12];
	size_t hn = BLOB_REC_HEADER + (size_t)kl;
	if (q_csum32_2(p + 4, hn - 4, p + hn, (size_t)vl) != q_dec_fixed32(p))
		return Q_ECORRUPT;
	*key = q_slice_make(p + BLOB_REC_HEADER, (size_t)kl);
	*value = q_slice_make(p + hn, (size_t)vl);
	*used = hn + (size_t)vl;
	return 0;
}

int blob_header_check(const uint8_t *p, size_t n)
{
	if (n < BLOB_FILE_HEADER || q_dec_fixed64(p) != BLOB_MAGIC)
		return Q_ECORRUPT;
	return 0;
}

/* ---- writing ---- */

struct blob_writer {
	q_env *env;
	q_file *f;
	uint64_t number;
	uint64_t off;
	int compress;
	q_buf hdr;
	q_buf comp;      /* a compressed value */
	char path[512];
};

int blob_writer_new(q_env *env, const char *path, uint64_t number, int compress,
		    blob_writer **out)
{
	*out = NULL;
	blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->env = env;
	w->number = number;
	w->compress = compress;
	q_buf_init(&w->hdr);
	q_buf_init(&w->comp);
	snprintf(w->path, sizeof(w->path), "%s", path);
	uint8_t h[BLOB_FILE_HEADER];
	q_enc_fixed64(h, BLOB_MAGIC);
	int rc = q_env_open(env, path, Q_OPEN_CREATE, &w->f);
	if (rc) {
		free(w);
		return rc;
	}
	rc = q_file_append(w->f, h, sizeof(h));
	if (rc) {
		blob_writer_abandon(w);
		return rc;
	}
	w->off = sizeof(h);
	*out = w;
	return 0;
}

int blob_writer_add(blob_writer *w, q_slice key, q_slice value, blob_ptr *ptr)
{
	if (key.n > UINT32_MAX || value.n > UINT32_MAX)
		return Q_ETOOBIG;
	int comp = SST_COMP_NONE;
	if (w->compress && value.n >= 64 &&
	    (value.n <= BLOB_SAMPLE || blob_worth_compressing(value, &w->comp))) {
		size_t max = snappy_max_compressed_length(value.n);
		q_buf_reset(&w->comp);
		Q_RET(q_buf_reserve(&w->comp, max));
		size_t clen = max;
		if (snappy_compress((const char *)value.p, value.n, (char *)w->comp.p, &clen) ==
			    SNAPPY_OK &&
		    clen <= value.n - value.n / SST_MIN_SAVING_DIV) {
			value = q_slice_make(w->comp.p, clen);
			comp = SST_COMP_SNAPPY;
		}
	}
	q_buf_reset(&w->hdr);
	Q_RET(q_buf_reserve(&w->hdr, BLOB_REC_HEADER + key.n));
	uint8_t *h = w->hdr.p;
	q_enc_fixed32(h + 4, (uint32_t)key.n);
	q_enc_fixed32(h + 8, (uint32_t)value.n);
	h[12] = (uint8_t)comp;
	if (key.n)
		memcpy(h + BLOB_REC_HEADER, key.p, key.n);
	size_t hn = BLOB_REC_HEADER + key.n;
	q_enc_fixed32(h, q_csum32_2(h + 4, hn - 4, value.p, value.n));
	Q_RET(q_file_append(w->f, h, hn));
	if (value.n)
		Q_RET(q_file_append(w->f, value.p, value.n));
	ptr->number = w->number;
	ptr->offset = w->off;
	ptr->vlen = value.n;
	ptr->kind = BLOB_PTR_REC;
	ptr->csum = 0;
	w->off += hn + value.n;
	return 0;
}

uint64_t blob_writer_size(const blob_writer *w)
{
	return w->off;
}

int blob_writer_finish(blob_writer *w, uint64_t *size)
{
	int rc = q_file_sync(w->f);
	int rc2 = q_file_close(w->f);
	w->f = NULL;
	if (rc == 0)
		rc = rc2;
	if (rc) {
		Q_ERROR("lsm", "cannot write blob file %s: %s", w->path, q_strerror(rc));
		q_env_unlink(w->env, w->path);
	} else {
		*size = w->off;
	}
	q_buf_free(&w->hdr);
	q_buf_free(&w->comp);
	free(w);
	return rc;
}

void blob_writer_abandon(blob_writer *w)
{
	if (!w)
		return;
	if (w->f)
		q_file_close(w->f);
	q_env_unlink(w->env, w->path);
	q_buf_free(&w->hdr);
	q_buf_free(&w->comp);
	free(w);
}
