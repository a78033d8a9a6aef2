/*
 * net_auth.c - key files, handshake MACs and the handshake payload codec
 * (see net_auth.h).
 *
 * Key files are read and written with plain POSIX calls rather than the env
 * layer: they are configuration, not store data, and their permission bits
 * are part of the contract (fstat of the opened descriptor, so the checked
 * file is the one read).
 *
 * Threading: no shared state; libsodium's sodium_init is idempotent and
 * thread-safe.
 */
#include "net/net_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/qerr.h"

#define NET_NEED_MORE_AUTH 1 /* == NET_NEED_MORE (net_frame.h) */

#define AUTH_LABEL "quorumfs-auth-1"
#define AUTH_KDF_CTX "qfsauth1" /* crypto_kdf_CONTEXTBYTES == 8 */
#define AUTH_KDF_ID 1

int net_auth_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int net_auth_key_load(const char *path, uint8_t key[NET_AUTH_KEY_LEN], char *err, size_t errcap)
{
	char text[NET_AUTH_KEYFILE_HEX + 4];
	int rc;
	err[0] = 0;
	if (net_auth_init() < 0) {
		snprintf(err, errcap, "cannot initialise libsodium");
		return -EIO;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errcap, "secret file %s: %s", path, strerror(errno));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errcap, "secret file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errcap, "secret file %s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & 077) {
		rc = -EACCES;
		snprintf(err, errcap,
			 "secret file %s has mode %04o: group or others may access it "
			 "(chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, text + n, sizeof(text) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errcap, "secret file %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(text))
			break;
	}
	if (n > NET_AUTH_KEYFILE_HEX && n == NET_AUTH_KEYFILE_HEX + 1 &&
	    text[NET_AUTH_KEYFILE_HEX] == '\n')
		n = NET_AUTH_KEYFILE_HEX;
	if (n != NET_AUTH_KEYFILE_HEX) {
		rc = -EINVAL;
		snprintf(err, errcap,
			 "secret file %s: expected %d hex digits (a %d-byte key, as written by "
			 "quorumctl init-secret), found %zu%s bytes",
			 path, NET_AUTH_KEYFILE_HEX, NET_AUTH_KEY_LEN, n,
			 n == sizeof(text) ? " or more" : "");
		goto fail;
	}
	for (size_t i = 0; i < NET_AUTH_KEY_LEN; i++) {
		int hi = hexval((unsigned char)text[2 * i]), lo = hexval((unsigned char)text[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			rc = -EINVAL;
			sodium_memzero(key, NET_AUTH_KEY_LEN);
			snprintf(err, errcap, "secret file %s: not a hex key (byte %zu)", path,
				 2 * i + (hi < 0 ? 0 : 1));
			goto fail;
		}
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	rc = 0;
fail:
	sodium_memzero(text, sizeof(text));
	close(fd);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sync_parent(const char *path)
{
	char *dup = strdup(path);
	if (!dup)
		return -ENOMEM;
	int fd = open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dup);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int net_auth_key_generate(const char *path, int force, char *err, size_t errcap)
{
	uint8_t key[NET_AUTH_KEY_LEN];
	char text[NET_AUTH_KEYFILE_HEX + 2];
	char tmp[4096];
	int rc, fd = -1;
	const char *target = path;
	err[0] = 0;
	if (net_auth_init() < 0) {
		snprintf(err, errcap, "cannot initialise libsodium");
		return -EIO;
	}
	if (force) {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >=
		    (int)sizeof(tmp)) {
			snprintf(err, errcap, "path too long");
			return -ENAMETOOLONG;
		}
		target = tmp;
		unlink(tmp);
	}
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		if (rc == -EEXIST)
			snprintf(err, errcap, "%s exists; not replacing a key (use --force)", path);
		else
			snprintf(err, errcap, "cannot create %s: %s", target, strerror(errno));
		return rc;
	}
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(text, sizeof(text), key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	size_t n = strlen(text);
	text[n++] = '\n';
	/* O_CREAT's mode is filtered by the umask; make it exactly 0600 */
	rc = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (rc == 0)
		rc = write_all(fd, text, n);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	sodium_memzero(text, sizeof(text));
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && force && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_parent(path);
	if (rc < 0) {
		snprintf(err, errcap, "writing %s: %s", path, strerror(-rc));
		unlink(target);
	}
	return rc;
}

void net_auth_mac(const uint8_t key[NET_AUTH_KEY_LEN], int role, const net_auth_hs *hs,
		  uint8_t mac[NET_AUTH_MAC_LEN])
{
	uint8_t ka[crypto_auth_hmacsha512256_KEYBYTES];
	crypto_kdf_derive_from_key(ka, sizeof(ka), AUTH_KDF_ID, AUTH_KDF_CTX, key);
	crypto_auth_hmacsha512256_state st;
	uint8_t r = (uint8_t)role, fl[2] = {hs->fc, hs->fs};
	crypto_auth_hmacsha512256_init(&st, ka, sizeof(ka));
	crypto_auth_hmacsha512256_update(&st, &r, 1);
	crypto_auth_hmacsha512256_update(&st, (const uint8_t *)AUTH_LABEL, strlen(AUTH_LABEL));
	crypto_auth_hmacsha512256_update(&st, hs->nc, NET_AUTH_NONCE_LEN);
	crypto_auth_hmacsha512256_update(&st, hs->ns, NET_AUTH_NONCE_LEN);
	crypto_auth_hmacsha512256_update(&st, fl, 2);
	crypto_auth_hmacsha512256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(ka, sizeof(ka));
}

int net_auth_check(const uint8_t key[NET_AUTH_KEY_LEN], int role, const net_auth_hs *hs,
		   const uint8_t mac[NET_AUTH_MAC_LEN])
{
	uint8_t want[NET_AUTH_MAC_LEN];
	net_auth_mac(key, role, hs, want);
	int ok = crypto_verify_32(want, mac) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

void net_auth_nonce(uint8_t n[NET_AUTH_NONCE_LEN])
{
	randombytes_buf(n, NET_AUTH_NONCE_LEN);
}

void net_auth_encode_init(const net_auth_hs *hs, uint8_t out[NET_AUTH_INIT_LEN])
{
	out[0] = NET_AUTH_VERSION;
	memcpy(out + 1, hs->nc, NET_AUTH_NONCE_LEN);
	out[1 + NET_AUTH_NONCE_LEN] = hs->fc;
}

int net_auth_decode_init(const uint8_t *p, size_t n, net_auth_hs *hs)
{
	if (n != NET_AUTH_INIT_LEN)
		return Q_EPROTO;
	if (p[0] != NET_AUTH_VERSION)
		return Q_EVERSION;
	if (p[1 + NET_AUTH_NONCE_LEN] & ~NET_AUTH_F_KNOWN)
		return Q_EPROTO;
	memcpy(hs->nc, p + 1, NET_AUTH_NONCE_LEN);
	hs->fc = p[1 + NET_AUTH_NONCE_LEN];
	return 0;
}

void net_auth_encode_challenge(const net_auth_hs *hs, const uint8_t mac[NET_AUTH_MAC_LEN],
			       uint8_t out[NET_AUTH_CHALLENGE_LEN])
{
	out[0] = NET_AUTH_VERSION;
	memcpy(out + 1, hs->ns, NET_AUTH_NONCE_LEN);
	out[1 + NET_AUTH_NONCE_LEN] = hs->fs;
	memcpy(out + 2 + NET_AUTH_NONCE_LEN, mac, NET_AUTH_MAC_LEN);
}

int net_auth_decode_challenge(const uint8_t *p, size_t n, net_auth_hs *hs,
			      uint8_t mac[NET_AUTH_MAC_LEN])
{
	if (n != NET_AUTH_CHALLENGE_LEN)
		return Q_EPROTO;
	if (p[0] != NET_AUTH_VERSION)
		return Q_EVERSION;
	if (p[1 + NET_AUTH_NONCE_LEN] & ~NET_AUTH_F_KNOWN)
		return Q_EPROTO;
	memcpy(hs->ns, p + 1, NET_AUTH_NONCE_LEN);
	hs->fs = p[1 + NET_AUTH_NONCE_LEN];
	memcpy(mac, p + 2 + NET_AUTH_NONCE_LEN, NET_AUTH_MAC_LEN);
	return 0;
}

int net_auth_decode_proof(const uint8_t *p, size_t n, uint8_t mac[NET_AUTH_MAC_LEN])
{
	if (n != NET_AUTH_PROOF_LEN)
		return Q_EPROTO;
	memcpy(mac, p, NET_AUTH_MAC_LEN);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* sealed records                                                             */

static void dir_key(const uint8_t ke[32], const char *label, const net_auth_hs *hs,
		    uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, ke, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	crypto_generichash_update(&st, hs->nc, NET_AUTH_NONCE_LEN);
	crypto_generichash_update(&st, hs->ns, NET_AUTH_NONCE_LEN);
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof(st));
}

void net_crypt_init(const uint8_t secret[NET_AUTH_KEY_LEN], const net_auth_hs *hs,
		    net_crypt *c2s, net_crypt *s2c)
{
	uint8_t ke[32];
	crypto_kdf_derive_from_key(ke, sizeof(ke), AUTH_KDF_ID + 1, AUTH_KDF_CTX, secret);
	dir_key(ke, "c2s", hs, c2s->key);
	dir_key(ke, "s2c", hs, s2c->key);
	c2s->ctr = s2c->ctr = 0;
	sodium_memzero(ke, sizeof(ke));
}

static void ctr_nonce(uint64_t ctr, uint8_t n[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	memset(n, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	for (int i = 0; i < 8; i++)
		n[i] = (uint8_t)(ctr >> (8 * i));
}

int net_crypt_seal(net_crypt *cs, const uint8_t *p, size_t n, q_buf *out)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	size_t clen = n + NET_CRYPT_TAG;
	if (clen > UINT32_MAX)
		return Q_ETOOBIG;
	Q_RET(q_buf_reserve(out, NET_CRYPT_HDR + clen));
	uint8_t *h = out->p + out->len;
	h[0] = (uint8_t)clen;
	h[1] = (uint8_t)(clen >> 8);
	h[2] = (uint8_t)(clen >> 16);
	h[3] = (uint8_t)(clen >> 24);
	ctr_nonce(cs->ctr++, nonce);
	unsigned long long got = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(h + NET_CRYPT_HDR, &got, p, n, h, NET_CRYPT_HDR,
						   NULL, nonce, cs->key);
	out->len += NET_CRYPT_HDR + (size_t)got;
	return 0;
}

int net_crypt_open(net_crypt *cs, const uint8_t *buf, size_t len, size_t max_plain, q_buf *out,
		   size_t *used)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	if (len < NET_CRYPT_HDR)
		return NET_NEED_MORE_AUTH;
	size_t clen = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16 |
		      (size_t)buf[3] << 24;
	if (clen < NET_CRYPT_TAG)
		return Q_EPROTO;
	if (clen - NET_CRYPT_TAG > max_plain)
		return Q_ETOOBIG;
	if (len - NET_CRYPT_HDR < clen)
		return NET_NEED_MORE_AUTH;
	/* + 1: an empty message still needs a buffer to point at */
	Q_RET(q_buf_reserve(out, clen - NET_CRYPT_TAG + 1));
	ctr_nonce(cs->ctr, nonce);
	unsigned long long got = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out->p + out->len, &got, NULL,
						       buf + NET_CRYPT_HDR, clen, buf,
						       NET_CRYPT_HDR, nonce, cs->key) != 0)
		return Q_EPROTO;
	cs->ctr++;
	out->len += (size_t)got;
	*used = NET_CRYPT_HDR + clen;
	return 0;
}

void net_crypt_wipe(net_crypt *cs)
{
	sodium_memzero(cs, sizeof(*cs));
}
