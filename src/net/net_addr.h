/*
 * net_addr.h - "host:port" addresses.
 *
 * Accepted forms: "1.2.3.4:5", "[::1]:5", "localhost:5" (127.0.0.1). Host
 * names other than localhost are not resolved here (no blocking DNS on the
 * loop thread); configs name peers by address. Port 0 is accepted only with
 * allow_port0 (a server asking the kernel for a free port).
 *
 * Threading: pure, thread-safe.
 */
#ifndef Q_NET_ADDR_H
#define Q_NET_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define NET_ADDR_DEFAULT_HOST "127.0.0.1"

/* Returns 0 or -EINVAL (malformed text, port out of range). */
int net_addr_parse(const char *text, int allow_port0, struct sockaddr_storage *out);

/* Formats sa as "host:port" into buf (size >= NET_ADDR_STRLEN). Returns 0
 * or -EINVAL (unknown family). */
#define NET_ADDR_STRLEN 64
int net_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* 1 if text parses as an address on the loopback network (127.0.0.0/8,
 * ::1, ::ffff:127.x.y.z; "localhost"), else 0 (0.0.0.0 and :: are not
 * loopback: they listen on every interface). */
int net_addr_is_loopback(const char *text);

#endif
