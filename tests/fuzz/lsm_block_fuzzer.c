/* Fuzz target: SSTable block decoding of src/lsm. The first byte picks the
 * layer: even = a stored block (checksum, snappy) through sst_decode_block,
 * odd = a decoded block (entries, restarts) iterated and searched directly,
 * so the entry parser is reached without a valid checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/sst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(sst_block *b, int ikeys)
{
	lsm_it *it = sst_block_iter(b, ikeys);
	if (!it)
		return;
	size_t n = 0;
	for (it_seek_first(it); it_valid(it) && n < 100000; it_next(it), n++) {
		q_slice k = it_key(it), v = it_value(it);
		if (ikeys && k.n < IKEY_TRAILER)
			abort();
		if (v.n && (v.p < b->data || v.p + v.n > b->data + b->size))
			abort(); /* a value must lie inside the block */
	}
	static const uint8_t probe[] = "key0000100\xff\xff\xff\xff\xff\xff\xff\xff";
	it_seek(it, q_slice_make(probe, sizeof(probe) - 1));
	if (it_valid(it))
		(void)it_key(it);
	it_free(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	sst_block *b = NULL;
	if (data[0] % 2 == 0) {
		if (sst_decode_block(data + 1, size - 1, &b) == 0) {
			walk(b, 1);
			sst_block_unref(b);
		}
		return 0;
	}
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (sst_block_new(copy, size - 1, copy, &b) == 0) {
		walk(b, 0);
		walk(b, 1);
		sst_block_unref(b);
	}
	return 0;
}
