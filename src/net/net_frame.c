/*
 * net_frame.c - frame header encoding and decoding (see net_frame.h).
 *
 * Pure functions: no allocation except in net_frame_encode's append, no
 * global state. The decoder checks the header fields in a fixed order
 * (magic, version, flags, type, length) so that a given bad input always
 * yields the same error, then the checksum once the payload is present.
 */
#include "net/net_frame.h"

#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

int net_frame_decode_hdr(const uint8_t *buf, size_t len, size_t max_payload, net_frame *f)
{
	if (max_payload == 0 || max_payload > NET_MAX_PAYLOAD)
		max_payload = NET_MAX_PAYLOAD;
	/* Reject a wrong magic as early as its first bytes arrive, so garbage
	 * is refused without waiting for a whole header. */
	uint8_t magic[4];
	q_enc_fixed32(magic, NET_FRAME_MAGIC);
	size_t m = len < 4 ? len : 4;
	if (m > 0 && memcmp(buf, magic, m) != 0)
		return Q_EPROTO;
	if (len < NET_FRAME_HDR_LEN)
		return NET_NEED_MORE;
	uint8_t version = buf[NET_OFF_VERSION];
	uint8_t type = buf[NET_OFF_TYPE];
	uint16_t flags = q_dec_fixed16(buf + NET_OFF_FLAGS);
	uint32_t plen = q_dec_fixed32(buf + NET_OFF_LEN);
	if (version != NET_PROTO_VERSION)
		return Q_EVERSION;
	if (flags & ~NET_FF_KNOWN)
		return Q_EPROTO;
	if (type == NET_MSG_NONE)
		return Q_EPROTO;
	if (plen > max_payload)
		return Q_ETOOBIG;
	f->version = version;
	f->type = type;
	f->flags = flags;
	f->reqid = q_dec_fixed64(buf + NET_OFF_REQID);
	f->payload.p = NULL;
	f->payload.n = plen;
	return 0;
}

int net_frame_decode2(const uint8_t *buf, size_t len, size_t max_payload, net_frame *f,
		      size_t *consumed)
{
	net_frame h;
	int rc = net_frame_decode_hdr(buf, len, max_payload, &h);
	if (rc != 0)
		return rc;
	size_t total = NET_FRAME_HDR_LEN + h.payload.n;
	if (len < total)
		return NET_NEED_MORE;
	const uint8_t *payload = buf + NET_FRAME_HDR_LEN;
	uint32_t want = q_dec_fixed32(buf + NET_OFF_CSUM);
	uint32_t got = q_csum32_2(buf, NET_OFF_CSUM, payload, h.payload.n);
	if (want != got)
		return Q_EPROTO;
	h.payload.p = payload;
	*f = h;
	*consumed = total;
	return 0;
}

int net_frame_write_hdr(uint8_t hdr[NET_FRAME_HDR_LEN], uint8_t type, uint16_t flags,
			uint64_t reqid, q_slice payload)
{
	if (payload.n > NET_MAX_PAYLOAD)
		return Q_ETOOBIG;
	if (type == NET_MSG_NONE || (flags & ~NET_FF_KNOWN))
		return Q_EPROTO;
	q_enc_fixed32(hdr + NET_OFF_MAGIC, NET_FRAME_MAGIC);
	hdr[NET_OFF_VERSION] = NET_PROTO_VERSION;
	hdr[NET_OFF_TYPE] = type;
	q_enc_fixed16(hdr + NET_OFF_FLAGS, flags);
	q_enc_fixed64(hdr + NET_OFF_REQID, reqid);
	q_enc_fixed32(hdr + NET_OFF_LEN, (uint32_t)payload.n);
	q_enc_fixed32(hdr + NET_OFF_CSUM, q_csum32_2(hdr, NET_OFF_CSUM, payload.p, payload.n));
	return 0;
}

int net_frame_encode(q_buf *out, uint8_t type, uint16_t flags, uint64_t reqid, q_slice payload)
{
	uint8_t hdr[NET_FRAME_HDR_LEN];
	Q_RET(net_frame_write_hdr(hdr, type, flags, reqid, payload));
	Q_RET(q_buf_reserve(out, NET_FRAME_HDR_LEN + payload.n));
	q_buf_append(out, hdr, sizeof hdr);
	if (payload.n)
		q_buf_append(out, payload.p, payload.n);
	return 0;
}
