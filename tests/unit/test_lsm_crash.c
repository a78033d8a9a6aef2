/*
 * test_lsm_crash.c - kill -9 crash test of the storage engine.
 *
 * Each cycle starts lsm_crash_writer on the same store, kills it with
 * SIGKILL after a random delay (during open, writes, flushes, compactions
 * or manifest updates), reopens the store and checks it against a model
 * built from the writer's acknowledgement log: every acknowledged operation
 * must be there; the one operation in flight at the kill may be there or
 * not, and if it is a batch, entirely or not at all. The model then takes
 * the observed state and the next cycle continues on the same store.
 * Most writer runs keep values of 150 bytes and more in blob files (see
 * lsm_crash_writer.c), a third of them with large incompressible values
 * that stay in kept commit logs; the check reopens with the same
 * threshold, so recovery's flushes write blob files too.
 *
 * make check: up to 150 cycles, at most ~60 s; QFS_LONG=1: up to 1000
 * cycles, at most ~15 min.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "lsm/lsm.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define NKEYS 500

static char *model[NKEYS];

typedef struct op {
	int n;              /* keys touched */
	int key[5];
	char *val[5];       /* NULL = delete */
} op;

static void op_free(op *o)
{
	for (int i = 0; i < o->n; i++)
		free(o->val[i]);
	memset(o, 0, sizeof(*o));
}

static int parse_key(const char *s)
{
	if (s[0] != 'c')
		QTEST_FAIL_("bad key in log: %s", s);
	return atoi(s + 1);
}

/* Parses "I ..." (without the newline) into o. */
static void parse_op(char *s, op *o)
{
	char *save = NULL;
	char *t = strtok_r(s + 2, " ", &save);
	memset(o, 0, sizeof(*o));
	if (!strcmp(t, "P")) {
		o->n = 1;
		o->key[0] = parse_key(strtok_r(NULL, " ", &save));
		o->val[0] = strdup(strtok_r(NULL, " ", &save));
	} else if (!strcmp(t, "D")) {
		o->n = 1;
		o->key[0] = parse_key(strtok_r(NULL, " ", &save));
	} else if (!strcmp(t, "B")) {
		o->n = atoi(strtok_r(NULL, " ", &save));
		for (int i = 0; i < o->n; i++) {
			o->key[i] = parse_key(strtok_r(NULL, " ", &save));
			o->val[i] = strdup(strtok_r(NULL, " ", &save));
		}
	} else {
		QTEST_FAIL_("bad op in log: %s", s);
	}
}

static void apply(const op *o)
{
	for (int i = 0; i < o->n; i++) {
		free(model[o->key[i]]);
		model[o->key[i]] = o->val[i] ? strdup(o->val[i]) : NULL;
	}
}

/* Applies every acknowledged op of the log; returns the op in flight. */
static int replay_acks(const char *path, op *pending, uint64_t *acked)
{
	uint8_t *d;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), path, &d, &n));
	char *s = malloc(n + 1);
	memcpy(s, d, n);
	s[n] = 0;
	free(d);
	int have = 0;
	char *line = s;
	while (*line) {
		char *nl = strchr(line, '\n');
		if (!nl)
			break; /* a torn last line: the op was not acknowledged */
		*nl = 0;
		if (line[0] == 'I') {
			if (have)
				QTEST_FAIL_("two intents without an ack");
			parse_op(line, pending);
			have = 1;
		} else if (line[0] == 'A') {
			if (!have)
				QTEST_FAIL_("ack without intent");
			apply(pending);
			op_free(pending);
			have = 0;
			(*acked)++;
		}
		line = nl + 1;
	}
	free(s);
	return have;
}

static int same(const char *a, const q_buf *b, int found)
{
	if (!a)
		return !found;
	return found && b->len == strlen(a) && !memcmp(b->p, a, b->len);
}

static void verify(const char *dir, op *pending, int have_pending)
{
	lsm_options o;
	lsm_options_default(&o);
	o.write_buffer_size = 24 << 10;
	o.block_size = 1024;
	o.blob_threshold = 150;
	lsm_db *db;
	int rc = lsm_open(dir, &o, &db);
	if (rc)
		QTEST_FAIL_("reopen after kill: %s", q_strerror(rc));
	q_buf out = Q_BUF_INIT;
	char k[16];
	int pend_applied = -1; /* unknown */
	for (int i = 0; i < NKEYS; i++) {
		snprintf(k, sizeof(k), "c%04d", i);
		rc = lsm_get(db, q_slice_str(k), &out);
		if (rc && rc != Q_ENOTFOUND)
			QTEST_FAIL_("get %s: %s", k, q_strerror(rc));
		int found = rc == 0;
		if (same(model[i], &out, found))
			continue;
		/* must be the in-flight op's effect */
		int j = -1;
		for (int x = 0; have_pending && x < pending->n; x++)
			if (pending->key[x] == i)
				j = x;
		if (j < 0)
			QTEST_FAIL_("%s: holds %s, model says %s", k, found ? "a value" : "nothing",
				    model[i] ? model[i] : "(absent)");
		if (!same(pending->val[j], &out, found))
			QTEST_FAIL_("%s: value from neither model nor in-flight op", k);
		pend_applied = 1;
	}
	if (pend_applied == 1) {
		/* atomic: every key of the in-flight op shows its effect */
		for (int x = 0; x < pending->n; x++) {
			snprintf(k, sizeof(k), "c%04d", pending->key[x]);
			rc = lsm_get(db, q_slice_str(k), &out);
			if (!same(pending->val[x], &out, rc == 0))
				QTEST_FAIL_("batch applied only in part (%s)", k);
		}
		apply(pending);
	}
	/* a full scan agrees with the (updated) model */
	lsm_iter *it;
	ASSERT_OK(lsm_iter_new(db, &it));
	int live = 0, seen = 0;
	for (int i = 0; i < NKEYS; i++)
		live += model[i] != NULL;
	for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice key = lsm_iter_key(it);
		ASSERT_EQ(key.n, 5);
		char kb[8];
		memcpy(kb, key.p, 5);
		kb[5] = 0;
		int i = parse_key(kb);
		ASSERT(model[i] != NULL);
		ASSERT_EQ(lsm_iter_value(it).n, strlen(model[i]));
		seen++;
	}
	ASSERT_OK(lsm_iter_status(it));
	ASSERT_EQ(seen, live);
	lsm_iter_free(it);
	q_buf_free(&out);
	ASSERT_OK(lsm_close(db));
}

QTEST(kill9_cycles)
{
	int is_long = getenv("QFS_LONG") && !strcmp(getenv("QFS_LONG"), "1");
	int max_cycles = is_long ? 1000 : 150;
	uint64_t budget_ms = is_long ? 900000 : 60000;
	char exe[PATH_MAX], writer[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ASSERT(n > 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(writer, sizeof(writer), "%s/lsm_crash_writer", exe);
	ASSERT(access(writer, X_OK) == 0);
	char dir[400], acks[420];
	snprintf(dir, sizeof(dir), "%s/db", qtest_tmpdir);
	snprintf(acks, sizeof(acks), "%s/acks", qtest_tmpdir);
	q_log_set_level(Q_LOG_ERROR);
	unsigned rnd = (unsigned)q_wall_ns();
	fprintf(stderr, "crash test seed %u\n", rnd);
	uint64_t t0 = q_mono_ms(), total_acked = 0;
	int cycles = 0, mid_write = 0;
	while (cycles < max_cycles && q_mono_ms() - t0 < budget_ms) {
		int fd = open(acks, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ASSERT(fd >= 0);
		pid_t pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			char seed[32];
			snprintf(seed, sizeof(seed), "%u", rand_r(&rnd) + (unsigned)cycles);
			dup2(fd, 1);
			execl(writer, writer, dir, seed, (char *)NULL);
			_exit(127);
		}
		close(fd);
		/* one kill in five anywhere from start-up on (so also during
		 * recovery); the others once the writer has acknowledged its
		 * first write, so most land in the write stream (flushes,
		 * compactions, manifest updates) */
		if (rand_r(&rnd) % 5) {
			uint64_t w0 = q_mono_ms();
			uint64_t sz = 0;
			while (q_mono_ms() - w0 < 3000 &&
			       (q_env_file_size(q_env_posix(), acks, &sz) || sz < 4))
				q_sleep_ms(2);
		}
		q_sleep_ms((uint64_t)(rand_r(&rnd) % 200));
		kill(pid, SIGKILL);
		int st;
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
		if (!WIFSIGNALED(st))
			QTEST_FAIL_("writer exited by itself (status %d); see stderr", st);
		op pending;
		memset(&pending, 0, sizeof(pending));
		uint64_t acked = 0;
		int have = replay_acks(acks, &pending, &acked);
		total_acked += acked;
		mid_write += have;
		verify(dir, &pending, have);
		op_free(&pending);
		cycles++;
	}
	fprintf(stderr, "crash test: %d cycles, %llu acknowledged ops, %d kills with a write "
		"in flight, %llu ms\n", cycles, (unsigned long long)total_acked, mid_write,
		(unsigned long long)(q_mono_ms() - t0));
	ASSERT(cycles >= 20);
	ASSERT(total_acked > 0);
	for (int i = 0; i < NKEYS; i++)
		free(model[i]);
}

QTEST_MAIN(QT(kill9_cycles))
