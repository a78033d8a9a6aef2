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
 *   client -> server  AUTH_INIT       ver(1) | Nc(32) | Fc(1)
 *   server -> client  AUTH_CHALLENGE  ver(1) | Ns(32) | Fs(1) | Ms(32)  (response)
 *   client -> server  AUTH_PROOF      Mc(32)
 *   server -> client  AUTH_OK         empty                             (response)
 *
 *   Ms = HMAC-SHA512-256(Ka, "S" | "quorumfs-auth-1" | Nc | Ns | Fc | Fs)
 *   Mc = HMAC-SHA512-256(Ka, "C" | "quorumfs-auth-1" | Nc | Ns | Fc | Fs)
 *   Ka = crypto_kdf subkey 1 of the secret, context "qfsauth1"
 *
 * Fc / Fs are each side's flags (NET_AUTH_F_ENCRYPT: this side wants the
 * connection encrypted); the MACs cover them, so they cannot be changed in
 * flight. If either side sets NET_AUTH_F_ENCRYPT, every byte after AUTH_OK,
 * in both directions, travels in sealed records (net_crypt below).
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
#include "util/buf.h"

#define NET_AUTH_KEY_LEN 32
#define NET_AUTH_NONCE_LEN 32
#define NET_AUTH_MAC_LEN 32
#define NET_AUTH_VERSION 1
#define NET_AUTH_INIT_LEN (1 + NET_AUTH_NONCE_LEN + 1)
#define NET_AUTH_CHALLENGE_LEN (1 + NET_AUTH_NONCE_LEN + 1 + NET_AUTH_MAC_LEN)
#define NET_AUTH_F_ENCRYPT 0x01u
#define NET_AUTH_F_KNOWN NET_AUTH_F_ENCRYPT
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

/* What both sides agree on during a handshake. */
typedef struct net_auth_hs {
	uint8_t nc[NET_AUTH_NONCE_LEN], ns[NET_AUTH_NONCE_LEN];
	uint8_t fc, fs; /* flags of client and server */
} net_auth_hs;

/* The MAC of one side (role NET_AUTH_ROLE_*) over the nonces and flags. */
void net_auth_mac(const uint8_t key[NET_AUTH_KEY_LEN], int role, const net_auth_hs *hs,
		  uint8_t mac[NET_AUTH_MAC_LEN]);
/* 1 if mac is role's MAC over hs (constant-time compare), else 0. */
int net_auth_check(const uint8_t key[NET_AUTH_KEY_LEN], int role, const net_auth_hs *hs,
		   const uint8_t mac[NET_AUTH_MAC_LEN]);
void net_auth_nonce(uint8_t n[NET_AUTH_NONCE_LEN]);

/* Payload codecs. Encoders write exactly the fixed length into out;
 * decoders return 0 or Q_EPROTO (wrong length or version) / Q_EVERSION. */
void net_auth_encode_init(const net_auth_hs *hs, uint8_t out[NET_AUTH_INIT_LEN]);
/* Fills hs->nc and hs->fc; unknown flag bits are Q_EPROTO. */
int net_auth_decode_init(const uint8_t *p, size_t n, net_auth_hs *hs);
void net_auth_encode_challenge(const net_auth_hs *hs, const uint8_t mac[NET_AUTH_MAC_LEN],
			       uint8_t out[NET_AUTH_CHALLENGE_LEN]);
/* Fills hs->ns and hs->fs. */
int net_auth_decode_challenge(const uint8_t *p, size_t n, net_auth_hs *hs,
			      uint8_t mac[NET_AUTH_MAC_LEN]);
int net_auth_decode_proof(const uint8_t *p, size_t n, uint8_t mac[NET_AUTH_MAC_LEN]);

/*
 * Sealed records (transport encryption, after AUTH_OK when either side set
 * NET_AUTH_F_ENCRYPT): each frame travels as
 *
 *   len(4, LE) | XChaCha20-Poly1305(key, nonce, frame, ad = len)
 *
 * len counts the ciphertext (frame + 16-byte tag). Each direction has its
 * own key, Kd = BLAKE2b-256(key = Ke, "c2s" or "s2c" | Nc | Ns) with Ke
 * the crypto_kdf subkey 2 of the secret, and its own nonce sequence: a
 * 64-bit record counter from 0 in the first 8 nonce bytes (keys are fresh
 * per connection, so nonces never repeat under one key). A record that
 * fails to open (altered, dropped, replayed or reordered) ends the
 * connection.
 */
#define NET_CRYPT_TAG 16
#define NET_CRYPT_HDR 4
typedef struct net_crypt {
	uint8_t key[32];
	uint64_t ctr;
} net_crypt;

/* The two directions' states for a handshake's values. */
void net_crypt_init(const uint8_t secret[NET_AUTH_KEY_LEN], const net_auth_hs *hs,
		    net_crypt *c2s, net_crypt *s2c);
/* Appends one sealed record of p[0..n) to out. -ENOMEM. */
int net_crypt_seal(net_crypt *cs, const uint8_t *p, size_t n, q_buf *out);
/* Opens the record at the start of buf: 0 (plaintext appended to out,
 * *used = record size), NET_NEED_MORE (== 1), Q_ETOOBIG (announced length
 * over max_plain + tag), Q_EPROTO (authentication failed). */
int net_crypt_open(net_crypt *cs, const uint8_t *buf, size_t len, size_t max_plain, q_buf *out,
		   size_t *used);
void net_crypt_wipe(net_crypt *cs);

/* Counters kept per event loop (net_loop_auth_stats). */
typedef struct net_auth_stats {
	uint64_t ok;            /* handshakes completed (both directions) */
	uint64_t failed;        /* wrong proof, bad or missing handshake */
	uint64_t unauth_frames; /* connections that sent another frame first */
} net_auth_stats;

#endif
