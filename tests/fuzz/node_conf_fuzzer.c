/* Fuzz target: a node's configuration text through the typed loader
 * (node_conf_load: numbers, quorum checks, listen address, peer lists). */
#include <stdint.h>
#include <stdlib.h>

#include "node/node_conf.h"
#include "util/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_conf *q = q_conf_new();
	if (!q)
		return 0;
	if (q_conf_parse(q, (const char *)data, size) == 0) {
		node_conf c;
		char err[256];
		int rc = node_conf_load(q, &c, err, sizeof(err));
		if (rc == 0 && (c.r > c.n || c.w > c.n || c.n < 1))
			abort(); /* the loader must reject impossible quorums */
		node_conf_free(&c);
	}
	q_conf_free(q);
	return 0;
}
