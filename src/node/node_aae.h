/*
 * node_aae.h - active anti-entropy inside a node: one Merkle tree per ring
 * arc this node replicates (src/aae over ring_arcs), kept up to date by the
 * replica write hooks, compared with the other replicas of each arc in the
 * background and on demand (quorumctl repair), differing keys merged both
 * ways, tombstones reaped once every replica is known to hold them.
 * docs/aae.md ("In the node") describes the whole; the config keys are in
 * docs/config.md (aae, aae_*).
 *
 * Threads:
 *   - the AAE worker thread (one per node): follows ring changes (polls
 *     coord_ring_snapshot), starts tree builds, runs exchanges and syncs
 *     (blocking calls through the coordinator's peer pool, net_pool_call),
 *     sweeps tombstones;
 *   - builder threads (at most aae_builds at once): LSM scans that rebuild
 *     trees;
 *   - the loop thread: the NET_MSG_AAE* request hook, which hands tree
 *     answers and syncs to libuv worker threads and replies from the loop;
 *   - any replica writer thread: the write hooks (index entry in the data's
 *     batch, tree update after it).
 * Arc entries are reference counted, so a ring change can drop an arc while
 * a build or an answer still uses its tree.
 *
 * Lifecycle: node_aae_new (before coord_start; installs the write hooks and
 * the message hook, rotates the persisted-tree stamp), node_aae_start (loop
 * thread, after coord_start: takes the pool, starts the worker),
 * node_aae_stop (any thread but the loop, while the loop still runs: joins
 * the worker and the builders), node_aae_save (after the loop has stopped
 * and before the store closes: persists the ready trees and their stamp),
 * node_aae_free.
 *
 * Ownership: borrows coord, replica, members and the store (they outlive
 * it); node_aae_new hands out an object freed by node_aae_free.
 */
#ifndef Q_NODE_AAE_H
#define Q_NODE_AAE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "cluster/replica.h"
#include "lsm/lsm.h"
#include "net/net_loop.h"
#include "util/buf.h"
#include "util/conf.h"

typedef struct node_aae node_aae;

typedef struct node_aae_config {
	coord *c;
	replica *rep;
	lsm_db *db;
	members *mem;
	net_loop *loop;
	const char *self_id;   /* copied */
	const char *data_dir;  /* copied; trees go to DATA/aae/ */
	int n;                 /* replication factor */
} node_aae_config;

/* Reads the aae* keys (-EINVAL with err filled for a bad value). */
int node_aae_new(q_conf *conf, const node_aae_config *cfg, char *err, size_t errcap,
		 node_aae **out);
/* Loop thread, after coord_start. */
int node_aae_start(node_aae *na);
/* Not the loop thread; the loop must still run. NULL is fine. */
void node_aae_stop(node_aae *na);
/* After the loop stopped, before the store closes (clean shutdown only). */
int node_aae_save(node_aae *na);
void node_aae_free(node_aae *na);

/* Any thread: the ,"aae":{...} status fields (leading comma included). */
int node_aae_status_json(node_aae *na, q_buf *out);

#endif
