/*
 * test_coord_cluster.c - whole nodes in one process (q_node_start): the
 * in-process client on one node, three nodes replicating over real loopback
 * TCP, quorum errors with a node stopped, the network client, restart,
 * the CPU priority of the engine's background threads.
 */
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "lsm/lsm.h"
#include "cluster/coord.h"
#include "node/node.h"
#include "qtest.h"
#include "ring/ring.h"
#include "util/qerr.h"

static q_node *start_node_sync(const char *id, int port, const char *peers, const char *extra,
			       const char *sync)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "data_dir = %s/%s\nlisten = 127.0.0.1:%d\nnode_id = %s\nlog_level = warn\n"
		 "request_timeout = 1s\nsync = %s\n%s%s%s\n",
		 qtest_tmpdir, id, port, id, sync, peers ? "peers = " : "", peers ? peers : "",
		 extra ? extra : "");
	q_conf *c = q_conf_new();
	ASSERT_OK(q_conf_parse(c, text, strlen(text)));
	q_node *n = NULL;
	ASSERT_OK(q_node_start(c, &n));
	q_conf_free(c);
	return n;
}

static q_node *start_node(const char *id, int port, const char *peers, const char *extra)
{
	return start_node_sync(id, port, peers, extra, "none");
}

static void expect_value(qc_client *c, const char *key, const char *val, const qc_opts *o)
{
	qc_object obj;
	qc_object_init(&obj);
	ASSERT_OK(qc_get(c, q_slice_str(key), o, &obj));
	ASSERT_EQ(qc_object_live(&obj), 1);
	ASSERT_EQ(obj.sib[0].value.n, strlen(val));
	ASSERT_MEMEQ(obj.sib[0].value.p, val, strlen(val));
	qc_object_free(&obj);
}

QTEST(single_node_inproc)
{
	q_node *n = start_node("solo", qtest_free_port(), NULL, NULL);
	ASSERT_STREQ(q_node_id(n), "solo");
	qc_client *c = q_node_client(n);
	qc_object obj;
	qc_object_init(&obj);
	ASSERT_EQ(qc_get(c, q_slice_str("a"), NULL, &obj), Q_ENOTFOUND);
	/* default N=3 R=2 W=2 works on one node */
	ASSERT_OK(qc_put(c, q_slice_str("a"), q_slice_make(NULL, 0), q_slice_str("one"), NULL,
			 &obj));
	ASSERT_EQ(obj.nsib, 1);
	ASSERT(obj.context.len > 0);
	q_buf ctx = Q_BUF_INIT;
	ASSERT_OK(q_buf_append(&ctx, obj.context.p, obj.context.len));
	/* put with the context replaces */
	ASSERT_OK(qc_put(c, q_slice_str("a"), q_buf_slice(&ctx), q_slice_str("two"), NULL, NULL));
	expect_value(c, "a", "two", NULL);
	/* a stale context makes a sibling */
	ASSERT_OK(qc_put(c, q_slice_str("a"), q_buf_slice(&ctx), q_slice_str("three"), NULL,
			 NULL));
	ASSERT_OK(qc_get(c, q_slice_str("a"), NULL, &obj));
	ASSERT_EQ(qc_object_live(&obj), 2);
	/* delete with the merged context: not found, context kept */
	q_buf_reset(&ctx);
	ASSERT_OK(q_buf_append(&ctx, obj.context.p, obj.context.len));
	ASSERT_OK(qc_del(c, q_slice_str("a"), q_buf_slice(&ctx), NULL));
	ASSERT_EQ(qc_get(c, q_slice_str("a"), NULL, &obj), Q_ENOTFOUND);
	ASSERT(obj.context.len > 0);
	ASSERT_EQ(obj.nsib, 1);
	ASSERT_EQ(obj.sib[0].deleted, 1);
	/* errors */
	ASSERT_EQ(qc_put(c, q_slice_str("a"), q_slice_str("junk"), q_slice_str("x"), NULL, NULL),
		  Q_EBADCTX);
	ASSERT_EQ(qc_put(c, q_slice_make(NULL, 0), q_slice_make(NULL, 0), q_slice_str("x"), NULL,
			 NULL),
		  -EINVAL);
	static char bigkey[5000];
	memset(bigkey, 'k', sizeof(bigkey));
	ASSERT_EQ(qc_put(c, q_slice_make(bigkey, sizeof(bigkey)), q_slice_make(NULL, 0),
			 q_slice_str("x"), NULL, NULL),
		  Q_ETOOBIG);
	/* mget */
	ASSERT_OK(qc_put(c, q_slice_str("b"), q_slice_make(NULL, 0), q_slice_str("bee"), NULL,
			 NULL));
	q_slice keys[3] = {q_slice_str("a"), q_slice_str("b"), q_slice_str("zz")};
	qc_object outs[3];
	int rcs[3];
	for (int i = 0; i < 3; i++)
		qc_object_init(&outs[i]);
	ASSERT_OK(qc_mget(c, keys, 3, NULL, outs, rcs));
	ASSERT_EQ(rcs[0], Q_ENOTFOUND);
	ASSERT_EQ(rcs[1], 0);
	ASSERT_EQ(rcs[2], Q_ENOTFOUND);
	ASSERT_MEMEQ(outs[1].sib[0].value.p, "bee", 3);
	for (int i = 0; i < 3; i++)
		qc_object_free(&outs[i]);
	qc_object_free(&obj);
	q_buf_free(&ctx);
	ASSERT_OK(q_node_stop(n));
}

QTEST(restart_keeps_data_and_id)
{
	int port = qtest_free_port();
	q_node *n = start_node("keep", port, NULL, NULL);
	qc_client *c = q_node_client(n);
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		ASSERT_OK(qc_put(c, q_slice_str(k), q_slice_make(NULL, 0), q_slice_str(k), NULL,
				 NULL));
	}
	ASSERT_OK(q_node_stop(n));
	n = start_node("keep", port, NULL, NULL);
	c = q_node_client(n);
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		expect_value(c, k, k, NULL);
	}
	ASSERT_OK(q_node_stop(n));
}

QTEST(three_nodes_replicate_and_report_quorum)
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	q_node *n[3];
	n[0] = start_node("a", p[0], peers, NULL);
	n[1] = start_node("b", p[1], peers, NULL);
	n[2] = start_node("c", p[2], peers, NULL);
	qc_client *ca = q_node_client(n[0]), *cb = q_node_client(n[1]);
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "r%d", i);
		ASSERT_OK(qc_put(ca, q_slice_str(k), q_slice_make(NULL, 0), q_slice_str(k), NULL,
				 NULL));
	}
	/* a put that asks for the stored object gets it, context included */
	qc_object po;
	qc_object_init(&po);
	ASSERT_OK(qc_put(ca, q_slice_str("with-out"), q_slice_make(NULL, 0), q_slice_str("v"), NULL,
			 &po));
	ASSERT_EQ(po.nsib, 1);
	ASSERT_STREQ(po.sib[0].node, "a");
	ASSERT(po.context.len > 0);
	qc_object_free(&po);
	qc_opts all = {.r = 3};
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "r%d", i);
		expect_value(cb, k, k, &all);
	}
	/* the network client sees the same */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p[2]);
	qc_client *net = NULL;
	ASSERT_OK(qc_net_new(addr, 2000, &net));
	expect_value(net, "r3", "r3", NULL);
	q_buf st = Q_BUF_INIT;
	ASSERT_OK(qc_net_status(net, &st));
	ASSERT(memmem(st.p, st.len, "\"node_id\":\"c\"", 13));
	q_buf_free(&st);
	qc_close(net);
	/* one node down: W=3 fails within the timeout, W=2 and R=2 work */
	ASSERT_OK(q_node_stop(n[2]));
	qc_opts w3 = {.w = 3};
	int rc = qc_put(ca, q_slice_str("x"), q_slice_make(NULL, 0), q_slice_str("x"), &w3, NULL);
	ASSERT(rc == Q_EQUORUM || rc == Q_ETIMEOUT);
	qc_opts w2 = {.w = 2};
	ASSERT_OK(qc_put(ca, q_slice_str("y"), q_slice_make(NULL, 0), q_slice_str("y"), &w2, NULL));
	qc_opts r2 = {.r = 2};
	expect_value(cb, "y", "y", &r2);
	qc_object obj;
	qc_object_init(&obj);
	rc = qc_get(cb, q_slice_str("y"), &all, &obj);
	ASSERT(rc == Q_EQUORUM || rc == Q_ETIMEOUT);
	qc_object_free(&obj);
	ASSERT_OK(q_node_stop(n[1]));
	ASSERT_OK(q_node_stop(n[0]));
}

static void check_mget(qc_client *c, int nkeys, const qc_opts *o, int expect_rc_missing)
{
	enum { MAXK = 64 };
	q_slice keys[MAXK];
	char names[MAXK][16];
	qc_object outs[MAXK];
	int rcs[MAXK];
	for (int i = 0; i < nkeys; i++) {
		/* every third key was never written */
		snprintf(names[i], sizeof(names[i]), i % 3 == 2 ? "none%d" : "m%d", i);
		keys[i] = q_slice_str(names[i]);
		qc_object_init(&outs[i]);
	}
	ASSERT_OK(qc_mget(c, keys, (size_t)nkeys, o, outs, rcs));
	for (int i = 0; i < nkeys; i++) {
		if (i % 3 == 2) {
			ASSERT_EQ(rcs[i], expect_rc_missing);
			continue;
		}
		ASSERT_EQ(rcs[i], 0);
		ASSERT_EQ(qc_object_live(&outs[i]), 1);
		ASSERT_EQ(outs[i].sib[0].value.n, strlen(names[i]));
		ASSERT_MEMEQ(outs[i].sib[0].value.p, names[i], strlen(names[i]));
	}
	for (int i = 0; i < nkeys; i++)
		qc_object_free(&outs[i]);
}

QTEST(three_nodes_mget)
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	q_node *n[3];
	n[0] = start_node("a", p[0], peers, NULL);
	n[1] = start_node("b", p[1], peers, NULL);
	n[2] = start_node("c", p[2], peers, NULL);
	qc_client *ca = q_node_client(n[0]), *cb = q_node_client(n[1]);
	for (int i = 0; i < 60; i++) {
		if (i % 3 == 2)
			continue;
		char k[16];
		snprintf(k, sizeof(k), "m%d", i);
		qc_opts all = {.w = 3};
		ASSERT_OK(qc_put(ca, q_slice_str(k), q_slice_make(NULL, 0), q_slice_str(k), &all,
				 NULL));
	}
	qc_opts r3 = {.r = 3};
	check_mget(cb, 60, &r3, Q_ENOTFOUND);
	/* over the network (KV_MGET) the same */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p[2]);
	qc_client *net = NULL;
	ASSERT_OK(qc_net_new(addr, 2000, &net));
	check_mget(net, 60, &r3, Q_ENOTFOUND);
	qc_close(net);
	/* empty and oversized keys are per-key errors */
	static char big[5000];
	memset(big, 'b', sizeof(big));
	q_slice odd[2] = {q_slice_make(NULL, 0), q_slice_make(big, sizeof(big))};
	qc_object o2[2];
	int rc2[2];
	qc_object_init(&o2[0]);
	qc_object_init(&o2[1]);
	ASSERT_OK(qc_mget(cb, odd, 2, NULL, o2, rc2));
	ASSERT_EQ(rc2[0], -EINVAL);
	ASSERT_EQ(rc2[1], Q_ETOOBIG);
	/* one node down: R=2 still answers, R=3 cannot */
	ASSERT_OK(q_node_stop(n[2]));
	qc_opts r2 = {.r = 2};
	check_mget(cb, 30, &r2, Q_ENOTFOUND);
	q_slice k1 = q_slice_str("m0");
	qc_object o1;
	int rc1;
	qc_object_init(&o1);
	ASSERT_OK(qc_mget(ca, &k1, 1, &r3, &o1, &rc1));
	ASSERT(rc1 == Q_EQUORUM || rc1 == Q_ETIMEOUT);
	qc_object_free(&o1);
	ASSERT_OK(q_node_stop(n[1]));
	ASSERT_OK(q_node_stop(n[0]));
}

QTEST(mget_read_repair)
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	q_node *n[3];
	n[0] = start_node("a", p[0], peers, NULL);
	n[1] = start_node("b", p[1], peers, NULL);
	n[2] = start_node("c", p[2], peers, NULL);
	ASSERT_OK(q_node_stop(n[2]));
	qc_client *ca = q_node_client(n[0]);
	q_slice keys[10];
	char names[10][8];
	for (int i = 0; i < 10; i++) {
		snprintf(names[i], sizeof(names[i]), "rr%d", i);
		keys[i] = q_slice_str(names[i]);
		ASSERT_OK(qc_put(ca, keys[i], q_slice_make(NULL, 0), keys[i], NULL, NULL));
	}
	n[2] = start_node("c", p[2], peers, NULL);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p[2]);
	qc_client *net = NULL;
	ASSERT_OK(qc_net_new(addr, 2000, &net));
	qc_object o;
	qc_object_init(&o);
	ASSERT_EQ(qc_net_replica_get(net, keys[0], &o), Q_ENOTFOUND);
	/* a multi-key read through a repairs c for every key */
	qc_object outs[10];
	int rcs[10];
	for (int i = 0; i < 10; i++)
		qc_object_init(&outs[i]);
	ASSERT_OK(qc_mget(ca, keys, 10, NULL, outs, rcs));
	for (int i = 0; i < 10; i++) {
		ASSERT_EQ(rcs[i], 0);
		qc_object_free(&outs[i]);
	}
	for (int i = 0; i < 10; i++) {
		int rc = Q_ENOTFOUND;
		for (int tries = 0; tries < 500 && rc != 0; tries++) {
			rc = qc_net_replica_get(net, keys[i], &o);
			if (rc)
				usleep(10000);
		}
		ASSERT_OK(rc);
		ASSERT_MEMEQ(o.sib[0].value.p, names[i], strlen(names[i]));
	}
	qc_object_free(&o);
	qc_close(net);
	for (int i = 2; i >= 0; i--)
		ASSERT_OK(q_node_stop(n[i]));
}

QTEST(corrupt_replica_is_repaired_by_a_read)
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	q_node *n[3];
	n[0] = start_node("a", p[0], peers, NULL);
	n[1] = start_node("b", p[1], peers, NULL);
	n[2] = start_node("c", p[2], peers, NULL);
	qc_client *ca = q_node_client(n[0]);
	qc_opts w3 = {.w = 3};
	ASSERT_OK(qc_put(ca, q_slice_str("victim"), q_slice_make(NULL, 0), q_slice_str("good"), &w3,
			 NULL));
	/* damage c's copy behind its back: a value that is no sibling set */
	ASSERT_OK(q_node_stop(n[2]));
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/c/db", qtest_tmpdir);
	lsm_options lo;
	lsm_options_default(&lo);
	lsm_db *db = NULL;
	ASSERT_OK(lsm_open(dir, &lo, &db));
	uint8_t lk[7] = {LSM_KS_DATA, 'v', 'i', 'c', 't', 'i', 'm'};
	ASSERT_OK(lsm_put(db, q_slice_make(lk, sizeof(lk)), q_slice_str("garbage")));
	ASSERT_OK(lsm_close(db));
	n[2] = start_node("c", p[2], peers, NULL);
	/* R=3 cannot count the corrupt copy; R=2 reads and repairs it */
	qc_object o;
	qc_object_init(&o);
	qc_opts r3 = {.r = 3};
	ASSERT_EQ(qc_get(q_node_client(n[1]), q_slice_str("victim"), &r3, &o), Q_EQUORUM);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p[2]);
	qc_client *net = NULL;
	ASSERT_OK(qc_net_new(addr, 2000, &net));
	int rc = -1;
	for (int tries = 0; tries < 500 && rc != 0; tries++) {
		rc = qc_net_replica_get(net, q_slice_str("victim"), &o);
		if (rc)
			usleep(10000);
	}
	ASSERT_OK(rc);
	ASSERT_EQ(o.sib[0].value.n, 4);
	ASSERT_MEMEQ(o.sib[0].value.p, "good", 4);
	qc_object_free(&o);
	qc_close(net);
	for (int i = 2; i >= 0; i--)
		ASSERT_OK(q_node_stop(n[i]));
}

/* Reads from fallbacks: four nodes, N=3; two nodes stopped. Every key
 * still reads with R=2, single-key (the first requests find the stopped
 * nodes unreachable and ask fallbacks instead) and multi-key (the stopped
 * nodes are known down by then). Keys whose primaries include both stopped
 * nodes have one primary left and could not reach R=2 otherwise. */
QTEST(four_nodes_read_from_fallbacks)
{
	enum { NK = 40 };
	int p[4] = {qtest_free_port(), qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d,d@127.0.0.1:%d",
		 p[0], p[1], p[2], p[3]);
	q_node *n[4];
	n[0] = start_node("a", p[0], peers, NULL);
	n[1] = start_node("b", p[1], peers, NULL);
	n[2] = start_node("c", p[2], peers, NULL);
	n[3] = start_node("d", p[3], peers, NULL);
	qc_client *ca = q_node_client(n[0]);
	char names[NK][16];
	q_slice keys[NK];
	qc_opts w3 = {.w = 3};
	for (int i = 0; i < NK; i++) {
		snprintf(names[i], sizeof(names[i]), "fb%d", i);
		keys[i] = q_slice_str(names[i]);
		ASSERT_OK(qc_put(ca, keys[i], q_slice_make(NULL, 0), keys[i], &w3, NULL));
	}
	/* some keys have both c and d among their three primaries */
	ring *rg = NULL;
	ASSERT_OK(coord_ring_snapshot(q_node_coord(n[0]), &rg));
	int both = 0;
	for (int i = 0; i < NK; i++) {
		const char *ids[4];
		size_t nprim = 0;
		size_t got = ring_preflist_key(rg, keys[i].p, keys[i].n, 3, ids, 4, &nprim);
		int cd = 0;
		for (size_t j = 0; j < got && j < nprim; j++)
			cd += !strcmp(ids[j], "c") || !strcmp(ids[j], "d");
		both += cd == 2;
	}
	ring_free(rg);
	ASSERT(both > 0);
	ASSERT_OK(q_node_stop(n[3]));
	ASSERT_OK(q_node_stop(n[2]));
	qc_opts r2 = {.r = 2};
	for (int i = 0; i < NK; i++)
		expect_value(ca, names[i], names[i], &r2);
	qc_object outs[NK];
	int rcs[NK];
	for (int i = 0; i < NK; i++)
		qc_object_init(&outs[i]);
	ASSERT_OK(qc_mget(ca, keys, NK, &r2, outs, rcs));
	for (int i = 0; i < NK; i++) {
		ASSERT_EQ(rcs[i], 0);
		ASSERT_EQ(qc_object_live(&outs[i]), 1);
		ASSERT_MEMEQ(outs[i].sib[0].value.p, names[i], strlen(names[i]));
		qc_object_free(&outs[i]);
	}
	/* R=3 cannot be met with two of four nodes: an error, not a hang */
	qc_opts r3 = {.r = 3};
	qc_object o;
	qc_object_init(&o);
	int rc = qc_get(ca, keys[0], &r3, &o);
	ASSERT(rc == Q_EQUORUM || rc == Q_ETIMEOUT);
	qc_object_free(&o);
	ASSERT_OK(q_node_stop(n[1]));
	ASSERT_OK(q_node_stop(n[0]));
}

/* The nice value, scheduling policy and name of thread tid of this process
 * (from /proc/self/task/TID/stat: the name in parentheses, then field 19 is
 * the nice value and field 41 the policy). 0, or -1 if the thread is gone. */
static int thread_sched(const char *tid, int *nice, int *policy, char *name, size_t cap)
{
	char path[128], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	if (!open || !close || close < open)
		return -1;
	snprintf(name, cap, "%.*s", (int)(close - open - 1), open + 1);
	char *save = NULL, *tok = strtok_r(close + 1, " ", &save);
	for (int field = 3; tok; field++, tok = strtok_r(NULL, " ", &save)) {
		if (field == 19)
			*nice = atoi(tok);
		if (field == 41) {
			*policy = atoi(tok);
			return 0;
		}
	}
	return -1;
}

/* The engine's flush and compaction threads run 10 nice levels below the
 * starting thread (at most 19) with SCHED_BATCH; every other thread of the
 * node (the event loop, the disk workers) keeps the starting thread's
 * priority. */
QTEST(background_threads_run_at_lower_priority)
{
	char self[32], name0[64];
	snprintf(self, sizeof(self), "%d", (int)gettid());
	int own_nice = 0, own_policy = 0;
	ASSERT_OK(thread_sched(self, &own_nice, &own_policy, name0, sizeof(name0)));
	if (own_policy != SCHED_OTHER || own_nice >= 19) {
		fprintf(stderr, "skipped: the test runs with policy %d nice %d\n", own_policy,
			own_nice);
		return;
	}
	int bg_nice = own_nice + 10 > 19 ? 19 : own_nice + 10;
	q_node *n = start_node("a", qtest_free_port(), NULL, NULL);
	qc_client *c = q_node_client(n);
	/* a write and a read (served on this thread: a node alone) */
	ASSERT_OK(qc_put(c, q_slice_str("k"), q_slice_make(NULL, 0), q_slice_str("v"), NULL,
			 NULL));
	expect_value(c, "k", "v", NULL);
	DIR *d = opendir("/proc/self/task");
	ASSERT(d != NULL);
	int background = 0, normal = 0, loop = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int nice = -100, policy = -1;
		char name[64];
		if (thread_sched(e->d_name, &nice, &policy, name, sizeof(name)) < 0)
			continue;
		if (policy == SCHED_BATCH) {
			ASSERT_EQ(nice, bg_nice);
			background++;
			ASSERT(strcmp(e->d_name, self) != 0);
			ASSERT(strcmp(name, "quorumd-loop") != 0);
		} else {
			ASSERT_EQ(nice, own_nice);
			ASSERT_EQ(policy, SCHED_OTHER);
			normal++;
			if (!strcmp(name, "quorumd-loop"))
				loop++;
		}
	}
	closedir(d);
	ASSERT(background >= 2); /* flush and compaction */
	ASSERT(loop >= 1);       /* the event loop */
	ASSERT(normal >= 3);
	ASSERT_OK(q_node_stop(n));
}

/* Sorts siblings by (node, counter) for a run-independent summary. */
static int sib_cmp(const void *a, const void *b)
{
	const qc_sibling *x = a, *y = b;
	int c = strcmp(x->node, y->node);
	if (c)
		return c;
	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* Every key's siblings (node, counter, value, tombstone; not the wall
 * clock) as read with R=3 through c, appended to out. */
static void summarize(qc_client *c, int nkeys, q_buf *out)
{
	qc_opts all = {.r = 3};
	for (int i = 0; i < nkeys; i++) {
		char k[16];
		snprintf(k, sizeof(k), "w%d", i);
		qc_object o;
		qc_object_init(&o);
		int rc = qc_get(c, q_slice_str(k), &all, &o);
		ASSERT(rc == 0 || rc == Q_ENOTFOUND);
		qsort(o.sib, o.nsib, sizeof(qc_sibling), sib_cmp);
		ASSERT_OK(q_buf_printf(out, "%s rc=%d:", k, rc));
		for (size_t j = 0; j < o.nsib; j++)
			ASSERT_OK(q_buf_printf(out, " %s/%llu/%.*s/%d", o.sib[j].node,
					       (unsigned long long)o.sib[j].counter,
					       (int)o.sib[j].value.n, (const char *)o.sib[j].value.p,
					       o.sib[j].deleted));
		ASSERT_OK(q_buf_append_byte(out, '\n'));
		qc_object_free(&o);
	}
}

static void node_jobs(q_node *const *n, uint64_t *loop, uint64_t *worker)
{
	*loop = *worker = 0;
	for (int i = 0; i < 3; i++) {
		coord_stats st;
		coord_get_stats(q_node_coord(n[i]), &st);
		*loop += st.jobs_loop;
		*worker += st.jobs_worker;
	}
}

/*
 * One deterministic workload on three nodes with the given io mode and
 * sync policy: puts through every node (W=3, so every replica holds every
 * acknowledged write before the next one), every third with the context
 * of a read (a replace), the others blind (siblings), some deletes, then
 * the summary; then all nodes restart (the keys are now in tables whose
 * blocks are not cached) and the summary is taken again, and must match.
 * jobs[0..1] = loop / worker jobs before the restart, jobs[2..3] after.
 */
static void run_workload(const char *io, const char *sync, q_buf *summary, uint64_t jobs[4])
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256], extra[64];
	const char *ids[3] = {"a", "b", "c"};
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	snprintf(extra, sizeof(extra), "\nio = %s", io);
	q_node *n[3];
	for (int i = 0; i < 3; i++)
		n[i] = start_node_sync(ids[i], p[i], peers, extra, sync);
	qc_opts w3 = {.w = 3}, r2 = {.r = 2};
	for (int i = 0; i < 90; i++) {
		char k[16], v[16];
		snprintf(k, sizeof(k), "w%d", i % 20);
		snprintf(v, sizeof(v), "v%d", i);
		qc_client *c = q_node_client(n[i % 3]);
		qc_object o;
		qc_object_init(&o);
		q_slice ctx = q_slice_make(NULL, 0);
		if (i % 3 == 0) {
			int rc = qc_get(c, q_slice_str(k), &r2, &o);
			ASSERT(rc == 0 || rc == Q_ENOTFOUND);
			ctx = q_slice_make(o.context.p, o.context.len);
		}
		if (i % 17 == 5)
			ASSERT_OK(qc_del(c, q_slice_str(k), ctx, &w3));
		else
			ASSERT_OK(qc_put(c, q_slice_str(k), ctx, q_slice_str(v), &w3, NULL));
		qc_object_free(&o);
	}
	/* a value kept apart from the tables (a blob file) once flushed */
	static char big[70000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 23);
	ASSERT_OK(qc_put(q_node_client(n[0]), q_slice_str("big"), q_slice_make(NULL, 0),
			 q_slice_make(big, sizeof(big)), &w3, NULL));
	q_buf first = Q_BUF_INIT;
	summarize(q_node_client(n[1]), 20, &first);
	node_jobs(n, &jobs[0], &jobs[1]);
	for (int i = 2; i >= 0; i--)
		ASSERT_OK(q_node_stop(n[i]));
	for (int i = 0; i < 3; i++)
		n[i] = start_node_sync(ids[i], p[i], peers, extra, sync);
	q_buf_reset(summary);
	summarize(q_node_client(n[2]), 20, summary);
	qc_object o;
	qc_object_init(&o);
	ASSERT_OK(qc_get(q_node_client(n[2]), q_slice_str("big"), &r2, &o));
	ASSERT_EQ(o.nsib, 1);
	ASSERT_EQ(o.sib[0].value.n, sizeof(big));
	ASSERT_MEMEQ(o.sib[0].value.p, big, sizeof(big));
	qc_object_free(&o);
	ASSERT_EQ(summary->len, first.len);
	ASSERT_MEMEQ(summary->p, first.p, first.len);
	node_jobs(n, &jobs[2], &jobs[3]);
	for (int i = 2; i >= 0; i--)
		ASSERT_OK(q_node_stop(n[i]));
	q_buf_free(&first);
	/* the next run starts from empty stores with the same node ids */
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/a' '%s/b' '%s/c'", qtest_tmpdir, qtest_tmpdir,
		 qtest_tmpdir);
	ASSERT_EQ(system(cmd), 0);
}

/*
 * io = auto does the replica work the engine can do from memory on the
 * loop thread and hands the rest to the workers; the stored objects are
 * the same as with io = worker (every job on a worker). Reads of a value
 * kept in a blob file (after a restart), and every write under sync =
 * always (each waits for an fsync), take the worker path and complete
 * there.
 */
QTEST(io_auto_serves_from_memory_and_stores_what_workers_store)
{
	q_buf sw = Q_BUF_INIT, sa = Q_BUF_INIT, ss = Q_BUF_INIT;
	uint64_t jw[4], ja[4], js[4];
	run_workload("worker", "none", &sw, jw);
	run_workload("auto", "none", &sa, ja);
	run_workload("auto", "always", &ss, js);
	ASSERT(memmem(sw.p, sw.len, "w3 rc=0: ", 9) != NULL); /* (not NUL-terminated) */
	ASSERT_EQ(sa.len, sw.len);
	ASSERT_MEMEQ(sa.p, sw.p, sw.len);
	ASSERT_EQ(ss.len, sw.len);
	ASSERT_MEMEQ(ss.p, sw.p, sw.len);
	/* io = worker: nothing on the loop */
	ASSERT_U64_EQ(jw[0], 0);
	ASSERT(jw[1] > 0);
	/* io = auto, sync = none: from memory while the memtables hold
	 * everything (but the large value's write: its log record is written
	 * out at once); the reads of the large value, kept in a blob file
	 * after the restart, fall back */
	ASSERT(ja[0] > 0);
	ASSERT(ja[3] > 0);
	/* sync = always: reads on the loop, every write on a worker */
	ASSERT(js[0] > 0);
	ASSERT(js[1] >= 90);
	q_buf_free(&sw);
	q_buf_free(&sa);
	q_buf_free(&ss);
}

/*
 * io = auto leaves large writes to the workers without trying them on the
 * loop (the engine's log buffer would refuse their record after the loop
 * had decoded, merged and encoded them): a put of 20 KiB through one node
 * with W=3 is a worker job on each of the three nodes, while small puts
 * are done on the loops.
 */
QTEST(io_auto_leaves_large_writes_to_the_workers)
{
	int p[3] = {qtest_free_port(), qtest_free_port(), qtest_free_port()};
	char peers[256];
	const char *ids[3] = {"a", "b", "c"};
	snprintf(peers, sizeof(peers), "a@127.0.0.1:%d,b@127.0.0.1:%d,c@127.0.0.1:%d", p[0], p[1],
		 p[2]);
	q_node *n[3];
	for (int i = 0; i < 3; i++)
		n[i] = start_node_sync(ids[i], p[i], peers, "\nio = auto", "none");
	qc_opts w3 = {.w = 3};
	uint64_t l0, w0, l1, w1, l2, w2;
	node_jobs(n, &l0, &w0);
	ASSERT_OK(qc_put(q_node_client(n[0]), q_slice_str("small"), q_slice_make(NULL, 0),
			 q_slice_str("v"), &w3, NULL));
	node_jobs(n, &l1, &w1);
	ASSERT(l1 - l0 >= 3); /* the coordinator's write and two replicas' */
	static char big[20 << 10];
	memset(big, 'b', sizeof(big));
	ASSERT_OK(qc_put(q_node_client(n[0]), q_slice_str("large"), q_slice_make(NULL, 0),
			 q_slice_make(big, sizeof(big)), &w3, NULL));
	node_jobs(n, &l2, &w2);
	ASSERT(w2 - w1 >= 3);
	qc_object o;
	qc_object_init(&o);
	qc_opts r3 = {.r = 3};
	ASSERT_OK(qc_get(q_node_client(n[1]), q_slice_str("large"), &r3, &o));
	ASSERT_EQ(o.nsib, 1);
	ASSERT_EQ(o.sib[0].value.n, sizeof(big));
	qc_object_free(&o);
	for (int i = 2; i >= 0; i--)
		ASSERT_OK(q_node_stop(n[i]));
}

QTEST_MAIN(QT(background_threads_run_at_lower_priority),
	   QT(corrupt_replica_is_repaired_by_a_read), QT(single_node_inproc), QT(restart_keeps_data_and_id),
	   QT(three_nodes_replicate_and_report_quorum), QT(three_nodes_mget),
	   QT(mget_read_repair), QT(four_nodes_read_from_fallbacks),
	   QT(io_auto_serves_from_memory_and_stores_what_workers_store),
	   QT(io_auto_leaves_large_writes_to_the_workers))
