/*
 * qfs_conflict.c - sibling order and conflict-file names (see
 * qfs_conflict.h for the rules).
 */
#include "fuse/qfs_conflict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cand_cmp(const void *pa, const void *pb)
{
	const qfs_cand *a = pa, *b = pb;
	if (a->mtime_ns != b->mtime_ns)
		return a->mtime_ns > b->mtime_ns ? -1 : 1;
	int c = strcmp(a->node ? a->node : "", b->node ? b->node : "");
	if (c)
		return c > 0 ? -1 : 1;
	if (a->counter != b->counter)
		return a->counter > b->counter ? -1 : 1;
	/* identical dots cannot happen for distinct siblings; keep it total */
	return a->index < b->index ? -1 : a->index > b->index;
}

void qfs_cand_sort(qfs_cand *c, size_t n)
{
	if (n > 1)
		qsort(c, n, sizeof(*c), cand_cmp);
}

/* Offset of the extension's '.', or len if none. */
static size_t ext_start(const char *base, size_t len)
{
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base)
		return len;
	return (size_t)(dot - base);
}

static void stamp(int64_t ns, char *out, size_t cap)
{
	int64_t sec = ns / 1000000000;
	if (ns % 1000000000 < 0)
		sec--; /* floor for times before 1970 */
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	snprintf(out, cap, "%04d%02d%02d-%02d%02d%02d", (tm.tm_year + 1900) % 10000,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The name of c[k] without collision suffix handling; suffix 0 = none. */
static int raw_name(const char *base, const qfs_cand *c, unsigned suffix, char *out)
{
	size_t len = strlen(base);
	size_t es = ext_start(base, len);
	char tag[160], ts[32], org[QFS_ORIGIN_MAX + 1];
	const char *o = (c->origin && c->origin[0]) ? c->origin : (c->node ? c->node : "");
	size_t i;
	for (i = 0; o[i] && i < QFS_ORIGIN_MAX; i++) {
		char ch = o[i];
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
		org[i] = ok ? ch : '_';
	}
	org[i] = 0;
	if (!org[0])
		snprintf(org, sizeof(org), "unknown");
	stamp(c->mtime_ns, ts, sizeof(ts));
	if (suffix)
		snprintf(tag, sizeof(tag), "%s%s-%s-%u", QFS_CONFLICT_MARK, ts, org, suffix);
	else
		snprintf(tag, sizeof(tag), "%s%s-%s", QFS_CONFLICT_MARK, ts, org);
	size_t tl = strlen(tag), el = len - es;
	if (tl + el > QFS_NAME_MAX)
		return -ENAMETOOLONG;
	size_t stem = es;
	if (stem + tl + el > QFS_NAME_MAX)
		stem = QFS_NAME_MAX - tl - el;
	if (stem == 0 && es > 0)
		return -ENAMETOOLONG;
	memcpy(out, base, stem);
	memcpy(out + stem, tag, tl);
	memcpy(out + stem + tl, base + es, el);
	out[stem + tl + el] = 0;
	return 0;
}

int qfs_conflict_name(const char *base, const qfs_cand *c, size_t n, size_t k, char *out)
{
	if (k == 0 || k >= n)
		return -EINVAL;
	/* names of earlier candidates, computed the same way, decide the suffix */
	char (*prev)[QFS_NAME_MAX + 1] = calloc(k, QFS_NAME_MAX + 1);
	if (!prev)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 1; i <= k; i++) {
		char *dst = i == k ? out : prev[i - 1];
		unsigned suffix = 0;
		for (;;) {
			rc = raw_name(base, &c[i], suffix, dst);
			if (rc)
				goto done;
			int clash = strcmp(dst, base) == 0;
			for (size_t j = 1; j < i && !clash; j++)
				clash = strcmp(dst, prev[j - 1]) == 0;
			if (!clash)
				break;
			suffix = suffix ? suffix + 1 : 2;
		}
	}
done:
	free(prev);
	return rc;
}

int qfs_is_conflict_name(const char *name)
{
	return strstr(name, QFS_CONFLICT_MARK) != NULL;
}

size_t qfs_conflict_bases(const char *name, char (*out)[QFS_NAME_MAX + 1], size_t max)
{
	const char *m = strstr(name, QFS_CONFLICT_MARK);
	size_t n = 0;
	if (!m || max == 0)
		return 0;
	size_t stem = (size_t)(m - name);
	const char *tail = m + strlen(QFS_CONFLICT_MARK);
	/* no extension */
	if (stem > 0 && stem <= QFS_NAME_MAX) {
		memcpy(out[n], name, stem);
		out[n][stem] = 0;
		n++;
	}
	/* extension starting at any later '.' */
	for (const char *d = strchr(tail, '.'); d && n < max; d = strchr(d + 1, '.')) {
		size_t el = strlen(d);
		if (stem + el > QFS_NAME_MAX)
			continue;
		memcpy(out[n], name, stem);
		memcpy(out[n] + stem, d, el + 1);
		n++;
	}
	return n;
}
