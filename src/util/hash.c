/*
 * hash.c - xxHash wrappers (see hash.h).
 */
#include "util/hash.h"

#include <errno.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "util/qerr.h"

uint64_t q_hash64(const void *p, size_t n, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, n, seed);
}

uint32_t q_csum32(const void *p, size_t n)
{
	return (uint32_t)XXH3_64bits_withSeed(p, n, Q_CSUM_SEED);
}

uint32_t q_csum32_2(const void *a, size_t an, const void *b, size_t bn)
{
	XXH3_state_t st;
	XXH3_INITSTATE(&st); /* a stack state must not look pre-seeded */
	XXH3_64bits_reset_withSeed(&st, Q_CSUM_SEED);
	XXH3_64bits_update(&st, a, an);
	XXH3_64bits_update(&st, b, bn);
	return (uint32_t)XXH3_64bits_digest(&st);
}

int q_hasher_init(q_hasher *h, uint64_t seed)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(st, seed);
	h->state = st;
	return 0;
}

void q_hasher_update(q_hasher *h, const void *p, size_t n)
{
	XXH3_64bits_update(h->state, p, n);
}

uint64_t q_hasher_digest(q_hasher *h)
{
	return XXH3_64bits_digest(h->state);
}

void q_hasher_free(q_hasher *h)
{
	if (h->state)
		XXH3_freeState(h->state);
	h->state = NULL;
}
