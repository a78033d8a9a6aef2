/*
 * quorumd.c - the cluster node daemon.
 *
 *   quorumd [--config FILE] [flags] [-o key=value ...]
 *
 * Settings come from the config file (docs/config.md), then flags and -o
 * overrides, later ones winning. The daemon runs in the foreground, logs to
 * stderr, and stops cleanly on SIGTERM or SIGINT: the coordinator stops
 * taking requests, the store flushes and closes, exit status 0. A restart on
 * the same data directory recovers every acknowledged write and keeps the
 * node id.
 *
 * Exit status: 0 clean stop, 1 start-up failure (bad config, data directory
 * locked, port in use, ...), 2 usage error.
 *
 * Threading: main blocks SIGTERM/SIGINT before any thread starts (so every
 * thread inherits the mask) and waits for them with sigwait.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"
#include "util/conf.h"
#include "util/log.h"
#include "util/qerr.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: quorumd [--config FILE] [options] [-o key=value ...]\n"
		"\n"
		"Runs one node of a quorumfs cluster in the foreground.\n"
		"\n"
		"  -c, --config FILE     read settings from FILE (key = value lines)\n"
		"  -d, --data DIR        data directory (data_dir)\n"
		"  -l, --listen ADDR:PORT  serve on this address (listen; default 127.0.0.1:7070)\n"
		"  -i, --node-id ID      node id (node_id; generated once if absent)\n"
		"  -z, --zone ZONE       zone label (zone)\n"
		"  -p, --peers LIST      other nodes: [ID@]HOST:PORT[/ZONE],... (peers)\n"
		"  -j, --join ADDR:PORT  join the cluster through this node (seeds)\n"
		"      --n N --r R --w W replication factor and quorums (n, r, w)\n"
		"      --sync POLICY     always | batch | none (sync)\n"
		"      --log-level L     debug | info | warn | error (log_level)\n"
		"  -o KEY=VALUE          set any config key (see docs/config.md)\n"
		"  -h, --help            this text\n"
		"\n"
		"Stops cleanly on SIGTERM/SIGINT. Exit status: 0 clean stop, 1 start-up\n"
		"failure, 2 usage error.\n");
}

enum { OPT_N = 256, OPT_R, OPT_W, OPT_SYNC, OPT_LOG };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"data", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"node-id", required_argument, NULL, 'i'},
		{"zone", required_argument, NULL, 'z'},
		{"peers", required_argument, NULL, 'p'},
		{"join", required_argument, NULL, 'j'},
		{"n", required_argument, NULL, OPT_N},
		{"r", required_argument, NULL, OPT_R},
		{"w", required_argument, NULL, OPT_W},
		{"sync", required_argument, NULL, OPT_SYNC},
		{"log-level", required_argument, NULL, OPT_LOG},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	/* flags are applied after the file: collect them first */
	const char **kv = calloc((size_t)argc * 2 + 2, sizeof(char *));
	size_t nkv = 0;
	if (!kv)
		return 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:d:l:i:z:p:j:o:h", longopts, NULL)) != -1) {
		const char *key = NULL;
		switch (ch) {
		case 'c':
			config = optarg;
			continue;
		case 'd': key = "data_dir"; break;
		case 'l': key = "listen"; break;
		case 'i': key = "node_id"; break;
		case 'z': key = "zone"; break;
		case 'p': key = "peers"; break;
		case 'j': key = "seeds"; break;
		case OPT_N: key = "n"; break;
		case OPT_R: key = "r"; break;
		case OPT_W: key = "w"; break;
		case OPT_SYNC: key = "sync"; break;
		case OPT_LOG: key = "log_level"; break;
		case 'o':
			kv[nkv++] = NULL;
			kv[nkv++] = optarg;
			continue;
		case 'h':
			usage(stdout);
			free(kv);
			return 0;
		default:
			usage(stderr);
			free(kv);
			return 2;
		}
		kv[nkv++] = key;
		kv[nkv++] = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "quorumd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(kv);
		return 2;
	}

	q_conf *conf = q_conf_new();
	if (!conf) {
		free(kv);
		return 1;
	}
	int rc = 0;
	if (config) {
		rc = q_conf_load(conf, config);
		if (rc < 0) {
			const char *e = q_conf_error(conf);
			fprintf(stderr, "quorumd: %s: %s\n", config, e && e[0] ? e : q_strerror(rc));
			goto usage_fail;
		}
	}
	for (size_t i = 0; i < nkv; i += 2) {
		rc = kv[i] ? q_conf_set(conf, kv[i], kv[i + 1]) : q_conf_set_kv(conf, kv[i + 1]);
		if (rc < 0) {
			fprintf(stderr, "quorumd: %s\n", q_conf_error(conf));
			goto usage_fail;
		}
	}
	free(kv);
	kv = NULL;

	/* SIGTERM/SIGINT are taken by sigwait below; every thread started by
	 * the node inherits this mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	q_node *node = NULL;
	rc = q_node_start(conf, &node);
	q_conf_free(conf);
	if (rc < 0) {
		fprintf(stderr, "quorumd: cannot start: %s\n", q_strerror(rc));
		return 1;
	}
	Q_INFO("quorumd", "ready: node %s on %s", q_node_id(node), q_node_listen_addr(node));
	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	Q_INFO("quorumd", "signal %d: shutting down", sig);
	rc = q_node_stop(node);
	return rc < 0 ? 1 : 0;

usage_fail:
	free(kv);
	q_conf_free(conf);
	return 2;
}
