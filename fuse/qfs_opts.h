/*
 * qfs_opts.h - the mount daemon's command line.
 *
 *   quorumfs [options] MOUNTPOINT
 *     -f                 stay in the foreground
 *     -d                 FUSE debug output (implies -f)
 *     -s                 single-threaded session loop
 *     -h, --help / -V, --version
 *     --join HOST:PORT   join the cluster that node belongs to (repeatable)
 *     --data DIR         data directory of the embedded node
 *     --listen ADDR:PORT cluster address of the embedded node
 *     --node-id ID       node id (default: generated once, kept in DIR)
 *     --zone ZONE        zone (rack / data-centre label)
 *     --config FILE      node config file (key = value, docs/config.md)
 *     -o OPT[,OPT...]    mount options: ours (below), node keys (n=, r=, w=,
 *                        sync=, request_timeout=, ... as in the config file)
 *                        and FUSE's (allow_other, default_permissions, ro,
 *                        fsname=, auto_unmount, ...). join=, data=, listen=,
 *                        node_id=, zone= are the long options' -o forms.
 * Our own -o keys: attr_timeout=SEC, entry_timeout=SEC (default 1),
 * chunk_size=SIZE (default 1M), inline_max=SIZE (default 64k),
 * writeback_cache (off by default), max_threads=N, clone_fd=0|1 (default 1),
 * write_threads=N (chunk writer threads, default 2, 0 = none).
 * fstab words that mean nothing to a FUSE mount (defaults, auto, noauto,
 * user, users, nouser, owner, _netdev, nofail, x-*, comment=) are dropped.
 *
 * Ownership: qfs_opts owns all its strings and the node conf; free with
 * qfs_opts_free. Pure parsing: no file or network access (the config file is
 * only named here and loaded by the caller).
 */
#ifndef QFS_OPTS_H
#define QFS_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/conf.h"

typedef struct qfs_opts {
	char *mountpoint;
	char *config_file;
	int foreground, debug, single_thread, clone_fd;
	int show_help, show_version;
	int writeback_cache;
	/* the kernel checks permissions from the mode bits (FUSE's
	 * default_permissions): on unless -o no_default_permissions */
	int default_permissions;
	unsigned max_threads;
	unsigned write_threads;
	double attr_timeout, entry_timeout;
	uint32_t chunk_size, inline_max;
	/* node keys (data_dir, listen, node_id, zone, peers, n, r, w, ...) */
	q_conf *node;
	/* arguments for fuse_session_new: argv[0], then "-o", "a,b,..." if any,
	 * then "-d" for debug; NULL-terminated */
	int fuse_argc;
	char **fuse_argv;
	char err[256]; /* what was wrong, when parsing failed */
} qfs_opts;

/* The node key that --join / -o join= set. */
#define QFS_JOIN_KEY "peers"

/* Parses argv. node_keys (NULL-terminated) are the keys the node accepts;
 * -o key=value with such a key goes to opts->node. Returns 0, or -EINVAL
 * with a message in opts->err. */
int qfs_opts_parse(int argc, char **argv, const char *const *node_keys, qfs_opts *opts);
void qfs_opts_free(qfs_opts *opts);
/* Default data directory: /var/lib/quorumfs for root, else
 * $XDG_DATA_HOME/quorumfs or $HOME/.local/share/quorumfs. Writes into buf. */
int qfs_default_data_dir(char *buf, size_t cap);
/* Prints the usage text. */
void qfs_opts_usage(const char *prog);

#endif
