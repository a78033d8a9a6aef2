/*
 * node_fs_msg.h - payloads of the filesystem admin messages (message types
 * NET_MSG_FS_INFO..NET_MSG_FS_SCAN_RESP, src/net/net_proto.h), which carry
 * them as opaque blobs. docs/filesystem.md ("Node messages") describes the
 * same layout in prose; every limit is defined here.
 *
 *   FS_INFO       u8 version
 *   FS_INFO_RESP  u8 version, fixed64 total, free, avail (bytes of the
 *                 node's data file system: statvfs blocks, free blocks,
 *                 blocks free to unprivileged users, times the fragment
 *                 size), fixed64 files, ffree (inodes), fixed64 hints
 *                 (hinted writes this node keeps for others), varint n
 *                 (the node's replication factor), varint nmembers
 *                 (<= NODE_FS_MAX_MEMBERS), per member: str id (1..63),
 *                 str addr (1..63), u8 state (members.h member_state,
 *                 0..2), u8 self (0|1)
 *   FS_SCAN       u8 version, str prefix (<= NODE_FS_MAX_PREFIX), str after
 *                 (<= NET_MAX_KEY; empty: from the prefix on), varint
 *                 max_keys (1..NODE_FS_SCAN_MAX_KEYS), varint max_bytes
 *                 (1..NODE_FS_SCAN_MAX_BYTES), u8 flags (NODE_FS_SCAN_*)
 *   FS_SCAN_RESP  u8 version, u8 more (1: keys under the prefix remain
 *                 after the last one), varint nkeys (<= max_keys), per key:
 *                 str key (1..NET_MAX_KEY), varint nlive, varint ntomb,
 *                 fixed64 newest_ns (newest write among the live siblings,
 *                 0 if none), varint live_bytes (sum of the live values),
 *                 str context (<= NET_MAX_CTX: the causal context of the
 *                 stored set, as a client read returns it), u8 has_values;
 *                 if 1, nlive times str value
 * A str is a varint length and the bytes. Keys are the node's own replica
 * keys (what its store holds, not a quorum read), ascending, each strictly
 * after `after`. A stored set that does not decode is reported with nlive =
 * ntomb = 0 and newest_ns = UINT64_MAX (NODE_FS_CORRUPT), so a reader knows
 * it exists and cannot be judged.
 *
 * Decoders check every bound and never read past the input; they return
 * Q_EPROTO (malformed, trailing bytes), Q_ETRUNC, Q_ETOOBIG or Q_EVERSION.
 *
 * Ownership: decoded slices point into the input, which must outlive them;
 * arrays a decoder allocates belong to the output struct (its _free).
 * Threading: pure functions.
 */
#ifndef Q_NODE_FS_MSG_H
#define Q_NODE_FS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define NODE_FS_MSG_VERSION 1
#define NODE_FS_MAX_MEMBERS 1024u
#define NODE_FS_MAX_ID 63u
#define NODE_FS_MAX_PREFIX 255u
#define NODE_FS_SCAN_MAX_KEYS 4096u
#define NODE_FS_SCAN_MAX_BYTES (32u << 20)
#define NODE_FS_MAX_SIBS 4096u /* live siblings listed for one key */
#define NODE_FS_SCAN_VALUES 0x01u /* answer with the live values */
#define NODE_FS_SCAN_KNOWN (NODE_FS_SCAN_VALUES)
#define NODE_FS_CORRUPT UINT64_MAX /* newest_ns of a set that did not decode */

typedef struct node_fs_member {
	char id[NODE_FS_MAX_ID + 1];
	char addr[NODE_FS_MAX_ID + 1];
	uint8_t state;  /* member_state */
	uint8_t self;
} node_fs_member;

typedef struct node_fs_info {
	uint64_t total, free, avail; /* bytes */
	uint64_t files, ffree;
	uint64_t hints;
	uint32_t n;
	size_t nmembers;
	node_fs_member *members; /* owned: node_fs_info_free */
} node_fs_info;

int node_fs_info_encode(const node_fs_info *in, q_buf *out);
/* out is overwritten (not freed first). */
int node_fs_info_decode(q_slice in, node_fs_info *out);
void node_fs_info_free(node_fs_info *i);

typedef struct node_fs_scan_req {
	q_slice prefix, after;
	uint32_t max_keys, max_bytes;
	uint8_t flags;
} node_fs_scan_req;

int node_fs_scan_req_encode(const node_fs_scan_req *in, q_buf *out);
int node_fs_scan_req_decode(q_slice in, node_fs_scan_req *out);

typedef struct node_fs_scan_ent {
	q_slice key;
	uint32_t nlive, ntomb;
	uint64_t newest_ns;
	uint64_t live_bytes;
	q_slice ctx;     /* the stored set's context (empty if it did not decode) */
	int has_values;
	q_slice *values; /* nlive slices when has_values; in the resp's array */
} node_fs_scan_ent;

typedef struct node_fs_scan_resp {
	int more;
	size_t nkeys;
	node_fs_scan_ent *ents; /* owned: node_fs_scan_resp_free */
	q_slice *vals;          /* owned; every entry's values */
} node_fs_scan_resp;

/* Encoding a response: begin, one add per key, then finish appends the
 * whole payload to out. The builder owns a body buffer until finish or
 * node_fs_scan_build_free. */
typedef struct node_fs_scan_build {
	q_buf body;
	size_t nkeys;
} node_fs_scan_build;

void node_fs_scan_build_init(node_fs_scan_build *b);
/* values: nlive slices, or NULL for a key listed without them. */
int node_fs_scan_build_add(node_fs_scan_build *b, const node_fs_scan_ent *e,
			   const q_slice *values);
int node_fs_scan_build_finish(node_fs_scan_build *b, int more, q_buf *out);
void node_fs_scan_build_free(node_fs_scan_build *b);

int node_fs_scan_resp_decode(q_slice in, node_fs_scan_resp *out);
void node_fs_scan_resp_free(node_fs_scan_resp *r);

#endif
