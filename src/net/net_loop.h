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
#include <uv.h>

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

/* Stops and frees the loop (see Lifecycle). Not from the loop thread. */
void net_loop_stop(net_loop *l);

#endif
