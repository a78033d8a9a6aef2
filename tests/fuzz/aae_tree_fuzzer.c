/* Fuzz target: the persisted Merkle tree decoder (aae_tree_decode). A file
 * that decodes must re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_tree.h"
#include "util/coding.h"
#include "util/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* take geometry, range and stamp from the header itself so inputs can
	 * reach the body; mismatches are covered by the unit tests */
	unsigned depth = size > 13 ? data[13] : 1;
	uint64_t rs = size >= 24 ? q_dec_fixed64(data + 16) : 0;
	uint64_t re = size >= 32 ? q_dec_fixed64(data + 24) : 0;
	uint64_t stamp = size >= 40 ? q_dec_fixed64(data + 32) : 0;
	if (depth > 4)
		depth = 4; /* bound memory per input */
	/* pass 0: the input as is; pass 1: with its trailing checksum made
	 * valid, so mutations reach the structure checks behind it */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (size >= 4)
		q_enc_fixed32(copy + size - 4, q_csum32(copy, size - 4));
	for (int pass = 0; pass < 2; pass++) {
		const uint8_t *in = pass ? copy : data;
		aae_tree *t;
		if (aae_tree_decode(in, size, depth, rs, re, stamp, &t) == 0) {
			q_buf b = Q_BUF_INIT;
			if (aae_tree_encode(t, stamp, &b) != 0 || b.len != size ||
			    memcmp(b.p, in, size))
				abort();
			(void)aae_tree_root(t);
			q_buf_free(&b);
			aae_tree_free(t);
		}
	}
	free(copy);
	return 0;
}
