/*
 * net_auth.h - the cluster secret and the connection handshake that proves
 * knowledge of it (docs/security.md, docs/protocol.md "Authentication").
 *
 * The secret is a 32-byte random key shared by every node and client of a
 * cluster, kept in a key file (64 hex digits and a newline, mode 0600)
 * written by `quorumctl init-secret`. With a secret, every connection runs
 * this handshake before any other frame, in ordinary frames (net_proto.h
 * types NET_MSG_AUTH_*), request id 0:
 *
 *   client -> server  AUTH_INIT       ver(1) | Nc(32)
 *   server -> client  AUTH_CHALLENGE  ver(1) | Ns(32) | Ms(32)   (response)
 *   client -> server  AUTH_PROOF      Mc(32)
 *   server -> client  AUTH_OK         empty                      (response)
 *
 *   Ms = HMAC-SHA512-256(Ka, "S" | "quorumfs-auth-1" | Nc | Ns)
 *   Mc = HMAC-SHA512-256(Ka, "C" | "quorumfs-auth-1" | Nc | Ns)
 *   Ka = crypto_kdf subkey 1 of the secret, context "qfsauth1"
 *
 * Nc and Ns are fresh random nonces (randombytes_buf), so each side proves
 * the key over a challenge chosen by the other: a recorded handshake replayed
 * against a server fails (new Ns), and a recorded challenge replayed to a
 * client fails (new Nc). The role byte keeps a server's proof from being
 * reflected back as a client's. MACs are compared in constant time.
 *
 * Invariants: the codec functions here are pure and never read outside
 * their input; a payload of any other size than the fixed layout is
 * Q_EPROTO. Key bytes are wiped (sodium_memzero) by the functions that
 * handle temporary copies.
 *
 * Threading: everything is thread-safe (no shared state) once
 * net_auth_init() has returned; call it once before threads start (it is
 * idempotent and called by the loaders here).
 */
#ifndef Q_NET_AUTH_H
#define Q_NET_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_proto.h"

#define NET_AUTH_KEY_LEN 32
#define NET_AUTH_NONCE_LEN 32
#define NET_AUTH_MAC_LEN 32
#define NET_AUTH_VERSION 1
#define NET_AUTH_INIT_LEN (1 + NET_AUTH_NONCE_LEN)
#define NET_AUTH_CHALLENGE_LEN (1 + NET_AUTH_NONCE_LEN + NET_AUTH_MAC_LEN)
#define NET_AUTH_PROOF_LEN NET_AUTH_MAC_LEN
/* Largest frame payload a server reads before a connection is
 * authenticated: anything bigger is dropped without buffering it. */
#define NET_AUTH_MAX_PREAUTH 128
/* A connection must finish the handshake within this time. */
#define NET_AUTH_TIMEOUT_MS 5000
/* Key file text: 64 lowercase or uppercase hex digits, optional newline. */
#define NET_AUTH_KEYFILE_HEX (2 * NET_AUTH_KEY_LEN)

enum { NET_AUTH_ROLE_SERVER = 'S', NET_AUTH_ROLE_CLIENT = 'C' };

/* Initialises libsodium (idempotent). Returns 0 or -EIO. */
int net_auth_init(void);

/* Reads a key file. Refused with a message in err: not a regular file,
 * readable or writable by group or others (mode & 077), not exactly 64 hex
 * digits (and an optional trailing newline). Returns 0, -EACCES (mode),
 * -EINVAL (content), or -errno from open/read. */
int net_auth_key_load(const char *path, uint8_t key[NET_AUTH_KEY_LEN], char *err,
		      size_t errcap);

/* Writes a fresh random key to path with mode 0600 (created with O_EXCL
 * unless force, which replaces an existing file atomically via a temporary
 * file and rename), fsyncs file and directory. Returns 0, -EEXIST (exists
 * and !force) or -errno, with a message in err. */
int net_auth_key_generate(const char *path, int force, char *err, size_t errcap);

/* The MAC of one side (role NET_AUTH_ROLE_*) over both nonces. */
void net_auth_mac(const uint8_t key[NET_AUTH_KEY_LEN], int role,
		  const uint8_t nc[NET_AUTH_NONCE_LEN], const uint8_t ns[NET_AUTH_NONCE_LEN],
		  uint8_t mac[NET_AUTH_MAC_LEN]);
/* 1 if mac is role's MAC over the nonces (constant-time compare), else 0. */
int net_auth_check(const uint8_t key[NET_AUTH_KEY_LEN], int role,
		   const uint8_t nc[NET_AUTH_NONCE_LEN], const uint8_t ns[NET_AUTH_NONCE_LEN],
		   const uint8_t mac[NET_AUTH_MAC_LEN]);
void net_auth_nonce(uint8_t n[NET_AUTH_NONCE_LEN]);

/* Payload codecs. Encoders write exactly the fixed length into out;
 * decoders return 0 or Q_EPROTO (wrong length or version) / Q_EVERSION. */
void net_auth_encode_init(const uint8_t nc[NET_AUTH_NONCE_LEN], uint8_t out[NET_AUTH_INIT_LEN]);
int net_auth_decode_init(const uint8_t *p, size_t n, uint8_t nc[NET_AUTH_NONCE_LEN]);
void net_auth_encode_challenge(const uint8_t ns[NET_AUTH_NONCE_LEN],
			       const uint8_t mac[NET_AUTH_MAC_LEN],
			       uint8_t out[NET_AUTH_CHALLENGE_LEN]);
int net_auth_decode_challenge(const uint8_t *p, size_t n, uint8_t ns[NET_AUTH_NONCE_LEN],
			      uint8_t mac[NET_AUTH_MAC_LEN]);
int net_auth_decode_proof(const uint8_t *p, size_t n, uint8_t mac[NET_AUTH_MAC_LEN]);

/* Counters kept per event loop (net_loop_auth_stats). */
typedef struct net_auth_stats {
	uint64_t ok;            /* handshakes completed (both directions) */
	uint64_t failed;        /* wrong proof, bad or missing handshake */
	uint64_t unauth_frames; /* connections that sent another frame first */
} net_auth_stats;

#endif
