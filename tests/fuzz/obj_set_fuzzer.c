/* Fuzz target: the sibling-set decoder of src/object (obj_set_decode).
 * Accepted input must re-encode to the same bytes (the format is canonical),
 * merge with itself to itself, and survive an update and a sync. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	obj_set *s = NULL;
	int rc = obj_set_decode(data, size, &s);
	if (rc) {
		if (s || rc >= 0)
			abort();
		return 0;
	}
	q_buf b = Q_BUF_INIT;
	if (obj_set_encode(s, &b) || b.len != size || memcmp(b.p, data, size))
		abort();
	q_buf_free(&b);
	obj_set *m = NULL;
	if (obj_set_sync(s, s, &m) || !obj_set_equal(m, s) ||
	    obj_set_digest(m) != obj_set_digest(s))
		abort();
	obj_set_free(m);
	obj_write w = {0, q_slice_make("x", 1), NULL, 1};
	obj_set *u = NULL;
	if (obj_set_update(s, obj_set_ctx(s), "fuzz", &w, NULL, 1, &u) == 0) {
		if (obj_set_count(u) != 1)
			abort();
		if (obj_set_sync(s, u, &m) == 0) {
			if (!obj_set_equal(m, u))
				abort();
			obj_set_free(m);
		}
		obj_set_free(u);
	}
	obj_set_free(s);
	return 0;
}
