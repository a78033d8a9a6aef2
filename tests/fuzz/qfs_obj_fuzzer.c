/* Fuzz target: the filesystem object decoder, and for objects it accepts,
 * re-encoding (canonical and stable), the directory merge, and copies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_obj.h"
#include "util/coding.h"
#include "util/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size);

/* Every input is tried as is and with a valid checksum appended, so the
 * fuzzer reaches the structure checks behind the checksum. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size);
	uint8_t *p = malloc(size + 4);
	if (!p)
		return 0;
	if (size)
		memcpy(p, data, size);
	q_enc_fixed32(p + size, q_csum32(data, size));
	one(p, size + 4);
	free(p);
	return 0;
}

static void one(const uint8_t *data, size_t size)
{
	qfs_obj o, c;
	if (qfs_obj_decode(data, size, &o) != 0)
		return;
	q_buf b = Q_BUF_INIT;
	if (qfs_obj_encode(&o, &b) == 0) {
		/* the encoder's form is canonical: it decodes, and encodes to
		 * itself (the decoder also takes non-minimal varints) */
		qfs_obj o2;
		q_buf b2 = Q_BUF_INIT;
		if (qfs_obj_decode(b.p, b.len, &o2) != 0)
			abort();
		if (qfs_obj_encode(&o2, &b2) != 0 || b2.len != b.len || memcmp(b.p, b2.p, b.len))
			abort();
		if (b.len > size + 64) /* never larger than needed */
			abort();
		q_buf_free(&b2);
		qfs_obj_free(&o2);
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
}
