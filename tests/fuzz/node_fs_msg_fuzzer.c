/* Fuzz target: the filesystem admin payload decoders (node/node_fs_msg.h).
 * The first input byte picks FS_INFO_RESP, FS_SCAN or FS_SCAN_RESP; the rest
 * is the payload. Whatever decodes must re-encode to a payload that decodes
 * to the same fields (the decoders accept non-minimal varints, so the bytes
 * may differ, the fields may not). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_fs_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void info(q_slice in)
{
	node_fs_info a, b;
	if (node_fs_info_decode(in, &a) != 0)
		return;
	q_buf out = Q_BUF_INIT;
	if (node_fs_info_encode(&a, &out) != 0 || node_fs_info_decode(q_buf_slice(&out), &b) != 0)
		abort();
	if (a.total != b.total || a.free != b.free || a.avail != b.avail || a.files != b.files ||
	    a.ffree != b.ffree || a.hints != b.hints || a.n != b.n || a.nmembers != b.nmembers)
		abort();
	for (size_t i = 0; i < a.nmembers; i++)
		if (strcmp(a.members[i].id, b.members[i].id) ||
		    strcmp(a.members[i].addr, b.members[i].addr) ||
		    a.members[i].state != b.members[i].state || a.members[i].self != b.members[i].self)
			abort();
	node_fs_info_free(&a);
	node_fs_info_free(&b);
	q_buf_free(&out);
}

static void scan_req(q_slice in)
{
	node_fs_scan_req a, b;
	if (node_fs_scan_req_decode(in, &a) != 0)
		return;
	q_buf out = Q_BUF_INIT;
	if (node_fs_scan_req_encode(&a, &out) != 0 ||
	    node_fs_scan_req_decode(q_buf_slice(&out), &b) != 0)
		abort();
	if (!q_slice_eq(a.prefix, b.prefix) || !q_slice_eq(a.after, b.after) ||
	    a.max_keys != b.max_keys || a.max_bytes != b.max_bytes || a.flags != b.flags)
		abort();
	q_buf_free(&out);
}

static void scan_resp(q_slice in)
{
	node_fs_scan_resp a, b;
	if (node_fs_scan_resp_decode(in, &a) != 0)
		return;
	node_fs_scan_build bl;
	node_fs_scan_build_init(&bl);
	q_buf out = Q_BUF_INIT;
	for (size_t i = 0; i < a.nkeys; i++)
		if (node_fs_scan_build_add(&bl, &a.ents[i], a.ents[i].has_values ? a.ents[i].values
										 : NULL) != 0)
			abort();
	if (node_fs_scan_build_finish(&bl, a.more, &out) != 0 ||
	    node_fs_scan_resp_decode(q_buf_slice(&out), &b) != 0)
		abort();
	if (a.more != b.more || a.nkeys != b.nkeys)
		abort();
	for (size_t i = 0; i < a.nkeys; i++) {
		const node_fs_scan_ent *x = &a.ents[i], *y = &b.ents[i];
		if (!q_slice_eq(x->key, y->key) || x->nlive != y->nlive || x->ntomb != y->ntomb ||
		    x->newest_ns != y->newest_ns || x->live_bytes != y->live_bytes ||
		    !q_slice_eq(x->ctx, y->ctx) || x->has_values != y->has_values)
			abort();
		for (size_t k = 0; x->has_values && k < x->nlive; k++)
			if (!q_slice_eq(x->values[k], y->values[k]))
				abort();
	}
	node_fs_scan_build_free(&bl);
	node_fs_scan_resp_free(&a);
	node_fs_scan_resp_free(&b);
	q_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	q_slice in = q_slice_make(data + 1, size - 1);
	switch (data[0] % 3) {
	case 0: info(in); break;
	case 1: scan_req(in); break;
	default: scan_resp(in); break;
	}
	return 0;
}
