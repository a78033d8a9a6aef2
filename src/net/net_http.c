/*
 * net_http.c - request-head parser and the one-shot HTTP/1.0 server (see
 * net_http.h).
 *
 * Connection life: accepted -> reading the head (fixed buffer of
 * NET_HTTP_MAX_HEAD bytes; reading stops once it is full or parsed) ->
 * answer written -> closed after the write completes. One timer per
 * connection, started at accept, closes it whatever state it is in.
 *
 * Invariants:
 *  - a connection is freed when both its handles (tcp, timer) have closed;
 *    an in-flight write is cancelled by uv_close and its callback frees the
 *    write's memory before the close callbacks run;
 *  - srv->refs = 1 (listener) + open connections; the server is freed at 0,
 *    which only happens after net_http_close.
 *
 * Threading: loop thread only (net_http_parse is pure).
 */
#include "net/net_http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_addr.h"
#include "net/net_frame.h"
#include "net/net_internal.h"
#include "util/log.h"
#include "util/qerr.h"

/* ------------------------------------------------------------------------ */
/* parser                                                                     */

/* Finds the end of the head: "\r\n\r\n" or "\n\n". Returns its length
 * (including the terminator) or 0. */
static size_t head_end(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

int net_http_parse(const uint8_t *buf, size_t len, net_http_req *out, size_t *head_len)
{
	memset(out, 0, sizeof *out);
	size_t scan = len < NET_HTTP_MAX_HEAD ? len : NET_HTTP_MAX_HEAD;
	/* bytes a request head can never hold make it malformed at once */
	for (size_t i = 0; i < scan; i++) {
		uint8_t ch = buf[i];
		if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7f)
			return Q_EPROTO;
	}
	size_t end = head_end(buf, scan);
	if (!end)
		return len >= NET_HTTP_MAX_HEAD ? Q_ETOOBIG : NET_NEED_MORE;
	/* request line: METHOD SP TARGET SP HTTP/1.x (CR)LF */
	size_t i = 0, m = 0;
	while (i < end && buf[i] >= 'A' && buf[i] <= 'Z') {
		if (m + 1 >= sizeof out->method)
			return Q_EPROTO;
		out->method[m++] = (char)buf[i++];
	}
	if (m == 0 || i >= end || buf[i] != ' ')
		return Q_EPROTO;
	i++;
	if (i >= end || buf[i] != '/')
		return Q_EPROTO;
	size_t p = 0;
	int in_query = 0;
	while (i < end && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n') {
		if (buf[i] == '\t')
			return Q_EPROTO;
		if (buf[i] == '?' || buf[i] == '#')
			in_query = 1;
		if (!in_query) {
			if (p >= NET_HTTP_MAX_PATH)
				return Q_ETOOBIG;
			out->path[p++] = (char)buf[i];
		}
		i++;
	}
	if (i >= end || buf[i] != ' ')
		return Q_EPROTO;
	i++;
	/* "HTTP/" DIGIT "." DIGIT; the line's '\n' follows within end */
	static const char ver[] = "HTTP/";
	if (end - i < sizeof ver + 3 || memcmp(buf + i, ver, sizeof ver - 1) != 0)
		return Q_EPROTO;
	i += sizeof ver - 1;
	int major = buf[i], minor = buf[i + 2];
	if (major < '0' || major > '9' || buf[i + 1] != '.' || minor < '0' || minor > '9')
		return Q_EPROTO;
	if (major != '1' || minor > '1')
		return Q_EVERSION;
	out->minor = minor - '0';
	i += 3;
	if (buf[i] == '\r')
		i++;
	if (buf[i] != '\n')
		return Q_EPROTO;
	i++;
	/* header lines: "Name: value"; only their shape is checked */
	while (i < end) {
		size_t ls = i;
		while (i < end && buf[i] != '\n')
			i++;
		size_t le = i; /* at '\n' */
		i++;
		if (le > ls && buf[le - 1] == '\r')
			le--;
		if (le == ls)
			break; /* the blank line */
		if (buf[ls] == ' ' || buf[ls] == '\t' || buf[ls] == ':' ||
		    !memchr(buf + ls, ':', le - ls))
			return Q_EPROTO;
	}
	*head_len = end;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* server                                                                     */

typedef struct http_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shut;
	net_http_server *srv;
	net_link link;
	int handles;
	int closing;
	int answered;
	int draining;         /* answer sent: discard input until the peer closes */
	size_t len;
	uint8_t buf[NET_HTTP_MAX_HEAD];
} http_conn;

typedef struct http_write {
	uv_write_t w;
	http_conn *c;
	uint8_t *data;
} http_write;

struct net_http_server {
	net_loop *loop;
	uv_tcp_t listener;
	net_http_fn fn;
	void *arg;
	net_link conns;
	size_t nconns;
	size_t refs;
	int closing;
	char addr[NET_ADDR_STRLEN];
	net_http_stats st;
};

static void srv_unref(net_http_server *s)
{
	if (--s->refs == 0)
		free(s);
}

static void conn_closed(uv_handle_t *h)
{
	http_conn *c = h->data;
	if (--c->handles > 0)
		return;
	net_http_server *s = c->srv;
	net_list_del(&c->link);
	s->nconns--;
	free(c);
	srv_unref(s);
}

static void conn_close(http_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->timer, conn_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void shutdown_cb(uv_shutdown_t *sh, int status)
{
	http_conn *c = sh->data;
	if (c->closing)
		return;
	/* Read and discard what the peer still sends until it closes (or the
	 * connection's timer fires), so closing does not reset the connection
	 * before the peer has read the answer. */
	c->draining = 1;
	if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
		conn_close(c);
}

static void write_cb(uv_write_t *w, int status)
{
	http_write *hw = NET_CONTAINER_OF(w, http_write, w);
	http_conn *c = hw->c;
	free(hw->data);
	free(hw);
	if (c->closing)
		return;
	/* one request per connection */
	c->shut.data = c;
	if (status < 0 || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
		conn_close(c);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	default: return "Internal Server Error";
	}
}

static void conn_answer(http_conn *c, int status, const char *ctype, q_buf *body, int head_only)
{
	q_buf out = Q_BUF_INIT;
	c->answered = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (status != 200 && body->len == 0)
		q_buf_printf(body, "%d %s\n", status, reason(status));
	int rc = q_buf_printf(&out,
			      "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			      "Connection: close\r\n%s\r\n",
			      status, reason(status), ctype ? ctype : "text/plain; charset=utf-8",
			      body->len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (rc == 0 && !head_only)
		rc = q_buf_append(&out, body->p, body->len);
	http_write *hw = rc == 0 ? calloc(1, sizeof *hw) : NULL;
	if (!hw) {
		q_buf_free(&out);
		conn_close(c);
		return;
	}
	size_t len;
	hw->data = q_buf_steal(&out, &len);
	hw->c = c;
	uv_buf_t b = uv_buf_init((char *)hw->data, (unsigned)len);
	if (uv_write(&hw->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
		free(hw->data);
		free(hw);
		conn_close(c);
	}
}

static void conn_try(http_conn *c)
{
	net_http_server *s = c->srv;
	net_http_req req;
	size_t used;
	q_buf body = Q_BUF_INIT;
	int rc = net_http_parse(c->buf, c->len, &req, &used);
	if (rc == NET_NEED_MORE)
		return;
	if (rc < 0) {
		s->st.bad_requests++;
		conn_answer(c, rc == Q_ETOOBIG ? 413 : rc == Q_EVERSION ? 505 : 400, NULL, &body, 0);
		q_buf_free(&body);
		return;
	}
	s->st.requests++;
	int head = !strcmp(req.method, "HEAD");
	if (strcmp(req.method, "GET") && !head) {
		conn_answer(c, 405, NULL, &body, 0);
		q_buf_free(&body);
		return;
	}
	const char *ctype = NULL;
	int status = s->fn(s->arg, req.path, &body, &ctype);
	if (status == 404)
		s->st.not_found++;
	if (status != 200)
		q_buf_reset(&body);
	conn_answer(c, status, status == 200 ? ctype : NULL, &body, head);
	q_buf_free(&body);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	http_conn *c = h->data;
	(void)suggested;
	if (c->draining)
		c->len = 0; /* discarded */
	*b = uv_buf_init((char *)c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	http_conn *c = st->data;
	(void)b;
	if (c->closing)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (c->answered)
		return;
	c->len += (size_t)nread;
	conn_try(c);
}

static void timeout_cb(uv_timer_t *t)
{
	http_conn *c = t->data;
	c->srv->st.timeouts++;
	conn_close(c);
}

static void reject_closed(uv_handle_t *h)
{
	free(h);
}

static void on_conn(uv_stream_t *ls, int status)
{
	net_http_server *s = ls->data;
	if (status < 0 || s->closing)
		return;
	uv_loop_t *uv = net_loop_uv(s->loop);
	if (s->nconns >= NET_HTTP_MAX_CONNS) {
		uv_tcp_t *t = malloc(sizeof *t);
		if (t && uv_tcp_init(uv, t) == 0) {
			uv_accept(ls, (uv_stream_t *)t);
			uv_close((uv_handle_t *)t, reject_closed);
		} else {
			free(t);
		}
		s->st.refused_conns++;
		return;
	}
	http_conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	if (uv_tcp_init(uv, &c->tcp) < 0) {
		free(c);
		return;
	}
	uv_timer_init(uv, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->srv = s;
	c->handles = 2;
	s->refs++;
	s->nconns++;
	net_list_push(&s->conns, &c->link);
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, timeout_cb, NET_HTTP_TIMEOUT_MS, 0);
}

static void listener_closed(uv_handle_t *h)
{
	srv_unref(h->data);
}

int net_http_start(net_loop *l, const char *listen, net_http_fn fn, void *arg,
		   net_http_server **out)
{
	struct sockaddr_storage sa;
	int rc;
	if (!fn || !listen)
		return -EINVAL;
	Q_RET(net_addr_parse(listen, 1, &sa));
	net_http_server *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->fn = fn;
	s->arg = arg;
	s->refs = 1;
	net_list_init(&s->conns);
	rc = uv_tcp_init(net_loop_uv(l), &s->listener);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->listener.data = s;
	Q_ERR(uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0));
	Q_ERR(uv_listen((uv_stream_t *)&s->listener, 64, on_conn));
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	Q_ERR(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen));
	Q_ERR(net_addr_format((struct sockaddr *)&bound, s->addr, sizeof s->addr));
	*out = s;
	return 0;
fail:
	s->closing = 1;
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	return rc;
}

const char *net_http_addr(const net_http_server *s)
{
	return s->addr;
}

void net_http_close(net_http_server *s)
{
	if (!s || s->closing)
		return;
	s->closing = 1;
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	net_link *n = s->conns.next;
	while (n != &s->conns) {
		http_conn *c = NET_CONTAINER_OF(n, http_conn, link);
		n = n->next;
		conn_close(c);
	}
}

void net_http_get_stats(const net_http_server *s, net_http_stats *st)
{
	*st = s->st;
}
