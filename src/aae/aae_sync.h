/*
 * aae_sync.h - the two anti-entropy messages besides the tree exchange:
 * the key sync that moves differing objects both ways, and the repair admin
 * request quorumctl sends to a node (start a repair, poll its progress).
 * Encoders and strict, pure decoders; layouts in docs/aae.md ("Sync and
 * repair messages"), constants here.
 *
 * SYNC_REQ / SYNC_RESP (net frames NET_MSG_AAE_SYNC / _RESP):
 *   u8 version (AAE_SYNC_VERSION), u8 kind (AAE_SYNC_KIND_*), fixed64 xid,
 *   varint n (1..AAE_SYNC_MAX_KEYS), n x (varint klen (1..AAE_MAX_KEY) + key,
 *   u8 has (0 or 1), if has: varint olen (1..AAE_SYNC_MAX_OBJECT) + object)
 * The request carries, per differing key, the initiator's encoded sibling
 * set when it has one; the peer merges it into its replica and answers, in
 * the same key order, its stored set after the merge when that differs
 * from what was sent (has = 0: the initiator already holds all of it).
 *
 * REPAIR_REQ (NET_MSG_AAE_REPAIR): u8 version, u8 op (AAE_REPAIR_START or
 *   AAE_REPAIR_POLL), u8 flags (bit 0: a range follows), [fixed64 start,
 *   fixed64 end]. REPAIR_RESP: u8 version, u8 state (AAE_REPAIR_*),
 *   fixed64 job id, then AAE_REPAIR_NCOUNTERS varints (aae_repair_status
 *   fields in order).
 *
 * Decoding rules: unknown version -> Q_EVERSION; short input -> Q_ETRUNC;
 * counts and lengths over limits -> Q_ETOOBIG; anything else (unknown kind
 * or op, has not 0/1, unknown flag bits, non-minimal varints, trailing
 * bytes) -> Q_EPROTO. Allocation is bounded by the input length.
 *
 * Ownership: aae_sync_decode fills *m; m->items is freed by
 * aae_sync_msg_free; key and object slices borrow from the input, which
 * must outlive m. Encoders append to a caller-owned q_buf.
 * Thread safety: pure functions.
 */
#ifndef Q_AAE_SYNC_H
#define Q_AAE_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define AAE_SYNC_VERSION 1u
#define AAE_SYNC_KIND_REQ 1u
#define AAE_SYNC_KIND_RESP 2u
#define AAE_SYNC_MAX_KEYS 4096u
#define AAE_SYNC_MAX_OBJECT (64u * 1024u * 1024u) /* = NET_MAX_OBJECT */

typedef struct aae_sync_item {
	q_slice key;
	int has;          /* object present */
	q_slice object;   /* encoded obj_set when has */
} aae_sync_item;

typedef struct aae_sync_msg {
	uint8_t kind;
	uint64_t xid;
	uint32_t n;
	aae_sync_item *items;
} aae_sync_msg;

/* Appends a whole message; items[i].object is used when has. */
int aae_sync_encode(q_buf *b, uint8_t kind, uint64_t xid, const aae_sync_item *items,
		    uint32_t n);
int aae_sync_decode(const uint8_t *p, size_t n, aae_sync_msg *m);
void aae_sync_msg_free(aae_sync_msg *m);

/* ---- repair admin ---- */
#define AAE_REPAIR_VERSION 1u
#define AAE_REPAIR_START 1u
#define AAE_REPAIR_POLL 2u
#define AAE_REPAIR_F_RANGE 0x01u

enum aae_repair_state {
	AAE_REPAIR_IDLE = 0,     /* no repair has run since start */
	AAE_REPAIR_RUNNING = 1,
	AAE_REPAIR_DONE = 2,     /* finished; every exchange completed */
	AAE_REPAIR_PARTIAL = 3   /* finished; some exchanges failed */
};

typedef struct aae_repair_req {
	uint8_t op;
	int has_range;
	uint64_t start, end;     /* (start, end]; start == end: whole circle */
} aae_repair_req;

#define AAE_REPAIR_NCOUNTERS 12
typedef struct aae_repair_status {
	uint8_t state;
	uint64_t job;
	/* the counters, in wire order */
	uint64_t ranges_total;     /* (arc, peer) pairs to compare */
	uint64_t ranges_done;      /* pairs finished (compared or failed) */
	uint64_t ranges_differing; /* pairs whose roots differed */
	uint64_t failures;         /* pairs that could not be compared */
	uint64_t nodes_compared;   /* tree hashes compared */
	uint64_t keys_differing;   /* diffs found */
	uint64_t keys_sent;        /* objects sent to peers */
	uint64_t keys_received;    /* objects received and merged here */
	uint64_t bytes_exchange;   /* tree exchange bytes (both ways) */
	uint64_t bytes_sent;       /* sync object bytes sent */
	uint64_t bytes_received;   /* sync object bytes received */
	uint64_t elapsed_ms;
} aae_repair_status;

int aae_repair_req_encode(q_buf *b, const aae_repair_req *r);
int aae_repair_req_decode(const uint8_t *p, size_t n, aae_repair_req *r);
int aae_repair_status_encode(q_buf *b, const aae_repair_status *s);
int aae_repair_status_decode(const uint8_t *p, size_t n, aae_repair_status *s);

#endif
