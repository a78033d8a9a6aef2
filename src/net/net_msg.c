/*
 * net_msg.c - message payload codec (see net_msg.h and docs/protocol.md).
 *
 * Layout: one table row per message type (msg_table) names the type, says
 * whether it is a response and gives its encoder and decoder. Encoders are
 * written with the put_* field writers below, decoders with the get_*
 * readers; both apply the same limits so that everything an encoder accepts
 * the decoder accepts, and vice versa.
 *
 * Invariants: decoders never read outside the payload (all reads go
 * through q_reader), reject trailing bytes, and allocate only bounded arrays
 * (a count is checked against both its limit and the bytes left before any
 * allocation). Encoders leave the output buffer at its original length on
 * error.
 *
 * Threading: pure functions.
 */
#include "net/net_msg.h"

#include <stdlib.h>
#include <string.h>

#include "net/net_frame.h"
#include "util/coding.h"
#include "util/qerr.h"

/* ------------------------------------------------------------------------ */
/* Field writers                                                              */

static int put_bytes(q_buf *b, q_slice s, size_t min, size_t max)
{
	if (s.n > max)
		return Q_ETOOBIG;
	if (s.n < min)
		return Q_EPROTO;
	return q_put_lenbytes(b, s.p, s.n);
}

static int put_status(q_buf *b, int32_t st)
{
	if (st > 0)
		return Q_EPROTO;
	return q_put_fixed32(b, (uint32_t)st);
}

static int put_u8(q_buf *b, uint8_t v)
{
	return q_buf_append_byte(b, v);
}

/* ------------------------------------------------------------------------ */
/* Field readers: a truncated or overlong field is a malformed message.       */

static int dec_err(int rc)
{
	return rc == Q_ETOOBIG ? Q_ETOOBIG : Q_EPROTO;
}

static int get_bytes(q_reader *r, q_slice *s, size_t min, size_t max)
{
	int rc = q_get_lenbytes(r, max, s);
	if (rc)
		return dec_err(rc);
	if (s->n < min)
		return Q_EPROTO;
	return 0;
}

static int get_status(q_reader *r, int32_t *st)
{
	uint32_t v;
	if (q_get_fixed32(r, &v))
		return Q_EPROTO;
	*st = (int32_t)v;
	if (*st > 0)
		return Q_EPROTO;
	return 0;
}

static int get_u8(q_reader *r, uint8_t *v)
{
	return q_get_u8(r, v) ? Q_EPROTO : 0;
}

static int get_u32(q_reader *r, uint32_t *v)
{
	return q_get_varint32(r, v) ? Q_EPROTO : 0;
}

static int get_u64f(q_reader *r, uint64_t *v)
{
	return q_get_fixed64(r, v) ? Q_EPROTO : 0;
}

/* ------------------------------------------------------------------------ */
/* Per-type encoders and decoders                                             */

static int enc_hello(const net_msg *m, q_buf *b)
{
	const net_hello *h = &m->u.hello;
	Q_RET(put_bytes(b, h->node_id, 0, NET_MAX_NODE_ID));
	Q_RET(put_bytes(b, h->listen_addr, 0, NET_MAX_ADDR));
	Q_RET(q_put_varint(b, h->proto_version));
	return put_bytes(b, h->auth, 0, NET_MAX_AUTH);
}

static int dec_hello(q_reader *r, net_msg *m)
{
	net_hello *h = &m->u.hello;
	Q_RET(get_bytes(r, &h->node_id, 0, NET_MAX_NODE_ID));
	Q_RET(get_bytes(r, &h->listen_addr, 0, NET_MAX_ADDR));
	Q_RET(get_u32(r, &h->proto_version));
	return get_bytes(r, &h->auth, 0, NET_MAX_AUTH);
}

static int enc_hello_ok(const net_msg *m, q_buf *b)
{
	Q_RET(put_bytes(b, m->u.hello_ok.node_id, 0, NET_MAX_NODE_ID));
	return q_put_varint(b, m->u.hello_ok.proto_version);
}

static int dec_hello_ok(q_reader *r, net_msg *m)
{
	Q_RET(get_bytes(r, &m->u.hello_ok.node_id, 0, NET_MAX_NODE_ID));
	return get_u32(r, &m->u.hello_ok.proto_version);
}

static int enc_ping(const net_msg *m, q_buf *b)
{
	return q_put_fixed64(b, m->u.ping.nonce);
}

static int dec_ping(q_reader *r, net_msg *m)
{
	return get_u64f(r, &m->u.ping.nonce);
}

static int enc_error(const net_msg *m, q_buf *b)
{
	if (m->u.error.code >= 0)
		return Q_EPROTO;
	Q_RET(put_status(b, m->u.error.code));
	return put_bytes(b, m->u.error.text, 0, NET_MAX_ERRTEXT);
}

static int dec_error(q_reader *r, net_msg *m)
{
	Q_RET(get_status(r, &m->u.error.code));
	if (m->u.error.code == 0)
		return Q_EPROTO;
	return get_bytes(r, &m->u.error.text, 0, NET_MAX_ERRTEXT);
}

static int enc_kv_get(const net_msg *m, q_buf *b)
{
	const net_kv_get *g = &m->u.kv_get;
	Q_RET(put_bytes(b, g->key, 1, NET_MAX_KEY));
	Q_RET(put_u8(b, g->n));
	Q_RET(put_u8(b, g->r));
	return q_put_varint(b, g->timeout_ms);
}

static int dec_kv_get(q_reader *r, net_msg *m)
{
	net_kv_get *g = &m->u.kv_get;
	Q_RET(get_bytes(r, &g->key, 1, NET_MAX_KEY));
	Q_RET(get_u8(r, &g->n));
	Q_RET(get_u8(r, &g->r));
	return get_u32(r, &g->timeout_ms);
}

static int enc_obj_resp(const net_msg *m, q_buf *b)
{
	Q_RET(put_status(b, m->u.obj_resp.status));
	return put_bytes(b, m->u.obj_resp.object, 0, NET_MAX_OBJECT);
}

static int dec_obj_resp(q_reader *r, net_msg *m)
{
	Q_RET(get_status(r, &m->u.obj_resp.status));
	return get_bytes(r, &m->u.obj_resp.object, 0, NET_MAX_OBJECT);
}

static int enc_kv_put(const net_msg *m, q_buf *b)
{
	const net_kv_put *p = &m->u.kv_put;
	if (p->flags & ~NET_PUT_KNOWN)
		return Q_EPROTO;
	if ((p->flags & NET_PUT_DELETE) && p->value.n)
		return Q_EPROTO;
	Q_RET(put_bytes(b, p->key, 1, NET_MAX_KEY));
	Q_RET(put_bytes(b, p->ctx, 0, NET_MAX_CTX));
	Q_RET(put_bytes(b, p->value, 0, NET_MAX_VALUE));
	Q_RET(q_put_varint(b, p->flags));
	Q_RET(put_u8(b, p->n));
	Q_RET(put_u8(b, p->w));
	return q_put_varint(b, p->timeout_ms);
}

static int dec_kv_put(q_reader *r, net_msg *m)
{
	net_kv_put *p = &m->u.kv_put;
	Q_RET(get_bytes(r, &p->key, 1, NET_MAX_KEY));
	Q_RET(get_bytes(r, &p->ctx, 0, NET_MAX_CTX));
	Q_RET(get_bytes(r, &p->value, 0, NET_MAX_VALUE));
	Q_RET(get_u32(r, &p->flags));
	if (p->flags & ~NET_PUT_KNOWN)
		return Q_EPROTO;
	if ((p->flags & NET_PUT_DELETE) && p->value.n)
		return Q_EPROTO;
	Q_RET(get_u8(r, &p->n));
	Q_RET(get_u8(r, &p->w));
	return get_u32(r, &p->timeout_ms);
}

static int enc_mget(const net_msg *m, q_buf *b)
{
	const net_mget *g = &m->u.mget;
	if (g->nkeys == 0 || (g->nkeys && !g->keys))
		return Q_EPROTO;
	if (g->nkeys > NET_MAX_MGET_KEYS)
		return Q_ETOOBIG;
	if (m->type == NET_MSG_REPL_MGET && (g->n || g->r || g->timeout_ms))
		return Q_EPROTO;
	Q_RET(q_put_varint(b, g->nkeys));
	for (size_t i = 0; i < g->nkeys; i++)
		Q_RET(put_bytes(b, g->keys[i], 1, NET_MAX_KEY));
	Q_RET(put_u8(b, g->n));
	Q_RET(put_u8(b, g->r));
	return q_put_varint(b, g->timeout_ms);
}

static int dec_mget(q_reader *r, net_msg *m)
{
	net_mget *g = &m->u.mget;
	uint32_t n;
	Q_RET(get_u32(r, &n));
	if (n == 0)
		return Q_EPROTO;
	if (n > NET_MAX_MGET_KEYS)
		return Q_ETOOBIG;
	if ((size_t)n * 2 > q_reader_left(r)) /* each key is >= 2 bytes */
		return Q_EPROTO;
	g->keys = calloc(n, sizeof *g->keys);
	if (!g->keys)
		return -ENOMEM;
	m->owned_ = g->keys;
	g->nkeys = n;
	for (size_t i = 0; i < n; i++)
		Q_RET(get_bytes(r, &g->keys[i], 1, NET_MAX_KEY));
	Q_RET(get_u8(r, &g->n));
	Q_RET(get_u8(r, &g->r));
	Q_RET(get_u32(r, &g->timeout_ms));
	if (m->type == NET_MSG_REPL_MGET && (g->n || g->r || g->timeout_ms))
		return Q_EPROTO;
	return 0;
}

static int enc_mget_resp(const net_msg *m, q_buf *b)
{
	const net_mget_resp *g = &m->u.mget_resp;
	if (g->n && !g->entries)
		return Q_EPROTO;
	if (g->n > NET_MAX_MGET_KEYS)
		return Q_ETOOBIG;
	Q_RET(q_put_varint(b, g->n));
	for (size_t i = 0; i < g->n; i++) {
		Q_RET(put_status(b, g->entries[i].status));
		Q_RET(put_bytes(b, g->entries[i].object, 0, NET_MAX_OBJECT));
	}
	return 0;
}

static int dec_mget_resp(q_reader *r, net_msg *m)
{
	net_mget_resp *g = &m->u.mget_resp;
	uint32_t n;
	Q_RET(get_u32(r, &n));
	if (n > NET_MAX_MGET_KEYS)
		return Q_ETOOBIG;
	if ((size_t)n * 5 > q_reader_left(r)) /* status + length byte */
		return Q_EPROTO;
	if (n) {
		g->entries = calloc(n, sizeof *g->entries);
		if (!g->entries)
			return -ENOMEM;
		m->owned_ = g->entries;
	}
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		Q_RET(get_status(r, &g->entries[i].status));
		Q_RET(get_bytes(r, &g->entries[i].object, 0, NET_MAX_OBJECT));
	}
	return 0;
}

static int enc_repl_get(const net_msg *m, q_buf *b)
{
	return put_bytes(b, m->u.repl_get.key, 1, NET_MAX_KEY);
}

static int dec_repl_get(q_reader *r, net_msg *m)
{
	return get_bytes(r, &m->u.repl_get.key, 1, NET_MAX_KEY);
}

static int enc_repl_put(const net_msg *m, q_buf *b)
{
	Q_RET(put_bytes(b, m->u.repl_put.key, 1, NET_MAX_KEY));
	return put_bytes(b, m->u.repl_put.object, 1, NET_MAX_OBJECT);
}

static int dec_repl_put(q_reader *r, net_msg *m)
{
	Q_RET(get_bytes(r, &m->u.repl_put.key, 1, NET_MAX_KEY));
	return get_bytes(r, &m->u.repl_put.object, 1, NET_MAX_OBJECT);
}

static int enc_repl_put_resp(const net_msg *m, q_buf *b)
{
	const net_repl_put_resp *p = &m->u.repl_put_resp;
	Q_RET(put_status(b, p->status));
	Q_RET(q_put_fixed64(b, p->digest));
	return put_bytes(b, p->object, 0, NET_MAX_OBJECT);
}

static int dec_repl_put_resp(q_reader *r, net_msg *m)
{
	net_repl_put_resp *p = &m->u.repl_put_resp;
	Q_RET(get_status(r, &p->status));
	Q_RET(get_u64f(r, &p->digest));
	return get_bytes(r, &p->object, 0, NET_MAX_OBJECT);
}

static int enc_status(const net_msg *m, q_buf *b)
{
	if (m->u.status.flags & ~NET_STATUS_KNOWN)
		return Q_EPROTO;
	return q_put_varint(b, m->u.status.flags);
}

static int dec_status(q_reader *r, net_msg *m)
{
	Q_RET(get_u32(r, &m->u.status.flags));
	return (m->u.status.flags & ~NET_STATUS_KNOWN) ? Q_EPROTO : 0;
}

static int enc_status_resp(const net_msg *m, q_buf *b)
{
	return put_bytes(b, m->u.status_resp.text, 0, NET_MAX_STATUS);
}

static int dec_status_resp(q_reader *r, net_msg *m)
{
	return get_bytes(r, &m->u.status_resp.text, 0, NET_MAX_STATUS);
}

static int enc_gossip(const net_msg *m, q_buf *b)
{
	return put_bytes(b, m->u.gossip.payload, 1, NET_MAX_GOSSIP);
}

static int dec_gossip(q_reader *r, net_msg *m)
{
	return get_bytes(r, &m->u.gossip.payload, 1, NET_MAX_GOSSIP);
}

static int enc_gossip_resp(const net_msg *m, q_buf *b)
{
	return put_bytes(b, m->u.gossip.payload, 0, NET_MAX_GOSSIP);
}

static int dec_gossip_resp(q_reader *r, net_msg *m)
{
	return get_bytes(r, &m->u.gossip.payload, 0, NET_MAX_GOSSIP);
}

static int enc_hint_put(const net_msg *m, q_buf *b)
{
	Q_RET(put_bytes(b, m->u.hint_put.owner, 1, NET_MAX_NODE_ID));
	Q_RET(put_bytes(b, m->u.hint_put.key, 1, NET_MAX_KEY));
	return put_bytes(b, m->u.hint_put.object, 1, NET_MAX_OBJECT);
}

static int dec_hint_put(q_reader *r, net_msg *m)
{
	Q_RET(get_bytes(r, &m->u.hint_put.owner, 1, NET_MAX_NODE_ID));
	Q_RET(get_bytes(r, &m->u.hint_put.key, 1, NET_MAX_KEY));
	return get_bytes(r, &m->u.hint_put.object, 1, NET_MAX_OBJECT);
}

static int enc_blob(const net_msg *m, q_buf *b)
{
	return put_bytes(b, m->u.blob.payload, 1, NET_MAX_BLOB);
}

static int dec_blob(q_reader *r, net_msg *m)
{
	return get_bytes(r, &m->u.blob.payload, 1, NET_MAX_BLOB);
}

/* ------------------------------------------------------------------------ */
/* The table                                                                  */

struct msg_kind {
	const char *name;
	uint8_t resp_type;   /* for requests: their response type; 0 for responses */
	uint8_t is_resp;
	int (*enc)(const net_msg *m, q_buf *b);
	int (*dec)(q_reader *r, net_msg *m);
};

static const struct msg_kind msg_table[256] = {
	[NET_MSG_HELLO] = {"HELLO", NET_MSG_HELLO_OK, 0, enc_hello, dec_hello},
	[NET_MSG_HELLO_OK] = {"HELLO_OK", 0, 1, enc_hello_ok, dec_hello_ok},
	[NET_MSG_PING] = {"PING", NET_MSG_PONG, 0, enc_ping, dec_ping},
	[NET_MSG_PONG] = {"PONG", 0, 1, enc_ping, dec_ping},
	[NET_MSG_ERROR] = {"ERROR", 0, 1, enc_error, dec_error},
	[NET_MSG_KV_GET] = {"KV_GET", NET_MSG_KV_GET_RESP, 0, enc_kv_get, dec_kv_get},
	[NET_MSG_KV_GET_RESP] = {"KV_GET_RESP", 0, 1, enc_obj_resp, dec_obj_resp},
	[NET_MSG_KV_PUT] = {"KV_PUT", NET_MSG_KV_PUT_RESP, 0, enc_kv_put, dec_kv_put},
	[NET_MSG_KV_PUT_RESP] = {"KV_PUT_RESP", 0, 1, enc_obj_resp, dec_obj_resp},
	[NET_MSG_KV_MGET] = {"KV_MGET", NET_MSG_KV_MGET_RESP, 0, enc_mget, dec_mget},
	[NET_MSG_KV_MGET_RESP] = {"KV_MGET_RESP", 0, 1, enc_mget_resp, dec_mget_resp},
	[NET_MSG_REPL_GET] = {"REPL_GET", NET_MSG_REPL_GET_RESP, 0, enc_repl_get, dec_repl_get},
	[NET_MSG_REPL_GET_RESP] = {"REPL_GET_RESP", 0, 1, enc_obj_resp, dec_obj_resp},
	[NET_MSG_REPL_PUT] = {"REPL_PUT", NET_MSG_REPL_PUT_RESP, 0, enc_repl_put, dec_repl_put},
	[NET_MSG_REPL_PUT_RESP] = {"REPL_PUT_RESP", 0, 1, enc_repl_put_resp, dec_repl_put_resp},
	[NET_MSG_REPL_MGET] = {"REPL_MGET", NET_MSG_REPL_MGET_RESP, 0, enc_mget, dec_mget},
	[NET_MSG_REPL_MGET_RESP] = {"REPL_MGET_RESP", 0, 1, enc_mget_resp, dec_mget_resp},
	[NET_MSG_STATUS] = {"STATUS", NET_MSG_STATUS_RESP, 0, enc_status, dec_status},
	[NET_MSG_STATUS_RESP] = {"STATUS_RESP", 0, 1, enc_status_resp, dec_status_resp},
	[NET_MSG_RING] = {"RING", NET_MSG_RING_RESP, 0, enc_status, dec_status},
	[NET_MSG_RING_RESP] = {"RING_RESP", 0, 1, enc_status_resp, dec_status_resp},
	[NET_MSG_GOSSIP] = {"GOSSIP", NET_MSG_GOSSIP_RESP, 0, enc_gossip, dec_gossip},
	[NET_MSG_GOSSIP_RESP] = {"GOSSIP_RESP", 0, 1, enc_gossip_resp, dec_gossip_resp},
	[NET_MSG_HINT_PUT] = {"HINT_PUT", NET_MSG_HINT_PUT_RESP, 0, enc_hint_put, dec_hint_put},
	[NET_MSG_HINT_PUT_RESP] = {"HINT_PUT_RESP", 0, 1, enc_repl_put_resp, dec_repl_put_resp},
	[NET_MSG_AAE] = {"AAE", NET_MSG_AAE_RESP, 0, enc_blob, dec_blob},
	[NET_MSG_AAE_RESP] = {"AAE_RESP", 0, 1, enc_blob, dec_blob},
	[NET_MSG_AAE_SYNC] = {"AAE_SYNC", NET_MSG_AAE_SYNC_RESP, 0, enc_blob, dec_blob},
	[NET_MSG_AAE_SYNC_RESP] = {"AAE_SYNC_RESP", 0, 1, enc_blob, dec_blob},
	[NET_MSG_AAE_REPAIR] = {"AAE_REPAIR", NET_MSG_AAE_REPAIR_RESP, 0, enc_blob, dec_blob},
	[NET_MSG_AAE_REPAIR_RESP] = {"AAE_REPAIR_RESP", 0, 1, enc_blob, dec_blob},
	/* handoff and leave payloads are opaque here (handoff/handoff_msg.h) */
	[NET_MSG_HANDOFF_BATCH] = {"HANDOFF_BATCH", NET_MSG_HANDOFF_BATCH_RESP, 0, enc_gossip,
				   dec_gossip},
	[NET_MSG_HANDOFF_BATCH_RESP] = {"HANDOFF_BATCH_RESP", 0, 1, enc_gossip_resp,
					dec_gossip_resp},
	[NET_MSG_LEAVE] = {"LEAVE", NET_MSG_LEAVE_RESP, 0, enc_gossip, dec_gossip},
	[NET_MSG_LEAVE_RESP] = {"LEAVE_RESP", 0, 1, enc_gossip_resp, dec_gossip_resp},
	/* filesystem admin payloads are opaque here (node/node_fs_msg.h) */
	[NET_MSG_FS_INFO] = {"FS_INFO", NET_MSG_FS_INFO_RESP, 0, enc_blob, dec_blob},
	[NET_MSG_FS_INFO_RESP] = {"FS_INFO_RESP", 0, 1, enc_blob, dec_blob},
	[NET_MSG_FS_SCAN] = {"FS_SCAN", NET_MSG_FS_SCAN_RESP, 0, enc_blob, dec_blob},
	[NET_MSG_FS_SCAN_RESP] = {"FS_SCAN_RESP", 0, 1, enc_blob, dec_blob},
};

/* ------------------------------------------------------------------------ */

void net_msg_init(net_msg *m, uint8_t type)
{
	memset(m, 0, sizeof *m);
	m->type = type;
}

void net_msg_clear(net_msg *m)
{
	free(m->owned_);
	memset(m, 0, sizeof *m);
}

int net_msg_type_known(uint8_t type)
{
	return msg_table[type].enc != NULL;
}

int net_msg_is_resp(uint8_t type)
{
	return msg_table[type].enc != NULL && msg_table[type].is_resp;
}

uint8_t net_msg_resp_type(uint8_t req_type)
{
	return msg_table[req_type].resp_type;
}

const char *net_msg_type_name(uint8_t type)
{
	return msg_table[type].name ? msg_table[type].name : "UNKNOWN";
}

int net_msg_encode(const net_msg *m, q_buf *out)
{
	const struct msg_kind *k = &msg_table[m->type];
	if (!k->enc)
		return Q_EPROTO;
	size_t old = out->len;
	int rc = k->enc(m, out);
	if (rc < 0)
		out->len = old;
	return rc;
}

int net_msg_decode(uint8_t type, q_slice payload, net_msg *m)
{
	memset(m, 0, sizeof *m);
	const struct msg_kind *k = &msg_table[type];
	if (!k->dec)
		return Q_EPROTO;
	m->type = type;
	q_reader r = q_reader_make(payload.p, payload.n);
	int rc = k->dec(&r, m);
	if (rc == 0 && q_reader_left(&r) != 0)
		rc = Q_EPROTO; /* trailing bytes */
	if (rc < 0)
		net_msg_clear(m);
	return rc;
}

int net_msg_encode_frame(const net_msg *m, uint64_t reqid, q_buf *out)
{
	/* Header placeholder, payload encoded in place, then the real header:
	 * one copy of the payload bytes. */
	size_t old = out->len;
	uint8_t zero[NET_FRAME_HDR_LEN] = {0};
	Q_RET(q_buf_append(out, zero, sizeof zero));
	int rc = net_msg_encode(m, out);
	if (rc == 0) {
		q_slice pl = q_slice_make(out->p + old + NET_FRAME_HDR_LEN,
					  out->len - old - NET_FRAME_HDR_LEN);
		rc = net_frame_write_hdr(out->p + old, m->type,
					 net_msg_is_resp(m->type) ? NET_FF_RESP : 0, reqid, pl);
	}
	if (rc < 0)
		out->len = old;
	return rc;
}

void net_msg_error(net_msg *m, int code, const char *text)
{
	net_msg_init(m, NET_MSG_ERROR);
	if (code >= 0)
		code = Q_EPROTO;
	if (!text)
		text = q_strerror(code);
	size_t n = strlen(text);
	if (n > NET_MAX_ERRTEXT)
		n = NET_MAX_ERRTEXT;
	m->u.error.code = code;
	m->u.error.text = q_slice_make(text, n);
}
