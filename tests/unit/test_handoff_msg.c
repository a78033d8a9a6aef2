/* Unit tests for src/handoff/handoff_msg.c: the HANDOFF_BATCH and LEAVE
 * payload codecs (round trips, limits, malformed input refused). */
#include "qtest.h"
#include "handoff/handoff_msg.h"
#include "net/net_proto.h"
#include "util/qerr.h"

QTEST(batch_roundtrip)
{
	handoff_entry e[3] = {
		{q_slice_str("alpha"), q_slice_str("obj-1")},
		{q_slice_str("b"), q_slice_str("x")},
		{q_slice_str("gamma-key"), q_slice_str("a longer object body")},
	};
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(handoff_batch_encode(q_slice_str("n1"), e, 3, &b));
	handoff_batch d;
	ASSERT_OK(handoff_batch_decode(b.p, b.len, &d));
	ASSERT_EQ(d.n, 3u);
	ASSERT_EQ(d.sender.n, 2u);
	ASSERT_MEMEQ(d.sender.p, "n1", 2);
	for (size_t i = 0; i < 3; i++) {
		ASSERT_EQ(d.v[i].key.n, e[i].key.n);
		ASSERT_MEMEQ(d.v[i].key.p, e[i].key.p, e[i].key.n);
		ASSERT_EQ(d.v[i].object.n, e[i].object.n);
		ASSERT_MEMEQ(d.v[i].object.p, e[i].object.p, e[i].object.n);
	}
	handoff_batch_clear(&d);
	q_buf_free(&b);
}

QTEST(batch_refuses_bad_input)
{
	handoff_entry e = {q_slice_str("k"), q_slice_str("v")};
	handoff_entry empty = {q_slice_str(""), q_slice_str("v")};
	q_buf b = Q_BUF_INIT;
	ASSERT_EQ(handoff_batch_encode(q_slice_str(""), &e, 1, &b), Q_EPROTO);
	ASSERT_EQ(handoff_batch_encode(q_slice_str("n"), &e, 0, &b), Q_EPROTO);
	ASSERT_EQ(handoff_batch_encode(q_slice_str("n"), &empty, 1, &b), Q_EPROTO);
	ASSERT_EQ(b.len, 0u);
	ASSERT_OK(handoff_batch_encode(q_slice_str("n"), &e, 1, &b));
	handoff_batch d;
	/* every truncation fails cleanly */
	for (size_t i = 0; i < b.len; i++)
		ASSERT(handoff_batch_decode(b.p, i, &d) < 0);
	/* trailing byte, bad version */
	uint8_t buf[64];
	memcpy(buf, b.p, b.len);
	buf[b.len] = 0;
	ASSERT_EQ(handoff_batch_decode(buf, b.len + 1, &d), Q_EPROTO);
	buf[0] = 9;
	ASSERT_EQ(handoff_batch_decode(buf, b.len, &d), Q_EVERSION);
	/* a count the bytes cannot hold is refused before allocating */
	const uint8_t huge[] = {1, 1, 'n', 0xff, 0x1f};
	ASSERT(handoff_batch_decode(huge, sizeof(huge), &d) < 0);
	const uint8_t zero[] = {1, 1, 'n', 0};
	ASSERT_EQ(handoff_batch_decode(zero, sizeof(zero), &d), Q_EPROTO);
	q_buf_free(&b);
}

QTEST(resp_and_leave_roundtrip)
{
	q_buf b = Q_BUF_INIT;
	uint64_t m = 0, r = 0;
	ASSERT_OK(handoff_batch_resp_encode(1234567, 3, &b));
	ASSERT_OK(handoff_batch_resp_decode(b.p, b.len, &m, &r));
	ASSERT_U64_EQ(m, 1234567u);
	ASSERT_U64_EQ(r, 3u);
	ASSERT(handoff_batch_resp_decode(b.p, b.len - 1, &m, &r) < 0);

	q_buf_reset(&b);
	q_slice id;
	ASSERT_OK(handoff_leave_encode(q_slice_str(""), &b));
	ASSERT_OK(handoff_leave_decode(b.p, b.len, &id));
	ASSERT_EQ(id.n, 0u);
	q_buf_reset(&b);
	ASSERT_OK(handoff_leave_encode(q_slice_str("g4"), &b));
	ASSERT_OK(handoff_leave_decode(b.p, b.len, &id));
	ASSERT_EQ(id.n, 2u);
	ASSERT_MEMEQ(id.p, "g4", 2);
	char longid[HANDOFF_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	ASSERT_EQ(handoff_leave_encode(q_slice_str(longid), &b), Q_ETOOBIG);

	q_buf_reset(&b);
	q_slice t;
	ASSERT_OK(handoff_leave_resp_encode(q_slice_str("leaving"), &b));
	ASSERT_OK(handoff_leave_resp_decode(b.p, b.len, &t));
	ASSERT_EQ(t.n, 7u);
	ASSERT_MEMEQ(t.p, "leaving", 7);
	q_buf_free(&b);
}

QTEST_MAIN(QT(batch_roundtrip), QT(batch_refuses_bad_input), QT(resp_and_leave_roundtrip))
