/*
 * aae_msg.c - encoders and the strict decoder of the exchange messages
 * (see aae_msg.h; layout in aae_format.h).
 */
#include "aae/aae_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/qerr.h"

static uint32_t aae_level_width_(unsigned level)
{
	return (uint32_t)1 << (AAE_FANOUT_BITS * level);
}

/* ---- encoding -------------------------------------------------------------- */

static int put_hdr(q_buf *b, const aae_msg_hdr *h, uint8_t type)
{
	uint8_t p[AAE_MSG_HDR_LEN];
	p[0] = AAE_MSG_VERSION;
	p[1] = type;
	q_enc_fixed64(p + 2, h->xid);
	q_enc_fixed64(p + 10, h->range_start);
	q_enc_fixed64(p + 18, h->range_end);
	return q_buf_append(b, p, sizeof p);
}

int aae_msg_put_root_req(q_buf *b, const aae_msg_hdr *h)
{
	return put_hdr(b, h, AAE_MSG_ROOT_REQ);
}

int aae_msg_put_root_resp(q_buf *b, const aae_msg_hdr *h, uint8_t depth, uint64_t root,
			  uint64_t keys)
{
	size_t start = b->len;
	int rc;
	Q_ERR(put_hdr(b, h, AAE_MSG_ROOT_RESP));
	Q_ERR(q_buf_append_byte(b, depth));
	Q_ERR(q_put_fixed64(b, root));
	Q_ERR(q_put_varint(b, keys));
	return 0;
fail:
	b->len = start;
	return rc;
}

int aae_msg_put_children_req(q_buf *b, const aae_msg_hdr *h, uint8_t level,
			     const uint32_t *nodes, uint32_t n)
{
	size_t start = b->len;
	int rc;
	if (n > AAE_MAX_NODES_PER_MSG)
		return Q_ETOOBIG;
	Q_ERR(put_hdr(b, h, AAE_MSG_CHILDREN_REQ));
	Q_ERR(q_buf_append_byte(b, level));
	Q_ERR(q_put_varint(b, n));
	for (uint32_t i = 0; i < n; i++)
		Q_ERR(q_put_varint(b, nodes[i]));
	return 0;
fail:
	b->len = start;
	return rc;
}

int aae_msg_put_children_resp(q_buf *b, const aae_msg_hdr *h, uint8_t level,
			      const uint32_t *nodes, const uint64_t *hashes, uint32_t n)
{
	size_t start = b->len;
	int rc;
	if (n > AAE_MAX_NODES_PER_MSG)
		return Q_ETOOBIG;
	Q_ERR(put_hdr(b, h, AAE_MSG_CHILDREN_RESP));
	Q_ERR(q_buf_append_byte(b, level));
	Q_ERR(q_put_varint(b, n));
	for (uint32_t i = 0; i < n; i++) {
		Q_ERR(q_put_varint(b, nodes[i]));
		for (unsigned c = 0; c < AAE_FANOUT; c++)
			Q_ERR(q_put_fixed64(b, hashes[(size_t)i * AAE_FANOUT + c]));
	}
	return 0;
fail:
	b->len = start;
	return rc;
}

int aae_msg_put_buckets_req(q_buf *b, const aae_msg_hdr *h, const uint32_t *buckets,
			    uint32_t n)
{
	size_t start = b->len;
	int rc;
	if (n > AAE_MAX_BUCKETS_PER_MSG)
		return Q_ETOOBIG;
	Q_ERR(put_hdr(b, h, AAE_MSG_BUCKETS_REQ));
	Q_ERR(q_put_varint(b, n));
	for (uint32_t i = 0; i < n; i++)
		Q_ERR(q_put_varint(b, buckets[i]));
	return 0;
fail:
	b->len = start;
	return rc;
}

int aae_msg_put_error(q_buf *b, const aae_msg_hdr *h, int code, const char *text)
{
	size_t start = b->len;
	int rc;
	size_t tn = text ? strlen(text) : 0;
	if (tn > AAE_MAX_ERRTEXT)
		tn = AAE_MAX_ERRTEXT;
	if (code >= 0)
		code = Q_EPROTO;
	Q_ERR(put_hdr(b, h, AAE_MSG_ERROR));
	Q_ERR(q_put_varint(b, (uint64_t)(-(int64_t)code)));
	Q_ERR(q_put_lenbytes(b, text ? text : "", tn));
	return 0;
fail:
	b->len = start;
	return rc;
}

static int put_roots(q_buf *b, const aae_msg_hdr *h, uint8_t type, const aae_msg_root *r,
		     uint32_t n)
{
	size_t start = b->len;
	int rc;
	if (n > AAE_MAX_RANGES_PER_MSG)
		return Q_ETOOBIG;
	Q_ERR(put_hdr(b, h, type));
	Q_ERR(q_put_varint(b, n));
	for (uint32_t i = 0; i < n; i++) {
		Q_ERR(q_put_fixed64(b, r[i].start));
		Q_ERR(q_put_fixed64(b, r[i].end));
		if (type == AAE_MSG_ROOTS_RESP) {
			int ok = r[i].status == AAE_ROOT_OK;
			Q_ERR(q_buf_append_byte(b, r[i].status));
			Q_ERR(q_buf_append_byte(b, ok ? r[i].depth : 0));
			Q_ERR(q_put_fixed64(b, ok ? r[i].root : 0));
		}
	}
	return 0;
fail:
	b->len = start;
	return rc;
}

int aae_msg_put_roots_req(q_buf *b, const aae_msg_hdr *h, const aae_msg_root *r, uint32_t n)
{
	return put_roots(b, h, AAE_MSG_ROOTS_REQ, r, n);
}

int aae_msg_put_roots_resp(q_buf *b, const aae_msg_hdr *h, const aae_msg_root *r, uint32_t n)
{
	return put_roots(b, h, AAE_MSG_ROOTS_RESP, r, n);
}

int aae_bresp_begin(aae_bresp_writer *w, q_buf *b, const aae_msg_hdr *h)
{
	memset(w, 0, sizeof *w);
	w->b = b;
	w->start = b->len;
	int rc;
	Q_ERR(put_hdr(b, h, AAE_MSG_BUCKETS_RESP));
	w->nb_off = b->len;
	Q_ERR(q_put_fixed32(b, 0));
	return 0;
fail:
	b->len = w->start;
	return rc;
}

static void close_bucket(aae_bresp_writer *w)
{
	if (!w->in_bucket)
		return;
	q_enc_fixed32(w->b->p + w->np_off, w->npairs);
	w->in_bucket = 0;
}

int aae_bresp_bucket(aae_bresp_writer *w, uint32_t bucket)
{
	close_bucket(w);
	if (w->nbuckets >= AAE_MAX_BUCKETS_PER_MSG)
		return Q_ETOOBIG;
	size_t at = w->b->len;
	int rc;
	Q_ERR(q_put_fixed32(w->b, bucket));
	w->np_off = w->b->len;
	Q_ERR(q_put_fixed32(w->b, 0));
	w->nbuckets++;
	w->npairs = 0;
	w->in_bucket = 1;
	q_enc_fixed32(w->b->p + w->nb_off, w->nbuckets);
	return 0;
fail:
	w->b->len = at;
	return rc;
}

int aae_bresp_pair(aae_bresp_writer *w, q_slice key, uint64_t digest)
{
	if (!w->in_bucket)
		return -EINVAL;
	if (key.n > AAE_MAX_KEY || w->npairs >= AAE_MAX_KEYS_PER_BUCKET)
		return Q_ETOOBIG;
	size_t at = w->b->len;
	int rc;
	Q_ERR(q_put_lenbytes(w->b, key.p, key.n));
	Q_ERR(q_put_fixed64(w->b, digest));
	w->npairs++;
	return 0;
fail:
	w->b->len = at;
	return rc;
}

void aae_bresp_drop_bucket(aae_bresp_writer *w)
{
	if (!w->in_bucket)
		return;
	w->b->len = w->np_off - 4;
	w->nbuckets--;
	w->in_bucket = 0;
	q_enc_fixed32(w->b->p + w->nb_off, w->nbuckets);
}

void aae_bresp_end(aae_bresp_writer *w)
{
	close_bucket(w);
	q_enc_fixed32(w->b->p + w->nb_off, w->nbuckets);
}

/* Varints must be minimal: one value, one encoding (so a decoded message
 * re-encodes to the same bytes). */
static int get_uv64(q_reader *r, uint64_t *v)
{
	int rc = q_get_varint_canon(r, v);
	return rc == Q_ECORRUPT ? Q_EPROTO : rc;
}

static int get_uv32(q_reader *r, uint32_t *v)
{
	uint64_t x;
	q_reader save = *r;
	Q_RET(get_uv64(r, &x));
	if (x > UINT32_MAX) {
		*r = save;
		return Q_EPROTO;
	}
	*v = (uint32_t)x;
	return 0;
}

static int get_lenbytes(q_reader *r, size_t max, q_slice *out)
{
	int rc = q_get_lenbytes_canon(r, max, out);
	return rc == Q_ECORRUPT ? Q_EPROTO : rc;
}

/* ---- decoding -------------------------------------------------------------- */

void aae_msg_free(aae_msg *m)
{
	free(m->nodes);
	free(m->hashes);
	free(m->buckets);
	free(m->blist);
	free(m->pairs);
	free(m->roots);
	memset(m, 0, sizeof *m);
}

int aae_msg_decode_hdr(const uint8_t *p, size_t n, aae_msg_hdr *h)
{
	if (n < 1)
		return Q_ETRUNC;
	if (p[0] != AAE_MSG_VERSION)
		return Q_EVERSION;
	if (n < AAE_MSG_HDR_LEN)
		return Q_ETRUNC;
	if (p[1] < AAE_MSG_ROOT_REQ || p[1] > AAE_MSG_TYPE_LAST)
		return Q_EPROTO;
	h->type = p[1];
	h->xid = q_dec_fixed64(p + 2);
	h->range_start = q_dec_fixed64(p + 10);
	h->range_end = q_dec_fixed64(p + 18);
	return 0;
}

static int get_index_list(q_reader *r, uint32_t n, uint32_t limit, uint32_t *out)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t v;
		Q_RET(get_uv32(r, &v));
		if (v >= limit || (i > 0 && v <= out[i - 1]))
			return Q_EPROTO;
		out[i] = v;
	}
	return 0;
}

static int decode_children(q_reader *r, aae_msg *m, int resp)
{
	uint64_t n;
	Q_RET(q_get_u8(r, &m->level));
	if (m->level >= AAE_DEPTH_MAX)
		return Q_EPROTO;
	Q_RET(get_uv64(r, &n));
	if (n > AAE_MAX_NODES_PER_MSG)
		return Q_ETOOBIG;
	/* each entry takes at least 1 (req) or 1 + 128 (resp) bytes */
	if (n * (resp ? 1 + 8 * AAE_FANOUT : 1) > q_reader_left(r))
		return Q_ETRUNC;
	m->nnodes = (uint32_t)n;
	if (n == 0)
		return Q_EPROTO;
	m->nodes = calloc(n, sizeof *m->nodes);
	if (!m->nodes)
		return -ENOMEM;
	if (resp) {
		m->hashes = calloc(n * AAE_FANOUT, sizeof *m->hashes);
		if (!m->hashes)
			return -ENOMEM;
	}
	uint32_t limit = aae_level_width_(m->level);
	for (uint32_t i = 0; i < m->nnodes; i++) {
		uint32_t v;
		Q_RET(get_uv32(r, &v));
		if (v >= limit || (i > 0 && v <= m->nodes[i - 1]))
			return Q_EPROTO;
		m->nodes[i] = v;
		if (resp)
			for (unsigned c = 0; c < AAE_FANOUT; c++)
				Q_RET(q_get_fixed64(r, &m->hashes[(size_t)i * AAE_FANOUT + c]));
	}
	return 0;
}

static int decode_buckets_req(q_reader *r, aae_msg *m)
{
	uint64_t n;
	Q_RET(get_uv64(r, &n));
	if (n > AAE_MAX_BUCKETS_PER_MSG)
		return Q_ETOOBIG;
	if (n == 0)
		return Q_EPROTO;
	if (n > q_reader_left(r))
		return Q_ETRUNC;
	m->nbuckets = (uint32_t)n;
	m->buckets = calloc(n, sizeof *m->buckets);
	if (!m->buckets)
		return -ENOMEM;
	return get_index_list(r, m->nbuckets, aae_level_width_(AAE_DEPTH_MAX), m->buckets);
}

static int decode_buckets_resp(q_reader *r, aae_msg *m)
{
	uint32_t n;
	Q_RET(q_get_fixed32(r, &n));
	if (n > AAE_MAX_BUCKETS_PER_MSG)
		return Q_ETOOBIG;
	if ((uint64_t)n * 8 > q_reader_left(r))
		return Q_ETRUNC;
	m->nbuckets = n;
	if (n == 0)
		return 0;
	m->blist = calloc(n, sizeof *m->blist);
	if (!m->blist)
		return -ENOMEM;
	/* first pass: validate and count pairs, so one array holds them all */
	q_reader scan = *r;
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t b, k;
		Q_RET(q_get_fixed32(&scan, &b));
		Q_RET(q_get_fixed32(&scan, &k));
		if (b >= aae_level_width_(AAE_DEPTH_MAX) || (i > 0 && b <= m->blist[i - 1].bucket))
			return Q_EPROTO;
		if (k > AAE_MAX_KEYS_PER_BUCKET)
			return Q_ETOOBIG;
		if ((uint64_t)k * 9 > q_reader_left(&scan))
			return Q_ETRUNC;
		m->blist[i].bucket = b;
		m->blist[i].npairs = k;
		for (uint32_t j = 0; j < k; j++) {
			q_slice key;
			uint64_t d;
			Q_RET(get_lenbytes(&scan, AAE_MAX_KEY, &key));
			Q_RET(q_get_fixed64(&scan, &d));
		}
		total += k;
	}
	if (total) {
		m->pairs = calloc(total, sizeof *m->pairs);
		if (!m->pairs)
			return -ENOMEM;
	}
	/* second pass: fill (cannot fail: same bytes as the first pass) */
	size_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t b, k;
		Q_RET(q_get_fixed32(r, &b));
		Q_RET(q_get_fixed32(r, &k));
		m->blist[i].pairs = m->pairs ? m->pairs + at : NULL;
		for (uint32_t j = 0; j < k; j++, at++) {
			Q_RET(get_lenbytes(r, AAE_MAX_KEY, &m->pairs[at].key));
			Q_RET(q_get_fixed64(r, &m->pairs[at].digest));
		}
	}
	return 0;
}

static int decode_roots(q_reader *r, aae_msg *m, int resp)
{
	uint64_t n;
	Q_RET(get_uv64(r, &n));
	if (n > AAE_MAX_RANGES_PER_MSG)
		return Q_ETOOBIG;
	if (n == 0)
		return Q_EPROTO;
	size_t each = resp ? 26 : 16;
	if (n * each > q_reader_left(r))
		return Q_ETRUNC;
	m->nroots = (uint32_t)n;
	m->roots = calloc(n, sizeof *m->roots);
	if (!m->roots)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->nroots; i++) {
		aae_msg_root *x = &m->roots[i];
		Q_RET(q_get_fixed64(r, &x->start));
		Q_RET(q_get_fixed64(r, &x->end));
		if (i > 0) {
			const aae_msg_root *pr = &m->roots[i - 1];
			if (x->start < pr->start || (x->start == pr->start && x->end <= pr->end))
				return Q_EPROTO; /* strictly ascending: canonical, no repeats */
		}
		if (!resp)
			continue;
		Q_RET(q_get_u8(r, &x->status));
		Q_RET(q_get_u8(r, &x->depth));
		Q_RET(q_get_fixed64(r, &x->root));
		if (x->status > AAE_ROOT_NOT_READY)
			return Q_EPROTO;
		if (x->status == AAE_ROOT_OK ? (x->depth < AAE_DEPTH_MIN || x->depth > AAE_DEPTH_MAX)
					     : (x->depth != 0 || x->root != 0))
			return Q_EPROTO;
	}
	return 0;
}

int aae_msg_decode(const uint8_t *p, size_t n, aae_msg *m)
{
	memset(m, 0, sizeof *m);
	if (n > AAE_MAX_MSG)
		return Q_ETOOBIG;
	Q_RET(aae_msg_decode_hdr(p, n, &m->h));
	q_reader r = q_reader_make(p + AAE_MSG_HDR_LEN, n - AAE_MSG_HDR_LEN);
	int rc = 0;
	switch (m->h.type) {
	case AAE_MSG_ROOT_REQ:
		break;
	case AAE_MSG_ROOT_RESP:
		Q_ERR(q_get_u8(&r, &m->depth));
		Q_ERR(q_get_fixed64(&r, &m->root));
		Q_ERR(get_uv64(&r, &m->keys));
		if (m->depth < AAE_DEPTH_MIN || m->depth > AAE_DEPTH_MAX) {
			rc = Q_EPROTO;
			goto fail;
		}
		break;
	case AAE_MSG_CHILDREN_REQ:
		Q_ERR(decode_children(&r, m, 0));
		break;
	case AAE_MSG_CHILDREN_RESP:
		Q_ERR(decode_children(&r, m, 1));
		break;
	case AAE_MSG_BUCKETS_REQ:
		Q_ERR(decode_buckets_req(&r, m));
		break;
	case AAE_MSG_BUCKETS_RESP:
		Q_ERR(decode_buckets_resp(&r, m));
		break;
	case AAE_MSG_ROOTS_REQ:
		Q_ERR(decode_roots(&r, m, 0));
		break;
	case AAE_MSG_ROOTS_RESP:
		Q_ERR(decode_roots(&r, m, 1));
		break;
	case AAE_MSG_ERROR: {
		uint64_t c;
		Q_ERR(get_uv64(&r, &c));
		if (c == 0 || c > 0x7fffffff) {
			rc = Q_EPROTO;
			goto fail;
		}
		m->code = -(int32_t)c;
		Q_ERR(get_lenbytes(&r, AAE_MAX_ERRTEXT, &m->text));
		break;
	}
	default:
		rc = Q_EPROTO;
		goto fail;
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_EPROTO;
		goto fail;
	}
	return 0;
fail:
	aae_msg_free(m);
	return rc;
}
