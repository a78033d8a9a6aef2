/* Unit tests for fuse/qfs_fs.c over a real embedded single-node store (no
 * FUSE): file operations, and the sibling rules made deterministic by
 * writing siblings straight through the client (blind puts). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuse/qfs_conflict.h"
#include "fuse/qfs_format.h"
#include "fuse/qfs_fs.h"
#include "fuse/qfs_inode.h"
#include "fuse/qfs_obj.h"
#include "node/node.h"
#include "qtest.h"
#include "util/log.h"

typedef struct env {
	q_node *node;
	qc_client *c;
	qfs_fs *fs;
} env;

static uint64_t setup_unref_ms; /* qfs_fs_conf.unref_max_ms of the next setup */

static void setup(env *e, uint32_t chunk, uint32_t inl)
{
	char buf[512];
	q_log_set_level(Q_LOG_WARN);
	q_conf *conf = q_conf_new();
	snprintf(buf, sizeof(buf), "%s/data", qtest_tmpdir);
	ASSERT_OK(q_conf_set(conf, "data_dir", buf));
	snprintf(buf, sizeof(buf), "127.0.0.1:%d", qtest_free_port());
	ASSERT_OK(q_conf_set(conf, "listen", buf));
	ASSERT_OK(q_conf_set(conf, "node_id", "n1"));
	ASSERT_OK(q_conf_set(conf, "sync", "none"));
	ASSERT_OK(q_node_start(conf, &e->node));
	q_conf_free(conf);
	e->c = q_node_client(e->node);
	qfs_fs_conf fc = {.client = e->c, .node_id = "n1", .data_dir = qtest_tmpdir,
			  .chunk_size = chunk, .inline_max = inl, .attr_timeout = 0,
			  .writers = 2, .unref_max_ms = setup_unref_ms};
	ASSERT_OK(qfs_fs_new(&fc, &e->fs));
}

static void teardown(env *e)
{
	qfs_fs_free(e->fs);
	ASSERT_OK(q_node_stop(e->node));
}

static void put_file(env *e, const char *key, const char *data, int64_t mtime, const char *origin)
{
	qfs_obj o;
	q_buf b = Q_BUF_INIT;
	qfs_obj_init(&o);
	o.type = QFS_T_REG;
	o.mode = S_IFREG | 0644;
	o.mtime_ns = o.ctime_ns = mtime;
	o.size = strlen(data);
	o.inline_data = (uint8_t *)strdup(data);
	snprintf(o.origin, sizeof(o.origin), "%s", origin);
	ASSERT_OK(qfs_obj_encode(&o, &b));
	ASSERT_OK(qc_put(e->c, q_slice_str(key), q_slice_make(NULL, 0), q_buf_slice(&b), NULL, NULL));
	q_buf_free(&b);
	qfs_obj_free(&o);
}

static size_t live(env *e, const char *key)
{
	qc_object o;
	qc_object_init(&o);
	int rc = qc_get(e->c, q_slice_str(key), NULL, &o);
	size_t n = rc == 0 ? qc_object_live(&o) : 0;
	qc_object_free(&o);
	return n;
}

static void read_all(env *e, uint64_t ino, char *out, size_t cap)
{
	uint64_t fh;
	size_t got;
	ASSERT_OK(qfs_fs_open(e->fs, ino, O_RDONLY, &fh));
	ASSERT_OK(qfs_fs_read(e->fs, fh, 0, cap - 1, out, &got));
	out[got] = 0;
	ASSERT_OK(qfs_fs_release(e->fs, fh));
}

static int listed(env *e, uint64_t dir, const char *name)
{
	uint64_t dh;
	int found = 0;
	ASSERT_OK(qfs_fs_opendir(e->fs, dir, &dh));
	qfs_dirlist *l = qfs_fs_dirlist(e->fs, dh);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			found = 1;
	ASSERT_OK(qfs_fs_releasedir(e->fs, dh));
	return found;
}

QTEST(files_and_directories)
{
	env e;
	struct stat st;
	uint64_t d, f, fh, g;
	char buf[256];
	size_t got;
	setup(&e, 4096, 100);
	ASSERT_OK(qfs_fs_mknod(e.fs, QFS_ROOT_INO, "d", S_IFDIR | 0755, 0, 1, 2, &st, &d));
	ASSERT(S_ISDIR(st.st_mode));
	ASSERT_EQ(qfs_fs_mknod(e.fs, QFS_ROOT_INO, "d", S_IFDIR | 0755, 0, 1, 2, &st, &g), -EEXIST);
	ASSERT_OK(qfs_fs_create(e.fs, d, "f", 0600, O_WRONLY | O_EXCL, 1, 2, &st, &f, &fh));
	/* grows past inline_max (100) and spans chunks of 4096 */
	static char big[10000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 23);
	ASSERT_OK(qfs_fs_write(e.fs, fh, 0, big, sizeof(big)));
	ASSERT_OK(qfs_fs_write(e.fs, fh, 5000, "XYZ", 3));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	memcpy(big + 5000, "XYZ", 3);
	ASSERT_OK(qfs_fs_getattr(e.fs, f, &st));
	ASSERT_EQ(st.st_size, 10000);
	/* read back through a fresh lookup (no cached buffers) */
	uint64_t f2;
	qfs_fs_forget(e.fs, f, 1);
	ASSERT_OK(qfs_fs_lookup(e.fs, d, "f", &st, &f2));
	ASSERT_OK(qfs_fs_open(e.fs, f2, O_RDONLY, &fh));
	static char back[10000];
	ASSERT_OK(qfs_fs_read(e.fs, fh, 0, sizeof(back), back, &got));
	ASSERT_EQ(got, sizeof(back));
	ASSERT_MEMEQ(back, big, sizeof(big));
	ASSERT_OK(qfs_fs_read(e.fs, fh, 9990, 100, buf, &got));
	ASSERT_EQ(got, 10);
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	/* rename within and across directories, over an existing name */
	ASSERT_OK(qfs_fs_create(e.fs, QFS_ROOT_INO, "other", 0644, O_WRONLY, 0, 0, &st, &g, &fh));
	ASSERT_OK(qfs_fs_write(e.fs, fh, 0, "old", 3));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	ASSERT_OK(qfs_fs_rename(e.fs, d, "f", QFS_ROOT_INO, "other", 0));
	ASSERT(!listed(&e, d, "f"));
	ASSERT(listed(&e, QFS_ROOT_INO, "other"));
	ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "other", &st, &g));
	ASSERT_EQ(st.st_size, 10000);
	ASSERT_EQ(qfs_fs_rmdir(e.fs, QFS_ROOT_INO, "other"), -ENOTDIR);
	ASSERT_EQ(qfs_fs_unlink(e.fs, QFS_ROOT_INO, "d"), -EISDIR);
	/* a populated directory refuses rmdir; it renames with what is below */
	ASSERT_OK(qfs_fs_symlink(e.fs, d, "ln", "../other", 0, 0, &st, &g));
	ASSERT_OK(qfs_fs_readlink(e.fs, g, buf, sizeof(buf)));
	ASSERT_STREQ(buf, "../other");
	ASSERT_EQ(qfs_fs_rmdir(e.fs, QFS_ROOT_INO, "d"), -ENOTEMPTY);
	ASSERT_OK(qfs_fs_rename(e.fs, QFS_ROOT_INO, "d", QFS_ROOT_INO, "d2", 0));
	ASSERT_EQ(live(&e, "f:/d/ln"), 0);
	ASSERT_EQ(live(&e, "f:/d2/ln"), 1);
	ASSERT(listed(&e, d, "ln")); /* the inode moved with its path */
	ASSERT_OK(qfs_fs_readlink(e.fs, g, buf, sizeof(buf)));
	ASSERT_STREQ(buf, "../other");
	ASSERT_OK(qfs_fs_unlink(e.fs, d, "ln"));
	ASSERT_EQ(live(&e, "f:/d2/ln"), 0);
	ASSERT_OK(qfs_fs_rename(e.fs, QFS_ROOT_INO, "d2", QFS_ROOT_INO, "d", 0));
	ASSERT_OK(qfs_fs_rmdir(e.fs, QFS_ROOT_INO, "d"));
	ASSERT_EQ(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "d2", &st, &g), -ENOENT);
	/* xattrs */
	ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "other", &st, &g));
	ASSERT_OK(qfs_fs_setxattr(e.fs, g, "user.k", "v", 1, 0));
	ASSERT_EQ(qfs_fs_getxattr(e.fs, g, "user.k", buf, sizeof(buf)), 1);
	ASSERT_EQ(qfs_fs_setxattr(e.fs, g, "system.k", "v", 1, 0), -EOPNOTSUPP);
	ASSERT_EQ(qfs_fs_setxattr(e.fs, g, "user.quorum.siblings", "v", 1, 0), -EPERM);
	teardown(&e);
}

QTEST(conflict_files_show_and_resolve)
{
	env e;
	struct stat st;
	uint64_t f, c, fh;
	char buf[256], cname[QFS_NAME_MAX + 1];
	setup(&e, 4096, 1024);
	/* two concurrent versions of /r.txt, and its directory entry */
	ASSERT_OK(qfs_fs_create(e.fs, QFS_ROOT_INO, "r.txt", 0644, O_WRONLY, 0, 0, &st, &f, &fh));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	put_file(&e, "f:/r.txt", "newer", 1700000000000000000LL, "nB");
	put_file(&e, "f:/r.txt", "older", 1600000000000000000LL, "nA");
	ASSERT_EQ(live(&e, "f:/r.txt"), 3);
	/* the empty file from create has mtime "now" (2026): newest of all */
	ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "r.txt", &st, &f));
	ASSERT_EQ(st.st_size, 0);
	/* the conflict files are listed with their Syncthing names */
	ASSERT(listed(&e, QFS_ROOT_INO, "r.sync-conflict-20231114-221320-nB.txt"));
	ASSERT(listed(&e, QFS_ROOT_INO, "r.sync-conflict-20200913-122640-nA.txt"));
	strcpy(cname, "r.sync-conflict-20231114-221320-nB.txt");
	ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, cname, &st, &c));
	ASSERT_EQ(st.st_size, 5);
	read_all(&e, c, buf, sizeof(buf));
	ASSERT_STREQ(buf, "newer");
	ASSERT_EQ(qfs_fs_open(e.fs, c, O_WRONLY, &fh), -EPERM);
	/* the siblings xattr names all three */
	static char sib[4096];
	int n = qfs_fs_getxattr(e.fs, f, "user.quorum.siblings", NULL, 0);
	ASSERT(n > 0 && n < (int)sizeof(sib));
	ASSERT_EQ(qfs_fs_getxattr(e.fs, f, "user.quorum.siblings", sib, 10), -ERANGE);
	ASSERT_EQ(qfs_fs_getxattr(e.fs, f, "user.quorum.siblings", sib, sizeof(sib)), n);
	sib[n] = 0;
	ASSERT(strstr(sib, "origin=nA") && strstr(sib, "origin=nB") && strstr(sib, "context="));
	/* writing the name keeps the others */
	ASSERT_OK(qfs_fs_open(e.fs, f, O_WRONLY, &fh));
	ASSERT_OK(qfs_fs_write(e.fs, fh, 0, "mine", 4));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	ASSERT_EQ(live(&e, "f:/r.txt"), 3);
	ASSERT(listed(&e, QFS_ROOT_INO, cname));
	/* rm of a conflict file discards that sibling only */
	ASSERT_OK(qfs_fs_unlink(e.fs, QFS_ROOT_INO, "r.sync-conflict-20200913-122640-nA.txt"));
	ASSERT_EQ(live(&e, "f:/r.txt"), 2);
	ASSERT(!listed(&e, QFS_ROOT_INO, "r.sync-conflict-20200913-122640-nA.txt"));
	ASSERT(listed(&e, QFS_ROOT_INO, cname));
	/* mv CONFLICT NAME picks it and discards the rest */
	ASSERT_OK(qfs_fs_rename(e.fs, QFS_ROOT_INO, cname, QFS_ROOT_INO, "r.txt", 0));
	ASSERT_EQ(live(&e, "f:/r.txt"), 1);
	ASSERT(!listed(&e, QFS_ROOT_INO, cname));
	ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "r.txt", &st, &f));
	read_all(&e, f, buf, sizeof(buf));
	ASSERT_STREQ(buf, "newer");
	teardown(&e);
}

QTEST(directory_siblings_merge)
{
	env e;
	struct stat st;
	uint64_t d;
	setup(&e, 4096, 1024);
	ASSERT_OK(qfs_fs_mknod(e.fs, QFS_ROOT_INO, "d", S_IFDIR | 0755, 0, 0, 0, &st, &d));
	/* two versions of /d written blind, each adding its own child */
	const char *names[2] = {"from-x", "from-y"};
	for (int i = 0; i < 2; i++) {
		qfs_obj o;
		q_buf b = Q_BUF_INIT;
		qfs_obj_init(&o);
		o.type = QFS_T_DIR;
		o.mode = S_IFDIR | 0755;
		ASSERT_OK(qfs_dir_add(&o, names[i], QFS_T_REG, 100 + (uint64_t)i, 0, NULL));
		ASSERT_OK(qfs_obj_encode(&o, &b));
		ASSERT_OK(qc_put(e.c, q_slice_str("f:/d"), q_slice_make(NULL, 0), q_buf_slice(&b), NULL,
				 NULL));
		q_buf_free(&b);
		qfs_obj_free(&o);
		char key[64];
		snprintf(key, sizeof(key), "f:/d/%s", names[i]);
		put_file(&e, key, names[i], 1, "n1");
	}
	ASSERT(live(&e, "f:/d") >= 2);
	ASSERT(listed(&e, d, "from-x"));
	ASSERT(listed(&e, d, "from-y"));
	/* the next change writes the merge and collapses the siblings */
	uint64_t z, fh;
	ASSERT_OK(qfs_fs_create(e.fs, d, "z", 0644, O_WRONLY, 0, 0, &st, &z, &fh));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	ASSERT(listed(&e, d, "z")); /* at once in this mount */
	ASSERT_OK(qfs_fs_fsyncdir(e.fs, d)); /* stored now, not write-behind */
	ASSERT_EQ(live(&e, "f:/d"), 1);
	ASSERT(listed(&e, d, "from-x") && listed(&e, d, "from-y") && listed(&e, d, "z"));
	teardown(&e);
}

/* Readahead and single fetches (qfs_fs.c design note 8): readers of one
 * file in parallel get the right bytes while chunks are fetched ahead, and
 * a chunk changed after it was fetched ahead reads as changed. */
#define RA_CS 4096
#define RA_CHUNKS 48

static uint8_t ra_byte(uint64_t pos)
{
	return (uint8_t)(pos * 31 + pos / RA_CS);
}

typedef struct ra_reader {
	env *e;
	uint64_t fh;
	size_t piece;
	int bad;
} ra_reader;

static void *ra_read_all(void *arg)
{
	ra_reader *r = arg;
	uint8_t buf[3 * RA_CS];
	uint64_t off = 0;
	for (;;) {
		size_t got;
		if (qfs_fs_read(r->e->fs, r->fh, off, r->piece, buf, &got) != 0) {
			r->bad++;
			return NULL;
		}
		if (got == 0)
			break;
		for (size_t i = 0; i < got; i++)
			if (buf[i] != ra_byte(off + i)) {
				r->bad++;
				return NULL;
			}
		off += got;
	}
	if (off != (uint64_t)RA_CHUNKS * RA_CS)
		r->bad++;
	return NULL;
}

QTEST(readahead_parallel_readers_and_changes)
{
	env e;
	struct stat st;
	uint64_t f, fh, h1, h2;
	static uint8_t data[RA_CHUNKS * RA_CS];
	setup(&e, RA_CS, 100);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = ra_byte(i);
	ASSERT_OK(qfs_fs_create(e.fs, QFS_ROOT_INO, "big", 0644, O_WRONLY, 0, 0, &st, &f, &fh));
	ASSERT_OK(qfs_fs_write(e.fs, fh, 0, data, sizeof(data)));
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	for (int round = 0; round < 3; round++) {
		/* a fresh inode each round: nothing cached */
		uint64_t g;
		qfs_fs_forget(e.fs, f, 1);
		ASSERT_OK(qfs_fs_lookup(e.fs, QFS_ROOT_INO, "big", &st, &g));
		f = g;
		ASSERT_OK(qfs_fs_open(e.fs, f, O_RDONLY, &h1));
		ASSERT_OK(qfs_fs_open(e.fs, f, O_RDONLY, &h2));
		/* pieces that do and do not align with chunks */
		ra_reader a = {&e, h1, round == 0 ? RA_CS : 1000 + 700 * (size_t)round, 0};
		ra_reader b = {&e, h2, 3 * RA_CS, 0};
		pthread_t ta, tb;
		ASSERT_OK(pthread_create(&ta, NULL, ra_read_all, &a));
		ASSERT_OK(pthread_create(&tb, NULL, ra_read_all, &b));
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		ASSERT_EQ(a.bad, 0);
		ASSERT_EQ(b.bad, 0);
		ASSERT_OK(qfs_fs_release(e.fs, h1));
		ASSERT_OK(qfs_fs_release(e.fs, h2));
	}
	/* read chunk 10 (the next ones are fetched ahead), change chunk 12
	 * through another handle, read on: the change shows */
	ASSERT_OK(qfs_fs_open(e.fs, f, O_RDONLY, &h1));
	uint8_t buf[RA_CS];
	size_t got;
	ASSERT_OK(qfs_fs_read(e.fs, h1, 9 * RA_CS, RA_CS, buf, &got));
	ASSERT_OK(qfs_fs_read(e.fs, h1, 10 * RA_CS, RA_CS, buf, &got));
	ASSERT_OK(qfs_fs_open(e.fs, f, O_WRONLY, &h2));
	ASSERT_OK(qfs_fs_write(e.fs, h2, 12 * RA_CS + 5, "ZZZ", 3));
	ASSERT_OK(qfs_fs_flush(e.fs, h2));
	ASSERT_OK(qfs_fs_read(e.fs, h1, 11 * RA_CS, RA_CS, buf, &got));
	ASSERT_EQ(got, RA_CS);
	ASSERT_MEMEQ(buf, data + 11 * RA_CS, RA_CS);
	ASSERT_OK(qfs_fs_read(e.fs, h1, 12 * RA_CS, RA_CS, buf, &got));
	ASSERT_EQ(got, RA_CS);
	memcpy(data + 12 * RA_CS + 5, "ZZZ", 3);
	ASSERT_MEMEQ(buf, data + 12 * RA_CS, RA_CS);
	/* truncated and extended: the cut part reads as zeroes */
	struct stat in;
	memset(&in, 0, sizeof(in));
	in.st_size = 20 * RA_CS + 17;
	ASSERT_OK(qfs_fs_setattr(e.fs, f, &in, QFS_SET_SIZE, &st));
	in.st_size = 30 * RA_CS;
	ASSERT_OK(qfs_fs_setattr(e.fs, f, &in, QFS_SET_SIZE, &st));
	memset(data + 20 * RA_CS + 17, 0, 10 * RA_CS - 17);
	for (uint64_t off = 13 * RA_CS; off < 30 * RA_CS; off += RA_CS) {
		ASSERT_OK(qfs_fs_read(e.fs, h1, off, RA_CS, buf, &got));
		ASSERT_EQ(got, RA_CS);
		ASSERT_MEMEQ(buf, data + off, RA_CS);
	}
	ASSERT_OK(qfs_fs_read(e.fs, h1, 30 * RA_CS, RA_CS, buf, &got));
	ASSERT_EQ(got, 0);
	ASSERT_OK(qfs_fs_release(e.fs, h2));
	ASSERT_OK(qfs_fs_release(e.fs, h1));
	teardown(&e);
}

/* statfs arithmetic: the members' sum over min(N, answered) copies */
QTEST(statfs_figures)
{
	qfs_space sp = {.total = 192ull << 20, .free = 100ull << 20, .avail = 96ull << 20,
			.members = 2, .answered = 2, .n = 3};
	struct statvfs sv;
	qfs_space_to_statvfs(&sp, 10, &sv);
	ASSERT_EQ(sv.f_frsize, QFS_STATFS_BSIZE);
	/* three copies wanted, two members: two copies */
	ASSERT_EQ((uint64_t)sv.f_blocks * sv.f_frsize, 96ull << 20);
	ASSERT_EQ((uint64_t)sv.f_bfree * sv.f_frsize, 50ull << 20);
	ASSERT_EQ((uint64_t)sv.f_bavail * sv.f_frsize, 48ull << 20);
	ASSERT_EQ(sv.f_ffree, (48ull << 20) / QFS_STATFS_FILE_BYTES);
	ASSERT_EQ(sv.f_files, sv.f_ffree + 10);
	ASSERT_EQ(sv.f_namemax, QFS_NAME_MAX);
	sp.members = 5;
	sp.answered = 4;
	sp.total = 400ull << 20;
	qfs_space_to_statvfs(&sp, 0, &sv);
	ASSERT_EQ((uint64_t)sv.f_blocks, (400ull << 20) / 3 / QFS_STATFS_BSIZE);
	/* nothing known: zeroes, never a division by zero */
	memset(&sp, 0, sizeof(sp));
	qfs_space_to_statvfs(&sp, 0, &sv);
	ASSERT_EQ(sv.f_blocks, 0);
	ASSERT_EQ(sv.f_files, 0);
}

/* The decoded shown version of key, or -1. */
static int stored_obj(env *e, const char *key, qfs_obj *o)
{
	qc_object ob;
	qc_object_init(&ob);
	int rc = qc_get(e->c, q_slice_str(key), NULL, &ob);
	qfs_obj_init(o);
	if (rc == 0 && ob.nsib >= 1 && !ob.sib[0].deleted)
		rc = qfs_obj_decode(ob.sib[0].value.p, ob.sib[0].value.n, o);
	else
		rc = -1;
	qc_object_free(&ob);
	return rc;
}

/* Chunk collection, writer rule 3: a file kept open after its chunks went
 * out gets a version naming them within unref_max_ms, without a close. */
QTEST(open_file_chunks_get_named)
{
	env e;
	struct stat st;
	uint64_t f, fh;
	setup_unref_ms = 300;
	setup(&e, 4096, 100);
	ASSERT_OK(qfs_fs_create(e.fs, QFS_ROOT_INO, "log", 0644, O_WRONLY, 0, 0, &st, &f, &fh));
	static char data[4 * 4096];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + i / 4096);
	ASSERT_OK(qfs_fs_write(e.fs, fh, 0, data, sizeof(data)));
	/* no flush, no close: the object comes by itself */
	qfs_obj o;
	int named = 0;
	for (int i = 0; i < 200 && !named; i++) {
		usleep(50000);
		if (stored_obj(&e, "f:/log", &o) == 0) {
			named = o.layout == QFS_LAYOUT_CHUNKED && o.nchunks == 4;
			for (size_t k = 0; named && k < o.nchunks; k++)
				named = o.chunks[k].kind == QFS_CHUNK_DATA;
		}
		qfs_obj_free(&o);
	}
	ASSERT(named);
	ASSERT_OK(qfs_fs_release(e.fs, fh));
	teardown(&e);
	setup_unref_ms = 0;
}

QTEST_MAIN(QT(statfs_figures), QT(open_file_chunks_get_named), QT(files_and_directories), QT(conflict_files_show_and_resolve),
	   QT(directory_siblings_merge), QT(readahead_parallel_readers_and_changes))
