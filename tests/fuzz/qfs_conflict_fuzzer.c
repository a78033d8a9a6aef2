/* Fuzz target: conflict-name parsing and generation on arbitrary names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/qfs_conflict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[QFS_NAME_MAX + 1];
	char out[8][QFS_NAME_MAX + 1];
	size_t n = size < QFS_NAME_MAX ? size : QFS_NAME_MAX;
	memcpy(name, data, n);
	name[n] = 0;
	size_t nb = qfs_conflict_bases(name, out, 8);
	for (size_t i = 0; i < nb; i++)
		if (strlen(out[i]) > QFS_NAME_MAX)
			abort();
	int64_t t = 0;
	if (size >= 8)
		memcpy(&t, data, 8);
	qfs_cand c[3] = {{t, name, 1, "", 0}, {t, "n2", 2, name, 1}, {(int64_t)~(uint64_t)t, "", 0, "", 2}};
	qfs_cand_sort(c, 3);
	char cn[QFS_NAME_MAX + 1];
	for (size_t k = 1; k < 3; k++)
		if (name[0] && qfs_conflict_name(name, c, 3, k, cn) == 0 && strlen(cn) > QFS_NAME_MAX)
			abort();
	return 0;
}
