/* Unit tests for src/gossip/gossip_msg.c: round trips and strict rejection
 * of malformed messages. */
#include "qtest.h"
#include "gossip/gossip_msg.h"
#include "util/coding.h"
#include "util/qerr.h"

static q_slice S(const char *s)
{
	return q_slice_str(s);
}

/* An ACK carrying every kind of field. */
static void sample_ack(gossip_msg *m, gossip_digest *d, gossip_state *s)
{
	static const char ring[] = "ring-bytes-v7";
	memset(m, 0, sizeof(*m));
	m->type = GOSSIP_MSG_ACK;
	m->flags = GOSSIP_F_RING;
	m->cluster = S("prod");
	m->from_id = S("n2");
	m->from_addr = S("127.0.0.1:7002");
	m->ring_version = 7;
	m->ring = q_slice_make(ring, sizeof(ring) - 1);
	m->ring_hash = gossip_ring_hash(ring, sizeof(ring) - 1);
	d[0] = (gossip_digest){S("n1"), 3, 99, GOSSIP_ALIVE};
	d[1] = (gossip_digest){S("n4"), 1, 0, GOSSIP_ALIVE};
	m->digests = d;
	m->ndigests = 2;
	s[0] = (gossip_state){S("n2"), S("127.0.0.1:7002"), S("rack-a"), 5, 12345678901ull,
			      GOSSIP_ALIVE};
	s[1] = (gossip_state){S("n3"), S("[::1]:7003"), S(""), 1ull << 40, 7, GOSSIP_DOWN};
	s[2] = (gossip_state){S("n5"), S("h5:1"), S("z"), 2, 2, GOSSIP_LEFT};
	m->states = s;
	m->nstates = 3;
}

QTEST(roundtrip_all_fields)
{
	gossip_msg m, o;
	gossip_digest d[2];
	gossip_state s[3];
	sample_ack(&m, d, s);
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&m, &b));
	ASSERT_OK(gossip_msg_decode(b.p, b.len, &o));
	ASSERT_EQ(o.type, GOSSIP_MSG_ACK);
	ASSERT_EQ(o.flags, GOSSIP_F_RING);
	ASSERT(q_slice_eq(o.cluster, S("prod")));
	ASSERT(q_slice_eq(o.from_id, S("n2")));
	ASSERT(q_slice_eq(o.from_addr, S("127.0.0.1:7002")));
	ASSERT_U64_EQ(o.ring_version, 7);
	ASSERT(q_slice_eq(o.ring, S("ring-bytes-v7")));
	ASSERT_EQ(o.ndigests, 2);
	ASSERT(q_slice_eq(o.digests[0].id, S("n1")));
	ASSERT_U64_EQ(o.digests[0].heartbeat, 99);
	ASSERT_U64_EQ(o.digests[0].incarnation, 3);
	ASSERT_EQ(o.nstates, 3);
	ASSERT(q_slice_eq(o.states[1].addr, S("[::1]:7003")));
	ASSERT_EQ(o.states[1].zone.n, 0);
	ASSERT_U64_EQ(o.states[1].incarnation, 1ull << 40);
	ASSERT_EQ(o.states[1].status, GOSSIP_DOWN);
	ASSERT_U64_EQ(o.states[0].heartbeat, 12345678901ull);
	ASSERT(q_slice_eq(o.states[0].zone, S("rack-a")));
	ASSERT_EQ(o.states[2].status, GOSSIP_LEFT);
	/* re-encoding gives the same bytes */
	q_buf b2 = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&o, &b2));
	ASSERT_EQ(b2.len, b.len);
	ASSERT_MEMEQ(b2.p, b.p, b.len);
	gossip_msg_clear(&o);
	q_buf_free(&b);
	q_buf_free(&b2);
}

QTEST(every_truncation_fails)
{
	gossip_msg m, o;
	gossip_digest d[2];
	gossip_state s[3];
	sample_ack(&m, d, s);
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&m, &b));
	for (size_t n = 0; n < b.len; n++) {
		int rc = gossip_msg_decode(b.p, n, &o);
		ASSERT(rc < 0);
		ASSERT(o.digests == NULL && o.states == NULL);
	}
	/* one extra byte: trailing garbage */
	ASSERT_OK(q_buf_append_byte(&b, 0));
	ASSERT_EQ(gossip_msg_decode(b.p, b.len, &o), Q_EPROTO);
	q_buf_free(&b);
}

QTEST(every_byte_flip_is_safe)
{
	/* Under ASan: no flip may crash, and whatever decodes must be valid
	 * enough to re-encode. */
	gossip_msg m, o;
	gossip_digest d[2];
	gossip_state s[3];
	sample_ack(&m, d, s);
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(gossip_msg_encode(&m, &b));
	size_t accepted = 0;
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b.p[i] ^= (uint8_t)(1u << bit);
			if (gossip_msg_decode(b.p, b.len, &o) == 0) {
				q_buf e = Q_BUF_INIT;
				ASSERT_OK(gossip_msg_encode(&o, &e));
				q_buf_free(&e);
				gossip_msg_clear(&o);
				accepted++;
			}
			b.p[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Most flips must be caught (ring hash, order, text checks...). */
	ASSERT(accepted < b.len * 8 / 2);
	q_buf_free(&b);
}

/* Hand-built header for invalid messages the encoder refuses to make. */
static void put_header(q_buf *b, uint8_t version, uint8_t type, uint8_t flags)
{
	ASSERT_OK(q_buf_append_byte(b, version));
	ASSERT_OK(q_buf_append_byte(b, type));
	ASSERT_OK(q_buf_append_byte(b, flags));
	ASSERT_OK(q_put_lenbytes(b, "c", 1));
	ASSERT_OK(q_put_lenbytes(b, "n1", 2));
	ASSERT_OK(q_put_lenbytes(b, "h:1", 3));
	ASSERT_OK(q_put_varint(b, 0));
	ASSERT_OK(q_put_fixed64(b, 0));
}

static void put_digest(q_buf *b, const char *id, uint8_t status)
{
	ASSERT_OK(q_put_lenbytes(b, id, strlen(id)));
	ASSERT_OK(q_put_varint(b, 1));
	ASSERT_OK(q_put_varint(b, 1));
	ASSERT_OK(q_buf_append_byte(b, status));
}

static int decode_buf(const q_buf *b)
{
	gossip_msg o;
	int rc = gossip_msg_decode(b->p, b->len, &o);
	if (rc == 0)
		gossip_msg_clear(&o);
	return rc;
}

QTEST(rejects_malformed)
{
	q_buf b = Q_BUF_INIT;

	/* a valid minimal SYN first, so the cases below fail for their reason */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 2));
	put_digest(&b, "a", 0);
	put_digest(&b, "b", 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(decode_buf(&b));

	q_buf_reset(&b); /* unknown version */
	put_header(&b, 9, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EVERSION);

	q_buf_reset(&b); /* unknown type */
	put_header(&b, GOSSIP_PROTO_V1, 7, 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* unknown flag bit */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_ACK, 0x80);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* digests out of order */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 2));
	put_digest(&b, "b", 0);
	put_digest(&b, "a", 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* duplicate ids */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 2));
	put_digest(&b, "a", 0);
	put_digest(&b, "a", 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* unknown status */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 1));
	put_digest(&b, "a", 4);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* id with a space */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 1));
	put_digest(&b, "a b", 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* empty id */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 1));
	put_digest(&b, "", 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT(decode_buf(&b) < 0);

	q_buf_reset(&b); /* a count the input cannot hold */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 1000));
	put_digest(&b, "a", 0);
	ASSERT_EQ(decode_buf(&b), Q_ETRUNC);

	q_buf_reset(&b); /* a count over the limit */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, GOSSIP_MEMBERS_MAX + 1));
	ASSERT_EQ(decode_buf(&b), Q_ETOOBIG);

	q_buf_reset(&b); /* SYN carrying states */
	put_header(&b, GOSSIP_PROTO_V1, GOSSIP_MSG_SYN, 0);
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 1));
	ASSERT_OK(q_put_lenbytes(&b, "a", 1));
	ASSERT_OK(q_put_lenbytes(&b, "h:2", 3));
	ASSERT_OK(q_put_lenbytes(&b, "", 0));
	ASSERT_OK(q_put_varint(&b, 1));
	ASSERT_OK(q_put_varint(&b, 1));
	ASSERT_OK(q_buf_append_byte(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* ring hash does not match the bytes */
	ASSERT_OK(q_buf_append_byte(&b, GOSSIP_PROTO_V1));
	ASSERT_OK(q_buf_append_byte(&b, GOSSIP_MSG_ACK));
	ASSERT_OK(q_buf_append_byte(&b, GOSSIP_F_RING));
	ASSERT_OK(q_put_lenbytes(&b, "c", 1));
	ASSERT_OK(q_put_lenbytes(&b, "n1", 2));
	ASSERT_OK(q_put_lenbytes(&b, "h:1", 3));
	ASSERT_OK(q_put_varint(&b, 3));
	ASSERT_OK(q_put_fixed64(&b, gossip_ring_hash("xyz", 3) ^ 1));
	ASSERT_OK(q_put_lenbytes(&b, "xyz", 3));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	q_buf_reset(&b); /* ring version 0 with a hash */
	ASSERT_OK(q_buf_append_byte(&b, GOSSIP_PROTO_V1));
	ASSERT_OK(q_buf_append_byte(&b, GOSSIP_MSG_ACK));
	ASSERT_OK(q_buf_append_byte(&b, 0));
	ASSERT_OK(q_put_lenbytes(&b, "c", 1));
	ASSERT_OK(q_put_lenbytes(&b, "n1", 2));
	ASSERT_OK(q_put_lenbytes(&b, "h:1", 3));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_fixed64(&b, 42));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_OK(q_put_varint(&b, 0));
	ASSERT_EQ(decode_buf(&b), Q_EPROTO);

	ASSERT(gossip_msg_decode(NULL, 0, &(gossip_msg){0}) < 0);
	q_buf_free(&b);
}

QTEST(encoder_refuses_invalid)
{
	gossip_msg m;
	gossip_digest d[2];
	gossip_state s[3];
	q_buf b = Q_BUF_INIT;

	sample_ack(&m, d, s);
	d[0].id = S("zz"); /* out of order */
	ASSERT_EQ(gossip_msg_encode(&m, &b), -EINVAL);
	ASSERT_EQ(b.len, 0);

	sample_ack(&m, d, s);
	m.ring_hash ^= 1;
	ASSERT_EQ(gossip_msg_encode(&m, &b), -EINVAL);

	sample_ack(&m, d, s);
	m.type = GOSSIP_MSG_ACK2; /* ACK2 may not carry digests */
	ASSERT_EQ(gossip_msg_encode(&m, &b), -EINVAL);

	sample_ack(&m, d, s);
	s[1].status = 9;
	ASSERT_EQ(gossip_msg_encode(&m, &b), -EINVAL);
	ASSERT_EQ(b.len, 0);
	q_buf_free(&b);
}

QTEST(names)
{
	ASSERT_STREQ(gossip_status_name(GOSSIP_SUSPECT), "suspect");
	ASSERT_STREQ(gossip_status_name(77), "unknown");
	ASSERT_STREQ(gossip_msg_type_name(GOSSIP_MSG_ACK2), "ACK2");
}

QTEST_MAIN(QT(roundtrip_all_fields), QT(every_truncation_fails), QT(every_byte_flip_is_safe),
	   QT(rejects_malformed), QT(encoder_refuses_invalid), QT(names))
