/*
 * aae_exchange.c - tree exchange state machine and responder (see
 * aae_exchange.h for the design notes and state diagram).
 */
#include "aae/aae_exchange.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/qerr.h"

/* A growable array of uint32 (node or bucket indices). */
typedef struct u32vec {
	uint32_t *v;
	size_t n, cap;
} u32vec;

static int u32vec_push(u32vec *a, uint32_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint32_t *v = realloc(a->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

/* A diff as stored: key bytes at arena[off .. off+len). */
typedef struct xdiff {
	size_t off, len;
	uint64_t local_digest, remote_digest;
	uint8_t local_has, remote_has;
} xdiff;

/* An owned pair list of one bucket (local listing). */
typedef struct pairlist {
	aae_pair *p;
	size_t n, cap;
	q_buf keys; /* key bytes; p[i].key.p is an offset until fixed up */
} pairlist;

struct aae_exchange {
	aae_tree *tree;
	aae_keysrc src;
	aae_exchange_opts o;
	aae_msg_hdr hdr;
	unsigned depth;
	aae_xstate state;
	int err;
	int waiting;          /* a request is outstanding */
	/* descent: parents at level `level` whose children to fetch */
	unsigned level;
	u32vec cur, next;
	size_t cur_pos;
	uint32_t sent_nodes[AAE_MAX_NODES_PER_MSG];
	uint32_t sent_n;
	/* differing leaves */
	u32vec buckets;
	size_t bucket_pos;
	/* results */
	xdiff *diffs;
	size_t ndiffs, diffs_cap;
	q_buf arena;
	aae_exchange_stats st;
};

void aae_exchange_opts_default(aae_exchange_opts *o)
{
	o->max_nodes_per_req = 256;
	o->max_buckets_per_req = 64;
	o->max_diffs = 1000000;
}

int aae_exchange_new(aae_tree *local, const aae_keysrc *src, const aae_exchange_opts *o,
		     uint64_t xid, aae_exchange **out)
{
	*out = NULL;
	if (!local || !src || !src->list)
		return -EINVAL;
	if (!aae_tree_ready(local))
		return -EINVAL;
	aae_exchange *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->tree = local;
	x->src = *src;
	if (o)
		x->o = *o;
	else
		aae_exchange_opts_default(&x->o);
	if (x->o.max_nodes_per_req == 0 || x->o.max_nodes_per_req > AAE_MAX_NODES_PER_MSG)
		x->o.max_nodes_per_req = AAE_MAX_NODES_PER_MSG;
	if (x->o.max_buckets_per_req == 0 || x->o.max_buckets_per_req > AAE_MAX_BUCKETS_PER_MSG)
		x->o.max_buckets_per_req = AAE_MAX_BUCKETS_PER_MSG;
	if (x->o.max_diffs == 0)
		x->o.max_diffs = SIZE_MAX;
	x->hdr.xid = xid;
	aae_tree_range(local, &x->hdr.range_start, &x->hdr.range_end);
	x->depth = aae_tree_depth(local);
	q_buf_init(&x->arena);
	x->state = AAE_X_START;
	*out = x;
	return 0;
}

void aae_exchange_free(aae_exchange *x)
{
	if (!x)
		return;
	free(x->cur.v);
	free(x->next.v);
	free(x->buckets.v);
	free(x->diffs);
	q_buf_free(&x->arena);
	free(x);
}

static int fail(aae_exchange *x, int err)
{
	if (x->state != AAE_X_FAILED) {
		x->state = AAE_X_FAILED;
		x->err = err < 0 ? err : Q_EPROTO;
	}
	x->waiting = 0;
	return x->err;
}

void aae_exchange_abort(aae_exchange *x, int err)
{
	if (x->state != AAE_X_DONE)
		fail(x, err < 0 ? err : Q_ECLOSED);
}

aae_xstate aae_exchange_state(const aae_exchange *x)
{
	return x->state;
}

int aae_exchange_range(const aae_exchange *x, uint64_t *start, uint64_t *end)
{
	*start = x->hdr.range_start;
	*end = x->hdr.range_end;
	return 0;
}

int aae_exchange_error(const aae_exchange *x)
{
	return x->err;
}

void aae_exchange_get_stats(const aae_exchange *x, aae_exchange_stats *st)
{
	*st = x->st;
}

size_t aae_exchange_ndiffs(const aae_exchange *x)
{
	return x->ndiffs;
}

void aae_exchange_diff(const aae_exchange *x, size_t i, aae_diff *out)
{
	const xdiff *d = &x->diffs[i];
	out->key = q_slice_make(x->arena.p + d->off, d->len);
	out->local_digest = d->local_digest;
	out->remote_digest = d->remote_digest;
	out->local_has = d->local_has;
	out->remote_has = d->remote_has;
}

/* ---- producing requests ------------------------------------------------------ */

int aae_exchange_next(aae_exchange *x, q_buf *out)
{
	if (x->state == AAE_X_FAILED)
		return x->err;
	if (x->state == AAE_X_DONE)
		return 0;
	if (x->waiting)
		return -EBUSY;
	size_t before = out->len;
	int rc;
	switch (x->state) {
	case AAE_X_START:
		x->hdr.type = AAE_MSG_ROOT_REQ;
		Q_ERR(aae_msg_put_root_req(out, &x->hdr));
		x->state = AAE_X_WAIT_ROOT;
		break;
	case AAE_X_DESCEND: {
		size_t left = x->cur.n - x->cur_pos;
		uint32_t k = left < x->o.max_nodes_per_req ? (uint32_t)left : x->o.max_nodes_per_req;
		memcpy(x->sent_nodes, x->cur.v + x->cur_pos, k * sizeof(uint32_t));
		x->sent_n = k;
		Q_ERR(aae_msg_put_children_req(out, &x->hdr, (uint8_t)x->level, x->sent_nodes, k));
		break;
	}
	case AAE_X_BUCKETS: {
		size_t left = x->buckets.n - x->bucket_pos;
		uint32_t k = left < x->o.max_buckets_per_req ? (uint32_t)left : x->o.max_buckets_per_req;
		x->sent_n = k;
		Q_ERR(aae_msg_put_buckets_req(out, &x->hdr, x->buckets.v + x->bucket_pos, k));
		break;
	}
	default:
		return fail(x, Q_EPROTO);
	}
	x->waiting = 1;
	x->st.requests++;
	x->st.bytes_sent += out->len - before;
	return 1;
fail:
	return fail(x, rc);
}

/* ---- consuming responses ------------------------------------------------------ */

/* Moves on from a finished level or bucket batch to the next state. */
static void advance(aae_exchange *x)
{
	if (x->state == AAE_X_DESCEND && x->cur_pos >= x->cur.n) {
		u32vec t = x->cur;
		x->cur = x->next;
		x->next = t;
		x->next.n = 0;
		x->cur_pos = 0;
		x->level++;
		if (x->cur.n == 0 || x->level >= x->depth)
			x->state = AAE_X_BUCKETS;
	}
	if (x->state == AAE_X_BUCKETS && x->bucket_pos >= x->buckets.n)
		x->state = AAE_X_DONE;
}

static int consume_root(aae_exchange *x, const aae_msg *m)
{
	if (m->depth != x->depth)
		return Q_EPROTO; /* trees of different geometry cannot be compared */
	x->st.nodes_compared++;
	if (m->root == aae_tree_root(x->tree)) {
		x->state = AAE_X_DONE;
		return 0;
	}
	x->level = 0;
	x->cur.n = 0;
	Q_RET(u32vec_push(&x->cur, 0));
	x->cur_pos = 0;
	x->state = AAE_X_DESCEND;
	return 0;
}

static int consume_children(aae_exchange *x, const aae_msg *m)
{
	if (m->level != x->level || m->nnodes != x->sent_n ||
	    memcmp(m->nodes, x->sent_nodes, x->sent_n * sizeof(uint32_t)))
		return Q_EPROTO;
	int leaves = x->level + 1 == x->depth;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		uint64_t local[AAE_FANOUT];
		Q_RET(aae_tree_children(x->tree, x->level, m->nodes[i], local));
		for (uint32_t c = 0; c < AAE_FANOUT; c++) {
			x->st.nodes_compared++;
			if (local[c] == m->hashes[(size_t)i * AAE_FANOUT + c])
				continue;
			uint32_t child = m->nodes[i] * AAE_FANOUT + c;
			Q_RET(u32vec_push(leaves ? &x->buckets : &x->next, child));
		}
	}
	x->cur_pos += x->sent_n;
	return 0;
}

static int pl_emit(void *ectx, q_slice key, uint64_t digest)
{
	pairlist *pl = ectx;
	if (key.n > AAE_MAX_KEY)
		return Q_ETOOBIG;
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 32;
		aae_pair *p = realloc(pl->p, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		pl->p = p;
		pl->cap = cap;
	}
	/* store the offset now, fix pointers once all keys are in */
	pl->p[pl->n].key = q_slice_make((const void *)(uintptr_t)pl->keys.len, key.n);
	pl->p[pl->n].digest = digest;
	Q_RET(q_buf_append(&pl->keys, key.p, key.n));
	pl->n++;
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	return q_slice_cmp(((const aae_pair *)a)->key, ((const aae_pair *)b)->key);
}

static int add_diff(aae_exchange *x, q_slice key, const uint64_t *ld, const uint64_t *rd)
{
	if (x->ndiffs == x->diffs_cap) {
		size_t cap = x->diffs_cap ? x->diffs_cap * 2 : 64;
		xdiff *d = realloc(x->diffs, cap * sizeof *d);
		if (!d)
			return -ENOMEM;
		x->diffs = d;
		x->diffs_cap = cap;
	}
	xdiff *d = &x->diffs[x->ndiffs];
	memset(d, 0, sizeof *d);
	d->off = x->arena.len;
	d->len = key.n;
	Q_RET(q_buf_append(&x->arena, key.p, key.n));
	if (ld) {
		d->local_has = 1;
		d->local_digest = *ld;
	}
	if (rd) {
		d->remote_has = 1;
		d->remote_digest = *rd;
	}
	x->ndiffs++;
	x->st.diffs++;
	return 0;
}

/* Compares one answered bucket: remote pairs r[0..rn) vs the local listing. */
static int compare_bucket(aae_exchange *x, uint32_t bucket, const aae_pair *r, size_t rn)
{
	pairlist pl = {0};
	aae_pair *rs = NULL;
	int rc = 0;
	q_buf_init(&pl.keys);
	uint64_t before;
	Q_ERR(aae_tree_node(x->tree, x->depth, bucket, &before));
	Q_ERR(x->src.list(x->src.ctx, x->hdr.range_start, x->hdr.range_end, x->depth, bucket,
			  pl_emit, &pl));
	uint64_t leaf = 0;
	for (size_t i = 0; i < pl.n; i++) {
		pl.p[i].key.p = pl.keys.p + (uintptr_t)pl.p[i].key.p;
		leaf += aae_pair_hash(pl.p[i].key, pl.p[i].digest);
	}
	if (leaf != before && aae_tree_fix_leaf(x->tree, bucket, before, leaf) == 1)
		x->st.leaves_fixed++;
	if (rn) {
		rs = malloc(rn * sizeof *rs);
		if (!rs) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(rs, r, rn * sizeof *rs);
	}
	for (size_t i = 0; i < rn; i++) {
		if (aae_bucket_of(rs[i].key, x->depth) != bucket) {
			rc = Q_EPROTO; /* peer sent a key of another bucket */
			goto fail;
		}
	}
	if (pl.n)
		qsort(pl.p, pl.n, sizeof *pl.p, pair_cmp);
	if (rn)
		qsort(rs, rn, sizeof *rs, pair_cmp);
	for (size_t i = 1; i < rn; i++)
		if (q_slice_cmp(rs[i - 1].key, rs[i].key) == 0) {
			rc = Q_EPROTO; /* duplicate key from the peer */
			goto fail;
		}
	x->st.buckets_compared++;
	x->st.keys_local += pl.n;
	x->st.keys_remote += rn;
	size_t i = 0, j = 0;
	while (i < pl.n || j < rn) {
		if (x->ndiffs >= x->o.max_diffs) {
			x->st.truncated = 1;
			break;
		}
		int c = i >= pl.n ? 1 : j >= rn ? -1 : q_slice_cmp(pl.p[i].key, rs[j].key);
		if (c < 0) {
			Q_ERR(add_diff(x, pl.p[i].key, &pl.p[i].digest, NULL));
			i++;
		} else if (c > 0) {
			Q_ERR(add_diff(x, rs[j].key, NULL, &rs[j].digest));
			j++;
		} else {
			if (pl.p[i].digest != rs[j].digest)
				Q_ERR(add_diff(x, pl.p[i].key, &pl.p[i].digest, &rs[j].digest));
			i++;
			j++;
		}
	}
fail:
	free(rs);
	free(pl.p);
	q_buf_free(&pl.keys);
	return rc;
}

static int consume_buckets(aae_exchange *x, const aae_msg *m)
{
	/* invariant 2: a non-empty prefix of what was asked */
	if (m->nbuckets == 0 || m->nbuckets > x->sent_n)
		return Q_EPROTO;
	for (uint32_t i = 0; i < m->nbuckets; i++)
		if (m->blist[i].bucket != x->buckets.v[x->bucket_pos + i])
			return Q_EPROTO;
	for (uint32_t i = 0; i < m->nbuckets; i++) {
		Q_RET(compare_bucket(x, m->blist[i].bucket, m->blist[i].pairs, m->blist[i].npairs));
		if (x->st.truncated) {
			x->state = AAE_X_DONE;
			return 0;
		}
	}
	x->bucket_pos += m->nbuckets;
	return 0;
}

int aae_exchange_consume(aae_exchange *x, const uint8_t *p, size_t n)
{
	if (x->state == AAE_X_FAILED)
		return x->err;
	if (!x->waiting)
		return fail(x, Q_EPROTO);
	x->st.bytes_received += n;
	aae_msg m;
	int rc = aae_msg_decode(p, n, &m);
	if (rc < 0)
		return fail(x, rc);
	x->waiting = 0;
	if (m.h.xid != x->hdr.xid || m.h.range_start != x->hdr.range_start ||
	    m.h.range_end != x->hdr.range_end) {
		rc = Q_EPROTO;
		goto out;
	}
	if (m.h.type == AAE_MSG_ERROR) {
		rc = m.code;
		goto out;
	}
	switch (x->state) {
	case AAE_X_WAIT_ROOT:
		rc = m.h.type == AAE_MSG_ROOT_RESP ? consume_root(x, &m) : Q_EPROTO;
		break;
	case AAE_X_DESCEND:
		rc = m.h.type == AAE_MSG_CHILDREN_RESP ? consume_children(x, &m) : Q_EPROTO;
		break;
	case AAE_X_BUCKETS:
		rc = m.h.type == AAE_MSG_BUCKETS_RESP ? consume_buckets(x, &m) : Q_EPROTO;
		break;
	default:
		rc = Q_EPROTO;
		break;
	}
	if (rc == 0 && x->state != AAE_X_DONE)
		advance(x);
out:
	aae_msg_free(&m);
	if (rc < 0)
		return fail(x, rc);
	return 0;
}

/* ---- the responder ---------------------------------------------------------- */

typedef struct serve_ctx {
	aae_bresp_writer *w;
	int rc;
} serve_ctx;

static int serve_emit(void *ectx, q_slice key, uint64_t digest)
{
	serve_ctx *s = ectx;
	int rc = aae_bresp_pair(s->w, key, digest);
	if (rc == 0 && aae_bresp_size(s->w) > AAE_MAX_MSG)
		rc = Q_ETOOBIG;
	return rc;
}

static int serve_buckets(aae_tree *t, const aae_keysrc *src, const aae_msg *m,
			 size_t max_resp_bytes, q_buf *resp)
{
	aae_bresp_writer w;
	unsigned depth = aae_tree_depth(t);
	uint32_t width = aae_tree_buckets(t);
	for (uint32_t i = 0; i < m->nbuckets; i++)
		if (m->buckets[i] >= width)
			return Q_EPROTO;
	Q_RET(aae_bresp_begin(&w, resp, &m->h));
	for (uint32_t i = 0; i < m->nbuckets; i++) {
		serve_ctx s = {&w, 0};
		int rc = aae_bresp_bucket(&w, m->buckets[i]);
		if (rc == 0)
			rc = src->list(src->ctx, m->h.range_start, m->h.range_end, depth,
				       m->buckets[i], serve_emit, &s);
		if (rc < 0 || (i > 0 && aae_bresp_size(&w) > max_resp_bytes)) {
			aae_bresp_drop_bucket(&w);
			if (i == 0) {
				resp->len = w.start;
				return rc < 0 ? rc : Q_ETOOBIG;
			}
			break; /* the peer asks again for the rest */
		}
		if (aae_bresp_size(&w) >= max_resp_bytes)
			break;
	}
	aae_bresp_end(&w);
	return 0;
}

static int serve_roots(aae_tree_lookup_fn lookup, void *lctx, const aae_msg *m, q_buf *resp)
{
	aae_msg_root *r = calloc(m->nroots, sizeof *r);
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nroots; i++) {
		r[i].start = m->roots[i].start;
		r[i].end = m->roots[i].end;
		aae_tree *t = lookup(lctx, r[i].start, r[i].end);
		if (!t) {
			r[i].status = AAE_ROOT_UNKNOWN;
		} else if (!aae_tree_ready(t)) {
			r[i].status = AAE_ROOT_NOT_READY;
		} else {
			r[i].status = AAE_ROOT_OK;
			r[i].depth = (uint8_t)aae_tree_depth(t);
			r[i].root = aae_tree_root(t);
		}
	}
	int rc = aae_msg_put_roots_resp(resp, &m->h, r, m->nroots);
	free(r);
	return rc;
}

int aae_serve_node(aae_tree_lookup_fn lookup, void *lctx, const aae_keysrc *src,
		   const uint8_t *req, size_t n, size_t max_resp_bytes, q_buf *resp)
{
	aae_msg m;
	aae_msg_hdr h;
	Q_RET(aae_msg_decode_hdr(req, n, &h));
	size_t start = resp->len;
	int rc = aae_msg_decode(req, n, &m);
	const char *why = "malformed request";
	uint64_t *hashes = NULL;
	aae_tree *t = NULL;
	if (rc < 0)
		goto error;
	if (m.h.type == AAE_MSG_ROOTS_REQ) {
		rc = serve_roots(lookup, lctx, &m, resp);
		why = "cannot answer roots";
		if (rc == 0)
			goto out;
		goto error;
	}
	t = lookup(lctx, m.h.range_start, m.h.range_end);
	if (!t) {
		rc = Q_ENOTFOUND;
		why = "no tree for this range";
		goto error;
	}
	if (!aae_tree_ready(t)) {
		rc = Q_EBUSY;
		why = "tree not built yet";
		goto error;
	}
	switch (m.h.type) {
	case AAE_MSG_ROOT_REQ: {
		int64_t keys = aae_tree_keys(t);
		rc = aae_msg_put_root_resp(resp, &m.h, (uint8_t)aae_tree_depth(t), aae_tree_root(t),
					   keys < 0 ? 0 : (uint64_t)keys);
		break;
	}
	case AAE_MSG_CHILDREN_REQ:
		if (m.level >= aae_tree_depth(t)) {
			rc = Q_EPROTO;
			why = "level out of range";
			break;
		}
		hashes = malloc((size_t)m.nnodes * AAE_FANOUT * sizeof *hashes);
		if (!hashes) {
			rc = -ENOMEM;
			break;
		}
		for (uint32_t i = 0; i < m.nnodes && rc == 0; i++)
			rc = aae_tree_children(t, m.level, m.nodes[i], hashes + (size_t)i * AAE_FANOUT);
		if (rc == 0)
			rc = aae_msg_put_children_resp(resp, &m.h, m.level, m.nodes, hashes, m.nnodes);
		else
			why = "node out of range";
		break;
	case AAE_MSG_BUCKETS_REQ:
		rc = serve_buckets(t, src, &m, max_resp_bytes, resp);
		why = "cannot list buckets";
		break;
	default:
		rc = Q_EPROTO;
		why = "not a request";
		break;
	}
	if (rc == 0)
		goto out;
error:
	resp->len = start;
	h.type = AAE_MSG_ERROR;
	rc = aae_msg_put_error(resp, &h, rc == -EINVAL ? Q_EPROTO : rc, why);
out:
	free(hashes);
	aae_msg_free(&m);
	return rc;
}

static aae_tree *single_lookup(void *ctx, uint64_t start, uint64_t end)
{
	aae_tree *t = ctx;
	uint64_t rs, re;
	aae_tree_range(t, &rs, &re);
	return rs == start && re == end ? t : NULL;
}

int aae_serve(aae_tree *t, const aae_keysrc *src, const uint8_t *req, size_t n,
	      size_t max_resp_bytes, q_buf *resp)
{
	return aae_serve_node(single_lookup, t, src, req, n, max_resp_bytes, resp);
}

/* ---- many roots at once ------------------------------------------------------ */

static int check_sorted(aae_tree *const *trees, size_t n)
{
	if (n == 0 || n > AAE_MAX_RANGES_PER_MSG || !trees)
		return -EINVAL;
	for (size_t i = 1; i < n; i++) {
		uint64_t ps, pe, s, e;
		aae_tree_range(trees[i - 1], &ps, &pe);
		aae_tree_range(trees[i], &s, &e);
		if (s < ps || (s == ps && e <= pe))
			return -EINVAL;
	}
	return 0;
}

int aae_roots_request(aae_tree *const *trees, size_t n, uint64_t xid, q_buf *out)
{
	Q_RET(check_sorted(trees, n));
	aae_msg_root *r = calloc(n, sizeof *r);
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		aae_tree_range(trees[i], &r[i].start, &r[i].end);
	aae_msg_hdr h = {AAE_MSG_ROOTS_REQ, xid, 0, 0};
	int rc = aae_msg_put_roots_req(out, &h, r, (uint32_t)n);
	free(r);
	return rc;
}

int aae_roots_compare(aae_tree *const *trees, size_t n, uint64_t xid, const uint8_t *resp,
		      size_t rn, int *out)
{
	Q_RET(check_sorted(trees, n));
	aae_msg m;
	Q_RET(aae_msg_decode(resp, rn, &m));
	int rc = 0;
	if (m.h.type == AAE_MSG_ERROR) {
		rc = m.code;
		goto done;
	}
	if (m.h.type != AAE_MSG_ROOTS_RESP || m.h.xid != xid || m.nroots != n) {
		rc = Q_EPROTO;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t s, e;
		aae_tree_range(trees[i], &s, &e);
		if (m.roots[i].start != s || m.roots[i].end != e) {
			rc = Q_EPROTO;
			goto done;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const aae_msg_root *r = &m.roots[i];
		if (r->status != AAE_ROOT_OK || !aae_tree_ready(trees[i]) ||
		    r->depth != aae_tree_depth(trees[i]))
			out[i] = -1;
		else
			out[i] = r->root != aae_tree_root(trees[i]);
	}
done:
	aae_msg_free(&m);
	return rc;
}
