/*
 * node_fault.h - a test facility: injected I/O errors in a running node's
 * store.
 *
 * Off unless the environment variable QFS_FAULT_CONTROL names a file when
 * the node starts. Then the node's storage engine runs on the fault env
 * (util/env.h) instead of the POSIX env, and a thread polls the control
 * file (every NODE_FAULT_POLL_MS) and applies what it says, at once:
 *
 *   <kinds> <error>      e.g. "read eio", "write,sync enospc", "all eio"
 *   off                  (or an empty or missing file) no faults
 *
 * kinds: open, read, write, sync, rename, unlink, all (comma separated);
 * error: eio or enospc. Every call of those kinds fails with that error
 * until the file says otherwise. A line that does not parse is logged and
 * changes nothing. Only the engine's files (DATA_DIR/db) go through it; the
 * node id, gossip and hint-position files, and anti-entropy trees keep the
 * POSIX env. Through the fault env the engine reads tables with pread
 * (no mmap) and does not preallocate commit logs: a node under test is a
 * little slower than a production node. See docs/reliability.md.
 *
 * Ownership: node_fault_open hands out a node_fault the caller frees with
 * node_fault_free after the store that uses its env is closed.
 * Threading: the poll thread only calls the fault env's arming function,
 * which is thread-safe.
 */
#ifndef Q_NODE_FAULT_H
#define Q_NODE_FAULT_H

#include "util/env.h"

#define NODE_FAULT_ENV_VAR "QFS_FAULT_CONTROL"
#define NODE_FAULT_POLL_MS 50

typedef struct node_fault node_fault;

/* Reads QFS_FAULT_CONTROL: unset or empty -> 0 and *out = NULL (no
 * injection); else a fault env polled from that file (0), or -ENOMEM /
 * -errno if the thread cannot start. */
int node_fault_open(node_fault **out);
/* The env the store must use (owned by nf). */
q_env *node_fault_env(node_fault *nf);
/* Stops the poll thread and frees the env; NULL is fine. */
void node_fault_free(node_fault *nf);

/* Parses one control line: 0 with *mask (Q_FAULT_*; 0 = off) and *err
 * (-EIO, -ENOSPC), or -EINVAL. Exposed for tests. */
int node_fault_parse(const char *line, int *mask, int *err);

#endif
