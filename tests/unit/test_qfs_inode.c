/* Unit tests for fuse/qfs_inode.c: lookup counting, forget, renames. */
#include <stdio.h>
#include <string.h>

#include "fuse/qfs_format.h"
#include "fuse/qfs_inode.h"
#include "qtest.h"

QTEST(lookup_counts_and_forget)
{
	qfs_itable *t;
	uint64_t a, a2, b;
	char p[64];
	ASSERT_OK(qfs_itable_new(&t));
	ASSERT_EQ(qfs_itable_count(t), 1); /* the root */
	ASSERT_OK(qfs_itable_path(t, QFS_ROOT_INO, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/");
	ASSERT_OK(qfs_itable_lookup(t, "/a", QFS_T_REG, 0, &a));
	ASSERT_OK(qfs_itable_lookup(t, "/a", QFS_T_REG, 0, &a2));
	ASSERT_EQ(a, a2);
	ASSERT_OK(qfs_itable_lookup(t, "/b", QFS_T_DIR, 0, &b));
	ASSERT_NE(a, b);
	ASSERT_EQ(qfs_itable_get(t, a)->nlookup, 2);
	qfs_itable_forget(t, a, 1);
	ASSERT(qfs_itable_get(t, a) != NULL);
	qfs_itable_forget(t, a, 1);
	ASSERT(qfs_itable_get(t, a) == NULL);
	ASSERT_EQ(qfs_itable_path(t, a, p, sizeof(p), 0), -ENOENT);
	/* a new lookup gets a new number (numbers are never reused) */
	ASSERT_OK(qfs_itable_lookup(t, "/a", QFS_T_REG, 0, &a2));
	ASSERT(a2 > b);
	/* forgetting the root never frees it */
	qfs_itable_forget(t, QFS_ROOT_INO, 100);
	ASSERT(qfs_itable_get(t, QFS_ROOT_INO) != NULL);
	qfs_itable_free(t, NULL);
}

QTEST(open_handles_keep_inode)
{
	qfs_itable *t;
	uint64_t a;
	char p[64];
	ASSERT_OK(qfs_itable_new(&t));
	ASSERT_OK(qfs_itable_lookup(t, "/f", QFS_T_REG, 0, &a));
	qfs_inode *in = qfs_itable_get(t, a);
	qfs_itable_open(t, in);
	qfs_itable_detach(t, "/f"); /* unlinked while open */
	ASSERT_EQ(qfs_itable_path(t, a, p, sizeof(p), 0), -ESTALE);
	ASSERT_OK(qfs_itable_path(t, a, p, sizeof(p), 1));
	qfs_itable_forget(t, a, 1);
	ASSERT(qfs_itable_get(t, a) == in); /* still open */
	/* a new file at the same path is a different inode */
	uint64_t b;
	ASSERT_OK(qfs_itable_lookup(t, "/f", QFS_T_REG, 0, &b));
	ASSERT_NE(a, b);
	ASSERT_EQ(qfs_itable_release(t, in), 1);
	qfs_itable_release_done(t, in);
	ASSERT(qfs_itable_get(t, a) == NULL);
	ASSERT(qfs_itable_get(t, b) != NULL);
	qfs_itable_free(t, NULL);
}

QTEST(rename_moves_subtree)
{
	qfs_itable *t;
	uint64_t d, f, g, other, tgt;
	char p[64];
	ASSERT_OK(qfs_itable_new(&t));
	ASSERT_OK(qfs_itable_lookup(t, "/d", QFS_T_DIR, 0, &d));
	ASSERT_OK(qfs_itable_lookup(t, "/d/f", QFS_T_REG, 0, &f));
	ASSERT_OK(qfs_itable_lookup(t, "/d/e/g", QFS_T_REG, 0, &g));
	ASSERT_OK(qfs_itable_lookup(t, "/dd", QFS_T_REG, 0, &other)); /* prefix, not child */
	ASSERT_OK(qfs_itable_lookup(t, "/x", QFS_T_DIR, 0, &tgt));
	ASSERT_OK(qfs_itable_rename(t, "/d", "/x"));
	ASSERT_OK(qfs_itable_path(t, d, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/x");
	ASSERT_OK(qfs_itable_path(t, f, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/x/f");
	ASSERT_OK(qfs_itable_path(t, g, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/x/e/g");
	ASSERT_OK(qfs_itable_path(t, other, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/dd");
	ASSERT_EQ(qfs_itable_path(t, tgt, p, sizeof(p), 0), -ESTALE);
	/* lookups by the new path find the moved inode */
	uint64_t again;
	ASSERT_OK(qfs_itable_lookup(t, "/x/f", QFS_T_REG, 0, &again));
	ASSERT_EQ(again, f);
	qfs_itable_free(t, NULL);
}

QTEST(many_inodes_grow_table)
{
	qfs_itable *t;
	char path[32];
	uint64_t ino, first = 0;
	ASSERT_OK(qfs_itable_new(&t));
	for (int i = 0; i < 5000; i++) {
		snprintf(path, sizeof(path), "/f%d", i);
		ASSERT_OK(qfs_itable_lookup(t, path, QFS_T_REG, 0, &ino));
		if (i == 0)
			first = ino;
	}
	ASSERT_EQ(qfs_itable_count(t), 5001);
	char p[64];
	ASSERT_OK(qfs_itable_path(t, first, p, sizeof(p), 0));
	ASSERT_STREQ(p, "/f0");
	for (uint64_t i = first; i < first + 5000; i++)
		qfs_itable_forget(t, i, 1);
	ASSERT_EQ(qfs_itable_count(t), 1);
	qfs_itable_free(t, NULL);
}

QTEST(path_helpers)
{
	char buf[64], parent[64];
	ASSERT_OK(qfs_path_join("/", "a", buf, sizeof(buf)));
	ASSERT_STREQ(buf, "/a");
	ASSERT_OK(qfs_path_join("/a", "b", buf, sizeof(buf)));
	ASSERT_STREQ(buf, "/a/b");
	ASSERT_EQ(qfs_path_join("/a", "0123456789012345678901234567890123456789012345678901234567890",
				buf, sizeof(buf)),
		  -ENAMETOOLONG);
	ASSERT_STREQ(qfs_path_split("/a/b", parent, sizeof(parent)), "b");
	ASSERT_STREQ(parent, "/a");
	ASSERT_STREQ(qfs_path_split("/a", parent, sizeof(parent)), "a");
	ASSERT_STREQ(parent, "/");
}

QTEST_MAIN(QT(lookup_counts_and_forget), QT(open_handles_keep_inode), QT(rename_moves_subtree),
	   QT(many_inodes_grow_table), QT(path_helpers))
