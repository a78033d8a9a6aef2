/*
 * wal.c - commit log writer and reader (see wal.h for the contract and
 * docs/lsm.md for the byte layout).
 */
#include "lsm/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lsm/lsm_format.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

#define WAL_BUF_MAX 65536u
#define WAL_IOV 64 /* fragments per pwritev of wal_add_direct (2 MiB) */

struct wal_writer {
	q_file *f;          /* through the env; NULL when fd is used */
	int fd;             /* preallocated POSIX file, or -1 */
	uint64_t foff;      /* bytes handed to the file (fd only) */
	uint64_t alloc_end; /* zeros written up to here (fd only) */
	size_t chunk;       /* preallocation step (fd only) */
	uint64_t off;       /* logical size: written + buffered */
	int buffered;
	int failed;         /* first error, sticky */
	q_buf buf;
};

static int pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t k = pwritev(fd, iov, cnt, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (uint64_t)k;
		while (cnt > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	struct iovec v = {(void *)p, n};
	return pwritev_all(fd, &v, 1, off);
}

/* Zeros from alloc_end up to at least end (whole chunks); nothing when
 * the file is not preallocated (chunk 0). */
static int wal_extend(wal_writer *w, uint64_t end)
{
	static const uint8_t zeros[65536];
	while (w->chunk && w->alloc_end < end) {
		uint64_t stop = w->alloc_end + w->chunk;
		while (w->alloc_end < stop) {
			size_t k = stop - w->alloc_end < sizeof(zeros) ? (size_t)(stop - w->alloc_end)
								     : sizeof(zeros);
			Q_RET(pwrite_all(w->fd, zeros, k, w->alloc_end));
			w->alloc_end += k;
		}
	}
	return 0;
}

int wal_writer_open(q_env *env, const char *path, int buffered, wal_writer **out)
{
	wal_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = q_env_open(env, path, Q_OPEN_CREATE | Q_OPEN_EXCL, &w->f);
	if (rc) {
		free(w);
		return rc;
	}
	w->fd = -1;
	w->buffered = buffered;
	q_buf_init(&w->buf);
	*out = w;
	return 0;
}

int wal_writer_open_prealloc(q_env *env, const char *path, int buffered, size_t chunk,
			     wal_writer **out)
{
	if (env != q_env_posix())
		return wal_writer_open(env, path, buffered, out);
	wal_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int rc = -errno;
		free(w);
		return rc;
	}
	w->chunk = chunk;
	w->buffered = buffered;
	q_buf_init(&w->buf);
	/* the first chunk is durable before any record: the first sync of a
	 * record already finds the blocks allocated */
	int rc = chunk ? wal_extend(w, 1) : 0;
	if (rc == 0 && chunk && fdatasync(w->fd))
		rc = -errno;
	if (rc) {
		close(w->fd);
		unlink(path);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int wal_flush_buf(wal_writer *w)
{
	if (w->failed)
		return w->failed;
	if (w->buf.len == 0)
		return 0;
	int rc;
	if (w->fd >= 0) {
		/* zeros ahead of the records: extended a chunk at a time (that
		 * one sync then also commits the new size) */
		rc = wal_extend(w, w->foff + w->buf.len);
		if (rc == 0)
			rc = pwrite_all(w->fd, w->buf.p, w->buf.len, w->foff);
		if (rc == 0)
			w->foff += w->buf.len;
	} else {
		rc = q_file_append(w->f, w->buf.p, w->buf.len);
	}
	q_buf_reset(&w->buf);
	if (rc)
		w->failed = rc;
	return rc;
}

/* Emits one physical record into the buffer. */
static int wal_emit(wal_writer *w, int type, const uint8_t *p, size_t n)
{
	uint8_t h[WAL_HEADER_SIZE];
	uint8_t t = (uint8_t)type;
	q_enc_fixed32(h, q_csum32_2(&t, 1, p, n));
	q_enc_fixed16(h + 4, (uint16_t)n);
	h[6] = t;
	int rc = q_buf_append(&w->buf, h, sizeof(h));
	if (rc == 0)
		rc = q_buf_append(&w->buf, p, n);
	if (rc)
		return rc; /* wal_add rolls the buffer back */
	w->off += WAL_HEADER_SIZE + n;
	return 0;
}

int wal_add(wal_writer *w, const void *data, size_t n)
{
	return wal_add_at(w, data, n, NULL);
}

/* wal_add of a large record on a log written through its descriptor
 * (buffered or not; any buffered bytes go first): the same
 * bytes as the buffered path, but written with pwritev from the caller's
 * memory (headers and padding from a small array), WAL_IOV fragments'
 * worth at a time, instead of being copied into the buffer first. */
static int wal_add_direct(wal_writer *w, const uint8_t *p, size_t n, uint64_t *start)
{
	static const uint8_t zeros[WAL_HEADER_SIZE];
	struct iovec iov[3 * WAL_IOV];
	uint8_t hdr[WAL_IOV][WAL_HEADER_SIZE];
	int rc = wal_flush_buf(w);
	if (rc)
		return rc;
	int first = 1, done = 0;
	while (!done) {
		int ni = 0, nh = 0;
		uint64_t from = w->off;
		uint64_t off = w->off;
		while (!done && nh < WAL_IOV) {
			size_t left = WAL_BLOCK_SIZE - (size_t)(off % WAL_BLOCK_SIZE);
			if (left < WAL_HEADER_SIZE) {
				iov[ni].iov_base = (void *)zeros;
				iov[ni++].iov_len = left;
				off += left;
				left = WAL_BLOCK_SIZE;
			}
			if (first && start)
				*start = off;
			size_t avail = left - WAL_HEADER_SIZE;
			size_t frag = n < avail ? n : avail;
			int last = frag == n;
			int type = first && last ? WAL_FULL : first ? WAL_FIRST
							: last ? WAL_LAST : WAL_MIDDLE;
			uint8_t t = (uint8_t)type;
			q_enc_fixed32(hdr[nh], q_csum32_2(&t, 1, p, frag));
			q_enc_fixed16(hdr[nh] + 4, (uint16_t)frag);
			hdr[nh][6] = t;
			iov[ni].iov_base = hdr[nh++];
			iov[ni++].iov_len = WAL_HEADER_SIZE;
			if (frag) {
				iov[ni].iov_base = (void *)p;
				iov[ni++].iov_len = frag;
			}
			p += frag;
			n -= frag;
			off += WAL_HEADER_SIZE + frag;
			first = 0;
			done = last;
		}
		rc = wal_extend(w, off);
		if (rc == 0)
			rc = pwritev_all(w->fd, iov, ni, from);
		if (rc) {
			w->failed = rc; /* part of the record may be in the file */
			return rc;
		}
		w->off = w->foff = off;
	}
	return 0;
}

int wal_add_at(wal_writer *w, const void *data, size_t n, uint64_t *start)
{
	if (w->failed)
		return w->failed;
	if (w->fd >= 0 && n >= WAL_BUF_MAX)
		return wal_add_direct(w, data, n, start);
	const uint8_t *p = data;
	int first = 1;
	int rc;
	/* a buffer that cannot grow (out of memory) loses only this record:
	 * the buffer goes back to where the record began, so the records
	 * before it (acknowledged under buffered syncs) still reach the file.
	 * Once part of the record was written out, the writer has failed. */
	size_t len0 = w->buf.len;
	uint64_t off0 = w->off;
	int wrote_part = 0;
	do {
		size_t left = WAL_BLOCK_SIZE - (size_t)(w->off % WAL_BLOCK_SIZE);
		if (left < WAL_HEADER_SIZE) {
			static const uint8_t zeros[WAL_HEADER_SIZE];
			if ((rc = q_buf_append(&w->buf, zeros, left)))
				goto fail;
			w->off += left;
			left = WAL_BLOCK_SIZE;
		}
		if (first && start)
			*start = w->off;
		size_t avail = left - WAL_HEADER_SIZE;
		size_t frag = n < avail ? n : avail;
		int last = frag == n;
		int type = first && last ? WAL_FULL : first ? WAL_FIRST : last ? WAL_LAST : WAL_MIDDLE;
		if ((rc = wal_emit(w, type, p, frag)))
			goto fail;
		p += frag;
		n -= frag;
		first = 0;
		if (w->buf.len >= WAL_BUF_MAX) {
			if ((rc = wal_flush_buf(w)))
				return rc;
			wrote_part = n > 0;
		}
	} while (n > 0);
	if (!w->buffered)
		return wal_flush_buf(w);
	return 0;
fail:
	if (wrote_part) {
		w->failed = rc;
	} else {
		w->buf.len = len0;
		w->off = off0;
	}
	return rc;
}

uint64_t wal_payload_offset(uint64_t start, uint64_t logical)
{
	uint64_t first = WAL_BLOCK_SIZE - start % WAL_BLOCK_SIZE - WAL_HEADER_SIZE;
	if (logical < first)
		return start + WAL_HEADER_SIZE + logical;
	logical -= first;
	uint64_t per = WAL_BLOCK_SIZE - WAL_HEADER_SIZE;
	uint64_t blk = start / WAL_BLOCK_SIZE + 1 + logical / per;
	return blk * WAL_BLOCK_SIZE + WAL_HEADER_SIZE + logical % per;
}

int wal_flush(wal_writer *w)
{
	return wal_flush_buf(w);
}

int wal_sync(wal_writer *w)
{
	int rc = wal_flush_buf(w);
	if (rc)
		return rc;
	if (w->fd >= 0)
		rc = fdatasync(w->fd) ? -errno : 0;
	else
		rc = q_file_sync(w->f);
	if (rc)
		w->failed = rc;
	return rc;
}

size_t wal_buffered(const wal_writer *w)
{
	return w->buf.len;
}

int wal_fits_buffer(const wal_writer *w, size_t n)
{
	if (w->failed || !w->buffered || n >= WAL_BUF_MAX)
		return 0;
	/* at most: padding of the current block (< one header), then one
	 * header per block the record touches */
	size_t frags = n / (WAL_BLOCK_SIZE - WAL_HEADER_SIZE) + 2;
	size_t need = WAL_HEADER_SIZE + frags * WAL_HEADER_SIZE + n;
	/* wal_add_at writes the buffer out once it reaches WAL_BUF_MAX */
	return w->buf.len + need < WAL_BUF_MAX;
}

int wal_failed(const wal_writer *w)
{
	return w->failed;
}

uint64_t wal_size(const wal_writer *w)
{
	return w->off;
}

int wal_writer_close(wal_writer *w)
{
	if (!w)
		return 0;
	int rc = wal_flush_buf(w);
	int rc2 = 0;
	if (w->fd >= 0) {
		/* drop the unused zeros (not synced: if the shrink is lost, the
		 * zeros read as padding) */
		if (rc == 0 && w->foff < w->alloc_end && ftruncate(w->fd, (off_t)w->foff))
			rc2 = -errno;
		if (close(w->fd) && !rc2)
			rc2 = -errno;
	} else {
		rc2 = q_file_close(w->f);
	}
	q_buf_free(&w->buf);
	free(w);
	return rc ? rc : rc2;
}

/* ---- reader ---- */

void wal_reader_init(wal_reader *r, const uint8_t *data, size_t n, wal_report_fn fn, void *arg)
{
	memset(r, 0, sizeof(*r));
	r->data = data;
	r->n = n;
	r->report = fn;
	r->arg = arg;
	q_buf_init(&r->frag);
}

void wal_reader_free(wal_reader *r)
{
	q_buf_free(&r->frag);
}

static void wal_drop(wal_reader *r, uint64_t off, size_t bytes, const char *why, int torn)
{
	if (!torn)
		r->corrupt++;
	if (r->report)
		r->report(r->arg, off, bytes, why, torn);
}

/* 1 if data[from, n) is non-empty and all zero: what follows the last
 * record written into a preallocated log. */
static int zero_tail(const wal_reader *r, size_t from)
{
	if (from >= r->n)
		return 0;
	for (size_t i = from; i < r->n; i++)
		if (r->data[i])
			return 0;
	return 1;
}

static void wal_drop_frag(wal_reader *r, const char *why)
{
	if (r->in_frag)
		wal_drop(r, r->frag_off, r->frag.len, why, 0);
	r->in_frag = 0;
	q_buf_reset(&r->frag);
}

int wal_read(wal_reader *r, q_slice *rec)
{
	for (;;) {
		if (r->pos >= r->n)
			goto eof;
		size_t left = WAL_BLOCK_SIZE - r->pos % WAL_BLOCK_SIZE;
		if (left < WAL_HEADER_SIZE) {
			r->pos += left; /* block trailer */
			if (r->pos > r->n)
				r->pos = r->n;
			continue;
		}
		if (r->n - r->pos < WAL_HEADER_SIZE) {
			wal_drop(r, r->pos, r->n - r->pos, "torn record header at end of log", 1);
			r->pos = r->n;
			goto eof;
		}
		const uint8_t *h = r->data + r->pos;
		uint32_t csum = q_dec_fixed32(h);
		size_t len = q_dec_fixed16(h + 4);
		uint8_t type = h[6];
		uint64_t off = r->pos;
		if (type == WAL_ZERO && len == 0) {
			/* zero padding (never written by us except as block tail):
			 * skip the rest of the block */
			r->pos += left;
			if (r->pos > r->n)
				r->pos = r->n;
			continue;
		}
		if (WAL_HEADER_SIZE + len > left || type > WAL_MAX_TYPE || type == WAL_ZERO) {
			size_t skip = left < r->n - r->pos ? left : r->n - r->pos;
			if (zero_tail(r, r->pos + WAL_HEADER_SIZE)) {
				wal_drop(r, off, r->n - r->pos, "torn record before the zero tail", 1);
				r->pos = r->n;
				goto eof;
			}
			wal_drop(r, off, skip, "bad record header", 0);
			wal_drop_frag(r, "fragment lost with a bad header");
			r->pos += skip;
			continue;
		}
		if (r->pos + WAL_HEADER_SIZE + len > r->n) {
			wal_drop(r, off, r->n - r->pos, "torn record at end of log", 1);
			r->pos = r->n;
			goto eof;
		}
		const uint8_t *payload = h + WAL_HEADER_SIZE;
		if (q_csum32(h + 6, len + 1) != csum) { /* type byte + payload */
			size_t skip = left < r->n - r->pos ? left : r->n - r->pos;
			if (zero_tail(r, r->pos + WAL_HEADER_SIZE + len)) {
				wal_drop(r, off, r->n - r->pos, "torn record before the zero tail", 1);
				r->pos = r->n;
				goto eof;
			}
			wal_drop(r, off, skip, "checksum mismatch", 0);
			wal_drop_frag(r, "fragment lost with a corrupt record");
			r->pos += skip;
			continue;
		}
		r->pos += WAL_HEADER_SIZE + len;
		int rc;
		switch (type) {
		case WAL_FULL:
			wal_drop_frag(r, "fragment without its last part");
			*rec = q_slice_make(payload, len);
			return 1;
		case WAL_FIRST:
			wal_drop_frag(r, "fragment without its last part");
			if ((rc = q_buf_append(&r->frag, payload, len)))
				return rc;
			r->in_frag = 1;
			r->frag_off = off;
			break;
		case WAL_MIDDLE:
		case WAL_LAST:
			if (!r->in_frag) {
				wal_drop(r, off, len, "fragment without its first part", 0);
				break;
			}
			if ((rc = q_buf_append(&r->frag, payload, len)))
				return rc;
			if (type == WAL_LAST) {
				r->in_frag = 0;
				*rec = q_buf_slice(&r->frag);
				/* frag stays filled until the next call resets it */
				r->frag_off = 0;
				return 1;
			}
			break;
		}
	}
eof:
	if (r->in_frag) {
		wal_drop(r, r->frag_off, r->frag.len, "log ends inside a record", 1);
		r->in_frag = 0;
	}
	return 0;
}
