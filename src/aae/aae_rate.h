/*
 * aae_rate.h - a token-bucket byte-rate limiter and a counting slot limit,
 * the two knobs that keep background anti-entropy from hurting foreground
 * latency (bytes/s moved, tree builds at a time).
 *
 * Both are generic and small; anything that needs a bytes/s budget may use
 * aae_rate. Time is passed in by the caller (monotonic ns, util/qtime.h),
 * so the limiter never sleeps and is tested without clocks.
 *
 * aae_rate: tokens refill at rate bytes/s up to burst. aae_rate_reserve
 * always takes n tokens (the level may go negative for an item larger than
 * the burst, so nothing starves) and returns how long the caller must wait
 * before sending. rate 0 means unlimited (wait always 0).
 * Invariant: tokens <= burst; after a reserve at time t the returned wait w
 * is the least w >= 0 with tokens(t + w) >= 0.
 *
 * Thread safety: both types carry their own mutex; any thread may call.
 * Ownership: plain structs, initialised and destroyed by the caller.
 */
#ifndef Q_AAE_RATE_H
#define Q_AAE_RATE_H

#include <pthread.h>
#include <stdint.h>

typedef struct aae_rate {
	pthread_mutex_t mu;
	uint64_t rate;     /* bytes per second; 0 = unlimited */
	uint64_t burst;    /* bucket size, bytes */
	int64_t tokens;    /* current level (may be negative: debt) */
	uint64_t last_ns;  /* time of the last refill */
	uint64_t total;    /* bytes reserved so far */
} aae_rate;

/* burst 0 means one second's worth (rate). */
int aae_rate_init(aae_rate *r, uint64_t rate, uint64_t burst, uint64_t now_ns);
void aae_rate_destroy(aae_rate *r);
/* Changes the rate (e.g. from config or quorumctl) keeping the level. */
void aae_rate_set(aae_rate *r, uint64_t rate, uint64_t burst);
/* Takes n bytes; returns the ns to wait before using them (0 = now). */
uint64_t aae_rate_reserve(aae_rate *r, uint64_t now_ns, uint64_t n);
uint64_t aae_rate_total(aae_rate *r);

typedef struct aae_slots {
	pthread_mutex_t mu;
	unsigned max, used;
} aae_slots;

int aae_slots_init(aae_slots *s, unsigned max);
void aae_slots_destroy(aae_slots *s);
/* 1 if a slot was taken, 0 if all max are in use. */
int aae_slots_try_acquire(aae_slots *s);
void aae_slots_release(aae_slots *s);
unsigned aae_slots_used(aae_slots *s);

#endif
