/* Fuzz target: the handoff and leave payload decoders (src/handoff/
 * handoff_msg.c). The first input byte picks the payload kind (mod 4), the
 * rest is the payload. Whatever decodes must re-encode to the same bytes
 * (the encoding is canonical) and decode again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handoff/handoff_msg.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const q_buf *b, const uint8_t *p, size_t n)
{
	if (b->len != n || (n && memcmp(b->p, p, n) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	q_buf b = Q_BUF_INIT;
	switch (data[0] & 3u) {
	case 0: {
		handoff_batch hb;
		if (handoff_batch_decode(p, n, &hb) == 0) {
			if (handoff_batch_encode(hb.sender, hb.v, hb.n, &b) != 0)
				abort();
			same(&b, p, n);
			handoff_batch_clear(&hb);
		}
		break;
	}
	case 1: {
		uint64_t m = 0, r = 0;
		if (handoff_batch_resp_decode(p, n, &m, &r) == 0) {
			if (handoff_batch_resp_encode(m, r, &b) != 0)
				abort();
			same(&b, p, n);
		}
		break;
	}
	case 2: {
		q_slice id;
		if (handoff_leave_decode(p, n, &id) == 0) {
			if (handoff_leave_encode(id, &b) != 0)
				abort();
			same(&b, p, n);
		}
		break;
	}
	default: {
		q_slice t;
		if (handoff_leave_resp_decode(p, n, &t) == 0) {
			if (handoff_leave_resp_encode(t, &b) != 0)
				abort();
			same(&b, p, n);
		}
		break;
	}
	}
	q_buf_free(&b);
	return 0;
}
