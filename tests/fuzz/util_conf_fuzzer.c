/* Fuzz target: the config file parser and its typed getters. */
#include <stdint.h>
#include <stdlib.h>

#include "util/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	q_conf *c = q_conf_new();
	if (!c)
		return 0;
	if (q_conf_parse(c, (const char *)data, size) == 0) {
		for (size_t i = 0; i < q_conf_count(c); i++) {
			const char *k, *v;
			q_conf_entry(c, i, &k, &v);
			uint64_t u;
			int b;
			q_conf_get_u64(c, k, 0, &u);
			q_conf_get_size(c, k, 0, &u);
			q_conf_get_ms(c, k, 0, &u);
			q_conf_get_bool(c, k, 0, &b);
		}
	}
	q_conf_free(c);
	return 0;
}
