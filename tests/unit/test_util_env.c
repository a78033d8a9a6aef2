/* Unit tests for src/util/env.c and env_fault.c. */
#include "qtest.h"
#include "util/env.h"
#include "util/qerr.h"

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", qtest_tmpdir, name);
}

static uint64_t size_of(const char *path)
{
	uint64_t s = 0;
	if (q_env_file_size(q_env_posix(), path, &s))
		return UINT64_MAX;
	return s;
}

QTEST(posix_write_read_list)
{
	q_env *e = q_env_posix();
	char p[512], d[512];
	path_in(d, sizeof(d), "a/b/c");
	ASSERT_OK(q_env_mkdirs(e, d));
	ASSERT_OK(q_env_mkdirs(e, d)); /* again is fine */
	path_in(p, sizeof(p), "a/b/c/f");
	q_file *f;
	ASSERT_OK(q_env_open(e, p, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, "hello ", 6));
	ASSERT_OK(q_file_append(f, "world", 5));
	ASSERT_OK(q_file_sync(f));
	uint64_t sz;
	ASSERT_OK(q_file_size(f, &sz));
	ASSERT_U64_EQ(sz, 11);
	char buf[32];
	size_t got;
	ASSERT_OK(q_file_pread(f, buf, sizeof(buf), 6, &got));
	ASSERT_EQ(got, 5);
	ASSERT_MEMEQ(buf, "world", 5);
	ASSERT_OK(q_file_close(f));
	ASSERT_EQ(q_env_open(e, p, Q_OPEN_CREATE | Q_OPEN_EXCL, &f), -EEXIST);
	char **names;
	size_t n;
	ASSERT_OK(q_env_list(e, d, &names, &n));
	ASSERT_EQ(n, 1);
	ASSERT_STREQ(names[0], "f");
	q_env_list_free(names, n);
	char p2[512];
	path_in(p2, sizeof(p2), "a/b/c/g");
	ASSERT_OK(q_env_rename(e, p, p2));
	ASSERT_OK(q_env_sync_dir(e, d));
	ASSERT_EQ(q_env_open(e, p, Q_OPEN_READ, &f), -ENOENT);
	uint8_t *data;
	ASSERT_OK(q_env_read_all(e, p2, &data, &got));
	ASSERT_EQ(got, 11);
	free(data);
	ASSERT_OK(q_env_unlink(e, p2));
	uint64_t tot, av;
	ASSERT_OK(q_env_statfs(e, d, &tot, &av));
	ASSERT(tot > 0 && av <= tot);
}

QTEST(lock_is_exclusive)
{
	q_env *e = q_env_posix();
	char p[512];
	path_in(p, sizeof(p), "LOCK");
	q_file *l1, *l2;
	ASSERT_OK(q_env_lock(e, p, &l1));
	ASSERT_EQ(q_env_lock(e, p, &l2), Q_EBUSY);
	ASSERT_OK(q_file_close(l1));
	ASSERT_OK(q_env_lock(e, p, &l2));
	ASSERT_OK(q_file_close(l2));
}

QTEST(write_atomic_replaces)
{
	q_env *e = q_env_posix();
	char p[512];
	path_in(p, sizeof(p), "CURRENT");
	ASSERT_OK(q_env_write_atomic(e, p, "one", 3));
	ASSERT_OK(q_env_write_atomic(e, p, "second", 6));
	uint8_t *data;
	size_t n;
	ASSERT_OK(q_env_read_all(e, p, &data, &n));
	ASSERT_EQ(n, 6);
	ASSERT_MEMEQ(data, "second", 6);
	free(data);
}

QTEST(fault_fails_nth_call)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	char p[512];
	path_in(p, sizeof(p), "log");
	q_file *f;
	ASSERT_OK(q_env_open(fe, p, Q_OPEN_CREATE, &f));
	q_fault_env_fail_at(fe, Q_FAULT_WRITE, 3, -ENOSPC, 0);
	ASSERT_OK(q_file_append(f, "a", 1));
	ASSERT_OK(q_file_append(f, "b", 1));
	ASSERT_EQ(q_file_append(f, "c", 1), -ENOSPC);
	ASSERT_OK(q_file_append(f, "d", 1)); /* one-shot */
	q_fault_env_fail_at(fe, Q_FAULT_SYNC, 1, -EIO, 1);
	ASSERT_EQ(q_file_sync(f), -EIO);
	ASSERT_EQ(q_file_sync(f), -EIO); /* sticky */
	q_fault_env_fail_at(fe, 0, 0, 0, 0);
	ASSERT_OK(q_file_sync(f));
	ASSERT_EQ(q_fault_env_count(fe, Q_FAULT_WRITE), 4);
	q_fault_env_short_write_at(fe, 1, -EIO);
	ASSERT_EQ(q_file_append(f, "1234", 4), -EIO);
	ASSERT_OK(q_file_close(f));
	ASSERT_U64_EQ(size_of(p), 5); /* "abd" + "12": torn half */
	q_fault_env_free(fe);
}

QTEST(fault_drop_unsynced_data_and_files)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	char dir[512], synced[512], fresh[512];
	path_in(dir, sizeof(dir), "db");
	ASSERT_OK(q_env_mkdir(fe, dir));
	path_in(synced, sizeof(synced), "db/synced");
	path_in(fresh, sizeof(fresh), "db/fresh");
	q_file *f;
	ASSERT_OK(q_env_open(fe, synced, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, "durable", 7));
	ASSERT_OK(q_file_sync(f));
	ASSERT_OK(q_env_sync_dir(fe, dir));
	ASSERT_OK(q_file_append(f, "-lost", 5));
	ASSERT_OK(q_file_close(f));
	ASSERT_OK(q_env_open(fe, fresh, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, "x", 1));
	ASSERT_OK(q_file_sync(f)); /* data synced, but its name is not */
	ASSERT_OK(q_file_close(f));
	ASSERT_U64_EQ(size_of(synced), 12);
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	ASSERT_U64_EQ(size_of(synced), 7);
	ASSERT_U64_EQ(size_of(fresh), UINT64_MAX); /* gone */
	q_fault_env_free(fe);
}

QTEST(fault_undoes_unsynced_rename)
{
	q_env *fe = q_fault_env_new(q_env_posix());
	char cur[512], tmp[512];
	path_in(cur, sizeof(cur), "CURRENT");
	path_in(tmp, sizeof(tmp), "CURRENT.new");
	ASSERT_OK(q_env_write_atomic(fe, cur, "v1", 2));
	q_file *f;
	ASSERT_OK(q_env_open(fe, tmp, Q_OPEN_CREATE, &f));
	ASSERT_OK(q_file_append(f, "v2!", 3));
	ASSERT_OK(q_file_sync(f));
	ASSERT_OK(q_file_close(f));
	ASSERT_OK(q_env_rename(fe, tmp, cur)); /* no directory sync */
	ASSERT_U64_EQ(size_of(cur), 3);
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	uint8_t *data;
	size_t n;
	ASSERT_OK(q_env_read_all(q_env_posix(), cur, &data, &n));
	ASSERT_EQ(n, 2);
	ASSERT_MEMEQ(data, "v1", 2);
	free(data);
	/* and a synced rename stays */
	ASSERT_OK(q_env_write_atomic(fe, cur, "v3", 2));
	ASSERT_OK(q_fault_env_drop_unsynced(fe));
	ASSERT_OK(q_env_read_all(q_env_posix(), cur, &data, &n));
	ASSERT_MEMEQ(data, "v3", 2);
	free(data);
	q_fault_env_free(fe);
}

QTEST_MAIN(QT(posix_write_read_list), QT(lock_is_exclusive), QT(write_atomic_replaces),
	   QT(fault_fails_nth_call), QT(fault_drop_unsynced_data_and_files),
	   QT(fault_undoes_unsynced_rename))
