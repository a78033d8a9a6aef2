/*
 * test_lsm_nowait.c - the engine's calls that never block (lsm_get_nowait,
 * lsm_write_nowait; lsm.h): what they answer from memory, every case in
 * which they give -EAGAIN instead of waiting or reading, that an -EAGAIN
 * changed nothing, and that a write they accepted is as durable as one of
 * lsm_write. (A nowait write while another writer leads the queue:
 * test_lsm_fault.c, which has the sync gate.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

static char dbdir[300];

static lsm_db *open_db(q_env *env, lsm_sync sync, size_t wbuf, size_t blob_threshold)
{
	lsm_options o;
	lsm_options_default(&o);
	o.env = env;
	o.sync = sync;
	o.write_buffer_size = wbuf;
	o.block_size = 1024;
	o.blob_threshold = blob_threshold;
	o.sync_batch_ms = 5;
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db = NULL;
	int rc = lsm_open(dbdir, &o, &db);
	if (rc)
		QTEST_FAIL_("lsm_open: %s", q_strerror(rc));
	return db;
}

static void key_of(char *k, int i)
{
	snprintf(k, 32, "k%06d", i);
}

/* A value of len bytes that depends on i and gen. */
static void val_of(q_buf *v, int i, int gen, size_t len)
{
	q_buf_reset(v);
	for (size_t j = 0; j < len; j++)
		ASSERT_OK(q_buf_append_byte(v, (uint8_t)('a' + (i * 31 + gen * 7 + (int)j) % 26)));
}

static int put_nowait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	q_buf v = Q_BUF_INIT;
	key_of(k, i);
	val_of(&v, i, gen, len);
	lsm_batch *b = lsm_batch_new();
	ASSERT(b != NULL);
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_buf_slice(&v)));
	int rc = lsm_write_nowait(db, b);
	lsm_batch_free(b);
	q_buf_free(&v);
	return rc;
}

static void put_wait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	q_buf v = Q_BUF_INIT;
	key_of(k, i);
	val_of(&v, i, gen, len);
	ASSERT_OK(lsm_put(db, q_slice_str(k), q_buf_slice(&v)));
	q_buf_free(&v);
}

/* Checks the answer (rc, out) for key i: on 0 the value must be (i, gen,
 * len). Frees out; returns rc. */
static int check_answer(int rc, q_buf *out, int i, int gen, size_t len)
{
	if (rc == 0) {
		q_buf v = Q_BUF_INIT;
		val_of(&v, i, gen, len);
		ASSERT_EQ(out->len, v.len);
		ASSERT_MEMEQ(out->p, v.p, v.len);
		q_buf_free(&v);
	}
	q_buf_free(out);
	return rc;
}

/* Checks key i through lsm_get: gen < 0 = absent, else that value. */
static void expect(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	key_of(k, i);
	q_buf out = Q_BUF_INIT;
	int rc = check_answer(lsm_get(db, q_slice_str(k), &out), &out, i, gen, len);
	ASSERT_EQ(rc, gen < 0 ? Q_ENOTFOUND : 0);
}

/* lsm_get_nowait of key i; on 0 the value must be (i, gen, len). */
static int get_nowait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	key_of(k, i);
	q_buf out = Q_BUF_INIT;
	return check_answer(lsm_get_nowait(db, q_slice_str(k), &out), &out, i, gen, len);
}

static uint64_t commit_groups(lsm_db *db)
{
	lsm_stats st;
	lsm_get_stats(db, &st);
	return st.commit_groups;
}

QTEST(get_answers_from_the_memtable)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	for (int i = 0; i < 50; i++)
		put_wait(db, i, 1, 100);
	for (int i = 0; i < 50; i++)
		ASSERT_OK(get_nowait(db, i, 1, 100));
	ASSERT_EQ(get_nowait(db, 50, 0, 0), Q_ENOTFOUND);
	/* a deletion in the memtable answers not-found */
	char k[32];
	key_of(k, 3);
	ASSERT_OK(lsm_delete(db, q_slice_str(k)));
	ASSERT_EQ(get_nowait(db, 3, 0, 0), Q_ENOTFOUND);
	/* a large value in the memtable (held by reference to its batch) */
	put_wait(db, 60, 2, 40000);
	ASSERT_OK(get_nowait(db, 60, 2, 40000));
	ASSERT_OK(lsm_close(db));
}

QTEST(get_not_found_through_filters_and_key_ranges)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	/* even keys only, in tables */
	for (int i = 0; i < 2000; i += 2)
		put_wait(db, i, 1, 100);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0); /* cold block cache */
	/* beyond every table's key range */
	ASSERT_EQ(get_nowait(db, 5000, 0, 0), Q_ENOTFOUND);
	/* inside the range, absent: the bloom filter excludes almost all */
	int notfound = 0, again = 0;
	for (int i = 1; i < 2000; i += 2) {
		int rc = get_nowait(db, i, 0, 0);
		if (rc == Q_ENOTFOUND)
			notfound++;
		else if (rc == -EAGAIN)
			again++;
		else
			QTEST_FAIL_("absent key %d: %s", i, q_strerror(rc));
	}
	ASSERT(notfound >= 900); /* 10 bits per key: about 1% false positives */
	ASSERT_EQ(notfound + again, 1000);
	ASSERT_OK(lsm_close(db));
}

QTEST(get_again_for_an_uncached_block_until_a_read_caches_it)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	for (int i = 0; i < 500; i++)
		put_wait(db, i, 1, 100);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	lsm_stats st0, st1;
	ASSERT_EQ(get_nowait(db, 123, 1, 100), -EAGAIN);
	lsm_get_stats(db, &st0);
	/* it did not fill the cache: asking again is still -EAGAIN */
	ASSERT_EQ(get_nowait(db, 123, 1, 100), -EAGAIN);
	lsm_get_stats(db, &st1);
	ASSERT_EQ(st1.cache_hits, st0.cache_hits);
	expect(db, 123, 1, 100); /* reads the block and caches it */
	ASSERT_OK(get_nowait(db, 123, 1, 100));
	/* a newer version in the memtable wins over the table */
	put_wait(db, 123, 2, 100);
	ASSERT_OK(get_nowait(db, 123, 2, 100));
	ASSERT_OK(lsm_close(db));
}

QTEST(get_again_for_a_separated_value)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 512);
	put_wait(db, 1, 1, 2000); /* over the blob threshold */
	put_wait(db, 2, 1, 100);
	ASSERT_OK(get_nowait(db, 1, 1, 2000)); /* still in the memtable */
	ASSERT_OK(lsm_flush(db));
	expect(db, 1, 1, 2000); /* the table block is cached now */
	expect(db, 2, 1, 100);
	ASSERT_EQ(get_nowait(db, 1, 1, 2000), -EAGAIN); /* value in a blob file or log */
	ASSERT_OK(get_nowait(db, 2, 1, 100));
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_is_read_back_and_recovered)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_db(fe, LSM_SYNC_BATCH, 1 << 20, 0);
	uint64_t g0 = commit_groups(db);
	for (int i = 0; i < 100; i++)
		ASSERT_OK(put_nowait(db, i, 1, 100));
	ASSERT_EQ(commit_groups(db), g0 + 100);
	for (int i = 0; i < 100; i++) {
		expect(db, i, 1, 100);
		ASSERT_OK(get_nowait(db, i, 1, 100));
	}
	/* mixed with normal writes; a batch of several entries */
	put_wait(db, 100, 1, 100);
	lsm_batch *b = lsm_batch_new();
	char k[32];
	key_of(k, 5);
	ASSERT_OK(lsm_batch_delete(b, q_slice_str(k)));
	key_of(k, 101);
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_slice_str("x")));
	ASSERT_OK(lsm_write_nowait(db, b));
	lsm_batch_free(b);
	expect(db, 5, -1, 0);
	/* sync = batch: the periodic sync (every 5 ms) makes them durable;
	 * give it time, close, and lose whatever was not synced */
	q_sleep_ms(100);
	ASSERT_OK(lsm_close(db));
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	db = open_db(fe, LSM_SYNC_BATCH, 1 << 20, 0);
	for (int i = 0; i < 101; i++)
		expect(db, i, i == 5 ? -1 : 1, 100);
	q_buf out = Q_BUF_INIT;
	key_of(k, 101);
	ASSERT_OK(lsm_get(db, q_slice_str(k), &out));
	ASSERT_EQ(out.len, 1);
	q_buf_free(&out);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(write_nowait_again_under_sync_always)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_ALWAYS, 1 << 20, 0);
	uint64_t g0 = commit_groups(db);
	ASSERT_EQ(put_nowait(db, 1, 1, 100), -EAGAIN);
	ASSERT_EQ(commit_groups(db), g0);
	expect(db, 1, -1, 0);
	put_wait(db, 1, 1, 100);
	ASSERT_OK(get_nowait(db, 1, 1, 100)); /* reads still answer */
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_ALWAYS, 1 << 20, 0);
	expect(db, 1, 1, 100);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_again_when_the_memtable_is_full)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 8 << 10, 0);
	int n = 0, rc = 0;
	while (n < 1000 && (rc = put_nowait(db, n, 1, 100)) == 0)
		n++;
	ASSERT_EQ(rc, -EAGAIN); /* never switched the memtable itself */
	ASSERT(n > 10);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.memtable_bytes >= 8 << 10);
	uint64_t g0 = commit_groups(db);
	ASSERT_EQ(put_nowait(db, n, 1, 100), -EAGAIN);
	ASSERT_EQ(commit_groups(db), g0);
	expect(db, n, -1, 0); /* nothing changed */
	/* a normal write makes room (switches), then nowait goes on */
	put_wait(db, n, 1, 100);
	ASSERT_OK(put_nowait(db, n + 1, 1, 100));
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 100);
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 8 << 10, 0);
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 100);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_again_when_the_log_buffer_is_full)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	/* a record of the buffer's size or more is always written out */
	ASSERT_EQ(put_nowait(db, 0, 1, 70000), -EAGAIN);
	expect(db, 0, -1, 0);
	/* 1000-byte records fill the 64 KiB buffer in about 64 writes */
	int n = 0, rc = 0;
	while (n < 1000 && (rc = put_nowait(db, n, 1, 1000)) == 0)
		n++;
	ASSERT_EQ(rc, -EAGAIN);
	ASSERT(n >= 50 && n <= 66);
	expect(db, n, -1, 0);
	put_wait(db, n, 1, 1000); /* writes the buffer out */
	ASSERT_OK(put_nowait(db, n + 1, 1, 1000));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 1000);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_returns_the_background_error)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_db(fe, LSM_SYNC_NONE, 4 << 20, 0);
	put_wait(db, 1, 1, 100);
	/* every write fails with EIO from now on: the log's write fails and
	 * the store refuses writes until reopened */
	q_fault_env_fail_at(fe, Q_FAULT_WRITE, 1, -EIO, 1);
	int rc = 0;
	for (int i = 0; i < 2000 && rc == 0; i++) {
		char k[32];
		key_of(k, 1000 + i);
		rc = lsm_put(db, q_slice_str(k), q_slice_str("vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"));
	}
	ASSERT_EQ(rc, -EIO);
	ASSERT_EQ(put_nowait(db, 2, 1, 100), -EIO);
	expect(db, 1, 1, 100);
	lsm_close(db);
	q_fault_env_free(fe);
}

QTEST_MAIN(QT(get_answers_from_the_memtable), QT(get_not_found_through_filters_and_key_ranges),
	   QT(get_again_for_an_uncached_block_until_a_read_caches_it),
	   QT(get_again_for_a_separated_value), QT(write_nowait_is_read_back_and_recovered),
	   QT(write_nowait_again_under_sync_always), QT(write_nowait_again_when_the_memtable_is_full),
	   QT(write_nowait_again_when_the_log_buffer_is_full),
	   QT(write_nowait_returns_the_background_error))
