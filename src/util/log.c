/*
 * log.c - leveled logging (see log.h).
 */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static volatile int q_log_level_cur = Q_LOG_INFO;
static FILE *q_log_stream;

void q_log_set_level(q_log_level lvl)
{
	q_log_level_cur = (int)lvl;
}

q_log_level q_log_get_level(void)
{
	return (q_log_level)q_log_level_cur;
}

void q_log_set_stream(FILE *f)
{
	q_log_stream = f;
}

int q_log_parse_level(const char *s, q_log_level *out)
{
	static const char *names[] = {"debug", "info", "warn", "error", "off"};
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (q_log_level)i;
			return 0;
		}
	return -EINVAL;
}

void q_log(q_log_level lvl, const char *component, const char *fmt, ...)
{
	static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
	if ((int)lvl < q_log_level_cur || lvl >= Q_LOG_OFF)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, tags[lvl], component);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	FILE *f = q_log_stream ? q_log_stream : stderr;
	fprintf(f, "%s\n", line);
	fflush(f);
}
