/*
 * client.c - the parts of the client API shared by both implementations:
 * qc_object lifetime, filling one from a sibling set, and the printable
 * context token.
 *
 * Invariants: a qc_object's sibling values all point into memory the object
 * owns (one heap block kept in priv, see qc_object_reserve); qc_object_free
 * releases everything and leaves the object re-usable (as after init).
 * Tokens are base64url without padding (RFC 4648 section 5), so they survive
 * shells and URLs unquoted; decoding rejects any other character, a length
 * that no encoding produces, and non-zero padding bits, so a token has
 * exactly one spelling.
 *
 * Thread safety: pure functions over caller memory.
 */
#include "client/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "util/qerr.h"

void qc_object_init(qc_object *o)
{
	memset(o, 0, sizeof(*o));
	q_buf_init(&o->context);
}

void qc_object_free(qc_object *o)
{
	if (!o)
		return;
	free(o->sib);
	free(o->priv);
	q_buf_free(&o->context);
	qc_object_init(o);
}

size_t qc_object_live(const qc_object *o)
{
	size_t n = 0;
	for (size_t i = 0; i < o->nsib; i++)
		if (!o->sib[i].deleted)
			n++;
	return n;
}

int qc_object_reserve(qc_object *o, size_t nsib, size_t value_bytes, uint8_t **store)
{
	qc_object_free(o);
	if (nsib) {
		o->sib = calloc(nsib, sizeof(qc_sibling));
		if (!o->sib)
			return -ENOMEM;
	}
	o->priv = malloc(value_bytes ? value_bytes : 1);
	if (!o->priv) {
		free(o->sib);
		o->sib = NULL;
		return -ENOMEM;
	}
	o->nsib = nsib;
	*store = o->priv;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Context tokens                                                      */

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int qc_ctx_to_token(q_slice ctx, q_buf *out)
{
	q_buf_reset(out);
	size_t need = (ctx.n * 4 + 2) / 3 + 1;
	Q_RET(q_buf_reserve(out, need));
	size_t i = 0;
	uint8_t *p = out->p;
	for (; i + 3 <= ctx.n; i += 3) {
		uint32_t v = ((uint32_t)ctx.p[i] << 16) | ((uint32_t)ctx.p[i + 1] << 8) | ctx.p[i + 2];
		*p++ = (uint8_t)b64url[(v >> 18) & 63];
		*p++ = (uint8_t)b64url[(v >> 12) & 63];
		*p++ = (uint8_t)b64url[(v >> 6) & 63];
		*p++ = (uint8_t)b64url[v & 63];
	}
	size_t rest = ctx.n - i;
	if (rest == 1) {
		uint32_t v = (uint32_t)ctx.p[i] << 16;
		*p++ = (uint8_t)b64url[(v >> 18) & 63];
		*p++ = (uint8_t)b64url[(v >> 12) & 63];
	} else if (rest == 2) {
		uint32_t v = ((uint32_t)ctx.p[i] << 16) | ((uint32_t)ctx.p[i + 1] << 8);
		*p++ = (uint8_t)b64url[(v >> 18) & 63];
		*p++ = (uint8_t)b64url[(v >> 12) & 63];
		*p++ = (uint8_t)b64url[(v >> 6) & 63];
	}
	*p = 0; /* NUL-terminated for printing; not counted in len */
	out->len = (size_t)(p - out->p);
	return 0;
}

int qc_token_to_ctx(const char *token, q_buf *out)
{
	q_buf_reset(out);
	size_t n = strlen(token);
	if (n % 4 == 1)
		return Q_EBADCTX;
	Q_RET(q_buf_reserve(out, n / 4 * 3 + 3));
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)token[i]);
		if (v < 0) {
			q_buf_reset(out);
			return Q_EBADCTX;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out->p[out->len++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) { /* leftover bits must be zero: one spelling per context */
		q_buf_reset(out);
		return Q_EBADCTX;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Objects from sibling sets                                           */

int qc_object_from_set(const obj_set *s, qc_object *o)
{
	size_t n = obj_set_count(s);
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		obj_sibling sb;
		obj_set_sibling(s, i, &sb);
		bytes += sb.value.n;
	}
	uint8_t *store = NULL;
	Q_RET(qc_object_reserve(o, n, bytes, &store));
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		obj_sibling sb;
		obj_set_sibling(s, i, &sb);
		qc_sibling *d = &o->sib[i];
		if (sb.value.n)
			memcpy(store + off, sb.value.p, sb.value.n);
		d->value = q_slice_make(store + off, sb.value.n);
		off += sb.value.n;
		d->deleted = sb.tombstone ? 1 : 0;
		d->wall_ns = sb.wall_ns > 0 ? (uint64_t)sb.wall_ns : 0;
		snprintf(d->node, sizeof(d->node), "%s", sb.node);
		d->counter = sb.counter;
	}
	int rc = obj_ctx_encode(obj_set_ctx(s), &o->context);
	if (rc < 0)
		qc_object_free(o);
	return rc;
}
