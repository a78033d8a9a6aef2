/*
 * net_addr.c - parsing and formatting "host:port" (see net_addr.h).
 * Pure functions, no name resolution except the literal "localhost".
 */
#include "net/net_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, int allow0, uint16_t *out)
{
	if (!*s || strlen(s) > 5)
		return -EINVAL;
	unsigned long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535 || (v == 0 && !allow0))
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int net_addr_parse(const char *text, int allow_port0, struct sockaddr_storage *out)
{
	char host[NET_ADDR_STRLEN];
	const char *port;
	if (!text)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = 0;
		port = close + 2;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
		uint16_t p;
		if (parse_port(port, allow_port0, &p) || inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(p);
		return 0;
	}
	const char *colon = strrchr(text, ':');
	if (!colon || colon == text || (size_t)(colon - text) >= sizeof host)
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	port = colon + 1;
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	uint16_t p;
	if (parse_port(port, allow_port0, &p))
		return -EINVAL;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return -EINVAL;
	a4->sin_family = AF_INET;
	a4->sin_port = htons(p);
	return 0;
}

int net_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
		if (!inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host))
			return -EINVAL;
		snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
		if (!inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host))
			return -EINVAL;
		snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
		return 0;
	}
	return -EINVAL;
}

int net_addr_is_loopback(const char *text)
{
	struct sockaddr_storage ss;
	if (net_addr_parse(text, 1, &ss) < 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			return a->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}
