/* Fuzz target: the ring-state decoder of src/ring (ring_decode), which
 * parses what gossip delivers. Accepted input re-encodes to the same bytes
 * and yields well-formed preference lists. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ring *r = NULL;
	int rc = ring_decode(data, size, &r);
	if (rc) {
		if (r || rc >= 0)
			abort();
		return 0;
	}
	q_buf b = Q_BUF_INIT;
	if (ring_encode(r, &b) || b.len != size || memcmp(b.p, data, size))
		abort();
	q_buf_free(&b);
	size_t out[16], np;
	size_t nm = ring_member_count(r);
	for (uint64_t h = 0; h < 4; h++) {
		size_t k = ring_preflist(r, h * 0x4000000000000000ULL, 3, out, 16, &np);
		if (k > nm || np > 3 || np > k)
			abort();
		for (size_t i = 0; i < k; i++)
			for (size_t j = i + 1; j < k; j++)
				if (out[i] == out[j])
					abort();
	}
	ring_free(r);
	return 0;
}
