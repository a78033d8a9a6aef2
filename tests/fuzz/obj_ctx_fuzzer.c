/* Fuzz target: the causal-context decoder of src/object (obj_ctx_decode),
 * which parses what clients send back. Every rejection is Q_EBADCTX (or
 * -ENOMEM); accepted input re-encodes to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "object/obj.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	obj_ctx *c = NULL;
	int rc = obj_ctx_decode(data, size, &c);
	if (rc) {
		if (c || (rc != Q_EBADCTX && rc != -ENOMEM))
			abort();
		return 0;
	}
	q_buf b = Q_BUF_INIT;
	if (obj_ctx_encode(c, &b) || b.len != size || memcmp(b.p, data, size))
		abort();
	q_buf_free(&b);
	if (obj_ctx_compare(c, c) != OBJ_EQUAL)
		abort();
	obj_ctx *d = obj_ctx_clone(c);
	if (d) {
		if (obj_ctx_merge(d, c) == 0 && obj_ctx_compare(c, d) != OBJ_EQUAL)
			abort();
		obj_ctx_free(d);
	}
	obj_ctx_free(c);
	return 0;
}
