/*
 * qfs_fuse.h - the FUSE low-level face of the filesystem: a const ops table
 * that turns kernel requests into qfs_fs calls and replies (positive errno
 * in fuse_reply_err, as libfuse wants).
 *
 * The session's userdata is a qfs_fuse. Thread safety: the ops run on any
 * number of session threads; all shared state is in qfs_fs, which locks.
 */
#ifndef QFS_FUSE_H
#define QFS_FUSE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "fuse/qfs_fs.h"

typedef struct qfs_fuse {
	qfs_fs *fs;
	double attr_timeout;
	double entry_timeout;
	int writeback_cache;
} qfs_fuse;

extern const struct fuse_lowlevel_ops qfs_fuse_ops;

#endif
