/*
 * cli_bench.c - `quorumctl bench`: a closed-loop load generator.
 *
 * --clients connections, spread round robin over the given nodes, each with
 * one request in flight (like redis-benchmark -c without pipelining), all
 * driven by one thread with epoll so the load generator costs little CPU
 * itself. Each runs get or put (by --get-percent) on uniformly random keys
 * "bench-<i>" of a --keys key space, the next request as soon as the
 * answer arrives.
 * Puts are blind writes of --value-size random bytes: a key written again
 * keeps its earlier values as siblings. With --contexts a put carries the
 * causal context of the last answer (get or put) that brought the key's
 * object, so it replaces what that answer showed, as a client that reads
 * or writes before it writes again does (siblings then come only from
 * concurrent writes of one key). Every operation's
 * latency is recorded (microseconds); at the end the tool prints the
 * throughput and the p50/p99/p99.9/max latencies over all operations, with
 * --json one JSON document.
 *
 * --trace FILE writes one line per finished operation of the timed run:
 * "<completion time> <latency> get|put <status>", times in microseconds of
 * CLOCK_MONOTONIC (comparable with other processes' readings of that
 * clock), status 0 or the error code, in completion order: to find out when
 * the slow operations happen (next to the nodes' flushes and compactions,
 * say).
 *
 * A get that finds nothing counts as a success (the key space starts empty
 * unless --preload writes every key once first). Failed operations are
 * counted by kind and excluded from latencies.
 *
 * Threading: one thread.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "net/net_frame.h"
#include "net/net_msg.h"
#include "net/net_sync.h"
#include "object/obj.h"
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
	q_buf *ctx;           /* --contexts: per key, the causal context of the
			       * last answer that carried the key's object; a
			       * put sends it (NULL: every put is blind) */
} bench_cfg;

/* One closed-loop client: one connection, at most one request in flight. */
typedef struct bconn {
	net_sync *ns;
	int fd;
	q_buf out;            /* frame being written */
	size_t sent;
	q_buf in;             /* bytes read, at most one response plus more */
	uint64_t t0_ns;       /* when the request in flight was issued */
	int is_get;
	uint64_t key_no;      /* of the request in flight */
	uint64_t reqid;
	int active;
	int want_out;         /* registered for EPOLLOUT (output pending) */
} bconn;

typedef struct bstats {
	uint32_t *lat;
	size_t nlat, cap;
	uint64_t gets, puts, notfound, errors, quorum_errors;
	int last_error;
	FILE *trace;          /* --trace: one line per finished op (borrowed) */
	int trace_err;        /* a trace write failed (errno) */
} bstats;

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int lat_add(bstats *w, uint64_t us)
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

static void fail_op(bstats *st, int rc)
{
	st->errors++;
	st->last_error = rc;
	if (rc == Q_EQUORUM || rc == Q_ETIMEOUT)
		st->quorum_errors++;
}

/* Encodes the next request of conn k into its output buffer. */
static int next_request(const bench_cfg *cfg, bconn *b, uint64_t *seed, uint8_t *val,
			uint64_t key_no, int is_get)
{
	char key[64];
	int kn = snprintf(key, sizeof(key), "bench-%llu", (unsigned long long)key_no);
	net_msg m;
	if (is_get) {
		net_msg_init(&m, NET_MSG_KV_GET);
		m.u.kv_get.key = q_slice_make(key, (size_t)kn);
		m.u.kv_get.n = (uint8_t)cfg->n;
		m.u.kv_get.r = (uint8_t)cfg->r;
		m.u.kv_get.timeout_ms = (uint32_t)cfg->timeout_ms;
	} else {
		if (cfg->value_size)
			val[rnd(seed) % cfg->value_size] ^= 1;
		net_msg_init(&m, NET_MSG_KV_PUT);
		m.u.kv_put.key = q_slice_make(key, (size_t)kn);
		if (cfg->ctx) { /* and the stored object back, for the next context */
			m.u.kv_put.ctx = q_buf_slice(&cfg->ctx[key_no]);
			m.u.kv_put.flags = NET_PUT_RETURN_OBJ;
		}
		m.u.kv_put.value = q_slice_make(val, cfg->value_size);
		m.u.kv_put.n = (uint8_t)cfg->n;
		m.u.kv_put.w = (uint8_t)cfg->w;
		m.u.kv_put.timeout_ms = (uint32_t)cfg->timeout_ms;
	}
	q_buf_reset(&b->out);
	b->sent = 0;
	b->is_get = is_get;
	b->key_no = key_no;
	b->reqid++;
	b->t0_ns = q_mono_ns();
	return net_msg_encode_frame(&m, b->reqid, &b->out);
}

/* Writes what it can; 0, or a negative errno. */
static int flush_out(bconn *b)
{
	while (b->sent < b->out.len) {
		ssize_t w = write(b->fd, b->out.p + b->sent, b->out.len - b->sent);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		b->sent += (size_t)w;
	}
	return 0;
}

/* --contexts: keeps the context of the object an answer carried for the
 * key of b's request (bytes that do not decode keep the one before). */
static void keep_ctx(const bench_cfg *cfg, const bconn *b, q_slice object)
{
	obj_set *s = NULL;
	if (!object.n || obj_set_decode(object.p, object.n, &s) < 0)
		return;
	q_buf *c = &cfg->ctx[b->key_no];
	q_buf_reset(c);
	if (obj_ctx_encode(obj_set_ctx(s), c) < 0)
		q_buf_reset(c); /* out of memory: the next put is blind */
	obj_set_free(s);
}

/* Reads and handles a complete response if there is one: 1 when the
 * request finished (ok or failed), 0 when more bytes are needed, < 0 on a
 * broken connection. */
static int read_resp(const bench_cfg *cfg, bconn *b, bstats *st)
{
	for (;;) {
		if (q_buf_reserve(&b->in, 65536) < 0)
			return -ENOMEM;
		size_t room = b->in.cap - b->in.len;
		ssize_t r = read(b->fd, b->in.p + b->in.len, room);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		if (r == 0)
			return Q_ECLOSED;
		b->in.len += (size_t)r;
		if ((size_t)r < room)
			break; /* drained: no second read just to see EAGAIN */
	}
	net_frame f;
	size_t used;
	int rc = net_frame_decode(b->in.p, b->in.len, &f, &used);
	if (rc == NET_NEED_MORE)
		return 0;
	if (rc < 0)
		return rc;
	uint64_t us = (q_mono_ns() - b->t0_ns) / 1000;
	net_msg m;
	rc = net_msg_decode(f.type, f.payload, &m);
	if (rc < 0 || f.reqid != b->reqid) {
		net_msg_clear(&m);
		return rc < 0 ? rc : Q_EPROTO;
	}
	int status;
	if (f.type == NET_MSG_ERROR)
		status = m.u.error.code;
	else
		status = m.u.obj_resp.status;
	if (cfg->ctx && f.type != NET_MSG_ERROR && status == 0)
		keep_ctx(cfg, b, m.u.obj_resp.object);
	net_msg_clear(&m);
	memmove(b->in.p, b->in.p + used, b->in.len - used);
	b->in.len -= used;
	if (b->is_get) {
		st->gets++;
		if (status == Q_ENOTFOUND) {
			st->notfound++;
			status = 0;
		}
	} else {
		st->puts++;
	}
	if (st->trace && !st->trace_err &&
	    fprintf(st->trace, "%llu %llu %s %d\n",
		    (unsigned long long)(q_mono_ns() / 1000), (unsigned long long)us,
		    b->is_get ? "get" : "put", status) < 0)
		st->trace_err = errno ? errno : EIO;
	if (status < 0) {
		fail_op(st, status);
		return 1;
	}
	if (lat_add(st, us) < 0)
		return -ENOMEM;
	return 1;
}

/* Registers (or modifies) b's socket in epfd: input always, output when
 * out is set; the event carries the connection's index. */
static int ep_set(int epfd, int op, bconn *b, int i, int out)
{
	struct epoll_event e;
	memset(&e, 0, sizeof e);
	e.events = EPOLLIN | (out ? EPOLLOUT : 0);
	e.data.u32 = (uint32_t)i;
	if (epoll_ctl(epfd, op, b->fd, &e) < 0)
		return -errno;
	b->want_out = out;
	return 0;
}

/* Runs the closed loop on cfg->clients connections until the deadline (or,
 * for a preload, until every key was written once). */
static int run_loop(const bench_cfg *cfg, bstats *st, uint64_t seed, int preload)
{
	int nc = cfg->clients;
	bconn *bs = calloc((size_t)nc, sizeof(bconn));
	struct epoll_event *ev = calloc((size_t)nc, sizeof(struct epoll_event));
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	uint8_t *val = malloc(cfg->value_size ? cfg->value_size : 1);
	int rc = 0;
	if (!bs || !ev || !val || epfd < 0) {
		rc = epfd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < cfg->value_size; i++)
		val[i] = (uint8_t)('a' + rnd(&seed) % 26);
	uint64_t next_key = 0;
	for (int i = 0; i < nc; i++) {
		rc = net_sync_connect(cfg->nodes[(size_t)i % cfg->nnodes], cfg->timeout_ms,
				      &bs[i].ns);
		if (rc < 0) {
			fprintf(stderr, "quorumctl: bench: connect %s: %s\n",
				cfg->nodes[(size_t)i % cfg->nnodes], q_strerror(rc));
			goto out;
		}
		bs[i].fd = net_sync_fd(bs[i].ns);
		q_buf_init(&bs[i].out);
		q_buf_init(&bs[i].in);
		Q_ERR(ep_set(epfd, EPOLL_CTL_ADD, &bs[i], i, 0));
	}
	uint64_t deadline = q_mono_ms() + cfg->duration_ms;
	int active = 0;
	for (int i = 0; i < nc; i++) {
		int is_get;
		uint64_t k;
		if (preload) {
			if (next_key >= cfg->keys)
				break;
			k = next_key++;
			is_get = 0;
		} else {
			k = rnd(&seed) % cfg->keys;
			is_get = (int)(rnd(&seed) % 100) < cfg->get_percent;
		}
		Q_ERR(next_request(cfg, &bs[i], &seed, val, k, is_get));
		Q_ERR(flush_out(&bs[i]));
		bs[i].active = 1;
		active++;
	}
	while (active > 0) {
		for (int i = 0; i < nc; i++) {
			/* EPOLLOUT only while a request is not fully written */
			int want = bs[i].active && bs[i].sent < bs[i].out.len;
			if (want != bs[i].want_out)
				Q_ERR(ep_set(epfd, EPOLL_CTL_MOD, &bs[i], i, want));
		}
		int n = epoll_wait(epfd, ev, nc, 1000);
		if (n < 0 && errno != EINTR) {
			rc = -errno;
			goto fail;
		}
		for (int e = 0; e < n; e++) {
			int i = (int)ev[e].data.u32;
			bconn *b = &bs[i];
			uint32_t re = ev[e].events;
			if (!b->active)
				continue;
			int done = 0;
			if (re & EPOLLOUT)
				done = flush_out(b);
			if (done == 0 && (re & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				done = read_resp(cfg, b, st);
			if (done < 0) {
				/* the node went away: count the request as failed and
				 * reconnect this client, or retire it */
				fail_op(st, done);
				const char *node = cfg->nodes[(size_t)i % cfg->nnodes];
				net_sync_close(b->ns);
				b->ns = NULL;
				b->in.len = 0;
				b->want_out = 0; /* closing the socket left the epoll set */
				if (net_sync_connect(node, 200, &b->ns) < 0) {
					b->ns = NULL;
					b->active = 0;
					active--;
					continue;
				}
				b->fd = net_sync_fd(b->ns);
				b->want_out = 0;
				Q_ERR(ep_set(epfd, EPOLL_CTL_ADD, b, i, 0));
				done = 1;
			}
			if (!done)
				continue;
			int more;
			uint64_t k = 0;
			int is_get = 0;
			if (preload) {
				more = next_key < cfg->keys;
				k = next_key++;
			} else {
				more = q_mono_ms() < deadline;
				k = rnd(&seed) % cfg->keys;
				is_get = (int)(rnd(&seed) % 100) < cfg->get_percent;
			}
			if (!more) {
				b->active = 0;
				active--;
				(void)epoll_ctl(epfd, EPOLL_CTL_DEL, b->fd, NULL);
				b->want_out = 0;
				continue;
			}
			Q_ERR(next_request(cfg, b, &seed, val, k, is_get));
			if (flush_out(b) < 0)
				b->sent = b->out.len = 0; /* seen as failed on the next read */
		}
	}
	rc = 0;
fail:
out:
	if (bs)
		for (int i = 0; i < nc; i++) {
			if (bs[i].ns)
				net_sync_close(bs[i].ns);
			q_buf_free(&bs[i].out);
			q_buf_free(&bs[i].in);
		}
	free(bs);
	free(ev);
	free(val);
	if (epfd >= 0)
		close(epfd);
	return rc;
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
	const char *trace = NULL;
	int contexts = 0;
	FILE *tf = NULL;
	uint64_t seed = q_mono_ns();
	int code = CLI_EXIT_USAGE;
	bstats st;
	memset(&st, 0, sizeof(st));
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
		if (!strcmp(s, "--contexts")) {
			contexts = 1;
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
		} else if (!strcmp(s, "--trace")) {
			trace = v;
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
	if (contexts && !(cfg.ctx = calloc(cfg.keys, sizeof(q_buf)))) {
		fprintf(stderr, "quorumctl: bench: no memory for %llu contexts\n",
			(unsigned long long)cfg.keys);
		code = CLI_EXIT_ERROR;
		goto out;
	}
	double preload_s = 0;
	uint64_t preload_err = 0;
	int rc;
	if (cfg.preload) {
		bstats ps;
		memset(&ps, 0, sizeof(ps));
		uint64_t t0 = q_mono_ns();
		rc = run_loop(&cfg, &ps, seed, 1);
		preload_s = (double)(q_mono_ns() - t0) / 1e9;
		preload_err = ps.errors;
		free(ps.lat);
		if (rc < 0) {
			code = CLI_EXIT_ERROR;
			goto out;
		}
		if (!json)
			printf("preload: %llu keys in %.2f s (%.0f puts/s), %llu errors\n",
			       (unsigned long long)cfg.keys, preload_s,
			       preload_s > 0 ? (double)cfg.keys / preload_s : 0.0,
			       (unsigned long long)preload_err);
	}
	memset(&st, 0, sizeof(st));
	if (trace) {
		tf = fopen(trace, "w");
		if (!tf) {
			fprintf(stderr, "quorumctl: bench: cannot create %s: %s\n", trace,
				strerror(errno));
			code = CLI_EXIT_ERROR;
			goto out;
		}
		st.trace = tf;
	}
	uint64_t t0 = q_mono_ns();
	rc = run_loop(&cfg, &st, seed + 1, 0);
	if (rc < 0) {
		code = CLI_EXIT_ERROR;
		goto out;
	}
	if (tf) {
		int e = st.trace_err;
		if (fclose(tf) != 0 && !e)
			e = errno ? errno : EIO;
		tf = NULL;
		if (e) {
			fprintf(stderr, "quorumctl: bench: cannot write %s: %s\n", trace, strerror(e));
			code = CLI_EXIT_ERROR;
			goto out;
		}
	}
	double secs = (double)(q_mono_ns() - t0) / 1e9;
	size_t total = st.nlat;
	uint64_t gets = st.gets, puts = st.puts, nf = st.notfound, errs = st.errors,
		 qerrs = st.quorum_errors;
	int last_err = st.last_error;
	uint32_t *all = st.lat;
	if (total) /* no latencies at all when every connection failed */
		qsort(all, total, sizeof(uint32_t), cmp_u32);
	double tput = secs > 0 ? (double)total / secs : 0;
	double p50 = pct(all, total, 0.50), p99 = pct(all, total, 0.99),
	       p999 = pct(all, total, 0.999), pmax = total ? all[total - 1] / 1000.0 : 0;
	if (json) {
		printf("{\"clients\":%d,\"nodes\":%zu,\"keys\":%llu,\"value_size\":%zu,"
		       "\"get_percent\":%d,\"seconds\":%.3f,\"ops\":%zu,\"gets\":%llu,"
		       "\"puts\":%llu,\"not_found\":%llu,\"errors\":%llu,\"quorum_errors\":%llu,"
		       "\"ops_per_sec\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
		       "\"max_ms\":%.3f,\"preload_seconds\":%.3f,\"preload_errors\":%llu,"
		       "\"contexts\":%d}\n",
		       cfg.clients, cfg.nnodes, (unsigned long long)cfg.keys, cfg.value_size,
		       cfg.get_percent, secs, total, (unsigned long long)gets,
		       (unsigned long long)puts, (unsigned long long)nf, (unsigned long long)errs,
		       (unsigned long long)qerrs, tput, p50, p99, p999, pmax, preload_s,
		       (unsigned long long)preload_err, cfg.ctx != NULL);
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
		fprintf(stderr, "quorumctl: bench: %llu operations failed, last: %s%s\n",
			(unsigned long long)errs, q_strerror(last_err), cli_closed_hint(last_err));
	code = total == 0 ? CLI_EXIT_ERROR : errs ? cli_exit_code(last_err) : 0;
out:
	if (tf)
		fclose(tf);
	free(st.lat);
	for (uint64_t i = 0; cfg.ctx && i < cfg.keys; i++)
		q_buf_free(&cfg.ctx[i]);
	free(cfg.ctx);
	for (size_t i = 0; i < cfg.nnodes; i++)
		free(cfg.nodes[i]);
	free(cfg.nodes);
	return code;
}
