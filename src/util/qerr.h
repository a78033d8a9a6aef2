/*
 * qerr.h - the one error convention of quorumfs.
 *
 * Every function that can fail returns int: 0 on success, a negative code on
 * failure. Operating-system failures are negative errno values (-EIO,
 * -ENOSPC, ...); failures that are the project's own use the Q_E* codes
 * below, which lie far outside the errno range. q_strerror() names both.
 *
 * Thread safety: all functions here are pure and thread-safe.
 */
#ifndef Q_ERR_H
#define Q_ERR_H

#include <errno.h>

enum {
	Q_OK = 0,
	Q_ERRBASE = -10000,
	Q_ECORRUPT = -10001,   /* checksum or structure mismatch in stored data */
	Q_ENOTFOUND = -10002,  /* key or object absent */
	Q_ETOOBIG = -10003,    /* key, value or frame over a hard limit */
	Q_EQUORUM = -10004,    /* not enough replicas answered */
	Q_ETIMEOUT = -10005,   /* a request ran out of time */
	Q_EBADCTX = -10006,    /* malformed or foreign causal context */
	Q_EPROTO = -10007,     /* malformed wire message */
	Q_ETRUNC = -10008,     /* input ended early while decoding */
	Q_EVERSION = -10009,   /* unknown format or protocol version */
	Q_ECLOSED = -10010,    /* object or connection already closed */
	Q_EBUSY = -10011,      /* resource held elsewhere (e.g. store lock) */
	Q_EINJECT = -10012,    /* failure injected by a test env */
	Q_EAUTH = -10013,      /* authentication failed */
	Q_ERRLAST = -10014
};

/* Returns a static, human-readable message for any code this project
 * returns (Q_E* or negative errno). Never NULL. */
const char *q_strerror(int code);

/* Short symbolic name ("ECORRUPT", "EIO"), for logs and scripts. */
const char *q_errname(int code);

/* Propagation helpers in the WiredTiger style. */
#define Q_RET(expr) do { int q_ret__ = (expr); if (q_ret__ < 0) return q_ret__; } while (0)
#define Q_ERR(expr) do { rc = (expr); if (rc < 0) goto fail; } while (0)

#endif
