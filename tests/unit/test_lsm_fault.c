/*
 * test_lsm_fault.c - the engine under injected faults and damaged files:
 * power loss (unsynced data dropped by the fault env), EIO and ENOSPC on
 * writes and syncs, flipped bytes in tables, logs and the manifest. The
 * `_blob` variants run the same scenarios with values of 300..1000 bytes and
 * a 512-byte blob threshold, so about half the values live in blob files;
 * the blob_* tests damage blob files.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lsm/lsm.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

static char dbdir[300];
static const char *g_dbname = "db";
/* 1: values of 300..1000 bytes and blob_threshold 512 (key-value
 * separation on for about half of them) */
static int g_big;
#define VAL_MAX 1100

static lsm_db *open_env(q_env *env, lsm_sync sync, size_t wbuf)
{
	lsm_options o;
	lsm_options_default(&o);
	o.env = env;
	o.sync = sync;
	o.write_buffer_size = wbuf;
	o.block_size = 1024;
	o.blob_threshold = g_big ? 512 : 0;
	snprintf(dbdir, sizeof(dbdir), "%s/%s", qtest_tmpdir, g_dbname);
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

static void val_of(char *v, int i)
{
	int len = snprintf(v, 64, "value-%06d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	if (!g_big)
		return;
	int target = 300 + (int)(((unsigned)i * 7919u) % 700u);
	while (len < target) {
		v[len] = (char)('a' + (len * 7 + i) % 26);
		len++;
	}
	v[len] = 0;
}

/* 0 = correct value, 1 = absent, 2 = Q_ECORRUPT; fails on a wrong value. */
static int probe(lsm_db *db, int i)
{
	char k[32], v[VAL_MAX];
	key_of(k, i);
	val_of(v, i);
	q_buf out = Q_BUF_INIT;
	int rc = lsm_get(db, q_slice_str(k), &out);
	int r;
	if (rc == 0) {
		if (out.len != strlen(v) || memcmp(out.p, v, out.len))
			QTEST_FAIL_("key %d: wrong value returned", i);
		r = 0;
	} else if (rc == Q_ENOTFOUND) {
		r = 1;
	} else if (rc == Q_ECORRUPT) {
		r = 2;
	} else {
		QTEST_FAIL_("key %d: %s", i, q_strerror(rc));
	}
	q_buf_free(&out);
	return r;
}

static int put_i(lsm_db *db, int i)
{
	char k[32], v[VAL_MAX];
	key_of(k, i);
	val_of(v, i);
	return lsm_put(db, q_slice_str(k), q_slice_str(v));
}

QTEST(power_loss_keeps_acked_writes_always)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	for (int round = 0; round < 3; round++) {
		lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 16 << 10);
		for (int i = round * 700; i < (round + 1) * 700; i++)
			ASSERT_OK(put_i(db, i));
		ASSERT_OK(lsm_close(db));
		ASSERT_OK(q_fault_env_drop_unsynced(fe));
		db = open_env(fe, LSM_SYNC_ALWAYS, 16 << 10);
		for (int i = 0; i < (round + 1) * 700; i++)
			ASSERT_EQ(probe(db, i), 0);
		ASSERT_OK(lsm_close(db));
		ASSERT_OK(q_fault_env_drop_unsynced(fe));
	}
	q_fault_env_free(fe);
}

QTEST(power_loss_sync_none_leaves_a_prefix)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, LSM_SYNC_NONE, 16 << 10);
	for (int i = 0; i < 3000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_close(db));
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	db = open_env(fe, LSM_SYNC_NONE, 16 << 10);
	/* what survives is every write up to some point, nothing after it */
	int i = 0;
	while (i < 3000 && probe(db, i) == 0)
		i++;
	int prefix = i;
	for (; i < 3000; i++)
		ASSERT_EQ(probe(db, i), 1);
	ASSERT(prefix > 0); /* flushed tables were synced */
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* Puts keys 0, 1, ... (at most 5000) until one fails; returns that error
 * (0 if none did), *acked the number acknowledged before it. */
static int put_until_error(lsm_db *db, int *acked)
{
	for (*acked = 0; *acked < 5000; (*acked)++) {
		int rc = put_i(db, *acked);
		if (rc)
			return rc;
	}
	return 0;
}

/* Fails the nth call of kinds mask; writes until an error, then checks
 * that a reopen (after a power cut) holds every acknowledged write. */
static void fail_and_recover(int mask, uint64_t n, int err, lsm_sync sync)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, sync, 16 << 10);
	q_fault_env_fail_at(fe, mask, n, err, 1);
	int acked = 0;
	int rc = put_until_error(db, &acked);
	ASSERT(rc != 0);
	/* the store stays up: reads work, writes keep failing cleanly */
	ASSERT_EQ(probe(db, 0), 0);
	ASSERT(put_i(db, 999999) != 0);
	lsm_close(db);
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	q_fault_env_fail_at(fe, 0, 0, 0, 0);
	db = open_env(fe, sync, 16 << 10);
	for (int i = 0; i < acked; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(eio_on_log_write)
{
	q_log_set_level(Q_LOG_OFF);
	fail_and_recover(Q_FAULT_WRITE, 300, -EIO, LSM_SYNC_ALWAYS);
}

QTEST(eio_on_sync)
{
	q_log_set_level(Q_LOG_OFF);
	fail_and_recover(Q_FAULT_SYNC, 200, -EIO, LSM_SYNC_ALWAYS);
}

QTEST(enospc_everywhere_later)
{
	q_log_set_level(Q_LOG_OFF);
	/* sticky ENOSPC on every write from the 1500th on: log appends, table
	 * writes and manifest writes all fail */
	fail_and_recover(Q_FAULT_WRITE, 1500, -ENOSPC, LSM_SYNC_ALWAYS);
}

/* A full disk (or no file descriptor left) is not final: once writes may
 * succeed again, the store resumes without a reopen (a fresh commit log for
 * a failed one, failed flushes retried), and every acknowledged write is
 * there, then and after a reopen. */
static void fail_then_resume(lsm_sync sync, int mask, uint64_t n, int err)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, sync, 16 << 10);
	q_fault_env_fail_at(fe, mask, n, err, 1);
	int acked = 0;
	int rc = put_until_error(db, &acked);
	ASSERT_EQ(rc, err);
	ASSERT_EQ(put_i(db, acked), err);
	ASSERT_EQ(probe(db, 0), 0);
	q_fault_env_fail_at(fe, 0, 0, 0, 0); /* space (descriptors) back */
	int ok = 0;
	for (int t = 0; t < 100 && !ok; t++) { /* retries are once a second */
		ok = put_i(db, acked) == 0;
		if (!ok)
			q_sleep_ms(100);
	}
	ASSERT(ok);
	acked++;
	for (int i = acked; i < acked + 300; i++)
		ASSERT_OK(put_i(db, i));
	acked += 300;
	ASSERT_OK(lsm_flush(db));
	for (int i = 0; i < acked; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	db = open_env(fe, sync, 16 << 10);
	for (int i = 0; i < acked; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(enospc_then_space_back_always)
{
	q_log_set_level(Q_LOG_OFF);
	fail_then_resume(LSM_SYNC_ALWAYS, Q_FAULT_WRITE, 300, -ENOSPC);
}

QTEST(enospc_then_space_back_batch)
{
	q_log_set_level(Q_LOG_OFF);
	fail_then_resume(LSM_SYNC_BATCH, Q_FAULT_WRITE, 120, -ENOSPC);
}

/* Out of file descriptors: the flush's new files (and the next commit
 * log) cannot be opened; writes fail with EMFILE, and resume by themselves
 * once descriptors are back (the flush is retried every second). */
QTEST(emfile_then_descriptors_back)
{
	q_log_set_level(Q_LOG_OFF);
	for (uint64_t n = 1; n <= 3; n++) /* the next log, the flush's table, ... */
		fail_then_resume(LSM_SYNC_ALWAYS, Q_FAULT_OPEN, n, -EMFILE);
}

/* A new commit log that cannot be created at a memtable switch (a full
 * disk at its open) fails that write and the next ones, which try again;
 * the store says so in its log once for the run of failures (a replica of
 * a cluster once refused writes for a minute with nothing logged), and once
 * when a switch works again. */
QTEST(failed_log_switch_is_logged_once)
{
	char logpath[512];
	snprintf(logpath, sizeof(logpath), "%s/store.log", qtest_tmpdir);
	FILE *lf = fopen(logpath, "w");
	ASSERT(lf != NULL);
	q_log_set_stream(lf);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 16 << 10);
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 1, -ENOSPC, 1); /* the next log first */
	int acked = 0;
	ASSERT_EQ(put_until_error(db, &acked), -ENOSPC);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(put_i(db, acked), -ENOSPC);
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath, "cannot create commit log"), 1);
	ASSERT_EQ(qtest_count_in_file(logpath, "No space left on device; writes fail"), 1);
	ASSERT_EQ(qtest_count_in_file(logpath, "writes resume"), 0);
	q_fault_env_fail_at(fe, 0, 0, 0, 0);
	ASSERT_OK(put_i(db, acked));
	ASSERT_OK(put_i(db, acked + 1));
	fflush(lf);
	ASSERT_EQ(qtest_count_in_file(logpath, "created: writes resume"), 1);
	ASSERT_EQ(qtest_count_in_file(logpath, "cannot create commit log"), 1);
	for (int i = 0; i < acked + 2; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
	q_log_set_stream(stderr);
	fclose(lf);
}

QTEST(power_loss_keeps_acked_writes_always_blob)
{
	g_big = 1;
	q_env *fe = q_fault_env_new(q_env_posix());
	for (int round = 0; round < 3; round++) {
		lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 64 << 10);
		for (int i = round * 400; i < (round + 1) * 400; i++)
			ASSERT_OK(put_i(db, i));
		ASSERT_OK(lsm_close(db));
		ASSERT_OK(q_fault_env_drop_unsynced(fe));
		db = open_env(fe, LSM_SYNC_ALWAYS, 64 << 10);
		for (int i = 0; i < (round + 1) * 400; i++)
			ASSERT_EQ(probe(db, i), 0);
		lsm_stats st;
		lsm_get_stats(db, &st);
		ASSERT(st.blob_files > 0);
		ASSERT_OK(lsm_close(db));
		ASSERT_OK(q_fault_env_drop_unsynced(fe));
	}
	q_fault_env_free(fe);
}

QTEST(eio_on_sync_blob)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	fail_and_recover(Q_FAULT_SYNC, 200, -EIO, LSM_SYNC_ALWAYS);
}

QTEST(enospc_everywhere_later_blob)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	fail_and_recover(Q_FAULT_WRITE, 1500, -ENOSPC, LSM_SYNC_ALWAYS);
}

QTEST(eio_on_write_blob)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	/* the nth write may be a log append, a blob record, a table block or
	 * a manifest: several n land in each */
	static const uint64_t at[] = {25, 90, 171, 260, 433, 700};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		fail_and_recover(Q_FAULT_WRITE, at[i], -EIO, LSM_SYNC_ALWAYS);
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dbdir);
		ASSERT_EQ(system(cmd), 0);
	}
}

QTEST(eio_on_rename)
{
	q_log_set_level(Q_LOG_OFF);
	fail_and_recover(Q_FAULT_RENAME, 2, -EIO, LSM_SYNC_ALWAYS);
}

QTEST(torn_log_append)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
	int acked = 0;
	for (int i = 0; i < 100; i++) {
		if (i == 50)
			q_fault_env_short_write_at(fe, 1, -EIO);
		if (put_i(db, i))
			break;
		acked++;
	}
	ASSERT_EQ(acked, 50);
	lsm_close(db);
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
	for (int i = 0; i < 50; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_EQ(probe(db, 50), 1);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.corrupt_records_skipped, 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* ---- corruption ---- */

static void flip_in_file(const char *path, uint64_t off)
{
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), path, &d, &n));
	ASSERT(off < n);
	d[off] ^= 0x40;
	q_file *f;
	ASSERT_OK(q_env_open(q_env_posix(), path, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, d, n));
	ASSERT_OK(q_file_close(f));
	free(d);
}

static int lowest_file(const char *suffix, char *path)
{
	char **names;
	size_t n;
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &names, &n));
	long best = -1;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		if (l > strlen(suffix) && !strcmp(names[i] + l - strlen(suffix), suffix)) {
			long num = atol(names[i]);
			if (best < 0 || num < best)
				best = num;
		}
	}
	q_env_list_free(names, n);
	if (best >= 0)
		snprintf(path, 400, "%s/%06ld%s", dbdir, best, suffix);
	return best >= 0;
}

QTEST(table_flip_quarantines_and_serves_rest)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 1000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	for (int i = 1000; i < 2000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400], bad[420];
	ASSERT(lowest_file(".sst", path));
	flip_in_file(path, 3000);
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	int corrupt = 0;
	for (int i = 0; i < 1000; i++)
		corrupt += probe(db, i) == 2;
	ASSERT(corrupt > 0);
	for (int i = 1000; i < 2000; i++)
		ASSERT_EQ(probe(db, i), 0);
	/* an iterator stops with Q_ECORRUPT rather than return bad data */
	/* the table is taken out of service in the background */
	lsm_stats st;
	uint64_t t0 = q_mono_ms();
	do {
		lsm_get_stats(db, &st);
		if (st.quarantined_tables)
			break;
		q_sleep_ms(10);
	} while (q_mono_ms() - t0 < 20000);
	ASSERT_EQ(st.quarantined_tables, 1);
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(probe(db, i), 1);
	for (int i = 1000; i < 2000; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(put_i(db, 5)); /* still writable */
	ASSERT_EQ(probe(db, 5), 0);
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int n = 0;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		n++;
	ASSERT_OK(lsm_iter_status(it));
	ASSERT_EQ(n, 1001);
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
	snprintf(bad, sizeof(bad), "%s.bad", path);
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), bad, &sz));
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	ASSERT_EQ(probe(db, 5), 0);
	ASSERT_EQ(probe(db, 6), 1);
	ASSERT_OK(lsm_close(db));
}

QTEST(iterator_reports_table_corruption)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 1000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".sst", path));
	flip_in_file(path, 5000);
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int n = 0;
	char k[32];
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		key_of(k, n);
		ASSERT_MEMEQ(lsm_iter_key(it).p, k, strlen(k));
		n++;
	}
	ASSERT(n < 1000);
	ASSERT_EQ(lsm_iter_status(it), Q_ECORRUPT);
	lsm_iter_free(it);
	ASSERT_OK(lsm_close(db));
}

QTEST(table_footer_flip_quarantined_at_open)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 500; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".sst", path));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), path, &sz));
	flip_in_file(path, sz - 20);
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.quarantined_tables, 1);
	ASSERT_EQ(probe(db, 1), 1);
	ASSERT_OK(put_i(db, 1));
	ASSERT_EQ(probe(db, 1), 0);
	ASSERT_OK(lsm_close(db));
}

/* A flipped byte in a blob file: the key whose record it hits reads as
 * Q_ECORRUPT (never wrong data), every other key is served, an iterator
 * stops with Q_ECORRUPT, nothing crashes. */
QTEST(blob_flip_reported_rest_served)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 600; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".blob", path));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), path, &sz));
	unsigned rnd = (unsigned)q_wall_ns();
	int prev = 0;
	/* a header byte, a key byte or a value byte of some record; a later
	 * flip may hit a record already damaged */
	for (int round = 0; round < 3; round++) {
		uint64_t off = 8 + (uint64_t)rand_r(&rnd) % (sz - 8);
		flip_in_file(path, off);
		db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
		int corrupt = 0, ok = 0;
		for (int i = 0; i < 600; i++) {
			int r = probe(db, i);
			ASSERT(r != 1);
			corrupt += r == 2;
			ok += r == 0;
		}
		ASSERT(corrupt >= 1 && corrupt >= prev && corrupt <= 1 + round);
		ASSERT_EQ(corrupt + ok, 600);
		prev = corrupt;
		/* a scan passes over the damaged records (counted) and goes on */
		lsm_iter *it;
		ASSERT_OK(lsm_iter_new(db, &it));
		int n = 0;
		for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it))
			n++;
		ASSERT_EQ(lsm_iter_status(it), 0);
		ASSERT_EQ(n, 600 - corrupt);
		ASSERT_EQ((int)lsm_iter_skipped(it), corrupt);
		lsm_iter_free(it);
		lsm_stats st;
		lsm_get_stats(db, &st);
		ASSERT_EQ((int)st.blob_corrupt_skipped, corrupt);
		/* compaction neither fails nor loses the other values */
		ASSERT_OK(lsm_compact_all(db));
		for (int i = 0, c = 0; i < 600; i++) {
			c += probe(db, i) == 2;
			if (i == 599)
				ASSERT_EQ(c, corrupt);
		}
		ASSERT_OK(lsm_close(db));
	}
}

/* A blob file cut short (or gone) before open: the store opens, the keys
 * whose values it held read as Q_ECORRUPT, the others are served. */
QTEST(blob_truncated_before_open)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 300; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	for (int i = 300; i < 600; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".blob", path));
	ASSERT_EQ(truncate(path, 5000), 0);
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	int corrupt = 0;
	for (int i = 0; i < 300; i++) {
		int r = probe(db, i);
		ASSERT(r != 1);
		corrupt += r == 2;
	}
	ASSERT(corrupt > 100);
	for (int i = 300; i < 600; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(put_i(db, 1)); /* a fresh value repairs the key */
	ASSERT_EQ(probe(db, 1), 0);
	ASSERT_OK(lsm_close(db));
}

/* A mapped table cut short under an open store: reads of the lost pages
 * are errors (Q_ECORRUPT, table quarantined), never a SIGBUS. */
static void truncate_under_open_store(uint64_t keep)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 1000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	for (int i = 1000; i < 2000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	char path[400];
	ASSERT(lowest_file(".sst", path));
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), path, &sz));
	ASSERT(sz > 3 * 4096);
	ASSERT_EQ(truncate(path, (off_t)keep), 0);
	int corrupt = 0, ok = 0;
	for (int i = 0; i < 1000; i++) {
		int r = probe(db, i); /* fails the test on a wrong value */
		ASSERT(r != 1 || corrupt > 0); /* absent only once quarantined */
		corrupt += r == 2;
		ok += r == 0;
	}
	ASSERT(corrupt > 0);
	ASSERT(ok < 1000);
	for (int i = 1000; i < 2000; i++)
		ASSERT_EQ(probe(db, i), 0);
	/* an iterator over the damaged table stops with an error as well */
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it))
		;
	int irc = lsm_iter_status(it);
	lsm_iter_free(it);
	lsm_stats st;
	uint64_t t0 = q_mono_ms();
	do {
		lsm_get_stats(db, &st);
		if (st.quarantined_tables)
			break;
		q_sleep_ms(10);
	} while (q_mono_ms() - t0 < 20000);
	ASSERT_EQ(st.quarantined_tables, 1);
	ASSERT(irc == Q_ECORRUPT || irc == 0); /* 0: the table left the version first */
	for (int i = 1000; i < 2000; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(put_i(db, 7));
	ASSERT_EQ(probe(db, 7), 0);
	ASSERT_OK(lsm_close(db));
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	ASSERT_EQ(probe(db, 7), 0);
	ASSERT_EQ(probe(db, 1500), 0);
	ASSERT_OK(lsm_close(db));
}

QTEST(table_truncated_under_open_store_is_an_error)
{
	truncate_under_open_store(4096);
}

QTEST(table_truncated_to_zero_under_open_store)
{
	truncate_under_open_store(0);
}

QTEST(table_size_differs_from_manifest_quarantined_at_open)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < 500; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".sst", path));
	/* a table with a valid footer but a different size: prepend bytes */
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), path, &d, &n));
	q_file *f;
	ASSERT_OK(q_env_open(q_env_posix(), path, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, "xxxxxxxx", 8));
	ASSERT_OK(q_file_append(f, d, n));
	ASSERT_OK(q_file_close(f));
	free(d);
	db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.quarantined_tables, 1);
	ASSERT_EQ(probe(db, 1), 1);
	ASSERT_OK(lsm_close(db));
}

QTEST(log_flip_reported_rest_replayed)
{
	q_log_set_level(Q_LOG_OFF);
	lsm_db *db = open_env(NULL, LSM_SYNC_ALWAYS, 4 << 20);
	for (int i = 0; i < 2000; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_OK(lsm_close(db));
	char path[400];
	ASSERT(lowest_file(".log", path));
	flip_in_file(path, 10000); /* inside the first 32 KiB block */
	db = open_env(NULL, LSM_SYNC_ALWAYS, 4 << 20);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.corrupt_records_skipped >= 1);
	int ok = 0, missing = 0;
	for (int i = 0; i < 2000; i++) {
		int r = probe(db, i);
		ASSERT(r != 2);
		ok += r == 0;
		missing += r == 1;
	}
	/* one damaged block loses at most its records, later blocks replay */
	ASSERT(missing > 0 && missing < 600);
	ASSERT(probe(db, 1999) == 0);
	ASSERT_OK(lsm_close(db));
}

/* Opens the store, checks keys [0, n) and that the fallback was (not)
 * taken, closes it. */
static void check_open(int n, int fallback)
{
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(probe(db, i), 0);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_EQ(st.manifest_fallback, (uint64_t)fallback);
	ASSERT_EQ(st.quarantined_tables, 0);
	ASSERT_OK(lsm_close(db));
}

/* One more key, then a flush and a full compaction: the last manifest and
 * the one before it name different tables. */
static void grow(int *n, int add)
{
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	for (int i = *n; i < *n + add; i++)
		ASSERT_OK(put_i(db, i));
	*n += add;
	ASSERT_OK(lsm_compact_all(db));
	ASSERT_OK(lsm_close(db));
}

/* Adds keys in a child that then dies without closing the store, right
 * after a background compaction of level 0: MANIFEST.prev then names the
 * tables that compaction replaced (a clean close would rewrite the
 * manifest and let them go). */
static void grow_and_crash(int *n, int add)
{
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
		lsm_stats st;
		lsm_get_stats(db, &st);
		uint64_t before = st.compactions;
		for (int part = 0; part < 4; part++) {
			for (int i = *n + part * add / 4; i < *n + (part + 1) * add / 4; i++)
				if (put_i(db, i))
					_exit(1);
			if (lsm_flush(db))
				_exit(1);
		}
		/* four level-0 tables: a compaction starts; wait for it */
		uint64_t t0 = q_mono_ms();
		do {
			lsm_get_stats(db, &st);
			if (st.compactions > before)
				_exit(0);
			q_sleep_ms(5);
		} while (q_mono_ms() - t0 < 20000);
		_exit(2);
	}
	int st;
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	*n += add / 4 * 4;
}

static uint64_t count_files(const char *suffix)
{
	char **names;
	size_t n;
	uint64_t c = 0;
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &names, &n));
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		c += l > strlen(suffix) && !strcmp(names[i] + l - strlen(suffix), suffix);
	}
	q_env_list_free(names, n);
	return c;
}

static void manifest_flip_rounds(uint64_t steps)
{
	q_log_set_level(Q_LOG_OFF);
	int n = 0;
	grow(&n, 300);
	/* after a clean close both manifests describe the same tables: the
	 * replaced ones are gone */
	lsm_db *db = open_env(NULL, LSM_SYNC_NONE, 1 << 20);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(count_files(".sst"), st.num_tables);
	char path[400], bad[420];
	snprintf(path, sizeof(path), "%s/MANIFEST", dbdir);
	snprintf(bad, sizeof(bad), "%s/MANIFEST.bad", dbdir);
	uint64_t sz;
	ASSERT_OK(q_env_file_size(q_env_posix(), path, &sz));
	/* every byte of the manifest, in steps; each round changes the store */
	for (uint64_t off = 0; off < sz; off += 1 + sz / steps) {
		if (off % 2)
			grow(&n, 50);
		else
			grow_and_crash(&n, 200);
		ASSERT_OK(q_env_file_size(q_env_posix(), path, &sz));
		flip_in_file(path, off < sz ? off : sz - 1);
		check_open(n, 1);
		uint64_t bsz;
		ASSERT_OK(q_env_file_size(q_env_posix(), bad, &bsz));
		check_open(n, 0); /* the new manifest is good */
	}
}

QTEST(manifest_flip_falls_back_to_previous)
{
	manifest_flip_rounds(24);
}

/* The same with about half the values in blob files: the manifest also
 * lists blob files and the tables' references to them, and the fallback
 * finds every blob file MANIFEST.prev names still on disk. */
QTEST(manifest_flip_falls_back_to_previous_blob)
{
	g_big = 1;
	manifest_flip_rounds(8);
}

QTEST(manifest_and_previous_corrupt_refuse_to_open)
{
	q_log_set_level(Q_LOG_OFF);
	int n = 0;
	grow(&n, 300);
	grow(&n, 10);
	char path[400], prev[420];
	snprintf(path, sizeof(path), "%s/MANIFEST", dbdir);
	snprintf(prev, sizeof(prev), "%s/MANIFEST.prev", dbdir);
	flip_in_file(path, 20);
	flip_in_file(prev, 20);
	char **before, **after;
	size_t nb, na;
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &before, &nb));
	lsm_options o;
	lsm_options_default(&o);
	lsm_db *db = NULL;
	ASSERT_EQ(lsm_open(dbdir, &o, &db), Q_ECORRUPT);
	/* nothing deleted or rewritten */
	ASSERT_OK(q_env_list(q_env_posix(), dbdir, &after, &na));
	ASSERT_EQ(na, nb);
	for (size_t i = 0; i < nb; i++) {
		int found = 0;
		for (size_t j = 0; j < na; j++)
			found |= !strcmp(before[i], after[j]);
		ASSERT(found);
	}
	q_env_list_free(before, nb);
	q_env_list_free(after, na);
	/* the previous manifest repaired: it is used */
	flip_in_file(prev, 20);
	check_open(n, 1);
}

QTEST(manifest_missing_after_interrupted_replacement)
{
	q_log_set_level(Q_LOG_OFF);
	int n = 0;
	grow(&n, 300);
	grow(&n, 10);
	/* the state between the two renames of a manifest replacement */
	char path[400], prev[420];
	snprintf(path, sizeof(path), "%s/MANIFEST", dbdir);
	snprintf(prev, sizeof(prev), "%s/MANIFEST.prev", dbdir);
	ASSERT_EQ(rename(path, prev), 0);
	check_open(n, 0);
	grow(&n, 10);
	check_open(n, 0);
}

/* The nth sync (one shot) fails during a flush or a full compaction; for
 * some n that is the directory sync right after the new MANIFEST was
 * renamed into place. The store is closed and reopened WITHOUT a power cut
 * (so the renames stand): every acknowledged write must be there, i.e. the
 * failed install must not have deleted the files that MANIFEST names. */
static void sync_fail_then_reopen(int compact)
{
	q_log_set_level(Q_LOG_OFF);
	for (int n = 1; n <= 10; n++) {
		char name[32];
		snprintf(name, sizeof(name), "db%d", n);
		g_dbname = name;
		q_env *fe = q_fault_env_new(q_env_posix());
		lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
		int total = 240;
		for (int i = 0; i < total; i++) {
			ASSERT_OK(put_i(db, i));
			if (compact && i % 80 == 79)
				ASSERT_OK(lsm_flush(db));
		}
		/* sticky for the compaction: a background retry must not repair it */
		q_fault_env_fail_at(fe, Q_FAULT_SYNC, (uint64_t)n, -EIO, compact);
		int rc = compact ? lsm_compact_all(db) : lsm_flush(db);
		(void)rc; /* success or a clean error, depending on n */
		for (int i = 0; i < total; i++)
			ASSERT_EQ(probe(db, i), 0);
		lsm_close(db);
		q_fault_env_fail_at(fe, 0, 0, 0, 0);
		db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
		for (int i = 0; i < total; i++)
			if (probe(db, i) != 0)
				QTEST_FAIL_("n=%d: acknowledged key %d lost after reopen", n, i);
		ASSERT_OK(lsm_close(db));
		q_fault_env_free(fe);
	}
	g_dbname = "db";
}

QTEST(sync_failure_in_flush_then_reopen)
{
	sync_fail_then_reopen(0);
}

QTEST(sync_failure_in_compaction_then_reopen)
{
	sync_fail_then_reopen(1);
}

QTEST(sync_failure_in_flush_then_reopen_blob)
{
	g_big = 1;
	sync_fail_then_reopen(0);
}

/* A flush whose manifest cannot be installed (the rename fails before the
 * new MANIFEST is in place) leaves neither its table nor the blob file it
 * wrote behind, and loses nothing: the log still holds the writes. */
QTEST(failed_flush_leaves_no_blob_file)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 1;
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
	for (int i = 0; i < 100; i++)
		ASSERT_OK(put_i(db, i));
	ASSERT_EQ(count_files(".blob"), 0);
	q_fault_env_fail_at(fe, Q_FAULT_RENAME, 1, -EIO, 0);
	ASSERT(lsm_flush(db) != 0);
	ASSERT_EQ(count_files(".blob"), 0);
	ASSERT_EQ(count_files(".sst"), 0);
	lsm_close(db);
	q_fault_env_fail_at(fe, 0, 0, 0, 0);
	db = open_env(fe, LSM_SYNC_ALWAYS, 1 << 20);
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* A gate the fault env's directory-sync hook closes on the first sync after
 * it is armed: that thread waits inside the sync until the test opens it. */
typedef struct sync_gate {
	atomic_int armed, entered, open;
} sync_gate;

/* Waits (bounded) until *flag is set; 1 if it was. */
static void gate_hook(void *arg)
{
	sync_gate *g = arg;
	if (atomic_exchange(&g->armed, 0)) {
		atomic_store(&g->entered, 1);
		qtest_wait_flag(&g->open, 20000);
	}
}

typedef struct bg_call {
	lsm_db *db;
	int rc;
	atomic_int done;
} bg_call;

static void *flush_thread(void *arg)
{
	bg_call *c = arg;
	c->rc = lsm_flush(c->db);
	atomic_store(&c->done, 1);
	return NULL;
}

static void *get_thread(void *arg)
{
	bg_call *c = arg;
	c->rc = probe(c->db, 7);
	atomic_store(&c->done, 1);
	return NULL;
}

/* A store on fe holding keys 0..99 (small values), log lines off. */
static lsm_db *open_with_keys(q_env *fe, lsm_sync sync)
{
	q_log_set_level(Q_LOG_OFF);
	g_big = 0;
	lsm_db *db = open_env(fe, sync, 64 << 20);
	for (int i = 0; i < 100; i++)
		ASSERT_OK(put_i(db, i));
	return db;
}

/* Runs fn(c) in a thread whose work creates the next commit log; a gate
 * holds it in that log's directory sync, and meanwhile a blocking read (in
 * another thread) and a nowait read must be answered. Returns once both
 * threads are done (c->rc: fn's result). */
static void reads_go_on_while_a_log_is_created(lsm_db *db, q_env *fe, void *(*fn)(void *),
					       bg_call *c)
{
	sync_gate g = {1, 0, 0};
	q_fault_env_on_sync_dir(fe, gate_hook, &g);
	pthread_t wt;
	ASSERT_EQ(pthread_create(&wt, NULL, fn, c), 0);
	int entered = qtest_wait_flag(&g.entered, 10000);
	bg_call gc = {db, -1, 0};
	pthread_t gt;
	ASSERT_EQ(pthread_create(&gt, NULL, get_thread, &gc), 0);
	int served = qtest_wait_flag(&gc.done, 10000);
	char k[32];
	key_of(k, 8);
	q_buf out = Q_BUF_INIT;
	int nrc = served ? lsm_get_nowait(db, q_slice_str(k), &out) : -1;
	atomic_store(&g.open, 1);
	pthread_join(gt, NULL);
	pthread_join(wt, NULL);
	q_fault_env_on_sync_dir(fe, NULL, NULL);
	q_buf_free(&out);
	ASSERT(entered);
	ASSERT(served); /* the read finished while the log's sync was held */
	ASSERT_EQ(gc.rc, 0);
	ASSERT_OK(nrc);
}

/* Creating the next commit log (open, preallocation, directory fsync) takes
 * milliseconds; reads must not wait for it behind the engine's lock. */
QTEST(reads_go_on_while_the_next_log_is_created)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_with_keys(fe, LSM_SYNC_ALWAYS);
	/* the forced switch to a new memtable creates the next log first */
	bg_call fl = {db, 0, 0};
	reads_go_on_while_a_log_is_created(db, fe, flush_thread, &fl);
	ASSERT_OK(fl.rc);
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

static void *put_thread(void *arg)
{
	bg_call *c = arg;
	c->rc = -1;
	for (int t = 0; t < 50 && c->rc; t++) /* tries to resume are 1 s apart */
		if ((c->rc = put_i(c->db, 5000)) != 0)
			q_sleep_ms(100);
	atomic_store(&c->done, 1);
	return NULL;
}

/* Resuming writes after a full disk creates the next commit log (statfs,
 * open, directory fsync): reads, those that never block included, must
 * not wait for it behind the engine's lock. */
QTEST(reads_go_on_while_writes_resume_on_a_new_log)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_with_keys(fe, LSM_SYNC_NONE);
	q_fault_env_fail_at(fe, Q_FAULT_WRITE, 1, -ENOSPC, 1);
	int rc = 0;
	for (int i = 100; i < 5000 && rc == 0; i++)
		rc = put_i(db, i);
	ASSERT_EQ(rc, -ENOSPC); /* the log's write-out failed */
	q_fault_env_fail_at(fe, 0, 0, 0, 0); /* space back */
	/* the write resumes on a new log */
	bg_call wr = {db, 0, 0};
	reads_go_on_while_a_log_is_created(db, fe, put_thread, &wr);
	ASSERT_OK(wr.rc);
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(probe(db, i), 0);
	ASSERT_EQ(probe(db, 5000), 0);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* lsm_write_nowait must not wait behind a writer that leads the queue:
 * the flush request held while it creates the next log. Reads from memory
 * go on meanwhile; the refused write changed nothing. */
QTEST(write_nowait_again_while_another_writer_leads)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_with_keys(fe, LSM_SYNC_NONE);
	char k[32], v[VAL_MAX];
	key_of(k, 100);
	val_of(v, 100);
	lsm_batch *b = lsm_batch_new();
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_slice_str(v)));
	sync_gate g = {1, 0, 0};
	q_fault_env_on_sync_dir(fe, gate_hook, &g);
	bg_call fl = {db, 0, 0};
	pthread_t ft;
	ASSERT_EQ(pthread_create(&ft, NULL, flush_thread, &fl), 0);
	int entered = qtest_wait_flag(&g.entered, 10000);
	lsm_stats s0, s1;
	lsm_get_stats(db, &s0);
	int wrc = entered ? lsm_write_nowait(db, b) : 0;
	q_buf out = Q_BUF_INIT;
	key_of(k, 7);
	int grc = entered ? lsm_get_nowait(db, q_slice_str(k), &out) : -1;
	lsm_get_stats(db, &s1);
	atomic_store(&g.open, 1);
	pthread_join(ft, NULL);
	q_fault_env_on_sync_dir(fe, NULL, NULL);
	ASSERT(entered);
	ASSERT_EQ(wrc, -EAGAIN);
	ASSERT_OK(grc);
	ASSERT_EQ(s1.commit_groups, s0.commit_groups);
	ASSERT_OK(fl.rc);
	ASSERT_EQ(probe(db, 100), 1); /* not written */
	ASSERT_OK(lsm_write_nowait(db, b)); /* the queue is empty again */
	ASSERT_EQ(probe(db, 100), 0);
	q_buf_free(&out);
	lsm_batch_free(b);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST_MAIN(QT(power_loss_keeps_acked_writes_always), QT(power_loss_sync_none_leaves_a_prefix),
	   QT(reads_go_on_while_writes_resume_on_a_new_log),
	   QT(eio_on_log_write), QT(eio_on_sync), QT(enospc_everywhere_later), QT(eio_on_rename),
	   QT(enospc_then_space_back_always), QT(enospc_then_space_back_batch),
	   QT(emfile_then_descriptors_back), QT(failed_log_switch_is_logged_once),
	   QT(torn_log_append), QT(table_flip_quarantines_and_serves_rest),
	   QT(iterator_reports_table_corruption), QT(table_footer_flip_quarantined_at_open),
	   QT(log_flip_reported_rest_replayed), QT(manifest_flip_falls_back_to_previous),
	   QT(manifest_and_previous_corrupt_refuse_to_open),
	   QT(manifest_missing_after_interrupted_replacement),
	   QT(table_truncated_under_open_store_is_an_error),
	   QT(table_truncated_to_zero_under_open_store),
	   QT(table_size_differs_from_manifest_quarantined_at_open),
	   QT(power_loss_keeps_acked_writes_always_blob), QT(eio_on_sync_blob),
	   QT(enospc_everywhere_later_blob), QT(eio_on_write_blob),
	   QT(blob_flip_reported_rest_served), QT(blob_truncated_before_open),
	   QT(manifest_flip_falls_back_to_previous_blob),
	   QT(sync_failure_in_flush_then_reopen), QT(sync_failure_in_compaction_then_reopen),
	   QT(sync_failure_in_flush_then_reopen_blob), QT(failed_flush_leaves_no_blob_file),
	   QT(reads_go_on_while_the_next_log_is_created),
	   QT(write_nowait_again_while_another_writer_leads))
