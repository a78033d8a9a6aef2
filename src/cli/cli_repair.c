/*
 * cli_repair.c - `quorumctl repair [--range START:END] [--json]`: asks the
 * node to compare the Merkle trees of all the arcs it replicates (or those
 * overlapping the range) with every other replica now, and waits for the
 * result, polling the node's repair status (NET_MSG_AAE_REPAIR, payloads
 * in src/aae/aae_sync.h) every 200 ms. On a terminal, a progress line on
 * stderr; at the end a summary (or one JSON object with --json).
 *
 * START and END are ring positions (decimal or 0x-hex, as in status
 * "roots"); the range is (START, END], START == END meaning all.
 *
 * Exit: 0 when every comparison completed, 3 (no quorum) when some could
 * not be compared (a peer down, a tree still building), 4 on other errors.
 *
 * Threading: single-threaded; one blocking connection (net_sync).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aae/aae_sync.h"
#include "cli/cli.h"
#include "net/net_msg.h"
#include "net/net_proto.h"
#include "net/net_sync.h"
#include "util/qerr.h"
#include "util/qtime.h"

static int parse_pos(const char *s, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || !end || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_range(const char *s, aae_repair_req *q)
{
	const char *c = strchr(s, ':');
	if (!c || c == s || !c[1])
		return -EINVAL;
	char a[32];
	size_t n = (size_t)(c - s);
	if (n >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, n);
	a[n] = 0;
	if (parse_pos(a, &q->start) < 0 || parse_pos(c + 1, &q->end) < 0)
		return -EINVAL;
	q->has_range = 1;
	return 0;
}

static int ask(net_sync *s, const aae_repair_req *q, uint64_t timeout_ms, aae_repair_status *st)
{
	q_buf req = Q_BUF_INIT, rb = Q_BUF_INIT;
	net_msg m, resp;
	int rc = aae_repair_req_encode(&req, q);
	if (rc < 0)
		goto out;
	net_msg_init(&m, NET_MSG_AAE_REPAIR);
	m.u.blob.payload = q_buf_slice(&req);
	rc = net_sync_call(s, &m, timeout_ms, &resp, &rb);
	if (rc == 0)
		rc = aae_repair_status_decode(resp.u.blob.payload.p, resp.u.blob.payload.n, st);
	else if (resp.type == NET_MSG_ERROR)
		fprintf(stderr, "quorumctl: repair: %.*s\n", (int)resp.u.error.text.n,
			(const char *)resp.u.error.text.p);
	net_msg_clear(&resp);
out:
	q_buf_free(&req);
	q_buf_free(&rb);
	return rc;
}

static void print_json(const aae_repair_status *s)
{
	printf("{\"job\":%llu,\"state\":\"%s\",\"ranges_total\":%llu,\"ranges_done\":%llu,"
	       "\"ranges_differing\":%llu,\"failures\":%llu,\"nodes_compared\":%llu,"
	       "\"keys_differing\":%llu,\"keys_sent\":%llu,\"keys_received\":%llu,"
	       "\"bytes_exchange\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
	       "\"elapsed_ms\":%llu}\n",
	       (unsigned long long)s->job,
	       s->state == AAE_REPAIR_DONE ? "done" : s->state == AAE_REPAIR_PARTIAL ? "partial"
						: s->state == AAE_REPAIR_RUNNING ? "running"
										 : "idle",
	       (unsigned long long)s->ranges_total, (unsigned long long)s->ranges_done,
	       (unsigned long long)s->ranges_differing, (unsigned long long)s->failures,
	       (unsigned long long)s->nodes_compared, (unsigned long long)s->keys_differing,
	       (unsigned long long)s->keys_sent, (unsigned long long)s->keys_received,
	       (unsigned long long)s->bytes_exchange, (unsigned long long)s->bytes_sent,
	       (unsigned long long)s->bytes_received, (unsigned long long)s->elapsed_ms);
}

static void progress(const aae_repair_status *s)
{
	unsigned pct = s->ranges_total ? (unsigned)(s->ranges_done * 100 / s->ranges_total) : 0;
	int bar = (int)(pct / 5);
	fprintf(stderr, "\r[%.*s%*s] %3u%% %llu/%llu ranges, %llu keys differing, %llu sent, "
			"%llu received ",
		bar, "####################", 20 - bar, "", pct,
		(unsigned long long)s->ranges_done, (unsigned long long)s->ranges_total,
		(unsigned long long)s->keys_differing, (unsigned long long)s->keys_sent,
		(unsigned long long)s->keys_received);
	fflush(stderr);
}

int cli_repair(int argc, char **argv, const char *node, uint64_t timeout_ms, int json)
{
	aae_repair_req q;
	memset(&q, 0, sizeof(q));
	q.op = AAE_REPAIR_START;
	uint64_t wait_ms = 3600ULL * 1000; /* how long to wait for the result */
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--range") && i + 1 < argc) {
			if (parse_range(argv[++i], &q) < 0) {
				fprintf(stderr, "quorumctl: --range needs START:END ring positions\n");
				return CLI_EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (q_parse_duration_ms(argv[++i], &wait_ms) < 0 || !wait_ms) {
				fprintf(stderr, "quorumctl: --wait needs a duration like 10m\n");
				return CLI_EXIT_USAGE;
			}
		} else {
			fprintf(stderr,
				"quorumctl: usage: repair [--range START:END] [--wait DUR] [--json]\n");
			return CLI_EXIT_USAGE;
		}
	}
	net_sync *s = NULL;
	int rc = net_sync_connect(node, timeout_ms, &s);
	if (rc < 0) {
		fprintf(stderr, "quorumctl: cannot connect to %s: %s\n", node, q_strerror(rc));
		return cli_exit_code(rc);
	}
	aae_repair_status st;
	rc = ask(s, &q, timeout_ms, &st);
	if (rc < 0) {
		fprintf(stderr, "quorumctl: repair: %s%s\n", q_strerror(rc), cli_closed_hint(rc));
		net_sync_close(s);
		return cli_exit_code(rc);
	}
	uint64_t job = st.job;
	int tty = isatty(2);
	uint64_t deadline = q_mono_ms() + wait_ms;
	q.op = AAE_REPAIR_POLL;
	while (st.state == AAE_REPAIR_RUNNING) {
		if (tty && !json)
			progress(&st);
		if (q_mono_ms() > deadline) {
			fprintf(stderr, "\nquorumctl: repair still running after the --wait time\n");
			net_sync_close(s);
			return CLI_EXIT_QUORUM;
		}
		q_sleep_ms(200);
		rc = ask(s, &q, timeout_ms, &st);
		if (rc < 0) {
			fprintf(stderr, "\nquorumctl: repair status: %s\n", q_strerror(rc));
			net_sync_close(s);
			return cli_exit_code(rc);
		}
		if (st.job != job) {
			fprintf(stderr, "\nquorumctl: another repair replaced this one\n");
			net_sync_close(s);
			return CLI_EXIT_ERROR;
		}
	}
	net_sync_close(s);
	if (tty && !json) {
		progress(&st);
		fputc('\n', stderr);
	}
	if (json) {
		print_json(&st);
	} else {
		printf("repair %s in %.1f s: %llu range comparisons (%llu differing, %llu failed), "
		       "%llu tree nodes compared\n",
		       st.state == AAE_REPAIR_DONE ? "done" : "partial", st.elapsed_ms / 1000.0,
		       (unsigned long long)st.ranges_done, (unsigned long long)st.ranges_differing,
		       (unsigned long long)st.failures, (unsigned long long)st.nodes_compared);
		printf("keys differing: %llu; sent %llu keys (%llu bytes), received %llu keys "
		       "(%llu bytes); tree exchange %llu bytes\n",
		       (unsigned long long)st.keys_differing, (unsigned long long)st.keys_sent,
		       (unsigned long long)st.bytes_sent, (unsigned long long)st.keys_received,
		       (unsigned long long)st.bytes_received, (unsigned long long)st.bytes_exchange);
	}
	return st.state == AAE_REPAIR_DONE ? CLI_EXIT_OK : CLI_EXIT_QUORUM;
}
