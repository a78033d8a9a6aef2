/*
 * quorumfs.c - the mount daemon: parses the command line, starts the
 * embedded cluster node, mounts the filesystem and runs the FUSE session.
 *
 * Start order (undone in reverse on failure and at exit):
 *   1. options (qfs_opts), the node's conf (config file, then flags);
 *   2. unless -f: fork; the parent waits on a pipe for the child's verdict
 *      so "mounted" or the reason it failed is reported by the command
 *      itself (fuse_daemonize would report success before the node runs);
 *   3. the node (q_node_start) and the filesystem over its in-process
 *      client (qfs_fs_new);
 *   4. the FUSE session, signal handlers (SIGTERM/SIGINT/SIGHUP end the
 *      loop), the mount;
 *   5. the session loop: multithreaded with clone_fd unless -s.
 * Exit: unmount (after the loop ends by fusermount3 -u or a signal), flush
 * every dirty file, stop the node (which flushes and closes the store).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuse/qfs_format.h"
#include "fuse/qfs_fuse.h"
#include "fuse/qfs_opts.h"
#include "node/node.h"
#include "node/node_fs.h"
#include "util/env.h"
#include "util/log.h"
#include "util/qerr.h"

static int build_conf(qfs_opts *o, q_conf **out, char *data_dir, size_t cap)
{
	q_conf *c = q_conf_new();
	int rc = 0;
	if (!c)
		return -ENOMEM;
	if (o->config_file) {
		rc = q_conf_load(c, o->config_file);
		if (rc) {
			fprintf(stderr, "quorumfs: %s: %s\n", o->config_file,
				q_conf_error(c) && q_conf_error(c)[0] ? q_conf_error(c)
								      : q_strerror(rc));
			goto fail;
		}
	}
	for (size_t i = 0; i < q_conf_count(o->node); i++) {
		const char *k, *v;
		q_conf_entry(o->node, i, &k, &v);
		rc = q_conf_set(c, k, v);
		if (rc)
			goto fail;
	}
	if (!q_conf_get(c, "data_dir")) {
		rc = qfs_default_data_dir(data_dir, cap);
		if (rc) {
			fprintf(stderr, "quorumfs: no default data directory (set --data)\n");
			goto fail;
		}
		rc = q_conf_set(c, "data_dir", data_dir);
		if (rc)
			goto fail;
	} else {
		snprintf(data_dir, cap, "%s", q_conf_get(c, "data_dir"));
	}
	/* a filesystem acknowledges writes like a local one: stored in the
	 * commit log, made durable within sync_batch (docs/filesystem.md) */
	if (!q_conf_get(c, "sync")) {
		rc = q_conf_set(c, "sync", "batch");
		if (rc)
			goto fail;
	}
	/* file data arrives in megabyte chunks: a larger memtable makes fewer,
	 * larger tables to compact (measured: 1 GiB sequential write 32 MiB/s
	 * with the 4M default, 170 MiB/s with 64M) */
	if (!q_conf_get(c, "memtable_size")) {
		rc = q_conf_set(c, "memtable_size", "64M");
		if (rc)
			goto fail;
	}
	/* a not-found answer counts toward r: a name can be created while a
	 * partition hides the other replicas (docs/filesystem.md, Failures) */
	if (!q_conf_get(c, "notfound_ok")) {
		rc = q_conf_set(c, "notfound_ok", "on");
		if (rc)
			goto fail;
	}
	rc = q_conf_check_known(c, q_node_conf_keys);
	if (rc) {
		fprintf(stderr, "quorumfs: %s\n", q_conf_error(c));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	q_conf_free(c);
	return rc ? rc : -EINVAL;
}

/* Replaces data_dir (existing by now) in conf and in the buffer by its
 * absolute, symlink-free path. Returns 0 or a negative error code. */
static int absolute_data_dir(q_conf *conf, char *data_dir, size_t cap)
{
	char *abs = realpath(data_dir, NULL);
	if (!abs)
		return -errno;
	int rc = strlen(abs) < cap ? q_conf_set(conf, "data_dir", abs) : -ENAMETOOLONG;
	if (rc == 0)
		memcpy(data_dir, abs, strlen(abs) + 1);
	free(abs);
	return rc;
}

/* Tells the waiting parent how start-up went (one byte: 0 = mounted). */
static void notify(int fd, int ok)
{
	if (fd < 0)
		return;
	char b = ok ? 0 : 1;
	ssize_t w = write(fd, &b, 1);
	(void)w;
	close(fd);
}

static int detach(int *notify_fd)
{
	int p[2];
	if (pipe(p) != 0) {
		perror("quorumfs: pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("quorumfs: fork");
		return -1;
	}
	if (pid > 0) {
		char b = 1;
		close(p[1]);
		ssize_t r = read(p[0], &b, 1);
		_exit(r == 1 && b == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void quiet_stdio(const char *log_path)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		close(fd);
	}
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

/* statfs: the embedded node asks every member for its disk figures */
static int cluster_space(void *arg, qfs_space *out)
{
	node_fs_space sp;
	int rc = node_fs_space_get(q_node_fs(arg), QFS_STATFS_ASK_MS, &sp);
	if (rc < 0)
		return rc;
	out->total = sp.total;
	out->free = sp.free;
	out->avail = sp.avail;
	out->files = sp.files;
	out->ffree = sp.ffree;
	out->members = sp.members;
	out->answered = sp.answered;
	out->n = sp.n;
	return 0;
}

int main(int argc, char **argv)
{
	qfs_opts o;
	q_conf *conf = NULL;
	q_node *node = NULL;
	qfs_fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	int notify_fd = -1, rc, ret = 1, mounted = 0, handlers = 0;
	char data_dir[4096];
	qfs_fuse q;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);

	/* chunk-sized buffers come and go all the time: keep them in the heap
	 * instead of a fresh mmap (and a page fault per page) each time */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	rc = qfs_opts_parse(argc, argv, q_node_conf_keys, &o);
	if (rc) {
		fprintf(stderr, "quorumfs: %s\n(try %s --help)\n", o.err, argv[0]);
		qfs_opts_free(&o);
		return 2;
	}
	if (o.show_help) {
		qfs_opts_usage(argv[0]);
		printf("\nFUSE options:\n");
		fuse_lowlevel_help();
		qfs_opts_free(&o);
		return 0;
	}
	if (o.show_version) {
		printf("quorumfs %s (libfuse %s)\n", PACKAGE_VERSION, fuse_pkgversion());
		qfs_opts_free(&o);
		return 0;
	}
	struct stat mst;
	if (stat(o.mountpoint, &mst) != 0 || !S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "quorumfs: mount point %s: %s\n", o.mountpoint,
			errno ? strerror(errno) : "not a directory");
		qfs_opts_free(&o);
		return 1;
	}
	/* the daemon leaves its working directory for / once mounted: every
	 * path it keeps (the mount point it unmounts at exit, the data
	 * directory the store creates files in for as long as it runs) is
	 * made absolute first */
	char *absmp = realpath(o.mountpoint, NULL);
	if (!absmp) {
		fprintf(stderr, "quorumfs: mount point %s: %s\n", o.mountpoint, strerror(errno));
		qfs_opts_free(&o);
		return 1;
	}
	free(o.mountpoint);
	o.mountpoint = absmp;
	if (build_conf(&o, &conf, data_dir, sizeof(data_dir)))
		goto out_opts;
	rc = q_env_mkdirs(q_env_posix(), data_dir);
	if (!rc)
		rc = absolute_data_dir(conf, data_dir, sizeof(data_dir));
	if (rc) {
		fprintf(stderr, "quorumfs: data directory %s: %s\n", data_dir, q_strerror(rc));
		goto out_conf;
	}
	if (!o.foreground && detach(&notify_fd))
		goto out_conf;

	rc = q_node_start(conf, &node);
	if (rc) {
		fprintf(stderr, "quorumfs: starting the node failed: %s\n", q_strerror(rc));
		goto out_conf;
	}
	uint64_t tmo = 0;
	q_conf_get_ms(conf, "request_timeout", 2000, &tmo);
	qfs_fs_conf fc = {
		.client = q_node_client(node),
		.node_id = q_node_id(node),
		.data_dir = data_dir,
		.chunk_size = o.chunk_size,
		.inline_max = o.inline_max,
		.attr_timeout = o.attr_timeout,
		.timeout_ms = tmo,
		.writers = (int)o.write_threads,
		.space = cluster_space,
		.space_arg = node,
	};
	rc = qfs_fs_new(&fc, &fs);
	if (rc) {
		fprintf(stderr, "quorumfs: %s\n", strerror(-rc));
		goto out_node;
	}
	q.fs = fs;
	q.attr_timeout = o.attr_timeout;
	q.entry_timeout = o.entry_timeout;
	q.writeback_cache = o.writeback_cache;

	/* A copy of the FUSE options, plus a name for the mount table
	 * ("quorumfs on /mnt type fuse.quorumfs") unless the user gave one. */
	int named = 0;
	for (int i = 0; i < o.fuse_argc; i++) {
		if (fuse_opt_add_arg(&args, o.fuse_argv[i]))
			goto out_fs;
		if (strstr(o.fuse_argv[i], "fsname=") || strstr(o.fuse_argv[i], "subtype="))
			named = 1;
	}
	if (!named && (fuse_opt_add_arg(&args, "-o") ||
		       fuse_opt_add_arg(&args, "fsname=quorumfs,subtype=quorumfs")))
		goto out_fs;
	if (o.default_permissions &&
	    (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, "default_permissions")))
		goto out_fs;
	se = fuse_session_new(&args, &qfs_fuse_ops, sizeof(qfs_fuse_ops), &q);
	if (!se) {
		fprintf(stderr, "quorumfs: bad FUSE options\n");
		goto out_fs;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	handlers = 1;
	if (fuse_session_mount(se, o.mountpoint) != 0) {
		fprintf(stderr, "quorumfs: mounting %s failed\n", o.mountpoint);
		goto out_session;
	}
	mounted = 1;
	Q_INFO("qfs", "mounted %s (node %s, data %s)", o.mountpoint, q_node_id(node), data_dir);
	if (!o.foreground) {
		char logp[4200];
		snprintf(logp, sizeof(logp), "%s/quorumfs.log", data_dir);
		if (chdir("/") != 0)
			Q_WARN("qfs", "chdir /: %s", strerror(errno));
		quiet_stdio(logp);
	}
	notify(notify_fd, 1);
	notify_fd = -1;

	if (o.single_thread) {
		rc = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc) {
			rc = -ENOMEM;
		} else {
			fuse_loop_cfg_set_clone_fd(lc, (unsigned)o.clone_fd);
			fuse_loop_cfg_set_max_threads(lc, o.max_threads);
			fuse_loop_cfg_set_idle_threads(lc, o.max_threads / 2 ? o.max_threads / 2 : 1);
			rc = fuse_session_loop_mt(se, lc);
		}
	}
	ret = rc < 0 ? 1 : 0;
	Q_INFO("qfs", "unmounting %s", o.mountpoint);

out_session:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	if (lc)
		fuse_loop_cfg_destroy(lc);
out_fs:
	qfs_fs_free(fs);
out_node:
	rc = q_node_stop(node);
	if (rc) {
		Q_ERROR("qfs", "stopping the node: %s", q_strerror(rc));
		ret = 1;
	}
out_conf:
	q_conf_free(conf);
out_opts:
	notify(notify_fd, 0);
	if (args.allocated)
		fuse_opt_free_args(&args); /* the session's copy; ours goes below */
	qfs_opts_free(&o);
	return ret;
}
