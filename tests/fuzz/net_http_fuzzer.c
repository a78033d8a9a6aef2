/*
 * Fuzz target: the HTTP request-head parser of the metrics endpoint
 * (net_http.h). Every outcome must be one of the documented codes; an
 * accepted head must lie within the input and within the head limit, with
 * a method of uppercase letters and a path starting with '/'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_frame.h"
#include "net/net_http.h"
#include "util/qerr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	net_http_req r;
	size_t used = 0;
	int rc = net_http_parse(data, size, &r, &used);
	if (rc == 0) {
		if (used == 0 || used > size || used > NET_HTTP_MAX_HEAD)
			abort();
		if (!r.method[0] || r.path[0] != '/' || strlen(r.path) > NET_HTTP_MAX_PATH)
			abort();
		for (const char *m = r.method; *m; m++)
			if (*m < 'A' || *m > 'Z')
				abort();
		if (r.minor != 0 && r.minor != 1)
			abort();
	} else if (rc != NET_NEED_MORE && rc != Q_EPROTO && rc != Q_ETOOBIG && rc != Q_EVERSION) {
		abort();
	}
	if (rc == NET_NEED_MORE && size >= NET_HTTP_MAX_HEAD)
		abort();
	return 0;
}
