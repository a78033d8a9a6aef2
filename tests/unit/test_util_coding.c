/* Unit tests for src/util/coding.c. */
#include "qtest.h"
#include "util/coding.h"
#include "util/qerr.h"

QTEST(fixed_roundtrip)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(q_put_fixed16(&b, 0xbeef));
	ASSERT_OK(q_put_fixed32(&b, 0xdeadbeef));
	ASSERT_OK(q_put_fixed64(&b, 0x0123456789abcdefull));
	ASSERT_EQ(b.len, 14);
	ASSERT_EQ(b.p[0], 0xef); /* little endian */
	q_reader r = q_reader_make(b.p, b.len);
	uint16_t a;
	uint32_t c;
	uint64_t d;
	ASSERT_OK(q_get_fixed16(&r, &a));
	ASSERT_OK(q_get_fixed32(&r, &c));
	ASSERT_OK(q_get_fixed64(&r, &d));
	ASSERT_EQ(a, 0xbeef);
	ASSERT_U64_EQ(c, 0xdeadbeef);
	ASSERT_U64_EQ(d, 0x0123456789abcdefull);
	ASSERT_EQ(q_get_fixed32(&r, &c), Q_ETRUNC);
	q_buf_free(&b);
}

QTEST(varint_roundtrip_and_lengths)
{
	uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1ull << 32) - 1, 1ull << 32,
			   (1ull << 63), UINT64_MAX};
	q_buf b = Q_BUF_INIT;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		size_t before = b.len;
		ASSERT_OK(q_put_varint(&b, vals[i]));
		ASSERT_EQ(b.len - before, q_varint_len(vals[i]));
	}
	ASSERT_EQ(q_varint_len(UINT64_MAX), 10);
	q_reader r = q_reader_make(b.p, b.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t v;
		ASSERT_OK(q_get_varint64(&r, &v));
		ASSERT_U64_EQ(v, vals[i]);
	}
	ASSERT_EQ(q_reader_left(&r), 0);
	q_buf_free(&b);
}

QTEST(varint_rejects_bad_input)
{
	uint64_t v;
	uint32_t v32;
	/* truncated: continuation bit on the last byte */
	uint8_t t1[] = {0x80, 0x80};
	q_reader r = q_reader_make(t1, sizeof(t1));
	ASSERT_EQ(q_get_varint64(&r, &v), Q_ETRUNC);
	ASSERT_EQ(q_reader_left(&r), 2); /* cursor unmoved */
	/* overlong: 11 bytes */
	uint8_t t2[11];
	memset(t2, 0xff, sizeof(t2));
	r = q_reader_make(t2, sizeof(t2));
	ASSERT_EQ(q_get_varint64(&r, &v), Q_ECORRUPT);
	/* 10th byte above 1 overflows 64 bits */
	uint8_t t3[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
	r = q_reader_make(t3, sizeof(t3));
	ASSERT_EQ(q_get_varint64(&r, &v), Q_ECORRUPT);
	/* 32-bit overflow */
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(q_put_varint(&b, 1ull << 32));
	r = q_reader_make(b.p, b.len);
	ASSERT_EQ(q_get_varint32(&r, &v32), Q_ECORRUPT);
	ASSERT_EQ(q_reader_left(&r), b.len);
	q_buf_free(&b);
}

QTEST(lenbytes_limits)
{
	q_buf b = Q_BUF_INIT;
	ASSERT_OK(q_put_lenbytes(&b, "hello", 5));
	q_reader r = q_reader_make(b.p, b.len);
	q_slice s;
	ASSERT_EQ(q_get_lenbytes(&r, 4, &s), Q_ETOOBIG);
	ASSERT_EQ(q_reader_left(&r), 6);
	ASSERT_OK(q_get_lenbytes(&r, 5, &s));
	ASSERT_EQ(s.n, 5);
	ASSERT_MEMEQ(s.p, "hello", 5);
	/* length claims more than present */
	r = q_reader_make(b.p, b.len - 1);
	ASSERT_EQ(q_get_lenbytes(&r, 100, &s), Q_ETRUNC);
	ASSERT_EQ(q_reader_left(&r), 5);
	q_buf_free(&b);
}

QTEST(canonical_readers_refuse_overlong)
{
	uint64_t v;
	q_slice s;
	uint8_t zero_long[] = {0x80, 0x00};      /* 0 in two bytes */
	q_reader r = q_reader_make(zero_long, sizeof(zero_long));
	ASSERT_OK(q_get_varint64(&r, &v));       /* the lenient reader takes it */
	r = q_reader_make(zero_long, sizeof(zero_long));
	ASSERT_EQ(q_get_varint_canon(&r, &v), Q_ECORRUPT);
	ASSERT_EQ(q_reader_left(&r), 2);         /* cursor unmoved */
	uint8_t ok[] = {0xac, 0x02};             /* 300, shortest form */
	r = q_reader_make(ok, sizeof(ok));
	ASSERT_OK(q_get_varint_canon(&r, &v));
	ASSERT_U64_EQ(v, 300);
	uint8_t len_long[] = {0x82, 0x00, 'h', 'i'}; /* length 2 in two bytes */
	r = q_reader_make(len_long, sizeof(len_long));
	ASSERT_EQ(q_get_lenbytes_canon(&r, 16, &s), Q_ECORRUPT);
	ASSERT_EQ(q_reader_left(&r), 4);
	uint8_t len_ok[] = {0x02, 'h', 'i'};
	r = q_reader_make(len_ok, sizeof(len_ok));
	ASSERT_OK(q_get_lenbytes_canon(&r, 16, &s));
	ASSERT_EQ(s.n, 2);
	r = q_reader_make(len_ok, sizeof(len_ok));
	ASSERT_EQ(q_get_lenbytes_canon(&r, 1, &s), Q_ETOOBIG);
}

QTEST_MAIN(QT(canonical_readers_refuse_overlong), QT(fixed_roundtrip), QT(varint_roundtrip_and_lengths), QT(varint_rejects_bad_input),
	   QT(lenbytes_limits))
