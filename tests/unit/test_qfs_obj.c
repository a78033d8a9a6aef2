/* Unit tests for fuse/qfs_obj.c: object codec, xattrs, chunk lists and the
 * add-wins directory set. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "fuse/qfs_obj.h"
#include "qtest.h"
#include "util/qerr.h"

static void mk_file(qfs_obj *o, const char *data)
{
	qfs_obj_init(o);
	o->type = QFS_T_REG;
	o->mode = S_IFREG | 0644;
	o->uid = 1000;
	o->gid = 100;
	o->atime_ns = 1700000000123456789LL;
	o->mtime_ns = -5; /* before the epoch must survive */
	o->ctime_ns = 1700000000999999999LL;
	o->layout = QFS_LAYOUT_INLINE;
	o->size = strlen(data);
	o->inline_data = (uint8_t *)strdup(data);
	strcpy(o->origin, "n2");
}

static void roundtrip(const qfs_obj *o, qfs_obj *back)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(qfs_obj_encode(o, &b));
	ASSERT_OK(qfs_obj_decode(b.p, b.len, back));
	q_buf c = Q_BUF_INIT;
	ASSERT_OK(qfs_obj_encode(back, &c)); /* canonical: same bytes again */
	ASSERT_EQ(b.len, c.len);
	ASSERT_MEMEQ(b.p, c.p, b.len);
	q_buf_free(&b);
	q_buf_free(&c);
}

QTEST(inline_file_roundtrip)
{
	qfs_obj o, back;
	mk_file(&o, "hello world");
	ASSERT_OK(qfs_xattr_set(&o, "user.b", "2", 1, 0));
	ASSERT_OK(qfs_xattr_set(&o, "user.a", "one", 3, 0));
	roundtrip(&o, &back);
	ASSERT_EQ(back.type, QFS_T_REG);
	ASSERT_EQ(back.mode, S_IFREG | 0644);
	ASSERT_EQ(back.uid, 1000);
	ASSERT_EQ(back.gid, 100);
	ASSERT_EQ(back.atime_ns, 1700000000123456789LL);
	ASSERT_EQ(back.mtime_ns, -5);
	ASSERT_EQ(back.ctime_ns, 1700000000999999999LL);
	ASSERT_EQ(back.size, 11);
	ASSERT_MEMEQ(back.inline_data, "hello world", 11);
	ASSERT_STREQ(back.origin, "n2");
	ASSERT_EQ(back.nxattr, 2);
	ASSERT_STREQ(back.xattr[0].name, "user.a"); /* kept sorted */
	ASSERT_EQ(qfs_xattr_get(&back, "user.b")->len, 1);
	qfs_obj_free(&o);
	qfs_obj_free(&back);
}

QTEST(chunked_symlink_dir_roundtrip)
{
	qfs_obj o, back;
	qfs_obj_init(&o);
	o.type = QFS_T_REG;
	o.mode = S_IFREG | 0600;
	o.layout = QFS_LAYOUT_CHUNKED;
	o.chunk_size = 65536;
	ASSERT_OK(qfs_obj_set_chunked_size(&o, 3 * 65536 + 1));
	ASSERT_EQ(o.nchunks, 4);
	qfs_chunk_id("abc", 3, o.chunks[1].id);
	o.chunks[1].kind = QFS_CHUNK_DATA;
	roundtrip(&o, &back);
	ASSERT_EQ(back.nchunks, 4);
	ASSERT_EQ(back.chunks[0].kind, QFS_CHUNK_HOLE);
	ASSERT_EQ(back.chunks[1].kind, QFS_CHUNK_DATA);
	ASSERT_MEMEQ(back.chunks[1].id, o.chunks[1].id, QFS_CHUNK_ID_LEN);
	/* shrinking drops references */
	ASSERT_OK(qfs_obj_set_chunked_size(&back, 10));
	ASSERT_EQ(back.nchunks, 1);
	qfs_obj_free(&o);
	qfs_obj_free(&back);

	qfs_obj_init(&o);
	o.type = QFS_T_LNK;
	o.mode = S_IFLNK | 0777;
	o.target = strdup("../x/y");
	o.size = 6;
	roundtrip(&o, &back);
	ASSERT_STREQ(back.target, "../x/y");
	qfs_obj_free(&o);
	qfs_obj_free(&back);

	qfs_obj_init(&o);
	o.type = QFS_T_DIR;
	o.mode = S_IFDIR | 0755;
	ASSERT_OK(qfs_dir_add(&o, "b", QFS_T_REG, 7, 0, NULL));
	ASSERT_OK(qfs_dir_add(&o, "a", QFS_T_DIR, 7, 0, NULL));
	ASSERT_OK(qfs_dir_add(&o, "c", QFS_T_LNK, 9, 100, NULL));
	roundtrip(&o, &back);
	ASSERT_EQ(back.nent, 3);
	ASSERT_STREQ(back.ent[0].name, "a");
	ASSERT_EQ(back.ent[0].type, QFS_T_DIR);
	ASSERT_EQ(qfs_dir_clock(&back, 7), 2);
	ASSERT_EQ(qfs_dir_clock(&back, 9), 101);
	ASSERT_EQ(qfs_dir_find(&back, "c"), 2);
	ASSERT_EQ(qfs_dir_find(&back, "zz"), -1);
	qfs_obj_free(&o);
	qfs_obj_free(&back);
}

QTEST(decoder_rejects_garbage)
{
	qfs_obj o, back;
	q_buf b = Q_BUF_INIT;
	mk_file(&o, "data");
	ASSERT_OK(qfs_obj_encode(&o, &b));
	/* every truncation fails cleanly */
	for (size_t n = 0; n < b.len; n++)
		ASSERT(qfs_obj_decode(b.p, n, &back) < 0);
	/* every single-bit flip is caught (checksum or structure) */
	for (size_t i = 0; i < b.len; i++) {
		b.p[i] ^= 0x10;
		ASSERT(qfs_obj_decode(b.p, b.len, &back) < 0);
		b.p[i] ^= 0x10;
	}
	ASSERT_OK(qfs_obj_decode(b.p, b.len, &back));
	qfs_obj_free(&back);
	qfs_obj_free(&o);
	q_buf_free(&b);

	/* structurally wrong but correctly checksummed: mode/type disagreement */
	mk_file(&o, "x");
	o.mode = S_IFDIR | 0755;
	ASSERT_OK(qfs_obj_encode(&o, &b));
	ASSERT_EQ(qfs_obj_decode(b.p, b.len, &back), Q_ECORRUPT);
	q_buf_free(&b);
	/* inline length disagreeing with size */
	o.mode = S_IFREG | 0644;
	o.size = 5; /* encode writes 5 bytes of a 2-byte buffer otherwise: use copy */
	free(o.inline_data);
	o.inline_data = (uint8_t *)strdup("abcde");
	ASSERT_OK(qfs_obj_encode(&o, &b));
	ASSERT_OK(qfs_obj_decode(b.p, b.len, &back));
	qfs_obj_free(&back);
	/* unknown version */
	b.p[2] = 99;
	ASSERT(qfs_obj_decode(b.p, b.len, &back) < 0);
	q_buf_free(&b);
	qfs_obj_free(&o);
}

QTEST(xattr_flags)
{
	qfs_obj o;
	mk_file(&o, "");
	ASSERT_EQ(qfs_xattr_set(&o, "user.x", "1", 1, XATTR_REPLACE), -ENODATA);
	ASSERT_OK(qfs_xattr_set(&o, "user.x", "1", 1, XATTR_CREATE));
	ASSERT_EQ(qfs_xattr_set(&o, "user.x", "2", 1, XATTR_CREATE), -EEXIST);
	ASSERT_OK(qfs_xattr_set(&o, "user.x", "22", 2, XATTR_REPLACE));
	ASSERT_EQ(qfs_xattr_get(&o, "user.x")->len, 2);
	ASSERT_OK(qfs_xattr_set(&o, "user.empty", NULL, 0, 0));
	ASSERT_OK(qfs_xattr_remove(&o, "user.x"));
	ASSERT_EQ(qfs_xattr_remove(&o, "user.x"), -ENODATA);
	ASSERT(qfs_xattr_get(&o, "user.empty") != NULL);
	qfs_obj_free(&o);
}

QTEST(chunk_ids)
{
	uint8_t a[QFS_CHUNK_ID_LEN], b[QFS_CHUNK_ID_LEN];
	char key[QFS_CHUNK_KEY_LEN + 1];
	qfs_chunk_id("abc", 3, a);
	qfs_chunk_id("abc", 3, b);
	ASSERT_MEMEQ(a, b, sizeof(a));
	qfs_chunk_id("abd", 3, b);
	ASSERT(memcmp(a, b, sizeof(a)) != 0);
	qfs_chunk_key(a, key);
	ASSERT_EQ(strlen(key), QFS_CHUNK_KEY_LEN);
	ASSERT(strncmp(key, "c:", 2) == 0);
	ASSERT_U64_EQ(qfs_chunks_for(0, 4096), 0);
	ASSERT_U64_EQ(qfs_chunks_for(4096, 4096), 1);
	ASSERT_U64_EQ(qfs_chunks_for(4097, 4096), 2);
}

static void mk_dir(qfs_obj *o)
{
	qfs_obj_init(o);
	o->type = QFS_T_DIR;
	o->mode = S_IFDIR | 0755;
}

/* Two replicas of one directory created concurrently: both survive. */
QTEST(dir_concurrent_adds_both_survive)
{
	qfs_obj base, a, b;
	mk_dir(&base);
	ASSERT_OK(qfs_dir_add(&base, "common", QFS_T_REG, 1, 0, NULL));
	ASSERT_OK(qfs_obj_copy(&a, &base));
	ASSERT_OK(qfs_obj_copy(&b, &base));
	ASSERT_OK(qfs_dir_add(&a, "from_a", QFS_T_REG, 1, 0, NULL));
	ASSERT_OK(qfs_dir_add(&b, "from_b", QFS_T_REG, 2, 0, NULL));
	qfs_obj m1, m2;
	ASSERT_OK(qfs_obj_copy(&m1, &a));
	ASSERT_OK(qfs_dir_merge(&m1, &b));
	ASSERT_OK(qfs_obj_copy(&m2, &b));
	ASSERT_OK(qfs_dir_merge(&m2, &a));
	ASSERT_EQ(m1.nent, 3);
	ASSERT_EQ(m2.nent, 3);
	/* commutative: same encoding either way */
	q_buf e1 = Q_BUF_INIT, e2 = Q_BUF_INIT;
	ASSERT_OK(qfs_obj_encode(&m1, &e1));
	ASSERT_OK(qfs_obj_encode(&m2, &e2));
	ASSERT_EQ(e1.len, e2.len);
	ASSERT_MEMEQ(e1.p, e2.p, e1.len);
	/* idempotent */
	ASSERT_OK(qfs_dir_merge(&m1, &m1));
	ASSERT_EQ(m1.nent, 3);
	q_buf_free(&e1);
	q_buf_free(&e2);
	qfs_obj_free(&base);
	qfs_obj_free(&a);
	qfs_obj_free(&b);
	qfs_obj_free(&m1);
	qfs_obj_free(&m2);
}

/* A remove that saw the add wins; an add concurrent with a remove wins. */
QTEST(dir_remove_semantics)
{
	qfs_obj base, a, b;
	mk_dir(&base);
	ASSERT_OK(qfs_dir_add(&base, "x", QFS_T_REG, 1, 0, NULL));
	ASSERT_OK(qfs_obj_copy(&a, &base));
	ASSERT_OK(qfs_obj_copy(&b, &base));
	ASSERT_OK(qfs_dir_remove(&a, "x"));
	ASSERT_EQ(qfs_dir_remove(&a, "x"), Q_ENOTFOUND);
	/* b did nothing: the remove wins */
	qfs_obj m;
	ASSERT_OK(qfs_obj_copy(&m, &b));
	ASSERT_OK(qfs_dir_merge(&m, &a));
	ASSERT_EQ(qfs_dir_find(&m, "x"), -1);
	qfs_obj_free(&m);
	/* b re-adds x concurrently: add wins */
	ASSERT_OK(qfs_dir_add(&b, "x", QFS_T_REG, 2, 0, NULL));
	ASSERT_OK(qfs_obj_copy(&m, &a));
	ASSERT_OK(qfs_dir_merge(&m, &b));
	ASSERT(qfs_dir_find(&m, "x") >= 0);
	qfs_obj_free(&m);
	qfs_obj_free(&base);
	qfs_obj_free(&a);
	qfs_obj_free(&b);
}

/* A stale read by the same actor must not reuse a dot (the floor). */
QTEST(dir_floor_keeps_dots_unique)
{
	qfs_obj a, stale;
	uint64_t c1, c2;
	mk_dir(&a);
	ASSERT_OK(qfs_obj_copy(&stale, &a));
	ASSERT_OK(qfs_dir_add(&a, "one", QFS_T_REG, 5, 0, &c1));
	ASSERT_OK(qfs_dir_add(&stale, "two", QFS_T_REG, 5, c1, &c2));
	ASSERT(c2 > c1);
	/* the stale copy holds dot 2 in its cloud: it has not seen dot 1 */
	ASSERT_EQ(stale.ncloud, 1);
	qfs_obj back;
	roundtrip(&stale, &back);
	ASSERT_EQ(back.ncloud, 1);
	qfs_obj_free(&back);
	qfs_obj m;
	ASSERT_OK(qfs_obj_copy(&m, &stale));
	ASSERT_OK(qfs_dir_merge(&m, &a));
	ASSERT_OK(qfs_dir_merge(&a, &stale));
	ASSERT(qfs_dir_find(&a, "one") >= 0);
	ASSERT(qfs_dir_find(&a, "two") >= 0);
	ASSERT(qfs_dir_find(&m, "one") >= 0);
	ASSERT(qfs_dir_find(&m, "two") >= 0);
	/* merged: the gap is filled, the cloud compacts into the clock */
	ASSERT_EQ(a.ncloud, 0);
	ASSERT_EQ(qfs_dir_clock(&a, 5), 2);
	/* removing "one" after the merge is seen as such by the stale side */
	ASSERT_OK(qfs_dir_remove(&a, "one"));
	ASSERT_OK(qfs_dir_merge(&stale, &a));
	ASSERT_EQ(qfs_dir_find(&stale, "one"), -1);
	ASSERT(qfs_dir_find(&stale, "two") >= 0);
	qfs_obj_free(&m);
	qfs_obj_free(&a);
	qfs_obj_free(&stale);
}

QTEST(name_check)
{
	ASSERT_OK(qfs_name_check("a", 1));
	ASSERT_EQ(qfs_name_check(".", 1), -EINVAL);
	ASSERT_EQ(qfs_name_check("..", 2), -EINVAL);
	ASSERT_EQ(qfs_name_check("a/b", 3), -EINVAL);
	char big[300];
	memset(big, 'x', sizeof(big));
	ASSERT_EQ(qfs_name_check(big, 256), -ENAMETOOLONG);
	ASSERT_OK(qfs_name_check(big, 255));
}

QTEST_MAIN(QT(inline_file_roundtrip), QT(chunked_symlink_dir_roundtrip), QT(decoder_rejects_garbage),
	   QT(xattr_flags), QT(chunk_ids), QT(dir_concurrent_adds_both_survive),
	   QT(dir_remove_semantics), QT(dir_floor_keeps_dots_unique), QT(name_check))
