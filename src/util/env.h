/*
 * env.h - the file-I/O environment every module goes through.
 *
 * All disk access of the store (commit log, tables, manifest, hints) uses a
 * q_env, so tests can swap the POSIX env for the fault env (env_fault.c),
 * which injects EIO/ENOSPC/short writes at chosen calls and can drop data
 * that was never synced, like a machine losing power.
 *
 * Contracts:
 *  - q_file_append writes all n bytes or returns an error; after an error
 *    some prefix may have been written (a torn write).
 *  - q_file_pread returns fewer bytes than asked only at end of file.
 *  - q_file_sync makes the file's data durable; a new file's name is durable
 *    only after q_env_sync_dir on its directory (as on Linux).
 *  - q_env_rename is atomic; durable after q_env_sync_dir.
 * Ownership: q_file handles are closed (and freed) by q_file_close, which
 * also releases a lock taken with q_env_lock. Lists from q_env_list are
 * freed with q_env_list_free. Thread safety: an env may be used from any
 * thread; one q_file must not be appended to by two threads at once.
 */
#ifndef Q_ENV_H
#define Q_ENV_H

#include <stddef.h>
#include <stdint.h>

typedef struct q_env q_env;
typedef struct q_file q_file;

enum {
	Q_OPEN_READ = 1,    /* read only; must exist */
	Q_OPEN_CREATE = 2,  /* create or truncate, then append */
	Q_OPEN_APPEND = 4,  /* create if absent, keep contents, append */
	Q_OPEN_EXCL = 8     /* with CREATE: fail with -EEXIST if it exists */
};

struct q_file_ops {
	int (*pread)(q_file *f, void *buf, size_t n, uint64_t off, size_t *got);
	int (*append)(q_file *f, const void *p, size_t n);
	int (*sync)(q_file *f);
	int (*size)(q_file *f, uint64_t *out);
	int (*truncate)(q_file *f, uint64_t len);
	int (*close)(q_file *f);
};

struct q_file {
	const struct q_file_ops *ops;
	q_env *env;
};

struct q_env_ops {
	int (*open)(q_env *e, const char *path, int flags, q_file **out);
	int (*rename)(q_env *e, const char *from, const char *to);
	int (*unlink)(q_env *e, const char *path);
	int (*mkdir)(q_env *e, const char *path);
	int (*rmdir)(q_env *e, const char *path);
	int (*sync_dir)(q_env *e, const char *path);
	int (*list)(q_env *e, const char *dir, char ***names, size_t *n);
	int (*file_size)(q_env *e, const char *path, uint64_t *out);
	int (*lock)(q_env *e, const char *path, q_file **out);
	int (*statfs)(q_env *e, const char *path, uint64_t *total, uint64_t *avail);
};

struct q_env {
	const struct q_env_ops *ops;
};

/* The process-wide POSIX env; never freed. */
q_env *q_env_posix(void);

static inline int q_env_open(q_env *e, const char *path, int flags, q_file **out)
{
	return e->ops->open(e, path, flags, out);
}
static inline int q_file_pread(q_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
	return f->ops->pread(f, buf, n, off, got);
}
static inline int q_file_append(q_file *f, const void *p, size_t n)
{
	return f->ops->append(f, p, n);
}
static inline int q_file_sync(q_file *f)
{
	return f->ops->sync(f);
}
static inline int q_file_size(q_file *f, uint64_t *out)
{
	return f->ops->size(f, out);
}
static inline int q_file_truncate(q_file *f, uint64_t len)
{
	return f->ops->truncate(f, len);
}
static inline int q_file_close(q_file *f)
{
	return f ? f->ops->close(f) : 0;
}
static inline int q_env_rename(q_env *e, const char *from, const char *to)
{
	return e->ops->rename(e, from, to);
}
static inline int q_env_unlink(q_env *e, const char *path)
{
	return e->ops->unlink(e, path);
}
static inline int q_env_mkdir(q_env *e, const char *path)
{
	return e->ops->mkdir(e, path);
}
static inline int q_env_rmdir(q_env *e, const char *path)
{
	return e->ops->rmdir(e, path);
}
static inline int q_env_sync_dir(q_env *e, const char *path)
{
	return e->ops->sync_dir(e, path);
}
static inline int q_env_list(q_env *e, const char *dir, char ***names, size_t *n)
{
	return e->ops->list(e, dir, names, n);
}
static inline int q_env_file_size(q_env *e, const char *path, uint64_t *out)
{
	return e->ops->file_size(e, path, out);
}
/* Exclusive advisory lock on path (created if absent); Q_EBUSY if held. */
static inline int q_env_lock(q_env *e, const char *path, q_file **out)
{
	return e->ops->lock(e, path, out);
}
static inline int q_env_statfs(q_env *e, const char *path, uint64_t *total, uint64_t *avail)
{
	return e->ops->statfs(e, path, total, avail);
}

void q_env_list_free(char **names, size_t n);
/* mkdir -p; existing directories are fine. */
int q_env_mkdirs(q_env *e, const char *path);
/* Reads a whole (small) file into a heap buffer the caller frees. */
int q_env_read_all(q_env *e, const char *path, uint8_t **data, size_t *n);
/* Writes data to path durably: write tmp, sync, rename, sync dir. */
int q_env_write_atomic(q_env *e, const char *path, const void *data, size_t n);

/* Directory part of path ("." if none), truncated to cap. */
void q_path_dir(const char *path, char *dir, size_t cap);

/* ---- fault injection (env_fault.c), for tests ---- */

enum {
	Q_FAULT_OPEN = 1,
	Q_FAULT_READ = 2,
	Q_FAULT_WRITE = 4,
	Q_FAULT_SYNC = 8,
	Q_FAULT_RENAME = 16,
	Q_FAULT_UNLINK = 32,
	Q_FAULT_ALL = 63
};

/* A fault env wraps base (not owned). Free with q_fault_env_free after
 * closing every file opened through it. */
q_env *q_fault_env_new(q_env *base);
void q_fault_env_free(q_env *fe);
/* The nth (1-based) call of a kind in mask from now on fails with err
 * (e.g. -EIO, -ENOSPC); if sticky, every later call of those kinds fails
 * too. n = 0 disarms. */
void q_fault_env_fail_at(q_env *fe, int mask, uint64_t n, int err, int sticky);
/* Every read of path (as opened through fe) that touches a byte at offset
 * from or later fails with err, until called again (path NULL: none): a
 * bad region of a disk that stays bad. 0 or -ENOMEM. */
int q_fault_env_bad_region(q_env *fe, const char *path, uint64_t from, int err);
/* The nth append from now writes only its first half, then fails with err. */
void q_fault_env_short_write_at(q_env *fe, uint64_t n, int err);
/* fn(arg) runs, outside the env's lock and in the calling thread, at the
 * start of every directory sync from now on (fn NULL: none): lets a test
 * hold a thread inside a sync to see what others can do meanwhile. */
void q_fault_env_on_sync_dir(q_env *fe, void (*fn)(void *arg), void *arg);
/* The same at the start of every file sync (q_file_sync) from now on. */
void q_fault_env_on_sync(q_env *fe, void (*fn)(void *arg), void *arg);
/* Calls of each kind seen so far (for choosing n). */
uint64_t q_fault_env_count(q_env *fe, int kind);
/* Simulates power loss: every file is cut back to its last synced size,
 * files created since their directory was last synced are removed, and
 * renames not made durable by a directory sync are undone. Files must be
 * closed first. */
int q_fault_env_drop_unsynced(q_env *fe);

#endif
