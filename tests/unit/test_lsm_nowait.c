/*
 * test_lsm_nowait.c - the engine's calls that never block (lsm_get_nowait,
 * lsm_write_nowait; lsm.h): what they answer from memory, every case in
 * which they give -EAGAIN instead of waiting or reading, that an -EAGAIN
 * changed nothing, and that a write they accepted is as durable as one of
 * lsm_write. (A nowait write while another writer leads the queue:
 * test_lsm_fault.c, which has the sync gate.)
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm/batch.h"
#include "lsm/lsm.h"
#include "lsm/lsm_internal.h"
#include "lsm/ver.h"
#include "qtest.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

static char dbdir[300];

/* log_early_write for the next open_db: (size_t)-1 = the default */
static size_t early_write = (size_t)-1;
/* sync_batch_ms for the next open_db */
static unsigned batch_ms = 5;
/* nowait_page_cache and compression for the next open_db */
static int page_cache = 1, compress = 1;

static lsm_db *open_db(q_env *env, lsm_sync sync, size_t wbuf, size_t blob_threshold)
{
	lsm_options o;
	lsm_options_default(&o);
	if (early_write != (size_t)-1)
		o.log_early_write = early_write;
	o.env = env;
	o.sync = sync;
	o.write_buffer_size = wbuf;
	o.block_size = 1024;
	o.blob_threshold = blob_threshold;
	o.sync_batch_ms = batch_ms;
	o.nowait_page_cache = page_cache;
	o.compression = compress;
	snprintf(dbdir, sizeof(dbdir), "%s/db", qtest_tmpdir);
	lsm_db *db = NULL;
	int rc = lsm_open(dbdir, &o, &db);
	if (rc)
		QTEST_FAIL_("lsm_open: %s", q_strerror(rc));
	return db;
}

static void key_of(char *k, int i)
{
	snprintf(k, 32, "k%06d", i);
}

/* A value of len bytes that depends on i and gen. */
static void val_of(q_buf *v, int i, int gen, size_t len)
{
	q_buf_reset(v);
	for (size_t j = 0; j < len; j++)
		ASSERT_OK(q_buf_append_byte(v, (uint8_t)('a' + (i * 31 + gen * 7 + (int)j) % 26)));
}

static int put_nowait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	q_buf v = Q_BUF_INIT;
	key_of(k, i);
	val_of(&v, i, gen, len);
	lsm_batch *b = lsm_batch_new();
	ASSERT(b != NULL);
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_buf_slice(&v)));
	int rc = lsm_write_nowait(db, b);
	lsm_batch_free(b);
	q_buf_free(&v);
	return rc;
}

/* put_nowait, tried again (a bounded number of times) while it gives
 * -EAGAIN because the sync thread holds the log for its fsync. */
static int put_nowait_retry(lsm_db *db, int i, int gen, size_t len)
{
	int rc = -EAGAIN;
	for (int t = 0; t < 5000 && rc == -EAGAIN; t++)
		if ((rc = put_nowait(db, i, gen, len)) == -EAGAIN)
			q_sleep_ms(1);
	return rc;
}

/* Nowait writes of keys from, from + 1, ... (generation 1, len-byte
 * values) until one is refused, which must be with -EAGAIN before limit;
 * returns the refused key. */
static int put_nowait_until_refused(lsm_db *db, int from, int limit, size_t len)
{
	int n = from, rc = 0;
	while (n < limit && (rc = put_nowait(db, n, 1, len)) == 0)
		n++;
	ASSERT_EQ(rc, -EAGAIN);
	return n;
}

static void put_wait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	q_buf v = Q_BUF_INIT;
	key_of(k, i);
	val_of(&v, i, gen, len);
	ASSERT_OK(lsm_put(db, q_slice_str(k), q_buf_slice(&v)));
	q_buf_free(&v);
}

/* Checks the answer (rc, out) for key i: on 0 the value must be (i, gen,
 * len). Frees out; returns rc. */
static int check_answer(int rc, q_buf *out, int i, int gen, size_t len)
{
	if (rc == 0) {
		q_buf v = Q_BUF_INIT;
		val_of(&v, i, gen, len);
		ASSERT_EQ(out->len, v.len);
		ASSERT_MEMEQ(out->p, v.p, v.len);
		q_buf_free(&v);
	}
	q_buf_free(out);
	return rc;
}

/* Checks key i through lsm_get: gen < 0 = absent, else that value. */
static void expect(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	key_of(k, i);
	q_buf out = Q_BUF_INIT;
	int rc = check_answer(lsm_get(db, q_slice_str(k), &out), &out, i, gen, len);
	ASSERT_EQ(rc, gen < 0 ? Q_ENOTFOUND : 0);
}

/* lsm_get_nowait of key i; on 0 the value must be (i, gen, len). */
static int get_nowait(lsm_db *db, int i, int gen, size_t len)
{
	char k[32];
	key_of(k, i);
	q_buf out = Q_BUF_INIT;
	return check_answer(lsm_get_nowait(db, q_slice_str(k), &out), &out, i, gen, len);
}

static uint64_t commit_groups(lsm_db *db)
{
	lsm_stats st;
	lsm_get_stats(db, &st);
	return st.commit_groups;
}

static lsm_stats stats(lsm_db *db)
{
	lsm_stats st;
	lsm_get_stats(db, &st);
	return st;
}

/* 1 and the path (in p, of size 700) of the next file of the store's
 * directory d whose name ends in ext, or 0 after the last. */
static int next_file(DIR *d, const char *ext, char *p)
{
	struct dirent *e;
	size_t x = strlen(ext);
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n <= x || strcmp(e->d_name + n - x, ext) != 0)
			continue;
		snprintf(p, 700, "%s/%s", dbdir, e->d_name);
		return 1;
	}
	return 0;
}

/* Bytes of the store's commit logs in their files (not what waits in the
 * log writer's buffer). */
static uint64_t log_file_bytes(void)
{
	DIR *d = opendir(dbdir);
	ASSERT(d != NULL);
	uint64_t sum = 0;
	char p[700];
	while (next_file(d, ".log", p)) {
		struct stat stt;
		ASSERT_OK(stat(p, &stt) ? -errno : 0);
		sum += (uint64_t)stt.st_size;
	}
	closedir(d);
	return sum;
}

QTEST(get_answers_from_the_memtable)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	for (int i = 0; i < 50; i++)
		put_wait(db, i, 1, 100);
	for (int i = 0; i < 50; i++)
		ASSERT_OK(get_nowait(db, i, 1, 100));
	ASSERT_EQ(get_nowait(db, 50, 0, 0), Q_ENOTFOUND);
	/* a deletion in the memtable answers not-found */
	char k[32];
	key_of(k, 3);
	ASSERT_OK(lsm_delete(db, q_slice_str(k)));
	ASSERT_EQ(get_nowait(db, 3, 0, 0), Q_ENOTFOUND);
	/* a large value in the memtable (held by reference to its batch) */
	put_wait(db, 60, 2, 40000);
	ASSERT_OK(get_nowait(db, 60, 2, 40000));
	ASSERT_OK(lsm_close(db));
}

QTEST(get_not_found_through_filters_and_key_ranges)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	/* even keys only, in tables */
	for (int i = 0; i < 2000; i += 2)
		put_wait(db, i, 1, 100);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0); /* cold block cache */
	/* beyond every table's key range */
	ASSERT_EQ(get_nowait(db, 5000, 0, 0), Q_ENOTFOUND);
	/* inside the range, absent: the bloom filter excludes almost all */
	int notfound = 0, again = 0;
	for (int i = 1; i < 2000; i += 2) {
		int rc = get_nowait(db, i, 0, 0);
		if (rc == Q_ENOTFOUND)
			notfound++;
		else if (rc == -EAGAIN)
			again++;
		else
			QTEST_FAIL_("absent key %d: %s", i, q_strerror(rc));
	}
	ASSERT(notfound >= 900); /* 10 bits per key: about 1% false positives */
	ASSERT_EQ(notfound + again, 1000);
	ASSERT_OK(lsm_close(db));
}

QTEST(get_again_for_an_uncached_block_until_a_read_caches_it)
{
	page_cache = 0; /* the block cache only */
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	for (int i = 0; i < 500; i++)
		put_wait(db, i, 1, 100);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	lsm_stats st0, st1;
	ASSERT_EQ(stats(db).nowait_get_read, 0);
	ASSERT_EQ(get_nowait(db, 123, 1, 100), -EAGAIN);
	lsm_get_stats(db, &st0);
	ASSERT_EQ(st0.nowait_get_read, 1); /* counted by cause */
	/* it did not fill the cache: asking again is still -EAGAIN */
	ASSERT_EQ(get_nowait(db, 123, 1, 100), -EAGAIN);
	lsm_get_stats(db, &st1);
	ASSERT_EQ(st1.cache_hits, st0.cache_hits);
	expect(db, 123, 1, 100); /* reads the block and caches it */
	ASSERT_OK(get_nowait(db, 123, 1, 100));
	/* a newer version in the memtable wins over the table */
	put_wait(db, 123, 2, 100);
	ASSERT_OK(get_nowait(db, 123, 2, 100));
	ASSERT_OK(lsm_close(db));
}

/* For each table of the store: with evict, its pages are dropped from the
 * page cache first (fsync, POSIX_FADV_DONTNEED: clean pages that no
 * process maps go). Returns the number of its pages not in the page cache
 * (mincore through a mapping of our own). */
static size_t table_pages_out(int evict)
{
	DIR *d = opendir(dbdir);
	ASSERT(d != NULL);
	size_t out = 0;
	long page = sysconf(_SC_PAGESIZE);
	char p[700];
	while (next_file(d, ".sst", p)) {
		int fd = open(p, O_RDONLY);
		ASSERT(fd >= 0);
		struct stat st;
		ASSERT_OK(fstat(fd, &st) ? -errno : 0);
		if (evict) {
			ASSERT_OK(fsync(fd) ? -errno : 0);
			ASSERT_OK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
		}
		size_t len = (size_t)st.st_size;
		void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT(m != MAP_FAILED);
		size_t pages = (len + (size_t)page - 1) / (size_t)page;
		unsigned char *vec = malloc(pages);
		ASSERT(vec != NULL);
		ASSERT_OK(mincore(m, len, vec) ? -errno : 0);
		for (size_t i = 0; i < pages; i++)
			out += !(vec[i] & 1);
		free(vec);
		munmap(m, len);
		close(fd);
	}
	closedir(d);
	return out;
}

/* nowait_page_cache: a block not in the block cache but whose pages are in
 * the page cache is read from the mapping (and cached); once the pages are
 * dropped from the page cache the answer is -EAGAIN, until a blocking read
 * brings them back. */
QTEST(get_reads_a_block_in_the_page_cache)
{
	/* tables of about 1 MiB (uncompressed): a page fault in a mapping
	 * reads ahead around it (128 KiB or so), so opening a table (its
	 * index and filter at the end) brings back only part of it */
	enum { NPC = 10000 };
	compress = 0;
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	for (int i = 0; i < NPC; i++)
		put_wait(db, i, 1, 100);
	ASSERT_OK(lsm_flush(db));
	ASSERT_OK(lsm_close(db));
	/* just written: the table's pages are in the page cache (unless the
	 * kernel evicted some meanwhile: then those few reads need the disk) */
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0); /* cold block cache */
	lsm_stats st0 = stats(db);
	int again0 = 0;
	for (int i = 0; i < NPC; i++) {
		int rc = get_nowait(db, i, 1, 100);
		ASSERT(rc == 0 || rc == -EAGAIN);
		again0 += rc == -EAGAIN;
	}
	lsm_stats st1 = stats(db);
	ASSERT(again0 < NPC / 10);
	ASSERT_EQ(st1.nowait_get_read, (uint64_t)again0);
	ASSERT(st1.cache_misses > st0.cache_misses); /* blocks read, then cached */
	/* one block cache lookup per read (one table), a miss counted once
	 * even when the block then comes from the page cache */
	ASSERT_EQ(st1.cache_misses - st0.cache_misses + st1.cache_hits - st0.cache_hits, NPC);
	ASSERT(st1.cache_hits > st0.cache_hits);
	ASSERT_OK(lsm_close(db));
	/* out of the page cache (dropped after the open, which reads every
	 * table's index and filter, and the pages around them): nowait
	 * reads of those blocks need the disk */
	db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 0);
	if (table_pages_out(1) == 0) {
		/* a filesystem whose pages cannot be dropped (tmpfs as TMPDIR):
		 * nothing ever needs the disk here */
		fprintf(stderr, "note: the page cache of %s cannot be dropped; eviction part "
			"not run\n", qtest_tmpdir);
		ASSERT_OK(lsm_close(db));
		return;
	}
	int again = 0;
	for (int i = 0; i < NPC; i++) {
		int rc = get_nowait(db, i, 1, 100);
		ASSERT(rc == 0 || rc == -EAGAIN);
		again += rc == -EAGAIN;
	}
	ASSERT(again > 0);
	ASSERT_EQ(stats(db).nowait_get_read, (uint64_t)again);
	for (int i = 0; i < NPC; i++)
		expect(db, i, 1, 100); /* reads (and caches) */
	for (int i = 0; i < NPC; i++)
		ASSERT_OK(get_nowait(db, i, 1, 100));
	ASSERT_OK(lsm_close(db));
}

QTEST(get_again_for_a_separated_value)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 1 << 20, 512);
	put_wait(db, 1, 1, 2000); /* over the blob threshold */
	put_wait(db, 2, 1, 100);
	ASSERT_OK(get_nowait(db, 1, 1, 2000)); /* still in the memtable */
	ASSERT_OK(lsm_flush(db));
	expect(db, 1, 1, 2000); /* the table block is cached now */
	expect(db, 2, 1, 100);
	ASSERT_EQ(get_nowait(db, 1, 1, 2000), -EAGAIN); /* value in a blob file or log */
	ASSERT_OK(get_nowait(db, 2, 1, 100));
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_is_read_back_and_recovered)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_db(fe, LSM_SYNC_BATCH, 1 << 20, 0);
	uint64_t g0 = commit_groups(db);
	for (int i = 0; i < 100; i++)
		ASSERT_OK(put_nowait_retry(db, i, 1, 100));
	ASSERT_EQ(commit_groups(db), g0 + 100);
	for (int i = 0; i < 100; i++) {
		expect(db, i, 1, 100);
		ASSERT_OK(get_nowait(db, i, 1, 100));
	}
	/* mixed with normal writes; a batch of several entries */
	put_wait(db, 100, 1, 100);
	lsm_batch *b = lsm_batch_new();
	char k[32];
	key_of(k, 5);
	ASSERT_OK(lsm_batch_delete(b, q_slice_str(k)));
	key_of(k, 101);
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_slice_str("x")));
	ASSERT_OK(lsm_write_nowait(db, b));
	lsm_batch_free(b);
	expect(db, 5, -1, 0);
	/* sync = batch: the periodic sync (every 5 ms) runs without writes
	 * to start it; then close (which syncs the log too), lose whatever was
	 * not synced, and find every write in the log */
	uint64_t s0 = q_fault_env_count(fe, Q_FAULT_SYNC);
	for (int t = 0; t < 10000 && q_fault_env_count(fe, Q_FAULT_SYNC) < s0 + 2; t++)
		q_sleep_ms(1);
	ASSERT(q_fault_env_count(fe, Q_FAULT_SYNC) >= s0 + 2);
	ASSERT_OK(lsm_close(db));
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	db = open_db(fe, LSM_SYNC_BATCH, 1 << 20, 0);
	for (int i = 0; i < 101; i++)
		expect(db, i, i == 5 ? -1 : 1, 100);
	q_buf out = Q_BUF_INIT;
	key_of(k, 101);
	ASSERT_OK(lsm_get(db, q_slice_str(k), &out));
	ASSERT_EQ(out.len, 1);
	q_buf_free(&out);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(write_nowait_again_under_sync_always)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_ALWAYS, 1 << 20, 0);
	uint64_t g0 = commit_groups(db);
	ASSERT_EQ(put_nowait(db, 1, 1, 100), -EAGAIN);
	ASSERT_EQ(commit_groups(db), g0);
	ASSERT_EQ(stats(db).nowait_write_sync, 1); /* counted by cause */
	ASSERT_EQ(stats(db).nowait_write_room, 0);
	expect(db, 1, -1, 0);
	put_wait(db, 1, 1, 100);
	ASSERT_OK(get_nowait(db, 1, 1, 100)); /* reads still answer */
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_ALWAYS, 1 << 20, 0);
	expect(db, 1, 1, 100);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_again_when_the_memtable_is_full)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 8 << 10, 0);
	/* refused: it never switched the memtable itself */
	int n = put_nowait_until_refused(db, 0, 1000, 100);
	/* the memtable was full, not the 64 KiB log buffer (about 500 such
	 * records): about 8 KiB of them */
	ASSERT(n > 10 && n < 200);
	lsm_stats st;
	lsm_get_stats(db, &st);
	ASSERT(st.memtable_bytes >= 8 << 10);
	ASSERT_EQ(st.nowait_write_room, 1);
	ASSERT_EQ(st.nowait_write_log_full + st.nowait_write_queue + st.nowait_write_log_busy, 0);
	uint64_t g0 = commit_groups(db);
	ASSERT_EQ(put_nowait(db, n, 1, 100), -EAGAIN);
	ASSERT_EQ(commit_groups(db), g0);
	expect(db, n, -1, 0); /* nothing changed */
	/* a normal write makes room (switches), then nowait goes on */
	put_wait(db, n, 1, 100);
	ASSERT_OK(put_nowait(db, n + 1, 1, 100));
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 100);
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 8 << 10, 0);
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 100);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_again_when_the_log_buffer_is_full)
{
	early_write = 0; /* no mark: the buffer fills */
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	/* a record of the buffer's size or more is always written out */
	ASSERT_EQ(put_nowait(db, 0, 1, 70000), -EAGAIN);
	expect(db, 0, -1, 0);
	/* 1000-byte records fill the 64 KiB buffer in about 64 writes */
	int n = put_nowait_until_refused(db, 0, 1000, 1000);
	ASSERT(n >= 50 && n <= 66);
	expect(db, n, -1, 0);
	ASSERT_EQ(stats(db).nowait_write_log_full, 2);
	ASSERT_EQ(stats(db).nowait_write_room, 0);
	put_wait(db, n, 1, 1000); /* writes the buffer out */
	ASSERT_OK(put_nowait(db, n + 1, 1, 1000));
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	for (int i = 0; i <= n + 1; i++)
		expect(db, i, 1, 1000);
	ASSERT_OK(lsm_close(db));
}

/* A blocking write that leaves the log's buffer at log_early_write bytes
 * or more writes it out then, not only once it is full: the bytes are in
 * the file (handed to the OS) while the buffer still had room. */
QTEST(blocking_write_writes_the_log_buffer_out_early)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	int i = 0;
	while (i < 100 && log_file_bytes() == 0)
		put_wait(db, i++, 1, 1000);
	/* about 16 KiB (the default mark) of 1000-byte records, far from
	 * the 64 KiB at which the buffer is full */
	ASSERT(i >= 15 && i <= 18);
	ASSERT(log_file_bytes() >= 16 << 10 && log_file_bytes() < 20 << 10);
	ASSERT_EQ(stats(db).log_early_writes, 1);
	/* nowait writes never write it out (14 of them stay below the mark) */
	uint64_t f = log_file_bytes();
	for (int j = 0; j < 14; j++)
		ASSERT_OK(put_nowait(db, i++, 1, 1000));
	ASSERT_EQ(log_file_bytes(), f);
	ASSERT_OK(lsm_close(db));
	/* with log_early_write = 0 the buffer is written out only when full */
	early_write = 0;
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	uint64_t f0 = log_file_bytes();
	for (int j = 0; j < 40; j++)
		put_wait(db, 1000 + j, 1, 1000);
	ASSERT_EQ(log_file_bytes(), f0);
	ASSERT_EQ(stats(db).log_early_writes, 0);
	ASSERT_OK(lsm_close(db));
	early_write = (size_t)-1;
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	for (int j = 0; j < i; j++)
		expect(db, j, 1, 1000);
	for (int j = 0; j < 40; j++)
		expect(db, 1000 + j, 1, 1000);
	ASSERT_OK(lsm_close(db));
}

/* Every write tried with lsm_write_nowait first and, on -EAGAIN, with
 * lsm_write (as a node's event loop hands it to a worker): across many
 * buffers' worth of log no nowait write is refused for a full buffer;
 * each refusal is the one at the mark (or, under batch, the sync thread
 * holding the log), and the blocking write it leads to writes the buffer
 * out. Every write is there after a reopen. */
static void nowait_writes_go_on(lsm_sync sync)
{
	lsm_db *db = open_db(NULL, sync, 4 << 20, 0);
	int again = 0;
	for (int i = 0; i < 1000; i++) { /* about 1 MiB: 15 full buffers */
		int rc = put_nowait(db, i, 1, 1000);
		if (rc == -EAGAIN) {
			again++;
			put_wait(db, i, 1, 1000);
		} else {
			ASSERT_OK(rc);
		}
	}
	lsm_stats st = stats(db);
	ASSERT_EQ(st.nowait_write_log_full, 0);
	ASSERT_EQ(st.nowait_write_queue + st.nowait_write_room, 0);
	ASSERT_EQ((uint64_t)again, st.nowait_write_log_mark + st.nowait_write_log_busy);
	if (sync == LSM_SYNC_NONE)
		ASSERT_EQ(st.nowait_write_log_busy, 0);
	/* about one refusal per 16 KiB of log, each followed by a write-out */
	ASSERT(st.nowait_write_log_mark >= 30 && st.nowait_write_log_mark <= 70);
	if (sync == LSM_SYNC_NONE) {
		ASSERT_EQ(st.log_early_writes, st.nowait_write_log_mark);
	} else {
		/* a periodic sync between a refusal and its blocking retry
		 * (a stalled run) leaves that retry nothing to write out */
		ASSERT(st.log_early_writes <= st.nowait_write_log_mark);
		ASSERT(st.nowait_write_log_mark - st.log_early_writes <= 2);
	}
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, sync, 4 << 20, 0);
	for (int i = 0; i < 1000; i++)
		expect(db, i, 1, 1000);
	ASSERT_OK(lsm_close(db));
}

/* The first nowait write that finds the buffer past the mark is refused;
 * the next ones are taken until the buffer is full (then refused for
 * that); a blocking write then writes it out, and after that the nowait
 * writes are taken again up to the mark. Nothing refused was written. */
QTEST(write_nowait_refused_once_past_the_mark)
{
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	int n = put_nowait_until_refused(db, 0, 100, 1000);
	ASSERT(n >= 15 && n <= 18); /* 16 KiB of about 1030-byte records */
	ASSERT_EQ(stats(db).nowait_write_log_mark, 1);
	expect(db, n, -1, 0);
	int m = put_nowait_until_refused(db, n, 200, 1000);
	ASSERT(m >= 50 && m <= 66); /* full: the rest of the 64 KiB */
	ASSERT_EQ(stats(db).nowait_write_log_mark, 1);
	ASSERT_EQ(stats(db).nowait_write_log_full, 1);
	expect(db, m, -1, 0);
	put_wait(db, m, 1, 1000); /* writes the buffer out */
	int k = put_nowait_until_refused(db, m + 1, 300, 1000);
	ASSERT(k - (m + 1) >= 14 && k - (m + 1) <= 18);
	ASSERT_EQ(stats(db).nowait_write_log_mark, 2);
	ASSERT_OK(lsm_close(db));
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	for (int i = 0; i < k; i++)
		expect(db, i, 1, 1000);
	expect(db, k, -1, 0);
	ASSERT_OK(lsm_close(db));
}

QTEST(write_nowait_goes_on_across_many_log_buffers)
{
	nowait_writes_go_on(LSM_SYNC_NONE);
}

QTEST(write_nowait_goes_on_across_many_log_buffers_batch)
{
	/* the periodic sync (which writes the buffer out too) rare enough
	 * not to stand in for the early write-out */
	batch_ms = 10000;
	nowait_writes_go_on(LSM_SYNC_BATCH);
}

QTEST(write_nowait_returns_the_background_error)
{
	q_log_set_level(Q_LOG_OFF);
	q_env *fe = q_fault_env_new(q_env_posix());
	lsm_db *db = open_db(fe, LSM_SYNC_NONE, 4 << 20, 0);
	put_wait(db, 1, 1, 100);
	/* every write fails with EIO from now on: the log's write fails and
	 * the store refuses writes until reopened */
	q_fault_env_fail_at(fe, Q_FAULT_WRITE, 1, -EIO, 1);
	int rc = 0;
	for (int i = 0; i < 2000 && rc == 0; i++) {
		char k[32];
		key_of(k, 1000 + i);
		rc = lsm_put(db, q_slice_str(k), q_slice_str("vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"));
	}
	ASSERT_EQ(rc, -EIO);
	ASSERT_EQ(put_nowait(db, 2, 1, 100), -EIO);
	expect(db, 1, 1, 100);
	lsm_close(db);
	q_fault_env_free(fe);
}

/* A gate the fault env's file-sync hook closes: the batch sync thread,
 * once armed, waits inside its fsync (holding the log) until opened. */
typedef struct log_gate {
	atomic_int armed, entered, open;
	pthread_t writer; /* never held at the gate */
	atomic_int have_writer;
} log_gate;

static void log_gate_hook(void *arg)
{
	log_gate *g = arg;
	if (!atomic_load(&g->armed) ||
	    (atomic_load(&g->have_writer) && pthread_equal(pthread_self(), g->writer)))
		return;
	atomic_store(&g->entered, 1);
	qtest_wait_flag(&g->open, 30000);
}

/* A fault env whose file syncs pass through g (closed: not armed yet). */
static q_env *gated_env(log_gate *g)
{
	memset(g, 0, sizeof(*g));
	q_env *fe = q_fault_env_new(q_env_posix());
	ASSERT(fe != NULL);
	q_fault_env_on_sync(fe, log_gate_hook, g);
	return fe;
}

QTEST(write_nowait_again_while_the_log_is_being_synced)
{
	log_gate g;
	q_env *fe = gated_env(&g);
	lsm_db *db = open_db(fe, LSM_SYNC_BATCH, 1 << 20, 0);
	put_wait(db, 1, 1, 100);
	uint64_t g0 = commit_groups(db); /* (the stats take the log's lock) */
	atomic_store(&g.armed, 1);
	ASSERT(qtest_wait_flag(&g.entered, 10000)); /* the sync thread holds the log */
	int rc = put_nowait(db, 2, 1, 100); /* does not wait for it */
	int grc = get_nowait(db, 1, 1, 100);
	atomic_store(&g.open, 1);
	atomic_store(&g.armed, 0);
	ASSERT_EQ(rc, -EAGAIN);
	ASSERT_OK(grc);
	ASSERT_EQ(commit_groups(db), g0); /* nothing written */
	expect(db, 2, -1, 0);
	ASSERT_OK(put_nowait_retry(db, 2, 1, 100));
	expect(db, 2, 1, 100);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

typedef struct switcher {
	lsm_db *db;
	log_gate *g;
	int from;
	atomic_int done;
	int rc;
} switcher;

static void *switch_main(void *arg)
{
	switcher *sw = arg;
	sw->g->writer = pthread_self(); /* its own syncs pass the gate */
	atomic_store(&sw->g->have_writer, 1);
	char k[32];
	key_of(k, sw->from);
	sw->rc = lsm_put(sw->db, q_slice_str(k), q_slice_str("x"));
	atomic_store(&sw->done, 1);
	return NULL;
}

static atomic_int dsync;

static void dir_synced(void *arg)
{
	(void)arg;
	atomic_store(&dsync, 1);
}

typedef struct nowait_reader {
	lsm_db *db;
	atomic_int done;
	int rc;
} nowait_reader;

static void *reader_main(void *arg)
{
	nowait_reader *r = arg;
	r->rc = get_nowait(r->db, 0, 1, 100);
	atomic_store(&r->done, 1);
	return NULL;
}

QTEST(get_nowait_goes_on_while_a_switch_waits_for_the_log)
{
	/* a memtable switch while the batch sync thread is in its fsync:
	 * the switching writer waits for the log, but not holding the lock
	 * that lsm_get_nowait takes, so reads that never block go on */
	log_gate g;
	q_env *fe = gated_env(&g);
	lsm_db *db = open_db(fe, LSM_SYNC_BATCH, 8 << 10, 0);
	int n = 0;
	lsm_stats st;
	do {
		put_wait(db, n++, 1, 100);
		lsm_get_stats(db, &st);
	} while (st.memtable_bytes < (8 << 10) && n < 1000);
	ASSERT(n < 1000); /* full: the next write switches */
	switcher sw = {db, &g, n, 0, 0};
	q_fault_env_on_sync_dir(fe, dir_synced, NULL);
	atomic_store(&g.armed, 1);
	ASSERT(qtest_wait_flag(&g.entered, 10000));
	pthread_t wt, rt;
	ASSERT_OK(pthread_create(&wt, NULL, switch_main, &sw));
	/* the writer creates the next log and syncs the directory (seen by
	 * the hook), then waits for the log the sync thread holds */
	ASSERT(qtest_wait_flag(&dsync, 10000));
	q_sleep_ms(100);
	ASSERT(!atomic_load(&sw.done)); /* still waiting for the log */
	nowait_reader r = {db, 0, 0};
	ASSERT_OK(pthread_create(&rt, NULL, reader_main, &r));
	int answered = qtest_wait_flag(&r.done, 10000);
	atomic_store(&g.open, 1);
	pthread_join(rt, NULL);
	pthread_join(wt, NULL);
	ASSERT(answered);
	ASSERT_OK(r.rc);
	ASSERT_OK(sw.rc);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* A store on a fault env (*fe, for the caller to free after lsm_close),
 * log lines off, holding key 0 (generation 1, 100 bytes). */
static lsm_db *open_faulty(q_env **fe, lsm_sync sync, size_t wbuf)
{
	q_log_set_level(Q_LOG_OFF);
	*fe = q_fault_env_new(q_env_posix());
	ASSERT(*fe != NULL);
	lsm_db *db = open_db(*fe, sync, wbuf, 0);
	put_wait(db, 0, 1, 100);
	return db;
}

/* open_faulty (sync none), with key 0 flushed to a table: its path in p
 * (of size 700). */
static lsm_db *open_faulty_table(q_env **fe, char *p)
{
	lsm_db *db = open_faulty(fe, LSM_SYNC_NONE, 4 << 20);
	ASSERT_OK(lsm_flush(db));
	DIR *d = opendir(dbdir);
	ASSERT(d != NULL);
	int found = next_file(d, ".sst", p);
	closedir(d);
	ASSERT(found);
	return db;
}

/* Blocking puts of keys *n, *n + 1, ... (value "v"; up to key 4999) until
 * one fails: its error (0 if none did), *n the key it failed on. */
static int put_until_error(lsm_db *db, int *n)
{
	char k[32];
	for (; *n < 5000; ++*n) {
		key_of(k, *n);
		int rc = lsm_put(db, q_slice_str(k), q_slice_str("v"));
		if (rc)
			return rc;
	}
	return 0;
}

/* A gate on file syncs that holds the first thread to sync a file once
 * armed (the batch sync thread, holding the log's lock) and lets every
 * later sync pass. */
typedef struct first_gate {
	atomic_int armed, entered, open;
} first_gate;

static void first_gate_hook(void *arg)
{
	first_gate *g = arg;
	if (atomic_load(&g->armed) && !atomic_exchange(&g->entered, 1))
		qtest_wait_flag(&g->open, 30000);
}

static int count_files(const char *ext)
{
	DIR *d = opendir(dbdir);
	ASSERT(d != NULL);
	int n = 0;
	char p[700];
	while (next_file(d, ext, p))
		n++;
	closedir(d);
	return n;
}

/* Fifty nowait reads of key 0 over about a second (answered, or -EAGAIN
 * once it is in a table: the fault env's tables are not mapped); the first
 * other answer. */
static void *reader_loop_main(void *arg)
{
	nowait_reader *r = arg;
	for (int i = 0; i < 50 && r->rc == 0; i++) {
		r->rc = get_nowait(r->db, 0, 1, 100);
		if (r->rc == -EAGAIN)
			r->rc = 0;
		q_sleep_ms(20);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

QTEST(get_nowait_goes_on_while_a_flush_lifts_a_disk_full_error)
{
	/* a flush that failed with ENOSPC succeeds again while the batch
	 * sync thread is in its fsync (holding the log's lock): lifting the
	 * error must not wait for the log while holding the engine's mutex,
	 * which lsm_get_nowait takes */
	first_gate g;
	memset(&g, 0, sizeof(g));
	q_env *fe;
	lsm_db *db = open_faulty(&fe, LSM_SYNC_BATCH, 4 << 20);
	q_fault_env_on_sync(fe, first_gate_hook, &g);
	/* the next memtable's log is created, no file after it (a full
	 * disk): the flush fails, is retried every second, and writes fail
	 * with ENOSPC meanwhile */
	q_fault_env_fail_at(fe, Q_FAULT_OPEN, 2, -ENOSPC, 1);
	ASSERT_EQ(lsm_flush(db), -ENOSPC);
	int n = 1;
	ASSERT_EQ(put_until_error(db, &n), -ENOSPC);
	ASSERT_EQ(n, 1);
	atomic_store(&g.armed, 1);
	ASSERT(qtest_wait_flag(&g.entered, 10000)); /* the sync thread holds the log */
	ASSERT_EQ(count_files(".sst"), 0);
	q_fault_env_fail_at(fe, 0, 0, 0, 0); /* space back: the next retry works */
	int flushed = 0;
	for (int t = 0; t < 1000 && !flushed; t++) { /* the retry, within seconds */
		flushed = count_files(".sst") > 0;
		if (!flushed)
			q_sleep_ms(10);
	}
	nowait_reader r = {db, 0, 0};
	pthread_t rt;
	ASSERT_OK(pthread_create(&rt, NULL, reader_loop_main, &r));
	int answered = qtest_wait_flag(&r.done, 10000);
	atomic_store(&g.open, 1);
	pthread_join(rt, NULL);
	ASSERT(flushed);
	ASSERT(answered); /* no read waited for the fsync */
	ASSERT_OK(r.rc);
	put_wait(db, n, 1, 100); /* the error was lifted: writes go on */
	expect(db, n, 1, 100);
	expect(db, 0, 1, 100);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(write_nowait_again_at_the_level0_slowdown)
{
	/* level 0 at L0_SLOWDOWN (8) tables: lsm_write sleeps 1 ms once
	 * (stall_ms), lsm_write_nowait gives -EAGAIN having written nothing
	 * (nowait_write_room) */
	q_env *fe;
	char p[700];
	lsm_db *db = open_faulty_table(&fe, p);
	/* the data blocks of the first table cannot be read from now on (its
	 * index and filter are in memory): every level-0 compaction fails
	 * and is retried later, so each flush adds a level-0 table */
	ASSERT_OK(q_fault_env_bad_region(fe, p, 0, -EIO));
	for (int i = 1; i < 8; i++) {
		put_wait(db, i, 1, 100);
		ASSERT_OK(lsm_flush(db));
	}
	lsm_stats s0 = stats(db);
	ASSERT_EQ(s0.tables_per_level[0], 8);
	ASSERT_EQ(put_nowait(db, 100, 1, 100), -EAGAIN);
	lsm_stats s1 = stats(db);
	ASSERT_EQ(s1.nowait_write_room, s0.nowait_write_room + 1);
	ASSERT_EQ(s1.commit_groups, s0.commit_groups);
	expect(db, 100, -1, 0);
	put_wait(db, 100, 1, 100); /* delayed once, then written */
	s1 = stats(db);
	ASSERT(s1.stall_ms > s0.stall_ms);
	ASSERT_EQ(s1.commit_groups, s0.commit_groups + 1);
	expect(db, 100, 1, 100);
	for (int i = 1; i < 8; i++)
		expect(db, i, 1, 100);
	ASSERT_OK(q_fault_env_bad_region(fe, NULL, 0, 0));
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST(write_nowait_again_while_a_resume_is_due)
{
	/* after a failed log write (full disk) lsm_write tries, at most once
	 * a second, to resume on a new log (statfs, log creation): within
	 * that second lsm_write_nowait returns the error as lsm_write does,
	 * once a try is due it gives -EAGAIN having written nothing */
	q_env *fe;
	lsm_db *db = open_faulty(&fe, LSM_SYNC_NONE, 4 << 20);
	/* full: the log's next write-out fails, and so does a new log */
	q_fault_env_fail_at(fe, Q_FAULT_WRITE | Q_FAULT_OPEN, 1, -ENOSPC, 1);
	int n = 1;
	ASSERT_EQ(put_until_error(db, &n), -ENOSPC);
	uint64_t t0 = q_mono_ns();
	char k[32];
	key_of(k, n);
	ASSERT_EQ(lsm_put(db, q_slice_str(k), q_slice_str("v")), -ENOSPC); /* tried */
	int rc = put_nowait(db, n, 1, 100);
	if (q_mono_ns() - t0 < 900000000ull)
		ASSERT_EQ(rc, -ENOSPC); /* no try due yet */
	else
		ASSERT(rc == -ENOSPC || rc == -EAGAIN); /* a slow machine */
	q_sleep_ms(1100);
	lsm_stats s0 = stats(db);
	ASSERT_EQ(put_nowait(db, n, 1, 100), -EAGAIN); /* a try is due */
	lsm_stats s1 = stats(db);
	ASSERT_EQ(s1.nowait_write_room, s0.nowait_write_room + 1);
	ASSERT_EQ(s1.commit_groups, s0.commit_groups);
	q_fault_env_fail_at(fe, 0, 0, 0, 0); /* space back */
	expect(db, n, -1, 0);
	int ok = 0;
	for (int t = 0; t < 50 && !ok; t++) { /* tries are a second apart */
		ok = lsm_put(db, q_slice_str(k), q_slice_str("v")) == 0;
		if (!ok)
			q_sleep_ms(100);
	}
	ASSERT(ok);
	ASSERT_OK(put_nowait(db, n + 1, 1, 100));
	expect(db, n + 1, 1, 100);
	expect(db, 0, 1, 100);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

/* The last sequence number the store's MANIFEST records (written at
 * close). */
static uint64_t manifest_last_seq(void)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/MANIFEST", dbdir);
	uint8_t *data = NULL;
	size_t n = 0;
	ASSERT_OK(q_env_read_all(q_env_posix(), p, &data, &n));
	man_data md;
	memset(&md, 0, sizeof(md));
	size_t bad = 0;
	ASSERT_OK(ver_manifest_decode(data, n, &md, &bad));
	uint64_t seq = md.last_seq;
	ver_manifest_free(&md);
	free(data);
	return seq;
}

QTEST(refused_writes_take_no_sequence_number)
{
	/* each acknowledged operation takes the next sequence number, in
	 * the order of acknowledgement; a refused nowait write (-EAGAIN)
	 * takes none, so the newest acknowledged value of a key wins, before
	 * and after a reopen */
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	put_wait(db, 1, 1, 100);
	put_wait(db, 2, 1, 100);
	put_wait(db, 3, 1, 100);
	/* refused in the commit itself: the record would not stay in the
	 * log's buffer */
	ASSERT_EQ(put_nowait(db, 1, 2, 70000), -EAGAIN);
	lsm_batch *b = lsm_batch_new();
	ASSERT(b != NULL);
	q_buf v = Q_BUF_INIT;
	for (int i = 1; i <= 5; i++) {
		char k[32];
		key_of(k, i);
		val_of(&v, i, 3, 100);
		ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_buf_slice(&v)));
	}
	ASSERT_OK(lsm_write(db, b)); /* 5 operations */
	lsm_batch_free(b);
	q_buf_free(&v);
	ASSERT_EQ(put_nowait(db, 4, 2, 70000), -EAGAIN);
	ASSERT_OK(put_nowait(db, 1, 4, 100));
	expect(db, 1, 4, 100);
	expect(db, 4, 3, 100);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(manifest_last_seq(), 9);
	db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	expect(db, 1, 4, 100);
	expect(db, 2, 3, 100);
	expect(db, 4, 3, 100);
	ASSERT_EQ(put_nowait(db, 2, 5, 70000), -EAGAIN);
	put_wait(db, 2, 6, 100);
	expect(db, 2, 6, 100);
	ASSERT_OK(lsm_close(db));
	ASSERT_EQ(manifest_last_seq(), 10);
}

QTEST(refused_write_nowait_leaves_a_shared_batch_as_it_is)
{
	/* a batch with a large value, written: the memtable shares its
	 * encoding. Written again without waiting and refused, it must
	 * still share it: the copy a change of a shared batch needs is made
	 * only once the write goes ahead */
	early_write = 0; /* the buffer keeps what is written until full */
	lsm_db *db = open_db(NULL, LSM_SYNC_NONE, 4 << 20, 0);
	lsm_batch *b = lsm_batch_new();
	ASSERT(b != NULL);
	q_buf v = Q_BUF_INIT;
	char k[32];
	key_of(k, 1);
	val_of(&v, 1, 1, 40000);
	ASSERT_OK(lsm_batch_put(b, q_slice_str(k), q_buf_slice(&v)));
	ASSERT_OK(lsm_write(db, b));
	ASSERT(b->hold != NULL); /* shared with the memtable */
	const uint8_t *enc = b->rep.p;
	/* 40 KB more would not stay in the log's 64 KiB buffer */
	ASSERT_EQ(lsm_write_nowait(db, b), -EAGAIN);
	ASSERT_EQ(stats(db).nowait_write_log_full, 1);
	ASSERT(b->hold != NULL);
	ASSERT(b->rep.p == enc);
	ASSERT_OK(lsm_write(db, b)); /* copied now, written */
	expect(db, 1, 1, 40000);
	ASSERT_OK(lsm_close(db));
	lsm_batch_free(b);
	q_buf_free(&v);
}

static void *flush_main(void *arg)
{
	nowait_reader *f = arg;
	f->rc = lsm_flush(f->db);
	atomic_store(&f->done, 1);
	return NULL;
}

QTEST(get_nowait_leaves_a_replaced_version_to_the_flush_thread)
{
	/* a nowait lookup that holds the last reference to a version (a full
	 * compaction replaced it while the lookup ran) does not release it on
	 * its own thread, which would close, unmap and delete the table only
	 * that version kept: the flush thread does (held in a sync here, so
	 * the table is still on disk when the lookup returns) */
	first_gate vg, sg;
	memset(&vg, 0, sizeof(vg));
	memset(&sg, 0, sizeof(sg));
	q_env *fe;
	char t1[700];
	lsm_db *db = open_faulty_table(&fe, t1);
	lsm_test_set_view_hook(db, first_gate_hook, &vg);
	atomic_store(&vg.armed, 1);
	nowait_reader r = {db, 0, 0};
	pthread_t rt, ft;
	ASSERT_OK(pthread_create(&rt, NULL, reader_main, &r));
	ASSERT(qtest_wait_flag(&vg.entered, 10000)); /* the lookup holds its view */
	ASSERT_OK(lsm_compact_all(db)); /* the table replaced, the manifests moved on */
	ASSERT_OK(access(t1, F_OK)); /* still in the lookup's view */
	q_fault_env_on_sync(fe, first_gate_hook, &sg);
	atomic_store(&sg.armed, 1);
	put_wait(db, 1, 1, 100);
	nowait_reader fl = {db, 0, 0};
	ASSERT_OK(pthread_create(&ft, NULL, flush_main, &fl));
	int held = qtest_wait_flag(&sg.entered, 10000); /* the flush thread, in its sync */
	atomic_store(&vg.open, 1);
	int returned = qtest_wait_flag(&r.done, 10000);
	int kept = access(t1, F_OK) == 0;
	atomic_store(&sg.open, 1);
	pthread_join(rt, NULL);
	pthread_join(ft, NULL);
	ASSERT(held);
	ASSERT(returned);
	ASSERT(r.rc == 0 || r.rc == -EAGAIN); /* (the fault env maps no table) */
	ASSERT(kept); /* not deleted on the lookup's thread */
	ASSERT_OK(fl.rc);
	int gone = 0;
	for (int t = 0; t < 1000 && !gone; t++) { /* released by the flush thread */
		gone = access(t1, F_OK) != 0;
		if (!gone)
			q_sleep_ms(10);
	}
	ASSERT(gone);
	expect(db, 0, 1, 100);
	expect(db, 1, 1, 100);
	ASSERT_OK(lsm_close(db));
	q_fault_env_free(fe);
}

QTEST_MAIN(QT(get_answers_from_the_memtable), QT(get_not_found_through_filters_and_key_ranges),
	   QT(get_again_for_an_uncached_block_until_a_read_caches_it),
	   QT(get_reads_a_block_in_the_page_cache), QT(get_again_for_a_separated_value), QT(write_nowait_is_read_back_and_recovered),
	   QT(write_nowait_again_under_sync_always), QT(write_nowait_again_when_the_memtable_is_full),
	   QT(write_nowait_again_when_the_log_buffer_is_full),
	   QT(blocking_write_writes_the_log_buffer_out_early),
	   QT(write_nowait_refused_once_past_the_mark),
	   QT(write_nowait_goes_on_across_many_log_buffers),
	   QT(write_nowait_goes_on_across_many_log_buffers_batch),
	   QT(write_nowait_returns_the_background_error),
	   QT(write_nowait_again_while_the_log_is_being_synced),
	   QT(get_nowait_goes_on_while_a_switch_waits_for_the_log),
	   QT(get_nowait_goes_on_while_a_flush_lifts_a_disk_full_error),
	   QT(write_nowait_again_at_the_level0_slowdown),
	   QT(write_nowait_again_while_a_resume_is_due),
	   QT(refused_writes_take_no_sequence_number),
	   QT(refused_write_nowait_leaves_a_shared_batch_as_it_is),
	   QT(get_nowait_leaves_a_replaced_version_to_the_flush_thread))
