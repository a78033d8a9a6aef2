/*
 * net_http.h - a deliberately tiny HTTP/1.0 server for the metrics
 * endpoint: one request per connection, GET (and HEAD) only, the answer
 * produced at once by a callback on the loop thread, then the connection
 * closes.
 *
 * Limits (slow or malformed clients cannot stall the loop or grow memory):
 * the request head (request line + headers) must fit in NET_HTTP_MAX_HEAD
 * bytes and arrive within NET_HTTP_TIMEOUT_MS of the accept, including the
 * time to write the answer; a request body is never read; at most
 * NET_HTTP_MAX_CONNS connections are open (more are closed at accept). All
 * I/O is non-blocking on the loop.
 *
 * Answers: 200 with the callback's body; the callback's status (404 for an
 * unknown path, 500 when it failed); 400 for a malformed request, 405 for
 * another method, 413 for a head over the limit, 505 for a version other
 * than HTTP/1.0 or 1.1.
 *
 * Ownership: the server owns its connections; the body buffer handed to the
 * callback is owned by the server (the callback appends to it). Threading:
 * net_http_start / net_http_close / the callback: loop thread only.
 * net_http_parse is pure.
 */
#ifndef Q_NET_HTTP_H
#define Q_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_loop.h"
#include "util/buf.h"

#define NET_HTTP_MAX_HEAD 4096
#define NET_HTTP_MAX_PATH 255
#define NET_HTTP_TIMEOUT_MS 5000
#define NET_HTTP_MAX_CONNS 64

typedef struct net_http_req {
	char method[8];                   /* "GET", ... (1-7 uppercase letters) */
	char path[NET_HTTP_MAX_PATH + 1]; /* starts with '/', query cut off */
	int minor;                        /* HTTP/1.minor: 0 or 1 */
} net_http_req;

/* Parses the head of a request at the start of buf. Returns 0 (whole head
 * parsed; *head_len = its size including the blank line), NET_NEED_MORE
 * (== 1: a valid prefix, no blank line yet), Q_EPROTO (malformed),
 * Q_ETOOBIG (no end of head within NET_HTTP_MAX_HEAD bytes, or the path over
 * NET_HTTP_MAX_PATH), Q_EVERSION (not HTTP/1.0 or HTTP/1.1). Never reads
 * outside [buf, buf+len). */
int net_http_parse(const uint8_t *buf, size_t len, net_http_req *out, size_t *head_len);

/* Produces the answer to a GET of path: appends the body to body, sets
 * *content_type (a static string) and returns the HTTP status (200, 404,
 * ...; anything else than 200 sends body as is, or a short text if empty). */
typedef int (*net_http_fn)(void *arg, const char *path, q_buf *body, const char **content_type);

typedef struct net_http_server net_http_server;

/* Binds listen ("host:port") and serves. Loop thread. Returns 0 or a
 * negative code (-EADDRINUSE, -EINVAL, ...). */
int net_http_start(net_loop *l, const char *listen, net_http_fn fn, void *arg,
		   net_http_server **out);
/* "host:port" actually bound. */
const char *net_http_addr(const net_http_server *s);
/* Stops listening, closes every connection; frees s once handles closed.
 * Loop thread; s must not be used afterwards. */
void net_http_close(net_http_server *s);

typedef struct net_http_stats {
	uint64_t requests, bad_requests, not_found, refused_conns, timeouts;
} net_http_stats;
void net_http_get_stats(const net_http_server *s, net_http_stats *st);

#endif
