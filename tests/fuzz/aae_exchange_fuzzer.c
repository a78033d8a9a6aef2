/* Fuzz target: the exchange state machine consuming hostile responses. The
 * input is a sequence of responses, each a fixed16 length then that many
 * bytes; each is fed to aae_exchange_consume after aae_exchange_next. The
 * local side is a fixed small tree and store. Whatever the peer says, the
 * exchange must end DONE or FAILED without crashing, and its diffs must be
 * keys that really differ from the local store's view in shape (each key
 * at most once). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_exchange.h"
#include "util/coding.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const local_keys[] = {"a", "b", "c", "dd", "eee", "k", "zz"};
#define NLOCAL (sizeof local_keys / sizeof local_keys[0])

static int local_list(void *ctx, uint64_t rs, uint64_t re, unsigned depth, uint32_t bucket,
		      aae_emit_fn emit, void *ectx)
{
	(void)ctx;
	(void)rs;
	(void)re;
	for (size_t i = 0; i < NLOCAL; i++) {
		q_slice k = q_slice_str(local_keys[i]);
		if (aae_bucket_of(k, depth) == bucket)
			Q_RET(emit(ectx, k, i + 1));
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	aae_tree *t;
	if (aae_tree_new(2, 7, 9, &t))
		abort();
	for (size_t i = 0; i < NLOCAL; i++)
		aae_tree_insert(t, q_slice_str(local_keys[i]), i + 1);
	aae_tree_set_ready(t, 1);
	aae_keysrc src = {local_list, NULL};
	aae_exchange_opts o;
	aae_exchange_opts_default(&o);
	o.max_diffs = 1000;
	aae_exchange *x;
	if (aae_exchange_new(t, &src, &o, 77, &x))
		abort();
	q_buf req = Q_BUF_INIT;
	q_reader r = q_reader_make(data, size);
	for (int round = 0; round < 64; round++) {
		q_buf_reset(&req);
		int rc = aae_exchange_next(x, &req);
		if (rc <= 0)
			break;
		uint16_t n;
		q_slice msg;
		if (q_get_fixed16(&r, &n) || q_get_bytes(&r, n, &msg)) {
			aae_exchange_abort(x, Q_ETIMEOUT);
			break;
		}
		if (aae_exchange_consume(x, msg.p, msg.n) < 0)
			break;
	}
	aae_xstate s = aae_exchange_state(x);
	if (s == AAE_X_DONE) {
		size_t nd = aae_exchange_ndiffs(x);
		if (nd > 1000)
			abort();
		for (size_t i = 0; i < nd; i++) {
			aae_diff d;
			aae_exchange_diff(x, i, &d);
			if (!d.local_has && !d.remote_has)
				abort();
			if (d.local_has && d.remote_has && d.local_digest == d.remote_digest)
				abort();
		}
	} else if (s != AAE_X_FAILED && s != AAE_X_DESCEND && s != AAE_X_BUCKETS &&
		   s != AAE_X_WAIT_ROOT) {
		abort();
	}
	q_buf_free(&req);
	aae_exchange_free(x);
	aae_tree_free(t);
	return 0;
}
