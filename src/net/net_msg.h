/*
 * net_msg.h - the message codec: payloads of every frame type.
 *
 * Each message type has a struct (below) and a payload encoding built from
 * three field kinds (see docs/protocol.md): u8, fixed32/fixed64 (LE) and
 * varint integers, and length-prefixed bytes (varint length, then bytes).
 * Encoding and decoding are table-driven (net_msg.c keeps one row per type
 * with its name, whether it is a response, and its encode/decode functions),
 * so adding a type is one struct, two small functions and one table row.
 *
 * Validation is strict: every length is checked against its limit in
 * net_proto.h (Q_ETOOBIG), unknown flag bits, unknown types and trailing
 * bytes after the last field are Q_EPROTO, input that ends early is Q_EPROTO
 * (a payload is always complete: the frame layer already has all of it).
 * Encoders apply the same limits, so nothing over a limit is ever sent.
 *
 * Ownership: decoding is zero-copy: every q_slice in a decoded net_msg
 * points into the payload that was decoded, and is valid only as long as
 * that payload is. The arrays of KV_MGET / REPL_MGET keys and of MGET_RESP
 * entries are heap-allocated by the decoder and owned by the net_msg: call
 * net_msg_clear() on every decoded message (also after a failed decode; it
 * is safe on a zeroed or already cleared message). For encoding, the caller
 * fills a net_msg whose slices and arrays it owns; the encoder only reads
 * them.
 *
 * Threading: pure functions; a net_msg belongs to one thread at a time.
 */
#ifndef Q_NET_MSG_H
#define Q_NET_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_proto.h"
#include "util/buf.h"

typedef struct net_hello {
	q_slice node_id;      /* <= NET_MAX_NODE_ID; may be empty (a plain client) */
	q_slice listen_addr;  /* "host:port" the sender serves on; <= NET_MAX_ADDR */
	uint32_t proto_version;
	q_slice auth;         /* authentication bytes (cluster secret proof); <= NET_MAX_AUTH */
} net_hello;

typedef struct net_hello_ok {
	q_slice node_id;
	uint32_t proto_version;
} net_hello_ok;

typedef struct net_ping {       /* PING and PONG */
	uint64_t nonce;
} net_ping;

typedef struct net_error {
	int32_t code;         /* a util/qerr.h code (Q_E* or negative errno); < 0 */
	q_slice text;         /* human-readable detail; <= NET_MAX_ERRTEXT */
} net_error;

typedef struct net_kv_get {
	q_slice key;          /* 1..NET_MAX_KEY bytes */
	uint8_t n, r;         /* 0 = cluster default */
	uint32_t timeout_ms;  /* 0 = default */
} net_kv_get;

/* KV_GET_RESP, KV_PUT_RESP, REPL_GET_RESP: a status and object bytes. */
typedef struct net_obj_resp {
	int32_t status;       /* 0, Q_ENOTFOUND, Q_EQUORUM, ... */
	q_slice object;       /* encoded object (src/object), opaque here; may be empty */
} net_obj_resp;

typedef struct net_kv_put {
	q_slice key;          /* 1..NET_MAX_KEY */
	q_slice ctx;          /* causal context; <= NET_MAX_CTX; empty = blind write */
	q_slice value;        /* <= NET_MAX_VALUE; must be empty with NET_PUT_DELETE */
	uint32_t flags;       /* NET_PUT_* */
	uint8_t n, w;
	uint32_t timeout_ms;
} net_kv_put;

/* KV_MGET and REPL_MGET. For REPL_MGET n/r/timeout_ms must be 0. */
typedef struct net_mget {
	size_t nkeys;         /* 1..NET_MAX_MGET_KEYS */
	q_slice *keys;        /* decoded: owned by the net_msg (net_msg_clear) */
	uint8_t n, r;
	uint32_t timeout_ms;
} net_mget;

typedef struct net_mget_entry {
	int32_t status;
	q_slice object;
} net_mget_entry;

/* KV_MGET_RESP and REPL_MGET_RESP: one entry per requested key, in order. */
typedef struct net_mget_resp {
	size_t n;             /* <= NET_MAX_MGET_KEYS */
	net_mget_entry *entries; /* decoded: owned by the net_msg */
} net_mget_resp;

typedef struct net_repl_get {
	q_slice key;
} net_repl_get;

typedef struct net_repl_put {
	q_slice key;
	q_slice object;       /* object bytes to merge into the replica; 1..NET_MAX_OBJECT */
} net_repl_put;

typedef struct net_repl_put_resp {
	int32_t status;
	uint64_t digest;      /* version digest of the merged object; 0 if not given */
	q_slice object;       /* merged object bytes; optional (may be empty) */
} net_repl_put_resp;

typedef struct net_status {
	uint32_t flags;       /* NET_STATUS_* */
} net_status;

typedef struct net_status_resp {
	q_slice text;         /* JSON or text blob; <= NET_MAX_STATUS */
} net_status_resp;

/* GOSSIP and GOSSIP_RESP: opaque gossip bytes (GOSSIP: 1..NET_MAX_GOSSIP;
 * GOSSIP_RESP: 0..NET_MAX_GOSSIP, empty = no reply). */
typedef struct net_gossip {
	q_slice payload;
} net_gossip;

/* HINT_PUT: a replica write for a down owner, kept as a hint. */
typedef struct net_hint_put {
	q_slice owner;        /* intended owner's node id, 1..NET_MAX_NODE_ID */
	q_slice key;          /* 1..NET_MAX_KEY */
	q_slice object;       /* 1..NET_MAX_OBJECT */
} net_hint_put;

/* AAE, AAE_SYNC, AAE_REPAIR and their responses: an opaque payload the
 * anti-entropy codecs decode (1..NET_MAX_BLOB bytes). */
#define NET_MAX_BLOB (NET_MAX_OBJECT + 512u * 1024u)
typedef struct net_blob {
	q_slice payload;
} net_blob;

typedef struct net_msg {
	uint8_t type;         /* enum net_msg_type: selects the union member */
	union {
		net_hello hello;
		net_hello_ok hello_ok;
		net_ping ping;           /* PING, PONG */
		net_error error;
		net_kv_get kv_get;
		net_obj_resp obj_resp;   /* KV_GET_RESP, KV_PUT_RESP, REPL_GET_RESP */
		net_kv_put kv_put;
		net_mget mget;           /* KV_MGET, REPL_MGET */
		net_mget_resp mget_resp; /* KV_MGET_RESP, REPL_MGET_RESP */
		net_repl_get repl_get;
		net_repl_put repl_put;
		net_repl_put_resp repl_put_resp;
		net_status status;
		net_status_resp status_resp;
		net_gossip gossip;       /* GOSSIP, GOSSIP_RESP */
		net_hint_put hint_put;
		net_blob blob;           /* AAE* (0x60-0x65) */
		/* HINT_PUT_RESP uses repl_put_resp */
	} u;
	void *owned_;         /* decoder allocation; freed by net_msg_clear */
} net_msg;

/* Zeroes m and sets its type. */
void net_msg_init(net_msg *m, uint8_t type);

/* Frees what a decoder allocated and zeroes m (type becomes NONE). */
void net_msg_clear(net_msg *m);

/* Appends m's payload encoding to out. Returns Q_ETOOBIG / Q_EPROTO (a field
 * over its limit, unknown flags, an unknown type, an ERROR code >= 0), or
 * -ENOMEM. On error out keeps its original length. */
int net_msg_encode(const net_msg *m, q_buf *out);

/* Decodes a payload of the given type into m (which need not be
 * initialised). Returns 0, Q_EPROTO (malformed, unknown type, trailing
 * bytes), Q_ETOOBIG (a field over its limit). On error m is cleared. */
int net_msg_decode(uint8_t type, q_slice payload, net_msg *m);

/* Appends a whole frame carrying m (flags: NET_FF_RESP for a response type,
 * set automatically). */
int net_msg_encode_frame(const net_msg *m, uint64_t reqid, q_buf *out);

/* Type facts. net_msg_type_known: 1 if the codec handles the type.
 * net_msg_is_resp: 1 for response types (incl. ERROR). net_msg_resp_type:
 * the response type of a request type (0 for a response or unknown). */
int net_msg_type_known(uint8_t type);
int net_msg_is_resp(uint8_t type);
uint8_t net_msg_resp_type(uint8_t req_type);
/* "KV_GET", ...; "UNKNOWN" for anything else. Static string. */
const char *net_msg_type_name(uint8_t type);

/* Fills m as an ERROR message. text is borrowed (may be NULL: then
 * q_strerror(code) is used) and cut to NET_MAX_ERRTEXT bytes. A code >= 0
 * becomes Q_EPROTO. */
void net_msg_error(net_msg *m, int code, const char *text);

#endif
