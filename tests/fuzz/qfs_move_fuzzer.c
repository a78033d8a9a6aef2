/* Fuzz target: the move record decoder of chunk collection
 * (qfs_move_decode, fuse/qfs_gc.h). A record that decodes re-encodes to the
 * same bytes (one canonical form). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_gc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t w;
	const uint8_t *ids;
	size_t n;
	if (qfs_move_decode(data, size, &w, &ids, &n) != 0)
		return 0;
	q_buf b = Q_BUF_INIT;
	if (qfs_move_encode(w, ids, n, &b) != 0 || b.len != size || memcmp(b.p, data, size))
		abort();
	q_buf_free(&b);
	return 0;
}
