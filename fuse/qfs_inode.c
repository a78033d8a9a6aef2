/*
 * qfs_inode.c - the inode table (see qfs_inode.h).
 *
 * Two chained hash tables over the same inodes: by number and by path. A
 * detached inode is only in the number table. Both tables grow by doubling
 * when the load passes 1.
 */
#include "fuse/qfs_inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_format.h"
#include "util/hash.h"

struct qfs_itable {
	pthread_mutex_t mu;
	qfs_inode **by_ino, **by_path;
	size_t nbuckets;
	size_t count;
	uint64_t next_ino;
	void (*free_state)(void *);
};

static size_t h_ino(uint64_t ino, size_t nb)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 17) & (nb - 1);
}

static size_t h_path(const char *p, size_t nb)
{
	return (size_t)q_hash64(p, strlen(p), 0x716673) & (nb - 1);
}

int qfs_itable_new(qfs_itable **out)
{
	qfs_itable *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(qfs_inode *));
	t->by_path = calloc(t->nbuckets, sizeof(qfs_inode *));
	if (!t->by_ino || !t->by_path) {
		free(t->by_ino);
		free(t->by_path);
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->next_ino = QFS_ROOT_INO;
	*out = t;
	uint64_t root;
	int rc = qfs_itable_lookup(t, "/", QFS_T_DIR, 0, &root);
	if (rc) {
		qfs_itable_free(t, NULL);
		return rc;
	}
	return 0;
}

static void inode_free(qfs_inode *in, void (*free_state)(void *))
{
	if (in->state && free_state)
		free_state(in->state);
	pthread_mutex_destroy(&in->lock);
	free(in->path);
	free(in);
}

void qfs_itable_free(qfs_itable *t, void (*free_state)(void *))
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		qfs_inode *in = t->by_ino[i];
		while (in) {
			qfs_inode *nx = in->next_ino;
			inode_free(in, free_state ? free_state : t->free_state);
			in = nx;
		}
	}
	free(t->by_ino);
	free(t->by_path);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static void path_unlink(qfs_itable *t, qfs_inode *in)
{
	qfs_inode **pp = &t->by_path[h_path(in->path, t->nbuckets)];
	while (*pp && *pp != in)
		pp = &(*pp)->next_path;
	if (*pp)
		*pp = in->next_path;
	in->next_path = NULL;
}

static void path_link(qfs_itable *t, qfs_inode *in)
{
	size_t b = h_path(in->path, t->nbuckets);
	in->next_path = t->by_path[b];
	t->by_path[b] = in;
}

static qfs_inode *find_path(qfs_itable *t, const char *path)
{
	for (qfs_inode *in = t->by_path[h_path(path, t->nbuckets)]; in; in = in->next_path)
		if (strcmp(in->path, path) == 0)
			return in;
	return NULL;
}

static qfs_inode *find_ino(qfs_itable *t, uint64_t ino)
{
	for (qfs_inode *in = t->by_ino[h_ino(ino, t->nbuckets)]; in; in = in->next_ino)
		if (in->ino == ino)
			return in;
	return NULL;
}

static void grow(qfs_itable *t)
{
	size_t nb = t->nbuckets * 2;
	qfs_inode **bi = calloc(nb, sizeof(qfs_inode *));
	qfs_inode **bp = calloc(nb, sizeof(qfs_inode *));
	if (!bi || !bp) { /* keep the old tables; they still work, only slower */
		free(bi);
		free(bp);
		return;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		qfs_inode *in = t->by_ino[i];
		while (in) {
			qfs_inode *nx = in->next_ino;
			size_t b = h_ino(in->ino, nb);
			in->next_ino = bi[b];
			bi[b] = in;
			in = nx;
		}
		in = t->by_path[i];
		while (in) {
			qfs_inode *nx = in->next_path;
			size_t b = h_path(in->path, nb);
			in->next_path = bp[b];
			bp[b] = in;
			in = nx;
		}
	}
	free(t->by_ino);
	free(t->by_path);
	t->by_ino = bi;
	t->by_path = bp;
	t->nbuckets = nb;
}

int qfs_itable_lookup(qfs_itable *t, const char *path, uint8_t type, int conflict, uint64_t *ino)
{
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_path(t, path);
	if (in) {
		in->nlookup++;
		in->type = type;
		in->conflict = conflict;
		*ino = in->ino;
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	in = calloc(1, sizeof(*in));
	if (!in || !(in->path = strdup(path))) {
		free(in);
		pthread_mutex_unlock(&t->mu);
		return -ENOMEM;
	}
	pthread_mutex_init(&in->lock, NULL);
	in->ino = t->next_ino++;
	in->nlookup = 1;
	in->type = type;
	in->conflict = conflict;
	if (t->count >= t->nbuckets)
		grow(t);
	size_t b = h_ino(in->ino, t->nbuckets);
	in->next_ino = t->by_ino[b];
	t->by_ino[b] = in;
	path_link(t, in);
	t->count++;
	*ino = in->ino;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

qfs_inode *qfs_itable_get(qfs_itable *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_ino(t, ino);
	pthread_mutex_unlock(&t->mu);
	return in;
}

int qfs_itable_path(qfs_itable *t, uint64_t ino, char *buf, size_t cap, int allow_detached)
{
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_ino(t, ino);
	if (!in)
		rc = -ENOENT;
	else if (in->detached && !allow_detached)
		rc = -ESTALE;
	else if (strlen(in->path) >= cap)
		rc = -ENAMETOOLONG;
	else
		strcpy(buf, in->path);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* Removes in from both tables and frees it; table locked. */
static void drop(qfs_itable *t, qfs_inode *in)
{
	if (in->ino == QFS_ROOT_INO)
		return; /* the root lives as long as the mount */
	qfs_inode **pp = &t->by_ino[h_ino(in->ino, t->nbuckets)];
	while (*pp && *pp != in)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = in->next_ino;
	if (!in->detached)
		path_unlink(t, in);
	t->count--;
	inode_free(in, t->free_state);
}

void qfs_itable_forget(qfs_itable *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_ino(t, ino);
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		if (in->nlookup == 0 && in->nopen == 0)
			drop(t, in);
	}
	pthread_mutex_unlock(&t->mu);
}

void qfs_itable_set_free_state(qfs_itable *t, void (*free_state)(void *))
{
	t->free_state = free_state;
}

void qfs_itable_open(qfs_itable *t, qfs_inode *in)
{
	pthread_mutex_lock(&t->mu);
	in->nopen++;
	pthread_mutex_unlock(&t->mu);
}

int qfs_itable_release(qfs_itable *t, qfs_inode *in)
{
	pthread_mutex_lock(&t->mu);
	int last = in->nopen > 0 && --in->nopen == 0;
	pthread_mutex_unlock(&t->mu);
	return last;
}

void qfs_itable_release_done(qfs_itable *t, qfs_inode *in)
{
	pthread_mutex_lock(&t->mu);
	if (in->nlookup == 0 && in->nopen == 0)
		drop(t, in);
	pthread_mutex_unlock(&t->mu);
}

uint64_t qfs_itable_find(qfs_itable *t, const char *path)
{
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_path(t, path);
	uint64_t ino = in ? in->ino : 0;
	pthread_mutex_unlock(&t->mu);
	return ino;
}

void qfs_itable_detach(qfs_itable *t, const char *path)
{
	pthread_mutex_lock(&t->mu);
	qfs_inode *in = find_path(t, path);
	if (in && in->ino != QFS_ROOT_INO) {
		path_unlink(t, in);
		in->detached = 1;
	}
	pthread_mutex_unlock(&t->mu);
}

int qfs_itable_rename(qfs_itable *t, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to);
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	qfs_inode *old = find_path(t, to);
	if (old && old->ino != QFS_ROOT_INO) {
		path_unlink(t, old);
		old->detached = 1;
	}
	/* collect the inodes to move first: relinking while walking would
	 * revisit them */
	size_t nmove = 0, cap = 16;
	qfs_inode **mv = malloc(cap * sizeof(*mv));
	if (!mv) {
		rc = -ENOMEM;
		goto out;
	}
	qfs_inode *self = find_path(t, from);
	if (!self || self->type != QFS_T_DIR) {
		/* nothing lives below a file (and a child's inode keeps its
		 * directory's inode): no walk over the table */
		if (self)
			mv[nmove++] = self;
	} else
	for (size_t b = 0; b < t->nbuckets; b++) {
		for (qfs_inode *in = t->by_path[b]; in; in = in->next_path) {
			if (strncmp(in->path, from, fl) != 0 ||
			    (in->path[fl] != 0 && in->path[fl] != '/'))
				continue;
			if (nmove == cap) {
				qfs_inode **nm = realloc(mv, cap * 2 * sizeof(*mv));
				if (!nm) {
					rc = -ENOMEM;
					goto out;
				}
				mv = nm;
				cap *= 2;
			}
			mv[nmove++] = in;
		}
	}
	for (size_t i = 0; i < nmove; i++) {
		qfs_inode *in = mv[i];
		size_t rest = strlen(in->path) - fl;
		char *np = malloc(tl + rest + 1);
		if (!np) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(np, to, tl);
		memcpy(np + tl, in->path + fl, rest + 1);
		path_unlink(t, in);
		free(in->path);
		in->path = np;
		path_link(t, in);
	}
out:
	free(mv);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

size_t qfs_itable_count(qfs_itable *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

void qfs_itable_each(qfs_itable *t, void (*fn)(qfs_inode *, void *), void *arg)
{
	pthread_mutex_lock(&t->mu);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (qfs_inode *in = t->by_ino[b]; in; in = in->next_ino)
			fn(in, arg);
	pthread_mutex_unlock(&t->mu);
}

int qfs_path_join(const char *parent, const char *name, char *buf, size_t cap)
{
	size_t pl = strlen(parent), nl = strlen(name);
	int root = pl == 1 && parent[0] == '/';
	size_t need = (root ? 1 : pl + 1) + nl + 1;
	if (need > cap || need - 1 > QFS_PATH_MAX)
		return -ENAMETOOLONG;
	if (root) {
		buf[0] = '/';
		memcpy(buf + 1, name, nl + 1);
	} else {
		memcpy(buf, parent, pl);
		buf[pl] = '/';
		memcpy(buf + pl + 1, name, nl + 1);
	}
	return 0;
}

const char *qfs_path_split(const char *path, char *parent, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash || cap < 2) {
		if (cap)
			parent[0] = 0;
		return path;
	}
	size_t pl = (size_t)(slash - path);
	if (pl == 0) {
		strcpy(parent, "/");
	} else {
		if (pl >= cap)
			pl = cap - 1;
		memcpy(parent, path, pl);
		parent[pl] = 0;
	}
	return slash + 1;
}
