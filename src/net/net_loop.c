/*
 * net_loop.c - the loop thread and its bounded post queue (see net_loop.h).
 *
 * Invariants:
 *  - q[head .. head+count) (mod cap) holds posted, not yet run functions;
 *    count <= cap always (a full queue refuses with Q_EBUSY).
 *  - Once `closing` is set no post is accepted; the loop thread drains what
 *    is queued, closes the async handle and lets uv_run return when every
 *    other handle has closed too.
 *  - The async handle is touched by other threads only through uv_async_send
 *    (thread-safe in libuv), and only while holding mu with closing unset,
 *    so it is never signalled after it was closed.
 *
 * Threading: mu protects q, head, count, closing. Everything else is owned
 * by the loop thread after start.
 */
#include "net/net_loop.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"
#include "util/log.h"
#include "util/qerr.h"

struct post_item {
	net_loop_fn fn;
	void *arg;
};

struct net_loop {
	uv_loop_t uv;
	uv_async_t async;
	uv_thread_t thread;
	uv_thread_t self; /* the loop thread's id, valid after started */
	char name[16];

	pthread_mutex_t mu;
	pthread_cond_t started_cv;
	int started;
	int closing;
	struct post_item *q;
	size_t cap, head, count;

	/* cluster secret (sodium_malloc'ed, guarded; NULL = none) and the
	 * handshake counters (atomics) */
	uint8_t *secret;
	int encrypt;
	net_auth_stats auth;
	net_lat_hist lat[NET_LAT_N]; /* written on the loop thread, atomics */
};

const uint64_t net_lat_bounds_us[NET_LAT_BUCKETS - 1] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000,
};

static const char *const lat_names[NET_LAT_N] = {
	"kv_get", "kv_put", "kv_delete", "kv_mget", "repl_get", "repl_put", "repl_mget",
	"hint_put", "other",
};

/* Runs every queued function; returns 1 if the loop is closing and the
 * queue is now empty. */
static int drain(net_loop *l)
{
	for (;;) {
		pthread_mutex_lock(&l->mu);
		if (l->count == 0) {
			int closing = l->closing;
			pthread_mutex_unlock(&l->mu);
			return closing;
		}
		struct post_item it = l->q[l->head];
		l->head = (l->head + 1) % l->cap;
		l->count--;
		pthread_mutex_unlock(&l->mu);
		it.fn(it.arg);
	}
}

static void force_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		Q_WARN("net", "loop stop: closing a handle left open (type %s)",
		       uv_handle_type_name(uv_handle_get_type(h)));
		uv_close(h, NULL);
	}
}

static void async_cb(uv_async_t *a)
{
	net_loop *l = a->data;
	if (drain(l) && !uv_is_closing((uv_handle_t *)&l->async)) {
		uv_close((uv_handle_t *)&l->async, NULL);
		/* Handles a caller left open would keep uv_run going forever;
		 * loop_main closes them after this pass. */
		uv_stop(&l->uv);
	}
}

static void loop_main(void *arg)
{
	net_loop *l = arg;
	pthread_mutex_lock(&l->mu);
	l->self = uv_thread_self();
	l->started = 1;
	pthread_cond_broadcast(&l->started_cv);
	pthread_mutex_unlock(&l->mu);
	if (l->name[0])
		pthread_setname_np(pthread_self(), l->name);

	uv_run(&l->uv, UV_RUN_DEFAULT);
	/* uv_run returned: the async handle is closing. Let pending close
	 * callbacks run, then close whatever a caller left open so the loop can
	 * be freed. */
	uv_run(&l->uv, UV_RUN_NOWAIT);
	uv_walk(&l->uv, force_close_cb, NULL);
	uv_run(&l->uv, UV_RUN_DEFAULT);
}

int net_loop_start(size_t queue_cap, const char *name, net_loop **out)
{
	int rc;
	net_loop *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->cap = queue_cap ? queue_cap : NET_LOOP_QUEUE_DEFAULT;
	l->q = calloc(l->cap, sizeof *l->q);
	if (!l->q) {
		free(l);
		return -ENOMEM;
	}
	if (name)
		snprintf(l->name, sizeof l->name, "%s", name);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->started_cv, NULL);
	Q_ERR(uv_loop_init(&l->uv));
	rc = uv_async_init(&l->uv, &l->async, async_cb);
	if (rc < 0) {
		uv_loop_close(&l->uv);
		goto fail;
	}
	l->async.data = l;
	rc = uv_thread_create(&l->thread, loop_main, l);
	if (rc < 0) {
		uv_close((uv_handle_t *)&l->async, NULL);
		uv_run(&l->uv, UV_RUN_DEFAULT);
		uv_loop_close(&l->uv);
		goto fail;
	}
	pthread_mutex_lock(&l->mu);
	while (!l->started)
		pthread_cond_wait(&l->started_cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
	*out = l;
	return 0;
fail:
	pthread_cond_destroy(&l->started_cv);
	pthread_mutex_destroy(&l->mu);
	free(l->q);
	free(l);
	return rc;
}

int net_loop_post(net_loop *l, net_loop_fn fn, void *arg)
{
	pthread_mutex_lock(&l->mu);
	if (l->closing) {
		pthread_mutex_unlock(&l->mu);
		return Q_ECLOSED;
	}
	if (l->count == l->cap) {
		pthread_mutex_unlock(&l->mu);
		return Q_EBUSY;
	}
	l->q[(l->head + l->count) % l->cap] = (struct post_item){fn, arg};
	l->count++;
	uv_async_send(&l->async);
	pthread_mutex_unlock(&l->mu);
	return 0;
}

struct call_wait {
	net_loop_fn fn;
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void call_tramp(void *arg)
{
	struct call_wait *w = arg;
	w->fn(w->arg);
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int net_loop_call(net_loop *l, net_loop_fn fn, void *arg)
{
	if (net_loop_on_thread(l))
		return -EDEADLK;
	struct call_wait w = {.fn = fn, .arg = arg, .done = 0};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	int rc = net_loop_post(l, call_tramp, &w);
	if (rc == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return rc;
}

int net_loop_on_thread(const net_loop *l)
{
	uv_thread_t me = uv_thread_self();
	return uv_thread_equal(&me, &l->self);
}

uv_loop_t *net_loop_uv(net_loop *l)
{
	return &l->uv;
}

void net_loop_stop(net_loop *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->closing = 1;
	uv_async_send(&l->async);
	pthread_mutex_unlock(&l->mu);
	uv_thread_join(&l->thread);
	if (uv_loop_close(&l->uv) != 0)
		Q_WARN("net", "loop stop: uv_loop_close reported busy handles");
	pthread_cond_destroy(&l->started_cv);
	pthread_mutex_destroy(&l->mu);
	net_loop_set_secret(l, NULL);
	free(l->q);
	free(l);
}

int net_loop_set_secret(net_loop *l, const uint8_t *key)
{
	if (l->secret) {
		sodium_free(l->secret); /* wipes it */
		l->secret = NULL;
	}
	if (!key)
		return 0;
	if (net_auth_init() < 0)
		return -EIO;
	l->secret = sodium_malloc(NET_AUTH_KEY_LEN);
	if (!l->secret)
		return -ENOMEM;
	memcpy(l->secret, key, NET_AUTH_KEY_LEN);
	return 0;
}

void net_loop_set_encrypt(net_loop *l, int on)
{
	l->encrypt = on ? 1 : 0;
}

int net_loop_encrypt(const net_loop *l)
{
	return l->encrypt;
}

const uint8_t *net_loop_secret(const net_loop *l)
{
	return l->secret;
}

void net_loop_auth_note(net_loop *l, enum net_auth_event ev)
{
	uint64_t *c = ev == NET_AUTH_EV_OK ? &l->auth.ok
		      : ev == NET_AUTH_EV_FAILED ? &l->auth.failed : &l->auth.unauth_frames;
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

void net_loop_auth_stats(const net_loop *l, net_auth_stats *out)
{
	out->ok = __atomic_load_n(&l->auth.ok, __ATOMIC_RELAXED);
	out->failed = __atomic_load_n(&l->auth.failed, __ATOMIC_RELAXED);
	out->unauth_frames = __atomic_load_n(&l->auth.unauth_frames, __ATOMIC_RELAXED);
}

const char *net_lat_kind_name(int kind)
{
	return kind >= 0 && kind < NET_LAT_N ? lat_names[kind] : NULL;
}

void net_loop_lat_note(net_loop *l, int kind, uint64_t us, int error)
{
	if (kind < 0 || kind >= NET_LAT_N)
		kind = NET_LAT_OTHER;
	net_lat_hist *h = &l->lat[kind];
	size_t b = 0;
	while (b < NET_LAT_BUCKETS - 1 && us > net_lat_bounds_us[b])
		b++;
	__atomic_add_fetch(&h->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->sum_us, us, __ATOMIC_RELAXED);
	if (error)
		__atomic_add_fetch(&h->errors, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->count, 1, __ATOMIC_RELEASE);
}

void net_loop_lat_get(const net_loop *l, int kind, net_lat_hist *out)
{
	memset(out, 0, sizeof *out);
	if (kind < 0 || kind >= NET_LAT_N)
		return;
	const net_lat_hist *h = &l->lat[kind];
	out->count = __atomic_load_n(&h->count, __ATOMIC_ACQUIRE);
	out->errors = __atomic_load_n(&h->errors, __ATOMIC_RELAXED);
	out->sum_us = __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED);
	for (size_t i = 0; i < NET_LAT_BUCKETS; i++)
		out->bucket[i] = __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
}
