/*
 * lsm_ops_fuzzer.c - operation-sequence fuzz target for the storage engine
 * (src/lsm), checked against an in-memory model.
 *
 * The input is a program. Its first byte picks the store's options (sync
 * policy, memtable size, block size, bloom filters, compression, block
 * cache, blob threshold: default 64 KiB or 1 KiB); every following op
 * byte (with its operand bytes) is one operation on a real store in a
 * fresh temporary directory, opened through the fault env:
 *
 *   put, delete, write batch (1-8 puts/deletes, atomic; bit 3 of its count
 *   byte tries lsm_write_nowait first, then lsm_write if that says -EAGAIN),
 *   get (op 7 lsm_get, op 8 lsm_get_nowait, then lsm_get on -EAGAIN),
 *   ordered range scan from a seek key, take a snapshot iterator / check the
 *   held snapshot against the model as it was when taken, flush, compact
 *   everything, close + reopen, power loss (drop everything unsynced and
 *   every file created or renamed after the last directory sync, reopen)
 *   either after a clean close or at an instant: every env call fails from
 *   then on, so the close path's log sync and manifest write never reach
 *   the disk.
 *
 * Keys come from a small alphabet (1-3 letters of "abcd", 84 keys) so that
 * writes collide and overwrite; values are 0-120 bytes, sometimes 1-6 KiB
 * and sometimes 64-80 KiB (at most 6 large values per input), generated from
 * a seed so the model stores (seed, length, hash) instead of bytes.
 *
 * Checks (any divergence prints the step and aborts):
 *   - every call succeeds (no fault is injected besides the crash); a nowait
 *     call gives -EAGAIN or the blocking call's result; a refused nowait
 *     write changed nothing; under sync=always it is always refused (it
 *     would wait for an fsync);
 *   - after each step the keys it touched read back as the model says;
 *   - after flush, compaction, reopen, crash and at the end, a full ordered
 *     scan equals the model exactly (same keys, same order, same values);
 *   - a snapshot iterator shows the model as of its creation, whatever was
 *     written since;
 *   - crash with sync=always: every acknowledged write survives, the model is
 *     unchanged; with sync=none: the store holds the state after some prefix
 *     of the operations, no older than the last flush or compaction (both
 *     make everything before them durable); the model rolls back to it.
 *
 * Bounds: at most 200 operations per input, of which at most 16 flushes,
 * compactions, reopens and crashes (later ones become gets, so one input
 * stays well under a second); one store per input, in
 * $QFS_OPS_TMPDIR or /dev/shm (else $TMPDIR, /tmp), removed at the end.
 * The engine's log is off unless QFS_OPS_LOG is set. Not thread-safe
 * (libFuzzer runs one input at a time).
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsm/lsm.h"
#include "util/buf.h"
#include "util/env.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NKEYS 84      /* 4 + 16 + 64 keys of 1-3 letters */
#define MAX_OPS 200
#define MAX_LARGE 6
#define LARGE_MIN (64u << 10)
#define MAX_HEAVY 16  /* flush, compaction, reopen, crash: each costs a lot */

typedef struct {
	uint8_t present;
	uint32_t seed;
	uint32_t len;
	uint64_t h;
} mval;

typedef struct {
	mval v[NKEYS];
} mstate;

/* keys in memcmp order: ks[i] is the i-th smallest */
static char ks[NKEYS][4];
static size_t kslen[NKEYS];
static int keys_ready;

static int key_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void keys_init(void)
{
	if (keys_ready)
		return;
	int n = 0;
	for (int len = 1; len <= 3; len++) {
		int lim = 1 << (2 * len);
		for (int x = 0; x < lim; x++) {
			for (int j = 0; j < len; j++)
				ks[n][j] = (char)('a' + ((x >> (2 * j)) & 3));
			ks[n][len] = 0;
			n++;
		}
	}
	qsort(ks, NKEYS, sizeof(ks[0]), key_cmp); /* NUL-terminated: strcmp == memcmp order */
	for (int i = 0; i < NKEYS; i++)
		kslen[i] = strlen(ks[i]);
	keys_ready = 1;
}

static q_slice key_slice(int k)
{
	return q_slice_make(ks[k], kslen[k]);
}

/* ---- input reader ---- */
typedef struct {
	const uint8_t *p;
	size_t n, off;
} rd;

static uint8_t u8(rd *r)
{
	return r->off < r->n ? r->p[r->off++] : 0;
}

static int more(const rd *r)
{
	return r->off < r->n;
}

/* ---- values ---- */
static uint8_t *vbuf;
static size_t vcap;

static const uint8_t *gen_value(uint32_t seed, uint32_t len)
{
	if (len > vcap) {
		uint8_t *nb = realloc(vbuf, len);
		if (!nb)
			abort();
		vbuf = nb;
		vcap = len;
	}
	/* runs of repeated bytes so compression has something to do */
	uint32_t x = seed * 2654435761u + 1;
	for (uint32_t i = 0; i < len; i++) {
		if ((i & 7) == 0) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
		}
		vbuf[i] = (uint8_t)(x >> ((i & 3) * 8));
	}
	return vbuf;
}

static mval make_val(rd *r, int *large_left)
{
	mval m = {1, 0, 0, 0};
	uint8_t sel = u8(r);
	m.seed = (uint32_t)u8(r) << 8 | u8(r);
	if (sel < 200)
		m.len = sel % 121u;
	else if (sel < 240 || *large_left == 0)
		m.len = 1024u + (uint32_t)u8(r) * 20u;
	else {
		m.len = LARGE_MIN + (uint32_t)u8(r) * 64u;
		(*large_left)--;
	}
	m.h = q_hash64(gen_value(m.seed, m.len), m.len, 7);
	return m;
}

/* ---- the run ---- */
typedef struct {
	char dir[256];
	char dbdir[300];
	q_env *fe;
	lsm_options o;
	lsm_db *db;
	mstate model;
	/* states after each op since the last durable point (sync=none only) */
	mstate *hist;
	size_t nhist, caphist;
	lsm_iter *snap;
	mstate snap_model;
	int step;
	q_buf out;
} run;

static void die(const run *R, const char *what, int rc)
{
	fprintf(stderr, "lsm_ops: step %d: %s (rc %d: %s)\n", R->step, what, rc,
		rc ? q_strerror(rc) : "-");
	abort();
}

static void hist_reset(run *R)
{
	R->nhist = 0;
}

static void hist_push(run *R)
{
	if (R->o.sync != LSM_SYNC_NONE)
		return;
	if (R->nhist == R->caphist) {
		size_t nc = R->caphist ? R->caphist * 2 : 16;
		mstate *nh = realloc(R->hist, nc * sizeof(*nh));
		if (!nh)
			abort();
		R->hist = nh;
		R->caphist = nc;
	}
	R->hist[R->nhist++] = R->model;
}

/* nowait = 1: lsm_get_nowait, and lsm_get only when it says -EAGAIN */
static void check_get_how(run *R, const mstate *m, int k, int nowait)
{
	int rc = -EAGAIN;
	if (nowait)
		rc = lsm_get_nowait(R->db, key_slice(k), &R->out);
	if (rc == -EAGAIN)
		rc = lsm_get(R->db, key_slice(k), &R->out);
	const mval *v = &m->v[k];
	if (!v->present) {
		if (rc != Q_ENOTFOUND)
			die(R, "get of an absent key did not say not found", rc);
		return;
	}
	if (rc)
		die(R, "get of a present key failed", rc);
	if (R->out.len != v->len || q_hash64(R->out.p, R->out.len, 7) != v->h)
		die(R, "get returned a wrong value", 0);
}

static void check_get(run *R, const mstate *m, int k)
{
	check_get_how(R, m, k, 0);
}

/* Full ordered scan into a state (values hashed). */
static void scan_state(run *R, lsm_iter *it, mstate *st)
{
	memset(st, 0, sizeof(*st));
	lsm_iter_seek_first(it);
	int next = 0;
	while (lsm_iter_valid(it)) {
		q_slice k = lsm_iter_key(it), v = lsm_iter_value(it);
		int idx = -1;
		for (int i = next; i < NKEYS; i++)
			if (kslen[i] == k.n && !memcmp(ks[i], k.p, k.n)) {
				idx = i;
				break;
			}
		if (idx < 0)
			die(R, "scan: a key out of order or never written", 0);
		st->v[idx].present = 1;
		st->v[idx].len = (uint32_t)v.n;
		st->v[idx].h = q_hash64(v.p, v.n, 7);
		next = idx + 1;
		lsm_iter_next(it);
	}
	int rc = lsm_iter_status(it);
	if (rc)
		die(R, "scan: iterator error", rc);
}

static int state_eq(const mstate *a, const mstate *b)
{
	for (int i = 0; i < NKEYS; i++) {
		if (a->v[i].present != b->v[i].present)
			return 0;
		if (a->v[i].present && (a->v[i].len != b->v[i].len || a->v[i].h != b->v[i].h))
			return 0;
	}
	return 1;
}

static void read_state(run *R, mstate *st)
{
	lsm_iter *it = NULL;
	int rc = lsm_iter_new(R->db, &it);
	if (rc)
		die(R, "iter_new", rc);
	scan_state(R, it, st);
	lsm_iter_free(it);
}

static void check_full(run *R)
{
	mstate st;
	read_state(R, &st);
	if (!state_eq(&st, &R->model))
		die(R, "full scan differs from the model", 0);
}

static void check_range(run *R, int from, int steps)
{
	lsm_iter *it = NULL;
	int rc = lsm_iter_new(R->db, &it);
	if (rc)
		die(R, "iter_new", rc);
	lsm_iter_seek(it, key_slice(from));
	int k = from;
	for (int s = 0; s < steps; s++) {
		while (k < NKEYS && !R->model.v[k].present)
			k++;
		if (k == NKEYS) {
			if (lsm_iter_valid(it))
				die(R, "range scan: a key past the model's last", 0);
			break;
		}
		if (!lsm_iter_valid(it))
			die(R, "range scan ended early", lsm_iter_status(it));
		q_slice ik = lsm_iter_key(it), iv = lsm_iter_value(it);
		if (ik.n != kslen[k] || memcmp(ik.p, ks[k], ik.n))
			die(R, "range scan: wrong key", 0);
		if (iv.n != R->model.v[k].len || q_hash64(iv.p, iv.n, 7) != R->model.v[k].h)
			die(R, "range scan: wrong value", 0);
		k++;
		lsm_iter_next(it);
	}
	lsm_iter_free(it);
}

static void drop_snapshot(run *R)
{
	if (R->snap) {
		mstate st;
		scan_state(R, R->snap, &st);
		if (!state_eq(&st, &R->snap_model))
			die(R, "snapshot iterator does not show its snapshot", 0);
		lsm_iter_free(R->snap);
		R->snap = NULL;
	}
}

static void db_open(run *R)
{
	int rc = lsm_open(R->dbdir, &R->o, &R->db);
	if (rc)
		die(R, "open", rc);
}

static void db_close(run *R)
{
	drop_snapshot(R);
	int rc = lsm_close(R->db);
	R->db = NULL;
	if (rc)
		die(R, "close", rc);
}

/* Power loss. hard = 0: after a clean close (the close syncs the log and
 * writes a final manifest); hard = 1: at this instant: every env call from
 * now fails, so nothing the close does reaches the disk. */
static void crash(run *R, int hard)
{
	if (hard) {
		drop_snapshot(R); /* it reads through the env */
		q_fault_env_fail_at(R->fe, Q_FAULT_ALL, 1, -EIO, 1);
		(void)lsm_close(R->db); /* fails: that is the point */
		R->db = NULL;
	} else {
		db_close(R);
	}
	int rc = q_fault_env_drop_unsynced(R->fe);
	q_fault_env_fail_at(R->fe, 0, 0, 0, 0);
	if (rc)
		die(R, "drop_unsynced", rc);
	db_open(R);
	mstate st;
	read_state(R, &st);
	if (R->o.sync != LSM_SYNC_NONE) {
		if (!state_eq(&st, &R->model))
			die(R, "crash lost or changed acknowledged writes", 0);
		return;
	}
	/* newest matching prefix state, no older than the last durable point */
	for (size_t i = R->nhist; i-- > 0;) {
		if (state_eq(&st, &R->hist[i])) {
			R->model = R->hist[i];
			hist_reset(R);
			hist_push(R);
			return;
		}
	}
	die(R, "crash left a state that is no prefix of the history", 0);
}

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(p);
	return 0;
}

static void put_one(run *R, int k, mval v)
{
	int rc = lsm_put(R->db, key_slice(k), q_slice_make(gen_value(v.seed, v.len), v.len));
	if (rc)
		die(R, "put", rc);
	R->model.v[k] = v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	keys_init();
	/* power cuts make the engine log every failed call: quiet unless asked */
	q_log_set_level(getenv("QFS_OPS_LOG") ? Q_LOG_DEBUG : Q_LOG_OFF);
	rd r = {data, size, 0};
	run *R = calloc(1, sizeof(*R));
	if (!R)
		return 0;
	/* QFS_OPS_TMPDIR, else /dev/shm (fsync is cheap there), else TMPDIR */
	const char *tmp = getenv("QFS_OPS_TMPDIR");
	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(R->dir, sizeof(R->dir), "%s/lsmops.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(R->dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(R->dbdir, sizeof(R->dbdir), "%s/db", R->dir);
	R->fe = q_fault_env_new(q_env_posix());
	if (!R->fe)
		abort();

	uint8_t cfg = u8(&r);
	lsm_options_default(&R->o);
	R->o.env = R->fe;
	R->o.sync = (cfg & 1) ? LSM_SYNC_NONE : LSM_SYNC_ALWAYS;
	static const size_t wbuf[4] = {2048, 4096, 16384, 65536};
	R->o.write_buffer_size = wbuf[(cfg >> 1) & 3];
	R->o.block_size = (cfg & 8) ? 256 : 1024;
	R->o.bloom_bits_per_key = (cfg & 16) ? 10 : 0;
	R->o.compression = (cfg & 32) ? 1 : 0;
	R->o.block_cache_size = (cfg & 64) ? 0 : (64u << 10);
	if (cfg & 128) /* the 1-6 KiB values go to blob files too */
		R->o.blob_threshold = 1024;
	db_open(R);
	hist_push(R);

	int large_left = MAX_LARGE, heavy = 0;
	lsm_batch *b = lsm_batch_new();
	if (!b)
		abort();
	for (R->step = 0; R->step < MAX_OPS && more(&r); R->step++) {
		uint8_t op = u8(&r) % 16;
		int k = u8(&r) % NKEYS;
		int rc;
		if (op >= 11 && heavy++ >= MAX_HEAVY)
			op = 7; /* enough flushes, reopens and crashes for one input: a get */
		switch (op) {
		case 0: case 1: case 2: case 3: /* put */
			put_one(R, k, make_val(&r, &large_left));
			check_get(R, &R->model, k);
			break;
		case 4: case 5: /* delete */
			rc = lsm_delete(R->db, key_slice(k));
			if (rc)
				die(R, "delete", rc);
			R->model.v[k].present = 0;
			check_get(R, &R->model, k);
			break;
		case 6: { /* batch */
			uint8_t nb = u8(&r);
			int n = 1 + nb % 8, nowait = nb & 8;
			int touched[8];
			mstate after = R->model;
			lsm_batch_clear(b);
			for (int i = 0; i < n; i++) {
				int bk = u8(&r) % NKEYS;
				touched[i] = bk;
				if (u8(&r) & 1) {
					mval v = make_val(&r, &large_left);
					rc = lsm_batch_put(b, key_slice(bk),
							   q_slice_make(gen_value(v.seed, v.len), v.len));
					after.v[bk] = v;
				} else {
					rc = lsm_batch_delete(b, key_slice(bk));
					after.v[bk].present = 0;
				}
				if (rc)
					die(R, "batch add", rc);
			}
			rc = -EAGAIN;
			if (nowait) {
				rc = lsm_write_nowait(R->db, b);
				if (rc == 0 && R->o.sync == LSM_SYNC_ALWAYS)
					die(R, "write_nowait went ahead under sync=always", 0);
				if (rc == -EAGAIN) /* refused: nothing of it written */
					for (int i = 0; i < n; i++)
						check_get(R, &R->model, touched[i]);
			}
			if (rc == -EAGAIN)
				rc = lsm_write(R->db, b);
			if (rc)
				die(R, "write batch", rc);
			R->model = after;
			for (int i = 0; i < n; i++)
				check_get(R, &R->model, touched[i]);
			break;
		}
		case 7: case 8: /* get: 7 blocking, 8 nowait first */
			check_get_how(R, &R->model, k, op == 8);
			break;
		case 9: /* range scan */
			check_range(R, k, 1 + u8(&r) % 16);
			break;
		case 10: /* take a snapshot, or check and drop the held one */
			if (R->snap) {
				drop_snapshot(R);
			} else {
				rc = lsm_iter_new(R->db, &R->snap);
				if (rc)
					die(R, "snapshot iter_new", rc);
				R->snap_model = R->model;
			}
			break;
		case 11: /* flush */
			rc = lsm_flush(R->db);
			if (rc)
				die(R, "flush", rc);
			hist_reset(R);
			check_full(R);
			break;
		case 12: /* compact everything */
			rc = lsm_compact_all(R->db);
			if (rc)
				die(R, "compact", rc);
			hist_reset(R);
			check_full(R);
			break;
		case 13: /* clean close and reopen */
			db_close(R);
			db_open(R);
			check_full(R);
			break;
		case 14: case 15: /* power loss after a clean close / right now */
			crash(R, op == 15);
			check_full(R);
			break;
		}
		hist_push(R);
	}
	check_full(R);
	lsm_batch_free(b);
	/* a power loss at the very end too */
	crash(R, 1);
	check_full(R);
	db_close(R);
	q_fault_env_free(R->fe);
	q_buf_free(&R->out);
	nftw(R->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(R->hist);
	free(R);
	return 0;
}
