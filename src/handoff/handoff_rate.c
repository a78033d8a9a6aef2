/*
 * handoff_rate.c - token-bucket rate limiter in bytes (see handoff.h).
 *
 * Invariant: tokens <= burst; tokens < 0 is debt that later reservations
 * wait out, so the long-run rate never exceeds `rate`.
 *
 * Threading: none; one limiter per streaming task or under the caller's lock.
 */
#include "handoff/handoff.h"

#define MIN_BURST (64.0 * 1024.0)

static void refill(handoff_rate *r, uint64_t now_ns)
{
	if (now_ns > r->last_ns) {
		r->tokens += (double)(now_ns - r->last_ns) * r->rate / 1e9;
		if (r->tokens > r->burst)
			r->tokens = r->burst;
		r->last_ns = now_ns;
	}
}

void handoff_rate_init(handoff_rate *r, uint64_t bytes_per_sec, uint64_t burst, uint64_t now_ns)
{
	r->rate = (double)bytes_per_sec;
	r->burst = burst ? (double)burst : (r->rate > MIN_BURST ? r->rate : MIN_BURST);
	r->tokens = r->burst;
	r->last_ns = now_ns;
}

void handoff_rate_set(handoff_rate *r, uint64_t bytes_per_sec, uint64_t now_ns)
{
	refill(r, now_ns);
	r->rate = (double)bytes_per_sec;
}

uint64_t handoff_rate_reserve(handoff_rate *r, uint64_t n, uint64_t now_ns)
{
	if (r->rate <= 0)
		return 0;
	refill(r, now_ns);
	r->tokens -= (double)n;
	if (r->tokens >= 0)
		return 0;
	double wait = -r->tokens / r->rate * 1e9;
	return wait >= 1.8e19 ? UINT64_MAX : (uint64_t)(wait + 0.5);
}
