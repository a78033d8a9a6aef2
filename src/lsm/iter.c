/*
 * iter.c - generic internal iterators: the n-way merge and the error
 * iterator (see lsm_internal.h).
 *
 * The merge yields the union of its children in internal-key order; equal
 * keys (which the engine never produces: sequence numbers are unique) come
 * from the lower-indexed child first. Children are few (memtables, level-0
 * tables, one per deeper level), so the smallest is found by a linear scan.
 */
#include <errno.h>
#include <stdlib.h>

#include "lsm/lsm_internal.h"
#include "util/qerr.h"

typedef struct merge_iter {
	lsm_it base;
	lsm_it **c;
	size_t n;
	lsm_it *cur;
} merge_iter;

static void mg_pick(merge_iter *m)
{
	lsm_it *best = NULL;
	q_slice bk = {NULL, 0};
	for (size_t i = 0; i < m->n; i++) {
		if (!it_valid(m->c[i]))
			continue;
		q_slice k = it_key(m->c[i]);
		if (!best || ikey_cmp(k, bk) < 0) {
			best = m->c[i];
			bk = k;
		}
	}
	m->cur = best;
}

static int mg_valid(lsm_it *it)
{
	merge_iter *m = (merge_iter *)it;
	if (!m->cur)
		return 0;
	/* an error in any child stops the merge: a missing child could hide
	 * a newer version of a key */
	for (size_t i = 0; i < m->n; i++)
		if (it_status(m->c[i]))
			return 0;
	return 1;
}
static void mg_seek_first(lsm_it *it)
{
	merge_iter *m = (merge_iter *)it;
	for (size_t i = 0; i < m->n; i++)
		it_seek_first(m->c[i]);
	mg_pick(m);
}
static void mg_seek(lsm_it *it, q_slice k)
{
	merge_iter *m = (merge_iter *)it;
	for (size_t i = 0; i < m->n; i++)
		it_seek(m->c[i], k);
	mg_pick(m);
}
static void mg_next(lsm_it *it)
{
	merge_iter *m = (merge_iter *)it;
	if (!m->cur)
		return;
	it_next(m->cur);
	mg_pick(m);
}
static q_slice mg_key(lsm_it *it) { return it_key(((merge_iter *)it)->cur); }
static q_slice mg_value(lsm_it *it) { return it_value(((merge_iter *)it)->cur); }
static int mg_status(lsm_it *it)
{
	merge_iter *m = (merge_iter *)it;
	for (size_t i = 0; i < m->n; i++) {
		int rc = it_status(m->c[i]);
		if (rc)
			return rc;
	}
	return 0;
}
static void mg_free(lsm_it *it)
{
	merge_iter *m = (merge_iter *)it;
	for (size_t i = 0; i < m->n; i++)
		it_free(m->c[i]);
	free(m->c);
	free(m);
}

static const struct lsm_it_ops merge_ops = {
	mg_valid, mg_seek_first, mg_seek, mg_next, mg_key, mg_value, mg_status, mg_free,
};

lsm_it *it_merge_new(lsm_it **children, size_t n)
{
	merge_iter *m = calloc(1, sizeof(*m));
	lsm_it **c = malloc((n ? n : 1) * sizeof(*c));
	if (!m || !c) {
		free(m);
		free(c);
		for (size_t i = 0; i < n; i++)
			it_free(children[i]);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		c[i] = children[i];
	m->base.ops = &merge_ops;
	m->c = c;
	m->n = n;
	return &m->base;
}

typedef struct err_iter {
	lsm_it base;
	int rc;
} err_iter;

static int ei_valid(lsm_it *it) { return 0; }
static void ei_seek_first(lsm_it *it) {}
static void ei_seek(lsm_it *it, q_slice k) {}
static void ei_next(lsm_it *it) {}
static q_slice ei_key(lsm_it *it) { return q_slice_make(NULL, 0); }
static int ei_status(lsm_it *it) { return ((err_iter *)it)->rc; }
static void ei_free(lsm_it *it) { free(it); }

static const struct lsm_it_ops err_ops = {
	ei_valid, ei_seek_first, ei_seek, ei_next, ei_key, ei_key, ei_status, ei_free,
};

lsm_it *it_error_new(int rc)
{
	err_iter *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->base.ops = &err_ops;
	e->rc = rc;
	return &e->base;
}

int ikey_build(q_buf *b, q_slice ukey, uint64_t seq, int kind)
{
	q_buf_reset(b);
	Q_RET(q_buf_reserve(b, ukey.n + IKEY_TRAILER));
	q_buf_append(b, ukey.p, ukey.n);
	return q_put_fixed64(b, ikey_pack(seq, kind));
}
