/*
 * cli_secret.c - `quorumctl init-secret FILE [--force]` and the --secret
 * option: creating the cluster secret key file and loading it for the
 * network clients (docs/security.md).
 *
 * The key file is written by net_auth_key_generate (mode 0600, fsynced,
 * never overwritten without --force) and read by net_auth_key_load, which
 * refuses a file group or others can access.
 *
 * Threading: called from main before any client thread starts.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "client/client.h"
#include "net/net_auth.h"
#include "net/net_sync.h"
#include "util/qerr.h"

int cli_init_secret(int argc, char **argv)
{
	const char *path = NULL;
	int force = 0, extra = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f")) {
			force = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "quorumctl: init-secret: unknown option %s\n", argv[i]);
			return CLI_EXIT_USAGE;
		} else if (!path) {
			path = argv[i];
		} else {
			extra = 1;
		}
	}
	if (!path || extra) {
		fprintf(stderr, "quorumctl: usage: init-secret FILE [--force]\n");
		return CLI_EXIT_USAGE;
	}
	char err[512];
	int rc = net_auth_key_generate(path, force, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "quorumctl: %s: init-secret: %s\n", q_errname(rc), err);
		return CLI_EXIT_ERROR;
	}
	printf("wrote a new cluster secret to %s (mode 0600); copy it to every node and "
	       "client over a trusted channel\n",
	       path);
	return CLI_EXIT_OK;
}

static int secret_loaded;

const char *cli_closed_hint(int rc)
{
	if (rc != Q_ECLOSED || secret_loaded)
		return "";
	return " (the node may require the cluster secret: --secret FILE)";
}

int cli_use_secret(const char *path)
{
	uint8_t key[NET_AUTH_KEY_LEN];
	char err[512];
	int rc = net_auth_key_load(path, key, err, sizeof(err));
	if (rc == 0)
		rc = qc_net_set_default_secret(key);
	if (rc == 0) /* commands that talk over net_sync directly (bench, leave, repair) */
		rc = net_sync_set_default_secret(key);
	sodium_memzero(key, sizeof(key));
	if (rc == 0)
		secret_loaded = 1;
	if (rc < 0) {
		fprintf(stderr, "quorumctl: %s: --secret: %s\n", q_errname(rc),
			err[0] ? err : q_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}
