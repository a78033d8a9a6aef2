/*
 * gossip_msg.c - encoder and strict decoder of gossip messages.
 *
 * Layout (docs/gossip.md):
 *   u8 version, u8 type, u8 flags,
 *   lenbytes cluster, lenbytes from_id, lenbytes from_addr,
 *   varint ring_version, fixed64 ring_hash, [lenbytes ring if F_RING],
 *   varint ndigests, ndigests x (lenbytes id, varint inc, varint hb, u8 status),
 *   varint nstates, nstates x (lenbytes id, lenbytes addr, lenbytes zone,
 *                              varint inc, varint hb, u8 status)
 *
 * Invariant: encode and decode apply the same checks (msg_check), so any
 * message this file encodes decodes to an equal value, and anything that
 * decodes re-encodes (lists sorted, no duplicates) to a message that decodes
 * to the same value.
 *
 * Thread safety: pure functions.
 */
#include "gossip/gossip_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

uint64_t gossip_ring_hash(const void *p, size_t n)
{
	return q_hash64(p, n, GOSSIP_RING_SEED);
}

const char *gossip_status_name(int status)
{
	switch (status) {
	case GOSSIP_ALIVE: return "alive";
	case GOSSIP_SUSPECT: return "suspect";
	case GOSSIP_DOWN: return "down";
	case GOSSIP_LEFT: return "left";
	default: return "unknown";
	}
}

const char *gossip_msg_type_name(int type)
{
	switch (type) {
	case GOSSIP_MSG_SYN: return "SYN";
	case GOSSIP_MSG_ACK: return "ACK";
	case GOSSIP_MSG_ACK2: return "ACK2";
	default: return "unknown";
	}
}

/* ---------------------------------------------------------------------
 * Checks shared by encoder and decoder
 * ------------------------------------------------------------------- */

/* Printable ASCII without spaces: safe in logs and in "host:port". */
static int text_ok(q_slice s, size_t min, size_t max)
{
	if (s.n < min)
		return Q_EPROTO;
	if (s.n > max)
		return Q_ETOOBIG;
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] < 0x21 || s.p[i] > 0x7e)
			return Q_EPROTO;
	return 0;
}

static int msg_check(const gossip_msg *m)
{
	if (m->type < GOSSIP_MSG_SYN || m->type > GOSSIP_MSG_ACK2)
		return Q_EPROTO;
	if (m->flags & ~GOSSIP_F_KNOWN)
		return Q_EPROTO;
	Q_RET(text_ok(m->cluster, 1, GOSSIP_CLUSTER_MAX));
	Q_RET(text_ok(m->from_id, 1, GOSSIP_ID_MAX));
	Q_RET(text_ok(m->from_addr, 1, GOSSIP_ADDR_MAX));
	if (m->ring_version == 0) {
		if (m->ring_hash != 0 || (m->flags & GOSSIP_F_RING))
			return Q_EPROTO;
	}
	if (m->flags & GOSSIP_F_RING) {
		if (m->ring.n > GOSSIP_RING_MAX)
			return Q_ETOOBIG;
		if (gossip_ring_hash(m->ring.p, m->ring.n) != m->ring_hash)
			return Q_EPROTO;
	} else if (m->ring.n != 0) {
		return Q_EPROTO;
	}
	/* What each type may carry. */
	switch (m->type) {
	case GOSSIP_MSG_SYN:
		if (m->nstates || m->flags)
			return Q_EPROTO;
		break;
	case GOSSIP_MSG_ACK2:
		if (m->ndigests || (m->flags & GOSSIP_F_RING_WANTED))
			return Q_EPROTO;
		break;
	default:
		break;
	}
	if (m->ndigests > GOSSIP_MEMBERS_MAX || m->nstates > GOSSIP_MEMBERS_MAX)
		return Q_ETOOBIG;
	for (size_t i = 0; i < m->ndigests; i++) {
		const gossip_digest *d = &m->digests[i];
		Q_RET(text_ok(d->id, 1, GOSSIP_ID_MAX));
		if (d->status > GOSSIP_STATUS_MAX)
			return Q_EPROTO;
		if (i > 0 && q_slice_cmp(m->digests[i - 1].id, d->id) >= 0)
			return Q_EPROTO;
	}
	for (size_t i = 0; i < m->nstates; i++) {
		const gossip_state *s = &m->states[i];
		Q_RET(text_ok(s->id, 1, GOSSIP_ID_MAX));
		Q_RET(text_ok(s->addr, 1, GOSSIP_ADDR_MAX));
		Q_RET(text_ok(s->zone, 0, GOSSIP_ZONE_MAX));
		if (s->status > GOSSIP_STATUS_MAX)
			return Q_EPROTO;
		if (i > 0 && q_slice_cmp(m->states[i - 1].id, s->id) >= 0)
			return Q_EPROTO;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Encoder
 * ------------------------------------------------------------------- */

int gossip_msg_encode(const gossip_msg *m, q_buf *out)
{
	int rc = msg_check(m);
	if (rc < 0)
		return -EINVAL;
	size_t start = out->len;
	Q_ERR(q_buf_append_byte(out, GOSSIP_PROTO_V1));
	Q_ERR(q_buf_append_byte(out, m->type));
	Q_ERR(q_buf_append_byte(out, m->flags));
	Q_ERR(q_put_lenbytes(out, m->cluster.p, m->cluster.n));
	Q_ERR(q_put_lenbytes(out, m->from_id.p, m->from_id.n));
	Q_ERR(q_put_lenbytes(out, m->from_addr.p, m->from_addr.n));
	Q_ERR(q_put_varint(out, m->ring_version));
	Q_ERR(q_put_fixed64(out, m->ring_hash));
	if (m->flags & GOSSIP_F_RING)
		Q_ERR(q_put_lenbytes(out, m->ring.p, m->ring.n));
	Q_ERR(q_put_varint(out, m->ndigests));
	for (size_t i = 0; i < m->ndigests; i++) {
		const gossip_digest *d = &m->digests[i];
		Q_ERR(q_put_lenbytes(out, d->id.p, d->id.n));
		Q_ERR(q_put_varint(out, d->incarnation));
		Q_ERR(q_put_varint(out, d->heartbeat));
		Q_ERR(q_buf_append_byte(out, d->status));
	}
	Q_ERR(q_put_varint(out, m->nstates));
	for (size_t i = 0; i < m->nstates; i++) {
		const gossip_state *s = &m->states[i];
		Q_ERR(q_put_lenbytes(out, s->id.p, s->id.n));
		Q_ERR(q_put_lenbytes(out, s->addr.p, s->addr.n));
		Q_ERR(q_put_lenbytes(out, s->zone.p, s->zone.n));
		Q_ERR(q_put_varint(out, s->incarnation));
		Q_ERR(q_put_varint(out, s->heartbeat));
		Q_ERR(q_buf_append_byte(out, s->status));
	}
	return 0;
fail:
	out->len = start;
	return rc;
}

/* ---------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------- */

/* Smallest encodings, used to refuse counts the input cannot hold before
 * allocating for them. */
#define DIGEST_MIN_BYTES 5u /* len, 1 id byte, inc, hb, status */
#define STATE_MIN_BYTES 7u  /* len+id, len+addr, zone len, inc, hb, status */

static int get_count(q_reader *r, size_t min_each, size_t *out)
{
	uint64_t v;
	Q_RET(q_get_varint64(r, &v));
	if (v > GOSSIP_MEMBERS_MAX)
		return Q_ETOOBIG;
	if (v * min_each > q_reader_left(r))
		return Q_ETRUNC;
	*out = (size_t)v;
	return 0;
}

int gossip_msg_decode(const void *p, size_t n, gossip_msg *m)
{
	q_reader r = q_reader_make(p, n);
	uint8_t version;
	int rc;

	memset(m, 0, sizeof(*m));
	Q_ERR(q_get_u8(&r, &version));
	if (version != GOSSIP_PROTO_V1) {
		rc = Q_EVERSION;
		goto fail;
	}
	Q_ERR(q_get_u8(&r, &m->type));
	Q_ERR(q_get_u8(&r, &m->flags));
	Q_ERR(q_get_lenbytes(&r, GOSSIP_CLUSTER_MAX, &m->cluster));
	Q_ERR(q_get_lenbytes(&r, GOSSIP_ID_MAX, &m->from_id));
	Q_ERR(q_get_lenbytes(&r, GOSSIP_ADDR_MAX, &m->from_addr));
	Q_ERR(q_get_varint64(&r, &m->ring_version));
	Q_ERR(q_get_fixed64(&r, &m->ring_hash));
	if (m->flags & GOSSIP_F_RING)
		Q_ERR(q_get_lenbytes(&r, GOSSIP_RING_MAX, &m->ring));

	Q_ERR(get_count(&r, DIGEST_MIN_BYTES, &m->ndigests));
	if (m->ndigests) {
		m->digests = calloc(m->ndigests, sizeof(*m->digests));
		if (!m->digests) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < m->ndigests; i++) {
		gossip_digest *d = &m->digests[i];
		Q_ERR(q_get_lenbytes(&r, GOSSIP_ID_MAX, &d->id));
		Q_ERR(q_get_varint64(&r, &d->incarnation));
		Q_ERR(q_get_varint64(&r, &d->heartbeat));
		Q_ERR(q_get_u8(&r, &d->status));
	}
	Q_ERR(get_count(&r, STATE_MIN_BYTES, &m->nstates));
	if (m->nstates) {
		m->states = calloc(m->nstates, sizeof(*m->states));
		if (!m->states) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < m->nstates; i++) {
		gossip_state *s = &m->states[i];
		Q_ERR(q_get_lenbytes(&r, GOSSIP_ID_MAX, &s->id));
		Q_ERR(q_get_lenbytes(&r, GOSSIP_ADDR_MAX, &s->addr));
		Q_ERR(q_get_lenbytes(&r, GOSSIP_ZONE_MAX, &s->zone));
		Q_ERR(q_get_varint64(&r, &s->incarnation));
		Q_ERR(q_get_varint64(&r, &s->heartbeat));
		Q_ERR(q_get_u8(&r, &s->status));
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_EPROTO;
		goto fail;
	}
	Q_ERR(msg_check(m));
	return 0;
fail:
	gossip_msg_clear(m);
	return rc;
}

void gossip_msg_clear(gossip_msg *m)
{
	free(m->digests);
	free(m->states);
	memset(m, 0, sizeof(*m));
}
