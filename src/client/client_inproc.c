/*
 * client_inproc.c - the in-process client: client.h over the local
 * coordinator, no network hop to its own node.
 *
 * Each call goes to coord_*_sync, which either serves it on the calling
 * thread (a node alone in its cluster) or hands it to the node's event loop
 * and waits; either way the outcome is the coordinator's, so the in-process
 * and network clients return the same results and error codes.
 *
 * Threading: any number of threads at once (the coordinator is thread-safe
 * through its _sync entry points). Ownership: see client.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "cluster/coord.h"
#include "object/obj.h"
#include "util/qerr.h"
#include "util/qtime.h"

typedef struct inproc {
	qc_client base;
	coord *c;
} inproc;

static coord_req to_req(const qc_opts *o)
{
	coord_req q;
	memset(&q, 0, sizeof(q));
	if (o) {
		q.n = o->n;
		q.r = o->r;
		q.w = o->w;
		q.timeout_ms = o->timeout_ms;
	}
	return q;
}

static int ip_get(qc_client *cl, q_slice key, const qc_opts *o, qc_object *out)
{
	inproc *ip = (inproc *)cl;
	coord_req q = to_req(o);
	obj_set *s = NULL;
	int rc = coord_get_sync(ip->c, key, &q, &s);
	qc_object_free(out);
	if (s) {
		int frc = qc_object_from_set(s, out);
		if (frc < 0)
			rc = frc;
	}
	obj_set_free(s);
	return rc;
}

static int do_write(inproc *ip, q_slice key, q_slice ctx, q_slice value, int tomb,
		    const qc_opts *o, qc_object *out)
{
	coord_req q = to_req(o);
	obj_write w = {
		.tombstone = tomb,
		.value = tomb ? q_slice_make(NULL, 0) : value,
		.content_type = NULL,
		.wall_ns = (int64_t)q_wall_ns(),
	};
	obj_set *s = NULL;
	int rc = coord_put_sync(ip->c, key, ctx, &w, &q, out ? &s : NULL);
	if (out) {
		qc_object_free(out);
		if (rc == 0 && s) {
			int frc = qc_object_from_set(s, out);
			if (frc < 0)
				rc = frc;
		}
	}
	obj_set_free(s);
	return rc;
}

static int ip_put(qc_client *cl, q_slice key, q_slice ctx, q_slice value, const qc_opts *o,
		  qc_object *out)
{
	return do_write((inproc *)cl, key, ctx, value, 0, o, out);
}

static int ip_del(qc_client *cl, q_slice key, q_slice ctx, const qc_opts *o)
{
	return do_write((inproc *)cl, key, ctx, q_slice_make(NULL, 0), 1, o, NULL);
}

static int ip_mget(qc_client *cl, const q_slice *keys, size_t n, const qc_opts *o,
		   qc_object *outs, int *rcs)
{
	inproc *ip = (inproc *)cl;
	coord_req q = to_req(o);
	obj_set **sets = calloc(n ? n : 1, sizeof(obj_set *));
	if (!sets)
		return -ENOMEM;
	int rc = coord_mget_sync(ip->c, keys, n, &q, sets, rcs);
	for (size_t i = 0; i < n; i++) {
		qc_object_free(&outs[i]);
		if (sets[i]) {
			int frc = qc_object_from_set(sets[i], &outs[i]);
			if (frc < 0)
				rcs[i] = frc;
		}
		obj_set_free(sets[i]);
	}
	free(sets);
	return rc;
}

static void ip_close(qc_client *cl)
{
	free(cl);
}

static const struct qc_client_ops inproc_ops = {
	.get = ip_get,
	.put = ip_put,
	.del = ip_del,
	.mget = ip_mget,
	.close = ip_close,
};

int qc_inproc_new(struct coord *c, qc_client **out)
{
	inproc *ip = calloc(1, sizeof(*ip));
	if (!ip)
		return -ENOMEM;
	ip->base.ops = &inproc_ops;
	ip->c = c;
	*out = &ip->base;
	return 0;
}
