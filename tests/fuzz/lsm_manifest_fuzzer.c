/* Fuzz target: the manifest decoder of src/lsm. A decoded manifest must
 * encode nothing out of bounds: every file's keys lie inside the input. */
#include <stdint.h>
#include <stdlib.h>

#include "lsm/ver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	man_data md;
	size_t bad;
	if (ver_manifest_decode(data, size, &md, &bad) == 0) {
		for (size_t i = 0; i < md.nfiles; i++) {
			const man_file *f = &md.files[i];
			if (f->smallest.p < data || f->smallest.p + f->smallest.n > data + size ||
			    f->largest.p < data || f->largest.p + f->largest.n > data + size ||
			    f->level < 0 || f->level >= LSM_LEVELS)
				abort();
			if (f->ref_start + f->nrefs > md.nrefs)
				abort();
		}
		for (size_t i = 1; i < md.nblobs; i++)
			if (md.blobs[i].number <= md.blobs[i - 1].number)
				abort();
		ver_manifest_free(&md);
	} else if (bad > size) {
		abort();
	}
	return 0;
}
