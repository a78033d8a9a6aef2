/*
 * qtime.h - clocks. Monotonic time for timeouts and intervals (never goes
 * back), wall time for metadata that users see (may jump; never used to
 * order events).
 */
#ifndef Q_TIME_H
#define Q_TIME_H

#include <stdint.h>

uint64_t q_mono_ns(void);
uint64_t q_mono_ms(void);
uint64_t q_wall_ns(void);
void q_sleep_ms(uint64_t ms);
/* Parses "250ms", "2s", "5m", "1h" or a bare number of ms. */
int q_parse_duration_ms(const char *s, uint64_t *out);
/* Parses "4096", "64k", "4M", "1G" (powers of 1024). */
int q_parse_size(const char *s, uint64_t *out);

#endif
