/*
 * node_conf.h - a node's configuration as typed values, and its identity.
 *
 * node_conf_load turns a q_conf (file + overrides, util/conf.h) into a
 * node_conf, checking every value (unknown keys, malformed numbers, R or W
 * above N, a bad listen address, a bad peer list) and reporting the first
 * problem as text naming the key. Protected mode: without secret_file,
 * a listen or metrics_listen address off the loopback network is refused
 * (-EACCES, the message says what to do). Every key, its default and its meaning is
 * in docs/config.md; q_node_conf_keys (node.h) lists them.
 *
 * Identity: a node's id is stable across restarts. node_conf_identity reads
 * DATA_DIR/NODE_ID; if absent it takes the configured node_id or generates
 * one ("n" + 12 hex digits from /dev/urandom) and writes the file durably.
 * A configured node_id that differs from the one in the data directory is an
 * error (the data and the replicas' version vectors belong to the old id).
 *
 * Ownership: a node_conf owns its strings and peer array; free with
 * node_conf_free. Thread safety: none (used once at start-up).
 */
#ifndef Q_NODE_CONF_H
#define Q_NODE_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "util/conf.h"

#define NODE_ID_MAX 63          /* bytes, without NUL */
#define NODE_ADDR_MAX 63        /* "host:port" text */
#define NODE_DEFAULT_PORT 7070
#define NODE_DEFAULT_DATA_DIR "/var/lib/quorumd"
#define NODE_ID_FILE "NODE_ID"

typedef struct node_peer {
	char id[NODE_ID_MAX + 1];     /* empty when the entry gave only an address */
	char addr[NODE_ADDR_MAX + 1]; /* "host:port" */
	char zone[NODE_ID_MAX + 1];   /* empty = unknown (learned by HELLO) */
} node_peer;

typedef struct node_conf {
	char *data_dir;
	char listen[NODE_ADDR_MAX + 1];
	char node_id[NODE_ID_MAX + 1];   /* as configured; may be empty */
	char zone[NODE_ID_MAX + 1];
	node_peer *peers;
	size_t npeers;
	int n, r, w;
	int sync;                        /* lsm_sync value */
	uint64_t sync_batch_ms;
	uint64_t request_timeout_ms;
	uint64_t max_value_size;
	uint64_t max_key_size;
	uint64_t memtable_size;
	uint64_t cache_size;
	int read_repair;                 /* 1 = repair stale replicas after reads */
	int sloppy_quorum;               /* 1 = hinted writes to fallbacks count toward W */
	int notfound_ok;                 /* 1 = a not-found answer counts toward R */
	int log_level;                   /* q_log_level */
	int ring_tokens;                 /* virtual nodes per node */
	int workers;                     /* disk worker threads */
	int io;                          /* io = auto|worker|inline: COORD_IO_* */
	char *secret_file;               /* cluster secret key file; NULL = none */
	char metrics_listen[NODE_ADDR_MAX + 1]; /* "" = no metrics endpoint */
	int encrypt;                     /* 1 = ask for sealed connections */
} node_conf;

/* Fills c from conf. On error returns -EINVAL and writes a message naming
 * the key into err. c must be freed with node_conf_free either way. */
int node_conf_load(q_conf *conf, node_conf *c, char *err, size_t errcap);
void node_conf_free(node_conf *c);

/* 1 if s is a valid node id: 1..63 bytes of [A-Za-z0-9_.-]. */
int node_id_valid(const char *s);
/* Splits "host:port" (host may be empty = 127.0.0.1); -EINVAL if malformed. */
int node_addr_parse(const char *s, char *host, size_t hostcap, int *port);

/* Reads or creates the node's persistent id in data_dir (see above);
 * writes it into id (NODE_ID_MAX + 1 bytes). */
int node_conf_identity(const char *data_dir, const char *configured, char *id, char *err,
		       size_t errcap);

#endif
