/* Fuzz target: the filesystem object decoder, and for objects it accepts,
 * re-encoding (canonical and stable), the directory merge, and copies; and
 * the sibling description (qfs_sibs) of two siblings holding the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_obj.h"
#include "fuse/qfs_sibs.h"
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

/* Two siblings with the same bytes (blind puts of one value): both are
 * described, at most one is shown, and a file's two names differ. */
static void sibs(const uint8_t *data, size_t size)
{
	qc_sibling sib[3];
	memset(sib, 0, sizeof(sib));
	for (int i = 0; i < 3; i++) {
		sib[i].value = q_slice_make(data, size);
		sib[i].node[0] = (char)('a' + i);
		sib[i].counter = (uint64_t)i + 1;
	}
	sib[2].deleted = 1;
	qc_object raw;
	memset(&raw, 0, sizeof(raw));
	raw.nsib = 3;
	raw.sib = sib;
	qfs_sibinfo *info;
	size_t n;
	if (qfs_sibs_describe(&raw, "name.txt", &info, &n) != 0)
		return;
	if (n != 2)
		abort();
	int shown = 0;
	for (size_t i = 0; i < n; i++)
		shown += info[i].shown;
	if (info[0].decode_rc == 0) {
		if (info[0].type != QFS_T_DIR && (shown != 1 || !strcmp(info[0].name, info[1].name)))
			abort();
	} else if (shown != 0) {
		abort();
	}
	free(info);
}

static void one(const uint8_t *data, size_t size)
{
	qfs_obj o, c;
	sibs(data, size);
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
