/* Fuzz target: the anti-entropy key-sync and repair admin decoders
 * (src/aae/aae_sync.c). Every input goes to all three decoders; whatever
 * decodes must re-encode to exactly the input bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_sync.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_buf b = Q_BUF_INIT;
	aae_sync_msg m;
	if (aae_sync_decode(data, size, &m) == 0) {
		if (aae_sync_encode(&b, m.kind, m.xid, m.items, m.n) != 0 || b.len != size ||
		    memcmp(b.p, data, size) != 0)
			abort();
		aae_sync_msg_free(&m);
	}
	b.len = 0;
	aae_repair_req q;
	if (aae_repair_req_decode(data, size, &q) == 0) {
		if (aae_repair_req_encode(&b, &q) != 0 || b.len != size ||
		    memcmp(b.p, data, size) != 0)
			abort();
	}
	b.len = 0;
	aae_repair_status s;
	if (aae_repair_status_decode(data, size, &s) == 0) {
		if (aae_repair_status_encode(&b, &s) != 0 || b.len != size ||
		    memcmp(b.p, data, size) != 0)
			abort();
	}
	q_buf_free(&b);
	return 0;
}
