/*
 * net_pool.c - outgoing connections, request/response matching, timeouts
 * (see net_pool.h).
 *
 * Connection states:
 *
 *   CONNECTING --connect ok--> READY --error/EOF/bad frame/pool close--> DEAD
 *        |                                                               ^
 *        +--connect error / connect timeout------------------------------+
 *
 * pc_fail() moves a connection to DEAD: it leaves the pool's table (so the
 * next request to that peer opens a new connection), fails every request
 * on it with the given code and closes its handles. Requests queued while
 * CONNECTING are written in order once connected (HELLO first, if any).
 *
 * Invariants:
 *  - Every accepted request's callback runs exactly once: pr_complete() is
 *    the only place that calls it, and it marks the request done first.
 *  - A request is freed when it is done and its timer handle has closed
 *    (pr->refs counts the timer). Its frame is kept only while it is queued
 *    for a connection not yet ready; once written it is copied into the
 *    connection's output buffer and freed. A request to a connection that
 *    is ready and not encrypted is encoded straight into that buffer
 *    (pr_new_into: no frame of its own).
 *  - Write coalescing: frames go (sealed if encrypted) into pc->obuf in
 *    send order; a connection with bytes there is on pool->dirty (holding
 *    one ref) and the pool's prepare handle writes each one's obuf with one
 *    write just before the loop polls again, so every request made to a
 *    peer during one loop iteration leaves in one syscall. obuf is written
 *    by that flush only (never from inside net_pool_request, whose
 *    callbacks must not run from within it); wq_bytes bounds it.
 *  - pc->ninflight counts requests on the connection not yet done;
 *    pc->wq_bytes counts frame bytes queued (not yet written), in obuf or
 *    being written (pc->oacct: the part of it in obuf).
 *  - pool->refs = 1 (until net_pool_close) + live connections + 1 for the
 *    prepare handle until it has closed.
 *
 * Threading: loop thread only, except net_pool_call, which posts to the
 * loop and waits on a condition variable.
 */
#include "net/net_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_addr.h"
#include "net/net_auth.h"
#include "net/net_frame.h"
#include "net/net_internal.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define POOL_READ_CHUNK (64 * 1024)
#define POOL_OBUF_KEEP (256 * 1024) /* a larger obuf is freed after a flush */

/* PC_AUTH / PC_AUTH_OK: connected, running the cluster-secret handshake
 * (net_auth.h; only when the loop has a secret): waiting for the server's
 * AUTH_CHALLENGE, then for AUTH_OK. Requests stay queued until READY. */
enum pc_state { PC_CONNECTING, PC_AUTH, PC_AUTH_OK, PC_READY, PC_DEAD };

typedef void (*pr_raw_fn)(void *arg, int status, uint8_t type, q_slice payload);

typedef struct pool_conn pool_conn;

typedef struct pool_req {
	net_link link;        /* in pc->reqs */
	pool_conn *c;
	uint64_t reqid;
	uint8_t resp_type;
	uv_timer_t timer;
	uint8_t *frame;       /* while queued */
	size_t len;
	int queued;           /* waiting in pc->reqs for the connection (not written) */
	int done;
	int refs;
	net_resp_fn cb;
	pr_raw_fn raw_cb;
	void *arg;
} pool_req;

struct pool_conn {
	uv_tcp_t tcp;
	uv_timer_t ctimer;
	uv_connect_t creq;
	net_pool *pool;
	net_link link;        /* in pool->conns */
	net_link reqs;        /* not-done requests: queued, writing, or awaiting response */
	enum pc_state state;
	int handles;
	size_t refs;          /* 1 for handles + requests pointing at it */
	size_t ninflight;
	size_t wq_bytes;
	q_buf rbuf;
	char addr[NET_ADDR_STRLEN];
	net_auth_hs hs;
	int enc;              /* sealed records after AUTH_OK (net_crypt) */
	net_crypt tx, rx;     /* client-to-server, server-to-client */
	q_buf cbuf;           /* sealed bytes not yet opened */
	q_buf obuf;           /* frames to write at the next flush */
	size_t oacct;         /* wq_bytes of the frames in obuf */
	net_link dlink;       /* in pool->dirty while obuf holds bytes */
	int dirty;
};

/* One flushed output buffer in uv_write. */
typedef struct pc_wr {
	uv_write_t w;
	pool_conn *c;
	size_t acct;          /* wq_bytes it carries */
	uint8_t *data;
} pc_wr;

struct net_pool {
	net_loop *loop;
	net_pool_opts o;
	char *node_id;
	char *listen_addr;
	net_link conns;
	net_link dirty;       /* conns with frames in obuf (pool_conn.dlink) */
	uv_prepare_t flush;
	size_t refs;
	int closing;
	uint64_t next_reqid;
	net_pool_stats st;
	net_ratelog authlog;
};

static void pc_fail(pool_conn *c, int code);
static int pc_write(pool_conn *c, pool_req *r);

/* ------------------------------------------------------------------------ */
/* lifetime                                                                   */

static void pool_unref(net_pool *p)
{
	if (--p->refs > 0)
		return;
	free(p->node_id);
	free(p->listen_addr);
	free(p);
}

static void pc_unref(pool_conn *c)
{
	if (--c->refs > 0)
		return;
	net_pool *p = c->pool;
	q_buf_free(&c->rbuf);
	q_buf_free(&c->cbuf);
	q_buf_free(&c->obuf);
	net_crypt_wipe(&c->tx);
	net_crypt_wipe(&c->rx);
	free(c);
	pool_unref(p);
}

static void pr_unref(pool_req *r)
{
	if (--r->refs > 0)
		return;
	pool_conn *c = r->c;
	free(r->frame);
	free(r);
	pc_unref(c);
}

static void pr_timer_closed(uv_handle_t *h)
{
	pr_unref(h->data);
}

/* Completes r once: removes it from its connection, stops its timer, runs
 * the callback. payload/type are used when status is 0 or a remote error. */
static void pr_complete(pool_req *r, int status, uint8_t type, q_slice payload)
{
	if (r->done)
		return;
	r->done = 1;
	pool_conn *c = r->c;
	net_list_del(&r->link);
	c->ninflight--;
	if (r->queued) {
		r->queued = 0;
		c->wq_bytes -= r->len;
	}
	uv_close((uv_handle_t *)&r->timer, pr_timer_closed);
	if (r->raw_cb) {
		r->raw_cb(r->arg, status, type, payload);
		return;
	}
	if (type == NET_MSG_NONE) {
		r->cb(r->arg, status, NULL);
		return;
	}
	net_msg m;
	int rc = net_msg_decode(type, payload, &m);
	if (rc < 0) {
		r->cb(r->arg, rc, NULL); /* cannot happen: decoded before */
		return;
	}
	r->cb(r->arg, status, &m);
	net_msg_clear(&m);
}

static void pr_timeout_cb(uv_timer_t *t)
{
	pool_req *r = t->data;
	r->c->pool->st.timeouts++;
	pr_complete(r, Q_ETIMEOUT, NET_MSG_NONE, q_slice_make(NULL, 0));
}

/* ------------------------------------------------------------------------ */
/* connection                                                                 */

static void pc_handle_closed(uv_handle_t *h)
{
	pool_conn *c = h->data;
	if (--c->handles == 0)
		pc_unref(c);
}

static void pc_fail(pool_conn *c, int code)
{
	if (c->state == PC_DEAD)
		return;
	if (c->dirty && c->obuf.len && c->state != PC_CONNECTING) {
		/* what an immediate write would have sent still goes (best
		 * effort, never blocks); the rest is dropped with the socket */
		uv_buf_t b = uv_buf_init((char *)c->obuf.p, (unsigned)c->obuf.len);
		(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	}
	c->state = PC_DEAD;
	net_list_del(&c->link);
	c->pool->st.open_conns--;
	c->refs++; /* callbacks below may drop the last request */
	while (!net_list_empty(&c->reqs)) {
		pool_req *r = NET_CONTAINER_OF(c->reqs.next, pool_req, link);
		pr_complete(r, code, NET_MSG_NONE, q_slice_make(NULL, 0));
	}
	uv_close((uv_handle_t *)&c->ctimer, pc_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, pc_handle_closed);
	if (c->dirty) {
		c->wq_bytes -= c->oacct;
		c->oacct = 0;
		c->obuf.len = 0;
		c->dirty = 0;
		net_list_del(&c->dlink);
		pc_unref(c);
	}
	pc_unref(c);
}

static void pc_wr_cb(uv_write_t *w, int status)
{
	pc_wr *x = NET_CONTAINER_OF(w, pc_wr, w);
	pool_conn *c = x->c;
	c->wq_bytes -= x->acct;
	free(x->data);
	free(x);
	if (status < 0 && c->state != PC_DEAD)
		pc_fail(c, status == UV_ECANCELED ? Q_ECLOSED : status);
	pc_unref(c);
}

/* Writes c->obuf now (directly when the socket takes it all, else the rest
 * through uv_write) and takes c off the dirty list. On failure the
 * connection fails. */
static void pc_flush(pool_conn *c)
{
	int rc = 0;
	if (!c->dirty)
		return;
	c->dirty = 0;
	net_list_del(&c->dlink);
	size_t len = c->obuf.len, done = 0, acct = c->oacct;
	c->obuf.len = 0;
	c->oacct = 0;
	if (c->state == PC_DEAD || len == 0)
		goto out;
	c->pool->st.writes++;
	if (c->tcp.write_queue_size == 0) {
		uv_buf_t b = uv_buf_init((char *)c->obuf.p, (unsigned)len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n < 0 && n != UV_EAGAIN) {
			rc = n;
			goto fail;
		}
		done = n > 0 ? (size_t)n : 0;
	}
	if (done < len) {
		size_t rest = len - done;
		pc_wr *x = calloc(1, sizeof *x);
		if (!x) {
			rc = -ENOMEM;
			goto fail;
		}
		if (done == 0) {
			c->obuf.len = len;
			x->data = q_buf_steal(&c->obuf, &len);
		} else {
			x->data = malloc(rest);
			if (!x->data) {
				free(x);
				rc = -ENOMEM;
				goto fail;
			}
			memcpy(x->data, c->obuf.p + done, rest);
		}
		x->c = c;
		x->acct = acct;
		uv_buf_t b = uv_buf_init((char *)x->data, (unsigned)rest);
		rc = uv_write(&x->w, (uv_stream_t *)&c->tcp, &b, 1, pc_wr_cb);
		if (rc < 0) {
			free(x->data);
			free(x);
			goto fail;
		}
		c->refs++;
	} else {
		c->wq_bytes -= acct;
	}
	if (c->obuf.cap > POOL_OBUF_KEEP)
		q_buf_free(&c->obuf);
	goto out;
fail:
	c->wq_bytes -= acct;
	pc_fail(c, rc == UV_ECANCELED ? Q_ECLOSED : rc);
out:
	pc_unref(c); /* the dirty list's */
}

static void pool_flush_closed(uv_handle_t *h)
{
	pool_unref(h->data);
}

static void pool_flush_cb(uv_prepare_t *h)
{
	net_pool *p = h->data;
	while (!net_list_empty(&p->dirty))
		pc_flush(NET_CONTAINER_OF(p->dirty.next, pool_conn, dlink));
	uv_prepare_stop(&p->flush);
}

static void pc_mark_dirty(pool_conn *c, size_t acct);

/* Appends one frame (sealed if the connection is encrypted) to c->obuf;
 * acct: what it counts in wq_bytes. */
static int pc_queue(pool_conn *c, const uint8_t *frame, size_t len, size_t acct)
{
	size_t old = c->obuf.len;
	int rc = c->enc ? net_crypt_seal(&c->tx, frame, len, &c->obuf)
			: q_buf_append(&c->obuf, frame, len);
	if (rc < 0) {
		c->obuf.len = old;
		return rc;
	}
	pc_mark_dirty(c, acct);
	return 0;
}

/* Counts acct more bytes in c->obuf and puts c on the dirty list (the
 * flush before the next poll writes it). */
static void pc_mark_dirty(pool_conn *c, size_t acct)
{
	c->oacct += acct;
	if (!c->dirty) {
		net_pool *p = c->pool;
		if (net_list_empty(&p->dirty))
			uv_prepare_start(&p->flush, pool_flush_cb);
		net_list_push(&p->dirty, &c->dlink);
		c->dirty = 1;
		c->refs++;
	}
}

/* Queues r's frame on c (READY); r->len stays in wq_bytes until written.
 * A request encoded straight into c->obuf (r->frame NULL) is only
 * counted. */
static int pc_write(pool_conn *c, pool_req *r)
{
	if (!r->frame) {
		pc_mark_dirty(c, r->len);
		return 0;
	}
	int rc = pc_queue(c, r->frame, r->len, r->len);
	if (rc < 0)
		return rc;
	free(r->frame);
	r->frame = NULL;
	return 0;
}

static void pc_on_frame(pool_conn *c, const net_frame *f)
{
	if (!(f->flags & NET_FF_RESP)) {
		pc_fail(c, Q_EPROTO);
		return;
	}
	pool_req *r = NULL;
	for (net_link *n = c->reqs.next; n != &c->reqs; n = n->next) {
		pool_req *x = NET_CONTAINER_OF(n, pool_req, link);
		if (x->reqid == f->reqid && !x->queued) {
			r = x;
			break;
		}
	}
	/* Validate the message even when nobody waits for it any more. */
	net_msg m;
	int rc = net_msg_decode(f->type, f->payload, &m);
	if (rc < 0) {
		Q_WARN("net", "malformed %s response from %s", net_msg_type_name(f->type), c->addr);
		pc_fail(c, Q_EPROTO);
		return;
	}
	int status = 0;
	if (f->type == NET_MSG_ERROR)
		status = m.u.error.code;
	net_msg_clear(&m);
	if (!r) {
		if (f->reqid != 0 || status == 0) {
			Q_DEBUG("net", "late or unknown response id %llu from %s",
				(unsigned long long)f->reqid, c->addr);
			return;
		}
		/* ERROR for id 0: the peer could not read our frame and closes. */
		pc_fail(c, status);
		return;
	}
	if (f->type != NET_MSG_ERROR && f->type != r->resp_type) {
		pc_fail(c, Q_EPROTO);
		return;
	}
	c->pool->st.responses++;
	pr_complete(r, status, f->type, f->payload);
}

/* ------------------------------------------------------------------------ */
/* cluster-secret handshake (client side)                                     */

static int pc_send_raw(pool_conn *c, uint8_t type, const uint8_t *p, size_t n)
{
	q_buf b = Q_BUF_INIT;
	int rc = net_frame_encode(&b, type, 0, 0, q_slice_make(p, n));
	if (rc == 0)
		rc = pc_queue(c, b.p, b.len, 0);
	q_buf_free(&b);
	return rc;
}

static void pc_auth_log(pool_conn *c, const char *what)
{
	uint64_t dropped;
	int ok = net_ratelog_allow(&c->pool->authlog, q_mono_ms(), &dropped);
	if (dropped)
		Q_WARN("net", "%llu more outgoing authentication failures not logged",
		       (unsigned long long)dropped);
	if (ok)
		Q_WARN("net", "authentication with %s failed: %s", c->addr, what);
}

/* Connected (and authenticated, if required): write everything queued, in
 * order. */
static void pc_ready(pool_conn *c)
{
	int rc = 0;
	uv_timer_stop(&c->ctimer);
	c->state = PC_READY;
	for (net_link *n = c->reqs.next; rc == 0 && n != &c->reqs; n = n->next) {
		pool_req *r = NET_CONTAINER_OF(n, pool_req, link);
		if (!r->queued)
			continue;
		r->queued = 0;
		rc = pc_write(c, r);
		if (rc < 0) {
			r->queued = 1;
			break;
		}
	}
	if (rc < 0)
		pc_fail(c, rc);
}

static void pc_on_auth_frame(pool_conn *c, const net_frame *f)
{
	const uint8_t *key = net_loop_secret(c->pool->loop);
	if (f->type == NET_MSG_ERROR) {
		net_msg m;
		char text[160] = "";
		if (net_msg_decode(f->type, f->payload, &m) == 0)
			snprintf(text, sizeof text, "refused: %.*s", (int)m.u.error.text.n,
				 (const char *)m.u.error.text.p);
		net_msg_clear(&m);
		net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
		pc_auth_log(c, text[0] ? text : "refused");
		pc_fail(c, Q_EAUTH);
		return;
	}
	uint8_t mac[NET_AUTH_MAC_LEN];
	if (c->state == PC_AUTH) {
		if (f->type != NET_MSG_AUTH_CHALLENGE || !(f->flags & NET_FF_RESP) ||
		    net_auth_decode_challenge(f->payload.p, f->payload.n, &c->hs, mac) < 0) {
			pc_auth_log(c, "malformed AUTH_CHALLENGE");
			net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
			pc_fail(c, Q_EAUTH);
			return;
		}
		if (!net_auth_check(key, NET_AUTH_ROLE_SERVER, &c->hs, mac)) {
			pc_auth_log(c, "the node does not know our cluster secret");
			net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
			pc_fail(c, Q_EAUTH);
			return;
		}
		net_auth_mac(key, NET_AUTH_ROLE_CLIENT, &c->hs, mac);
		int rc = pc_send_raw(c, NET_MSG_AUTH_PROOF, mac, sizeof mac);
		if (rc < 0) {
			pc_fail(c, rc);
			return;
		}
		c->state = PC_AUTH_OK;
		return;
	}
	if (f->type != NET_MSG_AUTH_OK || !(f->flags & NET_FF_RESP) || f->payload.n) {
		pc_auth_log(c, "malformed AUTH_OK");
		net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
		pc_fail(c, Q_EAUTH);
		return;
	}
	net_loop_auth_note(c->pool->loop, NET_AUTH_EV_OK);
	if ((c->hs.fc | c->hs.fs) & NET_AUTH_F_ENCRYPT) {
		net_crypt_init(key, &c->hs, &c->tx, &c->rx);
		c->enc = 1; /* everything after AUTH_OK, both ways */
	}
	pc_ready(c);
}

static int pc_in_auth(const pool_conn *c)
{
	return c->state == PC_AUTH || c->state == PC_AUTH_OK;
}

static void pc_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	pool_conn *c = h->data;
	(void)suggested;
	if (c->enc) {
		if (c->cbuf.cap - c->cbuf.len < POOL_READ_CHUNK / 4 &&
		    q_buf_reserve(&c->cbuf, POOL_READ_CHUNK) < 0) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		*buf = uv_buf_init((char *)c->cbuf.p + c->cbuf.len,
				   (unsigned)(c->cbuf.cap - c->cbuf.len));
		return;
	}
	if (c->rbuf.cap - c->rbuf.len < POOL_READ_CHUNK / 4 &&
	    q_buf_reserve(&c->rbuf, POOL_READ_CHUNK) < 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init((char *)c->rbuf.p + c->rbuf.len, (unsigned)(c->rbuf.cap - c->rbuf.len));
}

static void pc_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	pool_conn *c = st->data;
	(void)buf;
	if (nread < 0) {
		if (pc_in_auth(c)) {
			/* a server closes on a wrong proof without a word */
			net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
			pc_auth_log(c, "the node closed the connection during the handshake "
				       "(another cluster secret?)");
			pc_fail(c, Q_EAUTH);
			return;
		}
		pc_fail(c, nread == UV_EOF ? Q_ECLOSED : (int)nread);
		return;
	}
	if (c->enc) {
		c->cbuf.len += (size_t)nread;
		size_t coff = 0, cused = 0;
		int crc;
		while ((crc = net_crypt_open(&c->rx, c->cbuf.p + coff, c->cbuf.len - coff,
					     NET_FRAME_HDR_LEN + c->pool->o.max_payload, &c->rbuf,
					     &cused)) == 0)
			coff += cused;
		if (crc < 0) {
			Q_WARN("net", "sealed record from %s: %s", c->addr,
			       crc == Q_EPROTO ? "authentication failed" : q_strerror(crc));
			pc_fail(c, Q_EPROTO);
			return;
		}
		memmove(c->cbuf.p, c->cbuf.p + coff, c->cbuf.len - coff);
		c->cbuf.len -= coff;
	} else {
		c->rbuf.len += (size_t)nread;
	}
	size_t off = 0;
	c->refs++;
	while (c->state == PC_READY || pc_in_auth(c)) {
		net_frame f;
		size_t used;
		size_t maxp = pc_in_auth(c) ? NET_AUTH_MAX_PREAUTH : c->pool->o.max_payload;
		int rc = net_frame_decode2(c->rbuf.p + off, c->rbuf.len - off, maxp, &f, &used);
		if (rc == NET_NEED_MORE) {
			net_frame h;
			if (net_frame_decode_hdr(c->rbuf.p + off, c->rbuf.len - off, maxp, &h) == 0) {
				size_t want = NET_FRAME_HDR_LEN + h.payload.n;
				memmove(c->rbuf.p, c->rbuf.p + off, c->rbuf.len - off);
				c->rbuf.len -= off;
				off = 0;
				if (c->rbuf.cap < want &&
				    q_buf_reserve(&c->rbuf, want - c->rbuf.len) < 0)
					pc_fail(c, -ENOMEM);
			}
			break;
		}
		if (rc < 0) {
			Q_WARN("net", "bad frame from %s: %s", c->addr, q_strerror(rc));
			pc_fail(c, pc_in_auth(c) ? Q_EAUTH : rc == Q_ETOOBIG ? Q_ETOOBIG : Q_EPROTO);
			break;
		}
		if (pc_in_auth(c)) {
			pc_on_auth_frame(c, &f);
			if (c->enc && c->rbuf.len > off + used) {
				pc_fail(c, Q_EPROTO); /* unsealed bytes after AUTH_OK */
				break;
			}
		} else {
			pc_on_frame(c, &f);
		}
		off += used;
	}
	if ((c->state == PC_READY || pc_in_auth(c)) && off) {
		memmove(c->rbuf.p, c->rbuf.p + off, c->rbuf.len - off);
		c->rbuf.len -= off;
		if (c->rbuf.len == 0 && c->rbuf.cap > 4 * POOL_READ_CHUNK)
			q_buf_free(&c->rbuf);
	}
	pc_unref(c);
}

static void pc_ctimeout_cb(uv_timer_t *t)
{
	pool_conn *c = t->data;
	if (c->state == PC_CONNECTING)
		pc_fail(c, Q_ETIMEOUT);
	else if (pc_in_auth(c)) {
		pc_auth_log(c, "no answer to the handshake in time");
		net_loop_auth_note(c->pool->loop, NET_AUTH_EV_FAILED);
		pc_fail(c, Q_EAUTH);
	}
}

static void pc_connect_cb(uv_connect_t *cr, int status)
{
	pool_conn *c = cr->data;
	if (c->state == PC_DEAD) {
		pc_unref(c);
		return;
	}
	uv_timer_stop(&c->ctimer);
	if (status < 0) {
		Q_DEBUG("net", "connect to %s: %s", c->addr, uv_strerror(status));
		pc_fail(c, status);
		pc_unref(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, pc_alloc_cb, pc_read_cb);
	if (rc == 0 && net_loop_secret(c->pool->loop)) {
		/* handshake first; the connect timeout covers it too */
		uint8_t init[NET_AUTH_INIT_LEN];
		net_auth_nonce(c->hs.nc);
		c->hs.fc = net_loop_encrypt(c->pool->loop) ? NET_AUTH_F_ENCRYPT : 0;
		net_auth_encode_init(&c->hs, init);
		c->state = PC_AUTH;
		rc = pc_send_raw(c, NET_MSG_AUTH_INIT, init, sizeof init);
		if (rc == 0)
			uv_timer_start(&c->ctimer, pc_ctimeout_cb, c->pool->o.connect_timeout_ms, 0);
	} else if (rc == 0) {
		pc_ready(c);
	}
	if (rc < 0)
		pc_fail(c, rc);
	pc_unref(c);
}


static pool_conn *pool_find(net_pool *p, const char *addr)
{
	for (net_link *n = p->conns.next; n != &p->conns; n = n->next) {
		pool_conn *c = NET_CONTAINER_OF(n, pool_conn, link);
		if (strcmp(c->addr, addr) == 0)
			return c;
	}
	return NULL;
}

static int pool_submit(pool_conn *c, pool_req *r, uint64_t timeout_ms);

static void hello_cb(void *arg, int status, const net_msg *resp)
{
	pool_conn *c = arg;
	if (status < 0 && c->state != PC_DEAD) {
		Q_WARN("net", "HELLO to %s refused: %s", c->addr, q_strerror(status));
		pc_fail(c, status);
	}
	(void)resp;
	pc_unref(c);
}

/* A request whose frame is encoded at the end of c->obuf (c READY and
 * not encrypted: the frame goes out as is, so no separate buffer and copy);
 * r->frame stays NULL, r->len is the frame's size. The caller counts it
 * (pc_write) or takes it back off obuf. */
static pool_req *pr_new_into(net_pool *p, pool_conn *c, const net_msg *msg, int *rcp)
{
	pool_req *r = calloc(1, sizeof *r);
	if (!r) {
		*rcp = -ENOMEM;
		return NULL;
	}
	size_t old = c->obuf.len;
	r->reqid = ++p->next_reqid;
	int rc = net_msg_encode_frame(msg, r->reqid, &c->obuf);
	if (rc < 0) {
		c->obuf.len = old;
		free(r);
		*rcp = rc;
		return NULL;
	}
	r->len = c->obuf.len - old;
	r->resp_type = net_msg_resp_type(msg->type);
	return r;
}

static pool_req *pr_new(net_pool *p, const net_msg *msg, int *rcp)
{
	pool_req *r = calloc(1, sizeof *r);
	if (!r) {
		*rcp = -ENOMEM;
		return NULL;
	}
	q_buf b = Q_BUF_INIT;
	r->reqid = ++p->next_reqid;
	int rc = net_msg_encode_frame(msg, r->reqid, &b);
	if (rc < 0) {
		q_buf_free(&b);
		free(r);
		*rcp = rc;
		return NULL;
	}
	r->frame = q_buf_steal(&b, &r->len);
	r->resp_type = net_msg_resp_type(msg->type);
	return r;
}

static int pool_connect(net_pool *p, const char *addr, pool_conn **out)
{
	struct sockaddr_storage sa;
	Q_RET(net_addr_parse(addr, 0, &sa));
	pool_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	uv_loop_t *uv = net_loop_uv(p->loop);
	int rc = uv_tcp_init(uv, &c->tcp);
	if (rc < 0) {
		free(c);
		return rc;
	}
	uv_timer_init(uv, &c->ctimer);
	c->tcp.data = c;
	c->ctimer.data = c;
	c->pool = p;
	c->handles = 2;
	c->refs = 1;
	c->state = PC_CONNECTING;
	net_list_init(&c->reqs);
	snprintf(c->addr, sizeof c->addr, "%s", addr);
	p->refs++;
	net_list_push(&p->conns, &c->link);
	p->st.open_conns++;
	p->st.connects++;
	c->creq.data = c;
	rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, pc_connect_cb);
	if (rc < 0) {
		pc_fail(c, rc);
		return rc;
	}
	c->refs++; /* held by the connect request */
	uv_timer_start(&c->ctimer, pc_ctimeout_cb, p->o.connect_timeout_ms, 0);
	if (p->node_id) {
		net_msg h;
		net_msg_init(&h, NET_MSG_HELLO);
		h.u.hello.node_id = q_slice_str(p->node_id);
		h.u.hello.listen_addr = q_slice_str(p->listen_addr ? p->listen_addr : "");
		h.u.hello.proto_version = NET_PROTO_VERSION;
		pool_req *r = pr_new(p, &h, &rc);
		if (!r) {
			pc_fail(c, rc);
			return rc;
		}
		r->cb = hello_cb;
		r->arg = c;
		c->refs++; /* held by hello_cb */
		rc = pool_submit(c, r, p->o.connect_timeout_ms * 2);
		if (rc < 0) {
			c->refs--;
			pc_fail(c, rc);
			return rc;
		}
	}
	*out = c;
	return 0;
}

/* Attaches r to c (queued or written) and starts its timer; on failure r is
 * freed and the caller's callback will not run. */
static int pool_submit(pool_conn *c, pool_req *r, uint64_t timeout_ms)
{
	r->c = c;
	c->refs++;
	r->refs = 1; /* the timer */
	uv_timer_init(net_loop_uv(c->pool->loop), &r->timer);
	r->timer.data = r;
	net_list_push(&c->reqs, &r->link);
	c->ninflight++;
	c->wq_bytes += r->len;
	if (c->state == PC_READY) {
		int rc = pc_write(c, r);
		if (rc < 0) {
			/* refuse: undo without running the callback */
			net_list_del(&r->link);
			c->ninflight--;
			c->wq_bytes -= r->len;
			r->done = 1;
			uv_close((uv_handle_t *)&r->timer, pr_timer_closed);
			return rc;
		}
	} else {
		r->queued = 1;
	}
	uv_timer_start(&r->timer, pr_timeout_cb, timeout_ms, 0);
	c->pool->st.requests++;
	return 0;
}

static int pool_request_ex(net_pool *p, const char *addr, const net_msg *msg, uint64_t timeout_ms,
			   net_resp_fn cb, pr_raw_fn raw_cb, void *arg)
{
	if (p->closing)
		return Q_ECLOSED;
	if (!addr || (!cb && !raw_cb))
		return -EINVAL;
	if (net_msg_is_resp(msg->type) || !net_msg_type_known(msg->type))
		return Q_EPROTO;
	if (!timeout_ms)
		timeout_ms = 5000;
	int rc;
	pool_conn *c = pool_find(p, addr);
	if (c && (c->ninflight >= p->o.max_inflight || c->wq_bytes >= p->o.max_wq_bytes)) {
		p->st.refused_busy++;
		return Q_EBUSY;
	}
	int direct = c && c->state == PC_READY && !c->enc;
	pool_req *r = direct ? pr_new_into(p, c, msg, &rc) : pr_new(p, msg, &rc);
	if (!r)
		return rc;
	if (c && c->wq_bytes + r->len > p->o.max_wq_bytes && c->wq_bytes > 0) {
		if (direct)
			c->obuf.len -= r->len; /* the frame just appended */
		free(r->frame);
		free(r);
		p->st.refused_busy++;
		return Q_EBUSY;
	}
	if (!c) {
		rc = pool_connect(p, addr, &c);
		if (rc < 0) {
			free(r->frame);
			free(r);
			return rc;
		}
	}
	r->cb = cb;
	r->raw_cb = raw_cb;
	r->arg = arg;
	return pool_submit(c, r, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* public API                                                                 */

int net_pool_new(net_loop *l, const net_pool_opts *o, net_pool **out)
{
	net_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->loop = l;
	if (o)
		p->o = *o;
	p->o.node_id = p->o.listen_addr = NULL;
	if (!p->o.max_inflight)
		p->o.max_inflight = 1024;
	if (!p->o.max_wq_bytes)
		p->o.max_wq_bytes = 128u * 1024 * 1024;
	if (!p->o.max_payload || p->o.max_payload > NET_MAX_PAYLOAD)
		p->o.max_payload = NET_MAX_PAYLOAD;
	if (!p->o.connect_timeout_ms)
		p->o.connect_timeout_ms = 2000;
	if (o && o->node_id && !(p->node_id = strdup(o->node_id)))
		goto nomem;
	if (o && o->listen_addr && !(p->listen_addr = strdup(o->listen_addr)))
		goto nomem;
	net_list_init(&p->conns);
	net_list_init(&p->dirty);
	p->refs = 1;
	if (uv_prepare_init(net_loop_uv(l), &p->flush) < 0)
		goto nomem;
	p->flush.data = p;
	p->refs++; /* the prepare handle, until closed */
	*out = p;
	return 0;
nomem:
	free(p->node_id);
	free(p->listen_addr);
	free(p);
	return -ENOMEM;
}

int net_pool_request(net_pool *p, const char *addr, const net_msg *msg, uint64_t timeout_ms,
		     net_resp_fn cb, void *arg)
{
	return pool_request_ex(p, addr, msg, timeout_ms, cb, NULL, arg);
}

void net_pool_close(net_pool *p)
{
	if (p->closing)
		return;
	p->closing = 1;
	while (!net_list_empty(&p->conns))
		pc_fail(NET_CONTAINER_OF(p->conns.next, pool_conn, link), Q_ECLOSED);
	uv_close((uv_handle_t *)&p->flush, pool_flush_closed);
	pool_unref(p);
}

void net_pool_get_stats(const net_pool *p, net_pool_stats *st)
{
	*st = p->st;
}

/* ------------------------------------------------------------------------ */
/* blocking call from another thread                                          */

struct pool_call {
	net_pool *p;
	const char *addr;
	const net_msg *msg;
	uint64_t timeout_ms;
	q_buf *resp_buf;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int status;
	uint8_t type;
};

static void call_finish(struct pool_call *pc, int status, uint8_t type)
{
	pthread_mutex_lock(&pc->mu);
	pc->status = status;
	pc->type = type;
	pc->done = 1;
	pthread_cond_signal(&pc->cv);
	pthread_mutex_unlock(&pc->mu);
}

static void call_raw_cb(void *arg, int status, uint8_t type, q_slice payload)
{
	struct pool_call *pc = arg;
	q_buf_reset(pc->resp_buf);
	if (type != NET_MSG_NONE && q_buf_append(pc->resp_buf, payload.p, payload.n) < 0) {
		status = -ENOMEM;
		type = NET_MSG_NONE;
	}
	call_finish(pc, status, type);
}

static void call_on_loop(void *arg)
{
	struct pool_call *pc = arg;
	int rc = pool_request_ex(pc->p, pc->addr, pc->msg, pc->timeout_ms, NULL, call_raw_cb, pc);
	if (rc < 0)
		call_finish(pc, rc, NET_MSG_NONE);
}

int net_pool_call(net_loop *l, net_pool *p, const char *addr, const net_msg *msg,
		  uint64_t timeout_ms, net_msg *resp, q_buf *resp_buf)
{
	memset(resp, 0, sizeof *resp);
	if (net_loop_on_thread(l))
		return -EDEADLK;
	struct pool_call pc = {.p = p, .addr = addr, .msg = msg, .timeout_ms = timeout_ms,
			       .resp_buf = resp_buf};
	pthread_mutex_init(&pc.mu, NULL);
	pthread_cond_init(&pc.cv, NULL);
	int rc = net_loop_post(l, call_on_loop, &pc);
	if (rc == 0) {
		pthread_mutex_lock(&pc.mu);
		while (!pc.done)
			pthread_cond_wait(&pc.cv, &pc.mu);
		pthread_mutex_unlock(&pc.mu);
		rc = pc.status;
		if (pc.type != NET_MSG_NONE) {
			int drc = net_msg_decode(pc.type, q_buf_slice(resp_buf), resp);
			if (drc < 0)
				rc = drc;
		}
	}
	pthread_cond_destroy(&pc.cv);
	pthread_mutex_destroy(&pc.mu);
	return rc;
}
