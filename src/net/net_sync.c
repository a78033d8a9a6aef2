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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_addr.h"
#include "util/qerr.h"
#include "util/qtime.h"

struct net_sync {
	int fd;
	uint64_t next_reqid;
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

int net_sync_connect(const char *addr, uint64_t timeout_ms, net_sync **out)
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

static int read_frame(net_sync *s, uint64_t deadline, q_buf *buf, net_frame *f)
{
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
	q_buf out = Q_BUF_INIT;
	int rc = net_msg_encode_frame(req, reqid, &out);
	if (rc == 0)
		rc = send_all(s, out.p, out.len, deadline);
	q_buf_free(&out);
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

int net_sync_fd(const net_sync *s)
{
	return s->fd;
}

void net_sync_close(net_sync *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}
