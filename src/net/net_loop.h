/*
 * net_loop.h - one libuv event loop on its own thread, and the way other
 * threads hand work to it.
 *
 * A node process runs exactly one net_loop: all sockets, timers and the
 * coordinator's state machines live on its thread ("the loop thread").
 * Other threads (FUSE workers, disk workers, tests) never touch loop-owned
 * state; they post a function with net_loop_post(), which runs it on the
 * loop thread, in posting order.
 *
 * Backpressure: the post queue is a fixed-capacity ring (queue_cap entries)
 * protected by a mutex; when it is full net_loop_post returns Q_EBUSY at once
 * and the function is not queued. Nothing in this module grows without
 * bound.
 *
 * Lifecycle:
 *   net_loop_start()  creates the loop and starts its thread.
 *   net_loop_post()   any thread, any time before stop.
 *   net_loop_stop()   from a thread other than the loop thread: refuses new
 *                     posts (Q_ECLOSED), runs the functions already queued,
 *                     then runs the loop until every handle is closed, joins
 *                     the thread and frees everything. Servers and pools
 *                     living on the loop must be closed (net_server_close,
 *                     net_pool_close, posted or via net_loop_call) before
 *                     stop; handles still open at stop are closed forcibly
 *                     (their owners' memory is then leaked, a caller bug).
 *
 * Threading: net_loop_post, net_loop_call, net_loop_on_thread are
 * thread-safe. net_loop_uv's loop may be used only on the loop thread.
 */
#ifndef Q_NET_LOOP_H
#define Q_NET_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/net_auth.h"

typedef struct net_loop net_loop;

typedef void (*net_loop_fn)(void *arg);

#define NET_LOOP_QUEUE_DEFAULT 4096

/* Starts the loop thread. queue_cap: post queue capacity (0 = default).
 * name: thread name for debuggers (may be NULL). */
int net_loop_start(size_t queue_cap, const char *name, net_loop **out);

/* Queues fn(arg) to run on the loop thread. Returns 0 (fn will run exactly
 * once), Q_EBUSY (queue full, fn will not run), Q_ECLOSED (loop stopping).
 * arg is owned by the caller; fn typically frees it. Safe from the loop
 * thread too (fn then runs on a later loop iteration). */
int net_loop_post(net_loop *l, net_loop_fn fn, void *arg);

/* Posts fn(arg) and blocks until it has run. Must not be called from the
 * loop thread (-EDEADLK). Returns net_loop_post's error, else 0. */
int net_loop_call(net_loop *l, net_loop_fn fn, void *arg);

/* 1 if the calling thread is this loop's thread. */
int net_loop_on_thread(const net_loop *l);

/* The libuv loop; only for code running on the loop thread. */
uv_loop_t *net_loop_uv(net_loop *l);

/* The cluster secret of connections on this loop (net_auth.h): every
 * server started on the loop requires the handshake before any other
 * frame, every pool runs it on each connection it opens. Call before any
 * server or pool starts on the loop; key (NET_AUTH_KEY_LEN bytes) is copied
 * into guarded memory (sodium_malloc); NULL clears it. Returns 0, -ENOMEM
 * or -EIO (libsodium unusable): the caller must not run without it then. */
int net_loop_set_secret(net_loop *l, const uint8_t *key);
/* With a secret: 1 = this side asks for transport encryption on every
 * connection (net_auth.h NET_AUTH_F_ENCRYPT; the connection is encrypted if
 * either side asks). Before servers and pools start. */
void net_loop_set_encrypt(net_loop *l, int on);
int net_loop_encrypt(const net_loop *l);
/* The secret, or NULL when none is set. Loop thread (or before start of
 * servers and pools). */
const uint8_t *net_loop_secret(const net_loop *l);
/* Handshake counters of this loop's servers and pools. Any thread. */
void net_loop_auth_stats(const net_loop *l, net_auth_stats *out);

/* Request latency histograms of the servers on this loop: time from a
 * request frame's dispatch to its reply (or drop), per request kind.
 * Bucket i counts requests with latency <= net_lat_bounds_us[i] (not
 * cumulative; the last bucket is everything above the last bound). */
enum net_lat_kind {
	NET_LAT_KV_GET, NET_LAT_KV_PUT, NET_LAT_KV_DELETE, NET_LAT_KV_MGET,
	NET_LAT_REPL_GET, NET_LAT_REPL_PUT, NET_LAT_REPL_MGET, NET_LAT_HINT_PUT,
	NET_LAT_OTHER, NET_LAT_N
};
#define NET_LAT_BUCKETS 15
extern const uint64_t net_lat_bounds_us[NET_LAT_BUCKETS - 1];
typedef struct net_lat_hist {
	uint64_t count;      /* requests answered or dropped */
	uint64_t errors;     /* answered with ERROR, or dropped */
	uint64_t sum_us;
	uint64_t bucket[NET_LAT_BUCKETS];
} net_lat_hist;
/* "kv_get", ...; NULL for an out-of-range kind. */
const char *net_lat_kind_name(int kind);
/* Copies the histogram of kind (any thread; fields read one by one). */
void net_loop_lat_get(const net_loop *l, int kind, net_lat_hist *out);
/* Records one request (loop thread; used by net_server). */
void net_loop_lat_note(net_loop *l, int kind, uint64_t us, int error);

/* Stops and frees the loop (see Lifecycle). Not from the loop thread. */
void net_loop_stop(net_loop *l);

#endif
