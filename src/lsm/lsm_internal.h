/*
 * lsm_internal.h - declarations shared by the parts of the storage engine
 * and its tests; not for users of the engine (they use lsm.h).
 *
 * Internal keys: every stored entry is keyed by user key | fixed64(seq << 8 |
 * kind). They sort by user key ascending, then by seq descending, so the
 * newest version of a key comes first and a seek to (key, seq) lands on the
 * newest version visible at seq.
 *
 * Internal iterators (lsm_it) are forward-only cursors over internal keys
 * with a small vtable; the memtable, a data block, a table, a level and a
 * merge of them all provide one. A cursor belongs to one thread. Key and
 * value slices stay valid until the next move or free.
 */
#ifndef Q_LSM_INTERNAL_H
#define Q_LSM_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "lsm/lsm_format.h"
#include "util/buf.h"
#include "util/coding.h"

/* ---- internal keys ---- */

static inline uint64_t ikey_pack(uint64_t seq, int kind)
{
	return (seq << 8) | (uint64_t)kind;
}
/* User key of an internal key (n >= IKEY_TRAILER assumed). */
static inline q_slice ikey_user(q_slice ik)
{
	return q_slice_make(ik.p, ik.n - IKEY_TRAILER);
}
static inline uint64_t ikey_trailer(q_slice ik)
{
	return q_dec_fixed64(ik.p + ik.n - IKEY_TRAILER);
}
static inline uint64_t ikey_seq(q_slice ik)
{
	return ikey_trailer(ik) >> 8;
}
static inline int ikey_kind(q_slice ik)
{
	return (int)(ikey_trailer(ik) & 0xff);
}
static inline int ukey_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return an < bn ? -1 : an > bn ? 1 : 0;
}
/* Internal-key order; both keys must be at least IKEY_TRAILER long. */
static inline int ikey_cmp(q_slice a, q_slice b)
{
	int c = ukey_cmp(a.p, a.n - IKEY_TRAILER, b.p, b.n - IKEY_TRAILER);
	if (c)
		return c;
	uint64_t ta = ikey_trailer(a), tb = ikey_trailer(b);
	return ta > tb ? -1 : ta < tb ? 1 : 0;
}
/* Appends user key | trailer to b (reset first). */
int ikey_build(q_buf *b, q_slice ukey, uint64_t seq, int kind);

/* ---- internal iterators ---- */

typedef struct lsm_it lsm_it;
struct lsm_it_ops {
	int (*valid)(lsm_it *it);
	void (*seek_first)(lsm_it *it);
	void (*seek)(lsm_it *it, q_slice ikey); /* first entry >= ikey */
	void (*next)(lsm_it *it);
	q_slice (*key)(lsm_it *it);
	q_slice (*value)(lsm_it *it);
	int (*status)(lsm_it *it);
	void (*free)(lsm_it *it);
};
struct lsm_it {
	const struct lsm_it_ops *ops;
};

static inline int it_valid(lsm_it *it) { return it->ops->valid(it); }
static inline void it_seek_first(lsm_it *it) { it->ops->seek_first(it); }
static inline void it_seek(lsm_it *it, q_slice k) { it->ops->seek(it, k); }
static inline void it_next(lsm_it *it) { it->ops->next(it); }
static inline q_slice it_key(lsm_it *it) { return it->ops->key(it); }
static inline q_slice it_value(lsm_it *it) { return it->ops->value(it); }
static inline int it_status(lsm_it *it) { return it->ops->status(it); }
static inline void it_free(lsm_it *it) { if (it) it->ops->free(it); }

/* ---- test seam ---- */

/* fn(arg) runs in lsm_get_nowait once the lookup holds its view (its
 * references on the memtables and the version), before it looks; NULL
 * (the default): none. Set it before the calls it is meant for. */
struct lsm_db;
void lsm_test_set_view_hook(struct lsm_db *db, void (*fn)(void *arg), void *arg);

/* A merge of n children (ownership of the array's iterators passes to the
 * merge, which frees them); NULL on allocation failure (children freed). */
lsm_it *it_merge_new(lsm_it **children, size_t n);
/* An iterator that is never valid and reports status rc. */
lsm_it *it_error_new(int rc);

#endif
