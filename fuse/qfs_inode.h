/*
 * qfs_inode.h - the inode table: FUSE inode numbers <-> paths.
 *
 * The store is keyed by path, the kernel speaks in inode numbers. Each path
 * the kernel has looked up gets an inode with a lookup count (nlookup): every
 * successful lookup/create/mkdir/symlink/mknod reply adds one, forget takes
 * them away, and the inode is freed when the count is zero and no file handle
 * holds it (passthrough_hp's rule); its state goes with it. Inode numbers are handed out in
 * increasing order and never reused within one mount (the root is 1);
 * generation is always 0. They are not stable across mounts.
 *
 * Paths: absolute, "/" for the root, no trailing '/'. A conflict file's inode
 * has its displayed path (parent + conflict name) and is marked conflict.
 * Renames move an inode (and, for directories, every inode under it) to the
 * new path; the inode that the target path had is detached: it keeps working
 * for open handles, but no path reaches it any more.
 *
 * Thread safety: every function takes the table's mutex; an inode's path may
 * change under a rename, so callers copy it with qfs_itable_path(). The
 * per-inode mutex (qfs_inode.lock) is the caller's for open-file state;
 * the table never takes it.
 *
 * Ownership: the table owns every inode. A pointer from qfs_itable_get is
 * valid while the caller holds a lookup count or an open handle on it (the
 * kernel guarantees that for the inode numbers it sends).
 */
#ifndef QFS_INODE_H
#define QFS_INODE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qfs_inode {
	uint64_t ino;
	uint64_t nlookup;
	unsigned nopen;     /* open file handles */
	uint8_t type;       /* QFS_T_* at lookup time */
	int conflict;       /* shows a conflict sibling */
	int detached;       /* unlinked or replaced: no path leads here */
	char *path;         /* owned; guarded by the table mutex */
	pthread_mutex_t lock; /* guards state */
	void *state;        /* caller's open-file state (guarded by lock) */
	/* table internals */
	struct qfs_inode *next_ino, *next_path;
} qfs_inode;

typedef struct qfs_itable qfs_itable;

#define QFS_ROOT_INO 1

int qfs_itable_new(qfs_itable **out);
/* Frees every inode (free_state, if given, else the one set with
 * qfs_itable_set_free_state, is called for each non-NULL state). */
void qfs_itable_free(qfs_itable *t, void (*free_state)(void *));

/* Sets the destructor of inode state, called when an inode is freed
 * (forget or release of the last holder) and by qfs_itable_free. */
void qfs_itable_set_free_state(qfs_itable *t, void (*free_state)(void *));
/* Finds or creates the inode of path and adds one lookup. conflict marks a
 * conflict-file inode. Returns the inode number in *ino. */
int qfs_itable_lookup(qfs_itable *t, const char *path, uint8_t type, int conflict, uint64_t *ino);
/* Inode by number or NULL. */
qfs_inode *qfs_itable_get(qfs_itable *t, uint64_t ino);
/* Copies the inode's path into buf (cap bytes). -ENOENT for an unknown
 * inode, -ESTALE for a detached one (when allow_detached is 0),
 * -ENAMETOOLONG if buf is small. */
int qfs_itable_path(qfs_itable *t, uint64_t ino, char *buf, size_t cap, int allow_detached);
/* Drops n lookups; frees the inode when nothing holds it. */
void qfs_itable_forget(qfs_itable *t, uint64_t ino, uint64_t n);
/* Open-handle accounting (keeps a detached inode alive while open). */
void qfs_itable_open(qfs_itable *t, qfs_inode *in);
/* Returns 1 if this was the last handle; the caller then disposes of the
 * state (under in->lock) before calling qfs_itable_release_done. */
int qfs_itable_release(qfs_itable *t, qfs_inode *in);
/* Frees the inode if it has no lookups and no handles left. */
void qfs_itable_release_done(qfs_itable *t, qfs_inode *in);
/* Inode number of the inode at path, 0 if none; the lookup count does not
 * change, so the caller may use the inode only while the kernel holds it
 * (e.g. the source of a rename). */
uint64_t qfs_itable_find(qfs_itable *t, const char *path);
/* The path is gone (unlink, rmdir): detach its inode, if any. */
void qfs_itable_detach(qfs_itable *t, const char *path);
/* Moves the inode at from (and everything below it) to to, detaching what
 * was at to. */
int qfs_itable_rename(qfs_itable *t, const char *from, const char *to);
/* Number of live inodes (for tests and statistics). */
size_t qfs_itable_count(qfs_itable *t);
/* Calls fn on every inode (table locked; fn must not call the table). */
void qfs_itable_each(qfs_itable *t, void (*fn)(qfs_inode *, void *), void *arg);

/* Joins parent path and name into buf; -ENAMETOOLONG if it does not fit. */
int qfs_path_join(const char *parent, const char *name, char *buf, size_t cap);
/* Splits path into its parent (into buf) and returns a pointer to the last
 * component inside path. For "/" the parent is "/" and the name "". */
const char *qfs_path_split(const char *path, char *parent, size_t cap);

#endif
