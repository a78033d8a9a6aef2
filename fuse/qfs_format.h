/*
 * qfs_format.h - every constant of the filesystem's object format and key
 * layout, in one place (described in docs/filesystem.md).
 *
 * Keys:
 *   "f:" + absolute path      metadata object of a file, directory, symlink
 *                             or special file ("f:/" is the root directory)
 *   "c:" + 32 lowercase hex   one chunk of a large file, named by a 128-bit
 *                             hash of its content (immutable, never conflicts)
 *
 * Values of "f:" keys are qfs objects (qfs_obj.h): magic, version, type,
 * metadata, xattrs, a type-specific body, and a trailing checksum.
 * Values of "c:" keys are the raw chunk bytes.
 *
 * Changing anything here changes the stored format: bump QFS_OBJ_VERSION and
 * keep the decoder reading the older versions.
 */
#ifndef QFS_FORMAT_H
#define QFS_FORMAT_H

#define QFS_KEY_META "f:"
#define QFS_KEY_CHUNK "c:"
#define QFS_CHUNK_ID_LEN 16 /* bytes of content hash in a chunk id */
#define QFS_CHUNK_KEY_LEN (2 + 2 * QFS_CHUNK_ID_LEN)

#define QFS_OBJ_MAGIC 0x4651u /* "QF" little endian */
#define QFS_OBJ_VERSION 1

/* Object types (one byte in the object; agree with the S_IFMT bits of mode). */
enum {
	QFS_T_REG = 1,
	QFS_T_DIR = 2,
	QFS_T_LNK = 3,
	QFS_T_FIFO = 4,
	QFS_T_SOCK = 5,
	QFS_T_CHR = 6,
	QFS_T_BLK = 7
};

/* Regular-file layouts. */
enum {
	QFS_LAYOUT_INLINE = 0,
	QFS_LAYOUT_CHUNKED = 1
};

/* Chunk reference kinds. */
enum {
	QFS_CHUNK_HOLE = 0, /* all zeroes, nothing stored */
	QFS_CHUNK_DATA = 1
};

/* Hard limits checked by the decoder (a value over one is corrupt). */
#define QFS_NAME_MAX 255
#define QFS_PATH_MAX 4095
#define QFS_ORIGIN_MAX 63
#define QFS_XATTR_NAME_MAX 255
#define QFS_XATTR_VALUE_MAX 65536
#define QFS_XATTR_COUNT_MAX 1024
#define QFS_INLINE_MAX (1u << 20)      /* largest inline body accepted */
#define QFS_CHUNK_SIZE_MIN 4096u
#define QFS_CHUNK_SIZE_MAX (16u << 20)
#define QFS_CHUNKS_MAX (1u << 22)      /* chunk references in one object */
#define QFS_FILE_SIZE_MAX (1ull << 50)
#define QFS_DIR_ENTRIES_MAX (1u << 20)
#define QFS_CLOCK_MAX 4096             /* actors in a directory clock */
#define QFS_DOTS_MAX 64                /* concurrent adds kept per entry */

/* Defaults the mount daemon uses when writing (options can change them). */
#define QFS_DEFAULT_INLINE_MAX (64u << 10)
#define QFS_DEFAULT_CHUNK_SIZE (1u << 20)

/* A mount skips storing a chunk it stored itself less than this long ago
 * (same bytes, same key); past it the chunk is stored again, so a chunk that
 * a new version refers to has a write no older than this (up to the time
 * the version is stored). Part of the chunk collection contract. */
#define QFS_CHUNK_REPUT_MS (10u * 60u * 1000u)
/* An open file whose chunks went to the store ahead of its object gets its
 * object stored once the first of them is this old (writer rule 3). */
#define QFS_UNREF_MAX_MS (QFS_CHUNK_REPUT_MS / 2u)

/* statfs: the cluster's figures are asked at most this often, each ask
 * waiting at most QFS_STATFS_ASK_MS for the members' answers; a file is
 * counted as QFS_STATFS_FILE_BYTES of free space for f_ffree */
#define QFS_STATFS_CACHE_MS 3000u
#define QFS_STATFS_ASK_MS 1000u
#define QFS_STATFS_BSIZE 65536u
#define QFS_STATFS_FILE_BYTES 4096u
#define QFS_STATFS_FILES_MAX (1ull << 32)

/* Chunk collection (docs/filesystem.md, "Chunk collection"). A rename of a
 * chunked file first stores a move record under QFS_KEY_MOVES + 16 hex
 * digits of the wall clock (ns) + 16 random hex digits, listing the chunk
 * ids the moved version names:
 *   fixed16 magic QFS_MOVE_MAGIC, u8 version 1, fixed64 wall_ns,
 *   varint count (<= QFS_CHUNKS_MAX), count * 16 bytes id,
 *   fixed32 q_csum32 of everything before it.
 * The collector marks every id of every move record it finds and deletes
 * records older than its grace period. Default grace: QFS_GC_GRACE_S. */
#define QFS_KEY_MOVES "g:"
#define QFS_MOVE_KEY_LEN (2 + 16 + 16)
#define QFS_MOVE_MAGIC 0x4751u /* "QG" little endian */
#define QFS_MOVE_VERSION 1
#define QFS_GC_GRACE_S 3600u

/* A non-empty directory is renamed by copying every key below it; past
 * this many entries below it the rename gives EXDEV (mv copies instead). */
#define QFS_RENAME_TREE_MAX 10000u
/* ... and reads every key below it from all replicas (r is capped at the
 * number of replicas); when one cannot answer, the rename gives EXDEV */
#define QFS_RENAME_TREE_R 16

/* Conflict-file marker (Syncthing's convention). */
#define QFS_CONFLICT_MARK ".sync-conflict-"

/* The extended attribute that lists a file's siblings. */
#define QFS_XATTR_SIBLINGS "user.quorum.siblings"

#endif
