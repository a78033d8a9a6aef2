/* Fuzz target: the filesystem object decoder, and for objects it accepts,
 * re-encoding (must give the same bytes), the directory merge, and copies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_obj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qfs_obj o, c;
	if (qfs_obj_decode(data, size, &o) != 0)
		return 0;
	q_buf b = Q_BUF_INIT;
	if (qfs_obj_encode(&o, &b) == 0) {
		/* canonical encoding: decode(x) == o implies encode(o) == x */
		if (b.len != size || memcmp(b.p, data, size) != 0)
			abort();
	}
	q_buf_free(&b);
	if (qfs_obj_copy(&c, &o) == 0) {
		if (o.type == QFS_T_DIR) {
			qfs_dir_merge(&c, &o); /* idempotent */
			if (c.nent != o.nent)
				abort();
			qfs_dir_add(&c, "fuzz", QFS_T_REG, 1, 0, NULL);
			qfs_dir_remove(&c, "fuzz");
		}
		qfs_obj_free(&c);
	}
	qfs_obj_free(&o);
	return 0;
}
