/*
 * coding.c - fixed-width and varint coding (see coding.h).
 */
#include "util/coding.h"

#include "util/qerr.h"

size_t q_enc_varint64(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

size_t q_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

int q_put_fixed16(q_buf *b, uint16_t v)
{
	uint8_t t[2];
	q_enc_fixed16(t, v);
	return q_buf_append(b, t, sizeof(t));
}

int q_put_fixed32(q_buf *b, uint32_t v)
{
	uint8_t t[4];
	q_enc_fixed32(t, v);
	return q_buf_append(b, t, sizeof(t));
}

int q_put_fixed64(q_buf *b, uint64_t v)
{
	uint8_t t[8];
	q_enc_fixed64(t, v);
	return q_buf_append(b, t, sizeof(t));
}

int q_put_varint(q_buf *b, uint64_t v)
{
	uint8_t t[Q_VARINT64_MAX];
	return q_buf_append(b, t, q_enc_varint64(t, v));
}

int q_put_lenbytes(q_buf *b, const void *p, size_t n)
{
	int rc = q_put_varint(b, n);
	if (rc)
		return rc;
	return q_buf_append(b, p, n);
}

int q_get_u8(q_reader *r, uint8_t *v)
{
	if (r->p >= r->end)
		return Q_ETRUNC;
	*v = *r->p++;
	return 0;
}

int q_get_fixed16(q_reader *r, uint16_t *v)
{
	if (q_reader_left(r) < 2)
		return Q_ETRUNC;
	*v = q_dec_fixed16(r->p);
	r->p += 2;
	return 0;
}

int q_get_fixed32(q_reader *r, uint32_t *v)
{
	if (q_reader_left(r) < 4)
		return Q_ETRUNC;
	*v = q_dec_fixed32(r->p);
	r->p += 4;
	return 0;
}

int q_get_fixed64(q_reader *r, uint64_t *v)
{
	if (q_reader_left(r) < 8)
		return Q_ETRUNC;
	*v = q_dec_fixed64(r->p);
	r->p += 8;
	return 0;
}

int q_get_varint64(q_reader *r, uint64_t *v)
{
	uint64_t x = 0;
	const uint8_t *p = r->p;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (p >= r->end)
			return Q_ETRUNC;
		uint8_t c = *p++;
		if (shift == 63 && c > 1)
			return Q_ECORRUPT;
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			r->p = p;
			return 0;
		}
	}
	return Q_ECORRUPT;
}

int q_get_varint32(q_reader *r, uint32_t *v)
{
	q_reader save = *r;
	uint64_t x;
	int rc = q_get_varint64(r, &x);
	if (rc)
		return rc;
	if (x > UINT32_MAX) {
		*r = save;
		return Q_ECORRUPT;
	}
	*v = (uint32_t)x;
	return 0;
}

int q_get_bytes(q_reader *r, size_t n, q_slice *out)
{
	if (q_reader_left(r) < n)
		return Q_ETRUNC;
	out->p = r->p;
	out->n = n;
	r->p += n;
	return 0;
}

int q_get_lenbytes(q_reader *r, size_t max, q_slice *out)
{
	q_reader save = *r;
	uint64_t n;
	int rc = q_get_varint64(r, &n);
	if (rc)
		return rc;
	if (n > max) {
		*r = save;
		return Q_ETOOBIG;
	}
	rc = q_get_bytes(r, (size_t)n, out);
	if (rc)
		*r = save;
	return rc;
}

int q_get_varint_canon(q_reader *r, uint64_t *v)
{
	q_reader save = *r;
	int rc = q_get_varint64(r, v);
	if (rc)
		return rc;
	if ((size_t)(r->p - save.p) != q_varint_len(*v)) {
		*r = save;
		return Q_ECORRUPT;
	}
	return 0;
}

int q_get_lenbytes_canon(q_reader *r, size_t max, q_slice *out)
{
	q_reader save = *r;
	uint64_t n;
	int rc = q_get_varint_canon(r, &n);
	if (rc)
		return rc;
	*r = save;
	return q_get_lenbytes(r, max, out);
}
