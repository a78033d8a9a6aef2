/*
 * cli_fs.c - quorumctl's filesystem commands (the object format of
 * docs/filesystem.md, decoded with fuse/libqfs.a):
 *
 *   quorumctl siblings PATH [--json] [--r N] [--n N] [--no-digest]
 *   quorumctl fs-gc [--grace SECONDS [--force]] [--dry-run] [--json] [--page N]
 *                   [--parallel N]
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
 * Threading: single-threaded, except the sweep of fs-gc: --parallel threads
 * (8), each with its own network client, share the candidate list and the
 * counters under one mutex.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "client/client.h"
#include "fuse/qfs_conflict.h"
#include "fuse/qfs_format.h"
#include "fuse/qfs_gc.h"
#include "fuse/qfs_obj.h"
#include "fuse/qfs_sibs.h"
#include "net/net_msg.h"
#include "net/net_proto.h"
#include "net/net_sync.h"
#include "node/node_fs_msg.h"
#include "object/obj.h"
#include "util/hash.h"
#include "util/qerr.h"
#include "util/qtime.h"

typedef struct fs_args {
	const char *path;
	int json, r, n, no_digest;
} fs_args;

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
		code = cli_fail(c, path, rc);
		goto out;
	}
	rc = qfs_sibs_describe(&obj, base, &info, &n);
	if (rc) {
		code = cli_fail(NULL, path, rc);
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

/* ------------------------------------------------------------------ */
/* fs-gc: chunk collection (docs/filesystem.md, "Chunk collection")     */

#define GC_PARALLEL_MAX 64

typedef struct gc_args {
	int64_t grace_ns;
	int dry_run, json, force;
	uint32_t page;
	size_t parallel;
	uint64_t timeout_ms;
} gc_args;

typedef struct gc_member {
	node_fs_member m;
	net_sync *s;
} gc_member;

typedef struct gc_chunk {
	uint8_t id[QFS_CHUNK_ID_LEN];
	uint64_t newest_ns; /* newest live write seen on any replica */
	uint64_t bytes;     /* largest live size seen */
	uint8_t live, corrupt;
	uint8_t *ctx;       /* unmarked chunks: the replicas' contexts merged */
	size_t ctxn;
} gc_chunk;

typedef struct gc_run {
	gc_args a;
	int64_t t0;
	gc_member *mem;
	size_t nmem;
	qfs_idset marked;
	gc_chunk *ch;
	size_t nch, capch;
	q_buf *old_moves; /* move records past the grace period */
	size_t nold, capold;
	uint64_t objects, versions, moves;
	int code;
} gc_run;

static int gc_refuse(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gc_refuse(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "quorumctl: fs-gc: refusing to collect: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return code;
}

/* One request to member m (connecting first if needed). On failure the
 * connection is dropped (its state is unknown). */
static int gc_call(gc_run *g, gc_member *m, uint8_t type, q_slice payload, uint64_t tmo,
		   net_msg *resp, q_buf *rb)
{
	int rc;
	if (!m->s) {
		rc = net_sync_connect(m->m.addr, g->a.timeout_ms, &m->s);
		if (rc < 0) {
			m->s = NULL;
			return rc;
		}
	}
	net_msg q;
	net_msg_init(&q, type);
	q.u.blob.payload = payload;
	rc = net_sync_call(m->s, &q, tmo, resp, rb);
	if (rc == 0 && resp->type != net_msg_resp_type(type))
		rc = Q_EPROTO;
	if (rc < 0 && rc != Q_ENOTFOUND) {
		net_msg_clear(resp);
		net_sync_close(m->s);
		m->s = NULL;
	}
	return rc;
}

static int gc_info(gc_run *g, gc_member *m, node_fs_info *out)
{
	uint8_t ver = NODE_FS_MSG_VERSION;
	net_msg resp;
	q_buf rb = Q_BUF_INIT;
	net_msg_init(&resp, NET_MSG_NONE);
	int rc = gc_call(g, m, NET_MSG_FS_INFO, q_slice_make(&ver, 1), g->a.timeout_ms, &resp, &rb);
	if (rc == 0)
		rc = node_fs_info_decode(resp.u.blob.payload, out);
	net_msg_clear(&resp);
	q_buf_free(&rb);
	return rc;
}

static int member_cmp(const void *a, const void *b)
{
	return strcmp(((const gc_member *)a)->m.id, ((const gc_member *)b)->m.id);
}

/* Every member in the view of the node asked, each reachable, each with
 * the same member list and no pending hint. */
static int gc_members(gc_run *g, const char *node, int again)
{
	gc_member first = {0};
	snprintf(first.m.addr, sizeof(first.m.addr), "%s", node);
	node_fs_info in;
	int rc = gc_info(g, &first, &in);
	if (first.s)
		net_sync_close(first.s);
	if (rc < 0)
		return gc_refuse(CLI_EXIT_QUORUM, "node %s cannot be asked for the membership: %s%s", node,
				 q_strerror(rc), cli_closed_hint(rc));
	if (again) {
		int same = in.nmembers == g->nmem;
		for (size_t i = 0; same && i < in.nmembers; i++) {
			gc_member key;
			memset(&key, 0, sizeof(key));
			memcpy(key.m.id, in.members[i].id, sizeof(key.m.id));
			same = bsearch(&key, g->mem, g->nmem, sizeof(*g->mem), member_cmp) != NULL;
		}
		node_fs_info_free(&in);
		if (!same)
			return gc_refuse(CLI_EXIT_QUORUM, "the membership changed during the scan");
		return 0;
	}
	g->mem = calloc(in.nmembers ? in.nmembers : 1, sizeof(*g->mem));
	if (!g->mem) {
		node_fs_info_free(&in);
		return gc_refuse(CLI_EXIT_ERROR, "out of memory");
	}
	for (size_t i = 0; i < in.nmembers; i++)
		g->mem[i].m = in.members[i];
	g->nmem = in.nmembers;
	node_fs_info_free(&in);
	qsort(g->mem, g->nmem, sizeof(*g->mem), member_cmp);
	for (size_t i = 0; i < g->nmem; i++) {
		gc_member *m = &g->mem[i];
		node_fs_info mi;
		rc = gc_info(g, m, &mi);
		if (rc < 0)
			return gc_refuse(CLI_EXIT_QUORUM, "member %s (%s) cannot be scanned: %s%s",
					 m->m.id, m->m.addr, q_strerror(rc), cli_closed_hint(rc));
		int same = mi.nmembers == g->nmem;
		for (size_t k = 0; same && k < mi.nmembers; k++) {
			gc_member key;
			memset(&key, 0, sizeof(key));
			memcpy(key.m.id, mi.members[k].id, sizeof(key.m.id));
			same = bsearch(&key, g->mem, g->nmem, sizeof(*g->mem), member_cmp) != NULL;
		}
		uint64_t hints = mi.hints;
		node_fs_info_free(&mi);
		if (!same)
			return gc_refuse(CLI_EXIT_QUORUM,
					 "member %s sees a different membership than %s (a join or "
					 "leave is in progress?)", m->m.id, node);
		if (hints)
			return gc_refuse(CLI_EXIT_QUORUM,
					 "member %s holds %" PRIu64 " hinted writes for others (they may "
					 "carry file versions no replica has yet); retry once they are "
					 "delivered", m->m.id, hints);
	}
	return 0;
}

typedef int (*gc_ent_fn)(gc_run *g, gc_member *m, const node_fs_scan_ent *e);

/* Every key under prefix that member m's replica holds, page by page. */
static int gc_scan(gc_run *g, gc_member *m, const char *prefix, int values, gc_ent_fn fn)
{
	q_buf after = Q_BUF_INIT, req = Q_BUF_INIT, rb = Q_BUF_INIT;
	int rc = 0;
	uint64_t tmo = g->a.timeout_ms > 60000 ? g->a.timeout_ms : 60000;
	for (;;) {
		node_fs_scan_req q = {q_slice_str(prefix), q_buf_slice(&after), g->a.page,
				      4u << 20, values ? NODE_FS_SCAN_VALUES : 0};
		q_buf_reset(&req);
		rc = node_fs_scan_req_encode(&q, &req);
		if (rc < 0)
			break;
		net_msg resp;
		net_msg_init(&resp, NET_MSG_NONE);
		rc = gc_call(g, m, NET_MSG_FS_SCAN, q_buf_slice(&req), tmo, &resp, &rb);
		if (rc < 0)
			break;
		node_fs_scan_resp sr;
		rc = node_fs_scan_resp_decode(resp.u.blob.payload, &sr);
		if (rc < 0) {
			net_msg_clear(&resp);
			break;
		}
		for (size_t i = 0; rc == 0 && i < sr.nkeys; i++)
			rc = fn(g, m, &sr.ents[i]);
		int more = sr.more && sr.nkeys > 0;
		if (rc == 0 && sr.nkeys) {
			q_slice last = sr.ents[sr.nkeys - 1].key;
			q_buf_reset(&after);
			rc = q_buf_append(&after, last.p, last.n);
		}
		node_fs_scan_resp_free(&sr);
		net_msg_clear(&resp);
		if (rc != 0 || !more) /* GC_EUNKNOWN from fn ends the scan too */
			break;
	}
	q_buf_free(&after);
	q_buf_free(&req);
	q_buf_free(&rb);
	return rc;
}

#define GC_EUNKNOWN 1 /* an entry whose chunks cannot be known (a refusal) */

static int mark_file(gc_run *g, gc_member *m, const node_fs_scan_ent *e)
{
	if (e->newest_ns == NODE_FS_CORRUPT) {
		gc_refuse(CLI_EXIT_ERROR, "member %s holds %.*s in a form that does not decode: "
					  "the chunks it names are unknown", m->m.id, (int)e->key.n,
			  (const char *)e->key.p);
		return GC_EUNKNOWN;
	}
	g->objects++;
	for (size_t i = 0; i < e->nlive; i++) {
		qfs_obj o;
		qfs_obj_init(&o);
		int rc = qfs_obj_decode(e->values[i].p, e->values[i].n, &o);
		if (rc < 0) {
			qfs_obj_free(&o);
			gc_refuse(CLI_EXIT_ERROR, "a version of %.*s on member %s does not decode "
						  "(%s): the chunks it names are unknown",
				  (int)e->key.n, (const char *)e->key.p, m->m.id, q_errname(rc));
			return GC_EUNKNOWN;
		}
		g->versions++;
		if (o.type == QFS_T_REG && o.layout == QFS_LAYOUT_CHUNKED)
			for (size_t k = 0; k < o.nchunks && rc >= 0; k++)
				if (o.chunks[k].kind == QFS_CHUNK_DATA)
					rc = qfs_idset_add(&g->marked, o.chunks[k].id);
		qfs_obj_free(&o);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int mark_move(gc_run *g, gc_member *m, const node_fs_scan_ent *e)
{
	if (e->newest_ns == NODE_FS_CORRUPT) {
		gc_refuse(CLI_EXIT_ERROR, "member %s holds move record %.*s in a form that does not "
					  "decode", m->m.id, (int)e->key.n, (const char *)e->key.p);
		return GC_EUNKNOWN;
	}
	for (size_t i = 0; i < e->nlive; i++) {
		int64_t w;
		const uint8_t *ids;
		size_t n;
		int rc = qfs_move_decode(e->values[i].p, e->values[i].n, &w, &ids, &n);
		if (rc < 0) {
			gc_refuse(CLI_EXIT_ERROR, "move record %.*s on member %s does not decode (%s)",
				  (int)e->key.n, (const char *)e->key.p, m->m.id, q_errname(rc));
			return GC_EUNKNOWN;
		}
		g->moves++;
		for (size_t k = 0; k < n; k++)
			Q_RET(qfs_idset_add(&g->marked, ids + k * QFS_CHUNK_ID_LEN));
	}
	/* past the grace period on this replica: a candidate for deletion
	 * (decided again on a read of every replica; duplicates from other
	 * replicas are dropped before the sweep) */
	if (e->nlive && e->newest_ns < (uint64_t)(g->t0 - g->a.grace_ns)) {
		if (g->nold == g->capold) {
			size_t nc = g->capold ? g->capold * 2 : 16;
			q_buf *nv = realloc(g->old_moves, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			g->old_moves = nv;
			g->capold = nc;
		}
		q_buf_init(&g->old_moves[g->nold]);
		Q_RET(q_buf_append(&g->old_moves[g->nold], e->key.p, e->key.n));
		g->nold++;
	}
	return 0;
}

static int list_chunk(gc_run *g, gc_member *m, const node_fs_scan_ent *e)
{
	(void)m;
	gc_chunk c;
	memset(&c, 0, sizeof(c));
	if (qfs_chunk_key_parse(e->key, c.id) < 0)
		return 0; /* not a chunk key of ours */
	if (e->newest_ns == NODE_FS_CORRUPT) {
		c.corrupt = 1;
	} else {
		c.newest_ns = e->newest_ns;
		c.bytes = e->live_bytes;
		c.live = e->nlive > 0;
		if (c.live && !qfs_idset_has(&g->marked, c.id) && e->ctx.n) {
			c.ctx = q_slice_dup(e->ctx);
			if (!c.ctx)
				return -ENOMEM;
			c.ctxn = e->ctx.n;
		}
	}
	if (g->nch == g->capch) {
		size_t nc = g->capch ? g->capch * 2 : 1024;
		gc_chunk *nv = realloc(g->ch, nc * sizeof(*nv));
		if (!nv) {
			free(c.ctx);
			return -ENOMEM;
		}
		g->ch = nv;
		g->capch = nc;
	}
	g->ch[g->nch++] = c;
	return 0;
}

static int qbuf_cmp(const void *a, const void *b)
{
	return q_slice_cmp(q_buf_slice(a), q_buf_slice(b));
}

/* Sorts the old move records and drops the copies other replicas gave. */
static void fold_moves(gc_run *g)
{
	if (!g->nold)
		return;
	qsort(g->old_moves, g->nold, sizeof(*g->old_moves), qbuf_cmp);
	size_t o = 0;
	for (size_t i = 1; i < g->nold; i++) {
		if (qbuf_cmp(&g->old_moves[o], &g->old_moves[i]) == 0)
			q_buf_free(&g->old_moves[i]);
		else
			g->old_moves[++o] = g->old_moves[i];
	}
	g->nold = o + 1;
}

static int chunk_cmp(const void *a, const void *b)
{
	return memcmp(((const gc_chunk *)a)->id, ((const gc_chunk *)b)->id, QFS_CHUNK_ID_LEN);
}

/* d's context := the pointwise max of d's and s's (both from replicas of
 * one chunk). A context that does not decode makes the chunk unjudged. */
static int merge_ctx(gc_chunk *d, gc_chunk *s)
{
	if (!s->ctxn)
		return 0;
	if (!d->ctxn) {
		d->ctx = s->ctx;
		d->ctxn = s->ctxn;
		s->ctx = NULL;
		s->ctxn = 0;
		return 0;
	}
	obj_ctx *a = NULL, *b = NULL;
	q_buf out = Q_BUF_INIT;
	int rc = obj_ctx_decode(d->ctx, d->ctxn, &a);
	if (rc == 0)
		rc = obj_ctx_decode(s->ctx, s->ctxn, &b);
	if (rc == 0)
		rc = obj_ctx_merge(a, b);
	if (rc == 0)
		rc = obj_ctx_encode(a, &out);
	obj_ctx_free(a);
	obj_ctx_free(b);
	if (rc < 0) {
		q_buf_free(&out);
		return rc;
	}
	free(d->ctx);
	d->ctx = q_buf_steal(&out, &d->ctxn);
	return 0;
}

/* Folds the replicas' entries of each chunk into one. */
static void fold_chunks(gc_run *g)
{
	if (!g->nch)
		return;
	qsort(g->ch, g->nch, sizeof(*g->ch), chunk_cmp);
	size_t o = 0;
	for (size_t i = 1; i < g->nch; i++) {
		gc_chunk *d = &g->ch[o], *s = &g->ch[i];
		if (chunk_cmp(d, s) == 0) {
			if (s->newest_ns > d->newest_ns)
				d->newest_ns = s->newest_ns;
			if (s->bytes > d->bytes)
				d->bytes = s->bytes;
			d->live |= s->live;
			d->corrupt |= s->corrupt;
			if (merge_ctx(d, s) < 0)
				d->corrupt = 1; /* its context is unknown: not judged */
			free(s->ctx);
		} else {
			g->ch[++o] = *s;
		}
	}
	g->nch = o + 1;
}

/* Reads key from every replica and deletes it with that read's context if
 * every live sibling is older than the cut. 1 deleted (bytes in *bytes),
 * 0 kept (young, or gone), < 0 error. */
static int gc_delete(qc_client *c, q_slice key, int64_t cut, uint64_t *bytes)
{
	qc_opts all = {.r = 16};
	qc_object o;
	qc_object_init(&o);
	int rc = qc_get(c, key, &all, &o);
	if (rc == Q_ENOTFOUND) {
		qc_object_free(&o);
		return 0;
	}
	if (rc == 0) {
		uint64_t b = 0;
		int young = 0;
		for (size_t i = 0; i < o.nsib; i++) {
			if (o.sib[i].deleted)
				continue;
			b += o.sib[i].value.n;
			if ((int64_t)o.sib[i].wall_ns >= cut)
				young = 1;
		}
		if (young) {
			rc = 0;
		} else {
			rc = qc_del(c, key, q_buf_slice(&o.context), NULL);
			if (rc == 0) {
				*bytes = b;
				rc = 1;
			}
		}
	}
	qc_object_free(&o);
	return rc;
}

/* The sweep's deleters: each thread has its own connection and takes the
 * next candidate (chunks, then old move records) under the mutex. */
typedef struct gc_sweep {
	gc_run *g;
	const char *node;
	int64_t cut;
	const size_t *cand;
	size_t ncand, next;
	uint64_t n_del, b_del, n_kept_late, n_err, n_moves_del;
	pthread_mutex_t mu;
} gc_sweep;

static void *sweep_main(void *arg)
{
	gc_sweep *sw = arg;
	gc_run *g = sw->g;
	qc_client *c = NULL;
	int rc = qc_net_new(sw->node, g->a.timeout_ms, &c);
	for (;;) {
		pthread_mutex_lock(&sw->mu);
		size_t i = sw->next++;
		pthread_mutex_unlock(&sw->mu);
		if (i >= sw->ncand + g->nold)
			break;
		char key[QFS_CHUNK_KEY_LEN + 1];
		q_slice k;
		if (i < sw->ncand) {
			qfs_chunk_key(g->ch[sw->cand[i]].id, key);
			k = q_slice_str(key);
		} else {
			k = q_buf_slice(&g->old_moves[i - sw->ncand]);
		}
		uint64_t b = 0;
		int drc = rc;
		if (rc >= 0 && i < sw->ncand) {
			/* every replica's context merged: the delete covers exactly
			 * the siblings the scan judged; a write made since survives */
			const gc_chunk *ch = &g->ch[sw->cand[i]];
			drc = qc_del(c, k, q_slice_make(ch->ctx, ch->ctxn), NULL);
			if (drc == 0) {
				drc = 1;
				b = ch->bytes;
			} else if (drc == Q_ENOTFOUND) {
				drc = 0;
			}
		} else if (rc >= 0) {
			drc = gc_delete(c, k, sw->cut, &b);
		}
		pthread_mutex_lock(&sw->mu);
		if (drc == 1 && i < sw->ncand) {
			sw->n_del++;
			sw->b_del += b;
		} else if (drc == 1) {
			sw->n_moves_del++;
		} else if (drc == 0) {
			sw->n_kept_late += i < sw->ncand;
		} else if (++sw->n_err <= 5) {
			fprintf(stderr, "quorumctl: fs-gc: %.*s: %s (kept)\n", (int)k.n,
				(const char *)k.p, q_strerror(drc));
		}
		pthread_mutex_unlock(&sw->mu);
	}
	qc_close(c);
	return NULL;
}

static void gc_free(gc_run *g)
{
	for (size_t i = 0; i < g->nmem; i++)
		if (g->mem[i].s)
			net_sync_close(g->mem[i].s);
	free(g->mem);
	qfs_idset_free(&g->marked);
	for (size_t i = 0; i < g->nch; i++)
		free(g->ch[i].ctx);
	free(g->ch);
	for (size_t i = 0; i < g->nold; i++)
		q_buf_free(&g->old_moves[i]);
	free(g->old_moves);
}

/* The exit code (after the message) for a member's scan that ended with
 * rc != 0: GC_EUNKNOWN was reported by the callback already. */
static int gc_scan_failed(const gc_member *m, int rc)
{
	if (rc == GC_EUNKNOWN)
		return CLI_EXIT_ERROR;
	return gc_refuse(rc == -ENOMEM ? CLI_EXIT_ERROR : CLI_EXIT_QUORUM,
			 "member %s (%s) could not be scanned to the end: %s%s", m->m.id, m->m.addr,
			 q_strerror(rc), cli_closed_hint(rc));
}

static int gc_run_all(gc_run *g, const char *node)
{
	int rc = gc_members(g, node, 0);
	if (rc)
		return rc;
	/* mark: every version of every file on every replica, then the move
	 * records (after the files: see the design) */
	for (size_t i = 0; i < g->nmem; i++) {
		rc = gc_scan(g, &g->mem[i], QFS_KEY_META, 1, mark_file);
		if (rc)
			return gc_scan_failed(&g->mem[i], rc);
	}
	for (size_t i = 0; i < g->nmem; i++) {
		rc = gc_scan(g, &g->mem[i], QFS_KEY_MOVES, 1, mark_move);
		if (rc == 0)
			rc = gc_scan(g, &g->mem[i], QFS_KEY_CHUNK, 0, list_chunk);
		if (rc)
			return gc_scan_failed(&g->mem[i], rc);
	}
	rc = gc_members(g, node, 1);
	if (rc)
		return rc;
	fold_chunks(g);
	fold_moves(g);

	/* sweep */
	int64_t cut = g->t0 - g->a.grace_ns;
	uint64_t n_ref = 0, n_young = 0, b_young = 0, n_gone = 0, n_unjudged = 0;
	uint64_t n_cand = 0, b_cand = 0, n_del = 0, b_del = 0, n_err = 0, n_kept_late = 0;
	uint64_t b_ref = 0, n_moves_del = 0;
	size_t *cand = calloc(g->nch ? g->nch : 1, sizeof(*cand)), ncand = 0;
	if (!cand)
		return gc_refuse(CLI_EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < g->nch; i++) {
		gc_chunk *ch = &g->ch[i];
		if (qfs_idset_has(&g->marked, ch->id)) {
			n_ref++;
			b_ref += ch->bytes;
			continue;
		}
		if (ch->corrupt) {
			n_unjudged++;
			continue;
		}
		if (!ch->live) {
			n_gone++;
			continue;
		}
		if ((int64_t)ch->newest_ns >= cut) {
			n_young++;
			b_young += ch->bytes;
			continue;
		}
		if (!ch->ctxn) { /* no context to delete with */
			n_unjudged++;
			continue;
		}
		n_cand++;
		b_cand += ch->bytes;
		cand[ncand++] = i;
	}
	if (!g->a.dry_run) {
		gc_sweep sw = {g, node, cut, cand, ncand, 0, 0, 0, 0, 0, 0,
			       PTHREAD_MUTEX_INITIALIZER};
		size_t nt = g->a.parallel < ncand + g->nold ? g->a.parallel : ncand + g->nold;
		pthread_t th[GC_PARALLEL_MAX];
		size_t started = 0;
		for (; started < nt; started++)
			if (pthread_create(&th[started], NULL, sweep_main, &sw) != 0)
				break;
		if (started == 0 && ncand + g->nold > 0)
			sweep_main(&sw); /* no thread: this one does it all */
		for (size_t i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		n_del = sw.n_del;
		b_del = sw.b_del;
		n_kept_late = sw.n_kept_late;
		n_err = sw.n_err;
		n_moves_del = sw.n_moves_del;
	}
	free(cand);
	int64_t t1 = (int64_t)q_wall_ns();
	if (g->a.json) {
		printf("{\"dry_run\":%s,\"grace_s\":%lld,\"members\":%zu,\"files\":%" PRIu64
		       ",\"versions\":%" PRIu64 ",\"move_records\":%" PRIu64 ",\"chunks\":%zu"
		       ",\"referenced\":%" PRIu64 ",\"referenced_bytes\":%" PRIu64
		       ",\"young\":%" PRIu64 ",\"young_bytes\":%" PRIu64 ",\"unreferenced\":%" PRIu64
		       ",\"unreferenced_bytes\":%" PRIu64 ",\"deleted\":%" PRIu64
		       ",\"deleted_bytes\":%" PRIu64 ",\"kept_late\":%" PRIu64 ",\"already_deleted\":%" PRIu64
		       ",\"undecodable\":%" PRIu64 ",\"move_records_deleted\":%" PRIu64
		       ",\"errors\":%" PRIu64 ",\"ms\":%lld}\n",
		       g->a.dry_run ? "true" : "false", (long long)(g->a.grace_ns / 1000000000),
		       g->nmem, g->objects, g->versions, g->moves, g->nch, n_ref, b_ref, n_young,
		       b_young, n_cand, b_cand, n_del, b_del, n_kept_late, n_gone, n_unjudged,
		       n_moves_del, n_err, (long long)((t1 - g->t0) / 1000000));
	} else {
		printf("scanned %zu members: %" PRIu64 " file entries with %" PRIu64 " versions and %"
		       PRIu64 " move records (counted per replica), %zu distinct chunks\n",
		       g->nmem, g->objects, g->versions, g->moves, g->nch);
		printf("referenced:   %" PRIu64 " chunks, %" PRIu64 " bytes\n", n_ref, b_ref);
		printf("young:        %" PRIu64 " unreferenced chunks within the grace period "
		       "(%lld s), %" PRIu64 " bytes: kept\n",
		       n_young, (long long)(g->a.grace_ns / 1000000000), b_young);
		printf("%s %" PRIu64 " chunks, %" PRIu64 " bytes\n",
		       g->a.dry_run ? "would delete:" : "unreferenced:", n_cand, b_cand);
		if (!g->a.dry_run)
			printf("deleted:      %" PRIu64 " chunks, %" PRIu64 " bytes (%" PRIu64
			       " gone meanwhile, %" PRIu64 " errors)\n",
			       n_del, b_del, n_kept_late, n_err);
		if (n_unjudged)
			printf("undecodable:  %" PRIu64 " chunks stored in a form that does not "
			       "decode: kept\n", n_unjudged);
	}
	return n_err ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

int cli_fs_gc(int argc, char **argv, const char *node, uint64_t timeout_ms, int json)
{
	gc_run g;
	memset(&g, 0, sizeof(g));
	g.a.grace_ns = (int64_t)QFS_GC_GRACE_S * 1000000000ll;
	g.a.json = json;
	g.a.page = 256;
	g.a.parallel = 8;
	g.a.timeout_ms = timeout_ms ? timeout_ms : 5000;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		int v;
		if (!strcmp(s, "--dry-run")) {
			g.a.dry_run = 1;
		} else if (!strcmp(s, "--json")) {
			g.a.json = 1;
		} else if (!strcmp(s, "--force")) {
			g.a.force = 1;
		} else if (!strcmp(s, "--grace")) {
			if (i + 1 >= argc || cli_parse_int(argv[i + 1], 0, 365 * 86400, &v) < 0) {
				fprintf(stderr, "quorumctl: --grace needs seconds from 0 to 31536000\n");
				return CLI_EXIT_USAGE;
			}
			g.a.grace_ns = (int64_t)v * 1000000000ll;
			i++;
		} else if (!strcmp(s, "--parallel")) {
			if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, GC_PARALLEL_MAX, &v) < 0) {
				fprintf(stderr, "quorumctl: --parallel needs a number from 1 to %d\n",
					GC_PARALLEL_MAX);
				return CLI_EXIT_USAGE;
			}
			g.a.parallel = (size_t)v;
			i++;
		} else if (!strcmp(s, "--page")) {
			if (i + 1 >= argc ||
			    cli_parse_int(argv[i + 1], 1, (int)NODE_FS_SCAN_MAX_KEYS, &v) < 0) {
				fprintf(stderr, "quorumctl: --page needs a number from 1 to %u\n",
					NODE_FS_SCAN_MAX_KEYS);
				return CLI_EXIT_USAGE;
			}
			g.a.page = (uint32_t)v;
			i++;
		} else {
			fprintf(stderr, "quorumctl: fs-gc: unknown argument %s\n"
					"usage: fs-gc [--grace SECONDS [--force]] [--dry-run] [--json] "
					"[--page N] [--parallel N]\n", s);
			return CLI_EXIT_USAGE;
		}
	}
	if (g.a.grace_ns < 2ll * QFS_CHUNK_REPUT_MS * 1000000ll && !g.a.dry_run) {
		if (!g.a.force) {
			fprintf(stderr, "quorumctl: fs-gc: a grace period under %u s can delete chunks "
					"that mounts still rely on (a mount does not store a chunk "
					"again for %u s); --force to run anyway\n",
				2u * QFS_CHUNK_REPUT_MS / 1000u, QFS_CHUNK_REPUT_MS / 1000u);
			return CLI_EXIT_USAGE;
		}
		fprintf(stderr, "quorumctl: fs-gc: warning: grace period under %u s (--force)\n",
			2u * QFS_CHUNK_REPUT_MS / 1000u);
	}
	g.t0 = (int64_t)q_wall_ns();
	qfs_idset_init(&g.marked);
	int code = gc_run_all(&g, node);
	gc_free(&g);
	fflush(stdout);
	return code;
}
