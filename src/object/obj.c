/*
 * obj.c - sibling sets under dotted version vectors (see obj.h for the model,
 * docs/objects.md for the encoding).
 *
 * Representation: a context is a sorted array of (node, counter, wall)
 * entries; a set is a context plus an array of siblings kept in canonical
 * order (live first, newest first, then by dot). Every sibling owns copies of
 * its node id, value and content type, so a set never points into memory it
 * does not own. Operations build their result in a fresh object and only
 * hand it out on success, so a failure (-ENOMEM) leaves inputs untouched.
 *
 * Threading: none; see obj.h.
 */
#include "object/obj.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

struct ctx_ent {
	char *node;
	uint64_t counter;
	int64_t wall;
};

struct obj_ctx {
	struct ctx_ent *e;
	size_t n;
	size_t cap;
};

struct sib {
	char *node;
	uint64_t counter;
	int tomb;
	uint8_t *val;
	size_t vlen;
	int64_t wall;
	char *ctype;
};

struct obj_set {
	obj_ctx ctx;
	struct sib *s;
	size_t n;
	size_t cap;
};

const obj_prune OBJ_PRUNE_DEFAULT = {
	.min_entries = 10,
	.max_entries = 50,
	.young_ns = 20LL * 1000000000LL,
	.max_age_ns = 7LL * 24 * 3600 * 1000000000LL,
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static char *dup_bytes(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static int node_ok(const char *node)
{
	if (!node)
		return 0;
	size_t n = strlen(node);
	return n >= 1 && n <= OBJ_NODE_MAX;
}

/* memcmp order of NUL-free strings is strcmp order. */
static int node_cmp(const char *a, const char *b)
{
	int c = strcmp(a, b);
	return c < 0 ? -1 : c > 0;
}

/* The formats are canonical: varints and lengths in their shortest form
 * only (util/coding.h's *_canon readers). */
/* ------------------------------------------------------------------ */
/* contexts                                                            */

static void ctx_clear(obj_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].node);
	free(c->e);
	c->e = NULL;
	c->n = c->cap = 0;
}

/* Index of node, or -(insertion point) - 1. */
static long ctx_find(const obj_ctx *c, const char *node)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = node_cmp(c->e[mid].node, node);
		if (d == 0)
			return (long)mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static int ctx_reserve(obj_ctx *c, size_t want)
{
	if (want <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap * 2 : 4;
	while (cap < want)
		cap *= 2;
	struct ctx_ent *e = realloc(c->e, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	c->e = e;
	c->cap = cap;
	return 0;
}

/* max-assign one entry; copies node. */
static int ctx_put(obj_ctx *c, const char *node, uint64_t counter, int64_t wall)
{
	long i = ctx_find(c, node);
	if (i >= 0) {
		struct ctx_ent *e = &c->e[i];
		if (counter > e->counter) {
			e->counter = counter;
			e->wall = wall;
		} else if (counter == e->counter && wall > e->wall) {
			e->wall = wall;
		}
		return 0;
	}
	if (c->n >= OBJ_ENTRIES_MAX)
		return Q_ETOOBIG;
	size_t at = (size_t)(-i - 1);
	Q_RET(ctx_reserve(c, c->n + 1));
	char *nd = dup_bytes(node, strlen(node));
	if (!nd)
		return -ENOMEM;
	memmove(&c->e[at + 1], &c->e[at], (c->n - at) * sizeof(c->e[0]));
	c->e[at].node = nd;
	c->e[at].counter = counter;
	c->e[at].wall = wall;
	c->n++;
	return 0;
}

static int ctx_copy(obj_ctx *dst, const obj_ctx *src)
{
	dst->e = NULL;
	dst->n = dst->cap = 0;
	if (!src || src->n == 0)
		return 0;
	if (ctx_reserve(dst, src->n))
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		char *nd = dup_bytes(src->e[i].node, strlen(src->e[i].node));
		if (!nd) {
			ctx_clear(dst);
			return -ENOMEM;
		}
		dst->e[i] = src->e[i];
		dst->e[i].node = nd;
		dst->n++;
	}
	return 0;
}

obj_ctx *obj_ctx_new(void)
{
	return calloc(1, sizeof(obj_ctx));
}

void obj_ctx_free(obj_ctx *c)
{
	if (!c)
		return;
	ctx_clear(c);
	free(c);
}

obj_ctx *obj_ctx_clone(const obj_ctx *c)
{
	obj_ctx *d = obj_ctx_new();
	if (!d)
		return NULL;
	if (ctx_copy(d, c)) {
		free(d);
		return NULL;
	}
	return d;
}

size_t obj_ctx_count(const obj_ctx *c)
{
	return c ? c->n : 0;
}

void obj_ctx_entry(const obj_ctx *c, size_t i, const char **node, uint64_t *counter,
		   int64_t *wall_ns)
{
	if (node)
		*node = c->e[i].node;
	if (counter)
		*counter = c->e[i].counter;
	if (wall_ns)
		*wall_ns = c->e[i].wall;
}

uint64_t obj_ctx_get(const obj_ctx *c, const char *node)
{
	if (!c || !node)
		return 0;
	long i = ctx_find(c, node);
	return i >= 0 ? c->e[i].counter : 0;
}

int obj_ctx_covers(const obj_ctx *c, const char *node, uint64_t counter)
{
	return counter <= obj_ctx_get(c, node);
}

int obj_ctx_compare(const obj_ctx *a, const obj_ctx *b)
{
	size_t an = a ? a->n : 0, bn = b ? b->n : 0;
	size_t i = 0, j = 0;
	int a_more = 0, b_more = 0; /* a has something b lacks, and vice versa */
	while (i < an || j < bn) {
		int d;
		if (i == an)
			d = 1;
		else if (j == bn)
			d = -1;
		else
			d = node_cmp(a->e[i].node, b->e[j].node);
		if (d < 0) {
			a_more = 1;
			i++;
		} else if (d > 0) {
			b_more = 1;
			j++;
		} else {
			if (a->e[i].counter > b->e[j].counter)
				a_more = 1;
			else if (a->e[i].counter < b->e[j].counter)
				b_more = 1;
			i++;
			j++;
		}
	}
	if (a_more && b_more)
		return OBJ_CONCURRENT;
	if (a_more)
		return OBJ_AFTER;
	if (b_more)
		return OBJ_BEFORE;
	return OBJ_EQUAL;
}

int obj_ctx_merge(obj_ctx *dst, const obj_ctx *src)
{
	if (!src || src->n == 0)
		return 0;
	obj_ctx tmp;
	Q_RET(ctx_copy(&tmp, dst));
	for (size_t i = 0; i < src->n; i++) {
		int rc = ctx_put(&tmp, src->e[i].node, src->e[i].counter, src->e[i].wall);
		if (rc) {
			ctx_clear(&tmp);
			return rc;
		}
	}
	ctx_clear(dst);
	*dst = tmp;
	return 0;
}

int obj_ctx_set(obj_ctx *c, const char *node, uint64_t counter, int64_t wall_ns)
{
	if (!c || !node_ok(node) || counter == 0 || wall_ns < 0)
		return -EINVAL;
	return ctx_put(c, node, counter, wall_ns);
}

/* ------------------------------------------------------------------ */
/* context codec                                                       */

static int ctx_put_entries(const obj_ctx *c, q_buf *out)
{
	Q_RET(q_put_varint(out, c ? c->n : 0));
	for (size_t i = 0; c && i < c->n; i++) {
		Q_RET(q_put_lenbytes(out, c->e[i].node, strlen(c->e[i].node)));
		Q_RET(q_put_varint(out, c->e[i].counter));
		Q_RET(q_put_varint(out, (uint64_t)c->e[i].wall));
	}
	return 0;
}

int obj_ctx_encode(const obj_ctx *c, q_buf *out)
{
	size_t old = out->len;
	int rc;
	Q_ERR(q_put_fixed16(out, (uint16_t)(OBJ_CTX_MAGIC | (OBJ_FORMAT_V1 << 8))));
	Q_ERR(ctx_put_entries(c, out));
	return 0;
fail:
	out->len = old;
	return rc;
}

/*
 * Reads the entry list shared by both formats into c (which must be empty).
 * Returns Q_ETRUNC, Q_ETOOBIG or Q_ECORRUPT; on error c is cleared.
 */
static int ctx_get_entries(q_reader *r, obj_ctx *c)
{
	uint64_t n;
	int rc;
	Q_ERR(q_get_varint_canon(r, &n));
	if (n > OBJ_ENTRIES_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	if (n > q_reader_left(r) / 3) { /* each entry takes >= 3 bytes */
		rc = Q_ETRUNC;
		goto fail;
	}
	Q_ERR(ctx_reserve(c, (size_t)n));
	for (uint64_t i = 0; i < n; i++) {
		q_slice node;
		uint64_t counter, wall;
		Q_ERR(q_get_lenbytes_canon(r, OBJ_NODE_MAX, &node));
		if (node.n == 0 || memchr(node.p, 0, node.n)) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		Q_ERR(q_get_varint_canon(r, &counter));
		Q_ERR(q_get_varint_canon(r, &wall));
		if (counter == 0 || wall > (uint64_t)INT64_MAX) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		char *nd = dup_bytes(node.p, node.n);
		if (!nd) {
			rc = -ENOMEM;
			goto fail;
		}
		if (c->n && node_cmp(c->e[c->n - 1].node, nd) >= 0) {
			free(nd);
			rc = Q_ECORRUPT; /* unsorted or duplicate */
			goto fail;
		}
		c->e[c->n].node = nd;
		c->e[c->n].counter = counter;
		c->e[c->n].wall = (int64_t)wall;
		c->n++;
	}
	return 0;
fail:
	ctx_clear(c);
	return rc;
}

int obj_ctx_decode(const void *p, size_t n, obj_ctx **out)
{
	*out = NULL;
	if (!p && n)
		return Q_EBADCTX;
	q_reader r = q_reader_make(p, n);
	uint8_t magic, ver;
	if (q_get_u8(&r, &magic) || q_get_u8(&r, &ver) || magic != OBJ_CTX_MAGIC ||
	    ver != OBJ_FORMAT_V1)
		return Q_EBADCTX;
	obj_ctx *c = obj_ctx_new();
	if (!c)
		return -ENOMEM;
	int rc = ctx_get_entries(&r, c);
	if (rc == 0 && q_reader_left(&r) != 0)
		rc = Q_ECORRUPT;
	if (rc) {
		obj_ctx_free(c);
		return rc == -ENOMEM ? rc : Q_EBADCTX;
	}
	*out = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* siblings and sets                                                   */

static void sib_clear(struct sib *s)
{
	free(s->node);
	free(s->val);
	free(s->ctype);
	memset(s, 0, sizeof(*s));
}

static int sib_copy(struct sib *d, const struct sib *s)
{
	memset(d, 0, sizeof(*d));
	d->counter = s->counter;
	d->tomb = s->tomb;
	d->wall = s->wall;
	d->vlen = s->vlen;
	d->node = dup_bytes(s->node, strlen(s->node));
	if (!d->node)
		goto fail;
	if (s->vlen) {
		d->val = malloc(s->vlen);
		if (!d->val)
			goto fail;
		memcpy(d->val, s->val, s->vlen);
	}
	if (s->ctype) {
		d->ctype = dup_bytes(s->ctype, strlen(s->ctype));
		if (!d->ctype)
			goto fail;
	}
	return 0;
fail:
	sib_clear(d);
	return -ENOMEM;
}

/* Canonical order: live first, newest first, then dot. */
static int sib_cmp(const struct sib *a, const struct sib *b)
{
	if (a->tomb != b->tomb)
		return a->tomb ? 1 : -1;
	if (a->wall != b->wall)
		return a->wall > b->wall ? -1 : 1;
	int d = node_cmp(a->node, b->node);
	if (d)
		return d;
	if (a->counter != b->counter)
		return a->counter < b->counter ? -1 : 1;
	return 0;
}

static int sib_qsort_cmp(const void *a, const void *b)
{
	return sib_cmp(a, b);
}

/* Total order on full content, used to pick deterministically between two
 * siblings with the same dot (which only a bug or lost data can produce). */
static int sib_content_cmp(const struct sib *a, const struct sib *b)
{
	int d = sib_cmp(a, b);
	if (d)
		return d;
	q_slice av = q_slice_make(a->val, a->vlen), bv = q_slice_make(b->val, b->vlen);
	d = q_slice_cmp(av, bv);
	if (d)
		return d;
	if (!a->ctype != !b->ctype)
		return a->ctype ? 1 : -1;
	return a->ctype ? node_cmp(a->ctype, b->ctype) : 0;
}

static int set_reserve(obj_set *s, size_t want)
{
	if (want <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap * 2 : 4;
	while (cap < want)
		cap *= 2;
	struct sib *p = realloc(s->s, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->s = p;
	s->cap = cap;
	return 0;
}

/* Appends a deep copy of sib (order is fixed later by set_sort). */
static int set_push_copy(obj_set *s, const struct sib *sib)
{
	if (s->n >= OBJ_SIBLINGS_MAX)
		return Q_ETOOBIG;
	Q_RET(set_reserve(s, s->n + 1));
	Q_RET(sib_copy(&s->s[s->n], sib));
	s->n++;
	return 0;
}

static void set_sort(obj_set *s)
{
	if (s->n > 1)
		qsort(s->s, s->n, sizeof(s->s[0]), sib_qsort_cmp);
}

static const struct sib *set_find_dot(const obj_set *s, const char *node, uint64_t counter)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->s[i].counter == counter && strcmp(s->s[i].node, node) == 0)
			return &s->s[i];
	return NULL;
}

obj_set *obj_set_new(void)
{
	return calloc(1, sizeof(obj_set));
}

void obj_set_free(obj_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		sib_clear(&s->s[i]);
	free(s->s);
	ctx_clear(&s->ctx);
	free(s);
}

obj_set *obj_set_clone(const obj_set *s)
{
	obj_set *d = obj_set_new();
	if (!d)
		return NULL;
	if (!s)
		return d;
	if (ctx_copy(&d->ctx, &s->ctx))
		goto fail;
	if (set_reserve(d, s->n))
		goto fail;
	for (size_t i = 0; i < s->n; i++) {
		if (sib_copy(&d->s[i], &s->s[i]))
			goto fail;
		d->n++;
	}
	return d;
fail:
	obj_set_free(d);
	return NULL;
}

size_t obj_set_count(const obj_set *s)
{
	return s ? s->n : 0;
}

size_t obj_set_live_count(const obj_set *s)
{
	size_t k = 0;
	for (size_t i = 0; s && i < s->n; i++)
		k += !s->s[i].tomb;
	return k;
}

void obj_set_sibling(const obj_set *s, size_t i, obj_sibling *out)
{
	const struct sib *b = &s->s[i];
	out->node = b->node;
	out->counter = b->counter;
	out->tombstone = b->tomb;
	out->value = q_slice_make(b->val, b->vlen);
	out->wall_ns = b->wall;
	out->content_type = b->ctype;
}

const obj_ctx *obj_set_ctx(const obj_set *s)
{
	return &s->ctx;
}

/* ------------------------------------------------------------------ */
/* set codec                                                           */

int obj_set_encode(const obj_set *s, q_buf *out)
{
	size_t old = out->len;
	int rc;
	static const obj_set empty;
	if (!s)
		s = &empty;
	Q_ERR(q_put_fixed16(out, (uint16_t)(OBJ_SET_MAGIC | (OBJ_FORMAT_V1 << 8))));
	Q_ERR(ctx_put_entries(&s->ctx, out));
	Q_ERR(q_put_varint(out, s->n));
	for (size_t i = 0; i < s->n; i++) {
		const struct sib *b = &s->s[i];
		long idx = ctx_find(&s->ctx, b->node);
		if (idx < 0) { /* invariant 2 broken: cannot happen */
			rc = Q_ECORRUPT;
			goto fail;
		}
		uint8_t flags = (uint8_t)((b->tomb ? OBJ_FLAG_TOMBSTONE : 0) |
					  (b->ctype ? OBJ_FLAG_CTYPE : 0));
		Q_ERR(q_put_varint(out, (uint64_t)idx));
		Q_ERR(q_put_varint(out, b->counter));
		Q_ERR(q_buf_append_byte(out, flags));
		Q_ERR(q_put_varint(out, (uint64_t)b->wall));
		if (b->ctype)
			Q_ERR(q_put_lenbytes(out, b->ctype, strlen(b->ctype)));
		if (!b->tomb)
			Q_ERR(q_put_lenbytes(out, b->val, b->vlen));
	}
	return 0;
fail:
	out->len = old;
	return rc;
}

static int decode_sib(q_reader *r, const obj_ctx *c, struct sib *b)
{
	uint64_t idx, counter, wall;
	uint8_t flags;
	q_slice ct, v;
	int rc;
	memset(b, 0, sizeof(*b));
	Q_RET(q_get_varint_canon(r, &idx));
	Q_RET(q_get_varint_canon(r, &counter));
	Q_RET(q_get_u8(r, &flags));
	Q_RET(q_get_varint_canon(r, &wall));
	if (idx >= c->n || counter == 0 || counter > c->e[idx].counter ||
	    (flags & ~OBJ_FLAGS_KNOWN) || wall > (uint64_t)INT64_MAX)
		return Q_ECORRUPT;
	if ((flags & OBJ_FLAG_TOMBSTONE) && (flags & OBJ_FLAG_CTYPE))
		return Q_ECORRUPT; /* tombstones carry no content type */
	b->tomb = !!(flags & OBJ_FLAG_TOMBSTONE);
	b->counter = counter;
	b->wall = (int64_t)wall;
	if (flags & OBJ_FLAG_CTYPE) {
		Q_RET(q_get_lenbytes_canon(r, OBJ_CTYPE_MAX, &ct));
		if (ct.n == 0 || memchr(ct.p, 0, ct.n))
			return Q_ECORRUPT;
	}
	if (!b->tomb)
		Q_RET(q_get_lenbytes_canon(r, OBJ_VALUE_MAX, &v));
	b->node = dup_bytes(c->e[idx].node, strlen(c->e[idx].node));
	if (!b->node)
		goto nomem;
	if (flags & OBJ_FLAG_CTYPE) {
		b->ctype = dup_bytes(ct.p, ct.n);
		if (!b->ctype)
			goto nomem;
	}
	if (!b->tomb && v.n) {
		b->val = malloc(v.n);
		if (!b->val)
			goto nomem;
		memcpy(b->val, v.p, v.n);
		b->vlen = v.n;
	}
	return 0;
nomem:
	rc = -ENOMEM;
	sib_clear(b);
	return rc;
}

int obj_set_decode(const void *p, size_t n, obj_set **out)
{
	*out = NULL;
	if (!p && n)
		return -EINVAL;
	q_reader r = q_reader_make(p, n);
	uint8_t magic, ver;
	uint64_t ns;
	int rc;
	Q_RET(q_get_u8(&r, &magic));
	if (magic != OBJ_SET_MAGIC)
		return Q_ECORRUPT;
	Q_RET(q_get_u8(&r, &ver));
	if (ver != OBJ_FORMAT_V1)
		return Q_EVERSION;
	obj_set *s = obj_set_new();
	if (!s)
		return -ENOMEM;
	Q_ERR(ctx_get_entries(&r, &s->ctx));
	Q_ERR(q_get_varint_canon(&r, &ns));
	if (ns > OBJ_SIBLINGS_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	if (ns > q_reader_left(&r) / 4) { /* each sibling takes >= 4 bytes */
		rc = Q_ETRUNC;
		goto fail;
	}
	Q_ERR(set_reserve(s, (size_t)ns));
	for (uint64_t i = 0; i < ns; i++) {
		Q_ERR(decode_sib(&r, &s->ctx, &s->s[s->n]));
		s->n++;
		/* canonical order, strictly increasing */
		if (s->n > 1 && sib_cmp(&s->s[s->n - 2], &s->s[s->n - 1]) >= 0) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		/* unique dots (equal dots may sit apart in canonical order) */
		for (size_t j = 0; j + 1 < s->n; j++) {
			if (s->s[j].counter == s->s[s->n - 1].counter &&
			    strcmp(s->s[j].node, s->s[s->n - 1].node) == 0) {
				rc = Q_ECORRUPT;
				goto fail;
			}
		}
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_ECORRUPT;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	obj_set_free(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* update, sync, prune                                                 */

/* Is the context entry for node referred to by a sibling's dot? */
static int ctx_entry_referenced(const obj_set *s, const char *node)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->s[i].node, node) == 0)
			return 1;
	return 0;
}

static int prune_cand_cmp(const void *a, const void *b)
{
	const struct ctx_ent *x = *(const struct ctx_ent *const *)a;
	const struct ctx_ent *y = *(const struct ctx_ent *const *)b;
	if (x->wall != y->wall)
		return x->wall < y->wall ? -1 : 1;
	return node_cmp(x->node, y->node);
}

int obj_set_prune(obj_set *s, const obj_prune *p, int64_t now_ns, const char *keep_node)
{
	if (!s || !p || s->ctx.n <= p->min_entries)
		return 0;
	size_t nc = 0;
	const struct ctx_ent **cand = malloc(s->ctx.n * sizeof(*cand));
	if (!cand)
		return -ENOMEM;
	for (size_t i = 0; i < s->ctx.n; i++) {
		const struct ctx_ent *e = &s->ctx.e[i];
		if (keep_node && strcmp(e->node, keep_node) == 0)
			continue;
		if (ctx_entry_referenced(s, e->node))
			continue;
		cand[nc++] = e;
	}
	qsort(cand, nc, sizeof(*cand), prune_cand_cmp);
	/* mark victims by node name, then compact the array */
	size_t count = s->ctx.n, victims = 0;
	char **vict = malloc((nc ? nc : 1) * sizeof(*vict));
	if (!vict) {
		free(cand);
		return -ENOMEM;
	}
	for (size_t k = 0; k < nc && count > p->min_entries; k++) {
		int64_t age = now_ns - cand[k]->wall;
		if (age < p->young_ns)
			break; /* the rest are younger still */
		int too_many = p->max_entries && count > p->max_entries;
		int too_old = p->max_age_ns && age > p->max_age_ns;
		if (!too_many && !too_old)
			break;
		vict[victims++] = cand[k]->node;
		count--;
	}
	free(cand);
	size_t w = 0;
	for (size_t i = 0; i < s->ctx.n; i++) {
		int dead = 0;
		for (size_t k = 0; k < victims; k++)
			if (vict[k] == s->ctx.e[i].node)
				dead = 1;
		if (dead)
			free(s->ctx.e[i].node);
		else
			s->ctx.e[w++] = s->ctx.e[i];
	}
	s->ctx.n = w;
	free(vict);
	return (int)victims;
}

int obj_set_update(const obj_set *cur, const obj_ctx *client, const char *node,
		   const obj_write *w, const obj_prune *prune, int64_t now_ns,
		   obj_set **out)
{
	*out = NULL;
	if (!node_ok(node) || !w || w->wall_ns < 0)
		return -EINVAL;
	if (!w->tombstone) {
		if (w->value.n > OBJ_VALUE_MAX || (w->value.n && !w->value.p))
			return -EINVAL;
		if (w->content_type &&
		    (strlen(w->content_type) == 0 || strlen(w->content_type) > OBJ_CTYPE_MAX))
			return -EINVAL;
	}
	int rc;
	obj_set *s = obj_set_new();
	if (!s)
		return -ENOMEM;
	Q_ERR(ctx_copy(&s->ctx, cur ? &cur->ctx : NULL));
	Q_ERR(obj_ctx_merge(&s->ctx, client));
	uint64_t counter = obj_ctx_get(&s->ctx, node);
	if (counter == UINT64_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	counter++;
	/* keep what the client has not seen */
	for (size_t i = 0; cur && i < cur->n; i++) {
		const struct sib *b = &cur->s[i];
		if (obj_ctx_covers(client, b->node, b->counter))
			continue;
		Q_ERR(set_push_copy(s, b));
	}
	struct sib nw = {
		.node = (char *)node,
		.counter = counter,
		.tomb = !!w->tombstone,
		.val = w->tombstone ? NULL : (uint8_t *)w->value.p,
		.vlen = w->tombstone ? 0 : w->value.n,
		.wall = w->wall_ns,
		.ctype = w->tombstone ? NULL : (char *)w->content_type,
	};
	Q_ERR(set_push_copy(s, &nw));
	Q_ERR(ctx_put(&s->ctx, node, counter, w->wall_ns));
	if (prune) {
		rc = obj_set_prune(s, prune, now_ns, node);
		if (rc < 0)
			goto fail;
	}
	set_sort(s);
	*out = s;
	return 0;
fail:
	obj_set_free(s);
	return rc;
}

int obj_set_sync(const obj_set *a, const obj_set *b, obj_set **out)
{
	*out = NULL;
	int rc;
	obj_set *s = obj_set_new();
	if (!s)
		return -ENOMEM;
	Q_ERR(ctx_copy(&s->ctx, a ? &a->ctx : NULL));
	Q_ERR(obj_ctx_merge(&s->ctx, b ? &b->ctx : NULL));
	for (size_t i = 0; a && i < a->n; i++) {
		const struct sib *x = &a->s[i];
		const struct sib *y = set_find_dot(b, x->node, x->counter);
		if (y) {
			/* both have it: keep one, chosen by content so the
			 * result does not depend on argument order */
			Q_ERR(set_push_copy(s, sib_content_cmp(x, y) <= 0 ? x : y));
		} else if (!obj_ctx_covers(b ? &b->ctx : NULL, x->node, x->counter)) {
			Q_ERR(set_push_copy(s, x));
		}
	}
	for (size_t i = 0; b && i < b->n; i++) {
		const struct sib *y = &b->s[i];
		if (set_find_dot(a, y->node, y->counter))
			continue;
		if (!obj_ctx_covers(a ? &a->ctx : NULL, y->node, y->counter))
			Q_ERR(set_push_copy(s, y));
	}
	set_sort(s);
	*out = s;
	return 0;
fail:
	obj_set_free(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* digest, equality, tombstones                                        */

uint64_t obj_set_digest(const obj_set *s)
{
	if (!s || (s->n == 0 && s->ctx.n == 0))
		return 0;
	q_buf b = Q_BUF_INIT;
	uint64_t h;
	if (obj_set_encode(s, &b) != 0) {
		q_buf_free(&b);
		return UINT64_MAX; /* out of memory: see obj.h */
	}
	h = obj_set_digest_encoded(s, b.p, b.len);
	q_buf_free(&b);
	return h;
}

uint64_t obj_set_digest_encoded(const obj_set *s, const uint8_t *enc, size_t n)
{
	if (!s || (s->n == 0 && s->ctx.n == 0))
		return 0;
	uint64_t h = q_hash64(enc, n, OBJ_DIGEST_SEED);
	return h ? h : 1; /* 0 is reserved for the empty set */
}

int obj_set_equal(const obj_set *a, const obj_set *b)
{
	const obj_set *ea = a, *eb = b;
	static const obj_set empty;
	if (!ea)
		ea = &empty;
	if (!eb)
		eb = &empty;
	if (ea->n != eb->n || obj_ctx_compare(&ea->ctx, &eb->ctx) != OBJ_EQUAL)
		return 0;
	for (size_t i = 0; i < ea->n; i++) {
		if (sib_content_cmp(&ea->s[i], &eb->s[i]) != 0)
			return 0;
		if (ea->s[i].wall != eb->s[i].wall)
			return 0;
	}
	for (size_t i = 0; i < ea->ctx.n; i++)
		if (ea->ctx.e[i].wall != eb->ctx.e[i].wall)
			return 0;
	return 1;
}

int obj_set_tombstone_only(const obj_set *s)
{
	return obj_set_live_count(s) == 0;
}

int64_t obj_set_newest_wall(const obj_set *s)
{
	int64_t m = 0;
	for (size_t i = 0; s && i < s->n; i++)
		if (s->s[i].wall > m)
			m = s->s[i].wall;
	return m;
}

int obj_reapable(const obj_set *const *replicas, size_t n, int64_t now_ns, int64_t grace_ns)
{
	if (!replicas || n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const obj_set *s = replicas[i];
		if (!s || s->n == 0 || !obj_set_tombstone_only(s))
			return 0;
		if (i > 0 && !obj_set_equal(replicas[0], s))
			return 0;
	}
	int64_t newest = obj_set_newest_wall(replicas[0]);
	if (grace_ns < 0 || now_ns < newest)
		return 0;
	return now_ns - newest >= grace_ns;
}
