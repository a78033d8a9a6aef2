/*
 * aae_format.h - every constant of the anti-entropy formats, in one place.
 *
 * docs/aae.md describes the same layouts in prose. Three formats live here:
 *   1. the Merkle tree geometry and hash rules (what two replicas must agree
 *      on to compare trees at all),
 *   2. the persisted tree file (aae_tree_save / aae_tree_load),
 *   3. the exchange messages (aae_msg.c), carried inside net frames of type
 *      NET_MSG_AAE_FIRST..NET_MSG_AAE_LAST by the transport.
 * Changing a value here changes a format: bump the matching version.
 *
 * Threading: constants only.
 */
#ifndef Q_AAE_FORMAT_H
#define Q_AAE_FORMAT_H

#include <stdint.h>

/* ---- tree geometry and hash rules ---------------------------------------
 * Fixed fan-out 16; depth d gives 16^d leaf buckets. Level 0 is the root,
 * level d holds the leaves. A key's bucket is the top 4*d bits of
 * q_hash64(key, AAE_BUCKET_SEED) (a seed distinct from the ring's, so the
 * keys of one ring range spread over all buckets). */
#define AAE_FANOUT 16u
#define AAE_FANOUT_BITS 4u
#define AAE_DEPTH_MIN 1u
#define AAE_DEPTH_MAX 6u       /* 16^6 = 16M buckets, 128 MiB of leaves */
#define AAE_DEPTH_DEFAULT 4u   /* 65536 buckets, 512 KiB of leaves */
#define AAE_BUCKET_SEED 0x6161656275636bULL  /* "aaebuck" */
/* Pair hash: q_hash64(key, AAE_PAIR_SEED ^ digest). Leaf = sum mod 2^64 of
 * the pair hashes of its keys (0 when empty). */
#define AAE_PAIR_SEED 0x6161657061697248ULL  /* "aaepairH" */
/* Inner node: q_hash64(16 child hashes as fixed64 LE, AAE_NODE_SEED ^ level). */
#define AAE_NODE_SEED 0x616165696e6e6572ULL  /* "aaeinner" */

/* ---- persisted tree file ---------------------------------------------------
 *   offset size field
 *   0      8    magic "QAAETREE"
 *   8      4    format version (AAE_TREE_VERSION)
 *   12     1    fan-out bits (4)
 *   13     1    depth
 *   14     2    reserved, 0
 *   16     8    range start  (ring_range.start)
 *   24     8    range end    (ring_range.end)
 *   32     8    stamp        (caller's freshness token, see aae_tree_load)
 *   40     8    key count
 *   48     8    non-empty leaves m
 *   56     ...  m x (varint gap to previous non-empty leaf index + 1,
 *                    fixed64 leaf hash), ascending leaf index
 *   end-4  4    q_csum32 of every byte before it
 */
#define AAE_TREE_MAGIC "QAAETREE"
#define AAE_TREE_VERSION 1u
#define AAE_TREE_HDR_LEN 56u

/* ---- exchange messages -----------------------------------------------------
 * Every message: u8 version, u8 type, fixed64 exchange id, fixed64 range
 * start, fixed64 range end, then the body of its type (docs/aae.md). */
#define AAE_MSG_VERSION 1u
#define AAE_MSG_HDR_LEN 26u

enum aae_msg_type {
	AAE_MSG_ROOT_REQ = 1,      /* body: empty */
	AAE_MSG_ROOT_RESP = 2,     /* body: u8 depth, fixed64 root, varint keys */
	AAE_MSG_CHILDREN_REQ = 3,  /* body: u8 level, varint n, n x varint node */
	AAE_MSG_CHILDREN_RESP = 4, /* body: u8 level, varint n, n x (varint node, 16 x fixed64) */
	AAE_MSG_BUCKETS_REQ = 5,   /* body: varint n, n x varint bucket */
	AAE_MSG_BUCKETS_RESP = 6,  /* body: fixed32 n, n x (fixed32 bucket, fixed32 k,
	                              k x (lenbytes key, fixed64 digest)); fixed
	                              counts so a responder can patch them */
	AAE_MSG_ERROR = 7,         /* body: varint code (as negative int), lenbytes text */
	AAE_MSG_ROOTS_REQ = 8,     /* many ranges at once; header range (0, 0); body:
	                              varint n, n x (fixed64 start, fixed64 end),
	                              strictly ascending by (start, end) */
	AAE_MSG_ROOTS_RESP = 9     /* body: varint n, n x (fixed64 start, fixed64 end,
	                              u8 status, u8 depth, fixed64 root) in request order */
};
#define AAE_MSG_TYPE_LAST AAE_MSG_ROOTS_RESP

/* ROOTS_RESP status of one range; depth and root are 0 unless OK. */
enum aae_root_status {
	AAE_ROOT_OK = 0,
	AAE_ROOT_UNKNOWN = 1,   /* the peer keeps no tree for this range */
	AAE_ROOT_NOT_READY = 2  /* the peer's tree is being built */
};

/* Hard limits enforced by the decoder (larger counts are Q_ETOOBIG). */
#define AAE_MAX_NODES_PER_MSG 4096u     /* parents in one CHILDREN req/resp */
#define AAE_MAX_BUCKETS_PER_MSG 4096u   /* buckets in one BUCKETS req/resp */
#define AAE_MAX_RANGES_PER_MSG 4096u    /* ranges in one ROOTS req/resp */
#define AAE_MAX_KEYS_PER_BUCKET 65536u  /* pairs in one bucket of one resp */
#define AAE_MAX_KEY (64u * 1024u)       /* = NET_MAX_KEY */
#define AAE_MAX_ERRTEXT 1024u
#define AAE_MAX_MSG (32u * 1024u * 1024u) /* bytes of one encoded message */

#endif
