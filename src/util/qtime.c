/*
 * qtime.c - clocks and duration/size parsing (see qtime.h).
 */
#include "util/qtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t q_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t q_mono_ms(void)
{
	return q_mono_ns() / 1000000ull;
}

uint64_t q_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void q_sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int parse_num_suffix(const char *s, uint64_t *num, const char **suffix)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	*num = v;
	*suffix = end;
	return 0;
}

static int mul_checked(uint64_t v, uint64_t m, uint64_t *out)
{
	if (m && v > UINT64_MAX / m)
		return -ERANGE;
	*out = v * m;
	return 0;
}

int q_parse_duration_ms(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *suf;
	int rc = parse_num_suffix(s, &v, &suf);
	if (rc)
		return rc;
	uint64_t m;
	if (!*suf || !strcmp(suf, "ms"))
		m = 1;
	else if (!strcmp(suf, "s"))
		m = 1000;
	else if (!strcmp(suf, "m"))
		m = 60000;
	else if (!strcmp(suf, "h"))
		m = 3600000;
	else
		return -EINVAL;
	return mul_checked(v, m, out);
}

int q_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *suf;
	int rc = parse_num_suffix(s, &v, &suf);
	if (rc)
		return rc;
	uint64_t m;
	if (!*suf || !strcmp(suf, "B"))
		m = 1;
	else if (!strcasecmp(suf, "k") || !strcasecmp(suf, "KiB") || !strcasecmp(suf, "kb"))
		m = 1ull << 10;
	else if (!strcasecmp(suf, "M") || !strcasecmp(suf, "MiB") || !strcasecmp(suf, "mb"))
		m = 1ull << 20;
	else if (!strcasecmp(suf, "G") || !strcasecmp(suf, "GiB") || !strcasecmp(suf, "gb"))
		m = 1ull << 30;
	else
		return -EINVAL;
	return mul_checked(v, m, out);
}
