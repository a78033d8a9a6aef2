/*
 * cache.c - sharded LRU block cache (see cache.h).
 *
 * Each shard: a chained hash table of entries and a doubly linked LRU list
 * (head = most recent). Entries own one reference on their block. An
 * evicted entry's memory is kept as the shard's spare and reused by the next
 * insert, so a full cache's miss path does not malloc/free entries.
 */
#include "lsm/cache.h"

#include <pthread.h>
#include <stdlib.h>

#include "lsm/sst.h"

#define CACHE_SHARDS 16

typedef struct centry {
	uint64_t id, off;
	sst_block *b;
	size_t charge;
	struct centry *hnext;
	struct centry *prev, *next;
} centry;

typedef struct cshard {
	pthread_mutex_t mu;
	centry **tab;
	size_t nbuckets, count;
	size_t usage, cap;
	centry lru; /* sentinel */
	centry *spare; /* one evicted entry kept for the next insert (or NULL) */
	uint64_t hits, misses;
} cshard;

struct blk_cache {
	size_t cap;
	cshard shards[CACHE_SHARDS];
};

static uint64_t ckey_hash(uint64_t id, uint64_t off)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ULL ^ (off + 0x632be59bd9b4e019ULL);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 29;
	return h;
}

blk_cache *cache_new(size_t capacity)
{
	blk_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cap = capacity;
	for (int i = 0; i < CACHE_SHARDS; i++) {
		cshard *s = &c->shards[i];
		pthread_mutex_init(&s->mu, NULL);
		s->cap = capacity / CACHE_SHARDS;
		s->lru.prev = s->lru.next = &s->lru;
	}
	return c;
}

static void lru_unlink(centry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push(cshard *s, centry *e)
{
	e->next = s->lru.next;
	e->prev = &s->lru;
	s->lru.next->prev = e;
	s->lru.next = e;
}

void cache_free(blk_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < CACHE_SHARDS; i++) {
		cshard *s = &c->shards[i];
		centry *e = s->lru.next;
		while (e != &s->lru) {
			centry *n = e->next;
			sst_block_unref(e->b);
			free(e);
			e = n;
		}
		free(s->spare);
		free(s->tab);
		pthread_mutex_destroy(&s->mu);
	}
	free(c);
}

static cshard *shard_of(blk_cache *c, uint64_t h)
{
	return &c->shards[h >> 60];
}

sst_block *cache_lookup(blk_cache *c, uint64_t id, uint64_t off)
{
	if (!c || c->cap == 0)
		return NULL;
	uint64_t h = ckey_hash(id, off);
	cshard *s = shard_of(c, h);
	sst_block *b = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->nbuckets) {
		for (centry *e = s->tab[h % s->nbuckets]; e; e = e->hnext)
			if (e->id == id && e->off == off) {
				lru_unlink(e);
				lru_push(s, e);
				b = e->b;
				sst_block_ref(b);
				break;
			}
	}
	if (b)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->mu);
	return b;
}

static void shard_remove(cshard *s, centry *e)
{
	uint64_t h = ckey_hash(e->id, e->off);
	centry **pp = &s->tab[h % s->nbuckets];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	s->usage -= e->charge;
	s->count--;
	sst_block_unref(e->b);
	if (LSM_RECYCLE && !s->spare)
		s->spare = e; /* a full cache evicts one entry per insert: reuse it */
	else
		free(e);
}

static void shard_grow(cshard *s)
{
	size_t nb = s->nbuckets ? s->nbuckets * 2 : 256;
	centry **tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		centry *e = s->tab[i];
		while (e) {
			centry *n = e->hnext;
			uint64_t h = ckey_hash(e->id, e->off);
			e->hnext = tab[h % nb];
			tab[h % nb] = e;
			e = n;
		}
	}
	free(s->tab);
	s->tab = tab;
	s->nbuckets = nb;
}

void cache_insert(blk_cache *c, uint64_t id, uint64_t off, sst_block *b)
{
	if (!c || c->cap == 0)
		return;
	uint64_t h = ckey_hash(id, off);
	cshard *s = shard_of(c, h);
	pthread_mutex_lock(&s->mu);
	if (s->count >= s->nbuckets)
		shard_grow(s);
	if (!s->nbuckets)
		goto out;
	for (centry *e = s->tab[h % s->nbuckets]; e; e = e->hnext)
		if (e->id == id && e->off == off)
			goto out; /* another reader inserted it first */
	centry *e = s->spare;
	if (e)
		s->spare = NULL;
	else if (!(e = malloc(sizeof(*e))))
		goto out;
	e->id = id;
	e->off = off;
	e->b = b;
	sst_block_ref(b);
	e->charge = b->size + 4 * (size_t)b->nrestarts + sizeof(*b) + sizeof(*e);
	e->hnext = s->tab[h % s->nbuckets];
	s->tab[h % s->nbuckets] = e;
	lru_push(s, e);
	s->usage += e->charge;
	s->count++;
	while (s->usage > s->cap && s->lru.prev != &s->lru && s->lru.prev != e)
		shard_remove(s, s->lru.prev);
out:
	pthread_mutex_unlock(&s->mu);
}

void cache_stats(blk_cache *c, uint64_t *hits, uint64_t *misses, size_t *usage)
{
	*hits = *misses = 0;
	*usage = 0;
	if (!c)
		return;
	for (int i = 0; i < CACHE_SHARDS; i++) {
		cshard *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		*hits += s->hits;
		*misses += s->misses;
		*usage += s->usage;
		pthread_mutex_unlock(&s->mu);
	}
}
