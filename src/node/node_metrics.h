/*
 * node_metrics.h - a node's operations face: the Prometheus metrics
 * endpoint (metrics_listen, net_http.h), the RING admin message that
 * `quorumctl ring` asks, and the security/metrics fields of the status.
 *
 * Metrics (docs/operations.md "Metrics" lists every family): request
 * counts, errors and latency histograms per request kind measured at the
 * node's network server (coordinator side: kv_get/kv_put/kv_delete/kv_mget;
 * replica side: repl_get/repl_put/repl_mget/hint_put), coordinator counters
 * (quorum failures, timeouts, read repairs, forwards), hints, storage,
 * gossip member states, handshake counters; and every numeric field of the
 * node's status JSON as quorum_status_<path> gauges, so counters other
 * subsystems add to the status (anti-entropy, handoff) appear without a
 * change here.
 *
 * Ring (NET_MSG_RING): JSON with the ring version and digest and, per
 * member, its tokens, zone, address, the share of the circle it owns
 * (first owner) and the share and number of arcs it replicates (among the
 * N primaries); docs/protocol.md "RING".
 *
 * Ownership: the sources in node_metrics_src are borrowed and must outlive
 * the object. Threading: node_metrics_start/stop, the HTTP callback and
 * the message hook run on the loop thread; node_metrics_render and
 * node_metrics_ring_json on any thread that may call coord_status_json;
 * new/free from the node's start/stop thread.
 */
#ifndef Q_NODE_METRICS_H
#define Q_NODE_METRICS_H

#include "cluster/coord.h"
#include "cluster/members.h"
#include "cluster/replica.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "net/net_loop.h"
#include "net/net_server.h"
#include "node/node_gossip.h"
#include "util/buf.h"

typedef struct node_metrics_src {
	coord *coord;
	members *mem;
	lsm_db *db;
	replica *rep;
	hint_store *hints;      /* may be NULL */
	node_gossip *gossip;    /* may be NULL */
	net_loop *loop;
	const char *node_id;
	int n;                  /* replication factor, for replicated ranges */
	int secret;             /* 1 if connections are authenticated */
} node_metrics_src;

typedef struct node_metrics node_metrics;

/* listen: "host:port" of the metrics endpoint, or "" for none. */
int node_metrics_new(const node_metrics_src *src, const char *listen, node_metrics **out);
/* Loop thread: opens the HTTP listener (if configured). */
int node_metrics_start(node_metrics *m);
/* Loop thread: closes it. Safe if never started. */
void node_metrics_stop(node_metrics *m);
void node_metrics_free(node_metrics *m);

/* Appends the Prometheus text exposition to out. */
int node_metrics_render(node_metrics *m, q_buf *out);
/* Appends the ring JSON to out. */
int node_metrics_ring_json(node_metrics *m, q_buf *out);
/* Status hook fragment: ,"security":{...},"metrics":{...} (leading comma). */
int node_metrics_status_json(node_metrics *m, q_buf *out);
/* The status flattener (exposed for its fuzz target): appends a
 * quorum_status_<path> line per numeric or boolean field of the JSON
 * objects in json (arrays skipped). Never reads outside json[0..n). */
int node_metrics_flatten_json(const char *json, size_t n, q_buf *out);
/* coord_set_msg_hook handler for NET_MSG_RING..NET_MSG_ADMIN_LAST. */
void node_metrics_admin(void *arg, net_request *req);

#endif
