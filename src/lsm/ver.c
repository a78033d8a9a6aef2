/*
 * ver.c - versions, file handles and the manifest codec (see ver.h).
 */
#include "lsm/ver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"

void ver_table_path(char *out, size_t cap, const char *dir, uint64_t number)
{
	snprintf(out, cap, "%s/%06llu.sst", dir, (unsigned long long)number);
}

void ver_log_path(char *out, size_t cap, const char *dir, uint64_t number)
{
	snprintf(out, cap, "%s/%06llu.log", dir, (unsigned long long)number);
}

lsm_file *ver_file_new(q_env *env, const char *dir, uint64_t number, uint64_t size,
		       q_slice smallest, q_slice largest)
{
	lsm_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	q_buf_init(&f->smallest);
	q_buf_init(&f->largest);
	if (q_buf_append(&f->smallest, smallest.p, smallest.n) ||
	    q_buf_append(&f->largest, largest.p, largest.n)) {
		q_buf_free(&f->smallest);
		q_buf_free(&f->largest);
		free(f);
		return NULL;
	}
	f->number = number;
	f->size = size;
	f->env = env;
	atomic_init(&f->refs, 1);
	ver_table_path(f->path, sizeof(f->path), dir, number);
	return f;
}

void ver_file_ref(lsm_file *f)
{
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void ver_file_unref(lsm_file *f)
{
	if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	sst_close(f->t);
	if (atomic_load(&f->quarantined)) {
		char bad[600];
		snprintf(bad, sizeof(bad), "%s.bad", f->path);
		int rc = q_env_rename(f->env, f->path, bad);
		if (rc && rc != -ENOENT)
			Q_WARN("lsm", "cannot move quarantined table %s aside: %s", f->path,
			       q_strerror(rc));
	} else if (atomic_load(&f->obsolete)) {
		int rc = q_env_unlink(f->env, f->path);
		if (rc && rc != -ENOENT)
			Q_WARN("lsm", "cannot delete obsolete table %s: %s", f->path, q_strerror(rc));
	}
	for (size_t i = 0; i < f->nblobs; i++)
		blob_unref(f->blobs[i]);
	free(f->blobs);
	q_buf_free(&f->smallest);
	q_buf_free(&f->largest);
	free(f);
}

int ver_file_set_blobs(lsm_file *f, lsm_blob *const *blobs, size_t n)
{
	if (n == 0)
		return 0;
	lsm_blob **a = realloc(f->blobs, (f->nblobs + n) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	f->blobs = a;
	for (size_t i = 0; i < n; i++) {
		int dup = 0;
		for (size_t j = 0; j < f->nblobs && !dup; j++)
			dup = f->blobs[j] == blobs[i];
		if (dup)
			continue;
		blob_ref(blobs[i]);
		f->blobs[f->nblobs++] = blobs[i];
	}
	return 0;
}

int ver_file_has_blob(const lsm_file *f, const lsm_blob *b)
{
	for (size_t i = 0; i < f->nblobs; i++)
		if (f->blobs[i] == b)
			return 1;
	return 0;
}

lsm_blob *ver_find_blob(const lsm_version *v, uint64_t number)
{
	size_t lo = 0, hi = v->nblobs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->blobs[mid]->number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->nblobs && v->blobs[lo]->number == number ? v->blobs[lo] : NULL;
}

static int blob_order(const void *a, const void *b)
{
	const lsm_blob *x = *(lsm_blob *const *)a, *y = *(lsm_blob *const *)b;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* v->blobs = the union of the blob files of v's tables (references taken). */
static int ver_collect_blobs(lsm_version *v)
{
	size_t n = 0;
	for (int l = 0; l < LSM_LEVELS; l++)
		for (size_t i = 0; i < v->nfiles[l]; i++)
			n += v->files[l][i]->nblobs;
	if (n == 0)
		return 0;
	lsm_blob **a = malloc(n * sizeof(*a));
	if (!a)
		return -ENOMEM;
	size_t k = 0;
	for (int l = 0; l < LSM_LEVELS; l++)
		for (size_t i = 0; i < v->nfiles[l]; i++)
			for (size_t j = 0; j < v->files[l][i]->nblobs; j++)
				a[k++] = v->files[l][i]->blobs[j];
	qsort(a, n, sizeof(*a), blob_order);
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if (u && a[u - 1] == a[i])
			continue;
		a[u++] = a[i];
		blob_ref(a[i]);
	}
	v->blobs = a;
	v->nblobs = u;
	return 0;
}

lsm_version *ver_new(void)
{
	lsm_version *v = calloc(1, sizeof(*v));
	if (v)
		atomic_init(&v->refs, 1);
	return v;
}

void ver_ref(lsm_version *v)
{
	atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void ver_unref(lsm_version *v)
{
	if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int l = 0; l < LSM_LEVELS; l++) {
		for (size_t i = 0; i < v->nfiles[l]; i++)
			ver_file_unref(v->files[l][i]);
		free(v->files[l]);
	}
	for (size_t i = 0; i < v->nblobs; i++)
		blob_unref(v->blobs[i]);
	free(v->blobs);
	free(v);
}

static int file_order_l0(const void *a, const void *b)
{
	const lsm_file *fa = *(lsm_file *const *)a, *fb = *(lsm_file *const *)b;
	return fa->number > fb->number ? -1 : fa->number < fb->number ? 1 : 0;
}

static int file_order_key(const void *a, const void *b)
{
	const lsm_file *fa = *(lsm_file *const *)a, *fb = *(lsm_file *const *)b;
	return ikey_cmp(q_buf_slice(&fa->smallest), q_buf_slice(&fb->smallest));
}

lsm_version *ver_edit(const lsm_version *base, lsm_file *const *del, size_t nd,
		      lsm_file *const *add, const int *add_level, size_t na)
{
	lsm_version *v = ver_new();
	if (!v)
		return NULL;
	/* the files to drop are marked for the walk over base (edit_mark,
	 * cleared again below) */
	for (size_t j = 0; j < nd; j++)
		del[j]->edit_mark = 1;
	for (int l = 0; l < LSM_LEVELS; l++) {
		size_t cap = (base ? base->nfiles[l] : 0) + na;
		if (cap == 0)
			continue;
		v->files[l] = malloc(cap * sizeof(lsm_file *));
		if (!v->files[l]) {
			ver_unref(v);
			v = NULL;
			goto out;
		}
		for (size_t i = 0; base && i < base->nfiles[l]; i++) {
			lsm_file *f = base->files[l][i];
			if (f->edit_mark)
				continue;
			ver_file_ref(f);
			v->files[l][v->nfiles[l]++] = f;
		}
		for (size_t j = 0; j < na; j++)
			if (add_level[j] == l) {
				ver_file_ref(add[j]);
				v->files[l][v->nfiles[l]++] = add[j];
			}
		qsort(v->files[l], v->nfiles[l], sizeof(lsm_file *),
		      l == 0 ? file_order_l0 : file_order_key);
	}
	if (ver_collect_blobs(v)) {
		ver_unref(v);
		v = NULL;
	}
out:
	for (size_t j = 0; j < nd; j++)
		del[j]->edit_mark = 0;
	return v;
}

uint64_t ver_level_bytes(const lsm_version *v, int level)
{
	uint64_t s = 0;
	for (size_t i = 0; i < v->nfiles[level]; i++)
		s += v->files[level][i]->size;
	return s;
}

size_t ver_find_file(const lsm_version *v, int level, q_slice ikey)
{
	size_t lo = 0, hi = v->nfiles[level];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(q_buf_slice(&v->files[level][mid]->largest), ikey) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int ver_overlaps(const lsm_version *v, int level, q_slice lo, q_slice hi)
{
	for (size_t i = 0; i < v->nfiles[level]; i++) {
		lsm_file *f = v->files[level][i];
		q_slice s = ikey_user(q_buf_slice(&f->smallest));
		q_slice l = ikey_user(q_buf_slice(&f->largest));
		if (ukey_cmp(l.p, l.n, lo.p, lo.n) < 0 || ukey_cmp(s.p, s.n, hi.p, hi.n) > 0)
			continue;
		return 1;
	}
	return 0;
}

/* ---- level iterator ---- */

typedef struct lvl_iter {
	lsm_it base;
	lsm_file **files;
	size_t n, idx;
	lsm_it *cur;
	int fill_cache;
	int status;
} lvl_iter;

static void li_open(lvl_iter *li, size_t idx)
{
	it_free(li->cur);
	li->cur = NULL;
	li->idx = idx;
	if (idx >= li->n)
		return;
	li->cur = sst_iter_new(li->files[idx]->t, li->fill_cache);
	if (!li->cur)
		li->status = -ENOMEM;
}

static void li_skip(lvl_iter *li)
{
	while (li->cur && !it_valid(li->cur)) {
		int rc = it_status(li->cur);
		if (rc) {
			li->status = rc;
			return;
		}
		li_open(li, li->idx + 1);
		if (li->cur)
			it_seek_first(li->cur);
	}
}

static int li_valid(lsm_it *it)
{
	lvl_iter *li = (lvl_iter *)it;
	return !li->status && li->cur && it_valid(li->cur);
}
static void li_seek_first(lsm_it *it)
{
	lvl_iter *li = (lvl_iter *)it;
	if (li->status)
		return;
	li_open(li, 0);
	if (li->cur)
		it_seek_first(li->cur);
	li_skip(li);
}
static void li_seek(lsm_it *it, q_slice k)
{
	lvl_iter *li = (lvl_iter *)it;
	if (li->status)
		return;
	size_t lo = 0, hi = li->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ikey_cmp(q_buf_slice(&li->files[mid]->largest), k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	li_open(li, lo);
	if (li->cur)
		it_seek(li->cur, k);
	li_skip(li);
}
static void li_next(lsm_it *it)
{
	lvl_iter *li = (lvl_iter *)it;
	if (!li_valid(it))
		return;
	it_next(li->cur);
	li_skip(li);
}
static q_slice li_key(lsm_it *it) { return it_key(((lvl_iter *)it)->cur); }
static q_slice li_value(lsm_it *it) { return it_value(((lvl_iter *)it)->cur); }
static int li_status(lsm_it *it) { return ((lvl_iter *)it)->status; }
static void li_free(lsm_it *it)
{
	lvl_iter *li = (lvl_iter *)it;
	it_free(li->cur);
	free(li);
}

static const struct lsm_it_ops lvl_iter_ops = {
	li_valid, li_seek_first, li_seek, li_next, li_key, li_value, li_status, li_free,
};

lsm_it *ver_files_iter(lsm_file *const *files, size_t n, int fill_cache)
{
	lvl_iter *li = calloc(1, sizeof(*li));
	if (!li)
		return NULL;
	li->base.ops = &lvl_iter_ops;
	li->files = (lsm_file **)files;
	li->n = n;
	li->fill_cache = fill_cache;
	return &li->base;
}

lsm_it *ver_level_iter(const lsm_version *v, int level, int fill_cache)
{
	return ver_files_iter(v->files[level], v->nfiles[level], fill_cache);
}

int ver_key_in_level(const lsm_version *v, int level, q_slice ukey)
{
	size_t lo = 0, hi = v->nfiles[level];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		q_slice l = ikey_user(q_buf_slice(&v->files[level][mid]->largest));
		if (ukey_cmp(l.p, l.n, ukey.p, ukey.n) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == v->nfiles[level])
		return 0;
	q_slice s = ikey_user(q_buf_slice(&v->files[level][lo]->smallest));
	return ukey_cmp(s.p, s.n, ukey.p, ukey.n) <= 0;
}

/* ---- manifest codec ---- */

int ver_manifest_encode(q_buf *out, uint64_t next_file, uint64_t last_seq, uint64_t log_number,
			const lsm_version *v)
{
	size_t start = out->len;
	uint64_t n = 0;
	for (int l = 0; l < LSM_LEVELS; l++)
		n += v ? v->nfiles[l] : 0;
	/* version 2 while no kept log is listed, so a store that has none
	 * still opens with a binary that predates them */
	uint32_t version = 2;
	for (size_t i = 0; v && i < v->nblobs; i++)
		if (v->blobs[i]->is_log)
			version = MANIFEST_VERSION;
	Q_RET(q_put_fixed64(out, MANIFEST_MAGIC));
	Q_RET(q_put_fixed32(out, version));
	Q_RET(q_put_varint(out, next_file));
	Q_RET(q_put_varint(out, last_seq));
	Q_RET(q_put_varint(out, log_number));
	Q_RET(q_put_varint(out, n));
	for (int l = 0; v && l < LSM_LEVELS; l++)
		for (size_t i = 0; i < v->nfiles[l]; i++) {
			lsm_file *f = v->files[l][i];
			Q_RET(q_buf_append_byte(out, (uint8_t)l));
			Q_RET(q_put_varint(out, f->number));
			Q_RET(q_put_varint(out, f->size));
			Q_RET(q_put_lenbytes(out, f->smallest.p, f->smallest.len));
			Q_RET(q_put_lenbytes(out, f->largest.p, f->largest.len));
			Q_RET(q_put_varint(out, f->nblobs));
			for (size_t j = 0; j < f->nblobs; j++)
				Q_RET(q_put_varint(out, f->blobs[j]->number));
		}
	Q_RET(q_put_varint(out, v ? v->nblobs : 0));
	for (size_t i = 0; v && i < v->nblobs; i++) {
		lsm_blob *b = v->blobs[i];
		Q_RET(q_put_varint(out, b->number));
		Q_RET(q_put_varint(out, b->size));
		Q_RET(q_put_varint(out, atomic_load(&b->garbage)));
		if (version >= 3)
			Q_RET(q_buf_append_byte(out, b->is_log ? MANIFEST_BLOB_LOG
							      : MANIFEST_BLOB_FILE));
	}
	return q_put_fixed32(out, q_csum32(out->p + start, out->len - start));
}

void ver_manifest_free(man_data *md)
{
	free(md->files);
	free(md->refs);
	free(md->blobs);
	md->files = NULL;
	md->refs = NULL;
	md->blobs = NULL;
	md->nfiles = md->nrefs = md->nblobs = 0;
}

int ver_manifest_decode(const uint8_t *buf, size_t n, man_data *md, size_t *bad_off)
{
	memset(md, 0, sizeof(*md));
	*bad_off = 0;
	if (n < 16)
		return Q_ECORRUPT;
	if (q_dec_fixed64(buf) != MANIFEST_MAGIC)
		return Q_ECORRUPT;
	if (q_csum32(buf, n - 4) != q_dec_fixed32(buf + n - 4)) {
		*bad_off = n - 4;
		return Q_ECORRUPT;
	}
	uint32_t version = q_dec_fixed32(buf + 8);
	if (version < MANIFEST_VERSION_MIN || version > MANIFEST_VERSION) {
		*bad_off = 8;
		return Q_EVERSION;
	}
	q_reader r = q_reader_make(buf + 12, n - 16);
	uint64_t count;
	int rc;
	if (q_get_varint64(&r, &md->next_file) || q_get_varint64(&r, &md->last_seq) ||
	    q_get_varint64(&r, &md->log_number) || q_get_varint64(&r, &count))
		goto bad;
	if (count > q_reader_left(&r) / 5 || md->last_seq > SEQ_MAX)
		goto bad;
	md->files = calloc(count ? count : 1, sizeof(man_file));
	if (!md->files)
		return -ENOMEM;
	size_t capref = 0;
	for (uint64_t i = 0; i < count; i++) {
		man_file *f = &md->files[i];
		uint8_t lvl;
		if (q_get_u8(&r, &lvl) || lvl >= LSM_LEVELS || q_get_varint64(&r, &f->number) ||
		    q_get_varint64(&r, &f->size) || q_get_lenbytes(&r, SIZE_MAX, &f->smallest) ||
		    q_get_lenbytes(&r, SIZE_MAX, &f->largest))
			goto bad;
		if (f->smallest.n < IKEY_TRAILER || f->largest.n < IKEY_TRAILER ||
		    f->number >= md->next_file)
			goto bad;
		f->level = lvl;
		f->ref_start = md->nrefs;
		if (version >= 2) {
			uint64_t nr;
			if (q_get_varint64(&r, &nr) || nr > q_reader_left(&r))
				goto bad;
			for (uint64_t j = 0; j < nr; j++) {
				uint64_t num;
				if (q_get_varint64(&r, &num) || num >= md->next_file)
					goto bad;
				if (md->nrefs == capref) {
					size_t nc = capref ? capref * 2 : 16;
					uint64_t *a = realloc(md->refs, nc * sizeof(*a));
					if (!a) {
						ver_manifest_free(md);
						return -ENOMEM;
					}
					md->refs = a;
					capref = nc;
				}
				md->refs[md->nrefs++] = num;
			}
			f->nrefs = (size_t)nr;
		}
		md->nfiles++;
	}
	if (version >= 2) {
		uint64_t nb;
		if (q_get_varint64(&r, &nb) || nb > q_reader_left(&r) / 3)
			goto bad;
		md->blobs = calloc(nb ? nb : 1, sizeof(man_blob));
		if (!md->blobs) {
			ver_manifest_free(md);
			return -ENOMEM;
		}
		for (uint64_t i = 0; i < nb; i++) {
			man_blob *b = &md->blobs[i];
			if (q_get_varint64(&r, &b->number) || q_get_varint64(&r, &b->size) ||
			    q_get_varint64(&r, &b->garbage))
				goto bad;
			uint8_t kind = MANIFEST_BLOB_FILE;
			if (version >= 3 && (q_get_u8(&r, &kind) || kind > MANIFEST_BLOB_LOG))
				goto bad;
			b->is_log = kind == MANIFEST_BLOB_LOG;
			if (b->number >= md->next_file ||
			    (!b->is_log && b->size < BLOB_FILE_HEADER) ||
			    b->garbage > b->size || (i && b->number <= md->blobs[i - 1].number))
				goto bad;
			md->nblobs++;
		}
		/* every reference names a listed blob file */
		for (size_t i = 0; i < md->nrefs; i++) {
			size_t lo = 0, hi = md->nblobs;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (md->blobs[mid].number < md->refs[i])
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo == md->nblobs || md->blobs[lo].number != md->refs[i])
				goto bad;
		}
	}
	if (q_reader_left(&r) != 0)
		goto bad;
	return 0;
bad:
	rc = Q_ECORRUPT;
	*bad_off = (size_t)(r.p - buf);
	ver_manifest_free(md);
	return rc;
}
