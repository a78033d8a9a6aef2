/*
 * test_net_transport.c - the libuv transport over real loopback TCP: server,
 * connection pool, blocking client, timeouts, bad input, backpressure.
 *
 * Each test starts its own loop thread and a server on 127.0.0.1 with an
 * ephemeral port. The test thread talks to the loop only through
 * net_loop_call / net_pool_call, as other threads of a node do. Waits are
 * bounded (wait_until) so a broken build fails instead of hanging.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "net/net_frame.h"
#include "net/net_loop.h"
#include "net/net_pool.h"
#include "net/net_server.h"
#include "net/net_sync.h"
#include "qtest.h"
#include "util/coding.h"
#include "util/qerr.h"
#include "util/qtime.h"

enum mode { M_ECHO, M_HOLD };

#define MAX_HELD 64

typedef struct tctx {
	net_loop *loop;
	net_server *srv;
	net_pool *pool;
	char addr[NET_ADDR_STRLEN];
	enum mode mode;
	net_server_opts sopts;
	net_pool_opts popts;
	/* loop-thread state */
	net_request *held[MAX_HELD];
	size_t nheld;
	_Atomic int hellos;
	_Atomic int handled;
	net_server_stats sst;
	net_pool_stats pst;
} tctx;

/* Replies to a request as the echo server: KV_GET -> object = key,
 * KV_PUT -> object = value, PING -> PONG, HELLO -> HELLO_OK, KV_MGET ->
 * one entry per key with object = key. */
static void echo_reply(tctx *t, net_request *req)
{
	net_msg r;
	net_msg_init(&r, net_msg_resp_type(req->type));
	net_mget_entry *ents = NULL;
	switch (req->type) {
	case NET_MSG_HELLO:
		t->hellos++;
		r.u.hello_ok.node_id = q_slice_str("srv");
		r.u.hello_ok.proto_version = NET_PROTO_VERSION;
		break;
	case NET_MSG_PING:
		r.u.ping.nonce = req->msg.u.ping.nonce;
		break;
	case NET_MSG_KV_GET:
		if (req->msg.u.kv_get.key.n == 8 && !memcmp(req->msg.u.kv_get.key.p, "notfound", 8)) {
			net_reply_error(req, Q_ENOTFOUND, "no such key");
			return;
		}
		r.u.obj_resp.object = req->msg.u.kv_get.key;
		break;
	case NET_MSG_KV_PUT:
		r.u.obj_resp.object = req->msg.u.kv_put.value;
		break;
	case NET_MSG_KV_MGET:
		ents = calloc(req->msg.u.mget.nkeys, sizeof *ents);
		for (size_t i = 0; i < req->msg.u.mget.nkeys; i++)
			ents[i].object = req->msg.u.mget.keys[i];
		r.u.mget_resp.n = req->msg.u.mget.nkeys;
		r.u.mget_resp.entries = ents;
		break;
	default:
		net_reply_error(req, Q_EPROTO, "test server: unsupported");
		return;
	}
	net_reply_send(req, &r);
	free(ents);
}

static void handler(void *ctx, net_request *req)
{
	tctx *t = ctx;
	t->handled++;
	if (t->mode == M_HOLD && req->type != NET_MSG_HELLO) {
		if (t->nheld < MAX_HELD) {
			t->held[t->nheld++] = req;
			return;
		}
		net_reply_drop(req);
		return;
	}
	echo_reply(t, req);
}

static void start_on_loop(void *arg)
{
	tctx *t = arg;
	t->sopts.handler = handler;
	t->sopts.ctx = t;
	ASSERT_OK(net_server_start(t->loop, &t->sopts, &t->srv));
	snprintf(t->addr, sizeof t->addr, "%s", net_server_addr(t->srv));
	ASSERT_OK(net_pool_new(t->loop, &t->popts, &t->pool));
}

static void stop_on_loop(void *arg)
{
	tctx *t = arg;
	for (size_t i = 0; i < t->nheld; i++)
		net_reply_drop(t->held[i]);
	t->nheld = 0;
	net_pool_close(t->pool);
	net_server_close(t->srv);
}

static void stats_on_loop(void *arg)
{
	tctx *t = arg;
	net_server_get_stats(t->srv, &t->sst);
	net_pool_get_stats(t->pool, &t->pst);
}

static void tstart(tctx *t, enum mode m)
{
	t->mode = m;
	ASSERT_OK(net_loop_start(0, "test-loop", &t->loop));
	ASSERT_OK(net_loop_call(t->loop, start_on_loop, t));
	ASSERT(strncmp(t->addr, "127.0.0.1:", 10) == 0);
}

static void tstop(tctx *t)
{
	ASSERT_OK(net_loop_call(t->loop, stop_on_loop, t));
	net_loop_stop(t->loop);
}

static void tstats(tctx *t)
{
	ASSERT_OK(net_loop_call(t->loop, stats_on_loop, t));
}

static size_t nheld(tctx *t);

/* Polls cond up to ~10 s. */
#define wait_until(cond) do { \
	uint64_t wu_end_ = q_mono_ms() + 10000; \
	while (!(cond) && q_mono_ms() < wu_end_) \
		q_sleep_ms(5); \
	ASSERT(cond); \
} while (0)

static void held_count_on_loop(void *arg)
{
	tctx *t = arg;
	t->sst.requests = t->nheld; /* reuse a field as an out parameter */
}

static size_t nheld(tctx *t)
{
	ASSERT_OK(net_loop_call(t->loop, held_count_on_loop, t));
	return (size_t)t->sst.requests;
}

static void reply_held_on_loop(void *arg)
{
	tctx *t = arg;
	/* replying may let new requests in (and into held[]) at once */
	net_request *batch[MAX_HELD];
	size_t n = t->nheld;
	memcpy(batch, t->held, n * sizeof *batch);
	t->nheld = 0;
	for (size_t i = 0; i < n; i++)
		echo_reply(t, batch[i]);
}

/* ------------------------------------------------------------------------ */

static int kv_get(tctx *t, const char *key, uint64_t timeout_ms, q_buf *obj)
{
	net_msg m, r;
	q_buf rb = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_KV_GET);
	m.u.kv_get.key = q_slice_str(key);
	int rc = net_pool_call(t->loop, t->pool, t->addr, &m, timeout_ms, &r, &rb);
	if (rc == 0) {
		ASSERT_EQ(r.type, NET_MSG_KV_GET_RESP);
		if (obj) {
			q_buf_reset(obj);
			q_buf_append(obj, r.u.obj_resp.object.p, r.u.obj_resp.object.n);
		}
	} else if (r.type == NET_MSG_ERROR) {
		ASSERT_EQ(r.u.error.code, rc);
	}
	net_msg_clear(&r);
	q_buf_free(&rb);
	return rc;
}

QTEST(pool_request_response_and_reuse)
{
	tctx t = {0};
	tstart(&t, M_ECHO);
	q_buf obj = Q_BUF_INIT;
	for (int i = 0; i < 20; i++) {
		char key[32];
		snprintf(key, sizeof key, "key-%d", i);
		ASSERT_OK(kv_get(&t, key, 5000, &obj));
		ASSERT_EQ(obj.len, strlen(key));
		ASSERT_MEMEQ(obj.p, key, obj.len);
	}
	/* remote ERROR comes back as its code, with the text */
	ASSERT_EQ(kv_get(&t, "notfound", 5000, NULL), Q_ENOTFOUND);
	tstats(&t);
	ASSERT_EQ(t.pst.connects, 1);
	ASSERT_EQ(t.sst.accepted, 1);
	ASSERT_EQ(t.sst.requests, 21);
	q_buf_free(&obj);
	tstop(&t);
}

QTEST(pool_hello_first)
{
	tctx t = {0};
	t.popts.node_id = "n1";
	t.popts.listen_addr = "127.0.0.1:1";
	tstart(&t, M_ECHO);
	ASSERT_OK(kv_get(&t, "k", 5000, NULL));
	ASSERT_OK(kv_get(&t, "k2", 5000, NULL));
	ASSERT_EQ(t.hellos, 1);
	tstop(&t);
}

/* Many concurrent requests issued from the loop thread, answered in a
 * scrambled order; every callback runs exactly once with its own answer. */
#define NCONC 400
typedef struct conc {
	tctx *t;
	int calls[NCONC];
	int ok[NCONC];
	_Atomic int done;
	int refused;
} conc;

typedef struct conc_arg {
	conc *c;
	int i;
} conc_arg;

static conc_arg conc_args[NCONC];

static void conc_cb(void *arg, int status, const net_msg *resp)
{
	conc_arg *a = arg;
	a->c->calls[a->i]++;
	if (status == 0 && resp && resp->type == NET_MSG_KV_GET_RESP) {
		char key[32];
		snprintf(key, sizeof key, "c%d", a->i);
		if (resp->u.obj_resp.object.n == strlen(key) &&
		    !memcmp(resp->u.obj_resp.object.p, key, strlen(key)))
			a->c->ok[a->i] = 1;
	}
	a->c->done++;
}

static void conc_issue(void *arg)
{
	conc *c = arg;
	for (int i = 0; i < NCONC; i++) {
		char key[32];
		snprintf(key, sizeof key, "c%d", i);
		net_msg m;
		net_msg_init(&m, NET_MSG_KV_GET);
		m.u.kv_get.key = q_slice_str(key);
		conc_args[i] = (conc_arg){c, i};
		if (net_pool_request(c->t->pool, c->t->addr, &m, 10000, conc_cb, &conc_args[i]) != 0)
			c->refused++;
	}
}

QTEST(pool_many_concurrent)
{
	tctx t = {0};
	t.sopts.max_inflight = 1000;
	tstart(&t, M_ECHO);
	conc *c = calloc(1, sizeof *c);
	c->t = &t;
	ASSERT_OK(net_loop_call(t.loop, conc_issue, c));
	ASSERT_EQ(c->refused, 0);
	wait_until(c->done == NCONC);
	q_sleep_ms(50);
	for (int i = 0; i < NCONC; i++) {
		ASSERT_EQ(c->calls[i], 1);
		ASSERT_EQ(c->ok[i], 1);
	}
	tstats(&t);
	ASSERT_EQ(t.pst.connects, 1);
	ASSERT_EQ(t.pst.responses, NCONC);
	/* write coalescing: the requests were all queued in one loop callback
	 * and leave in one write; the replies to what one read brought in
	 * leave together too */
	ASSERT(t.pst.writes >= 1 && t.pst.writes <= 2);
	ASSERT(t.sst.writes >= 1 && t.sst.writes <= NCONC / 8);
	free(c);
	tstop(&t);
}

/* Several threads call through the pool at once (the mount daemon's case). */
static void *thread_calls(void *arg)
{
	tctx *t = arg;
	for (int i = 0; i < 50; i++) {
		char key[32];
		q_buf obj = Q_BUF_INIT;
		snprintf(key, sizeof key, "t%p-%d", (void *)&obj, i);
		if (kv_get(t, key, 10000, &obj) != 0 || obj.len != strlen(key) ||
		    memcmp(obj.p, key, obj.len))
			abort();
		q_buf_free(&obj);
	}
	return NULL;
}

QTEST(pool_call_from_threads)
{
	tctx t = {0};
	tstart(&t, M_ECHO);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		ASSERT_OK(pthread_create(&th[i], NULL, thread_calls, &t));
	for (int i = 0; i < 4; i++)
		ASSERT_OK(pthread_join(th[i], NULL));
	tstats(&t);
	ASSERT_EQ(t.pst.connects, 1);
	ASSERT_EQ(t.sst.requests, 200);
	tstop(&t);
}

/* A server that never answers: the request times out exactly once. */
typedef struct once {
	_Atomic int calls;
	_Atomic int status;
} once;

static void once_cb(void *arg, int status, const net_msg *resp)
{
	once *o = arg;
	(void)resp;
	o->status = status;
	o->calls++;
}

typedef struct req_arg {
	tctx *t;
	const char *addr;
	uint64_t timeout_ms;
	once *o;
	int rc;
	int nreq;
} req_arg;

static void issue_on_loop(void *arg)
{
	req_arg *a = arg;
	net_msg m;
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = 7;
	a->rc = 0;
	for (int i = 0; i < (a->nreq ? a->nreq : 1); i++) {
		int rc = net_pool_request(a->t->pool, a->addr ? a->addr : a->t->addr, &m, a->timeout_ms,
					  once_cb, &a->o[i]);
		if (rc) {
			a->rc = rc;
			return;
		}
	}
}

QTEST(pool_timeout_fires_once)
{
	tctx t = {0};
	tstart(&t, M_HOLD);
	once o = {0};
	req_arg a = {.t = &t, .timeout_ms = 200, .o = &o};
	uint64_t t0 = q_mono_ms();
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_OK(a.rc);
	wait_until(o.calls >= 1);
	ASSERT(q_mono_ms() - t0 >= 190);
	ASSERT_EQ(o.status, Q_ETIMEOUT);
	/* the late answer is ignored; the callback does not run again */
	wait_until(nheld(&t) == 1);
	ASSERT_OK(net_loop_call(t.loop, reply_held_on_loop, &t));
	q_sleep_ms(100);
	ASSERT_EQ(o.calls, 1);
	/* the connection is still good */
	t.mode = M_ECHO;
	ASSERT_OK(kv_get(&t, "after", 5000, NULL));
	tstats(&t);
	ASSERT_EQ(t.pst.timeouts, 1);
	ASSERT_EQ(t.pst.connects, 1);
	tstop(&t);
}

QTEST(pool_connect_refused_and_reconnect)
{
	tctx t = {0};
	tstart(&t, M_ECHO);
	/* find a port nobody listens on: bind, read it, close */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
	socklen_t sl = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	char dead[64];
	snprintf(dead, sizeof dead, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	close(fd);
	once o = {0};
	req_arg a = {.t = &t, .addr = dead, .timeout_ms = 3000, .o = &o};
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_OK(a.rc);
	wait_until(o.calls == 1);
	ASSERT_EQ(o.status, -ECONNREFUSED);
	/* bad address refused at once */
	a.addr = "nonsense";
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_EQ(a.rc, -EINVAL);
	tstop(&t);
}

QTEST(pool_reconnects_after_server_closes)
{
	tctx t = {0};
	t.sopts.idle_timeout_ms = 100;
	tstart(&t, M_ECHO);
	ASSERT_OK(kv_get(&t, "a", 5000, NULL));
	/* the server closes the idle connection; the pool notices and the
	 * next request opens a new one */
	wait_until((tstats(&t), t.sst.closed == 1));
	ASSERT_OK(kv_get(&t, "b", 5000, NULL));
	tstats(&t);
	ASSERT_EQ(t.pst.connects, 2);
	tstop(&t);
}

QTEST(pool_backpressure_busy)
{
	tctx t = {0};
	t.popts.max_inflight = 4;
	tstart(&t, M_HOLD);
	once o[8] = {0};
	req_arg a = {.t = &t, .timeout_ms = 5000, .o = o, .nreq = 4};
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_OK(a.rc);
	a.nreq = 1;
	a.o = &o[4];
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_EQ(a.rc, Q_EBUSY);
	wait_until(nheld(&t) == 4);
	ASSERT_OK(net_loop_call(t.loop, reply_held_on_loop, &t));
	wait_until(o[0].calls + o[1].calls + o[2].calls + o[3].calls == 4);
	for (int i = 0; i < 4; i++)
		ASSERT_OK(o[i].status);
	ASSERT_EQ(o[4].calls, 0);
	/* room again */
	ASSERT_OK(net_loop_call(t.loop, issue_on_loop, &a));
	ASSERT_OK(a.rc);
	tstats(&t);
	ASSERT_EQ(t.pst.refused_busy, 1);
	tstop(&t);
	ASSERT_EQ(o[4].calls, 1); /* failed with Q_ECLOSED at pool close */
	ASSERT_EQ(o[4].status, Q_ECLOSED);
}

typedef struct wq_ctx {
	tctx *t;
	int n; /* requests to issue: 2 large ones, then (n = 3) a small one */
	int rc[3];
	once o[3];
} wq_ctx;

/* A large request, a second one over the bound, and, if w->n is 3, a small
 * one. */
static void wq_issue(void *arg)
{
	wq_ctx *w = arg;
	static char val[800];
	memset(val, 'v', sizeof val);
	net_msg m;
	net_msg_init(&m, NET_MSG_KV_PUT);
	m.u.kv_put.key = q_slice_str("k");
	m.u.kv_put.value = q_slice_make(val, sizeof val);
	w->rc[0] = net_pool_request(w->t->pool, w->t->addr, &m, 5000, once_cb, &w->o[0]);
	w->rc[1] = net_pool_request(w->t->pool, w->t->addr, &m, 5000, once_cb, &w->o[1]);
	if (w->n < 3)
		return;
	m.u.kv_put.key = q_slice_str("small");
	m.u.kv_put.value = q_slice_make(val, 10);
	w->rc[2] = net_pool_request(w->t->pool, w->t->addr, &m, 5000, once_cb, &w->o[2]);
}

QTEST(pool_write_queue_bound)
{
	tctx t = {0};
	t.popts.max_wq_bytes = 1024;
	tstart(&t, M_ECHO);
	/* before the connection is up, everything is queued: a second large
	 * request exceeds the write-queue bound */
	wq_ctx *w = calloc(1, sizeof *w);
	w->t = &t;
	w->n = 2;
	ASSERT_OK(net_loop_call(t.loop, wq_issue, w));
	ASSERT_OK(w->rc[0]);
	ASSERT_EQ(w->rc[1], Q_EBUSY);
	wait_until(w->o[0].calls == 1);
	ASSERT_OK(w->o[0].status);
	ASSERT_EQ(w->o[1].calls, 0);
	free(w);
	tstop(&t);
}

QTEST(pool_write_queue_bound_ready)
{
	tctx t = {0};
	t.popts.max_wq_bytes = 1024;
	tstart(&t, M_ECHO);
	/* the connection is up (a first request answered); requests to it are
	 * encoded straight into its output buffer: one refused over the bound
	 * leaves nothing behind, the next one still goes out intact */
	wq_ctx *w = calloc(1, sizeof *w);
	w->t = &t;
	w->n = 3;
	ASSERT_OK(net_loop_call(t.loop, wq_issue, w));
	wait_until(w->o[0].calls == 1 && w->o[2].calls == 1);
	wq_ctx *w2 = calloc(1, sizeof *w2);
	w2->t = &t;
	w2->n = 3;
	ASSERT_OK(net_loop_call(t.loop, wq_issue, w2));
	ASSERT_OK(w2->rc[0]);
	ASSERT_EQ(w2->rc[1], Q_EBUSY);
	ASSERT_OK(w2->rc[2]);
	wait_until(w2->o[0].calls == 1 && w2->o[2].calls == 1);
	ASSERT_OK(w2->o[0].status);
	ASSERT_OK(w2->o[2].status);
	ASSERT_EQ(w2->o[1].calls, 0);
	/* the server saw exactly the requests accepted: 2 + 2 */
	tstats(&t);
	ASSERT_EQ(t.sst.requests, 4);
	ASSERT_EQ(t.sst.bad_frames, 0);
	free(w);
	free(w2);
	tstop(&t);
}

static void block(void *arg)
{
	_Atomic int *g = arg;
	uint64_t end = q_mono_ms() + 10000;
	while (!*g && q_mono_ms() < end)
		q_sleep_ms(1);
}

static void count(void *arg)
{
	_Atomic int *n = arg;
	(*n)++;
}

QTEST(loop_post_queue_full)
{
	net_loop *l;
	ASSERT_OK(net_loop_start(4, NULL, &l));
	/* block the loop thread, then fill the queue */
	_Atomic int gate = 0;
	ASSERT_OK(net_loop_post(l, block, &gate));
	q_sleep_ms(50);
	int accepted = 0, busy = 0;
	_Atomic int ran = 0;
	for (int i = 0; i < 10; i++) {
		int rc = net_loop_post(l, count, &ran);
		if (rc == 0)
			accepted++;
		else if (rc == Q_EBUSY)
			busy++;
	}
	ASSERT(accepted <= 4);
	ASSERT(busy >= 6);
	gate = 1;
	wait_until(ran == accepted);
	ASSERT_EQ(net_loop_call(l, count, &ran), 0);
	ASSERT_EQ(ran, accepted + 1);
	net_loop_stop(l);
	/* posting to a stopped loop is impossible (freed); stopping drained it */
}

/* ------------------------------------------------------------------------ */
/* the blocking client and bad input                                          */

QTEST(sync_call_roundtrip_large)
{
	tctx t = {0};
	tstart(&t, M_ECHO);
	net_sync *s;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	size_t n = 8u * 1024 * 1024;
	uint8_t *val = malloc(n);
	for (size_t i = 0; i < n; i++)
		val[i] = (uint8_t)(i * 131 + 7);
	net_msg m, r;
	q_buf rb = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_KV_PUT);
	m.u.kv_put.key = q_slice_str("big");
	m.u.kv_put.value = q_slice_make(val, n);
	ASSERT_OK(net_sync_call(s, &m, 20000, &r, &rb));
	ASSERT_EQ(r.type, NET_MSG_KV_PUT_RESP);
	ASSERT_EQ(r.u.obj_resp.object.n, n);
	ASSERT_MEMEQ(r.u.obj_resp.object.p, val, n);
	net_msg_clear(&r);
	/* mget with many keys */
	q_slice keys[1000];
	char kb[1000][8];
	for (int i = 0; i < 1000; i++) {
		snprintf(kb[i], sizeof kb[i], "k%d", i);
		keys[i] = q_slice_str(kb[i]);
	}
	net_msg_init(&m, NET_MSG_KV_MGET);
	m.u.mget.keys = keys;
	m.u.mget.nkeys = 1000;
	ASSERT_OK(net_sync_call(s, &m, 5000, &r, &rb));
	ASSERT_EQ(r.u.mget_resp.n, 1000);
	ASSERT(r.u.mget_resp.entries[999].object.n == 4 &&
	       !memcmp(r.u.mget_resp.entries[999].object.p, "k999", 4));
	net_msg_clear(&r);
	/* remote error */
	net_msg_init(&m, NET_MSG_KV_GET);
	m.u.kv_get.key = q_slice_str("notfound");
	ASSERT_EQ(net_sync_call(s, &m, 5000, &r, &rb), Q_ENOTFOUND);
	ASSERT_EQ(r.type, NET_MSG_ERROR);
	net_msg_clear(&r);
	q_buf_free(&rb);
	free(val);
	net_sync_close(s);
	tstop(&t);
}

QTEST(sync_timeout)
{
	tctx t = {0};
	tstart(&t, M_HOLD);
	net_sync *s;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	net_msg m, r;
	q_buf rb = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_PING);
	uint64_t t0 = q_mono_ms();
	ASSERT_EQ(net_sync_call(s, &m, 200, &r, &rb), Q_ETIMEOUT);
	ASSERT(q_mono_ms() - t0 >= 190);
	q_buf_free(&rb);
	net_sync_close(s);
	tstop(&t);
}

/* Reads frames until an ERROR arrives; returns its code, and checks that the
 * server then closes the connection. */
static int expect_error_then_close(net_sync *s, uint64_t *reqid)
{
	q_buf b = Q_BUF_INIT;
	net_frame f;
	ASSERT_OK(net_sync_read_frame(s, 5000, &b, &f));
	ASSERT_EQ(f.type, NET_MSG_ERROR);
	ASSERT(f.flags & NET_FF_RESP);
	net_msg m;
	ASSERT_OK(net_msg_decode(f.type, f.payload, &m));
	int code = m.u.error.code;
	ASSERT(m.u.error.text.n > 0);
	if (reqid)
		*reqid = f.reqid;
	net_msg_clear(&m);
	ASSERT_EQ(net_sync_read_frame(s, 5000, &b, &f), Q_ECLOSED);
	q_buf_free(&b);
	return code;
}

QTEST(server_survives_bad_input)
{
	tctx t = {0};
	t.sopts.max_payload = 1024 * 1024;
	tstart(&t, M_ECHO);
	net_sync *good;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &good));

	/* garbage */
	net_sync *s;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 2000));
	ASSERT_EQ(expect_error_then_close(s, NULL), Q_EPROTO);
	net_sync_close(s);

	/* oversized frame: refused from its header, payload never sent */
	uint8_t hdr[NET_FRAME_HDR_LEN];
	ASSERT_OK(net_frame_write_hdr(hdr, NET_MSG_KV_PUT, 0, 77, q_slice_make(NULL, 0)));
	q_enc_fixed32(hdr + NET_OFF_LEN, 2 * 1024 * 1024);
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, hdr, sizeof hdr, 2000));
	uint64_t rid = 0;
	ASSERT_EQ(expect_error_then_close(s, &rid), Q_ETOOBIG);
	ASSERT_U64_EQ(rid, 77);
	net_sync_close(s);

	/* bad checksum */
	q_buf fb = Q_BUF_INIT;
	net_msg m;
	net_msg_init(&m, NET_MSG_PING);
	ASSERT_OK(net_msg_encode_frame(&m, 5, &fb));
	fb.p[fb.len - 1] ^= 0x10;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	ASSERT_EQ(expect_error_then_close(s, NULL), Q_EPROTO);
	net_sync_close(s);

	/* wrong version */
	fb.p[fb.len - 1] ^= 0x10;
	fb.p[NET_OFF_VERSION] = 7;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	ASSERT_EQ(expect_error_then_close(s, NULL), Q_EVERSION);
	net_sync_close(s);

	/* well-framed but malformed message (PING with a 3-byte payload) */
	q_buf_reset(&fb);
	ASSERT_OK(net_frame_encode(&fb, NET_MSG_PING, 0, 9, q_slice_str("abc")));
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	ASSERT_EQ(expect_error_then_close(s, &rid), Q_EPROTO);
	ASSERT_U64_EQ(rid, 9);
	net_sync_close(s);

	/* unknown (reserved) type: an ERROR, but the connection stays */
	q_buf_reset(&fb);
	ASSERT_OK(net_frame_encode(&fb, 0x41, 0, 10, q_slice_make(NULL, 0)));
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	q_buf rb = Q_BUF_INIT;
	net_frame f;
	ASSERT_OK(net_sync_read_frame(s, 5000, &rb, &f));
	ASSERT_EQ(f.type, NET_MSG_ERROR);
	ASSERT_U64_EQ(f.reqid, 10);
	net_msg r;
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = 99;
	ASSERT_OK(net_sync_call(s, &m, 5000, &r, &rb));
	ASSERT_U64_EQ(r.u.ping.nonce, 99);
	net_msg_clear(&r);
	net_sync_close(s);

	/* abrupt disconnect in the middle of a frame */
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	q_buf_reset(&fb);
	net_msg_init(&m, NET_MSG_KV_GET);
	m.u.kv_get.key = q_slice_str("half");
	ASSERT_OK(net_msg_encode_frame(&m, 11, &fb));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len / 2, 2000));
	struct linger lg = {1, 0};
	setsockopt(net_sync_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* RST */
	net_sync_close(s);

	/* the first connection still works, and new ones too */
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = 1;
	ASSERT_OK(net_sync_call(good, &m, 5000, &r, &rb));
	net_msg_clear(&r);
	ASSERT_OK(kv_get(&t, "still-serving", 5000, NULL));
	wait_until((tstats(&t), t.sst.open_conns == 2));
	ASSERT_EQ(t.sst.bad_frames, 5);
	q_buf_free(&rb);
	q_buf_free(&fb);
	net_sync_close(good);
	tstop(&t);
}

/* The handler holds a request; the client vanishes; the late reply is
 * refused with Q_ECLOSED and nothing leaks or crashes. */
static void reply_held_expect_closed(void *arg)
{
	tctx *t = arg;
	for (size_t i = 0; i < t->nheld; i++) {
		net_msg r;
		net_msg_init(&r, NET_MSG_PONG);
		if (net_reply_send(t->held[i], &r) != Q_ECLOSED)
			abort();
	}
	t->nheld = 0;
}

QTEST(server_reply_after_client_left)
{
	tctx t = {0};
	tstart(&t, M_HOLD);
	net_sync *s;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	net_msg m;
	net_msg_init(&m, NET_MSG_PING);
	q_buf fb = Q_BUF_INIT;
	ASSERT_OK(net_msg_encode_frame(&m, 1, &fb));
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	wait_until(nheld(&t) == 1);
	net_sync_close(s);
	wait_until((tstats(&t), t.sst.closed == 1));
	ASSERT_OK(net_loop_call(t.loop, reply_held_expect_closed, &t));
	q_buf_free(&fb);
	tstop(&t);
}

/* Server-side backpressure: with max_inflight 2 and a handler that holds
 * requests, the server stops reading after 2; replying lets the rest in. */
QTEST(server_backpressure_pauses_reading)
{
	tctx t = {0};
	t.sopts.max_inflight = 2;
	tstart(&t, M_HOLD);
	net_sync *s;
	ASSERT_OK(net_sync_connect(t.addr, 2000, &s));
	q_buf fb = Q_BUF_INIT;
	for (int i = 1; i <= 10; i++) {
		net_msg m;
		net_msg_init(&m, NET_MSG_PING);
		m.u.ping.nonce = (uint64_t)i;
		ASSERT_OK(net_msg_encode_frame(&m, (uint64_t)i, &fb));
	}
	ASSERT_OK(net_sync_send_raw(s, fb.p, fb.len, 2000));
	wait_until(nheld(&t) == 2);
	q_sleep_ms(100);
	ASSERT_EQ(nheld(&t), 2);
	tstats(&t);
	ASSERT(t.sst.read_pauses >= 1);
	/* answer in rounds; each round lets two more requests in */
	q_buf rb = Q_BUF_INIT;
	uint64_t seen = 0;
	for (int round = 0; round < 5; round++) {
		wait_until(nheld(&t) == 2);
		ASSERT_OK(net_loop_call(t.loop, reply_held_on_loop, &t));
		for (int k = 0; k < 2; k++) {
			net_frame f;
			ASSERT_OK(net_sync_read_frame(s, 5000, &rb, &f));
			ASSERT_EQ(f.type, NET_MSG_PONG);
			seen |= 1ull << f.reqid;
		}
	}
	ASSERT_U64_EQ(seen, 0x7feull); /* ids 1..10 */
	q_buf_free(&rb);
	q_buf_free(&fb);
	net_sync_close(s);
	tstop(&t);
}

/* Pipelined throughput through one pooled connection: a window of requests
 * in flight, each completion issuing the next. Checks that every request is
 * answered; prints the rate (information only, never asserted). */
typedef struct tput {
	tctx *t;
	int total, issued, window;
	_Atomic int done;
	_Atomic int bad;
} tput;

static void tput_issue(tput *p);

static void tput_cb(void *arg, int status, const net_msg *resp)
{
	tput *p = arg;
	if (status != 0 || !resp || resp->type != NET_MSG_PONG)
		p->bad++;
	p->done++;
	if (p->issued < p->total)
		tput_issue(p);
}

static void tput_issue(tput *p)
{
	net_msg m;
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = (uint64_t)p->issued;
	p->issued++;
	if (net_pool_request(p->t->pool, p->t->addr, &m, 30000, tput_cb, p) != 0) {
		p->bad++;
		p->done++;
	}
}

static void tput_start(void *arg)
{
	tput *p = arg;
	for (int i = 0; i < p->window && p->issued < p->total; i++)
		tput_issue(p);
}

QTEST(pool_pipelined_throughput)
{
	tctx t = {0};
	tstart(&t, M_ECHO);
	const char *lng = getenv("QFS_LONG");
	tput *p = calloc(1, sizeof *p);
	p->t = &t;
	p->total = (lng && *lng == '1') ? 200000 : 20000;
	p->window = 128;
	uint64_t t0 = q_mono_ns();
	ASSERT_OK(net_loop_call(t.loop, tput_start, p));
	uint64_t end = q_mono_ms() + 120000;
	while (p->done < p->total && q_mono_ms() < end)
		q_sleep_ms(2);
	uint64_t ns = q_mono_ns() - t0;
	ASSERT_EQ(p->done, p->total);
	ASSERT_EQ(p->bad, 0);
	fprintf(stderr, "pipelined PING/PONG: %d requests, window %d, %.0f req/s\n", p->total,
		p->window, (double)p->total * 1e9 / (double)ns);
	tstats(&t);
	ASSERT_EQ(t.pst.connects, 1);
	free(p);
	tstop(&t);
}

QTEST_MAIN(QT(pool_request_response_and_reuse), QT(pool_hello_first), QT(pool_many_concurrent),
	   QT(pool_call_from_threads), QT(pool_timeout_fires_once),
	   QT(pool_connect_refused_and_reconnect), QT(pool_reconnects_after_server_closes),
	   QT(pool_backpressure_busy), QT(pool_write_queue_bound), QT(pool_write_queue_bound_ready),
	   QT(loop_post_queue_full),
	   QT(sync_call_roundtrip_large), QT(sync_timeout), QT(server_survives_bad_input),
	   QT(server_reply_after_client_left), QT(server_backpressure_pauses_reading),
	   QT(pool_pipelined_throughput))
