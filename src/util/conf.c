/*
 * conf.c - configuration files and overrides (see conf.h).
 */
#include "util/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/qtime.h"

struct q_conf {
	char **keys;
	char **vals;
	size_t n, cap;
	char err[256];
};

q_conf *q_conf_new(void)
{
	return calloc(1, sizeof(q_conf));
}

void q_conf_free(q_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->keys[i]);
		free(c->vals[i]);
	}
	free(c->keys);
	free(c->vals);
	free(c);
}

const char *q_conf_error(const q_conf *c)
{
	return c->err;
}

size_t q_conf_count(const q_conf *c)
{
	return c->n;
}

void q_conf_entry(const q_conf *c, size_t i, const char **key, const char **value)
{
	*key = c->keys[i];
	*value = c->vals[i];
}

static int key_ok(const char *k, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)k[i];
		if (!(islower(ch) || isdigit(ch) || ch == '_' || ch == '.' || ch == '-'))
			return 0;
	}
	return 1;
}

static ssize_t find(const q_conf *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->keys[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

int q_conf_set(q_conf *c, const char *key, const char *value)
{
	if (!key_ok(key, strlen(key))) {
		snprintf(c->err, sizeof(c->err), "invalid option name '%s'", key);
		return -EINVAL;
	}
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	ssize_t i = find(c, key);
	if (i >= 0) {
		free(c->vals[i]);
		c->vals[i] = v;
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **k2 = realloc(c->keys, cap * sizeof(char *));
		if (!k2)
			goto nomem;
		c->keys = k2;
		char **v2 = realloc(c->vals, cap * sizeof(char *));
		if (!v2)
			goto nomem;
		c->vals = v2;
		c->cap = cap;
	}
	c->keys[c->n] = strdup(key);
	if (!c->keys[c->n])
		goto nomem;
	c->vals[c->n++] = v;
	return 0;
nomem:
	free(v);
	return -ENOMEM;
}

int q_conf_set_kv(q_conf *c, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq) {
		snprintf(c->err, sizeof(c->err), "expected key=value, got '%s'", kv);
		return -EINVAL;
	}
	char key[72];
	size_t kn = (size_t)(eq - kv);
	if (kn >= sizeof(key) || !key_ok(kv, kn)) {
		snprintf(c->err, sizeof(c->err), "invalid option name in '%s'", kv);
		return -EINVAL;
	}
	memcpy(key, kv, kn);
	key[kn] = 0;
	return q_conf_set(c, key, eq + 1);
}

int q_conf_parse(q_conf *c, const char *text, size_t n)
{
	size_t line = 0, i = 0;
	while (i < n) {
		line++;
		size_t s = i;
		while (i < n && text[i] != '\n')
			i++;
		size_t e = i;
		if (i < n)
			i++;
		/* strip comment */
		for (size_t j = s; j < e; j++)
			if (text[j] == '#') {
				e = j;
				break;
			}
		while (s < e && isspace((unsigned char)text[s]))
			s++;
		while (e > s && isspace((unsigned char)text[e - 1]))
			e--;
		if (s == e)
			continue;
		const char *eq = memchr(text + s, '=', e - s);
		if (!eq) {
			snprintf(c->err, sizeof(c->err), "line %zu: expected 'key = value'", line);
			return -EINVAL;
		}
		size_t ke = (size_t)(eq - text);
		size_t vs = ke + 1;
		while (ke > s && isspace((unsigned char)text[ke - 1]))
			ke--;
		while (vs < e && isspace((unsigned char)text[vs]))
			vs++;
		if (!key_ok(text + s, ke - s)) {
			snprintf(c->err, sizeof(c->err), "line %zu: invalid option name", line);
			return -EINVAL;
		}
		char key[72];
		memcpy(key, text + s, ke - s);
		key[ke - s] = 0;
		if (memchr(text + vs, 0, e - vs)) {
			snprintf(c->err, sizeof(c->err), "line %zu: NUL byte in value", line);
			return -EINVAL;
		}
		char *val = malloc(e - vs + 1);
		if (!val)
			return -ENOMEM;
		memcpy(val, text + vs, e - vs);
		val[e - vs] = 0;
		int rc = q_conf_set(c, key, val);
		free(val);
		if (rc)
			return rc;
	}
	return 0;
}

int q_conf_load(q_conf *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(c->err, sizeof(c->err), "%s: %s", path, strerror(e));
		return -e;
	}
	char *text = NULL;
	size_t n = 0, cap = 0;
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (n + got > (1u << 20)) {
			fclose(f);
			free(text);
			snprintf(c->err, sizeof(c->err), "%s: config file larger than 1 MiB", path);
			return -EINVAL;
		}
		if (n + got > cap) {
			cap = (n + got) * 2;
			char *t = realloc(text, cap);
			if (!t) {
				fclose(f);
				free(text);
				return -ENOMEM;
			}
			text = t;
		}
		memcpy(text + n, chunk, got);
		n += got;
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(text);
		snprintf(c->err, sizeof(c->err), "%s: read error", path);
		return -EIO;
	}
	int rc = q_conf_parse(c, text ? text : "", n);
	free(text);
	if (rc == -EINVAL) {
		char tmp[sizeof(c->err)];
		memcpy(tmp, c->err, sizeof(tmp));
		int pn = snprintf(c->err, sizeof(c->err), "%.100s: ", path);
		if (pn > 0 && (size_t)pn < sizeof(c->err))
			snprintf(c->err + pn, sizeof(c->err) - (size_t)pn, "%.150s", tmp);
	}
	return rc;
}

const char *q_conf_get(const q_conf *c, const char *key)
{
	ssize_t i = find(c, key);
	return i < 0 ? NULL : c->vals[i];
}

const char *q_conf_get_str(const q_conf *c, const char *key, const char *def)
{
	const char *v = q_conf_get(c, key);
	return v ? v : def;
}

static int bad(q_conf *c, const char *key, const char *v, const char *what)
{
	snprintf(c->err, sizeof(c->err), "option '%s': '%s' is not %s", key, v, what);
	return -EINVAL;
}

int q_conf_get_u64(q_conf *c, const char *key, uint64_t def, uint64_t *out)
{
	const char *v = q_conf_get(c, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!isdigit((unsigned char)*v))
		return bad(c, key, v, "a non-negative integer");
	errno = 0;
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end)
		return bad(c, key, v, "a non-negative integer");
	*out = x;
	return 0;
}

int q_conf_get_bool(q_conf *c, const char *key, int def, int *out)
{
	const char *v = q_conf_get(c, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
		*out = 1;
	else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
		 !strcasecmp(v, "off"))
		*out = 0;
	else
		return bad(c, key, v, "a boolean (true/false)");
	return 0;
}

int q_conf_get_size(q_conf *c, const char *key, uint64_t def, uint64_t *out)
{
	const char *v = q_conf_get(c, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (q_parse_size(v, out))
		return bad(c, key, v, "a size (e.g. 4096, 64k, 4M, 1G)");
	return 0;
}

int q_conf_get_ms(q_conf *c, const char *key, uint64_t def, uint64_t *out)
{
	const char *v = q_conf_get(c, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (q_parse_duration_ms(v, out))
		return bad(c, key, v, "a duration (e.g. 250ms, 2s, 5m)");
	return 0;
}

int q_conf_check_known(q_conf *c, const char *const *known)
{
	for (size_t i = 0; i < c->n; i++) {
		int ok = 0;
		for (size_t j = 0; known[j]; j++)
			if (!strcmp(known[j], c->keys[i])) {
				ok = 1;
				break;
			}
		if (!ok) {
			snprintf(c->err, sizeof(c->err), "unknown option '%s'", c->keys[i]);
			return -EINVAL;
		}
	}
	return 0;
}
