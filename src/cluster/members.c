/*
 * members.c - the membership list (see members.h).
 *
 * A small sorted array under one mutex: clusters here have tens of members,
 * and readers take a snapshot only when the version moved.
 */
#include "cluster/members.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/qerr.h"
#include "util/qtime.h"

struct members {
	pthread_mutex_t mu;
	member *v;
	size_t n, cap;
	uint64_t version;
};

static int find(const members *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].id, id))
			return (int)i;
	return -1;
}

static int valid(const char *s, size_t max)
{
	return s && s[0] && strlen(s) <= max;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const member *)a)->id, ((const member *)b)->id);
}

int members_new(const char *self_id, const char *self_addr, const char *self_zone,
		members **out)
{
	if (!valid(self_id, MEMBER_ID_MAX) || !valid(self_addr, MEMBER_ADDR_MAX) ||
	    !valid(self_zone, MEMBER_ID_MAX))
		return -EINVAL;
	members *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cap = 8;
	m->v = calloc(m->cap, sizeof(member));
	if (!m->v) {
		free(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->mu, NULL);
	member *me = &m->v[0];
	strcpy(me->id, self_id);
	strcpy(me->addr, self_addr);
	strcpy(me->zone, self_zone);
	me->state = MEMBER_UP;
	me->self = 1;
	me->state_since_ms = q_mono_ms();
	m->n = 1;
	m->version = 1;
	*out = m;
	return 0;
}

void members_free(members *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m->v);
	free(m);
}

int members_upsert(members *m, const char *id, const char *addr, const char *zone)
{
	if (!valid(id, MEMBER_ID_MAX) || !valid(addr, MEMBER_ADDR_MAX))
		return -EINVAL;
	if (zone && strlen(zone) > MEMBER_ID_MAX)
		return -EINVAL;
	int changed = 0;
	pthread_mutex_lock(&m->mu);
	int i = find(m, id);
	if (i >= 0) {
		member *e = &m->v[i];
		if (!e->self) {
			if (zone && zone[0] && strcmp(e->zone, zone)) {
				strcpy(e->zone, zone);
				changed = 1;
			}
			if (strcmp(e->addr, addr)) {
				strcpy(e->addr, addr);
				changed = 1;
			}
		}
	} else {
		if (m->n == m->cap) {
			member *nv = realloc(m->v, m->cap * 2 * sizeof(member));
			if (!nv) {
				pthread_mutex_unlock(&m->mu);
				return -ENOMEM;
			}
			m->v = nv;
			m->cap *= 2;
		}
		member *e = &m->v[m->n++];
		memset(e, 0, sizeof(*e));
		strcpy(e->id, id);
		strcpy(e->addr, addr);
		strcpy(e->zone, zone && zone[0] ? zone : "default");
		e->state = MEMBER_UNKNOWN;
		e->state_since_ms = q_mono_ms();
		qsort(m->v, m->n, sizeof(member), cmp_member);
		changed = 1;
	}
	if (changed)
		m->version++;
	pthread_mutex_unlock(&m->mu);
	return changed;
}

int members_remove(members *m, const char *id)
{
	int rc = Q_ENOTFOUND;
	pthread_mutex_lock(&m->mu);
	int i = find(m, id);
	if (i >= 0 && !m->v[i].self) {
		memmove(&m->v[i], &m->v[i + 1], (m->n - (size_t)i - 1) * sizeof(member));
		m->n--;
		m->version++;
		rc = 0;
	} else if (i >= 0) {
		rc = -EINVAL;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void members_set_state(members *m, const char *id, member_state st)
{
	pthread_mutex_lock(&m->mu);
	int i = find(m, id);
	if (i >= 0 && !m->v[i].self) {
		member *e = &m->v[i];
		if (e->state != st) {
			e->state = st;
			e->state_since_ms = q_mono_ms();
		}
		if (st == MEMBER_DOWN)
			e->failures++;
		else if (st == MEMBER_UP)
			e->failures = 0;
	}
	pthread_mutex_unlock(&m->mu);
}

size_t members_count(members *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->n;
	pthread_mutex_unlock(&m->mu);
	return n;
}

uint64_t members_version(members *m)
{
	pthread_mutex_lock(&m->mu);
	uint64_t v = m->version;
	pthread_mutex_unlock(&m->mu);
	return v;
}

int members_snapshot(members *m, member **out, size_t *n, uint64_t *version)
{
	pthread_mutex_lock(&m->mu);
	member *copy = malloc(m->n * sizeof(member));
	if (!copy) {
		pthread_mutex_unlock(&m->mu);
		return -ENOMEM;
	}
	memcpy(copy, m->v, m->n * sizeof(member));
	*n = m->n;
	if (version)
		*version = m->version;
	pthread_mutex_unlock(&m->mu);
	*out = copy;
	return 0;
}

int members_state_of(members *m, const char *id)
{
	pthread_mutex_lock(&m->mu);
	int i = find(m, id);
	int st = i >= 0 ? (int)m->v[i].state : -1;
	pthread_mutex_unlock(&m->mu);
	return st;
}
