/*
 * node.h - a whole cluster node as a library: what quorumd runs and what the
 * mount daemon embeds.
 *
 * q_node_start opens the store in the configured data directory, starts the
 * node's event-loop thread (networking, coordination) and its background
 * work, and listens on the configured address. q_node_client hands out the
 * in-process client (client.h) bound to this node: calls go to the local
 * coordinator without a network hop. q_node_stop stops accepting work,
 * flushes and closes the store, joins the threads and frees the node.
 *
 * Configuration keys (util/conf.h; every key documented in docs/config.md):
 *   data_dir, listen (ADDR:PORT), node_id, zone, peers / seeds
 *   (comma-separated ADDR:PORT), n, r, w, sync (always|batch|none),
 *   request_timeout, log_level, ...
 *
 * q_node_start sets SIGPIPE to ignored if it is at its default (peer
 * connections that close under a write must not kill the process).
 *
 * Ownership: the conf is read during q_node_start and not kept. The client
 * returned by q_node_client belongs to the node; do not qc_close it; it is
 * valid until q_node_stop. Thread safety: q_node_client's client may be used
 * from any number of threads; start/stop from one thread.
 */
#ifndef Q_NODE_H
#define Q_NODE_H

#include "client/client.h"
#include "util/conf.h"

typedef struct q_node q_node;

/* Keys q_node_start accepts (NULL-terminated), for q_conf_check_known by
 * programs that add keys of their own. */
extern const char *const q_node_conf_keys[];

int q_node_start(q_conf *conf, q_node **out);
qc_client *q_node_client(q_node *n);
/* The node's id as configured or generated (stable across restarts). */
const char *q_node_id(const q_node *n);
int q_node_stop(q_node *n);

/* The address the node serves on ("127.0.0.1:7070"). */
const char *q_node_listen_addr(const q_node *n);
/* The node's coordinator (src/cluster/coord.h), for tools and tests. */
struct coord *q_node_coord(q_node *n);
/* The node's filesystem admin side (node_fs.h: cluster disk figures);
 * valid until q_node_stop. */
struct node_fs *q_node_fs(q_node *n);

#endif
