/*
 * lsm_bench.c - storage engine benchmark, ours against LevelDB in one run.
 *
 * Usage: lsm_bench [--num N] [--dir DIR] [--engine ours|leveldb|both]
 *                  [--sync-ops N] [--threads T] [--repeat R] [--value_size B]
 *                  [--blob_threshold B] [--reads-only]
 *
 * Workloads (after LevelDB's db_bench): fillseq, fillrandom, readrandom,
 * readmissing, compact + readrandom after full compaction, fillsync with one
 * writer and with T concurrent writers. Keys are 16 bytes ("%016d"), values
 * 100 bytes by default (--value_size B for others, e.g. 1048576 for the
 * filesystem's chunks), made of 100-byte pieces that are half compressible
 * (50 random bytes repeated), as in db_bench. Both engines get
 * the identical key and value sequence. Each engine runs in its own child
 * process so that its peak RSS (getrusage of the child) is its own. With
 * --repeat R the engines run alternately R times each and the best ops/s of
 * each workload is kept (the machine may be shared; alternating keeps the
 * comparison fair).
 *
 * LevelDB is configured as the issue asks: 4 MiB write buffer, 10-bit bloom
 * filter, snappy (its default), default 8 MiB block cache; ours uses its
 * defaults (the same sizes; --blob_threshold B sets its key-value separation
 * threshold, 0 = off, default the engine's 64 KiB). Fills are not synced; fillsync syncs each
 * write (ours: sync=always with group commit; LevelDB: sync=true).
 * --reads-only runs fillrandom and the read workloads only (fillseq and the
 * fillsyncs print 0), for quick read-path comparisons and profiles.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#ifdef HAVE_LEVELDB
#include <leveldb/c.h>
#endif

#include "lsm/lsm.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define KEY_LEN 16
#define PIECE_LEN 100

enum { B_FILLSEQ, B_FILLRANDOM, B_READRANDOM, B_READMISSING, B_READCOMPACT, B_FILLSYNC1,
       B_FILLSYNCN, B_NBENCH };
static const char *bench_names[B_NBENCH] = {
	"fillseq", "fillrandom", "readrandom", "readmissing", "readrandom-compacted",
	"fillsync-1", "fillsync-N",
};

typedef struct result {
	double ops[B_NBENCH];
	double cpu_ns[B_NBENCH]; /* reads: CPU time of the reading thread per op */
	uint64_t found[B_NBENCH];
	uint64_t size_fillrandom, size_compacted;
	long maxrss_kb;
	uint64_t compact_ms;
} result;

static long g_num = 1000000;
static long g_sync_ops = 2000;
static int g_threads = 8;
static int g_repeat = 1;
static const char *g_dir = "/tmp/lsm_bench";
static size_t g_value_len = 100;
static long g_blob_threshold = -1; /* -1: the engine default */
static int g_reads_only; /* --reads-only: skip fillseq and the fillsyncs */

/* ---- data ---- */

static char *g_pool;
#define POOL_SIZE (1 << 20)

static void make_pool(void)
{
	size_t total = POOL_SIZE + g_value_len;
	g_pool = malloc(total + PIECE_LEN);
	if (!g_pool) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	uint64_t s = 301;
	for (size_t i = 0; i < total; i += PIECE_LEN) {
		char raw[PIECE_LEN / 2];
		for (int j = 0; j < PIECE_LEN / 2; j++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			raw[j] = (char)(' ' + (s >> 33) % 95);
		}
		for (int j = 0; j < PIECE_LEN && i + (size_t)j < total; j++)
			g_pool[i + (size_t)j] = raw[j % (PIECE_LEN / 2)];
	}
}

static const char *value_at(uint64_t i)
{
	if (g_value_len <= 4096)
		return g_pool + (i * g_value_len) % POOL_SIZE;
	/* large values: start at different pieces so values differ */
	return g_pool + (i * 7919 * PIECE_LEN) % POOL_SIZE;
}

static void key_of(char *k, uint64_t n)
{
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%016" PRIu64, n);
	memcpy(k, tmp, KEY_LEN);
}

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- engines ---- */

typedef struct engine {
	const char *name;
	int (*open)(const char *dir, int sync, void **h);
	int (*put)(void *h, const char *k, size_t kn, const char *v, size_t vn);
	int (*get)(void *h, const char *k, size_t kn, int *found);
	int (*compact)(void *h);
	void (*close)(void *h);
} engine;

typedef struct ours_h {
	lsm_db *db;
} ours_h;

static int ours_open(const char *dir, int sync, void **h)
{
	lsm_options o;
	lsm_options_default(&o);
	o.sync = sync ? LSM_SYNC_ALWAYS : LSM_SYNC_NONE;
	if (g_blob_threshold >= 0)
		o.blob_threshold = (size_t)g_blob_threshold;
	lsm_db *db;
	int rc = lsm_open(dir, &o, &db);
	if (rc) {
		fprintf(stderr, "lsm_open %s: %s\n", dir, q_strerror(rc));
		return rc;
	}
	*h = db;
	return 0;
}

static int ours_put(void *h, const char *k, size_t kn, const char *v, size_t vn)
{
	return lsm_put(h, q_slice_make(k, kn), q_slice_make(v, vn));
}

static __thread q_buf t_buf;

static int ours_get(void *h, const char *k, size_t kn, int *found)
{
	int rc = lsm_get(h, q_slice_make(k, kn), &t_buf);
	*found = rc == 0;
	return rc == Q_ENOTFOUND ? 0 : rc;
}

static int ours_compact(void *h)
{
	return lsm_compact_all(h);
}

static void ours_close(void *h)
{
	lsm_close(h);
}

static const engine ours = {"ours", ours_open, ours_put, ours_get, ours_compact, ours_close};

#ifdef HAVE_LEVELDB
typedef struct ldb_h {
	leveldb_t *db;
	leveldb_options_t *o;
	leveldb_filterpolicy_t *fp;
	leveldb_writeoptions_t *wo;
	leveldb_readoptions_t *ro;
} ldb_h;

static int ldb_open(const char *dir, int sync, void **h)
{
	ldb_h *l = calloc(1, sizeof(*l));
	l->o = leveldb_options_create();
	leveldb_options_set_create_if_missing(l->o, 1);
	leveldb_options_set_write_buffer_size(l->o, 4u << 20);
	l->fp = leveldb_filterpolicy_create_bloom(10);
	leveldb_options_set_filter_policy(l->o, l->fp);
	leveldb_options_set_compression(l->o, leveldb_snappy_compression);
	char *err = NULL;
	l->db = leveldb_open(l->o, dir, &err);
	if (err) {
		fprintf(stderr, "leveldb_open: %s\n", err);
		leveldb_free(err);
		return -EIO;
	}
	l->wo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(l->wo, (unsigned char)sync);
	l->ro = leveldb_readoptions_create();
	*h = l;
	return 0;
}

static int ldb_put(void *h, const char *k, size_t kn, const char *v, size_t vn)
{
	ldb_h *l = h;
	char *err = NULL;
	leveldb_put(l->db, l->wo, k, kn, v, vn, &err);
	if (err) {
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

static int ldb_get(void *h, const char *k, size_t kn, int *found)
{
	ldb_h *l = h;
	char *err = NULL;
	size_t vn;
	char *v = leveldb_get(l->db, l->ro, k, kn, &vn, &err);
	if (err) {
		leveldb_free(err);
		return -EIO;
	}
	*found = v != NULL;
	leveldb_free(v);
	return 0;
}

static int ldb_compact(void *h)
{
	ldb_h *l = h;
	leveldb_compact_range(l->db, NULL, 0, NULL, 0);
	return 0;
}

static void ldb_close(void *h)
{
	ldb_h *l = h;
	leveldb_close(l->db);
	leveldb_writeoptions_destroy(l->wo);
	leveldb_readoptions_destroy(l->ro);
	leveldb_options_destroy(l->o);
	leveldb_filterpolicy_destroy(l->fp);
	free(l);
}

static const engine leveldb = {"leveldb", ldb_open, ldb_put, ldb_get, ldb_compact, ldb_close};
#endif

/* ---- helpers ---- */

static uint64_t dir_size(const char *dir)
{
	DIR *d = opendir(dir);
	uint64_t s = 0;
	if (!d)
		return 0;
	struct dirent *de;
	char p[1024];
	while ((de = readdir(d))) {
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			s += (uint64_t)st.st_size;
	}
	closedir(d);
	return s;
}

static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[1024];
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "%s failed: %d\n", what, rc);
	exit(1);
}

static void show_levels(const engine *e, void *h, const char *when)
{
	if (!getenv("LSM_BENCH_VERBOSE"))
		return;
	if (e == &ours) {
		lsm_stats st;
		lsm_get_stats(h, &st);
		fprintf(stderr, "  ours tables per level %s:", when);
		for (int l = 0; l < 7; l++)
			fprintf(stderr, " %llu", (unsigned long long)st.tables_per_level[l]);
		fprintf(stderr, " (stall %llu ms, cache hits %llu misses %llu)\n",
			(unsigned long long)st.stall_ms, (unsigned long long)st.cache_hits,
			(unsigned long long)st.cache_misses);
	}
#ifdef HAVE_LEVELDB
	else {
		char *p = leveldb_property_value(((ldb_h *)h)->db, "leveldb.stats");
		if (p) {
			fprintf(stderr, "  leveldb %s:\n%s", when, p);
			leveldb_free(p);
		}
	}
#endif
}

static double fill(const engine *e, void *h, long n, int random, uint64_t seed)
{
	char k[KEY_LEN];
	uint64_t s = seed;
	uint64_t t0 = q_mono_ns();
	for (long i = 0; i < n; i++) {
		uint64_t kn = random ? rnd_next(&s) % (uint64_t)g_num : (uint64_t)i;
		key_of(k, kn);
		int rc = e->put(h, k, KEY_LEN, value_at((uint64_t)i), g_value_len);
		if (rc)
			die("put", rc);
	}
	return (double)n * 1e9 / (double)(q_mono_ns() - t0);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ops/s; *cpu_ns = CPU time of this thread per op (less sensitive to other
 * load on the machine than ops/s; background threads not included) */
static double readrandom(const engine *e, void *h, long n, int missing, uint64_t seed,
			 uint64_t *found, double *cpu_ns)
{
	char k[KEY_LEN + 1];
	uint64_t s = seed;
	*found = 0;
	uint64_t c0 = thread_cpu_ns();
	uint64_t t0 = q_mono_ns();
	for (long i = 0; i < n; i++) {
		key_of(k, rnd_next(&s) % (uint64_t)g_num);
		int f;
		size_t kn = KEY_LEN;
		if (missing) {
			k[KEY_LEN] = '.';
			kn++;
		}
		int rc = e->get(h, k, kn, &f);
		if (rc)
			die("get", rc);
		*found += (uint64_t)f;
	}
	uint64_t t1 = q_mono_ns();
	*cpu_ns = (double)(thread_cpu_ns() - c0) / (double)n;
	return (double)n * 1e9 / (double)(t1 - t0);
}

typedef struct sync_ctx {
	const engine *e;
	void *h;
	int id;
	long n;
} sync_ctx;

static void *sync_writer(void *arg)
{
	sync_ctx *c = arg;
	char k[KEY_LEN];
	for (long i = 0; i < c->n; i++) {
		key_of(k, (uint64_t)c->id * 100000000ULL + (uint64_t)i);
		int rc = c->e->put(c->h, k, KEY_LEN, value_at((uint64_t)i), g_value_len);
		if (rc)
			die("sync put", rc);
	}
	return NULL;
}

static double fillsync(const engine *e, const char *dir, int threads)
{
	void *h;
	rm_rf(dir);
	if (e->open(dir, 1, &h))
		exit(1);
	pthread_t th[64];
	sync_ctx c[64];
	uint64_t t0 = q_mono_ns();
	for (int i = 0; i < threads; i++) {
		c[i] = (sync_ctx){e, h, i, g_sync_ops};
		pthread_create(&th[i], NULL, sync_writer, &c[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double ops = (double)g_sync_ops * threads * 1e9 / (double)(q_mono_ns() - t0);
	if (e == &ours && getenv("LSM_BENCH_VERBOSE")) {
		lsm_stats st;
		lsm_get_stats(h, &st);
		fprintf(stderr, "  ours fillsync %d writers: %llu groups, %.2f writes per sync\n",
			threads, (unsigned long long)st.commit_groups,
			st.commit_groups ? (double)st.commit_writes / (double)st.commit_groups : 0.0);
	}
	e->close(h);
	rm_rf(dir);
	return ops;
}

static void run_engine(const engine *e, result *r)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, e->name);
	mkdir(g_dir, 0755);
	void *h;

	if (!g_reads_only) {
		rm_rf(dir);
		if (e->open(dir, 0, &h))
			exit(1);
		r->ops[B_FILLSEQ] = fill(e, h, g_num, 0, 0);
		e->close(h);
		fprintf(stderr, "  %s fillseq done\n", e->name);
	}

	rm_rf(dir);
	if (e->open(dir, 0, &h))
		exit(1);
	r->ops[B_FILLRANDOM] = fill(e, h, g_num, 1, 12345);
	fprintf(stderr, "  %s fillrandom done\n", e->name);
	show_levels(e, h, "after fillrandom");
	r->ops[B_READRANDOM] = readrandom(e, h, g_num, 0, 999, &r->found[B_READRANDOM],
					   &r->cpu_ns[B_READRANDOM]);
	fprintf(stderr, "  %s readrandom done\n", e->name);
	show_levels(e, h, "after readrandom");
	r->ops[B_READMISSING] = readrandom(e, h, g_num, 1, 777, &r->found[B_READMISSING],
					    &r->cpu_ns[B_READMISSING]);
	fprintf(stderr, "  %s readmissing done\n", e->name);
	e->close(h);
	r->size_fillrandom = dir_size(dir);
	if (e->open(dir, 0, &h))
		exit(1);
	uint64_t t0 = q_mono_ns();
	int rc = e->compact(h);
	if (rc)
		die("compact", rc);
	r->compact_ms = (q_mono_ns() - t0) / 1000000;
	show_levels(e, h, "after compaction");
	r->ops[B_READCOMPACT] = readrandom(e, h, g_num, 0, 999, &r->found[B_READCOMPACT],
					    &r->cpu_ns[B_READCOMPACT]);
	fprintf(stderr, "  %s readrandom after compaction done\n", e->name);
	show_levels(e, h, "after readrandom-compacted");
	e->close(h);
	r->size_compacted = dir_size(dir);
	rm_rf(dir);
	if (g_reads_only)
		return;

	r->ops[B_FILLSYNC1] = fillsync(e, dir, 1);
	r->ops[B_FILLSYNCN] = fillsync(e, dir, g_threads);
	fprintf(stderr, "  %s fillsync done\n", e->name);
}

/* Runs one engine in a child; its result and peak RSS come back. */
static int run_child(const engine *e, result *r)
{
	int fds[2];
	if (pipe(fds))
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(fds[0]);
		result cr;
		memset(&cr, 0, sizeof(cr));
		run_engine(e, &cr);
		if (write(fds[1], &cr, sizeof(cr)) != (ssize_t)sizeof(cr))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	ssize_t got = read(fds[0], r, sizeof(*r));
	close(fds[0]);
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    got != (ssize_t)sizeof(*r)) {
		fprintf(stderr, "%s benchmark failed\n", e->name);
		return -1;
	}
	r->maxrss_kb = ru.ru_maxrss;
	return 0;
}

/* Keeps the best ops/s per workload; sizes and counts of the last run; the
 * largest peak RSS. */
static void merge_best(result *acc, const result *r, int have)
{
	if (!have) {
		*acc = *r;
		return;
	}
	for (int b = 0; b < B_NBENCH; b++) {
		if (r->ops[b] > acc->ops[b])
			acc->ops[b] = r->ops[b];
		if (r->cpu_ns[b] > 0 && (acc->cpu_ns[b] == 0 || r->cpu_ns[b] < acc->cpu_ns[b]))
			acc->cpu_ns[b] = r->cpu_ns[b];
	}
	if (r->maxrss_kb > acc->maxrss_kb)
		acc->maxrss_kb = r->maxrss_kb;
	if (r->compact_ms < acc->compact_ms)
		acc->compact_ms = r->compact_ms;
	acc->size_fillrandom = r->size_fillrandom;
	acc->size_compacted = r->size_compacted;
	memcpy(acc->found, r->found, sizeof(acc->found));
}

static void print_result(const char *name, const result *r)
{
	printf("%-8s", name);
	for (int b = 0; b < B_NBENCH; b++)
		printf(" %12.0f", r->ops[b]);
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *which = "both";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--num") && i + 1 < argc)
			g_num = atol(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			g_dir = argv[++i];
		else if (!strcmp(argv[i], "--engine") && i + 1 < argc)
			which = argv[++i];
		else if (!strcmp(argv[i], "--sync-ops") && i + 1 < argc)
			g_sync_ops = atol(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			g_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
			g_repeat = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--value_size") && i + 1 < argc)
			g_value_len = (size_t)atol(argv[++i]);
		else if (!strcmp(argv[i], "--blob_threshold") && i + 1 < argc)
			g_blob_threshold = atol(argv[++i]);
		else if (!strcmp(argv[i], "--reads-only"))
			g_reads_only = 1;
		else {
			fprintf(stderr, "usage: %s [--num N] [--dir DIR] [--engine ours|leveldb|both] "
				"[--sync-ops N] [--threads T] [--repeat R] [--value_size B] "
				"[--blob_threshold B] [--reads-only]\n",
				argv[0]);
			return 2;
		}
	}
	if (g_num < 1 || g_threads < 1 || g_threads > 64 || g_sync_ops < 1 || g_repeat < 1 ||
	    g_repeat > 20 || g_value_len < 1 || g_value_len > (64u << 20)) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	q_log_set_level(Q_LOG_WARN);
	make_pool();
	result ro, rl;
	memset(&ro, 0, sizeof(ro));
	memset(&rl, 0, sizeof(rl));
	int have_o = 0, have_l = 0;
	printf("keys %ld x %d bytes, values %zu bytes (half compressible), sync ops %ld per "
	       "writer, fillsync-N = %d writers, best of %d\n", g_num, KEY_LEN, g_value_len, g_sync_ops,
	       g_threads, g_repeat);
	for (int rep = 0; rep < g_repeat; rep++) {
		result t;
		if (strcmp(which, "leveldb")) {
			memset(&t, 0, sizeof(t));
			if (run_child(&ours, &t))
				return 1;
			merge_best(&ro, &t, have_o);
			have_o = 1;
		}
#ifdef HAVE_LEVELDB
		if (strcmp(which, "ours")) {
			memset(&t, 0, sizeof(t));
			if (run_child(&leveldb, &t))
				return 1;
			merge_best(&rl, &t, have_l);
			have_l = 1;
		}
#endif
	}
	printf("\n%-8s", "ops/s");
	for (int b = 0; b < B_NBENCH; b++)
		printf(" %12s", bench_names[b]);
	printf("\n");
	if (have_o)
		print_result("ours", &ro);
	if (have_l)
		print_result("leveldb", &rl);
	if (have_o && have_l) {
		printf("%-8s", "ratio");
		for (int b = 0; b < B_NBENCH; b++)
			printf(" %12.2f", rl.ops[b] > 0 ? ro.ops[b] / rl.ops[b] : 0.0);
		printf("\n");
	}
	static const int rd[3] = {B_READRANDOM, B_READMISSING, B_READCOMPACT};
	printf("\n%-8s", "cpu-ns/op");
	for (int i = 0; i < 3; i++)
		printf(" %20s", bench_names[rd[i]]);
	printf("\n");
	for (int i = 0; i < 2; i++) {
		const result *r = i ? &rl : &ro;
		if (!(i ? have_l : have_o))
			continue;
		printf("%-9s", i ? "leveldb" : "ours");
		for (int j = 0; j < 3; j++)
			printf(" %20.0f", r->cpu_ns[rd[j]]);
		printf("\n");
	}
	if (have_o && have_l) {
		printf("%-9s", "ratio");
		for (int j = 0; j < 3; j++)
			printf(" %20.2f", ro.cpu_ns[rd[j]] > 0 ? rl.cpu_ns[rd[j]] / ro.cpu_ns[rd[j]] : 0.0);
		printf("   (leveldb/ours: above 1 = ours uses less CPU per read)\n");
	}
	printf("\n%-8s %16s %16s %12s %14s %22s\n", "", "disk-fillrandom", "disk-compacted",
	       "peak-RSS-MiB", "compact-ms", "found(rr/miss/rrc)");
	const result *rs[2] = {&ro, &rl};
	const char *nm[2] = {"ours", "leveldb"};
	int have[2] = {have_o, have_l};
	for (int i = 0; i < 2; i++)
		if (have[i])
			printf("%-8s %16" PRIu64 " %16" PRIu64 " %12.1f %14" PRIu64
			       " %8" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
			       nm[i], rs[i]->size_fillrandom, rs[i]->size_compacted,
			       rs[i]->maxrss_kb / 1024.0, rs[i]->compact_ms, rs[i]->found[B_READRANDOM],
			       rs[i]->found[B_READMISSING], rs[i]->found[B_READCOMPACT]);
	if (have_o && have_l) {
		printf("\nsize ratio ours/leveldb: after fillrandom %.3f, compacted %.3f\n",
		       (double)ro.size_fillrandom / (double)rl.size_fillrandom,
		       (double)ro.size_compacted / (double)rl.size_compacted);
		printf("fillsync with %d writers (ours) / single-writer fillsync (leveldb): %.2fx\n",
		       g_threads, ro.ops[B_FILLSYNCN] / rl.ops[B_FILLSYNC1]);
		if (ro.found[B_READRANDOM] != rl.found[B_READRANDOM] ||
		    ro.found[B_READCOMPACT] != rl.found[B_READCOMPACT] ||
		    ro.found[B_READMISSING] || rl.found[B_READMISSING]) {
			printf("ERROR: the engines disagree on which keys exist\n");
			return 1;
		}
	}
	return 0;
}
