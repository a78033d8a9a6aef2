/*
 * cli.h - shared pieces of quorumctl: exit codes, helpers, the bench.
 *
 * The exit codes are part of the tool's interface (docs/cluster.md); never
 * renumber them.
 */
#ifndef Q_CLI_H
#define Q_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_NOTFOUND = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_QUORUM = 3,  /* no quorum or timeout */
	CLI_EXIT_ERROR = 4
};

/* Exit code for a util/qerr.h code. */
int cli_exit_code(int rc);
struct qc_client;
/* Prints "quorumctl: NAME: WHAT: message (detail)" for rc to stderr, the
 * detail being c's last network error when c is not NULL; returns the exit
 * code for rc. */
int cli_fail(struct qc_client *c, const char *what, int rc);
/* Decimal in [lo, hi]; -EINVAL otherwise. */
int cli_parse_int(const char *s, int lo, int hi, int *out);
/* JSON string literal of n bytes (escapes control characters). */
void cli_json_str(FILE *f, const uint8_t *p, size_t n);

/* `quorumctl bench ARGS` (cli_bench.c); returns an exit code. */
int cli_bench(int argc, char **argv, const char *node, uint64_t timeout_ms, int json);
/* `quorumctl siblings PATH ...` (cli_fs.c); returns an exit code. */
int cli_siblings(int argc, char **argv, const char *node, uint64_t timeout_ms, int json);
/* `quorumctl fs-gc [--grace S] [--dry-run]` (cli_fs.c); returns an exit code. */
int cli_fs_gc(int argc, char **argv, const char *node, uint64_t timeout_ms, int json);
/* `quorumctl repair [--range START:END] [--json]` (cli_repair.c); an exit code. */
int cli_repair(int argc, char **argv, const char *node, uint64_t timeout_ms, int json);
/* `quorumctl leave [--id ID]` (cli_admin.c); returns an exit code. */
int cli_leave(int argc, char **argv, const char *node, uint64_t timeout_ms, int json);

/* `quorumctl init-secret FILE [--force]` (cli_secret.c); an exit code. */
int cli_init_secret(int argc, char **argv);
/* Loads the key file for every network client of the process (--secret,
 * QUORUM_SECRET_FILE); CLI_EXIT_OK or an exit code after a message. */
int cli_use_secret(const char *path);
/* Text to append to an error message: for Q_ECLOSED when no secret was
 * loaded, a hint that the node may require one; "" otherwise. */
const char *cli_closed_hint(int rc);
struct qc_client;
/* `quorumctl ring [--json]` (cli_ring.c); an exit code. */
int cli_ring(struct qc_client *c, int json);

#endif
