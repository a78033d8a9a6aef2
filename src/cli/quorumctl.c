/*
 * quorumctl.c - the command-line client and admin tool.
 *
 *   quorumctl [--node ADDR:PORT] [--timeout DUR] [--json] COMMAND [ARGS]
 *
 * Commands: get, put, delete, status, bench, siblings (see usage() and
 * docs/cluster.md). Output is meant for people and for scripts: --json on
 * any command prints one JSON document on stdout; errors go to stderr as
 * "quorumctl: CODE: message" with CODE the symbolic error name.
 *
 * Exit status (stable, scripts rely on it):
 *   0 success, 1 not found, 2 usage error, 3 no quorum or timeout,
 *   4 any other error (connection refused, bad context, too large, ...).
 *
 * Threading: single-threaded except `bench`, whose workers each own one
 * network client (cli_bench.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "util/buf.h"
#include "util/qerr.h"
#include "util/qtime.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quorumctl [--node ADDR:PORT] [--timeout DUR] [--json] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  get KEY [--r N] [--n N] [--replica-only]\n"
		"        print every sibling of KEY and its context token\n"
		"        (--replica-only: what the node's own replica holds, no quorum)\n"
		"  put KEY [VALUE|-] [--context TOKEN] [--w N] [--n N]\n"
		"        write VALUE (or stdin with '-' or no VALUE); with the context\n"
		"        token from get the write replaces the siblings that get showed\n"
		"  delete KEY [--context TOKEN] [--w N] [--n N]\n"
		"  status                  the node's members, ring and counters\n"
		"  ring                    token ownership per member: tokens, share of the\n"
		"        circle owned and replicated (--json: the node's answer as is)\n"
		"  init-secret FILE [--force]\n"
		"        write a new random cluster secret (mode 0600) for secret_file\n"
		"  bench [--nodes A,B,..] [--clients 50] [--keys 100000] [--duration 10s]\n"
		"        [--value-size 100] [--get-percent 50] [--r N] [--w N] [--preload]\n"
		"        [--trace FILE] [--contexts]\n"
		"        mixed get/put load; prints throughput and latency percentiles\n"
		"        (puts are blind writes unless --contexts: each then carries the\n"
		"        key's context from the last answer, replacing what it showed)\n"
		"  siblings PATH [--json] [--r N] [--n N] [--no-digest]\n"
		"        every version of a file of the filesystem (PATH as in the mount)\n"
		"  fs-gc [--grace SECONDS [--force]] [--dry-run] [--json]\n"
		"        delete the filesystem's chunks no file version names, older than\n"
		"        the grace period (3600 s); refuses unless every member is scanned\n"
		"  repair [--range START:END] [--wait DUR] [--json]\n"
		"        anti-entropy now: compare this node's trees with every replica,\n"
		"        copy differing keys both ways; prints ranges, keys and bytes moved\n"
		"  leave [--id NODE_ID]    decommission the node (or member NODE_ID): hand\n"
		"        its data to the new owners and stop (progress: status \"handoff\")\n"
		"\n"
		"Options:\n"
		"  --node ADDR:PORT   node to talk to (default $QUORUMCTL_NODE or 127.0.0.1:7070)\n"
		"  --timeout DUR      request timeout, e.g. 500ms, 2s (default 5s)\n"
		"  --json             machine-readable output\n"
		"  --secret FILE      cluster secret key file (default $QUORUM_SECRET_FILE);\n"
		"                     needed when the nodes have secret_file set\n"
		"  -h, --help         this text\n"
		"\n"
		"Exit status: 0 ok, 1 not found, 2 usage error, 3 no quorum or timeout,\n"
		"4 other error.\n");
}

int cli_exit_code(int rc)
{
	if (rc == 0)
		return CLI_EXIT_OK;
	if (rc == Q_ENOTFOUND)
		return CLI_EXIT_NOTFOUND;
	if (rc == Q_EQUORUM || rc == Q_ETIMEOUT)
		return CLI_EXIT_QUORUM;
	return CLI_EXIT_ERROR;
}

int cli_fail(qc_client *c, const char *what, int rc)
{
	const char *detail = c ? qc_net_last_error(c) : "";
	if (detail && detail[0])
		fprintf(stderr, "quorumctl: %s: %s: %s (%s)\n", q_errname(rc), what, q_strerror(rc),
			detail);
	else
		fprintf(stderr, "quorumctl: %s: %s: %s\n", q_errname(rc), what, q_strerror(rc));
	return cli_exit_code(rc);
}

/* ------------------------------------------------------------------ */
/* JSON and text output                                                */

static int utf8_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t len;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0 && c >= 0xC2)
			len = 2;
		else if ((c & 0xF0) == 0xE0)
			len = 3;
		else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
			len = 4;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

void cli_json_str(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void b64(FILE *f, const uint8_t *p, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	fputc('"', f);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		fputc(t[(v >> 18) & 63], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(i + 1 < n ? t[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < n ? t[v & 63] : '=', f);
	}
	fputc('"', f);
}

static void fmt_time(uint64_t ns, char *buf, size_t cap)
{
	time_t s = (time_t)(ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&s, &tm);
	char d[32];
	strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, cap, "%s.%09lluZ", d, (unsigned long long)(ns % 1000000000ull));
}

static void print_object(const char *key, const qc_object *o, int found, int json)
{
	q_buf tok = Q_BUF_INIT;
	if (o->context.len)
		qc_ctx_to_token(q_buf_slice(&o->context), &tok);
	const char *token = tok.len ? (const char *)tok.p : "";
	if (json) {
		printf("{\"key\":");
		cli_json_str(stdout, (const uint8_t *)key, strlen(key));
		printf(",\"found\":%s,\"siblings\":[", found ? "true" : "false");
		for (size_t i = 0; i < o->nsib; i++) {
			const qc_sibling *s = &o->sib[i];
			char ts[64];
			fmt_time(s->wall_ns, ts, sizeof(ts));
			printf("%s{\"node\":", i ? "," : "");
			cli_json_str(stdout, (const uint8_t *)s->node, strlen(s->node));
			printf(",\"counter\":%llu,\"deleted\":%s,\"wall_ns\":%llu,\"time\":\"%s\"",
			       (unsigned long long)s->counter, s->deleted ? "true" : "false",
			       (unsigned long long)s->wall_ns, ts);
			if (!s->deleted) {
				if (utf8_ok(s->value.p, s->value.n)) {
					printf(",\"value\":");
					cli_json_str(stdout, s->value.p, s->value.n);
				} else {
					printf(",\"value_base64\":");
					b64(stdout, s->value.p, s->value.n);
				}
			}
			printf("}");
		}
		printf("],\"live\":%zu,\"context\":\"%s\"}\n", qc_object_live(o), token);
	} else {
		size_t n = o->nsib;
		for (size_t i = 0; i < n; i++) {
			const qc_sibling *s = &o->sib[i];
			char ts[64];
			fmt_time(s->wall_ns, ts, sizeof(ts));
			printf("# sibling %zu/%zu node=%s counter=%llu time=%s%s\n", i + 1, n, s->node,
			       (unsigned long long)s->counter, ts, s->deleted ? " deleted" : "");
			if (!s->deleted) {
				fwrite(s->value.p, 1, s->value.n, stdout);
				if (s->value.n == 0 || s->value.p[s->value.n - 1] != '\n')
					fputc('\n', stdout);
			}
		}
		if (token[0])
			printf("# context %s\n", token);
	}
	q_buf_free(&tok);
}

/* Minimal pretty printer for the status JSON (structure only). */
static void json_pretty(const char *s, size_t n)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			fputc(c, stdout);
			if (c == '\\' && i + 1 < n)
				fputc(s[++i], stdout);
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			fputc(c, stdout);
			break;
		case '{':
		case '[':
			fputc(c, stdout);
			fputc('\n', stdout);
			depth++;
			for (int k = 0; k < depth; k++)
				fputs("  ", stdout);
			break;
		case '}':
		case ']':
			fputc('\n', stdout);
			depth--;
			for (int k = 0; k < depth; k++)
				fputs("  ", stdout);
			fputc(c, stdout);
			break;
		case ',':
			fputs(",\n", stdout);
			for (int k = 0; k < depth; k++)
				fputs("  ", stdout);
			break;
		case ':':
			fputs(": ", stdout);
			break;
		default:
			fputc(c, stdout);
		}
	}
	fputc('\n', stdout);
}

/* ------------------------------------------------------------------ */
/* Argument parsing                                                    */

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int read_stdin(q_buf *b)
{
	uint8_t tmp[65536];
	size_t got;
	while ((got = fread(tmp, 1, sizeof(tmp), stdin)) > 0)
		Q_RET(q_buf_append(b, tmp, got));
	return ferror(stdin) ? -EIO : 0;
}

typedef struct args {
	const char *node;
	uint64_t timeout_ms;
	int json;
	int n, r, w;
	int replica_only;
	const char *context;
	const char *pos[3];
	int npos;
} args;

/* Parses the options that may follow a command; positional arguments are
 * collected in a->pos. Returns 0 or CLI_EXIT_USAGE after a message. */
static int parse_cmd_args(int argc, char **argv, int i, args *a)
{
	for (; i < argc; i++) {
		const char *s = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(s, "--")) {
			for (i++; i < argc; i++) {
				if (a->npos == 3)
					goto toomany;
				a->pos[a->npos++] = argv[i];
			}
			break;
		}
		if (!strcmp(s, "--json")) {
			a->json = 1;
		} else if (!strcmp(s, "--replica-only")) {
			a->replica_only = 1;
		} else if (!strcmp(s, "--r") || !strcmp(s, "--w") || !strcmp(s, "--n")) {
			int v;
			if (!val || cli_parse_int(val, 1, 16, &v) < 0) {
				fprintf(stderr, "quorumctl: %s needs a number from 1 to 16\n", s);
				return CLI_EXIT_USAGE;
			}
			if (s[2] == 'r')
				a->r = v;
			else if (s[2] == 'w')
				a->w = v;
			else
				a->n = v;
			i++;
		} else if (!strcmp(s, "--context")) {
			if (!val) {
				fprintf(stderr, "quorumctl: --context needs a token\n");
				return CLI_EXIT_USAGE;
			}
			a->context = val;
			i++;
		} else if (!strcmp(s, "--node")) {
			if (!val) {
				fprintf(stderr, "quorumctl: --node needs ADDR:PORT\n");
				return CLI_EXIT_USAGE;
			}
			a->node = val;
			i++;
		} else if (!strcmp(s, "--timeout")) {
			if (!val || q_parse_duration_ms(val, &a->timeout_ms) < 0 || !a->timeout_ms) {
				fprintf(stderr, "quorumctl: --timeout needs a duration like 2s\n");
				return CLI_EXIT_USAGE;
			}
			i++;
		} else if (s[0] == '-' && s[1] == '-') {
			fprintf(stderr, "quorumctl: unknown option %s\n", s);
			return CLI_EXIT_USAGE;
		} else {
			if (a->npos == 3)
				goto toomany;
			a->pos[a->npos++] = s;
		}
	}
	return 0;
toomany:
	fprintf(stderr, "quorumctl: too many arguments\n");
	return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */

static int cmd_get(qc_client *c, args *a)
{
	if (a->npos != 1) {
		fprintf(stderr, "quorumctl: usage: get KEY [--r N] [--n N] [--replica-only]\n");
		return CLI_EXIT_USAGE;
	}
	const char *key = a->pos[0];
	qc_opts o = {.n = a->n, .r = a->r, .timeout_ms = a->timeout_ms};
	qc_object obj;
	qc_object_init(&obj);
	int rc = a->replica_only ? qc_net_replica_get(c, q_slice_str(key), &obj)
				 : qc_get(c, q_slice_str(key), &o, &obj);
	int code;
	if (rc == 0) {
		print_object(key, &obj, 1, a->json);
		code = 0;
	} else if (rc == Q_ENOTFOUND) {
		if (a->json || obj.context.len)
			print_object(key, &obj, 0, a->json);
		fprintf(stderr, "quorumctl: ENOTFOUND: %s: not found\n", key);
		code = CLI_EXIT_NOTFOUND;
	} else {
		code = cli_fail(c, key, rc);
	}
	qc_object_free(&obj);
	return code;
}

static int write_cmd(qc_client *c, args *a, int del)
{
	if ((!del && (a->npos < 1 || a->npos > 2)) || (del && a->npos != 1)) {
		fprintf(stderr, del ? "quorumctl: usage: delete KEY [--context TOKEN] [--w N]\n"
				    : "quorumctl: usage: put KEY [VALUE|-] [--context TOKEN] [--w N]\n");
		return CLI_EXIT_USAGE;
	}
	const char *key = a->pos[0];
	q_buf ctx = Q_BUF_INIT, val = Q_BUF_INIT;
	int code = 0, rc;
	if (a->context) {
		rc = qc_token_to_ctx(a->context, &ctx);
		if (rc < 0) {
			fprintf(stderr, "quorumctl: EBADCTX: --context: not a context token\n");
			code = CLI_EXIT_ERROR;
			goto out;
		}
	}
	if (!del) {
		if (a->npos == 1 || !strcmp(a->pos[1], "-")) {
			rc = read_stdin(&val);
			if (rc < 0) {
				code = cli_fail(NULL, "reading stdin", rc);
				goto out;
			}
		} else {
			rc = q_buf_append(&val, a->pos[1], strlen(a->pos[1]));
			if (rc < 0) {
				code = cli_fail(NULL, key, rc);
				goto out;
			}
		}
	}
	qc_opts o = {.n = a->n, .w = a->w, .timeout_ms = a->timeout_ms};
	qc_object obj;
	qc_object_init(&obj);
	if (del)
		rc = qc_del(c, q_slice_str(key), q_buf_slice(&ctx), &o);
	else
		rc = qc_put(c, q_slice_str(key), q_buf_slice(&ctx), q_buf_slice(&val), &o, &obj);
	if (rc == 0) {
		q_buf tok = Q_BUF_INIT;
		if (obj.context.len)
			qc_ctx_to_token(q_buf_slice(&obj.context), &tok);
		if (a->json) {
			printf("{\"ok\":true,\"key\":");
			cli_json_str(stdout, (const uint8_t *)key, strlen(key));
			printf(",\"siblings\":%zu,\"context\":\"%s\"}\n", obj.nsib,
			       tok.len ? (const char *)tok.p : "");
		}
		else if (tok.len)
			printf("ok\n# context %s\n", (const char *)tok.p);
		else
			printf("ok\n");
		q_buf_free(&tok);
	} else {
		code = cli_fail(c, key, rc);
	}
	qc_object_free(&obj);
out:
	q_buf_free(&ctx);
	q_buf_free(&val);
	return code;
}

static int cmd_status(qc_client *c, args *a)
{
	if (a->npos) {
		fprintf(stderr, "quorumctl: usage: status\n");
		return CLI_EXIT_USAGE;
	}
	q_buf out = Q_BUF_INIT;
	int rc = qc_net_status(c, &out);
	if (rc < 0) {
		q_buf_free(&out);
		return cli_fail(c, "status", rc);
	}
	if (a->json)
		printf("%.*s\n", (int)out.len, (const char *)out.p);
	else
		json_pretty((const char *)out.p, out.len);
	q_buf_free(&out);
	return 0;
}

int main(int argc, char **argv)
{
	args a;
	memset(&a, 0, sizeof(a));
	a.node = getenv("QUORUMCTL_NODE");
	if (!a.node || !a.node[0])
		a.node = "127.0.0.1:7070";
	a.timeout_ms = 5000;
	const char *secret = getenv("QUORUM_SECRET_FILE");
	int i = 1;
	/* global options before the command */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(s, "--json")) {
			a.json = 1;
		} else if (!strcmp(s, "--secret") && i + 1 < argc) {
			secret = argv[++i];
		} else if (!strcmp(s, "--node") && i + 1 < argc) {
			a.node = argv[++i];
		} else if (!strcmp(s, "--timeout") && i + 1 < argc) {
			if (q_parse_duration_ms(argv[++i], &a.timeout_ms) < 0 || !a.timeout_ms) {
				fprintf(stderr, "quorumctl: --timeout needs a duration like 2s\n");
				return CLI_EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "quorumctl: unknown option %s\n", s);
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[i++];
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "init-secret"))
		return cli_init_secret(argc - i, argv + i);
	if (secret && secret[0] && cli_use_secret(secret) != CLI_EXIT_OK)
		return CLI_EXIT_USAGE;
	if (!strcmp(cmd, "bench"))
		return cli_bench(argc - i, argv + i, a.node, a.timeout_ms, a.json);
	if (!strcmp(cmd, "siblings"))
		return cli_siblings(argc - i, argv + i, a.node, a.timeout_ms, a.json);
	if (!strcmp(cmd, "fs-gc"))
		return cli_fs_gc(argc - i, argv + i, a.node, a.timeout_ms, a.json);
	if (!strcmp(cmd, "repair"))
		return cli_repair(argc - i, argv + i, a.node, a.timeout_ms, a.json);
	if (!strcmp(cmd, "leave"))
		return cli_leave(argc - i, argv + i, a.node, a.timeout_ms, a.json);
	int rc = parse_cmd_args(argc, argv, i, &a);
	if (rc)
		return rc;
	if (strcmp(cmd, "get") && strcmp(cmd, "put") && strcmp(cmd, "delete") &&
	    strcmp(cmd, "status") && strcmp(cmd, "ring")) {
		fprintf(stderr, "quorumctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (a.replica_only && strcmp(cmd, "get")) {
		fprintf(stderr, "quorumctl: --replica-only applies to get only\n");
		return CLI_EXIT_USAGE;
	}
	qc_client *c = NULL;
	rc = qc_net_new(a.node, a.timeout_ms, &c);
	if (rc < 0) {
		fprintf(stderr, "quorumctl: --node '%s': %s\n", a.node, q_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	int code;
	if (!strcmp(cmd, "get"))
		code = cmd_get(c, &a);
	else if (!strcmp(cmd, "put"))
		code = write_cmd(c, &a, 0);
	else if (!strcmp(cmd, "delete"))
		code = write_cmd(c, &a, 1);
	else if (!strcmp(cmd, "ring") && a.npos) {
		fprintf(stderr, "quorumctl: usage: ring [--json]\n");
		code = CLI_EXIT_USAGE;
	} else if (!strcmp(cmd, "ring"))
		code = cli_ring(c, a.json);
	else
		code = cmd_status(c, &a);
	qc_close(c);
	fflush(stdout);
	return code;
}
