/*
 * log.h - leveled logging.
 *
 * One line per message: "2026-11-24T18:40:00.123Z WARN  lsm: text". Lines at
 * or above the global level go to the log stream (stderr unless
 * q_log_set_stream() chose another). Each line is written with one stdio
 * call, so lines from several threads never interleave.
 */
#ifndef Q_LOG_H
#define Q_LOG_H

#include <stdio.h>

typedef enum q_log_level {
	Q_LOG_DEBUG = 0,
	Q_LOG_INFO = 1,
	Q_LOG_WARN = 2,
	Q_LOG_ERROR = 3,
	Q_LOG_OFF = 4
} q_log_level;

void q_log_set_level(q_log_level lvl);
q_log_level q_log_get_level(void);
void q_log_set_stream(FILE *f);
/* "debug", "info", "warn", "error", "off" -> level; -EINVAL if unknown. */
int q_log_parse_level(const char *s, q_log_level *out);

void q_log(q_log_level lvl, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define Q_DEBUG(c, ...) do { if (q_log_get_level() <= Q_LOG_DEBUG) q_log(Q_LOG_DEBUG, c, __VA_ARGS__); } while (0)
#define Q_INFO(c, ...) q_log(Q_LOG_INFO, c, __VA_ARGS__)
#define Q_WARN(c, ...) q_log(Q_LOG_WARN, c, __VA_ARGS__)
#define Q_ERROR(c, ...) q_log(Q_LOG_ERROR, c, __VA_ARGS__)

#endif
