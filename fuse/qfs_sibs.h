/*
 * qfs_sibs.h - a description of every sibling of one path's object, as the
 * mount shows them: which version the name shows, the conflict file name of
 * each other one, and its metadata. Used by `quorumctl siblings PATH`.
 *
 * The rules are those of the mount (qfs_conflict.h, docs/filesystem.md):
 * directory siblings are merged and keep the name; file siblings are put in
 * display order and the first one is shown under the name unless a directory
 * holds it; every other one gets its conflict name. A sibling that does not
 * decode is listed with its error and no name (the mount ignores it).
 *
 * Pure functions over a fetched object; thread-safe.
 * Ownership: qfs_sibs_describe allocates *out (free with free()); nothing
 * in it points into raw.
 */
#ifndef QFS_SIBS_H
#define QFS_SIBS_H

#include <stddef.h>
#include <stdint.h>

#include "client/client.h"
#include "fuse/qfs_format.h"

typedef struct qfs_sibinfo {
	size_t sib;                    /* index in raw->sib */
	int decode_rc;                 /* 0, or why the value does not decode */
	int shown;                     /* the name shows this version (a merged
					  directory: every directory sibling) */
	size_t order;                  /* display order (0 = shown); SIZE_MAX if
					  it does not decode */
	char name[QFS_NAME_MAX + 1];   /* name in the listing ("" if none) */
	uint8_t type;                  /* QFS_T_* */
	uint8_t layout;                /* regular files: QFS_LAYOUT_* */
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	char node[64];                 /* the dot: node id and counter */
	uint64_t counter;
	uint64_t wall_ns;              /* the store's write time */
	char origin[QFS_ORIGIN_MAX + 1]; /* node whose mount wrote it */
} qfs_sibinfo;

/* Describes the live siblings of raw (tombstones are skipped) for the base
 * name base. *out gets one entry per live sibling in display order (those
 * that do not decode last); *n their number (0 if none is live). */
int qfs_sibs_describe(const qc_object *raw, const char *base, qfs_sibinfo **out, size_t *n);

#endif
