/*
 * gossip_msg.h - the gossip wire format: constants and a pure codec.
 *
 * A gossip round between A (initiator) and B is a three-message exchange
 * (docs/gossip.md has the byte layout and the rules):
 *   SYN  A -> B  digests (id, incarnation, heartbeat, status) of every member
 *                A knows, and A's ring version and ring hash;
 *   ACK  B -> A  full states of members B knows better (or A lacks), digests
 *                of members A knows better (requests), the ring if B's is
 *                newer, or the RING_WANTED flag if A's is newer;
 *   ACK2 A -> B  full states B asked for, and the ring if B wanted it.
 *
 * The format constants live here and nowhere else. All integers are
 * little-endian; varints are LEB128 (util/coding.h).
 *
 * Validation is strict: unknown version -> Q_EVERSION; unknown type, flag
 * bits or status, empty or non-printable ids/addresses, lists not in
 * strictly increasing id order (which also rules out duplicates), a ring
 * whose hash does not match its bytes, fields that do not belong to the
 * message type, or trailing bytes -> Q_EPROTO; input ending early ->
 * Q_ETRUNC; fields over their limits -> Q_ETOOBIG. A decoder never reads
 * outside its input.
 *
 * Ownership: gossip_msg_decode fills a gossip_msg whose slices borrow from
 * the input buffer (keep it alive while using the message) and whose
 * digest/state arrays are malloc'ed: release them with gossip_msg_clear.
 * For encoding, the caller fills a gossip_msg with its own memory.
 *
 * Thread safety: pure functions, thread-safe.
 */
#ifndef Q_GOSSIP_MSG_H
#define Q_GOSSIP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* ---- format constants (docs/gossip.md) ---- */
#define GOSSIP_PROTO_V1 1u

#define GOSSIP_MSG_SYN 1u
#define GOSSIP_MSG_ACK 2u
#define GOSSIP_MSG_ACK2 3u

#define GOSSIP_F_RING 0x01u        /* ring bytes follow the ring hash */
#define GOSSIP_F_RING_WANTED 0x02u /* sender's ring is older: send yours */
#define GOSSIP_F_KNOWN (GOSSIP_F_RING | GOSSIP_F_RING_WANTED)

#define GOSSIP_ID_MAX 64u          /* node id bytes (matches NET_MAX_NODE_ID) */
#define GOSSIP_ADDR_MAX 128u       /* "host:port" bytes (matches NET_MAX_ADDR) */
#define GOSSIP_ZONE_MAX 64u        /* zone label bytes */
#define GOSSIP_CLUSTER_MAX 64u     /* cluster name bytes */
#define GOSSIP_MEMBERS_MAX 1024u   /* entries in one list, members in a table */
#define GOSSIP_RING_MAX (1u << 20) /* ring state bytes */
#define GOSSIP_RING_SEED 0x676f737369707267ULL /* seed of the ring hash */

/* Member status, in merge precedence order (a higher value wins at equal
 * incarnation). */
typedef enum gossip_status {
	GOSSIP_ALIVE = 0,
	GOSSIP_SUSPECT = 1,
	GOSSIP_DOWN = 2,
	GOSSIP_LEFT = 3
} gossip_status;
#define GOSSIP_STATUS_MAX GOSSIP_LEFT

typedef struct gossip_digest {
	q_slice id;
	uint64_t incarnation;
	uint64_t heartbeat;
	uint8_t status;
} gossip_digest;

typedef struct gossip_state {
	q_slice id;
	q_slice addr;
	q_slice zone; /* may be empty */
	uint64_t incarnation;
	uint64_t heartbeat;
	uint8_t status;
} gossip_state;

typedef struct gossip_msg {
	uint8_t type;  /* GOSSIP_MSG_* */
	uint8_t flags; /* GOSSIP_F_* */
	q_slice cluster;
	q_slice from_id;
	q_slice from_addr;
	uint64_t ring_version; /* 0: the sender has no ring (hash must be 0) */
	uint64_t ring_hash;    /* gossip_ring_hash of the ring bytes */
	q_slice ring;          /* present iff flags & GOSSIP_F_RING */
	gossip_digest *digests;
	size_t ndigests;
	gossip_state *states;
	size_t nstates;
} gossip_msg;

/* Hash of ring bytes as carried in the ring_hash field. */
uint64_t gossip_ring_hash(const void *p, size_t n);

/* Appends the encoding of m to out. Checks m with the same rules as the
 * decoder (-EINVAL if m is not valid, e.g. ids out of order); -ENOMEM. */
int gossip_msg_encode(const gossip_msg *m, q_buf *out);

/* Decodes p[0..n) into m (see ownership above). On error m holds nothing
 * that needs freeing. */
int gossip_msg_decode(const void *p, size_t n, gossip_msg *m);

/* Frees the arrays of a decoded message and zeroes it. */
void gossip_msg_clear(gossip_msg *m);

const char *gossip_status_name(int status);
const char *gossip_msg_type_name(int type);

#endif
