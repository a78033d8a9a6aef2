/* Fuzz target: the varint/fixed/length-prefixed decoders of util/coding. */
#include <stdint.h>
#include <stdlib.h>

#include "util/coding.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_reader r = q_reader_make(data, size);
	while (q_reader_left(&r) > 0) {
		uint8_t op;
		if (q_get_u8(&r, &op))
			break;
		uint64_t v64;
		uint32_t v32;
		uint16_t v16;
		q_slice s;
		int rc;
		switch (op % 6) {
		case 0: rc = q_get_varint64(&r, &v64); break;
		case 1: rc = q_get_varint32(&r, &v32); break;
		case 2: rc = q_get_fixed16(&r, &v16); break;
		case 3: rc = q_get_fixed64(&r, &v64); break;
		case 4:
			rc = q_get_lenbytes(&r, 1024, &s);
			if (rc == 0 && s.n && s.p[0] == 0xff && s.p[s.n - 1] == 0xff)
				rc = 0;
			break;
		default: rc = q_get_fixed32(&r, &v32); break;
		}
		if (rc == 0 && op % 6 == 0) {
			/* re-encoding must decode to the same value */
			q_buf b = Q_BUF_INIT;
			if (q_put_varint(&b, v64) == 0) {
				q_reader r2 = q_reader_make(b.p, b.len);
				uint64_t back;
				if (q_get_varint64(&r2, &back) || back != v64)
					abort();
			}
			q_buf_free(&b);
		}
		if (rc)
			break;
	}
	return 0;
}
