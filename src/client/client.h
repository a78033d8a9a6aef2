/*
 * client.h - the client API of the store: one interface, two implementations.
 *
 *  - qc_inproc_new(): in-process, for the mount daemon. Calls go straight to
 *    the embedded node's coordinator (no network hop to its own node).
 *  - qc_net_new(): over TCP to any quorumd, for quorumctl and tools.
 *
 * Every call is blocking and may be made from any thread; a call that cannot
 * reach its quorum fails with Q_EQUORUM or Q_ETIMEOUT within the request
 * timeout, never hangs.
 *
 * Objects and siblings: a get returns every live sibling (concurrent
 * versions) and tombstones, plus an opaque causal context. A put or delete
 * that passes that context replaces exactly the siblings the context covers;
 * a put with an empty context (a blind write) becomes a sibling of whatever is
 * there. The context is bytes; qc_ctx_to_token() makes the printable token
 * that quorumctl shows and accepts.
 *
 * Ownership: a qc_object filled by a call owns all its memory (values and
 * context); free it with qc_object_free(). Slices inside it are valid until
 * then.
 */
#ifndef Q_CLIENT_H
#define Q_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct qc_sibling {
	q_slice value;        /* empty for a tombstone */
	int deleted;          /* 1 = tombstone */
	uint64_t wall_ns;     /* wall clock of the write, for display/tie-breaks */
	char node[64];        /* node id that took the write (the dot's actor) */
	uint64_t counter;     /* the dot's counter at that node */
} qc_sibling;

typedef struct qc_object {
	size_t nsib;
	qc_sibling *sib;      /* live siblings first, then tombstones */
	q_buf context;        /* opaque causal context; empty if key absent */
	void *priv;           /* implementation storage */
} qc_object;

void qc_object_init(qc_object *o);
void qc_object_free(qc_object *o);
/* Number of siblings that are not tombstones. */
size_t qc_object_live(const qc_object *o);
/* For implementations: frees what o holds, then gives it room for nsib
 * siblings (zeroed) and one block of value_bytes bytes, returned in *store,
 * that the siblings' values point into. The object owns both. */
int qc_object_reserve(qc_object *o, size_t nsib, size_t value_bytes, uint8_t **store);

typedef struct qc_opts {
	int n, r, w;          /* 0 = cluster default */
	uint64_t timeout_ms;  /* 0 = default */
} qc_opts;

typedef struct qc_client qc_client;

struct qc_client_ops {
	int (*get)(qc_client *c, q_slice key, const qc_opts *o, qc_object *out);
	/* out may be NULL; if given it receives the object as stored after the
	 * put (the new context), saving the caller a read. */
	int (*put)(qc_client *c, q_slice key, q_slice ctx, q_slice value, const qc_opts *o,
		   qc_object *out);
	int (*del)(qc_client *c, q_slice key, q_slice ctx, const qc_opts *o);
	/* Batched get: one round trip per replica for many keys. rcs[i] is the
	 * per-key result (0, Q_ENOTFOUND, ...). */
	int (*mget)(qc_client *c, const q_slice *keys, size_t n, const qc_opts *o,
		    qc_object *outs, int *rcs);
	void (*close)(qc_client *c);
};

struct qc_client {
	const struct qc_client_ops *ops;
};

/* get: Q_ENOTFOUND when no replica holds the key (or only tombstones with
 * no live sibling: then out still carries the context, so a delete can be
 * overwritten causally). */
static inline int qc_get(qc_client *c, q_slice key, const qc_opts *o, qc_object *out)
{
	return c->ops->get(c, key, o, out);
}
static inline int qc_put(qc_client *c, q_slice key, q_slice ctx, q_slice value, const qc_opts *o,
			 qc_object *out)
{
	return c->ops->put(c, key, ctx, value, o, out);
}
static inline int qc_del(qc_client *c, q_slice key, q_slice ctx, const qc_opts *o)
{
	return c->ops->del(c, key, ctx, o);
}
static inline int qc_mget(qc_client *c, const q_slice *keys, size_t n, const qc_opts *o,
			  qc_object *outs, int *rcs)
{
	return c->ops->mget(c, keys, n, o, outs, rcs);
}
static inline void qc_close(qc_client *c)
{
	if (c)
		c->ops->close(c);
}

/* Printable (base64url, no padding) form of a context, and back. The token
 * in out is NUL-terminated (out->len excludes the NUL). Q_EBADCTX for a
 * token that no context encodes to. */
int qc_ctx_to_token(q_slice ctx, q_buf *out);
int qc_token_to_ctx(const char *token, q_buf *out);

/* ---- implementations ---- */

struct coord;
struct obj_set;

/* In-process client bound to a coordinator (src/cluster/coord.h), which
 * must outlive it. The node hands one out (q_node_client); close it with
 * qc_close only if you created it yourself. */
int qc_inproc_new(struct coord *c, qc_client **out);

/* Network client to the node at addr ("host:port"). timeout_ms is the
 * default request timeout (0 = 5000). Connects lazily and reconnects after
 * a failure; calls from several threads are serialised on one connection
 * (use one client per thread for parallelism). Close with qc_close. */
int qc_net_new(const char *addr, uint64_t timeout_ms, qc_client **out);
/* Network client only: the node's status JSON (appended to out after a
 * reset). */
int qc_net_status(qc_client *c, q_buf *out);
/* Network client only: the node's ring and ownership JSON (RING message;
 * docs/protocol.md), appended to out after a reset. */
int qc_net_ring(qc_client *c, q_buf *out);
/* Network client only: what the node's own replica holds for key, without
 * asking other replicas (a debug read; Q_ENOTFOUND if it holds nothing). */
int qc_net_replica_get(qc_client *c, q_slice key, qc_object *out);
/* Network client only: the text of the last failure (the node's ERROR text
 * or a connection problem); "" if none. Valid until the next call. */
const char *qc_net_last_error(qc_client *c);
/* Before the first request: authenticate every connection of c with the
 * cluster secret key (NET_AUTH_KEY_LEN = 32 bytes, copied; see
 * net/net_auth.h). -EINVAL if c is not a network client. */
int qc_net_set_secret(qc_client *c, const uint8_t *key);
/* The secret every network client created afterwards in this process uses
 * (copied; NULL clears it). For tools that create clients in several
 * places (quorumctl's bench). Returns 0 or -EIO (libsodium unusable). */
int qc_net_set_default_secret(const uint8_t *key);

/* Fills o (freed first) from a sibling set: siblings in the set's order
 * (live first), values copied, context encoded. */
int qc_object_from_set(const struct obj_set *s, qc_object *o);

#endif
