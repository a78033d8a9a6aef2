/* Fuzz target: the anti-entropy message decoder (src/aae/aae_msg.c) and the
 * responder that consumes decoded requests. A message that decodes must
 * re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_exchange.h"
#include "aae/aae_msg.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int no_keys(void *ctx, uint64_t rs, uint64_t re, unsigned depth, uint32_t bucket,
		   aae_emit_fn emit, void *ectx)
{
	(void)ctx;
	(void)rs;
	(void)re;
	return emit(ectx, q_slice_make(&bucket, sizeof bucket), depth);
}

static int reencode(const aae_msg *m, q_buf *b)
{
	switch (m->h.type) {
	case AAE_MSG_ROOT_REQ:
		return aae_msg_put_root_req(b, &m->h);
	case AAE_MSG_ROOT_RESP:
		return aae_msg_put_root_resp(b, &m->h, m->depth, m->root, m->keys);
	case AAE_MSG_CHILDREN_REQ:
		return aae_msg_put_children_req(b, &m->h, m->level, m->nodes, m->nnodes);
	case AAE_MSG_CHILDREN_RESP:
		return aae_msg_put_children_resp(b, &m->h, m->level, m->nodes, m->hashes, m->nnodes);
	case AAE_MSG_BUCKETS_REQ:
		return aae_msg_put_buckets_req(b, &m->h, m->buckets, m->nbuckets);
	case AAE_MSG_BUCKETS_RESP: {
		aae_bresp_writer w;
		int rc = aae_bresp_begin(&w, b, &m->h);
		for (uint32_t i = 0; rc == 0 && i < m->nbuckets; i++) {
			rc = aae_bresp_bucket(&w, m->blist[i].bucket);
			for (uint32_t j = 0; rc == 0 && j < m->blist[i].npairs; j++)
				rc = aae_bresp_pair(&w, m->blist[i].pairs[j].key,
						    m->blist[i].pairs[j].digest);
		}
		if (rc == 0)
			aae_bresp_end(&w);
		return rc;
	}
	case AAE_MSG_ROOTS_REQ:
		return aae_msg_put_roots_req(b, &m->h, m->roots, m->nroots);
	case AAE_MSG_ROOTS_RESP:
		return aae_msg_put_roots_resp(b, &m->h, m->roots, m->nroots);
	default:
		return -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	aae_msg m;
	if (aae_msg_decode(data, size, &m) == 0) {
		q_buf b = Q_BUF_INIT;
		/* ERROR text is cut at its first NUL by the encoder: skip it */
		if (m.h.type != AAE_MSG_ERROR) {
			if (reencode(&m, &b) != 0 || b.len != size || memcmp(b.p, data, size))
				abort();
		}
		q_buf_free(&b);
		aae_msg_free(&m);
	}
	/* the responder must answer or refuse anything without crashing */
	static aae_tree *t;
	if (!t) {
		if (aae_tree_new(2, 7, 9, &t))
			abort();
		aae_tree_insert(t, q_slice_str("k"), 1);
		aae_tree_set_ready(t, 1);
	}
	aae_keysrc src = {no_keys, NULL};
	q_buf resp = Q_BUF_INIT;
	if (aae_serve(t, &src, data, size, 4096, &resp) == 0) {
		aae_msg r;
		if (aae_msg_decode(resp.p, resp.len, &r) != 0)
			abort(); /* every answer must itself decode */
		aae_msg_free(&r);
	}
	q_buf_free(&resp);
	return 0;
}
