/*
 * node_handoff.h - range handoff inside a node: when the ring changes (a
 * join, a leave, a dead node removed) this node streams the keys it must
 * hand over to their new owners, and it merges what others hand to it. It
 * also serves the LEAVE admin request (`quorumctl leave`).
 *
 * Sender. A thread of its own polls the coordinator's ring
 * (coord_ring_snapshot) every HANDOFF_POLL_MS. The ring it last finished
 * handing off for is the "base" (persisted in DATA_DIR/handoff.ring, so a
 * restart does not redo or skip work). When the current ring's members
 * differ from the base's and have stayed the same for handoff_settle, it
 * computes handoff_plan_make(base, current, n, self) and makes one pass over
 * the replica keyspace of the LSM (a consistent snapshot iterator), sending
 * each key whose ring hash lies in a planned range to that range's receiver
 * in HANDOFF_BATCH messages (handoff_msg.h) through the coordinator's peer
 * pool, at most handoff_rate bytes per second (token bucket, handoff.h).
 * When every receiver has acknowledged everything the current ring becomes
 * the base. A receiver that cannot be reached is retried on the next poll
 * (only the receivers not yet done). Moved keys are not deleted from the
 * sender (a later change may need them; anti-entropy and read repair
 * tolerate extra copies).
 *
 * Receiver. HANDOFF_BATCH requests are merged into the replica
 * (replica_merge: obj_set_sync, so a duplicate changes nothing) on a libuv
 * worker thread; the answer counts merged and rejected entries (an entry
 * whose set does not decode is rejected and logged; the rest of the batch
 * is still merged).
 *
 * Leave. LEAVE with an empty id (or this node's id) marks this node left in
 * gossip (every node drops it from the ring), then the sender thread plans
 * against "current ring minus this node" with itself as the only sender and
 * streams everything it holds to the new owners at once (no settle wait).
 * When done the state is "left" and, if leave_exit is on (default), the
 * process sends itself SIGTERM after HANDOFF_LEAVE_LINGER_MS so the news has
 * spread. LEAVE naming another node forwards the request to that node if it
 * is alive, or removes it from gossip if it is down (gossip_remove: the
 * surviving replicas then stream its ranges to the new owners).
 *
 * Configuration keys (util/conf.h): handoff_rate (bytes/s, size suffixes,
 * default 16 MiB; 0 = unlimited), handoff_settle (duration, default 3s),
 * leave_exit (bool, default true).
 *
 * Threading: node_handoff_new from the starting thread before the loop
 * runs the coordinator; node_handoff_start on the loop thread (after
 * coord_start); node_handoff_stop from a thread other than the loop thread
 * while the loop still runs (it joins the sender, whose calls go through
 * the loop); node_handoff_free after the loop stopped.
 * node_handoff_status_json from any thread.
 *
 * Ownership: borrows the coordinator, members, replica, db, gossip and loop
 * (they outlive it); copies the strings.
 */
#ifndef Q_NODE_HANDOFF_H
#define Q_NODE_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "cluster/replica.h"
#include "lsm/lsm.h"
#include "net/net_loop.h"
#include "node/node_gossip.h"
#include "util/buf.h"
#include "util/conf.h"

#define HANDOFF_POLL_MS 200u
#define HANDOFF_SETTLE_DEFAULT_MS 3000u
#define HANDOFF_RATE_DEFAULT (16u * 1024u * 1024u)
#define HANDOFF_LEAVE_LINGER_MS 3000u
#define HANDOFF_RING_FILE "handoff.ring"

typedef struct node_handoff node_handoff;

typedef struct node_handoff_config {
	coord *c;
	members *mem;
	replica *rep;
	lsm_db *db;
	node_gossip *gossip;
	net_loop *loop;
	const char *self_id;
	const char *data_dir;
	int n;                  /* replication factor */
	uint64_t timeout_ms;    /* per batch request */
} node_handoff_config;

/* Reads the handoff keys of conf (-EINVAL with err filled for a bad value)
 * and registers the HANDOFF and LEAVE request handlers with the
 * coordinator (before coord_start). */
int node_handoff_new(q_conf *conf, const node_handoff_config *cfg, char *err, size_t errcap,
		     node_handoff **out);
/* Loop thread, after coord_start: starts the sender thread. */
int node_handoff_start(node_handoff *h);
/* Not on the loop thread, while the loop runs: stops and joins the sender
 * (an interrupted transfer is redone after a restart). NULL is fine. */
void node_handoff_stop(node_handoff *h);
/* After the loop stopped. NULL is fine. */
void node_handoff_free(node_handoff *h);

/* Any thread: appends ,"handoff":{...} to out. */
int node_handoff_status_json(node_handoff *h, q_buf *out);

/* Version-independent digest of a ring's members (ids, zones, tokens):
 * nodes that route by the same members report the same value. */
uint64_t node_handoff_members_digest(const ring *r);

#endif
