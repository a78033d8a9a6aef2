/*
 * net_proto.h - the wire protocol's constants, in one place.
 *
 * Every byte offset, limit, message type and flag of the node-to-node and
 * client-to-node protocol is defined here and nowhere else; docs/protocol.md
 * describes the same layout in prose. Changing a value here changes the wire
 * format: bump NET_PROTO_VERSION when doing so.
 *
 * Frame layout (all integers little-endian), NET_FRAME_HDR_LEN = 24 bytes:
 *
 *   offset size field
 *   0      4    magic        "QFN1" (NET_FRAME_MAGIC)
 *   4      1    version      NET_PROTO_VERSION
 *   5      1    type         message type (NET_MSG_*)
 *   6      2    flags        NET_FF_* bits; unknown bits are malformed
 *   8      8    request id   chosen by the requester, echoed by the response
 *   16     4    payload len  bytes after the header, <= NET_MAX_PAYLOAD
 *   20     4    checksum     q_csum32_2(header bytes 0..19, payload)
 *   24     ...  payload      message body (net_msg.h)
 *
 * Threading: constants only.
 */
#ifndef Q_NET_PROTO_H
#define Q_NET_PROTO_H

#include <stdint.h>

/* --- frame header ------------------------------------------------------ */
#define NET_FRAME_MAGIC 0x314e4651u /* bytes 'Q' 'F' 'N' '1' read as LE u32 */
#define NET_PROTO_VERSION 1
#define NET_FRAME_HDR_LEN 24

#define NET_OFF_MAGIC 0
#define NET_OFF_VERSION 4
#define NET_OFF_TYPE 5
#define NET_OFF_FLAGS 6
#define NET_OFF_REQID 8
#define NET_OFF_LEN 16
#define NET_OFF_CSUM 20

/* Frame flags. */
#define NET_FF_RESP 0x0001u  /* the frame answers the request with the same id */
#define NET_FF_KNOWN (NET_FF_RESP)

/* --- hard limits ----------------------------------------------------------
 * A frame whose header announces more than NET_MAX_PAYLOAD is refused with
 * Q_ETOOBIG before its payload is read. Keys and values over their limits
 * are refused by the message codec with Q_ETOOBIG. */
#define NET_MAX_KEY (64u * 1024u)                 /* 64 KiB */
#define NET_MAX_VALUE (32u * 1024u * 1024u)       /* 32 MiB */
#define NET_MAX_CTX (64u * 1024u)                 /* causal context bytes */
#define NET_MAX_OBJECT (64u * 1024u * 1024u)      /* one encoded object (siblings) */
#define NET_MAX_PAYLOAD (NET_MAX_OBJECT + 1024u * 1024u) /* 65 MiB: object + headroom */
#define NET_MAX_FRAME (NET_FRAME_HDR_LEN + NET_MAX_PAYLOAD)
#define NET_MAX_MGET_KEYS 4096u                   /* keys in one KV_MGET/REPL_MGET */
#define NET_MAX_NODE_ID 64u                       /* node id bytes */
#define NET_MAX_ADDR 128u                         /* "host:port" text bytes */
#define NET_MAX_AUTH 256u                         /* HELLO authentication bytes */
#define NET_MAX_ERRTEXT 1024u                     /* ERROR message text bytes */
#define NET_MAX_STATUS (4u * 1024u * 1024u)       /* STATUS_RESP blob */
#define NET_MAX_GOSSIP (4u * 1024u * 1024u)       /* GOSSIP / GOSSIP_RESP payload */

/* --- message types ----------------------------------------------------------
 * One byte. Requests and their responses have distinct types; a response
 * frame also carries NET_FF_RESP. ERROR answers any request. Ranges are
 * reserved so later subsystems add types without renumbering. */
enum net_msg_type {
	NET_MSG_NONE = 0x00,

	/* 0x01-0x0f: session */
	NET_MSG_HELLO = 0x01,
	NET_MSG_HELLO_OK = 0x02,
	NET_MSG_PING = 0x03,
	NET_MSG_PONG = 0x04,
	NET_MSG_ERROR = 0x05,
	/* 0x06-0x09: cluster-secret handshake (net_auth.h), request id 0,
	 * exchanged before any other frame when a secret is configured; the
	 * server handles them itself (they never reach a request handler) */
	NET_MSG_AUTH_INIT = 0x06,      /* client nonce */
	NET_MSG_AUTH_CHALLENGE = 0x07, /* response: server nonce + server proof */
	NET_MSG_AUTH_PROOF = 0x08,     /* client proof */
	NET_MSG_AUTH_OK = 0x09,        /* response: authenticated, empty */

	/* 0x10-0x1f: client operations, coordinated by the receiving node */
	NET_MSG_KV_GET = 0x10,
	NET_MSG_KV_GET_RESP = 0x11,
	NET_MSG_KV_PUT = 0x12,
	NET_MSG_KV_PUT_RESP = 0x13,
	NET_MSG_KV_MGET = 0x14,
	NET_MSG_KV_MGET_RESP = 0x15,

	/* 0x20-0x2f: replica operations between nodes */
	NET_MSG_REPL_GET = 0x20,
	NET_MSG_REPL_GET_RESP = 0x21,
	NET_MSG_REPL_PUT = 0x22,
	NET_MSG_REPL_PUT_RESP = 0x23,
	NET_MSG_REPL_MGET = 0x24,
	NET_MSG_REPL_MGET_RESP = 0x25,

	/* 0x30-0x3f: node status */
	NET_MSG_STATUS = 0x30,
	NET_MSG_STATUS_RESP = 0x31,

	/* 0x40-0x4f: gossip / membership. GOSSIP carries one gossip message
	 * (src/gossip/gossip_msg.h, opaque here); GOSSIP_RESP carries the
	 * receiver's reply to the sender, or nothing. */
	NET_MSG_GOSSIP = 0x40,
	NET_MSG_GOSSIP_RESP = 0x41,

	/* 0x50-0x5f: hinted handoff. HINT_PUT asks a fallback to merge an
	 * object into its replica and keep a hint for the intended owner;
	 * HINT_PUT_RESP has the layout of REPL_PUT_RESP. */
	NET_MSG_HINT_PUT = 0x50,
	NET_MSG_HINT_PUT_RESP = 0x51,
	/* 0x52-0x5f: range handoff on ring changes (src/handoff/handoff_msg.h
	 * describes the payloads, opaque here). HANDOFF_BATCH carries keys and
	 * their encoded sets for the receiver to merge; its response carries
	 * the count merged. */
	NET_MSG_HANDOFF_BATCH = 0x52,
	NET_MSG_HANDOFF_BATCH_RESP = 0x53,

	/* 0x78-0x7f: operations admin. RING asks for the node's ring and
	 * ownership (layout of STATUS; no flag changes it); RING_RESP carries a
	 * JSON text (layout of STATUS_RESP; docs/protocol.md "RING"). */
	NET_MSG_RING = 0x78,
	NET_MSG_RING_RESP = 0x79,

	/* 0x70-0x77: join/leave admin. LEAVE asks a node to decommission
	 * itself (or another node, named in the payload; handoff_msg.h);
	 * LEAVE_RESP carries a short text answer. */
	NET_MSG_LEAVE = 0x70,
	NET_MSG_LEAVE_RESP = 0x71,

	/* 0x60-0x6f: anti-entropy (src/aae, src/node/node_aae.c). Payloads are
	 * opaque blobs here: AAE carries an aae_msg (src/aae/aae_msg.h),
	 * AAE_SYNC a key sync, AAE_REPAIR a repair admin request from quorumctl
	 * (src/aae/aae_sync.h); each _RESP carries the answer of its kind. */
	NET_MSG_AAE = 0x60,
	NET_MSG_AAE_RESP = 0x61,
	NET_MSG_AAE_SYNC = 0x62,
	NET_MSG_AAE_SYNC_RESP = 0x63,
	NET_MSG_AAE_REPAIR = 0x64,
	NET_MSG_AAE_REPAIR_RESP = 0x65,

	/* 0x80-0x87: filesystem admin (src/node/node_fs.h; payloads are
	 * opaque blobs here, src/node/node_fs_msg.h). FS_INFO asks a node for
	 * its disk figures, hints and membership view; FS_SCAN for a page of
	 * the keys its replica holds under a prefix. */
	NET_MSG_FS_INFO = 0x80,
	NET_MSG_FS_INFO_RESP = 0x81,
	NET_MSG_FS_SCAN = 0x82,
	NET_MSG_FS_SCAN_RESP = 0x83,
	NET_MSG_FS_FIRST = 0x80,
	NET_MSG_FS_LAST = 0x87,

	/* Type ranges per subsystem. Gossip (0x40/0x41) and hinted handoff
	 * (0x50/0x51) types are in use; the rest of each range, and the AAE
	 * and admin ranges, are reserved (not decodable yet). */
	NET_MSG_GOSSIP_FIRST = 0x40,   /* 0x40-0x4f gossip / membership */
	NET_MSG_GOSSIP_LAST = 0x4f,
	NET_MSG_HINT_FIRST = 0x50,     /* 0x50-0x5f hinted handoff */
	NET_MSG_HINT_LAST = 0x5f,
	NET_MSG_AAE_FIRST = 0x60,      /* 0x60-0x6f anti-entropy */
	NET_MSG_AAE_LAST = 0x6f,
	NET_MSG_ADMIN_FIRST = 0x70,    /* 0x70-0x7f admin (ring changes, repair) */
	NET_MSG_ADMIN_LAST = 0x7f,
	/* 0x88-0xff reserved for future protocol versions */
};

/* KV_PUT flags. Unknown bits are malformed. */
#define NET_PUT_DELETE 0x01u      /* write a tombstone; value must be empty */
#define NET_PUT_RETURN_OBJ 0x02u  /* answer with the stored object bytes */
#define NET_PUT_KNOWN (NET_PUT_DELETE | NET_PUT_RETURN_OBJ)

/* STATUS flags. */
#define NET_STATUS_VERBOSE 0x01u
#define NET_STATUS_KNOWN (NET_STATUS_VERBOSE)

#endif
