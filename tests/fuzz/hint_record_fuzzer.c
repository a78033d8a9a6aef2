/* Fuzz target: the hint record decoders (src/handoff/hint.c). The input is
 * tried both as an LSM key and as a record value; whatever decodes must
 * re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handoff/hint.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_slice owner, key;
	if (hint_key_decode(data, size, &owner, &key) == 0) {
		char o[HINT_OWNER_MAX + 1];
		if (owner.n == 0 || owner.n > HINT_OWNER_MAX || key.n == 0)
			abort();
		memcpy(o, owner.p, owner.n);
		o[owner.n] = '\0';
		q_buf b = Q_BUF_INIT;
		/* an owner with a NUL inside cannot be re-encoded from a C string */
		if (strlen(o) == owner.n) {
			if (hint_key_encode(o, key, &b) != 0 || b.len != size || memcmp(b.p, data, size))
				abort();
		}
		q_buf_free(&b);
	}
	hint_entry e;
	if (hint_value_decode(data, size, &e) == 0) {
		q_buf b = Q_BUF_INIT;
		if (hint_value_encode(e.seq, e.created_ms, e.updated_ms, e.object, &b) != 0)
			abort();
		hint_entry e2;
		if (hint_value_decode(b.p, b.len, &e2) != 0 || e2.seq != e.seq ||
		    e2.created_ms != e.created_ms || e2.updated_ms != e.updated_ms ||
		    e2.object.n != e.object.n ||
		    (e.object.n && memcmp(e2.object.p, e.object.p, e.object.n)))
			abort();
		q_buf_free(&b);
	}
	return 0;
}
