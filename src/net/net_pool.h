/*
 * net_pool.h - the requesting side: a pool of outgoing connections keyed by
 * peer address, with request/response matching, a timeout on every request,
 * reconnect after failure and bounded queues.
 *
 * One connection per peer address is kept open and reused by every request
 * to that peer; requests are pipelined on it and matched to responses by
 * request id. If the pool was given a node id, every new connection first
 * sends HELLO (the response is checked like any other; a HELLO refused with
 * ERROR fails the queued requests with that code).
 *
 * With a cluster secret on the loop (net_loop_set_secret), each new
 * connection first runs the net_auth.h handshake (then HELLO, then the
 * queued requests); a failed handshake fails the queued requests with
 * Q_EAUTH. Sealed records follow if either side asked for encryption.
 *
 * Request outcome: net_pool_request() either refuses the request at once
 * (negative return; the callback will never run) or accepts it (return 0;
 * the callback runs exactly once, later, on the loop thread, never from
 * inside net_pool_request). The callback's status is:
 *   0             resp holds the decoded response message
 *   < 0 remote    the peer answered ERROR: status is its code, resp holds
 *                 the ERROR message (text explains)
 *   Q_ETIMEOUT    no response within timeout_ms (a late response is ignored)
 *   Q_ECLOSED     the connection closed before the response (or the pool
 *                 was closed)
 *   -ECONNREFUSED etc.  connecting failed
 *   Q_EPROTO      the peer sent a malformed frame (the connection is closed)
 * After a connection fails, the next request to that peer connects anew.
 *
 * Backpressure: per connection at most max_inflight requests may be
 * outstanding and at most max_wq_bytes of request frames waiting to be
 * written; a request over either bound is refused with Q_EBUSY. A request
 * whose encoding exceeds the frame limit is refused with Q_ETOOBIG.
 *
 * Ownership: net_pool_request encodes msg into its own buffer before
 * returning; the caller's msg and its slices are not used afterwards. resp
 * given to the callback, and every slice in it, are valid only during the
 * callback; copy what you keep.
 *
 * Threading: net_pool_new, net_pool_request, net_pool_close: loop thread
 * only. net_pool_call: any thread except the loop thread.
 */
#ifndef Q_NET_POOL_H
#define Q_NET_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_loop.h"
#include "net/net_msg.h"
#include "util/buf.h"

typedef struct net_pool net_pool;

typedef struct net_pool_opts {
	size_t max_inflight;        /* per connection; 0 = 1024 */
	size_t max_wq_bytes;        /* per connection; 0 = 128 MiB */
	size_t max_payload;         /* responses over this are Q_ETOOBIG; 0 = NET_MAX_PAYLOAD */
	uint64_t connect_timeout_ms;/* 0 = 2000 */
	const char *node_id;        /* if set, HELLO is sent on each new connection */
	const char *listen_addr;    /* advertised in HELLO */
} net_pool_opts;

/* The callback of one request; see "Request outcome". */
typedef void (*net_resp_fn)(void *arg, int status, const net_msg *resp);

/* Loop thread only. The pool keeps o's strings by copy. */
int net_pool_new(net_loop *l, const net_pool_opts *o, net_pool **out);

/* Sends msg to the peer at addr ("host:port") with timeout_ms (0 = 5000).
 * Returns 0 (cb will run exactly once) or a refusal: Q_EBUSY, Q_ETOOBIG,
 * Q_EPROTO (msg not encodable), -EINVAL (bad address), Q_ECLOSED,
 * -ENOMEM. Loop thread only. */
int net_pool_request(net_pool *p, const char *addr, const net_msg *msg, uint64_t timeout_ms,
		     net_resp_fn cb, void *arg);

/* Blocking form for threads other than the loop thread: posts the request
 * to the loop and waits for its outcome. On return 0 or a remote ERROR code,
 * *resp is decoded from *resp_buf (which receives a copy of the response
 * payload): the caller owns both and frees them with net_msg_clear() and
 * q_buf_free(). On other errors *resp is cleared. Never blocks longer than
 * the request's timeout plus scheduling delay. */
int net_pool_call(net_loop *l, net_pool *p, const char *addr, const net_msg *msg,
		  uint64_t timeout_ms, net_msg *resp, q_buf *resp_buf);

/* Fails every outstanding request with Q_ECLOSED (callbacks run before this
 * returns or on the next loop iterations), closes every connection and frees
 * the pool once their handles have closed. Loop thread only. */
void net_pool_close(net_pool *p);

typedef struct net_pool_stats {
	uint64_t connects, requests, responses, timeouts, refused_busy;
	uint64_t writes;      /* output buffer flushes (one write each) */
	size_t open_conns;
} net_pool_stats;
void net_pool_get_stats(const net_pool *p, net_pool_stats *st);

#endif
