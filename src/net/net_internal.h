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

#endif
