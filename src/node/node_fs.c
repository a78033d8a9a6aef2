/*
 * node_fs.c - FS_INFO and FS_SCAN served by a node, and the cluster-wide
 * disk figures the mount's statfs reports (node_fs.h).
 *
 * Serving: the handler runs on the loop thread, decodes the request and
 * queues the disk work (statvfs, a store scan) on a libuv worker; the
 * worker builds the whole answer and the after-callback replies on the
 * loop. A scan page is one snapshot iterator (lsm_iter) over the replica
 * keyspace: it holds keys strictly after `after` that start with the
 * prefix, at most max_keys of them and about max_bytes of answer (always at
 * least one key, so a page makes progress whatever its size).
 *
 * node_fs_space_get: the calling thread reads its own disk, posts one job
 * to the loop that sends FS_INFO to every other member at once, and waits
 * (bounded) for the answers. The gather record is shared by the waiter and
 * the request callbacks and counted: whoever drops the last reference frees
 * it, so a waiter that gives up never leaves a callback with freed memory.
 *
 * Threading: see node_fs.h. f->pool is written on the loop thread only and
 * read there only.
 */
#include "node/node_fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <uv.h>

#include "cluster/coord.h"
#include "cluster/members.h"
#include "handoff/hint.h"
#include "lsm/lsm.h"
#include "net/net_loop.h"
#include "net/net_pool.h"
#include "net/net_proto.h"
#include "node/node_fs_msg.h"
#include "object/obj.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

struct node_fs {
	node_fs_config cfg;
	char *data_dir;
	net_pool *pool; /* loop thread only; NULL outside start..stop */
};

int node_fs_new(const node_fs_config *cfg, node_fs **out)
{
	node_fs *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	f->data_dir = strdup(cfg->data_dir);
	if (!f->data_dir) {
		free(f);
		return -ENOMEM;
	}
	f->cfg.data_dir = f->data_dir;
	*out = f;
	return 0;
}

void node_fs_free(node_fs *f)
{
	if (!f)
		return;
	free(f->data_dir);
	free(f);
}

int node_fs_start(node_fs *f)
{
	f->pool = coord_pool(f->cfg.coord);
	return f->pool ? 0 : Q_ECLOSED;
}

void node_fs_stop(node_fs *f)
{
	if (f)
		f->pool = NULL;
}

/* ------------------------------------------------------------------ */
/* FS_INFO                                                             */

static int local_disk(node_fs *f, node_fs_info *in)
{
	struct statvfs sv;
	if (statvfs(f->data_dir, &sv) != 0)
		return -errno;
	uint64_t fr = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	in->total = (uint64_t)sv.f_blocks * fr;
	in->free = (uint64_t)sv.f_bfree * fr;
	in->avail = (uint64_t)sv.f_bavail * fr;
	in->files = sv.f_files;
	in->ffree = sv.f_ffree;
	return 0;
}

static int build_info(node_fs *f, q_buf *out)
{
	node_fs_info in;
	memset(&in, 0, sizeof(in));
	member *ms = NULL;
	size_t nm = 0;
	uint64_t ver;
	int rc;
	Q_ERR(local_disk(f, &in));
	if (f->cfg.hints) {
		hint_stats hs;
		hint_get_stats(f->cfg.hints, &hs);
		in.hints = hs.count;
	}
	in.n = (uint32_t)f->cfg.n;
	Q_ERR(members_snapshot(f->cfg.mem, &ms, &nm, &ver));
	if (nm > NODE_FS_MAX_MEMBERS) {
		rc = Q_ETOOBIG;
		goto fail;
	}
	in.members = calloc(nm ? nm : 1, sizeof(*in.members));
	if (!in.members) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nm; i++) {
		node_fs_member *m = &in.members[i];
		snprintf(m->id, sizeof(m->id), "%s", ms[i].id);
		snprintf(m->addr, sizeof(m->addr), "%s", ms[i].addr);
		m->state = (uint8_t)ms[i].state;
		m->self = ms[i].self ? 1 : 0;
	}
	in.nmembers = nm;
	rc = node_fs_info_encode(&in, out);
fail:
	free(ms);
	free(in.members);
	return rc;
}

/* ------------------------------------------------------------------ */
/* FS_SCAN                                                             */

/* One page of the replica keyspace (see the top of the file). */
static int build_scan(node_fs *f, const node_fs_scan_req *q, q_buf *out)
{
	node_fs_scan_build b;
	node_fs_scan_build_init(&b);
	lsm_iter *it = NULL;
	q_buf seek = Q_BUF_INIT, ctx = Q_BUF_INIT;
	q_slice *vals = NULL;
	size_t vcap = 0;
	int rc, more = 0;
	Q_ERR(lsm_iter_new(f->cfg.db, &it));
	Q_ERR(q_buf_append_byte(&seek, LSM_KS_DATA));
	if (q->after.n && q_slice_cmp(q->after, q->prefix) >= 0)
		Q_ERR(q_buf_append(&seek, q->after.p, q->after.n));
	else
		Q_ERR(q_buf_append(&seek, q->prefix.p, q->prefix.n));
	for (lsm_iter_seek(it, q_buf_slice(&seek)); lsm_iter_valid(it); lsm_iter_next(it)) {
		q_slice k = lsm_iter_key(it);
		if (k.n < 1 || k.p[0] != LSM_KS_DATA)
			break;
		q_slice key = q_slice_make(k.p + 1, k.n - 1);
		if (key.n < q->prefix.n || memcmp(key.p, q->prefix.p, q->prefix.n) != 0)
			break;
		if (key.n == 0 || (q->after.n && q_slice_cmp(key, q->after) <= 0))
			continue;
		if (b.nkeys >= q->max_keys || b.body.len >= q->max_bytes) {
			more = 1;
			break;
		}
		q_slice v = lsm_iter_value(it);
		obj_set *s = NULL;
		node_fs_scan_ent e;
		memset(&e, 0, sizeof(e));
		e.key = key;
		if (obj_set_decode(v.p, v.n, &s) < 0) {
			e.newest_ns = NODE_FS_CORRUPT;
			Q_ERR(node_fs_scan_build_add(&b, &e, NULL));
			continue;
		}
		size_t ns = obj_set_count(s);
		size_t nl = 0;
		for (size_t i = 0; i < ns; i++) {
			obj_sibling sib;
			obj_set_sibling(s, i, &sib);
			if (sib.tombstone) {
				e.ntomb++;
				continue;
			}
			if (nl >= NODE_FS_MAX_SIBS)
				continue;
			if (nl == vcap) {
				size_t nc = vcap ? vcap * 2 : 16;
				q_slice *nv = realloc(vals, nc * sizeof(*nv));
				if (!nv) {
					obj_set_free(s);
					rc = -ENOMEM;
					goto fail;
				}
				vals = nv;
				vcap = nc;
			}
			vals[nl++] = sib.value;
			e.live_bytes += sib.value.n;
			if (sib.wall_ns > 0 && (uint64_t)sib.wall_ns > e.newest_ns)
				e.newest_ns = (uint64_t)sib.wall_ns;
		}
		if (e.ntomb > NODE_FS_MAX_SIBS)
			e.ntomb = NODE_FS_MAX_SIBS;
		e.nlive = (uint32_t)nl;
		q_buf_reset(&ctx);
		rc = obj_ctx_encode(obj_set_ctx(s), &ctx);
		e.ctx = q_buf_slice(&ctx);
		if (rc == 0)
			rc = node_fs_scan_build_add(&b, &e,
						    (q->flags & NODE_FS_SCAN_VALUES) ? vals : NULL);
		obj_set_free(s);
		if (rc < 0)
			goto fail;
	}
	Q_ERR(lsm_iter_status(it));
	if (lsm_iter_skipped(it)) {
		/* a listing with holes must not feed the collector's mark */
		Q_ERROR("fs", "scan: %llu entries with damaged values passed over; "
			"refusing an incomplete listing",
			(unsigned long long)lsm_iter_skipped(it));
		rc = Q_ECORRUPT;
		goto fail;
	}
	rc = node_fs_scan_build_finish(&b, more, out);
fail:
	node_fs_scan_build_free(&b);
	lsm_iter_free(it);
	q_buf_free(&seek);
	q_buf_free(&ctx);
	free(vals);
	return rc;
}

/* ------------------------------------------------------------------ */
/* serving                                                             */

typedef struct serve_job {
	uv_work_t w;
	node_fs *f;
	net_request *req;
	node_fs_scan_req scan; /* FS_SCAN: slices into req's payload */
	q_buf resp;
	int rc;
} serve_job;

static void serve_work(uv_work_t *w)
{
	serve_job *j = w->data;
	if (j->req->type == NET_MSG_FS_INFO)
		j->rc = build_info(j->f, &j->resp);
	else
		j->rc = build_scan(j->f, &j->scan, &j->resp);
}

static void serve_done(uv_work_t *w, int status)
{
	serve_job *j = w->data;
	if (status < 0 || j->rc < 0) {
		net_reply_error(j->req, status < 0 ? Q_ECLOSED : j->rc,
				j->req->type == NET_MSG_FS_INFO ? "cannot read the node's disk figures"
								: "cannot scan the node's store");
	} else {
		net_msg m;
		net_msg_init(&m, net_msg_resp_type(j->req->type));
		m.u.blob.payload = q_buf_slice(&j->resp);
		net_reply_send(j->req, &m);
	}
	q_buf_free(&j->resp);
	free(j);
}

void node_fs_handle(void *arg, net_request *req)
{
	node_fs *f = arg;
	if (req->type != NET_MSG_FS_INFO && req->type != NET_MSG_FS_SCAN) {
		net_reply_error(req, Q_EPROTO, "filesystem request type not served by this node");
		return;
	}
	serve_job *j = calloc(1, sizeof(*j));
	if (!j) {
		net_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	j->f = f;
	j->req = req;
	j->w.data = j;
	q_buf_init(&j->resp);
	q_slice p = req->msg.u.blob.payload;
	int rc = 0;
	if (req->type == NET_MSG_FS_SCAN)
		rc = node_fs_scan_req_decode(p, &j->scan);
	else if (p.n < 1 || p.p[0] != NODE_FS_MSG_VERSION)
		rc = p.n >= 1 ? Q_EVERSION : Q_EPROTO;
	if (rc < 0) {
		net_reply_error(req, rc, "malformed filesystem request");
		free(j);
		return;
	}
	rc = uv_queue_work(net_loop_uv(f->cfg.loop), &j->w, serve_work, serve_done);
	if (rc < 0) {
		net_reply_error(req, Q_EBUSY, "cannot queue the filesystem request");
		free(j);
	}
}

/* ------------------------------------------------------------------ */
/* cluster figures for statfs                                          */

typedef struct gather {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	size_t pending;
	node_fs *f;
	uint64_t timeout_ms;
	member *ms;
	size_t nm;
	node_fs_space sum; /* peers' figures */
} gather;

static void gather_unref(gather *g)
{
	pthread_mutex_lock(&g->mu);
	int last = --g->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (last) {
		pthread_mutex_destroy(&g->mu);
		pthread_cond_destroy(&g->cv);
		free(g->ms);
		free(g);
	}
}

static void gather_one(gather *g, const node_fs_info *in)
{
	pthread_mutex_lock(&g->mu);
	if (in) {
		g->sum.total += in->total;
		g->sum.free += in->free;
		g->sum.avail += in->avail;
		g->sum.files += in->files;
		g->sum.ffree += in->ffree;
		g->sum.answered++;
	}
	g->pending--;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	gather_unref(g);
}

static void info_cb(void *arg, int status, const net_msg *resp)
{
	gather *g = arg;
	node_fs_info in;
	if (status == 0 && resp->type == NET_MSG_FS_INFO_RESP &&
	    node_fs_info_decode(resp->u.blob.payload, &in) == 0) {
		gather_one(g, &in);
		node_fs_info_free(&in);
	} else {
		gather_one(g, NULL);
	}
}

/* Loop thread: one FS_INFO per peer. */
static void gather_send(void *arg)
{
	gather *g = arg;
	uint8_t ver = NODE_FS_MSG_VERSION;
	net_msg m;
	net_msg_init(&m, NET_MSG_FS_INFO);
	m.u.blob.payload = q_slice_make(&ver, 1);
	for (size_t i = 0; i < g->nm; i++) {
		if (g->ms[i].self || g->ms[i].state == MEMBER_DOWN)
			continue;
		int rc = g->f->pool ? net_pool_request(g->f->pool, g->ms[i].addr, &m, g->timeout_ms,
						       info_cb, g)
				    : Q_ECLOSED;
		if (rc < 0)
			gather_one(g, NULL); /* its reference, taken by the poster */
	}
	gather_unref(g); /* the post's own reference */
}

int node_fs_space_get(node_fs *f, uint64_t timeout_ms, node_fs_space *out)
{
	node_fs_info local;
	memset(&local, 0, sizeof(local));
	memset(out, 0, sizeof(*out));
	Q_RET(local_disk(f, &local));
	out->total = local.total;
	out->free = local.free;
	out->avail = local.avail;
	out->files = local.files;
	out->ffree = local.ffree;
	out->answered = 1;
	out->n = f->cfg.n;
	gather *g = calloc(1, sizeof(*g));
	if (!g)
		return 0; /* the local figures stand */
	uint64_t ver;
	if (members_snapshot(f->cfg.mem, &g->ms, &g->nm, &ver) < 0) {
		free(g);
		out->members = 1;
		return 0;
	}
	out->members = g->nm ? g->nm : 1;
	size_t peers = 0;
	for (size_t i = 0; i < g->nm; i++)
		if (!g->ms[i].self && g->ms[i].state != MEMBER_DOWN)
			peers++;
	if (peers == 0) {
		free(g->ms);
		free(g);
		return 0;
	}
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->f = f;
	g->timeout_ms = timeout_ms;
	g->pending = peers;
	g->refs = 1 /* waiter */ + 1 /* post */ + (int)peers /* one per peer answer */;
	if (net_loop_post(f->cfg.loop, gather_send, g) < 0) {
		g->refs = 1;
		gather_unref(g);
		return 0;
	}
	uint64_t deadline = q_mono_ns() + (timeout_ms + 250) * 1000000ull;
	pthread_mutex_lock(&g->mu);
	while (g->pending > 0) {
		uint64_t now = q_mono_ns();
		if (now >= deadline)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t wait = deadline - now;
		if (wait > 50000000ull)
			wait = 50000000ull; /* re-check the monotonic deadline often */
		ts.tv_nsec += (long)(wait % 1000000000ull);
		ts.tv_sec += (time_t)(wait / 1000000000ull) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	out->total += g->sum.total;
	out->free += g->sum.free;
	out->avail += g->sum.avail;
	out->files += g->sum.files;
	out->ffree += g->sum.ffree;
	out->answered += g->sum.answered;
	pthread_mutex_unlock(&g->mu);
	gather_unref(g);
	return 0;
}
