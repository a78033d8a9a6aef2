/*
 * lsm.c - the storage engine: write path with group commit, read path,
 * memtable flushes, leveled compaction, recovery, quarantine (see lsm.h;
 * formats and design in docs/lsm.md).
 *
 * Design notes (numbered invariants):
 *  1. Every write goes to the commit log before the memtable. Under
 *     LSM_SYNC_ALWAYS the log is fsynced before any writer of the group is
 *     told "done"; a write is visible to readers only after that (last_seq
 *     is published after the memtable insert).
 *  2. Writers queue; the head of the queue (the leader) makes room, merges
 *     the queued batches into one log record (group commit), appends and
 *     syncs it, inserts into the memtable and wakes the others. Only the
 *     leader touches the active memtable and the log writer, so inserts are
 *     single-threaded and readers need no lock on the skiplist.
 *  3. A full memtable becomes immutable (at most LSM_MAX_IMM wait) with a
 *     fresh log file; the flush thread writes it to a level-0 table.
 *  4. Every change of the table set builds a new version and makes it
 *     durable through the manifest (write-new, fsync, rename, fsync dir)
 *     before it is installed; man_mu serialises these changes. The manifest
 *     names the lowest log still needed; older logs are deleted only after
 *     the manifest that drops them is durable.
 *  5. Files leave the disk only when no version references them (ver.h).
 *  6. Recovery: read the manifest, open its tables (a corrupt one is
 *     quarantined), replay the logs it still needs into level-0 tables,
 *     write a new manifest naming a fresh log, then delete what no longer
 *     belongs (old logs, orphan tables from an interrupted flush or
 *     compaction).
 *  7. A table that fails a checksum is quarantined: reads that hit it get
 *     Q_ECORRUPT until the compaction thread drops it from the version and
 *     renames it NNNNNN.sst.bad; the store keeps serving everything else.
 *  8. Writers stall (bounded memory) when LSM_MAX_IMM memtables wait for a
 *     flush or level 0 reaches L0_STOP files; past L0_SLOWDOWN each write
 *     is delayed by 1 ms once, to let compaction keep up.
 *  9. Key-value separation (blob.h): a flush writes values of at least
 *     blob_threshold bytes to one new blob file, fsynced before the table
 *     that points into it; tables and versions reference their blob files,
 *     so a blob file leaves the disk only when no version (current, the
 *     one of MANIFEST.prev, or a reader's) points into it. Compaction adds
 *     the bytes of the pointers it drops to their blob file's garbage and
 *     moves the records still pointed to out of a blob file whose garbage
 *     passed BLOB_GC_NUM/BLOB_GC_DEN into its own new blob file (garbage
 *     collection inside compaction: the pointer change is installed with
 *     the version, so no race with writers); when nothing else is due it
 *     rewrites, alone in place, a table (level >= 1) pointing into such a
 *     file.
 * 10. Values in their log (lsm_options.log_values): a value the memtable
 *     holds by reference into a logged batch encoding (batch_hold_set_log)
 *     is, if it does not compress, not copied at its flush: the table
 *     points at its bytes in the memtable's commit log (BLOB_PTR_LOG, with
 *     a checksum of key and value), provided the log is sealed (closed
 *     with every record written, mem_seal_log). The flush fsyncs the log
 *     before the table is finished, and the log becomes a blob file of the
 *     version (manifest kind MANIFEST_BLOB_LOG): never replayed again
 *     (the manifest's log number is past it), not deleted with the logs
 *     the manifest no longer needs (install_edit, recovery), but like any
 *     blob file when no version points into it; collected by the same GC.
 *     A failed flush never marks the log obsolete (it is still needed for
 *     replay).
 *
 * Lifecycle of a memtable:
 *
 *     active --(full: make_room)--> immutable --(flush_one)--> table in L0
 *                                                   |
 *                                   log deleted <---+ (manifest durable)
 *
 * 11. Early log write-out (lsm_options.log_early_write; the log is
 *     buffered under LSM_SYNC_NONE and LSM_SYNC_BATCH): a leader of
 *     lsm_write (a thread that may block) whose commit leaves the log
 *     writer's buffer at the mark or above writes the buffer out, under
 *     log_mu, as it would once the buffer is full. lsm_write_nowait never
 *     does; the first nowait write that finds the buffer past the mark
 *     gets -EAGAIN (log_nudged, reset once a nowait write finds the
 *     buffer below the mark again), so that its caller's lsm_write writes
 *     the buffer out, while the writes after it still fill the rest of
 *     the buffer. So the buffer is seldom full when a nowait write
 *     comes. Only the moment of that write() changes: a write is
 *     acknowledged exactly as before (in the buffer under none and batch;
 *     the batch sync thread's fsync covers it), and a failed write-out
 *     fails the write and the log as a full buffer's would (bg_error).
 *
 * Threads: callers (any number), one flush thread (which also releases
 * the versions whose last reference a nowait lookup dropped), one
 * compaction thread, and for LSM_SYNC_BATCH one sync thread. Lock order:
 * man_mu, then mu, then log_mu; no thread holding mu waits for log_mu.
 */
#include "lsm/lsm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lsm/batch.h"
#include "lsm/blob.h"
#include "lsm/cache.h"
#include "lsm/lsm_internal.h"
#include "lsm/mem.h"
#include "lsm/sst.h"
#include "lsm/ver.h"
#include "lsm/wal.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define LSM_MAX_IMM 2
#define GROUP_MAX (1u << 20)
/* Under sync=always a leader waits up to this long for as many writers as
 * its predecessor committed to queue up, so closed-loop writers that just
 * got their acknowledgement join the next fsync instead of forming a second
 * cohort that alternates with the first (adaptive commit delay). */
#define GATHER_MAX_NS 200000
#define GATHER_GAP_NS 50000 /* ... or until no writer arrived for this long */
/* lsm_options.log_early_write by default: a quarter of the log writer's
 * 64 KiB buffer, so the other three quarters take the nowait writes that
 * come before the next blocking one (invariant 11) */
#define LSM_LOG_EARLY_WRITE_DEFAULT (16u << 10)

typedef struct writer {
	lsm_batch *b;     /* NULL: a request to switch the memtable (lsm_flush) */
	int done;
	int rc;
	pthread_cond_t cv;
	struct writer *next;
} writer;

struct lsm_db {
	char dir[400];
	q_env *env;
	lsm_options o;
	sst_opts so;
	q_file *lockf;
	blk_cache *cache;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;   /* background threads wait for work */
	pthread_cond_t state_cv;  /* flush/compaction finished; stalled writers */
	mem_table *mem;
	mem_table *imm[LSM_MAX_IMM]; /* imm[0] oldest */
	int nimm;
	lsm_version *cur;
	uint64_t next_file;
	_Atomic uint64_t last_seq;
	uint64_t log_number;
	writer *wq_head, *wq_tail;
	int wq_len;               /* writers queued, leader included */
	int last_group;           /* writers in the last committed group */
	int gathering;            /* a sync leader waits for its group to form */
	pthread_cond_t gather_cv;
	lsm_batch *group;
	int bg_error;
	uint64_t resume_ns;       /* last attempt to resume after -ENOSPC */
	int switch_err;           /* error of the last failed memtable switch
	                           * (a new log that could not be created), 0
	                           * after a switch that worked; under mu */
	uint64_t switch_err_ns;   /* when switch_err was last logged */
	lsm_version *deferred;    /* versions whose last reference a nowait
	                           * lookup dropped, for the flush thread to
	                           * release (view_drop_nowait); under mu */
	void (*view_hook)(void *); /* lsm_test_set_view_hook */
	void *view_hook_arg;
	uint64_t log_bad;         /* number of the commit log whose write or
	                           * sync failed, recorded here (under mu) by
	                           * the thread that saw it, so that log_failed
	                           * need not take log_mu; 0 = none */
	uint64_t jitter_seed;     /* per open: the memtables' flush points */
	int manifest_unsure;      /* man_mu: the last write_manifest failed after
				   * its MANIFEST was renamed into place */
	int compact_error;        /* last compaction failure, 0 after a success */
	int closing;
	int manual_pending;
	uint64_t manual_gen, manual_done;
	int manual_rc;
	q_buf compact_ptr[LSM_LEVELS];

	pthread_mutex_t log_mu;
	wal_writer *log;
	uint64_t log_num;
	int log_nudged;           /* log_mu: a nowait write was refused since the
				   * buffer passed log_early_write (invariant 11) */

	pthread_mutex_t man_mu;
	_Atomic uint64_t manifest_size;
	/* MANIFEST.prev describes prev_ver with log number prev_log_number;
	 * its tables (held by prev_ver) and logs (pend_logs) stay on disk until
	 * the next manifest replaces it, so a corrupt MANIFEST can fall back */
	lsm_version *prev_ver;
	uint64_t *pend_logs;
	size_t npend_logs;
	int manifest_fallback;    /* this open recovered from MANIFEST.prev */

	pthread_t flush_thr, compact_thr, sync_thr;
	int have_flush, have_compact, have_sync;
	pthread_cond_t sync_cv;

	_Atomic uint64_t st_flushes, st_compactions, st_compact_bytes, st_stall_ns;
	_Atomic uint64_t st_quarantined, st_corrupt_records;
	_Atomic uint64_t st_groups, st_group_writes;
	_Atomic uint64_t st_blob_moved;
	_Atomic uint64_t st_blob_skipped; /* iterator entries passed over (corrupt blob) */
	/* -EAGAIN of the nowait calls by cause (lsm_stats), early write-outs */
	_Atomic uint64_t st_nw_get, st_nw_queue, st_nw_room, st_nw_log_busy, st_nw_log_full;
	_Atomic uint64_t st_nw_log_mark, st_nw_sync;
	_Atomic uint64_t st_log_early;
};

void lsm_options_default(lsm_options *o)
{
	memset(o, 0, sizeof(*o));
	o->env = NULL;
	o->create_if_missing = 1;
	o->sync = LSM_SYNC_ALWAYS;
	o->sync_batch_ms = 10;
	o->write_buffer_size = 4u << 20;
	o->block_size = 4096;
	o->bloom_bits_per_key = 10;
	o->block_cache_size = 8u << 20;
	o->compression = 1;
	o->max_key_size = 64u << 10;
	o->max_value_size = 64u << 20;
	o->mmap_reads = 1;
	o->blob_threshold = BLOB_THRESHOLD_DEFAULT;
	o->log_values = 1;
	o->log_early_write = LSM_LOG_EARLY_WRITE_DEFAULT;
	o->nowait_page_cache = 1;
}

/* ================= small helpers ================= */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct corrupt_hook {
	lsm_db *db;
	lsm_file *f;
} corrupt_hook;

static void quarantine_request(lsm_db *db, lsm_file *f)
{
	int was = atomic_exchange(&f->quarantined, 1);
	if (was)
		return;
	Q_ERROR("lsm", "quarantining table %s", f->path);
	pthread_mutex_lock(&db->mu);
	pthread_cond_broadcast(&db->work_cv);
	pthread_mutex_unlock(&db->mu);
}

/* The table's owner pointer is a corrupt_hook naming the db and the file. */
static void table_corrupt_cb(void *owner, sst_table *t)
{
	corrupt_hook *h = owner;
	quarantine_request(h->db, h->f);
}

/* Opens the table of f and wires its corruption hook. The hook memory is
 * owned by the table (freed by sst_close). */
static int file_open_table(lsm_db *db, lsm_file *f)
{
	sst_table *t;
	int rc = sst_open(db->env, f->path, f->number, db->cache, db->o.mmap_reads, &t);
	if (rc)
		return rc;
	if (f->size && t->size != f->size) {
		/* the manifest records the size of every table it names: a file
		 * of another size was cut short (or extended) behind our back */
		Q_ERROR("lsm", "table %s is %llu bytes, the manifest says %llu", f->path,
			(unsigned long long)t->size, (unsigned long long)f->size);
		sst_close(t);
		return Q_ECORRUPT;
	}
	corrupt_hook *h = malloc(sizeof(*h));
	if (!h) {
		sst_close(t);
		return -ENOMEM;
	}
	h->db = db;
	h->f = f;
	t->owner = h;
	t->on_corrupt = table_corrupt_cb;
	f->t = t;
	return 0;
}

/*
 * Marks obsolete what leaves the disk with the edit that made nv from old
 * (nv = old - del + add, ver_edit; del is part of old): the files of del
 * that add does not put back (a trivial move does), and the blob files of
 * old that nv no longer has; the tables are dropped from the resident set
 * (madvise; MANIFEST.prev keeps them a while). Linear in nd + na and the
 * two blob lists (sorted by number). Called from install_edit with man_mu
 * held and mu not held: nothing is deleted before the last reference goes,
 * and old stays the current version until install_edit publishes nv.
 */
static void mark_obsolete_edit(const lsm_version *old, const lsm_version *nv,
			       lsm_file *const *del, size_t nd, lsm_file *const *add, size_t na)
{
	for (size_t j = 0; j < na; j++)
		add[j]->edit_mark = 1;
	int quarantined = 0; /* a table leaving was quarantined */
	for (size_t i = 0; i < nd; i++) {
		lsm_file *f = del[i];
		if (f->edit_mark)
			continue;
		atomic_store(&f->obsolete, 1);
		sst_drop_pages(f->t);
		quarantined |= atomic_load(&f->quarantined);
	}
	size_t k = 0;
	for (size_t i = 0; i < old->nblobs; i++) {
		lsm_blob *b = old->blobs[i];
		while (k < nv->nblobs && nv->blobs[k]->number < b->number)
			k++;
		if (k < nv->nblobs && nv->blobs[k] == b)
			continue;
		atomic_store(&b->obsolete, 1);
		/* its last tables included a quarantined one: its records may be
		 * the only intact copy of that table's large values (a
		 * quarantined table that stays keeps its blob files in nv) */
		for (size_t j = 0; quarantined && j < nd; j++)
			if (!del[j]->edit_mark && atomic_load(&del[j]->quarantined) &&
			    ver_file_has_blob(del[j], b))
				atomic_store(&b->quarantined, 1);
	}
	for (size_t j = 0; j < na; j++)
		add[j]->edit_mark = 0;
}

static int manifest_path(lsm_db *db, char *out, size_t cap)
{
	if (snprintf(out, cap, "%s/%s", db->dir, MANIFEST_NAME) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

/* Makes v the durable version: MANIFEST.tmp is written and fsynced, the
 * directory is fsynced (so the tables and blob files v names have durable
 * entries before any manifest names them), the current MANIFEST becomes
 * MANIFEST.prev, MANIFEST.tmp becomes MANIFEST, and the directory is
 * fsynced again. A crash between the renames leaves no MANIFEST but a
 * valid MANIFEST.prev, which recovery then uses.
 *
 * On failure db->manifest_unsure tells the caller whether the new MANIFEST
 * may be in place anyway (the last directory fsync failed after the
 * renames): then the files v names must be kept, because the next open may
 * well recover from this manifest. Called with man_mu held (or from open). */
static int write_manifest(lsm_db *db, lsm_version *v, uint64_t next_file, uint64_t last_seq,
			  uint64_t log_number)
{
	char path[512], tmp[520], prev[520];
	q_buf b = Q_BUF_INIT;
	q_file *f = NULL;
	int rc;
	Q_ERR(manifest_path(db, path, sizeof(path)));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(prev, sizeof(prev), "%s%s", path, MANIFEST_PREV_SUFFIX);
	db->manifest_unsure = 0;
	Q_ERR(ver_manifest_encode(&b, next_file, last_seq, log_number, v));
	Q_ERR(q_env_open(db->env, tmp, Q_OPEN_CREATE, &f));
	Q_ERR(q_file_append(f, b.p, b.len));
	Q_ERR(q_file_sync(f));
	rc = q_file_close(f);
	f = NULL;
	if (rc)
		goto fail;
	Q_ERR(q_env_sync_dir(db->env, db->dir));
	rc = q_env_rename(db->env, path, prev);
	if (rc && rc != -ENOENT)
		goto fail;
	Q_ERR(q_env_rename(db->env, tmp, path));
	rc = q_env_sync_dir(db->env, db->dir);
	if (rc) {
		db->manifest_unsure = 1;
		Q_ERROR("lsm", "manifest %s is in place but its directory could not be synced "
			"(%s): keeping every file it names", path, q_strerror(rc));
		goto fail;
	}
	atomic_store(&db->manifest_size, b.len);
	q_buf_free(&b);
	return 0;
fail:
	Q_ERROR("lsm", "cannot write manifest %s: %s", path, q_strerror(rc));
	if (f) {
		q_file_close(f);
		q_env_unlink(db->env, tmp);
	}
	q_buf_free(&b);
	return rc;
}

/* Deletes the logs kept for MANIFEST.prev that no manifest on disk needs
 * any more (numbers below keep_from). */
static void delete_pending_logs(lsm_db *db, uint64_t keep_from)
{
	size_t j = 0;
	for (size_t i = 0; i < db->npend_logs; i++) {
		uint64_t n = db->pend_logs[i];
		if (n >= keep_from) {
			db->pend_logs[j++] = n;
			continue;
		}
		char lp[512];
		ver_log_path(lp, sizeof(lp), db->dir, n);
		int urc = q_env_unlink(db->env, lp);
		if (urc && urc != -ENOENT)
			Q_WARN("lsm", "cannot delete log %s: %s", lp, q_strerror(urc));
	}
	db->npend_logs = j;
}

/* Remembers log n for deletion once no manifest needs it; on ENOMEM it is
 * left on disk (recovery deletes it later). */
static void pend_log(lsm_db *db, uint64_t n)
{
	uint64_t *p = realloc(db->pend_logs, (db->npend_logs + 1) * sizeof(*p));
	if (!p)
		return;
	db->pend_logs = p;
	p[db->npend_logs++] = n;
}

/* Builds cur - del + add (del part of cur), makes it durable and installs
 * it. Called with man_mu held and mu not held. If pop_imm, the oldest
 * immutable memtable is dropped in the same step and log_number moves on.
 * Only this function replaces db->cur, always under man_mu: so db->cur
 * can be read here without mu, and the new version is built and the
 * files it drops are marked outside mu (their cost grows with the number
 * of tables); mu is held only to read the counters and to publish. */
static int install_edit(lsm_db *db, lsm_file *const *del, size_t nd, lsm_file *const *add,
			const int *add_level, size_t na, int pop_imm)
{
	lsm_version *base = db->cur;
	lsm_version *nv = ver_edit(base, del, nd, add, add_level, na);
	pthread_mutex_lock(&db->mu);
	uint64_t next_file = db->next_file;
	uint64_t last_seq = atomic_load(&db->last_seq);
	uint64_t log_number = db->log_number;
	if (pop_imm)
		log_number = db->nimm >= 2 ? mem_log(db->imm[1]) : mem_log(db->mem);
	pthread_mutex_unlock(&db->mu);
	if (!nv)
		return -ENOMEM;
	int rc = write_manifest(db, nv, next_file, last_seq, log_number);
	if (rc) {
		ver_unref(nv);
		return rc;
	}
	mem_table *popped = NULL;
	mark_obsolete_edit(base, nv, del, nd, add, na);
	pthread_mutex_lock(&db->mu);
	lsm_version *old = db->cur; /* base: only install_edit replaces it */
	uint64_t prev_log_number = db->log_number; /* of what is MANIFEST.prev now */
	db->cur = nv;
	/* the old version is what MANIFEST.prev describes now: its files stay */
	lsm_version *drop = db->prev_ver;
	db->prev_ver = old;
	db->log_number = log_number;
	int popped_kept = 0;
	if (pop_imm) {
		popped = db->imm[0];
		/* a log whose values the new tables point to stays (its
		 * lsm_blob handle deletes it when no version needs it) */
		popped_kept = ver_find_blob(nv, mem_log(popped)) != NULL;
		for (int i = 1; i < db->nimm; i++)
			db->imm[i - 1] = db->imm[i];
		db->imm[--db->nimm] = NULL;
	}
	pthread_cond_broadcast(&db->state_cv);
	pthread_cond_broadcast(&db->work_cv);
	pthread_mutex_unlock(&db->mu);
	ver_unref(drop);
	/* man_mu (held) guards the pending logs */
	delete_pending_logs(db, prev_log_number);
	if (popped) {
		/* MANIFEST.prev still needs it */
		if (!popped_kept)
			pend_log(db, mem_log(popped));
		mem_unref(popped);
	}
	return 0;
}

/* Writes the current version once more, so that MANIFEST.prev describes it
 * too: the files and logs only the previous manifest needed can go (used
 * after a manual full compaction and at close, so that the space of the
 * replaced tables is given back at once). Takes man_mu. */
static int manifest_checkpoint(lsm_db *db)
{
	pthread_mutex_lock(&db->man_mu);
	pthread_mutex_lock(&db->mu);
	lsm_version *v = db->cur;
	ver_ref(v);
	uint64_t next_file = db->next_file;
	uint64_t last_seq = atomic_load(&db->last_seq);
	uint64_t log_number = db->log_number;
	pthread_mutex_unlock(&db->mu);
	lsm_version *drop = NULL;
	int rc = write_manifest(db, v, next_file, last_seq, log_number);
	if (rc == 0) {
		pthread_mutex_lock(&db->mu);
		drop = db->prev_ver;
		db->prev_ver = v; /* our reference */
		v = NULL;
		pthread_mutex_unlock(&db->mu);
		delete_pending_logs(db, log_number);
	}
	pthread_mutex_unlock(&db->man_mu);
	ver_unref(v);
	ver_unref(drop);
	return rc;
}

static uint64_t new_file_number(lsm_db *db)
{
	pthread_mutex_lock(&db->mu);
	uint64_t n = db->next_file++;
	pthread_mutex_unlock(&db->mu);
	return n;
}

/* A handle on sealed log lognum for a flush that leaves values in it:
 * opened and fsynced (under sync=none its records may not be durable yet;
 * the fsync also makes the trim of its preallocated tail durable), *out
 * with one reference, its size as the file's. */
static int keep_log(lsm_db *db, uint64_t lognum, lsm_blob **out)
{
	char lp[512];
	uint64_t size = 0;
	*out = NULL;
	ver_log_path(lp, sizeof(lp), db->dir, lognum);
	Q_RET(q_env_file_size(db->env, lp, &size));
	lsm_blob *lb = blob_new_log(db->env, db->dir, lognum, size, 0);
	if (!lb)
		return -ENOMEM;
	int rc = blob_open(lb);
	if (rc == 0)
		rc = q_file_sync(atomic_load(&lb->f));
	if (rc) {
		blob_unref(lb); /* not obsolete: the log is still needed */
		return rc;
	}
	*out = lb;
	return 0;
}

/* A scan of a memtable (newest version of each user key first; its keys
 * stay valid for the scan) skipping the older versions. */
typedef struct newest_scan {
	q_slice prev_uk;
	int have_prev;
} newest_scan;

/* 1 if user key uk is an older version of the entry before it (shadowed);
 * else remembers it. */
static int shadowed(newest_scan *ns, q_slice uk)
{
	if (ns->have_prev && ukey_cmp(uk.p, uk.n, ns->prev_uk.p, ns->prev_uk.n) == 0)
		return 1;
	ns->prev_uk = uk;
	ns->have_prev = 1;
	return 0;
}

/*
 * 1 if m's log is worth keeping for its values: the newest versions of the
 * large values that lie in it would leave less garbage than blob GC
 * collects at once (BLOB_GC_NUM/BLOB_GC_DEN of the file). A log made
 * mostly of other bytes (small records, overwritten versions) would be
 * collected by the first compaction that meets its pointers, every value
 * read back and written again: those values go to a blob file at the
 * flush instead. Values that compress are counted too (they go to a blob
 * file after all), so this can only err towards keeping.
 */
static int log_worth_keeping(lsm_db *db, mem_table *m)
{
	char lp[512];
	uint64_t size = 0;
	if (!mem_may_have_log_values(m))
		return 0;
	ver_log_path(lp, sizeof(lp), db->dir, mem_log(m));
	if (q_env_file_size(db->env, lp, &size) || size == 0)
		return 0;
	lsm_it *it = mem_iter_new(m);
	if (!it)
		return 0;
	uint64_t live = 0, off = 0;
	newest_scan ns = {{NULL, 0}, 0};
	for (it_seek_first(it); it_valid(it); it_next(it)) {
		q_slice k = it_key(it);
		q_slice uk = ikey_user(k);
		if (shadowed(&ns, uk))
			continue;
		q_slice v = it_value(it);
		if (ikey_kind(k) == KIND_PUT && v.n >= db->o.blob_threshold &&
		    mem_value_in_log(m, v, &off))
			live += blob_rec_size(uk.n, v.n);
	}
	it_free(it);
	uint64_t garbage = size > live ? size - live : 0;
	return garbage * BLOB_GC_DEN <= size * BLOB_GC_NUM;
}

/* Writes the entries of a memtable (newest version of each key only) to
 * a new table; *out = NULL if the memtable was empty. Values of at least
 * blob_threshold bytes go to a new blob file (fsynced before the table is
 * finished) and the table gets KIND_BLOB pointers to them. */
static int write_mem_table(lsm_db *db, mem_table *m, uint64_t number, lsm_file **out)
{
	*out = NULL;
	char path[512];
	ver_table_path(path, sizeof(path), db->dir, number);
	lsm_it *it = mem_iter_new(m);
	if (!it)
		return -ENOMEM;
	sst_builder *b = NULL;
	blob_writer *bw = NULL;
	lsm_blob *blob = NULL;
	lsm_blob *klog = NULL;   /* the memtable's log, kept for values in it */
	/* not worth keeping: tried already, no log kept */
	int klog_tried = db->o.blob_threshold && db->o.log_values && !log_worth_keeping(db, m);
	uint64_t klog_live = 0;
	uint64_t bnum = 0;
	q_buf first = Q_BUF_INIT, last = Q_BUF_INIT, bk = Q_BUF_INIT, sample = Q_BUF_INIT;
	int rc = 0;
	newest_scan ns = {{NULL, 0}, 0};
	for (it_seek_first(it); it_valid(it); it_next(it)) {
		q_slice k = it_key(it);
		q_slice uk = ikey_user(k);
		q_slice v = it_value(it);
		uint8_t pb[BLOB_PTR_MAX];
		if (shadowed(&ns, uk))
			continue; /* older version of a key */
		uint64_t loff = 0;
		if (db->o.blob_threshold && db->o.log_values && (!klog_tried || klog) &&
		    ikey_kind(k) == KIND_PUT && v.n >= db->o.blob_threshold &&
		    (!db->o.compression || !blob_worth_compressing(v, &sample)) &&
		    mem_value_in_log(m, v, &loff)) {
			/* incompressible and already in the sealed, synced log:
			 * the table points there (invariant 10) */
			if (!klog_tried) {
				klog_tried = 1;
				Q_ERR(keep_log(db, mem_log(m), &klog));
			}
			if (klog && loff <= klog->size &&
			    blob_log_span(loff, v.n) <= klog->size - loff) {
				blob_ptr ptr;
				blob_ptr_log(&ptr, klog->number, loff, uk, v);
				klog_live += blob_rec_size(uk.n, v.n);
				Q_ERR(ikey_build(&bk, uk, ikey_seq(k), KIND_BLOB));
				k = q_buf_slice(&bk);
				v = q_slice_make(pb, blob_ptr_encode(pb, &ptr));
				goto add;
			}
		}
		if (db->o.blob_threshold && ikey_kind(k) == KIND_PUT &&
		    v.n >= db->o.blob_threshold) {
			if (!bw) {
				char bp[512];
				bnum = new_file_number(db);
				blob_path(bp, sizeof(bp), db->dir, bnum);
				Q_ERR(blob_writer_new(db->env, bp, bnum, db->o.compression, &bw));
			}
			blob_ptr ptr;
			Q_ERR(blob_writer_add(bw, uk, v, &ptr));
			Q_ERR(ikey_build(&bk, uk, ikey_seq(k), KIND_BLOB));
			k = q_buf_slice(&bk);
			v = q_slice_make(pb, blob_ptr_encode(pb, &ptr));
		}
add:
		if (!b) {
			Q_ERR(sst_builder_new(db->env, path, &db->so, &b));
			Q_ERR(q_buf_append(&first, k.p, k.n));
		}
		Q_ERR(sst_builder_add(b, k, v));
		q_buf_reset(&last);
		Q_ERR(q_buf_append(&last, k.p, k.n));
	}
	Q_ERR(it_status(it));
	if (bw) {
		/* the blob file is durable before the table (and so before any
		 * manifest) points into it */
		uint64_t bsize = 0;
		rc = blob_writer_finish(bw, &bsize);
		bw = NULL;
		if (rc)
			goto fail;
		blob = blob_new(db->env, db->dir, bnum, bsize, 0);
		if (!blob) {
			char bp[512];
			blob_path(bp, sizeof(bp), db->dir, bnum);
			q_env_unlink(db->env, bp);
			rc = -ENOMEM;
			goto fail;
		}
		Q_ERR(blob_open(blob));
	}
	if (b) {
		uint64_t size;
		rc = sst_builder_finish(b, &size);
		b = NULL;
		if (rc)
			goto fail;
		lsm_file *f = ver_file_new(db->env, db->dir, number, size, q_buf_slice(&first),
					   q_buf_slice(&last));
		if (!f) {
			rc = -ENOMEM;
			q_env_unlink(db->env, path);
			goto fail;
		}
		rc = blob ? ver_file_set_blobs(f, &blob, 1) : 0;
		if (rc == 0 && klog && klog_live) {
			/* what no pointer of this table names is garbage */
			atomic_store(&klog->garbage,
				     klog->size > klog_live ? klog->size - klog_live : 0);
			rc = ver_file_set_blobs(f, &klog, 1);
		}
		if (rc == 0)
			rc = file_open_table(db, f);
		if (rc) {
			atomic_store(&f->obsolete, 1);
			ver_file_unref(f);
			goto fail;
		}
		*out = f;
	}
fail:
	sst_builder_abandon(b);
	blob_writer_abandon(bw);
	if (blob) {
		if (rc)
			atomic_store(&blob->obsolete, 1);
		blob_unref(blob); /* the table holds its own reference */
	}
	blob_unref(klog); /* never obsolete here: the log stays for replay */
	it_free(it);
	q_buf_free(&first);
	q_buf_free(&last);
	q_buf_free(&bk);
	q_buf_free(&sample);
	return rc;
}

/* ================= flush thread ================= */

/* A table written by a flush (or by recovery from the logs) that never
 * became part of a version: it goes, and so do the blob files that flush
 * wrote for it (nothing else references them). */
static void discard_flushed(lsm_file *f)
{
	atomic_store(&f->obsolete, 1);
	for (size_t i = 0; i < f->nblobs; i++)
		if (!f->blobs[i]->is_log) /* a log stays for replay */
			atomic_store(&f->blobs[i]->obsolete, 1);
}

static int flush_one(lsm_db *db, mem_table *m)
{
	uint64_t number = new_file_number(db);
	lsm_file *f = NULL;
	int rc = write_mem_table(db, m, number, &f);
	if (rc)
		return rc;
	int lvl = 0;
	pthread_mutex_lock(&db->man_mu);
	rc = install_edit(db, NULL, 0, f ? &f : NULL, &lvl, f ? 1 : 0, 1);
	int unsure = rc && db->manifest_unsure;
	pthread_mutex_unlock(&db->man_mu);
	if (f) {
		if (rc && !unsure)
			discard_flushed(f);
		ver_file_unref(f);
	}
	if (rc == 0)
		atomic_fetch_add(&db->st_flushes, 1);
	return rc;
}

static void timed_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);

/* 1 if the current commit log has failed (a write or sync error); mu held.
 * It reads what the log's users recorded under mu (log_bad) and never
 * takes log_mu, which the batch sync thread holds across an fsync: with mu
 * held that would make every caller of mu, the calls that never block
 * included, wait for the disk. The active memtable's log is the current
 * log (during a memtable switch, until the new memtable is installed, the
 * old one: a failure recorded for it still counts, which only delays the
 * lifting of an error). A failure is recorded just after it happened (the
 * recording thread takes mu after log_mu): the error it sets then in
 * bg_error, if none is set, is the one writes get. */
static int log_failed(lsm_db *db)
{
	return db->log_bad && db->log_bad == mem_log(db->mem);
}

/* Records that commit log num failed (0: nothing to record); mu held. */
static void log_mark_failed(lsm_db *db, uint64_t num)
{
	if (num)
		db->log_bad = num;
}

/* Background errors that clear by themselves: a full disk, and the
 * process' or the system's file-descriptor limit (a flush's new table or
 * blob file could not be opened). Nothing is half written by either. */
static int bg_retryable(int rc)
{
	return rc == -ENOSPC || rc == -EMFILE || rc == -ENFILE;
}

/* Releases the versions view_drop_nowait handed over (closing, unmapping
 * and deleting the files only they kept). mu held, released meanwhile. */
static void release_deferred(lsm_db *db)
{
	while (db->deferred) {
		lsm_version *v = db->deferred;
		db->deferred = NULL;
		pthread_mutex_unlock(&db->mu);
		while (v) {
			lsm_version *next = v->defer_next;
			ver_unref(v);
			v = next;
		}
		pthread_mutex_lock(&db->mu);
	}
}

/*
 * Errors of the background flush: a retryable one (bg_retryable) is
 * retried every second while writes fail with it; the first flush that
 * succeeds again lifts the error unless the commit log failed too
 * (make_room resumes that). Any other error leaves the store read-only
 * until reopened.
 */
static void *flush_main(void *arg)
{
	lsm_db *db = arg;
	pthread_mutex_lock(&db->mu);
	for (;;) {
		release_deferred(db);
		if (db->closing)
			break;
		if (db->nimm == 0 || (db->bg_error && !bg_retryable(db->bg_error))) {
			pthread_cond_wait(&db->work_cv, &db->mu);
			continue;
		}
		mem_table *m = db->imm[0];
		pthread_mutex_unlock(&db->mu);
		int rc = flush_one(db, m);
		pthread_mutex_lock(&db->mu);
		if (bg_retryable(rc)) {
			Q_ERROR("lsm", "memtable flush failed: %s; writes fail until it succeeds "
				"(retried every second)", q_strerror(rc));
			if (!db->bg_error)
				db->bg_error = rc;
			pthread_cond_broadcast(&db->state_cv);
			if (!db->closing)
				timed_wait_ms(&db->work_cv, &db->mu, 1000);
			continue;
		} else if (rc) {
			Q_ERROR("lsm", "memtable flush failed: %s; store is read-only until reopened",
				q_strerror(rc));
			if (!db->bg_error || bg_retryable(db->bg_error))
				db->bg_error = rc;
		} else if (bg_retryable(db->bg_error) && !log_failed(db)) {
			Q_WARN("lsm", "memtable flushed again: writes resume");
			db->bg_error = 0;
		}
		pthread_cond_broadcast(&db->state_cv);
		pthread_cond_broadcast(&db->work_cv);
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

/* ================= compaction ================= */

typedef struct compaction {
	lsm_version *v;        /* referenced */
	lsm_file **in;         /* all inputs */
	int *in_level;
	size_t nin;
	int out_level;
	int trivial;           /* a single file moves down unchanged */
	int gc_all;            /* lsm_compact_all: collect every blob file
	                        * with any garbage */
} compaction;

static void compaction_free(compaction *c)
{
	if (!c)
		return;
	ver_unref(c->v);
	free(c->in);
	free(c->in_level);
	free(c);
}

static uint64_t level_max_bytes(int level)
{
	uint64_t m = L1_MAX_BYTES;
	for (int l = 1; l < level; l++)
		m *= LEVEL_MULTIPLIER;
	return m;
}

static int comp_add(compaction *c, lsm_file *f, int level, size_t cap)
{
	if (c->nin >= cap)
		return -ENOMEM;
	c->in[c->nin] = f;
	c->in_level[c->nin] = level;
	c->nin++;
	return 0;
}

static compaction *comp_alloc(lsm_version *v)
{
	compaction *c = calloc(1, sizeof(*c));
	size_t cap = 0;
	for (int l = 0; l < LSM_LEVELS; l++)
		cap += v->nfiles[l];
	if (!c)
		return NULL;
	c->in = calloc(cap + 1, sizeof(*c->in));
	c->in_level = calloc(cap + 1, sizeof(int));
	if (!c->in || !c->in_level) {
		free(c->in);
		free(c->in_level);
		free(c);
		return NULL;
	}
	ver_ref(v);
	c->v = v;
	return c;
}

static size_t comp_cap(const lsm_version *v)
{
	size_t cap = 0;
	for (int l = 0; l < LSM_LEVELS; l++)
		cap += v->nfiles[l];
	return cap + 1;
}

/* Adds every file of level overlapping user range [lo, hi]. */
static void comp_add_overlapping(compaction *c, int level, q_slice lo, q_slice hi)
{
	lsm_version *v = c->v;
	for (size_t i = 0; i < v->nfiles[level]; i++) {
		lsm_file *f = v->files[level][i];
		q_slice s = ikey_user(q_buf_slice(&f->smallest));
		q_slice l = ikey_user(q_buf_slice(&f->largest));
		if (ukey_cmp(l.p, l.n, lo.p, lo.n) < 0 || ukey_cmp(s.p, s.n, hi.p, hi.n) > 0)
			continue;
		comp_add(c, f, level, comp_cap(v));
	}
}

static void comp_range(compaction *c, q_slice *lo, q_slice *hi)
{
	for (size_t i = 0; i < c->nin; i++) {
		q_slice s = ikey_user(q_buf_slice(&c->in[i]->smallest));
		q_slice l = ikey_user(q_buf_slice(&c->in[i]->largest));
		if (i == 0 || ukey_cmp(s.p, s.n, lo->p, lo->n) < 0)
			*lo = s;
		if (i == 0 || ukey_cmp(l.p, l.n, hi->p, hi->n) > 0)
			*hi = l;
	}
}

static int any_quarantined(lsm_version *v)
{
	for (int l = 0; l < LSM_LEVELS; l++)
		for (size_t i = 0; i < v->nfiles[l]; i++)
			if (atomic_load(&v->files[l][i]->quarantined))
				return 1;
	return 0;
}

/* Blob garbage collection when no level needs compaction: a table of a
 * level >= 1 that points into a blob file due for collection is rewritten
 * alone into its own level (its key range cannot grow, so the level stays
 * sorted); the rewrite moves the records still pointed to (cb_pointer).
 * Level-0 tables are left to the next level-0 compaction (a rewritten
 * level-0 table would get a newer number than tables that shadow it).
 * mu held. */
static compaction *pick_blob_gc(lsm_db *db)
{
	lsm_version *v = db->cur;
	for (size_t i = 0; i < v->nblobs; i++) {
		lsm_blob *b = v->blobs[i];
		if (!blob_needs_gc(b))
			continue;
		for (int l = 1; l < LSM_LEVELS; l++)
			for (size_t j = 0; j < v->nfiles[l]; j++) {
				lsm_file *f = v->files[l][j];
				if (!ver_file_has_blob(f, b) || atomic_load(&f->quarantined))
					continue;
				compaction *c = comp_alloc(v);
				if (!c)
					return NULL;
				c->out_level = l;
				comp_add(c, f, l, comp_cap(v));
				return c;
			}
	}
	return NULL;
}

/* Called with mu held. */
static compaction *pick_compaction(lsm_db *db)
{
	lsm_version *v = db->cur;
	int best = -1;
	double best_score = 1.0;
	double s0 = (double)v->nfiles[0] / L0_COMPACT_TRIGGER;
	if (s0 >= best_score) {
		best = 0;
		best_score = s0;
	}
	for (int l = 1; l < LSM_LEVELS - 1; l++) {
		double s = (double)ver_level_bytes(v, l) / (double)level_max_bytes(l);
		if (s > best_score) {
			best = l;
			best_score = s;
		}
	}
	if (best < 0)
		return pick_blob_gc(db);
	compaction *c = comp_alloc(v);
	if (!c)
		return NULL;
	c->out_level = best + 1;
	if (best == 0) {
		for (size_t i = 0; i < v->nfiles[0]; i++)
			comp_add(c, v->files[0][i], 0, comp_cap(v));
	} else {
		/* next file after the compaction pointer, round robin */
		size_t idx = 0;
		q_buf *cp = &db->compact_ptr[best];
		if (cp->len) {
			while (idx < v->nfiles[best] &&
			       ikey_cmp(q_buf_slice(&v->files[best][idx]->largest), q_buf_slice(cp)) <= 0)
				idx++;
			if (idx == v->nfiles[best])
				idx = 0;
		}
		lsm_file *f = v->files[best][idx];
		comp_add(c, f, best, comp_cap(v));
		q_buf_reset(cp);
		q_buf_append(cp, f->largest.p, f->largest.len);
	}
	q_slice lo = {NULL, 0}, hi = {NULL, 0};
	comp_range(c, &lo, &hi);
	comp_add_overlapping(c, c->out_level, lo, hi);
	if (best > 0 && c->nin == 1)
		c->trivial = 1;
	return c;
}

/* Everything into the deepest non-empty level (at least 1). mu held. */
static compaction *pick_full(lsm_db *db)
{
	lsm_version *v = db->cur;
	int deepest = 0;
	size_t total = 0;
	for (int l = 0; l < LSM_LEVELS; l++) {
		if (v->nfiles[l])
			deepest = l;
		total += v->nfiles[l];
	}
	if (total == 0)
		return NULL;
	compaction *c = comp_alloc(v);
	if (!c)
		return NULL;
	c->out_level = deepest < 1 ? 1 : deepest;
	c->gc_all = 1;
	for (int l = 0; l < LSM_LEVELS; l++)
		for (size_t i = 0; i < v->nfiles[l]; i++)
			comp_add(c, v->files[l][i], l, comp_cap(v));
	return c;
}

/* 1 if no level deeper than out_level may hold ukey (a tombstone there
 * can be dropped). */
static int is_base_for(const compaction *c, q_slice ukey)
{
	for (int l = c->out_level + 1; l < LSM_LEVELS; l++)
		if (ver_key_in_level(c->v, l, ukey))
			return 0;
	return 1;
}

/* Blob bookkeeping of one compaction: garbage per input blob file, the
 * blob numbers the output table being built points into, and the new blob
 * file that receives the records moved out of files due for collection. */
typedef struct comp_blobs {
	struct { lsm_blob *b; uint64_t bytes; } *g;
	size_t ng, capg;
	uint64_t *refs;
	size_t nrefs, caprefs;
	blob_writer *w;
	lsm_blob *wb;          /* handle of w's file (size set when finished) */
	lsm_blob **done;       /* earlier blob files of this compaction (cut at
	                        * BLOB_FILE_TARGET), finished and open */
	size_t ndone, capdone;
	q_buf val;             /* a value being moved */
	uint64_t moved;
	int gc_all;            /* move out of every file with garbage */
} comp_blobs;

static int cb_garbage(comp_blobs *cb, lsm_blob *b, uint64_t bytes)
{
	for (size_t i = cb->ng; i > 0; i--)
		if (cb->g[i - 1].b == b) {
			cb->g[i - 1].bytes += bytes;
			return 0;
		}
	if (cb->ng == cb->capg) {
		size_t nc = cb->capg ? cb->capg * 2 : 16;
		void *n = realloc(cb->g, nc * sizeof(*cb->g));
		if (!n)
			return -ENOMEM;
		cb->g = n;
		cb->capg = nc;
	}
	cb->g[cb->ng].b = b;
	cb->g[cb->ng].bytes = bytes;
	cb->ng++;
	return 0;
}

static int cb_ref(comp_blobs *cb, uint64_t number)
{
	if (cb->nrefs && cb->refs[cb->nrefs - 1] == number)
		return 0;
	if (cb->nrefs == cb->caprefs) {
		size_t nc = cb->caprefs ? cb->caprefs * 2 : 16;
		uint64_t *n = realloc(cb->refs, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		cb->refs = n;
		cb->caprefs = nc;
	}
	cb->refs[cb->nrefs++] = number;
	return 0;
}

/* Gives f a reference on each blob file its entries point into. */
static int cb_attach(comp_blobs *cb, const lsm_version *v, lsm_file *f)
{
	int rc = 0;
	size_t u = 0;
	if (cb->nrefs > 1)
		qsort(cb->refs, cb->nrefs, sizeof(*cb->refs), cmp_u64);
	for (size_t i = 0; i < cb->nrefs; i++)
		if (u == 0 || cb->refs[u - 1] != cb->refs[i])
			cb->refs[u++] = cb->refs[i];
	cb->nrefs = u;
	for (size_t i = 0; i < cb->nrefs && rc == 0; i++) {
		lsm_blob *b = cb->wb && cb->refs[i] == cb->wb->number ? cb->wb : NULL;
		for (size_t j = 0; !b && j < cb->ndone; j++)
			if (cb->done[j]->number == cb->refs[i])
				b = cb->done[j];
		if (!b)
			b = ver_find_blob(v, cb->refs[i]);
		if (b)
			rc = ver_file_set_blobs(f, &b, 1);
	}
	cb->nrefs = 0;
	return rc;
}

/* Finishes the compaction's current blob file: fsynced (before any
 * manifest can name a table pointing into it) and opened for reading. */
static int cb_finish_blob(comp_blobs *cb)
{
	if (!cb->w)
		return 0;
	if (cb->ndone == cb->capdone) {
		size_t nc = cb->capdone ? cb->capdone * 2 : 4;
		lsm_blob **n = realloc(cb->done, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		cb->done = n;
		cb->capdone = nc;
	}
	uint64_t bsize = 0;
	int rc = blob_writer_finish(cb->w, &bsize);
	cb->w = NULL;
	/* the handle moves to the done list whatever happens (cb_free marks
	 * it obsolete on failure) */
	cb->done[cb->ndone++] = cb->wb;
	cb->wb->size = bsize;
	cb->wb = NULL;
	if (rc)
		return rc;
	return blob_open(cb->done[cb->ndone - 1]);
}

static void cb_free(comp_blobs *cb, int failed)
{
	blob_writer_abandon(cb->w);
	if (cb->wb) {
		if (failed)
			atomic_store(&cb->wb->obsolete, 1);
		blob_unref(cb->wb);
	}
	for (size_t i = 0; i < cb->ndone; i++) {
		if (failed)
			atomic_store(&cb->done[i]->obsolete, 1);
		blob_unref(cb->done[i]);
	}
	free(cb->done);
	free(cb->g);
	free(cb->refs);
	q_buf_free(&cb->val);
}

/* The value of the compaction output for a KIND_BLOB entry of user key uk:
 * the pointer itself, or, when its blob file is due for collection, a
 * pointer to a copy of the record in the compaction's blob file. *out
 * points into pb or the input. */
static int cb_pointer(lsm_db *db, comp_blobs *cb, const lsm_version *v, q_slice uk,
		      q_slice in, uint8_t *pb, q_slice *out)
{
	*out = in;
	blob_ptr p;
	if (blob_ptr_decode(in, &p)) {
		Q_ERROR("lsm", "compaction: malformed blob pointer of a key of %zu bytes; kept",
			uk.n);
		return 0;
	}
	lsm_blob *b = ver_find_blob(v, p.number);
	if (!b || !(blob_needs_gc(b) || (cb->gc_all && !atomic_load(&b->unusable) &&
					 !atomic_load(&b->gc_failed) &&
					 atomic_load(&b->garbage) > 0)))
		return cb_ref(cb, p.number);
	int rc = blob_read(b, uk, &p, &cb->val);
	if (rc == Q_ECORRUPT) {
		/* reads of this key fail as before; stop collecting the file */
		Q_WARN("lsm", "blob file %s: record at offset %llu cannot be moved (%s); the "
		       "file is no longer collected", b->path, (unsigned long long)p.offset,
		       q_strerror(rc));
		atomic_store(&b->gc_failed, 1);
		return cb_ref(cb, p.number);
	}
	if (rc == -ENOMEM)
		return rc; /* the compaction fails and is retried with backoff */
	if (rc) {
		/* EIO, EMFILE, ...: the pointer stays (always correct) and a later
		 * compaction tries again; failing the compaction instead would
		 * stop every compaction for good if the error does not clear (a
		 * bad sector), and writes with them once level 0 is full. After
		 * BLOB_GC_READ_TRIES such records the file is no longer collected
		 * (until the store is reopened). */
		int nerr = atomic_fetch_add(&b->gc_read_errors, 1) + 1;
		Q_WARN("lsm", "blob file %s: record at offset %llu not read (%s); kept%s",
		       b->path, (unsigned long long)p.offset, q_strerror(rc),
		       nerr >= BLOB_GC_READ_TRIES ? "; the file is no longer collected" : "");
		if (nerr >= BLOB_GC_READ_TRIES)
			atomic_store(&b->gc_failed, 1);
		return cb_ref(cb, p.number);
	}
	if (cb->w && blob_writer_size(cb->w) >= BLOB_FILE_TARGET)
		Q_RET(cb_finish_blob(cb));
	if (!cb->w) {
		char bp[512];
		uint64_t n = new_file_number(db);
		blob_path(bp, sizeof(bp), db->dir, n);
		cb->wb = blob_new(db->env, db->dir, n, 0, 0);
		if (!cb->wb)
			return -ENOMEM;
		Q_RET(blob_writer_new(db->env, bp, n, db->o.compression, &cb->w));
	}
	blob_ptr np;
	Q_RET(blob_writer_add(cb->w, uk, q_buf_slice(&cb->val), &np));
	uint64_t rs = blob_rec_size(uk.n, p.vlen);
	Q_RET(cb_garbage(cb, b, rs));
	cb->moved += rs;
	*out = q_slice_make(pb, blob_ptr_encode(pb, &np));
	return cb_ref(cb, np.number);
}

/* Adds the record an entry dropped by the compaction pointed to (if it is
 * a blob pointer) to its blob file's garbage. */
static int cb_dropped(comp_blobs *cb, const lsm_version *v, q_slice ik, q_slice val)
{
	blob_ptr p;
	if (ikey_kind(ik) != KIND_BLOB || blob_ptr_decode(val, &p))
		return 0;
	lsm_blob *b = ver_find_blob(v, p.number);
	return b ? cb_garbage(cb, b, blob_rec_size(ikey_user(ik).n, p.vlen)) : 0;
}

static int finish_output(lsm_db *db, sst_builder **bp, uint64_t number, q_buf *first,
			 q_buf *last, lsm_file ***outs, size_t *nout, size_t *capout,
			 comp_blobs *cb, const lsm_version *v)
{
	uint64_t size;
	int rc = sst_builder_finish(*bp, &size);
	*bp = NULL;
	if (rc)
		return rc;
	atomic_fetch_add(&db->st_compact_bytes, size);
	lsm_file *f = ver_file_new(db->env, db->dir, number, size, q_buf_slice(first),
				   q_buf_slice(last));
	if (!f) {
		char p[512];
		ver_table_path(p, sizeof(p), db->dir, number);
		q_env_unlink(db->env, p);
		return -ENOMEM;
	}
	rc = cb_attach(cb, v, f);
	if (rc == 0)
		rc = file_open_table(db, f);
	if (rc == 0 && *nout == *capout) {
		size_t cap = *capout ? *capout * 2 : 8;
		lsm_file **n = realloc(*outs, cap * sizeof(*n));
		if (!n)
			rc = -ENOMEM;
		else {
			*outs = n;
			*capout = cap;
		}
	}
	if (rc) {
		atomic_store(&f->obsolete, 1);
		ver_file_unref(f);
		return rc;
	}
	(*outs)[(*nout)++] = f;
	return 0;
}

static int run_compaction(lsm_db *db, compaction *c)
{
	int rc = 0;
	if (c->trivial) {
		int lvl = c->out_level;
		pthread_mutex_lock(&db->man_mu);
		rc = install_edit(db, c->in, 1, c->in, &lvl, 1, 0);
		pthread_mutex_unlock(&db->man_mu);
		if (rc == 0)
			atomic_fetch_add(&db->st_compactions, 1);
		return rc;
	}
	/* children: each level-0 file alone, each deeper level concatenated */
	lsm_it *kids[LSM_LEVELS + 64];
	size_t nk = 0;
	lsm_it **kidv = kids;
	size_t l0 = 0;
	for (size_t i = 0; i < c->nin; i++)
		l0 += c->in_level[i] == 0;
	if (l0 + LSM_LEVELS > sizeof(kids) / sizeof(kids[0])) {
		kidv = malloc((l0 + LSM_LEVELS) * sizeof(*kidv));
		if (!kidv)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->nin; i++)
		if (c->in_level[i] == 0)
			kidv[nk++] = sst_iter_new(c->in[i]->t, 0);
	for (int l = 1; l < LSM_LEVELS; l++) {
		size_t start = c->nin, n = 0;
		for (size_t i = 0; i < c->nin; i++)
			if (c->in_level[i] == l) {
				if (start == c->nin)
					start = i;
				n++;
			}
		if (n)
			kidv[nk++] = ver_files_iter(c->in + start, n, 0);
	}
	for (size_t i = 0; i < nk; i++)
		if (!kidv[i])
			rc = -ENOMEM;
	if (rc) {
		for (size_t i = 0; i < nk; i++)
			it_free(kidv[i]);
		if (kidv != kids)
			free(kidv);
		return rc;
	}
	lsm_it *m = it_merge_new(kidv, nk);
	if (kidv != kids)
		free(kidv);
	if (!m)
		return -ENOMEM;

	lsm_file **outs = NULL;
	size_t nout = 0, capout = 0;
	int unsure = 0; /* the install failed after its MANIFEST was renamed */
	sst_builder *b = NULL;
	uint64_t number = 0;
	q_buf first = Q_BUF_INIT, last = Q_BUF_INIT, prev = Q_BUF_INIT;
	comp_blobs cb;
	memset(&cb, 0, sizeof(cb));
	q_buf_init(&cb.val);
	cb.gc_all = c->gc_all;
	int have_prev = 0;
	uint64_t n = 0;
	for (it_seek_first(m); it_valid(m); it_next(m)) {
		if ((++n & 4095) == 0 && db->closing) {
			rc = Q_ECLOSED;
			goto fail;
		}
		q_slice k = it_key(m);
		q_slice uk = ikey_user(k);
		q_slice val = it_value(m);
		uint8_t pb[BLOB_PTR_MAX];
		if (have_prev && ukey_cmp(uk.p, uk.n, prev.p, prev.len) == 0) {
			/* shadowed by a newer version */
			Q_ERR(cb_dropped(&cb, c->v, k, val));
			continue;
		}
		q_buf_reset(&prev);
		Q_ERR(q_buf_append(&prev, uk.p, uk.n));
		have_prev = 1;
		if (ikey_kind(k) == KIND_DEL && is_base_for(c, uk))
			continue;
		if (ikey_kind(k) == KIND_BLOB)
			Q_ERR(cb_pointer(db, &cb, c->v, uk, val, pb, &val));
		if (!b) {
			number = new_file_number(db);
			char path[512];
			ver_table_path(path, sizeof(path), db->dir, number);
			Q_ERR(sst_builder_new(db->env, path, &db->so, &b));
			q_buf_reset(&first);
			Q_ERR(q_buf_append(&first, k.p, k.n));
		}
		Q_ERR(sst_builder_add(b, k, val));
		q_buf_reset(&last);
		Q_ERR(q_buf_append(&last, k.p, k.n));
		if (sst_builder_size(b) >= TABLE_TARGET_SIZE)
			Q_ERR(finish_output(db, &b, number, &first, &last, &outs, &nout, &capout,
					    &cb, c->v));
	}
	Q_ERR(it_status(m));
	if (b)
		Q_ERR(finish_output(db, &b, number, &first, &last, &outs, &nout, &capout, &cb,
				    c->v));
	/* moved records are durable before the manifest points to them */
	Q_ERR(cb_finish_blob(&cb));
	/* garbage counts go into the manifest written with the new version
	 * (an estimate: a failed install below counts them once more) */
	for (size_t i = 0; i < cb.ng; i++)
		blob_add_garbage(cb.g[i].b, cb.g[i].bytes);
	{
		int *lv = malloc((nout ? nout : 1) * sizeof(int));
		if (!lv) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < nout; i++)
			lv[i] = c->out_level;
		pthread_mutex_lock(&db->man_mu);
		rc = install_edit(db, c->in, c->nin, outs, lv, nout, 0);
		unsure = rc && db->manifest_unsure;
		pthread_mutex_unlock(&db->man_mu);
		free(lv);
		if (rc)
			goto fail;
	}
	atomic_fetch_add(&db->st_compactions, 1);
	atomic_fetch_add(&db->st_blob_moved, cb.moved);
	for (size_t i = 0; i < nout; i++)
		ver_file_unref(outs[i]);
	free(outs);
	it_free(m);
	q_buf_free(&first);
	q_buf_free(&last);
	q_buf_free(&prev);
	cb_free(&cb, 0);
	return 0;
fail:
	/* outputs a MANIFEST may name after all (manifest_unsure) stay */
	sst_builder_abandon(b);
	cb_free(&cb, !unsure);
	for (size_t i = 0; i < nout; i++) {
		if (!unsure)
			atomic_store(&outs[i]->obsolete, 1);
		ver_file_unref(outs[i]);
	}
	free(outs);
	it_free(m);
	q_buf_free(&first);
	q_buf_free(&last);
	q_buf_free(&prev);
	return rc;
}

/* Drops quarantined tables from the version. */
static int run_quarantine(lsm_db *db)
{
	pthread_mutex_lock(&db->man_mu);
	pthread_mutex_lock(&db->mu);
	lsm_version *v = db->cur;
	ver_ref(v);
	pthread_mutex_unlock(&db->mu);
	size_t cap = comp_cap(v), nd = 0;
	lsm_file **del = calloc(cap, sizeof(*del));
	int rc = -ENOMEM;
	if (del) {
		for (int l = 0; l < LSM_LEVELS; l++)
			for (size_t i = 0; i < v->nfiles[l]; i++)
				if (atomic_load(&v->files[l][i]->quarantined))
					del[nd++] = v->files[l][i];
		rc = nd ? install_edit(db, del, nd, NULL, NULL, 0, 0) : 0;
		if (rc == 0 && nd) {
			atomic_fetch_add(&db->st_quarantined, nd);
			for (size_t i = 0; i < nd; i++)
				Q_ERROR("lsm", "table %s quarantined (will be renamed %s.bad); "
					"its keys must be repaired from replicas",
					del[i]->path, del[i]->path);
		}
	}
	pthread_mutex_unlock(&db->man_mu);
	free(del);
	ver_unref(v);
	return rc;
}

static void timed_wait_ns(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec += (long)(ns % 1000000000ULL);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static void timed_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms)
{
	timed_wait_ns(cv, mu, ms * 1000000ULL);
}

static void *compact_main(void *arg)
{
	lsm_db *db = arg;
	int backoff = 0;
	pthread_mutex_lock(&db->mu);
	while (!db->closing) {
		if (any_quarantined(db->cur)) {
			pthread_mutex_unlock(&db->mu);
			int rc = run_quarantine(db);
			pthread_mutex_lock(&db->mu);
			if (rc) {
				Q_ERROR("lsm", "cannot drop quarantined tables: %s", q_strerror(rc));
				timed_wait_ms(&db->work_cv, &db->mu, 1000);
			}
			continue;
		}
		int manual = db->manual_pending;
		compaction *c = manual ? pick_full(db) : pick_compaction(db);
		if (manual)
			db->manual_pending = 0;
		if (!c) {
			if (manual) {
				db->manual_rc = 0;
				db->manual_done = db->manual_gen;
				pthread_cond_broadcast(&db->state_cv);
				continue;
			}
			pthread_cond_wait(&db->work_cv, &db->mu);
			continue;
		}
		uint64_t gen = db->manual_gen;
		pthread_mutex_unlock(&db->mu);
		int rc = run_compaction(db, c);
		compaction_free(c);
		pthread_mutex_lock(&db->mu);
		if (manual) {
			db->manual_rc = rc;
			db->manual_done = gen;
			pthread_cond_broadcast(&db->state_cv);
		}
		db->compact_error = rc == Q_ECLOSED ? db->compact_error : rc;
		if (rc && rc != Q_ECLOSED) {
			Q_ERROR("lsm", "compaction failed: %s (will retry)", q_strerror(rc));
			backoff = backoff ? (backoff < 5000 ? backoff * 2 : 5000) : 100;
			if (!db->closing)
				timed_wait_ms(&db->work_cv, &db->mu, (uint64_t)backoff);
		} else {
			backoff = 0;
		}
		pthread_cond_broadcast(&db->state_cv);
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

/* ================= batch sync thread ================= */

static void *sync_main(void *arg)
{
	lsm_db *db = arg;
	pthread_mutex_lock(&db->mu);
	while (!db->closing) {
		timed_wait_ms(&db->sync_cv, &db->mu, db->o.sync_batch_ms ? db->o.sync_batch_ms : 10);
		if (db->closing)
			break;
		pthread_mutex_unlock(&db->mu);
		pthread_mutex_lock(&db->log_mu);
		int rc = db->log ? wal_sync(db->log) : 0;
		uint64_t bad = rc && wal_failed(db->log) ? db->log_num : 0;
		pthread_mutex_unlock(&db->log_mu);
		pthread_mutex_lock(&db->mu);
		log_mark_failed(db, bad);
		if (rc && !db->bg_error) {
			Q_ERROR("lsm", "commit log sync failed: %s", q_strerror(rc));
			db->bg_error = rc;
		}
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

/* ================= write path ================= */

/* Creates log number n and makes its name durable. */
static int new_log(lsm_db *db, uint64_t n, wal_writer **out)
{
	char p[512];
	ver_log_path(p, sizeof(p), db->dir, n);
	/* under sync=always every write syncs the log: preallocate it so that
	 * those syncs write data blocks only (with the POSIX env the log is
	 * written through its descriptor under every policy: large records
	 * go out with pwritev, uncopied) */
	size_t chunk = 0;
	if (db->o.sync == LSM_SYNC_ALWAYS) {
		chunk = db->o.write_buffer_size / 4;
		chunk = chunk < WAL_PREALLOC_MIN ? WAL_PREALLOC_MIN
			: chunk > WAL_PREALLOC_MAX ? WAL_PREALLOC_MAX : chunk;
	}
	Q_RET(wal_writer_open_prealloc(db->env, p, db->o.sync != LSM_SYNC_ALWAYS, chunk, out));
	int rc = q_env_sync_dir(db->env, db->dir);
	if (rc) {
		wal_writer_close(*out);
		q_env_unlink(db->env, p);
	}
	return rc;
}

/*
 * Switches to a fresh memtable and log. mu held (by the leader) on entry
 * and on return, but released while the new log is created (open,
 * preallocation, directory fsync) and while the old one is synced and
 * closed: those take milliseconds, and readers and the background threads
 * need mu meanwhile. Nothing the leader relies on changes in between: only
 * the write leader replaces db->mem or db->log, and no other write can lead
 * while this one is at the head of the queue (lsm_close must not run
 * concurrently with writes, as everywhere).
 */
static int switch_memtable(lsm_db *db)
{
	uint64_t n = db->next_file++;
	wal_writer *w;
	mem_table *m = mem_new();
	if (!m)
		return -ENOMEM;
	pthread_mutex_unlock(&db->mu);
	int rc = new_log(db, n, &w);
	pthread_mutex_lock(&db->mu);
	if (rc) {
		/* the write fails and the next one tries again: said once per
		 * run of failures (and every 10 s while it lasts) */
		uint64_t now = q_mono_ns();
		if (rc != db->switch_err || now - db->switch_err_ns >= 10000000000ull) {
			Q_ERROR("lsm", "%s: cannot create commit log %06llu for the next memtable: "
				"%s; writes fail until one can be created",
				db->dir, (unsigned long long)n, q_strerror(rc));
			db->switch_err_ns = now;
		}
		db->switch_err = rc;
		mem_unref(m);
		return rc;
	}
	if (db->switch_err) {
		Q_WARN("lsm", "%s: commit log %06llu created: writes resume", db->dir,
		       (unsigned long long)n);
		db->switch_err = 0;
	}
	mem_set_log(m, n);
	/* not under mu: the batch sync thread holds log_mu for a whole
	 * fsync, and the readers that never block (lsm_get_nowait) take mu.
	 * Only the queue's leader (this thread) switches the log, and the
	 * log and its number are read under log_mu alone */
	pthread_mutex_unlock(&db->mu);
	pthread_mutex_lock(&db->log_mu);
	wal_writer *old = db->log;
	db->log = w;
	db->log_num = n;
	pthread_mutex_unlock(&db->log_mu);
	rc = db->o.sync == LSM_SYNC_BATCH ? wal_sync(old) : 0;
	int rc2 = wal_writer_close(old);
	pthread_mutex_lock(&db->mu);
	if (rc == 0)
		rc = rc2;
	if (rc == 0)
		mem_seal_log(db->mem); /* every record of it is in the file */
	if (rc) {
		/* the old log may miss its tail: keep its memtable in memory and
		 * fail writes; the log file stays for the next recovery */
		Q_ERROR("lsm", "closing commit log failed: %s", q_strerror(rc));
		db->bg_error = rc;
	}
	db->imm[db->nimm++] = db->mem;
	db->mem = m;
	pthread_cond_broadcast(&db->work_cv);
	return rc;
}

/*
 * After a commit log write failed with -ENOSPC (disk full), writes resume
 * on a fresh log once one can be created: the failed log (whose last record
 * may be torn; replay drops a torn tail) is closed and its memtable queued
 * for a flush like any full memtable, so every write acknowledged before
 * the failure stays in memory until it is in a table. Tried at most once a
 * second, by the write leader; mu held on entry and on return, but
 * released, as switch_memtable does, while the new log is prepared
 * (statfs, creation, directory fsync) and swapped in under log_mu and the
 * failed one closed: the calls that never block take mu meanwhile. Only
 * the leader replaces db->mem and db->log, and while it leads no other
 * write commits (nowait writes find the queue taken), so the failed log
 * stays current until the swap. The error is lifted after the swap if it
 * is still a retryable one (a flush may have failed for good meanwhile).
 * Returns 0 if writes may go on, else the background error.
 */
static int try_resume(lsm_db *db)
{
	uint64_t now = q_mono_ns();
	if (!bg_retryable(db->bg_error) || now - db->resume_ns < 1000000000ull)
		return db->bg_error;
	db->resume_ns = now;
	if (!log_failed(db))
		return db->bg_error; /* a flush failed: the flush thread lifts it */
	if (db->nimm >= LSM_MAX_IMM)
		return db->bg_error;
	int err = db->bg_error;
	uint64_t n = db->next_file++;
	mem_table *m = mem_new();
	if (!m)
		return db->bg_error;
	mem_set_log(m, n);
	pthread_mutex_unlock(&db->mu);
	/* an empty log can be created on a full disk (it needs no block), and
	 * under `batch` and `none` a small record then waits in the writer's
	 * buffer: writes would be acknowledged with no room for them. Resume
	 * only once some space is free (an env that cannot tell: as before) */
	uint64_t total = 0, avail = 0;
	wal_writer *w = NULL;
	int rc = 0;
	if (err == -ENOSPC && q_env_statfs(db->env, db->dir, &total, &avail) == 0 &&
	    avail < LSM_RESUME_MIN_FREE)
		rc = err;
	if (rc == 0)
		rc = new_log(db, n, &w);
	if (rc == 0) {
		pthread_mutex_lock(&db->log_mu);
		wal_writer *old = db->log;
		db->log = w;
		db->log_num = n;
		pthread_mutex_unlock(&db->log_mu);
		wal_writer_close(old); /* its error is the one recovered from */
	}
	if (rc) {
		mem_unref(m);
		pthread_mutex_lock(&db->mu);
		return db->bg_error;
	}
	pthread_mutex_lock(&db->mu);
	db->imm[db->nimm++] = db->mem;
	db->mem = m;
	if (bg_retryable(db->bg_error)) {
		Q_WARN("lsm", "writes resume on commit log %llu after %s", (unsigned long long)n,
		       q_strerror(db->bg_error));
		db->bg_error = 0;
	}
	pthread_cond_broadcast(&db->work_cv);
	return db->bg_error;
}

/* The size at which the current memtable is full: write_buffer_size less
 * a share of up to write_buffer_jitter percent, drawn from the memtable's
 * log number and the open's seed (the same for the memtable's whole life,
 * different from one memtable to the next and from one store to another). */
static size_t mem_limit(const lsm_db *db)
{
	size_t w = db->o.write_buffer_size;
	if (!db->o.write_buffer_jitter)
		return w;
	uint64_t ln = mem_log(db->mem);
	size_t span = w / 100 * db->o.write_buffer_jitter;
	return w - (size_t)(q_hash64(&ln, sizeof(ln), db->jitter_seed) % (span + 1));
}

/* Makes room for a write (or forces a switch); mu held by the leader. */
static int make_room(lsm_db *db, int force)
{
	int delayed = 0;
	uint64_t t0 = 0;
	int rc = 0;
	for (;;) {
		if (db->bg_error && try_resume(db)) {
			rc = db->bg_error;
			break;
		}
		if (db->closing) {
			rc = Q_ECLOSED;
			break;
		}
		size_t l0 = db->cur->nfiles[0];
		if (!force && !delayed && l0 >= L0_SLOWDOWN) {
			uint64_t s = q_mono_ns();
			pthread_mutex_unlock(&db->mu);
			q_sleep_ms(1);
			pthread_mutex_lock(&db->mu);
			atomic_fetch_add(&db->st_stall_ns, q_mono_ns() - s);
			delayed = 1;
			continue;
		}
		if (!force && mem_usage(db->mem) < mem_limit(db))
			break;
		if (mem_entries(db->mem) == 0)
			break;
		if (l0 >= L0_STOP && db->compact_error && db->compact_error != Q_ECORRUPT) {
			/* compaction cannot make progress (e.g. disk full): fail
			 * the write rather than stall without bound */
			rc = db->compact_error;
			break;
		}
		if (db->nimm >= LSM_MAX_IMM || l0 >= L0_STOP) {
			if (!t0)
				t0 = q_mono_ns();
			pthread_cond_broadcast(&db->work_cv);
			timed_wait_ms(&db->state_cv, &db->mu, 100);
			continue;
		}
		rc = switch_memtable(db);
		if (rc)
			break;
		force = 0;
	}
	if (t0)
		atomic_fetch_add(&db->st_stall_ns, q_mono_ns() - t0);
	return rc;
}

typedef struct insert_ctx {
	mem_table *m;
	batch_hold *hold; /* the group's shared encoding, or NULL */
} insert_ctx;

/* Values of at least this size enter the memtable by reference to the
 * group's encoding instead of by copy (see the write path in docs/lsm.md). */
#define MEM_REF_MIN (16u << 10)

static int insert_op(void *arg, uint64_t seq, int kind, q_slice key, q_slice value)
{
	insert_ctx *c = arg;
	if (c->hold && value.n >= MEM_REF_MIN)
		return mem_add_ref(c->m, seq, kind, key, value, c->hold);
	return mem_add(c->m, seq, kind, key, value);
}

/*
 * The leader's commit of a group (one batch, or several merged into
 * db->group): appends it to the commit log (and syncs it under
 * LSM_SYNC_ALWAYS), inserts it into the active memtable and publishes its
 * sequence numbers. mu held on entry and on return, released meanwhile.
 * A failure after the record may have reached the log fails every later
 * write (bg_error). With nowait (lsm_write_nowait; never under
 * LSM_SYNC_ALWAYS) it returns -EAGAIN, having changed nothing, instead of
 * waiting for log_mu (the sync thread holds it during an fsync) or making
 * a system call: the record must fit in the log's user-space buffer.
 */
static int commit_group(lsm_db *db, lsm_batch *grp, int ngroup, int nowait)
{
	uint64_t seq = atomic_load(&db->last_seq) + 1;
	mem_table *m = db->mem;
	pthread_mutex_unlock(&db->mu);
	/* a shared batch (resubmitted after a write) is copied when its seq
	 * is set; if that fails nothing reached the log: the group just
	 * fails. A nowait write sets it only once it goes ahead (a refusal
	 * changes nothing), under log_mu: its record fits the log's buffer,
	 * so that copy is short; a blocking one before taking log_mu */
	int rc = nowait ? 0 : batch_set_seq(grp, seq);
	uint64_t rec_start = 0, rec_log = 0, bad = 0;
	if (rc == 0 && nowait) {
		if (pthread_mutex_trylock(&db->log_mu)) {
			atomic_fetch_add(&db->st_nw_log_busy, 1);
			rc = -EAGAIN;
		} else if (!wal_fits_buffer(db->log, grp->rep.len)) {
			pthread_mutex_unlock(&db->log_mu);
			atomic_fetch_add(&db->st_nw_log_full, 1);
			rc = -EAGAIN;
		} else if (db->o.log_early_write &&
			   wal_buffered(db->log) >= db->o.log_early_write) {
			/* past the mark: the first nowait write refused sends
			 * its caller to lsm_write, which writes the buffer out
			 * (invariant 11); the others still fit */
			if (!db->log_nudged) {
				db->log_nudged = 1;
				pthread_mutex_unlock(&db->log_mu);
				atomic_fetch_add(&db->st_nw_log_mark, 1);
				rc = -EAGAIN;
			}
		} else {
			db->log_nudged = 0;
		}
		if (rc == 0 && (rc = batch_set_seq(grp, seq)) != 0)
			pthread_mutex_unlock(&db->log_mu);
	} else if (rc == 0) {
		pthread_mutex_lock(&db->log_mu);
	}
	int logged = rc == 0;
	if (rc == 0) {
		rec_log = db->log_num;
		rc = wal_add_at(db->log, grp->rep.p, grp->rep.len, &rec_start);
		if (rc == 0 && db->o.sync == LSM_SYNC_ALWAYS)
			rc = wal_sync(db->log);
		if (rc == 0 && !nowait && db->o.log_early_write &&
		    wal_buffered(db->log) >= db->o.log_early_write) {
			rc = wal_flush(db->log); /* invariant 11 */
			if (rc == 0)
				atomic_fetch_add(&db->st_log_early, 1);
		}
		if (rc && wal_failed(db->log))
			bad = rec_log;
		pthread_mutex_unlock(&db->log_mu);
	}
	if (rc == 0) {
		/* large values: the memtable references the group's
		 * encoding instead of copying it (batch.h, Sharing), and
		 * learns where it lies in the log (a flush may leave such
		 * values there: invariant 10) */
		insert_ctx ic = {m, grp->max_value >= MEM_REF_MIN ? batch_share(grp) : NULL};
		if (ic.hold)
			batch_hold_set_log(ic.hold, rec_log, rec_start, grp->rep.len);
		rc = batch_decode(q_buf_slice(&grp->rep), insert_op, &ic);
		batch_hold_unref(ic.hold);
	}
	pthread_mutex_lock(&db->mu);
	log_mark_failed(db, bad);
	if (rc && logged) {
		Q_ERROR("lsm", "commit log write failed: %s; writes fail until %s",
			q_strerror(rc), rc == -ENOSPC ? "space is freed" : "reopened");
		if (!db->bg_error)
			db->bg_error = rc;
	} else if (rc == 0) {
		atomic_store(&db->last_seq, seq + grp->count - 1);
		atomic_fetch_add(&db->st_groups, 1);
		atomic_fetch_add(&db->st_group_writes, (uint64_t)ngroup);
	}
	return rc;
}

/* The leader w takes itself and the writers it committed (up to last) off
 * the queue, tells them rc and wakes the next leader. mu held. */
static void leave_queue(lsm_db *db, writer *w, writer *last, int rc)
{
	for (;;) {
		writer *x = db->wq_head;
		db->wq_head = x->next;
		db->wq_len--;
		if (!db->wq_head)
			db->wq_tail = NULL;
		if (x != w) {
			x->rc = rc;
			x->done = 1;
			pthread_cond_signal(&x->cv);
		}
		if (x == last)
			break;
	}
	if (db->wq_head)
		pthread_cond_signal(&db->wq_head->cv);
}

static int lsm_write_internal(lsm_db *db, lsm_batch *b)
{
	writer w;
	memset(&w, 0, sizeof(w));
	w.b = b;
	pthread_cond_init(&w.cv, NULL);
	pthread_mutex_lock(&db->mu);
	if (db->wq_tail)
		db->wq_tail->next = &w;
	else
		db->wq_head = &w;
	db->wq_tail = &w;
	db->wq_len++;
	if (db->gathering)
		pthread_cond_signal(&db->gather_cv);
	while (!w.done && db->wq_head != &w)
		pthread_cond_wait(&w.cv, &db->mu);
	if (w.done) {
		pthread_mutex_unlock(&db->mu);
		pthread_cond_destroy(&w.cv);
		return w.rc;
	}
	/* leader */
	int rc = make_room(db, b == NULL);
	if (rc == 0 && b && db->o.sync == LSM_SYNC_ALWAYS && db->wq_len < db->last_group) {
		uint64_t now = q_mono_ns();
		uint64_t deadline = now + GATHER_MAX_NS;
		uint64_t quiet = now + GATHER_GAP_NS;
		int seen = db->wq_len;
		db->gathering = 1;
		while (db->wq_len < db->last_group) {
			now = q_mono_ns();
			if (db->wq_len != seen) {
				seen = db->wq_len;
				quiet = now + GATHER_GAP_NS;
			}
			uint64_t until = quiet < deadline ? quiet : deadline;
			if (now >= until)
				break;
			timed_wait_ns(&db->gather_cv, &db->mu, until - now);
		}
		db->gathering = 0;
	}
	writer *last = &w;
	int ngroup = 1;
	lsm_batch *grp = NULL;
	if (rc == 0 && b) {
		grp = b;
		size_t size = b->rep.len;
		size_t max = size <= (128u << 10) ? size + (128u << 10) : GROUP_MAX;
		for (writer *x = w.next; x && x->b; x = x->next) {
			if (size + x->b->rep.len > max)
				break;
			if (grp == b) {
				grp = db->group;
				lsm_batch_clear(grp);
				rc = batch_append(grp, b);
			}
			if (rc == 0)
				rc = batch_append(grp, x->b);
			if (rc)
				break;
			size += x->b->rep.len;
			last = x;
			ngroup++;
		}
		db->last_group = ngroup;
	}
	if (rc == 0 && grp && grp->count > 0)
		rc = commit_group(db, grp, ngroup, 0);
	leave_queue(db, &w, last, rc);
	pthread_mutex_unlock(&db->mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

/* What lsm_write answers without writing: an error, 1 for an empty batch
 * (nothing to do), 0 to go on. */
static int write_check(lsm_db *db, lsm_batch *b)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->count == 0)
		return 1;
	if (b->max_key > db->o.max_key_size || b->max_value > db->o.max_value_size)
		return Q_ETOOBIG;
	return 0;
}

int lsm_write(lsm_db *db, lsm_batch *b)
{
	int rc = write_check(db, b);
	if (rc)
		return rc < 0 ? rc : 0;
	return lsm_write_internal(db, b);
}

/*
 * make_room's checks without its waits, for lsm_write_nowait: 0 if the
 * active memtable takes the write now; -EAGAIN where make_room would sleep
 * (level 0 past L0_SLOWDOWN), wait (a stall) or switch the memtable
 * (creating a log), or would try to resume after a failed log write
 * (try_resume creates a log); else the error make_room returns. mu held.
 */
static int room_nowait(lsm_db *db)
{
	if (db->bg_error) {
		if (bg_retryable(db->bg_error) && q_mono_ns() - db->resume_ns >= 1000000000ull)
			return -EAGAIN;
		return db->bg_error;
	}
	if (db->closing)
		return Q_ECLOSED;
	if (db->cur->nfiles[0] >= L0_SLOWDOWN)
		return -EAGAIN;
	if (mem_usage(db->mem) >= mem_limit(db) && mem_entries(db->mem) > 0)
		return -EAGAIN;
	return 0;
}

/*
 * lsm_write that never waits (lsm.h): it leads only an empty writer queue,
 * commits its batch alone (no group), and gives up with -EAGAIN before
 * anything is changed wherever lsm_write would wait. While it commits it is
 * the queue's leader like any other, so writers arriving meanwhile queue
 * behind it and the single-leader invariant (2) holds.
 */
int lsm_write_nowait(lsm_db *db, lsm_batch *b)
{
	int rc = write_check(db, b);
	if (rc)
		return rc < 0 ? rc : 0;
	if (db->o.sync == LSM_SYNC_ALWAYS) {
		atomic_fetch_add(&db->st_nw_sync, 1);
		return -EAGAIN; /* every write waits for an fsync */
	}
	writer w;
	memset(&w, 0, sizeof(w));
	w.b = b;
	pthread_mutex_lock(&db->mu);
	if (db->wq_head) {
		rc = -EAGAIN;
		atomic_fetch_add(&db->st_nw_queue, 1);
	} else if ((rc = room_nowait(db)) == -EAGAIN) {
		atomic_fetch_add(&db->st_nw_room, 1);
	}
	if (rc) {
		pthread_mutex_unlock(&db->mu);
		return rc;
	}
	pthread_cond_init(&w.cv, NULL);
	db->wq_head = db->wq_tail = &w;
	db->wq_len = 1;
	rc = commit_group(db, b, 1, 1);
	leave_queue(db, &w, &w, rc);
	pthread_mutex_unlock(&db->mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

static int write_one(lsm_db *db, q_slice key, const q_slice *value)
{
	if (key.n > db->o.max_key_size || (value && value->n > db->o.max_value_size))
		return Q_ETOOBIG;
	lsm_batch b;
	memset(&b, 0, sizeof(b));
	q_buf_init(&b.rep);
	uint8_t stack[256];
	size_t need = BATCH_HEADER_SIZE + 1 + 2 * Q_VARINT64_MAX + key.n + (value ? value->n : 0);
	int rc;
	if (need <= sizeof(stack)) {
		/* encode on the stack: no allocation for small writes */
		uint8_t *p = stack;
		memset(p, 0, BATCH_HEADER_SIZE);
		q_enc_fixed32(p + 8, 1);
		size_t o = BATCH_HEADER_SIZE;
		p[o++] = value ? BATCH_PUT : BATCH_DEL;
		o += q_enc_varint64(p + o, key.n);
		memcpy(p + o, key.p, key.n);
		o += key.n;
		if (value) {
			o += q_enc_varint64(p + o, value->n);
			if (value->n)
				memcpy(p + o, value->p, value->n);
			o += value->n;
		}
		b.rep.p = stack;
		b.rep.len = o;
		b.rep.cap = sizeof(stack);
		b.count = 1;
		b.max_key = key.n;
		b.max_value = value ? value->n : 0;
		return lsm_write_internal(db, &b);
	}
	rc = value ? lsm_batch_put(&b, key, *value) : lsm_batch_delete(&b, key);
	if (rc == 0)
		rc = lsm_write_internal(db, &b);
	batch_release(&b); /* the memtable may keep the encoding (batch.h) */
	return rc;
}

int lsm_put(lsm_db *db, q_slice key, q_slice value)
{
	return write_one(db, key, &value);
}

int lsm_delete(lsm_db *db, q_slice key)
{
	return write_one(db, key, NULL);
}

/* ================= read path ================= */

typedef struct read_view {
	uint64_t snap;
	mem_table *mem;
	mem_table *imm[LSM_MAX_IMM];
	int nimm;
	lsm_version *v;
} read_view;

static void view_take(lsm_db *db, read_view *rv)
{
	pthread_mutex_lock(&db->mu);
	rv->snap = atomic_load(&db->last_seq);
	rv->mem = db->mem;
	mem_ref(rv->mem);
	rv->nimm = db->nimm;
	for (int i = 0; i < db->nimm; i++) {
		rv->imm[i] = db->imm[i];
		mem_ref(rv->imm[i]);
	}
	rv->v = db->cur;
	ver_ref(rv->v);
	pthread_mutex_unlock(&db->mu);
}

static void view_drop(read_view *rv)
{
	mem_unref(rv->mem);
	for (int i = 0; i < rv->nimm; i++)
		mem_unref(rv->imm[i]);
	ver_unref(rv->v);
}

/*
 * view_drop for a call that never blocks: if its reference on the version
 * is the last one (a flush or compaction replaced the version, and the
 * manifest moved on, while the lookup ran: rare), releasing it would close,
 * unmap and delete the files only that version kept on the caller's
 * thread; the version goes to the flush thread instead (release_deferred),
 * which lsm_close also drains. The last reference on a memtable only
 * frees memory, and is dropped here.
 */
static void view_drop_nowait(lsm_db *db, read_view *rv)
{
	mem_unref(rv->mem);
	for (int i = 0; i < rv->nimm; i++)
		mem_unref(rv->imm[i]);
	lsm_version *v = rv->v;
	int r = atomic_load(&v->refs);
	while (r > 1)
		if (atomic_compare_exchange_weak(&v->refs, &r, r - 1))
			return;
	/* the last reference: nobody else can take one now */
	pthread_mutex_lock(&db->mu);
	v->defer_next = db->deferred;
	db->deferred = v;
	pthread_cond_broadcast(&db->work_cv);
	pthread_mutex_unlock(&db->mu);
}

void lsm_test_set_view_hook(lsm_db *db, void (*fn)(void *arg), void *arg)
{
	db->view_hook_arg = arg;
	db->view_hook = fn;
}

static int file_covers(lsm_file *f, q_slice ukey)
{
	q_slice s = ikey_user(q_buf_slice(&f->smallest));
	q_slice l = ikey_user(q_buf_slice(&f->largest));
	return ukey_cmp(s.p, s.n, ukey.p, ukey.n) <= 0 && ukey_cmp(l.p, l.n, ukey.p, ukey.n) >= 0;
}

/* Replaces the blob pointer in io (the table value of a KIND_BLOB entry of
 * ukey) by the value it points to, read from a blob file of v. */
static int blob_resolve(const lsm_version *v, q_slice ukey, q_buf *io)
{
	blob_ptr p;
	if (blob_ptr_decode(q_buf_slice(io), &p)) {
		Q_ERROR("lsm", "malformed blob pointer for a key of %zu bytes", ukey.n);
		q_buf_reset(io);
		return Q_ECORRUPT;
	}
	lsm_blob *b = ver_find_blob(v, p.number);
	if (!b) {
		Q_ERROR("lsm", "blob pointer into blob file %llu, which the version does not "
			"hold", (unsigned long long)p.number);
		q_buf_reset(io);
		return Q_ECORRUPT;
	}
	return blob_read(b, ukey, &p, io);
}

/* One table's answer for get_impl: 1 found, 0 not there, <0 error
 * (-EAGAIN with nowait when it needs a read; nowait 2: a block whose
 * pages are in the page cache is no read, sst_get_cached). */
static int table_lookup(lsm_file *f, q_slice key, uint64_t h, q_slice ik, int *kind, q_buf *out,
			int nowait)
{
	if (!nowait)
		return sst_get(f->t, key, h, ik, kind, out);
	if (!f->t)
		return -EAGAIN;
	return sst_get_cached(f->t, key, h, ik, kind, out, nowait == 2);
}

/*
 * The lookup of lsm_get and lsm_get_nowait. With nowait nothing is read
 * from a file: the tables answer from their filters, indexes and the block
 * cache only (sst_get_cached), and -EAGAIN comes back as soon as the answer
 * needs more (a block not cached, a table not open, a separated value).
 */
static int get_impl(lsm_db *db, q_slice key, q_buf *out, int nowait)
{
	if (key.n > db->o.max_key_size)
		return Q_ETOOBIG;
	read_view rv;
	view_take(db, &rv);
	int kind = 0, rc;
	if (nowait && db->view_hook)
		db->view_hook(db->view_hook_arg);
	if (nowait && db->o.nowait_page_cache)
		nowait = 2;
	/* one hash per lookup: the memtables' filters and the tables' bloom
	 * filters use the same one */
	uint64_t h = bloom_hash(key);
	rc = mem_get_hashed(rv.mem, key, h, rv.snap, &kind, out);
	for (int i = rv.nimm - 1; rc == 0 && i >= 0; i--)
		rc = mem_get_hashed(rv.imm[i], key, h, rv.snap, &kind, out);
	if (rc == 0) {
		uint8_t sb[256];
		uint8_t *kb = key.n + IKEY_TRAILER <= sizeof(sb) ? sb : malloc(key.n + IKEY_TRAILER);
		if (!kb) {
			rc = -ENOMEM;
			goto out;
		}
		if (key.n)
			memcpy(kb, key.p, key.n);
		q_enc_fixed64(kb + key.n, ikey_pack(rv.snap, KIND_SEEK));
		q_slice ik = q_slice_make(kb, key.n + IKEY_TRAILER);
		lsm_version *v = rv.v;
		for (size_t i = 0; rc == 0 && i < v->nfiles[0]; i++)
			if (file_covers(v->files[0][i], key))
				rc = table_lookup(v->files[0][i], key, h, ik, &kind, out, nowait);
		for (int l = 1; rc == 0 && l < LSM_LEVELS; l++) {
			if (!v->nfiles[l])
				continue;
			size_t idx = ver_find_file(v, l, ik);
			if (idx < v->nfiles[l] && file_covers(v->files[l][idx], key))
				rc = table_lookup(v->files[l][idx], key, h, ik, &kind, out, nowait);
		}
		if (kb != sb)
			free(kb);
		if (rc == 1 && kind == KIND_BLOB && nowait) {
			/* the value is in a blob file or a kept log: a read */
			q_buf_reset(out);
			rc = -EAGAIN;
		} else if (rc == 1 && kind == KIND_BLOB) {
			int brc = blob_resolve(rv.v, key, out);
			if (brc)
				rc = brc;
		}
	}
out:
	if (nowait)
		view_drop_nowait(db, &rv);
	else
		view_drop(&rv);
	if (rc < 0)
		return rc;
	if (rc == 0 || kind == KIND_DEL)
		return Q_ENOTFOUND;
	return 0;
}

int lsm_get(lsm_db *db, q_slice key, q_buf *out)
{
	return get_impl(db, key, out, 0);
}

int lsm_get_nowait(lsm_db *db, q_slice key, q_buf *out)
{
	int rc = get_impl(db, key, out, 1);
	if (rc == -EAGAIN)
		atomic_fetch_add(&db->st_nw_get, 1);
	return rc;
}

/* ================= user iterators ================= */

struct lsm_iter {
	read_view rv;
	lsm_it *m;
	q_buf key;
	q_buf bval;       /* the current value when it came from a blob file */
	q_slice val;
	int valid;
	int status;
	uint64_t skipped; /* entries whose blob record failed its checks */
	_Atomic uint64_t *db_skipped;
	q_buf seek;
};

int lsm_iter_new(lsm_db *db, lsm_iter **out)
{
	lsm_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	view_take(db, &it->rv);
	it->db_skipped = &db->st_blob_skipped;
	lsm_version *v = it->rv.v;
	size_t cap = 1 + (size_t)it->rv.nimm + v->nfiles[0] + LSM_LEVELS;
	lsm_it **kids = calloc(cap, sizeof(*kids));
	size_t n = 0;
	int rc = 0;
	if (!kids) {
		rc = -ENOMEM;
		goto fail;
	}
	kids[n++] = mem_iter_new(it->rv.mem);
	for (int i = it->rv.nimm - 1; i >= 0; i--)
		kids[n++] = mem_iter_new(it->rv.imm[i]);
	for (size_t i = 0; i < v->nfiles[0]; i++)
		kids[n++] = sst_iter_new(v->files[0][i]->t, 1);
	for (int l = 1; l < LSM_LEVELS; l++)
		if (v->nfiles[l])
			kids[n++] = ver_level_iter(v, l, 1);
	for (size_t i = 0; i < n; i++)
		if (!kids[i])
			rc = -ENOMEM;
	if (rc) {
		for (size_t i = 0; i < n; i++)
			it_free(kids[i]);
		free(kids);
		goto fail;
	}
	it->m = it_merge_new(kids, n);
	free(kids);
	if (!it->m) {
		rc = -ENOMEM;
		goto fail;
	}
	q_buf_init(&it->key);
	q_buf_init(&it->seek);
	q_buf_init(&it->bval);
	*out = it;
	return 0;
fail:
	view_drop(&it->rv);
	free(it);
	return rc;
}

/* Moves to the first visible live entry at or after the merge position;
 * if skip, user keys equal to it->key are passed over first. */
static void iter_settle(lsm_iter *it, int skip)
{
	it->valid = 0;
	while (it_valid(it->m)) {
		q_slice k = it_key(it->m);
		if (ikey_seq(k) > it->rv.snap) {
			it_next(it->m);
			continue;
		}
		q_slice uk = ikey_user(k);
		if (skip && ukey_cmp(uk.p, uk.n, it->key.p, it->key.len) == 0) {
			it_next(it->m);
			continue;
		}
		q_buf_reset(&it->key);
		if (q_buf_append(&it->key, uk.p, uk.n)) {
			it->status = -ENOMEM;
			return;
		}
		skip = 1;
		if (ikey_kind(k) == KIND_DEL) {
			it_next(it->m);
			continue;
		}
		it->val = it_value(it->m);
		if (ikey_kind(k) == KIND_BLOB) {
			int rc = 0;
			q_buf_reset(&it->bval);
			rc = q_buf_append(&it->bval, it->val.p, it->val.n);
			if (rc == 0)
				rc = blob_resolve(it->rv.v, q_buf_slice(&it->key), &it->bval);
			if (rc == Q_ECORRUPT) {
				/* reported by blob_read (file, offset); the key is
				 * passed over like one in a quarantined table, so a
				 * scan (anti-entropy, handoff) goes on and the key is
				 * repaired from a replica instead of stopping every
				 * scan at it until it is rewritten */
				it->skipped++;
				atomic_fetch_add(it->db_skipped, 1);
				it_next(it->m);
				continue;
			}
			if (rc) {
				it->status = rc;
				return;
			}
			it->val = q_buf_slice(&it->bval);
		}
		it->valid = 1;
		return;
	}
	int rc = it_status(it->m);
	if (rc && !it->status)
		it->status = rc;
}

void lsm_iter_seek_first(lsm_iter *it)
{
	if (it->status)
		return;
	it_seek_first(it->m);
	iter_settle(it, 0);
}

void lsm_iter_seek(lsm_iter *it, q_slice target)
{
	if (it->status)
		return;
	if (ikey_build(&it->seek, target, SEQ_MAX, KIND_SEEK)) {
		it->status = -ENOMEM;
		it->valid = 0;
		return;
	}
	it_seek(it->m, q_buf_slice(&it->seek));
	iter_settle(it, 0);
}

int lsm_iter_valid(const lsm_iter *it)
{
	return it->valid && !it->status;
}

void lsm_iter_next(lsm_iter *it)
{
	if (!lsm_iter_valid(it))
		return;
	it_next(it->m);
	iter_settle(it, 1);
}

q_slice lsm_iter_key(const lsm_iter *it)
{
	return q_buf_slice(&it->key);
}

q_slice lsm_iter_value(const lsm_iter *it)
{
	return it->val;
}

int lsm_iter_status(const lsm_iter *it)
{
	return it->status;
}

uint64_t lsm_iter_skipped(const lsm_iter *it)
{
	return it->skipped;
}

void lsm_iter_free(lsm_iter *it)
{
	if (!it)
		return;
	it_free(it->m);
	view_drop(&it->rv);
	q_buf_free(&it->key);
	q_buf_free(&it->seek);
	q_buf_free(&it->bval);
	free(it);
}

/* ================= flush, compaction, stats ================= */

int lsm_flush(lsm_db *db)
{
	int rc = lsm_write_internal(db, NULL);
	if (rc)
		return rc;
	pthread_mutex_lock(&db->mu);
	while (db->nimm > 0 && !db->bg_error && !db->closing)
		pthread_cond_wait(&db->state_cv, &db->mu);
	rc = db->bg_error;
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int lsm_compact_all(lsm_db *db)
{
	Q_RET(lsm_flush(db));
	pthread_mutex_lock(&db->mu);
	uint64_t gen = ++db->manual_gen;
	db->manual_pending = 1;
	pthread_cond_broadcast(&db->work_cv);
	while (db->manual_done < gen && !db->closing)
		pthread_cond_wait(&db->state_cv, &db->mu);
	int rc = db->manual_done >= gen ? db->manual_rc : Q_ECLOSED;
	pthread_mutex_unlock(&db->mu);
	if (rc == 0)
		rc = manifest_checkpoint(db);
	return rc;
}

void lsm_get_stats(lsm_db *db, lsm_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&db->mu);
	lsm_version *v = db->cur;
	for (int l = 0; l < LSM_LEVELS; l++) {
		s->tables_per_level[l] = v->nfiles[l];
		s->num_tables += v->nfiles[l];
		s->disk_bytes += ver_level_bytes(v, l);
	}
	for (size_t i = 0; i < v->nblobs; i++) {
		s->blob_files++;
		s->blob_bytes += v->blobs[i]->size;
		s->blob_garbage_bytes += atomic_load(&v->blobs[i]->garbage);
	}
	s->disk_bytes += s->blob_bytes;
	s->memtable_bytes = mem_usage(db->mem);
	for (int i = 0; i < db->nimm; i++)
		s->memtable_bytes += mem_usage(db->imm[i]);
	pthread_mutex_unlock(&db->mu);
	pthread_mutex_lock(&db->log_mu);
	if (db->log)
		s->disk_bytes += wal_size(db->log);
	pthread_mutex_unlock(&db->log_mu);
	s->disk_bytes += atomic_load(&db->manifest_size);
	s->quarantined_tables = atomic_load(&db->st_quarantined);
	s->corrupt_records_skipped = atomic_load(&db->st_corrupt_records);
	s->flushes = atomic_load(&db->st_flushes);
	s->compactions = atomic_load(&db->st_compactions);
	s->compaction_bytes_written = atomic_load(&db->st_compact_bytes);
	s->stall_ms = atomic_load(&db->st_stall_ns) / 1000000;
	s->commit_groups = atomic_load(&db->st_groups);
	s->commit_writes = atomic_load(&db->st_group_writes);
	s->manifest_fallback = (uint64_t)db->manifest_fallback;
	s->blob_moved_bytes = atomic_load(&db->st_blob_moved);
	s->blob_corrupt_skipped = atomic_load(&db->st_blob_skipped);
	s->nowait_get_read = atomic_load(&db->st_nw_get);
	s->nowait_write_queue = atomic_load(&db->st_nw_queue);
	s->nowait_write_room = atomic_load(&db->st_nw_room);
	s->nowait_write_log_busy = atomic_load(&db->st_nw_log_busy);
	s->nowait_write_log_full = atomic_load(&db->st_nw_log_full);
	s->nowait_write_log_mark = atomic_load(&db->st_nw_log_mark);
	s->nowait_write_sync = atomic_load(&db->st_nw_sync);
	s->log_early_writes = atomic_load(&db->st_log_early);
	size_t usage;
	cache_stats(db->cache, &s->cache_hits, &s->cache_misses, &usage);
}

/* ================= open / recovery / close ================= */

typedef struct replay_ctx {
	lsm_db *db;
	const char *path;
} replay_ctx;

static void replay_report(void *arg, uint64_t off, size_t bytes, const char *why, int torn)
{
	replay_ctx *rc = arg;
	if (torn)
		Q_WARN("lsm", "commit log %s: torn tail at offset %llu (%zu bytes): %s; "
		       "replay stops there", rc->path, (unsigned long long)off, bytes, why);
	else
		Q_ERROR("lsm", "commit log %s: corrupt record at offset %llu (%zu bytes): %s; "
			"skipped", rc->path, (unsigned long long)off, bytes, why);
}

static int parse_number(const char *name, const char *suffix, uint64_t *out)
{
	size_t n = strlen(name), sl = strlen(suffix);
	if (n <= sl || strcmp(name + n - sl, suffix) != 0)
		return 0;
	uint64_t v = 0;
	for (size_t i = 0; i < n - sl; i++) {
		if (name[i] < '0' || name[i] > '9' || v > UINT64_MAX / 10 - 1)
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*out = v;
	return 1;
}


/* Flushes a recovery memtable into a new level-0 file appended to *adds. */
static int recover_flush(lsm_db *db, mem_table *m, lsm_file ***adds, size_t *nadd)
{
	lsm_file *f = NULL;
	int rc = write_mem_table(db, m, db->next_file++, &f);
	if (rc || !f)
		return rc;
	lsm_file **n = realloc(*adds, (*nadd + 1) * sizeof(*n));
	if (!n) {
		discard_flushed(f);
		ver_file_unref(f);
		return -ENOMEM;
	}
	*adds = n;
	n[(*nadd)++] = f;
	return 0;
}

static int replay_log(lsm_db *db, uint64_t number, mem_table **mp, lsm_file ***adds,
		      size_t *nadd, uint64_t *max_seq)
{
	char path[512];
	ver_log_path(path, sizeof(path), db->dir, number);
	uint8_t *data = NULL;
	size_t n = 0;
	int rc = q_env_read_all(db->env, path, &data, &n);
	if (rc) {
		Q_ERROR("lsm", "cannot read commit log %s: %s", path, q_strerror(rc));
		return rc;
	}
	replay_ctx ctx = {db, path};
	wal_reader r;
	wal_reader_init(&r, data, n, replay_report, &ctx);
	q_slice rec;
	uint64_t records = 0;
	while ((rc = wal_read(&r, &rec)) == 1) {
		insert_ctx ic = {*mp, NULL};
		int brc = batch_decode(rec, NULL, NULL);
		if (brc) {
			Q_ERROR("lsm", "commit log %s: malformed batch before offset %zu: %s; skipped",
				path, r.pos, q_strerror(brc));
			atomic_fetch_add(&db->st_corrupt_records, 1);
			continue;
		}
		rc = batch_decode(rec, insert_op, &ic);
		if (rc)
			break;
		uint32_t cnt = batch_rep_count(rec);
		if (cnt) {
			uint64_t last = batch_rep_seq(rec) + cnt - 1;
			if (last > *max_seq)
				*max_seq = last;
		}
		records++;
		if (mem_usage(*mp) >= db->o.write_buffer_size) {
			rc = recover_flush(db, *mp, adds, nadd);
			if (rc)
				break;
			mem_unref(*mp);
			*mp = mem_new();
			if (!*mp) {
				rc = -ENOMEM;
				break;
			}
		}
	}
	atomic_fetch_add(&db->st_corrupt_records, r.corrupt);
	wal_reader_free(&r);
	free(data);
	if (rc == 0)
		Q_INFO("lsm", "replayed %llu records from %s", (unsigned long long)records, path);
	return rc < 0 ? rc : 0;
}

/* Reads and decodes the manifest at path into *buf / *md (the caller frees
 * both, also on error): 0, -ENOENT, Q_ECORRUPT (reported), or an error. */
static int read_manifest(lsm_db *db, const char *path, uint8_t **buf, man_data *md)
{
	size_t len = 0, bad = 0;
	memset(md, 0, sizeof(*md));
	*buf = NULL;
	int rc = q_env_read_all(db->env, path, buf, &len);
	if (rc)
		return rc;
	rc = ver_manifest_decode(*buf, len, md, &bad);
	if (rc)
		Q_ERROR("lsm", "manifest %s is corrupt at offset %zu (%s)", path, bad,
			q_strerror(rc));
	return rc;
}

/* 1 if log num is a kept log among the manifest's blob files. */
static int kept_log(lsm_blob *const *blobs, size_t n, uint64_t num)
{
	for (size_t i = 0; i < n; i++)
		if (blobs[i]->is_log && blobs[i]->number == num)
			return 1;
	return 0;
}

static int recover(lsm_db *db)
{
	char mpath[512], ppath[530];
	Q_RET(manifest_path(db, mpath, sizeof(mpath)));
	snprintf(ppath, sizeof(ppath), "%s%s", mpath, MANIFEST_PREV_SUFFIX);
	int fell_back = 0; /* 1: MANIFEST corrupt, 2: MANIFEST missing */
	uint8_t *mbuf = NULL;
	man_data md;
	memset(&md, 0, sizeof(md));
	char **names = NULL;
	size_t nnames = 0;
	uint64_t *logs = NULL;
	size_t nlogs = 0;
	lsm_file **adds = NULL;
	size_t nadd = 0;
	int adds_named = 0; /* a durable manifest names adds */
	mem_table *m = NULL;
	lsm_version *base = NULL;
	lsm_blob **blobs = NULL; /* of the manifest, parallel to md.blobs */
	size_t nblobs = 0;
	int rc = q_env_list(db->env, db->dir, &names, &nnames);
	if (rc)
		return rc;
	uint64_t maxnum = 0;
	int have_data_files = 0;
	for (size_t i = 0; i < nnames; i++) {
		uint64_t num;
		if (parse_number(names[i], ".sst", &num) || parse_number(names[i], ".log", &num) ||
		    parse_number(names[i], ".blob", &num)) {
			have_data_files = 1;
			if (num > maxnum)
				maxnum = num;
		}
	}

	rc = read_manifest(db, mpath, &mbuf, &md);
	if (rc == Q_ECORRUPT || rc == -ENOENT) {
		/* MANIFEST.prev is the manifest before the last one; every file
		 * it names was kept while MANIFEST was current */
		int mrc = rc;
		uint8_t *pbuf;
		man_data pmd;
		int prc = read_manifest(db, ppath, &pbuf, &pmd);
		if (prc == 0) {
			free(mbuf);
			ver_manifest_free(&md);
			mbuf = pbuf;
			md = pmd;
			rc = 0;
			fell_back = mrc == Q_ECORRUPT ? 1 : 2;
			if (fell_back == 1)
				Q_ERROR("lsm", "%s: recovering from the previous manifest %s; the "
					"corrupt one is kept as %s%s", db->dir, ppath, MANIFEST_NAME,
					MANIFEST_BAD_SUFFIX);
			else
				Q_WARN("lsm", "%s: no %s (interrupted replacement): recovering "
				       "from %s", db->dir, MANIFEST_NAME, ppath);
		} else {
			free(pbuf);
			ver_manifest_free(&pmd);
			if (mrc == Q_ECORRUPT || prc != -ENOENT) {
				Q_ERROR("lsm", "%s: no usable manifest (%s: %s, %s: %s); the store "
					"cannot be opened safely", db->dir, MANIFEST_NAME,
					q_strerror(mrc), ppath, q_strerror(prc));
				rc = mrc == Q_ECORRUPT ? Q_ECORRUPT : prc;
				goto fail;
			}
		}
	}
	if (rc == -ENOENT) {
		if (!db->o.create_if_missing) {
			rc = -ENOENT;
			goto fail;
		}
		if (have_data_files) {
			Q_ERROR("lsm", "%s: tables or logs present but no %s; refusing to start "
				"a new store over them", db->dir, MANIFEST_NAME);
			rc = Q_ECORRUPT;
			goto fail;
		}
		md.next_file = 1;
		rc = 0;
	} else if (rc) {
		if (rc == Q_EVERSION)
			Q_ERROR("lsm", "manifest %s has an unknown version", mpath);
		goto fail;
	}
	if (md.next_file <= maxnum)
		md.next_file = maxnum + 1;
	db->next_file = md.next_file;
	atomic_store(&db->last_seq, md.last_seq);

	/* blob files of the manifest; one that cannot be used stays listed
	 * (the reads of its values fail with Q_ECORRUPT: no wrong data) */
	blobs = calloc(md.nblobs ? md.nblobs : 1, sizeof(*blobs));
	if (!blobs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < md.nblobs; i++) {
		man_blob *mb = &md.blobs[i];
		lsm_blob *b = mb->is_log
				      ? blob_new_log(db->env, db->dir, mb->number, mb->size, mb->garbage)
				      : blob_new(db->env, db->dir, mb->number, mb->size, mb->garbage);
		if (!b) {
			rc = -ENOMEM;
			goto fail;
		}
		blobs[nblobs++] = b;
		rc = blob_open(b);
		if (rc == Q_ECORRUPT || rc == -ENOENT) {
			Q_ERROR("lsm", "blob file %s unusable (%s): reads of its values fail "
				"until they are repaired from replicas", b->path, q_strerror(rc));
			rc = 0;
		} else if (rc && rc != -ENOMEM) {
			/* EMFILE, EIO, ...: not fatal; the first read opens it */
			Q_WARN("lsm", "blob file %s not opened (%s): its first read tries again",
			       b->path, q_strerror(rc));
			rc = 0;
		}
		if (rc)
			goto fail;
	}

	/* tables of the manifest; a damaged one is quarantined */
	base = ver_new();
	if (!base) {
		rc = -ENOMEM;
		goto fail;
	}
	{
		lsm_file **fs = calloc(md.nfiles ? md.nfiles : 1, sizeof(*fs));
		int *lv = calloc(md.nfiles ? md.nfiles : 1, sizeof(int));
		size_t nf = 0;
		if (!fs || !lv) {
			free(fs);
			free(lv);
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < md.nfiles; i++) {
			man_file *mf = &md.files[i];
			lsm_file *f = ver_file_new(db->env, db->dir, mf->number, mf->size,
						   mf->smallest, mf->largest);
			if (!f) {
				rc = -ENOMEM;
				break;
			}
			rc = file_open_table(db, f);
			if (rc == Q_ECORRUPT || rc == -ENOENT || rc == Q_EVERSION) {
				Q_ERROR("lsm", "table %s unusable (%s): quarantined", f->path,
					q_strerror(rc));
				/* its blob files: kept as .blob.bad if no usable
				 * table refers to them (decided below) */
				for (size_t j = 0; rc != -ENOENT && j < mf->nrefs; j++)
					for (size_t k = 0; k < nblobs; k++)
						if (blobs[k]->number == md.refs[mf->ref_start + j])
							atomic_store(&blobs[k]->quarantined, 2);
				atomic_store(&f->quarantined, rc != -ENOENT);
				atomic_store(&f->obsolete, 1);
				atomic_fetch_add(&db->st_quarantined, 1);
				ver_file_unref(f);
				rc = 0;
				continue;
			}
			for (size_t j = 0; rc == 0 && j < mf->nrefs; j++) {
				uint64_t num = md.refs[mf->ref_start + j];
				for (size_t k = 0; k < nblobs; k++)
					if (blobs[k]->number == num) {
						rc = ver_file_set_blobs(f, &blobs[k], 1);
						break;
					}
			}
			if (rc) {
				ver_file_unref(f);
				break;
			}
			fs[nf] = f;
			lv[nf] = mf->level;
			nf++;
		}
		if (rc == 0) {
			lsm_version *v = ver_edit(base, NULL, 0, fs, lv, nf);
			if (!v)
				rc = -ENOMEM;
			else {
				ver_unref(base);
				base = v;
			}
		}
		for (size_t i = 0; i < nf; i++)
			ver_file_unref(fs[i]);
		free(fs);
		free(lv);
		if (rc)
			goto fail;
		/* a blob file of a quarantined table that a usable table still
		 * refers to stays in the store; the others are renamed .bad
		 * when their handle goes (below), not deleted as orphans */
		for (size_t k = 0; k < nblobs; k++)
			if (atomic_load(&blobs[k]->quarantined))
				atomic_store(&blobs[k]->quarantined,
					     ver_find_blob(base, blobs[k]->number) == NULL);
	}

	/* logs still needed, oldest first */
	logs = calloc(nnames ? nnames : 1, sizeof(*logs));
	if (!logs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nnames; i++) {
		uint64_t num;
		if (parse_number(names[i], ".log", &num) && num >= md.log_number &&
		    !kept_log(blobs, nblobs, num))
			logs[nlogs++] = num;
	}
	qsort(logs, nlogs, sizeof(*logs), cmp_u64);
	m = mem_new();
	if (!m) {
		rc = -ENOMEM;
		goto fail;
	}
	uint64_t max_seq = md.last_seq;
	for (size_t i = 0; i < nlogs; i++) {
		rc = replay_log(db, logs[i], &m, &adds, &nadd, &max_seq);
		if (rc)
			goto fail;
	}
	if (mem_entries(m) > 0 && (rc = recover_flush(db, m, &adds, &nadd)))
		goto fail;
	atomic_store(&db->last_seq, max_seq);

	{
		int *lv = calloc(nadd ? nadd : 1, sizeof(int));
		if (!lv) {
			rc = -ENOMEM;
			goto fail;
		}
		db->cur = ver_edit(base, NULL, 0, adds, lv, nadd);
		free(lv);
		if (!db->cur) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (fell_back == 1) {
		/* keep the corrupt manifest for study, out of the way of
		 * write_manifest, which would make it MANIFEST.prev */
		char badp[540];
		snprintf(badp, sizeof(badp), "%s%s", mpath, MANIFEST_BAD_SUFFIX);
		if ((rc = q_env_rename(db->env, mpath, badp)))
			goto fail;
		db->manifest_fallback = 1;
	}
	/* new log, then the manifest that names it; the manifest recovered
	 * from becomes MANIFEST.prev, so its tables (base) and logs stay */
	uint64_t lognum = db->next_file++;
	db->log_number = lognum;
	rc = write_manifest(db, db->cur, db->next_file, max_seq, lognum);
	if (rc) {
		adds_named = db->manifest_unsure;
		goto fail;
	}
	/* the manifest names the tables flushed from the logs: from here on a
	 * failure must keep them (the logs they replace are obsolete) */
	adds_named = 1;
	rc = new_log(db, lognum, &db->log);
	if (rc)
		goto fail;
	db->log_num = lognum;
	mem_set_log(m, lognum);
	if (mem_entries(m) > 0) {
		/* its contents are in a table now: start empty */
		mem_unref(m);
		m = mem_new();
		if (!m) {
			rc = -ENOMEM;
			goto fail;
		}
		mem_set_log(m, lognum);
	}
	db->mem = m;
	m = NULL;

	/* delete what no longer belongs */
	for (size_t i = 0; i < nnames; i++) {
		uint64_t num;
		int del = 0;
		if (parse_number(names[i], ".log", &num)) {
			/* a kept log is a blob file of the manifest (one that
			 * only a quarantined table named is moved aside) */
			int kept = kept_log(blobs, nblobs, num);
			del = num < md.log_number && !kept;
			if (!del && !kept && num < lognum)
				pend_log(db, num);
		} else if (parse_number(names[i], ".sst", &num)) {
			del = 1;
			for (int l = 0; l < LSM_LEVELS && del; l++)
				for (size_t j = 0; j < db->cur->nfiles[l] && del; j++)
					del = db->cur->files[l][j]->number != num;
		} else if (parse_number(names[i], ".blob", &num)) {
			/* written by a flush or compaction that no manifest names
			 * (those of quarantined tables are moved aside instead) */
			del = ver_find_blob(db->cur, num) == NULL;
			for (size_t k = 0; del && k < nblobs; k++)
				if (blobs[k]->number == num && atomic_load(&blobs[k]->quarantined))
					del = 0;
		} else if (!strcmp(names[i], MANIFEST_NAME ".tmp"))
			del = 1;
		if (del) {
			char p[900];
			snprintf(p, sizeof(p), "%s/%s", db->dir, names[i]);
			int urc = q_env_unlink(db->env, p);
			if (urc && urc != -ENOENT)
				Q_WARN("lsm", "cannot delete %s: %s", p, q_strerror(urc));
		}
	}
	db->prev_ver = base;
	base = NULL;
	rc = 0;
fail:
	for (size_t i = 0; i < nadd; i++) {
		if (rc && !adds_named)
			discard_flushed(adds[i]);
		ver_file_unref(adds[i]);
	}
	free(adds);
	mem_unref(m);
	ver_unref(base);
	free(logs);
	for (size_t i = 0; i < nblobs; i++)
		blob_unref(blobs[i]);
	free(blobs);
	ver_manifest_free(&md);
	free(mbuf);
	q_env_list_free(names, nnames);
	return rc;
}

static void db_free(lsm_db *db)
{
	mem_unref(db->mem);
	for (int i = 0; i < db->nimm; i++)
		mem_unref(db->imm[i]);
	if (db->prev_ver) {
		/* MANIFEST.prev names these files: they stay on disk (the next
		 * recovery deletes those that neither manifest needs) */
		lsm_version *pv = db->prev_ver;
		for (int l = 0; l < LSM_LEVELS; l++)
			for (size_t i = 0; i < pv->nfiles[l]; i++)
				if (!atomic_load(&pv->files[l][i]->quarantined))
					atomic_store(&pv->files[l][i]->obsolete, 0);
		for (size_t i = 0; i < pv->nblobs; i++)
			atomic_store(&pv->blobs[i]->obsolete, 0);
		ver_unref(pv);
	}
	free(db->pend_logs);
	ver_unref(db->cur);
	cache_free(db->cache);
	lsm_batch_free(db->group);
	for (int l = 0; l < LSM_LEVELS; l++)
		q_buf_free(&db->compact_ptr[l]);
	q_file_close(db->lockf);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->log_mu);
	pthread_mutex_destroy(&db->man_mu);
	pthread_cond_destroy(&db->work_cv);
	pthread_cond_destroy(&db->state_cv);
	pthread_cond_destroy(&db->sync_cv);
	pthread_cond_destroy(&db->gather_cv);
	free(db);
}

int lsm_open(const char *dir, const lsm_options *o, lsm_db **out)
{
	lsm_db *db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	if (o)
		db->o = *o;
	else
		lsm_options_default(&db->o);
	if (!db->o.env)
		db->o.env = q_env_posix();
	if (!db->o.write_buffer_size)
		db->o.write_buffer_size = 4u << 20;
	if (!db->o.block_size)
		db->o.block_size = 4096;
	if (db->o.write_buffer_jitter > 50)
		db->o.write_buffer_jitter = 50;
	db->jitter_seed = q_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)db;
	if (!db->o.max_key_size)
		db->o.max_key_size = 64u << 10;
	if (!db->o.max_value_size)
		db->o.max_value_size = 64u << 20;
	if (db->o.bloom_bits_per_key < 0)
		db->o.bloom_bits_per_key = 0;
	db->env = db->o.env;
	db->so.block_size = db->o.block_size;
	db->so.bloom_bits_per_key = db->o.bloom_bits_per_key;
	db->so.compression = db->o.compression;
	pthread_mutex_init(&db->mu, NULL);
	pthread_mutex_init(&db->log_mu, NULL);
	pthread_mutex_init(&db->man_mu, NULL);
	pthread_cond_init(&db->work_cv, NULL);
	pthread_cond_init(&db->state_cv, NULL);
	pthread_cond_init(&db->sync_cv, NULL);
	pthread_cond_init(&db->gather_cv, NULL);
	int rc = 0;
	char lockp[512];
	if (snprintf(db->dir, sizeof(db->dir), "%s", dir) >= (int)sizeof(db->dir)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	if (db->o.create_if_missing)
		Q_ERR(q_env_mkdirs(db->env, dir));
	snprintf(lockp, sizeof(lockp), "%s/LOCK", db->dir);
	Q_ERR(q_env_lock(db->env, lockp, &db->lockf));
	db->cache = db->o.block_cache_size ? cache_new(db->o.block_cache_size) : NULL;
	db->group = lsm_batch_new();
	if ((db->o.block_cache_size && !db->cache) || !db->group) {
		rc = -ENOMEM;
		goto fail;
	}
	Q_ERR(recover(db));
	if (pthread_create(&db->flush_thr, NULL, flush_main, db) == 0)
		db->have_flush = 1;
	if (pthread_create(&db->compact_thr, NULL, compact_main, db) == 0)
		db->have_compact = 1;
	if (db->o.sync == LSM_SYNC_BATCH && pthread_create(&db->sync_thr, NULL, sync_main, db) == 0)
		db->have_sync = 1;
	if (!db->have_flush || !db->have_compact ||
	    (db->o.sync == LSM_SYNC_BATCH && !db->have_sync)) {
		lsm_close(db);
		return -EAGAIN;
	}
	/* level 0 may already need compaction */
	pthread_mutex_lock(&db->mu);
	pthread_cond_broadcast(&db->work_cv);
	pthread_mutex_unlock(&db->mu);
	*out = db;
	return 0;
fail:
	if (db->log)
		wal_writer_close(db->log);
	db_free(db);
	return rc;
}

int lsm_close(lsm_db *db)
{
	if (!db)
		return 0;
	pthread_mutex_lock(&db->mu);
	db->closing = 1;
	pthread_cond_broadcast(&db->work_cv);
	pthread_cond_broadcast(&db->state_cv);
	pthread_cond_broadcast(&db->sync_cv);
	pthread_mutex_unlock(&db->mu);
	if (db->have_flush)
		pthread_join(db->flush_thr, NULL);
	if (db->have_compact)
		pthread_join(db->compact_thr, NULL);
	if (db->have_sync)
		pthread_join(db->sync_thr, NULL);
	pthread_mutex_lock(&db->mu);
	release_deferred(db); /* what the flush thread left */
	pthread_mutex_unlock(&db->mu);
	int rc = 0;
	if (db->log) {
		if (db->o.sync != LSM_SYNC_NONE)
			rc = wal_sync(db->log);
		int rc2 = wal_writer_close(db->log);
		if (rc == 0 && !db->bg_error)
			rc = rc2;
		db->log = NULL;
	}
	if (!db->bg_error && manifest_checkpoint(db))
		Q_WARN("lsm", "%s: closing without a final manifest: the tables replaced last "
		       "stay until the next open", db->dir);
	db_free(db);
	return rc;
}
