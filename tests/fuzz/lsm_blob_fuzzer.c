/* Fuzz target: the blob file decoders of src/lsm (blob.h). The input is
 * a blob file image: the header check, then every record decoded in turn
 * with blob_rec_decode (stopping at the first refused one), and the input
 * read as a blob pointer (either kind). Decoded slices must lie inside the input and a
 * record must re-encode to the same bytes through the writer's format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "lsm/blob.h"
#include "util/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	blob_ptr p;
	if (blob_ptr_decode((q_slice){data, size}, &p) == 0) {
		uint8_t pb[BLOB_PTR_MAX];
		size_t n = blob_ptr_encode(pb, &p);
		blob_ptr q;
		if (n > BLOB_PTR_MAX || blob_ptr_decode((q_slice){pb, n}, &q) ||
		    q.number != p.number || q.offset != p.offset || q.vlen != p.vlen ||
		    q.kind != p.kind || q.csum != p.csum)
			abort();
		/* a log value's span: the value plus a header per block it
		 * enters after its first */
		if (p.kind == BLOB_PTR_LOG) {
			uint64_t span = blob_log_span(p.offset, p.vlen);
			if (span < p.vlen ||
			    span > p.vlen + (p.vlen / (32768 - 7) + 2) * 7)
				abort();
		}
	}
	size_t off = 0;
	if (blob_header_check(data, size) == 0)
		off = BLOB_FILE_HEADER;
	/* records, as a scan of the file would find them */
	for (int i = 0; i < 10000 && off < size; i++) {
		q_slice k, v;
		size_t used, dlen;
		int comp;
		if (blob_rec_decode(data + off, size - off, &k, &v, &comp, &used))
			break;
		/* the value decoder: refuses or yields the announced length */
		if (comp == SST_COMP_NONE ||
		    (snappy_uncompressed_length((const char *)v.p, v.n, &dlen) == SNAPPY_OK &&
		     dlen <= (1u << 20))) {
			q_buf out = Q_BUF_INIT;
			int rc = blob_value_decode(v, comp, 1u << 20, &out);
			if (rc == 0 && comp == SST_COMP_NONE && (out.len != v.n ||
			    (v.n && memcmp(out.p, v.p, v.n))))
				abort();
			if (rc == 0 && comp == SST_COMP_SNAPPY && out.len != dlen)
				abort();
			q_buf_free(&out);
		}
		if (used != BLOB_REC_HEADER + k.n + v.n || used > size - off ||
		    k.p != data + off + BLOB_REC_HEADER || v.p != k.p + k.n)
			abort();
		if (q_csum32_2(data + off + 4, BLOB_REC_HEADER - 4 + k.n, v.p, v.n) !=
		    ((uint32_t)data[off] | (uint32_t)data[off + 1] << 8 |
		     (uint32_t)data[off + 2] << 16 | (uint32_t)data[off + 3] << 24))
			abort();
		off += used;
	}
	return 0;
}
