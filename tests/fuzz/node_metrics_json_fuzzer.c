/*
 * Fuzz target: the status-JSON flattener of the metrics endpoint
 * (node_metrics_flatten_json). Any input must be walked without reading
 * outside it, and every line emitted must be a "quorum_status_NAME VALUE"
 * sample (or the comment that says parsing stopped).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/node_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_buf out = Q_BUF_INIT;
	/* a copy of exactly size bytes, so reads past the end are caught */
	char *in = malloc(size ? size : 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	if (node_metrics_flatten_json(in, size, &out) < 0)
		abort();
	size_t i = 0;
	while (i < out.len) {
		const char *ln = (const char *)out.p + i;
		const char *nl = memchr(ln, '\n', out.len - i);
		if (!nl)
			abort();
		if (ln[0] != '#') {
			if (strncmp(ln, "quorum_status", 13) != 0)
				abort();
			const char *sp = memchr(ln, ' ', (size_t)(nl - ln));
			if (!sp || sp + 1 >= nl)
				abort();
			for (const char *c = ln; c < sp; c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
					abort();
		}
		i = (size_t)(nl - (const char *)out.p) + 1;
	}
	q_buf_free(&out);
	free(in);
	return 0;
}
