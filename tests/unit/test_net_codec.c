/*
 * test_net_codec.c - frame and message codec: round trips of every message
 * type, and rejection of truncations, bit flips, oversized lengths, unknown
 * flags/types and trailing bytes.
 *
 * With NET_CORPUS_DIR=<dir> set, the test corpus_write also writes the
 * seed corpora of the net_frame and net_msg fuzz targets into <dir>/net_frame
 * and <dir>/net_msg (how tests/fuzz/corpus/net_* were made).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net/net_frame.h"
#include "net/net_msg.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/qerr.h"

/* One sample message of every type, filled with distinctive values. */
static q_slice keys3[3];
static net_mget_entry ents3[3];

static int sample(uint8_t type, net_msg *m)
{
	net_msg_init(m, type);
	switch (type) {
	case NET_MSG_HELLO:
		m->u.hello.node_id = q_slice_str("n1");
		m->u.hello.listen_addr = q_slice_str("127.0.0.1:7400");
		m->u.hello.proto_version = NET_PROTO_VERSION;
		m->u.hello.auth = q_slice_str("proof");
		return 1;
	case NET_MSG_HELLO_OK:
		m->u.hello_ok.node_id = q_slice_str("n2");
		m->u.hello_ok.proto_version = NET_PROTO_VERSION;
		return 1;
	case NET_MSG_PING:
	case NET_MSG_PONG:
		m->u.ping.nonce = 0x0123456789abcdefULL;
		return 1;
	case NET_MSG_ERROR:
		m->u.error.code = Q_EQUORUM;
		m->u.error.text = q_slice_str("only 1 of 2 replicas answered");
		return 1;
	case NET_MSG_KV_GET:
		m->u.kv_get.key = q_slice_str("/a/b");
		m->u.kv_get.n = 3;
		m->u.kv_get.r = 2;
		m->u.kv_get.timeout_ms = 1500;
		return 1;
	case NET_MSG_KV_GET_RESP:
	case NET_MSG_KV_PUT_RESP:
	case NET_MSG_REPL_GET_RESP:
		m->u.obj_resp.status = 0;
		m->u.obj_resp.object = q_slice_str("OBJECT-BYTES");
		return 1;
	case NET_MSG_KV_PUT:
		m->u.kv_put.key = q_slice_str("k");
		m->u.kv_put.ctx = q_slice_str("ctx");
		m->u.kv_put.value = q_slice_str("value");
		m->u.kv_put.flags = NET_PUT_RETURN_OBJ;
		m->u.kv_put.n = 3;
		m->u.kv_put.w = 2;
		m->u.kv_put.timeout_ms = 99;
		return 1;
	case NET_MSG_KV_MGET:
	case NET_MSG_REPL_MGET:
		keys3[0] = q_slice_str("a");
		keys3[1] = q_slice_str("bb");
		keys3[2] = q_slice_str("ccc");
		m->u.mget.nkeys = 3;
		m->u.mget.keys = keys3;
		if (type == NET_MSG_KV_MGET) {
			m->u.mget.n = 3;
			m->u.mget.r = 1;
			m->u.mget.timeout_ms = 7;
		}
		return 1;
	case NET_MSG_KV_MGET_RESP:
	case NET_MSG_REPL_MGET_RESP:
		ents3[0] = (net_mget_entry){0, q_slice_str("o1")};
		ents3[1] = (net_mget_entry){Q_ENOTFOUND, q_slice_make(NULL, 0)};
		ents3[2] = (net_mget_entry){0, q_slice_str("o3")};
		m->u.mget_resp.n = 3;
		m->u.mget_resp.entries = ents3;
		return 1;
	case NET_MSG_REPL_GET:
		m->u.repl_get.key = q_slice_str("rk");
		return 1;
	case NET_MSG_REPL_PUT:
		m->u.repl_put.key = q_slice_str("rk");
		m->u.repl_put.object = q_slice_str("merge-me");
		return 1;
	case NET_MSG_REPL_PUT_RESP:
		m->u.repl_put_resp.status = 0;
		m->u.repl_put_resp.digest = 0xfeedfacecafebeefULL;
		m->u.repl_put_resp.object = q_slice_str("merged");
		return 1;
	case NET_MSG_STATUS:
		m->u.status.flags = NET_STATUS_VERBOSE;
		return 1;
	case NET_MSG_STATUS_RESP:
		m->u.status_resp.text = q_slice_str("{\"ok\":true}");
		return 1;
	case NET_MSG_RING:
		return 1;
	case NET_MSG_RING_RESP:
		m->u.status_resp.text = q_slice_str("{\"nodes\":[]}");
		return 1;
	case NET_MSG_AAE:
	case NET_MSG_AAE_RESP:
	case NET_MSG_AAE_SYNC:
	case NET_MSG_AAE_SYNC_RESP:
	case NET_MSG_AAE_REPAIR:
	case NET_MSG_AAE_REPAIR_RESP:
		m->u.blob.payload = q_slice_str("aae-bytes");
		return 1;
	case NET_MSG_FS_INFO:
	case NET_MSG_FS_INFO_RESP:
	case NET_MSG_FS_SCAN:
	case NET_MSG_FS_SCAN_RESP:
		m->u.blob.payload = q_slice_str("fs-bytes");
		return 1;
	case NET_MSG_HINT_PUT:
		m->u.hint_put.owner = q_slice_str("n2");
		m->u.hint_put.key = q_slice_str("k");
		m->u.hint_put.object = q_slice_str("obj");
		return 1;
	case NET_MSG_HINT_PUT_RESP:
		m->u.repl_put_resp.status = 0;
		m->u.repl_put_resp.digest = 7;
		return 1;
	case NET_MSG_GOSSIP:
	case NET_MSG_GOSSIP_RESP:
	case NET_MSG_HANDOFF_BATCH:
	case NET_MSG_HANDOFF_BATCH_RESP:
	case NET_MSG_LEAVE:
	case NET_MSG_LEAVE_RESP:
		m->u.gossip.payload = q_slice_str("gossip-bytes");
		return 1;
	default:
		return 0;
	}
}

static int sl_eq(q_slice a, q_slice b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Deep comparison through re-encoding: equal encodings <=> equal fields
 * (the encoding is canonical), plus a few direct field checks. */
static void assert_same(const net_msg *a, const net_msg *b)
{
	ASSERT_EQ(a->type, b->type);
	q_buf ea = Q_BUF_INIT, eb = Q_BUF_INIT;
	ASSERT_OK(net_msg_encode(a, &ea));
	ASSERT_OK(net_msg_encode(b, &eb));
	ASSERT_EQ(ea.len, eb.len);
	ASSERT_MEMEQ(ea.p, eb.p, ea.len);
	q_buf_free(&ea);
	q_buf_free(&eb);
}

QTEST(frame_roundtrip)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(net_frame_encode(&b, NET_MSG_PING, 0, 42, q_slice_str("12345678")));
	ASSERT_OK(net_frame_encode(&b, NET_MSG_PONG, NET_FF_RESP, 43, q_slice_make(NULL, 0)));
	ASSERT_EQ(b.len, 2 * NET_FRAME_HDR_LEN + 8);
	ASSERT_MEMEQ(b.p, "QFN1", 4);
	net_frame f;
	size_t used;
	ASSERT_OK(net_frame_decode(b.p, b.len, &f, &used));
	ASSERT_EQ(used, NET_FRAME_HDR_LEN + 8);
	ASSERT_EQ(f.type, NET_MSG_PING);
	ASSERT_EQ(f.flags, 0);
	ASSERT_U64_EQ(f.reqid, 42);
	ASSERT(sl_eq(f.payload, q_slice_str("12345678")));
	ASSERT_OK(net_frame_decode(b.p + used, b.len - used, &f, &used));
	ASSERT_EQ(f.type, NET_MSG_PONG);
	ASSERT_EQ(f.flags, NET_FF_RESP);
	ASSERT_EQ(f.payload.n, 0);
	q_buf_free(&b);
}

QTEST(frame_need_more_every_prefix)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(net_frame_encode(&b, NET_MSG_KV_GET, 0, 7, q_slice_str("payload bytes")));
	for (size_t n = 0; n < b.len; n++) {
		net_frame f;
		size_t used = 12345;
		ASSERT_EQ(net_frame_decode(b.p, n, &f, &used), NET_NEED_MORE);
		ASSERT_EQ(used, 12345);
	}
	q_buf_free(&b);
}

QTEST(frame_bitflips_detected)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(net_frame_encode(&b, NET_MSG_KV_PUT, 0, 0x1122334455667788ULL,
				   q_slice_str("some payload to protect")));
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b.p[i] ^= (uint8_t)(1u << bit);
			net_frame f;
			size_t used;
			int rc = net_frame_decode(b.p, b.len, &f, &used);
			/* a flipped length bit may make the frame look longer */
			if (i >= NET_OFF_LEN && i < NET_OFF_LEN + 4 && rc == NET_NEED_MORE) {
			} else if (i >= NET_OFF_LEN && i < NET_OFF_LEN + 4 && rc == Q_ETOOBIG) {
			} else if (i == NET_OFF_VERSION) {
				ASSERT_EQ(rc, Q_EVERSION);
			} else {
				if (rc != Q_EPROTO)
					QTEST_FAIL_("byte %zu bit %d: rc %d", i, bit, rc);
			}
			b.p[i] ^= (uint8_t)(1u << bit);
		}
	}
	q_buf_free(&b);
}

QTEST(frame_limits_and_header_errors)
{
	uint8_t hdr[NET_FRAME_HDR_LEN];
	ASSERT_OK(net_frame_write_hdr(hdr, NET_MSG_PING, 0, 1, q_slice_make(NULL, 0)));
	net_frame f;
	size_t used;
	/* oversized length: refused from the header alone */
	q_enc_fixed32(hdr + NET_OFF_LEN, NET_MAX_PAYLOAD + 1);
	ASSERT_EQ(net_frame_decode(hdr, sizeof hdr, &f, &used), Q_ETOOBIG);
	ASSERT_EQ(net_frame_decode_hdr(hdr, sizeof hdr, 0, &f), Q_ETOOBIG);
	q_enc_fixed32(hdr + NET_OFF_LEN, 0xffffffffu);
	ASSERT_EQ(net_frame_decode(hdr, sizeof hdr, &f, &used), Q_ETOOBIG);
	/* a tighter receiver limit */
	q_enc_fixed32(hdr + NET_OFF_LEN, 1000);
	ASSERT_EQ(net_frame_decode2(hdr, sizeof hdr, 999, &f, &used), Q_ETOOBIG);
	ASSERT_EQ(net_frame_decode2(hdr, sizeof hdr, 1000, &f, &used), NET_NEED_MORE);
	/* version, flags, type 0, magic */
	ASSERT_OK(net_frame_write_hdr(hdr, NET_MSG_PING, 0, 1, q_slice_make(NULL, 0)));
	hdr[NET_OFF_VERSION] = 2;
	ASSERT_EQ(net_frame_decode(hdr, sizeof hdr, &f, &used), Q_EVERSION);
	ASSERT_OK(net_frame_write_hdr(hdr, NET_MSG_PING, 0, 1, q_slice_make(NULL, 0)));
	q_enc_fixed16(hdr + NET_OFF_FLAGS, 0x8000);
	ASSERT_EQ(net_frame_decode(hdr, sizeof hdr, &f, &used), Q_EPROTO);
	hdr[NET_OFF_TYPE] = 0;
	q_enc_fixed16(hdr + NET_OFF_FLAGS, 0);
	ASSERT_EQ(net_frame_decode(hdr, sizeof hdr, &f, &used), Q_EPROTO);
	/* garbage is refused from its first byte */
	ASSERT_EQ(net_frame_decode((const uint8_t *)"GET / HTTP/1.1", 1, &f, &used), Q_EPROTO);
	ASSERT_EQ(net_frame_decode((const uint8_t *)"QFN", 3, &f, &used), NET_NEED_MORE);
	/* encoder refuses too */
	ASSERT_EQ(net_frame_write_hdr(hdr, 0, 0, 1, q_slice_make(NULL, 0)), Q_EPROTO);
	ASSERT_EQ(net_frame_write_hdr(hdr, NET_MSG_PING, 0x10, 1, q_slice_make(NULL, 0)), Q_EPROTO);
	ASSERT_EQ(net_frame_write_hdr(hdr, NET_MSG_PING, 0, 1, q_slice_make(hdr, NET_MAX_PAYLOAD + 1u)),
		  Q_ETOOBIG);
}

QTEST(msg_roundtrip_every_type)
{
	int n = 0;
	for (int t = 0; t < 256; t++) {
		net_msg m, d;
		if (!sample((uint8_t)t, &m)) {
			ASSERT(!net_msg_type_known((uint8_t)t));
			ASSERT_STREQ(net_msg_type_name((uint8_t)t), "UNKNOWN");
			continue;
		}
		ASSERT(net_msg_type_known((uint8_t)t));
		n++;
		q_buf b = Q_BUF_INIT;
		ASSERT_OK(net_msg_encode_frame(&m, 1000 + (uint64_t)t, &b));
		net_frame f;
		size_t used;
		ASSERT_OK(net_frame_decode(b.p, b.len, &f, &used));
		ASSERT_EQ(used, b.len);
		ASSERT_EQ(f.type, t);
		ASSERT_EQ(!!(f.flags & NET_FF_RESP), net_msg_is_resp((uint8_t)t));
		ASSERT_OK(net_msg_decode(f.type, f.payload, &d));
		assert_same(&m, &d);
		net_msg_clear(&d);
		q_buf_free(&b);
	}
	ASSERT_EQ(n, 39);
}

QTEST(msg_fields_decoded)
{
	net_msg m, d;
	q_buf b = Q_BUF_INIT;
	sample(NET_MSG_KV_PUT, &m);
	ASSERT_OK(net_msg_encode(&m, &b));
	ASSERT_OK(net_msg_decode(NET_MSG_KV_PUT, q_buf_slice(&b), &d));
	ASSERT(sl_eq(d.u.kv_put.key, q_slice_str("k")));
	ASSERT(sl_eq(d.u.kv_put.ctx, q_slice_str("ctx")));
	ASSERT(sl_eq(d.u.kv_put.value, q_slice_str("value")));
	ASSERT_EQ(d.u.kv_put.flags, NET_PUT_RETURN_OBJ);
	ASSERT_EQ(d.u.kv_put.n, 3);
	ASSERT_EQ(d.u.kv_put.w, 2);
	ASSERT_EQ(d.u.kv_put.timeout_ms, 99);
	net_msg_clear(&d);
	q_buf_reset(&b);
	sample(NET_MSG_KV_MGET_RESP, &m);
	ASSERT_OK(net_msg_encode(&m, &b));
	ASSERT_OK(net_msg_decode(NET_MSG_KV_MGET_RESP, q_buf_slice(&b), &d));
	ASSERT_EQ(d.u.mget_resp.n, 3);
	ASSERT_EQ(d.u.mget_resp.entries[1].status, Q_ENOTFOUND);
	ASSERT(sl_eq(d.u.mget_resp.entries[2].object, q_slice_str("o3")));
	net_msg_clear(&d);
	q_buf_reset(&b);
	sample(NET_MSG_ERROR, &m);
	ASSERT_OK(net_msg_encode(&m, &b));
	ASSERT_OK(net_msg_decode(NET_MSG_ERROR, q_buf_slice(&b), &d));
	ASSERT_EQ(d.u.error.code, Q_EQUORUM);
	net_msg_clear(&d);
	q_buf_free(&b);
	ASSERT_EQ(net_msg_resp_type(NET_MSG_KV_GET), NET_MSG_KV_GET_RESP);
	ASSERT_EQ(net_msg_resp_type(NET_MSG_KV_GET_RESP), 0);
	ASSERT(net_msg_is_resp(NET_MSG_ERROR));
	ASSERT(!net_msg_is_resp(NET_MSG_HELLO));
}

/* Every strict prefix of every valid payload is rejected (never crashes,
 * never accepted), and so is every payload with a trailing byte. */
QTEST(msg_truncations_and_trailing)
{
	for (int t = 0; t < 256; t++) {
		net_msg m, d;
		if (!sample((uint8_t)t, &m))
			continue;
		q_buf b = Q_BUF_INIT;
		ASSERT_OK(net_msg_encode(&m, &b));
		for (size_t n = 0; n < b.len; n++) {
			/* exact-size heap copy so ASan catches any over-read */
			uint8_t *cp = malloc(n ? n : 1);
			memcpy(cp, b.p, n);
			int rc = net_msg_decode((uint8_t)t, q_slice_make(cp, n), &d);
			if (rc >= 0)
				QTEST_FAIL_("%s: prefix %zu of %zu accepted", net_msg_type_name((uint8_t)t), n,
					    b.len);
			ASSERT_EQ(d.type, 0);
			ASSERT(d.owned_ == NULL);
			free(cp);
		}
		q_buf_append_byte(&b, 0);
		ASSERT_EQ(net_msg_decode((uint8_t)t, q_buf_slice(&b), &d), Q_EPROTO);
		q_buf_free(&b);
	}
}

/* Bit flips in a payload either decode to something that re-encodes
 * canonically or are refused; never a crash or a leak. */
QTEST(msg_bitflips_safe)
{
	for (int t = 0; t < 256; t++) {
		net_msg m, d;
		if (!sample((uint8_t)t, &m))
			continue;
		q_buf b = Q_BUF_INIT;
		ASSERT_OK(net_msg_encode(&m, &b));
		for (size_t i = 0; i < b.len; i++)
			for (int bit = 0; bit < 8; bit++) {
				b.p[i] ^= (uint8_t)(1u << bit);
				int rc = net_msg_decode((uint8_t)t, q_buf_slice(&b), &d);
				if (rc == 0) {
					q_buf e = Q_BUF_INIT;
					ASSERT_OK(net_msg_encode(&d, &e));
					q_buf_free(&e);
				} else {
					ASSERT(rc == Q_EPROTO || rc == Q_ETOOBIG);
				}
				net_msg_clear(&d);
				b.p[i] ^= (uint8_t)(1u << bit);
			}
		q_buf_free(&b);
	}
}

QTEST(msg_limits)
{
	net_msg m, d;
	q_buf b = Q_BUF_INIT;
	uint8_t *big = calloc(1, NET_MAX_VALUE + 2);
	ASSERT(big);
	/* key over the limit: encoder and decoder both refuse */
	sample(NET_MSG_KV_GET, &m);
	m.u.kv_get.key = q_slice_make(big, NET_MAX_KEY + 1);
	ASSERT_EQ(net_msg_encode(&m, &b), Q_ETOOBIG);
	ASSERT_EQ(b.len, 0);
	m.u.kv_get.key = q_slice_make(big, NET_MAX_KEY);
	ASSERT_OK(net_msg_encode(&m, &b));
	q_buf_reset(&b);
	q_put_lenbytes(&b, big, NET_MAX_KEY + 1);
	q_buf_append(&b, "\x03\x02\x00", 3);
	ASSERT_EQ(net_msg_decode(NET_MSG_KV_GET, q_buf_slice(&b), &d), Q_ETOOBIG);
	q_buf_reset(&b);
	/* empty key */
	m.u.kv_get.key = q_slice_make(NULL, 0);
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	/* value over the limit */
	sample(NET_MSG_KV_PUT, &m);
	m.u.kv_put.value = q_slice_make(big, NET_MAX_VALUE + 1);
	ASSERT_EQ(net_msg_encode(&m, &b), Q_ETOOBIG);
	m.u.kv_put.value = q_slice_make(big, NET_MAX_VALUE);
	ASSERT_OK(net_msg_encode(&m, &b));
	ASSERT_OK(net_msg_decode(NET_MSG_KV_PUT, q_buf_slice(&b), &d));
	ASSERT_EQ(d.u.kv_put.value.n, NET_MAX_VALUE);
	net_msg_clear(&d);
	q_buf_reset(&b);
	/* unknown put flags, delete with a value */
	sample(NET_MSG_KV_PUT, &m);
	m.u.kv_put.flags = 0x80;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	m.u.kv_put.flags = NET_PUT_DELETE;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	m.u.kv_put.value = q_slice_make(NULL, 0);
	ASSERT_OK(net_msg_encode(&m, &b));
	/* flip the flags varint in the encoding to an unknown bit */
	b.p[b.len - 4] = 0x40;
	ASSERT_EQ(net_msg_decode(NET_MSG_KV_PUT, q_buf_slice(&b), &d), Q_EPROTO);
	q_buf_reset(&b);
	/* mget: too many keys, zero keys */
	q_slice *many = calloc(NET_MAX_MGET_KEYS + 1, sizeof *many);
	for (size_t i = 0; i <= NET_MAX_MGET_KEYS; i++)
		many[i] = q_slice_str("k");
	net_msg_init(&m, NET_MSG_KV_MGET);
	m.u.mget.keys = many;
	m.u.mget.nkeys = NET_MAX_MGET_KEYS + 1;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_ETOOBIG);
	m.u.mget.nkeys = NET_MAX_MGET_KEYS;
	ASSERT_OK(net_msg_encode(&m, &b));
	ASSERT_OK(net_msg_decode(NET_MSG_KV_MGET, q_buf_slice(&b), &d));
	ASSERT_EQ(d.u.mget.nkeys, NET_MAX_MGET_KEYS);
	net_msg_clear(&d);
	q_buf_reset(&b);
	m.u.mget.nkeys = 0;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	q_put_varint(&b, 0);
	q_buf_append(&b, "\0\0\0", 3);
	ASSERT_EQ(net_msg_decode(NET_MSG_KV_MGET, q_buf_slice(&b), &d), Q_EPROTO);
	q_buf_reset(&b);
	/* count claims more keys than bytes left: refused before allocating */
	q_put_varint(&b, NET_MAX_MGET_KEYS);
	q_buf_append(&b, "\x01k\0\0\0", 5);
	ASSERT_EQ(net_msg_decode(NET_MSG_KV_MGET, q_buf_slice(&b), &d), Q_EPROTO);
	q_buf_reset(&b);
	/* REPL_MGET carries no n/r/timeout */
	net_msg_init(&m, NET_MSG_REPL_MGET);
	m.u.mget.keys = many;
	m.u.mget.nkeys = 1;
	m.u.mget.r = 1;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	/* ERROR needs a negative code; statuses may not be positive */
	net_msg_init(&m, NET_MSG_ERROR);
	m.u.error.code = 0;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	net_msg_error(&m, 5, NULL);
	ASSERT_EQ(m.u.error.code, Q_EPROTO);
	ASSERT(m.u.error.text.n > 0);
	net_msg_init(&m, NET_MSG_KV_GET_RESP);
	m.u.obj_resp.status = 1;
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	/* error text is cut to the limit */
	char *longtext = malloc(NET_MAX_ERRTEXT + 100);
	memset(longtext, 'x', NET_MAX_ERRTEXT + 99);
	longtext[NET_MAX_ERRTEXT + 99] = 0;
	net_msg_error(&m, -EIO, longtext);
	ASSERT_EQ(m.u.error.text.n, NET_MAX_ERRTEXT);
	ASSERT_OK(net_msg_encode(&m, &b));
	/* unknown types and response/request mismatches */
	net_msg_init(&m, 0x45);
	ASSERT_EQ(net_msg_encode(&m, &b), Q_EPROTO);
	ASSERT_EQ(net_msg_decode(0x45, q_slice_make(NULL, 0), &d), Q_EPROTO);
	ASSERT_EQ(net_msg_decode(0, q_slice_make(NULL, 0), &d), Q_EPROTO);
	free(longtext);
	free(many);
	free(big);
	q_buf_free(&b);
}

/* Writes one file per seed into dir. */
static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ASSERT(f);
	if (n)
		ASSERT_EQ(fwrite(p, 1, n, f), n);
	ASSERT_OK(fclose(f));
}

QTEST(corpus_write)
{
	const char *root = getenv("NET_CORPUS_DIR");
	if (!root)
		return; /* only when asked to regenerate the seed corpora */
	char fdir[400], mdir[400];
	snprintf(fdir, sizeof fdir, "%s/net_frame", root);
	snprintf(mdir, sizeof mdir, "%s/net_msg", root);
	mkdir(fdir, 0755);
	mkdir(mdir, 0755);
	q_buf all = Q_BUF_INIT;
	for (int t = 0; t < 256; t++) {
		net_msg m;
		if (!sample((uint8_t)t, &m))
			continue;
		char name[64];
		q_buf b = Q_BUF_INIT;
		ASSERT_OK(net_msg_encode_frame(&m, (uint64_t)t, &b));
		snprintf(name, sizeof name, "%s", net_msg_type_name((uint8_t)t));
		write_file(fdir, name, b.p, b.len);
		q_buf_append(&all, b.p, b.len);
		/* msg fuzzer input: type byte, then payload */
		q_buf p = Q_BUF_INIT;
		q_buf_append_byte(&p, (uint8_t)t);
		ASSERT_OK(net_msg_encode(&m, &p));
		write_file(mdir, name, p.p, p.len);
		/* broken: truncated and one trailing byte */
		snprintf(name, sizeof name, "%s.trunc", net_msg_type_name((uint8_t)t));
		write_file(mdir, name, p.p, p.len - 1);
		q_buf_append_byte(&p, 0x5a);
		snprintf(name, sizeof name, "%s.trail", net_msg_type_name((uint8_t)t));
		write_file(mdir, name, p.p, p.len);
		q_buf_free(&p);
		q_buf_free(&b);
	}
	write_file(fdir, "pipelined", all.p, all.len);
	/* broken frames */
	uint8_t hdr[NET_FRAME_HDR_LEN];
	net_frame_write_hdr(hdr, NET_MSG_PING, 0, 9, q_slice_make(NULL, 0));
	hdr[NET_OFF_CSUM] ^= 1;
	write_file(fdir, "bad_csum", hdr, sizeof hdr);
	net_frame_write_hdr(hdr, NET_MSG_PING, 0, 9, q_slice_make(NULL, 0));
	hdr[NET_OFF_VERSION] = 9;
	write_file(fdir, "bad_version", hdr, sizeof hdr);
	net_frame_write_hdr(hdr, NET_MSG_PING, 0, 9, q_slice_make(NULL, 0));
	q_enc_fixed32(hdr + NET_OFF_LEN, 0xffffffffu);
	write_file(fdir, "too_big", hdr, sizeof hdr);
	write_file(fdir, "garbage", "GET / HTTP/1.0\r\n\r\n", 18);
	write_file(fdir, "short", all.p, 30);
	q_buf_free(&all);
}

QTEST_MAIN(QT(frame_roundtrip), QT(frame_need_more_every_prefix), QT(frame_bitflips_detected),
	   QT(frame_limits_and_header_errors), QT(msg_roundtrip_every_type), QT(msg_fields_decoded),
	   QT(msg_truncations_and_trailing), QT(msg_bitflips_safe), QT(msg_limits),
	   QT(corpus_write))
