/*
 * qtest.h - the unit-test harness, in the style of libuv's test/task.h.
 *
 * A test file defines tests with QTEST(name) { ... } and ends with
 * QTEST_MAIN(name1, name2, ...). Each test runs in a forked child so a crash
 * or a failed assertion in one test cannot hide another; the program exits
 * non-zero if any test failed and prints one "ok"/"FAIL" line per test.
 * `prog NAME` runs only the tests whose names contain NAME.
 * QTEST_TMPDIR gives each test a fresh temporary directory (removed after a
 * passing test, kept after a failing one for inspection).
 */
#ifndef QTEST_H
#define QTEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*qtest_fn)(void);
struct qtest_case {
	const char *name;
	qtest_fn fn;
};

extern char qtest_tmpdir[256];

#define QTEST(name) static void name(void)

#define QTEST_FAIL_(...) do { \
	fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); \
	fprintf(stderr, "\n"); \
	fflush(stderr); \
	abort(); \
} while (0)

#define ASSERT(expr) do { if (!(expr)) QTEST_FAIL_("assertion failed: %s", #expr); } while (0)
#define ASSERT_EQ(a, b) do { \
	long long qa_ = (long long)(a), qb_ = (long long)(b); \
	if (qa_ != qb_) QTEST_FAIL_("%s == %s: %lld != %lld", #a, #b, qa_, qb_); \
} while (0)
#define ASSERT_NE(a, b) do { \
	long long qa_ = (long long)(a), qb_ = (long long)(b); \
	if (qa_ == qb_) QTEST_FAIL_("%s != %s: both %lld", #a, #b, qa_); \
} while (0)
#define ASSERT_U64_EQ(a, b) do { \
	uint64_t qa_ = (uint64_t)(a), qb_ = (uint64_t)(b); \
	if (qa_ != qb_) QTEST_FAIL_("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, qa_, qb_); \
} while (0)
#define ASSERT_OK(expr) do { \
	long long qr_ = (long long)(expr); \
	if (qr_ != 0) QTEST_FAIL_("%s returned %lld", #expr, qr_); \
} while (0)
#define ASSERT_STREQ(a, b) do { \
	const char *qa_ = (a), *qb_ = (b); \
	if (!qa_ || !qb_ || strcmp(qa_, qb_)) \
		QTEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, qa_ ? qa_ : "(null)", qb_ ? qb_ : "(null)"); \
} while (0)
#define ASSERT_MEMEQ(a, b, n) do { \
	if (memcmp((a), (b), (n))) QTEST_FAIL_("%s and %s differ in %zu bytes", #a, #b, (size_t)(n)); \
} while (0)

int qtest_run(const struct qtest_case *cases, size_t n, int argc, char **argv);

/* A TCP port on 127.0.0.1 that nothing is bound to, drawn from below the
 * kernel's ephemeral range: a port from bind(0) lies in that range, where
 * a node's own outgoing connection can take it as its local port before the
 * node meant to listen on it binds it. Fails the test if none is found. */
int qtest_free_port(void);

/* Times needle occurs in the file at path (a log a test captured); fails
 * the test if the file cannot be read. */
int qtest_count_in_file(const char *path, const char *needle);

/* Waits up to ms milliseconds (polling each millisecond) for *flag to be
 * set; returns its value. */
int qtest_wait_flag(atomic_int *flag, int ms);

/* Explicit list: QTEST_MAIN(QT(a), QT(b)). */
#define QT(fn) {#fn, fn}
#define QTEST_MAIN(...) \
	int main(int argc, char **argv) \
	{ \
		static const struct qtest_case cases_[] = {__VA_ARGS__}; \
		return qtest_run(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv); \
	}

#endif
