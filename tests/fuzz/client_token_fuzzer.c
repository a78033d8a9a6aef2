/* Fuzz target: the context token decoder (qc_token_to_ctx) and, for tokens
 * that decode, the round trip token -> bytes -> token (one spelling per
 * context) and the object-library context decoder on the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "object/obj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok = malloc(size + 1);
	if (!tok)
		return 0;
	memcpy(tok, data, size);
	tok[size] = 0;
	q_buf ctx = Q_BUF_INIT, back = Q_BUF_INIT;
	if (qc_token_to_ctx(tok, &ctx) == 0) {
		if (qc_ctx_to_token(q_buf_slice(&ctx), &back) != 0)
			abort();
		if (back.len != strlen(tok) || memcmp(back.p, tok, back.len))
			abort(); /* a second spelling of the same bytes */
		obj_ctx *c = NULL;
		if (obj_ctx_decode(ctx.p, ctx.len, &c) == 0)
			obj_ctx_free(c);
	}
	q_buf_free(&ctx);
	q_buf_free(&back);
	free(tok);
	return 0;
}
