/*
 * net_frame.h - the frame codec: pure functions over byte buffers.
 *
 * A frame is a fixed 24-byte header (layout in net_proto.h and
 * docs/protocol.md) followed by a payload. Decoding never allocates, never
 * reads outside [buf, buf+len) and distinguishes three outcomes:
 *
 *   0            a whole, valid frame starts at buf; *consumed = its size
 *   NET_NEED_MORE  the bytes so far are a valid prefix; read more and retry
 *   < 0          malformed: Q_EPROTO (bad magic, unknown flags, checksum
 *                mismatch, type 0), Q_EVERSION (protocol version other than
 *                NET_PROTO_VERSION), Q_ETOOBIG (payload length over the
 *                limit; detected from the header alone, before the payload
 *                arrives)
 *
 * Invariants: the checksum covers header bytes 0..19 and the payload, so a
 * flipped bit anywhere in a frame is detected (up to the 32-bit checksum's
 * odds). The request id and type are not interpreted here.
 *
 * Ownership: a decoded net_frame borrows its payload from the input buffer;
 * it is valid as long as that buffer is. Threading: pure, thread-safe.
 */
#ifndef Q_NET_FRAME_H
#define Q_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_proto.h"
#include "util/buf.h"

/* Positive: not an error, the decoder needs more input. */
#define NET_NEED_MORE 1

typedef struct net_frame {
	uint8_t version;
	uint8_t type;      /* enum net_msg_type */
	uint16_t flags;    /* NET_FF_* */
	uint64_t reqid;
	q_slice payload;   /* borrowed from the decoded buffer */
} net_frame;

/* Decodes the header only (the first NET_FRAME_HDR_LEN bytes of buf) and
 * validates magic, version, flags and length against max_payload (pass 0 for
 * NET_MAX_PAYLOAD). The checksum is not checked (it needs the payload).
 * Returns 0 and fills *f (payload.p = NULL, payload.n = announced length),
 * NET_NEED_MORE if len < NET_FRAME_HDR_LEN, or a negative error as above. */
int net_frame_decode_hdr(const uint8_t *buf, size_t len, size_t max_payload, net_frame *f);

/* Decodes one frame at the start of buf (see the outcomes above).
 * max_payload: 0 means NET_MAX_PAYLOAD; a smaller value lets a receiver
 * enforce a tighter limit. */
int net_frame_decode2(const uint8_t *buf, size_t len, size_t max_payload, net_frame *f,
		      size_t *consumed);
static inline int net_frame_decode(const uint8_t *buf, size_t len, net_frame *f, size_t *consumed)
{
	return net_frame_decode2(buf, len, 0, f, consumed);
}

/* Writes the 24-byte header for a payload into hdr (checksum included).
 * Returns Q_ETOOBIG if payload.n > NET_MAX_PAYLOAD, Q_EPROTO for type 0 or
 * unknown flags. */
int net_frame_write_hdr(uint8_t hdr[NET_FRAME_HDR_LEN], uint8_t type, uint16_t flags,
			uint64_t reqid, q_slice payload);

/* Appends a whole frame (header + payload) to out. Same errors as above plus
 * -ENOMEM; out is unchanged on error. */
int net_frame_encode(q_buf *out, uint8_t type, uint16_t flags, uint64_t reqid, q_slice payload);

#endif
