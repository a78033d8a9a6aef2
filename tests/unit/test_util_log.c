/* Unit tests for src/util/log.c and qtime.c. */
#include "qtest.h"
#include "util/log.h"
#include "util/qtime.h"

QTEST(log_filters_by_level)
{
	char *mem = NULL;
	size_t memn = 0;
	FILE *f = open_memstream(&mem, &memn);
	ASSERT(f);
	q_log_set_stream(f);
	q_log_set_level(Q_LOG_WARN);
	Q_INFO("test", "hidden %d", 1);
	Q_WARN("test", "shown %d", 2);
	Q_ERROR("lsm", "bad thing at offset %d", 3);
	Q_DEBUG("test", "hidden too");
	fflush(f);
	ASSERT(!strstr(mem, "hidden"));
	ASSERT(strstr(mem, "WARN  test: shown 2\n"));
	ASSERT(strstr(mem, "ERROR lsm: bad thing at offset 3\n"));
	q_log_set_stream(NULL);
	fclose(f);
	free(mem);
	q_log_level l;
	ASSERT_OK(q_log_parse_level("debug", &l));
	ASSERT_EQ(l, Q_LOG_DEBUG);
	ASSERT_EQ(q_log_parse_level("loud", &l), -EINVAL);
}

QTEST(clocks_move_forward)
{
	uint64_t a = q_mono_ns();
	q_sleep_ms(5);
	uint64_t b = q_mono_ns();
	ASSERT(b - a >= 5000000ull);
	ASSERT(q_wall_ns() > 1700000000ull * 1000000000ull);
}

QTEST(parse_durations_and_sizes)
{
	uint64_t v;
	ASSERT_OK(q_parse_duration_ms("250ms", &v));
	ASSERT_U64_EQ(v, 250);
	ASSERT_OK(q_parse_duration_ms("2s", &v));
	ASSERT_U64_EQ(v, 2000);
	ASSERT_OK(q_parse_duration_ms("5m", &v));
	ASSERT_U64_EQ(v, 300000);
	ASSERT_OK(q_parse_duration_ms("10", &v));
	ASSERT_U64_EQ(v, 10);
	ASSERT_EQ(q_parse_duration_ms("10 parsecs", &v), -EINVAL);
	ASSERT_EQ(q_parse_duration_ms("-1s", &v), -EINVAL);
	ASSERT_OK(q_parse_size("64k", &v));
	ASSERT_U64_EQ(v, 65536);
	ASSERT_OK(q_parse_size("4M", &v));
	ASSERT_U64_EQ(v, 4u << 20);
	ASSERT_OK(q_parse_size("1G", &v));
	ASSERT_U64_EQ(v, 1u << 30);
	ASSERT_EQ(q_parse_size("99999999999999999999G", &v), -EINVAL);
	ASSERT_EQ(q_parse_size("17179869184G", &v), -ERANGE);
}

QTEST_MAIN(QT(log_filters_by_level), QT(clocks_move_forward), QT(parse_durations_and_sizes))
