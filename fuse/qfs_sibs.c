/*
 * qfs_sibs.c - describes the siblings of one path's object as the mount
 * shows them (see qfs_sibs.h). Mirrors the candidate building of the mount's
 * views (qfs_fs.c, view_build): one candidate for all directory siblings
 * merged, one per file sibling, sorted by qfs_cand_sort, conflict names by
 * qfs_conflict_name. No shared state; thread-safe.
 */
#include "fuse/qfs_sibs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_conflict.h"
#include "fuse/qfs_obj.h"

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static int cmp_order(const void *a, const void *b)
{
	const qfs_sibinfo *x = a, *y = b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->sib < y->sib ? -1 : x->sib > y->sib;
}

int qfs_sibs_describe(const qc_object *raw, const char *base, qfs_sibinfo **out, size_t *n)
{
	size_t live = 0, ni = 0, nc = 0;
	qfs_sibinfo *info = NULL;
	qfs_cand *cand = NULL;
	int rc = 0, has_dir = 0;
	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < raw->nsib; i++) /* (no client library needed) */
		live += !raw->sib[i].deleted;
	if (live == 0)
		return 0;
	info = calloc(live, sizeof(*info));
	cand = calloc(live + 1, sizeof(*cand));
	if (!info || !cand) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < raw->nsib && ni < live; i++) {
		const qc_sibling *s = &raw->sib[i];
		if (s->deleted)
			continue;
		qfs_sibinfo *e = &info[ni++];
		qfs_obj o;
		qfs_obj_init(&o);
		e->sib = i;
		e->order = SIZE_MAX;
		copy_str(e->node, sizeof(e->node), s->node);
		e->counter = s->counter;
		e->wall_ns = s->wall_ns;
		e->decode_rc = qfs_obj_decode(s->value.p, s->value.n, &o);
		if (e->decode_rc)
			continue;
		e->type = o.type;
		e->layout = o.layout;
		e->mode = o.mode;
		e->size = o.size;
		e->mtime_ns = o.mtime_ns;
		copy_str(e->origin, sizeof(e->origin), o.origin);
		qfs_obj_free(&o);
		if (e->type == QFS_T_DIR) {
			has_dir = 1;
			continue;
		}
		cand[nc].mtime_ns = e->mtime_ns;
		cand[nc].node = e->node;
		cand[nc].counter = e->counter;
		cand[nc].origin = e->origin;
		cand[nc].index = ni - 1;
		nc++;
	}
	if (has_dir) {
		/* the merged directory keeps the name (sorted first) */
		cand[nc].mtime_ns = INT64_MAX;
		cand[nc].node = "";
		cand[nc].origin = "";
		cand[nc].index = SIZE_MAX;
		nc++;
	}
	qfs_cand_sort(cand, nc);
	for (size_t k = 0; k < nc; k++) {
		if (cand[k].index == SIZE_MAX) {
			for (size_t i = 0; i < ni; i++) {
				if (info[i].decode_rc || info[i].type != QFS_T_DIR)
					continue;
				info[i].order = k;
				info[i].shown = k == 0;
				copy_str(info[i].name, sizeof(info[i].name), base);
			}
			continue;
		}
		qfs_sibinfo *e = &info[cand[k].index];
		e->order = k;
		e->shown = k == 0;
		if (k == 0)
			copy_str(e->name, sizeof(e->name), base);
		else if (qfs_conflict_name(base, cand, nc, k, e->name) < 0)
			e->name[0] = 0; /* base too long for any conflict name */
	}
	qsort(info, ni, sizeof(*info), cmp_order);
	free(cand);
	*out = info;
	*n = ni;
	return 0;
fail:
	free(info);
	free(cand);
	return rc;
}
