/*
 * node_fs.h - the node's side of the filesystem's cluster-wide needs
 * (docs/filesystem.md, "Node messages"):
 *
 *   FS_INFO  what this node's data disk holds and frees, its hint count and
 *            its view of the membership (for statfs from the cluster and
 *            for the chunk collector's preflight);
 *   FS_SCAN  a page of the keys this node's replica holds under a prefix,
 *            with sibling metadata and optionally the live values (the
 *            collector's mark and sweep listing).
 * and, for the mount daemon embedding the node, node_fs_space: the disk
 * figures of every member that answers, asked in parallel through the
 * coordinator's peer pool.
 *
 * Threading: node_fs_new/free from the node's start/stop thread;
 * node_fs_start/stop and the request handler (node_fs_handle) on the loop
 * thread (the handler hands disk work to libuv workers and replies on the
 * loop); node_fs_space from any thread but the loop thread.
 * Ownership: node_fs borrows everything in its config but data_dir (copied);
 * those must outlive it. node_fs_space_get fills a caller's struct.
 */
#ifndef Q_NODE_FS_H
#define Q_NODE_FS_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_server.h"

struct coord;
struct members;
struct lsm_db;
struct hint_store;
struct net_loop;

typedef struct node_fs node_fs;

typedef struct node_fs_config {
	struct coord *coord;
	struct members *mem;
	struct lsm_db *db;
	struct hint_store *hints; /* may be NULL */
	struct net_loop *loop;
	const char *data_dir;     /* copied */
	int n;                    /* replication factor */
} node_fs_config;

int node_fs_new(const node_fs_config *cfg, node_fs **out);
void node_fs_free(node_fs *f);
/* Loop thread: takes the coordinator's peer pool (after coord_start). */
int node_fs_start(node_fs *f);
/* Loop thread: no more peer requests from node_fs_space. */
void node_fs_stop(node_fs *f);
/* coord message hook for NET_MSG_FS_FIRST..NET_MSG_FS_LAST. */
void node_fs_handle(void *arg, net_request *req);

/* Disk figures summed over the members that answered. */
typedef struct node_fs_space {
	uint64_t total, free, avail;  /* bytes, summed */
	uint64_t files, ffree;        /* inodes, summed */
	size_t members;               /* members in this node's view */
	size_t answered;              /* members whose figures are summed */
	int n;                        /* the node's replication factor */
} node_fs_space;

/* Asks every member (this one directly, the others with FS_INFO through
 * the peer pool, all at once) within timeout_ms. Returns 0 with at least
 * this node's figures in out (members that did not answer are left out and
 * counted in members - answered), or a negative code when not even the
 * local disk could be read. Never blocks past timeout_ms plus scheduling. */
int node_fs_space_get(node_fs *f, uint64_t timeout_ms, node_fs_space *out);

#endif
