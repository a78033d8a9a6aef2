/*
 * test_net_auth.c - the cluster secret: key files (mode, size, content,
 * no overwrite), the handshake MACs, and the handshake over real loopback
 * TCP between a server and a pool on two loops, and from the blocking
 * client: same key works, another key, no key and a keyless server fail,
 * and the server keeps serving afterwards.
 *
 * Each transport test starts its own loops; waits are bounded.
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net_auth.h"
#include "net/net_loop.h"
#include "net/net_pool.h"
#include "net/net_server.h"
#include "net/net_sync.h"
#include "qtest.h"
#include "util/qerr.h"
#include "util/qtime.h"

static void path_in_tmp(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", qtest_tmpdir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ASSERT_EQ(fchmod(fd, mode), 0);
	close(fd);
}

QTEST(key_generate_and_load)
{
	char p[512], err[512];
	uint8_t k1[NET_AUTH_KEY_LEN], k2[NET_AUTH_KEY_LEN];
	path_in_tmp(p, sizeof p, "cluster.key");
	umask(022);
	ASSERT_OK(net_auth_key_generate(p, 0, err, sizeof err));
	struct stat st;
	ASSERT_EQ(stat(p, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
	ASSERT_EQ(st.st_size, NET_AUTH_KEYFILE_HEX + 1);
	ASSERT_OK(net_auth_key_load(p, k1, err, sizeof err));
	/* no overwrite without force */
	ASSERT_EQ(net_auth_key_generate(p, 0, err, sizeof err), -EEXIST);
	ASSERT(strstr(err, "--force"));
	ASSERT_OK(net_auth_key_load(p, k2, err, sizeof err));
	ASSERT_MEMEQ(k1, k2, sizeof k1);
	/* force: a new key, same mode */
	ASSERT_OK(net_auth_key_generate(p, 1, err, sizeof err));
	ASSERT_OK(net_auth_key_load(p, k2, err, sizeof err));
	ASSERT(memcmp(k1, k2, sizeof k1) != 0);
	ASSERT_EQ(stat(p, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0600);
}

QTEST(key_load_refusals)
{
	char p[512], err[512];
	uint8_t k[NET_AUTH_KEY_LEN];
	const char *hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
	path_in_tmp(p, sizeof p, "k");
	/* a valid file with and without the newline */
	write_file(p, hex, 0600);
	ASSERT_OK(net_auth_key_load(p, k, err, sizeof err));
	ASSERT_EQ(k[0], 0x00);
	ASSERT_EQ(k[31], 0xff);
	char buf[80];
	snprintf(buf, sizeof buf, "%s\n", hex);
	write_file(p, buf, 0600);
	ASSERT_OK(net_auth_key_load(p, k, err, sizeof err));
	/* readable by others */
	write_file(p, buf, 0644);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EACCES);
	ASSERT(strstr(err, "0644") && strstr(err, "chmod 600"));
	write_file(p, buf, 0620);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EACCES);
	/* wrong sizes and content */
	write_file(p, "abcd\n", 0600);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EINVAL);
	ASSERT(strstr(err, "64 hex digits"));
	snprintf(buf, sizeof buf, "%s0\n", hex);
	write_file(p, buf, 0600);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EINVAL);
	snprintf(buf, sizeof buf, "%s\n\n", hex);
	write_file(p, buf, 0600);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EINVAL);
	write_file(p, "", 0600);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EINVAL);
	snprintf(buf, sizeof buf, "%.63sg\n", hex);
	write_file(p, buf, 0600);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -EINVAL);
	ASSERT(strstr(err, "not a hex key"));
	/* not a regular file; absent */
	ASSERT_EQ(net_auth_key_load(qtest_tmpdir, k, err, sizeof err) < 0, 1);
	path_in_tmp(p, sizeof p, "absent");
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -ENOENT);
	/* a symlink to a good file is not followed */
	char good[512];
	path_in_tmp(good, sizeof good, "good");
	snprintf(buf, sizeof buf, "%s\n", hex);
	write_file(good, buf, 0600);
	path_in_tmp(p, sizeof p, "link");
	ASSERT_EQ(symlink(good, p), 0);
	ASSERT_EQ(net_auth_key_load(p, k, err, sizeof err), -ELOOP);
}

QTEST(macs_bind_role_key_nonces_and_flags)
{
	uint8_t k1[NET_AUTH_KEY_LEN], k2[NET_AUTH_KEY_LEN];
	uint8_t ms[32], mc[32];
	net_auth_hs hs, h2;
	ASSERT_OK(net_auth_init());
	randombytes_buf(k1, sizeof k1);
	memcpy(k2, k1, sizeof k2);
	k2[5] ^= 1;
	memset(&hs, 0, sizeof hs);
	net_auth_nonce(hs.nc);
	net_auth_nonce(hs.ns);
	net_auth_mac(k1, NET_AUTH_ROLE_SERVER, &hs, ms);
	net_auth_mac(k1, NET_AUTH_ROLE_CLIENT, &hs, mc);
	ASSERT(memcmp(ms, mc, 32) != 0); /* no reflection */
	ASSERT(net_auth_check(k1, NET_AUTH_ROLE_SERVER, &hs, ms));
	ASSERT(net_auth_check(k1, NET_AUTH_ROLE_CLIENT, &hs, mc));
	ASSERT(!net_auth_check(k1, NET_AUTH_ROLE_CLIENT, &hs, ms));
	ASSERT(!net_auth_check(k2, NET_AUTH_ROLE_CLIENT, &hs, mc));
	h2 = hs;
	net_auth_nonce(h2.ns); /* replay against a new challenge */
	ASSERT(!net_auth_check(k1, NET_AUTH_ROLE_CLIENT, &h2, mc));
	h2 = hs;
	h2.fs = NET_AUTH_F_ENCRYPT; /* a flag changed in flight */
	ASSERT(!net_auth_check(k1, NET_AUTH_ROLE_CLIENT, &h2, mc));
	/* codecs */
	uint8_t init[NET_AUTH_INIT_LEN], ch[NET_AUTH_CHALLENGE_LEN], b[32];
	hs.fc = NET_AUTH_F_ENCRYPT;
	net_auth_encode_init(&hs, init);
	memset(&h2, 0, sizeof h2);
	ASSERT_OK(net_auth_decode_init(init, sizeof init, &h2));
	ASSERT_MEMEQ(h2.nc, hs.nc, 32);
	ASSERT_EQ(h2.fc, NET_AUTH_F_ENCRYPT);
	ASSERT_EQ(net_auth_decode_init(init, sizeof init - 1, &h2), Q_EPROTO);
	init[sizeof init - 1] = 0x80; /* unknown flag */
	ASSERT_EQ(net_auth_decode_init(init, sizeof init, &h2), Q_EPROTO);
	init[0] = 9;
	ASSERT_EQ(net_auth_decode_init(init, sizeof init, &h2), Q_EVERSION);
	net_auth_encode_challenge(&hs, ms, ch);
	ASSERT_OK(net_auth_decode_challenge(ch, sizeof ch, &h2, b));
	ASSERT_MEMEQ(h2.ns, hs.ns, 32);
	ASSERT_MEMEQ(b, ms, 32);
	ASSERT_EQ(net_auth_decode_challenge(ch, sizeof ch + 1, &h2, b), Q_EPROTO);
	ASSERT_EQ(net_auth_decode_proof(mc, 31, b), Q_EPROTO);
}

QTEST(sealed_records)
{
	uint8_t k[NET_AUTH_KEY_LEN];
	net_auth_hs hs;
	net_crypt a_tx, a_rx, b_tx, b_rx;
	ASSERT_OK(net_auth_init());
	randombytes_buf(k, sizeof k);
	memset(&hs, 0, sizeof hs);
	net_auth_nonce(hs.nc);
	net_auth_nonce(hs.ns);
	net_crypt_init(k, &hs, &a_tx, &a_rx); /* client: tx = c2s */
	net_crypt_init(k, &hs, &b_rx, &b_tx); /* server: rx = c2s */
	q_buf wire = Q_BUF_INIT, out = Q_BUF_INIT;
	ASSERT_OK(net_crypt_seal(&a_tx, (const uint8_t *)"first frame", 11, &wire));
	ASSERT_OK(net_crypt_seal(&a_tx, (const uint8_t *)"second", 6, &wire));
	ASSERT_EQ(wire.len, 2 * (NET_CRYPT_HDR + NET_CRYPT_TAG) + 17);
	ASSERT(!memmem(wire.p, wire.len, "first", 5)); /* not in clear */
	size_t used;
	/* every prefix of the first record needs more */
	for (size_t n = 0; n < NET_CRYPT_HDR + NET_CRYPT_TAG + 11; n++) {
		net_crypt probe = b_rx;
		ASSERT_EQ(net_crypt_open(&probe, wire.p, n, 1000, &out, &used), 1);
	}
	/* out of order: the second record first fails */
	{
		net_crypt probe = b_rx;
		size_t first = NET_CRYPT_HDR + NET_CRYPT_TAG + 11;
		ASSERT_EQ(net_crypt_open(&probe, wire.p + first, wire.len - first, 1000, &out, &used),
			  Q_EPROTO);
	}
	ASSERT_OK(net_crypt_open(&b_rx, wire.p, wire.len, 1000, &out, &used));
	ASSERT_EQ(out.len, 11);
	ASSERT_MEMEQ(out.p, "first frame", 11);
	/* replaying the first record fails (the counter moved on) */
	{
		net_crypt probe = b_rx;
		ASSERT_EQ(net_crypt_open(&probe, wire.p, wire.len, 1000, &out, &used), Q_EPROTO);
	}
	size_t off = used;
	ASSERT_OK(net_crypt_open(&b_rx, wire.p + off, wire.len - off, 1000, &out, &used));
	ASSERT_MEMEQ(out.p + 11, "second", 6);
	/* a flipped bit anywhere fails; an oversized length is refused early */
	q_buf w2 = Q_BUF_INIT;
	ASSERT_OK(net_crypt_seal(&b_tx, (const uint8_t *)"reply", 5, &w2));
	for (size_t i = NET_CRYPT_HDR; i < w2.len; i++) {
		net_crypt probe = a_rx;
		w2.p[i] ^= 4;
		ASSERT_EQ(net_crypt_open(&probe, w2.p, w2.len, 1000, &out, &used), Q_EPROTO);
		w2.p[i] ^= 4;
	}
	{
		net_crypt probe = a_rx;
		ASSERT_EQ(net_crypt_open(&probe, w2.p, w2.len, 4, &out, &used), Q_ETOOBIG);
	}
	q_buf_reset(&out);
	ASSERT_OK(net_crypt_open(&a_rx, w2.p, w2.len, 1000, &out, &used));
	ASSERT_MEMEQ(out.p, "reply", 5);
	q_buf_free(&w2);
	q_buf_free(&wire);
	q_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* transport                                                           */

static _Atomic int handled;

static void ping_handler(void *ctx, net_request *req)
{
	(void)ctx;
	handled++;
	net_msg r;
	net_msg_init(&r, NET_MSG_PONG);
	r.u.ping.nonce = req->msg.u.ping.nonce;
	net_reply_send(req, &r);
}

typedef struct env {
	net_loop *sl, *cl;
	net_server *srv;
	net_pool *pool;
	char addr[NET_ADDR_STRLEN];
	int rc;
} env;

static void srv_start(void *arg)
{
	env *e = arg;
	net_server_opts o = {.listen = "127.0.0.1:0", .handler = ping_handler};
	e->rc = net_server_start(e->sl, &o, &e->srv);
	if (e->rc == 0)
		snprintf(e->addr, sizeof e->addr, "%s", net_server_addr(e->srv));
}

static void srv_close(void *arg)
{
	net_server_close(((env *)arg)->srv);
}

static void pool_new(void *arg)
{
	env *e = arg;
	net_pool_opts o = {.connect_timeout_ms = 2000};
	e->rc = net_pool_new(e->cl, &o, &e->pool);
}

static void pool_close(void *arg)
{
	net_pool_close(((env *)arg)->pool);
}

static void env_start2(env *e, const uint8_t *skey, const uint8_t *ckey, int senc, int cenc)
{
	memset(e, 0, sizeof *e);
	ASSERT_OK(net_loop_start(0, "srv", &e->sl));
	ASSERT_OK(net_loop_start(0, "cli", &e->cl));
	if (skey)
		ASSERT_OK(net_loop_set_secret(e->sl, skey));
	if (ckey)
		ASSERT_OK(net_loop_set_secret(e->cl, ckey));
	net_loop_set_encrypt(e->sl, senc);
	net_loop_set_encrypt(e->cl, cenc);
	ASSERT_OK(net_loop_call(e->sl, srv_start, e));
	ASSERT_OK(e->rc);
	ASSERT_OK(net_loop_call(e->cl, pool_new, e));
	ASSERT_OK(e->rc);
}

static void env_start(env *e, const uint8_t *skey, const uint8_t *ckey)
{
	env_start2(e, skey, ckey, 0, 0);
}

static void env_stop(env *e)
{
	net_loop_call(e->cl, pool_close, e);
	net_loop_call(e->sl, srv_close, e);
	net_loop_stop(e->cl);
	net_loop_stop(e->sl);
}

static int ping(env *e, uint64_t nonce)
{
	net_msg m, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = nonce;
	int rc = net_pool_call(e->cl, e->pool, e->addr, &m, 3000, &resp, &buf);
	if (rc == 0 && resp.u.ping.nonce != nonce)
		rc = -100;
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

QTEST(pool_handshake_same_key)
{
	uint8_t k[NET_AUTH_KEY_LEN];
	ASSERT_OK(net_auth_init());
	randombytes_buf(k, sizeof k);
	env e;
	env_start(&e, k, k);
	for (uint64_t i = 1; i <= 20; i++)
		ASSERT_OK(ping(&e, i));
	net_auth_stats a, b;
	net_loop_auth_stats(e.sl, &a);
	net_loop_auth_stats(e.cl, &b);
	ASSERT_EQ(a.ok, 1); /* one connection, reused */
	ASSERT_EQ(b.ok, 1);
	ASSERT_EQ(a.failed + a.unauth_frames + b.failed, 0);
	env_stop(&e);
}

QTEST(pool_handshake_refusals)
{
	uint8_t k1[NET_AUTH_KEY_LEN], k2[NET_AUTH_KEY_LEN];
	ASSERT_OK(net_auth_init());
	randombytes_buf(k1, sizeof k1);
	randombytes_buf(k2, sizeof k2);
	env e;
	/* another key: the client sees the server cannot prove its key */
	env_start(&e, k1, k2);
	handled = 0;
	ASSERT_EQ(ping(&e, 1), Q_EAUTH);
	ASSERT_EQ(ping(&e, 2), Q_EAUTH); /* and again on a new connection */
	ASSERT_EQ(handled, 0);
	net_auth_stats a;
	net_loop_auth_stats(e.cl, &a);
	ASSERT_EQ(a.failed, 2);
	env_stop(&e);
	/* the client has no key: the server closes at the first frame */
	env_start(&e, k1, NULL);
	ASSERT(ping(&e, 1) < 0);
	ASSERT_EQ(handled, 0);
	net_loop_auth_stats(e.sl, &a);
	ASSERT(a.unauth_frames >= 1);
	env_stop(&e);
	/* the server has no key: it refuses AUTH_INIT, the client gives up */
	env_start(&e, NULL, k1);
	ASSERT_EQ(ping(&e, 1), Q_EAUTH);
	ASSERT_EQ(handled, 0);
	env_stop(&e);
}

QTEST(sync_client_handshake)
{
	uint8_t k1[NET_AUTH_KEY_LEN], k2[NET_AUTH_KEY_LEN];
	char err[256];
	ASSERT_OK(net_auth_init());
	randombytes_buf(k1, sizeof k1);
	randombytes_buf(k2, sizeof k2);
	env e;
	env_start(&e, k1, k1);
	net_sync *s;
	net_msg m, resp;
	q_buf buf = Q_BUF_INIT;
	net_msg_init(&m, NET_MSG_PING);
	m.u.ping.nonce = 77;
	/* right key */
	ASSERT_OK(net_sync_connect(e.addr, 2000, &s));
	ASSERT_OK(net_sync_auth(s, k1, 2000, err, sizeof err));
	ASSERT_OK(net_sync_call(s, &m, 2000, &resp, &buf));
	ASSERT_U64_EQ(resp.u.ping.nonce, 77);
	net_msg_clear(&resp);
	net_sync_close(s);
	/* wrong key */
	ASSERT_OK(net_sync_connect(e.addr, 2000, &s));
	ASSERT_EQ(net_sync_auth(s, k2, 2000, err, sizeof err), Q_EAUTH);
	ASSERT(strstr(err, "does not know"));
	net_sync_close(s);
	/* no handshake: closed without an answer */
	ASSERT_OK(net_sync_connect(e.addr, 2000, &s));
	ASSERT_EQ(net_sync_call(s, &m, 2000, &resp, &buf), Q_ECLOSED);
	net_msg_clear(&resp);
	net_sync_close(s);
	/* still serving */
	ASSERT_OK(ping(&e, 5));
	q_buf_free(&buf);
	env_stop(&e);
}

static int big_ping(env *e)
{
	/* a 64 KiB key: a sealed record that spans several reads */
	net_msg m, resp;
	q_buf buf = Q_BUF_INIT;
	static uint8_t key[NET_MAX_KEY];
	memset(key, 'k', NET_MAX_KEY);
	net_msg_init(&m, NET_MSG_KV_GET);
	m.u.kv_get.key = q_slice_make(key, NET_MAX_KEY);
	int rc = net_pool_call(e->cl, e->pool, e->addr, &m, 5000, &resp, &buf);
	net_msg_clear(&resp);
	q_buf_free(&buf);
	return rc;
}

/* A burst of pipelined pings issued in one loop callback: their frames
 * (and the server's replies) leave coalesced, several sealed records per
 * write, and must all come back right. */
#define BURST 200
typedef struct burst {
	env *e;
	_Atomic int done;
	int refused;
	uint64_t nonce[BURST];
} burst;

static burst *g_burst; /* the burst in progress (one at a time) */

static void burst_cb(void *arg, int status, const net_msg *resp)
{
	uint64_t *want = arg;
	if (status == 0 && resp && resp->u.ping.nonce == *want)
		*want = 0; /* answered with its own nonce */
	g_burst->done++;
}

static void burst_issue(void *arg)
{
	burst *b = arg;
	for (int i = 0; i < BURST; i++) {
		net_msg m;
		net_msg_init(&m, NET_MSG_PING);
		b->nonce[i] = 1000 + (uint64_t)i;
		m.u.ping.nonce = b->nonce[i];
		if (net_pool_request(b->e->pool, b->e->addr, &m, 5000, burst_cb, &b->nonce[i]) != 0)
			b->refused++;
	}
}

static void burst_run(env *e)
{
	burst *b = calloc(1, sizeof *b);
	b->e = e;
	g_burst = b;
	ASSERT_OK(net_loop_call(e->cl, burst_issue, b));
	ASSERT_EQ(b->refused, 0);
	uint64_t end = q_mono_ms() + 10000;
	while (b->done < BURST && q_mono_ms() < end)
		q_sleep_ms(5);
	ASSERT_EQ(b->done, BURST);
	for (int i = 0; i < BURST; i++)
		ASSERT_U64_EQ(b->nonce[i], 0);
	g_burst = NULL;
	free(b);
}

QTEST(encrypted_connections)
{
	uint8_t k[NET_AUTH_KEY_LEN];
	char err[256];
	ASSERT_OK(net_auth_init());
	randombytes_buf(k, sizeof k);
	for (int mode = 0; mode < 3; mode++) {
		/* server asks, client asks, both ask */
		env e;
		env_start2(&e, k, k, mode != 1, mode != 0);
		for (uint64_t i = 1; i <= 50; i++)
			ASSERT_OK(ping(&e, i));
		burst_run(&e);
		/* the handler answers a KV_GET with ERROR: it still arrives sealed */
		ASSERT(big_ping(&e) < 0 && big_ping(&e) != Q_ECLOSED);
		ASSERT_OK(ping(&e, 99));
		/* the blocking client follows the server's choice */
		net_sync *s;
		net_msg m, resp;
		q_buf buf = Q_BUF_INIT;
		net_msg_init(&m, NET_MSG_PING);
		m.u.ping.nonce = 4242;
		ASSERT_OK(net_sync_connect_raw(e.addr, 2000, &s));
		ASSERT_OK(net_sync_auth(s, k, 2000, err, sizeof err));
		for (int i = 0; i < 3; i++) {
			ASSERT_OK(net_sync_call(s, &m, 2000, &resp, &buf));
			ASSERT_U64_EQ(resp.u.ping.nonce, 4242);
			net_msg_clear(&resp);
		}
		net_sync_close(s);
		q_buf_free(&buf);
		env_stop(&e);
	}
}

QTEST_MAIN(QT(key_generate_and_load), QT(key_load_refusals),
	   QT(macs_bind_role_key_nonces_and_flags), QT(sealed_records),
	   QT(pool_handshake_same_key), QT(pool_handshake_refusals), QT(sync_client_handshake),
	   QT(encrypted_connections))
