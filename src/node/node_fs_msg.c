/*
 * node_fs_msg.c - codec of the filesystem admin payloads (node_fs_msg.h).
 *
 * Invariants: an encoder checks the same bounds its decoder enforces, so
 * whatever encodes decodes; decoders read only through a bounds-checked
 * q_reader and refuse trailing bytes. Threading: pure functions.
 */
#include "node/node_fs_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_proto.h"
#include "util/coding.h"
#include "util/qerr.h"

/* ------------------------------------------------------------------ */
/* FS_INFO_RESP                                                        */

static int put_str(q_buf *b, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return Q_EPROTO;
	return q_put_lenbytes(b, s, n);
}

static int get_str(q_reader *r, char *out, size_t max)
{
	q_slice s;
	Q_RET(q_get_lenbytes(r, max, &s));
	if (s.n == 0 || memchr(s.p, 0, s.n))
		return Q_EPROTO;
	memcpy(out, s.p, s.n);
	out[s.n] = 0;
	return 0;
}

int node_fs_info_encode(const node_fs_info *in, q_buf *out)
{
	size_t start = out->len;
	int rc;
	if (in->nmembers > NODE_FS_MAX_MEMBERS) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	Q_ERR(q_buf_append_byte(out, NODE_FS_MSG_VERSION));
	Q_ERR(q_put_fixed64(out, in->total));
	Q_ERR(q_put_fixed64(out, in->free));
	Q_ERR(q_put_fixed64(out, in->avail));
	Q_ERR(q_put_fixed64(out, in->files));
	Q_ERR(q_put_fixed64(out, in->ffree));
	Q_ERR(q_put_fixed64(out, in->hints));
	Q_ERR(q_put_varint(out, in->n));
	Q_ERR(q_put_varint(out, in->nmembers));
	for (size_t i = 0; i < in->nmembers; i++) {
		const node_fs_member *m = &in->members[i];
		if (m->state > 2 || m->self > 1) {
			rc = Q_EPROTO;
			goto fail;
		}
		Q_ERR(put_str(out, m->id, NODE_FS_MAX_ID));
		Q_ERR(put_str(out, m->addr, NODE_FS_MAX_ID));
		Q_ERR(q_buf_append_byte(out, m->state));
		Q_ERR(q_buf_append_byte(out, m->self));
	}
	return 0;
fail:
	out->len = start;
	return rc;
}

static int version_ok(q_reader *r)
{
	uint8_t v;
	Q_RET(q_get_u8(r, &v));
	return v == NODE_FS_MSG_VERSION ? 0 : Q_EVERSION;
}

int node_fs_info_decode(q_slice in, node_fs_info *out)
{
	q_reader r = q_reader_make(in.p, in.n);
	uint64_t n, nm;
	int rc;
	memset(out, 0, sizeof(*out));
	Q_ERR(version_ok(&r));
	Q_ERR(q_get_fixed64(&r, &out->total));
	Q_ERR(q_get_fixed64(&r, &out->free));
	Q_ERR(q_get_fixed64(&r, &out->avail));
	Q_ERR(q_get_fixed64(&r, &out->files));
	Q_ERR(q_get_fixed64(&r, &out->ffree));
	Q_ERR(q_get_fixed64(&r, &out->hints));
	Q_ERR(q_get_varint64(&r, &n));
	if (n > 1024) {
		rc = Q_EPROTO;
		goto fail;
	}
	out->n = (uint32_t)n;
	Q_ERR(q_get_varint64(&r, &nm));
	if (nm > NODE_FS_MAX_MEMBERS) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	/* each member takes at least 6 bytes: refuse counts the input cannot hold */
	if (nm > q_reader_left(&r) / 6) {
		rc = Q_ETRUNC;
		goto fail;
	}
	if (nm) {
		out->members = calloc((size_t)nm, sizeof(*out->members));
		if (!out->members) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < nm; i++) {
		node_fs_member *m = &out->members[i];
		Q_ERR(get_str(&r, m->id, NODE_FS_MAX_ID));
		Q_ERR(get_str(&r, m->addr, NODE_FS_MAX_ID));
		Q_ERR(q_get_u8(&r, &m->state));
		Q_ERR(q_get_u8(&r, &m->self));
		if (m->state > 2 || m->self > 1) {
			rc = Q_EPROTO;
			goto fail;
		}
		out->nmembers = i + 1;
	}
	if (q_reader_left(&r)) {
		rc = Q_EPROTO;
		goto fail;
	}
	return 0;
fail:
	node_fs_info_free(out);
	return rc;
}

void node_fs_info_free(node_fs_info *i)
{
	free(i->members);
	i->members = NULL;
	i->nmembers = 0;
}

/* ------------------------------------------------------------------ */
/* FS_SCAN                                                             */

int node_fs_scan_req_encode(const node_fs_scan_req *in, q_buf *out)
{
	size_t start = out->len;
	int rc;
	if (in->prefix.n > NODE_FS_MAX_PREFIX || in->after.n > NET_MAX_KEY ||
	    in->max_keys < 1 || in->max_keys > NODE_FS_SCAN_MAX_KEYS || in->max_bytes < 1 ||
	    in->max_bytes > NODE_FS_SCAN_MAX_BYTES || (in->flags & ~NODE_FS_SCAN_KNOWN))
		return Q_EPROTO;
	Q_ERR(q_buf_append_byte(out, NODE_FS_MSG_VERSION));
	Q_ERR(q_put_lenbytes(out, in->prefix.p, in->prefix.n));
	Q_ERR(q_put_lenbytes(out, in->after.p, in->after.n));
	Q_ERR(q_put_varint(out, in->max_keys));
	Q_ERR(q_put_varint(out, in->max_bytes));
	Q_ERR(q_buf_append_byte(out, in->flags));
	return 0;
fail:
	out->len = start;
	return rc;
}

int node_fs_scan_req_decode(q_slice in, node_fs_scan_req *out)
{
	q_reader r = q_reader_make(in.p, in.n);
	uint64_t mk, mb;
	memset(out, 0, sizeof(*out));
	Q_RET(version_ok(&r));
	Q_RET(q_get_lenbytes(&r, NODE_FS_MAX_PREFIX, &out->prefix));
	Q_RET(q_get_lenbytes(&r, NET_MAX_KEY, &out->after));
	Q_RET(q_get_varint64(&r, &mk));
	Q_RET(q_get_varint64(&r, &mb));
	Q_RET(q_get_u8(&r, &out->flags));
	if (mk < 1 || mk > NODE_FS_SCAN_MAX_KEYS || mb < 1 || mb > NODE_FS_SCAN_MAX_BYTES ||
	    (out->flags & ~NODE_FS_SCAN_KNOWN) || q_reader_left(&r))
		return Q_EPROTO;
	out->max_keys = (uint32_t)mk;
	out->max_bytes = (uint32_t)mb;
	return 0;
}

void node_fs_scan_build_init(node_fs_scan_build *b)
{
	q_buf_init(&b->body);
	b->nkeys = 0;
}

int node_fs_scan_build_add(node_fs_scan_build *b, const node_fs_scan_ent *e,
			   const q_slice *values)
{
	size_t start = b->body.len;
	int rc;
	if (e->key.n < 1 || e->key.n > NET_MAX_KEY || e->nlive > NODE_FS_MAX_SIBS ||
	    e->ntomb > NODE_FS_MAX_SIBS || e->ctx.n > NET_MAX_CTX ||
	    b->nkeys >= NODE_FS_SCAN_MAX_KEYS)
		return Q_EPROTO;
	Q_ERR(q_put_lenbytes(&b->body, e->key.p, e->key.n));
	Q_ERR(q_put_varint(&b->body, e->nlive));
	Q_ERR(q_put_varint(&b->body, e->ntomb));
	Q_ERR(q_put_fixed64(&b->body, e->newest_ns));
	Q_ERR(q_put_varint(&b->body, e->live_bytes));
	Q_ERR(q_put_lenbytes(&b->body, e->ctx.p, e->ctx.n));
	Q_ERR(q_buf_append_byte(&b->body, values ? 1 : 0));
	for (size_t i = 0; values && i < e->nlive; i++) {
		if (values[i].n > NET_MAX_VALUE) {
			rc = Q_ETOOBIG;
			goto fail;
		}
		Q_ERR(q_put_lenbytes(&b->body, values[i].p, values[i].n));
	}
	b->nkeys++;
	return 0;
fail:
	b->body.len = start;
	return rc;
}

int node_fs_scan_build_finish(node_fs_scan_build *b, int more, q_buf *out)
{
	size_t start = out->len;
	int rc;
	Q_ERR(q_buf_append_byte(out, NODE_FS_MSG_VERSION));
	Q_ERR(q_buf_append_byte(out, more ? 1 : 0));
	Q_ERR(q_put_varint(out, b->nkeys));
	Q_ERR(q_buf_append(out, b->body.p, b->body.len));
	node_fs_scan_build_free(b);
	return 0;
fail:
	out->len = start;
	return rc;
}

void node_fs_scan_build_free(node_fs_scan_build *b)
{
	q_buf_free(&b->body);
	b->nkeys = 0;
}

int node_fs_scan_resp_decode(q_slice in, node_fs_scan_resp *out)
{
	q_reader r = q_reader_make(in.p, in.n);
	uint64_t nk;
	uint8_t more;
	int rc;
	memset(out, 0, sizeof(*out));
	Q_ERR(version_ok(&r));
	Q_ERR(q_get_u8(&r, &more));
	if (more > 1) {
		rc = Q_EPROTO;
		goto fail;
	}
	out->more = more;
	Q_ERR(q_get_varint64(&r, &nk));
	if (nk > NODE_FS_SCAN_MAX_KEYS) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	/* an entry takes at least 15 bytes */
	if (nk > q_reader_left(&r) / 15) {
		rc = Q_ETRUNC;
		goto fail;
	}
	if (nk) {
		out->ents = calloc((size_t)nk, sizeof(*out->ents));
		if (!out->ents) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	/* first pass: entries and the number of values; slices fixed up after */
	size_t nvals = 0, cap = 0;
	for (size_t i = 0; i < nk; i++) {
		node_fs_scan_ent *e = &out->ents[i];
		uint64_t a, t;
		uint8_t hv;
		Q_ERR(q_get_lenbytes(&r, NET_MAX_KEY, &e->key));
		Q_ERR(q_get_varint64(&r, &a));
		Q_ERR(q_get_varint64(&r, &t));
		Q_ERR(q_get_fixed64(&r, &e->newest_ns));
		Q_ERR(q_get_varint64(&r, &e->live_bytes));
		Q_ERR(q_get_lenbytes(&r, NET_MAX_CTX, &e->ctx));
		Q_ERR(q_get_u8(&r, &hv));
		if (e->key.n == 0 || a > NODE_FS_MAX_SIBS || t > NODE_FS_MAX_SIBS || hv > 1) {
			rc = Q_EPROTO;
			goto fail;
		}
		e->nlive = (uint32_t)a;
		e->ntomb = (uint32_t)t;
		e->has_values = hv;
		if (hv && a) {
			if (nvals + a > cap) {
				size_t ncap = cap ? cap * 2 : 64;
				while (ncap < nvals + a)
					ncap *= 2;
				q_slice *nv = realloc(out->vals, ncap * sizeof(*nv));
				if (!nv) {
					rc = -ENOMEM;
					goto fail;
				}
				out->vals = nv;
				cap = ncap;
			}
			for (size_t k = 0; k < a; k++)
				Q_ERR(q_get_lenbytes(&r, NET_MAX_VALUE, &out->vals[nvals + k]));
		}
		e->values = NULL;
		nvals += hv ? a : 0;
		out->nkeys = i + 1;
	}
	if (q_reader_left(&r)) {
		rc = Q_EPROTO;
		goto fail;
	}
	for (size_t i = 0, v = 0; i < out->nkeys; i++) {
		node_fs_scan_ent *e = &out->ents[i];
		if (e->has_values) {
			/* non-NULL exactly when has_values, even for no live
			 * value (vals may be NULL then: no arithmetic on it) */
			static q_slice no_values[1];
			e->values = e->nlive ? out->vals + v : no_values;
			v += e->nlive;
		}
	}
	return 0;
fail:
	node_fs_scan_resp_free(out);
	return rc;
}

void node_fs_scan_resp_free(node_fs_scan_resp *r)
{
	free(r->ents);
	free(r->vals);
	memset(r, 0, sizeof(*r));
}
