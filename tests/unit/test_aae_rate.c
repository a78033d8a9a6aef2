/* Unit tests: src/aae/aae_rate (token bucket, slot counter). Time is
 * simulated: the limiter takes the clock as an argument. */
#include <stdint.h>

#include "aae/aae_rate.h"
#include "qtest.h"

#define S 1000000000ULL

QTEST(burst_then_wait)
{
	aae_rate r;
	ASSERT_OK(aae_rate_init(&r, 1000, 500, 0));
	ASSERT_U64_EQ(aae_rate_reserve(&r, 0, 500), 0);    /* the burst */
	ASSERT_U64_EQ(aae_rate_reserve(&r, 0, 100), S / 10); /* 100 B at 1000 B/s */
	/* after waiting as told, the debt is paid: the next 100 B wait 0.1 s */
	ASSERT_U64_EQ(aae_rate_reserve(&r, S / 10, 100), S / 10);
	/* a long pause refills only up to the burst */
	ASSERT_U64_EQ(aae_rate_reserve(&r, 100 * S, 500), 0);
	ASSERT_U64_EQ(aae_rate_reserve(&r, 100 * S, 1), S / 1000);
	ASSERT_U64_EQ(aae_rate_total(&r), 1201);
	aae_rate_destroy(&r);
}

QTEST(oversized_item_does_not_starve)
{
	aae_rate r;
	ASSERT_OK(aae_rate_init(&r, 1000, 100, 0));
	ASSERT_U64_EQ(aae_rate_reserve(&r, 0, 1100), S); /* 1000 B of debt */
	aae_rate_destroy(&r);
}

QTEST(unlimited_and_set)
{
	aae_rate r;
	ASSERT_OK(aae_rate_init(&r, 0, 0, 0));
	for (int i = 0; i < 1000; i++)
		ASSERT_U64_EQ(aae_rate_reserve(&r, 0, 1u << 30), 0);
	aae_rate_set(&r, 2000, 0); /* burst = one second */
	/* the level was 0 (no burst while unlimited): 4000 B = 2 s */
	ASSERT_U64_EQ(aae_rate_reserve(&r, 0, 4000), 2 * S);
	aae_rate_destroy(&r);
}

QTEST(long_run_average_holds)
{
	/* a sender that always waits as told moves rate*time + burst at most,
	 * and not much less */
	aae_rate r;
	const uint64_t rate = 1 << 20; /* 1 MiB/s */
	ASSERT_OK(aae_rate_init(&r, rate, 64 * 1024, 0));
	uint64_t now = 0, sent = 0, x = 12345;
	for (int i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t n = 1 + (x >> 33) % 9000;
		now += aae_rate_reserve(&r, now, n);
		sent += n;
		now += (x >> 20) % 1000; /* sender overhead, ns */
	}
	double secs = (double)now / S;
	ASSERT(sent <= rate * secs + 64 * 1024 + 9000);
	ASSERT(sent >= rate * secs * 0.99);
	aae_rate_destroy(&r);
}

QTEST(slots)
{
	aae_slots s;
	ASSERT_OK(aae_slots_init(&s, 2));
	ASSERT_EQ(aae_slots_try_acquire(&s), 1);
	ASSERT_EQ(aae_slots_try_acquire(&s), 1);
	ASSERT_EQ(aae_slots_try_acquire(&s), 0);
	ASSERT_EQ(aae_slots_used(&s), 2);
	aae_slots_release(&s);
	ASSERT_EQ(aae_slots_try_acquire(&s), 1);
	aae_slots_release(&s);
	aae_slots_release(&s);
	aae_slots_release(&s); /* extra release is harmless */
	ASSERT_EQ(aae_slots_used(&s), 0);
	aae_slots_destroy(&s);
}

QTEST_MAIN(QT(burst_then_wait), QT(oversized_item_does_not_starve), QT(unlimited_and_set),
	   QT(long_run_average_holds), QT(slots))
