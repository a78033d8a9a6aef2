/*
 * Fuzz target: the handshake payload decoders (net_auth.h). The first byte
 * selects the decoder (0 AUTH_INIT, 1 AUTH_CHALLENGE, 2 AUTH_PROOF); the
 * rest is the payload. An accepted payload must re-encode to the same
 * bytes, and a MAC check over the decoded values must run without reading
 * outside them.
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
	uint8_t nc[NET_AUTH_NONCE_LEN], ns[NET_AUTH_NONCE_LEN], mac[NET_AUTH_MAC_LEN];
	if (size < 1 || net_auth_init() < 0)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	int rc;
	switch (data[0] % 3) {
	case 0: {
		rc = net_auth_decode_init(p, n, nc);
		if (rc == 0) {
			uint8_t out[NET_AUTH_INIT_LEN];
			net_auth_encode_init(nc, out);
			if (n != sizeof out || memcmp(out, p, n))
				abort();
		}
		break;
	}
	case 1: {
		rc = net_auth_decode_challenge(p, n, ns, mac);
		if (rc == 0) {
			uint8_t out[NET_AUTH_CHALLENGE_LEN];
			net_auth_encode_challenge(ns, mac, out);
			if (n != sizeof out || memcmp(out, p, n))
				abort();
			memset(nc, 7, sizeof nc);
			(void)net_auth_check(key, NET_AUTH_ROLE_SERVER, nc, ns, mac);
		}
		break;
	}
	default:
		rc = net_auth_decode_proof(p, n, mac);
		if (rc == 0 && (n != NET_AUTH_PROOF_LEN || memcmp(mac, p, n)))
			abort();
		break;
	}
	if (rc != 0 && rc != Q_EPROTO && rc != Q_EVERSION)
		abort();
	return 0;
}
