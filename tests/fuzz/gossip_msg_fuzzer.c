/* Fuzz target: the gossip message decoder (src/gossip/gossip_msg.c) and the
 * state machine that consumes decoded messages (gossip_receive).
 * Every input that decodes must re-encode to a message that decodes to the
 * same value; feeding it to a gossip instance must not crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/gossip.h"
#include "util/log.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int slice_same(q_slice a, q_slice b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_same(const gossip_msg *a, const gossip_msg *b)
{
	if (a->type != b->type || a->flags != b->flags || !slice_same(a->cluster, b->cluster) ||
	    !slice_same(a->from_id, b->from_id) || !slice_same(a->from_addr, b->from_addr) ||
	    a->ring_version != b->ring_version || a->ring_hash != b->ring_hash ||
	    !slice_same(a->ring, b->ring) || a->ndigests != b->ndigests || a->nstates != b->nstates)
		abort();
	for (size_t i = 0; i < a->ndigests; i++) {
		const gossip_digest *x = &a->digests[i], *y = &b->digests[i];
		if (!slice_same(x->id, y->id) || x->incarnation != y->incarnation ||
		    x->heartbeat != y->heartbeat || x->status != y->status)
			abort();
	}
	for (size_t i = 0; i < a->nstates; i++) {
		const gossip_state *x = &a->states[i], *y = &b->states[i];
		if (!slice_same(x->id, y->id) || !slice_same(x->addr, y->addr) ||
		    !slice_same(x->zone, y->zone) || x->incarnation != y->incarnation ||
		    x->heartbeat != y->heartbeat || x->status != y->status)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gossip_msg m, m2;
	q_log_set_level(Q_LOG_OFF);
	if (gossip_msg_decode(data, size, &m) == 0) {
		q_buf b = Q_BUF_INIT;
		if (gossip_msg_encode(&m, &b) != 0)
			abort();
		if (gossip_msg_decode(b.p, b.len, &m2) != 0)
			abort();
		check_same(&m, &m2);
		gossip_msg_clear(&m2);
		q_buf_free(&b);
		gossip_msg_clear(&m);
	}

	/* The same bytes through a live instance (cluster "quorumfs"). */
	gossip_config c;
	gossip_config_default(&c);
	c.id = "fuzz-self";
	c.addr = "127.0.0.1:1";
	c.incarnation = 5;
	c.rng_seed = 1;
	gossip *g;
	if (gossip_new(&c, 1000, &g) != 0)
		abort();
	gossip_outbox out;
	gossip_outbox_init(&out);
	(void)gossip_receive(g, data, size, 2000, &out);
	for (size_t i = 0; i < out.n; i++) {
		gossip_msg r;
		if (gossip_msg_decode(out.v[i].msg.p, out.v[i].msg.len, &r) != 0)
			abort(); /* what we send must always decode */
		gossip_msg_clear(&r);
	}
	gossip_outbox_clear(&out);
	(void)gossip_tick(g, 100000, &out);
	gossip_outbox_free(&out);
	gossip_free(g);
	return 0;
}
