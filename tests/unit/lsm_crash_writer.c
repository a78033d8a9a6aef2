/*
 * lsm_crash_writer.c - the victim of the crash test (test_lsm_crash.c).
 *
 * Usage: lsm_crash_writer DIR SEED. Opens the store with sync=always and a
 * small memtable (so flushes and compactions run all the time) and applies
 * random puts, deletes and 2..5-op batches to keys c0000..c0499 until it is
 * killed. Before each operation it writes "I <op>" to stdout, after the
 * store acknowledged it "A"; each line is one write(2), so a SIGKILL leaves
 * a clean record of what was acknowledged. Two seeds in three run with
 * key-value separation for values of at least 150 bytes (values are 10..299
 * bytes), so blob files are written, collected and deleted under the kills;
 * the third runs without. One of those two (seed % 3 == 2) also puts
 * 16..20 KiB values of random letters (one put in six), which flushes
 * leave in their commit logs (kept logs, lsm_options.log_values). Exits by itself after a bounded
 * number of operations or when its parent goes away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsm/lsm.h"
#include "util/log.h"
#include "util/qerr.h"

#define NKEYS 500

static void out(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(1, s, n);
		if (w <= 0)
			exit(3);
		s += w;
		n -= (size_t)w;
	}
}

static void make_value(char *v, unsigned seed, unsigned ctr, unsigned *rnd)
{
	int len = snprintf(v, 400, "v%u-%u-", seed, ctr);
	int target = 10 + (int)(rand_r(rnd) % 290);
	while (len < target) {
		v[len] = (char)('a' + (len * 13 + (int)ctr) % 26);
		len++;
	}
	v[len] = 0;
}

/* 16..20 KiB of random letters: held by reference in the memtable and,
 * as snappy cannot compress it, left in the commit log by flushes */
#define LARGE_MAX 20480
static char bigv[LARGE_MAX + 64], bigline[LARGE_MAX + 128];

static void make_large(char *v, unsigned seed, unsigned ctr, unsigned *rnd)
{
	int len = snprintf(v, 64, "L%u-%u-", seed, ctr);
	int target = 16384 + (int)(rand_r(rnd) % (LARGE_MAX - 16384));
	while (len < target)
		v[len++] = (char)('a' + rand_r(rnd) % 26);
	v[len] = 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR SEED\n", argv[0]);
		return 2;
	}
	q_log_set_level(Q_LOG_ERROR);
	unsigned seed = (unsigned)strtoul(argv[2], NULL, 10);
	unsigned rnd = seed;
	pid_t parent = getppid();
	lsm_options o;
	lsm_options_default(&o);
	o.sync = LSM_SYNC_ALWAYS;
	o.write_buffer_size = 24 << 10;
	o.block_size = 1024;
	o.blob_threshold = seed % 3 ? 150 : 0;
	lsm_db *db;
	int rc = lsm_open(argv[1], &o, &db);
	if (rc) {
		fprintf(stderr, "open: %s\n", q_strerror(rc));
		return 1;
	}
	lsm_batch *b = lsm_batch_new();
	char line[4096], k[5][16], v[5][400];
	for (unsigned ctr = 0; ctr < 200000; ctr++) {
		if ((ctr & 63) == 0 && getppid() != parent)
			break;
		int kind = (int)(rand_r(&rnd) % 10);
		int n = kind < 6 ? 1 : kind < 8 ? 1 : 2 + (int)(rand_r(&rnd) % 4);
		int len;
		if (kind < 6 && seed % 3 == 2 && rand_r(&rnd) % 6 == 0) { /* large put */
			snprintf(k[0], sizeof(k[0]), "c%04u", rand_r(&rnd) % NKEYS);
			make_large(bigv, seed, ctr, &rnd);
			len = snprintf(bigline, sizeof(bigline), "I P %s %s\n", k[0], bigv);
			out(bigline, (size_t)len);
			rc = lsm_put(db, q_slice_str(k[0]), q_slice_str(bigv));
		} else if (kind < 6) { /* put */
			snprintf(k[0], sizeof(k[0]), "c%04u", rand_r(&rnd) % NKEYS);
			make_value(v[0], seed, ctr, &rnd);
			len = snprintf(line, sizeof(line), "I P %s %s\n", k[0], v[0]);
			out(line, (size_t)len);
			rc = lsm_put(db, q_slice_str(k[0]), q_slice_str(v[0]));
		} else if (kind < 8) { /* delete */
			snprintf(k[0], sizeof(k[0]), "c%04u", rand_r(&rnd) % NKEYS);
			len = snprintf(line, sizeof(line), "I D %s\n", k[0]);
			out(line, (size_t)len);
			rc = lsm_delete(db, q_slice_str(k[0]));
		} else { /* batch of distinct keys */
			lsm_batch_clear(b);
			len = snprintf(line, sizeof(line), "I B %d", n);
			unsigned base = rand_r(&rnd) % NKEYS;
			for (int i = 0; i < n; i++) {
				snprintf(k[i], sizeof(k[i]), "c%04u", (base + (unsigned)i * 7) % NKEYS);
				make_value(v[i], seed, ctr * 8 + (unsigned)i, &rnd);
				len += snprintf(line + len, sizeof(line) - (size_t)len, " %s %s", k[i], v[i]);
				lsm_batch_put(b, q_slice_str(k[i]), q_slice_str(v[i]));
			}
			len += snprintf(line + len, sizeof(line) - (size_t)len, "\n");
			out(line, (size_t)len);
			rc = lsm_write(db, b);
		}
		if (rc) {
			fprintf(stderr, "write failed: %s\n", q_strerror(rc));
			return 1;
		}
		out("A\n", 2);
	}
	lsm_batch_free(b);
	return lsm_close(db) ? 1 : 0;
}
