/*
 * net_server.c - TCP listener, per-connection framing, request dispatch and
 * replies (see net_server.h).
 *
 * Connection states:
 *
 *   OPEN --bad frame--> DRAIN --(writes flushed, shutdown; peer EOF or
 *     |                  |        linger timer)--> CLOSING --> freed
 *     +--EOF/error/server close/idle--------------> CLOSING
 *
 * conn_bad_frame() queues the ERROR frame and moves to DRAIN;
 * conn_close() moves any state to CLOSING; conn_unref() frees a connection
 * once its handles have closed and no request refers to it.
 *
 * Invariants:
 *  - c->refs = 1 (while its handles are open) + number of requests handed
 *    to the handler and not yet answered. A conn is freed at refs == 0.
 *  - srv->refs = 1 (listener open) + number of live conns. The server is
 *    freed at refs == 0, which can only happen after net_server_close.
 *  - The read buffer holds at most one partial frame plus one read's worth
 *    of following bytes; a header announcing more than max_payload is
 *    refused before any of its payload is kept.
 *  - Reading is paused while inflight >= max_inflight or wq_bytes >=
 *    max_wq_bytes, and frames already buffered are not dispatched then.
 *  - Write coalescing: frames are appended (sealed if the connection is
 *    encrypted) to c->obuf in the order they are sent; a connection with
 *    bytes in obuf is on srv->dirty (holding one ref), and the server's
 *    prepare handle writes each dirty connection's obuf with one write
 *    just before the loop polls again (so every reply produced during one
 *    loop iteration leaves in one syscall). obuf is written at once when
 *    it reaches SRV_FLUSH_BYTES or before a shutdown. wq_bytes counts the
 *    bytes in obuf plus those handed to uv_write and not yet written.
 *  - srv->refs also counts the prepare handle until it has closed.
 *
 * Threading: loop thread only.
 */
#include "net/net_server.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_auth.h"
#include "net/net_frame.h"
#include "net/net_internal.h"
#include "util/coding.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define SRV_READ_CHUNK (64 * 1024)
#define SRV_LINGER_MS 2000
#define SRV_FLUSH_BYTES (64 * 1024)

enum conn_state { C_OPEN, C_DRAIN, C_CLOSING };
/* With a cluster secret a connection starts in A_WAIT_INIT and must reach
 * A_DONE (net_auth.h handshake) before any frame is dispatched; without
 * one it starts in A_DONE. */
enum conn_auth { A_DONE = 0, A_WAIT_INIT, A_WAIT_PROOF };

typedef struct srv_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;     /* idle timeout in OPEN, linger in DRAIN */
	uv_shutdown_t shut;
	net_server *srv;
	net_link link;
	enum conn_state state;
	int reading;
	int processing;       /* conn_process is on the stack (no re-entry) */
	int handles;          /* open libuv handles (tcp, timer) */
	size_t refs;
	size_t inflight;
	size_t wq_bytes;
	q_buf rbuf;
	char peer[NET_ADDR_STRLEN];
	int auth;             /* enum conn_auth: handshake progress */
	net_auth_hs hs;
	int enc;              /* sealed records after AUTH_OK (net_crypt) */
	net_crypt rx, tx;     /* client-to-server, server-to-client */
	q_buf cbuf;           /* sealed bytes not yet opened */
	q_buf obuf;           /* frames queued, written at the next flush */
	net_link dlink;       /* in srv->dirty while obuf holds bytes */
	int dirty;
} srv_conn;

typedef struct srv_req {
	net_request pub;
	srv_conn *c;
	uint64_t start_ns;    /* dispatch time, for the latency histograms */
	int lat_kind;         /* enum net_lat_kind */
	uint8_t *payload;     /* copy, in the same allocation right after the
			       * srv_req; pub.msg slices point into it */
} srv_req;

typedef struct srv_write {
	uv_write_t w;
	srv_conn *c;
	size_t len;
	uint8_t *data;
} srv_write;

struct net_server {
	net_loop *loop;
	uv_tcp_t listener;
	net_server_opts o;
	net_link conns;
	net_link dirty;       /* conns with queued frames (srv_conn.dlink) */
	uv_prepare_t flush;   /* writes the dirty conns once per iteration */
	size_t refs;
	int closing;
	char addr[NET_ADDR_STRLEN];
	int port;
	net_server_stats st;
	net_ratelog authlog;
};

static void conn_close(srv_conn *c);
static void conn_process(srv_conn *c);
static int conn_paused(const srv_conn *c);

/* ------------------------------------------------------------------------ */
/* lifetime                                                                   */

static void srv_unref(net_server *s)
{
	if (--s->refs == 0)
		free(s);
}

static void conn_unref(srv_conn *c)
{
	if (--c->refs > 0)
		return;
	net_server *s = c->srv;
	q_buf_free(&c->rbuf);
	q_buf_free(&c->cbuf);
	q_buf_free(&c->obuf);
	net_crypt_wipe(&c->rx);
	net_crypt_wipe(&c->tx);
	free(c);
	srv_unref(s);
}

static void conn_handle_closed(uv_handle_t *h)
{
	srv_conn *c = h->data;
	if (--c->handles > 0)
		return;
	net_list_del(&c->link);
	c->srv->st.open_conns--;
	c->srv->st.closed++;
	conn_unref(c);
}

static void conn_close(srv_conn *c)
{
	if (c->state == C_CLOSING)
		return;
	if (c->dirty && c->obuf.len) {
		/* what an immediate write would have put on the wire before the
		 * close still goes (best effort, never blocks): e.g. the
		 * AUTH_CHALLENGE answered before a bad proof in the same read */
		uv_buf_t b = uv_buf_init((char *)c->obuf.p, (unsigned)c->obuf.len);
		(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	}
	c->state = C_CLOSING;
	c->reading = 0;
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	if (c->dirty) {
		/* the rest goes the way of frames inside uv_write: dropped */
		c->wq_bytes -= c->obuf.len;
		c->obuf.len = 0;
		c->dirty = 0;
		net_list_del(&c->dlink);
		conn_unref(c); /* not the last ref: the handles hold one */
	}
}

/* ------------------------------------------------------------------------ */
/* writing                                                                    */

static void conn_update_reading(srv_conn *c);

static void write_cb(uv_write_t *w, int status)
{
	srv_write *sw = NET_CONTAINER_OF(w, srv_write, w);
	srv_conn *c = sw->c;
	c->wq_bytes -= sw->len;
	free(sw->data);
	free(sw);
	if (status < 0 && c->state == C_OPEN) {
		Q_DEBUG("net", "write to %s failed: %s", c->peer, uv_strerror(status));
		conn_close(c);
	} else if (c->state == C_OPEN) {
		conn_process(c);
	}
	conn_unref(c);
}

/* Writes c->obuf now: directly if the socket takes it all (no copy, no
 * allocation), else the rest through uv_write. Takes c off the dirty list.
 * 0 or a negative code (the connection is then closed). */
static int conn_flush(srv_conn *c)
{
	int rc = 0;
	if (!c->dirty)
		return 0;
	c->dirty = 0;
	net_list_del(&c->dlink);
	size_t len = c->obuf.len, done = 0;
	if (c->state == C_CLOSING || len == 0)
		goto out;
	int paused = conn_paused(c);
	c->srv->st.writes++;
	if (c->tcp.write_queue_size == 0) {
		uv_buf_t b = uv_buf_init((char *)c->obuf.p, (unsigned)len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n < 0 && n != UV_EAGAIN) {
			Q_DEBUG("net", "write to %s failed: %s", c->peer, uv_strerror(n));
			rc = n;
			goto fail;
		}
		done = n > 0 ? (size_t)n : 0;
	}
	if (done < len) {
		srv_write *sw = calloc(1, sizeof *sw);
		if (!sw) {
			rc = -ENOMEM;
			goto fail;
		}
		size_t rest = len - done;
		if (done == 0) {
			sw->data = q_buf_steal(&c->obuf, &len);
		} else {
			sw->data = malloc(rest);
			if (!sw->data) {
				free(sw);
				rc = -ENOMEM;
				goto fail;
			}
			memcpy(sw->data, c->obuf.p + done, rest);
		}
		sw->c = c;
		sw->len = rest;
		uv_buf_t b = uv_buf_init((char *)sw->data, (unsigned)rest);
		rc = uv_write(&sw->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
		if (rc < 0) {
			free(sw->data);
			free(sw);
			goto fail;
		}
		c->refs++;
	}
	c->wq_bytes -= done;
	c->obuf.len = 0;
	if (c->obuf.cap > 4 * SRV_FLUSH_BYTES)
		q_buf_free(&c->obuf);
	if (paused && c->state == C_OPEN && !conn_paused(c))
		conn_process(c);
	goto out;
fail:
	c->wq_bytes -= len;
	c->obuf.len = 0;
	conn_close(c);
out:
	conn_unref(c); /* the dirty list's */
	return rc;
}

static void flush_cb(uv_prepare_t *h)
{
	net_server *s = h->data;
	/* conn_flush may dispatch frames whose replies dirty conns again;
	 * they are written in this same pass */
	while (!net_list_empty(&s->dirty))
		conn_flush(NET_CONTAINER_OF(s->dirty.next, srv_conn, dlink));
	uv_prepare_stop(&s->flush);
}

/* Accounts n bytes just appended to c->obuf and schedules the flush. */
static void conn_queued(srv_conn *c, size_t n)
{
	c->wq_bytes += n;
	if (!c->dirty) {
		net_server *s = c->srv;
		if (net_list_empty(&s->dirty))
			uv_prepare_start(&s->flush, flush_cb);
		net_list_push(&s->dirty, &c->dlink);
		c->dirty = 1;
		c->refs++;
	}
	if (c->obuf.len >= SRV_FLUSH_BYTES)
		conn_flush(c);
}

/* Queues a whole encoded frame (sealing it on an encrypted connection). */
static int conn_write(srv_conn *c, const uint8_t *frame, size_t len)
{
	if (c->state == C_CLOSING)
		return Q_ECLOSED;
	size_t old = c->obuf.len;
	int rc = c->enc ? net_crypt_seal(&c->tx, frame, len, &c->obuf)
			: q_buf_append(&c->obuf, frame, len);
	if (rc < 0) {
		c->obuf.len = old;
		if (c->enc)
			conn_close(c); /* the sealing counter may have moved */
		return rc;
	}
	conn_queued(c, c->obuf.len - old);
	return 0;
}

static int conn_send_msg(srv_conn *c, const net_msg *m, uint64_t reqid)
{
	if (c->state == C_CLOSING)
		return Q_ECLOSED;
	if (!c->enc) {
		/* encoded straight into the output buffer: no copy */
		size_t old = c->obuf.len;
		Q_RET(net_msg_encode_frame(m, reqid, &c->obuf));
		conn_queued(c, c->obuf.len - old);
		return 0;
	}
	q_buf b = Q_BUF_INIT;
	int rc = net_msg_encode_frame(m, reqid, &b);
	if (rc == 0)
		rc = conn_write(c, b.p, b.len);
	q_buf_free(&b);
	return rc;
}

static int conn_send_error(srv_conn *c, uint64_t reqid, int code, const char *text)
{
	net_msg m;
	net_msg_error(&m, code, text);
	return conn_send_msg(c, &m, reqid);
}

/* ------------------------------------------------------------------------ */
/* bad input: ERROR, then shutdown after it is written, then close          */

static void linger_cb(uv_timer_t *t)
{
	conn_close(t->data);
}

static void shutdown_cb(uv_shutdown_t *sh, int status)
{
	srv_conn *c = sh->data;
	(void)status;
	if (c->state == C_DRAIN) {
		/* Read (and discard) until the peer closes, so closing does not
		 * reset the connection before the peer read our ERROR. */
		uv_timer_start(&c->timer, linger_cb, SRV_LINGER_MS, 0);
	}
	conn_unref(c);
}

static void conn_bad_frame(srv_conn *c, uint64_t reqid, int code, const char *what)
{
	char text[160];
	snprintf(text, sizeof text, "%s: %s", q_errname(code), what);
	Q_WARN("net", "bad frame from %s: %s; closing connection", c->peer, text);
	c->srv->st.bad_frames++;
	if (conn_send_error(c, reqid, code, text) < 0 || c->state != C_OPEN) {
		conn_close(c);
		return;
	}
	c->state = C_DRAIN;
	uv_timer_stop(&c->timer);
	c->rbuf.len = 0;
	if (conn_flush(c) < 0)
		return; /* closed */
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
		conn_close(c);
		return;
	}
	c->refs++;
}

/* ------------------------------------------------------------------------ */
/* authentication: nothing but a closed connection for a failed handshake   */

static void auth_log(net_server *s, const char *peer, const char *what)
{
	uint64_t dropped;
	int ok = net_ratelog_allow(&s->authlog, q_mono_ms(), &dropped);
	if (dropped)
		Q_WARN("net", "%llu more authentication failures not logged",
		       (unsigned long long)dropped);
	if (ok)
		Q_WARN("net", "authentication failed for %s: %s; connection closed", peer, what);
}

static void conn_auth_fail(srv_conn *c, enum net_auth_event ev, const char *what)
{
	net_loop_auth_note(c->srv->loop, ev);
	auth_log(c->srv, c->peer, what);
	conn_close(c);
}

static int conn_send_raw(srv_conn *c, uint8_t type, const uint8_t *p, size_t n)
{
	q_buf b = Q_BUF_INIT;
	int rc = net_frame_encode(&b, type, NET_FF_RESP, 0, q_slice_make(p, n));
	if (rc == 0)
		rc = conn_write(c, b.p, b.len);
	q_buf_free(&b);
	return rc;
}

static void idle_cb(uv_timer_t *t);

static void conn_auth_frame(srv_conn *c, const net_frame *f)
{
	const uint8_t *key = net_loop_secret(c->srv->loop);
	int framing_ok = !(f->flags & NET_FF_RESP) && f->reqid == 0;
	if (c->auth == A_WAIT_INIT) {
		if (f->type != NET_MSG_AUTH_INIT || !framing_ok ||
		    net_auth_decode_init(f->payload.p, f->payload.n, &c->hs) < 0) {
			conn_auth_fail(c, NET_AUTH_EV_UNAUTH,
				       f->type == NET_MSG_AUTH_INIT
					       ? "malformed AUTH_INIT"
					       : "a frame other than AUTH_INIT before authentication");
			return;
		}
		uint8_t mac[NET_AUTH_MAC_LEN], pl[NET_AUTH_CHALLENGE_LEN];
		net_auth_nonce(c->hs.ns);
		c->hs.fs = net_loop_encrypt(c->srv->loop) ? NET_AUTH_F_ENCRYPT : 0;
		net_auth_mac(key, NET_AUTH_ROLE_SERVER, &c->hs, mac);
		net_auth_encode_challenge(&c->hs, mac, pl);
		c->auth = A_WAIT_PROOF;
		if (conn_send_raw(c, NET_MSG_AUTH_CHALLENGE, pl, sizeof pl) < 0)
			conn_close(c);
		return;
	}
	uint8_t mac[NET_AUTH_MAC_LEN];
	if (f->type != NET_MSG_AUTH_PROOF || !framing_ok ||
	    net_auth_decode_proof(f->payload.p, f->payload.n, mac) < 0) {
		conn_auth_fail(c, NET_AUTH_EV_FAILED, "malformed or missing AUTH_PROOF");
		return;
	}
	if (!net_auth_check(key, NET_AUTH_ROLE_CLIENT, &c->hs, mac)) {
		conn_auth_fail(c, NET_AUTH_EV_FAILED,
			       "wrong proof (another cluster secret, or a replayed handshake)");
		return;
	}
	c->auth = A_DONE;
	net_loop_auth_note(c->srv->loop, NET_AUTH_EV_OK);
	Q_DEBUG("net", "connection from %s authenticated", c->peer);
	uv_timer_stop(&c->timer);
	if (c->srv->o.idle_timeout_ms)
		uv_timer_start(&c->timer, idle_cb, c->srv->o.idle_timeout_ms, 0);
	if (conn_send_raw(c, NET_MSG_AUTH_OK, NULL, 0) < 0) {
		conn_close(c);
		return;
	}
	if ((c->hs.fc | c->hs.fs) & NET_AUTH_F_ENCRYPT) {
		net_crypt_init(key, &c->hs, &c->rx, &c->tx);
		c->enc = 1; /* everything after AUTH_OK */
	}
}

static void auth_timeout_cb(uv_timer_t *t)
{
	srv_conn *c = t->data;
	if (c->state == C_OPEN && c->auth != A_DONE)
		conn_auth_fail(c, NET_AUTH_EV_UNAUTH, "no handshake within the time limit");
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                   */

static int conn_paused(const srv_conn *c)
{
	const net_server_opts *o = &c->srv->o;
	return c->inflight >= o->max_inflight || c->wq_bytes >= o->max_wq_bytes;
}

static int lat_kind_of(const net_msg *m)
{
	switch (m->type) {
	case NET_MSG_KV_GET: return NET_LAT_KV_GET;
	case NET_MSG_KV_PUT:
		return (m->u.kv_put.flags & NET_PUT_DELETE) ? NET_LAT_KV_DELETE : NET_LAT_KV_PUT;
	case NET_MSG_KV_MGET: return NET_LAT_KV_MGET;
	case NET_MSG_REPL_GET: return NET_LAT_REPL_GET;
	case NET_MSG_REPL_PUT: return NET_LAT_REPL_PUT;
	case NET_MSG_REPL_MGET: return NET_LAT_REPL_MGET;
	case NET_MSG_HINT_PUT: return NET_LAT_HINT_PUT;
	default: return NET_LAT_OTHER;
	}
}

static void dispatch(srv_conn *c, const net_frame *f)
{
	net_server *s = c->srv;
	if (f->flags & NET_FF_RESP) {
		conn_bad_frame(c, f->reqid, Q_EPROTO, "response frame sent to a server");
		return;
	}
	if (f->type >= NET_MSG_AUTH_INIT && f->type <= NET_MSG_AUTH_OK) {
		/* a handshake to a node without a secret, or a second one */
		conn_send_error(c, f->reqid, Q_EAUTH,
				net_loop_secret(s->loop)
					? "connection already authenticated"
					: "this node has no cluster secret configured");
		return;
	}
	if (!net_msg_type_known(f->type) || net_msg_is_resp(f->type)) {
		/* Well-framed but not a request we know: answer, keep going. */
		char text[64];
		snprintf(text, sizeof text, "unknown request type 0x%02x", f->type);
		conn_send_error(c, f->reqid, Q_EPROTO, text);
		return;
	}
	/* one allocation for the request and its payload copy (only the
	 * request part zeroed) */
	srv_req *r = malloc(sizeof *r + f->payload.n);
	if (!r) {
		conn_send_error(c, f->reqid, -ENOMEM, NULL);
		return;
	}
	memset(r, 0, sizeof *r);
	if (f->payload.n) {
		r->payload = (uint8_t *)(r + 1);
		memcpy(r->payload, f->payload.p, f->payload.n);
	}
	int rc = net_msg_decode(f->type, q_slice_make(r->payload, f->payload.n), &r->pub.msg);
	if (rc < 0) {
		free(r);
		char text[96];
		snprintf(text, sizeof text, "malformed %s message", net_msg_type_name(f->type));
		conn_bad_frame(c, f->reqid, rc, text);
		return;
	}
	r->c = c;
	r->start_ns = q_mono_ns();
	r->lat_kind = lat_kind_of(&r->pub.msg);
	r->pub.reqid = f->reqid;
	r->pub.type = f->type;
	memcpy(r->pub.peer, c->peer, sizeof r->pub.peer);
	c->refs++;
	c->inflight++;
	s->st.requests++;
	s->o.handler(s->o.ctx, &r->pub);
}

/* Dispatches buffered frames while allowed, then starts or stops reading. */
static void conn_process(srv_conn *c)
{
	size_t off = 0;
	if (c->processing)
		return; /* the outer call re-checks the limits */
	c->processing = 1;
	c->refs++; /* the handler may close the conn under us */
	while (c->state == C_OPEN && !conn_paused(c)) {
		net_frame f;
		size_t used;
		size_t maxp = c->auth != A_DONE ? NET_AUTH_MAX_PREAUTH : c->srv->o.max_payload;
		int rc = net_frame_decode2(c->rbuf.p + off, c->rbuf.len - off, maxp, &f, &used);
		if (rc < 0 && c->auth != A_DONE) {
			conn_auth_fail(c, NET_AUTH_EV_UNAUTH,
				       "malformed or oversized frame before authentication");
			break;
		}
		if (rc == NET_NEED_MORE) {
			/* Make room for the whole frame once its header is known. */
			net_frame h;
			if (net_frame_decode_hdr(c->rbuf.p + off, c->rbuf.len - off, maxp, &h) == 0) {
				size_t want = NET_FRAME_HDR_LEN + h.payload.n;
				if (c->rbuf.cap - off < want) {
					memmove(c->rbuf.p, c->rbuf.p + off, c->rbuf.len - off);
					c->rbuf.len -= off;
					off = 0;
					if (q_buf_reserve(&c->rbuf, want - c->rbuf.len) < 0) {
						conn_close(c);
						break;
					}
				}
			}
			break;
		}
		if (rc < 0) {
			const char *what = rc == Q_ETOOBIG ? "frame payload over the size limit"
					   : rc == Q_EVERSION ? "unsupported protocol version"
							      : "malformed frame header or checksum";
			uint64_t reqid = 0;
			if (c->rbuf.len - off >= NET_FRAME_HDR_LEN && rc != Q_EPROTO)
				reqid = q_dec_fixed64(c->rbuf.p + off + NET_OFF_REQID);
			conn_bad_frame(c, reqid, rc, what);
			break;
		}
		if (c->auth != A_DONE) {
			conn_auth_frame(c, &f);
			if (c->enc && c->rbuf.len > off + used) {
				/* bytes sent before AUTH_OK came back: not sealed */
				conn_auth_fail(c, NET_AUTH_EV_FAILED, "data before AUTH_OK");
				break;
			}
		} else {
			dispatch(c, &f);
		}
		off += used;
	}
	if (c->state == C_OPEN && off) {
		memmove(c->rbuf.p, c->rbuf.p + off, c->rbuf.len - off);
		c->rbuf.len -= off;
		if (c->rbuf.len == 0 && c->rbuf.cap > 4 * SRV_READ_CHUNK)
			q_buf_free(&c->rbuf);
	}
	if (c->state == C_OPEN)
		conn_update_reading(c);
	c->processing = 0;
	conn_unref(c);
}

/* ------------------------------------------------------------------------ */
/* reading                                                                    */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	srv_conn *c = h->data;
	(void)suggested;
	if (c->state == C_DRAIN)
		c->rbuf.len = c->cbuf.len = 0; /* discarding */
	if (c->enc) {
		if (c->cbuf.cap - c->cbuf.len < SRV_READ_CHUNK / 4 &&
		    q_buf_reserve(&c->cbuf, SRV_READ_CHUNK) < 0) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		*buf = uv_buf_init((char *)c->cbuf.p + c->cbuf.len,
				   (unsigned)(c->cbuf.cap - c->cbuf.len));
		return;
	}
	if (c->rbuf.cap - c->rbuf.len < SRV_READ_CHUNK / 4 &&
	    q_buf_reserve(&c->rbuf, SRV_READ_CHUNK) < 0) {
		*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
		return;
	}
	*buf = uv_buf_init((char *)c->rbuf.p + c->rbuf.len, (unsigned)(c->rbuf.cap - c->rbuf.len));
}

static void idle_cb(uv_timer_t *t);

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	srv_conn *c = st->data;
	(void)buf;
	if (nread < 0) {
		if (nread != UV_EOF)
			Q_DEBUG("net", "read from %s: %s", c->peer, uv_strerror((int)nread));
		if (c->state == C_OPEN && c->auth == A_WAIT_PROOF)
			conn_auth_fail(c, NET_AUTH_EV_FAILED,
				       "closed during the handshake (the peer may hold another "
				       "cluster secret)");
		conn_close(c);
		return;
	}
	if (c->state == C_DRAIN) {
		c->rbuf.len = c->cbuf.len = 0;
		return;
	}
	if (c->enc) {
		/* open every whole sealed record into the frame buffer */
		c->cbuf.len += (size_t)nread;
		size_t off = 0, used = 0;
		int rc;
		while ((rc = net_crypt_open(&c->rx, c->cbuf.p + off, c->cbuf.len - off,
					    NET_FRAME_HDR_LEN + c->srv->o.max_payload, &c->rbuf,
					    &used)) == 0)
			off += used;
		if (rc < 0) {
			Q_WARN("net", "sealed record from %s: %s; closing connection", c->peer,
			       rc == Q_EPROTO ? "authentication failed" : q_strerror(rc));
			conn_close(c);
			return;
		}
		memmove(c->cbuf.p, c->cbuf.p + off, c->cbuf.len - off);
		c->cbuf.len -= off;
		if (c->srv->o.idle_timeout_ms)
			uv_timer_start(&c->timer, idle_cb, c->srv->o.idle_timeout_ms, 0);
		conn_process(c);
		return;
	}
	c->rbuf.len += (size_t)nread;
	if (c->srv->o.idle_timeout_ms && c->auth == A_DONE)
		uv_timer_start(&c->timer, idle_cb, c->srv->o.idle_timeout_ms, 0);
	conn_process(c);
}

static void conn_update_reading(srv_conn *c)
{
	int want = !conn_paused(c);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
			c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
		c->srv->st.read_pauses++;
	}
}

static void idle_cb(uv_timer_t *t)
{
	srv_conn *c = t->data;
	if (c->state == C_OPEN && c->inflight == 0 && c->wq_bytes == 0) {
		Q_DEBUG("net", "closing idle connection from %s", c->peer);
		conn_close(c);
	} else if (c->state == C_OPEN) {
		uv_timer_start(&c->timer, idle_cb, c->srv->o.idle_timeout_ms, 0);
	}
}

/* ------------------------------------------------------------------------ */
/* accepting                                                                  */

static void reject_closed(uv_handle_t *h)
{
	free(h);
}

static void listener_closed(uv_handle_t *h)
{
	srv_unref(h->data);
}

static void on_connection(uv_stream_t *ls, int status)
{
	net_server *s = ls->data;
	if (status < 0 || s->closing) {
		Q_WARN("net", "accept on %s: %s", s->addr, uv_strerror(status));
		return;
	}
	uv_loop_t *uv = net_loop_uv(s->loop);
	if (s->st.open_conns >= s->o.max_conns) {
		uv_tcp_t *t = malloc(sizeof *t);
		if (t && uv_tcp_init(uv, t) == 0) {
			if (uv_accept(ls, (uv_stream_t *)t) == 0)
				Q_WARN("net", "connection limit (%zu) reached; refusing one",
				       s->o.max_conns);
			uv_close((uv_handle_t *)t, reject_closed);
		} else {
			free(t);
		}
		return;
	}
	srv_conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	if (uv_tcp_init(uv, &c->tcp) < 0) {
		free(c);
		return;
	}
	uv_timer_init(uv, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->srv = s;
	c->handles = 2;
	c->refs = 1;
	s->refs++;
	net_list_push(&s->conns, &c->link);
	s->st.open_conns++;
	s->st.accepted++;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
	    net_addr_format((struct sockaddr *)&ss, c->peer, sizeof c->peer) != 0)
		snprintf(c->peer, sizeof c->peer, "?");
	if (net_loop_secret(s->loop)) {
		c->auth = A_WAIT_INIT;
		uv_timer_start(&c->timer, auth_timeout_cb, NET_AUTH_TIMEOUT_MS, 0);
	} else if (s->o.idle_timeout_ms) {
		uv_timer_start(&c->timer, idle_cb, s->o.idle_timeout_ms, 0);
	}
	conn_update_reading(c);
}

int net_server_start(net_loop *l, const net_server_opts *o, net_server **out)
{
	int rc;
	if (!o->handler)
		return -EINVAL;
	struct sockaddr_storage sa;
	Q_RET(net_addr_parse(o->listen ? o->listen : NET_ADDR_DEFAULT_HOST ":0", 1, &sa));
	net_server *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->o = *o;
	s->o.listen = NULL; /* not kept */
	if (!s->o.max_payload || s->o.max_payload > NET_MAX_PAYLOAD)
		s->o.max_payload = NET_MAX_PAYLOAD;
	if (!s->o.max_inflight)
		s->o.max_inflight = 256;
	if (!s->o.max_wq_bytes)
		s->o.max_wq_bytes = NET_MAX_FRAME;
	if (!s->o.max_conns)
		s->o.max_conns = 1024;
	net_list_init(&s->conns);
	s->refs = 1;
	rc = uv_tcp_init(net_loop_uv(l), &s->listener);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->listener.data = s;
	Q_ERR(uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0));
	Q_ERR(uv_listen((uv_stream_t *)&s->listener, 128, on_connection));
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	Q_ERR(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen));
	Q_ERR(net_addr_format((struct sockaddr *)&bound, s->addr, sizeof s->addr));
	s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
						   : ((struct sockaddr_in6 *)&bound)->sin6_port);
	net_list_init(&s->dirty);
	Q_ERR(uv_prepare_init(net_loop_uv(l), &s->flush));
	s->flush.data = s;
	s->refs++; /* the prepare handle, until closed */
	*out = s;
	return 0;
fail:
	s->closing = 1;
	uv_close((uv_handle_t *)&s->listener, listener_closed); /* frees s */
	return rc;
}

const char *net_server_addr(const net_server *s)
{
	return s->addr;
}

int net_server_port(const net_server *s)
{
	return s->port;
}

void net_server_close(net_server *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	uv_close((uv_handle_t *)&s->flush, listener_closed);
	net_link *n = s->conns.next;
	while (n != &s->conns) {
		srv_conn *c = NET_CONTAINER_OF(n, srv_conn, link);
		n = n->next;
		conn_close(c);
	}
}

/* ------------------------------------------------------------------------ */
/* replies                                                                    */

static void req_free(srv_req *r, int error)
{
	srv_conn *c = r->c;
	net_loop_lat_note(c->srv->loop, r->lat_kind, (q_mono_ns() - r->start_ns) / 1000, error);
	net_msg_clear(&r->pub.msg);
	free(r); /* the payload copy with it */
	c->inflight--;
	if (c->state == C_OPEN)
		conn_process(c); /* may resume reading */
	conn_unref(c);
}

/* Responses that carry a status of their own: a failure other than
 * not-found counts as an error in the histograms. */
static int obj_status_failed(const net_msg *m)
{
	int32_t st = 0;
	switch (m->type) {
	case NET_MSG_KV_GET_RESP:
	case NET_MSG_KV_PUT_RESP:
	case NET_MSG_REPL_GET_RESP:
		st = m->u.obj_resp.status;
		break;
	case NET_MSG_REPL_PUT_RESP:
	case NET_MSG_HINT_PUT_RESP:
		st = m->u.repl_put_resp.status;
		break;
	default:
		break;
	}
	return st < 0 && st != Q_ENOTFOUND;
}

int net_reply_send(net_request *req, const net_msg *resp)
{
	srv_req *r = NET_CONTAINER_OF(req, srv_req, pub);
	srv_conn *c = r->c;
	int rc;
	if (c->state != C_OPEN) {
		rc = Q_ECLOSED;
	} else if (resp->type != NET_MSG_ERROR && resp->type != net_msg_resp_type(req->type)) {
		Q_WARN("net", "reply of type %s to a %s request", net_msg_type_name(resp->type),
		       net_msg_type_name(req->type));
		rc = Q_EPROTO;
		conn_send_error(c, req->reqid, rc, "server sent a reply of the wrong type");
	} else {
		rc = conn_send_msg(c, resp, req->reqid);
		if (rc < 0 && rc != Q_ECLOSED && c->state == C_OPEN)
			conn_send_error(c, req->reqid, rc, "reply could not be encoded");
		else if (rc == 0)
			c->srv->st.replies++;
	}
	req_free(r, rc < 0 || resp->type == NET_MSG_ERROR ||
			    (resp->type != NET_MSG_ERROR && obj_status_failed(resp)));
	return rc;
}

int net_reply_error(net_request *req, int code, const char *text)
{
	net_msg m;
	net_msg_error(&m, code, text);
	return net_reply_send(req, &m);
}

void net_reply_drop(net_request *req)
{
	req_free(NET_CONTAINER_OF(req, srv_req, pub), 1);
}

void net_server_get_stats(const net_server *s, net_server_stats *st)
{
	*st = s->st;
}
