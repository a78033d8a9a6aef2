/* Unit tests: src/aae/aae_reap (when a tombstone may be reaped), including
 * the end-to-end rule with real exchanges between in-memory replicas: a
 * replica that missed the delete blocks reaping until an exchange shows it
 * holds the tombstone. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "aae/aae_reap.h"
#include "qtest.h"
#include "util/qerr.h"

#define SEC 1000000000LL
#define GRACE (10 * SEC)
static const uint64_t RS = 5, RE = 50;

static aae_reap *mk(const char *const *peers, size_t n)
{
	aae_reap *r;
	ASSERT_OK(aae_reap_new(GRACE, &r));
	ASSERT_OK(aae_reap_set_replicas(r, RS, RE, peers, n));
	return r;
}

QTEST(grace_and_tombstone_only)
{
	aae_reap *r = mk(NULL, 0); /* N = 1: no other replica */
	q_slice k = q_slice_str("k");
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, 100 * SEC, 105 * SEC), 0); /* in grace */
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, 100 * SEC, 110 * SEC), 1);
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 0, 100 * SEC, 200 * SEC), 0); /* live sibling */
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, 100 * SEC, 50 * SEC), 0);  /* clock behind */
	ASSERT_EQ(aae_can_reap(r, 1, 2, k, 1, 100 * SEC, 200 * SEC), 0);   /* unknown range */
	ASSERT_EQ(aae_reap_new(-1, &r) == -EINVAL, 1);
	aae_reap_free(r);
}

QTEST(every_replica_after_the_tombstone)
{
	const char *peers[] = {"n2", "n3"};
	aae_reap *r = mk(peers, 2);
	q_slice k = q_slice_str("gone"), other = q_slice_str("other");
	int64_t t = 100 * SEC, now = 200 * SEC;
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0); /* no exchange yet */
	/* n2 compared after the tombstone, equal */
	ASSERT_OK(aae_reap_record(r, RS, RE, "n2", t + SEC, 1, NULL, 0));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0); /* n3 unknown */
	/* n3 compared BEFORE the tombstone was written: proves nothing */
	ASSERT_OK(aae_reap_record(r, RS, RE, "n3", t - SEC, 1, NULL, 0));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	ASSERT_OK(aae_reap_record(r, RS, RE, "n3", t, 1, NULL, 0)); /* same instant: not after */
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	/* n3 compared after, but the key differed there */
	ASSERT_OK(aae_reap_record(r, RS, RE, "n3", t + 2 * SEC, 1, &k, 1));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	ASSERT_EQ(aae_can_reap(r, RS, RE, other, 1, t, now), 1); /* other keys are proven */
	/* the next exchange with n3 is clean */
	ASSERT_OK(aae_reap_record(r, RS, RE, "n3", t + 3 * SEC, 1, &other, 1));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 1);
	/* a failed exchange with n2 erases what n2 proved */
	ASSERT_OK(aae_reap_record(r, RS, RE, "n2", t + 4 * SEC, 0, NULL, 0));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	/* unknown peer or range */
	ASSERT_EQ(aae_reap_record(r, RS, RE, "n9", t, 1, NULL, 0), -EINVAL);
	ASSERT_EQ(aae_reap_record(r, 1, 2, "n2", t, 1, NULL, 0), -EINVAL);
	aae_reap_free(r);
}

QTEST(replica_set_changes)
{
	const char *peers[] = {"n2", "n3"};
	aae_reap *r = mk(peers, 2);
	q_slice k = q_slice_str("k");
	int64_t t = 100 * SEC, now = 200 * SEC;
	ASSERT_OK(aae_reap_record(r, RS, RE, "n2", t + SEC, 1, NULL, 0));
	ASSERT_OK(aae_reap_record(r, RS, RE, "n3", t + SEC, 1, NULL, 0));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 1);
	/* a new replica n4 joins the range: it must be compared first */
	const char *p2[] = {"n3", "n4"};
	ASSERT_OK(aae_reap_set_replicas(r, RS, RE, p2, 2));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	ASSERT_OK(aae_reap_record(r, RS, RE, "n4", t + SEC, 1, NULL, 0));
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 1); /* n3's record was kept */
	/* bad sets */
	const char *dup[] = {"a", "a"};
	ASSERT_EQ(aae_reap_set_replicas(r, RS, RE, dup, 2), -EINVAL);
	const char *empty[] = {""};
	ASSERT_EQ(aae_reap_set_replicas(r, RS, RE, empty, 1), -EINVAL);
	aae_reap_forget_range(r, RS, RE);
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, now), 0);
	aae_reap_free(r);
}

/* ---- with real exchanges ---- */

typedef struct store {
	const char *keys[4];
	uint64_t dig[4];
	int has[4];
	aae_tree *tree;
	aae_keysrc src;
} store;

static int st_list(void *ctx, uint64_t rs, uint64_t re, unsigned depth, uint32_t bucket,
		   aae_emit_fn emit, void *ectx)
{
	store *s = ctx;
	(void)rs;
	(void)re;
	for (int i = 0; i < 4; i++)
		if (s->has[i] && aae_bucket_of(q_slice_str(s->keys[i]), depth) == bucket)
			Q_RET(emit(ectx, q_slice_str(s->keys[i]), s->dig[i]));
	return 0;
}

static void st_init(store *s)
{
	static const char *names[4] = {"a", "b", "c", "d"};
	memset(s, 0, sizeof *s);
	ASSERT_OK(aae_tree_new(2, RS, RE, &s->tree));
	aae_tree_set_ready(s->tree, 1);
	s->src.list = st_list;
	s->src.ctx = s;
	for (int i = 0; i < 4; i++) {
		s->keys[i] = names[i];
		s->dig[i] = 1000 + (uint64_t)i;
		s->has[i] = 1;
		ASSERT_OK(aae_tree_insert(s->tree, q_slice_str(names[i]), s->dig[i]));
	}
}

static void st_set(store *s, int i, uint64_t d)
{
	ASSERT_OK(aae_tree_update(s->tree, q_slice_str(s->keys[i]), &s->dig[i], &d));
	s->dig[i] = d;
}

static aae_exchange *exchange(store *a, store *b)
{
	aae_exchange *x;
	ASSERT_OK(aae_exchange_new(a->tree, &a->src, NULL, 1, &x));
	q_buf req = Q_BUF_INIT, resp = Q_BUF_INIT;
	for (int i = 0; i < 100; i++) {
		q_buf_reset(&req);
		if (aae_exchange_next(x, &req) <= 0)
			break;
		q_buf_reset(&resp);
		ASSERT_OK(aae_serve(b->tree, &b->src, req.p, req.len, 1 << 20, &resp));
		if (aae_exchange_consume(x, resp.p, resp.len) < 0)
			break;
	}
	q_buf_free(&req);
	q_buf_free(&resp);
	return x;
}

QTEST(missed_delete_blocks_reaping)
{
	/* three replicas; "b" is deleted (digest 7 stands for the tombstone)
	 * at t=100 while n3 is down */
	store self, n2, n3;
	st_init(&self);
	st_init(&n2);
	st_init(&n3);
	const char *peers[] = {"n2", "n3"};
	aae_reap *r = mk(peers, 2);
	int64_t t = 100 * SEC;
	st_set(&self, 1, 7);
	st_set(&n2, 1, 7);
	q_slice k = q_slice_str("b");

	aae_exchange *x = exchange(&self, &n2);
	ASSERT_EQ(aae_exchange_ndiffs(x), 0);
	ASSERT_OK(aae_reap_record_exchange(r, "n2", t + SEC, x));
	aae_exchange_free(x);
	x = exchange(&self, &n3); /* n3 is back, still holds the live value */
	ASSERT_EQ(aae_exchange_ndiffs(x), 1);
	ASSERT_OK(aae_reap_record_exchange(r, "n3", t + 2 * SEC, x));
	aae_exchange_free(x);
	/* grace long over, but n3 does not hold the tombstone: never reaped */
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, t + 1000 * SEC), 0);
	/* the sync brings the tombstone to n3; the next exchange is clean */
	st_set(&n3, 1, 7);
	x = exchange(&self, &n3);
	ASSERT_EQ(aae_exchange_ndiffs(x), 0);
	ASSERT_OK(aae_reap_record_exchange(r, "n3", t + 3 * SEC, x));
	aae_exchange_free(x);
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, t + 5 * SEC), 0);   /* grace */
	ASSERT_EQ(aae_can_reap(r, RS, RE, k, 1, t, t + 1000 * SEC), 1);
	aae_reap_free(r);
	aae_tree_free(self.tree);
	aae_tree_free(n2.tree);
	aae_tree_free(n3.tree);
}

QTEST_MAIN(QT(grace_and_tombstone_only), QT(every_replica_after_the_tombstone),
	   QT(replica_set_changes), QT(missed_delete_blocks_reaping))
