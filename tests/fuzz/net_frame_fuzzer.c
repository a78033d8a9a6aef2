/*
 * Fuzz target: the frame decoder (net_frame.h). Decodes frames one after
 * another as a receiver would; every accepted frame must re-encode to the
 * same bytes, and its payload is also run through the message decoder of
 * its type (an accepted message must re-encode).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_frame.h"
#include "net/net_msg.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		net_frame f;
		size_t used = 0;
		int rc = net_frame_decode(data + off, size - off, &f, &used);
		if (rc != 0) {
			if (rc != NET_NEED_MORE && rc != Q_EPROTO && rc != Q_EVERSION &&
			    rc != Q_ETOOBIG)
				abort();
			break;
		}
		if (used < NET_FRAME_HDR_LEN || used > size - off)
			abort();
		q_buf b = Q_BUF_INIT;
		if (net_frame_encode(&b, f.type, f.flags, f.reqid, f.payload) != 0 || b.len != used ||
		    memcmp(b.p, data + off, used) != 0)
			abort();
		q_buf_free(&b);
		net_msg m;
		if (net_msg_decode(f.type, f.payload, &m) == 0) {
			q_buf e = Q_BUF_INIT;
			if (net_msg_encode(&m, &e) != 0 || e.len > f.payload.n)
				abort();
			q_buf_free(&e);
		}
		net_msg_clear(&m);
		off += used;
	}
	return 0;
}
