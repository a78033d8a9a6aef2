/*
 * net_sync.h - a small blocking client over a plain socket, for quorumctl
 * and tests (no event loop).
 *
 * net_sync_connect connects with a timeout; net_sync_call sends one request
 * frame and reads frames until the response with the same request id
 * arrives (other ids are skipped), all within the call's timeout, measured
 * on the monotonic clock and enforced with poll(). After a timeout or a
 * protocol error the connection is no longer usable (its state is unknown):
 * close it and connect again.
 *
 * Ownership: a net_sync is owned by the caller (net_sync_close frees it).
 * On return 0 or a remote ERROR code, *resp is decoded from *resp_buf,
 * which holds the response payload: the caller owns both (net_msg_clear,
 * q_buf_free). resp_buf is reset by each call.
 *
 * Threading: one thread at a time per net_sync.
 */
#ifndef Q_NET_SYNC_H
#define Q_NET_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_frame.h"
#include "net/net_msg.h"
#include "util/buf.h"

typedef struct net_sync net_sync;

/* Returns 0, -EINVAL (bad address), Q_ETIMEOUT, -ECONNREFUSED, ... When a
 * process-wide secret is set (net_sync_set_default_secret), the connection
 * also runs the handshake (net_sync_auth) within the same timeout, and a
 * failed handshake is Q_EAUTH (the connection is closed). */
int net_sync_connect(const char *addr, uint64_t timeout_ms, net_sync **out);
/* Connects without any handshake, whatever the default secret. */
int net_sync_connect_raw(const char *addr, uint64_t timeout_ms, net_sync **out);
/* The secret net_sync_connect authenticates with from now on in this
 * process (copied; NULL clears it). Set it before threads connect (it is
 * mutex-protected, but connections made before keep their state). For
 * tools: quorumctl sets it from --secret. Returns 0 or -EIO. */
int net_sync_set_default_secret(const uint8_t *key);

/* Sends req and waits for its response. Returns 0 (resp is the response;
 * its type is checked to be req's response type), the remote code if the
 * peer answered ERROR (resp holds the ERROR message), Q_ETIMEOUT,
 * Q_ECLOSED (peer closed), Q_EPROTO (malformed answer), Q_ETOOBIG, -errno. */
int net_sync_call(net_sync *s, const net_msg *req, uint64_t timeout_ms, net_msg *resp,
		  q_buf *resp_buf);

/* Runs the cluster-secret handshake (net_auth.h) with key
 * (NET_AUTH_KEY_LEN bytes); call right after connecting, before any
 * request. Returns 0, Q_EAUTH (the node refused or closed: wrong secret, or
 * the node has none; the node failed to prove the secret), Q_ETIMEOUT,
 * Q_EPROTO, -errno; err gets a sentence for the user. The connection is
 * unusable after a failure. */
int net_sync_auth(net_sync *s, const uint8_t *key, uint64_t timeout_ms, char *err,
		  size_t errcap);

/* Lower-level: write raw bytes / read one raw frame (tests of bad input). */
int net_sync_send_raw(net_sync *s, const void *p, size_t n, uint64_t timeout_ms);
/* Reads one frame; *f's payload points into buf (valid until buf changes). */
int net_sync_read_frame(net_sync *s, uint64_t timeout_ms, q_buf *buf, net_frame *f);

/* The socket fd (for tests that shut it down abruptly). */
int net_sync_fd(const net_sync *s);

void net_sync_close(net_sync *s);

#endif
