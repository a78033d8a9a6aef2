/*
 * gossip.h - cluster membership, failure detection and ring-state
 * dissemination, as a transport-agnostic state machine.
 *
 * A gossip object holds this node's view of the cluster: one entry per
 * member (id, address, zone, incarnation, heartbeat, status, local times of
 * the last status change and of the last heartbeat progress) and one ring
 * state (opaque bytes + version, normally ring_encode output, src/ring).
 * It does no I/O and reads no clock: the caller drives it.
 *
 *   every interval (default 1 s):  gossip_tick(g, now_ms, &out)
 *   for each gossip message received:  gossip_receive(g, p, n, now_ms, &out)
 *   then send every out.v[i].msg to out.v[i].addr (best effort: a lost
 *   message only slows convergence down), and gossip_outbox_clear(&out).
 *
 * Merge rules (a join-semilattice, so every order of delivery converges):
 *   higher incarnation wins the whole entry; at equal incarnation the status
 *   with higher precedence wins (alive < suspect < down < left) and the
 *   heartbeat is the maximum of both. A node never accepts suspect, down or
 *   left about itself unless it asked to leave: it refutes by taking an
 *   incarnation above the one it heard and gossiping itself alive. `left`
 *   is final for that incarnation; a node that leaves and later restarts
 *   rejoins with a higher incarnation.
 *
 * Failure detector: heartbeat stall with fixed timeouts (docs/gossip.md says
 * why not phi-accrual). A member whose (incarnation, heartbeat) has not risen
 * for suspect_after_ms is marked suspect; after down_after_ms without
 * progress it is marked down. Both marks spread by gossip.
 *
 * Peer selection per tick: `fanout` random alive-or-suspect peers; with
 * probability down/(live+1) one random down member (to notice recovery);
 * a seed with probability seeds/(live+down+1) when no seed was picked, and
 * every seed while no live peer is known (joining).
 *
 * Ring conflicts: ring states are ordered by (version, ring hash); the
 * larger one wins everywhere, so all nodes converge on the same bytes. A
 * node whose change lost sees it through on_ring and re-applies it on top.
 *
 * Callbacks run synchronously inside gossip_tick/gossip_receive/gossip_leave
 * after the state has changed; they may call the query functions but must
 * not call gossip_tick, gossip_receive, gossip_leave, gossip_set_ring or
 * gossip_free.
 *
 * Errors: 0 or a negative code (util/qerr.h). gossip_receive returns the
 * decoder's code for a malformed message (Q_EPROTO, Q_ETRUNC, Q_ETOOBIG,
 * Q_EVERSION) and Q_EPROTO for a message from another cluster or from a
 * node claiming this node's id; the state is unchanged in that case.
 *
 * Ownership: the config and its strings are copied by gossip_new. Member
 * strings handed out in gossip_member borrow from the gossip object and are
 * valid until the next call that can change it (tick, receive, leave,
 * set_ring, free). Messages in an outbox are owned by the outbox.
 *
 * Thread safety: none. A gossip object belongs to one thread (the node's
 * event-loop thread); other threads must ask that thread.
 */
#ifndef Q_GOSSIP_H
#define Q_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "gossip/gossip_msg.h"
#include "util/buf.h"
#include "util/conf.h"

#define GOSSIP_INTERVAL_DEFAULT_MS 1000u
#define GOSSIP_FANOUT_DEFAULT 3u
#define GOSSIP_SUSPECT_AFTER_DEFAULT_MS 5000u
#define GOSSIP_DOWN_AFTER_DEFAULT_MS 15000u
#define GOSSIP_CLUSTER_DEFAULT "quorumfs"
#define GOSSIP_SEEDS_MAX 64u

typedef struct gossip gossip;

/* A member as seen by this node (strings borrowed, see above). */
typedef struct gossip_member {
	const char *id;
	const char *addr;
	const char *zone; /* "" when none */
	uint64_t incarnation;
	uint64_t heartbeat;
	gossip_status status;
	uint64_t status_since_ms; /* caller's clock: last status change here */
	uint64_t progress_ms;     /* caller's clock: last heartbeat progress */
	int is_self;
} gossip_member;

/* old_status is -1 when the member is new to this node. Also called when a
 * member's address or zone changes (old_status == m->status then). */
typedef void (*gossip_member_cb)(void *ud, const gossip_member *m, int old_status);
/* The ring state changed through gossip (not through gossip_set_ring). The
 * bytes are borrowed for the duration of the call. */
typedef void (*gossip_ring_cb)(void *ud, uint64_t version, const void *p, size_t n);
/* Optional: vet ring bytes before adopting them (e.g. ring_decode); a
 * negative return refuses them (logged, and the old ring is kept). */
typedef int (*gossip_ring_check_cb)(void *ud, uint64_t version, const void *p, size_t n);

typedef struct gossip_config {
	const char *cluster;        /* NULL = GOSSIP_CLUSTER_DEFAULT */
	const char *id;             /* this node: required, 1..GOSSIP_ID_MAX printable */
	const char *addr;           /* this node's gossip address: required */
	const char *zone;           /* NULL or "" = no zone */
	uint64_t incarnation;       /* starting incarnation, must rise across
				     * restarts; 0 = wall-clock milliseconds */
	const char *const *seeds;   /* seed addresses ("host:port") */
	size_t nseeds;              /* <= GOSSIP_SEEDS_MAX */
	uint32_t fanout;            /* 0 = GOSSIP_FANOUT_DEFAULT */
	uint64_t suspect_after_ms;  /* 0 = default */
	uint64_t down_after_ms;     /* 0 = default; must be > suspect_after_ms */
	uint64_t rng_seed;          /* peer-selection PRNG; 0 = from clock and id */
	gossip_member_cb on_member;
	gossip_ring_cb on_ring;
	gossip_ring_check_cb ring_check;
	void *ud;
} gossip_config;

/* Outgoing messages: send msg to addr. */
typedef struct gossip_out {
	char addr[GOSSIP_ADDR_MAX + 1];
	q_buf msg;
} gossip_out;

typedef struct gossip_outbox {
	gossip_out *v;
	size_t n;
	size_t cap;
} gossip_outbox;

void gossip_outbox_init(gossip_outbox *o);
/* Frees the messages, keeps the array for reuse. */
void gossip_outbox_clear(gossip_outbox *o);
void gossip_outbox_free(gossip_outbox *o);

/* Zeroes c (all defaults). */
void gossip_config_default(gossip_config *c);

/* Creates the state with this node as its only member (alive). -EINVAL for
 * a bad id/address/zone/cluster, too many seeds or down <= suspect. The
 * caller frees it with gossip_free. */
int gossip_new(const gossip_config *c, uint64_t now_ms, gossip **out);
void gossip_free(gossip *g);

/* One round: bump own heartbeat, run the failure detector, append one SYN
 * per chosen peer to out. */
int gossip_tick(gossip *g, uint64_t now_ms, gossip_outbox *out);

/* Handles one received message; appends the replies (ACK for a SYN, ACK2 for
 * an ACK) addressed to the sender's gossip address. */
int gossip_receive(gossip *g, const void *p, size_t n, uint64_t now_ms, gossip_outbox *out);

/* Marks this node as left (final for its incarnation); keep ticking for a
 * few intervals so the news spreads, then stop. */
int gossip_leave(gossip *g, uint64_t now_ms);

/* Removes a member that is down for good (operator decommission of a dead
 * node): marks it left at its current incarnation, which spreads like any
 * status. -EBUSY if it is alive or suspect (it must leave by itself),
 * -EINVAL for this node, Q_ENOTFOUND if unknown. If the node ever comes
 * back it refutes with a higher incarnation, as a new life. */
int gossip_remove(gossip *g, const char *id, uint64_t now_ms);

/* Installs a ring state made here (e.g. after a join). -ESTALE unless
 * (version, hash) is above the current one; -EINVAL for version 0;
 * Q_ETOOBIG over GOSSIP_RING_MAX. The bytes are copied. Does not call
 * on_ring. */
int gossip_set_ring(gossip *g, uint64_t version, const void *p, size_t n);
/* Current ring state (version 0 and an empty slice when none); the bytes
 * are borrowed (see ownership). */
void gossip_ring(const gossip *g, uint64_t *version, q_slice *bytes);

size_t gossip_member_count(const gossip *g);
/* Members in id order, 0 <= i < count. */
void gossip_member_at(const gossip *g, size_t i, gossip_member *out);
/* Q_ENOTFOUND if unknown. */
int gossip_member_find(const gossip *g, const char *id, gossip_member *out);
/* Status of id (>= 0) or Q_ENOTFOUND. */
int gossip_status_of(const gossip *g, const char *id);
/* Counts by status: out[GOSSIP_ALIVE..GOSSIP_LEFT]. */
void gossip_counts(const gossip *g, size_t out[GOSSIP_STATUS_MAX + 1]);
const char *gossip_self_id(const gossip *g);
uint64_t gossip_self_incarnation(const gossip *g);

/* Configuration keys (util/conf.h) read by gossip_config_from_conf,
 * NULL-terminated; durations accept "250ms", "5s".
 *   gossip_interval (1s), gossip_fanout (3), gossip_suspect_after (5s),
 *   gossip_down_after (15s), cluster_name (quorumfs) */
extern const char *const gossip_conf_keys[];
/* Fills the tunables of c (not id/addr/zone/seeds/callbacks) from conf and
 * the tick interval into *interval_ms. -EINVAL (q_conf_error says which key)
 * for a malformed value or down_after <= suspect_after. c->cluster borrows
 * from conf. */
int gossip_config_from_conf(q_conf *conf, gossip_config *c, uint64_t *interval_ms);

#endif
