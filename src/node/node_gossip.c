/*
 * node_gossip.c - gossip wired into the node (see node_gossip.h).
 *
 * Message flow: a tick's SYNs go out as GOSSIP requests; the receiver
 * answers the first message gossip_receive produced (the ACK to a SYN, the
 * ACK2 to an ACK: always addressed to the sender) inside GOSSIP_RESP and
 * sends any further ones as requests of their own. A reply that comes back
 * is fed to gossip_receive the same way. Lost messages only slow
 * convergence (gossip is best effort), so send failures are logged at debug
 * level and dropped.
 *
 * Invariants: the gossip object exists only between start and free and is
 * touched only on the loop thread; after stop, callbacks still pending in
 * the pool see `stopped` and do nothing.
 */
#include "node/node_gossip.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gossip/gossip.h"
#include "net/net_msg.h"
#include "net/net_pool.h"
#include "net/net_proto.h"
#include "util/buf.h"
#include "util/env.h"
#include "util/log.h"
#include "util/qerr.h"
#include "util/qtime.h"

struct node_gossip {
	coord *c;
	members *mem;
	net_loop *loop;
	char self_id[MEMBER_ID_MAX + 1];
	gossip *g;
	gossip_config cfg;
	char zone[MEMBER_ID_MAX + 1];
	char **seeds;
	size_t nseeds;
	uint64_t interval_ms;
	uv_timer_t timer;
	int timer_on;
	int stopped;
	pthread_mutex_t mu;       /* guards counts */
	size_t counts[GOSSIP_STATUS_MAX + 1];
	char (*left)[MEMBER_ID_MAX + 1]; /* under mu: ids marked left */
	size_t nleft, capleft;
	char *state_dir;          /* where the incarnation is kept; may be NULL */
	uint64_t inc_saved;       /* loop thread: last incarnation stored */
};

static void inc_path(node_gossip *ng, char *p, size_t cap)
{
	snprintf(p, cap, "%s/%s", ng->state_dir, NODE_GOSSIP_INC_FILE);
}

/* The stored incarnation, 0 when none (or unreadable: logged). */
static uint64_t inc_load(node_gossip *ng)
{
	char p[4200];
	inc_path(ng, p, sizeof(p));
	uint8_t *data = NULL;
	size_t n = 0;
	int rc = q_env_read_all(q_env_posix(), p, &data, &n);
	if (rc < 0) {
		if (rc != -ENOENT && rc != Q_ENOTFOUND)
			Q_WARN("gossip", "cannot read %s: %s", p, q_strerror(rc));
		return 0;
	}
	uint64_t v = 0;
	int ok = n > 0 && n <= 20;
	for (size_t i = 0; ok && i < n; i++) {
		if (data[i] == '\n' && i == n - 1 && i > 0)
			break;
		if (data[i] < '0' || data[i] > '9' || v > (UINT64_MAX - 9) / 10)
			ok = 0;
		else
			v = v * 10 + (uint64_t)(data[i] - '0');
	}
	free(data);
	if (!ok) {
		Q_WARN("gossip", "%s is malformed; using the clock", p);
		return 0;
	}
	return v;
}

static int inc_store(node_gossip *ng, uint64_t inc)
{
	if (!ng->state_dir || inc <= ng->inc_saved)
		return 0;
	char p[4200], text[32];
	inc_path(ng, p, sizeof(p));
	int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)inc);
	int rc = q_env_write_atomic(q_env_posix(), p, text, (size_t)n);
	if (rc < 0) {
		Q_WARN("gossip", "cannot store the incarnation in %s: %s", p, q_strerror(rc));
		return rc;
	}
	ng->inc_saved = inc;
	return 0;
}

/* The left set as a file (NODE_GOSSIP_LEFT_FILE): one id per line,
 * written whole (fsync + rename). Loop thread or before start. */
static void left_store(node_gossip *ng)
{
	if (!ng->state_dir)
		return;
	q_buf b;
	q_buf_init(&b);
	int rc = 0;
	pthread_mutex_lock(&ng->mu);
	for (size_t i = 0; i < ng->nleft && rc == 0; i++)
		rc = q_buf_printf(&b, "%s\n", ng->left[i]);
	pthread_mutex_unlock(&ng->mu);
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s", ng->state_dir, NODE_GOSSIP_LEFT_FILE);
	if (rc == 0)
		rc = q_env_write_atomic(q_env_posix(), p, b.p ? (const void *)b.p : "", b.len);
	if (rc < 0)
		Q_WARN("gossip", "cannot store the left members in %s: %s", p, q_strerror(rc));
	q_buf_free(&b);
}

/* Keeps the set of members marked left (for node_gossip_is_left); a
 * change is stored in the state directory. */
static int note_left_mem(node_gossip *ng, const char *id, int left);

static void note_left(node_gossip *ng, const char *id, int left)
{
	if (note_left_mem(ng, id, left) > 0)
		left_store(ng);
}

/* 1 if the set changed. */
static int note_left_mem(node_gossip *ng, const char *id, int left)
{
	int changed = 0;
	pthread_mutex_lock(&ng->mu);
	size_t i = 0;
	while (i < ng->nleft && strcmp(ng->left[i], id))
		i++;
	if (left && i == ng->nleft) {
		if (ng->nleft == ng->capleft) {
			size_t cap = ng->capleft ? ng->capleft * 2 : 16;
			void *p = realloc(ng->left, cap * sizeof(*ng->left));
			if (!p) {
				pthread_mutex_unlock(&ng->mu);
				Q_WARN("gossip", "no memory to record %s as left", id);
				return 0;
			}
			ng->left = p;
			ng->capleft = cap;
		}
		snprintf(ng->left[ng->nleft++], MEMBER_ID_MAX + 1, "%s", id);
		changed = 1;
	} else if (!left && i < ng->nleft) {
		memmove(ng->left[i], ng->left[ng->nleft - 1], MEMBER_ID_MAX + 1);
		ng->nleft--;
		changed = 1;
	}
	pthread_mutex_unlock(&ng->mu);
	return changed;
}

/* At start: members that left before the restart stay out of the view
 * (a static peer list may still name them); lines that are not member ids
 * are skipped with a warning. */
static void left_load(node_gossip *ng)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s", ng->state_dir, NODE_GOSSIP_LEFT_FILE);
	uint8_t *data = NULL;
	size_t n = 0;
	int rc = q_env_read_all(q_env_posix(), p, &data, &n);
	if (rc < 0) {
		if (rc != -ENOENT && rc != Q_ENOTFOUND)
			Q_WARN("gossip", "cannot read %s: %s", p, q_strerror(rc));
		return;
	}
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && data[i] != '\n')
			continue;
		size_t len = i - start;
		char id[MEMBER_ID_MAX + 1];
		int ok = len > 0 && len <= MEMBER_ID_MAX;
		for (size_t k = 0; ok && k < len; k++)
			ok = data[start + k] > ' ' && data[start + k] < 0x7f;
		if (ok) {
			memcpy(id, data + start, len);
			id[len] = 0;
			if (strcmp(id, ng->self_id)) {
				note_left_mem(ng, id, 1);
				if (members_remove(ng->mem, id) == 0)
					Q_INFO("gossip", "member %s left before the restart", id);
			}
		} else if (len > 0) {
			Q_WARN("gossip", "%s: skipping a malformed line", p);
		}
		start = i + 1;
	}
	free(data);
}

int node_gossip_is_left(node_gossip *ng, const char *id)
{
	pthread_mutex_lock(&ng->mu);
	int found = 0;
	for (size_t i = 0; i < ng->nleft && !found; i++)
		found = !strcmp(ng->left[i], id);
	pthread_mutex_unlock(&ng->mu);
	return found;
}

static void on_member(void *ud, const gossip_member *m, int old_status)
{
	node_gossip *ng = ud;
	if (m->is_self)
		return;
	note_left(ng, m->id, m->status == GOSSIP_LEFT);
	if (m->status == GOSSIP_LEFT) {
		if (members_remove(ng->mem, m->id) == 0)
			Q_INFO("gossip", "member %s (%s) left", m->id, m->addr);
		return;
	}
	int rc = members_upsert(ng->mem, m->id, m->addr, m->zone[0] ? m->zone : NULL);
	if (rc < 0) {
		Q_WARN("gossip", "member %s (%s): %s", m->id, m->addr, q_strerror(rc));
		return;
	}
	members_set_state(ng->mem, m->id, m->status == GOSSIP_ALIVE ? MEMBER_UP : MEMBER_DOWN);
	if (old_status != (int)m->status)
		Q_INFO("gossip", "member %s (%s) is %s", m->id, m->addr,
		       m->status == GOSSIP_ALIVE     ? "alive"
		       : m->status == GOSSIP_SUSPECT ? "suspect"
						     : "down");
}

static void update_counts(node_gossip *ng)
{
	size_t cnt[GOSSIP_STATUS_MAX + 1];
	gossip_counts(ng->g, cnt);
	/* a refutation raised the incarnation: keep it across restarts */
	inc_store(ng, gossip_self_incarnation(ng->g));
	pthread_mutex_lock(&ng->mu);
	memcpy(ng->counts, cnt, sizeof(cnt));
	pthread_mutex_unlock(&ng->mu);
}

static void send_all(node_gossip *ng, gossip_outbox *out, size_t from);

static void resp_cb(void *arg, int status, const net_msg *resp)
{
	node_gossip *ng = arg;
	if (ng->stopped || !ng->g)
		return;
	if (status != 0) {
		Q_DEBUG("gossip", "gossip message not delivered: %s", q_strerror(status));
		return;
	}
	if (resp->type != NET_MSG_GOSSIP_RESP || resp->u.gossip.payload.n == 0)
		return;
	gossip_outbox out;
	gossip_outbox_init(&out);
	int rc = gossip_receive(ng->g, resp->u.gossip.payload.p, resp->u.gossip.payload.n,
				q_mono_ms(), &out);
	if (rc < 0)
		Q_WARN("gossip", "bad gossip reply: %s", q_strerror(rc));
	else
		send_all(ng, &out, 0);
	gossip_outbox_free(&out);
	update_counts(ng);
}

static void send_all(node_gossip *ng, gossip_outbox *out, size_t from)
{
	net_pool *pool = coord_pool(ng->c);
	if (!pool)
		return;
	for (size_t i = from; i < out->n; i++) {
		net_msg m;
		net_msg_init(&m, NET_MSG_GOSSIP);
		m.u.gossip.payload = q_buf_slice(&out->v[i].msg);
		uint64_t t = ng->interval_ms * 2 < 1000 ? 1000 : ng->interval_ms * 2;
		int rc = net_pool_request(pool, out->v[i].addr, &m, t, resp_cb, ng);
		if (rc < 0)
			Q_DEBUG("gossip", "cannot send to %s: %s", out->v[i].addr, q_strerror(rc));
	}
}

static void tick_cb(uv_timer_t *t)
{
	node_gossip *ng = t->data;
	if (ng->stopped || !ng->g)
		return;
	gossip_outbox out;
	gossip_outbox_init(&out);
	int rc = gossip_tick(ng->g, q_mono_ms(), &out);
	if (rc < 0)
		Q_WARN("gossip", "tick: %s", q_strerror(rc));
	else
		send_all(ng, &out, 0);
	gossip_outbox_free(&out);
	update_counts(ng);
}

static void handle(void *arg, net_request *req)
{
	node_gossip *ng = arg;
	if (req->type != NET_MSG_GOSSIP) {
		net_reply_error(req, Q_EPROTO, "request type not served by this node");
		return;
	}
	if (ng->stopped || !ng->g) {
		net_reply_error(req, Q_ECLOSED, "gossip not running");
		return;
	}
	gossip_outbox out;
	gossip_outbox_init(&out);
	int rc = gossip_receive(ng->g, req->msg.u.gossip.payload.p, req->msg.u.gossip.payload.n,
				q_mono_ms(), &out);
	if (rc < 0) {
		Q_WARN("gossip", "bad gossip message from %s: %s", req->peer, q_strerror(rc));
		net_reply_error(req, rc, "gossip message refused");
	} else {
		net_msg m;
		net_msg_init(&m, NET_MSG_GOSSIP_RESP);
		if (out.n > 0)
			m.u.gossip.payload = q_buf_slice(&out.v[0].msg);
		net_reply_send(req, &m);
		send_all(ng, &out, 1);
	}
	gossip_outbox_free(&out);
	update_counts(ng);
}

int node_gossip_new(q_conf *conf, coord *c, members *mem, net_loop *loop, const char *self_id,
		    const char *zone,
		    const char *const *seeds, size_t nseeds, char *err, size_t errcap,
		    node_gossip **out)
{
	int rc = -ENOMEM;
	err[0] = 0;
	if (nseeds > GOSSIP_SEEDS_MAX) {
		snprintf(err, errcap, "seeds: at most %u gossip seeds", GOSSIP_SEEDS_MAX);
		return -EINVAL;
	}
	node_gossip *ng = calloc(1, sizeof(*ng));
	if (!ng)
		return -ENOMEM;
	pthread_mutex_init(&ng->mu, NULL);
	ng->c = c;
	ng->mem = mem;
	ng->loop = loop;
	snprintf(ng->self_id, sizeof(ng->self_id), "%s", self_id);
	snprintf(ng->zone, sizeof(ng->zone), "%s", zone ? zone : "");
	gossip_config_default(&ng->cfg);
	rc = gossip_config_from_conf(conf, &ng->cfg, &ng->interval_ms);
	if (rc < 0) {
		snprintf(err, errcap, "config: %s", q_conf_error(conf));
		goto fail;
	}
	/* the cluster name borrows from conf, which is not kept */
	ng->cfg.cluster = NULL;
	const char *cl = q_conf_get(conf, "cluster_name");
	if (cl && cl[0]) {
		ng->cfg.cluster = strdup(cl);
		rc = -ENOMEM;
		if (!ng->cfg.cluster)
			goto fail;
	}
	if (nseeds) {
		ng->seeds = calloc(nseeds, sizeof(char *));
		rc = -ENOMEM;
		if (!ng->seeds)
			goto fail;
		for (size_t i = 0; i < nseeds; i++) {
			ng->seeds[i] = strdup(seeds[i]);
			if (!ng->seeds[i])
				goto fail;
			ng->nseeds++;
		}
	}
	rc = coord_set_msg_hook(c, NET_MSG_GOSSIP_FIRST, NET_MSG_GOSSIP_LAST, handle, ng);
	if (rc < 0)
		goto fail;
	*out = ng;
	return 0;
fail:
	node_gossip_free(ng);
	return rc;
}

int node_gossip_start(node_gossip *ng)
{
	gossip_config gc = ng->cfg;
	gc.id = ng->self_id;
	gc.addr = coord_listen_addr(ng->c);
	gc.zone = ng->zone;
	gc.seeds = (const char *const *)ng->seeds;
	gc.nseeds = ng->nseeds;
	gc.on_member = on_member;
	gc.ud = ng;
	if (ng->state_dir) {
		uint64_t stored = inc_load(ng);
		uint64_t inc = q_wall_ns() / 1000000u;
		if (stored >= inc)
			inc = stored + 1;
		int irc = inc_store(ng, inc);
		if (irc < 0)
			return irc;
		gc.incarnation = inc;
	}
	if (ng->state_dir)
		left_load(ng);
	int rc = gossip_new(&gc, q_mono_ms(), &ng->g);
	if (rc < 0) {
		Q_ERROR("gossip", "cannot start gossip: %s", q_strerror(rc));
		ng->g = NULL;
		return rc;
	}
	update_counts(ng);
	uv_timer_init(net_loop_uv(ng->loop), &ng->timer);
	ng->timer.data = ng;
	ng->timer_on = 1;
	uv_timer_start(&ng->timer, tick_cb, 0, ng->interval_ms);
	Q_INFO("gossip", "gossip on %s every %llu ms, %zu seeds", gc.addr,
	       (unsigned long long)ng->interval_ms, ng->nseeds);
	return 0;
}

void node_gossip_stop(node_gossip *ng)
{
	if (!ng)
		return;
	ng->stopped = 1;
	if (ng->timer_on) {
		uv_timer_stop(&ng->timer);
		uv_close((uv_handle_t *)&ng->timer, NULL);
		ng->timer_on = 0;
	}
}

void node_gossip_free(node_gossip *ng)
{
	if (!ng)
		return;
	gossip_free(ng->g);
	for (size_t i = 0; i < ng->nseeds; i++)
		free(ng->seeds[i]);
	free(ng->seeds);
	free((char *)ng->cfg.cluster);
	free(ng->state_dir);
	free(ng->left);
	pthread_mutex_destroy(&ng->mu);
	free(ng);
}

void node_gossip_counts(node_gossip *ng, size_t out[4])
{
	pthread_mutex_lock(&ng->mu);
	for (size_t i = 0; i < 4 && i <= GOSSIP_STATUS_MAX; i++)
		out[i] = ng->counts[i];
	pthread_mutex_unlock(&ng->mu);
}

int node_gossip_set_state_dir(node_gossip *ng, const char *dir)
{
	char *d = strdup(dir);
	if (!d)
		return -ENOMEM;
	free(ng->state_dir);
	ng->state_dir = d;
	return 0;
}

int node_gossip_leave(node_gossip *ng)
{
	if (ng->stopped || !ng->g)
		return Q_ECLOSED;
	int rc = gossip_leave(ng->g, q_mono_ms());
	if (rc == 0)
		update_counts(ng);
	return rc;
}

int node_gossip_remove(node_gossip *ng, const char *id)
{
	if (ng->stopped || !ng->g)
		return Q_ECLOSED;
	int rc = gossip_remove(ng->g, id, q_mono_ms());
	if (rc == 0)
		update_counts(ng);
	return rc;
}
