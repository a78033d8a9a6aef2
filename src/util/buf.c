/*
 * buf.c - byte slices and growable buffers (see buf.h).
 */
#include "util/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

q_slice q_slice_str(const char *s)
{
	return q_slice_make(s, strlen(s));
}

int q_slice_cmp(q_slice a, q_slice b)
{
	size_t n = a.n < b.n ? a.n : b.n;
	int c = n ? memcmp(a.p, b.p, n) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

int q_slice_eq(q_slice a, q_slice b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

uint8_t *q_slice_dup(q_slice s)
{
	uint8_t *p = malloc(s.n + 1);
	if (!p)
		return NULL;
	if (s.n)
		memcpy(p, s.p, s.n);
	p[s.n] = 0;
	return p;
}

void q_buf_init(q_buf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
}

void q_buf_free(q_buf *b)
{
	free(b->p);
	q_buf_init(b);
}

void q_buf_reset(q_buf *b)
{
	b->len = 0;
}

int q_buf_reserve(q_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int q_buf_append(q_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = q_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int q_buf_append_byte(q_buf *b, uint8_t c)
{
	return q_buf_append(b, &c, 1);
}

int q_buf_printf(q_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	int rc = q_buf_reserve(b, (size_t)n + 1);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

uint8_t *q_buf_steal(q_buf *b, size_t *len)
{
	uint8_t *p = b->p;
	if (len)
		*len = b->len;
	q_buf_init(b);
	return p;
}
