/*
 * node_conf.c - typed node configuration and persistent node identity
 * (see node_conf.h; every key is documented in docs/config.md).
 */
#include "node/node_conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/coord.h"
#include "lsm/lsm.h"
#include "net/net_addr.h"
#include "node/node.h"
#include "util/env.h"
#include "util/log.h"
#include "util/qerr.h"

const char *const q_node_conf_keys[] = {
	"data_dir", "listen", "node_id", "zone", "peers", "seeds",
	"n", "r", "w", "sync", "sync_batch", "request_timeout",
	"max_value_size", "max_key_size", "memtable_size", "cache_size",
	"read_repair", "log_level", "ring_tokens", "workers", "io",
	"gossip_interval", "gossip_fanout", "gossip_suspect_after", "gossip_down_after",
	"cluster_name", "sloppy_quorum", "notfound_ok",
	"secret_file", "metrics_listen", "encrypt",
	"handoff_rate", "handoff_settle", "handoff_drop", "leave_exit",
	"aae", "aae_depth", "aae_interval", "aae_rate", "aae_burst", "aae_repair_rate",
	"aae_builds", "aae_rebuild_interval", "aae_tombstone_grace", "aae_max_diffs",
	"aae_timeout",
	NULL
};

int node_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NODE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isalnum(ch) || ch == '_' || ch == '.' || ch == '-'))
			return 0;
	}
	return 1;
}

int node_addr_parse(const char *s, char *host, size_t hostcap, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || strlen(s) > NODE_ADDR_MAX)
		return -EINVAL;
	size_t hn = (size_t)(colon - s);
	if (hn >= hostcap)
		return -EINVAL;
	const char *ps = colon + 1;
	if (!*ps)
		return -EINVAL;
	long v = 0;
	for (const char *q = ps; *q; q++) {
		if (!isdigit((unsigned char)*q))
			return -EINVAL;
		v = v * 10 + (*q - '0');
		if (v > 65535)
			return -EINVAL;
	}
	if (v < 1)
		return -EINVAL;
	for (size_t i = 0; i < hn; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isalnum(ch) || ch == '.' || ch == '-'))
			return -EINVAL;
	}
	if (hn == 0)
		snprintf(host, hostcap, "127.0.0.1");
	else {
		memcpy(host, s, hn);
		host[hn] = 0;
	}
	*port = (int)v;
	return 0;
}

static int bad(char *err, size_t cap, const char *key, const char *val, const char *why)
{
	snprintf(err, cap, "config: %s = '%s': %s", key, val ? val : "", why);
	return -EINVAL;
}

/* One peers entry: [ID@]HOST:PORT[/ZONE]. */
static int parse_peer(const char *tok, node_peer *p)
{
	memset(p, 0, sizeof(*p));
	char buf[256];
	if (strlen(tok) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", tok);
	char *addr = buf;
	char *at = strchr(buf, '@');
	if (at) {
		*at = 0;
		if (!node_id_valid(buf))
			return -EINVAL;
		if (snprintf(p->id, sizeof(p->id), "%s", buf) >= (int)sizeof(p->id))
			return -EINVAL;
		addr = at + 1;
	}
	char *slash = strchr(addr, '/');
	if (slash) {
		*slash = 0;
		if (!node_id_valid(slash + 1))
			return -EINVAL;
		snprintf(p->zone, sizeof(p->zone), "%s", slash + 1);
	}
	char host[NODE_ADDR_MAX + 1];
	int port;
	Q_RET(node_addr_parse(addr, host, sizeof(host), &port));
	if (snprintf(p->addr, sizeof(p->addr), "%s:%d", host, port) >= (int)sizeof(p->addr))
		return -EINVAL;
	return 0;
}

static int parse_peers(const char *key, const char *val, node_conf *c, char *err, size_t cap)
{
	char *copy = strdup(val);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		node_peer *np = realloc(c->peers, (c->npeers + 1) * sizeof(node_peer));
		if (!np) {
			rc = -ENOMEM;
			break;
		}
		c->peers = np;
		if (parse_peer(tok, &c->peers[c->npeers]) < 0) {
			char why[160];
			snprintf(why, sizeof(why), "bad entry '%.80s' (expected [ID@]HOST:PORT[/ZONE])",
				 tok);
			rc = bad(err, cap, key, val, why);
			break;
		}
		c->npeers++;
	}
	free(copy);
	return rc;
}

static int get_int(q_conf *conf, const char *key, uint64_t def, uint64_t lo, uint64_t hi,
		   uint64_t *out, char *err, size_t cap)
{
	int rc = q_conf_get_u64(conf, key, def, out);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	if (*out < lo || *out > hi) {
		char why[96];
		snprintf(why, sizeof(why), "must be between %llu and %llu", (unsigned long long)lo,
			 (unsigned long long)hi);
		return bad(err, cap, key, q_conf_get(conf, key), why);
	}
	return 0;
}

static int get_size(q_conf *conf, const char *key, uint64_t def, uint64_t *out, char *err,
		    size_t cap)
{
	int rc = q_conf_get_size(conf, key, def, out);
	if (rc < 0)
		snprintf(err, cap, "config: %s", q_conf_error(conf));
	return rc;
}

static int get_ms(q_conf *conf, const char *key, uint64_t def, uint64_t *out, char *err,
		  size_t cap)
{
	int rc = q_conf_get_ms(conf, key, def, out);
	if (rc < 0)
		snprintf(err, cap, "config: %s", q_conf_error(conf));
	return rc;
}

/* secret_file, metrics_listen and protected mode: without a cluster secret
 * the node (and its metrics endpoint) may listen on loopback only. */
static int load_security(q_conf *conf, node_conf *c, char *err, size_t cap)
{
	const char *sf = q_conf_get_str(conf, "secret_file", "");
	if (sf[0] && !(c->secret_file = strdup(sf)))
		return -ENOMEM;
	const char *ml = q_conf_get_str(conf, "metrics_listen", "");
	if (ml[0]) {
		char host[NODE_ADDR_MAX + 1];
		int port;
		if (node_addr_parse(ml, host, sizeof(host), &port) < 0)
			return bad(err, cap, "metrics_listen", ml, "expected HOST:PORT");
		if (snprintf(c->metrics_listen, sizeof(c->metrics_listen), "%s:%d", host, port) >=
		    (int)sizeof(c->metrics_listen))
			return bad(err, cap, "metrics_listen", ml, "address too long");
		if (!strcmp(c->metrics_listen, c->listen))
			return bad(err, cap, "metrics_listen", ml, "must differ from listen");
	}
	int rc = q_conf_get_bool(conf, "encrypt", 0, &c->encrypt);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	if (c->encrypt && !c->secret_file)
		return bad(err, cap, "encrypt", q_conf_get(conf, "encrypt"),
			   "needs secret_file (the keys derive from the cluster secret)");
	if (c->secret_file)
		return 0;
	if (!net_addr_is_loopback(c->listen)) {
		snprintf(err, cap,
			 "protected mode: refusing to listen on %s without a cluster secret; "
			 "create one with 'quorumctl init-secret FILE', copy it to every node and "
			 "set secret_file, or listen on 127.0.0.1 (docs/security.md)",
			 c->listen);
		return -EACCES;
	}
	if (c->metrics_listen[0] && !net_addr_is_loopback(c->metrics_listen)) {
		snprintf(err, cap,
			 "protected mode: refusing metrics_listen on %s without a cluster secret "
			 "(set secret_file, or use a loopback address; docs/security.md)",
			 c->metrics_listen);
		return -EACCES;
	}
	return 0;
}

int node_conf_load(q_conf *conf, node_conf *c, char *err, size_t cap)
{
	memset(c, 0, sizeof(*c));
	err[0] = 0;
	int rc = q_conf_check_known(conf, q_node_conf_keys);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	c->data_dir = strdup(q_conf_get_str(conf, "data_dir", NODE_DEFAULT_DATA_DIR));
	if (!c->data_dir)
		return -ENOMEM;
	if (!c->data_dir[0])
		return bad(err, cap, "data_dir", "", "must not be empty");

	const char *listen = q_conf_get_str(conf, "listen", "127.0.0.1:7070");
	char host[NODE_ADDR_MAX + 1];
	int port;
	if (node_addr_parse(listen, host, sizeof(host), &port) < 0)
		return bad(err, cap, "listen", listen, "expected HOST:PORT");
	if (snprintf(c->listen, sizeof(c->listen), "%s:%d", host, port) >= (int)sizeof(c->listen))
		return bad(err, cap, "listen", listen, "address too long");

	const char *id = q_conf_get_str(conf, "node_id", "");
	if (id[0] && !node_id_valid(id))
		return bad(err, cap, "node_id", id, "1-63 characters of A-Z a-z 0-9 _ . -");
	snprintf(c->node_id, sizeof(c->node_id), "%s", id);

	const char *zone = q_conf_get_str(conf, "zone", "default");
	if (!node_id_valid(zone))
		return bad(err, cap, "zone", zone, "1-63 characters of A-Z a-z 0-9 _ . -");
	snprintf(c->zone, sizeof(c->zone), "%s", zone);

	const char *keys[] = {"peers", "seeds"};
	for (int i = 0; i < 2; i++) {
		const char *v = q_conf_get(conf, keys[i]);
		if (v)
			Q_RET(parse_peers(keys[i], v, c, err, cap));
	}

	uint64_t v;
	Q_RET(get_int(conf, "n", 3, 1, 16, &v, err, cap));
	c->n = (int)v;
	Q_RET(get_int(conf, "r", 2, 1, 16, &v, err, cap));
	c->r = (int)v;
	Q_RET(get_int(conf, "w", 2, 1, 16, &v, err, cap));
	c->w = (int)v;
	if (c->r > c->n)
		return bad(err, cap, "r", q_conf_get(conf, "r"), "must not exceed n");
	if (c->w > c->n)
		return bad(err, cap, "w", q_conf_get(conf, "w"), "must not exceed n");

	const char *sync = q_conf_get_str(conf, "sync", "always");
	if (!strcmp(sync, "always"))
		c->sync = LSM_SYNC_ALWAYS;
	else if (!strcmp(sync, "batch"))
		c->sync = LSM_SYNC_BATCH;
	else if (!strcmp(sync, "none"))
		c->sync = LSM_SYNC_NONE;
	else
		return bad(err, cap, "sync", sync, "expected always, batch or none");
	Q_RET(get_ms(conf, "sync_batch", 10, &c->sync_batch_ms, err, cap));
	if (c->sync_batch_ms == 0)
		return bad(err, cap, "sync_batch", q_conf_get(conf, "sync_batch"), "must be > 0");
	Q_RET(get_ms(conf, "request_timeout", 2000, &c->request_timeout_ms, err, cap));
	if (c->request_timeout_ms == 0 || c->request_timeout_ms > 3600 * 1000)
		return bad(err, cap, "request_timeout", q_conf_get(conf, "request_timeout"),
			   "must be between 1ms and 1h");
	Q_RET(get_size(conf, "max_value_size", 16 << 20, &c->max_value_size, err, cap));
	if (c->max_value_size == 0 || c->max_value_size > (32u << 20))
		return bad(err, cap, "max_value_size", q_conf_get(conf, "max_value_size"),
			   "must be between 1 and 32M");
	Q_RET(get_size(conf, "max_key_size", 4096, &c->max_key_size, err, cap));
	if (c->max_key_size == 0 || c->max_key_size > 65535)
		return bad(err, cap, "max_key_size", q_conf_get(conf, "max_key_size"),
			   "must be between 1 and 65535");
	Q_RET(get_size(conf, "memtable_size", 4 << 20, &c->memtable_size, err, cap));
	if (c->memtable_size < 64 * 1024)
		return bad(err, cap, "memtable_size", q_conf_get(conf, "memtable_size"),
			   "must be at least 64k");
	Q_RET(get_size(conf, "cache_size", 8 << 20, &c->cache_size, err, cap));
	rc = q_conf_get_bool(conf, "read_repair", 1, &c->read_repair);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	rc = q_conf_get_bool(conf, "sloppy_quorum", 1, &c->sloppy_quorum);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	rc = q_conf_get_bool(conf, "notfound_ok", 0, &c->notfound_ok);
	if (rc < 0) {
		snprintf(err, cap, "config: %s", q_conf_error(conf));
		return rc;
	}
	q_log_level lvl;
	const char *ls = q_conf_get_str(conf, "log_level", "info");
	if (q_log_parse_level(ls, &lvl) < 0)
		return bad(err, cap, "log_level", ls, "expected debug, info, warn, error or off");
	c->log_level = (int)lvl;
	Q_RET(get_int(conf, "ring_tokens", 64, 1, 4096, &v, err, cap));
	c->ring_tokens = (int)v;
	Q_RET(get_int(conf, "workers", 4, 1, 64, &v, err, cap));
	c->workers = (int)v;
	Q_RET(load_security(conf, c, err, cap));
	const char *io = q_conf_get_str(conf, "io", "auto");
	if (!strcmp(io, "auto"))
		c->io = COORD_IO_AUTO;
	else if (!strcmp(io, "worker"))
		c->io = COORD_IO_WORKER;
	else if (!strcmp(io, "inline"))
		c->io = COORD_IO_INLINE;
	else
		return bad(err, cap, "io", io, "expected auto, worker or inline");
	return 0;
}

void node_conf_free(node_conf *c)
{
	free(c->data_dir);
	free(c->peers);
	free(c->secret_file);
	memset(c, 0, sizeof(*c));
}

static int random_id(char *id)
{
	uint8_t rnd[6];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t got = read(fd, rnd, sizeof(rnd));
	close(fd);
	if (got != (ssize_t)sizeof(rnd))
		return -EIO;
	snprintf(id, NODE_ID_MAX + 1, "n%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	return 0;
}

int node_conf_identity(const char *data_dir, const char *configured, char *id, char *err,
		       size_t cap)
{
	q_env *env = q_env_posix();
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", data_dir, NODE_ID_FILE) >= sizeof(path))
		return bad(err, cap, "data_dir", data_dir, "path too long");
	uint8_t *data = NULL;
	size_t n = 0;
	int rc = q_env_read_all(env, path, &data, &n);
	if (rc == 0) {
		while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == ' '))
			n--;
		char stored[NODE_ID_MAX + 2];
		if (n > NODE_ID_MAX) {
			free(data);
			snprintf(err, cap, "%s: stored node id is too long", path);
			return Q_ECORRUPT;
		}
		memcpy(stored, data, n);
		stored[n] = 0;
		free(data);
		if (!node_id_valid(stored)) {
			snprintf(err, cap, "%s: stored node id '%s' is not valid", path, stored);
			return Q_ECORRUPT;
		}
		if (configured && configured[0] && strcmp(configured, stored)) {
			snprintf(err, cap,
				 "config: node_id = '%s' but data directory %s belongs to node '%s' "
				 "(a node keeps its id; use a new data directory for a new id)",
				 configured, data_dir, stored);
			return -EINVAL;
		}
		memcpy(id, stored, n + 1);
		return 0;
	}
	if (rc != -ENOENT) {
		snprintf(err, cap, "%s: %s", path, q_strerror(rc));
		return rc;
	}
	if (configured && configured[0])
		snprintf(id, NODE_ID_MAX + 1, "%s", configured);
	else
		Q_RET(random_id(id));
	char line[NODE_ID_MAX + 2];
	int ln = snprintf(line, sizeof(line), "%s\n", id);
	rc = q_env_write_atomic(env, path, line, (size_t)ln);
	if (rc < 0) {
		snprintf(err, cap, "%s: cannot write node id: %s", path, q_strerror(rc));
		return rc;
	}
	return 0;
}
