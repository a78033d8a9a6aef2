/* Fuzz target: the SSTable reader of src/lsm on a whole table file: footer,
 * index, filter, data blocks, via open, full verification, a scan and
 * point lookups. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lsm/sst.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_log_set_level(Q_LOG_OFF);
	sst_table *t;
	if (sst_open_mem(data, size, &t))
		return 0;
	sst_verify(t);
	lsm_it *it = sst_iter_new(t, 0);
	if (it) {
		size_t n = 0;
		for (it_seek_first(it); it_valid(it) && n < 100000; it_next(it), n++)
			(void)it_value(it);
		it_free(it);
	}
	q_buf k = Q_BUF_INIT, out = Q_BUF_INIT;
	char uk[32];
	for (int i = 0; i < 8; i++) {
		snprintf(uk, sizeof(uk), "key%07d", i * 37);
		if (ikey_build(&k, q_slice_str(uk), SEQ_MAX, KIND_PUT) == 0) {
			int kind;
			sst_get(t, q_slice_str(uk), bloom_hash(q_slice_str(uk)), q_buf_slice(&k), &kind, &out);
		}
	}
	q_buf_free(&k);
	q_buf_free(&out);
	sst_close(t);
	return 0;
}
