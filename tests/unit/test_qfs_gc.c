/* Unit tests for fuse/qfs_gc.c: move records, the chunk id set, chunk key
 * parsing, and the node message codec the collector uses
 * (src/node/node_fs_msg.c). */
#include <string.h>

#include "fuse/qfs_gc.h"
#include "fuse/qfs_obj.h"
#include "node/node_fs_msg.h"
#include "qtest.h"
#include "util/qerr.h"

static void id_of(unsigned i, uint8_t id[QFS_CHUNK_ID_LEN])
{
	char b[32];
	snprintf(b, sizeof(b), "chunk %u", i);
	qfs_chunk_id(b, strlen(b), id);
}

QTEST(move_record_round_trip_and_damage)
{
	uint8_t ids[5 * QFS_CHUNK_ID_LEN];
	for (unsigned i = 0; i < 5; i++)
		id_of(i, ids + i * QFS_CHUNK_ID_LEN);
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(qfs_move_encode(123456789, ids, 5, &b));
	int64_t w;
	const uint8_t *got;
	size_t n;
	ASSERT_OK(qfs_move_decode(b.p, b.len, &w, &got, &n));
	ASSERT_EQ(w, 123456789);
	ASSERT_EQ(n, 5);
	ASSERT_MEMEQ(got, ids, sizeof(ids));
	/* every flipped byte and every cut is refused */
	for (size_t i = 0; i < b.len; i++) {
		b.p[i] ^= 0x20;
		ASSERT(qfs_move_decode(b.p, b.len, &w, &got, &n) < 0);
		b.p[i] ^= 0x20;
		ASSERT(qfs_move_decode(b.p, i, &w, &got, &n) < 0);
	}
	/* an empty record is valid */
	q_buf_reset(&b);
	ASSERT_OK(qfs_move_encode(0, NULL, 0, &b));
	ASSERT_OK(qfs_move_decode(b.p, b.len, &w, &got, &n));
	ASSERT_EQ(n, 0);
	q_buf_free(&b);
	char key[QFS_MOVE_KEY_LEN + 1];
	qfs_move_key(0x1234, 0xabcdef, key);
	ASSERT_STREQ(key, "g:00000000000012340000000000abcdef");
	ASSERT_EQ(strlen(key), QFS_MOVE_KEY_LEN);
}

QTEST(chunk_keys_and_id_set)
{
	uint8_t id[QFS_CHUNK_ID_LEN], back[QFS_CHUNK_ID_LEN];
	char key[QFS_CHUNK_KEY_LEN + 1];
	id_of(7, id);
	qfs_chunk_key(id, key);
	ASSERT_OK(qfs_chunk_key_parse(q_slice_str(key), back));
	ASSERT_MEMEQ(back, id, QFS_CHUNK_ID_LEN);
	ASSERT_EQ(qfs_chunk_key_parse(q_slice_str("c:00"), back), -EINVAL);
	ASSERT_EQ(qfs_chunk_key_parse(q_slice_str("f:/0123456789abcdef0123456789abcde"), back),
		  -EINVAL);
	key[5] = 'G';
	ASSERT_EQ(qfs_chunk_key_parse(q_slice_str(key), back), -EINVAL);

	qfs_idset s;
	qfs_idset_init(&s);
	ASSERT_EQ(qfs_idset_has(&s, id), 0);
	for (unsigned i = 0; i < 5000; i++) {
		id_of(i * 2, id);
		ASSERT_EQ(qfs_idset_add(&s, id), 1);
	}
	id_of(0, id);
	ASSERT_EQ(qfs_idset_add(&s, id), 0);
	ASSERT_EQ(s.n, 5000);
	for (unsigned i = 0; i < 10000; i++) {
		id_of(i, id);
		ASSERT_EQ(qfs_idset_has(&s, id), i % 2 == 0);
	}
	qfs_idset_free(&s);
}

QTEST(node_messages)
{
	node_fs_member ms[2] = {{"na", "127.0.0.2:7070", 1, 1}, {"nb", "127.0.0.3:7070", 2, 0}};
	node_fs_info in = {100, 50, 40, 10, 5, 3, 2, 2, ms}, out;
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(node_fs_info_encode(&in, &b));
	ASSERT_OK(node_fs_info_decode(q_buf_slice(&b), &out));
	ASSERT_EQ(out.total, 100);
	ASSERT_EQ(out.hints, 3);
	ASSERT_EQ(out.nmembers, 2);
	ASSERT_STREQ(out.members[1].addr, "127.0.0.3:7070");
	ASSERT_EQ(out.members[0].self, 1);
	node_fs_info_free(&out);
	for (size_t i = 0; i < b.len; i++)
		if (node_fs_info_decode(q_slice_make(b.p, i), &out) == 0)
			QTEST_FAIL_("a cut at %zu decodes", i);

	node_fs_scan_build sb;
	node_fs_scan_build_init(&sb);
	q_slice vals[2] = {q_slice_str("one"), q_slice_str("two")};
	node_fs_scan_ent e = {.key = q_slice_str("f:/a"), .nlive = 2, .ntomb = 1, .newest_ns = 77,
			      .live_bytes = 6, .ctx = q_slice_str("ctx-bytes"), .has_values = 1};
	ASSERT_OK(node_fs_scan_build_add(&sb, &e, vals));
	node_fs_scan_ent e2 = {.key = q_slice_str("f:/b"), .nlive = 1, .newest_ns = 78,
			       .live_bytes = 1000};
	ASSERT_OK(node_fs_scan_build_add(&sb, &e2, NULL));
	q_buf_reset(&b);
	ASSERT_OK(node_fs_scan_build_finish(&sb, 1, &b));
	node_fs_scan_resp r;
	ASSERT_OK(node_fs_scan_resp_decode(q_buf_slice(&b), &r));
	ASSERT_EQ(r.more, 1);
	ASSERT_EQ(r.nkeys, 2);
	ASSERT_EQ(r.ents[0].nlive, 2);
	ASSERT(q_slice_eq(r.ents[0].values[1], vals[1]));
	ASSERT(q_slice_eq(r.ents[0].ctx, q_slice_str("ctx-bytes")));
	ASSERT_EQ(r.ents[1].ctx.n, 0);
	ASSERT_EQ(r.ents[1].has_values, 0);
	ASSERT_EQ(r.ents[1].live_bytes, 1000);
	node_fs_scan_resp_free(&r);
	/* every cut is refused, and trailing bytes too */
	for (size_t i = 0; i < b.len; i++)
		ASSERT(node_fs_scan_resp_decode(q_slice_make(b.p, i), &r) < 0);
	ASSERT_OK(q_buf_append_byte(&b, 0));
	ASSERT_EQ(node_fs_scan_resp_decode(q_buf_slice(&b), &r), Q_EPROTO);
	b.p[0] = 9;
	ASSERT_EQ(node_fs_scan_resp_decode(q_slice_make(b.p, b.len), &r), Q_EVERSION);
	q_buf_free(&b);

	node_fs_scan_req q = {q_slice_str("c:"), q_slice_str("c:12"), 10, 1000, 0}, q2;
	q_buf qb = Q_BUF_INIT;
	ASSERT_OK(node_fs_scan_req_encode(&q, &qb));
	ASSERT_OK(node_fs_scan_req_decode(q_buf_slice(&qb), &q2));
	ASSERT(q_slice_eq(q2.after, q.after));
	ASSERT_EQ(q2.max_keys, 10);
	q.max_keys = 0;
	q_buf_reset(&qb);
	ASSERT_EQ(node_fs_scan_req_encode(&q, &qb), Q_EPROTO);
	q_buf_free(&qb);
}

QTEST_MAIN(QT(move_record_round_trip_and_damage), QT(chunk_keys_and_id_set), QT(node_messages))
