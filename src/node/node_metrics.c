/*
 * node_metrics.c - Prometheus text exposition, the RING admin answer and
 * the metrics HTTP endpoint (see node_metrics.h).
 *
 * The status flattener walks the node's own status JSON (coord_status_json)
 * with a bounded recursive descent (depth <= FLAT_MAX_DEPTH); arrays are
 * skipped (their elements have no stable names), strings and nulls too;
 * numbers and booleans become quorum_status_<object path> lines. Input it
 * cannot parse ends the walk (what was emitted stays; a comment says so).
 *
 * Threading: see node_metrics.h. The HTTP server is created and closed on
 * the loop thread only; `http` is touched nowhere else.
 */
#include "node/node_metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_addr.h"
#include "net/net_http.h"
#include "ring/ring.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define FLAT_MAX_DEPTH 8
#define FLAT_MAX_NAME 160

struct node_metrics {
	node_metrics_src src;
	char node_id[MEMBER_ID_MAX + 1];
	char listen[64];
	net_http_server *http;
	char bound[64];
	uint64_t scrapes; /* atomics */
};

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                  */

int node_metrics_new(const node_metrics_src *src, const char *listen, node_metrics **out)
{
	node_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->src = *src;
	snprintf(m->node_id, sizeof(m->node_id), "%s", src->node_id ? src->node_id : "");
	m->src.node_id = m->node_id;
	snprintf(m->listen, sizeof(m->listen), "%s", listen ? listen : "");
	*out = m;
	return 0;
}

static int http_cb(void *arg, const char *path, q_buf *body, const char **ctype)
{
	node_metrics *m = arg;
	if (strcmp(path, "/metrics"))
		return 404;
	__atomic_add_fetch(&m->scrapes, 1, __ATOMIC_RELAXED);
	*ctype = "text/plain; version=0.0.4; charset=utf-8";
	return node_metrics_render(m, body) < 0 ? 500 : 200;
}

int node_metrics_start(node_metrics *m)
{
	if (!m || !m->listen[0])
		return 0;
	int rc = net_http_start(m->src.loop, m->listen, http_cb, m, &m->http);
	if (rc < 0) {
		Q_ERROR("node", "cannot serve metrics on %s: %s", m->listen, q_strerror(rc));
		m->http = NULL;
		return rc;
	}
	snprintf(m->bound, sizeof(m->bound), "%s", net_http_addr(m->http));
	Q_INFO("node", "metrics on http://%s/metrics", m->bound);
	return 0;
}

void node_metrics_stop(node_metrics *m)
{
	if (m && m->http) {
		net_http_close(m->http);
		m->http = NULL;
	}
}

void node_metrics_free(node_metrics *m)
{
	free(m);
}

/* ------------------------------------------------------------------------ */
/* status JSON flattening                                                     */

typedef struct flat {
	const char *p, *end;
	q_buf *out;
	int rc;
} flat;

static void fl_ws(flat *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\t' || *f->p == '\r'))
		f->p++;
}

/* Skips a string at f->p (which is '"'); copies up to cap-1 name bytes
 * (sanitised to [a-z0-9_]) into name if not NULL. 0 or -1. */
static int fl_string(flat *f, char *name, size_t cap)
{
	size_t n = 0;
	f->p++;
	while (f->p < f->end && *f->p != '"') {
		char ch = *f->p;
		if (ch == '\\') {
			f->p = f->end - f->p > 2 ? f->p + 2 : f->end;
			continue;
		}
		if (name && n + 1 < cap) {
			if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			name[n++] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '_';
		}
		f->p++;
	}
	if (name)
		name[n] = 0;
	if (f->p >= f->end)
		return -1;
	f->p++;
	return 0;
}

static int fl_value(flat *f, char *prefix, size_t plen, int depth);

static int fl_skip_array(flat *f, int depth)
{
	f->p++;
	fl_ws(f);
	if (f->p < f->end && *f->p == ']') {
		f->p++;
		return 0;
	}
	for (;;) {
		/* a value with no name: NULL prefix emits nothing */
		if (fl_value(f, NULL, 0, depth + 1) < 0)
			return -1;
		fl_ws(f);
		if (f->p >= f->end)
			return -1;
		if (*f->p == ']') {
			f->p++;
			return 0;
		}
		if (*f->p != ',')
			return -1;
		f->p++;
	}
}

static int fl_object(flat *f, char *prefix, size_t plen, int depth)
{
	f->p++;
	fl_ws(f);
	if (f->p < f->end && *f->p == '}') {
		f->p++;
		return 0;
	}
	for (;;) {
		fl_ws(f);
		if (f->p >= f->end || *f->p != '"')
			return -1;
		char key[64];
		if (fl_string(f, key, sizeof(key)) < 0)
			return -1;
		fl_ws(f);
		if (f->p >= f->end || *f->p != ':')
			return -1;
		f->p++;
		if (prefix) {
			size_t nl = plen;
			int w = snprintf(prefix + plen, FLAT_MAX_NAME - plen, "_%s", key);
			if (w > 0 && plen + (size_t)w < FLAT_MAX_NAME)
				nl = plen + (size_t)w;
			else
				nl = 0; /* too long: emit nothing below */
			if (fl_value(f, nl ? prefix : NULL, nl, depth + 1) < 0)
				return -1;
			prefix[plen] = 0;
		} else if (fl_value(f, NULL, 0, depth + 1) < 0) {
			return -1;
		}
		fl_ws(f);
		if (f->p >= f->end)
			return -1;
		if (*f->p == '}') {
			f->p++;
			return 0;
		}
		if (*f->p != ',')
			return -1;
		f->p++;
	}
}

static int fl_value(flat *f, char *prefix, size_t plen, int depth)
{
	if (depth > FLAT_MAX_DEPTH)
		return -1;
	fl_ws(f);
	if (f->p >= f->end)
		return -1;
	char ch = *f->p;
	if (ch == '{')
		return fl_object(f, prefix, plen, depth);
	if (ch == '[')
		return fl_skip_array(f, depth);
	if (ch == '"')
		return fl_string(f, NULL, 0);
	if (ch == 't' || ch == 'f' || ch == 'n') {
		const char *w = ch == 't' ? "true" : ch == 'f' ? "false" : "null";
		size_t wl = strlen(w);
		if ((size_t)(f->end - f->p) < wl || memcmp(f->p, w, wl))
			return -1;
		f->p += wl;
		if (prefix && ch != 'n' && f->rc == 0)
			f->rc = q_buf_printf(f->out, "quorum_status%s %d\n", prefix, ch == 't');
		return 0;
	}
	const char *s = f->p;
	while (f->p < f->end && ((*f->p >= '0' && *f->p <= '9') || *f->p == '-' || *f->p == '+' ||
				 *f->p == '.' || *f->p == 'e' || *f->p == 'E'))
		f->p++;
	if (f->p == s)
		return -1;
	if (prefix && f->rc == 0)
		f->rc = q_buf_printf(f->out, "quorum_status%s %.*s\n", prefix, (int)(f->p - s), s);
	return 0;
}

int node_metrics_flatten_json(const char *json, size_t n, q_buf *out)
{
	char prefix[FLAT_MAX_NAME + 1] = "";
	flat f = {json, json + n, out, 0};
	int rc = fl_value(&f, prefix, 0, 0);
	if (f.rc < 0)
		return f.rc;
	if (rc < 0)
		return q_buf_printf(out, "# status JSON not fully parsed\n");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* exposition                                                                 */

#define P(...)                                     \
	do {                                       \
		if (rc == 0)                       \
			rc = q_buf_printf(out, __VA_ARGS__); \
	} while (0)

static int render_latency(node_metrics *m, q_buf *out)
{
	int rc = 0;
	P("# HELP quorum_request_duration_seconds Time from a request's arrival at the node's "
	  "network server to its answer, by kind (kv_*: coordinated for a client; repl_*, "
	  "hint_put: replica side).\n"
	  "# TYPE quorum_request_duration_seconds histogram\n");
	net_lat_hist h[NET_LAT_N];
	for (int k = 0; k < NET_LAT_N; k++) {
		net_loop_lat_get(m->src.loop, k, &h[k]);
		const char *name = net_lat_kind_name(k);
		uint64_t cum = 0;
		for (int b = 0; b < NET_LAT_BUCKETS; b++) {
			cum += h[k].bucket[b];
			if (b < NET_LAT_BUCKETS - 1)
				P("quorum_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n",
				  name, (double)net_lat_bounds_us[b] / 1e6, (unsigned long long)cum);
			else
				P("quorum_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n",
				  name, (unsigned long long)cum);
		}
		P("quorum_request_duration_seconds_sum{op=\"%s\"} %.6f\n", name,
		  (double)h[k].sum_us / 1e6);
		P("quorum_request_duration_seconds_count{op=\"%s\"} %llu\n", name,
		  (unsigned long long)cum);
	}
	P("# HELP quorum_requests_total Requests answered (or dropped) by the node's network "
	  "server, by kind.\n# TYPE quorum_requests_total counter\n");
	for (int k = 0; k < NET_LAT_N; k++)
		P("quorum_requests_total{op=\"%s\"} %llu\n", net_lat_kind_name(k),
		  (unsigned long long)h[k].count);
	P("# HELP quorum_request_errors_total Requests answered with an error (not-found is not "
	  "an error), by kind.\n# TYPE quorum_request_errors_total counter\n");
	for (int k = 0; k < NET_LAT_N; k++)
		P("quorum_request_errors_total{op=\"%s\"} %llu\n", net_lat_kind_name(k),
		  (unsigned long long)h[k].errors);
	return rc;
}

static int counter(q_buf *out, const char *name, const char *help, uint64_t v)
{
	return q_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
			    name, (unsigned long long)v);
}

static int gauge(q_buf *out, const char *name, const char *help, double v)
{
	return q_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name,
			    name, v);
}

int node_metrics_render(node_metrics *m, q_buf *out)
{
	int rc = render_latency(m, out);
	coord_stats cs;
	coord_get_stats(m->src.coord, &cs);
#define C(name, help, v) \
	if (rc == 0)     \
	rc = counter(out, name, help, v)
#define G(name, help, v) \
	if (rc == 0)     \
	rc = gauge(out, name, help, (double)(v))
	C("quorum_coord_gets_total", "Gets coordinated by this node (network and embedded clients).",
	  cs.gets);
	C("quorum_coord_puts_total", "Puts and deletes coordinated by this node.", cs.puts);
	C("quorum_coord_forwards_total", "Puts forwarded to a primary replica.", cs.forwards);
	C("quorum_read_repairs_total", "Stale replicas written back after reads.", cs.read_repairs);
	C("quorum_quorum_failures_total", "Requests that could not reach R or W replicas.",
	  cs.quorum_failures);
	C("quorum_timeouts_total", "Requests that ran out of time.", cs.timeouts);
	C("quorum_replica_gets_served_total", "REPL_GET served for coordinators.",
	  cs.repl_gets_served);
	C("quorum_replica_puts_served_total", "REPL_PUT served for coordinators.",
	  cs.repl_puts_served);

	uint64_t sib[COORD_SIB_BUCKETS];
	coord_get_sibling_hist(m->src.coord, sib);
	P("# HELP quorum_get_siblings_total Single-key gets coordinated here, by the number of "
	  "live siblings in the answer (0: not found).\n"
	  "# TYPE quorum_get_siblings_total counter\n");
	for (int i = 0; i < COORD_SIB_BUCKETS; i++)
		P("quorum_get_siblings_total{siblings=\"%d%s\"} %llu\n", i,
		  i == COORD_SIB_BUCKETS - 1 ? "+" : "", (unsigned long long)sib[i]);

	replica_stats rs;
	replica_get_stats(m->src.rep, &rs);
	C("quorum_replica_merges_total", "Incoming sets merged into the local replica.", rs.merges);
	C("quorum_replica_corrupt_total", "Stored sets that failed to decode.", rs.corrupt);
	C("quorum_replica_write_errors_total",
	  "Writes the local store refused (full disk, I/O error).", rs.write_errors);

	hint_stats hs = {0, 0, 0, 0};
	if (m->src.hints)
		hint_get_stats(m->src.hints, &hs);
	uint64_t now = q_wall_ns() / 1000000u;
	uint64_t age = hs.oldest_ms && now > hs.oldest_ms ? now - hs.oldest_ms : 0;
	G("quorum_hints", "Hints kept for down owners.", hs.count);
	G("quorum_hint_bytes", "Key and value bytes of the hints kept.", hs.bytes);
	G("quorum_hint_oldest_age_seconds", "Age of the oldest hint (0 when none).",
	  (double)age / 1000.0);
	G("quorum_hints_corrupt", "Hint records that failed their checksum.", hs.corrupt);

	lsm_stats ls;
	lsm_get_stats(m->src.db, &ls);
	G("quorum_storage_disk_bytes", "Bytes of tables, logs and manifest on disk.", ls.disk_bytes);
	G("quorum_storage_memtable_bytes", "Bytes in the memtables.", ls.memtable_bytes);
	G("quorum_storage_tables", "Sorted tables in the store.", ls.num_tables);
	G("quorum_storage_quarantined_tables", "Tables set aside as corrupt.",
	  ls.quarantined_tables);
	C("quorum_storage_flushes_total", "Memtable flushes.", ls.flushes);
	C("quorum_storage_compactions_total", "Compactions.", ls.compactions);
	C("quorum_storage_compaction_bytes_written_total", "Bytes written by compactions.",
	  ls.compaction_bytes_written);
	if (rc == 0)
		rc = q_buf_printf(out,
				  "# HELP quorum_storage_stall_seconds_total Time writers waited "
				  "on flushes and compactions.\n"
				  "# TYPE quorum_storage_stall_seconds_total counter\n"
				  "quorum_storage_stall_seconds_total %.3f\n",
				  (double)ls.stall_ms / 1000.0);
	C("quorum_storage_cache_hits_total", "Block cache hits.", ls.cache_hits);
	C("quorum_storage_cache_misses_total", "Block cache misses.", ls.cache_misses);
	P("# HELP quorum_storage_level_tables Tables per level.\n"
	  "# TYPE quorum_storage_level_tables gauge\n");
	for (int l = 0; l < 8; l++)
		P("quorum_storage_level_tables{level=\"%d\"} %llu\n", l,
		  (unsigned long long)ls.tables_per_level[l]);

	size_t g[4] = {0, 0, 0, 0};
	if (m->src.gossip)
		node_gossip_counts(m->src.gossip, g);
	P("# HELP quorum_gossip_members Members by gossip state.\n"
	  "# TYPE quorum_gossip_members gauge\n"
	  "quorum_gossip_members{state=\"alive\"} %zu\n"
	  "quorum_gossip_members{state=\"suspect\"} %zu\n"
	  "quorum_gossip_members{state=\"down\"} %zu\n"
	  "quorum_gossip_members{state=\"left\"} %zu\n",
	  g[0], g[1], g[2], g[3]);

	net_auth_stats as;
	net_loop_auth_stats(m->src.loop, &as);
	P("# HELP quorum_auth_handshakes_total Cluster-secret handshakes, incoming and outgoing, "
	  "by result.\n# TYPE quorum_auth_handshakes_total counter\n"
	  "quorum_auth_handshakes_total{result=\"ok\"} %llu\n"
	  "quorum_auth_handshakes_total{result=\"failed\"} %llu\n"
	  "quorum_auth_handshakes_total{result=\"unauthenticated\"} %llu\n",
	  (unsigned long long)as.ok, (unsigned long long)as.failed,
	  (unsigned long long)as.unauth_frames);
	G("quorum_auth_enabled", "1 if connections must prove the cluster secret.",
	  m->src.secret ? 1 : 0);
	C("quorum_metrics_scrapes_total", "Scrapes of this endpoint.",
	  __atomic_load_n(&m->scrapes, __ATOMIC_RELAXED));
#undef C
#undef G

	/* everything else the status reports (anti-entropy, handoff, ...) */
	if (rc == 0) {
		q_buf js = Q_BUF_INIT;
		rc = coord_status_json(m->src.coord, &js);
		if (rc == 0)
			rc = q_buf_printf(out, "# Numeric fields of the node status "
					       "(quorumctl status --json), untyped.\n");
		if (rc == 0)
			rc = node_metrics_flatten_json((const char *)js.p, js.len, out);
		q_buf_free(&js);
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* ring                                                                       */

static int json_str(q_buf *b, const char *s)
{
	Q_RET(q_buf_append_byte(b, '"'));
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			Q_RET(q_buf_printf(b, "\\%c", ch));
		else if (ch < 0x20)
			Q_RET(q_buf_printf(b, "\\u%04x", ch));
		else
			Q_RET(q_buf_append_byte(b, ch));
	}
	return q_buf_append_byte(b, '"');
}

/* Length of the arc (start, end] as a fraction of the circle. */
static double arc_share(ring_range rr)
{
	if (rr.start == rr.end)
		return 1.0;
	uint64_t len = rr.end - rr.start; /* wraps correctly modulo 2^64 */
	return (double)len / 18446744073709551616.0;
}

int node_metrics_ring_json(node_metrics *m, q_buf *out)
{
	ring *r = NULL;
	member *mv = NULL;
	size_t mn = 0;
	uint64_t mver = 0;
	double *shares = NULL;
	int rc = coord_ring_snapshot(m->src.coord, &r);
	if (rc < 0)
		return rc;
	rc = members_snapshot(m->src.mem, &mv, &mn, &mver);
	if (rc < 0)
		goto out;
	size_t nm = ring_member_count(r);
	shares = calloc(nm ? nm : 1, sizeof(double));
	if (!shares) {
		rc = -ENOMEM;
		goto out;
	}
	ring_ownership(r, shares);
	int n = m->src.n < 1 ? 1 : m->src.n;
	rc = q_buf_printf(out, "{\"node_id\":");
	if (rc == 0)
		rc = json_str(out, m->node_id);
	if (rc == 0)
		rc = q_buf_printf(out,
				  ",\"ring_version\":%llu,\"ring_digest\":\"%016llx\",\"n\":%d,"
				  "\"effective_n\":%zu,\"members\":%zu,\"zones\":%zu,\"tokens\":%zu,"
				  "\"nodes\":[",
				  (unsigned long long)ring_version(r),
				  (unsigned long long)ring_digest(r), n,
				  nm < (size_t)n ? nm : (size_t)n, nm, ring_zone_count(r),
				  ring_token_count(r));
	for (size_t i = 0; i < nm && rc == 0; i++) {
		ring_member rm;
		ring_member_get(r, i, &rm);
		ring_range *rr = NULL;
		size_t nr = 0;
		double repl = 0.0;
		rc = ring_ranges(r, rm.node, (size_t)n, &rr, &nr);
		if (rc < 0)
			break;
		for (size_t k = 0; k < nr; k++)
			repl += arc_share(rr[k]);
		free(rr);
		const char *addr = "", *state = "unknown";
		for (size_t k = 0; k < mn; k++) {
			if (!strcmp(mv[k].id, rm.node)) {
				addr = mv[k].addr;
				state = mv[k].state == MEMBER_UP     ? "up"
					: mv[k].state == MEMBER_DOWN ? "down"
								     : "unknown";
			}
		}
		rc = q_buf_printf(out, "%s{\"id\":", i ? "," : "");
		if (rc == 0)
			rc = json_str(out, rm.node);
		if (rc == 0)
			rc = q_buf_printf(out, ",\"zone\":");
		if (rc == 0)
			rc = json_str(out, rm.zone ? rm.zone : "");
		if (rc == 0)
			rc = q_buf_printf(out, ",\"addr\":");
		if (rc == 0)
			rc = json_str(out, addr);
		if (rc == 0)
			rc = q_buf_printf(out,
					  ",\"state\":\"%s\",\"self\":%s,\"tokens\":%u,"
					  "\"owned_share\":%.6f,\"replicated_share\":%.6f,"
					  "\"replicated_arcs\":%zu}",
					  state, strcmp(rm.node, m->node_id) ? "false" : "true",
					  rm.tokens, shares[i], repl > 1.0 ? 1.0 : repl, nr);
	}
	if (rc == 0)
		rc = q_buf_printf(out, "]}");
out:
	free(shares);
	free(mv);
	ring_free(r);
	return rc;
}

void node_metrics_admin(void *arg, net_request *req)
{
	node_metrics *m = arg;
	if (req->type != NET_MSG_RING) {
		net_reply_error(req, Q_EPROTO, "admin request not served by this node");
		return;
	}
	q_buf out = Q_BUF_INIT;
	int rc = node_metrics_ring_json(m, &out);
	if (rc < 0) {
		net_reply_error(req, rc, "cannot build the ring view");
	} else {
		net_msg r;
		net_msg_init(&r, NET_MSG_RING_RESP);
		r.u.status_resp.text = q_buf_slice(&out);
		net_reply_send(req, &r);
	}
	q_buf_free(&out);
}

int node_metrics_status_json(node_metrics *m, q_buf *out)
{
	net_auth_stats as;
	net_loop_auth_stats(m->src.loop, &as);
	int rc = q_buf_printf(out,
			      ",\"security\":{\"secret\":%s,\"handshakes_ok\":%llu,"
			      "\"handshakes_failed\":%llu,\"unauthenticated\":%llu},"
			      "\"metrics\":{\"listen\":",
			      m->src.secret ? "true" : "false", (unsigned long long)as.ok,
			      (unsigned long long)as.failed, (unsigned long long)as.unauth_frames);
	if (rc == 0)
		rc = json_str(out, m->bound);
	if (rc == 0)
		rc = q_buf_printf(out, ",\"scrapes\":%llu}",
				  (unsigned long long)__atomic_load_n(&m->scrapes, __ATOMIC_RELAXED));
	return rc;
}
