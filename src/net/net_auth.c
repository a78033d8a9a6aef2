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

void net_auth_mac(const uint8_t key[NET_AUTH_KEY_LEN], int role,
		  const uint8_t nc[NET_AUTH_NONCE_LEN], const uint8_t ns[NET_AUTH_NONCE_LEN],
		  uint8_t mac[NET_AUTH_MAC_LEN])
{
	uint8_t ka[crypto_auth_hmacsha512256_KEYBYTES];
	crypto_kdf_derive_from_key(ka, sizeof(ka), AUTH_KDF_ID, AUTH_KDF_CTX, key);
	crypto_auth_hmacsha512256_state st;
	uint8_t r = (uint8_t)role;
	crypto_auth_hmacsha512256_init(&st, ka, sizeof(ka));
	crypto_auth_hmacsha512256_update(&st, &r, 1);
	crypto_auth_hmacsha512256_update(&st, (const uint8_t *)AUTH_LABEL, strlen(AUTH_LABEL));
	crypto_auth_hmacsha512256_update(&st, nc, NET_AUTH_NONCE_LEN);
	crypto_auth_hmacsha512256_update(&st, ns, NET_AUTH_NONCE_LEN);
	crypto_auth_hmacsha512256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(ka, sizeof(ka));
}

int net_auth_check(const uint8_t key[NET_AUTH_KEY_LEN], int role,
		   const uint8_t nc[NET_AUTH_NONCE_LEN], const uint8_t ns[NET_AUTH_NONCE_LEN],
		   const uint8_t mac[NET_AUTH_MAC_LEN])
{
	uint8_t want[NET_AUTH_MAC_LEN];
	net_auth_mac(key, role, nc, ns, want);
	int ok = crypto_verify_32(want, mac) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

void net_auth_nonce(uint8_t n[NET_AUTH_NONCE_LEN])
{
	randombytes_buf(n, NET_AUTH_NONCE_LEN);
}

void net_auth_encode_init(const uint8_t nc[NET_AUTH_NONCE_LEN], uint8_t out[NET_AUTH_INIT_LEN])
{
	out[0] = NET_AUTH_VERSION;
	memcpy(out + 1, nc, NET_AUTH_NONCE_LEN);
}

int net_auth_decode_init(const uint8_t *p, size_t n, uint8_t nc[NET_AUTH_NONCE_LEN])
{
	if (n != NET_AUTH_INIT_LEN)
		return Q_EPROTO;
	if (p[0] != NET_AUTH_VERSION)
		return Q_EVERSION;
	memcpy(nc, p + 1, NET_AUTH_NONCE_LEN);
	return 0;
}

void net_auth_encode_challenge(const uint8_t ns[NET_AUTH_NONCE_LEN],
			       const uint8_t mac[NET_AUTH_MAC_LEN],
			       uint8_t out[NET_AUTH_CHALLENGE_LEN])
{
	out[0] = NET_AUTH_VERSION;
	memcpy(out + 1, ns, NET_AUTH_NONCE_LEN);
	memcpy(out + 1 + NET_AUTH_NONCE_LEN, mac, NET_AUTH_MAC_LEN);
}

int net_auth_decode_challenge(const uint8_t *p, size_t n, uint8_t ns[NET_AUTH_NONCE_LEN],
			      uint8_t mac[NET_AUTH_MAC_LEN])
{
	if (n != NET_AUTH_CHALLENGE_LEN)
		return Q_EPROTO;
	if (p[0] != NET_AUTH_VERSION)
		return Q_EVERSION;
	memcpy(ns, p + 1, NET_AUTH_NONCE_LEN);
	memcpy(mac, p + 1 + NET_AUTH_NONCE_LEN, NET_AUTH_MAC_LEN);
	return 0;
}

int net_auth_decode_proof(const uint8_t *p, size_t n, uint8_t mac[NET_AUTH_MAC_LEN])
{
	if (n != NET_AUTH_PROOF_LEN)
		return Q_EPROTO;
	memcpy(mac, p, NET_AUTH_MAC_LEN);
	return 0;
}
