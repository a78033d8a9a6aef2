/*
 * qfs_fuse.c - FUSE low-level operations over qfs_fs (see qfs_fuse.h).
 *
 * Conventions: every op replies exactly once. qfs_fs returns negative
 * errno; replies carry the positive value. Lookup counts: every reply that
 * hands the kernel an inode (lookup, create, mknod, mkdir, symlink,
 * readdirplus entries other than "." and "..") adds one, and qfs_fs added
 * it already; when a reply cannot be sent (readdirplus buffer full) the
 * count is taken back.
 */
#include "fuse/qfs_fuse.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_format.h"
#include "fuse/qfs_obj.h"
#include "util/hash.h"
#include "util/log.h"

static qfs_fuse *Q(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_entry(fuse_req_t req, int rc, uint64_t ino, const struct stat *st)
{
	qfs_fuse *q = Q(req);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr = *st;
	e.attr.st_ino = ino;
	e.attr_timeout = q->attr_timeout;
	e.entry_timeout = q->entry_timeout;
	if (fuse_reply_entry(req, &e) == -ENOENT)
		qfs_fs_forget(q->fs, ino, 1); /* interrupted: the kernel took nothing */
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	qfs_fuse *q = userdata;
	/* large requests: the kernel takes up to 1 MiB with max_pages */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->want |= conn->capable & FUSE_CAP_ASYNC_READ;
	conn->want |= conn->capable & FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want |= conn->capable & FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* always plus: one batch */
	}
	if (q->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void op_destroy(void *userdata)
{
	qfs_fuse *q = userdata;
	int rc = qfs_fs_flush_all(q->fs);
	if (rc)
		Q_ERROR("qfs", "flush at unmount: %s", strerror(-rc));
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct stat st;
	uint64_t ino = 0;
	int rc = qfs_fs_lookup(Q(req)->fs, parent, name, &st, &ino);
	if (rc == -ENOENT) {
		/* negative entry, cached for entry_timeout */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = Q(req)->entry_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, rc, ino, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	qfs_fs_forget(Q(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		qfs_fs_forget(Q(req)->fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc = qfs_fs_getattr(Q(req)->fs, ino, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, Q(req)->attr_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	int qs = 0;
	struct stat out;
	if (to_set & FUSE_SET_ATTR_MODE)
		qs |= QFS_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		qs |= QFS_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		qs |= QFS_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE)
		qs |= QFS_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME)
		qs |= QFS_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME)
		qs |= QFS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		qs |= QFS_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		qs |= QFS_SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME)
		qs |= QFS_SET_CTIME;
	int rc = qfs_fs_setattr(Q(req)->fs, ino, attr, qs, &out);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &out, Q(req)->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[QFS_PATH_MAX + 1];
	int rc = qfs_fs_readlink(Q(req)->fs, ino, buf, sizeof(buf));
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	uint64_t ino = 0;
	int rc = qfs_fs_mknod(Q(req)->fs, parent, name, mode, rdev, c->uid, c->gid, &st, &ino);
	reply_entry(req, rc, ino, &st);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	op_mknod(req, parent, name, S_IFDIR | (mode & 07777), 0);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	uint64_t ino = 0;
	int rc = qfs_fs_symlink(Q(req)->fs, parent, name, link, c->uid, c->gid, &st, &ino);
	reply_entry(req, rc, ino, &st);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	/* hard links are not supported: paths are keys (docs/filesystem.md) */
	fuse_reply_err(req, EPERM);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -qfs_fs_unlink(Q(req)->fs, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -qfs_fs_rmdir(Q(req)->fs, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, -qfs_fs_rename(Q(req)->fs, parent, name, newparent, newname, flags));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t fh;
	int rc = qfs_fs_open(Q(req)->fs, ino, fi->flags, &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = fh;
	fi->keep_cache = 0; /* close-to-open: another mount may have changed it */
	if (fuse_reply_open(req, fi) == -ENOENT)
		qfs_fs_release(Q(req)->fs, fh);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	qfs_fuse *q = Q(req);
	struct stat st;
	uint64_t ino = 0, fh = 0;
	int rc = qfs_fs_create(q->fs, parent, name, mode, fi->flags, c->uid, c->gid, &st, &ino, &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr = st;
	e.attr.st_ino = ino;
	e.attr_timeout = q->attr_timeout;
	e.entry_timeout = q->entry_timeout;
	fi->fh = fh;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		qfs_fs_release(q->fs, fh);
		qfs_fs_forget(q->fs, ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	size_t got = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = qfs_fs_read(Q(req)->fs, fi->fh, (uint64_t)off, size, buf, &got);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, got);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	int rc = qfs_fs_write(Q(req)->fs, fi->fh, (uint64_t)off, buf, size);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -qfs_fs_flush(Q(req)->fs, fi->fh));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -qfs_fs_release(Q(req)->fs, fi->fh));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -qfs_fs_fsync(Q(req)->fs, fi->fh));
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	uint64_t fh;
	int rc = qfs_fs_opendir(Q(req)->fs, ino, &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = fh;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		qfs_fs_releasedir(Q(req)->fs, fh);
}

/* Listing positions: 0 ".", 1 "..", 2 + i the i-th entry. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	qfs_fuse *q = Q(req);
	qfs_dirlist *l = qfs_fs_dirlist(q->fs, fi->fh);
	char *buf = calloc(1, size ? size : 1);
	size_t used = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (uint64_t pos = (uint64_t)off; pos < l->n + 2; pos++) {
		struct stat st;
		const char *name;
		size_t sz;
		memset(&st, 0, sizeof(st));
		if (pos < 2) {
			name = pos == 0 ? "." : "..";
			st.st_ino = pos == 0 ? ino : 1;
			st.st_mode = S_IFDIR;
			if (plus) {
				struct fuse_entry_param e;
				memset(&e, 0, sizeof(e));
				e.attr = st;
				sz = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
							    (off_t)pos + 1);
			} else {
				sz = fuse_add_direntry(req, buf + used, size - used, name, &st,
						       (off_t)pos + 1);
			}
			if (sz > size - used)
				break;
			used += sz;
			continue;
		}
		qfs_dirent_info *d = &l->e[pos - 2];
		name = d->name;
		if (plus) {
			struct fuse_entry_param e;
			uint64_t cino = 0;
			memset(&e, 0, sizeof(e));
			int rc = qfs_fs_dirent_lookup(q->fs, fi->fh, (size_t)(pos - 2), &cino, &e.attr);
			if (rc)
				rc = qfs_fs_lookup(q->fs, ino, name, &e.attr, &cino);
			if (rc) /* gone since the listing: skip it */
				continue;
			e.ino = cino;
			e.attr.st_ino = cino;
			e.attr_timeout = q->attr_timeout;
			e.entry_timeout = q->entry_timeout;
			sz = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						    (off_t)pos + 1);
			if (sz > size - used) {
				qfs_fs_forget(q->fs, cino, 1);
				break;
			}
		} else {
			st.st_mode = DTTOIF(qfs_type_to_dt(d->type));
			st.st_ino = (q_hash64(name, strlen(name), ino) >> 1) | 1;
			sz = fuse_add_direntry(req, buf + used, size - used, name, &st,
					       (off_t)pos + 1);
			if (sz > size - used)
				break;
		}
		used += sz;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	qfs_fs_releasedir(Q(req)->fs, fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -qfs_fs_fsyncdir(Q(req)->fs, ino));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc = qfs_fs_statfs(Q(req)->fs, &sv);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fuse_reply_err(req, -qfs_fs_setxattr(Q(req)->fs, ino, name, value, size, flags));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = qfs_fs_getxattr(Q(req)->fs, ino, name, buf, size);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = qfs_fs_listxattr(Q(req)->fs, ino, buf, size);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)rc);
	else
		fuse_reply_buf(req, buf, (size_t)rc);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -qfs_fs_removexattr(Q(req)->fs, ino, name));
}

const struct fuse_lowlevel_ops qfs_fuse_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
