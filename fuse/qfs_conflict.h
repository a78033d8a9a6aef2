/*
 * qfs_conflict.h - which sibling a file's own name shows, and the names of
 * the conflict files that show the others.
 *
 * Rules (deterministic: every mount of a cluster computes the same names from
 * the same sibling set):
 *   - candidates are the live file siblings of one key;
 *   - order: newest mtime first; ties by the dot (node id bytewise, then
 *     counter), greater first; the first is shown under the file's own name;
 *   - every other candidate is named in Syncthing's convention
 *       STEM.sync-conflict-YYYYMMDD-HHMMSS-ORIGIN EXT
 *     where EXT is the name's extension (from the last '.' that is not the
 *     first character; empty if none), STEM the rest, the date and time the
 *     candidate's mtime in UTC, and ORIGIN the node that wrote it (characters
 *     other than [A-Za-z0-9_-] become '_'). A name that another candidate
 *     earlier in the order already took gets "-2", "-3"... after ORIGIN.
 *     Names that would exceed QFS_NAME_MAX shorten STEM.
 *
 * Pure functions, thread-safe.
 */
#ifndef QFS_CONFLICT_H
#define QFS_CONFLICT_H

#include <stddef.h>
#include <stdint.h>

#include "fuse/qfs_format.h"

typedef struct qfs_cand {
	int64_t mtime_ns;
	const char *node;  /* the dot's actor */
	uint64_t counter;  /* the dot's counter */
	const char *origin; /* writer recorded in the object; node if empty */
	size_t index;       /* caller's index (carried through sorting) */
} qfs_cand;

/* Sorts c[0..n) into display order (c[0] is shown). */
void qfs_cand_sort(qfs_cand *c, size_t n);

/* Writes the conflict name of c[k] (k >= 1, c sorted) for base into out
 * (QFS_NAME_MAX + 1 bytes). Returns 0 or -ENAMETOOLONG if base cannot hold a
 * conflict name at all. */
int qfs_conflict_name(const char *base, const qfs_cand *c, size_t n, size_t k, char *out);

/* 1 if name carries the conflict marker. */
int qfs_is_conflict_name(const char *name);

/* The possible base names a conflict name can come from (the marker's part
 * up to the extension is removed; which '.' starts the extension is not known
 * when the origin holds dots, so every choice is returned). Writes up to max
 * names of QFS_NAME_MAX + 1 bytes each into out; returns how many. */
size_t qfs_conflict_bases(const char *name, char (*out)[QFS_NAME_MAX + 1], size_t max);

#endif
