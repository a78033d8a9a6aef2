/*
 * ring.c - consistent hashing over virtual-node tokens (see ring.h for the
 * model and docs/ring.md for placement rules and the encoding).
 *
 * Representation: members sorted by node id, each with a zone index; tokens
 * sorted by (hash, member index). Because member order is node-id order, the
 * token order is the same on every node that builds the ring from the same
 * member list. A ring is never modified after ring_build returns it.
 *
 * Threading: immutable after construction; concurrent readers are safe.
 */
#include "ring/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/coding.h"
#include "util/hash.h"
#include "util/qerr.h"

struct rmember {
	char *node;
	char *zone;      /* "" when none */
	uint32_t tokens;
	uint32_t zone_idx;
};

struct rtoken {
	uint64_t h;
	uint32_t member;
};

struct ring {
	uint64_t version;
	struct rmember *m;
	size_t nm;
	struct rtoken *t;
	size_t nt;
	size_t nzones;
};

/* The formats are canonical: varints and lengths in their shortest form
 * only (util/coding.h's *_canon readers). */
/* ------------------------------------------------------------------ */
/* construction                                                        */

static int str_ok(const char *s, size_t max, int allow_empty)
{
	if (!s)
		return allow_empty;
	size_t n = strlen(s);
	return (allow_empty || n > 0) && n <= max;
}

static int member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rmember *)a)->node, ((const struct rmember *)b)->node);
}

static int token_cmp(const void *a, const void *b)
{
	const struct rtoken *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->member < y->member ? -1 : x->member > y->member;
}

static int zone_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Token i of a node: hash of the node id, a NUL and varint(i). */
static uint64_t token_hash(const char *node, uint32_t i)
{
	uint8_t buf[RING_NODE_MAX + 1 + Q_VARINT64_MAX];
	size_t n = strlen(node);
	memcpy(buf, node, n);
	buf[n] = 0;
	size_t k = q_enc_varint64(buf + n + 1, i);
	return q_hash64(buf, n + 1 + k, RING_TOKEN_SEED);
}

void ring_free(ring *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nm; i++) {
		free(r->m[i].node);
		free(r->m[i].zone);
	}
	free(r->m);
	free(r->t);
	free(r);
}

/* Takes ownership of m[0..n) (strings included) whatever happens. */
static int ring_make(struct rmember *m, size_t n, uint64_t version, ring **out)
{
	int rc;
	char **zones = NULL;
	ring *r = calloc(1, sizeof(*r));
	if (!r) {
		for (size_t i = 0; i < n; i++) {
			free(m[i].node);
			free(m[i].zone);
		}
		free(m);
		return -ENOMEM;
	}
	r->m = m;
	r->nm = n;
	r->version = version;
	if (n > RING_MEMBERS_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	if (n > 1)
		qsort(m, n, sizeof(*m), member_cmp);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(m[i - 1].node, m[i].node) == 0) {
			rc = -EINVAL;
			goto fail;
		}
		total += m[i].tokens;
	}
	if (total > RING_TOTAL_TOKENS_MAX) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	/* zone indices */
	if (n) {
		zones = malloc(n * sizeof(*zones));
		if (!zones) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < n; i++)
			zones[i] = m[i].zone;
		qsort(zones, n, sizeof(*zones), zone_ptr_cmp);
		size_t nz = 0;
		for (size_t i = 0; i < n; i++)
			if (nz == 0 || strcmp(zones[nz - 1], zones[i]) != 0)
				zones[nz++] = zones[i];
		r->nzones = nz;
		for (size_t i = 0; i < n; i++) {
			size_t lo = 0, hi = nz;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				int d = strcmp(zones[mid], m[i].zone);
				if (d == 0) {
					lo = mid;
					break;
				}
				if (d < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			m[i].zone_idx = (uint32_t)lo;
		}
		free(zones);
		zones = NULL;
	}
	/* tokens */
	if (total) {
		r->t = malloc(total * sizeof(*r->t));
		if (!r->t) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < n; i++)
			for (uint32_t k = 0; k < m[i].tokens; k++) {
				r->t[r->nt].h = token_hash(m[i].node, k);
				r->t[r->nt].member = (uint32_t)i;
				r->nt++;
			}
		qsort(r->t, r->nt, sizeof(*r->t), token_cmp);
	}
	*out = r;
	return 0;
fail:
	free(zones);
	ring_free(r);
	return rc;
}

/* Copies one input member into d after validating it. */
static int member_copy(struct rmember *d, const ring_member *s)
{
	memset(d, 0, sizeof(*d));
	if (!str_ok(s->node, RING_NODE_MAX, 0) || !str_ok(s->zone, RING_ZONE_MAX, 1) ||
	    s->tokens > RING_TOKENS_MAX)
		return -EINVAL;
	d->tokens = s->tokens ? s->tokens : RING_TOKENS_DEFAULT;
	d->node = strdup(s->node);
	d->zone = strdup(s->zone ? s->zone : "");
	if (!d->node || !d->zone) {
		free(d->node);
		free(d->zone);
		return -ENOMEM;
	}
	return 0;
}

static void members_free(struct rmember *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].node);
		free(m[i].zone);
	}
	free(m);
}

int ring_build(const ring_member *mem, size_t n, uint64_t version, ring **out)
{
	*out = NULL;
	if (n > RING_MEMBERS_MAX)
		return Q_ETOOBIG;
	if (n && !mem)
		return -EINVAL;
	struct rmember *m = calloc(n ? n : 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = member_copy(&m[i], &mem[i]);
		if (rc) {
			members_free(m, i);
			return rc;
		}
	}
	return ring_make(m, n, version, out);
}

/* Copies r's members, leaving out index skip (or none when skip >= nm),
 * with room for `extra` more. */
static struct rmember *members_dup(const ring *r, size_t skip, size_t extra, size_t *n)
{
	struct rmember *m = calloc(r->nm + extra + 1, sizeof(*m));
	if (!m)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < r->nm; i++) {
		if (i == skip)
			continue;
		m[k].tokens = r->m[i].tokens;
		m[k].node = strdup(r->m[i].node);
		m[k].zone = strdup(r->m[i].zone);
		k++;
		if (!m[k - 1].node || !m[k - 1].zone) {
			members_free(m, k);
			return NULL;
		}
	}
	*n = k;
	return m;
}

int ring_add(const ring *r, const ring_member *mem, ring **out)
{
	*out = NULL;
	if (!mem || !str_ok(mem->node, RING_NODE_MAX, 0))
		return -EINVAL;
	if (ring_member_find(r, mem->node) >= 0)
		return -EEXIST;
	if (r->nm + 1 > RING_MEMBERS_MAX)
		return Q_ETOOBIG;
	size_t n;
	struct rmember *m = members_dup(r, SIZE_MAX, 1, &n);
	if (!m)
		return -ENOMEM;
	int rc = member_copy(&m[n], mem);
	if (rc) {
		members_free(m, n);
		return rc;
	}
	return ring_make(m, n + 1, r->version + 1, out);
}

int ring_remove(const ring *r, const char *node, ring **out)
{
	*out = NULL;
	int idx = ring_member_find(r, node);
	if (idx < 0)
		return idx;
	size_t n;
	struct rmember *m = members_dup(r, (size_t)idx, 0, &n);
	if (!m)
		return -ENOMEM;
	return ring_make(m, n, r->version + 1, out);
}

/* ------------------------------------------------------------------ */
/* accessors                                                           */

uint64_t ring_version(const ring *r)
{
	return r->version;
}

size_t ring_member_count(const ring *r)
{
	return r->nm;
}

void ring_member_get(const ring *r, size_t i, ring_member *out)
{
	out->node = r->m[i].node;
	out->zone = r->m[i].zone;
	out->tokens = r->m[i].tokens;
}

int ring_member_find(const ring *r, const char *node)
{
	if (!node)
		return Q_ENOTFOUND;
	size_t lo = 0, hi = r->nm;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(r->m[mid].node, node);
		if (d == 0)
			return (int)mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return Q_ENOTFOUND;
}

size_t ring_zone_count(const ring *r)
{
	return r->nzones;
}

size_t ring_token_count(const ring *r)
{
	return r->nt;
}

uint64_t ring_key_hash(const void *key, size_t klen)
{
	return q_hash64(key, klen, RING_KEY_SEED);
}

/* Index of the first token with hash >= h, wrapping to 0. */
static size_t token_at(const ring *r, uint64_t h)
{
	size_t lo = 0, hi = r->nt;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->t[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->nt ? 0 : lo;
}

int ring_owner(const ring *r, uint64_t h)
{
	if (r->nt == 0)
		return Q_ENOTFOUND;
	return (int)r->t[token_at(r, h)].member;
}

/* ------------------------------------------------------------------ */
/* preference lists                                                    */

/* Walk from token index `start`. Primaries: first pass takes members whose
 * zone is unused; once n are taken or every zone is used, the members passed
 * over fill the remaining primary slots in ring order; the rest, in order of
 * first appearance, are fallbacks. */
static size_t preflist_from(const ring *r, size_t start, size_t n, size_t *out, size_t max,
			    size_t *nprimary)
{
	uint8_t seen[RING_MEMBERS_MAX];
	uint8_t zused[RING_MEMBERS_MAX];
	uint32_t skipped[RING_MEMBERS_MAX];
	uint32_t prim[RING_MEMBERS_MAX];
	uint32_t fall[RING_MEMBERS_MAX];
	size_t nskip = 0, skip_pos = 0, np = 0, nf = 0, nseen = 0, zones_used = 0;

	if (nprimary)
		*nprimary = 0;
	if (r->nt == 0 || max == 0)
		return 0;
	if (n > r->nm)
		n = r->nm;
	memset(seen, 0, r->nm);
	memset(zused, 0, r->nzones);
	int phase1 = 1;
	for (size_t step = 0; step < r->nt && nseen < r->nm; step++) {
		uint32_t m = r->t[(start + step) % r->nt].member;
		if (seen[m])
			continue;
		seen[m] = 1;
		nseen++;
		uint32_t z = r->m[m].zone_idx;
		if (phase1 && np < n && !zused[z]) {
			prim[np++] = m;
			zused[z] = 1;
			zones_used++;
		} else if (phase1) {
			skipped[nskip++] = m;
		} else if (np < n) {
			prim[np++] = m;
		} else {
			fall[nf++] = m;
		}
		if (phase1 && (np == n || zones_used == r->nzones)) {
			phase1 = 0;
			while (np < n && skip_pos < nskip)
				prim[np++] = skipped[skip_pos++];
			while (skip_pos < nskip)
				fall[nf++] = skipped[skip_pos++];
		}
		if (!phase1 && np == n && np + nf >= max)
			break;
	}
	/* the walk ended in phase 1 only if the ring ran out of members */
	if (phase1) {
		while (np < n && skip_pos < nskip)
			prim[np++] = skipped[skip_pos++];
		while (skip_pos < nskip)
			fall[nf++] = skipped[skip_pos++];
	}
	size_t k = 0;
	for (size_t i = 0; i < np && k < max; i++)
		out[k++] = prim[i];
	if (nprimary)
		*nprimary = k;
	for (size_t i = 0; i < nf && k < max; i++)
		out[k++] = fall[i];
	return k;
}

size_t ring_preflist(const ring *r, uint64_t h, size_t n, size_t *out, size_t max,
		     size_t *nprimary)
{
	if (r->nt == 0) {
		if (nprimary)
			*nprimary = 0;
		return 0;
	}
	return preflist_from(r, token_at(r, h), n, out, max, nprimary);
}

size_t ring_preflist_key(const ring *r, const void *key, size_t klen, size_t n,
			 const char **out, size_t max, size_t *nprimary)
{
	size_t idx[RING_MEMBERS_MAX];
	if (max > RING_MEMBERS_MAX)
		max = RING_MEMBERS_MAX;
	size_t k = ring_preflist(r, ring_key_hash(key, klen), n, idx, max, nprimary);
	for (size_t i = 0; i < k; i++)
		out[i] = r->m[idx[i]].node;
	return k;
}

/* ------------------------------------------------------------------ */
/* ownership and ranges                                                */

void ring_ownership(const ring *r, double *shares)
{
	for (size_t i = 0; i < r->nm; i++)
		shares[i] = 0;
	if (r->nt == 0)
		return;
	const double circle = 18446744073709551616.0; /* 2^64 */
	int any = 0;
	for (size_t i = 0; i < r->nt; i++) {
		uint64_t prev = r->t[i ? i - 1 : r->nt - 1].h;
		uint64_t len = r->t[i].h - prev; /* wraps mod 2^64 for i == 0 */
		if (len) {
			any = 1;
			shares[r->t[i].member] += (double)len / circle;
		}
	}
	if (!any) /* every token at one point: its first owner has it all */
		shares[r->t[0].member] = 1.0;
}

int ring_range_contains(ring_range rr, uint64_t h)
{
	if (rr.start < rr.end)
		return h > rr.start && h <= rr.end;
	if (rr.start > rr.end)
		return h > rr.start || h <= rr.end;
	return 1;
}

int ring_ranges(const ring *r, const char *node, size_t n, ring_range **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	int me = ring_member_find(r, node);
	if (me < 0)
		return me;
	if (r->nt == 0)
		return 0;
	uint8_t *in = calloc(r->nt, 1);
	if (!in)
		return -ENOMEM;
	size_t pl[RING_MEMBERS_MAX];
	size_t nonempty = 0, included = 0;
	/* every token at one point: token 0's arc is the whole circle */
	int all_same = r->t[0].h == r->t[r->nt - 1].h;
	if (n > r->nm)
		n = r->nm;
	for (size_t i = 0; i < r->nt; i++) {
		uint64_t prev = r->t[i ? i - 1 : r->nt - 1].h;
		if (r->t[i].h == prev && !(all_same && i == 0))
			continue; /* empty arc */
		nonempty++;
		size_t np;
		size_t k = preflist_from(r, i, n, pl, n, &np);
		for (size_t j = 0; j < k && j < np; j++)
			if (pl[j] == (size_t)me)
				in[i] = 1;
		included += in[i];
	}
	if (included == 0) {
		free(in);
		return 0;
	}
	ring_range *rr = malloc(r->nt * sizeof(*rr));
	if (!rr) {
		free(in);
		return -ENOMEM;
	}
	size_t nr = 0;
	if (included == nonempty) {
		rr[nr].start = rr[nr].end = r->t[r->nt - 1].h; /* whole circle */
		nr++;
	} else {
		/* runs of included arcs; empty arcs join whatever surrounds them */
		int open = 0;
		for (size_t i = 0; i < r->nt; i++) {
			uint64_t prev = r->t[i ? i - 1 : r->nt - 1].h;
			int empty = r->t[i].h == prev;
			if (empty)
				continue;
			if (in[i]) {
				if (open)
					rr[nr - 1].end = r->t[i].h;
				else {
					rr[nr].start = prev;
					rr[nr].end = r->t[i].h;
					nr++;
					open = 1;
				}
			} else {
				open = 0;
			}
		}
		/* join a run ending at the last token with one starting at the
		 * first (the arc through 0) */
		if (nr > 1 && rr[nr - 1].end == r->t[r->nt - 1].h &&
		    rr[0].start == r->t[r->nt - 1].h) {
			rr[0].start = rr[nr - 1].start;
			nr--;
		}
	}
	free(in);
	*out = rr;
	*count = nr;
	return 0;
}

/* Same members, any order (replica lists are short). */
static int same_set(const ring_arc *a, const ring_arc *b)
{
	if (a->nreplicas != b->nreplicas)
		return 0;
	for (uint32_t i = 0; i < a->nreplicas; i++) {
		uint32_t j = 0;
		while (j < b->nreplicas && b->replicas[j] != a->replicas[i])
			j++;
		if (j == b->nreplicas)
			return 0;
	}
	return 1;
}

static int arc_cmp(const void *x, const void *y)
{
	const ring_arc *a = x, *b = y;
	if (a->range.start != b->range.start)
		return a->range.start < b->range.start ? -1 : 1;
	if (a->range.end != b->range.end)
		return a->range.end < b->range.end ? -1 : 1;
	return 0;
}

int ring_arcs(const ring *r, const char *node, size_t n, int merge, ring_arc **out,
	      size_t *count)
{
	*out = NULL;
	*count = 0;
	int me = ring_member_find(r, node);
	if (me < 0)
		return me;
	if (r->nt == 0)
		return 0;
	if (n > r->nm)
		n = r->nm;
	if (n > RING_ARC_MAX_N)
		n = RING_ARC_MAX_N;
	/* every token at one point: token 0's arc is the whole circle */
	int all_same = r->t[0].h == r->t[r->nt - 1].h;
	/* all non-empty arcs in token order, each with its replica set */
	ring_arc *all = malloc(r->nt * sizeof(*all));
	if (!all)
		return -ENOMEM;
	size_t na = 0;
	size_t pl[RING_ARC_MAX_N];
	for (size_t i = 0; i < r->nt; i++) {
		uint64_t prev = r->t[i ? i - 1 : r->nt - 1].h;
		if (r->t[i].h == prev && !(all_same && i == 0))
			continue; /* empty arc */
		size_t np;
		size_t k = preflist_from(r, i, n, pl, n, &np);
		ring_arc *a = &all[na++];
		a->range.start = prev;
		a->range.end = r->t[i].h;
		a->nreplicas = 0;
		for (size_t j = 0; j < k && j < np; j++)
			a->replicas[a->nreplicas++] = (uint32_t)pl[j];
	}
	if (merge && na > 1) {
		/* join runs of equal sets; then the run ending at the last
		 * token with the one starting after it (through 0) */
		size_t w = 0;
		for (size_t i = 0; i < na; i++) {
			if (w > 0 && same_set(&all[w - 1], &all[i]))
				all[w - 1].range.end = all[i].range.end;
			else
				all[w++] = all[i];
		}
		na = w;
		if (na > 1 && same_set(&all[0], &all[na - 1])) {
			all[0].range.start = all[na - 1].range.start;
			na--;
		}
	}
	/* the whole circle is always (0, 0), whatever the tokens, so its state
	 * survives ring changes that keep it whole */
	if (na == 1 && (merge || all_same))
		all[0].range.start = all[0].range.end = 0;
	size_t nk = 0;
	for (size_t i = 0; i < na; i++) {
		int mine = 0;
		for (uint32_t j = 0; j < all[i].nreplicas; j++)
			mine |= all[i].replicas[j] == (uint32_t)me;
		if (mine)
			all[nk++] = all[i];
	}
	if (nk == 0) {
		free(all);
		return 0;
	}
	qsort(all, nk, sizeof(*all), arc_cmp);
	*out = all;
	*count = nk;
	return 0;
}

/* ------------------------------------------------------------------ */
/* codec                                                               */

int ring_encode(const ring *r, q_buf *out)
{
	size_t old = out->len;
	int rc;
	Q_ERR(q_put_fixed16(out, (uint16_t)(RING_MAGIC | (RING_FORMAT_V1 << 8))));
	Q_ERR(q_put_varint(out, r->version));
	Q_ERR(q_put_varint(out, r->nm));
	for (size_t i = 0; i < r->nm; i++) {
		Q_ERR(q_put_lenbytes(out, r->m[i].node, strlen(r->m[i].node)));
		Q_ERR(q_put_lenbytes(out, r->m[i].zone, strlen(r->m[i].zone)));
		Q_ERR(q_put_varint(out, r->m[i].tokens));
	}
	return 0;
fail:
	out->len = old;
	return rc;
}

uint64_t ring_digest(const ring *r)
{
	q_buf b = Q_BUF_INIT;
	uint64_t h = UINT64_MAX; /* out of memory: "differs" */
	if (ring_encode(r, &b) == 0)
		h = q_hash64(b.p, b.len, RING_TOKEN_SEED);
	q_buf_free(&b);
	return h;
}

int ring_decode(const void *p, size_t n, ring **out)
{
	*out = NULL;
	if (!p && n)
		return -EINVAL;
	q_reader r = q_reader_make(p, n);
	uint8_t magic, ver;
	uint64_t version, nm;
	int rc;
	struct rmember *m = NULL;
	size_t have = 0, total = 0;
	Q_RET(q_get_u8(&r, &magic));
	if (magic != RING_MAGIC)
		return Q_ECORRUPT;
	Q_RET(q_get_u8(&r, &ver));
	if (ver != RING_FORMAT_V1)
		return Q_EVERSION;
	Q_RET(q_get_varint_canon(&r, &version));
	Q_RET(q_get_varint_canon(&r, &nm));
	if (nm > RING_MEMBERS_MAX)
		return Q_ETOOBIG;
	if (nm > q_reader_left(&r) / 3) /* each member takes >= 3 bytes */
		return Q_ETRUNC;
	m = calloc(nm ? nm : 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (; have < nm; have++) {
		q_slice node, zone;
		uint64_t tokens;
		Q_ERR(q_get_lenbytes_canon(&r, RING_NODE_MAX, &node));
		Q_ERR(q_get_lenbytes_canon(&r, RING_ZONE_MAX, &zone));
		Q_ERR(q_get_varint_canon(&r, &tokens));
		if (node.n == 0 || memchr(node.p, 0, node.n) || (zone.n && memchr(zone.p, 0, zone.n)) ||
		    tokens == 0) {
			rc = Q_ECORRUPT;
			goto fail;
		}
		if (tokens > RING_TOKENS_MAX) {
			rc = Q_ETOOBIG;
			goto fail;
		}
		total += tokens;
		if (total > RING_TOTAL_TOKENS_MAX) {
			rc = Q_ETOOBIG;
			goto fail;
		}
		m[have].node = (char *)q_slice_dup(node);
		m[have].zone = (char *)q_slice_dup(zone);
		m[have].tokens = (uint32_t)tokens;
		if (!m[have].node || !m[have].zone) {
			have++;
			rc = -ENOMEM;
			goto fail;
		}
		if (have > 0 && strcmp(m[have - 1].node, m[have].node) >= 0) {
			have++;
			rc = Q_ECORRUPT; /* canonical: sorted, unique */
			goto fail;
		}
	}
	if (q_reader_left(&r) != 0) {
		rc = Q_ECORRUPT;
		goto fail;
	}
	return ring_make(m, (size_t)nm, version, out);
fail:
	members_free(m, have);
	return rc;
}
