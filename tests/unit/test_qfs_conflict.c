/* Unit tests for fuse/qfs_conflict.c: sibling order and conflict names. */
#include <string.h>

#include "fuse/qfs_conflict.h"
#include "qtest.h"

/* 2026-11-23 10:15:00 UTC */
#define T0 1795428900000000000LL

QTEST(order_newest_mtime_then_dot)
{
	qfs_cand c[4] = {
		{T0, "n1", 3, "", 0},
		{T0 + 5, "n1", 1, "", 1},
		{T0, "n2", 1, "", 2},
		{T0, "n2", 7, "", 3},
	};
	qfs_cand_sort(c, 4);
	ASSERT_EQ(c[0].index, 1); /* newest mtime */
	ASSERT_EQ(c[1].index, 3); /* tie: greater node, then greater counter */
	ASSERT_EQ(c[2].index, 2);
	ASSERT_EQ(c[3].index, 0);
	/* the same set in another order sorts the same */
	qfs_cand d[4] = {c[3], c[1], c[0], c[2]};
	qfs_cand_sort(d, 4);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(d[i].index, c[i].index);
}

QTEST(syncthing_names)
{
	qfs_cand c[2] = {{T0 + 10, "n1", 1, "", 0}, {T0, "n2", 1, "", 1}};
	char out[QFS_NAME_MAX + 1];
	ASSERT_OK(qfs_conflict_name("report.txt", c, 2, 1, out));
	ASSERT_STREQ(out, "report.sync-conflict-20261123-101500-n2.txt");
	ASSERT_OK(qfs_conflict_name("Makefile", c, 2, 1, out));
	ASSERT_STREQ(out, "Makefile.sync-conflict-20261123-101500-n2");
	ASSERT_OK(qfs_conflict_name(".bashrc", c, 2, 1, out));
	ASSERT_STREQ(out, ".bashrc.sync-conflict-20261123-101500-n2");
	ASSERT_OK(qfs_conflict_name("a.tar.gz", c, 2, 1, out));
	ASSERT_STREQ(out, "a.tar.sync-conflict-20261123-101500-n2.gz");
	/* origin recorded in the object wins over the dot's node; odd chars */
	c[1].origin = "host/7 x";
	ASSERT_OK(qfs_conflict_name("r.txt", c, 2, 1, out));
	ASSERT_STREQ(out, "r.sync-conflict-20261123-101500-host_7_x.txt");
	ASSERT_EQ(qfs_conflict_name("r.txt", c, 2, 0, out), -EINVAL);
}

QTEST(colliding_names_get_suffixes)
{
	qfs_cand c[3] = {{T0 + 1000000000LL, "n1", 1, "", 0},
			 {T0, "n2", 2, "", 1},
			 {T0, "n2", 1, "", 2}};
	char a[QFS_NAME_MAX + 1], b[QFS_NAME_MAX + 1];
	ASSERT_OK(qfs_conflict_name("f.txt", c, 3, 1, a));
	ASSERT_OK(qfs_conflict_name("f.txt", c, 3, 2, b));
	ASSERT_STREQ(a, "f.sync-conflict-20261123-101500-n2.txt");
	ASSERT_STREQ(b, "f.sync-conflict-20261123-101500-n2-2.txt");
}

QTEST(long_names_shorten_stem)
{
	char base[QFS_NAME_MAX + 1], out[QFS_NAME_MAX + 1];
	memset(base, 'x', 250);
	strcpy(base + 250, ".txt");
	qfs_cand c[2] = {{T0, "n1", 1, "", 0}, {T0, "n2", 1, "", 1}};
	ASSERT_OK(qfs_conflict_name(base, c, 2, 1, out));
	ASSERT_EQ(strlen(out), QFS_NAME_MAX);
	ASSERT(strstr(out, ".sync-conflict-") != NULL);
	ASSERT(strcmp(out + strlen(out) - 4, ".txt") == 0);
}

QTEST(bases_of_a_conflict_name)
{
	char out[8][QFS_NAME_MAX + 1];
	ASSERT_EQ(qfs_is_conflict_name("report.txt"), 0);
	ASSERT_EQ(qfs_conflict_bases("report.txt", out, 8), 0);
	size_t n = qfs_conflict_bases("report.sync-conflict-20261123-101500-n2.txt", out, 8);
	ASSERT_EQ(n, 2);
	ASSERT_STREQ(out[0], "report");
	ASSERT_STREQ(out[1], "report.txt");
	n = qfs_conflict_bases("Makefile.sync-conflict-20261123-101500-n2", out, 8);
	ASSERT_EQ(n, 1);
	ASSERT_STREQ(out[0], "Makefile");
	/* a dotted origin: every split is offered */
	n = qfs_conflict_bases("a.sync-conflict-20261123-101500-h.lan.c", out, 8);
	ASSERT_EQ(n, 3);
	ASSERT_STREQ(out[1], "a.lan.c");
	ASSERT_STREQ(out[2], "a.c");
}

QTEST_MAIN(QT(order_newest_mtime_then_dot), QT(syncthing_names), QT(colliding_names_get_suffixes),
	   QT(long_names_shorten_stem), QT(bases_of_a_conflict_name))
