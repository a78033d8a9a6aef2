/*
 * cli_ring.c - `quorumctl ring [--json]`: the token ownership of every
 * member as the node sees it (RING message, docs/protocol.md).
 *
 * --json prints the node's answer unchanged. The table reads the flat
 * per-node objects of that answer with a small field scanner: the answer
 * comes from our own node (node_metrics_ring_json), whose "nodes" entries
 * hold only strings, numbers and booleans; anything unexpected is reported,
 * never read past the end of the text.
 *
 * Threading: single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "util/buf.h"
#include "util/qerr.h"

/* Copies the value of "key": in the object text [p, end) into out (strings
 * without quotes; escapes kept as is). Returns 0 or -1 if absent. */
static int field(const char *p, const char *end, const char *key, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	size_t pl = strlen(pat);
	for (const char *s = p; s + pl <= end; s++) {
		if (memcmp(s, pat, pl))
			continue;
		s += pl;
		size_t n = 0;
		if (s < end && *s == '"') {
			s++;
			while (s < end && *s != '"' && n + 1 < cap) {
				if (*s == '\\' && s + 1 < end)
					s++;
				out[n++] = *s++;
			}
		} else {
			while (s < end && *s != ',' && *s != '}' && n + 1 < cap)
				out[n++] = *s++;
		}
		out[n] = 0;
		return 0;
	}
	return -1;
}

static int print_table(const char *js, size_t len)
{
	const char *end = js + len;
	char v[8][96];
	if (field(js, end, "ring_version", v[0], sizeof v[0]) < 0 ||
	    field(js, end, "members", v[1], sizeof v[1]) < 0 ||
	    field(js, end, "tokens", v[2], sizeof v[2]) < 0 ||
	    field(js, end, "n", v[3], sizeof v[3]) < 0 ||
	    field(js, end, "ring_digest", v[4], sizeof v[4]) < 0 ||
	    field(js, end, "zones", v[5], sizeof v[5]) < 0) {
		fprintf(stderr, "quorumctl: EPROTO: ring: unexpected answer from the node\n");
		return CLI_EXIT_ERROR;
	}
	printf("ring version %s (digest %s): %s members in %s zones, %s tokens, n=%s\n", v[0],
	       v[4], v[1], v[5], v[2], v[3]);
	printf("%-24s %-12s %-8s %6s %8s %11s %7s  %s\n", "NODE", "ZONE", "STATE", "TOKENS", "OWNS",
	       "REPLICATES", "ARCS", "ADDRESS");
	/* the answer is not NUL-terminated: search within its length */
	const char *p = memmem(js, len, "\"nodes\":[", 9);
	if (!p)
		return CLI_EXIT_OK;
	p += 9;
	while (p < end) {
		const char *o = memchr(p, '{', (size_t)(end - p));
		if (!o)
			break;
		const char *c = memchr(o, '}', (size_t)(end - o));
		if (!c)
			break;
		static const char *const keys[] = {"id", "zone", "state", "tokens", "owned_share",
						   "replicated_share", "replicated_arcs", "addr"};
		for (int k = 0; k < 8; k++)
			if (field(o, c, keys[k], v[k], sizeof v[k]) < 0)
				snprintf(v[k], sizeof v[k], "?");
		char self[8] = "";
		field(o, c, "self", self, sizeof self);
		printf("%-24s %-12s %-8s %6s %7.2f%% %10.2f%% %7s  %s%s\n", v[0], v[1], v[2], v[3],
		       100.0 * atof(v[4]), 100.0 * atof(v[5]), v[6], v[7],
		       strcmp(self, "true") ? "" : "  (this node)");
		p = c + 1;
	}
	return CLI_EXIT_OK;
}

int cli_ring(qc_client *c, int json)
{
	q_buf out = Q_BUF_INIT;
	int rc = qc_net_ring(c, &out);
	int code;
	if (rc < 0) {
		const char *d = qc_net_last_error(c);
		fprintf(stderr, "quorumctl: %s: ring: %s%s%s%s\n", q_errname(rc), q_strerror(rc),
			d && d[0] ? " (" : "", d ? d : "", d && d[0] ? ")" : "");
		code = cli_exit_code(rc);
	} else if (json) {
		printf("%.*s\n", (int)out.len, (const char *)out.p);
		code = CLI_EXIT_OK;
	} else {
		code = print_table((const char *)out.p, out.len);
	}
	q_buf_free(&out);
	return code;
}
