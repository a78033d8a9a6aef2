/*
 * handoff_plan.c - which ranges move where after a ring change (rules in
 * handoff.h and docs/handoff.md).
 *
 * Invariants of the result:
 *   1. moves are grouped by (sender, receiver) in that order, and within a
 *      group the ranges are disjoint, in clockwise order, and no two are
 *      adjacent (adjacent arcs were merged, also across the wrap point);
 *   2. a receiver never is an old primary of any point of its range, and a
 *      sender always is one.
 *
 * Threading: pure functions of their inputs.
 */
#include "handoff/handoff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/qerr.h"

/* ---------------------------------------------------------------------
 * Boundaries
 * ------------------------------------------------------------------- */

typedef struct u64vec {
	uint64_t *v;
	size_t n, cap;
} u64vec;

static int vec_push(u64vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 256;
		uint64_t *nv = realloc(a->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	a->v[a->n++] = x;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int add_boundaries(const ring *r, size_t n, u64vec *b)
{
	size_t mc = ring_member_count(r);
	for (size_t i = 0; i < mc; i++) {
		ring_member m;
		ring_range *rr = NULL;
		size_t cnt = 0;
		ring_member_get(r, i, &m);
		Q_RET(ring_ranges(r, m.node, n, &rr, &cnt));
		int rc = 0;
		for (size_t j = 0; j < cnt && rc == 0; j++) {
			rc = vec_push(b, rr[j].start);
			if (rc == 0)
				rc = vec_push(b, rr[j].end);
		}
		free(rr);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Primaries of a point
 * ------------------------------------------------------------------- */

#define PRIM_MAX 64

/* Primary node ids of point h (borrowed from r). */
static size_t primaries(const ring *r, uint64_t h, size_t n, const char **ids)
{
	size_t idx[PRIM_MAX], np = 0;
	if (ring_member_count(r) == 0)
		return 0;
	size_t got = ring_preflist(r, h, n, idx, n, &np);
	if (np > got)
		np = got;
	for (size_t i = 0; i < np; i++) {
		ring_member m;
		ring_member_get(r, idx[i], &m);
		ids[i] = m.node;
	}
	return np;
}

static int in_list(const char *id, const char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(id, ids[i]))
			return 1;
	return 0;
}

/* ---------------------------------------------------------------------
 * Moves
 * ------------------------------------------------------------------- */

typedef struct mvec {
	handoff_move *v;
	size_t n, cap;
} mvec;

static int move_push(mvec *a, const char *sender, const char *target, uint64_t s, uint64_t e)
{
	/* extend the previous move when it continues it */
	if (a->n) {
		handoff_move *p = &a->v[a->n - 1];
		if (!strcmp(p->sender, sender) && !strcmp(p->target, target) && p->range.end == s) {
			p->range.end = e;
			return 0;
		}
	}
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 64;
		handoff_move *nv = realloc(a->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = nc;
	}
	handoff_move *m = &a->v[a->n];
	m->sender = strdup(sender);
	m->target = strdup(target);
	if (!m->sender || !m->target) {
		free(m->sender);
		free(m->target);
		return -ENOMEM;
	}
	m->range.start = s;
	m->range.end = e;
	a->n++;
	return 0;
}

void handoff_moves_free(handoff_move *v, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(v[i].sender);
		free(v[i].target);
	}
	free(v);
}

static int cmp_move(const void *a, const void *b)
{
	const handoff_move *x = a, *y = b;
	int c = strcmp(x->sender, y->sender);
	if (c)
		return c;
	c = strcmp(x->target, y->target);
	if (c)
		return c;
	/* clockwise order; a range that wraps (start >= end) sorts by start */
	return x->range.start < y->range.start ? -1 : x->range.start > y->range.start;
}

/* Sorts by (sender, target, start) and merges adjacent ranges, including
 * the last and first of a group across the wrap point. */
static void normalize(mvec *a)
{
	if (a->n == 0)
		return;
	qsort(a->v, a->n, sizeof(*a->v), cmp_move);
	size_t w = 0;
	for (size_t i = 0; i < a->n;) {
		size_t j = i;
		while (j < a->n && !strcmp(a->v[j].sender, a->v[i].sender) &&
		       !strcmp(a->v[j].target, a->v[i].target))
			j++;
		/* group [i, j): merge consecutive */
		size_t gstart = w;
		for (size_t k = i; k < j; k++) {
			if (w > gstart && a->v[w - 1].range.end == a->v[k].range.start &&
			    a->v[w - 1].range.start != a->v[w - 1].range.end) {
				a->v[w - 1].range.end = a->v[k].range.end;
				free(a->v[k].sender);
				free(a->v[k].target);
			} else {
				a->v[w++] = a->v[k];
			}
		}
		/* wrap: last ends where first starts */
		if (w - gstart >= 2 && a->v[w - 1].range.end == a->v[gstart].range.start) {
			a->v[gstart].range.start = a->v[w - 1].range.start;
			free(a->v[w - 1].sender);
			free(a->v[w - 1].target);
			w--;
			/* the merged range now wraps; keep clockwise order by
			 * moving it to the end of its group */
			handoff_move t = a->v[gstart];
			memmove(&a->v[gstart], &a->v[gstart + 1], (w - gstart - 1) * sizeof(t));
			a->v[w - 1] = t;
		}
		i = j;
	}
	a->n = w;
}

int handoff_plan_all(const ring *old_ring, const ring *new_ring, size_t n, handoff_alive_fn alive,
		     void *ud, handoff_move **out, size_t *count)
{
	u64vec b = {0};
	mvec mv = {0};
	int rc;
	*out = NULL;
	*count = 0;
	if (n == 0 || n > PRIM_MAX)
		return -EINVAL;
	if (ring_member_count(old_ring) == 0 || ring_member_count(new_ring) == 0)
		return 0; /* nothing stored yet, or nobody to send to */
	Q_ERR(add_boundaries(old_ring, n, &b));
	Q_ERR(add_boundaries(new_ring, n, &b));
	qsort(b.v, b.n, sizeof(*b.v), cmp_u64);
	size_t k = 0;
	for (size_t i = 0; i < b.n; i++)
		if (k == 0 || b.v[k - 1] != b.v[i])
			b.v[k++] = b.v[i];
	b.n = k;
	if (b.n == 0)
		Q_ERR(vec_push(&b, 0));

	/* arcs (b[i-1], b[i]] for i = 1..k-1, then the wrap arc (b[k-1], b[0]];
	 * with one boundary, the whole circle (b[0], b[0]]. */
	for (size_t i = 1; i <= b.n; i++) {
		uint64_t s = b.v[i - 1];
		uint64_t e = b.v[i % b.n];
		if (b.n > 1 && i == b.n) {
			s = b.v[b.n - 1];
			e = b.v[0];
		}
		const char *op[PRIM_MAX], *np_[PRIM_MAX];
		size_t no = primaries(old_ring, e, n, op);
		size_t nn = primaries(new_ring, e, n, np_);
		/* sender: alive old primary with the smallest hash for this arc */
		const char *sender = NULL;
		uint64_t best = 0;
		for (size_t j = 0; j < no; j++) {
			if (alive && !alive(ud, op[j]))
				continue;
			uint64_t h = q_hash64(op[j], strlen(op[j]), e);
			if (!sender || h < best || (h == best && strcmp(op[j], sender) < 0)) {
				sender = op[j];
				best = h;
			}
		}
		if (!sender)
			continue;
		for (size_t j = 0; j < nn; j++) {
			if (in_list(np_[j], op, no))
				continue;
			Q_ERR(move_push(&mv, sender, np_[j], s, e));
		}
		if (b.n == 1)
			break;
	}
	normalize(&mv);
	*out = mv.v;
	*count = mv.n;
	free(b.v);
	return 0;
fail:
	free(b.v);
	handoff_moves_free(mv.v, mv.n);
	return rc;
}

int handoff_plan_make(const ring *old_ring, const ring *new_ring, const char *self, size_t n,
		      handoff_alive_fn alive, void *ud, handoff_plan *out)
{
	handoff_move *mv = NULL;
	size_t cnt = 0;
	memset(out, 0, sizeof(*out));
	if (!self)
		return -EINVAL;
	out->old_version = ring_version(old_ring);
	out->new_version = ring_version(new_ring);
	Q_RET(handoff_plan_all(old_ring, new_ring, n, alive, ud, &mv, &cnt));
	size_t mine = 0;
	for (size_t i = 0; i < cnt; i++)
		mine += !strcmp(mv[i].sender, self);
	if (mine) {
		out->v = calloc(mine, sizeof(*out->v));
		if (!out->v) {
			handoff_moves_free(mv, cnt);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < cnt; i++) {
		if (strcmp(mv[i].sender, self))
			continue;
		out->v[out->n].target = mv[i].target; /* ownership moves to the plan */
		out->v[out->n].range = mv[i].range;
		mv[i].target = NULL;
		out->n++;
	}
	handoff_moves_free(mv, cnt);
	return 0;
}

void handoff_plan_free(handoff_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].target);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

size_t handoff_plan_targets(const handoff_plan *p, uint64_t h, const char **out, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < p->n && k < max; i++) {
		if (!ring_range_contains(p->v[i].range, h))
			continue;
		if (k > 0 && !strcmp(out[k - 1], p->v[i].target))
			continue;
		out[k++] = p->v[i].target;
	}
	return k;
}
