/*
 * ver.h - versions (the set of live tables per level) and the manifest that
 * makes a version durable.
 *
 * A version is immutable once built: changes make a new version from the
 * current one plus an edit. Versions and table files are reference counted:
 * the engine holds the current version, every reader and iterator holds the
 * version it started with, and a version holds each of its files. A file
 * removed from the current version is marked obsolete; when its last
 * reference goes its table is closed and the file unlinked (or renamed to
 * NNNNNN.sst.bad if it was quarantined).
 *
 * Blob files: a table holds a reference on every blob file it points into
 * (set once, before the table enters any version); a version holds the
 * union of its tables' blob files, sorted by number. A blob file that
 * leaves the current version is marked obsolete and unlinked when its last
 * reference goes (blob.h).
 *
 * Level invariants: level 0 files may overlap and are kept newest first
 * (highest file number first); files of levels >= 1 do not overlap and are
 * kept in key order.
 *
 * The manifest is a full snapshot (counters + file list) with a checksum,
 * written by ver_manifest_write with write-new, fsync, rename, fsync-dir
 * (q_env_write_atomic). Format in docs/lsm.md.
 *
 * Thread safety: ref/unref are atomic; building and installing versions is
 * serialised by the engine.
 */
#ifndef Q_LSM_VER_H
#define Q_LSM_VER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lsm/blob.h"
#include "lsm/lsm_format.h"
#include "lsm/lsm_internal.h"
#include "lsm/sst.h"
#include "util/buf.h"
#include "util/env.h"

typedef struct lsm_file {
	uint64_t number;
	uint64_t size;
	q_buf smallest, largest;  /* internal keys */
	sst_table *t;             /* open reader (NULL only while decoding) */
	atomic_int refs;
	atomic_int obsolete;      /* unlink when the last reference goes */
	atomic_int quarantined;   /* corrupt: rename to .bad instead */
	q_env *env;
	lsm_blob **blobs;         /* blob files this table points into (refs) */
	size_t nblobs;
	int edit_mark;            /* scratch of ver_edit and of the engine's
	                           * version install, 0 between calls; only
	                           * touched where versions are built (which
	                           * the engine serialises) */
	char path[512];
} lsm_file;

typedef struct lsm_version {
	atomic_int refs;
	lsm_file **files[LSM_LEVELS];
	size_t nfiles[LSM_LEVELS];
	lsm_blob **blobs;         /* every blob file of the tables, by number */
	size_t nblobs;
	struct lsm_version *defer_next; /* the engine's list of versions whose
	                           * last reference a call that never blocks
	                           * handed to a background thread */
} lsm_version;

/* ---- files ---- */
lsm_file *ver_file_new(q_env *env, const char *dir, uint64_t number, uint64_t size,
		       q_slice smallest, q_slice largest);
void ver_file_ref(lsm_file *f);
void ver_file_unref(lsm_file *f);
/* Records the blob files f points into (references taken; duplicates
 * dropped). Only before f is shared. 0 or -ENOMEM. */
int ver_file_set_blobs(lsm_file *f, lsm_blob *const *blobs, size_t n);
void ver_table_path(char *out, size_t cap, const char *dir, uint64_t number);
void ver_log_path(char *out, size_t cap, const char *dir, uint64_t number);

/* ---- versions ---- */
lsm_version *ver_new(void);
void ver_ref(lsm_version *v);
void ver_unref(lsm_version *v);
/* A copy of base (may be NULL) without the files in del (nd of them) and
 * with add[i] at level add_level[i] (references taken); NULL on ENOMEM.
 * Linear in the files of base, del and add (plus sorting each level). */
lsm_version *ver_edit(const lsm_version *base, lsm_file *const *del, size_t nd,
		      lsm_file *const *add, const int *add_level, size_t na);
uint64_t ver_level_bytes(const lsm_version *v, int level);
/* Index of the first file in a sorted level whose largest key >= ikey. */
size_t ver_find_file(const lsm_version *v, int level, q_slice ikey);
/* 1 if some file of level overlaps user keys [lo, hi]. */
int ver_overlaps(const lsm_version *v, int level, q_slice lo, q_slice hi);
/* Concatenating iterator over a sorted level (level >= 1); the version
 * must outlive it. */
lsm_it *ver_level_iter(const lsm_version *v, int level, int fill_cache);
/* The same over an array of non-overlapping files in key order (the array
 * and files must outlive the iterator). */
lsm_it *ver_files_iter(lsm_file *const *files, size_t n, int fill_cache);
/* The blob file `number` of v, or NULL. */
lsm_blob *ver_find_blob(const lsm_version *v, uint64_t number);
/* 1 if some file of v points into blob file b. */
int ver_file_has_blob(const lsm_file *f, const lsm_blob *b);
/* 1 if ukey lies in the key range of some file of a sorted level. */
int ver_key_in_level(const lsm_version *v, int level, q_slice ukey);

/* ---- manifest ---- */
typedef struct man_file {
	int level;
	uint64_t number, size;
	q_slice smallest, largest; /* point into the decoded buffer */
	size_t ref_start, nrefs;   /* its blob numbers: refs[ref_start..+nrefs) */
} man_file;

typedef struct man_blob {
	uint64_t number, size, garbage;
	int is_log;                /* a kept commit log (version 3) */
} man_blob;

typedef struct man_data {
	uint64_t next_file;
	uint64_t last_seq;
	uint64_t log_number;
	man_file *files;
	size_t nfiles;
	uint64_t *refs;            /* blob numbers of all files */
	size_t nrefs;
	man_blob *blobs;           /* blob files, ascending numbers */
	size_t nblobs;
} man_data;

/* Encodes counters + every file of v into out (appended). */
int ver_manifest_encode(q_buf *out, uint64_t next_file, uint64_t last_seq, uint64_t log_number,
			const lsm_version *v);
/* Decodes and checks buf (borrowed; md's key slices point into it). The
 * caller frees md with ver_manifest_free (also after an error). Q_ECORRUPT
 * with *bad_off = offset of the problem, Q_EVERSION for an unknown version.
 * Every blob number a file names is in md->blobs. */
int ver_manifest_decode(const uint8_t *buf, size_t n, man_data *md, size_t *bad_off);
/* Frees the arrays of md (not the buffer it points into). */
void ver_manifest_free(man_data *md);

#endif
