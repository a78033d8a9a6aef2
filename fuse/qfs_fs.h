/*
 * qfs_fs.h - the filesystem over the key-value client: every operation the
 * FUSE face needs, in terms of inode numbers, names and struct stat, with
 * no FUSE types (so it can be driven directly by tests).
 *
 * Model (docs/filesystem.md): each path's object lives under "f:" + path;
 * directories hold add-wins entry sets; large files are chunked under
 * content-addressed "c:" keys; several live siblings of a file show as the
 * chosen version under the file's name plus conflict files beside it
 * (qfs_conflict.h).
 *
 * Caching: an inode keeps the last version it read or wrote (object and
 * causal context) for attr_timeout; reads within that window are answered
 * from it, writes go out with its context. A stale context never loses data:
 * the store keeps what it did not cover as a sibling (a directory merges it
 * back, a file shows it as a conflict file).
 *
 * Directories: entry changes are written behind (qfs_fs.c, design note 5):
 * visible in this mount at once, stored within tens of milliseconds or at
 * fsyncdir/unmount.
 *
 * Open files: writes go to per-inode buffers (inline bytes or chunk buffers)
 * and reach the store on flush (close), fsync, release, when the dirty bytes
 * pass a bound, and at unmount. Several handles of one inode share them.
 *
 * Errors: every function returns 0 or a negative errno (store failures such
 * as no quorum or timeout become -EIO; a missing key -ENOENT).
 *
 * Thread safety: every function may be called from any thread. Locks: the
 * inode table's mutex (innermost), then per-inode mutexes; directory inodes
 * are locked before file inodes, two directories in inode-number order.
 *
 * Ownership: handles (uint64_t fh) are owned by the fs and freed by
 * release/releasedir; a qfs_dirlist belongs to its directory handle.
 */
#ifndef QFS_FS_H
#define QFS_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "client/client.h"

typedef struct qfs_fs qfs_fs;

/* Disk figures of the cluster for statfs: bytes and inodes summed over the
 * members that answered (see qfs_fs_conf.space). */
typedef struct qfs_space {
	uint64_t total, free, avail; /* bytes */
	uint64_t files, ffree;
	size_t members, answered;    /* members known / summed */
	int n;                       /* replication factor */
} qfs_space;

typedef struct qfs_fs_conf {
	qc_client *client;      /* not owned; must outlive the fs */
	const char *node_id;    /* recorded as the writer of new versions */
	const char *data_dir;   /* for statfs (the local node's disk) */
	uint32_t chunk_size;
	uint32_t inline_max;
	double attr_timeout;    /* seconds a cached version answers reads */
	uint64_t timeout_ms;    /* per store request; 0 = client default */
	int n, r, w;            /* 0 = cluster default */
	uint64_t max_dirty;     /* dirty bytes per file before chunks go out */
	int writers;            /* chunk writer threads (0 = write in place) */
	/* statfs: the cluster's disk figures (the embedded node's
	 * node_fs_space_get); NULL or a failure: the local data disk. */
	int (*space)(void *arg, qfs_space *out);
	void *space_arg;
	/* an open file's object is stored once a chunk of it has been in the
	 * store this long without a version naming it (0: QFS_UNREF_MAX_MS) */
	uint64_t unref_max_ms;
} qfs_fs_conf;

int qfs_fs_new(const qfs_fs_conf *conf, qfs_fs **out);
/* Flushes every dirty file (as unmount does) and frees the fs. */
void qfs_fs_free(qfs_fs *fs);
/* Flushes every dirty file; returns the first error. */
int qfs_fs_flush_all(qfs_fs *fs);

/* ---- names ---- */
/* On success adds one lookup to *ino (forget drops it). */
int qfs_fs_lookup(qfs_fs *fs, uint64_t parent, const char *name, struct stat *st, uint64_t *ino);
void qfs_fs_forget(qfs_fs *fs, uint64_t ino, uint64_t nlookup);
int qfs_fs_getattr(qfs_fs *fs, uint64_t ino, struct stat *st);

/* setattr: which fields to change. */
enum {
	QFS_SET_MODE = 1,
	QFS_SET_UID = 2,
	QFS_SET_GID = 4,
	QFS_SET_SIZE = 8,
	QFS_SET_ATIME = 16,
	QFS_SET_MTIME = 32,
	QFS_SET_ATIME_NOW = 64,
	QFS_SET_MTIME_NOW = 128,
	QFS_SET_CTIME = 256
};
int qfs_fs_setattr(qfs_fs *fs, uint64_t ino, const struct stat *in, int to_set, struct stat *out);
int qfs_fs_readlink(qfs_fs *fs, uint64_t ino, char *buf, size_t cap);

/* mode carries the file type (S_IFREG, S_IFDIR, S_IFIFO, ...). */
int qfs_fs_mknod(qfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		 uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino);
int qfs_fs_symlink(qfs_fs *fs, uint64_t parent, const char *name, const char *target,
		   uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino);
int qfs_fs_unlink(qfs_fs *fs, uint64_t parent, const char *name);
int qfs_fs_rmdir(qfs_fs *fs, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE supported; RENAME_EXCHANGE gives -EINVAL. */
int qfs_fs_rename(qfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, unsigned flags);

/* ---- files ---- */
int qfs_fs_open(qfs_fs *fs, uint64_t ino, int flags, uint64_t *fh);
/* create + open; O_EXCL gives -EEXIST when the name exists. */
int qfs_fs_create(qfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, int flags,
		  uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino, uint64_t *fh);
int qfs_fs_read(qfs_fs *fs, uint64_t fh, uint64_t off, size_t size, void *buf, size_t *got);
int qfs_fs_write(qfs_fs *fs, uint64_t fh, uint64_t off, const void *buf, size_t size);
int qfs_fs_flush(qfs_fs *fs, uint64_t fh);
int qfs_fs_fsync(qfs_fs *fs, uint64_t fh);
int qfs_fs_release(qfs_fs *fs, uint64_t fh);

/* ---- directories ---- */
typedef struct qfs_dirent_info {
	char name[256];
	uint8_t type;      /* QFS_T_* */
	int have_attr;     /* st valid (children fetched in one batch) */
	int conflict;      /* a conflict file */
	struct stat st;
} qfs_dirent_info;

typedef struct qfs_dirlist {
	size_t n;
	qfs_dirent_info *e;
} qfs_dirlist;

/* Snapshot of the directory: one read of the directory object and one
 * batched read of its children (for attributes and conflict files). */
int qfs_fs_opendir(qfs_fs *fs, uint64_t ino, uint64_t *fh);
qfs_dirlist *qfs_fs_dirlist(qfs_fs *fs, uint64_t fh);
/* Registers a lookup of entry i of the listing (readdirplus) and returns
 * its inode number and attributes. */
int qfs_fs_dirent_lookup(qfs_fs *fs, uint64_t fh, size_t i, uint64_t *ino, struct stat *st);
int qfs_fs_releasedir(qfs_fs *fs, uint64_t fh);
/* Stores the directory's pending entry changes now (they are otherwise
 * written behind, within a few tens of milliseconds). */
int qfs_fs_fsyncdir(qfs_fs *fs, uint64_t ino);

/* ---- the rest ---- */
/* Cluster-wide figures (docs/filesystem.md, "statfs"), asked at most every
 * QFS_STATFS_CACHE_MS; the local data disk when the cluster cannot be asked. */
int qfs_fs_statfs(qfs_fs *fs, struct statvfs *sv);
/* The arithmetic of qfs_fs_statfs, for tests: figures to statvfs. */
void qfs_space_to_statvfs(const qfs_space *sp, uint64_t inodes_in_use, struct statvfs *sv);
/* getxattr/listxattr: with cap 0 return the size needed (as a positive
 * return value); otherwise copy and return the size, or -ERANGE. */
int qfs_fs_getxattr(qfs_fs *fs, uint64_t ino, const char *name, void *buf, size_t cap);
int qfs_fs_listxattr(qfs_fs *fs, uint64_t ino, char *buf, size_t cap);
int qfs_fs_setxattr(qfs_fs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		    int flags);
int qfs_fs_removexattr(qfs_fs *fs, uint64_t ino, const char *name);

/* Maps a store error to a negative errno. */
int qfs_errno(int rc);

#endif
