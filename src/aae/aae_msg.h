/*
 * aae_msg.h - the anti-entropy exchange messages: encoders and a strict,
 * pure decoder (layout and constants in aae_format.h, prose in docs/aae.md).
 *
 * Messages are self-contained byte strings; the transport carries them in
 * frames of the NET_MSG_AAE_* range and adds framing and checksums. Every
 * message names its exchange id (chosen by the initiator, echoed by the
 * responder) and the ring range (start, end] of the tree it is about
 * (ROOTS_REQ/ROOTS_RESP, about many ranges, carry (0, 0) there and list
 * their ranges in the body).
 *
 * Decoding rules: unknown version -> Q_EVERSION; short input -> Q_ETRUNC;
 * counts over the AAE_MAX_* limits -> Q_ETOOBIG; anything else malformed
 * (unknown type, level or node out of range, node or bucket lists not
 * strictly ascending, non-negative error code, trailing bytes) -> Q_EPROTO.
 * The decoder never allocates more than the input can justify.
 *
 * Ownership: aae_msg_decode fills *m; arrays it allocates are freed by
 * aae_msg_free; key and text slices borrow from the input buffer, which
 * must outlive m. Encoders append to a caller-owned q_buf.
 *
 * Thread safety: pure functions.
 */
#ifndef Q_AAE_MSG_H
#define Q_AAE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "aae/aae_format.h"
#include "util/buf.h"

typedef struct aae_msg_hdr {
	uint8_t type;          /* enum aae_msg_type */
	uint64_t xid;          /* exchange id */
	uint64_t range_start;  /* the tree's ring range (start, end] */
	uint64_t range_end;
} aae_msg_hdr;

typedef struct aae_pair {
	q_slice key;
	uint64_t digest;
} aae_pair;

typedef struct aae_msg_bucket {
	uint32_t bucket;
	uint32_t npairs;
	aae_pair *pairs;       /* points into aae_msg.pairs */
} aae_msg_bucket;

typedef struct aae_msg_root {
	uint64_t start, end;   /* the range */
	uint8_t status;        /* enum aae_root_status (resp only) */
	uint8_t depth;         /* resp, status OK */
	uint64_t root;         /* resp, status OK */
} aae_msg_root;

typedef struct aae_msg {
	aae_msg_hdr h;
	/* ROOT_RESP */
	uint8_t depth;
	uint64_t root;
	uint64_t keys;
	/* CHILDREN_REQ / CHILDREN_RESP: parents at level; resp: 16 hashes each */
	uint8_t level;
	uint32_t nnodes;
	uint32_t *nodes;
	uint64_t *hashes;      /* nnodes * AAE_FANOUT, resp only */
	/* BUCKETS_REQ: buckets; BUCKETS_RESP: per-bucket pair lists */
	uint32_t nbuckets;
	uint32_t *buckets;     /* req only */
	aae_msg_bucket *blist; /* resp only */
	aae_pair *pairs;       /* all pairs of the resp */
	/* ERROR */
	int32_t code;
	q_slice text;
	/* ROOTS_REQ / ROOTS_RESP */
	uint32_t nroots;
	aae_msg_root *roots;
} aae_msg;

int aae_msg_decode(const uint8_t *p, size_t n, aae_msg *m);
void aae_msg_free(aae_msg *m);
/* Peeks at the header only (for routing by range and xid). */
int aae_msg_decode_hdr(const uint8_t *p, size_t n, aae_msg_hdr *h);

int aae_msg_put_root_req(q_buf *b, const aae_msg_hdr *h);
int aae_msg_put_root_resp(q_buf *b, const aae_msg_hdr *h, uint8_t depth, uint64_t root,
			  uint64_t keys);
int aae_msg_put_children_req(q_buf *b, const aae_msg_hdr *h, uint8_t level,
			     const uint32_t *nodes, uint32_t n);
/* hashes: n * AAE_FANOUT values, node i's children at hashes[16 i ..]. */
int aae_msg_put_children_resp(q_buf *b, const aae_msg_hdr *h, uint8_t level,
			      const uint32_t *nodes, const uint64_t *hashes, uint32_t n);
int aae_msg_put_buckets_req(q_buf *b, const aae_msg_hdr *h, const uint32_t *buckets,
			    uint32_t n);
int aae_msg_put_error(q_buf *b, const aae_msg_hdr *h, int code, const char *text);
/* ROOTS_REQ uses start/end of r[0..n) (strictly ascending); ROOTS_RESP all
 * fields. The header's range should be (0, 0). */
int aae_msg_put_roots_req(q_buf *b, const aae_msg_hdr *h, const aae_msg_root *r, uint32_t n);
int aae_msg_put_roots_resp(q_buf *b, const aae_msg_hdr *h, const aae_msg_root *r, uint32_t n);

/* BUCKETS_RESP is built incrementally: begin, then per bucket
 * bucket_begin + pair*, then end. The writer patches the counts. */
typedef struct aae_bresp_writer {
	q_buf *b;
	size_t start;       /* offset of the message in b */
	size_t nb_off;      /* offset of the bucket count */
	size_t np_off;      /* offset of the current bucket's pair count */
	uint32_t nbuckets, npairs;
	int in_bucket;
} aae_bresp_writer;

int aae_bresp_begin(aae_bresp_writer *w, q_buf *b, const aae_msg_hdr *h);
int aae_bresp_bucket(aae_bresp_writer *w, uint32_t bucket);
int aae_bresp_pair(aae_bresp_writer *w, q_slice key, uint64_t digest);
/* Drops the current bucket (e.g. it would overflow the message). */
void aae_bresp_drop_bucket(aae_bresp_writer *w);
void aae_bresp_end(aae_bresp_writer *w);
/* Bytes of the message so far. */
static inline size_t aae_bresp_size(const aae_bresp_writer *w)
{
	return w->b->len - w->start;
}

#endif
