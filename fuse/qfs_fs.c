/*
 * qfs_fs.c - filesystem operations over the key-value client (see qfs_fs.h).
 *
 * Design notes
 *
 *  1. A "view" is one read of a key decoded: every live sibling as a qfs_obj,
 *     directory siblings merged into one, and the display order of the rest
 *     (qfs_conflict.h). cand[0] is what the name shows; cand[k >= 1] are the
 *     conflict files. A view also owns the raw object with the causal
 *     context that the next write of the key carries.
 *
 *  2. Writing the shown version (view_store) must leave the other siblings
 *     in place, but a context covers all of them. So the others are first
 *     re-written as blind siblings (same bytes, new dots), then the new
 *     version goes out with the context that was read, replacing exactly the
 *     old copies. A crash between the two steps leaves extra copies (which
 *     show as duplicate conflict files), never a loss.
 *
 *  3. Inode state (qfs_ist, hung on qfs_inode.state, guarded by its lock):
 *     the last view of the key and when it was fetched, a working copy of
 *     the shown object, dirty flags and chunk buffers of open files, and for
 *     directories the last dot counter this mount used there.
 *
 *  4. Order of writes: a new name's object is written before its directory
 *     entry; a removed name's entry goes before its object. A crash between
 *     leaves an object no directory lists (invisible), never an entry
 *     without an object... except when the object's delete fails after the
 *     entry went; listings skip entries whose object is missing.
 *
 *  5. Directory changes are write-behind: an entry added or removed changes
 *     the inode's working copy at once (this mount sees it), and a flusher
 *     thread stores each changed directory every QFS_DIR_FLUSH_MS, so a
 *     burst of creates in one directory costs a few stores of it, not one
 *     per create. A changed directory's inode is pinned (an open count)
 *     until stored. fsyncdir, rmdir/rename of it, and unmount store it at
 *     once. Other mounts see the change after the flush (well within the
 *     entry timeout); a crash loses at most that window of entries (their
 *     objects stay, unlisted).
 *
 *  6. A lookup reads a key without holding the inode's lock, then installs
 *     the version it read. A store or install that happened in between is
 *     newer: each takes a number from fs->seq, the lookup takes one before
 *     reading, and installs only if its number is the larger.
 *
 *  7. Sequential writes are pipelined: a chunk buffer that a write fills to
 *     its end goes to a writer thread (conf.writers of them) while the FUSE
 *     thread takes the next request. The file's inode is pinned and its
 *     state counts the chunk as pending: reads, truncates, flushes and a
 *     write that touches a pending chunk wait for it; the writer records
 *     the chunk reference (or, on failure, puts the bytes back as a dirty
 *     buffer for the next flush to retry).
 *
 *  8. Sequential reads are read ahead: a read that goes on from the chunk
 *     the previous read ended in queues fetches of the next ra_chunks()
 *     chunks to the same threads (only while their queue is at most half
 *     full, so writes always find room). Every chunk fetch of a file, by a
 *     reader or a readahead, is listed in its state while in flight, and a
 *     reader that needs a listed chunk waits for it instead of fetching it
 *     again (kernel readahead sends several reads of one chunk at once). A
 *     fetched chunk becomes a clean buffer only if the file still refers to
 *     the same chunk id there and no write buffer or chunk write holds that
 *     index; otherwise it is dropped.
 *
 * Thread safety: see qfs_fs.h for the lock order. The flusher takes a
 * directory's inode lock like any operation; dirty_mu is taken under inode
 * locks and never held while taking one.
 */
#include "fuse/qfs_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fuse/qfs_conflict.h"
#include "fuse/qfs_format.h"
#include "fuse/qfs_gc.h"
#include "fuse/qfs_inode.h"
#include "fuse/qfs_obj.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define LOGC "qfs"
#define KEYMAX (QFS_PATH_MAX + 8)
#define MGET_BATCH 256
#define KNOWN_CHUNKS 4096
#define QFS_DIR_FLUSH_MS 20
#define QFS_MAX_PENDING 8 /* chunk writes in flight per file */
#define QFS_MAX_JOBS 8    /* chunk writes queued for the writer threads */
#define QFS_WRITERS_MAX 8
#define QFS_READAHEAD 4   /* chunks fetched ahead of a sequential reader, */
#define QFS_READAHEAD_BYTES (8u << 20) /* ... and at most this many bytes */
#define QFS_MAX_FETCH 8   /* chunk reads in flight per file */

/* ------------------------------------------------------------------ */
/* Types                                                                */

typedef struct qfs_view {
	qc_object raw;
	size_t nobj;
	qfs_obj *objs;   /* decoded live siblings (dirs included) */
	size_t *sibidx;  /* raw.sib index of objs[i] */
	qfs_obj merged;  /* all directory siblings merged */
	int has_dir;
	size_t ncand;
	qfs_cand *cand;  /* display order; index SIZE_MAX = merged */
} qfs_view;

typedef struct cbuf {
	uint64_t idx;
	uint8_t *data; /* chunk_size bytes, zeroes past the file's end */
	int dirty;
	uint64_t tick;
} cbuf;

typedef struct qfs_ist {
	int valid;
	uint64_t fetched_ms;
	qfs_view v;
	qfs_obj obj; /* working copy of the shown version */
	int dirty_meta;
	cbuf *cb;
	size_t ncb;
	uint64_t tick;
	uint64_t dirty_bytes;
	uint64_t dir_floor;
	int queued; /* a directory change waits for the flusher (pinned) */
	uint64_t seq; /* fs sequence number of the last install or store */
	int err; /* a failed background chunk write, reported at flush */
	/* chunk collection rule 3: q_mono_ms of the first chunk stored since
	 * the last store of the object (0: none); unref_queued: on fs->unref */
	uint64_t unref_ms;
	int unref_queued;
	/* chunk writes in flight (design note 7) */
	unsigned npend;
	uint64_t pend_idx[QFS_MAX_PENDING];
	/* chunk reads in flight, by readers or readahead (design note 8) */
	unsigned nfetch;
	uint64_t fetch_idx[QFS_MAX_FETCH];
	uint64_t ra_last; /* the chunk the last read ended in */
	pthread_cond_t cv; /* signalled when one completes */
	pthread_mutex_t *lockp; /* the inode's lock */
} qfs_ist;

typedef struct qfs_job {
	qfs_inode *in;
	uint64_t idx;
	uint8_t *data; /* owned by the job (writes) */
	size_t n;
	int prefetch;     /* a readahead: fetch ref into a clean buffer */
	qfs_chunkref ref; /* prefetch: the chunk to read */
	uint32_t cs;      /* prefetch: the file's chunk size */
} qfs_job;

/* Handles are kept on one list so the fs can free those the kernel never
 * released (an unmount by signal). */
typedef struct qfs_hnode {
	struct qfs_hnode *prev, *next;
	int is_dir;
} qfs_hnode;

typedef struct qfs_fh {
	qfs_hnode link; /* first member */
	qfs_inode *in;
	int flags;
} qfs_fh;

typedef struct qfs_dh {
	qfs_hnode link; /* first member */
	qfs_inode *in;
	char path[QFS_PATH_MAX + 1];
	qfs_dirlist list;
} qfs_dh;

struct qfs_fs {
	qfs_fs_conf c;
	char node_id[QFS_ORIGIN_MAX + 1];
	char *data_dir;
	qc_opts kv;
	qfs_itable *it;
	uint64_t actor;
	uint64_t attr_ms;
	pthread_mutex_t known_mu;
	pthread_mutex_t handles_mu;
	qfs_hnode handles; /* list head */
	/* directory write-behind (design note 5) */
	pthread_mutex_t dirty_mu;
	pthread_cond_t dirty_cv;
	qfs_inode **dirty;
	size_t ndirty, capdirty;
	int stop, flusher_started;
	pthread_t flusher;
	uint64_t seq; /* orders reads against installs (design note 6) */
	/* chunk writer threads */
	pthread_mutex_t jq_mu;
	pthread_cond_t jq_work, jq_space;
	qfs_job jobs[QFS_MAX_JOBS];
	size_t jq_head, jq_len;
	int jq_stop, nwriters;
	pthread_t writers[QFS_WRITERS_MAX];
	uint64_t known[KNOWN_CHUNKS]; /* chunk ids (first 8 bytes) stored lately */
	uint64_t known_ms[KNOWN_CHUNKS]; /* when (q_mono_ms) */
	/* statfs cache */
	pthread_mutex_t space_mu;
	qfs_space space;
	uint64_t space_ms;             /* q_mono_ms of the cached figures; 0: none */
	size_t space_logged;           /* members answered at the last log line */
	/* open files with chunks stored ahead of their object (rule 3 of
	 * chunk collection), each pinned; under dirty_mu */
	qfs_inode **unref;
	size_t nunref, capunref;
	uint64_t unref_max_ms;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

int qfs_errno(int rc)
{
	if (rc >= 0)
		return 0;
	if (rc > -4096)
		return rc;
	switch (rc) {
	case Q_ENOTFOUND: return -ENOENT;
	case Q_ETOOBIG: return -EFBIG;
	default: return -EIO;
	}
}

static int64_t now_ns(void)
{
	return (int64_t)q_wall_ns();
}

static uint64_t next_seq(qfs_fs *fs)
{
	return __atomic_add_fetch(&fs->seq, 1, __ATOMIC_SEQ_CST);
}

static void key_of(const char *path, char *key)
{
	memcpy(key, QFS_KEY_META, 2);
	strcpy(key + 2, path);
}

static void view_init(qfs_view *v)
{
	memset(v, 0, sizeof(*v));
	qc_object_init(&v->raw);
	qfs_obj_init(&v->merged);
}

static void view_free(qfs_view *v)
{
	for (size_t i = 0; i < v->nobj; i++)
		qfs_obj_free(&v->objs[i]);
	free(v->objs);
	free(v->sibidx);
	free(v->cand);
	qfs_obj_free(&v->merged);
	qc_object_free(&v->raw);
	view_init(v);
}

static const qfs_obj *view_obj(const qfs_view *v, size_t k)
{
	size_t i = v->cand[k].index;
	return i == SIZE_MAX ? &v->merged : &v->objs[i];
}

static const qfs_obj *view_shown(const qfs_view *v)
{
	return v->ncand ? view_obj(v, 0) : NULL;
}

/* Decodes raw (already in v->raw) into the rest of the view. -ENOENT if no
 * live sibling decodes. */
static int view_build(qfs_view *v, const char *what)
{
	size_t live = qc_object_live(&v->raw);
	int rc = 0;
	if (live == 0)
		return -ENOENT;
	v->objs = calloc(live, sizeof(qfs_obj));
	v->sibidx = calloc(live, sizeof(size_t));
	v->cand = calloc(live + 1, sizeof(qfs_cand));
	if (!v->objs || !v->sibidx || !v->cand)
		return -ENOMEM;
	for (size_t i = 0; i < v->raw.nsib; i++) {
		const qc_sibling *s = &v->raw.sib[i];
		if (s->deleted)
			continue;
		qfs_obj *o = &v->objs[v->nobj];
		rc = qfs_obj_decode(s->value.p, s->value.n, o);
		if (rc) {
			Q_WARN(LOGC, "%s: sibling %s:%" PRIu64 " does not decode (%s); ignored", what,
			       s->node, s->counter, q_strerror(rc));
			continue;
		}
		v->sibidx[v->nobj++] = i;
	}
	if (v->nobj == 0)
		return -EIO;
	for (size_t i = 0; i < v->nobj; i++) {
		if (v->objs[i].type != QFS_T_DIR)
			continue;
		if (!v->has_dir) {
			rc = qfs_obj_copy(&v->merged, &v->objs[i]);
			if (rc)
				return rc;
			v->has_dir = 1;
		} else {
			rc = qfs_dir_merge(&v->merged, &v->objs[i]);
			if (rc)
				return rc;
		}
	}
	size_t n = 0;
	if (v->has_dir) {
		v->cand[n].mtime_ns = INT64_MAX; /* the directory keeps the name */
		v->cand[n].node = "";
		v->cand[n].origin = "";
		v->cand[n].index = SIZE_MAX;
		n++;
	}
	for (size_t i = 0; i < v->nobj; i++) {
		if (v->objs[i].type == QFS_T_DIR)
			continue;
		const qc_sibling *s = &v->raw.sib[v->sibidx[i]];
		v->cand[n].mtime_ns = v->objs[i].mtime_ns;
		v->cand[n].node = s->node;
		v->cand[n].counter = s->counter;
		v->cand[n].origin = v->objs[i].origin;
		v->cand[n].index = i;
		n++;
	}
	v->ncand = n;
	qfs_cand_sort(v->cand, n);
	return 0;
}

static int kv_get(qfs_fs *fs, const char *key, qc_object *o)
{
	return qc_get(fs->c.client, q_slice_str(key), &fs->kv, o);
}

/* Reads key into v (fresh). -ENOENT if absent; v->raw keeps any context
 * (tombstones) so a later write supersedes them. */
static int view_load(qfs_fs *fs, const char *key, qfs_view *v)
{
	view_init(v);
	int rc = kv_get(fs, key, &v->raw);
	if (rc == Q_ENOTFOUND)
		return -ENOENT;
	if (rc)
		return qfs_errno(rc);
	rc = view_build(v, key);
	if (rc == -ENOENT)
		return rc;
	return rc;
}

/* Re-builds v from the object a put returned. */
static int view_from_put(qfs_view *v, qc_object *out, const char *key)
{
	view_free(v);
	v->raw = *out;
	qc_object_init(out);
	return view_build(v, key);
}

/* Writes nobj as the new shown version of key (design note 2). skip_k: a
 * conflict candidate to drop (0 = none). On success v holds the new state. */
static int view_store(qfs_fs *fs, const char *key, qfs_view *v, const qfs_obj *nobj, size_t skip_k)
{
	q_buf val = Q_BUF_INIT;
	qc_object out;
	int rc;
	qc_object_init(&out);
	for (size_t k = 1; k < v->ncand; k++) {
		if (k == skip_k)
			continue;
		size_t i = v->cand[k].index;
		if (i == SIZE_MAX)
			continue;
		const qc_sibling *s = &v->raw.sib[v->sibidx[i]];
		rc = qc_put(fs->c.client, q_slice_str(key), q_slice_make(NULL, 0), s->value, &fs->kv,
			    NULL);
		if (rc)
			goto fail;
	}
	rc = qfs_obj_encode(nobj, &val);
	if (rc)
		goto fail;
	rc = qc_put(fs->c.client, q_slice_str(key), q_buf_slice(&v->raw.context), q_buf_slice(&val),
		    &fs->kv, &out);
	if (rc)
		goto fail;
	q_buf_free(&val);
	if (out.nsib == 0) {
		/* the implementation gave no object back: read it */
		qc_object_free(&out);
		view_free(v);
		rc = view_load(fs, key, v);
		return rc;
	}
	rc = view_from_put(v, &out, key);
	return rc;
fail:
	q_buf_free(&val);
	qc_object_free(&out);
	return qfs_errno(rc);
}

/* Deletes key with the context of v. */
static int view_delete(qfs_fs *fs, const char *key, qfs_view *v)
{
	int rc = qc_del(fs->c.client, q_slice_str(key), q_buf_slice(&v->raw.context), &fs->kv);
	if (rc == Q_ENOTFOUND)
		rc = 0;
	return qfs_errno(rc);
}

static void obj_to_stat(const qfs_obj *o, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = o->mode;
	st->st_nlink = o->type == QFS_T_DIR ? 2 : 1;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_rdev = o->rdev;
	st->st_size = o->type == QFS_T_DIR ? 4096 : (off_t)o->size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_atim.tv_sec = o->atime_ns / 1000000000;
	st->st_atim.tv_nsec = o->atime_ns % 1000000000;
	st->st_mtim.tv_sec = o->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = o->mtime_ns % 1000000000;
	st->st_ctim.tv_sec = o->ctime_ns / 1000000000;
	st->st_ctim.tv_nsec = o->ctime_ns % 1000000000;
	if (st->st_atim.tv_nsec < 0) {
		st->st_atim.tv_nsec += 1000000000;
		st->st_atim.tv_sec--;
	}
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_nsec += 1000000000;
		st->st_mtim.tv_sec--;
	}
	if (st->st_ctim.tv_nsec < 0) {
		st->st_ctim.tv_nsec += 1000000000;
		st->st_ctim.tv_sec--;
	}
}

/* ------------------------------------------------------------------ */
/* Inode state                                                          */

static void ist_drop_bufs(qfs_ist *s)
{
	for (size_t i = 0; i < s->ncb; i++)
		free(s->cb[i].data);
	free(s->cb);
	s->cb = NULL;
	s->ncb = 0;
	s->dirty_bytes = 0;
}

static void ist_free(void *p)
{
	qfs_ist *s = p;
	if (!s)
		return;
	view_free(&s->v);
	qfs_obj_free(&s->obj);
	ist_drop_bufs(s);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* The inode's state, created empty if absent; in->lock held. */
static qfs_ist *ist_of(qfs_inode *in)
{
	if (!in->state) {
		qfs_ist *s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		view_init(&s->v);
		qfs_obj_init(&s->obj);
		pthread_cond_init(&s->cv, NULL);
		s->lockp = &in->lock;
		in->state = s;
	}
	return in->state;
}

static int pending_has(const qfs_ist *s, uint64_t idx)
{
	for (unsigned i = 0; i < s->npend; i++)
		if (s->pend_idx[i] == idx)
			return 1;
	return 0;
}

static int fetch_has(const qfs_ist *s, uint64_t idx)
{
	for (unsigned i = 0; i < s->nfetch; i++)
		if (s->fetch_idx[i] == idx)
			return 1;
	return 0;
}

/* Lists idx as being fetched; 0 if the list is full (not listed). */
static int fetch_add(qfs_ist *s, uint64_t idx)
{
	if (s->nfetch >= QFS_MAX_FETCH)
		return 0;
	s->fetch_idx[s->nfetch++] = idx;
	return 1;
}

static void fetch_del(qfs_ist *s, uint64_t idx)
{
	for (unsigned i = 0; i < s->nfetch; i++)
		if (s->fetch_idx[i] == idx) {
			s->fetch_idx[i] = s->fetch_idx[--s->nfetch];
			break;
		}
	pthread_cond_broadcast(&s->cv);
}

/* Waits until no chunk write of this file is in flight; lock held. */
static void wait_pending(qfs_ist *s)
{
	while (s->npend)
		pthread_cond_wait(&s->cv, s->lockp);
}

static int ist_dirty(const qfs_ist *s)
{
	if (s->dirty_meta || s->npend)
		return 1;
	for (size_t i = 0; i < s->ncb; i++)
		if (s->cb[i].dirty)
			return 1;
	return 0;
}

/* Installs view v (taken over) as the inode's current version and resets
 * the working copy to its shown object (or to conflict candidate k for
 * conflict inodes). */
static int ist_set_view(qfs_fs *fs, qfs_ist *s, qfs_view *v, size_t k)
{
	s->seq = next_seq(fs);
	view_free(&s->v);
	s->v = *v;
	view_init(v);
	s->valid = 1;
	s->fetched_ms = q_mono_ms();
	qfs_obj_free(&s->obj);
	if (k >= s->v.ncand)
		return -ENOENT;
	return qfs_obj_copy(&s->obj, view_obj(&s->v, k));
}

/* Finds which candidate of v a conflict name denotes; 0 if none. */
static size_t conflict_index(const qfs_view *v, const char *base, const char *name)
{
	char cn[QFS_NAME_MAX + 1];
	for (size_t k = 1; k < v->ncand; k++)
		if (qfs_conflict_name(base, v->cand, v->ncand, k, cn) == 0 && strcmp(cn, name) == 0)
			return k;
	return 0;
}

/* For a conflict inode's path: its base path and the candidate index in a
 * fresh view. Fills v. */
static int conflict_resolve(qfs_fs *fs, const char *path, char *base_path, qfs_view *v, size_t *k)
{
	char parent[QFS_PATH_MAX + 1], key[KEYMAX];
	char (*bases)[QFS_NAME_MAX + 1] = malloc(8 * (QFS_NAME_MAX + 1));
	if (!bases)
		return -ENOMEM;
	const char *name = qfs_path_split(path, parent, sizeof(parent));
	size_t nb = qfs_conflict_bases(name, bases, 8);
	int rc = -ENOENT;
	for (size_t i = 0; i < nb; i++) {
		if (qfs_path_join(parent, bases[i], base_path, QFS_PATH_MAX + 1))
			continue;
		key_of(base_path, key);
		rc = view_load(fs, key, v);
		if (rc == 0) {
			*k = conflict_index(v, bases[i], name);
			if (*k) {
				free(bases);
				return 0;
			}
			rc = -ENOENT;
		}
		view_free(v);
		if (rc != -ENOENT)
			break;
	}
	free(bases);
	return rc;
}

/* Makes sure the inode's state holds a version no older than the attribute
 * timeout (or fresh if force); in->lock held. Does not drop dirty data. */
static int ist_refresh(qfs_fs *fs, qfs_inode *in, qfs_ist *s, const char *path, int force)
{
	if (s->valid && ist_dirty(s))
		return 0; /* our unstored changes are the newest we know */
	if (s->valid && !force && q_mono_ms() - s->fetched_ms < fs->attr_ms)
		return 0;
	qfs_view v;
	int rc;
	size_t k = 0;
	if (in->conflict) {
		char base[QFS_PATH_MAX + 1];
		rc = conflict_resolve(fs, path, base, &v, &k);
	} else {
		char key[KEYMAX];
		key_of(path, key);
		rc = view_load(fs, key, &v);
	}
	if (rc) {
		view_free(&v);
		return rc;
	}
	ist_drop_bufs(s);
	rc = ist_set_view(fs, s, &v, k);
	view_free(&v);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Chunks                                                               */

/* Whether chunk id was stored by this mount less than QFS_CHUNK_REPUT_MS
 * ago (then a write of the same bytes may skip the put); add records a put
 * made now. Past that age the chunk is put again, which renews its write
 * time: the contract a chunk collector relies on (docs/filesystem.md). */
static int known_chunk(qfs_fs *fs, const uint8_t *id, int add)
{
	uint64_t h, now = q_mono_ms();
	memcpy(&h, id, 8);
	if (h == 0)
		h = 1;
	size_t slot = (size_t)(h % KNOWN_CHUNKS);
	pthread_mutex_lock(&fs->known_mu);
	int hit = fs->known[slot] == h && now - fs->known_ms[slot] < QFS_CHUNK_REPUT_MS;
	if (add) {
		fs->known[slot] = h;
		fs->known_ms[slot] = now;
	}
	pthread_mutex_unlock(&fs->known_mu);
	return hit;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Stores one chunk's bytes; fills ref. */
static int chunk_put(qfs_fs *fs, const uint8_t *data, size_t n, qfs_chunkref *ref)
{
	char key[QFS_CHUNK_KEY_LEN + 1];
	if (all_zero(data, n)) {
		memset(ref, 0, sizeof(*ref));
		ref->kind = QFS_CHUNK_HOLE;
		return 0;
	}
	ref->kind = QFS_CHUNK_DATA;
	qfs_chunk_id(data, n, ref->id);
	if (known_chunk(fs, ref->id, 0))
		return 0;
	qfs_chunk_key(ref->id, key);
	qc_object out;
	qc_object_init(&out);
	int rc = qc_put(fs->c.client, q_slice_str(key), q_slice_make(NULL, 0), q_slice_make(data, n),
			&fs->kv, &out);
	if (rc == 0 && out.nsib > 1) {
		/* the same content was stored before: fold the duplicates */
		rc = qc_put(fs->c.client, q_slice_str(key), q_buf_slice(&out.context),
			    q_slice_make(data, n), &fs->kv, NULL);
	}
	qc_object_free(&out);
	if (rc)
		return qfs_errno(rc);
	known_chunk(fs, ref->id, 1);
	return 0;
}

/* Reads chunk ref into buf (cs bytes, zero-filled past the stored length). */
static int chunk_get(qfs_fs *fs, const qfs_chunkref *ref, uint8_t *buf, uint32_t cs)
{
	char key[QFS_CHUNK_KEY_LEN + 1];
	if (ref->kind == QFS_CHUNK_HOLE) {
		memset(buf, 0, cs);
		return 0;
	}
	qfs_chunk_key(ref->id, key);
	qc_object o;
	qc_object_init(&o);
	int rc = kv_get(fs, key, &o);
	if (rc) {
		qc_object_free(&o);
		Q_WARN(LOGC, "chunk %s: %s", key, q_strerror(rc));
		return rc == Q_ENOTFOUND ? -EIO : qfs_errno(rc);
	}
	rc = -EIO;
	for (size_t i = 0; i < o.nsib; i++) {
		const qc_sibling *s = &o.sib[i];
		uint8_t id[QFS_CHUNK_ID_LEN];
		if (s->deleted || s->value.n > cs)
			continue;
		qfs_chunk_id(s->value.p, s->value.n, id);
		if (memcmp(id, ref->id, QFS_CHUNK_ID_LEN) != 0)
			continue;
		memcpy(buf, s->value.p, s->value.n);
		memset(buf + s->value.n, 0, cs - s->value.n); /* past the stored end */
		rc = 0;
		break;
	}
	if (rc)
		Q_ERROR(LOGC, "chunk %s: no sibling matches its content hash", key);
	qc_object_free(&o);
	return rc;
}

static cbuf *cb_find(qfs_ist *s, uint64_t idx)
{
	for (size_t i = 0; i < s->ncb; i++)
		if (s->cb[i].idx == idx) {
			s->cb[i].tick = ++s->tick;
			return &s->cb[i];
		}
	return NULL;
}

/* Like cb_find, without counting as a use. */
static const cbuf *cb_peek(const qfs_ist *s, uint64_t idx)
{
	for (size_t i = 0; i < s->ncb; i++)
		if (s->cb[i].idx == idx)
			return &s->cb[i];
	return NULL;
}

static void cb_remove(qfs_ist *s, size_t i)
{
	free(s->cb[i].data);
	s->cb[i] = s->cb[--s->ncb];
}

/* Chunks read ahead for chunk size cs: QFS_READAHEAD, fewer for large
 * chunks (at least one). */
static uint64_t ra_chunks(uint32_t cs)
{
	uint64_t n = cs ? QFS_READAHEAD_BYTES / cs : 1;
	return n < 1 ? 1 : n > QFS_READAHEAD ? QFS_READAHEAD : n;
}

/* Clean chunk buffers kept per file: the readahead window and two more
 * (the chunk being read and the one before), at least 4. */
static size_t clean_max(uint32_t cs)
{
	size_t n = (size_t)ra_chunks(cs) + 2;
	return n < 4 ? 4 : n;
}

/* Evicts clean buffers beyond clean_max, least recently used first. */
static void cb_trim(qfs_ist *s)
{
	for (;;) {
		size_t clean = 0, lru = SIZE_MAX;
		for (size_t i = 0; i < s->ncb; i++) {
			if (s->cb[i].dirty)
				continue;
			clean++;
			if (lru == SIZE_MAX || s->cb[i].tick < s->cb[lru].tick)
				lru = i;
		}
		if (clean <= clean_max(s->obj.chunk_size))
			return;
		cb_remove(s, lru);
	}
}

/* The buffer of chunk idx, loaded from the store unless fill is 0 (the
 * caller overwrites it whole). */
static int cb_get(qfs_fs *fs, qfs_ist *s, uint64_t idx, int fill, cbuf **out)
{
	cbuf *b = cb_find(s, idx);
	if (b) {
		*out = b;
		return 0;
	}
	while (pending_has(s, idx)) /* its bytes are on their way to the store */
		pthread_cond_wait(&s->cv, s->lockp);
	uint32_t cs = s->obj.chunk_size;
	uint8_t *data = malloc(cs);
	if (!data)
		return -ENOMEM;
	if (fill && idx < s->obj.nchunks) {
		int rc = chunk_get(fs, &s->obj.chunks[idx], data, cs);
		if (rc) {
			free(data);
			return rc;
		}
	} else {
		memset(data, 0, cs);
	}
	cbuf *nb = realloc(s->cb, (s->ncb + 1) * sizeof(cbuf));
	if (!nb) {
		free(data);
		return -ENOMEM;
	}
	s->cb = nb;
	b = &s->cb[s->ncb++];
	b->idx = idx;
	b->data = data;
	b->dirty = 0;
	b->tick = ++s->tick;
	*out = b;
	return 0;
}

/* Writes every dirty chunk buffer and records the references. */
static void note_unref(qfs_fs *fs, qfs_inode *in, qfs_ist *s);

static int flush_chunks(qfs_fs *fs, qfs_inode *in, qfs_ist *s)
{
	wait_pending(s);
	if (s->obj.type != QFS_T_REG || s->obj.layout != QFS_LAYOUT_CHUNKED)
		return 0;
	uint32_t cs = s->obj.chunk_size;
	for (size_t i = 0; i < s->ncb; i++) {
		cbuf *b = &s->cb[i];
		if (!b->dirty)
			continue;
		if (b->idx >= s->obj.nchunks) { /* truncated away */
			b->dirty = 0;
			continue;
		}
		uint64_t start = b->idx * cs;
		size_t n = (size_t)(s->obj.size - start < cs ? s->obj.size - start : cs);
		int rc = chunk_put(fs, b->data, n, &s->obj.chunks[b->idx]);
		if (rc)
			return rc;
		b->dirty = 0;
		s->dirty_meta = 1;
		if (s->obj.chunks[b->idx].kind == QFS_CHUNK_DATA)
			note_unref(fs, in, s);
	}
	s->dirty_bytes = 0;
	cb_trim(s);
	return 0;
}

/* Turns an inline file into a chunked one (all data into dirty buffers). */
static int to_chunked(qfs_fs *fs, qfs_ist *s)
{
	qfs_obj *o = &s->obj;
	uint64_t size = o->size;
	uint8_t *data = o->inline_data;
	uint32_t cs = fs->c.chunk_size;
	o->inline_data = NULL;
	o->layout = QFS_LAYOUT_CHUNKED;
	o->chunk_size = cs;
	o->nchunks = 0;
	o->size = 0;
	int rc = qfs_obj_set_chunked_size(o, size);
	for (uint64_t off = 0; rc == 0 && off < size; off += cs) {
		cbuf *b;
		rc = cb_get(fs, s, off / cs, 0, &b);
		if (rc == 0) {
			memcpy(b->data, data + off, (size_t)(size - off < cs ? size - off : cs));
			b->dirty = 1;
		}
	}
	free(data);
	return rc;
}

/* Resizes the working copy of a regular file (truncate). */
static int set_size(qfs_fs *fs, qfs_ist *s, uint64_t size)
{
	qfs_obj *o = &s->obj;
	wait_pending(s);
	if (size > QFS_FILE_SIZE_MAX)
		return -EFBIG;
	if (o->layout == QFS_LAYOUT_INLINE) {
		if (size <= fs->c.inline_max) {
			uint8_t *nd = realloc(o->inline_data, size ? size : 1);
			if (!nd)
				return -ENOMEM;
			if (size > o->size)
				memset(nd + o->size, 0, size - o->size);
			o->inline_data = nd;
			o->size = size;
			return 0;
		}
		Q_RET(to_chunked(fs, s));
	}
	if (size == 0) {
		ist_drop_bufs(s);
		free(o->chunks);
		o->chunks = NULL;
		o->nchunks = 0;
		o->chunk_size = 0;
		o->layout = QFS_LAYOUT_INLINE;
		free(o->inline_data);
		o->inline_data = NULL;
		o->size = 0;
		return 0;
	}
	uint32_t cs = o->chunk_size;
	if (size < o->size && size % cs) {
		/* the new last chunk: zero its tail so a later extension reads 0 */
		cbuf *b;
		Q_RET(cb_get(fs, s, size / cs, 1, &b));
		memset(b->data + size % cs, 0, cs - size % cs);
		b->dirty = 1;
	}
	for (size_t i = 0; i < s->ncb;) {
		if (s->cb[i].idx >= qfs_chunks_for(size, cs))
			cb_remove(s, i);
		else
			i++;
	}
	return qfs_obj_set_chunked_size(o, size);
}

/* ------------------------------------------------------------------ */
/* Pipelined chunk writes (design note 7)                               */

/* A readahead job (design note 8): fetches the chunk, keeps it as a clean
 * buffer if the file still wants it, unpins the inode. */
static void prefetch_run(qfs_fs *fs, qfs_job *j)
{
	uint8_t *data = malloc(j->cs);
	int rc = data ? chunk_get(fs, &j->ref, data, j->cs) : -ENOMEM;
	pthread_mutex_lock(&j->in->lock);
	qfs_ist *st = j->in->state;
	fetch_del(st, j->idx);
	const qfs_obj *o = &st->obj;
	if (rc == 0 && st->valid && o->type == QFS_T_REG && o->layout == QFS_LAYOUT_CHUNKED &&
	    o->chunk_size == j->cs && j->idx < o->nchunks &&
	    memcmp(&o->chunks[j->idx], &j->ref, sizeof(j->ref)) == 0 && !cb_peek(st, j->idx) &&
	    !pending_has(st, j->idx)) {
		cbuf *nb = realloc(st->cb, (st->ncb + 1) * sizeof(cbuf));
		if (nb) {
			st->cb = nb;
			nb[st->ncb].idx = j->idx;
			nb[st->ncb].data = data;
			nb[st->ncb].dirty = 0;
			nb[st->ncb].tick = ++st->tick;
			st->ncb++;
			data = NULL;
			cb_trim(st);
		}
	}
	free(data); /* failed, or changed meanwhile: a read fetches it itself */
	pthread_mutex_unlock(&j->in->lock);
	if (qfs_itable_release(fs->it, j->in)) {
		/* the file was closed meanwhile: keep the version, not the data */
		pthread_mutex_lock(&j->in->lock);
		if (j->in->state && !ist_dirty(j->in->state))
			ist_drop_bufs(j->in->state);
		pthread_mutex_unlock(&j->in->lock);
		qfs_itable_release_done(fs->it, j->in);
	}
}

/* Queues readahead of the chunks after chunk last of an open file whose
 * reads go on sequentially (design note 8); in->lock held. Never waits: a
 * busy queue or a full fetch list just means less readahead. */
static void readahead_queue(qfs_fs *fs, qfs_inode *in, qfs_ist *s, uint64_t last)
{
	const qfs_obj *o = &s->obj;
	if (!fs->nwriters || o->type != QFS_T_REG || o->layout != QFS_LAYOUT_CHUNKED)
		return;
	for (uint64_t j = last + 1; j <= last + ra_chunks(o->chunk_size) && j < o->nchunks; j++) {
		if (o->chunks[j].kind != QFS_CHUNK_DATA || fetch_has(s, j) || pending_has(s, j) ||
		    cb_peek(s, j))
			continue;
		if (s->nfetch >= QFS_MAX_FETCH)
			return;
		pthread_mutex_lock(&fs->jq_mu);
		if (fs->jq_stop || fs->jq_len > QFS_MAX_JOBS / 2) {
			pthread_mutex_unlock(&fs->jq_mu);
			return;
		}
		qfs_job jb = {.in = in, .idx = j, .prefetch = 1, .ref = o->chunks[j],
			      .cs = o->chunk_size};
		fetch_add(s, j);
		qfs_itable_open(fs->it, in); /* pinned until the fetch is done */
		fs->jobs[(fs->jq_head + fs->jq_len) % QFS_MAX_JOBS] = jb;
		fs->jq_len++;
		pthread_cond_signal(&fs->jq_work);
		pthread_mutex_unlock(&fs->jq_mu);
	}
}

/* A chunk of the file went to the store ahead of its object: remember
 * since when, and queue the inode for the flusher, which stores the object
 * once that is unref_max_ms old (docs/filesystem.md, "Chunk collection",
 * writer rule 3). in->lock held. */
static void note_unref(qfs_fs *fs, qfs_inode *in, qfs_ist *s)
{
	if (!s->unref_ms)
		s->unref_ms = q_mono_ms();
	if (s->unref_queued)
		return;
	pthread_mutex_lock(&fs->dirty_mu);
	if (fs->nunref == fs->capunref) {
		size_t nc = fs->capunref ? fs->capunref * 2 : 16;
		qfs_inode **nv = realloc(fs->unref, nc * sizeof(*nv));
		if (!nv) {
			/* the next write past unref_max_ms or the close stores it */
			pthread_mutex_unlock(&fs->dirty_mu);
			return;
		}
		fs->unref = nv;
		fs->capunref = nc;
	}
	fs->unref[fs->nunref++] = in;
	s->unref_queued = 1;
	pthread_mutex_unlock(&fs->dirty_mu);
	qfs_itable_open(fs->it, in); /* pinned while queued */
}

static void *writer_main(void *arg)
{
	qfs_fs *fs = arg;
	for (;;) {
		pthread_mutex_lock(&fs->jq_mu);
		while (fs->jq_len == 0 && !fs->jq_stop)
			pthread_cond_wait(&fs->jq_work, &fs->jq_mu);
		if (fs->jq_len == 0) {
			pthread_mutex_unlock(&fs->jq_mu);
			return NULL;
		}
		qfs_job j = fs->jobs[fs->jq_head];
		fs->jq_head = (fs->jq_head + 1) % QFS_MAX_JOBS;
		fs->jq_len--;
		pthread_cond_signal(&fs->jq_space);
		pthread_mutex_unlock(&fs->jq_mu);

		if (j.prefetch) {
			prefetch_run(fs, &j);
			continue;
		}
		qfs_chunkref ref;
		int rc = chunk_put(fs, j.data, j.n, &ref);
		pthread_mutex_lock(&j.in->lock);
		qfs_ist *st = j.in->state;
		if (rc == 0) {
			if (j.idx < st->obj.nchunks) {
				st->obj.chunks[j.idx] = ref;
				st->dirty_meta = 1;
				if (ref.kind == QFS_CHUNK_DATA)
					note_unref(fs, j.in, st);
			}
			free(j.data);
		} else {
			/* keep the bytes: the next flush stores them (or fails) */
			Q_WARN(LOGC, "chunk write of inode %" PRIu64 ": %s (kept for the next flush)",
			       j.in->ino, strerror(-rc));
			cbuf *nb = realloc(st->cb, (st->ncb + 1) * sizeof(cbuf));
			if (nb) {
				st->cb = nb;
				nb[st->ncb].idx = j.idx;
				nb[st->ncb].data = j.data;
				nb[st->ncb].dirty = 1;
				nb[st->ncb].tick = ++st->tick;
				st->ncb++;
			} else {
				free(j.data);
				st->err = -EIO;
			}
		}
		for (unsigned i = 0; i < st->npend; i++)
			if (st->pend_idx[i] == j.idx) {
				st->pend_idx[i] = st->pend_idx[--st->npend];
				break;
			}
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&j.in->lock);
		if (qfs_itable_release(fs->it, j.in))
			qfs_itable_release_done(fs->it, j.in);
	}
}

/* Hands a chunk buffer that a write filled to its end to a writer thread.
 * in->lock held on entry and on return (dropped while the queue is full);
 * the buffer leaves s->cb. */
static void submit_chunk(qfs_fs *fs, qfs_inode *in, qfs_ist *s, uint64_t idx)
{
	while (s->npend >= QFS_MAX_PENDING)
		pthread_cond_wait(&s->cv, &in->lock);
	size_t i;
	for (i = 0; i < s->ncb && s->cb[i].idx != idx; i++)
		;
	if (i == s->ncb || !s->cb[i].dirty)
		return;
	uint32_t cs = s->obj.chunk_size;
	qfs_job j = {.in = in, .idx = idx, .data = s->cb[i].data, .n = cs};
	s->cb[i] = s->cb[--s->ncb]; /* the job owns the bytes now */
	s->dirty_bytes = s->dirty_bytes >= cs ? s->dirty_bytes - cs : 0;
	s->pend_idx[s->npend++] = idx;
	qfs_itable_open(fs->it, in); /* pinned until written */
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&fs->jq_mu);
	while (fs->jq_len == QFS_MAX_JOBS)
		pthread_cond_wait(&fs->jq_space, &fs->jq_mu);
	fs->jobs[(fs->jq_head + fs->jq_len) % QFS_MAX_JOBS] = j;
	fs->jq_len++;
	pthread_cond_signal(&fs->jq_work);
	pthread_mutex_unlock(&fs->jq_mu);
	pthread_mutex_lock(&in->lock);
}

/* ------------------------------------------------------------------ */
/* Flushing a file                                                      */

/* Writes the inode's dirty state to the store; in->lock held. */
static int ist_flush(qfs_fs *fs, qfs_inode *in, qfs_ist *s)
{
	char path[QFS_PATH_MAX + 1], key[KEYMAX];
	wait_pending(s);
	if (!s->valid || !ist_dirty(s))
		return s->err;
	if (in->detached) {
		/* unlinked while open: its data lives only in memory now */
		return 0;
	}
	int rc = qfs_itable_path(fs->it, in->ino, path, sizeof(path), 0);
	if (rc)
		return rc == -ESTALE ? 0 : rc;
	rc = flush_chunks(fs, in, s);
	if (rc)
		return rc;
	key_of(path, key);
	qfs_obj nobj;
	rc = qfs_obj_copy(&nobj, &s->obj);
	if (rc)
		return rc;
	rc = view_store(fs, key, &s->v, &nobj, 0);
	qfs_obj_free(&nobj);
	if (rc)
		return rc;
	s->dirty_meta = 0;
	s->unref_ms = 0; /* every chunk stored so far is named by a stored version */
	s->fetched_ms = q_mono_ms();
	s->seq = next_seq(fs);
	if (s->obj.type == QFS_T_DIR && s->v.has_dir) {
		/* the store may have merged concurrent versions in */
		qfs_obj_free(&s->obj);
		rc = qfs_obj_copy(&s->obj, &s->v.merged);
	}
	return rc;
}

/* Queues a changed directory for the flusher; in->lock held. */
static int dir_mark_dirty(qfs_fs *fs, qfs_inode *in, qfs_ist *s)
{
	s->dirty_meta = 1;
	if (s->queued)
		return 0;
	pthread_mutex_lock(&fs->dirty_mu);
	if (fs->ndirty == fs->capdirty) {
		size_t nc = fs->capdirty ? fs->capdirty * 2 : 64;
		qfs_inode **nd = realloc(fs->dirty, nc * sizeof(*nd));
		if (!nd) {
			pthread_mutex_unlock(&fs->dirty_mu);
			return ist_flush(fs, in, s); /* store it now instead */
		}
		fs->dirty = nd;
		fs->capdirty = nc;
	}
	fs->dirty[fs->ndirty++] = in;
	s->queued = 1;
	pthread_mutex_unlock(&fs->dirty_mu);
	qfs_itable_open(fs->it, in); /* pinned until stored */
	return 0;
}

/* Stores the queued directories; keeps the ones that fail (unless final). */
static void dir_flush_pass(qfs_fs *fs, int final)
{
	pthread_mutex_lock(&fs->dirty_mu);
	qfs_inode **list = fs->dirty;
	size_t n = fs->ndirty;
	fs->dirty = NULL;
	fs->ndirty = fs->capdirty = 0;
	pthread_mutex_unlock(&fs->dirty_mu);
	for (size_t i = 0; i < n; i++) {
		qfs_inode *in = list[i];
		pthread_mutex_lock(&in->lock);
		qfs_ist *s = in->state;
		int rc = s ? ist_flush(fs, in, s) : 0;
		if (rc && !final) {
			Q_WARN(LOGC, "storing directory inode %" PRIu64 ": %s (will retry)", in->ino,
			       strerror(-rc));
			s->queued = 0;
			dir_mark_dirty(fs, in, s); /* re-queued: pinned twice now */
		} else if (rc) {
			Q_ERROR(LOGC, "storing directory inode %" PRIu64 " at unmount: %s", in->ino,
				strerror(-rc));
		}
		if (s)
			s->queued = s->queued && rc && !final;
		pthread_mutex_unlock(&in->lock);
		if (qfs_itable_release(fs->it, in))
			qfs_itable_release_done(fs->it, in);
	}
	free(list);
}

/* Stores the object of every queued file whose first unreferenced chunk is
 * unref_max_ms old (all of them when final); unpins the files that have
 * none left. */
static void unref_pass(qfs_fs *fs, int final)
{
	pthread_mutex_lock(&fs->dirty_mu);
	qfs_inode **list = fs->unref;
	size_t n = fs->nunref;
	fs->unref = NULL;
	fs->nunref = fs->capunref = 0;
	pthread_mutex_unlock(&fs->dirty_mu);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		qfs_inode *in = list[i];
		pthread_mutex_lock(&in->lock);
		qfs_ist *s = in->state;
		int keep = 0;
		if (s && s->valid && s->unref_ms && !in->detached) {
			if (final || q_mono_ms() - s->unref_ms >= fs->unref_max_ms) {
				int rc = ist_flush(fs, in, s);
				if (rc)
					Q_WARN(LOGC, "storing inode %" PRIu64 " (its chunks are older "
						     "than %" PRIu64 " ms): %s", in->ino,
					       fs->unref_max_ms, strerror(-rc));
			}
			keep = s->unref_ms != 0 && !final;
		}
		if (s && !keep)
			s->unref_queued = 0;
		pthread_mutex_unlock(&in->lock);
		if (keep) {
			list[kept++] = in;
		} else if (qfs_itable_release(fs->it, in)) {
			qfs_itable_release_done(fs->it, in);
		}
	}
	if (kept) {
		pthread_mutex_lock(&fs->dirty_mu);
		size_t need = fs->nunref + kept;
		if (need > fs->capunref) {
			qfs_inode **nv = realloc(fs->unref, need * sizeof(*nv));
			if (nv) {
				fs->unref = nv;
				fs->capunref = need;
			}
		}
		if (need <= fs->capunref) {
			memcpy(fs->unref + fs->nunref, list, kept * sizeof(*list));
			fs->nunref = need;
			kept = 0;
		}
		pthread_mutex_unlock(&fs->dirty_mu);
		for (size_t i = 0; i < kept; i++) { /* no room: unqueue them */
			pthread_mutex_lock(&list[i]->lock);
			if (list[i]->state)
				((qfs_ist *)list[i]->state)->unref_queued = 0;
			pthread_mutex_unlock(&list[i]->lock);
			if (qfs_itable_release(fs->it, list[i]))
				qfs_itable_release_done(fs->it, list[i]);
		}
	}
	free(list);
}

static void *flusher_main(void *arg)
{
	qfs_fs *fs = arg;
	uint64_t unref_check = q_mono_ms();
	pthread_mutex_lock(&fs->dirty_mu);
	while (!fs->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += QFS_DIR_FLUSH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&fs->dirty_cv, &fs->dirty_mu, &ts);
		if (fs->stop)
			continue;
		uint64_t now = q_mono_ms();
		if (fs->nunref && now - unref_check >= fs->unref_max_ms / 4) {
			unref_check = now;
			pthread_mutex_unlock(&fs->dirty_mu);
			unref_pass(fs, 0);
			pthread_mutex_lock(&fs->dirty_mu);
		}
		if (fs->ndirty == 0 || fs->stop)
			continue;
		pthread_mutex_unlock(&fs->dirty_mu);
		dir_flush_pass(fs, 0);
		pthread_mutex_lock(&fs->dirty_mu);
	}
	pthread_mutex_unlock(&fs->dirty_mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                             */

static void handle_add(qfs_fs *fs, qfs_hnode *h)
{
	pthread_mutex_lock(&fs->handles_mu);
	h->next = fs->handles.next;
	h->prev = &fs->handles;
	fs->handles.next->prev = h;
	fs->handles.next = h;
	pthread_mutex_unlock(&fs->handles_mu);
}

static void handle_del(qfs_fs *fs, qfs_hnode *h)
{
	pthread_mutex_lock(&fs->handles_mu);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_mu);
}

static int ensure_root(qfs_fs *fs)
{
	char key[8];
	qfs_view v;
	key_of("/", key);
	int rc = view_load(fs, key, &v);
	if (rc == 0 && v.has_dir) {
		view_free(&v);
		return 0;
	}
	if (rc != 0 && rc != -ENOENT) {
		view_free(&v);
		return rc;
	}
	qfs_obj root;
	qfs_obj_init(&root);
	root.type = QFS_T_DIR;
	root.mode = S_IFDIR | 0755;
	root.uid = getuid();
	root.gid = getgid();
	root.atime_ns = root.mtime_ns = root.ctime_ns = now_ns();
	snprintf(root.origin, sizeof(root.origin), "%s", fs->node_id);
	if (rc == 0)
		v.ncand = 0; /* a non-directory there: write the root over it */
	rc = view_store(fs, key, &v, &root, 0);
	qfs_obj_free(&root);
	view_free(&v);
	return rc;
}

int qfs_fs_new(const qfs_fs_conf *conf, qfs_fs **out)
{
	qfs_fs *fs = calloc(1, sizeof(*fs));
	int rc;
	if (!fs)
		return -ENOMEM;
	fs->c = *conf;
	snprintf(fs->node_id, sizeof(fs->node_id), "%s", conf->node_id ? conf->node_id : "");
	fs->data_dir = strdup(conf->data_dir ? conf->data_dir : "/");
	fs->c.node_id = fs->node_id;
	fs->c.data_dir = fs->data_dir;
	if (!fs->c.chunk_size)
		fs->c.chunk_size = QFS_DEFAULT_CHUNK_SIZE;
	if (fs->c.inline_max > QFS_INLINE_MAX)
		fs->c.inline_max = QFS_INLINE_MAX;
	if (!fs->c.max_dirty)
		fs->c.max_dirty = 32ull << 20;
	fs->unref_max_ms = conf->unref_max_ms ? conf->unref_max_ms : QFS_UNREF_MAX_MS;
	fs->attr_ms = (uint64_t)(conf->attr_timeout * 1000.0);
	fs->kv.n = conf->n;
	fs->kv.r = conf->r;
	fs->kv.w = conf->w;
	fs->kv.timeout_ms = conf->timeout_ms;
	pthread_mutex_init(&fs->known_mu, NULL);
	pthread_mutex_init(&fs->space_mu, NULL);
	pthread_mutex_init(&fs->handles_mu, NULL);
	fs->handles.next = fs->handles.prev = &fs->handles;
	pthread_mutex_init(&fs->dirty_mu, NULL);
	pthread_cond_init(&fs->dirty_cv, NULL);
	pthread_mutex_init(&fs->jq_mu, NULL);
	pthread_cond_init(&fs->jq_work, NULL);
	pthread_cond_init(&fs->jq_space, NULL);
	if (getrandom(&fs->actor, sizeof(fs->actor), 0) != sizeof(fs->actor))
		fs->actor = q_wall_ns() ^ ((uint64_t)getpid() << 32);
	rc = qfs_itable_new(&fs->it);
	if (rc)
		goto fail;
	qfs_itable_set_free_state(fs->it, ist_free);
	/* the root: retried for a while (a joining node may need a moment) */
	for (int i = 0; i < 10; i++) {
		rc = ensure_root(fs);
		if (rc == 0)
			break;
		Q_WARN(LOGC, "root directory not readable yet: %s", strerror(-rc));
		q_sleep_ms(500);
	}
	if (rc)
		Q_WARN(LOGC, "starting without the root directory's object; operations will retry");
	rc = pthread_create(&fs->flusher, NULL, flusher_main, fs);
	if (rc) {
		rc = -rc;
		qfs_itable_free(fs->it, NULL);
		goto fail;
	}
	fs->flusher_started = 1;
	for (int i = 0; i < fs->c.writers && i < QFS_WRITERS_MAX; i++) {
		if (pthread_create(&fs->writers[i], NULL, writer_main, fs) != 0)
			break;
		fs->nwriters++;
	}
	*out = fs;
	return 0;
fail:
	free(fs->data_dir);
	free(fs);
	return rc;
}

struct flush_ctx {
	qfs_fs *fs;
	qfs_inode **list;
	size_t n, cap;
};

static void collect(qfs_inode *in, void *arg)
{
	struct flush_ctx *c = arg;
	if (!in->state)
		return;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		qfs_inode **nl = realloc(c->list, nc * sizeof(*nl));
		if (!nl)
			return;
		c->list = nl;
		c->cap = nc;
	}
	c->list[c->n++] = in;
}

int qfs_fs_flush_all(qfs_fs *fs)
{
	struct flush_ctx c = {fs, NULL, 0, 0};
	int first = 0;
	qfs_itable_each(fs->it, collect, &c);
	for (size_t i = 0; i < c.n; i++) {
		qfs_inode *in = c.list[i];
		pthread_mutex_lock(&in->lock);
		int rc = in->state ? ist_flush(fs, in, in->state) : 0;
		pthread_mutex_unlock(&in->lock);
		if (rc && !first)
			first = rc;
	}
	free(c.list);
	return first;
}

void qfs_fs_free(qfs_fs *fs)
{
	if (!fs)
		return;
	if (fs->flusher_started) {
		pthread_mutex_lock(&fs->dirty_mu);
		fs->stop = 1;
		pthread_cond_signal(&fs->dirty_cv);
		pthread_mutex_unlock(&fs->dirty_mu);
		pthread_join(fs->flusher, NULL);
	}
	int rc = qfs_fs_flush_all(fs); /* waits for chunk writes in flight */
	dir_flush_pass(fs, 1); /* unpins what flush_all stored */
	unref_pass(fs, 1);
	pthread_mutex_lock(&fs->jq_mu);
	fs->jq_stop = 1;
	pthread_cond_broadcast(&fs->jq_work);
	pthread_mutex_unlock(&fs->jq_mu);
	for (int i = 0; i < fs->nwriters; i++)
		pthread_join(fs->writers[i], NULL);
	if (rc)
		Q_ERROR(LOGC, "flush at unmount failed: %s", strerror(-rc));
	/* handles the kernel never released (unmounted by a signal) */
	while (fs->handles.next != &fs->handles) {
		qfs_hnode *h = fs->handles.next;
		handle_del(fs, h);
		if (h->is_dir) /* qfs_fh and qfs_dh start with their link */
			free(((qfs_dh *)h)->list.e);
		free(h);
	}
	qfs_itable_free(fs->it, NULL);
	pthread_mutex_destroy(&fs->handles_mu);
	pthread_mutex_destroy(&fs->dirty_mu);
	pthread_cond_destroy(&fs->dirty_cv);
	pthread_mutex_destroy(&fs->jq_mu);
	pthread_cond_destroy(&fs->jq_work);
	pthread_cond_destroy(&fs->jq_space);
	pthread_mutex_destroy(&fs->known_mu);
	pthread_mutex_destroy(&fs->space_mu);
	free(fs->data_dir);
	free(fs);
}

/* ------------------------------------------------------------------ */
/* Lookup and attributes                                                */

static int child_path(qfs_fs *fs, uint64_t parent, const char *name, char *path)
{
	char pp[QFS_PATH_MAX + 1];
	int rc = qfs_name_check(name, strlen(name));
	if (rc)
		return rc;
	rc = qfs_itable_path(fs->it, parent, pp, sizeof(pp), 0);
	if (rc)
		return rc == -ESTALE ? -ENOENT : rc;
	return qfs_path_join(pp, name, path, QFS_PATH_MAX + 1);
}

/* Registers the inode of path with view v (taken over) as its state. */
static int adopt(qfs_fs *fs, const char *path, qfs_view *v, size_t k, int conflict,
		 uint64_t t0, struct stat *st, uint64_t *ino)
{
	const qfs_obj *o = view_obj(v, k);
	uint8_t type = o->type;
	int rc = qfs_itable_lookup(fs->it, path, type, conflict, ino);
	if (rc)
		return rc;
	qfs_inode *in = qfs_itable_get(fs->it, *ino);
	pthread_mutex_lock(&in->lock);
	qfs_ist *s = ist_of(in);
	if (s && !ist_dirty(s) && t0 > s->seq) {
		/* not changed since our read began: ours is the newest */
		ist_drop_bufs(s);
		rc = ist_set_view(fs, s, v, k);
	}
	if (s && s->valid)
		obj_to_stat(&s->obj, *ino, st);
	else
		obj_to_stat(o, *ino, st);
	pthread_mutex_unlock(&in->lock);
	if (rc) {
		qfs_itable_forget(fs->it, *ino, 1);
		return rc;
	}
	return 0;
}

int qfs_fs_lookup(qfs_fs *fs, uint64_t parent, const char *name, struct stat *st, uint64_t *ino)
{
	char path[QFS_PATH_MAX + 1], key[KEYMAX];
	qfs_view v;
	int rc = child_path(fs, parent, name, path);
	if (rc)
		return rc;
	key_of(path, key);
	uint64_t t0 = next_seq(fs);
	rc = view_load(fs, key, &v);
	if (rc == 0) {
		rc = adopt(fs, path, &v, 0, 0, t0, st, ino);
		view_free(&v);
		return rc;
	}
	view_free(&v);
	if (rc != -ENOENT || !qfs_is_conflict_name(name))
		return rc;
	char base[QFS_PATH_MAX + 1];
	size_t k;
	rc = conflict_resolve(fs, path, base, &v, &k);
	if (rc == 0)
		rc = adopt(fs, path, &v, k, 1, t0, st, ino);
	view_free(&v);
	return rc;
}

void qfs_fs_forget(qfs_fs *fs, uint64_t ino, uint64_t nlookup)
{
	qfs_itable_forget(fs->it, ino, nlookup);
}

/* Locks the inode and brings its state up to date. On success the caller
 * holds in->lock and gets the state and the path. */
static int lock_fresh(qfs_fs *fs, uint64_t ino, int force, qfs_inode **pin, qfs_ist **ps,
		      char *path)
{
	qfs_inode *in = qfs_itable_get(fs->it, ino);
	if (!in)
		return -ENOENT;
	pthread_mutex_lock(&in->lock);
	qfs_ist *s = ist_of(in);
	int rc = s ? 0 : -ENOMEM;
	if (rc == 0)
		rc = qfs_itable_path(fs->it, ino, path, QFS_PATH_MAX + 1, 1);
	if (rc == 0 && in->detached) {
		/* unlinked but open: only what we hold is left */
		if (!s->valid)
			rc = -ENOENT;
	} else if (rc == 0) {
		if (ino == QFS_ROOT_INO && !s->valid && !force)
			force = 1;
		rc = ist_refresh(fs, in, s, path, force);
		if (rc == -ENOENT && ino == QFS_ROOT_INO) {
			rc = ensure_root(fs);
			if (rc == 0)
				rc = ist_refresh(fs, in, s, path, 1);
		}
	}
	if (rc) {
		pthread_mutex_unlock(&in->lock);
		return rc;
	}
	*pin = in;
	*ps = s;
	return 0;
}

int qfs_fs_getattr(qfs_fs *fs, uint64_t ino, struct stat *st)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	int rc = lock_fresh(fs, ino, 0, &in, &s, path);
	if (rc)
		return rc;
	obj_to_stat(&s->obj, ino, st);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int qfs_fs_readlink(qfs_fs *fs, uint64_t ino, char *buf, size_t cap)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	int rc = lock_fresh(fs, ino, 0, &in, &s, path);
	if (rc)
		return rc;
	if (s->obj.type != QFS_T_LNK || !s->obj.target)
		rc = -EINVAL;
	else if (strlen(s->obj.target) >= cap)
		rc = -ENAMETOOLONG;
	else
		strcpy(buf, s->obj.target);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* Stores the working copy right away (metadata changes). */
static int store_now(qfs_fs *fs, qfs_inode *in, qfs_ist *s)
{
	s->dirty_meta = 1;
	if (in->conflict)
		return -EPERM;
	return ist_flush(fs, in, s);
}

int qfs_fs_setattr(qfs_fs *fs, uint64_t ino, const struct stat *a, int to_set, struct stat *out)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	int rc = lock_fresh(fs, ino, 0, &in, &s, path);
	if (rc)
		return rc;
	if (in->conflict) {
		rc = -EPERM;
		goto out;
	}
	int64_t now = now_ns();
	qfs_obj *o = &s->obj;
	if (to_set & QFS_SET_MODE)
		o->mode = (o->mode & S_IFMT) | (a->st_mode & 07777);
	if (to_set & QFS_SET_UID)
		o->uid = a->st_uid;
	if (to_set & QFS_SET_GID)
		o->gid = a->st_gid;
	if (to_set & QFS_SET_SIZE) {
		if (o->type == QFS_T_DIR) {
			rc = -EISDIR;
			goto out;
		}
		if (o->type != QFS_T_REG) {
			rc = -EINVAL;
			goto out;
		}
		if ((uint64_t)a->st_size != o->size) {
			rc = set_size(fs, s, (uint64_t)a->st_size);
			if (rc)
				goto out;
		}
		o->mtime_ns = now;
	}
	if (to_set & QFS_SET_ATIME_NOW)
		o->atime_ns = now;
	else if (to_set & QFS_SET_ATIME)
		o->atime_ns = (int64_t)a->st_atim.tv_sec * 1000000000 + a->st_atim.tv_nsec;
	if (to_set & QFS_SET_MTIME_NOW)
		o->mtime_ns = now;
	else if (to_set & QFS_SET_MTIME)
		o->mtime_ns = (int64_t)a->st_mtim.tv_sec * 1000000000 + a->st_mtim.tv_nsec;
	o->ctime_ns = now;
	if (to_set & QFS_SET_CTIME)
		o->ctime_ns = (int64_t)a->st_ctim.tv_sec * 1000000000 + a->st_ctim.tv_nsec;
	snprintf(o->origin, sizeof(o->origin), "%s", fs->node_id);
	if (in->nopen) {
		/* an open file's changes go out with its data (flush, fsync,
		 * close); this mount sees them at once */
		s->dirty_meta = 1;
	} else {
		rc = store_now(fs, in, s);
	}
	if (rc == 0)
		obj_to_stat(o, ino, out);
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Directory updates                                                    */

typedef int (*dir_fn)(qfs_fs *fs, qfs_ist *dir, qfs_obj *d, void *arg);

/* Read-modify-write of a directory object (dir inode locked by caller).
 * fn returns 0 (store), 1 (no change) or an error. */
static int dir_update_locked(qfs_fs *fs, qfs_inode *din, qfs_ist *ds, const char *dpath, dir_fn fn,
			     void *arg)
{
	int rc;
	(void)dpath;
	if (!ds->valid || ds->obj.type != QFS_T_DIR)
		return -ENOTDIR;
	rc = fn(fs, ds, &ds->obj, arg);
	if (rc == 0) {
		ds->obj.mtime_ns = ds->obj.ctime_ns = now_ns();
		snprintf(ds->obj.origin, sizeof(ds->obj.origin), "%s", fs->node_id);
		rc = dir_mark_dirty(fs, din, ds);
	} else if (rc == 1) {
		rc = 0;
	}
	return rc;
}

struct add_arg {
	const char *name;
	uint8_t type;
	uint64_t actor;
};

static int fn_add(qfs_fs *fs, qfs_ist *ds, qfs_obj *d, void *p)
{
	struct add_arg *a = p;
	uint64_t c;
	long i = qfs_dir_find(d, a->name);
	if (i >= 0 && d->ent[i].type == a->type)
		return 1; /* already listed (an orphan entry or a replace) */
	int rc = qfs_dir_add(d, a->name, a->type, a->actor, ds->dir_floor, &c);
	if (rc == 0)
		ds->dir_floor = c;
	return rc;
}

static int fn_remove(qfs_fs *fs, qfs_ist *ds, qfs_obj *d, void *p)
{
	int rc = qfs_dir_remove(d, p);
	return rc == Q_ENOTFOUND ? 1 : rc;
}

/* Locks a directory inode fresh for an update. */
static int lock_dir(qfs_fs *fs, uint64_t ino, qfs_inode **in, qfs_ist **s, char *path)
{
	int rc = lock_fresh(fs, ino, 0, in, s, path);
	if (rc)
		return rc;
	if ((*s)->obj.type != QFS_T_DIR || (*in)->conflict) {
		pthread_mutex_unlock(&(*in)->lock);
		return -ENOTDIR;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Creating names                                                       */

static void new_obj(qfs_fs *fs, qfs_obj *o, uint32_t mode, uint32_t uid, uint32_t gid)
{
	qfs_obj_init(o);
	o->type = qfs_type_of_mode(mode);
	o->mode = mode;
	o->uid = uid;
	o->gid = gid;
	o->atime_ns = o->mtime_ns = o->ctime_ns = now_ns();
	o->layout = QFS_LAYOUT_INLINE;
	snprintf(o->origin, sizeof(o->origin), "%s", fs->node_id);
}

/* Creates name in parent with object o (taken over). With excl, an existing
 * live name gives -EEXIST; without, the existing object is returned in
 * *existed = 1 and nothing is written. */
static int make_node(qfs_fs *fs, uint64_t parent, const char *name, qfs_obj *o, int excl,
		     int *existed, struct stat *st, uint64_t *ino)
{
	char path[QFS_PATH_MAX + 1], dpath[QFS_PATH_MAX + 1], key[KEYMAX];
	qfs_inode *din;
	qfs_ist *ds;
	qfs_view v;
	int rc = child_path(fs, parent, name, path);
	if (rc) {
		qfs_obj_free(o);
		return rc;
	}
	if (qfs_is_conflict_name(name) && o->type != QFS_T_DIR) {
		/* allowed: a plain file may carry the marker; it just is not a
		 * sibling. Nothing special to do. */
	}
	rc = lock_dir(fs, parent, &din, &ds, dpath);
	if (rc) {
		qfs_obj_free(o);
		return rc;
	}
	key_of(path, key);
	uint64_t t0 = next_seq(fs);
	rc = view_load(fs, key, &v);
	if (rc == 0) {
		if (excl || !existed) {
			rc = -EEXIST;
			goto out;
		}
		*existed = 1;
		pthread_mutex_unlock(&din->lock);
		rc = adopt(fs, path, &v, 0, 0, t0, st, ino);
		view_free(&v);
		qfs_obj_free(o);
		return rc;
	}
	if (rc != -ENOENT)
		goto out;
	v.ncand = 0; /* tombstones only: write over them causally */
	rc = view_store(fs, key, &v, o, 0);
	if (rc)
		goto out;
	struct add_arg aa = {name, o->type, fs->actor};
	rc = dir_update_locked(fs, din, ds, dpath, fn_add, &aa);
	if (rc) {
		/* leave no invisible object behind if we can help it */
		view_delete(fs, key, &v);
		goto out;
	}
	pthread_mutex_unlock(&din->lock);
	if (existed)
		*existed = 0;
	rc = adopt(fs, path, &v, 0, 0, t0, st, ino);
	view_free(&v);
	qfs_obj_free(o);
	return rc;
out:
	pthread_mutex_unlock(&din->lock);
	view_free(&v);
	qfs_obj_free(o);
	return rc;
}

int qfs_fs_mknod(qfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		 uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino)
{
	qfs_obj o;
	if (!qfs_type_of_mode(mode) || S_ISLNK(mode))
		return -EINVAL;
	new_obj(fs, &o, mode, uid, gid);
	o.rdev = rdev;
	return make_node(fs, parent, name, &o, 1, NULL, st, ino);
}

int qfs_fs_symlink(qfs_fs *fs, uint64_t parent, const char *name, const char *target,
		   uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino)
{
	qfs_obj o;
	size_t tl = strlen(target);
	if (tl == 0)
		return -ENOENT;
	if (tl > QFS_PATH_MAX)
		return -ENAMETOOLONG;
	new_obj(fs, &o, S_IFLNK | 0777, uid, gid);
	o.target = strdup(target);
	o.size = tl;
	if (!o.target) {
		qfs_obj_free(&o);
		return -ENOMEM;
	}
	return make_node(fs, parent, name, &o, 1, NULL, st, ino);
}

/* ------------------------------------------------------------------ */
/* Removing names                                                       */

/* Removes the conflict sibling a conflict name shows. */
static int unlink_conflict(qfs_fs *fs, const char *path)
{
	char base[QFS_PATH_MAX + 1], key[KEYMAX];
	qfs_view v;
	size_t k;
	int rc = conflict_resolve(fs, path, base, &v, &k);
	if (rc == 0) {
		key_of(base, key);
		qfs_obj keep;
		rc = qfs_obj_copy(&keep, view_shown(&v));
		if (rc == 0) {
			rc = view_store(fs, key, &v, &keep, k);
			qfs_obj_free(&keep);
		}
	}
	view_free(&v);
	if (rc == 0)
		qfs_itable_detach(fs->it, path);
	return rc;
}

static int touch_path(qfs_fs *fs, const char *path, int invalidate);

static int remove_name(qfs_fs *fs, uint64_t parent, const char *name, int dir)
{
	char path[QFS_PATH_MAX + 1], dpath[QFS_PATH_MAX + 1], key[KEYMAX];
	qfs_inode *din;
	qfs_ist *ds;
	qfs_view v;
	int rc = child_path(fs, parent, name, path);
	if (rc)
		return rc;
	if (dir) {
		/* entries this mount added but has not stored yet count too */
		rc = touch_path(fs, path, 0);
		if (rc)
			return rc;
	}
	rc = lock_dir(fs, parent, &din, &ds, dpath);
	if (rc)
		return rc;
	key_of(path, key);
	rc = view_load(fs, key, &v);
	if (rc == -ENOENT && !dir && qfs_is_conflict_name(name)) {
		pthread_mutex_unlock(&din->lock);
		view_free(&v);
		return unlink_conflict(fs, path);
	}
	if (rc)
		goto out;
	const qfs_obj *shown = view_shown(&v);
	if (dir && shown->type != QFS_T_DIR) {
		rc = -ENOTDIR;
		goto out;
	}
	if (!dir && shown->type == QFS_T_DIR) {
		rc = -EISDIR;
		goto out;
	}
	if (dir && shown->nent > 0) {
		/* entries whose objects are gone do not count */
		q_slice *keys = calloc(shown->nent, sizeof(q_slice));
		char **kb = calloc(shown->nent, sizeof(char *));
		qc_object *objs = calloc(shown->nent, sizeof(qc_object));
		int *rcs = calloc(shown->nent, sizeof(int));
		rc = keys && kb && objs && rcs ? 0 : -ENOMEM;
		for (size_t i = 0; rc == 0 && i < shown->nent; i++) {
			kb[i] = malloc(KEYMAX);
			char cp[QFS_PATH_MAX + 1];
			if (!kb[i] || qfs_path_join(path, shown->ent[i].name, cp, sizeof(cp))) {
				rc = -ENOMEM;
				break;
			}
			key_of(cp, kb[i]);
			keys[i] = q_slice_str(kb[i]);
			qc_object_init(&objs[i]);
		}
		if (rc == 0) {
			rc = qc_mget(fs->c.client, keys, shown->nent, &fs->kv, objs, rcs);
			rc = qfs_errno(rc);
			for (size_t i = 0; rc == 0 && i < shown->nent; i++) {
				if (rcs[i] == 0 && qc_object_live(&objs[i]))
					rc = -ENOTEMPTY;
				else if (rcs[i] && rcs[i] != Q_ENOTFOUND)
					rc = qfs_errno(rcs[i]);
			}
		}
		for (size_t i = 0; objs && i < shown->nent; i++)
			qc_object_free(&objs[i]);
		for (size_t i = 0; kb && i < shown->nent; i++)
			free(kb[i]);
		free(keys);
		free(kb);
		free(objs);
		free(rcs);
		if (rc)
			goto out;
	}
	if (!dir && v.ncand > 1) {
		/* rm of a name in conflict discards the shown version; the next
		 * sibling takes the name */
		qfs_obj next;
		rc = qfs_obj_copy(&next, view_obj(&v, 1));
		if (rc == 0) {
			rc = view_store(fs, key, &v, &next, 1);
			qfs_obj_free(&next);
		}
		if (rc == 0)
			qfs_itable_detach(fs->it, path);
		goto out;
	}
	rc = dir_update_locked(fs, din, ds, dpath, fn_remove, (void *)name);
	if (rc)
		goto out;
	rc = view_delete(fs, key, &v);
	if (rc == 0)
		qfs_itable_detach(fs->it, path);
out:
	pthread_mutex_unlock(&din->lock);
	view_free(&v);
	return rc;
}

int qfs_fs_unlink(qfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 0);
}

int qfs_fs_rmdir(qfs_fs *fs, uint64_t parent, const char *name)
{
	return remove_name(fs, parent, name, 1);
}

/* ------------------------------------------------------------------ */
/* Rename                                                               */

struct rename_arg {
	const char *from, *to;
	uint8_t type;
	uint64_t actor;
	int remove_from;
};

static int fn_rename(qfs_fs *fs, qfs_ist *ds, qfs_obj *d, void *p)
{
	struct rename_arg *a = p;
	int changed = 0;
	if (a->remove_from) {
		int rc = qfs_dir_remove(d, a->from);
		if (rc && rc != Q_ENOTFOUND)
			return rc;
		changed = rc == 0;
	}
	if (a->to) {
		struct add_arg aa = {a->to, a->type, a->actor};
		int rc = fn_add(fs, ds, d, &aa);
		if (rc < 0)
			return rc;
		changed |= rc == 0;
	}
	return changed ? 0 : 1;
}

/* Flushes (or, with invalidate, forgets the cached version of) the inode
 * at path. Only for the source of a rename, which the kernel holds. */
static int touch_path(qfs_fs *fs, const char *path, int invalidate)
{
	uint64_t ino = qfs_itable_find(fs->it, path);
	qfs_inode *in = ino ? qfs_itable_get(fs->it, ino) : NULL;
	int rc = 0;
	if (!in)
		return 0;
	pthread_mutex_lock(&in->lock);
	qfs_ist *s = in->state;
	if (s && invalidate && !ist_dirty(s))
		s->valid = 0; /* its context belongs to the old key */
	else if (s && !invalidate)
		rc = ist_flush(fs, in, s);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* The version of a file the inode at path holds, if it is fresh (within
 * the attribute timeout), stored, and alone (no siblings): saves the rename
 * a read. Only for a path the kernel holds (a rename's source). */
static int view_from_inode(qfs_fs *fs, const char *path, qfs_view *v)
{
	uint64_t ino = qfs_itable_find(fs->it, path);
	qfs_inode *in = ino ? qfs_itable_get(fs->it, ino) : NULL;
	int rc = -ENOENT;
	if (!in)
		return rc;
	pthread_mutex_lock(&in->lock);
	qfs_ist *st = in->state;
	if (st && st->valid && !ist_dirty(st) && !in->conflict && st->v.ncand == 1 &&
	    st->obj.type != QFS_T_DIR && q_mono_ms() - st->fetched_ms < fs->attr_ms) {
		view_init(v);
		v->objs = calloc(1, sizeof(qfs_obj));
		v->sibidx = calloc(1, sizeof(size_t));
		v->cand = calloc(1, sizeof(qfs_cand));
		rc = v->objs && v->sibidx && v->cand ? 0 : -ENOMEM;
		if (rc == 0)
			rc = q_buf_append(&v->raw.context, st->v.raw.context.p, st->v.raw.context.len);
		if (rc == 0)
			rc = qfs_obj_copy(&v->objs[0], &st->obj);
		if (rc == 0) {
			v->nobj = 1;
			v->ncand = 1;
			v->cand[0].mtime_ns = st->obj.mtime_ns;
			v->cand[0].node = "";
			v->cand[0].origin = "";
			v->cand[0].index = 0;
		} else {
			view_free(v);
		}
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* Chunk collection: before a chunked file's version is stored under a new
 * name, a move record lists its chunks (docs/filesystem.md, "Chunk
 * collection": a mark that reads the new name before the rename and the
 * old one after it finds them there). */
static int store_move_record(qfs_fs *fs, const qfs_obj *o)
{
	if (o->type != QFS_T_REG || o->layout != QFS_LAYOUT_CHUNKED)
		return 0;
	q_buf ids = Q_BUF_INIT, val = Q_BUF_INIT;
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < o->nchunks && rc == 0; i++)
		if (o->chunks[i].kind == QFS_CHUNK_DATA) {
			rc = q_buf_append(&ids, o->chunks[i].id, QFS_CHUNK_ID_LEN);
			n++;
		}
	if (rc == 0 && n > 0) {
		int64_t now = now_ns();
		uint64_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = fs->actor ^ next_seq(fs);
		char key[QFS_MOVE_KEY_LEN + 1];
		qfs_move_key(now, rnd, key);
		rc = qfs_move_encode(now, ids.p, n, &val);
		if (rc == 0)
			rc = qc_put(fs->c.client, q_slice_str(key), q_slice_make(NULL, 0),
				    q_buf_slice(&val), &fs->kv, NULL);
	}
	q_buf_free(&ids);
	q_buf_free(&val);
	return qfs_errno(rc);
}

/* Renaming a non-empty directory (docs/filesystem.md, "Directory rename"):
 * every key below it is copied to the new path (parents first), the entry
 * moves in the parents, then the old keys are deleted (children first),
 * each with the context read when it was copied. */
typedef struct tree_ent {
	char *rel;   /* "/a/b": the path below the renamed directory */
	qfs_obj obj; /* the shown version when it was read */
	q_buf ctx;   /* the context of that read */
} tree_ent;

typedef struct tree {
	tree_ent *e;
	size_t n, cap;
} tree;

static void tree_free(tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].rel);
		qfs_obj_free(&t->e[i].obj);
		q_buf_free(&t->e[i].ctx);
	}
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/* view_load from every replica: a read that one stale replica answers
 * (r=1 with notfound_ok) could hide a fresh child from a tree rename. A
 * replica that cannot answer gives -EXDEV (mv copies instead). */
static int view_load_all(qfs_fs *fs, const char *key, qfs_view *v)
{
	view_init(v);
	qc_opts all = fs->kv;
	all.r = QFS_RENAME_TREE_R;
	int rc = qc_get(fs->c.client, q_slice_str(key), &all, &v->raw);
	if (rc == Q_ENOTFOUND)
		return -ENOENT;
	if (rc == Q_EQUORUM || rc == Q_ETIMEOUT)
		return -EXDEV;
	if (rc)
		return qfs_errno(rc);
	return view_build(v, key);
}

/* Appends the children of the directory at rel (t->e[di], or the top when
 * di == SIZE_MAX with its object top). -EXDEV past QFS_RENAME_TREE_MAX
 * entries or for a child with conflict siblings (mv then copies). */
static int tree_add_children(qfs_fs *fs, const char *from, tree *t, size_t di,
			     const qfs_obj *top)
{
	size_t nent = di == SIZE_MAX ? top->nent : t->e[di].obj.nent;
	for (size_t k = 0; k < nent; k++) {
		const qfs_obj *d = di == SIZE_MAX ? top : &t->e[di].obj; /* t->e moves */
		const char *rel = di == SIZE_MAX ? "" : t->e[di].rel;
		char crel[QFS_PATH_MAX + 1], full[QFS_PATH_MAX + 1], key[KEYMAX];
		if (t->n >= QFS_RENAME_TREE_MAX)
			return -EXDEV;
		if (snprintf(crel, sizeof(crel), "%s/%s", rel, d->ent[k].name) >= (int)sizeof(crel) ||
		    snprintf(full, sizeof(full), "%s%s", from, crel) >= (int)sizeof(full))
			return -ENAMETOOLONG;
		key_of(full, key);
		qfs_view v;
		int rc = view_load_all(fs, key, &v);
		if (rc == -ENOENT) { /* an entry without its object: nothing to move */
			view_free(&v);
			continue;
		}
		if (rc == 0 && v.ncand != 1)
			rc = -EXDEV;
		if (rc) {
			view_free(&v);
			return rc;
		}
		if (t->n == t->cap) {
			size_t nc = t->cap ? t->cap * 2 : 64;
			tree_ent *ne = realloc(t->e, nc * sizeof(*ne));
			if (!ne) {
				view_free(&v);
				return -ENOMEM;
			}
			t->e = ne;
			t->cap = nc;
		}
		tree_ent *e = &t->e[t->n];
		memset(e, 0, sizeof(*e));
		q_buf_init(&e->ctx);
		e->rel = strdup(crel);
		rc = e->rel ? qfs_obj_copy(&e->obj, view_shown(&v)) : -ENOMEM;
		if (rc == 0)
			rc = q_buf_append(&e->ctx, v.raw.context.p, v.raw.context.len);
		view_free(&v);
		t->n++; /* freed by tree_free whatever happened */
		if (rc)
			return rc;
	}
	return 0;
}

static int tree_collect(qfs_fs *fs, const char *from, const qfs_obj *top, tree *t)
{
	Q_RET(tree_add_children(fs, from, t, SIZE_MAX, top));
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].obj.type == QFS_T_DIR && t->e[i].obj.nent)
			Q_RET(tree_add_children(fs, from, t, i, NULL));
	return 0;
}

static int tree_copy(qfs_fs *fs, const char *to, tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		char full[QFS_PATH_MAX + 1], key[KEYMAX];
		if (snprintf(full, sizeof(full), "%s%s", to, t->e[i].rel) >= (int)sizeof(full))
			return -ENAMETOOLONG;
		key_of(full, key);
		qfs_view v;
		int rc = view_load(fs, key, &v);
		if (rc == 0 || rc == -ENOENT) {
			/* a leftover object no directory listed: replaced */
			v.ncand = v.ncand ? 1 : 0;
			rc = store_move_record(fs, &t->e[i].obj);
			if (rc == 0)
				rc = view_store(fs, key, &v, &t->e[i].obj, 0);
		}
		view_free(&v);
		if (rc)
			return rc;
	}
	return 0;
}

static int tree_delete(qfs_fs *fs, const char *from, tree *t)
{
	int first = 0;
	for (size_t i = t->n; i-- > 0;) {
		char full[QFS_PATH_MAX + 1], key[KEYMAX];
		snprintf(full, sizeof(full), "%s%s", from, t->e[i].rel);
		key_of(full, key);
		int rc = qc_del(fs->c.client, q_slice_str(key), q_buf_slice(&t->e[i].ctx), &fs->kv);
		if (rc && rc != Q_ENOTFOUND && !first)
			first = qfs_errno(rc);
	}
	return first;
}

int qfs_fs_rename(qfs_fs *fs, uint64_t parent, const char *name, uint64_t newparent,
		  const char *newname, unsigned flags)
{
	char from[QFS_PATH_MAX + 1], to[QFS_PATH_MAX + 1], kf[KEYMAX], kt[KEYMAX];
	char dp1[QFS_PATH_MAX + 1], dp2[QFS_PATH_MAX + 1];
	qfs_inode *d1 = NULL, *d2 = NULL;
	qfs_ist *s1 = NULL, *s2 = NULL;
	qfs_view vf, vt;
	tree sub = {NULL, 0, 0};
	size_t k = 0;
	int rc, moved_ok = 0;
	view_init(&vf);
	view_init(&vt);
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL;
	if ((rc = child_path(fs, parent, name, from)) || (rc = child_path(fs, newparent, newname, to)))
		return rc;
	if (strcmp(from, to) == 0)
		return 0;
	size_t fl = strlen(from);
	if (strncmp(to, from, fl) == 0 && to[fl] == '/')
		return -EINVAL;
	/* a directory being renamed: everything buffered below it goes first
	 * (its keys are copied from the store) */
	{
		uint64_t fino = qfs_itable_find(fs->it, from);
		qfs_inode *fin = fino ? qfs_itable_get(fs->it, fino) : NULL;
		int isdir = 0;
		if (fin) {
			pthread_mutex_lock(&fin->lock);
			isdir = fin->state && ((qfs_ist *)fin->state)->obj.type == QFS_T_DIR;
			pthread_mutex_unlock(&fin->lock);
		}
		if (isdir && (rc = qfs_fs_flush_all(fs)) != 0)
			return rc;
	}
	/* an open file being renamed: its buffered data goes first */
	rc = touch_path(fs, from, 0);
	if (rc == 0)
		rc = touch_path(fs, to, 0);
	if (rc)
		return rc;
	/* lock the directories in inode order */
	uint64_t a = parent < newparent ? parent : newparent, b = parent ^ newparent ^ a;
	rc = lock_dir(fs, a, &d1, &s1, a == parent ? dp1 : dp2);
	if (rc)
		return rc;
	if (b != a) {
		rc = lock_dir(fs, b, &d2, &s2, b == parent ? dp1 : dp2);
		if (rc) {
			pthread_mutex_unlock(&d1->lock);
			return rc;
		}
	} else {
		strcpy(dp2, dp1);
	}
	qfs_ist *sp = parent == a ? s1 : s2, *snp = newparent == a ? s1 : s2;
	qfs_inode *dinp = parent == a ? d1 : d2, *dinnp = newparent == a ? d1 : d2;
	if (b == a) {
		sp = snp = s1;
		dinp = dinnp = d1;
	}
	key_of(from, kf);
	key_of(to, kt);
	int conflict_src = 0;
	char base[QFS_PATH_MAX + 1];
	rc = view_from_inode(fs, from, &vf);
	if (rc)
		rc = view_load(fs, kf, &vf);
	if (rc == -ENOENT && qfs_is_conflict_name(name)) {
		view_free(&vf);
		rc = conflict_resolve(fs, from, base, &vf, &k);
		conflict_src = rc == 0;
	}
	if (rc)
		goto out;
	const qfs_obj *src = view_obj(&vf, k);
	if (src->type == QFS_T_DIR && !conflict_src) {
		/* its entries as every replica has them (see view_load_all) */
		view_free(&vf);
		k = 0;
		rc = view_load_all(fs, kf, &vf);
		if (rc == 0 && view_obj(&vf, 0)->type != QFS_T_DIR)
			rc = -EXDEV; /* changed under us: let mv sort it out */
		if (rc)
			goto out;
		src = view_obj(&vf, 0);
	}
	if (src->type == QFS_T_DIR && src->nent > 0) {
		/* paths are keys: every key below moves too */
		rc = tree_collect(fs, from, src, &sub);
		if (rc)
			goto out;
	}
	rc = view_load(fs, kt, &vt);
	if (rc == 0) {
		const qfs_obj *dst = view_shown(&vt);
		if (flags & RENAME_NOREPLACE) {
			rc = -EEXIST;
			goto out;
		}
		if (dst->type == QFS_T_DIR && src->type != QFS_T_DIR) {
			rc = -EISDIR;
			goto out;
		}
		if (dst->type != QFS_T_DIR && src->type == QFS_T_DIR) {
			rc = -ENOTDIR;
			goto out;
		}
		if (dst->type == QFS_T_DIR && dst->nent > 0) {
			rc = -ENOTEMPTY;
			goto out;
		}
	} else if (rc != -ENOENT) {
		goto out;
	}
	qfs_obj moved;
	rc = qfs_obj_copy(&moved, src);
	if (rc)
		goto out;
	moved.ctime_ns = now_ns();
	uint8_t type = moved.type;
	if (conflict_src && strcmp(base, to) == 0) {
		/* mv CONFLICT NAME: that sibling wins, the others go */
		vt.ncand = 1; /* re-put nobody */
	} else {
		vt.ncand = vt.ncand ? 1 : 0;
		/* the version changes keys: its chunks need a move record */
		rc = store_move_record(fs, &moved);
		if (rc == 0)
			rc = tree_copy(fs, to, &sub);
		if (rc) {
			qfs_obj_free(&moved);
			goto out;
		}
	}
	rc = view_store(fs, kt, &vt, &moved, 0);
	qfs_obj_free(&moved);
	if (rc)
		goto out;
	if (conflict_src && strcmp(base, to) == 0) {
		qfs_itable_detach(fs->it, from);
		goto out; /* the name was already listed */
	}
	/* directory entries: add the new name, remove the old */
	struct rename_arg ra = {name, newname, type, fs->actor, 0};
	if (dinp == dinnp) {
		ra.remove_from = !conflict_src;
		rc = dir_update_locked(fs, dinp, sp, dp1, fn_rename, &ra);
	} else {
		rc = dir_update_locked(fs, dinnp, snp, dp2, fn_rename, &ra);
		if (rc == 0 && !conflict_src) {
			struct rename_arg rr = {name, NULL, type, fs->actor, 1};
			rc = dir_update_locked(fs, dinp, sp, dp1, fn_rename, &rr);
		}
	}
	if (rc)
		goto out;
	if (conflict_src) {
		/* the sibling moved out: drop it from its key */
		qfs_obj keep;
		rc = qfs_obj_copy(&keep, view_shown(&vf));
		if (rc == 0) {
			char kb[KEYMAX];
			key_of(base, kb);
			rc = view_store(fs, kb, &vf, &keep, k);
			qfs_obj_free(&keep);
		}
	} else {
		rc = tree_delete(fs, from, &sub);
		if (rc == 0)
			rc = view_delete(fs, kf, &vf);
	}
	if (rc)
		goto out;
	qfs_itable_rename(fs->it, from, to);
	moved_ok = 1;
out:
	if (d2)
		pthread_mutex_unlock(&d2->lock);
	pthread_mutex_unlock(&d1->lock);
	view_free(&vf);
	view_free(&vt);
	if (moved_ok) {
		touch_path(fs, to, 1);
		/* inodes below: their cached contexts belong to the old keys */
		for (size_t i = 0; i < sub.n; i++) {
			char full[QFS_PATH_MAX + 1];
			if (snprintf(full, sizeof(full), "%s%s", to, sub.e[i].rel) < (int)sizeof(full))
				touch_path(fs, full, 1);
		}
	}
	tree_free(&sub);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Open files                                                           */

static int open_inode(qfs_fs *fs, qfs_inode *in, int flags, uint64_t *fh)
{
	qfs_fh *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->in = in;
	h->flags = flags;
	qfs_itable_open(fs->it, in);
	handle_add(fs, &h->link);
	*fh = (uint64_t)(uintptr_t)h;
	return 0;
}

int qfs_fs_open(qfs_fs *fs, uint64_t ino, int flags, uint64_t *fh)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	/* open re-reads (close-to-open consistency across mounts) */
	int rc = lock_fresh(fs, ino, 1, &in, &s, path);
	if (rc)
		return rc;
	int acc = flags & O_ACCMODE;
	if (s->obj.type == QFS_T_DIR)
		rc = -EISDIR;
	else if (in->conflict && acc != O_RDONLY)
		rc = -EPERM; /* conflict files are read-only views */
	else if ((flags & O_TRUNC) && acc != O_RDONLY) {
		if (s->obj.size) {
			rc = set_size(fs, s, 0);
			s->obj.mtime_ns = s->obj.ctime_ns = now_ns();
			s->dirty_meta = 1;
		}
	}
	if (rc == 0)
		rc = open_inode(fs, in, flags, fh);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_create(qfs_fs *fs, uint64_t parent, const char *name, uint32_t mode, int flags,
		  uint32_t uid, uint32_t gid, struct stat *st, uint64_t *ino, uint64_t *fh)
{
	qfs_obj o;
	int existed = 0;
	new_obj(fs, &o, S_IFREG | (mode & 07777), uid, gid);
	int rc = make_node(fs, parent, name, &o, (flags & O_EXCL) != 0, &existed, st, ino);
	if (rc)
		return rc;
	if (existed && st->st_mode && S_ISDIR(st->st_mode)) {
		qfs_itable_forget(fs->it, *ino, 1);
		return -EISDIR;
	}
	rc = qfs_fs_open(fs, *ino, existed ? flags : (flags & ~O_TRUNC), fh);
	if (rc) {
		qfs_itable_forget(fs->it, *ino, 1);
		return rc;
	}
	if (existed && (flags & O_TRUNC))
		st->st_size = 0;
	return 0;
}

static qfs_fh *fh_of(uint64_t fh)
{
	return (qfs_fh *)(uintptr_t)fh;
}

/* An open file's state, re-read if a rename dropped its cached version;
 * in->lock held. */
static qfs_ist *open_state(qfs_fs *fs, qfs_inode *in, int *rc)
{
	qfs_ist *s = in->state;
	*rc = 0;
	if (s && s->valid)
		return s;
	char path[QFS_PATH_MAX + 1];
	s = ist_of(in);
	if (!s) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = qfs_itable_path(fs->it, in->ino, path, sizeof(path), 0);
	if (*rc == 0)
		*rc = ist_refresh(fs, in, s, path, 1);
	return *rc ? NULL : s;
}

int qfs_fs_read(qfs_fs *fs, uint64_t fh, uint64_t off, size_t size, void *buf, size_t *got)
{
	qfs_fh *h = fh_of(fh);
	qfs_inode *in = h->in;
	int rc = 0, tries = 0;
	*got = 0;
	pthread_mutex_lock(&in->lock);
	qfs_ist *s = open_state(fs, in, &rc);
	if (!s)
		goto out;
	for (;;) {
		wait_pending(s); /* pending chunks still read as holes in the list */
		qfs_obj *o = &s->obj;
		if (off + *got >= o->size)
			break;
		size_t want = size;
		if (want > o->size - off)
			want = (size_t)(o->size - off);
		if (*got >= want)
			break;
		if (o->layout == QFS_LAYOUT_INLINE) {
			memcpy((uint8_t *)buf + *got, o->inline_data + off + *got, want - *got);
			*got = want;
			break;
		}
		uint32_t cs = o->chunk_size;
		uint64_t pos = off + *got;
		uint64_t idx = pos / cs;
		size_t in_off = (size_t)(pos % cs);
		size_t n = cs - in_off < want - *got ? cs - in_off : want - *got;
		cbuf *b = cb_find(s, idx);
		if (!b && o->chunks[idx].kind == QFS_CHUNK_HOLE) {
			memset((uint8_t *)buf + *got, 0, n);
			*got += n;
			continue;
		}
		if (!b && fetch_has(s, idx)) {
			/* a read or readahead is fetching it: wait for that one */
			pthread_cond_wait(&s->cv, s->lockp);
			continue;
		}
		if (!b) {
			/* fetch without the inode's lock, so concurrent reads of
			 * other chunks (kernel readahead) proceed in parallel */
			qfs_chunkref ref = o->chunks[idx];
			uint8_t *data = malloc(cs);
			if (!data) {
				rc = -ENOMEM;
				goto out;
			}
			int listed = fetch_add(s, idx);
			pthread_mutex_unlock(&in->lock);
			rc = chunk_get(fs, &ref, data, cs);
			pthread_mutex_lock(&in->lock);
			if (listed)
				fetch_del(s, idx);
			if (rc) {
				free(data);
				goto out;
			}
			o = &s->obj;
			if (o->layout != QFS_LAYOUT_CHUNKED || o->chunk_size != cs ||
			    idx >= o->nchunks || memcmp(&o->chunks[idx], &ref, sizeof(ref)) != 0 ||
			    cb_find(s, idx) || pending_has(s, idx)) {
				free(data); /* changed meanwhile: look again */
				if (++tries > 100) {
					rc = -EAGAIN;
					goto out;
				}
				continue;
			}
			cbuf *nb = realloc(s->cb, (s->ncb + 1) * sizeof(cbuf));
			if (!nb) {
				free(data);
				rc = -ENOMEM;
				goto out;
			}
			s->cb = nb;
			b = &s->cb[s->ncb++];
			b->idx = idx;
			b->data = data;
			b->dirty = 0;
			b->tick = ++s->tick;
		}
		memcpy((uint8_t *)buf + *got, b->data + in_off, n);
		*got += n;
	}
	if (*got && s->obj.layout == QFS_LAYOUT_CHUNKED) {
		uint64_t cs = s->obj.chunk_size;
		uint64_t first = off / cs, last = (off + *got - 1) / cs;
		if (first == s->ra_last || first == s->ra_last + 1)
			readahead_queue(fs, in, s, last);
		s->ra_last = last;
	}
	cb_trim(s);
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_write(qfs_fs *fs, uint64_t fh, uint64_t off, const void *buf, size_t size)
{
	qfs_fh *h = fh_of(fh);
	qfs_inode *in = h->in;
	int rc = 0;
	pthread_mutex_lock(&in->lock);
	qfs_ist *s = open_state(fs, in, &rc);
	if (!s)
		goto out;
	qfs_obj *o = &s->obj;
	if (h->flags & O_APPEND)
		off = o->size;
	uint64_t end = off + size;
	if (end > QFS_FILE_SIZE_MAX || end < off) {
		rc = -EFBIG;
		goto out;
	}
	if (o->layout == QFS_LAYOUT_INLINE && end > fs->c.inline_max) {
		rc = to_chunked(fs, s);
		if (rc)
			goto out;
	}
	if (end > o->size) {
		rc = set_size(fs, s, end);
		if (rc)
			goto out;
	}
	if (o->layout == QFS_LAYOUT_INLINE) {
		memcpy(o->inline_data + off, buf, size);
	} else {
		uint32_t cs = o->chunk_size;
		size_t done = 0;
		while (done < size) {
			uint64_t pos = off + done;
			uint64_t idx = pos / cs;
			size_t in_off = (size_t)(pos % cs);
			size_t n = cs - in_off < size - done ? cs - in_off : size - done;
			cbuf *b;
			/* a whole-chunk overwrite needs no read of the old bytes */
			int whole = in_off == 0 && (n == cs || pos + n >= o->size);
			rc = cb_get(fs, s, idx, !whole, &b);
			if (rc)
				goto out;
			memcpy(b->data + in_off, (const uint8_t *)buf + done, n);
			if (!b->dirty)
				s->dirty_bytes += cs;
			b->dirty = 1;
			done += n;
			if (in_off + n == cs && fs->nwriters)
				submit_chunk(fs, in, s, idx); /* filled to its end */
		}
		if (s->dirty_bytes >= fs->c.max_dirty) {
			rc = flush_chunks(fs, in, s);
			if (rc)
				goto out;
		}
	}
	o->mtime_ns = o->ctime_ns = now_ns();
	snprintf(o->origin, sizeof(o->origin), "%s", fs->node_id);
	s->dirty_meta = 1;
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_flush(qfs_fs *fs, uint64_t fh)
{
	qfs_inode *in = fh_of(fh)->in;
	pthread_mutex_lock(&in->lock);
	int rc = in->state ? ist_flush(fs, in, in->state) : 0;
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_fsync(qfs_fs *fs, uint64_t fh)
{
	return qfs_fs_flush(fs, fh);
}

int qfs_fs_release(qfs_fs *fs, uint64_t fh)
{
	qfs_fh *h = fh_of(fh);
	qfs_inode *in = h->in;
	pthread_mutex_lock(&in->lock);
	int rc = in->state ? ist_flush(fs, in, in->state) : 0;
	if (rc)
		Q_ERROR(LOGC, "release of inode %" PRIu64 ": data not stored: %s", in->ino,
			strerror(-rc));
	pthread_mutex_unlock(&in->lock);
	if (qfs_itable_release(fs->it, in)) {
		pthread_mutex_lock(&in->lock);
		qfs_ist *s = in->state;
		if (s && !ist_dirty(s))
			ist_drop_bufs(s); /* keep the version, not the data */
		pthread_mutex_unlock(&in->lock);
		qfs_itable_release_done(fs->it, in);
	}
	handle_del(fs, &h->link);
	free(h);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */

static int list_add(qfs_dirlist *l, size_t *cap, const char *name, uint8_t type, int conflict,
		    const qfs_obj *o)
{
	if (l->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		qfs_dirent_info *ne = realloc(l->e, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		*cap = nc;
	}
	qfs_dirent_info *e = &l->e[l->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->type = type;
	e->conflict = conflict;
	if (o) {
		e->have_attr = 1;
		obj_to_stat(o, 0, &e->st);
	}
	return 0;
}

int qfs_fs_opendir(qfs_fs *fs, uint64_t ino, uint64_t *fh)
{
	qfs_inode *in;
	qfs_ist *s;
	qfs_dh *dh = calloc(1, sizeof(*dh));
	size_t cap = 0;
	int rc;
	if (!dh)
		return -ENOMEM;
	rc = lock_fresh(fs, ino, 0, &in, &s, dh->path);
	if (rc) {
		free(dh);
		return rc;
	}
	if (s->obj.type != QFS_T_DIR || in->conflict) {
		pthread_mutex_unlock(&in->lock);
		free(dh);
		return -ENOTDIR;
	}
	qfs_obj d;
	rc = qfs_obj_copy(&d, &s->obj); /* with this mount's unstored changes */
	pthread_mutex_unlock(&in->lock);
	if (rc) {
		free(dh);
		return rc;
	}
	/* one batched read of the children, MGET_BATCH keys at a time */
	q_slice *keys = calloc(MGET_BATCH, sizeof(q_slice));
	char *kb = malloc((size_t)MGET_BATCH * KEYMAX);
	qc_object *objs = calloc(MGET_BATCH, sizeof(qc_object));
	int *rcs = calloc(MGET_BATCH, sizeof(int));
	if (!keys || !kb || !objs || !rcs)
		rc = -ENOMEM;
	for (size_t base = 0; rc == 0 && base < d.nent; base += MGET_BATCH) {
		size_t n = d.nent - base < MGET_BATCH ? d.nent - base : MGET_BATCH;
		for (size_t i = 0; i < n; i++) {
			char cp[QFS_PATH_MAX + 1];
			if (qfs_path_join(dh->path, d.ent[base + i].name, cp, sizeof(cp))) {
				keys[i] = q_slice_str("");
				continue;
			}
			key_of(cp, kb + i * KEYMAX);
			keys[i] = q_slice_str(kb + i * KEYMAX);
			qc_object_init(&objs[i]);
		}
		rc = qfs_errno(qc_mget(fs->c.client, keys, n, &fs->kv, objs, rcs));
		for (size_t i = 0; i < n; i++) {
			const qfs_dirent *e = &d.ent[base + i];
			if (rc == 0 && rcs[i] == 0) {
				qfs_view v;
				view_init(&v);
				v.raw = objs[i];
				qc_object_init(&objs[i]);
				if (view_build(&v, kb + i * KEYMAX) == 0) {
					const qfs_obj *sh = view_shown(&v);
					rc = list_add(&dh->list, &cap, e->name, sh->type, 0, sh);
					for (size_t k = 1; rc == 0 && k < v.ncand; k++) {
						char cn[QFS_NAME_MAX + 1];
						if (qfs_conflict_name(e->name, v.cand, v.ncand, k, cn))
							continue;
						const qfs_obj *co = view_obj(&v, k);
						rc = list_add(&dh->list, &cap, cn, co->type, 1, co);
					}
				}
				view_free(&v);
			} else if (rc == 0 && rcs[i] != Q_ENOTFOUND) {
				/* unreadable right now: list the name, attributes later */
				rc = list_add(&dh->list, &cap, e->name, e->type, 0, NULL);
			}
			qc_object_free(&objs[i]);
		}
	}
	free(keys);
	free(kb);
	free(objs);
	free(rcs);
	qfs_obj_free(&d);
	if (rc) {
		free(dh->list.e);
		free(dh);
		return rc;
	}
	dh->in = in;
	qfs_itable_open(fs->it, in);
	dh->link.is_dir = 1;
	handle_add(fs, &dh->link);
	*fh = (uint64_t)(uintptr_t)dh;
	return 0;
}

qfs_dirlist *qfs_fs_dirlist(qfs_fs *fs, uint64_t fh)
{
	return &((qfs_dh *)(uintptr_t)fh)->list;
}

int qfs_fs_dirent_lookup(qfs_fs *fs, uint64_t fh, size_t i, uint64_t *ino, struct stat *st)
{
	qfs_dh *dh = (qfs_dh *)(uintptr_t)fh;
	char cp[QFS_PATH_MAX + 1];
	if (i >= dh->list.n || !dh->list.e[i].have_attr)
		return -ENOENT;
	qfs_dirent_info *e = &dh->list.e[i];
	Q_RET(qfs_path_join(dh->path, e->name, cp, sizeof(cp)));
	Q_RET(qfs_itable_lookup(fs->it, cp, e->type, e->conflict, ino));
	*st = e->st;
	st->st_ino = *ino;
	return 0;
}

int qfs_fs_fsyncdir(qfs_fs *fs, uint64_t ino)
{
	qfs_inode *in = qfs_itable_get(fs->it, ino);
	if (!in)
		return -ENOENT;
	pthread_mutex_lock(&in->lock);
	int rc = in->state ? ist_flush(fs, in, in->state) : 0;
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_releasedir(qfs_fs *fs, uint64_t fh)
{
	qfs_dh *dh = (qfs_dh *)(uintptr_t)fh;
	qfs_inode *in = dh->in;
	if (qfs_itable_release(fs->it, in))
		qfs_itable_release_done(fs->it, in);
	handle_del(fs, &dh->link);
	free(dh->list.e);
	free(dh);
	return 0;
}

/* ------------------------------------------------------------------ */
/* statfs and xattrs                                                    */

void qfs_space_to_statvfs(const qfs_space *sp, uint64_t inodes_in_use, struct statvfs *sv)
{
	memset(sv, 0, sizeof(*sv));
	/* every byte of file data is stored on min(N, members) disks: the
	 * cluster holds the members' sum divided by that many copies */
	uint64_t copies = sp->n > 0 ? (uint64_t)sp->n : 1;
	if (sp->answered > 0 && copies > sp->answered)
		copies = sp->answered;
	sv->f_bsize = QFS_STATFS_BSIZE;
	sv->f_frsize = QFS_STATFS_BSIZE;
	sv->f_blocks = sp->total / copies / QFS_STATFS_BSIZE;
	sv->f_bfree = sp->free / copies / QFS_STATFS_BSIZE;
	sv->f_bavail = sp->avail / copies / QFS_STATFS_BSIZE;
	uint64_t ffree = sp->avail / copies / QFS_STATFS_FILE_BYTES;
	if (ffree > QFS_STATFS_FILES_MAX)
		ffree = QFS_STATFS_FILES_MAX;
	sv->f_ffree = ffree;
	sv->f_favail = ffree;
	sv->f_files = ffree + inodes_in_use;
	sv->f_namemax = QFS_NAME_MAX;
}

static int local_space(const qfs_fs *fs, qfs_space *sp)
{
	struct statvfs local;
	memset(sp, 0, sizeof(*sp));
	if (statvfs(fs->data_dir, &local) != 0)
		return -errno;
	uint64_t fr = local.f_frsize ? local.f_frsize : 4096;
	sp->total = (uint64_t)local.f_blocks * fr;
	sp->free = (uint64_t)local.f_bfree * fr;
	sp->avail = (uint64_t)local.f_bavail * fr;
	sp->files = local.f_files;
	sp->ffree = local.f_ffree;
	sp->members = sp->answered = 1;
	sp->n = 1;
	return 0;
}

int qfs_fs_statfs(qfs_fs *fs, struct statvfs *sv)
{
	qfs_space sp;
	uint64_t now = q_mono_ms();
	pthread_mutex_lock(&fs->space_mu);
	int fresh = fs->space_ms && now - fs->space_ms < QFS_STATFS_CACHE_MS;
	sp = fs->space;
	pthread_mutex_unlock(&fs->space_mu);
	if (!fresh) {
		int rc = fs->c.space ? fs->c.space(fs->c.space_arg, &sp) : -ENOSYS;
		size_t log_as = 0;
		if (rc < 0) {
			if (fs->c.space)
				Q_WARN("qfs", "statfs: cannot ask the cluster (%s); reporting the local "
					      "data disk", q_strerror(rc));
			if (local_space(fs, &sp) < 0)
				memset(&sp, 0, sizeof(sp));
		} else if (sp.answered < sp.members) {
			log_as = sp.answered;
		}
		pthread_mutex_lock(&fs->space_mu);
		int say = log_as && log_as != fs->space_logged;
		fs->space_logged = log_as;
		fs->space = sp;
		fs->space_ms = q_mono_ms();
		pthread_mutex_unlock(&fs->space_mu);
		if (say)
			Q_WARN("qfs", "statfs: %zu of %zu members answered; the figures leave out "
				      "the others", sp.answered, sp.members);
	}
	qfs_space_to_statvfs(&sp, qfs_itable_count(fs->it), sv);
	return 0;
}

static int xattr_ns_ok(const char *name)
{
	return strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strncmp(name, "security.", 9) == 0;
}

/* The text of user.quorum.siblings for the inode's current view. */
static int siblings_text(const qfs_ist *s, const char *name, q_buf *out)
{
	const qfs_view *v = &s->v;
	for (size_t k = 0; k < v->ncand; k++) {
		const qfs_obj *o = view_obj(v, k);
		char cn[QFS_NAME_MAX + 1];
		const char *shown = name;
		if (k > 0 && qfs_conflict_name(name, v->cand, v->ncand, k, cn) == 0)
			shown = cn;
		Q_RET(q_buf_printf(out, "%s\tnode=%s counter=%" PRIu64 " origin=%s mtime_ns=%" PRId64
				   " size=%" PRIu64 "\n",
				   shown, v->cand[k].node ? v->cand[k].node : "", v->cand[k].counter,
				   o->origin, o->mtime_ns, o->size));
	}
	q_buf tok = Q_BUF_INIT;
	int rc = qc_ctx_to_token(q_buf_slice(&v->raw.context), &tok);
	if (rc == 0) {
		rc = q_buf_printf(out, "context=%.*s\n", (int)tok.len, (const char *)tok.p);
	}
	q_buf_free(&tok);
	return rc;
}

int qfs_fs_getxattr(qfs_fs *fs, uint64_t ino, const char *name, void *buf, size_t cap)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	int rc = lock_fresh(fs, ino, 0, &in, &s, path);
	if (rc)
		return rc;
	if (strcmp(name, QFS_XATTR_SIBLINGS) == 0) {
		q_buf t = Q_BUF_INIT;
		char parent[QFS_PATH_MAX + 1];
		rc = siblings_text(s, qfs_path_split(path, parent, sizeof(parent)), &t);
		if (rc == 0) {
			if (cap == 0)
				rc = (int)t.len;
			else if (cap < t.len)
				rc = -ERANGE;
			else {
				memcpy(buf, t.p, t.len);
				rc = (int)t.len;
			}
		}
		q_buf_free(&t);
		pthread_mutex_unlock(&in->lock);
		return rc;
	}
	const qfs_xattr *x = qfs_xattr_get(&s->obj, name);
	if (!x)
		rc = -ENODATA;
	else if (cap == 0)
		rc = (int)x->len;
	else if (cap < x->len)
		rc = -ERANGE;
	else {
		if (x->len)
			memcpy(buf, x->value, x->len);
		rc = (int)x->len;
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_listxattr(qfs_fs *fs, uint64_t ino, char *buf, size_t cap)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	int rc = lock_fresh(fs, ino, 0, &in, &s, path);
	if (rc)
		return rc;
	size_t need = 0;
	for (size_t i = 0; i < s->obj.nxattr; i++)
		need += strlen(s->obj.xattr[i].name) + 1;
	int multi = s->v.ncand > 1;
	if (multi)
		need += sizeof(QFS_XATTR_SIBLINGS);
	if (cap == 0) {
		rc = (int)need;
	} else if (cap < need) {
		rc = -ERANGE;
	} else {
		size_t off = 0;
		for (size_t i = 0; i < s->obj.nxattr; i++) {
			size_t l = strlen(s->obj.xattr[i].name) + 1;
			memcpy(buf + off, s->obj.xattr[i].name, l);
			off += l;
		}
		if (multi)
			memcpy(buf + off, QFS_XATTR_SIBLINGS, sizeof(QFS_XATTR_SIBLINGS));
		rc = (int)need;
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

static int xattr_change(qfs_fs *fs, uint64_t ino, const char *name, const void *val, size_t len,
			int flags, int remove)
{
	qfs_inode *in;
	qfs_ist *s;
	char path[QFS_PATH_MAX + 1];
	if (!xattr_ns_ok(name))
		return -EOPNOTSUPP;
	if (strcmp(name, QFS_XATTR_SIBLINGS) == 0)
		return -EPERM;
	int rc = lock_fresh(fs, ino, 1, &in, &s, path);
	if (rc)
		return rc;
	if (in->conflict) {
		rc = -EPERM;
	} else {
		rc = remove ? qfs_xattr_remove(&s->obj, name)
			    : qfs_xattr_set(&s->obj, name, val, len, flags);
		if (rc == 0) {
			s->obj.ctime_ns = now_ns();
			rc = store_now(fs, in, s);
		}
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int qfs_fs_setxattr(qfs_fs *fs, uint64_t ino, const char *name, const void *val, size_t len,
		    int flags)
{
	return xattr_change(fs, ino, name, val, len, flags, 0);
}

int qfs_fs_removexattr(qfs_fs *fs, uint64_t ino, const char *name)
{
	return xattr_change(fs, ino, name, NULL, 0, 0, 1);
}
