/*
 * aae_reap.c - tombstone-reaping bookkeeping (see aae_reap.h).
 *
 * Per range: the list of other replicas; per replica the latest exchange:
 * its start time, whether it completed, and the sorted hashes of the keys it
 * found differing. Linear search over ranges: a node holds at most a few
 * thousand ranges and a reap check is per tombstone, off the hot path.
 */
#include "aae/aae_reap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

#define REAP_KEY_SEED 0x616165726561704bULL /* "aaereapK" */

typedef struct peer_rec {
	char *id;
	int has;           /* a complete exchange is recorded */
	int64_t started_ns;
	uint64_t *diff;    /* sorted key hashes */
	size_t ndiff;
} peer_rec;

typedef struct range_rec {
	uint64_t start, end;
	peer_rec *peers;
	size_t npeers;
} range_rec;

struct aae_reap {
	pthread_mutex_t mu;
	int64_t grace_ns;
	range_rec *ranges;
	size_t nranges;
};

int aae_reap_new(int64_t grace_ns, aae_reap **out)
{
	*out = NULL;
	if (grace_ns < 0)
		return -EINVAL;
	aae_reap *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	if (pthread_mutex_init(&r->mu, NULL)) {
		free(r);
		return -ENOMEM;
	}
	r->grace_ns = grace_ns;
	*out = r;
	return 0;
}

static void peer_clear(peer_rec *p)
{
	free(p->id);
	free(p->diff);
	memset(p, 0, sizeof *p);
}

static void range_clear(range_rec *rr)
{
	for (size_t i = 0; i < rr->npeers; i++)
		peer_clear(&rr->peers[i]);
	free(rr->peers);
	rr->peers = NULL;
	rr->npeers = 0;
}

void aae_reap_free(aae_reap *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nranges; i++)
		range_clear(&r->ranges[i]);
	free(r->ranges);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static range_rec *find_range(aae_reap *r, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < r->nranges; i++)
		if (r->ranges[i].start == start && r->ranges[i].end == end)
			return &r->ranges[i];
	return NULL;
}

static peer_rec *find_peer(range_rec *rr, const char *id)
{
	for (size_t i = 0; i < rr->npeers; i++)
		if (!strcmp(rr->peers[i].id, id))
			return &rr->peers[i];
	return NULL;
}

int aae_reap_set_replicas(aae_reap *r, uint64_t start, uint64_t end,
			  const char *const *peers, size_t n)
{
	if (n && !peers)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!peers[i] || !peers[i][0])
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(peers[i], peers[j]))
				return -EINVAL;
	}
	peer_rec *np = n ? calloc(n, sizeof *np) : NULL;
	if (n && !np)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		np[i].id = strdup(peers[i]);
		if (!np[i].id) {
			for (size_t j = 0; j < i; j++)
				free(np[j].id);
			free(np);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&r->mu);
	range_rec *rr = find_range(r, start, end);
	if (!rr) {
		range_rec *a = realloc(r->ranges, (r->nranges + 1) * sizeof *a);
		if (!a) {
			pthread_mutex_unlock(&r->mu);
			for (size_t i = 0; i < n; i++)
				free(np[i].id);
			free(np);
			return -ENOMEM;
		}
		r->ranges = a;
		rr = &r->ranges[r->nranges++];
		memset(rr, 0, sizeof *rr);
		rr->start = start;
		rr->end = end;
	}
	/* carry over the records of peers that stay */
	for (size_t i = 0; i < n; i++) {
		peer_rec *old = find_peer(rr, np[i].id);
		if (old) {
			np[i].has = old->has;
			np[i].started_ns = old->started_ns;
			np[i].diff = old->diff;
			np[i].ndiff = old->ndiff;
			old->diff = NULL;
		}
	}
	range_clear(rr);
	rr->peers = np;
	rr->npeers = n;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

void aae_reap_forget_range(aae_reap *r, uint64_t start, uint64_t end)
{
	pthread_mutex_lock(&r->mu);
	range_rec *rr = find_range(r, start, end);
	if (rr) {
		range_clear(rr);
		*rr = r->ranges[--r->nranges];
	}
	pthread_mutex_unlock(&r->mu);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t key_hash(q_slice k)
{
	return q_hash64(k.p ? k.p : (const uint8_t *)"", k.n, REAP_KEY_SEED);
}

int aae_reap_record(aae_reap *r, uint64_t start, uint64_t end, const char *peer,
		    int64_t started_ns, int complete, const q_slice *keys, size_t n)
{
	if (!peer || (n && !keys))
		return -EINVAL;
	uint64_t *h = NULL;
	if (complete && n) {
		h = malloc(n * sizeof *h);
		if (!h)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			h[i] = key_hash(keys[i]);
		qsort(h, n, sizeof *h, u64_cmp);
	}
	pthread_mutex_lock(&r->mu);
	range_rec *rr = find_range(r, start, end);
	peer_rec *p = rr ? find_peer(rr, peer) : NULL;
	if (!p) {
		pthread_mutex_unlock(&r->mu);
		free(h);
		return -EINVAL;
	}
	free(p->diff);
	p->diff = h;
	p->ndiff = complete ? n : 0;
	p->has = complete != 0;
	p->started_ns = started_ns;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

int aae_reap_record_exchange(aae_reap *r, const char *peer, int64_t started_ns,
			     const aae_exchange *x)
{
	aae_exchange_stats st;
	aae_exchange_get_stats(x, &st);
	int complete = aae_exchange_state(x) == AAE_X_DONE && !st.truncated;
	size_t n = complete ? aae_exchange_ndiffs(x) : 0;
	q_slice *keys = n ? malloc(n * sizeof *keys) : NULL;
	if (n && !keys)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		aae_diff d;
		aae_exchange_diff(x, i, &d);
		keys[i] = d.key;
	}
	uint64_t s, e;
	/* the exchange's range is its tree's */
	int rc = aae_exchange_range(x, &s, &e);
	if (rc == 0)
		rc = aae_reap_record(r, s, e, peer, started_ns, complete, keys, n);
	free(keys);
	return rc;
}

int aae_can_reap(aae_reap *r, uint64_t start, uint64_t end, q_slice key, int tombstone_only,
		 int64_t tomb_ns, int64_t now_ns)
{
	if (!tombstone_only)
		return 0;
	if (now_ns < tomb_ns || now_ns - tomb_ns < r->grace_ns)
		return 0;
	uint64_t h = key_hash(key);
	int ok = 1;
	pthread_mutex_lock(&r->mu);
	range_rec *rr = find_range(r, start, end);
	if (!rr)
		ok = 0;
	for (size_t i = 0; ok && i < rr->npeers; i++) {
		peer_rec *p = &rr->peers[i];
		if (!p->has || p->started_ns <= tomb_ns ||
		    (p->ndiff && bsearch(&h, p->diff, p->ndiff, sizeof h, u64_cmp)))
			ok = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}
