/*
 * hash.h - hashing and checksums, all xxHash.
 *
 * q_hash64: placement hash (ring tokens, bloom filters, Merkle buckets);
 * XXH3-64 with a seed, stable across platforms and releases of xxHash 0.8.
 * q_csum32: checksum for stored and wire records (low 32 bits of XXH3-64,
 * seeded so a checksum of zeroes is not zero). Streaming variant for data in
 * several pieces gives the same result as the one-shot call on the
 * concatenation.
 *
 * Thread safety: pure functions; a q_hasher belongs to one thread.
 */
#ifndef Q_HASH_H
#define Q_HASH_H

#include <stddef.h>
#include <stdint.h>

#define Q_CSUM_SEED 0x71666f72756dULL /* "qforum" */

uint64_t q_hash64(const void *p, size_t n, uint64_t seed);
uint32_t q_csum32(const void *p, size_t n);

typedef struct q_hasher {
	void *state; /* XXH3_state_t */
} q_hasher;

int q_hasher_init(q_hasher *h, uint64_t seed);
void q_hasher_update(q_hasher *h, const void *p, size_t n);
uint64_t q_hasher_digest(q_hasher *h);
void q_hasher_free(q_hasher *h);

/* Checksum of two pieces (header + payload) without copying. */
uint32_t q_csum32_2(const void *a, size_t an, const void *b, size_t bn);

#endif
