/*
 * node_gossip.h - runs the gossip state machine (src/gossip) inside a node:
 * a timer on the event-loop thread calls gossip_tick every interval and
 * sends the outgoing messages as NET_MSG_GOSSIP requests through the
 * coordinator's peer pool; received GOSSIP requests (and the replies that
 * come back in GOSSIP_RESP) go to gossip_receive. Member changes feed the
 * coordinator's membership list (cluster/members.h): alive -> up, suspect
 * or down -> down, left -> removed.
 *
 * Seeds are the configured peers/seeds addresses (other than this node's).
 * Static peers keep working alongside: they are also resolved by the
 * coordinator's HELLO handshakes.
 *
 * Threading: node_gossip_start, node_gossip_stop and everything the object
 * does run on the loop thread; node_gossip_free after the loop has stopped.
 * node_gossip_counts may be called from any thread (a mutex-protected copy).
 *
 * Ownership: the object borrows the coordinator and the members list (they
 * outlive it); it copies the seed strings.
 */
#ifndef Q_NODE_GOSSIP_H
#define Q_NODE_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "util/conf.h"

typedef struct node_gossip node_gossip;

/* Any thread, before the loop runs it: reads the gossip_* keys of conf
 * (gossip_config_from_conf; -EINVAL with err filled for a bad value) and
 * registers the GOSSIP request handler with the coordinator. loop is the
 * loop the coordinator runs on; self_id and seeds are copied. */
int node_gossip_new(q_conf *conf, coord *c, members *mem, net_loop *loop, const char *self_id,
		    const char *zone,
		    const char *const *seeds, size_t nseeds, char *err, size_t errcap,
		    node_gossip **out);
/* Loop thread, after coord_start: creates the gossip state with this node's
 * bound address and starts the timer. */
int node_gossip_start(node_gossip *g);
/* Loop thread, before coord_close: stops the timer; later replies are
 * ignored. */
void node_gossip_stop(node_gossip *g);
/* After the loop stopped. NULL is fine. */
void node_gossip_free(node_gossip *g);

/* Any thread: members by gossip status (alive, suspect, down, left). */
void node_gossip_counts(node_gossip *g, size_t out[4]);

/* Before node_gossip_start: the directory where this node's incarnation is
 * kept (NODE_GOSSIP_INC_FILE, copied). At start the incarnation becomes
 * max(stored + 1, wall-clock ms) and is stored (fsync'ed, atomic rename)
 * before the first message goes out; every later rise (a refutation) is
 * stored too. So a restarted node always speaks with an incarnation above
 * anything it said before, even if the clock stepped back, and refutes old
 * suspicion about itself. Without it the wall clock alone is used. */
#define NODE_GOSSIP_INC_FILE "gossip.incarnation"
/* In the same directory, the members marked left (one id per line, stored
 * whole on every change): at start they are dropped from the view again,
 * so a member that left stays out after a restart of the cluster even if a
 * static peer list still names it. A member that comes back alive (a
 * higher incarnation) is taken off the list. */
#define NODE_GOSSIP_LEFT_FILE "gossip.left"
int node_gossip_set_state_dir(node_gossip *g, const char *dir);

/* Any thread: 1 if gossip has marked id left (it left, or was removed as
 * dead) and it has not come back since; 0 otherwise. */
int node_gossip_is_left(node_gossip *g, const char *id);

/* Loop thread: this node leaves (gossip_leave; spreads as status left, and
 * every node drops it from the ring). Q_ECLOSED if gossip is not running. */
int node_gossip_leave(node_gossip *g);
/* Loop thread: marks a down member left (gossip_remove): -EBUSY if it is
 * alive or suspect, Q_ENOTFOUND if unknown. */
int node_gossip_remove(node_gossip *g, const char *id);

#endif
