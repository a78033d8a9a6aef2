/*
 * test_lsm_oom.c - the storage engine when an allocation fails.
 *
 * The program is linked with the allocation wraps of qalloc_fail.h, so the
 * Nth malloc/calloc/realloc/strdup made anywhere in the engine (or its
 * background threads) returns NULL. For N = 1, 2, ... a fixed sequence of
 * operations - open, puts, a batch, gets, an iteration, flush, more puts,
 * a full compaction, a delete, close, reopen, reads, close - runs with the
 * Nth allocation failing, until a run no longer reaches N. For every N:
 *   - the first operation that fails returns -ENOMEM (nothing else: an
 *     out-of-memory must not turn into "corrupt" or "not found");
 *   - the store closes without crashing, and LeakSanitizer finds nothing
 *     (checked every 32 runs and at the end: a leak stays unreachable);
 *   - reopened without failures, every acknowledged write is there with its
 *     value, a deleted key is gone, and the write that failed is either
 *     wholly applied or not at all.
 * Sticky runs (every allocation from the Nth on fails, as in a real
 * out-of-memory) check that close and cleanup work with no memory at all.
 *
 * The short form steps N after the first few hundred so the file stays near
 * a minute under ASan; QFS_LONG=1 tries every N.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lsm/lsm.h"
#include "qalloc_fail.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"

#define NKEYS 48
#define VLEN 120

/* What the store must hold: for each key the acknowledged version (0 =
 * absent, -1 = deleted) and, for the one failed operation, the version it
 * tried to write (an outcome that may or may not have been applied). */
typedef struct model {
	int acked[NKEYS];
	int maybe[NKEYS]; /* 0 none, >0 version, -1 delete */
} model;

typedef struct run_stats {
	uint64_t runs, failed_runs, sticky_runs;
	uint64_t first_rc_enomem, completed_despite_failure;
} run_stats;

static void key_of(char *k, int i)
{
	snprintf(k, 32, "key-%04d", i);
}

static void val_of(char *v, int i, int ver)
{
	int n = snprintf(v, VLEN + 1, "v%d-k%d-", ver, i);
	for (int j = n; j < VLEN; j++)
		v[j] = (char)('a' + (i * 7 + j + ver) % 26);
	v[VLEN] = 0;
}

static lsm_db *db;
static model md;
static char dir[400];
static char base[256]; /* where the runs' stores go */

/* The stores go to a tmpfs (/dev/shm) when there is one: the runs test
 * memory failures, not the disk, and a few thousand fsyncs on a busy disk
 * would make the file slow. Otherwise into the test's temporary dir. */
static void pick_base(void)
{
	snprintf(base, sizeof(base), "/dev/shm/qtest-oom-XXXXXX");
	if (!mkdtemp(base))
		snprintf(base, sizeof(base), "%s", qtest_tmpdir);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void drop_base(void)
{
	if (strcmp(base, qtest_tmpdir))
		nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int open_db(int sync_always)
{
	lsm_options o;
	lsm_options_default(&o);
	o.sync = sync_always ? LSM_SYNC_ALWAYS : LSM_SYNC_NONE;
	o.write_buffer_size = 16 << 10;
	o.block_size = 512;
	o.block_cache_size = 64 << 10;
	return lsm_open(dir, &o, &db);
}

static int put(int i, int ver)
{
	char k[32], v[VLEN + 1];
	key_of(k, i);
	val_of(v, i, ver);
	md.maybe[i] = ver;
	int rc = lsm_put(db, q_slice_str(k), q_slice_make(v, VLEN));
	if (rc == 0) {
		md.acked[i] = ver;
		md.maybe[i] = 0;
	}
	return rc;
}

static int del(int i)
{
	char k[32];
	key_of(k, i);
	md.maybe[i] = -1;
	int rc = lsm_delete(db, q_slice_str(k));
	if (rc == 0) {
		md.acked[i] = -1;
		md.maybe[i] = 0;
	}
	return rc;
}

/* Checks key i against the model; strict = no failed write pending. */
static int check_key(int i)
{
	char k[32], v[VLEN + 1];
	key_of(k, i);
	q_buf out = Q_BUF_INIT;
	int rc = lsm_get(db, q_slice_str(k), &out);
	if (rc != 0 && rc != Q_ENOTFOUND) {
		q_buf_free(&out);
		return rc;
	}
	int ok = 0;
	int cands[2] = {md.acked[i], md.maybe[i]};
	for (int c = 0; c < 2 && !ok; c++) {
		if (c == 1 && md.maybe[i] == 0)
			break;
		int ver = cands[c];
		if (ver <= 0) {
			ok = rc == Q_ENOTFOUND;
		} else if (rc == 0) {
			val_of(v, i, ver);
			ok = out.len == VLEN && !memcmp(out.p, v, VLEN);
		}
	}
	if (!ok)
		QTEST_FAIL_("key %d: %s (%zu bytes), acked version %d, pending %d", i,
			    rc ? q_strerror(rc) : "found", out.len, md.acked[i], md.maybe[i]);
	q_buf_free(&out);
	return 0;
}

/* Walks the whole store; every key seen must be one the model allows. */
static int iterate(void)
{
	lsm_iter *it = NULL;
	int rc = lsm_iter_new(db, &it);
	if (rc)
		return rc;
	int n = 0;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it) && n < 4 * NKEYS; lsm_iter_next(it))
		n++;
	rc = lsm_iter_status(it);
	lsm_iter_free(it);
	if (rc == 0 && n > NKEYS)
		QTEST_FAIL_("iteration saw %d keys, at most %d exist", n, NKEYS);
	return rc;
}

/* The operation sequence; returns the first error (0 if none). */
static int sequence(int sync_always)
{
	int rc;
	if ((rc = open_db(sync_always)))
		return rc;
	for (int i = 0; i < 30; i++)
		if ((rc = put(i, 1)))
			return rc;
	lsm_batch *b = lsm_batch_new();
	if (!b)
		return -ENOMEM;
	char k[32], v[VLEN + 1];
	for (int i = 30; i < 40 && rc == 0; i++) {
		key_of(k, i);
		val_of(v, i, 1);
		rc = lsm_batch_put(b, q_slice_str(k), q_slice_make(v, VLEN));
	}
	key_of(k, 0);
	if (rc == 0)
		rc = lsm_batch_delete(b, q_slice_str(k));
	if (rc == 0) {
		for (int i = 30; i < 40; i++)
			md.maybe[i] = 1;
		md.maybe[0] = -1;
		rc = lsm_write(db, b);
		if (rc == 0) {
			for (int i = 30; i < 40; i++)
				md.acked[i] = 1;
			md.acked[0] = -1;
			memset(md.maybe, 0, sizeof(md.maybe));
		}
	}
	lsm_batch_free(b);
	if (rc)
		return rc;
	for (int i = 0; i < NKEYS; i++)
		if ((rc = check_key(i)))
			return rc;
	if ((rc = iterate()))
		return rc;
	if ((rc = lsm_flush(db)))
		return rc;
	for (int i = 0; i < 20; i++)
		if ((rc = put(i, 2)))
			return rc;
	if ((rc = lsm_compact_all(db)))
		return rc;
	if ((rc = del(5)))
		return rc;
	for (int i = 40; i < NKEYS; i++)
		if ((rc = put(i, 3)))
			return rc;
	rc = lsm_close(db);
	db = NULL;
	if (rc)
		return rc;
	if ((rc = open_db(sync_always)))
		return rc;
	for (int i = 0; i < NKEYS; i += 3)
		if ((rc = check_key(i)))
			return rc;
	if ((rc = iterate()))
		return rc;
	if ((rc = put(7, 4)))
		return rc;
	rc = lsm_close(db);
	db = NULL;
	return rc;
}

/* One run with the nth allocation failing; checks everything afterwards. */
static void one_run(uint64_t n, int sticky, run_stats *st, int *reached)
{
	memset(&md, 0, sizeof(md));
	snprintf(dir, sizeof(dir), "%s/db-%llu-%d", base, (unsigned long long)n, sticky);
	int sync_always = n % 4 == 1; /* the group-commit path, now and then */
	db = NULL;
	qalloc_fail_arm(n, sticky);
	int rc = sequence(sync_always);
	int crc = 0;
	if (db) {
		crc = lsm_close(db);
		db = NULL;
	}
	qalloc_fail_disarm();
	uint64_t hit = qalloc_fail_hit();
	*reached = hit > 0;
	if (getenv("QFS_OOM_VERBOSE"))
		fprintf(stderr, "# N=%llu%s: sequence %d, close %d, %llu failed allocations\n",
		       (unsigned long long)n, sticky ? " sticky" : "", rc, crc,
		       (unsigned long long)hit);
	st->runs++;
	st->sticky_runs += sticky != 0;
	if (rc) {
		st->failed_runs++;
		if (!hit)
			QTEST_FAIL_("N=%llu: %s without any failed allocation",
				    (unsigned long long)n, q_strerror(rc));
		if (rc != -ENOMEM)
			QTEST_FAIL_("N=%llu%s: the failed allocation came back as \"%s\" (%d), "
				    "not -ENOMEM", (unsigned long long)n, sticky ? " sticky" : "",
				    q_strerror(rc), rc);
		st->first_rc_enomem++;
	} else if (hit) {
		st->completed_despite_failure++;
	}
	if (crc && crc != -ENOMEM)
		QTEST_FAIL_("N=%llu: close after the failure: %s", (unsigned long long)n,
			    q_strerror(crc));
	/* reopen without failures: every acknowledged write is there */
	rc = open_db(0);
	if (rc)
		QTEST_FAIL_("N=%llu%s: reopen after the failure: %s", (unsigned long long)n,
			    sticky ? " sticky" : "", q_strerror(rc));
	for (int i = 0; i < NKEYS; i++) {
		rc = check_key(i);
		if (rc)
			QTEST_FAIL_("N=%llu: read after reopen: %s", (unsigned long long)n,
				    q_strerror(rc));
	}
	ASSERT_OK(iterate());
	ASSERT_OK(lsm_close(db));
	db = NULL;
	/* a leak stays unreachable: checking every few runs (and at the end)
	 * finds all of them; the report names the allocation's stack */
	if (st->runs % 32 == 0 && qalloc_leak_check() > 0)
		QTEST_FAIL_("LeakSanitizer found a leak in runs up to N=%llu%s (report above)",
			    (unsigned long long)n, sticky ? " sticky" : "");
}

static int long_form(void)
{
	const char *l = getenv("QFS_LONG");
	return l && *l && strcmp(l, "0");
}

QTEST(alloc_hook_is_linked)
{
	ASSERT(qalloc_fail_linked());
	qalloc_fail_arm(2, 0);
	void *a = malloc(8);
	char *b = strdup("x");
	void *c = calloc(1, 8);
	qalloc_fail_disarm();
	ASSERT(a != NULL);
	ASSERT(b == NULL);
	ASSERT(c != NULL);
	ASSERT_EQ(qalloc_fail_hit(), 1);
	free(a);
	free(c);
	/* an allocation made inside a module library fails too */
	qalloc_fail_arm(1, 1);
	lsm_batch *bt = lsm_batch_new();
	qalloc_fail_disarm();
	ASSERT(bt == NULL);
	ASSERT_EQ(qalloc_fail_hit(), 1);
}

/* The leak check really fails a leaking child (run in a grandchild whose
 * report goes to /dev/null, so the log stays clean). */
QTEST(leak_check_detects_a_leak)
{
	if (qalloc_leak_check() < 0) {
		printf("# built without LeakSanitizer: leak checks are off\n");
		return;
	}
	for (int leak = 0; leak < 2; leak++) {
		fflush(NULL);
		pid_t pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			if (!freopen("/dev/null", "w", stderr))
				_exit(3);
			static void *volatile keep;
			void *p = malloc(100);
			memset(p, 1, 100);
			if (!leak)
				keep = p;
			p = NULL;
			(void)keep;
			_exit(qalloc_leak_check() == 1 ? 1 : 0);
		}
		int st;
		ASSERT(waitpid(pid, &st, 0) == pid);
		ASSERT(WIFEXITED(st));
		ASSERT_EQ(WEXITSTATUS(st), leak);
	}
}

static void nth_loop(int sticky_every)
{
	q_log_set_level(Q_LOG_OFF);
	pick_base();
	/* a clean run to learn how many allocations the sequence makes */
	run_stats st = {0};
	int reached;
	one_run(0, 0, &st, &reached);
	qalloc_fail_arm(0, 0);
	memset(&md, 0, sizeof(md));
	snprintf(dir, sizeof(dir), "%s/db-count", base);
	ASSERT_OK(sequence(1));
	uint64_t total = qalloc_fail_calls();
	ASSERT(total > 10);
	uint64_t dense = 300, budget = long_form() ? 100000 : 250;
	uint64_t step = total > dense ? (total - dense) / budget + 1 : 1;
	uint64_t n = 1, last = 0;
	for (uint64_t iter = 0; iter < 200000; iter++) {
		int sticky = sticky_every && n % (uint64_t)sticky_every == 0;
		one_run(n, sticky, &st, &reached);
		last = n;
		if (!reached && !sticky)
			break;
		if (!reached && sticky) {
			/* past the end: one plain run to confirm and stop */
			one_run(n, 0, &st, &reached);
			if (!reached)
				break;
		}
		n += n < dense ? 1 : step;
	}
	if (qalloc_leak_check() > 0)
		QTEST_FAIL_("LeakSanitizer found a leak (report above)");
	printf("# %llu allocations in a clean sequence; N = 1..%llu (step %llu after %llu): "
	       "%llu runs (%llu sticky), %llu ended in -ENOMEM, %llu completed although an "
	       "allocation failed\n",
	       (unsigned long long)total, (unsigned long long)last, (unsigned long long)step,
	       (unsigned long long)dense, (unsigned long long)st.runs,
	       (unsigned long long)st.sticky_runs, (unsigned long long)st.first_rc_enomem,
	       (unsigned long long)st.completed_despite_failure);
	ASSERT(st.first_rc_enomem > 0);
	drop_base();
}

QTEST(lsm_nth_alloc_fails)
{
	nth_loop(0);
}

QTEST(lsm_nth_alloc_fails_sticky)
{
	nth_loop(1);
}

/* A batch written once holds a large value the memtable now shares; writing
 * it again copies the encoding first. When that copy fails nothing reached
 * the log: that write fails with ENOMEM and the store keeps accepting
 * writes (it used to stop them until reopened). */
QTEST(resubmitted_shared_batch_alloc_failure_is_not_sticky)
{
	q_log_set_level(Q_LOG_OFF);
	char path[600];
	snprintf(path, sizeof(path), "%s/db", qtest_tmpdir);
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_NONE;
	lsm_db *d;
	ASSERT_OK(lsm_open(path, &o, &d));
	size_t big = 100000;
	char *v = malloc(big);
	ASSERT(v);
	memset(v, 'x', big);
	lsm_batch *b = lsm_batch_new();
	ASSERT(b);
	ASSERT_OK(lsm_batch_put(b, q_slice_str("big"), q_slice_make(v, big)));
	ASSERT_OK(lsm_write(d, b));
	int failures = 0;
	for (uint64_t n = 1; n <= 8; n++) {
		qalloc_fail_arm(n, 0);
		int rc = lsm_write(d, b);
		int hit = qalloc_fail_hit() > 0;
		qalloc_fail_disarm();
		if (hit) {
			failures++;
			ASSERT(rc == 0 || rc == -ENOMEM);
		} else {
			ASSERT_OK(rc);
		}
		ASSERT_OK(lsm_put(d, q_slice_str("small"), q_slice_str("v")));
	}
	ASSERT(failures > 0);
	q_buf out = Q_BUF_INIT;
	ASSERT_OK(lsm_get(d, q_slice_str("big"), &out));
	ASSERT_EQ(out.len, big);
	q_buf_free(&out);
	lsm_batch_free(b);
	free(v);
	ASSERT_OK(lsm_close(db));
}

QTEST_MAIN(QT(alloc_hook_is_linked), QT(leak_check_detects_a_leak), QT(lsm_nth_alloc_fails),
	   QT(lsm_nth_alloc_fails_sticky), QT(resubmitted_shared_batch_alloc_failure_is_not_sticky))
