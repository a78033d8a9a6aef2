/*
 * net_sync.c - blocking client over a plain non-blocking socket driven by
 * poll() (see net_sync.h).
 *
 * Every wait computes its remaining time from one deadline on the monotonic
 * clock, so a call never takes longer than its timeout, however the bytes
 * trickle in. Reads go straight into the caller's buffer: first the 24-byte
 * header, which is validated (including the size limit) before any payload
 * is read, then exactly the payload.
 *
 * Threading: one thread per net_sync at a time.
 */
#include "net/net_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_addr.h"
#include "net/net_auth.h"
#include "util/qerr.h"
#include "util/qtime.h"

struct net_sync {
	int fd;
	uint64_t next_reqid;
	int enc;              /* sealed records after AUTH_OK */
	net_crypt tx, rx;
};

static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = q_mono_ms();
		if (now >= deadline_ms)
			return Q_ETIMEOUT;
		uint64_t left = deadline_ms - now;
		struct pollfd pfd = {.fd = fd, .events = events};
		int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n > 0)
			return 0;
	}
}

/* The process-wide secret of net_sync_connect (net_sync_set_default_secret). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_has_secret;
static uint8_t g_secret[NET_AUTH_KEY_LEN];

int net_sync_set_default_secret(const uint8_t *key)
{
	if (key && net_auth_init() < 0)
		return -EIO;
	pthread_mutex_lock(&g_mu);
	if (key)
		memcpy(g_secret, key, NET_AUTH_KEY_LEN);
	else
		sodium_memzero(g_secret, sizeof g_secret);
	g_has_secret = key != NULL;
	pthread_mutex_unlock(&g_mu);
	return 0;
}

int net_sync_connect(const char *addr, uint64_t timeout_ms, net_sync **out)
{
	uint8_t key[NET_AUTH_KEY_LEN];
	pthread_mutex_lock(&g_mu);
	int has = g_has_secret;
	if (has)
		memcpy(key, g_secret, sizeof key);
	pthread_mutex_unlock(&g_mu);
	uint64_t t0 = q_mono_ms();
	int rc = net_sync_connect_raw(addr, timeout_ms, out);
	if (rc < 0 || !has)
		return rc;
	uint64_t used = q_mono_ms() - t0, total = timeout_ms ? timeout_ms : 5000;
	char err[200];
	rc = net_sync_auth(*out, key, used < total ? total - used : 1, err, sizeof err);
	sodium_memzero(key, sizeof key);
	if (rc < 0) {
		net_sync_close(*out);
		*out = NULL;
	}
	return rc;
}

int net_sync_connect_raw(const char *addr, uint64_t timeout_ms, net_sync **out)
{
	struct sockaddr_storage sa;
	Q_RET(net_addr_parse(addr, 0, &sa));
	uint64_t deadline = q_mono_ms() + (timeout_ms ? timeout_ms : 5000);
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc;
	socklen_t slen = sa.ss_family == AF_INET ? sizeof(struct sockaddr_in)
						 : sizeof(struct sockaddr_in6);
	if (connect(fd, (struct sockaddr *)&sa, slen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto fail;
		}
		Q_ERR(wait_fd(fd, POLLOUT, deadline));
		int err = 0;
		socklen_t elen = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
			rc = -errno;
			goto fail;
		}
		if (err) {
			rc = -err;
			goto fail;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	net_sync *s = calloc(1, sizeof *s);
	if (!s) {
		rc = -ENOMEM;
		goto fail;
	}
	s->fd = fd;
	*out = s;
	return 0;
fail:
	close(fd);
	return rc;
}

static int send_all(net_sync *s, const uint8_t *p, size_t n, uint64_t deadline)
{
	while (n) {
		ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return errno == EPIPE || errno == ECONNRESET ? Q_ECLOSED : -errno;
			Q_RET(wait_fd(s->fd, POLLOUT, deadline));
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(net_sync *s, uint8_t *p, size_t n, uint64_t deadline)
{
	while (n) {
		ssize_t r = recv(s->fd, p, n, 0);
		if (r == 0)
			return Q_ECLOSED;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return errno == ECONNRESET ? Q_ECLOSED : -errno;
			Q_RET(wait_fd(s->fd, POLLIN, deadline));
			continue;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int net_sync_send_raw(net_sync *s, const void *p, size_t n, uint64_t timeout_ms)
{
	return send_all(s, p, n, q_mono_ms() + (timeout_ms ? timeout_ms : 5000));
}

static int read_sealed(net_sync *s, uint64_t deadline, q_buf *buf, net_frame *f)
{
	uint8_t hdr[NET_CRYPT_HDR];
	q_buf rec = Q_BUF_INIT;
	int rc;
	q_buf_reset(buf);
	Q_ERR(recv_all(s, hdr, sizeof hdr, deadline));
	size_t clen = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 |
		      (size_t)hdr[3] << 24;
	if (clen < NET_CRYPT_TAG || clen > NET_MAX_FRAME + NET_CRYPT_TAG) {
		rc = clen < NET_CRYPT_TAG ? Q_EPROTO : Q_ETOOBIG;
		goto fail;
	}
	Q_ERR(q_buf_reserve(&rec, sizeof hdr + clen));
	memcpy(rec.p, hdr, sizeof hdr);
	Q_ERR(recv_all(s, rec.p + sizeof hdr, clen, deadline));
	rec.len = sizeof hdr + clen;
	size_t used;
	rc = net_crypt_open(&s->rx, rec.p, rec.len, NET_MAX_FRAME, buf, &used);
	if (rc != 0) {
		rc = rc > 0 ? Q_EPROTO : rc;
		goto fail;
	}
	rc = net_frame_decode(buf->p, buf->len, f, &used);
	if (rc == NET_NEED_MORE || (rc == 0 && used != buf->len))
		rc = Q_EPROTO; /* one frame per record */
fail:
	q_buf_free(&rec);
	return rc;
}

static int read_frame(net_sync *s, uint64_t deadline, q_buf *buf, net_frame *f)
{
	if (s->enc)
		return read_sealed(s, deadline, buf, f);
	q_buf_reset(buf);
	Q_RET(q_buf_reserve(buf, NET_FRAME_HDR_LEN));
	Q_RET(recv_all(s, buf->p, NET_FRAME_HDR_LEN, deadline));
	buf->len = NET_FRAME_HDR_LEN;
	net_frame h;
	Q_RET(net_frame_decode_hdr(buf->p, buf->len, 0, &h));
	Q_RET(q_buf_reserve(buf, h.payload.n));
	Q_RET(recv_all(s, buf->p + NET_FRAME_HDR_LEN, h.payload.n, deadline));
	buf->len += h.payload.n;
	size_t used;
	int rc = net_frame_decode(buf->p, buf->len, f, &used);
	return rc == NET_NEED_MORE ? Q_EPROTO : rc;
}

int net_sync_read_frame(net_sync *s, uint64_t timeout_ms, q_buf *buf, net_frame *f)
{
	return read_frame(s, q_mono_ms() + (timeout_ms ? timeout_ms : 5000), buf, f);
}

int net_sync_call(net_sync *s, const net_msg *req, uint64_t timeout_ms, net_msg *resp,
		  q_buf *resp_buf)
{
	memset(resp, 0, sizeof *resp);
	q_buf_reset(resp_buf);
	if (!net_msg_type_known(req->type) || net_msg_is_resp(req->type))
		return Q_EPROTO;
	uint64_t deadline = q_mono_ms() + (timeout_ms ? timeout_ms : 5000);
	uint64_t reqid = ++s->next_reqid;
	q_buf out = Q_BUF_INIT, sealed = Q_BUF_INIT;
	int rc = net_msg_encode_frame(req, reqid, &out);
	if (rc == 0 && s->enc) {
		rc = net_crypt_seal(&s->tx, out.p, out.len, &sealed);
		if (rc == 0)
			rc = send_all(s, sealed.p, sealed.len, deadline);
	} else if (rc == 0) {
		rc = send_all(s, out.p, out.len, deadline);
	}
	q_buf_free(&out);
	q_buf_free(&sealed);
	Q_RET(rc);
	for (int skipped = 0;; skipped++) {
		net_frame f;
		Q_RET(read_frame(s, deadline, resp_buf, &f));
		if (!(f.flags & NET_FF_RESP))
			return Q_EPROTO;
		/* ERROR id 0: the server could not read our frame at all */
		if (f.reqid != reqid && !(f.reqid == 0 && f.type == NET_MSG_ERROR))
			continue; /* answer to an earlier, abandoned call */
		if (f.type != NET_MSG_ERROR && f.type != net_msg_resp_type(req->type))
			return Q_EPROTO;
		/* Move the payload to the front so resp's slices point into
		 * resp_buf's payload bytes only. */
		memmove(resp_buf->p, f.payload.p, f.payload.n);
		resp_buf->len = f.payload.n;
		Q_RET(net_msg_decode(f.type, q_buf_slice(resp_buf), resp));
		if (f.type == NET_MSG_ERROR)
			return resp->u.error.code;
		return 0;
	}
}

static int send_auth(net_sync *s, uint8_t type, const uint8_t *p, size_t n, uint64_t deadline)
{
	q_buf out = Q_BUF_INIT;
	int rc = net_frame_encode(&out, type, 0, 0, q_slice_make(p, n));
	if (rc == 0)
		rc = send_all(s, out.p, out.len, deadline);
	q_buf_free(&out);
	return rc;
}

/* Reads one handshake answer; an ERROR or a closed connection becomes
 * Q_EAUTH with its reason in err. */
static int read_auth(net_sync *s, uint64_t deadline, q_buf *buf, net_frame *f, char *err,
		     size_t errcap)
{
	int rc = read_frame(s, deadline, buf, f);
	if (rc == Q_ECLOSED) {
		snprintf(err, errcap, "the node closed the connection during authentication "
				      "(wrong cluster secret?)");
		return Q_EAUTH;
	}
	if (rc < 0) {
		snprintf(err, errcap, "authentication: %s", q_strerror(rc));
		return rc;
	}
	if (f->type == NET_MSG_ERROR) {
		net_msg m;
		if (net_msg_decode(f->type, f->payload, &m) == 0)
			snprintf(err, errcap, "authentication refused: %.*s", (int)m.u.error.text.n,
				 (const char *)m.u.error.text.p);
		else
			snprintf(err, errcap, "authentication refused");
		net_msg_clear(&m);
		return Q_EAUTH;
	}
	if (!(f->flags & NET_FF_RESP) || f->reqid != 0) {
		snprintf(err, errcap, "authentication: unexpected frame from the node");
		return Q_EPROTO;
	}
	return 0;
}

int net_sync_auth(net_sync *s, const uint8_t *key, uint64_t timeout_ms, char *err, size_t errcap)
{
	net_auth_hs hs;
	uint8_t mac[NET_AUTH_MAC_LEN];
	uint8_t init[NET_AUTH_INIT_LEN];
	q_buf buf = Q_BUF_INIT;
	net_frame f;
	int rc;
	err[0] = 0;
	uint64_t deadline = q_mono_ms() + (timeout_ms ? timeout_ms : 5000);
	if (net_auth_init() < 0) {
		snprintf(err, errcap, "cannot initialise libsodium");
		return -EIO;
	}
	memset(&hs, 0, sizeof hs);
	net_auth_nonce(hs.nc);
	hs.fc = 0; /* the node decides whether to encrypt */
	net_auth_encode_init(&hs, init);
	Q_ERR(send_auth(s, NET_MSG_AUTH_INIT, init, sizeof init, deadline));
	Q_ERR(read_auth(s, deadline, &buf, &f, err, errcap));
	if (f.type != NET_MSG_AUTH_CHALLENGE ||
	    net_auth_decode_challenge(f.payload.p, f.payload.n, &hs, mac) < 0) {
		snprintf(err, errcap, "authentication: malformed challenge from the node");
		rc = Q_EPROTO;
		goto fail;
	}
	if (!net_auth_check(key, NET_AUTH_ROLE_SERVER, &hs, mac)) {
		snprintf(err, errcap, "the node does not know this cluster secret");
		rc = Q_EAUTH;
		goto fail;
	}
	net_auth_mac(key, NET_AUTH_ROLE_CLIENT, &hs, mac);
	Q_ERR(send_auth(s, NET_MSG_AUTH_PROOF, mac, sizeof mac, deadline));
	Q_ERR(read_auth(s, deadline, &buf, &f, err, errcap));
	if (f.type != NET_MSG_AUTH_OK || f.payload.n) {
		snprintf(err, errcap, "authentication: unexpected answer from the node");
		rc = Q_EPROTO;
		goto fail;
	}
	if ((hs.fc | hs.fs) & NET_AUTH_F_ENCRYPT) {
		net_crypt_init(key, &hs, &s->tx, &s->rx);
		s->enc = 1;
	}
	rc = 0;
fail:
	if (rc < 0 && !err[0])
		snprintf(err, errcap, "authentication: %s", q_strerror(rc));
	q_buf_free(&buf);
	return rc;
}

int net_sync_fd(const net_sync *s)
{
	return s->fd;
}

void net_sync_close(net_sync *s)
{
	if (!s)
		return;
	close(s->fd);
	net_crypt_wipe(&s->tx);
	net_crypt_wipe(&s->rx);
	free(s);
}
