/* Unit tests for src/util/buf.c and qerr.c. */
#include "qtest.h"
#include "util/buf.h"
#include "util/qerr.h"

QTEST(buf_append_grows)
{
	q_buf b = Q_BUF_INIT;
	for (int i = 0; i < 10000; i++)
		ASSERT_OK(q_buf_append_byte(&b, (uint8_t)i));
	ASSERT_EQ(b.len, 10000);
	ASSERT(b.cap >= 10000);
	for (int i = 0; i < 10000; i++)
		ASSERT_EQ(b.p[i], (uint8_t)i);
	q_buf_reset(&b);
	ASSERT_EQ(b.len, 0);
	ASSERT_OK(q_buf_printf(&b, "x=%d %s", 42, "y"));
	ASSERT_EQ(b.len, 6);
	ASSERT_MEMEQ(b.p, "x=42 y", 6);
	size_t n;
	uint8_t *p = q_buf_steal(&b, &n);
	ASSERT_EQ(n, 6);
	ASSERT(b.p == NULL && b.len == 0);
	free(p);
	q_buf_free(&b);
}

QTEST(slice_order)
{
	ASSERT_EQ(q_slice_cmp(q_slice_str("a"), q_slice_str("b")), -1);
	ASSERT_EQ(q_slice_cmp(q_slice_str("ab"), q_slice_str("a")), 1);
	ASSERT_EQ(q_slice_cmp(q_slice_str(""), q_slice_str("")), 0);
	ASSERT_EQ(q_slice_cmp(q_slice_make("\xff", 1), q_slice_make("\x01", 1)), 1);
	ASSERT(q_slice_eq(q_slice_str("abc"), q_slice_str("abc")));
	ASSERT(!q_slice_eq(q_slice_str("abc"), q_slice_str("abd")));
	uint8_t *d = q_slice_dup(q_slice_make("hi", 2));
	ASSERT_STREQ((char *)d, "hi");
	free(d);
}

QTEST(strerror_names_every_code)
{
	for (int c = Q_ERRLAST + 1; c < Q_ERRBASE; c++) {
		ASSERT(strcmp(q_strerror(c), "unknown error") != 0);
		ASSERT(strcmp(q_errname(c), "EUNKNOWN") != 0);
	}
	ASSERT_STREQ(q_errname(-EIO), "EIO");
	ASSERT_STREQ(q_strerror(-ENOSPC), "No space left on device");
	ASSERT_STREQ(q_strerror(0), "success");
	ASSERT_STREQ(q_strerror(12345), "unknown error");
}

QTEST_MAIN(QT(buf_append_grows), QT(slice_order), QT(strerror_names_every_code))
