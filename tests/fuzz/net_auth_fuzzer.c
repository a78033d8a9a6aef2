/*
 * Fuzz target: the handshake payload decoders and the sealed-record opener
 * (net_auth.h). The first byte selects (0 AUTH_INIT, 1 AUTH_CHALLENGE,
 * 2 AUTH_PROOF, 3 sealed records with a fixed key); the rest is the input.
 * An accepted payload must re-encode to the same bytes; records are opened
 * one after another until one is incomplete or refused, and an opened one
 * must lie within the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_auth.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[NET_AUTH_KEY_LEN] = {1, 2, 3};
	uint8_t mac[NET_AUTH_MAC_LEN];
	net_auth_hs hs;
	memset(&hs, 0, sizeof hs);
	if (size < 1 || net_auth_init() < 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	int rc;
	switch (data[0] % 4) {
	case 0: {
		rc = net_auth_decode_init(p, n, &hs);
		if (rc == 0) {
			uint8_t out[NET_AUTH_INIT_LEN];
			net_auth_encode_init(&hs, out);
			if (n != sizeof out || memcmp(out, p, n))
				abort();
		}
		break;
	}
	case 1: {
		rc = net_auth_decode_challenge(p, n, &hs, mac);
		if (rc == 0) {
			uint8_t out[NET_AUTH_CHALLENGE_LEN];
			net_auth_encode_challenge(&hs, mac, out);
			if (n != sizeof out || memcmp(out, p, n))
				abort();
			(void)net_auth_check(key, NET_AUTH_ROLE_SERVER, &hs, mac);
		}
		break;
	}
	case 2:
		rc = net_auth_decode_proof(p, n, mac);
		if (rc == 0 && (n != NET_AUTH_PROOF_LEN || memcmp(mac, p, n)))
			abort();
		break;
	default: {
		net_crypt tx, rx;
		q_buf out = Q_BUF_INIT;
		size_t off = 0, used = 0;
		net_crypt_init(key, &hs, &tx, &rx);
		while ((rc = net_crypt_open(&rx, p + off, n - off, 1 << 20, &out, &used)) == 0) {
			if (used < NET_CRYPT_HDR + NET_CRYPT_TAG || used > n - off)
				abort();
			off += used;
		}
		q_buf_free(&out);
		if (rc == 1 || rc == Q_ETOOBIG)
			rc = 0;
		break;
	}
	}
	if (rc != 0 && rc != Q_EPROTO && rc != Q_EVERSION)
		abort();
	return 0;
}
