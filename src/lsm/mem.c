/*
 * mem.c - arena and lock-free-read skiplist memtable (see mem.h).
 *
 * Node layout in the arena: struct mem_node (key/value lengths, height),
 * then `height` atomic next pointers, then the internal key, then the value.
 * A new node is fully written before it is linked with a release store, so
 * a reader that sees the link sees the node.
 *
 * A node added by mem_add_ref holds, in place of the value bytes, a pointer
 * to them inside a shared batch encoding (flag NODE_EXT): the commit leader
 * hands over large values this way instead of copying them (the batch's
 * bytes are already in memory; see batch.h, Sharing). The memtable keeps
 * one reference on the hold per such node (m->holds) and drops them when it
 * is freed, so the bytes live exactly as long as the node. mem_usage counts
 * the whole encoding a hold keeps alive, once per memtable (its first node).
 *
 * Each memtable also keeps a blocked bloom filter of its user keys (fixed
 * size, MEM_BLOOM_BYTES; all probes of a key fall in one 64-byte line), so a
 * point lookup of a key the memtable does not hold (most lookups once the
 * data is in tables) usually skips the skiplist walk. Its bits are set
 * before the entry is linked and before the writer publishes the entry's
 * sequence number (db->last_seq, seq_cst), so a reader whose snapshot covers
 * an entry sees its bits: the filter gives no false negatives for any entry
 * visible to the reader. False positives only cost the walk.
 */
#include "lsm/mem.h"

#include "lsm/batch.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lsm/lsm_format.h"
#include "lsm/wal.h"
#include "util/hash.h"
#include "util/qerr.h"

#define MEM_MAX_HEIGHT 12
#define ARENA_BLOCK (256u * 1024u)
#define NODE_EXT 1u

/* memtable filter: 2^10 lines of 512 bits (64 KiB), 6 probes per key */
#define MEM_BLOOM_LINES_LOG2 10
#define MEM_BLOOM_LINES (1u << MEM_BLOOM_LINES_LOG2)
#define MEM_BLOOM_WORDS (MEM_BLOOM_LINES * 8u)
#define MEM_BLOOM_BYTES (MEM_BLOOM_WORDS * 8u)
#define MEM_BLOOM_K 6

typedef struct arena_block {
	struct arena_block *next;
	size_t cap, used;
	uint8_t data[];
} arena_block;

typedef struct mem_node {
	uint32_t klen;   /* internal key length */
	uint32_t vlen;
	uint32_t height;
	uint32_t flags; /* NODE_EXT: a value pointer follows the key */
	_Atomic(struct mem_node *) next[];
} mem_node;

struct mem_table {
	atomic_int refs;
	_Atomic size_t usage;
	atomic_int max_height;
	_Atomic uint64_t entries;
	arena_block *blocks;
	_Atomic uint64_t *bloom; /* MEM_BLOOM_WORDS words, see the file comment */
	mem_node *head;
	uint64_t rnd;
	uint64_t lognum;
	int log_sealed;     /* the log was closed with every record written */
	batch_hold **holds; /* one reference per NODE_EXT node; writer only */
	size_t nholds, capholds;
	/* the distinct holds sorted by address, built by the first
	 * mem_value_in_log of the immutable memtable (flush thread only) */
	batch_hold **by_addr;
	size_t nby_addr;
};

static void *arena_alloc(mem_table *m, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	arena_block *b = m->blocks;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
		arena_block *nb = malloc(sizeof(*nb) + cap);
		if (!nb)
			return NULL;
		nb->cap = cap;
		nb->used = 0;
		if (cap == n && b) {
			/* a big entry gets its own block; keep filling the old one */
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			m->blocks = nb;
		}
		b = nb;
	}
	atomic_fetch_add_explicit(&m->usage, n, memory_order_relaxed);
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static inline uint8_t *node_key(mem_node *x)
{
	return (uint8_t *)&x->next[x->height];
}
static inline q_slice node_ikey(mem_node *x)
{
	return q_slice_make(node_key(x), x->klen);
}
static inline const uint8_t *node_value(mem_node *x)
{
	const uint8_t *p = node_key(x) + x->klen;
	if (x->flags & NODE_EXT) {
		const uint8_t *ext; /* the value lives in a shared encoding */
		memcpy(&ext, p, sizeof(ext));
		return ext;
	}
	return p;
}
static inline mem_node *node_next(mem_node *x, int lvl)
{
	return atomic_load_explicit(&x->next[lvl], memory_order_acquire);
}

uint64_t mem_key_hash(q_slice key)
{
	return q_hash64(key.p, key.n, BLOOM_SEED);
}

/* The line of a key's filter bits and the 6 x 9 bits that pick its bits in
 * the line. */
static inline _Atomic uint64_t *bloom_line(const mem_table *m, uint64_t hash, uint64_t *probes)
{
	*probes = hash * 0x9e3779b97f4a7c15ULL;
	return m->bloom + (size_t)(hash >> (64 - MEM_BLOOM_LINES_LOG2)) * 8u;
}

static void bloom_add(mem_table *m, uint64_t hash)
{
	uint64_t g;
	_Atomic uint64_t *line = bloom_line(m, hash, &g);
	for (int j = 0; j < MEM_BLOOM_K; j++, g >>= 9) {
		unsigned bit = (unsigned)(g & 511u);
		atomic_fetch_or_explicit(&line[bit >> 6], 1ULL << (bit & 63), memory_order_relaxed);
	}
}

static int bloom_may_hold(const mem_table *m, uint64_t hash)
{
	uint64_t g;
	_Atomic uint64_t *line = bloom_line(m, hash, &g);
	for (int j = 0; j < MEM_BLOOM_K; j++, g >>= 9) {
		unsigned bit = (unsigned)(g & 511u);
		uint64_t w = atomic_load_explicit(&line[bit >> 6], memory_order_relaxed);
		if (!(w & (1ULL << (bit & 63))))
			return 0;
	}
	return 1;
}

mem_table *mem_new(void)
{
	mem_table *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	atomic_init(&m->max_height, 1);
	m->rnd = 0x9e3779b97f4a7c15ULL;
	/* zeroed memory is a valid all-clear filter (atomic words have the
	 * representation of plain ones on every target we build for) */
	m->bloom = calloc(MEM_BLOOM_WORDS, sizeof(*m->bloom));
	if (!m->bloom) {
		free(m);
		return NULL;
	}
	m->head = arena_alloc(m, sizeof(mem_node) + MEM_MAX_HEIGHT * sizeof(void *));
	if (!m->head) {
		free((void *)m->bloom);
		free(m);
		return NULL;
	}
	memset(m->head, 0, sizeof(mem_node));
	m->head->height = MEM_MAX_HEIGHT;
	for (int i = 0; i < MEM_MAX_HEIGHT; i++)
		atomic_init(&m->head->next[i], NULL);
	return m;
}

void mem_ref(mem_table *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void mem_unref(mem_table *m)
{
	if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	arena_block *b = m->blocks;
	while (b) {
		arena_block *n = b->next;
		free(b);
		b = n;
	}
	for (size_t i = 0; i < m->nholds; i++)
		batch_hold_unref(m->holds[i]);
	free(m->holds);
	free(m->by_addr);
	free((void *)m->bloom);
	free(m);
}

size_t mem_usage(const mem_table *m)
{
	return atomic_load_explicit(&m->usage, memory_order_relaxed);
}

uint64_t mem_entries(const mem_table *m)
{
	return atomic_load_explicit(&m->entries, memory_order_relaxed);
}

void mem_set_log(mem_table *m, uint64_t lognum)
{
	m->lognum = lognum;
}

uint64_t mem_log(const mem_table *m)
{
	return m->lognum;
}

void mem_seal_log(mem_table *m)
{
	m->log_sealed = 1;
}

int mem_may_have_log_values(const mem_table *m)
{
	return m->log_sealed && m->nholds > 0;
}

static int hold_addr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)batch_hold_data(*(batch_hold *const *)a);
	uintptr_t y = (uintptr_t)batch_hold_data(*(batch_hold *const *)b);
	return x < y ? -1 : x > y;
}

/* Sorts the distinct holds by the address of their bytes (holds never
 * overlap: each has its own buffer). -ENOMEM leaves no index. */
static int build_addr_index(mem_table *m)
{
	batch_hold **idx = malloc((m->nholds ? m->nholds : 1) * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < m->nholds; i++)
		if (i == 0 || m->holds[i - 1] != m->holds[i]) /* a group's nodes are adjacent */
			idx[n++] = m->holds[i];
	qsort(idx, n, sizeof(*idx), hold_addr_cmp);
	size_t u = 0; /* a hold met again after another one (rare) */
	for (size_t i = 0; i < n; i++)
		if (u == 0 || idx[u - 1] != idx[i])
			idx[u++] = idx[i];
	m->by_addr = idx;
	m->nby_addr = u;
	return 0;
}

/* The hold whose bytes may contain p: the last one starting at or before
 * it (a binary search of the index), or NULL. */
static batch_hold *hold_at(const mem_table *m, const uint8_t *p)
{
	size_t lo = 0, hi = m->nby_addr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uintptr_t)batch_hold_data(m->by_addr[mid]) <= (uintptr_t)p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? m->by_addr[lo - 1] : NULL;
}

int mem_value_in_log(mem_table *m, q_slice v, uint64_t *offset)
{
	if (!mem_may_have_log_values(m) || v.n == 0)
		return 0;
	if (!m->by_addr && build_addr_index(m))
		return 0; /* out of memory: the value is copied to a blob file */
	batch_hold *h = hold_at(m, v.p);
	uint64_t num, start, logical;
	if (!h || !batch_hold_log_pos(h, v.p, v.n, &num, &start, &logical) || num != m->lognum)
		return 0;
	*offset = wal_payload_offset(start, logical);
	return 1;
}

static int random_height(mem_table *m)
{
	int h = 1;
	for (;;) {
		/* xorshift64 */
		m->rnd ^= m->rnd << 13;
		m->rnd ^= m->rnd >> 7;
		m->rnd ^= m->rnd << 17;
		if (h >= MEM_MAX_HEIGHT || (m->rnd & 3) != 0)
			break;
		h++;
	}
	return h;
}

/* First node >= key; fills prev[] if given. A node found >= key on one
 * level is often the next node on the level below too: it is not compared
 * again (last_ge). */
static mem_node *find_ge(mem_table *m, q_slice key, mem_node **prev)
{
	mem_node *x = m->head;
	mem_node *last_ge = NULL;
	int lvl = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
	for (;;) {
		mem_node *n = node_next(x, lvl);
		if (n && n != last_ge) {
			__builtin_prefetch(node_next(n, lvl));
			if (ikey_cmp(node_ikey(n), key) < 0) {
				x = n;
				continue;
			}
		}
		last_ge = n;
		if (prev)
			prev[lvl] = x;
		if (lvl == 0)
			return n;
		lvl--;
	}
}

/* Inserts a node whose value is copied (hold NULL) or referenced. */
static int add_node(mem_table *m, uint64_t seq, int kind, q_slice key, q_slice value,
		    batch_hold *hold)
{
	int h = random_height(m);
	size_t klen = key.n + IKEY_TRAILER;
	if (klen > UINT32_MAX || value.n > UINT32_MAX)
		return Q_ETOOBIG;
	size_t vspace = hold ? sizeof(const uint8_t *) : value.n;
	mem_node *x = arena_alloc(m, sizeof(mem_node) + (size_t)h * sizeof(void *) + klen + vspace);
	if (!x)
		return -ENOMEM;
	x->klen = (uint32_t)klen;
	x->vlen = (uint32_t)value.n;
	x->height = (uint32_t)h;
	x->flags = hold ? NODE_EXT : 0;
	uint8_t *k = node_key(x);
	if (key.n)
		memcpy(k, key.p, key.n);
	q_enc_fixed64(k + key.n, ikey_pack(seq, kind));
	if (hold) {
		const uint8_t *vp = value.p;
		memcpy(k + klen, &vp, sizeof(vp));
		/* the memtable pins the whole encoding (small values and slack
		 * included): charged once, at its first node (a group's nodes
		 * are inserted one after the other) */
		if (m->nholds == 0 || m->holds[m->nholds - 1] != hold)
			atomic_fetch_add_explicit(&m->usage, batch_hold_size(hold),
						  memory_order_relaxed);
		m->holds[m->nholds++] = hold;
		batch_hold_ref(hold);
	} else if (value.n) {
		memcpy(k + klen, value.p, value.n);
	}
	bloom_add(m, mem_key_hash(key)); /* before the link (see the file comment) */
	mem_node *prev[MEM_MAX_HEIGHT];
	find_ge(m, node_ikey(x), prev);
	int maxh = atomic_load_explicit(&m->max_height, memory_order_relaxed);
	if (h > maxh) {
		for (int i = maxh; i < h; i++)
			prev[i] = m->head;
		atomic_store_explicit(&m->max_height, h, memory_order_relaxed);
	}
	for (int i = 0; i < h; i++) {
		atomic_init(&x->next[i], atomic_load_explicit(&prev[i]->next[i], memory_order_relaxed));
		atomic_store_explicit(&prev[i]->next[i], x, memory_order_release);
	}
	atomic_fetch_add_explicit(&m->entries, 1, memory_order_relaxed);
	return 0;
}

int mem_add(mem_table *m, uint64_t seq, int kind, q_slice key, q_slice value)
{
	return add_node(m, seq, kind, key, value, NULL);
}

int mem_add_ref(mem_table *m, uint64_t seq, int kind, q_slice key, q_slice value,
		batch_hold *hold)
{
	if (m->nholds == m->capholds) {
		size_t nc = m->capholds ? 2 * m->capholds : 64;
		batch_hold **nh = realloc(m->holds, nc * sizeof(*nh));
		if (!nh)
			return add_node(m, seq, kind, key, value, NULL); /* copy instead */
		m->holds = nh;
		m->capholds = nc;
	}
	return add_node(m, seq, kind, key, value, hold);
}

int mem_get(mem_table *m, q_slice key, uint64_t snap, int *kind, q_buf *out)
{
	return mem_get_hashed(m, key, mem_key_hash(key), snap, kind, out);
}

int mem_get_hashed(mem_table *m, q_slice key, uint64_t hash, uint64_t snap, int *kind,
		   q_buf *out)
{
	if (!bloom_may_hold(m, hash))
		return 0;
	uint8_t sbuf[256];
	uint8_t *kb = key.n + IKEY_TRAILER <= sizeof(sbuf) ? sbuf : malloc(key.n + IKEY_TRAILER);
	if (!kb)
		return -ENOMEM;
	if (key.n)
		memcpy(kb, key.p, key.n);
	q_enc_fixed64(kb + key.n, ikey_pack(snap, KIND_PUT));
	mem_node *x = find_ge(m, q_slice_make(kb, key.n + IKEY_TRAILER), NULL);
	if (kb != sbuf)
		free(kb);
	if (!x)
		return 0;
	q_slice ik = node_ikey(x);
	q_slice uk = ikey_user(ik);
	if (ukey_cmp(uk.p, uk.n, key.p, key.n) != 0)
		return 0;
	*kind = ikey_kind(ik);
	if (*kind == KIND_PUT && out) {
		q_buf_reset(out);
		Q_RET(q_buf_append(out, node_value(x), x->vlen));
	}
	return 1;
}

/* ---- iterator ---- */

typedef struct mem_iter {
	lsm_it base;
	mem_table *m;
	mem_node *cur;
} mem_iter;

static int mi_valid(lsm_it *it) { return ((mem_iter *)it)->cur != NULL; }
static void mi_seek_first(lsm_it *it)
{
	mem_iter *mi = (mem_iter *)it;
	mi->cur = node_next(mi->m->head, 0);
}
static void mi_seek(lsm_it *it, q_slice k)
{
	mem_iter *mi = (mem_iter *)it;
	mi->cur = find_ge(mi->m, k, NULL);
}
static void mi_next(lsm_it *it)
{
	mem_iter *mi = (mem_iter *)it;
	mi->cur = node_next(mi->cur, 0);
}
static q_slice mi_key(lsm_it *it) { return node_ikey(((mem_iter *)it)->cur); }
static q_slice mi_value(lsm_it *it)
{
	mem_node *x = ((mem_iter *)it)->cur;
	return q_slice_make(node_value(x), x->vlen);
}
static int mi_status(lsm_it *it) { return 0; }
static void mi_free(lsm_it *it)
{
	mem_iter *mi = (mem_iter *)it;
	mem_unref(mi->m);
	free(mi);
}

static const struct lsm_it_ops mem_iter_ops = {
	mi_valid, mi_seek_first, mi_seek, mi_next, mi_key, mi_value, mi_status, mi_free,
};

lsm_it *mem_iter_new(mem_table *m)
{
	mem_iter *mi = calloc(1, sizeof(*mi));
	if (!mi)
		return NULL;
	mi->base.ops = &mem_iter_ops;
	mem_ref(m);
	mi->m = m;
	return &mi->base;
}
