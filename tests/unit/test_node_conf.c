/*
 * test_node_conf.c - the node's typed configuration and persistent id.
 */
#include <stdio.h>
#include <string.h>

#include "lsm/lsm.h"
#include "node/node.h"
#include "cluster/coord.h"
#include "node/node_conf.h"
#include "qtest.h"
#include "util/qerr.h"

static int load_text(const char *text, node_conf *c, char *err, size_t cap)
{
	q_conf *q = q_conf_new();
	ASSERT(q);
	int rc = q_conf_parse(q, text, strlen(text));
	if (rc == 0)
		rc = node_conf_load(q, c, err, cap);
	q_conf_free(q);
	return rc;
}

QTEST(defaults)
{
	node_conf c;
	char err[256];
	ASSERT_OK(load_text("", &c, err, sizeof(err)));
	ASSERT_STREQ(c.listen, "127.0.0.1:7070");
	ASSERT_STREQ(c.data_dir, NODE_DEFAULT_DATA_DIR);
	ASSERT_STREQ(c.zone, "default");
	ASSERT_STREQ(c.node_id, "");
	ASSERT_EQ(c.n, 3);
	ASSERT_EQ(c.r, 2);
	ASSERT_EQ(c.w, 2);
	ASSERT_EQ(c.sync, LSM_SYNC_ALWAYS);
	ASSERT_U64_EQ(c.request_timeout_ms, 2000);
	ASSERT_EQ(c.read_repair, 1);
	ASSERT_EQ(c.io, COORD_IO_AUTO);
	ASSERT_EQ(c.npeers, 0);
	node_conf_free(&c);
}

QTEST(full_file)
{
	node_conf c;
	char err[256];
	ASSERT_OK(load_text("data_dir = /tmp/x\nlisten = :7071\nnode_id = n1\nzone = rack-2\n"
			    "peers = n2@127.0.0.1:7072/rack-1, 127.0.0.1:7073\n"
			    "n = 5\nr = 3\nw = 1\nsync = batch\nsync_batch = 5ms\n"
			    "request_timeout = 1s\nread_repair = false\nlog_level = warn\n"
			    "max_value_size = 1M\nio = worker\n",
			    &c, err, sizeof(err)));
	ASSERT_STREQ(c.data_dir, "/tmp/x");
	ASSERT_STREQ(c.listen, "127.0.0.1:7071");
	ASSERT_STREQ(c.node_id, "n1");
	ASSERT_STREQ(c.zone, "rack-2");
	ASSERT_EQ(c.npeers, 2);
	ASSERT_STREQ(c.peers[0].id, "n2");
	ASSERT_STREQ(c.peers[0].addr, "127.0.0.1:7072");
	ASSERT_STREQ(c.peers[0].zone, "rack-1");
	ASSERT_STREQ(c.peers[1].id, "");
	ASSERT_STREQ(c.peers[1].addr, "127.0.0.1:7073");
	ASSERT_EQ(c.n, 5);
	ASSERT_EQ(c.r, 3);
	ASSERT_EQ(c.w, 1);
	ASSERT_EQ(c.sync, LSM_SYNC_BATCH);
	ASSERT_U64_EQ(c.sync_batch_ms, 5);
	ASSERT_U64_EQ(c.request_timeout_ms, 1000);
	ASSERT_EQ(c.read_repair, 0);
	ASSERT_U64_EQ(c.max_value_size, 1 << 20);
	ASSERT_EQ(c.io, COORD_IO_WORKER);
	node_conf_free(&c);
}

static void expect_bad(const char *text, const char *needle)
{
	node_conf c;
	char err[256] = "";
	int rc = load_text(text, &c, err, sizeof(err));
	node_conf_free(&c);
	if (rc != -EINVAL || !strstr(err, needle))
		QTEST_FAIL_("'%s': rc %d, err '%s' (wanted '%s')", text, rc, err, needle);
}

QTEST(bad_values_name_the_key)
{
	expect_bad("r = 4\n", "r = '4'");
	expect_bad("n = 2\nw = 3\n", "w = '3'");
	expect_bad("n = 0\n", "n = '0'");
	expect_bad("sync = sometimes\n", "sync");
	expect_bad("listen = nowhere\n", "listen");
	expect_bad("listen = 1.2.3.4:99999\n", "listen");
	expect_bad("peers = n2@\n", "peers");
	expect_bad("peers = bad id@127.0.0.1:1\n", "peers");
	expect_bad("node_id = has space\n", "node_id");
	expect_bad("zone = \n", "zone");
	expect_bad("request_timeout = soon\n", "request_timeout");
	expect_bad("max_value_size = 1G\n", "max_value_size");
	expect_bad("log_level = loud\n", "log_level");
	expect_bad("data_dirr = /x\n", "data_dirr");
	expect_bad("io = async\n", "io");
}

QTEST(ids_and_addresses)
{
	ASSERT(node_id_valid("n1"));
	ASSERT(node_id_valid("node-a.b_c"));
	ASSERT(!node_id_valid(""));
	ASSERT(!node_id_valid("a b"));
	ASSERT(!node_id_valid("a/b"));
	char big[80];
	memset(big, 'a', 64);
	big[64] = 0;
	ASSERT(!node_id_valid(big));
	big[63] = 0;
	ASSERT(node_id_valid(big));
	char host[64];
	int port;
	ASSERT_OK(node_addr_parse("10.0.0.1:80", host, sizeof(host), &port));
	ASSERT_STREQ(host, "10.0.0.1");
	ASSERT_EQ(port, 80);
	ASSERT_OK(node_addr_parse(":7070", host, sizeof(host), &port));
	ASSERT_STREQ(host, "127.0.0.1");
	ASSERT(node_addr_parse("x:0", host, sizeof(host), &port) < 0);
	ASSERT(node_addr_parse("x:", host, sizeof(host), &port) < 0);
	ASSERT(node_addr_parse("x:1a", host, sizeof(host), &port) < 0);
	ASSERT(node_addr_parse("x", host, sizeof(host), &port) < 0);
}

QTEST(identity_is_persistent)
{
	char id[NODE_ID_MAX + 1], id2[NODE_ID_MAX + 1], err[256];
	ASSERT_OK(node_conf_identity(qtest_tmpdir, NULL, id, err, sizeof(err)));
	ASSERT(node_id_valid(id));
	ASSERT_EQ(strlen(id), 13);
	ASSERT_OK(node_conf_identity(qtest_tmpdir, NULL, id2, err, sizeof(err)));
	ASSERT_STREQ(id, id2);
	/* the same id configured explicitly is fine, another one is refused */
	ASSERT_OK(node_conf_identity(qtest_tmpdir, id, id2, err, sizeof(err)));
	ASSERT_EQ(node_conf_identity(qtest_tmpdir, "other", id2, err, sizeof(err)), -EINVAL);
	ASSERT(strstr(err, "belongs to node"));
}

QTEST(identity_configured_and_corrupt)
{
	char id[NODE_ID_MAX + 1], err[256], path[512];
	ASSERT_OK(node_conf_identity(qtest_tmpdir, "alpha", id, err, sizeof(err)));
	ASSERT_STREQ(id, "alpha");
	snprintf(path, sizeof(path), "%s/%s", qtest_tmpdir, NODE_ID_FILE);
	FILE *f = fopen(path, "r");
	ASSERT(f);
	char line[64] = "";
	ASSERT(fgets(line, sizeof(line), f));
	fclose(f);
	ASSERT_STREQ(line, "alpha\n");
	f = fopen(path, "w");
	ASSERT(f);
	fputs("not valid!\n", f);
	fclose(f);
	ASSERT_EQ(node_conf_identity(qtest_tmpdir, NULL, id, err, sizeof(err)), Q_ECORRUPT);
}

QTEST(known_keys_cover_loader)
{
	/* every key the loader reads is accepted by q_node_conf_keys */
	size_t n = 0;
	while (q_node_conf_keys[n])
		n++;
	ASSERT(n >= 15);
	q_conf *q = q_conf_new();
	for (size_t i = 0; i < n; i++)
		ASSERT_OK(q_conf_set(q, q_node_conf_keys[i], "1"));
	ASSERT_OK(q_conf_check_known(q, q_node_conf_keys));
	q_conf_free(q);
}

QTEST_MAIN(QT(defaults), QT(full_file), QT(bad_values_name_the_key), QT(ids_and_addresses),
	   QT(identity_is_persistent), QT(identity_configured_and_corrupt),
	   QT(known_keys_cover_loader))
