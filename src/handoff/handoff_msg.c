/*
 * handoff_msg.c - encoder and strict decoder of the handoff and leave
 * payloads (layouts in handoff_msg.h).
 *
 * Invariant: encoder and decoder apply the same limits, so whatever encodes
 * decodes to the same value and whatever decodes re-encodes to the same
 * bytes (varints and lengths are canonical).
 *
 * Thread safety: pure functions.
 */
#include "handoff/handoff_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_proto.h"
#include "util/coding.h"
#include "util/qerr.h"

static int check_version(q_reader *r)
{
	uint8_t v;
	Q_RET(q_get_u8(r, &v));
	return v == HANDOFF_MSG_V1 ? 0 : Q_EVERSION;
}

static int get_field(q_reader *r, size_t min, size_t max, q_slice *out)
{
	Q_RET(q_get_lenbytes_canon(r, max, out));
	return out->n < min ? Q_EPROTO : 0;
}

static int end_of(q_reader *r)
{
	return q_reader_left(r) ? Q_EPROTO : 0;
}

int handoff_batch_encode(q_slice sender, const handoff_entry *v, size_t n, q_buf *out)
{
	if (sender.n == 0 || sender.n > HANDOFF_ID_MAX || n == 0 || n > HANDOFF_BATCH_MAX_KEYS)
		return Q_EPROTO;
	for (size_t i = 0; i < n; i++) {
		if (v[i].key.n == 0 || v[i].object.n == 0)
			return Q_EPROTO;
		if (v[i].key.n > NET_MAX_KEY || v[i].object.n > NET_MAX_OBJECT)
			return Q_ETOOBIG;
	}
	size_t old = out->len;
	int rc = q_buf_append_byte(out, HANDOFF_MSG_V1);
	if (rc == 0)
		rc = q_put_lenbytes(out, sender.p, sender.n);
	if (rc == 0)
		rc = q_put_varint(out, n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = q_put_lenbytes(out, v[i].key.p, v[i].key.n);
		if (rc == 0)
			rc = q_put_lenbytes(out, v[i].object.p, v[i].object.n);
	}
	if (rc < 0)
		out->len = old;
	return rc;
}

int handoff_batch_decode(const void *p, size_t n, handoff_batch *out)
{
	memset(out, 0, sizeof(*out));
	q_reader r = q_reader_make(p, n);
	uint64_t cnt = 0;
	int rc = check_version(&r);
	if (rc == 0)
		rc = get_field(&r, 1, HANDOFF_ID_MAX, &out->sender);
	if (rc == 0)
		rc = q_get_varint_canon(&r, &cnt);
	if (rc < 0)
		return rc;
	if (cnt == 0 || cnt > HANDOFF_BATCH_MAX_KEYS)
		return Q_EPROTO;
	/* each entry takes at least 4 bytes: refuse counts the input cannot hold
	 * before allocating for them */
	if (cnt > q_reader_left(&r) / 4)
		return Q_ETRUNC;
	out->v = calloc((size_t)cnt, sizeof(handoff_entry));
	if (!out->v)
		return -ENOMEM;
	for (uint64_t i = 0; i < cnt && rc == 0; i++) {
		rc = get_field(&r, 1, NET_MAX_KEY, &out->v[i].key);
		if (rc == 0)
			rc = get_field(&r, 1, NET_MAX_OBJECT, &out->v[i].object);
	}
	if (rc == 0)
		rc = end_of(&r);
	if (rc < 0) {
		handoff_batch_clear(out);
		return rc;
	}
	out->n = (size_t)cnt;
	return 0;
}

void handoff_batch_clear(handoff_batch *b)
{
	free(b->v);
	memset(b, 0, sizeof(*b));
}

int handoff_batch_resp_encode(uint64_t merged, uint64_t unchanged, q_buf *out)
{
	size_t old = out->len;
	int rc = q_buf_append_byte(out, HANDOFF_MSG_V1);
	if (rc == 0)
		rc = q_put_varint(out, merged);
	if (rc == 0)
		rc = q_put_varint(out, unchanged);
	if (rc < 0)
		out->len = old;
	return rc;
}

int handoff_batch_resp_decode(const void *p, size_t n, uint64_t *merged, uint64_t *unchanged)
{
	q_reader r = q_reader_make(p, n);
	int rc = check_version(&r);
	if (rc == 0)
		rc = q_get_varint_canon(&r, merged);
	if (rc == 0)
		rc = q_get_varint_canon(&r, unchanged);
	return rc < 0 ? rc : end_of(&r);
}

int handoff_leave_encode(q_slice node, q_buf *out)
{
	if (node.n > HANDOFF_ID_MAX)
		return Q_ETOOBIG;
	size_t old = out->len;
	int rc = q_buf_append_byte(out, HANDOFF_MSG_V1);
	if (rc == 0)
		rc = q_put_lenbytes(out, node.p, node.n);
	if (rc < 0)
		out->len = old;
	return rc;
}

int handoff_leave_decode(const void *p, size_t n, q_slice *node)
{
	q_reader r = q_reader_make(p, n);
	int rc = check_version(&r);
	if (rc == 0)
		rc = get_field(&r, 0, HANDOFF_ID_MAX, node);
	return rc < 0 ? rc : end_of(&r);
}

int handoff_leave_resp_encode(q_slice text, q_buf *out)
{
	if (text.n > HANDOFF_TEXT_MAX)
		return Q_ETOOBIG;
	size_t old = out->len;
	int rc = q_buf_append_byte(out, HANDOFF_MSG_V1);
	if (rc == 0)
		rc = q_put_lenbytes(out, text.p, text.n);
	if (rc < 0)
		out->len = old;
	return rc;
}

int handoff_leave_resp_decode(const void *p, size_t n, q_slice *text)
{
	q_reader r = q_reader_make(p, n);
	int rc = check_version(&r);
	if (rc == 0)
		rc = get_field(&r, 0, HANDOFF_TEXT_MAX, text);
	return rc < 0 ? rc : end_of(&r);
}
