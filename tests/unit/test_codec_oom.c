/*
 * test_codec_oom.c - every decoder when an allocation fails.
 *
 * Inputs: the committed fuzz corpora (tests/fuzz/corpus/<target>/, found
 * through QFS_SRCDIR), which hold valid messages, objects, rings and
 * manifests as well as damaged ones. For each input and each decoder, the
 * decode (and, when it succeeds, a re-encode and the free) runs with the
 * Nth allocation failing, N = 1, 2, ... until a run no longer reaches N.
 * Pass, for every N:
 *   - the result is -ENOMEM, or the same answer as without the failure
 *     (same error; or success with the same re-encoded bytes, for a failure
 *     the code may absorb);
 *   - no crash (ASan/UBSan abort the child), no leak (LeakSanitizer at the
 *     end of each decoder's test: leaked memory stays unreachable).
 * Decoders: sibling sets and contexts (src/object), ring state (src/ring),
 * gossip messages, node messages (src/net, every type in the corpus), hinted
 * handoff batches (src/handoff), anti-entropy messages (src/aae), the
 * engine's manifest (src/lsm), filesystem objects (fuse/).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aae/aae_msg.h"
#include "gossip/gossip_msg.h"
#include "handoff/handoff_msg.h"
#include "lsm/ver.h"
#include "net/net_msg.h"
#include "object/obj.h"
#include "qalloc_fail.h"
#include "fuse/qfs_obj.h"
#include "qtest.h"
#include "ring/ring.h"
#include "util/log.h"
#include "util/qerr.h"

/* Decodes p, re-encodes into out on success, frees; returns the decode or
 * encode error. */
typedef int (*codec_fn)(const uint8_t *p, size_t n, q_buf *out);

static int c_obj_set(const uint8_t *p, size_t n, q_buf *out)
{
	obj_set *s = NULL;
	int rc = obj_set_decode(p, n, &s);
	if (rc == 0)
		rc = obj_set_encode(s, out);
	obj_set_free(s);
	return rc;
}

static int c_obj_ctx(const uint8_t *p, size_t n, q_buf *out)
{
	obj_ctx *c = NULL;
	int rc = obj_ctx_decode(p, n, &c);
	if (rc == 0)
		rc = obj_ctx_encode(c, out);
	obj_ctx_free(c);
	return rc;
}

static int c_ring(const uint8_t *p, size_t n, q_buf *out)
{
	ring *r = NULL;
	int rc = ring_decode(p, n, &r);
	if (rc == 0)
		rc = ring_encode(r, out);
	ring_free(r);
	return rc;
}

static int c_gossip(const uint8_t *p, size_t n, q_buf *out)
{
	gossip_msg m;
	int rc = gossip_msg_decode(p, n, &m);
	if (rc)
		return rc; /* "on error m holds nothing that needs freeing" */
	rc = gossip_msg_encode(&m, out);
	gossip_msg_clear(&m);
	return rc;
}

static int c_net_msg(const uint8_t *p, size_t n, q_buf *out)
{
	if (n < 1)
		return Q_ETRUNC;
	net_msg m;
	int rc = net_msg_decode(p[0], q_slice_make(p + 1, n - 1), &m);
	if (rc == 0)
		rc = net_msg_encode(&m, out);
	net_msg_clear(&m); /* also after a failed decode (net_msg.h) */
	return rc;
}

static int c_handoff(const uint8_t *p, size_t n, q_buf *out)
{
	if (n < 1)
		return Q_ETRUNC;
	handoff_batch b;
	int rc = handoff_batch_decode(p + 1, n - 1, &b);
	if (rc)
		return rc;
	rc = handoff_batch_encode(b.sender, b.v, b.n, out);
	handoff_batch_clear(&b);
	return rc;
}

static int c_aae(const uint8_t *p, size_t n, q_buf *out)
{
	aae_msg m;
	int rc = aae_msg_decode(p, n, &m);
	if (rc)
		return rc; /* the decoder frees what it took on error */
	/* no generic re-encoder: record what was decoded */
	rc = q_buf_append(out, &m.h.type, sizeof(m.h.type));
	aae_msg_free(&m);
	return rc;
}

static int c_manifest(const uint8_t *p, size_t n, q_buf *out)
{
	man_data md;
	size_t bad = 0;
	int rc = ver_manifest_decode(p, n, &md, &bad);
	if (rc == 0)
		rc = q_buf_append(out, &md.nfiles, sizeof(md.nfiles));
	ver_manifest_free(&md); /* also after an error (ver.h) */
	return rc;
}

static int c_qfs_obj(const uint8_t *p, size_t n, q_buf *out)
{
	qfs_obj o;
	qfs_obj_init(&o);
	int rc = qfs_obj_decode(p, n, &o);
	if (rc)
		return rc; /* "o is empty on error" */
	rc = qfs_obj_encode(&o, out);
	qfs_obj_free(&o);
	return rc;
}

typedef struct oom_stats {
	uint64_t inputs, runs, enomem, absorbed, max_n;
} oom_stats;

static int long_form(void)
{
	const char *l = getenv("QFS_LONG");
	return l && *l && strcmp(l, "0");
}

static void one_input(codec_fn fn, const char *name, const uint8_t *p, size_t n, oom_stats *st)
{
	q_buf ref = Q_BUF_INIT, got = Q_BUF_INIT;
	qalloc_fail_arm(0, 0);
	int rc0 = fn(p, n, &ref);
	uint64_t total = qalloc_fail_calls();
	st->inputs++;
	/* short form: every N up to 400, then about 100 more spread out */
	uint64_t dense = 400, step = long_form() ? 1 : total > dense ? (total - dense) / 100 + 1 : 1;
	uint64_t cap = total + 2;
	for (uint64_t k = 1; k <= cap; k += k < dense ? 1 : step) {
		q_buf_reset(&got);
		qalloc_fail_arm(k, k % 5 == 0); /* every fifth run: nothing after N either */
		int rc = fn(p, n, &got);
		qalloc_fail_disarm();
		uint64_t hit = qalloc_fail_hit();
		st->runs++;
		if (!hit) {
			if (rc != rc0)
				QTEST_FAIL_("%s: %s without a failure, %s before", name, q_strerror(rc),
					    q_strerror(rc0));
			break;
		}
		if (k > st->max_n)
			st->max_n = k;
		if (rc == -ENOMEM) {
			st->enomem++;
			continue;
		}
		if (rc != rc0)
			QTEST_FAIL_("%s: allocation %llu failed and the answer became \"%s\" (%d), "
				    "not -ENOMEM (without the failure: \"%s\")",
				    name, (unsigned long long)k, q_strerror(rc), rc, q_strerror(rc0));
		if (rc == 0 && (got.len != ref.len || memcmp(got.p, ref.p, ref.len)))
			QTEST_FAIL_("%s: allocation %llu failed and the decoded value changed", name,
				    (unsigned long long)k);
		st->absorbed++;
	}
	q_buf_free(&ref);
	q_buf_free(&got);
}

/* Runs fn over every file of the named corpus. */
static void corpus(const char *target, codec_fn fn)
{
	q_log_set_level(Q_LOG_OFF);
	ASSERT(qalloc_fail_linked());
	const char *src = getenv("QFS_SRCDIR");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", src ? src : "../..", target);
	DIR *d = opendir(dir);
	if (!d)
		QTEST_FAIL_("cannot open %s (set QFS_SRCDIR to the source tree)", dir);
	oom_stats st = {0};
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)) && files < 400) {
		if (e->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		uint8_t *buf = NULL;
		struct stat sb;
		size_t n = 0;
		if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size < (16 << 20)) {
			n = (size_t)sb.st_size;
			buf = malloc(n ? n : 1);
			ASSERT(buf != NULL);
			ASSERT_EQ(fread(buf, 1, n, f), n);
		}
		fclose(f);
		if (!buf)
			continue;
		one_input(fn, e->d_name, buf, n, &st);
		free(buf);
		files++;
	}
	closedir(d);
	ASSERT(files > 0);
	if (qalloc_leak_check() > 0)
		QTEST_FAIL_("%s: LeakSanitizer found a leak (report above)", target);
	printf("# %s: %llu inputs, %llu runs, %llu ended in -ENOMEM, %llu absorbed the "
	       "failure with the same answer, largest N %llu\n",
	       target, (unsigned long long)st.inputs, (unsigned long long)st.runs,
	       (unsigned long long)st.enomem, (unsigned long long)st.absorbed,
	       (unsigned long long)st.max_n);
}

QTEST(obj_set_oom) { corpus("obj_set", c_obj_set); }
QTEST(obj_ctx_oom) { corpus("obj_ctx", c_obj_ctx); }
QTEST(ring_state_oom) { corpus("ring_state", c_ring); }
QTEST(gossip_msg_oom) { corpus("gossip_msg", c_gossip); }
QTEST(net_msg_oom) { corpus("net_msg", c_net_msg); }
QTEST(handoff_msg_oom) { corpus("handoff_msg", c_handoff); }
QTEST(aae_msg_oom) { corpus("aae_msg", c_aae); }
QTEST(lsm_manifest_oom) { corpus("lsm_manifest", c_manifest); }
QTEST(qfs_obj_oom) { corpus("qfs_obj", c_qfs_obj); }

QTEST_MAIN(QT(obj_set_oom), QT(obj_ctx_oom), QT(ring_state_oom), QT(gossip_msg_oom),
	   QT(net_msg_oom), QT(handoff_msg_oom), QT(aae_msg_oom), QT(lsm_manifest_oom),
	   QT(qfs_obj_oom))
