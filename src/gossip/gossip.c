/*
 * gossip.c - membership table, merge rules, failure detector, peer
 * selection and the SYN/ACK/ACK2 exchange (see gossip.h, docs/gossip.md).
 *
 * Invariants:
 *   1. g->m is sorted by id, ids unique, at most GOSSIP_MEMBERS_MAX entries;
 *      this node's entry is always present (g->self indexes it, refreshed
 *      after every insertion).
 *   2. merge() only moves an entry up in the order (incarnation, then status
 *      and heartbeat at equal incarnation), except for this node's own entry,
 *      which only this node changes (refutation, leave, heartbeat).
 *   3. progress_ms changes only when (incarnation, heartbeat) rises or the
 *      member is first seen; status_since_ms only when the status changes.
 *   4. The ring state is replaced only by one with a larger (version, hash).
 *
 * Threading: none (gossip.h); callbacks run on the caller's thread.
 */
#include "gossip/gossip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

#define LOGC "gossip"

typedef struct gmember {
	char *id;
	char *addr;
	char *zone;
	uint64_t inc;
	uint64_t hb;
	uint8_t status;
	uint64_t status_since;
	uint64_t progress;
} gmember;

struct gossip {
	char *cluster;
	uint64_t fanout;
	uint64_t suspect_after;
	uint64_t down_after;
	uint64_t rng;
	int leaving;

	gmember *m;
	size_t n, cap;
	size_t self;

	char **seeds;
	size_t nseeds;

	uint64_t ring_version;
	uint64_t ring_hash;
	q_buf ring;
	uint64_t refused_version; /* last ring ring_check refused: not retried */
	uint64_t refused_hash;

	gossip_member_cb on_member;
	gossip_ring_cb on_ring;
	gossip_ring_check_cb ring_check;
	void *ud;
};

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */

static uint64_t rng_next(gossip *g)
{
	/* xorshift64* */
	uint64_t x = g->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	g->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(gossip *g, uint64_t n)
{
	return n ? rng_next(g) % n : 0;
}

static char *slice_str(q_slice s)
{
	return (char *)q_slice_dup(s);
}

static int str_ok(const char *s, size_t min, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int cmp_id(const char *a, q_slice b)
{
	return q_slice_cmp(q_slice_str(a), b);
}

/* Index of id, or -(insertion point) - 1. */
static long find_idx(const gossip *g, q_slice id)
{
	size_t lo = 0, hi = g->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_id(g->m[mid].id, id);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static void member_view(const gossip *g, size_t i, gossip_member *out)
{
	const gmember *e = &g->m[i];
	out->id = e->id;
	out->addr = e->addr;
	out->zone = e->zone;
	out->incarnation = e->inc;
	out->heartbeat = e->hb;
	out->status = (gossip_status)e->status;
	out->status_since_ms = e->status_since;
	out->progress_ms = e->progress;
	out->is_self = (i == g->self);
}

static void notify(gossip *g, size_t i, int old_status)
{
	if (!g->on_member)
		return;
	gossip_member v;
	member_view(g, i, &v);
	g->on_member(g->ud, &v, old_status);
}

static void set_status(gossip *g, size_t i, uint8_t st, uint64_t now)
{
	gmember *e = &g->m[i];
	if (e->status == st)
		return;
	int old = e->status;
	e->status = st;
	e->status_since = now;
	if (i == g->self)
		Q_INFO(LOGC, "self %s: %s -> %s (incarnation %llu)", e->id, gossip_status_name(old),
		       gossip_status_name(st), (unsigned long long)e->inc);
	else
		Q_INFO(LOGC, "member %s (%s): %s -> %s (incarnation %llu)", e->id, e->addr,
		       gossip_status_name(old), gossip_status_name(st), (unsigned long long)e->inc);
	notify(g, i, old);
}

/* Inserts a new entry at position pos (from find_idx). */
static int insert_at(gossip *g, size_t pos, q_slice id, q_slice addr, q_slice zone)
{
	if (g->n >= GOSSIP_MEMBERS_MAX)
		return Q_ETOOBIG;
	if (g->n == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 8;
		gmember *nm = realloc(g->m, nc * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		g->m = nm;
		g->cap = nc;
	}
	gmember e;
	memset(&e, 0, sizeof(e));
	e.id = slice_str(id);
	e.addr = slice_str(addr);
	e.zone = slice_str(zone);
	if (!e.id || !e.addr || !e.zone) {
		free(e.id);
		free(e.addr);
		free(e.zone);
		return -ENOMEM;
	}
	memmove(&g->m[pos + 1], &g->m[pos], (g->n - pos) * sizeof(*g->m));
	g->m[pos] = e;
	g->n++;
	if (pos <= g->self && g->n > 1)
		g->self++;
	return 0;
}

static int replace_str(char **dst, q_slice s)
{
	if (q_slice_eq(q_slice_str(*dst), s))
		return 0;
	char *c = slice_str(s);
	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 1;
}

/* ---------------------------------------------------------------------
 * Merge
 * ------------------------------------------------------------------- */

/* 1 if (inc, st, hb) carries something the entry e does not have. */
static int newer_than(uint64_t inc, uint8_t st, uint64_t hb, const gmember *e)
{
	if (inc != e->inc)
		return inc > e->inc;
	return st > e->status || hb > e->hb;
}

static void refute(gossip *g, const gossip_state *s, uint64_t now)
{
	gmember *me = &g->m[g->self];
	if (g->leaving) {
		/* `left` outranks everything at our incarnation; only news of a
		 * higher one (an earlier life) needs an answer. */
		if (s->incarnation > me->inc)
			me->inc = s->incarnation + 1;
		return;
	}
	if (s->incarnation > me->inc ||
	    (s->incarnation == me->inc && s->status != GOSSIP_ALIVE)) {
		uint64_t old = me->inc;
		me->inc = (s->incarnation > me->inc ? s->incarnation : me->inc) + 1;
		Q_INFO(LOGC, "refuting %s about self at incarnation %llu: now incarnation %llu (was %llu)",
		       gossip_status_name(s->status), (unsigned long long)s->incarnation,
		       (unsigned long long)me->inc, (unsigned long long)old);
	}
	(void)now;
}

static int merge_state(gossip *g, const gossip_state *s, uint64_t now)
{
	long idx = find_idx(g, s->id);
	if (idx < 0) {
		size_t pos = (size_t)(-idx - 1);
		int rc = insert_at(g, pos, s->id, s->addr, s->zone);
		if (rc < 0) {
			Q_WARN(LOGC, "cannot add member %.*s: %s", (int)s->id.n, (const char *)s->id.p,
			       q_strerror(rc));
			return rc;
		}
		gmember *e = &g->m[pos];
		e->inc = s->incarnation;
		e->hb = s->heartbeat;
		e->status = s->status;
		e->status_since = now;
		e->progress = now;
		Q_INFO(LOGC, "new member %s (%s, zone '%s'): %s, incarnation %llu", e->id, e->addr,
		       e->zone, gossip_status_name(e->status), (unsigned long long)e->inc);
		notify(g, pos, -1);
		return 0;
	}
	size_t i = (size_t)idx;
	if (i == g->self) {
		if (!q_slice_eq(q_slice_str(g->m[i].addr), s->addr) && s->incarnation >= g->m[i].inc)
			Q_WARN(LOGC, "another node at %.*s claims this node's id %s",
			       (int)s->addr.n, (const char *)s->addr.p, g->m[i].id);
		refute(g, s, now);
		return 0;
	}
	gmember *e = &g->m[i];
	if (!newer_than(s->incarnation, s->status, s->heartbeat, e))
		return 0;
	uint8_t new_status;
	int addr_changed = 0;
	if (s->incarnation > e->inc) {
		int r1 = replace_str(&e->addr, s->addr);
		int r2 = replace_str(&e->zone, s->zone);
		if (r1 < 0 || r2 < 0)
			return -ENOMEM;
		addr_changed = r1 > 0 || r2 > 0;
		e->inc = s->incarnation;
		e->hb = s->heartbeat;
		e->progress = now;
		new_status = s->status;
	} else {
		if (s->heartbeat > e->hb) {
			e->hb = s->heartbeat;
			e->progress = now;
		}
		new_status = s->status > e->status ? s->status : e->status;
	}
	if (new_status != e->status)
		set_status(g, i, new_status, now);
	else if (addr_changed)
		notify(g, i, e->status);
	return 0;
}

static int ring_greater(uint64_t v1, uint64_t h1, uint64_t v2, uint64_t h2)
{
	return v1 > v2 || (v1 == v2 && h1 > h2);
}

static void adopt_ring(gossip *g, const gossip_msg *m)
{
	if (!(m->flags & GOSSIP_F_RING))
		return;
	if (!ring_greater(m->ring_version, m->ring_hash, g->ring_version, g->ring_hash))
		return;
	if (m->ring_version == g->refused_version && m->ring_hash == g->refused_hash)
		return;
	if (g->ring_check) {
		int rc = g->ring_check(g->ud, m->ring_version, m->ring.p, m->ring.n);
		if (rc < 0) {
			Q_WARN(LOGC, "refusing ring version %llu from %.*s: %s",
			       (unsigned long long)m->ring_version, (int)m->from_id.n,
			       (const char *)m->from_id.p, q_strerror(rc));
			g->refused_version = m->ring_version;
			g->refused_hash = m->ring_hash;
			return;
		}
	}
	q_buf nb = Q_BUF_INIT;
	if (q_buf_append(&nb, m->ring.p, m->ring.n) < 0) {
		Q_WARN(LOGC, "out of memory adopting ring version %llu",
		       (unsigned long long)m->ring_version);
		return;
	}
	q_buf_free(&g->ring);
	g->ring = nb;
	g->ring_version = m->ring_version;
	g->ring_hash = m->ring_hash;
	Q_INFO(LOGC, "ring version %llu adopted from %.*s (%zu bytes)",
	       (unsigned long long)g->ring_version, (int)m->from_id.n, (const char *)m->from_id.p,
	       g->ring.len);
	if (g->on_ring)
		g->on_ring(g->ud, g->ring_version, g->ring.p, g->ring.len);
}

/* ---------------------------------------------------------------------
 * Message building
 * ------------------------------------------------------------------- */

static void msg_header(gossip *g, gossip_msg *m, uint8_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->cluster = q_slice_str(g->cluster);
	m->from_id = q_slice_str(g->m[g->self].id);
	m->from_addr = q_slice_str(g->m[g->self].addr);
	m->ring_version = g->ring_version;
	m->ring_hash = g->ring_hash;
}

static void state_of(const gmember *e, gossip_state *s)
{
	s->id = q_slice_str(e->id);
	s->addr = q_slice_str(e->addr);
	s->zone = q_slice_str(e->zone);
	s->incarnation = e->inc;
	s->heartbeat = e->hb;
	s->status = e->status;
}

static void digest_of(const gmember *e, gossip_digest *d)
{
	d->id = q_slice_str(e->id);
	d->incarnation = e->inc;
	d->heartbeat = e->hb;
	d->status = e->status;
}

static int outbox_push(gossip_outbox *o, const char *addr, const q_buf *msg)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 8;
		gossip_out *nv = realloc(o->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		o->v = nv;
		o->cap = nc;
	}
	gossip_out *e = &o->v[o->n];
	size_t an = strlen(addr);
	if (an > GOSSIP_ADDR_MAX)
		return -EINVAL;
	memcpy(e->addr, addr, an + 1);
	q_buf_init(&e->msg);
	if (q_buf_append(&e->msg, msg->p, msg->len) < 0) {
		q_buf_free(&e->msg);
		return -ENOMEM;
	}
	o->n++;
	return 0;
}

void gossip_outbox_init(gossip_outbox *o)
{
	memset(o, 0, sizeof(*o));
}

void gossip_outbox_clear(gossip_outbox *o)
{
	for (size_t i = 0; i < o->n; i++)
		q_buf_free(&o->v[i].msg);
	o->n = 0;
}

void gossip_outbox_free(gossip_outbox *o)
{
	gossip_outbox_clear(o);
	free(o->v);
	memset(o, 0, sizeof(*o));
}

/* ---------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------- */

void gossip_config_default(gossip_config *c)
{
	memset(c, 0, sizeof(*c));
}

int gossip_new(const gossip_config *c, uint64_t now_ms, gossip **out)
{
	const char *cluster = c->cluster ? c->cluster : GOSSIP_CLUSTER_DEFAULT;
	const char *zone = c->zone ? c->zone : "";
	uint64_t suspect = c->suspect_after_ms ? c->suspect_after_ms : GOSSIP_SUSPECT_AFTER_DEFAULT_MS;
	uint64_t down = c->down_after_ms ? c->down_after_ms : GOSSIP_DOWN_AFTER_DEFAULT_MS;
	int rc;

	*out = NULL;
	if (!str_ok(cluster, 1, GOSSIP_CLUSTER_MAX) || !str_ok(c->id, 1, GOSSIP_ID_MAX) ||
	    !str_ok(c->addr, 1, GOSSIP_ADDR_MAX) || !str_ok(zone, 0, GOSSIP_ZONE_MAX) ||
	    c->nseeds > GOSSIP_SEEDS_MAX || down <= suspect)
		return -EINVAL;
	for (size_t i = 0; i < c->nseeds; i++)
		if (!str_ok(c->seeds[i], 1, GOSSIP_ADDR_MAX))
			return -EINVAL;

	gossip *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->fanout = c->fanout ? c->fanout : GOSSIP_FANOUT_DEFAULT;
	g->suspect_after = suspect;
	g->down_after = down;
	g->on_member = c->on_member;
	g->on_ring = c->on_ring;
	g->ring_check = c->ring_check;
	g->ud = c->ud;
	q_buf_init(&g->ring);
	g->cluster = strdup(cluster);
	if (!g->cluster) {
		rc = -ENOMEM;
		goto fail;
	}
	if (c->nseeds) {
		g->seeds = calloc(c->nseeds, sizeof(*g->seeds));
		if (!g->seeds) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < c->nseeds; i++) {
			g->seeds[i] = strdup(c->seeds[i]);
			if (!g->seeds[i]) {
				rc = -ENOMEM;
				goto fail;
			}
			g->nseeds++;
		}
	}
	Q_ERR(insert_at(g, 0, q_slice_str(c->id), q_slice_str(c->addr), q_slice_str(zone)));
	g->self = 0;
	gmember *me = &g->m[0];
	me->inc = c->incarnation ? c->incarnation : q_wall_ns() / 1000000u;
	me->hb = 0;
	me->status = GOSSIP_ALIVE;
	me->status_since = now_ms;
	me->progress = now_ms;

	uint64_t seed = c->rng_seed;
	if (!seed)
		seed = q_mono_ns() ^ q_hash64(c->id, strlen(c->id), 0x5eed);
	g->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	*out = g;
	return 0;
fail:
	gossip_free(g);
	return rc;
}

void gossip_free(gossip *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		free(g->m[i].id);
		free(g->m[i].addr);
		free(g->m[i].zone);
	}
	free(g->m);
	for (size_t i = 0; i < g->nseeds; i++)
		free(g->seeds[i]);
	free(g->seeds);
	q_buf_free(&g->ring);
	free(g->cluster);
	free(g);
}

/* ---------------------------------------------------------------------
 * Tick: heartbeat, detector, peer selection
 * ------------------------------------------------------------------- */

static void detect(gossip *g, uint64_t now)
{
	for (size_t i = 0; i < g->n; i++) {
		if (i == g->self)
			continue;
		gmember *e = &g->m[i];
		uint64_t idle = now > e->progress ? now - e->progress : 0;
		if (e->status == GOSSIP_ALIVE && idle >= g->suspect_after)
			set_status(g, i, GOSSIP_SUSPECT, now);
		if (e->status == GOSSIP_SUSPECT && idle >= g->down_after)
			set_status(g, i, GOSSIP_DOWN, now);
	}
}

static int addr_in(const char *addr, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(addr, list[i]))
			return 1;
	return 0;
}

static int is_seed(const gossip *g, const char *addr)
{
	return addr_in(addr, (const char *const *)g->seeds, g->nseeds);
}

#define TARGETS_MAX (GOSSIP_MEMBERS_MAX + GOSSIP_SEEDS_MAX)

static int build_syn(gossip *g, q_buf *out)
{
	gossip_msg m;
	msg_header(g, &m, GOSSIP_MSG_SYN);
	m.digests = calloc(g->n, sizeof(*m.digests));
	if (!m.digests)
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++)
		digest_of(&g->m[i], &m.digests[i]);
	m.ndigests = g->n;
	int rc = gossip_msg_encode(&m, out);
	free(m.digests);
	return rc;
}

int gossip_tick(gossip *g, uint64_t now_ms, gossip_outbox *out)
{
	gmember *me = &g->m[g->self];
	me->hb++;
	me->progress = now_ms;
	detect(g, now_ms);

	/* Candidate lists (indices into g->m). */
	size_t *live = malloc((g->n + 1) * sizeof(size_t));
	size_t *down = malloc((g->n + 1) * sizeof(size_t));
	const char **targets = malloc(TARGETS_MAX * sizeof(char *));
	q_buf syn = Q_BUF_INIT;
	size_t nlive = 0, ndown = 0, nt = 0;
	int rc = 0;
	if (!live || !down || !targets) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < g->n; i++) {
		if (i == g->self || !strcmp(g->m[i].addr, me->addr))
			continue;
		if (g->m[i].status <= GOSSIP_SUSPECT)
			live[nlive++] = i;
		else if (g->m[i].status == GOSSIP_DOWN)
			down[ndown++] = i;
	}
	/* fanout random live peers: partial Fisher-Yates. */
	size_t k = nlive < g->fanout ? nlive : (size_t)g->fanout;
	for (size_t i = 0; i < k; i++) {
		size_t j = i + (size_t)rng_below(g, nlive - i);
		size_t t = live[i];
		live[i] = live[j];
		live[j] = t;
		targets[nt++] = g->m[live[i]].addr;
	}
	/* Now and then a down member, to notice it coming back. */
	if (ndown && rng_below(g, nlive + 1) < ndown)
		targets[nt++] = g->m[down[rng_below(g, ndown)]].addr;
	/* Seeds: all of them while alone, else now and then one. */
	if (g->nseeds) {
		if (nlive == 0) {
			for (size_t i = 0; i < g->nseeds; i++)
				targets[nt++] = g->seeds[i];
		} else {
			int have_seed = 0;
			for (size_t i = 0; i < nt; i++)
				have_seed |= is_seed(g, targets[i]);
			if (!have_seed && rng_below(g, nlive + ndown + 1) < g->nseeds)
				targets[nt++] = g->seeds[rng_below(g, g->nseeds)];
		}
	}
	if (nt == 0)
		goto out;
	rc = build_syn(g, &syn);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < nt; i++) {
		if (!strcmp(targets[i], me->addr) || addr_in(targets[i], targets, i))
			continue;
		rc = outbox_push(out, targets[i], &syn);
		if (rc < 0)
			goto out;
	}
out:
	q_buf_free(&syn);
	free(live);
	free(down);
	free(targets);
	return rc;
}

/* ---------------------------------------------------------------------
 * Receive: SYN -> ACK, ACK -> ACK2, ACK2
 * ------------------------------------------------------------------- */

static int emit(gossip_msg *m, const char *addr, gossip_outbox *out)
{
	q_buf b = Q_BUF_INIT;
	int rc = gossip_msg_encode(m, &b);
	if (rc == 0)
		rc = outbox_push(out, addr, &b);
	q_buf_free(&b);
	return rc;
}

static int on_syn(gossip *g, const gossip_msg *in, const char *reply_addr, gossip_outbox *out)
{
	gossip_msg m;
	int rc;
	msg_header(g, &m, GOSSIP_MSG_ACK);
	m.digests = calloc(in->ndigests + 1, sizeof(*m.digests));
	m.states = calloc(g->n + 1, sizeof(*m.states));
	if (!m.digests || !m.states) {
		rc = -ENOMEM;
		goto done;
	}
	/* Merge walk over two id-sorted lists. */
	size_t i = 0, j = 0;
	while (i < g->n || j < in->ndigests) {
		int c;
		if (i == g->n)
			c = 1;
		else if (j == in->ndigests)
			c = -1;
		else
			c = cmp_id(g->m[i].id, in->digests[j].id);
		if (c < 0) {
			state_of(&g->m[i++], &m.states[m.nstates++]);
		} else if (c > 0) {
			gossip_digest *d = &m.digests[m.ndigests++];
			d->id = in->digests[j++].id; /* unknown here: ask for all of it */
		} else {
			const gmember *e = &g->m[i];
			const gossip_digest *d = &in->digests[j];
			int ours = !(d->incarnation > e->inc) &&
				   (e->inc > d->incarnation || e->status > d->status || e->hb > d->heartbeat);
			int theirs = newer_than(d->incarnation, d->status, d->heartbeat, e);
			if (ours)
				state_of(e, &m.states[m.nstates++]);
			if (theirs)
				digest_of(e, &m.digests[m.ndigests++]);
			i++;
			j++;
		}
	}
	if (ring_greater(g->ring_version, g->ring_hash, in->ring_version, in->ring_hash)) {
		m.flags |= GOSSIP_F_RING;
		m.ring = q_buf_slice(&g->ring);
	} else if (ring_greater(in->ring_version, in->ring_hash, g->ring_version, g->ring_hash)) {
		m.flags |= GOSSIP_F_RING_WANTED;
	}
	rc = 0;
	if (m.nstates || m.ndigests || m.flags)
		rc = emit(&m, reply_addr, out);
done:
	free(m.digests);
	free(m.states);
	return rc;
}

static int merge_all(gossip *g, const gossip_msg *in, uint64_t now)
{
	for (size_t i = 0; i < in->nstates; i++) {
		int rc = merge_state(g, &in->states[i], now);
		if (rc == -ENOMEM)
			return rc;
	}
	adopt_ring(g, in);
	return 0;
}

static int on_ack(gossip *g, const gossip_msg *in, const char *reply_addr, uint64_t now,
		  gossip_outbox *out)
{
	Q_RET(merge_all(g, in, now));
	gossip_msg m;
	int rc = 0;
	msg_header(g, &m, GOSSIP_MSG_ACK2);
	m.states = calloc(in->ndigests + 1, sizeof(*m.states));
	if (!m.states)
		return -ENOMEM;
	for (size_t j = 0; j < in->ndigests; j++) {
		long idx = find_idx(g, in->digests[j].id);
		if (idx >= 0)
			state_of(&g->m[idx], &m.states[m.nstates++]);
	}
	if ((in->flags & GOSSIP_F_RING_WANTED) &&
	    ring_greater(g->ring_version, g->ring_hash, in->ring_version, in->ring_hash)) {
		m.flags |= GOSSIP_F_RING;
		m.ring = q_buf_slice(&g->ring);
	}
	if (m.nstates || m.flags)
		rc = emit(&m, reply_addr, out);
	free(m.states);
	return rc;
}

int gossip_receive(gossip *g, const void *p, size_t n, uint64_t now_ms, gossip_outbox *out)
{
	gossip_msg in;
	char reply_addr[GOSSIP_ADDR_MAX + 1];
	int rc = gossip_msg_decode(p, n, &in);
	if (rc < 0) {
		Q_DEBUG(LOGC, "bad gossip message (%zu bytes): %s", n, q_strerror(rc));
		return rc;
	}
	if (!q_slice_eq(in.cluster, q_slice_str(g->cluster))) {
		Q_WARN(LOGC, "gossip from %.*s of cluster '%.*s' ignored (this is '%s')",
		       (int)in.from_addr.n, (const char *)in.from_addr.p, (int)in.cluster.n,
		       (const char *)in.cluster.p, g->cluster);
		rc = Q_EPROTO;
		goto done;
	}
	if (q_slice_eq(in.from_id, q_slice_str(g->m[g->self].id))) {
		Q_WARN(LOGC, "gossip from %.*s claims this node's id %s",
		       (int)in.from_addr.n, (const char *)in.from_addr.p, g->m[g->self].id);
		rc = Q_EPROTO;
		goto done;
	}
	memcpy(reply_addr, in.from_addr.p, in.from_addr.n);
	reply_addr[in.from_addr.n] = '\0';
	switch (in.type) {
	case GOSSIP_MSG_SYN:
		rc = on_syn(g, &in, reply_addr, out);
		break;
	case GOSSIP_MSG_ACK:
		rc = on_ack(g, &in, reply_addr, now_ms, out);
		break;
	default:
		rc = merge_all(g, &in, now_ms);
		break;
	}
done:
	gossip_msg_clear(&in);
	return rc;
}

/* ---------------------------------------------------------------------
 * Leave, ring, queries
 * ------------------------------------------------------------------- */

int gossip_leave(gossip *g, uint64_t now_ms)
{
	g->leaving = 1;
	set_status(g, g->self, GOSSIP_LEFT, now_ms);
	return 0;
}

int gossip_remove(gossip *g, const char *id, uint64_t now_ms)
{
	long idx = find_idx(g, q_slice_str(id));
	if (idx < 0)
		return Q_ENOTFOUND;
	if ((size_t)idx == g->self)
		return -EINVAL;
	if (g->m[idx].status == GOSSIP_ALIVE || g->m[idx].status == GOSSIP_SUSPECT)
		return -EBUSY;
	set_status(g, (size_t)idx, GOSSIP_LEFT, now_ms);
	return 0;
}

int gossip_set_ring(gossip *g, uint64_t version, const void *p, size_t n)
{
	if (version == 0)
		return -EINVAL;
	if (n > GOSSIP_RING_MAX)
		return Q_ETOOBIG;
	uint64_t h = gossip_ring_hash(p, n);
	if (!ring_greater(version, h, g->ring_version, g->ring_hash))
		return -ESTALE;
	q_buf nb = Q_BUF_INIT;
	Q_RET(q_buf_append(&nb, p, n));
	q_buf_free(&g->ring);
	g->ring = nb;
	g->ring_version = version;
	g->ring_hash = h;
	return 0;
}

void gossip_ring(const gossip *g, uint64_t *version, q_slice *bytes)
{
	*version = g->ring_version;
	*bytes = q_buf_slice(&g->ring);
}

size_t gossip_member_count(const gossip *g)
{
	return g->n;
}

void gossip_member_at(const gossip *g, size_t i, gossip_member *out)
{
	member_view(g, i, out);
}

int gossip_member_find(const gossip *g, const char *id, gossip_member *out)
{
	long idx = find_idx(g, q_slice_str(id));
	if (idx < 0)
		return Q_ENOTFOUND;
	if (out)
		member_view(g, (size_t)idx, out);
	return 0;
}

int gossip_status_of(const gossip *g, const char *id)
{
	long idx = find_idx(g, q_slice_str(id));
	return idx < 0 ? Q_ENOTFOUND : g->m[idx].status;
}

void gossip_counts(const gossip *g, size_t out[GOSSIP_STATUS_MAX + 1])
{
	for (int s = 0; s <= GOSSIP_STATUS_MAX; s++)
		out[s] = 0;
	for (size_t i = 0; i < g->n; i++)
		out[g->m[i].status]++;
}

const char *gossip_self_id(const gossip *g)
{
	return g->m[g->self].id;
}

uint64_t gossip_self_incarnation(const gossip *g)
{
	return g->m[g->self].inc;
}

/* ---------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------- */

const char *const gossip_conf_keys[] = {
	"gossip_interval", "gossip_fanout", "gossip_suspect_after", "gossip_down_after",
	"cluster_name", NULL
};

int gossip_config_from_conf(q_conf *conf, gossip_config *c, uint64_t *interval_ms)
{
	uint64_t fanout;
	Q_RET(q_conf_get_ms(conf, "gossip_interval", GOSSIP_INTERVAL_DEFAULT_MS, interval_ms));
	Q_RET(q_conf_get_u64(conf, "gossip_fanout", GOSSIP_FANOUT_DEFAULT, &fanout));
	Q_RET(q_conf_get_ms(conf, "gossip_suspect_after", GOSSIP_SUSPECT_AFTER_DEFAULT_MS,
			    &c->suspect_after_ms));
	Q_RET(q_conf_get_ms(conf, "gossip_down_after", GOSSIP_DOWN_AFTER_DEFAULT_MS,
			    &c->down_after_ms));
	if (fanout == 0 || fanout > GOSSIP_MEMBERS_MAX || *interval_ms == 0 ||
	    c->down_after_ms <= c->suspect_after_ms || c->suspect_after_ms < *interval_ms) {
		Q_ERROR(LOGC, "bad gossip settings: need gossip_fanout 1..%u, gossip_interval > 0, "
			"gossip_interval <= gossip_suspect_after < gossip_down_after",
			GOSSIP_MEMBERS_MAX);
		return -EINVAL;
	}
	c->fanout = (uint32_t)fanout;
	c->cluster = q_conf_get_str(conf, "cluster_name", GOSSIP_CLUSTER_DEFAULT);
	if (!str_ok(c->cluster, 1, GOSSIP_CLUSTER_MAX)) {
		Q_ERROR(LOGC, "bad cluster_name '%s': 1..%u printable characters, no spaces",
			c->cluster, GOSSIP_CLUSTER_MAX);
		return -EINVAL;
	}
	return 0;
}
