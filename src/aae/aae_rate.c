/*
 * aae_rate.c - token bucket and slot counter (see aae_rate.h).
 */
#include "aae/aae_rate.h"

#include <errno.h>

#define NS_PER_S 1000000000ULL

int aae_rate_init(aae_rate *r, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	if (pthread_mutex_init(&r->mu, NULL))
		return -ENOMEM;
	r->rate = rate;
	r->burst = burst ? burst : rate;
	if (r->burst > (uint64_t)INT64_MAX / 2)
		r->burst = (uint64_t)INT64_MAX / 2;
	r->tokens = (int64_t)r->burst;
	r->last_ns = now_ns;
	r->total = 0;
	return 0;
}

void aae_rate_destroy(aae_rate *r)
{
	pthread_mutex_destroy(&r->mu);
}

void aae_rate_set(aae_rate *r, uint64_t rate, uint64_t burst)
{
	pthread_mutex_lock(&r->mu);
	r->rate = rate;
	r->burst = burst ? burst : rate;
	if (r->burst > (uint64_t)INT64_MAX / 2)
		r->burst = (uint64_t)INT64_MAX / 2;
	if (r->tokens > (int64_t)r->burst)
		r->tokens = (int64_t)r->burst;
	pthread_mutex_unlock(&r->mu);
}

static void refill(aae_rate *r, uint64_t now_ns)
{
	if (now_ns <= r->last_ns)
		return; /* clock did not move (or caller passed an older time) */
	uint64_t dt = now_ns - r->last_ns;
	/* tokens gained = dt * rate / 1e9 without overflow: split seconds */
	unsigned __int128 gain = (unsigned __int128)dt * r->rate / NS_PER_S;
	unsigned __int128 room = (unsigned __int128)((int64_t)r->burst - r->tokens);
	if (gain >= room) {
		r->tokens = (int64_t)r->burst;
		r->last_ns = now_ns;
	} else if (gain > 0) {
		r->tokens += (int64_t)gain;
		/* advance time only by what the gained tokens cost, so
		 * fractions are not lost between frequent calls */
		r->last_ns += (uint64_t)((gain * NS_PER_S + r->rate - 1) / r->rate);
		if (r->last_ns > now_ns)
			r->last_ns = now_ns;
	}
}

uint64_t aae_rate_reserve(aae_rate *r, uint64_t now_ns, uint64_t n)
{
	pthread_mutex_lock(&r->mu);
	r->total += n;
	if (r->rate == 0) {
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	refill(r, now_ns);
	if (n > (uint64_t)INT64_MAX / 4)
		n = (uint64_t)INT64_MAX / 4;
	r->tokens -= (int64_t)n;
	if (r->tokens < -(int64_t)((uint64_t)INT64_MAX / 4))
		r->tokens = -(int64_t)((uint64_t)INT64_MAX / 4);
	uint64_t wait = 0;
	if (r->tokens < 0) {
		unsigned __int128 need = (unsigned __int128)(uint64_t)(-r->tokens);
		unsigned __int128 w = (need * NS_PER_S + r->rate - 1) / r->rate;
		/* time already accrued since last_ns counts toward the wait */
		uint64_t accrued = now_ns > r->last_ns ? now_ns - r->last_ns : 0;
		wait = w > accrued ? (uint64_t)(w - accrued) : 0;
	}
	pthread_mutex_unlock(&r->mu);
	return wait;
}

uint64_t aae_rate_total(aae_rate *r)
{
	pthread_mutex_lock(&r->mu);
	uint64_t t = r->total;
	pthread_mutex_unlock(&r->mu);
	return t;
}

int aae_slots_init(aae_slots *s, unsigned max)
{
	if (pthread_mutex_init(&s->mu, NULL))
		return -ENOMEM;
	s->max = max;
	s->used = 0;
	return 0;
}

void aae_slots_destroy(aae_slots *s)
{
	pthread_mutex_destroy(&s->mu);
}

int aae_slots_try_acquire(aae_slots *s)
{
	pthread_mutex_lock(&s->mu);
	int ok = s->used < s->max;
	if (ok)
		s->used++;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

void aae_slots_release(aae_slots *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->used > 0)
		s->used--;
	pthread_mutex_unlock(&s->mu);
}

unsigned aae_slots_used(aae_slots *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned u = s->used;
	pthread_mutex_unlock(&s->mu);
	return u;
}
