/*
 * client_net.c - the network client: client.h over one TCP connection to
 * any quorumd (src/net/net_sync.h), for quorumctl and tools.
 *
 * Requests go to the node as KV_GET / KV_PUT / KV_MGET, which that node
 * coordinates; the client waits a little longer than the request's own
 * timeout (NETC_SLACK_MS), so a quorum timeout comes back as the node's
 * Q_ETIMEOUT answer rather than as a dropped connection.
 *
 * Invariants: the connection is opened lazily and dropped after any
 * transport error (net_sync's state is unknown then); the next call
 * reconnects. Errors the node answered with (ERROR frames) are returned as
 * their codes; the node's text is kept for qc_net_last_error.
 *
 * With a cluster secret (qc_net_set_secret) every new connection runs the
 * handshake (net_sync_auth) before its first request.
 *
 * Threading: calls are serialised by a mutex (one connection).
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "net/net_auth.h"
#include "net/net_msg.h"
#include "net/net_sync.h"
#include "object/obj.h"
#include "util/qerr.h"

#define NETC_SLACK_MS 1000
#define NETC_DEFAULT_TIMEOUT_MS 5000

typedef struct netc {
	qc_client base;
	pthread_mutex_t mu;
	char addr[128];
	uint64_t timeout_ms;
	net_sync *conn;
	char last_err[512];
	int has_secret;
	uint8_t secret[NET_AUTH_KEY_LEN];
} netc;

static const struct qc_client_ops net_ops;

static netc *as_net(qc_client *c)
{
	return (c && c->ops == &net_ops) ? (netc *)c : NULL;
}

/* One request/response; conn reopened as needed. Caller holds mu. */
static int call(netc *n, const net_msg *req, uint64_t timeout_ms, net_msg *resp, q_buf *buf)
{
	n->last_err[0] = 0;
	if (!n->conn) {
		int rc = net_sync_connect_raw(n->addr, timeout_ms, &n->conn);
		if (rc < 0) {
			n->conn = NULL;
			snprintf(n->last_err, sizeof(n->last_err), "cannot connect to %s: %s", n->addr,
				 q_strerror(rc));
			return rc;
		}
		if (n->has_secret) {
			char err[200];
			rc = net_sync_auth(n->conn, n->secret, timeout_ms, err, sizeof(err));
			if (rc < 0) {
				net_sync_close(n->conn);
				n->conn = NULL;
				snprintf(n->last_err, sizeof(n->last_err), "%s: %s", n->addr, err);
				return rc;
			}
		}
	}
	int rc = net_sync_call(n->conn, req, timeout_ms + NETC_SLACK_MS, resp, buf);
	if (rc < 0 && resp->type == NET_MSG_ERROR) {
		const net_error *e = &resp->u.error;
		snprintf(n->last_err, sizeof(n->last_err), "%.*s", (int)e->text.n,
			 (const char *)e->text.p);
		return rc; /* the node answered: the connection is fine */
	}
	if (rc < 0) {
		snprintf(n->last_err, sizeof(n->last_err), "%s: %s%s", n->addr, q_strerror(rc),
			 rc == Q_ECLOSED && !n->has_secret
				 ? " (the node may require the cluster secret: --secret FILE)"
				 : "");
		net_sync_close(n->conn);
		n->conn = NULL;
	}
	return rc;
}

static uint64_t tmo(netc *n, const qc_opts *o)
{
	return (o && o->timeout_ms) ? o->timeout_ms : n->timeout_ms;
}

static uint8_t u8q(int v)
{
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Decodes object bytes into out; empty bytes leave out empty. */
static int fill(q_slice obj, qc_object *out)
{
	qc_object_free(out);
	if (obj.n == 0)
		return 0;
	obj_set *s = NULL;
	int rc = obj_set_decode(obj.p, obj.n, &s);
	if (rc < 0)
		return Q_EPROTO;
	rc = qc_object_from_set(s, out);
	obj_set_free(s);
	return rc;
}

static int nc_get(qc_client *c, q_slice key, const qc_opts *o, qc_object *out)
{
	netc *n = (netc *)c;
	net_msg req, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&req, NET_MSG_KV_GET);
	memset(&resp, 0, sizeof(resp));
	req.u.kv_get.key = key;
	req.u.kv_get.n = o ? u8q(o->n) : 0;
	req.u.kv_get.r = o ? u8q(o->r) : 0;
	req.u.kv_get.timeout_ms = (uint32_t)tmo(n, o);
	pthread_mutex_lock(&n->mu);
	int rc = call(n, &req, tmo(n, o), &resp, &buf);
	if (rc == 0) {
		rc = resp.u.obj_resp.status;
		int frc = fill(resp.u.obj_resp.object, out);
		if (frc < 0)
			rc = frc;
	} else {
		qc_object_free(out);
	}
	pthread_mutex_unlock(&n->mu);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

static int write_op(netc *n, q_slice key, q_slice ctx, q_slice value, int del,
		    const qc_opts *o, qc_object *out)
{
	net_msg req, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&req, NET_MSG_KV_PUT);
	memset(&resp, 0, sizeof(resp));
	req.u.kv_put.key = key;
	req.u.kv_put.ctx = ctx;
	req.u.kv_put.value = del ? q_slice_make(NULL, 0) : value;
	req.u.kv_put.flags = (del ? NET_PUT_DELETE : 0) | (out ? NET_PUT_RETURN_OBJ : 0);
	req.u.kv_put.n = o ? u8q(o->n) : 0;
	req.u.kv_put.w = o ? u8q(o->w) : 0;
	req.u.kv_put.timeout_ms = (uint32_t)tmo(n, o);
	pthread_mutex_lock(&n->mu);
	int rc = call(n, &req, tmo(n, o), &resp, &buf);
	if (rc == 0) {
		rc = resp.u.obj_resp.status;
		if (out) {
			int frc = fill(resp.u.obj_resp.object, out);
			if (frc < 0 && rc == 0)
				rc = frc;
		}
	} else if (out) {
		qc_object_free(out);
	}
	pthread_mutex_unlock(&n->mu);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

static int nc_put(qc_client *c, q_slice key, q_slice ctx, q_slice value, const qc_opts *o,
		  qc_object *out)
{
	return write_op((netc *)c, key, ctx, value, 0, o, out);
}

static int nc_del(qc_client *c, q_slice key, q_slice ctx, const qc_opts *o)
{
	return write_op((netc *)c, key, ctx, q_slice_make(NULL, 0), 1, o, NULL);
}

static int nc_mget(qc_client *c, const q_slice *keys, size_t nk, const qc_opts *o,
		   qc_object *outs, int *rcs)
{
	netc *n = (netc *)c;
	if (nk == 0)
		return 0;
	if (nk > NET_MAX_MGET_KEYS)
		return Q_ETOOBIG;
	net_msg req, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&req, NET_MSG_KV_MGET);
	memset(&resp, 0, sizeof(resp));
	req.u.mget.nkeys = nk;
	req.u.mget.keys = (q_slice *)keys;
	req.u.mget.n = o ? u8q(o->n) : 0;
	req.u.mget.r = o ? u8q(o->r) : 0;
	req.u.mget.timeout_ms = (uint32_t)tmo(n, o);
	pthread_mutex_lock(&n->mu);
	int rc = call(n, &req, tmo(n, o), &resp, &buf);
	if (rc == 0 && resp.u.mget_resp.n != nk)
		rc = Q_EPROTO;
	for (size_t i = 0; i < nk; i++) {
		if (rc < 0) {
			rcs[i] = rc;
			qc_object_free(&outs[i]);
			continue;
		}
		const net_mget_entry *e = &resp.u.mget_resp.entries[i];
		rcs[i] = e->status;
		int frc = fill(e->object, &outs[i]);
		if (frc < 0)
			rcs[i] = frc;
	}
	pthread_mutex_unlock(&n->mu);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

static void nc_close(qc_client *c)
{
	netc *n = (netc *)c;
	if (n->conn)
		net_sync_close(n->conn);
	sodium_memzero(n->secret, sizeof(n->secret));
	pthread_mutex_destroy(&n->mu);
	free(n);
}

static const struct qc_client_ops net_ops = {
	.get = nc_get,
	.put = nc_put,
	.del = nc_del,
	.mget = nc_mget,
	.close = nc_close,
};

/* The process-wide default secret (qc_net_set_default_secret). */
static pthread_mutex_t g_secret_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_has_secret;
static uint8_t g_secret[NET_AUTH_KEY_LEN];

int qc_net_set_default_secret(const uint8_t *key)
{
	if (key)
		Q_RET(net_auth_init());
	pthread_mutex_lock(&g_secret_mu);
	if (key)
		memcpy(g_secret, key, NET_AUTH_KEY_LEN);
	else
		sodium_memzero(g_secret, sizeof(g_secret));
	g_has_secret = key != NULL;
	pthread_mutex_unlock(&g_secret_mu);
	return 0;
}

int qc_net_new(const char *addr, uint64_t timeout_ms, qc_client **out)
{
	if (!addr || !addr[0] || strlen(addr) >= 128)
		return -EINVAL;
	netc *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->base.ops = &net_ops;
	pthread_mutex_init(&n->mu, NULL);
	snprintf(n->addr, sizeof(n->addr), "%s", addr);
	n->timeout_ms = timeout_ms ? timeout_ms : NETC_DEFAULT_TIMEOUT_MS;
	pthread_mutex_lock(&g_secret_mu);
	if (g_has_secret) {
		memcpy(n->secret, g_secret, NET_AUTH_KEY_LEN);
		n->has_secret = 1;
	}
	pthread_mutex_unlock(&g_secret_mu);
	*out = &n->base;
	return 0;
}

/* One request of `type` whose answer is a status-style text, copied to out. */
static int text_call(qc_client *c, uint8_t type, q_buf *out)
{
	netc *n = as_net(c);
	if (!n)
		return -EINVAL;
	net_msg req, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&req, type);
	memset(&resp, 0, sizeof(resp));
	pthread_mutex_lock(&n->mu);
	int rc = call(n, &req, n->timeout_ms, &resp, &buf);
	if (rc == 0) {
		q_buf_reset(out);
		rc = q_buf_append(out, resp.u.status_resp.text.p, resp.u.status_resp.text.n);
	}
	pthread_mutex_unlock(&n->mu);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

int qc_net_status(qc_client *c, q_buf *out)
{
	return text_call(c, NET_MSG_STATUS, out);
}

int qc_net_ring(qc_client *c, q_buf *out)
{
	return text_call(c, NET_MSG_RING, out);
}

int qc_net_replica_get(qc_client *c, q_slice key, qc_object *out)
{
	netc *n = as_net(c);
	if (!n)
		return -EINVAL;
	net_msg req, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&req, NET_MSG_REPL_GET);
	memset(&resp, 0, sizeof(resp));
	req.u.repl_get.key = key;
	pthread_mutex_lock(&n->mu);
	int rc = call(n, &req, n->timeout_ms, &resp, &buf);
	if (rc == 0) {
		rc = resp.u.obj_resp.status;
		int frc = fill(resp.u.obj_resp.object, out);
		if (frc < 0)
			rc = frc;
		else if (rc == 0 && qc_object_live(out) == 0)
			rc = Q_ENOTFOUND; /* only tombstones, as a coordinated get says */
	} else {
		qc_object_free(out);
	}
	pthread_mutex_unlock(&n->mu);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

const char *qc_net_last_error(qc_client *c)
{
	netc *n = as_net(c);
	return n ? n->last_err : "";
}

int qc_net_set_secret(qc_client *c, const uint8_t *key)
{
	netc *n = as_net(c);
	if (!n || !key)
		return -EINVAL;
	Q_RET(net_auth_init());
	pthread_mutex_lock(&n->mu);
	memcpy(n->secret, key, NET_AUTH_KEY_LEN);
	n->has_secret = 1;
	if (n->conn) { /* opened unauthenticated: start over */
		net_sync_close(n->conn);
		n->conn = NULL;
	}
	pthread_mutex_unlock(&n->mu);
	return 0;
}
