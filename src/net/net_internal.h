/*
 * net_internal.h - helpers shared by the net module's .c files only: an
 * intrusive doubly linked list and container_of.
 *
 * A list head is a net_link whose prev/next point to itself when empty.
 * Threading: none; lists belong to the loop thread.
 */
#ifndef Q_NET_INTERNAL_H
#define Q_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define NET_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct net_link {
	struct net_link *prev, *next;
} net_link;

static inline void net_list_init(net_link *h)
{
	h->prev = h->next = h;
}

static inline int net_list_empty(const net_link *h)
{
	return h->next == h;
}

static inline void net_list_push(net_link *h, net_link *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void net_list_del(net_link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* Rate limit for log lines a remote peer can trigger (bad handshakes):
 * at most NET_RATELOG_MAX lines per NET_RATELOG_MS window. */
#define NET_RATELOG_MAX 5
#define NET_RATELOG_MS 10000
typedef struct net_ratelog {
	uint64_t window_ms;
	unsigned n;
	uint64_t suppressed;
} net_ratelog;

/* 1 if a line may be logged at now_ms. When a new window opens, *dropped
 * gets the number of lines suppressed in the previous one (else 0). */
static inline int net_ratelog_allow(net_ratelog *r, uint64_t now_ms, uint64_t *dropped)
{
	*dropped = 0;
	if (now_ms - r->window_ms >= NET_RATELOG_MS || r->window_ms == 0) {
		*dropped = r->suppressed;
		r->window_ms = now_ms ? now_ms : 1;
		r->n = 0;
		r->suppressed = 0;
	}
	if (r->n >= NET_RATELOG_MAX) {
		r->suppressed++;
		return 0;
	}
	r->n++;
	return 1;
}

/* Handshake counters (net_loop.c), bumped on the loop thread. */
enum net_auth_event { NET_AUTH_EV_OK, NET_AUTH_EV_FAILED, NET_AUTH_EV_UNAUTH };
struct net_loop;
void net_loop_auth_note(struct net_loop *l, enum net_auth_event ev);

#endif
