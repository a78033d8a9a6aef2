/*
 * buf.h - byte slices and growable byte buffers.
 *
 * q_slice is a borrowed view: it owns nothing and is valid only as long as
 * the memory it points at. q_buf owns its heap memory; free it with
 * q_buf_free(). Appends grow the buffer geometrically; on allocation failure
 * they return -ENOMEM and leave the buffer unchanged.
 *
 * Thread safety: none; a buffer belongs to one thread at a time.
 */
#ifndef Q_BUF_H
#define Q_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct q_slice {
	const uint8_t *p;
	size_t n;
} q_slice;

typedef struct q_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
} q_buf;

#define Q_BUF_INIT {NULL, 0, 0}

static inline q_slice q_slice_make(const void *p, size_t n)
{
	q_slice s = {(const uint8_t *)p, n};
	return s;
}
q_slice q_slice_str(const char *s);
/* memcmp order, shorter first on a common prefix. */
int q_slice_cmp(q_slice a, q_slice b);
int q_slice_eq(q_slice a, q_slice b);
/* Heap copy of a slice, NUL-terminated for convenience; caller frees. */
uint8_t *q_slice_dup(q_slice s);

void q_buf_init(q_buf *b);
void q_buf_free(q_buf *b);
void q_buf_reset(q_buf *b);
int q_buf_reserve(q_buf *b, size_t extra);
int q_buf_append(q_buf *b, const void *p, size_t n);
int q_buf_append_byte(q_buf *b, uint8_t c);
int q_buf_printf(q_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline q_slice q_buf_slice(const q_buf *b)
{
	return q_slice_make(b->p, b->len);
}
/* Hands the memory to the caller (who frees it) and empties the buffer. */
uint8_t *q_buf_steal(q_buf *b, size_t *len);

#endif
