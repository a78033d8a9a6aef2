/*
 * Fuzz target: the message decoders (net_msg.h). The first input byte is
 * the message type, the rest its payload. An accepted message must
 * re-encode, and the re-encoding must decode and re-encode to itself (the
 * input may use non-minimal varints, so it need not equal the input).
 * Decoding must never crash, over-read or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_msg.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	q_slice payload = q_slice_make(data + 1, size - 1);
	net_msg m;
	int rc = net_msg_decode(data[0], payload, &m);
	if (rc == 0) {
		q_buf e = Q_BUF_INIT, e2 = Q_BUF_INIT;
		net_msg m2;
		if (net_msg_encode(&m, &e) != 0 || e.len > payload.n)
			abort();
		if (net_msg_decode(data[0], q_buf_slice(&e), &m2) != 0 ||
		    net_msg_encode(&m2, &e2) != 0 || e2.len != e.len ||
		    (e.len && memcmp(e.p, e2.p, e.len) != 0))
			abort();
		net_msg_clear(&m2);
		q_buf_free(&e);
		q_buf_free(&e2);
	} else if (rc != Q_EPROTO && rc != Q_ETOOBIG && rc != -ENOMEM) {
		abort();
	} else if (m.type != 0 || m.owned_ != NULL) {
		abort(); /* a failed decode leaves a cleared message */
	}
	net_msg_clear(&m);
	return 0;
}
