/* Unit tests for fuse/qfs_opts.c: the mount daemon's command line. */
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_opts.h"
#include "qtest.h"

static const char *const keys[] = {"data_dir", "listen", "node_id", "zone", "peers", "n", "r",
				   "w", "sync", "request_timeout", NULL};

#define ARGV(...) ((char *[]){"quorumfs", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"quorumfs", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) qfs_opts_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), keys, (o))

QTEST(defaults)
{
	qfs_opts o;
	ASSERT_OK(PARSE(&o, "/mnt"));
	ASSERT_STREQ(o.mountpoint, "/mnt");
	ASSERT_EQ(o.foreground, 0);
	ASSERT_EQ(o.clone_fd, 1);
	ASSERT_EQ(o.writeback_cache, 0);
	ASSERT_EQ(o.chunk_size, 1 << 20);
	ASSERT_EQ(o.write_threads, 2);
	ASSERT_EQ(o.fuse_argc, 1);
	ASSERT(q_conf_get(o.node, "peers") == NULL);
	qfs_opts_free(&o);
}

QTEST(long_options_and_fuse_passthrough)
{
	qfs_opts o;
	ASSERT_OK(PARSE(&o, "-f", "--join", "127.0.0.2:7070", "--join=127.0.0.3:7070", "--data",
			"/tmp/d", "--listen=127.0.0.4:7071", "--node-id", "n4", "--zone", "z1",
			"-o", "allow_other,default_permissions,w=1,attr_timeout=0.5,fsname=qfs",
			"/mnt/q"));
	ASSERT_EQ(o.foreground, 1);
	ASSERT_STREQ(q_conf_get(o.node, "peers"), "127.0.0.2:7070,127.0.0.3:7070");
	ASSERT_STREQ(q_conf_get(o.node, "data_dir"), "/tmp/d");
	ASSERT_STREQ(q_conf_get(o.node, "listen"), "127.0.0.4:7071");
	ASSERT_STREQ(q_conf_get(o.node, "node_id"), "n4");
	ASSERT_STREQ(q_conf_get(o.node, "zone"), "z1");
	ASSERT_STREQ(q_conf_get(o.node, "w"), "1");
	ASSERT(o.attr_timeout > 0.49 && o.attr_timeout < 0.51);
	ASSERT_EQ(o.fuse_argc, 3);
	ASSERT_STREQ(o.fuse_argv[1], "-o");
	ASSERT_STREQ(o.fuse_argv[2], "allow_other,fsname=qfs");
	ASSERT_EQ(o.default_permissions, 1); /* handled by the mount, not passed on */
	qfs_opts_free(&o);
	/* on unless turned off */
	ASSERT_OK(PARSE(&o, "/mnt/q"));
	ASSERT_EQ(o.default_permissions, 1);
	qfs_opts_free(&o);
	ASSERT_OK(PARSE(&o, "-o", "no_default_permissions", "/mnt/q"));
	ASSERT_EQ(o.default_permissions, 0);
	qfs_opts_free(&o);
	ASSERT(PARSE(&o, "-o", "default_permissions=1", "/mnt/q") < 0);
	qfs_opts_free(&o);
}

QTEST(fstab_forms)
{
	qfs_opts o;
	/* what mount(8) hands a helper from an fstab line */
	ASSERT_OK(PARSE(&o, "/mnt", "-o",
			"rw,noauto,_netdev,x-systemd.automount,user,join=h:1,data=/d,node-id=n1,"
			"writeback_cache,chunk_size=256k"));
	ASSERT_STREQ(q_conf_get(o.node, "peers"), "h:1");
	ASSERT_STREQ(q_conf_get(o.node, "data_dir"), "/d");
	ASSERT_STREQ(q_conf_get(o.node, "node_id"), "n1");
	ASSERT_EQ(o.writeback_cache, 1);
	ASSERT_EQ(o.chunk_size, 256 * 1024);
	ASSERT_STREQ(o.fuse_argv[2], "rw");
	qfs_opts_free(&o);
	ASSERT_OK(PARSE(&o, "-oro,fsname=a\\,b", "/m"));
	ASSERT_STREQ(o.fuse_argv[2], "ro,fsname=a,b");
	qfs_opts_free(&o);
}

QTEST(errors_are_clear)
{
	qfs_opts o;
	ASSERT_EQ(PARSE(&o, "--bogus", "/m"), -EINVAL);
	ASSERT(strstr(o.err, "--bogus") != NULL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "-f"), -EINVAL);
	ASSERT(strstr(o.err, "mount point") != NULL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "/a", "/b"), -EINVAL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "--join", "nocolon", "/m"), -EINVAL);
	ASSERT(strstr(o.err, "HOST:PORT") != NULL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "-o", "chunk_size=1", "/m"), -EINVAL);
	ASSERT(strstr(o.err, "chunk_size") != NULL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "-o", "write_threads=9", "/m"), -EINVAL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "-o", "attr_timeout=abc", "/m"), -EINVAL);
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "-o", "w", "/m"), -EINVAL); /* node key without value */
	qfs_opts_free(&o);
	ASSERT_EQ(PARSE(&o, "--data"), -EINVAL);
	qfs_opts_free(&o);
	/* help needs no mount point */
	ASSERT_OK(PARSE(&o, "--help"));
	ASSERT_EQ(o.show_help, 1);
	qfs_opts_free(&o);
}

QTEST(default_data_dir)
{
	char buf[256];
	ASSERT_OK(qfs_default_data_dir(buf, sizeof(buf)));
	if (geteuid() == 0) {
		ASSERT_STREQ(buf, "/var/lib/quorumfs");
	} else {
		setenv("XDG_DATA_HOME", "/x/y", 1);
		ASSERT_OK(qfs_default_data_dir(buf, sizeof(buf)));
		ASSERT_STREQ(buf, "/x/y/quorumfs");
	}
}

QTEST_MAIN(QT(defaults), QT(long_options_and_fuse_passthrough), QT(fstab_forms),
	   QT(errors_are_clear), QT(default_data_dir))
