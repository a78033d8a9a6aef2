/*
 * coding.h - fixed-width little-endian and varint coding.
 *
 * Encoders either write into caller memory (q_enc_*: the caller guarantees
 * room, at most Q_VARINT64_MAX bytes for a varint) or append to a q_buf
 * (q_put_*: -ENOMEM on allocation failure).
 *
 * Decoding goes through a q_reader, a cursor over borrowed memory. Every
 * q_get_* checks bounds and returns Q_ETRUNC when input ends early and
 * Q_ECORRUPT for an overlong varint; on error the cursor does not move.
 * Decoders are pure functions of their input, safe to fuzz.
 */
#ifndef Q_CODING_H
#define Q_CODING_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define Q_VARINT32_MAX 5
#define Q_VARINT64_MAX 10

static inline void q_enc_fixed16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void q_enc_fixed32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void q_enc_fixed64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t q_dec_fixed16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t q_dec_fixed32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t q_dec_fixed64(const uint8_t *p)
{
	return (uint64_t)q_dec_fixed32(p) | ((uint64_t)q_dec_fixed32(p + 4) << 32);
}

/* Writes v as a varint at p; returns bytes written (1..10). */
size_t q_enc_varint64(uint8_t *p, uint64_t v);
size_t q_varint_len(uint64_t v);

int q_put_fixed16(q_buf *b, uint16_t v);
int q_put_fixed32(q_buf *b, uint32_t v);
int q_put_fixed64(q_buf *b, uint64_t v);
int q_put_varint(q_buf *b, uint64_t v);
/* varint length, then the bytes. */
int q_put_lenbytes(q_buf *b, const void *p, size_t n);

typedef struct q_reader {
	const uint8_t *p;
	const uint8_t *end;
} q_reader;

static inline q_reader q_reader_make(const void *p, size_t n)
{
	q_reader r = {(const uint8_t *)p, (const uint8_t *)p + n};
	return r;
}
static inline size_t q_reader_left(const q_reader *r)
{
	return (size_t)(r->end - r->p);
}

int q_get_u8(q_reader *r, uint8_t *v);
int q_get_fixed16(q_reader *r, uint16_t *v);
int q_get_fixed32(q_reader *r, uint32_t *v);
int q_get_fixed64(q_reader *r, uint64_t *v);
int q_get_varint64(q_reader *r, uint64_t *v);
/* Varint that must fit in 32 bits (Q_ECORRUPT otherwise). */
int q_get_varint32(q_reader *r, uint32_t *v);
/* n raw bytes, returned as a slice into the input (no copy). */
int q_get_bytes(q_reader *r, size_t n, q_slice *out);
/* varint length then bytes; lengths above max give Q_ETOOBIG. */
int q_get_lenbytes(q_reader *r, size_t max, q_slice *out);

/* Canonical forms, for formats where one value has exactly one encoding
 * (so a decoded record re-encodes to the same bytes): as above, but an
 * overlong varint (e.g. 0x80 0x00 for 0) is Q_ECORRUPT. */
int q_get_varint_canon(q_reader *r, uint64_t *v);
int q_get_lenbytes_canon(q_reader *r, size_t max, q_slice *out);

#endif
