/* Unit tests: src/aae/aae_msg (exchange message codec): round trips and
 * strict rejection of malformed input. */
#include <errno.h>
#include <string.h>

#include "aae/aae_msg.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/qerr.h"

static const aae_msg_hdr H = {0, 0x1122334455667788ULL, 7, 9};

/* Every strict prefix of a valid message must be rejected. */
static void all_prefixes_fail(const q_buf *b)
{
	for (size_t n = 0; n < b->len; n++) {
		aae_msg m;
		int rc = aae_msg_decode(b->p, n, &m);
		ASSERT(rc == Q_ETRUNC || rc == Q_EPROTO);
	}
	/* and one trailing byte too */
	q_buf c = Q_BUF_INIT;
	ASSERT_OK(q_buf_append(&c, b->p, b->len));
	ASSERT_OK(q_buf_append_byte(&c, 0));
	aae_msg m;
	ASSERT_EQ(aae_msg_decode(c.p, c.len, &m), Q_EPROTO);
	q_buf_free(&c);
}

QTEST(root_round_trip)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	ASSERT_OK(aae_msg_put_root_req(&b, &H));
	ASSERT_EQ(b.len, AAE_MSG_HDR_LEN);
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ROOT_REQ);
	ASSERT_U64_EQ(m.h.xid, H.xid);
	ASSERT_U64_EQ(m.h.range_start, 7);
	ASSERT_U64_EQ(m.h.range_end, 9);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_root_resp(&b, &H, 4, 0xdeadbeef, 123456));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ROOT_RESP);
	ASSERT_EQ(m.depth, 4);
	ASSERT_U64_EQ(m.root, 0xdeadbeef);
	ASSERT_U64_EQ(m.keys, 123456);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	/* depth out of range */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_root_resp(&b, &H, AAE_DEPTH_MAX + 1, 1, 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	q_buf_free(&b);
}

QTEST(children_round_trip)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	uint32_t nodes[3] = {1, 5, 255};
	uint64_t hashes[3 * AAE_FANOUT];
	for (int i = 0; i < 3 * (int)AAE_FANOUT; i++)
		hashes[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
	ASSERT_OK(aae_msg_put_children_req(&b, &H, 2, nodes, 3));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.level, 2);
	ASSERT_EQ(m.nnodes, 3);
	ASSERT_MEMEQ(m.nodes, nodes, sizeof nodes);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_resp(&b, &H, 2, nodes, hashes, 3));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_CHILDREN_RESP);
	ASSERT_MEMEQ(m.hashes, hashes, sizeof hashes);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	/* node out of range for level 1 (16 nodes) */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_req(&b, &H, 1, nodes + 2, 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* not ascending, duplicates */
	uint32_t bad[2] = {5, 5};
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_req(&b, &H, 2, bad, 2));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	uint32_t desc[2] = {6, 5};
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_req(&b, &H, 2, desc, 2));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* empty list, level past the deepest inner level */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_req(&b, &H, 2, nodes, 0));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_children_req(&b, &H, AAE_DEPTH_MAX, nodes, 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* count over the limit, announced without the bytes */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_root_req(&b, &H));
	b.p[1] = AAE_MSG_CHILDREN_REQ;
	ASSERT_OK(q_buf_append_byte(&b, 3));
	ASSERT_OK(q_put_varint(&b, AAE_MAX_NODES_PER_MSG + 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_ETOOBIG);
	b.len -= q_varint_len(AAE_MAX_NODES_PER_MSG + 1);
	ASSERT_OK(q_put_varint(&b, 4000)); /* plausible count, no bytes */
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_ETRUNC);
	/* encoder refuses too many */
	ASSERT_EQ(aae_msg_put_children_req(&b, &H, 2, nodes, AAE_MAX_NODES_PER_MSG + 1),
		  Q_ETOOBIG);
	q_buf_free(&b);
}

QTEST(buckets_round_trip)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	uint32_t bk[4] = {0, 2, 3, 65535};
	ASSERT_OK(aae_msg_put_buckets_req(&b, &H, bk, 4));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.nbuckets, 4);
	ASSERT_MEMEQ(m.buckets, bk, sizeof bk);
	aae_msg_free(&m);
	all_prefixes_fail(&b);

	q_buf_reset(&b);
	aae_bresp_writer w;
	ASSERT_OK(aae_bresp_begin(&w, &b, &H));
	ASSERT_OK(aae_bresp_bucket(&w, 2));
	ASSERT_OK(aae_bresp_pair(&w, q_slice_str("alpha"), 1));
	ASSERT_OK(aae_bresp_pair(&w, q_slice_str(""), 2));
	ASSERT_OK(aae_bresp_bucket(&w, 3)); /* empty bucket */
	ASSERT_OK(aae_bresp_bucket(&w, 9));
	ASSERT_OK(aae_bresp_pair(&w, q_slice_str("dropped"), 3));
	aae_bresp_drop_bucket(&w);
	ASSERT_OK(aae_bresp_bucket(&w, 10));
	ASSERT_OK(aae_bresp_pair(&w, q_slice_str("omega"), 4));
	aae_bresp_end(&w);
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_BUCKETS_RESP);
	ASSERT_EQ(m.nbuckets, 3);
	ASSERT_EQ(m.blist[0].bucket, 2);
	ASSERT_EQ(m.blist[0].npairs, 2);
	ASSERT(q_slice_eq(m.blist[0].pairs[0].key, q_slice_str("alpha")));
	ASSERT_U64_EQ(m.blist[0].pairs[1].digest, 2);
	ASSERT_EQ(m.blist[0].pairs[1].key.n, 0);
	ASSERT_EQ(m.blist[1].bucket, 3);
	ASSERT_EQ(m.blist[1].npairs, 0);
	ASSERT_EQ(m.blist[2].bucket, 10);
	ASSERT(q_slice_eq(m.blist[2].pairs[0].key, q_slice_str("omega")));
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	/* an empty answer decodes (the exchange refuses it, not the codec) */
	q_buf_reset(&b);
	ASSERT_OK(aae_bresp_begin(&w, &b, &H));
	aae_bresp_end(&w);
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.nbuckets, 0);
	aae_msg_free(&m);
	/* buckets out of order */
	q_buf_reset(&b);
	ASSERT_OK(aae_bresp_begin(&w, &b, &H));
	ASSERT_OK(aae_bresp_bucket(&w, 5));
	ASSERT_OK(aae_bresp_bucket(&w, 4));
	aae_bresp_end(&w);
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* bucket index beyond the deepest tree */
	q_buf_reset(&b);
	uint32_t big = 1u << 24;
	ASSERT_OK(aae_msg_put_buckets_req(&b, &H, &big, 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* a pair count far beyond the bytes */
	q_buf_reset(&b);
	ASSERT_OK(aae_bresp_begin(&w, &b, &H));
	ASSERT_OK(aae_bresp_bucket(&w, 1));
	aae_bresp_end(&w);
	q_enc_fixed32(b.p + b.len - 4, 60000);
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_ETRUNC);
	q_enc_fixed32(b.p + b.len - 4, AAE_MAX_KEYS_PER_BUCKET + 1);
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_ETOOBIG);
	/* an over-long key */
	q_buf_reset(&b);
	ASSERT_OK(aae_bresp_begin(&w, &b, &H));
	ASSERT_OK(aae_bresp_bucket(&w, 1));
	static uint8_t huge[AAE_MAX_KEY + 1];
	ASSERT_EQ(aae_bresp_pair(&w, q_slice_make(huge, sizeof huge), 1), Q_ETOOBIG);
	q_buf_free(&b);
}

QTEST(error_round_trip)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	ASSERT_OK(aae_msg_put_error(&b, &H, Q_EBUSY, "tree not built yet"));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ERROR);
	ASSERT_EQ(m.code, Q_EBUSY);
	ASSERT(q_slice_eq(m.text, q_slice_str("tree not built yet")));
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	/* code 0 on the wire is malformed */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_root_req(&b, &H));
	b.p[1] = AAE_MSG_ERROR;
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_lenbytes(&b, "x", 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	q_buf_free(&b);
}

QTEST(header_rules)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	aae_msg_hdr h;
	ASSERT_OK(aae_msg_put_root_req(&b, &H));
	ASSERT_OK(aae_msg_decode_hdr(b.p, b.len, &h));
	ASSERT_U64_EQ(h.xid, H.xid);
	b.p[0] = AAE_MSG_VERSION + 1;
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EVERSION);
	b.p[0] = AAE_MSG_VERSION;
	b.p[1] = 0;
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	b.p[1] = AAE_MSG_TYPE_LAST + 1;
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	ASSERT_EQ(aae_msg_decode(b.p, 0, &m), Q_ETRUNC);
	q_buf_free(&b);
}

QTEST(roots_round_trip)
{
	q_buf b = Q_BUF_INIT;
	aae_msg m;
	aae_msg_hdr h0 = {0, 5, 0, 0};
	aae_msg_root r[3] = {
		{1, 9, AAE_ROOT_OK, 3, 0xabc},
		{1, 10, AAE_ROOT_UNKNOWN, 7, 7}, /* depth/root not sent unless OK */
		{UINT64_MAX, 0, AAE_ROOT_NOT_READY, 0, 0},
	};
	ASSERT_OK(aae_msg_put_roots_req(&b, &h0, r, 3));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.h.type, AAE_MSG_ROOTS_REQ);
	ASSERT_EQ(m.nroots, 3);
	ASSERT_U64_EQ(m.roots[2].start, UINT64_MAX);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_resp(&b, &h0, r, 3));
	ASSERT_OK(aae_msg_decode(b.p, b.len, &m));
	ASSERT_EQ(m.roots[0].status, AAE_ROOT_OK);
	ASSERT_EQ(m.roots[0].depth, 3);
	ASSERT_U64_EQ(m.roots[0].root, 0xabc);
	ASSERT_EQ(m.roots[1].status, AAE_ROOT_UNKNOWN);
	ASSERT_EQ(m.roots[1].depth, 0);
	ASSERT_U64_EQ(m.roots[1].root, 0);
	aae_msg_free(&m);
	all_prefixes_fail(&b);
	/* not ascending, repeated */
	aae_msg_root bad[2] = {{5, 6, 0, 1, 1}, {5, 6, 0, 1, 1}};
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_req(&b, &h0, bad, 2));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	bad[1].start = 4;
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_req(&b, &h0, bad, 2));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* an OK root with depth 0, an unknown status */
	aae_msg_root one = {1, 2, AAE_ROOT_OK, 0, 1};
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_resp(&b, &h0, &one, 1));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	one.depth = 2;
	one.status = 3;
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_resp(&b, &h0, &one, 1));
	b.p[b.len - 10] = 3; /* the encoder wrote status 3 with depth 0 */
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	/* empty list; count beyond the limit */
	q_buf_reset(&b);
	ASSERT_OK(aae_msg_put_roots_req(&b, &h0, r, 0));
	ASSERT_EQ(aae_msg_decode(b.p, b.len, &m), Q_EPROTO);
	ASSERT_EQ(aae_msg_put_roots_req(&b, &h0, r, AAE_MAX_RANGES_PER_MSG + 1), Q_ETOOBIG);
	q_buf_free(&b);
}

QTEST_MAIN(QT(roots_round_trip), QT(root_round_trip), QT(children_round_trip), QT(buckets_round_trip),
	   QT(error_round_trip), QT(header_rules))
