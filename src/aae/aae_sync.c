/*
 * aae_sync.c - codec of the key-sync and repair admin messages (see
 * aae_sync.h for the layouts and the decoding rules).
 *
 * Invariant: a message that decodes re-encodes to the same bytes (varints
 * are read canonically, flags and has bytes are checked exactly), which the
 * fuzz target asserts. Threading: pure functions.
 */
#include "aae/aae_sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_format.h"
#include "util/coding.h"
#include "util/qerr.h"

int aae_sync_encode(q_buf *b, uint8_t kind, uint64_t xid, const aae_sync_item *items,
		    uint32_t n)
{
	if ((kind != AAE_SYNC_KIND_REQ && kind != AAE_SYNC_KIND_RESP) || n == 0 ||
	    n > AAE_SYNC_MAX_KEYS)
		return -EINVAL;
	size_t old = b->len;
	int rc;
	Q_ERR(q_buf_append_byte(b, AAE_SYNC_VERSION));
	Q_ERR(q_buf_append_byte(b, kind));
	Q_ERR(q_put_fixed64(b, xid));
	Q_ERR(q_put_varint(b, n));
	for (uint32_t i = 0; i < n; i++) {
		const aae_sync_item *it = &items[i];
		rc = -EINVAL;
		if (it->key.n == 0 || it->key.n > AAE_MAX_KEY)
			goto fail;
		if (it->has && (it->object.n == 0 || it->object.n > AAE_SYNC_MAX_OBJECT))
			goto fail;
		Q_ERR(q_put_lenbytes(b, it->key.p, it->key.n));
		Q_ERR(q_buf_append_byte(b, it->has ? 1 : 0));
		if (it->has)
			Q_ERR(q_put_lenbytes(b, it->object.p, it->object.n));
	}
	return 0;
fail:
	b->len = old;
	return rc;
}

/* q_reader errors: map the util codes onto the documented ones. */
static int rd_err(int rc)
{
	if (rc == Q_ETRUNC || rc == Q_ETOOBIG)
		return rc;
	return Q_EPROTO;
}

int aae_sync_decode(const uint8_t *p, size_t n, aae_sync_msg *m)
{
	memset(m, 0, sizeof(*m));
	q_reader r = q_reader_make(p, n);
	uint8_t ver, kind;
	uint64_t cnt;
	int rc;
	if ((rc = q_get_u8(&r, &ver)) < 0)
		return rd_err(rc);
	if (ver != AAE_SYNC_VERSION)
		return Q_EVERSION;
	if ((rc = q_get_u8(&r, &kind)) < 0 || (rc = q_get_fixed64(&r, &m->xid)) < 0 ||
	    (rc = q_get_varint_canon(&r, &cnt)) < 0)
		return rd_err(rc);
	if (kind != AAE_SYNC_KIND_REQ && kind != AAE_SYNC_KIND_RESP)
		return Q_EPROTO;
	if (cnt == 0)
		return Q_EPROTO;
	if (cnt > AAE_SYNC_MAX_KEYS)
		return Q_ETOOBIG;
	/* each item takes at least 3 bytes: check before allocating */
	if (cnt * 3 > q_reader_left(&r))
		return Q_ETRUNC;
	m->kind = kind;
	m->items = calloc((size_t)cnt, sizeof(*m->items));
	if (!m->items)
		return -ENOMEM;
	m->n = (uint32_t)cnt;
	for (uint32_t i = 0; i < m->n; i++) {
		aae_sync_item *it = &m->items[i];
		uint8_t has;
		if ((rc = q_get_lenbytes_canon(&r, AAE_MAX_KEY, &it->key)) < 0 ||
		    (rc = q_get_u8(&r, &has)) < 0) {
			rc = rd_err(rc);
			goto fail;
		}
		rc = Q_EPROTO;
		if (it->key.n == 0 || has > 1)
			goto fail;
		it->has = has;
		if (has) {
			if ((rc = q_get_lenbytes_canon(&r, AAE_SYNC_MAX_OBJECT, &it->object)) < 0) {
				rc = rd_err(rc);
				goto fail;
			}
			rc = Q_EPROTO;
			if (it->object.n == 0)
				goto fail;
		}
	}
	rc = Q_EPROTO;
	if (q_reader_left(&r) != 0)
		goto fail;
	return 0;
fail:
	aae_sync_msg_free(m);
	return rc;
}

void aae_sync_msg_free(aae_sync_msg *m)
{
	free(m->items);
	memset(m, 0, sizeof(*m));
}

int aae_repair_req_encode(q_buf *b, const aae_repair_req *q)
{
	if (q->op != AAE_REPAIR_START && q->op != AAE_REPAIR_POLL)
		return -EINVAL;
	size_t old = b->len;
	int rc;
	Q_ERR(q_buf_append_byte(b, AAE_REPAIR_VERSION));
	Q_ERR(q_buf_append_byte(b, q->op));
	Q_ERR(q_buf_append_byte(b, q->has_range ? AAE_REPAIR_F_RANGE : 0));
	if (q->has_range) {
		Q_ERR(q_put_fixed64(b, q->start));
		Q_ERR(q_put_fixed64(b, q->end));
	}
	return 0;
fail:
	b->len = old;
	return rc;
}

int aae_repair_req_decode(const uint8_t *p, size_t n, aae_repair_req *q)
{
	memset(q, 0, sizeof(*q));
	q_reader r = q_reader_make(p, n);
	uint8_t ver, flags;
	int rc;
	if ((rc = q_get_u8(&r, &ver)) < 0)
		return rd_err(rc);
	if (ver != AAE_REPAIR_VERSION)
		return Q_EVERSION;
	if ((rc = q_get_u8(&r, &q->op)) < 0 || (rc = q_get_u8(&r, &flags)) < 0)
		return rd_err(rc);
	if ((q->op != AAE_REPAIR_START && q->op != AAE_REPAIR_POLL) ||
	    (flags & ~AAE_REPAIR_F_RANGE))
		return Q_EPROTO;
	q->has_range = (flags & AAE_REPAIR_F_RANGE) != 0;
	if (q->has_range) {
		if ((rc = q_get_fixed64(&r, &q->start)) < 0 || (rc = q_get_fixed64(&r, &q->end)) < 0)
			return rd_err(rc);
	}
	return q_reader_left(&r) ? Q_EPROTO : 0;
}

static uint64_t *counter(aae_repair_status *s, int i)
{
	uint64_t *c[AAE_REPAIR_NCOUNTERS] = {
		&s->ranges_total, &s->ranges_done, &s->ranges_differing, &s->failures,
		&s->nodes_compared, &s->keys_differing, &s->keys_sent, &s->keys_received,
		&s->bytes_exchange, &s->bytes_sent, &s->bytes_received, &s->elapsed_ms,
	};
	return c[i];
}

int aae_repair_status_encode(q_buf *b, const aae_repair_status *s)
{
	if (s->state > AAE_REPAIR_PARTIAL)
		return -EINVAL;
	size_t old = b->len;
	int rc;
	aae_repair_status tmp = *s;
	Q_ERR(q_buf_append_byte(b, AAE_REPAIR_VERSION));
	Q_ERR(q_buf_append_byte(b, s->state));
	Q_ERR(q_put_fixed64(b, s->job));
	for (int i = 0; i < AAE_REPAIR_NCOUNTERS; i++)
		Q_ERR(q_put_varint(b, *counter(&tmp, i)));
	return 0;
fail:
	b->len = old;
	return rc;
}

int aae_repair_status_decode(const uint8_t *p, size_t n, aae_repair_status *s)
{
	memset(s, 0, sizeof(*s));
	q_reader r = q_reader_make(p, n);
	uint8_t ver;
	int rc;
	if ((rc = q_get_u8(&r, &ver)) < 0)
		return rd_err(rc);
	if (ver != AAE_REPAIR_VERSION)
		return Q_EVERSION;
	if ((rc = q_get_u8(&r, &s->state)) < 0 || (rc = q_get_fixed64(&r, &s->job)) < 0)
		return rd_err(rc);
	if (s->state > AAE_REPAIR_PARTIAL)
		return Q_EPROTO;
	for (int i = 0; i < AAE_REPAIR_NCOUNTERS; i++)
		if ((rc = q_get_varint_canon(&r, counter(s, i))) < 0)
			return rd_err(rc);
	return q_reader_left(&r) ? Q_EPROTO : 0;
}
