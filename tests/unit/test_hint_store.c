/* Unit tests for src/handoff/hint.c: the durable hint store over a real LSM
 * store in the test's temporary directory. */
#include <pthread.h>

#include "qtest.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "object/obj.h"
#include "util/coding.h"
#include "util/env.h"
#include "util/qerr.h"

static q_slice S(const char *s)
{
	return q_slice_str(s);
}

static lsm_db *open_db(void)
{
	lsm_options o;
	lsm_db *db;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_ALWAYS;
	ASSERT_OK(lsm_open(qtest_tmpdir, &o, &db));
	return db;
}

/* A test merge: objects are sets of single characters; merge = sorted union.
 * Commutative, associative, idempotent, like obj_set_sync. */
static int union_merge(void *ud, q_slice a, q_slice b, q_buf *out)
{
	int seen[256] = {0};
	(void)ud;
	for (size_t i = 0; i < a.n; i++)
		seen[a.p[i]] = 1;
	for (size_t i = 0; i < b.n; i++)
		seen[b.p[i]] = 1;
	for (int c = 0; c < 256; c++)
		if (seen[c])
			Q_RET(q_buf_append_byte(out, (uint8_t)c));
	return 0;
}

static void expect_obj(hint_store *s, const char *owner, const char *key, const char *want)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(hint_get(s, owner, S(key), &b, NULL));
	ASSERT(q_slice_eq(q_buf_slice(&b), S(want)));
	q_buf_free(&b);
}

QTEST(put_get_merge_delete)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	uint64_t seq1, seq2;
	ASSERT_OK(hint_put(s, "n2", S("k1"), S("ab"), 1000, &seq1));
	expect_obj(s, "n2", "k1", "ab");
	ASSERT_EQ(hint_get(s, "n3", S("k1"), NULL, NULL), Q_ENOTFOUND);
	/* a second hint for the same (owner, key) merges */
	ASSERT_OK(hint_put(s, "n2", S("k1"), S("cb"), 2000, &seq2));
	ASSERT(seq2 > seq1);
	expect_obj(s, "n2", "k1", "abc");
	hint_entry meta;
	ASSERT_OK(hint_get(s, "n2", S("k1"), NULL, &meta));
	ASSERT_U64_EQ(meta.created_ms, 1000); /* first hint's time kept */
	ASSERT_U64_EQ(meta.updated_ms, 2000);
	ASSERT_U64_EQ(meta.seq, seq2);
	hint_stats st;
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 1);
	ASSERT_U64_EQ(st.oldest_ms, 1000);

	/* delivery of the first version must not delete the merged one */
	ASSERT_EQ(hint_delete_if(s, "n2", S("k1"), seq1), -EAGAIN);
	expect_obj(s, "n2", "k1", "abc");
	ASSERT_OK(hint_delete_if(s, "n2", S("k1"), seq2));
	ASSERT_EQ(hint_get(s, "n2", S("k1"), NULL, NULL), Q_ENOTFOUND);
	ASSERT_EQ(hint_delete_if(s, "n2", S("k1"), seq2), Q_ENOTFOUND);
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 0);
	ASSERT_U64_EQ(st.bytes, 0);
	ASSERT_U64_EQ(st.oldest_ms, 0);

	/* bad arguments */
	char longid[300];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ASSERT_EQ(hint_put(s, "", S("k"), S("v"), 1, NULL), -EINVAL);
	ASSERT_EQ(hint_put(s, longid, S("k"), S("v"), 1, NULL), -EINVAL);
	ASSERT_EQ(hint_put(s, "n1", S(""), S("v"), 1, NULL), -EINVAL);
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 0);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

/*
 * hint_delete_if_many deletes, in one LSM write (one group commit under
 * sync = always), each listed hint whose seq is still the one given; a
 * hint merged into since, one absent, one with a bad owner and one listed
 * twice stay with their own rc. The statistics follow, as a scan gives
 * them, and the deletes survive a reopen.
 */
QTEST(delete_if_many_is_one_write)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	uint64_t sq[4], late;
	ASSERT_OK(hint_put(s, "n1", S("a"), S("x"), 1000, &sq[0]));
	ASSERT_OK(hint_put(s, "n1", S("b"), S("x"), 1001, &sq[1]));
	ASSERT_OK(hint_put(s, "n2", S("c"), S("x"), 1002, &sq[2]));
	ASSERT_OK(hint_put(s, "n2", S("d"), S("x"), 1003, &sq[3]));
	ASSERT_OK(hint_put(s, "n1", S("b"), S("y"), 1004, &late)); /* merged into */
	ASSERT_OK(hint_delete(s, "n2", S("c")));
	hint_del v[6] = {
		{"n1", S("a"), sq[0], 1}, {"n1", S("b"), sq[1], 1}, {"n2", S("c"), sq[2], 1},
		{"n2", S("d"), sq[3], 1}, {"", S("a"), sq[0], 1},   {"n1", S("a"), sq[0], 1},
	};
	lsm_stats before, after;
	lsm_get_stats(db, &before);
	ASSERT_OK(hint_delete_if_many(s, v, 6));
	lsm_get_stats(db, &after);
	ASSERT_U64_EQ(after.commit_groups, before.commit_groups + 1);
	ASSERT_OK(v[0].rc);
	ASSERT_EQ(v[1].rc, -EAGAIN);
	ASSERT_EQ(v[2].rc, Q_ENOTFOUND);
	ASSERT_OK(v[3].rc);
	ASSERT_EQ(v[4].rc, -EINVAL);
	ASSERT_EQ(v[5].rc, -EINVAL);
	ASSERT_EQ(hint_get(s, "n1", S("a"), NULL, NULL), Q_ENOTFOUND);
	ASSERT_EQ(hint_get(s, "n2", S("d"), NULL, NULL), Q_ENOTFOUND);
	expect_obj(s, "n1", "b", "xy");
	hint_stats st, scan;
	hint_get_stats(s, &st);
	ASSERT_OK(hint_owner_stats(s, "n1", &scan));
	ASSERT_U64_EQ(st.count, 1);
	ASSERT_U64_EQ(st.bytes, scan.bytes);
	ASSERT_U64_EQ(st.oldest_ms, 1001);
	/* nothing to delete: no write */
	ASSERT_OK(hint_delete_if_many(s, v, 0));
	v[0].rc = 1;
	ASSERT_OK(hint_delete_if_many(s, v, 1));
	ASSERT_EQ(v[0].rc, Q_ENOTFOUND);
	lsm_get_stats(db, &before);
	ASSERT_U64_EQ(before.commit_groups, after.commit_groups);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
	db = open_db();
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 1);
	expect_obj(s, "n1", "b", "xy");
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(stats_track_puts_and_deletes)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	ASSERT_OK(hint_put(s, "a", S("k1"), S("x"), 300, NULL));
	ASSERT_OK(hint_put(s, "b", S("k2"), S("yy"), 100, NULL));
	ASSERT_OK(hint_put(s, "c", S("k3"), S("zzz"), 200, NULL));
	hint_stats st, scan;
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 3);
	ASSERT_U64_EQ(st.oldest_ms, 100);
	/* bytes = what is stored: keys (prefix, len, owner, key) + values */
	uint64_t bytes = 0;
	const char *owners[] = {"a", "b", "c"}, *keys[] = {"k1", "k2", "k3"}, *vals[] = {"x", "yy", "zzz"};
	uint64_t created[] = {300, 100, 200};
	for (int i = 0; i < 3; i++) {
		q_buf k = Q_BUF_INIT, v = Q_BUF_INIT;
		ASSERT_OK(hint_key_encode(owners[i], S(keys[i]), &k));
		hint_entry e;
		ASSERT_OK(hint_get(s, owners[i], S(keys[i]), NULL, &e));
		ASSERT_OK(hint_value_encode(e.seq, created[i], created[i], S(vals[i]), &v));
		bytes += k.len + v.len;
		q_buf_free(&k);
		q_buf_free(&v);
	}
	ASSERT_U64_EQ(st.bytes, bytes);
	ASSERT_OK(hint_delete(s, "b", S("k2")));
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 2);
	ASSERT_U64_EQ(st.oldest_ms, 200);
	ASSERT_OK(hint_owner_stats(s, "c", &scan));
	ASSERT_U64_EQ(scan.count, 1);
	ASSERT_U64_EQ(scan.oldest_ms, 200);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(survives_restart)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	char key[32];
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "key-%03d", i);
		ASSERT_OK(hint_put(s, i % 2 ? "n1" : "n2", S(key), S("v"), 5000 + (uint64_t)i, NULL));
	}
	uint64_t last_seq;
	ASSERT_OK(hint_put(s, "n1", S("key-001"), S("w"), 9000, &last_seq));
	hint_stats before;
	hint_get_stats(s, &before);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));

	db = open_db();
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	hint_stats after;
	hint_get_stats(s, &after);
	ASSERT_U64_EQ(after.count, 200);
	ASSERT_U64_EQ(after.count, before.count);
	ASSERT_U64_EQ(after.bytes, before.bytes);
	ASSERT_U64_EQ(after.oldest_ms, 5000);
	expect_obj(s, "n1", "key-001", "vw");
	/* sequence numbers keep rising across the restart */
	uint64_t seq;
	ASSERT_OK(hint_put(s, "n2", S("new"), S("q"), 9999, &seq));
	ASSERT(seq > last_seq);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(survives_process_crash)
{
	/* A child writes hints and dies without closing anything; every hint
	 * it was told is stored (sync=always) must be there after reopening. */
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		lsm_db *db = open_db();
		hint_store *s;
		if (hint_store_open(db, union_merge, NULL, &s))
			_exit(2);
		char key[32];
		for (int i = 0; i < 50; i++) {
			snprintf(key, sizeof(key), "k%02d", i);
			if (hint_put(s, "owner", S(key), S("z"), 100 + (uint64_t)i, NULL))
				_exit(3);
		}
		if (hint_delete(s, "owner", S("k07")))
			_exit(4);
		_exit(0); /* no close, no flush */
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	hint_stats hs;
	hint_get_stats(s, &hs);
	ASSERT_U64_EQ(hs.count, 49);
	ASSERT_U64_EQ(hs.oldest_ms, 100);
	ASSERT_U64_EQ(hs.corrupt, 0);
	expect_obj(s, "owner", "k49", "z");
	ASSERT_EQ(hint_get(s, "owner", S("k07"), NULL, NULL), Q_ENOTFOUND);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

typedef struct seen_owner {
	char names[8][16];
	uint64_t counts[8];
	int n;
} seen_owner;

static int owner_cb(void *ud, const char *owner, const hint_stats *st)
{
	seen_owner *so = ud;
	snprintf(so->names[so->n], sizeof(so->names[0]), "%s", owner);
	so->counts[so->n++] = st->count;
	return 0;
}

QTEST(iterate_per_owner)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	/* "n1" is a prefix of "n10": the length prefix keeps them apart */
	ASSERT_OK(hint_put(s, "n1", S("b"), S("1"), 1, NULL));
	ASSERT_OK(hint_put(s, "n1", S("a"), S("2"), 1, NULL));
	ASSERT_OK(hint_put(s, "n10", S("a"), S("3"), 1, NULL));
	ASSERT_OK(hint_put(s, "n2", S("c"), S("4"), 1, NULL));
	/* user data around the hint keyspace must never show up */
	ASSERT_OK(lsm_put(db, S("\x01n1a"), S("data")));
	ASSERT_OK(lsm_put(db, S("\x03meta"), S("meta")));

	hint_iter *it;
	hint_entry e;
	ASSERT_OK(hint_iter_new(s, "n1", &it));
	const char *want[] = {"a", "b"};
	int k = 0;
	for (; hint_iter_valid(it); hint_iter_next(it), k++) {
		hint_iter_entry(it, &e);
		ASSERT(k < 2);
		ASSERT(q_slice_eq(e.owner, S("n1")));
		ASSERT(q_slice_eq(e.key, S(want[k])));
		ASSERT_EQ(e.status, 0);
	}
	ASSERT_EQ(k, 2);
	ASSERT_OK(hint_iter_status(it));
	hint_iter_free(it);

	ASSERT_OK(hint_iter_new(s, "n3", &it));
	ASSERT(!hint_iter_valid(it));
	hint_iter_free(it);

	ASSERT_OK(hint_iter_new(s, NULL, &it));
	for (k = 0; hint_iter_valid(it); hint_iter_next(it))
		k++;
	ASSERT_EQ(k, 4);
	hint_iter_free(it);

	seen_owner so;
	memset(&so, 0, sizeof(so));
	ASSERT_OK(hint_owners(s, owner_cb, &so));
	ASSERT_EQ(so.n, 3);
	/* key order: owner length first, then bytes */
	ASSERT_STREQ(so.names[0], "n1");
	ASSERT_U64_EQ(so.counts[0], 2);
	ASSERT_STREQ(so.names[1], "n2");
	ASSERT_U64_EQ(so.counts[1], 1);
	ASSERT_STREQ(so.names[2], "n10");
	ASSERT_U64_EQ(so.counts[2], 1);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(corrupt_record_reported_not_returned)
{
	lsm_db *db = open_db();
	hint_store *s;
	q_buf k = Q_BUF_INIT, v = Q_BUF_INIT;
	ASSERT_OK(hint_key_encode("n5", S("bad"), &k));
	ASSERT_OK(hint_value_encode(7, 100, 100, S("payload"), &v));
	v.p[v.len - 6] ^= 0x20; /* flip a payload bit */
	ASSERT_OK(lsm_put(db, q_buf_slice(&k), q_buf_slice(&v)));
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	hint_stats st;
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 1);
	ASSERT_U64_EQ(st.corrupt, 1);
	ASSERT_EQ(hint_get(s, "n5", S("bad"), NULL, NULL), Q_ECORRUPT);
	hint_iter *it;
	hint_entry e;
	ASSERT_OK(hint_iter_new(s, "n5", &it));
	ASSERT(hint_iter_valid(it));
	hint_iter_entry(it, &e);
	ASSERT_EQ(e.status, Q_ECORRUPT);
	ASSERT_EQ(e.object.n, 0);
	ASSERT(q_slice_eq(e.key, S("bad")));
	hint_iter_free(it);
	/* a new write replaces the corrupt record */
	ASSERT_OK(hint_put(s, "n5", S("bad"), S("ok"), 200, NULL));
	expect_obj(s, "n5", "bad", "ok");
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 1);
	ASSERT_U64_EQ(st.corrupt, 0);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
	q_buf_free(&k);
	q_buf_free(&v);
}

QTEST(real_objects_merge_as_siblings)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, NULL, NULL, &s)); /* hint_merge_objects */
	obj_set *a = NULL, *b = NULL, *m = NULL;
	obj_write w1 = {0, S("from-n1"), NULL, 1000};
	obj_write w2 = {0, S("from-n3"), NULL, 2000};
	ASSERT_OK(obj_set_update(NULL, NULL, "n1", &w1, NULL, 1000, &a));
	ASSERT_OK(obj_set_update(NULL, NULL, "n3", &w2, NULL, 2000, &b));
	q_buf ea = Q_BUF_INIT, eb = Q_BUF_INIT, got = Q_BUF_INIT;
	ASSERT_OK(obj_set_encode(a, &ea));
	ASSERT_OK(obj_set_encode(b, &eb));
	ASSERT_OK(hint_put(s, "n2", S("user/key"), q_buf_slice(&ea), 10, NULL));
	ASSERT_OK(hint_put(s, "n2", S("user/key"), q_buf_slice(&eb), 20, NULL));
	ASSERT_OK(hint_get(s, "n2", S("user/key"), &got, NULL));
	ASSERT_OK(obj_set_decode(got.p, got.len, &m));
	ASSERT_EQ(obj_set_count(m), 2); /* concurrent writes: both kept */
	/* not an object: refused, nothing changes */
	ASSERT(hint_put(s, "n2", S("user/key"), S("garbage"), 30, NULL) < 0);
	q_buf again = Q_BUF_INIT;
	ASSERT_OK(hint_get(s, "n2", S("user/key"), &again, NULL));
	ASSERT(q_slice_eq(q_buf_slice(&again), q_buf_slice(&got)));
	obj_set_free(a);
	obj_set_free(b);
	obj_set_free(m);
	q_buf_free(&ea);
	q_buf_free(&eb);
	q_buf_free(&got);
	q_buf_free(&again);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

typedef struct thr_arg {
	hint_store *s;
	char base;
} thr_arg;

static void *writer(void *p)
{
	thr_arg *a = p;
	for (int i = 0; i < 20; i++) {
		char c = (char)(a->base + i);
		if (hint_put(a->s, "n9", S("hot"), q_slice_make(&c, 1), 100, NULL) != 0)
			abort();
	}
	return NULL;
}

QTEST(concurrent_puts_lose_nothing)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	pthread_t t[3];
	thr_arg args[3] = {{s, 'A'}, {s, 'a'}, {s, '0' - 10}};
	for (int i = 0; i < 3; i++)
		ASSERT_OK(pthread_create(&t[i], NULL, writer, &args[i]));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(pthread_join(t[i], NULL));
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(hint_get(s, "n9", S("hot"), &b, NULL));
	ASSERT_EQ(b.len, 60);
	hint_stats st;
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 1);
	q_buf_free(&b);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(batches_resume_and_deliver)
{
	lsm_db *db = open_db();
	hint_store *s;
	ASSERT_OK(hint_store_open(db, union_merge, NULL, &s));
	char key[16];
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		ASSERT_OK(hint_put(s, "n1", S(key), S("v"), 10, NULL));
	}
	ASSERT_OK(hint_put(s, "n11", S("other"), S("v"), 10, NULL));
	/* deliver everything in batches of 10, as the event loop would */
	q_buf after = Q_BUF_INIT;
	int batches = 0, delivered = 0;
	for (;;) {
		hint_batch b;
		ASSERT_OK(hint_batch_load(s, "n1", q_buf_slice(&after), 10, 1 << 20, &b));
		batches++;
		ASSERT(b.n <= 10);
		for (size_t i = 0; i < b.n; i++) {
			ASSERT_EQ(b.v[i].status, 0);
			ASSERT_EQ(b.v[i].olen, 1);
			if (i == 3 && batches == 2) {
				/* a write merged in during delivery survives it */
				ASSERT_OK(hint_put(s, "n1", q_slice_make(b.v[i].key, b.v[i].klen), S("w"),
						   20, NULL));
				ASSERT_EQ(hint_delete_if(s, "n1", q_slice_make(b.v[i].key, b.v[i].klen),
							 b.v[i].seq), -EAGAIN);
				continue;
			}
			ASSERT_OK(hint_delete_if(s, "n1", q_slice_make(b.v[i].key, b.v[i].klen),
						 b.v[i].seq));
			delivered++;
		}
		if (b.n) {
			q_buf_reset(&after);
			ASSERT_OK(q_buf_append(&after, b.v[b.n - 1].key, b.v[b.n - 1].klen));
		}
		int more = b.more;
		hint_batch_free(&b);
		if (!more)
			break;
		ASSERT(batches < 10);
	}
	ASSERT_EQ(batches, 3);
	ASSERT_EQ(delivered, 24);
	hint_stats st;
	ASSERT_OK(hint_owner_stats(s, "n1", &st));
	ASSERT_U64_EQ(st.count, 1); /* the one merged during delivery */
	hint_get_stats(s, &st);
	ASSERT_U64_EQ(st.count, 2);
	/* byte budget: at least one item, then stop */
	hint_batch b;
	ASSERT_OK(hint_batch_load(s, "n11", S(""), 10, 0, &b));
	ASSERT_EQ(b.n, 1);
	ASSERT_EQ(b.more, 0);
	hint_batch_free(&b);
	ASSERT_EQ(hint_batch_load(s, "", S(""), 10, 0, &b), -EINVAL);
	q_buf_free(&after);
	hint_store_close(s);
	ASSERT_OK(lsm_close(db));
}

QTEST(record_codec)
{
	q_buf k = Q_BUF_INIT, v = Q_BUF_INIT;
	q_slice o, key;
	ASSERT_OK(hint_key_encode("node-7", S("some/key"), &k));
	ASSERT_EQ(k.p[0], LSM_KS_HINT);
	ASSERT_EQ(k.p[1], 6);
	ASSERT_OK(hint_key_decode(k.p, k.len, &o, &key));
	ASSERT(q_slice_eq(o, S("node-7")));
	ASSERT(q_slice_eq(key, S("some/key")));
	ASSERT_EQ(hint_key_decode("\x01\x01nk", 4, &o, &key), Q_ECORRUPT);
	ASSERT_EQ(hint_key_decode("\x02\x05nk", 4, &o, &key), Q_ETRUNC);
	ASSERT_EQ(hint_key_decode("\x02\x02nk", 4, &o, &key), Q_ECORRUPT); /* no key */

	ASSERT_OK(hint_value_encode(42, 1000, 2000, S("obj"), &v));
	hint_entry e;
	ASSERT_OK(hint_value_decode(v.p, v.len, &e));
	ASSERT_U64_EQ(e.seq, 42);
	ASSERT_U64_EQ(e.created_ms, 1000);
	ASSERT_U64_EQ(e.updated_ms, 2000);
	ASSERT(q_slice_eq(e.object, S("obj")));
	for (size_t n = 0; n < v.len; n++)
		ASSERT(hint_value_decode(v.p, n, &e) < 0);
	for (size_t i = 0; i < v.len; i++) {
		v.p[i] ^= 0x01;
		ASSERT(hint_value_decode(v.p, v.len, &e) < 0);
		v.p[i] ^= 0x01;
	}
	v.p[1] = 9;
	ASSERT_EQ(hint_value_decode(v.p, v.len, &e), Q_EVERSION);
	q_buf_free(&k);
	q_buf_free(&v);
}

QTEST_MAIN(QT(put_get_merge_delete), QT(delete_if_many_is_one_write), QT(stats_track_puts_and_deletes), QT(survives_restart),
	   QT(survives_process_crash), QT(iterate_per_owner), QT(corrupt_record_reported_not_returned),
	   QT(real_objects_merge_as_siblings), QT(concurrent_puts_lose_nothing), QT(batches_resume_and_deliver),
	   QT(record_codec))
