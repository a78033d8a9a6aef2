/*
 * env_fault.c - a fault-injecting env for tests (see env.h).
 *
 * It wraps a base env and counts calls by kind. A test arms a failure at the
 * nth call of some kinds (EIO, ENOSPC, ...), a torn append, or simulates a
 * power cut with q_fault_env_drop_unsynced(), after LevelDB's
 * fault_injection_test: data not fsynced is lost, a file whose directory was
 * not fsynced since its creation is lost, and a rename not made durable by a
 * directory fsync is undone (the overwritten target is restored from a hard
 * link taken before the rename).
 *
 * Thread safety: one mutex guards all state, so files may be used from
 * several threads as with the POSIX env.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/env.h"
#include "util/qerr.h"

typedef struct tracked {
	char *path;
	uint64_t synced;
	int created; /* created since its directory was last synced */
} tracked;

typedef struct pending_rename {
	char *from, *to, *backup;
} pending_rename;

typedef struct fault_env {
	q_env base;
	q_env *inner;
	pthread_mutex_t mu;
	uint64_t counts[6];
	int fail_mask;
	uint64_t fail_left; /* calls of fail_mask kinds until the failure */
	int fail_err, fail_sticky, failing;
	uint64_t short_left;
	int short_err;
	tracked *files;
	size_t nfiles, capfiles;
	pending_rename *renames;
	size_t nrenames, caprenames;
	uint64_t backup_seq;
	char *bad_path; /* reads of it touching bad_from.. fail with bad_err */
	uint64_t bad_from;
	int bad_err;
	void (*on_sync_dir)(void *arg); /* called before each directory sync */
	void *on_sync_dir_arg;
	void (*on_sync)(void *arg);     /* called before each file sync */
	void *on_sync_arg;
} fault_env;

typedef struct fault_file {
	q_file base;
	q_file *inner;
	fault_env *fe;
	char *path;
	uint64_t size;
	int writable;
} fault_file;

static int kind_index(int kind)
{
	int i = 0;
	while (kind > 1) {
		kind >>= 1;
		i++;
	}
	return i;
}

/* Counts a call of one kind and says whether it must fail (0 or error). */
static int should_fail(fault_env *fe, int kind)
{
	int rc = 0;
	pthread_mutex_lock(&fe->mu);
	fe->counts[kind_index(kind)]++;
	if (fe->fail_mask & kind) {
		if (fe->failing) {
			rc = fe->fail_err;
		} else if (fe->fail_left && --fe->fail_left == 0) {
			rc = fe->fail_err;
			if (fe->fail_sticky)
				fe->failing = 1;
			else
				fe->fail_mask = 0;
		}
	}
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static tracked *find_tracked(fault_env *fe, const char *path)
{
	for (size_t i = 0; i < fe->nfiles; i++)
		if (!strcmp(fe->files[i].path, path))
			return &fe->files[i];
	return NULL;
}

static tracked *add_tracked(fault_env *fe, const char *path)
{
	tracked *t = find_tracked(fe, path);
	if (t)
		return t;
	if (fe->nfiles == fe->capfiles) {
		size_t cap = fe->capfiles ? fe->capfiles * 2 : 16;
		tracked *n = realloc(fe->files, cap * sizeof(*n));
		if (!n)
			return NULL;
		fe->files = n;
		fe->capfiles = cap;
	}
	t = &fe->files[fe->nfiles];
	t->path = strdup(path);
	if (!t->path)
		return NULL;
	t->synced = 0;
	t->created = 0;
	fe->nfiles++;
	return t;
}

static void drop_tracked(fault_env *fe, const char *path)
{
	for (size_t i = 0; i < fe->nfiles; i++)
		if (!strcmp(fe->files[i].path, path)) {
			free(fe->files[i].path);
			fe->files[i] = fe->files[--fe->nfiles];
			return;
		}
}

static int ff_pread(q_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
	fault_file *ff = (fault_file *)f;
	int rc = should_fail(ff->fe, Q_FAULT_READ);
	if (rc)
		return rc;
	pthread_mutex_lock(&ff->fe->mu);
	if (ff->fe->bad_path && !strcmp(ff->fe->bad_path, ff->path) && n &&
	    off + n > ff->fe->bad_from)
		rc = ff->fe->bad_err;
	pthread_mutex_unlock(&ff->fe->mu);
	if (rc)
		return rc;
	return q_file_pread(ff->inner, buf, n, off, got);
}

static int ff_append(q_file *f, const void *p, size_t n)
{
	fault_file *ff = (fault_file *)f;
	fault_env *fe = ff->fe;
	int rc = should_fail(fe, Q_FAULT_WRITE);
	if (rc)
		return rc;
	pthread_mutex_lock(&fe->mu);
	int torn = 0, err = 0;
	if (fe->short_left && --fe->short_left == 0) {
		torn = 1;
		err = fe->short_err;
	}
	pthread_mutex_unlock(&fe->mu);
	size_t len = torn ? n / 2 : n;
	rc = q_file_append(ff->inner, p, len);
	if (rc)
		return rc;
	ff->size += len;
	return torn ? err : 0;
}

static int ff_sync(q_file *f)
{
	fault_file *ff = (fault_file *)f;
	pthread_mutex_lock(&ff->fe->mu);
	void (*hook)(void *) = ff->fe->on_sync;
	void *hook_arg = ff->fe->on_sync_arg;
	pthread_mutex_unlock(&ff->fe->mu);
	if (hook)
		hook(hook_arg);
	int rc = should_fail(ff->fe, Q_FAULT_SYNC);
	if (rc)
		return rc;
	rc = q_file_sync(ff->inner);
	if (rc)
		return rc;
	pthread_mutex_lock(&ff->fe->mu);
	tracked *t = find_tracked(ff->fe, ff->path);
	if (t)
		t->synced = ff->size;
	pthread_mutex_unlock(&ff->fe->mu);
	return 0;
}

static int ff_size(q_file *f, uint64_t *out)
{
	return q_file_size(((fault_file *)f)->inner, out);
}

static int ff_truncate(q_file *f, uint64_t len)
{
	fault_file *ff = (fault_file *)f;
	int rc = should_fail(ff->fe, Q_FAULT_WRITE);
	if (rc)
		return rc;
	rc = q_file_truncate(ff->inner, len);
	if (rc)
		return rc;
	ff->size = len;
	pthread_mutex_lock(&ff->fe->mu);
	tracked *t = find_tracked(ff->fe, ff->path);
	if (t && t->synced > len)
		t->synced = len;
	pthread_mutex_unlock(&ff->fe->mu);
	return 0;
}

static int ff_close(q_file *f)
{
	fault_file *ff = (fault_file *)f;
	int rc = q_file_close(ff->inner);
	free(ff->path);
	free(ff);
	return rc;
}

static const struct q_file_ops ff_ops = {
	ff_pread, ff_append, ff_sync, ff_size, ff_truncate, ff_close,
};

static int wrap(fault_env *fe, q_file *inner, const char *path, q_file **out)
{
	fault_file *ff = calloc(1, sizeof(*ff));
	char *p = strdup(path);
	if (!ff || !p) {
		free(ff);
		free(p);
		q_file_close(inner);
		return -ENOMEM;
	}
	ff->base.ops = &ff_ops;
	ff->base.env = &fe->base;
	ff->inner = inner;
	ff->fe = fe;
	ff->path = p;
	q_file_size(inner, &ff->size);
	*out = &ff->base;
	return 0;
}

static int fe_open(q_env *e, const char *path, int flags, q_file **out)
{
	fault_env *fe = (fault_env *)e;
	int rc = should_fail(fe, Q_FAULT_OPEN);
	if (rc)
		return rc;
	uint64_t oldsize;
	int existed = q_env_file_size(fe->inner, path, &oldsize) == 0;
	q_file *inner;
	rc = q_env_open(fe->inner, path, flags, &inner);
	if (rc)
		return rc;
	if (flags & (Q_OPEN_CREATE | Q_OPEN_APPEND)) {
		pthread_mutex_lock(&fe->mu);
		tracked *t = find_tracked(fe, path);
		if (!t) {
			t = add_tracked(fe, path);
			if (t) {
				t->created = !existed;
				t->synced = existed ? oldsize : 0;
			}
		}
		if (t && (flags & Q_OPEN_CREATE))
			t->synced = 0;
		pthread_mutex_unlock(&fe->mu);
		if (!t) {
			q_file_close(inner);
			return -ENOMEM;
		}
	}
	return wrap(fe, inner, path, out);
}

static int fe_rename(q_env *e, const char *from, const char *to)
{
	fault_env *fe = (fault_env *)e;
	int rc = should_fail(fe, Q_FAULT_RENAME);
	if (rc)
		return rc;
	pthread_mutex_lock(&fe->mu);
	char backup[4096];
	backup[0] = 0;
	if (access(to, F_OK) == 0) {
		snprintf(backup, sizeof(backup), "%s.faultenv-backup-%llu", to,
			 (unsigned long long)++fe->backup_seq);
		if (link(to, backup)) {
			rc = -errno;
			goto out;
		}
	}
	rc = q_env_rename(fe->inner, from, to);
	if (rc) {
		if (backup[0])
			unlink(backup);
		goto out;
	}
	if (fe->nrenames == fe->caprenames) {
		size_t cap = fe->caprenames ? fe->caprenames * 2 : 8;
		pending_rename *n = realloc(fe->renames, cap * sizeof(*n));
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		fe->renames = n;
		fe->caprenames = cap;
	}
	pending_rename *pr = &fe->renames[fe->nrenames++];
	pr->from = strdup(from);
	pr->to = strdup(to);
	pr->backup = backup[0] ? strdup(backup) : NULL;
	drop_tracked(fe, to);
	tracked *t = find_tracked(fe, from);
	if (t) {
		free(t->path);
		t->path = strdup(to);
	}
out:
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

static int fe_unlink(q_env *e, const char *path)
{
	fault_env *fe = (fault_env *)e;
	int rc = should_fail(fe, Q_FAULT_UNLINK);
	if (rc)
		return rc;
	rc = q_env_unlink(fe->inner, path);
	if (rc == 0) {
		pthread_mutex_lock(&fe->mu);
		drop_tracked(fe, path);
		pthread_mutex_unlock(&fe->mu);
	}
	return rc;
}

static int fe_mkdir(q_env *e, const char *path)
{
	return q_env_mkdir(((fault_env *)e)->inner, path);
}

static int fe_rmdir(q_env *e, const char *path)
{
	return q_env_rmdir(((fault_env *)e)->inner, path);
}

static void free_rename(pending_rename *pr)
{
	free(pr->from);
	free(pr->to);
	free(pr->backup);
}

static int fe_sync_dir(q_env *e, const char *path)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	void (*hook)(void *) = fe->on_sync_dir;
	void *hook_arg = fe->on_sync_dir_arg;
	pthread_mutex_unlock(&fe->mu);
	if (hook)
		hook(hook_arg);
	int rc = should_fail(fe, Q_FAULT_SYNC);
	if (rc)
		return rc;
	rc = q_env_sync_dir(fe->inner, path);
	if (rc)
		return rc;
	char dir[4096];
	pthread_mutex_lock(&fe->mu);
	for (size_t i = 0; i < fe->nfiles; i++) {
		q_path_dir(fe->files[i].path, dir, sizeof(dir));
		if (!strcmp(dir, path))
			fe->files[i].created = 0;
	}
	for (size_t i = 0; i < fe->nrenames;) {
		q_path_dir(fe->renames[i].to, dir, sizeof(dir));
		if (!strcmp(dir, path)) {
			if (fe->renames[i].backup)
				unlink(fe->renames[i].backup);
			free_rename(&fe->renames[i]);
			memmove(&fe->renames[i], &fe->renames[i + 1],
				(fe->nrenames - i - 1) * sizeof(pending_rename));
			fe->nrenames--;
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&fe->mu);
	return 0;
}

static int fe_list(q_env *e, const char *dir, char ***names, size_t *n)
{
	return q_env_list(((fault_env *)e)->inner, dir, names, n);
}

static int fe_file_size(q_env *e, const char *path, uint64_t *out)
{
	return q_env_file_size(((fault_env *)e)->inner, path, out);
}

static int fe_lock(q_env *e, const char *path, q_file **out)
{
	fault_env *fe = (fault_env *)e;
	q_file *inner;
	int rc = q_env_lock(fe->inner, path, &inner);
	if (rc)
		return rc;
	return wrap(fe, inner, path, out);
}

static int fe_statfs(q_env *e, const char *path, uint64_t *total, uint64_t *avail)
{
	return q_env_statfs(((fault_env *)e)->inner, path, total, avail);
}

static const struct q_env_ops fe_ops = {
	fe_open, fe_rename, fe_unlink, fe_mkdir, fe_rmdir, fe_sync_dir,
	fe_list, fe_file_size, fe_lock, fe_statfs,
};

q_env *q_fault_env_new(q_env *base)
{
	fault_env *fe = calloc(1, sizeof(*fe));
	if (!fe)
		return NULL;
	fe->base.ops = &fe_ops;
	fe->inner = base;
	pthread_mutex_init(&fe->mu, NULL);
	return &fe->base;
}

void q_fault_env_free(q_env *e)
{
	fault_env *fe = (fault_env *)e;
	if (!fe)
		return;
	for (size_t i = 0; i < fe->nfiles; i++)
		free(fe->files[i].path);
	for (size_t i = 0; i < fe->nrenames; i++) {
		if (fe->renames[i].backup)
			unlink(fe->renames[i].backup);
		free_rename(&fe->renames[i]);
	}
	free(fe->files);
	free(fe->renames);
	free(fe->bad_path);
	pthread_mutex_destroy(&fe->mu);
	free(fe);
}

void q_fault_env_fail_at(q_env *e, int mask, uint64_t n, int err, int sticky)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	fe->fail_mask = n ? mask : 0;
	fe->fail_left = n;
	fe->fail_err = err;
	fe->fail_sticky = sticky;
	fe->failing = 0;
	pthread_mutex_unlock(&fe->mu);
}

int q_fault_env_bad_region(q_env *e, const char *path, uint64_t from, int err)
{
	fault_env *fe = (fault_env *)e;
	char *p = path ? strdup(path) : NULL;
	if (path && !p)
		return -ENOMEM;
	pthread_mutex_lock(&fe->mu);
	free(fe->bad_path);
	fe->bad_path = p;
	fe->bad_from = from;
	fe->bad_err = err;
	pthread_mutex_unlock(&fe->mu);
	return 0;
}

void q_fault_env_short_write_at(q_env *e, uint64_t n, int err)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	fe->short_left = n;
	fe->short_err = err;
	pthread_mutex_unlock(&fe->mu);
}

void q_fault_env_on_sync_dir(q_env *e, void (*fn)(void *arg), void *arg)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	fe->on_sync_dir = fn;
	fe->on_sync_dir_arg = arg;
	pthread_mutex_unlock(&fe->mu);
}

uint64_t q_fault_env_count(q_env *e, int kind)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	uint64_t c = fe->counts[kind_index(kind)];
	pthread_mutex_unlock(&fe->mu);
	return c;
}

int q_fault_env_drop_unsynced(q_env *e)
{
	fault_env *fe = (fault_env *)e;
	int rc = 0;
	pthread_mutex_lock(&fe->mu);
	fe->fail_mask = 0;
	fe->failing = 0;
	while (fe->nrenames) {
		pending_rename *pr = &fe->renames[--fe->nrenames];
		if (rename(pr->to, pr->from) && !rc)
			rc = -errno;
		tracked *t = find_tracked(fe, pr->to);
		if (t) {
			free(t->path);
			t->path = strdup(pr->from);
		}
		if (pr->backup && rename(pr->backup, pr->to) && !rc)
			rc = -errno;
		free_rename(pr);
	}
	for (size_t i = 0; i < fe->nfiles; i++) {
		tracked *t = &fe->files[i];
		if (t->created) {
			if (unlink(t->path) && errno != ENOENT && !rc)
				rc = -errno;
		} else if (truncate(t->path, (off_t)t->synced) && errno != ENOENT && !rc) {
			rc = -errno;
		}
		free(t->path);
	}
	fe->nfiles = 0;
	pthread_mutex_unlock(&fe->mu);
	return rc;
}

void q_fault_env_on_sync(q_env *e, void (*fn)(void *arg), void *arg)
{
	fault_env *fe = (fault_env *)e;
	pthread_mutex_lock(&fe->mu);
	fe->on_sync = fn;
	fe->on_sync_arg = arg;
	pthread_mutex_unlock(&fe->mu);
}
