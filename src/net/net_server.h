/*
 * net_server.h - the accepting side: a TCP listener on a net_loop that turns
 * incoming frames into requests for a handler, and sends its replies.
 *
 * Per connection, the server reads bytes, decodes frames (net_frame.h) and
 * their messages (net_msg.h), and calls the handler once per valid request
 * frame, on the loop thread. The handler answers later, at its own pace,
 * through the request handle: exactly one of net_reply_send() /
 * net_reply_error() / net_reply_drop() per request. Replies may come out of
 * order; the request id pairs them up.
 *
 * Bad input: a frame that fails to decode (bad magic, version, checksum,
 * unknown flags, a response frame sent as a request, a malformed message)
 * is answered with an ERROR frame naming the problem (request id 0 when the
 * header itself was unreadable), then the connection is closed after that
 * frame is written. A header announcing a payload over max_payload is refused
 * with Q_ETOOBIG as soon as the header is read, before any payload is
 * buffered. Other connections are unaffected.
 *
 * Authentication: when the loop has a cluster secret (net_loop_set_secret)
 * every connection must complete the net_auth.h handshake before any frame
 * reaches the handler; until then only AUTH_INIT / AUTH_PROOF frames of at
 * most NET_AUTH_MAX_PREAUTH payload bytes are read, anything else closes
 * the connection without an answer, and so does a handshake not finished
 * within NET_AUTH_TIMEOUT_MS. If either side asked for encryption, frames
 * after AUTH_OK travel as sealed records (net_crypt) both ways.
 *
 * Backpressure: a connection with max_inflight requests unanswered, or more
 * than max_wq_bytes of replies waiting to be written, stops being read until
 * it drains below the limits (the peer's TCP window then fills up). The read
 * buffer of a connection holds at most one frame.
 *
 * Ownership: the net_request handed to the handler is owned by the server
 * until the handler replies or drops it; the request, its msg and every
 * slice in it (they point into the request's own payload buffer) stay valid
 * until that call, even if the connection closes meanwhile (the reply is
 * then discarded and the call returns Q_ECLOSED). The reply message passed
 * to net_reply_send is only read during the call.
 *
 * Threading: everything here runs on the loop thread only. Worker threads
 * that finish work for a request post back to the loop (net_loop_post) and
 * reply from there.
 */
#ifndef Q_NET_SERVER_H
#define Q_NET_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_addr.h"
#include "net/net_loop.h"
#include "net/net_msg.h"

typedef struct net_server net_server;

typedef struct net_request {
	uint64_t reqid;
	uint8_t type;                 /* == msg.type */
	net_msg msg;                  /* decoded request; valid until reply/drop */
	char peer[NET_ADDR_STRLEN];   /* remote "host:port" */
	void *user;                   /* free for the handler's use */
} net_request;

/* Called on the loop thread for each request. The handler must eventually
 * reply to or drop req (it may do so before returning). */
typedef void (*net_handler_fn)(void *ctx, net_request *req);

typedef struct net_server_opts {
	const char *listen;       /* "host:port"; NULL = 127.0.0.1:0 (ephemeral) */
	size_t max_payload;       /* 0 = NET_MAX_PAYLOAD */
	size_t max_inflight;      /* per connection; 0 = 256 */
	size_t max_wq_bytes;      /* per connection; 0 = 64 MiB + 1 MiB */
	size_t max_conns;         /* 0 = 1024; further accepts are closed at once */
	uint64_t idle_timeout_ms; /* close a connection idle this long; 0 = never */
	net_handler_fn handler;
	void *ctx;
} net_server_opts;

/* Binds and listens. Must run on the loop thread. Returns 0 or a negative
 * code (-EADDRINUSE, -EINVAL bad address, ...). */
int net_server_start(net_loop *l, const net_server_opts *o, net_server **out);

/* The bound address ("127.0.0.1:40123"), useful after binding port 0. */
const char *net_server_addr(const net_server *s);
int net_server_port(const net_server *s);

/* Stops listening and closes every connection. Requests still held by the
 * handler stay valid; replying to them then returns Q_ECLOSED and frees
 * them. The server's memory is freed once every connection handle has closed
 * and every outstanding request has been replied to or dropped. Loop thread
 * only; s must not be used afterwards. */
void net_server_close(net_server *s);

/* Sends resp as the answer to req, then frees req. resp->type must be the
 * response type of req (or ERROR). Returns 0, Q_ECLOSED (connection gone;
 * nothing sent), or an encoding error (then an ERROR frame with that code is
 * sent instead). req is freed in every case. */
int net_reply_send(net_request *req, const net_msg *resp);

/* Sends ERROR(code, text) (text may be NULL), then frees req. */
int net_reply_error(net_request *req, int code, const char *text);

/* Frees req without answering (the requester will time out). */
void net_reply_drop(net_request *req);

/* Counters for tests and metrics. */
typedef struct net_server_stats {
	uint64_t accepted, closed, requests, replies, bad_frames, read_pauses;
	uint64_t writes;      /* output buffer flushes (one write each) */
	size_t open_conns;
} net_server_stats;
void net_server_get_stats(const net_server *s, net_server_stats *st);

#endif
