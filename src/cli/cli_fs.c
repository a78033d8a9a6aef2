/*
 * cli_fs.c - quorumctl's filesystem commands (the object format of
 * docs/filesystem.md, decoded with fuse/libqfs.a):
 *
 *   quorumctl siblings PATH [--json] [--r N] [--n N] [--no-digest]
 *
 * PATH is a path as seen in the mount, relative to the filesystem's root
 * ("report.txt", "/docs/a.txt" and "docs//a.txt/" name the same file). A
 * conflict file's name is accepted too and lists its base file's siblings.
 * The command reads "f:" + PATH through a node like `get` and prints every
 * live sibling: which one the mount shows under the name, each other's
 * conflict file name, type, size, mtime, the writer's dot (node:counter),
 * the origin (the node whose mount wrote it) and a content digest (XXH3-64
 * of the file's bytes; a chunked file's chunks are read from the store, one
 * get each, to compute it; a symlink's digest is of its target).
 *
 * Exit status as `get`: 0, 1 not found, 2 usage, 3 no quorum or timeout,
 * 4 other errors (including a chunk of a listed version that cannot be read:
 * the listing is still printed, with the digest marked missing).
 *
 * Threading: single-threaded; one network client.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "client/client.h"
#include "fuse/qfs_conflict.h"
#include "fuse/qfs_format.h"
#include "fuse/qfs_obj.h"
#include "fuse/qfs_sibs.h"
#include "util/hash.h"
#include "util/qerr.h"
#include "util/qtime.h"

typedef struct fs_args {
	const char *path;
	int json, r, n, no_digest;
} fs_args;

static int err_out(qc_client *c, const char *what, int rc)
{
	const char *detail = c ? qc_net_last_error(c) : "";
	if (detail && detail[0])
		fprintf(stderr, "quorumctl: %s: %s: %s (%s)\n", q_errname(rc), what, q_strerror(rc),
			detail);
	else
		fprintf(stderr, "quorumctl: %s: %s: %s\n", q_errname(rc), what, q_strerror(rc));
	return cli_exit_code(rc);
}

/* "/" + the components of in, single slashes, no trailing slash. -EINVAL
 * for "." or ".." components or bad names, -ENAMETOOLONG if too long. */
static int norm_path(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = in;
	if (cap < 2)
		return -ENAMETOOLONG;
	out[o++] = '/';
	out[o] = 0;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int rc = qfs_name_check(p, n);
		if (rc)
			return rc;
		if (o + (o > 1) + n + 1 > cap || o + (o > 1) + n > QFS_PATH_MAX)
			return -ENAMETOOLONG;
		if (o > 1)
			out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		out[o] = 0;
		p += n;
	}
	return 0;
}

static void fmt_ns(int64_t ns, char *buf, size_t cap)
{
	int64_t s = ns / 1000000000, f = ns % 1000000000;
	if (f < 0) {
		f += 1000000000;
		s--;
	}
	time_t t = (time_t)s;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, cap, "%" PRId64 "ns", ns);
		return;
	}
	char d[32];
	strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, cap, "%s.%09dZ", d, (int)f);
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case QFS_T_REG: return "file";
	case QFS_T_DIR: return "dir";
	case QFS_T_LNK: return "symlink";
	case QFS_T_FIFO: return "fifo";
	case QFS_T_SOCK: return "socket";
	case QFS_T_CHR: return "chardev";
	case QFS_T_BLK: return "blockdev";
	default: return "?";
	}
}

/* Feeds chunk ref of a file (chunk i of o) into h: its bytes, zeroes for a
 * hole and past the stored end, cut at the file's size. */
static int hash_chunk(qc_client *c, const qc_opts *kv, const qfs_obj *o, size_t i, q_hasher *h,
		      uint8_t *zero)
{
	uint64_t off = (uint64_t)i * o->chunk_size;
	size_t want = (size_t)(o->size - off < o->chunk_size ? o->size - off : o->chunk_size);
	const qfs_chunkref *ref = &o->chunks[i];
	if (ref->kind == QFS_CHUNK_HOLE) {
		q_hasher_update(h, zero, want);
		return 0;
	}
	char key[QFS_CHUNK_KEY_LEN + 1];
	qfs_chunk_key(ref->id, key);
	qc_object co;
	qc_object_init(&co);
	int rc = qc_get(c, q_slice_str(key), kv, &co);
	if (rc)
		goto out;
	rc = Q_ECORRUPT;
	for (size_t k = 0; k < co.nsib; k++) {
		const qc_sibling *s = &co.sib[k];
		uint8_t id[QFS_CHUNK_ID_LEN];
		if (s->deleted || s->value.n > o->chunk_size)
			continue;
		qfs_chunk_id(s->value.p, s->value.n, id);
		if (memcmp(id, ref->id, QFS_CHUNK_ID_LEN) != 0)
			continue;
		size_t have = s->value.n < want ? s->value.n : want;
		q_hasher_update(h, s->value.p, have);
		q_hasher_update(h, zero, want - have);
		rc = 0;
		break;
	}
out:
	if (rc)
		fprintf(stderr, "quorumctl: %s: chunk %zu (%s) of a version cannot be read: %s\n",
			q_errname(rc), i, key, q_strerror(rc));
	qc_object_free(&co);
	return rc;
}

/* Content digest of a decoded object into *out; 1 if it has none (dirs,
 * special files), 0 on success, an error code if a chunk cannot be read. */
static int digest_of(qc_client *c, const qc_opts *kv, const qfs_obj *o, uint64_t *out)
{
	q_hasher h;
	int rc = 0;
	if (o->type != QFS_T_REG && o->type != QFS_T_LNK)
		return 1;
	Q_RET(q_hasher_init(&h, 0));
	if (o->type == QFS_T_LNK) {
		q_hasher_update(&h, o->target, strlen(o->target));
	} else if (o->layout == QFS_LAYOUT_INLINE) {
		q_hasher_update(&h, o->inline_data, (size_t)o->size);
	} else {
		uint8_t *zero = calloc(1, o->chunk_size);
		if (!zero) {
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < o->nchunks && rc == 0; i++)
				rc = hash_chunk(c, kv, o, i, &h, zero);
			free(zero);
		}
	}
	if (rc == 0)
		*out = q_hasher_digest(&h);
	q_hasher_free(&h);
	return rc;
}

/* Reads key; on a miss with a conflict-file name, tries its base names.
 * path/key/base are updated to what was found; *asked receives the conflict
 * name that was asked for ("" if none). */
static int load(qc_client *c, const qc_opts *kv, char *path, char *key, char *base, char *asked,
		qc_object *obj)
{
	asked[0] = 0;
	snprintf(key, QFS_PATH_MAX + 8, "%s%s", QFS_KEY_META, path);
	int rc = qc_get(c, q_slice_str(key), kv, obj);
	if (rc != Q_ENOTFOUND || !qfs_is_conflict_name(base))
		return rc;
	char parent[QFS_PATH_MAX + 1];
	char (*bases)[QFS_NAME_MAX + 1] = calloc(8, QFS_NAME_MAX + 1);
	if (!bases)
		return -ENOMEM;
	char *slash = strrchr(path, '/');
	size_t pl = (size_t)(slash - path);
	memcpy(parent, path, pl);
	parent[pl] = 0;
	size_t nb = qfs_conflict_bases(base, bases, 8);
	int first = rc;
	for (size_t i = 0; i < nb; i++) {
		char p2[QFS_PATH_MAX + 2], k2[QFS_PATH_MAX + 8];
		if ((size_t)snprintf(p2, sizeof(p2), "%s/%s", parent, bases[i]) >= sizeof(p2))
			continue;
		snprintf(k2, sizeof(k2), "%s%s", QFS_KEY_META, p2);
		qc_object_free(obj);
		qc_object_init(obj);
		rc = qc_get(c, q_slice_str(k2), kv, obj);
		if (rc == 0) {
			qfs_sibinfo *info;
			size_t n;
			int hit = 0;
			if (qfs_sibs_describe(obj, bases[i], &info, &n) == 0) {
				for (size_t k = 0; k < n; k++)
					hit |= !info[k].shown && strcmp(info[k].name, base) == 0;
				free(info);
			}
			if (!hit)
				continue;
			strcpy(asked, base);
			strcpy(path, p2);
			strcpy(key, k2);
			strcpy(base, bases[i]);
			free(bases);
			return 0;
		}
		if (rc != Q_ENOTFOUND) {
			free(bases);
			return rc;
		}
	}
	free(bases);
	qc_object_free(obj);
	qc_object_init(obj);
	return first;
}

static int siblings_run(qc_client *c, const fs_args *a)
{
	char path[QFS_PATH_MAX + 2], key[QFS_PATH_MAX + 8], base[QFS_NAME_MAX + 1];
	char asked[QFS_NAME_MAX + 1];
	qc_opts kv = {.n = a->n, .r = a->r};
	qc_object obj;
	qfs_sibinfo *info = NULL;
	size_t n = 0;
	int code = 0, rc;
	q_buf tok = Q_BUF_INIT;

	rc = norm_path(a->path, path, sizeof(path));
	if (rc) {
		fprintf(stderr, "quorumctl: siblings: '%s' is not a valid path: %s\n", a->path,
			strerror(-rc));
		return CLI_EXIT_USAGE;
	}
	const char *slash = strrchr(path, '/');
	snprintf(base, sizeof(base), "%s", path[1] ? slash + 1 : "/");
	qc_object_init(&obj);
	rc = load(c, &kv, path, key, base, asked, &obj);
	if (rc == 0 && qc_object_live(&obj) == 0)
		rc = Q_ENOTFOUND;
	if (rc) {
		code = err_out(c, path, rc);
		goto out;
	}
	rc = qfs_sibs_describe(&obj, base, &info, &n);
	if (rc) {
		code = err_out(NULL, path, rc);
		goto out;
	}
	if (obj.context.len)
		qc_ctx_to_token(q_buf_slice(&obj.context), &tok);
	const char *token = tok.len ? (const char *)tok.p : "";

	if (a->json) {
		printf("{\"path\":");
		cli_json_str(stdout, (const uint8_t *)path, strlen(path));
		printf(",\"key\":");
		cli_json_str(stdout, (const uint8_t *)key, strlen(key));
		if (asked[0]) {
			printf(",\"asked\":");
			cli_json_str(stdout, (const uint8_t *)asked, strlen(asked));
		}
		printf(",\"siblings\":[");
	} else {
		printf("%s: %zu sibling%s%s\n", path, n, n == 1 ? "" : "s",
		       n > 1 ? " (* = shown under the name)" : "");
	}
	for (size_t i = 0; i < n; i++) {
		const qfs_sibinfo *e = &info[i];
		const qc_sibling *s = &obj.sib[e->sib];
		char mt[64], dg[40];
		uint64_t d = 0;
		int drc = 1;
		dg[0] = 0;
		if (e->decode_rc == 0 && !a->no_digest) {
			qfs_obj o;
			qfs_obj_init(&o);
			drc = qfs_obj_decode(s->value.p, s->value.n, &o);
			if (drc == 0)
				drc = digest_of(c, &kv, &o, &d);
			qfs_obj_free(&o);
			if (drc < 0 && code == 0)
				code = drc == Q_EQUORUM || drc == Q_ETIMEOUT ? CLI_EXIT_QUORUM
									     : CLI_EXIT_ERROR;
			if (drc == 0)
				snprintf(dg, sizeof(dg), "xxh3:%016" PRIx64, d);
			else if (drc < 0)
				snprintf(dg, sizeof(dg), "missing");
		}
		fmt_ns(e->mtime_ns, mt, sizeof(mt));
		if (a->json) {
			printf("%s{\"name\":", i ? "," : "");
			cli_json_str(stdout, (const uint8_t *)e->name, strlen(e->name));
			printf(",\"shown\":%s,\"node\":", e->shown ? "true" : "false");
			cli_json_str(stdout, (const uint8_t *)e->node, strlen(e->node));
			printf(",\"counter\":%" PRIu64 ",\"wall_ns\":%" PRIu64, e->counter, e->wall_ns);
			if (e->decode_rc) {
				printf(",\"error\":\"%s\"}", q_errname(e->decode_rc));
				continue;
			}
			printf(",\"type\":\"%s\",\"mode\":%u,\"size\":%" PRIu64
			       ",\"mtime_ns\":%" PRId64 ",\"mtime\":\"%s\",\"origin\":",
			       type_name(e->type), e->mode & 07777, e->size, e->mtime_ns, mt);
			cli_json_str(stdout, (const uint8_t *)e->origin, strlen(e->origin));
			if (e->type == QFS_T_REG)
				printf(",\"layout\":\"%s\"",
				       e->layout == QFS_LAYOUT_INLINE ? "inline" : "chunked");
			if (dg[0])
				printf(",\"digest\":\"%s\"", dg);
			printf("}");
		} else if (e->decode_rc) {
			printf("  %-40s node=%s:%" PRIu64 " does not decode (%s); the mount ignores it\n",
			       "-", e->node, e->counter, q_errname(e->decode_rc));
		} else {
			printf("%c %-40s %-7s size=%" PRIu64 " mtime=%s node=%s:%" PRIu64
			       " origin=%s%s%s\n",
			       e->shown && n > 1 ? '*' : ' ', e->name[0] ? e->name : "-",
			       type_name(e->type), e->size, mt, e->node, e->counter,
			       e->origin[0] ? e->origin : "-", dg[0] ? " digest=" : "", dg);
		}
	}
	if (a->json)
		printf("],\"live\":%zu,\"context\":\"%s\"}\n", n, token);
	else if (token[0])
		printf("# context %s\n", token);
out:
	q_buf_free(&tok);
	free(info);
	qc_object_free(&obj);
	return code;
}

int cli_siblings(int argc, char **argv, const char *node, uint64_t timeout_ms, int json)
{
	fs_args a = {.json = json};
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--json")) {
			a.json = 1;
		} else if (!strcmp(s, "--no-digest")) {
			a.no_digest = 1;
		} else if (!strcmp(s, "--r") || !strcmp(s, "--n")) {
			int v;
			if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 16, &v) < 0) {
				fprintf(stderr, "quorumctl: %s needs a number from 1 to 16\n", s);
				return CLI_EXIT_USAGE;
			}
			if (s[2] == 'r')
				a.r = v;
			else
				a.n = v;
			i++;
		} else if (!strcmp(s, "--") && i + 2 == argc && !a.path) {
			a.path = argv[++i];
		} else if (s[0] == '-' && s[1] == '-') {
			fprintf(stderr, "quorumctl: unknown option %s\n", s);
			return CLI_EXIT_USAGE;
		} else if (!a.path) {
			a.path = s;
		} else {
			fprintf(stderr, "quorumctl: siblings takes one PATH\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (!a.path) {
		fprintf(stderr, "quorumctl: usage: siblings PATH [--json] [--r N] [--n N] "
				"[--no-digest]\n");
		return CLI_EXIT_USAGE;
	}
	qc_client *c = NULL;
	int rc = qc_net_new(node, timeout_ms, &c);
	if (rc < 0) {
		fprintf(stderr, "quorumctl: --node '%s': %s\n", node, q_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	int code = siblings_run(c, &a);
	qc_close(c);
	fflush(stdout);
	return code;
}
