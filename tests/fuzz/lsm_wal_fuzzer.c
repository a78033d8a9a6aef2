/* Fuzz target: the commit-log reader and the write-batch decoder of
 * src/lsm, fed a whole log file. Every returned record is decoded as a batch
 * and applied to a memtable, as recovery does. */
#include <stdint.h>
#include <stdlib.h>

#include "lsm/batch.h"
#include "lsm/mem.h"
#include "lsm/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int apply(void *arg, uint64_t seq, int kind, q_slice k, q_slice v)
{
	return mem_add(arg, seq, kind, k, v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wal_reader r;
	wal_reader_init(&r, data, size, NULL, NULL);
	mem_table *m = mem_new();
	if (!m)
		return 0;
	q_slice rec;
	while (wal_read(&r, &rec) == 1) {
		if (rec.n > size)
			abort(); /* a record can never be larger than its log */
		batch_decode(rec, apply, m);
	}
	wal_reader_free(&r);
	mem_unref(m);
	return 0;
}
