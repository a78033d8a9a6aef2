/*
 * env.c - the POSIX env (see env.h) and helpers shared by every env.
 */
#include "util/env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/qerr.h"

typedef struct posix_file {
	q_file base;
	int fd;
} posix_file;

static int px_pread(q_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
	int fd = ((posix_file *)f)->fd;
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return 0;
}

static int px_append(q_file *f, const void *p, size_t n)
{
	int fd = ((posix_file *)f)->fd;
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int px_sync(q_file *f)
{
	return fdatasync(((posix_file *)f)->fd) ? -errno : 0;
}

static int px_size(q_file *f, uint64_t *out)
{
	struct stat st;
	if (fstat(((posix_file *)f)->fd, &st))
		return -errno;
	*out = (uint64_t)st.st_size;
	return 0;
}

static int px_truncate(q_file *f, uint64_t len)
{
	return ftruncate(((posix_file *)f)->fd, (off_t)len) ? -errno : 0;
}

static int px_close(q_file *f)
{
	int rc = close(((posix_file *)f)->fd) ? -errno : 0;
	free(f);
	return rc;
}

static const struct q_file_ops px_file_ops = {
	px_pread, px_append, px_sync, px_size, px_truncate, px_close,
};

static int px_wrap(q_env *e, int fd, q_file **out)
{
	posix_file *pf = malloc(sizeof(*pf));
	if (!pf) {
		close(fd);
		return -ENOMEM;
	}
	pf->base.ops = &px_file_ops;
	pf->base.env = e;
	pf->fd = fd;
	*out = &pf->base;
	return 0;
}

static int px_open(q_env *e, const char *path, int flags, q_file **out)
{
	int of = O_CLOEXEC;
	if (flags & Q_OPEN_READ)
		of |= O_RDONLY;
	else if (flags & Q_OPEN_CREATE)
		of |= O_RDWR | O_CREAT | O_TRUNC | O_APPEND | ((flags & Q_OPEN_EXCL) ? O_EXCL : 0);
	else if (flags & Q_OPEN_APPEND)
		of |= O_RDWR | O_CREAT | O_APPEND;
	else
		return -EINVAL;
	int fd = open(path, of, 0644);
	if (fd < 0)
		return -errno;
	return px_wrap(e, fd, out);
}

static int px_rename(q_env *e, const char *from, const char *to)
{
	return rename(from, to) ? -errno : 0;
}

static int px_unlink(q_env *e, const char *path)
{
	return unlink(path) ? -errno : 0;
}

static int px_mkdir(q_env *e, const char *path)
{
	return mkdir(path, 0755) ? -errno : 0;
}

static int px_rmdir(q_env *e, const char *path)
{
	return rmdir(path) ? -errno : 0;
}

static int px_sync_dir(q_env *e, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static int px_list(q_env *e, const char *dir, char ***names, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 32;
			char **nv = realloc(v, cap * sizeof(char *));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		if (!(v[cnt] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		cnt++;
	}
	closedir(d);
	if (rc) {
		q_env_list_free(v, cnt);
		return rc;
	}
	*names = v;
	*n = cnt;
	return 0;
}

static int px_file_size(q_env *e, const char *path, uint64_t *out)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	*out = (uint64_t)st.st_size;
	return 0;
}

static int px_lock(q_env *e, const char *path, q_file **out)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno;
		close(fd);
		return err == EWOULDBLOCK ? Q_EBUSY : -err;
	}
	return px_wrap(e, fd, out);
}

static int px_statfs(q_env *e, const char *path, uint64_t *total, uint64_t *avail)
{
	struct statvfs sv;
	if (statvfs(path, &sv))
		return -errno;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

static const struct q_env_ops px_env_ops = {
	px_open, px_rename, px_unlink, px_mkdir, px_rmdir, px_sync_dir,
	px_list, px_file_size, px_lock, px_statfs,
};

static q_env px_env = {&px_env_ops};

q_env *q_env_posix(void)
{
	return &px_env;
}

void q_env_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int q_env_mkdirs(q_env *e, const char *path)
{
	char tmp[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] == '/' || tmp[i] == 0) {
			char c = tmp[i];
			tmp[i] = 0;
			int rc = q_env_mkdir(e, tmp);
			if (rc && rc != -EEXIST)
				return rc;
			tmp[i] = c;
		}
	}
	return 0;
}

int q_env_read_all(q_env *e, const char *path, uint8_t **data, size_t *n)
{
	q_file *f;
	int rc = q_env_open(e, path, Q_OPEN_READ, &f);
	if (rc)
		return rc;
	uint64_t sz;
	uint8_t *buf = NULL;
	size_t got = 0;
	Q_ERR(q_file_size(f, &sz));
	if (sz > (1ull << 30)) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	buf = malloc(sz ? sz : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto fail;
	}
	Q_ERR(q_file_pread(f, buf, sz, 0, &got));
	q_file_close(f);
	*data = buf;
	*n = got;
	return 0;
fail:
	free(buf);
	q_file_close(f);
	return rc;
}

void q_path_dir(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
		return;
	}
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1;
	if (n >= cap)
		n = cap - 1;
	memcpy(dir, path, n);
	dir[n] = 0;
}

int q_env_write_atomic(q_env *e, const char *path, const void *data, size_t n)
{
	char tmp[4096], dir[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	q_file *f;
	int rc = q_env_open(e, tmp, Q_OPEN_CREATE, &f);
	if (rc)
		return rc;
	Q_ERR(q_file_append(f, data, n));
	Q_ERR(q_file_sync(f));
	rc = q_file_close(f);
	f = NULL;
	if (rc)
		goto fail;
	Q_ERR(q_env_rename(e, tmp, path));
	q_path_dir(path, dir, sizeof(dir));
	return q_env_sync_dir(e, dir);
fail:
	q_file_close(f);
	q_env_unlink(e, tmp);
	return rc;
}
