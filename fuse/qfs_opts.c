/*
 * qfs_opts.c - command-line parsing of the mount daemon (see qfs_opts.h).
 */
#include "fuse/qfs_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/qfs_format.h"
#include "util/buf.h"
#include "util/qerr.h"
#include "util/qtime.h"

static int fail(qfs_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(qfs_opts *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->err, sizeof(o->err), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int in_list(const char *const *l, const char *k)
{
	for (; l && *l; l++)
		if (strcmp(*l, k) == 0)
			return 1;
	return 0;
}

/* Adds one peer to the comma-separated peers value. */
static int add_join(qfs_opts *o, const char *hp)
{
	if (!hp[0] || !strchr(hp, ':'))
		return fail(o, "--join wants HOST:PORT, got '%s'", hp);
	const char *cur = q_conf_get(o->node, QFS_JOIN_KEY);
	if (!cur || !cur[0])
		return q_conf_set(o->node, QFS_JOIN_KEY, hp);
	size_t n = strlen(cur) + strlen(hp) + 2;
	char *v = malloc(n);
	if (!v)
		return -ENOMEM;
	snprintf(v, n, "%s,%s", cur, hp);
	int rc = q_conf_set(o->node, QFS_JOIN_KEY, v);
	free(v);
	return rc;
}

static int parse_seconds(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || d < 0 || d > 86400)
		return -EINVAL;
	*out = d;
	return 0;
}

static int set_size32(qfs_opts *o, const char *k, const char *v, uint32_t lo, uint32_t hi,
		      uint32_t *out)
{
	uint64_t s;
	if (q_parse_size(v, &s) || s < lo || s > hi)
		return fail(o, "-o %s=%s: want a size from %u to %u", k, v, lo, hi);
	*out = (uint32_t)s;
	return 0;
}

/* Maps the long-option names to node keys. */
static const char *node_alias(const char *k)
{
	if (strcmp(k, "data") == 0)
		return "data_dir";
	if (strcmp(k, "node-id") == 0)
		return "node_id";
	return k;
}

static int is_fstab_noise(const char *k)
{
	static const char *const noise[] = {"defaults", "auto", "noauto", "user", "users",
					    "nouser", "owner", "_netdev", "nofail", NULL};
	return in_list(noise, k) || strncmp(k, "x-", 2) == 0 || strncmp(k, "comment=", 8) == 0;
}

/* One -o item: ours, the node's, or FUSE's (appended to fo). */
static int one_opt(qfs_opts *o, const char *item, const char *const *node_keys, q_buf *fo)
{
	char key[128];
	const char *eq = strchr(item, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t kl = eq ? (size_t)(eq - item) : strlen(item);
	if (kl == 0)
		return item[0] ? fail(o, "-o '%s': empty key", item) : 0;
	if (kl >= sizeof(key))
		return fail(o, "-o '%s': key too long", item);
	memcpy(key, item, kl);
	key[kl] = 0;
	if (is_fstab_noise(item) || is_fstab_noise(key))
		return 0;
	if (strcmp(key, "attr_timeout") == 0 || strcmp(key, "entry_timeout") == 0) {
		double d;
		if (!val || parse_seconds(val, &d))
			return fail(o, "-o %s wants seconds (0..86400)", key);
		if (key[0] == 'a')
			o->attr_timeout = d;
		else
			o->entry_timeout = d;
		return 0;
	}
	if (strcmp(key, "chunk_size") == 0)
		return set_size32(o, key, val ? val : "", QFS_CHUNK_SIZE_MIN, QFS_CHUNK_SIZE_MAX,
				  &o->chunk_size);
	if (strcmp(key, "inline_max") == 0)
		return set_size32(o, key, val ? val : "", 0, QFS_INLINE_MAX, &o->inline_max);
	if (strcmp(key, "writeback_cache") == 0 || strcmp(key, "no_writeback_cache") == 0) {
		if (val)
			return fail(o, "-o %s takes no value", key);
		o->writeback_cache = key[0] == 'w';
		return 0;
	}
	if (strcmp(key, "default_permissions") == 0 || strcmp(key, "no_default_permissions") == 0) {
		if (val)
			return fail(o, "-o %s takes no value", key);
		o->default_permissions = key[0] == 'd';
		return 0;
	}
	if (strcmp(key, "clone_fd") == 0) {
		if (!val || (strcmp(val, "0") && strcmp(val, "1")))
			return fail(o, "-o clone_fd wants 0 or 1");
		o->clone_fd = val[0] == '1';
		return 0;
	}
	if (strcmp(key, "max_threads") == 0) {
		char *end;
		unsigned long n = val ? strtoul(val, &end, 10) : 0;
		if (!val || *end || n < 1 || n > 1024)
			return fail(o, "-o max_threads wants 1..1024");
		o->max_threads = (unsigned)n;
		return 0;
	}
	if (strcmp(key, "write_threads") == 0) {
		char *end;
		unsigned long n = val ? strtoul(val, &end, 10) : 99;
		if (!val || *end || n > 8)
			return fail(o, "-o write_threads wants 0..8");
		o->write_threads = (unsigned)n;
		return 0;
	}
	if (strcmp(key, "join") == 0)
		return val ? add_join(o, val) : fail(o, "-o join wants HOST:PORT");
	if (strcmp(key, "config") == 0) {
		if (!val || !val[0])
			return fail(o, "-o config wants a file");
		free(o->config_file);
		o->config_file = strdup(val);
		return o->config_file ? 0 : -ENOMEM;
	}
	const char *nk = node_alias(key);
	if (in_list(node_keys, nk)) {
		if (!val)
			return fail(o, "-o %s wants a value", key);
		int rc = q_conf_set(o->node, nk, val);
		return rc ? fail(o, "-o %s=%s: %s", key, val, q_conf_error(o->node)) : 0;
	}
	/* everything else is FUSE's to judge */
	if (fo->len)
		Q_RET(q_buf_append_byte(fo, ','));
	return q_buf_append(fo, item, strlen(item));
}

/* Splits an -o argument on commas ("\," keeps a comma). */
static int opt_list(qfs_opts *o, const char *arg, const char *const *node_keys, q_buf *fo)
{
	size_t n = strlen(arg);
	char *item = malloc(n + 1);
	int rc = 0;
	if (!item)
		return -ENOMEM;
	size_t j = 0;
	for (size_t i = 0; i <= n && rc == 0; i++) {
		if (arg[i] == '\\' && (arg[i + 1] == ',' || arg[i + 1] == '\\')) {
			item[j++] = arg[++i];
			continue;
		}
		if (arg[i] == ',' || arg[i] == 0) {
			item[j] = 0;
			rc = one_opt(o, item, node_keys, fo);
			j = 0;
			continue;
		}
		item[j++] = arg[i];
	}
	free(item);
	return rc;
}

static const struct {
	const char *name;
	const char *key; /* node key, or NULL for handled below */
} long_opts[] = {
	{"--join", NULL},       {"--data", "data_dir"}, {"--listen", "listen"},
	{"--node-id", "node_id"}, {"--zone", "zone"},  {"--config", NULL},
};

int qfs_opts_parse(int argc, char **argv, const char *const *node_keys, qfs_opts *o)
{
	q_buf fo = Q_BUF_INIT;
	int rc = 0;
	memset(o, 0, sizeof(*o));
	o->clone_fd = 1;
	o->default_permissions = 1;
	o->attr_timeout = 1.0;
	o->entry_timeout = 1.0;
	o->chunk_size = QFS_DEFAULT_CHUNK_SIZE;
	o->inline_max = QFS_DEFAULT_INLINE_MAX;
	o->max_threads = 16;
	o->write_threads = 2;
	o->node = q_conf_new();
	if (!o->node)
		return -ENOMEM;
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-f") == 0) {
			o->foreground = 1;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0) {
			o->debug = o->foreground = 1;
		} else if (strcmp(a, "-s") == 0) {
			o->single_thread = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->show_help = 1;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			o->show_version = 1;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				rc = fail(o, "-o needs an argument");
			else
				rc = opt_list(o, v, node_keys, &fo);
		} else if (strncmp(a, "--", 2) == 0) {
			size_t k, nl;
			const char *val = NULL;
			for (k = 0; k < sizeof(long_opts) / sizeof(long_opts[0]); k++) {
				nl = strlen(long_opts[k].name);
				if (strncmp(a, long_opts[k].name, nl) == 0 &&
				    (a[nl] == 0 || a[nl] == '='))
					break;
			}
			if (k == sizeof(long_opts) / sizeof(long_opts[0])) {
				rc = fail(o, "unknown option '%s'", a);
				break;
			}
			nl = strlen(long_opts[k].name);
			val = a[nl] == '=' ? a + nl + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val || !val[0]) {
				rc = fail(o, "%s needs a value", long_opts[k].name);
			} else if (strcmp(long_opts[k].name, "--join") == 0) {
				rc = add_join(o, val);
			} else if (strcmp(long_opts[k].name, "--config") == 0) {
				free(o->config_file);
				o->config_file = strdup(val);
				rc = o->config_file ? 0 : -ENOMEM;
			} else {
				rc = q_conf_set(o->node, long_opts[k].key, val);
			}
		} else if (a[0] == '-' && a[1]) {
			rc = fail(o, "unknown option '%s'", a);
		} else if (!o->mountpoint) {
			o->mountpoint = strdup(a);
			if (!o->mountpoint)
				rc = -ENOMEM;
		} else {
			rc = fail(o, "more than one mount point ('%s' and '%s')", o->mountpoint, a);
		}
	}
	if (rc == 0 && !o->mountpoint && !o->show_help && !o->show_version)
		rc = fail(o, "no mount point given");
	if (rc == 0) {
		o->fuse_argv = calloc(5, sizeof(char *));
		if (!o->fuse_argv) {
			rc = -ENOMEM;
		} else {
			o->fuse_argv[o->fuse_argc++] = strdup(argc > 0 ? argv[0] : "quorumfs");
			if (fo.len) {
				o->fuse_argv[o->fuse_argc++] = strdup("-o");
				if (q_buf_append_byte(&fo, 0) == 0)
					o->fuse_argv[o->fuse_argc++] = strdup((const char *)fo.p);
				else
					rc = -ENOMEM;
			}
			if (o->debug)
				o->fuse_argv[o->fuse_argc++] = strdup("-d");
			for (int i = 0; i < o->fuse_argc; i++)
				if (!o->fuse_argv[i])
					rc = -ENOMEM;
		}
	}
	q_buf_free(&fo);
	if (rc == -ENOMEM && !o->err[0])
		snprintf(o->err, sizeof(o->err), "out of memory");
	return rc;
}

void qfs_opts_free(qfs_opts *o)
{
	free(o->mountpoint);
	free(o->config_file);
	q_conf_free(o->node);
	for (int i = 0; i < o->fuse_argc; i++)
		free(o->fuse_argv[i]);
	free(o->fuse_argv);
	memset(o, 0, sizeof(*o));
}

int qfs_default_data_dir(char *buf, size_t cap)
{
	int n;
	const char *x = getenv("XDG_DATA_HOME"), *h = getenv("HOME");
	if (geteuid() == 0)
		n = snprintf(buf, cap, "/var/lib/quorumfs");
	else if (x && x[0] == '/')
		n = snprintf(buf, cap, "%s/quorumfs", x);
	else if (h && h[0] == '/')
		n = snprintf(buf, cap, "%s/.local/share/quorumfs", h);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void qfs_opts_usage(const char *prog)
{
	printf("usage: %s [options] MOUNTPOINT\n"
	       "\n"
	       "  -f                   stay in the foreground\n"
	       "  -d                   FUSE debug output (implies -f)\n"
	       "  -s                   single-threaded\n"
	       "  --join HOST:PORT     join an existing cluster (repeatable)\n"
	       "  --data DIR           data directory (default /var/lib/quorumfs for root,\n"
	       "                       ~/.local/share/quorumfs otherwise)\n"
	       "  --listen ADDR:PORT   cluster address of the embedded node\n"
	       "  --node-id ID         node id\n"
	       "  --zone ZONE          zone label\n"
	       "  --config FILE        node config file\n"
	       "  -o OPT[,OPT...]      allow_other, ro, fsname=..., no_default_permissions\n"
	       "                       (the kernel checks modes unless this is given),\n"
	       "                       join=, data=, listen=, node_id=, zone=, config=,\n"
	       "                       n=, r=, w=, sync=, request_timeout=, (node keys)\n"
	       "                       attr_timeout=SEC, entry_timeout=SEC, chunk_size=SIZE,\n"
	       "                       inline_max=SIZE, writeback_cache, max_threads=N,\n"
	       "                       clone_fd=0|1, write_threads=N\n"
	       "\n"
	       "Unmount with fusermount3 -u MOUNTPOINT (or SIGTERM); data is flushed first.\n",
	       prog);
}
