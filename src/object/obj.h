/*
 * obj.h - versioned objects: sibling sets under dotted version vectors.
 *
 * A stored value is an obj_set: a causal context (a version vector with one
 * entry per server, keyed by node id string) plus zero or more siblings. Each
 * sibling carries a dot (node id, counter) naming the one write that created
 * it, a value or a tombstone, and metadata (wall-clock ns of the write, an
 * optional content type). This is the "dotted version vector" design of
 * Preguica, Baquero et al. (Riak's dvv_enabled): siblings stay bounded by the
 * number of truly concurrent writes, because every write gets its own dot and
 * a later write whose context covers that dot replaces it.
 *
 * Invariants of every obj_set (checked by the decoder, kept by every
 * operation):
 *   1. context entries are sorted by node id (memcmp order), unique, with
 *      counter >= 1;
 *   2. every sibling's dot is covered by the context:
 *      1 <= dot.counter <= ctx[dot.node];
 *   3. dots are unique; siblings are kept in the canonical order: live before
 *      tombstones, then newest wall time first, then by dot (node id, then
 *      counter), so iteration shows live siblings first and the encoding is
 *      canonical (equal sets encode to equal bytes and digest equally).
 *
 * Operations:
 *   obj_set_update  the coordinating replica applies a client write (put or
 *                   delete) made with a client context: keeps the siblings the
 *                   client context does not cover, adds the new sibling with a
 *                   fresh dot (node, max(ctx[node], client[node]) + 1).
 *   obj_set_sync    merge two replicas' sets (read repair, anti-entropy, a
 *                   replica receiving the coordinator's result): commutative,
 *                   associative, idempotent.
 *   obj_ctx_compare equal / descends / concurrent.
 *   obj_set_digest  64-bit xxHash of the canonical encoding (Merkle trees).
 *
 * Formats (docs/objects.md; constants here): OBJ_SET_MAGIC/OBJ_CTX_MAGIC and
 * OBJ_FORMAT_V1. Decoders accept only canonical input, so
 * encode(decode(bytes)) == bytes for every accepted input.
 *
 * Errors: 0 or a negative code (util/qerr.h): -ENOMEM; Q_ECORRUPT / Q_ETRUNC
 * / Q_ETOOBIG / Q_EVERSION from obj_set_decode; Q_EBADCTX from
 * obj_ctx_decode for anything malformed; -EINVAL for bad arguments (empty or
 * overlong node id, value over OBJ_VALUE_MAX, ...). On error no output is
 * produced and no input is modified.
 *
 * Ownership: obj_set and obj_ctx are heap objects owned by whoever received
 * them from an obj_*_new, _decode, _clone, _update or _sync call; free them with
 * obj_set_free / obj_ctx_free (NULL is fine). Pointers handed out by
 * accessors (obj_sibling fields, obj_set_ctx, obj_ctx_entry node) borrow
 * from the object and are valid until it is modified or freed.
 *
 * Thread safety: none inside; an object belongs to one thread at a time.
 * Functions that take only const objects may run concurrently on the same
 * object.
 */
#ifndef Q_OBJ_H
#define Q_OBJ_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* ---- format constants (docs/objects.md) ---- */
#define OBJ_SET_MAGIC 0xD5u   /* first byte of an encoded sibling set */
#define OBJ_CTX_MAGIC 0xC7u   /* first byte of an encoded context */
#define OBJ_FORMAT_V1 1u      /* second byte: format version */
#define OBJ_FLAG_TOMBSTONE 0x01u
#define OBJ_FLAG_CTYPE 0x02u
#define OBJ_FLAGS_KNOWN (OBJ_FLAG_TOMBSTONE | OBJ_FLAG_CTYPE)
#define OBJ_DIGEST_SEED 0x6f626a73657431ULL /* "objset1" */

/* ---- hard limits (the decoder enforces them) ---- */
#define OBJ_NODE_MAX 255          /* bytes in a node id */
#define OBJ_CTYPE_MAX 255         /* bytes in a content type */
#define OBJ_ENTRIES_MAX 4096      /* entries in a context */
#define OBJ_SIBLINGS_MAX 4096     /* siblings in a set */
#define OBJ_VALUE_MAX (256u << 20) /* bytes in one value */

/* ---- causal context: a version vector ---- */
typedef struct obj_ctx obj_ctx;

enum obj_cmp {
	OBJ_EQUAL = 0,      /* same vector */
	OBJ_BEFORE = 1,     /* a < b: b descends a (b saw everything a saw, and more) */
	OBJ_AFTER = 2,      /* a > b: a descends b */
	OBJ_CONCURRENT = 3  /* neither descends the other */
};

/* New empty context (the context of "never read"); NULL on -ENOMEM. */
obj_ctx *obj_ctx_new(void);
void obj_ctx_free(obj_ctx *c);
/* Deep copy; NULL on -ENOMEM. */
obj_ctx *obj_ctx_clone(const obj_ctx *c);
/* Number of entries. */
size_t obj_ctx_count(const obj_ctx *c);
/* Entry i (0 <= i < count) in node-id order: node id (borrowed, NUL-terminated),
 * counter, wall ns at which that node last issued a dot for this object. */
void obj_ctx_entry(const obj_ctx *c, size_t i, const char **node, uint64_t *counter,
		   int64_t *wall_ns);
/* Counter of node in c, 0 if absent. */
uint64_t obj_ctx_get(const obj_ctx *c, const char *node);
/* Does c cover dot (node, counter)? i.e. counter <= c[node]. */
int obj_ctx_covers(const obj_ctx *c, const char *node, uint64_t counter);
/* a vs b: one of enum obj_cmp. NULL stands for the empty context. */
int obj_ctx_compare(const obj_ctx *a, const obj_ctx *b);
/* dst := pointwise max(dst, src). On -ENOMEM dst is unchanged. */
int obj_ctx_merge(obj_ctx *dst, const obj_ctx *src);
/* Sets node's entry to max(current, counter) (wall ns kept with the larger
 * counter). For tests and for building contexts by hand. -EINVAL for a bad
 * node id or counter 0. */
int obj_ctx_set(obj_ctx *c, const char *node, uint64_t counter, int64_t wall_ns);

/* Opaque bytes of a context (the client turns them into a printable token):
 * appended to out. */
int obj_ctx_encode(const obj_ctx *c, q_buf *out);
/* Parses bytes made by obj_ctx_encode. Any malformed, truncated, oversized or
 * non-canonical input gives Q_EBADCTX. *out is a new context the caller frees. */
int obj_ctx_decode(const void *p, size_t n, obj_ctx **out);

/* ---- sibling sets ---- */
typedef struct obj_set obj_set;

/* A view of one sibling; every pointer borrows from the set. */
typedef struct obj_sibling {
	const char *node;          /* dot: node id that coordinated the write */
	uint64_t counter;          /* dot: that node's counter, >= 1 */
	int tombstone;             /* 1: a delete; value is empty */
	q_slice value;             /* the value bytes (may be empty) */
	int64_t wall_ns;           /* wall-clock ns of the write (>= 0) */
	const char *content_type;  /* NULL when none */
} obj_sibling;

/* What a client writes (input to obj_set_update). */
typedef struct obj_write {
	int tombstone;             /* 1: delete (value and content_type ignored) */
	q_slice value;             /* copied into the set */
	const char *content_type;  /* NULL for none; copied */
	int64_t wall_ns;           /* wall-clock ns of the write, >= 0 */
} obj_write;

/* Pruning of context entries (see docs/objects.md for the effect on false
 * conflicts). An entry may be pruned only when no sibling's dot refers to it
 * and it is not the coordinating node's own entry. */
typedef struct obj_prune {
	uint32_t min_entries;  /* never prune a context down below this many */
	uint32_t max_entries;  /* 0: no limit; else prune oldest entries beyond this */
	int64_t young_ns;      /* never prune an entry younger than this */
	int64_t max_age_ns;    /* 0: no limit; else prune entries older than this */
} obj_prune;

/* Defaults: min 10 entries, max 50, young 20 s, max age 7 days. */
extern const obj_prune OBJ_PRUNE_DEFAULT;

/* New empty set (no siblings, empty context); NULL on -ENOMEM. */
obj_set *obj_set_new(void);
void obj_set_free(obj_set *s);
/* Deep copy; NULL on -ENOMEM. */
obj_set *obj_set_clone(const obj_set *s);

/* Canonical encoding, appended to out. */
int obj_set_encode(const obj_set *s, q_buf *out);
/* Decodes an encoded set; the set copies what it needs (the input may be
 * freed afterwards). Returns Q_ETRUNC for short input, Q_EVERSION for an
 * unknown version, Q_ETOOBIG beyond a limit, Q_ECORRUPT for anything else
 * malformed (bad magic, broken invariant, trailing bytes). */
int obj_set_decode(const void *p, size_t n, obj_set **out);

/* Number of siblings (live and tombstones), and live ones only. */
size_t obj_set_count(const obj_set *s);
size_t obj_set_live_count(const obj_set *s);
/* Sibling i in canonical order (live first, newest first). 0 <= i < count. */
void obj_set_sibling(const obj_set *s, size_t i, obj_sibling *out);
/* The set's causal context (borrowed). Give this (encoded) to clients. */
const obj_ctx *obj_set_ctx(const obj_set *s);

/*
 * The coordinating replica applies a client write.
 *   cur:    the coordinator's current local set, NULL if it has none;
 *   client: the context the client read (NULL or empty: a blind write,
 *           which replaces nothing and becomes a sibling of everything);
 *   node:   this node's id (the dot's node);
 *   prune:  NULL for no pruning, else prune the new context's entries;
 *   now_ns: wall clock for pruning by age (usually w->wall_ns).
 * *out: the new set (caller frees); the new sibling's dot is
 * (node, obj_ctx_get(obj_set_ctx(*out), node)). Replicas receive the whole
 * *out and apply it with obj_set_sync. -EINVAL for a bad node id, negative
 * wall time or oversize value/content type; Q_ETOOBIG if the set would exceed
 * OBJ_SIBLINGS_MAX or OBJ_ENTRIES_MAX.
 */
int obj_set_update(const obj_set *cur, const obj_ctx *client, const char *node,
		   const obj_write *w, const obj_prune *prune, int64_t now_ns,
		   obj_set **out);

/*
 * Merge two replicas' sets: a sibling survives if the other side also has it
 * or the other side's context does not cover its dot; the context is the
 * pointwise max. Commutative, associative, idempotent. NULL stands for the
 * empty set. *out is new (caller frees).
 */
int obj_set_sync(const obj_set *a, const obj_set *b, obj_set **out);

/* Prune s's context in place (never entries that a dot refers to, nor
 * keep_node's entry when keep_node is not NULL). Returns the number of
 * entries removed (>= 0). */
int obj_set_prune(obj_set *s, const obj_prune *p, int64_t now_ns, const char *keep_node);

/* 64-bit xxHash of the canonical encoding, seeded with OBJ_DIGEST_SEED;
 * equal sets give equal digests. The empty set digests to 0, any other set
 * to a non-zero value. If memory for the encoding cannot be had the result is
 * UINT64_MAX, which callers comparing digests treat as "differs" (a false
 * difference only costs a sync). */
uint64_t obj_set_digest(const obj_set *s);
/* obj_set_digest(s) computed from enc, which must be obj_set_encode(s)'s
 * output (saves encoding s a second time when the caller has it). */
uint64_t obj_set_digest_encoded(const obj_set *s, const uint8_t *enc, size_t n);
/* 1 if a and b hold the same siblings and the same context. */
int obj_set_equal(const obj_set *a, const obj_set *b);

/* ---- tombstones ---- */
/* 1 if s has no live sibling (only tombstones, or nothing). */
int obj_set_tombstone_only(const obj_set *s);
/* Newest wall_ns among the siblings (0 for an empty set). */
int64_t obj_set_newest_wall(const obj_set *s);
/*
 * Reaping decision. replicas[0..n) must be the sets read from EVERY replica
 * of the key (the caller's proof that each one holds it; a missing replica
 * must not be passed as NULL: then the answer is 0). Returns 1 when the key
 * may be deleted physically: n >= 1, every set is tombstone-only, holds at
 * least one tombstone, all sets are equal (same siblings, same context) and
 * the newest tombstone is at least grace_ns old at now_ns. Returns 0
 * otherwise.
 */
int obj_reapable(const obj_set *const *replicas, size_t n, int64_t now_ns, int64_t grace_ns);

#endif
