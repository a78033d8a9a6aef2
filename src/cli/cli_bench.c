/*
 * cli_bench.c - `quorumctl bench`: a closed-loop load generator.
 *
 * C client threads (--clients) each own one network client connected to one
 * of the given nodes (round robin), and run get or put (by --get-percent) on
 * uniformly random keys "bench-<i>" of a --keys key space, each waiting for
 * its answer before the next (like redis-benchmark without pipelining).
 * Puts are blind writes of --value-size random bytes. Every operation's
 * latency is recorded (microseconds); at the end the tool prints the
 * throughput and the p50/p99/p99.9/max latencies over all operations, with
 * --json one JSON document.
 *
 * A get that finds nothing counts as a success (the key space starts empty
 * unless --preload writes every key once first). Failed operations are
 * counted by kind and excluded from latencies.
 *
 * Threading: workers share nothing but the start flag and the deadline;
 * results are merged after join.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "util/qerr.h"
#include "util/qtime.h"

typedef struct bench_cfg {
	char **nodes;
	size_t nnodes;
	int clients;
	uint64_t keys;
	uint64_t duration_ms;
	size_t value_size;
	int get_percent;
	int n, r, w;
	int preload;
	uint64_t timeout_ms;
} bench_cfg;

typedef struct worker {
	pthread_t th;
	const bench_cfg *cfg;
	int idx;
	uint64_t seed;
	uint32_t *lat;
	size_t nlat, cap;
	uint64_t gets, puts, notfound, errors, quorum_errors;
	int last_error;
	int rc;
	/* preload range */
	uint64_t pre_lo, pre_hi;
	int preloading;
} worker;

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int lat_add(worker *w, uint64_t us)
{
	if (w->nlat == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 65536;
		uint32_t *nl = realloc(w->lat, cap * sizeof(uint32_t));
		if (!nl)
			return -ENOMEM;
		w->lat = nl;
		w->cap = cap;
	}
	w->lat[w->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	return 0;
}

static void *work(void *arg)
{
	worker *w = arg;
	const bench_cfg *cfg = w->cfg;
	qc_client *c = NULL;
	uint8_t *val = malloc(cfg->value_size ? cfg->value_size : 1);
	w->rc = qc_net_new(cfg->nodes[(size_t)w->idx % cfg->nnodes], cfg->timeout_ms, &c);
	if (w->rc < 0 || !val) {
		free(val);
		if (!w->rc)
			w->rc = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < cfg->value_size; i++)
		val[i] = (uint8_t)('a' + rnd(&w->seed) % 26);
	qc_opts o = {.n = cfg->n, .r = cfg->r, .w = cfg->w, .timeout_ms = cfg->timeout_ms};
	qc_object obj;
	qc_object_init(&obj);
	char key[64];
	if (w->preloading) {
		for (uint64_t k = w->pre_lo; k < w->pre_hi; k++) {
			int kn = snprintf(key, sizeof(key), "bench-%llu", (unsigned long long)k);
			int rc = qc_put(c, q_slice_make(key, (size_t)kn), q_slice_make(NULL, 0),
					q_slice_make(val, cfg->value_size), &o, NULL);
			if (rc < 0) {
				w->errors++;
				w->last_error = rc;
			} else {
				w->puts++;
			}
		}
		goto out;
	}
	uint64_t deadline = q_mono_ms() + cfg->duration_ms;
	while (q_mono_ms() < deadline) {
		uint64_t k = rnd(&w->seed) % cfg->keys;
		int kn = snprintf(key, sizeof(key), "bench-%llu", (unsigned long long)k);
		int is_get = (int)(rnd(&w->seed) % 100) < cfg->get_percent;
		uint64_t t0 = q_mono_ns();
		int rc;
		if (is_get) {
			rc = qc_get(c, q_slice_make(key, (size_t)kn), &o, &obj);
			if (rc == Q_ENOTFOUND) {
				w->notfound++;
				rc = 0;
			}
			w->gets++;
		} else {
			val[rnd(&w->seed) % (cfg->value_size ? cfg->value_size : 1)] ^= 1;
			rc = qc_put(c, q_slice_make(key, (size_t)kn), q_slice_make(NULL, 0),
				    q_slice_make(val, cfg->value_size), &o, NULL);
			w->puts++;
		}
		uint64_t us = (q_mono_ns() - t0) / 1000;
		if (rc < 0) {
			w->errors++;
			w->last_error = rc;
			if (rc == Q_EQUORUM || rc == Q_ETIMEOUT)
				w->quorum_errors++;
			continue;
		}
		if (lat_add(w, us) < 0) {
			w->rc = -ENOMEM;
			break;
		}
	}
out:
	qc_object_free(&obj);
	qc_close(c);
	free(val);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

static int split_nodes(const char *s, bench_cfg *cfg)
{
	char *copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **nn = realloc(cfg->nodes, (cfg->nnodes + 1) * sizeof(char *));
		if (!nn) {
			free(copy);
			return -ENOMEM;
		}
		cfg->nodes = nn;
		cfg->nodes[cfg->nnodes] = strdup(t);
		if (!cfg->nodes[cfg->nnodes]) {
			free(copy);
			return -ENOMEM;
		}
		cfg->nnodes++;
	}
	free(copy);
	return cfg->nnodes ? 0 : -EINVAL;
}

static int run_workers(worker *ws, int n)
{
	int started = 0;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&ws[i].th, NULL, work, &ws[i]) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);
	return started == n ? 0 : -EAGAIN;
}

int cli_bench(int argc, char **argv, const char *node, uint64_t timeout_ms, int json)
{
	bench_cfg cfg = {
		.clients = 50,
		.keys = 100000,
		.duration_ms = 10000,
		.value_size = 100,
		.get_percent = 50,
		.timeout_ms = timeout_ms,
	};
	const char *nodes = node;
	uint64_t seed = q_mono_ns();
	int code = CLI_EXIT_USAGE;
	worker *ws = NULL;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int iv;
		uint64_t u;
		if (!strcmp(s, "--json")) {
			json = 1;
			continue;
		}
		if (!strcmp(s, "--preload")) {
			cfg.preload = 1;
			continue;
		}
		if (!v)
			goto bad;
		i++;
		if (!strcmp(s, "--nodes") || !strcmp(s, "--node")) {
			nodes = v;
		} else if (!strcmp(s, "--clients")) {
			if (cli_parse_int(v, 1, 4096, &cfg.clients) < 0)
				goto bad;
		} else if (!strcmp(s, "--keys")) {
			if (cli_parse_int(v, 1, 1000000000, &iv) < 0)
				goto bad;
			cfg.keys = (uint64_t)iv;
		} else if (!strcmp(s, "--duration")) {
			if (q_parse_duration_ms(v, &u) < 0 || !u)
				goto bad;
			cfg.duration_ms = u;
		} else if (!strcmp(s, "--value-size")) {
			if (cli_parse_int(v, 0, 32 << 20, &iv) < 0)
				goto bad;
			cfg.value_size = (size_t)iv;
		} else if (!strcmp(s, "--get-percent")) {
			if (cli_parse_int(v, 0, 100, &cfg.get_percent) < 0)
				goto bad;
		} else if (!strcmp(s, "--r")) {
			if (cli_parse_int(v, 1, 16, &cfg.r) < 0)
				goto bad;
		} else if (!strcmp(s, "--w")) {
			if (cli_parse_int(v, 1, 16, &cfg.w) < 0)
				goto bad;
		} else if (!strcmp(s, "--n")) {
			if (cli_parse_int(v, 1, 16, &cfg.n) < 0)
				goto bad;
		} else if (!strcmp(s, "--seed")) {
			if (cli_parse_int(v, 0, 2147483647, &iv) < 0)
				goto bad;
			seed = (uint64_t)iv;
		} else {
			goto bad;
		}
		continue;
	bad:
		fprintf(stderr, "quorumctl: bench: bad or incomplete option %s\n", s);
		goto out;
	}
	if (split_nodes(nodes, &cfg) < 0) {
		fprintf(stderr, "quorumctl: bench: bad --nodes list\n");
		goto out;
	}
	ws = calloc((size_t)cfg.clients, sizeof(worker));
	if (!ws) {
		code = CLI_EXIT_ERROR;
		goto out;
	}
	double preload_s = 0;
	uint64_t preload_err = 0;
	if (cfg.preload) {
		uint64_t per = (cfg.keys + (uint64_t)cfg.clients - 1) / (uint64_t)cfg.clients;
		for (int i = 0; i < cfg.clients; i++) {
			ws[i].cfg = &cfg;
			ws[i].idx = i;
			ws[i].seed = seed + (uint64_t)i * 7919;
			ws[i].preloading = 1;
			ws[i].pre_lo = per * (uint64_t)i;
			ws[i].pre_hi = per * (uint64_t)(i + 1);
			if (ws[i].pre_lo > cfg.keys)
				ws[i].pre_lo = cfg.keys;
			if (ws[i].pre_hi > cfg.keys)
				ws[i].pre_hi = cfg.keys;
		}
		uint64_t t0 = q_mono_ns();
		if (run_workers(ws, cfg.clients) < 0) {
			fprintf(stderr, "quorumctl: bench: cannot start threads\n");
			code = CLI_EXIT_ERROR;
			goto out;
		}
		preload_s = (double)(q_mono_ns() - t0) / 1e9;
		for (int i = 0; i < cfg.clients; i++)
			preload_err += ws[i].errors;
		memset(ws, 0, (size_t)cfg.clients * sizeof(worker));
		if (!json)
			printf("preload: %llu keys in %.2f s (%.0f puts/s), %llu errors\n",
			       (unsigned long long)cfg.keys, preload_s,
			       preload_s > 0 ? (double)cfg.keys / preload_s : 0.0,
			       (unsigned long long)preload_err);
	}
	for (int i = 0; i < cfg.clients; i++) {
		ws[i].cfg = &cfg;
		ws[i].idx = i;
		ws[i].seed = seed + (uint64_t)i * 104729 + 1;
	}
	uint64_t t0 = q_mono_ns();
	if (run_workers(ws, cfg.clients) < 0) {
		fprintf(stderr, "quorumctl: bench: cannot start threads\n");
		code = CLI_EXIT_ERROR;
		goto out;
	}
	double secs = (double)(q_mono_ns() - t0) / 1e9;
	size_t total = 0;
	uint64_t gets = 0, puts = 0, nf = 0, errs = 0, qerrs = 0;
	int last_err = 0, wrc = 0;
	for (int i = 0; i < cfg.clients; i++) {
		total += ws[i].nlat;
		gets += ws[i].gets;
		puts += ws[i].puts;
		nf += ws[i].notfound;
		errs += ws[i].errors;
		qerrs += ws[i].quorum_errors;
		if (ws[i].last_error)
			last_err = ws[i].last_error;
		if (ws[i].rc)
			wrc = ws[i].rc;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof(uint32_t));
	if (!all) {
		code = CLI_EXIT_ERROR;
		goto out;
	}
	size_t off = 0;
	for (int i = 0; i < cfg.clients; i++) {
		if (ws[i].nlat)
			memcpy(all + off, ws[i].lat, ws[i].nlat * sizeof(uint32_t));
		off += ws[i].nlat;
	}
	qsort(all, total, sizeof(uint32_t), cmp_u32);
	double tput = secs > 0 ? (double)total / secs : 0;
	double p50 = pct(all, total, 0.50), p99 = pct(all, total, 0.99),
	       p999 = pct(all, total, 0.999), pmax = total ? all[total - 1] / 1000.0 : 0;
	if (json) {
		printf("{\"clients\":%d,\"nodes\":%zu,\"keys\":%llu,\"value_size\":%zu,"
		       "\"get_percent\":%d,\"seconds\":%.3f,\"ops\":%zu,\"gets\":%llu,"
		       "\"puts\":%llu,\"not_found\":%llu,\"errors\":%llu,\"quorum_errors\":%llu,"
		       "\"ops_per_sec\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
		       "\"max_ms\":%.3f,\"preload_seconds\":%.3f,\"preload_errors\":%llu}\n",
		       cfg.clients, cfg.nnodes, (unsigned long long)cfg.keys, cfg.value_size,
		       cfg.get_percent, secs, total, (unsigned long long)gets,
		       (unsigned long long)puts, (unsigned long long)nf, (unsigned long long)errs,
		       (unsigned long long)qerrs, tput, p50, p99, p999, pmax, preload_s,
		       (unsigned long long)preload_err);
	} else {
		printf("bench: %d clients, %zu node(s), %llu keys, %zu-byte values, %d%% gets, "
		       "%.1f s\n",
		       cfg.clients, cfg.nnodes, (unsigned long long)cfg.keys, cfg.value_size,
		       cfg.get_percent, secs);
		printf("ops %zu ok (gets %llu, puts %llu, not found %llu), errors %llu "
		       "(quorum/timeout %llu)\n",
		       total, (unsigned long long)gets, (unsigned long long)puts,
		       (unsigned long long)nf, (unsigned long long)errs, (unsigned long long)qerrs);
		printf("throughput %.0f ops/s\n", tput);
		printf("latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", p50, p99, p999,
		       pmax);
	}
	if (errs)
		fprintf(stderr, "quorumctl: bench: %llu operations failed, last: %s\n",
			(unsigned long long)errs, q_strerror(last_err));
	free(all);
	code = (wrc < 0 || total == 0) ? CLI_EXIT_ERROR : errs ? cli_exit_code(last_err) : 0;
out:
	if (ws)
		for (int i = 0; i < cfg.clients; i++)
			free(ws[i].lat);
	free(ws);
	for (size_t i = 0; i < cfg.nnodes; i++)
		free(cfg.nodes[i]);
	free(cfg.nodes);
	return code;
}
