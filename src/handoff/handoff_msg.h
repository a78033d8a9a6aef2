/*
 * handoff_msg.h - payloads of the range-handoff and leave messages
 * (NET_MSG_HANDOFF_BATCH*, NET_MSG_LEAVE*; the net layer treats them as
 * opaque bytes). Layouts (docs/handoff.md, all varints LEB128 and canonical):
 *
 *   HANDOFF_BATCH       u8 version (HANDOFF_MSG_V1), lenbytes sender id
 *                       (1..HANDOFF_ID_MAX), varint count
 *                       (1..HANDOFF_BATCH_MAX_KEYS), count x (lenbytes key
 *                       (1..NET_MAX_KEY), lenbytes object (1..NET_MAX_OBJECT))
 *   HANDOFF_BATCH_RESP  u8 version, varint merged, varint unchanged
 *   LEAVE               u8 version, lenbytes node id (0..HANDOFF_ID_MAX;
 *                       empty = the node receiving it)
 *   LEAVE_RESP          u8 version, lenbytes text (0..HANDOFF_TEXT_MAX)
 *
 * The object bytes are an encoded sibling set (src/object); this codec does
 * not look inside them (the receiver decodes them before merging).
 *
 * Errors: Q_EVERSION (unknown version byte), Q_EPROTO (bad count, empty
 * field, trailing bytes), Q_ECORRUPT (overlong varint), Q_ETRUNC (cut
 * short), Q_ETOOBIG (a field over its limit), -ENOMEM.
 *
 * Ownership: decoded slices point into the input bytes; a decoded batch's
 * entry array is malloc'ed (handoff_batch_clear frees it).
 *
 * Thread safety: pure functions.
 */
#ifndef Q_HANDOFF_MSG_H
#define Q_HANDOFF_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HANDOFF_MSG_V1 1u
#define HANDOFF_ID_MAX 64u
#define HANDOFF_BATCH_MAX_KEYS 4096u
#define HANDOFF_TEXT_MAX 1024u
/* The sender closes a batch at this many bytes of keys and objects; a
 * single entry larger than it travels alone (up to the net layer's 4 MiB
 * opaque payload; larger objects go as REPL_PUT). */
#define HANDOFF_BATCH_TARGET_BYTES (256u * 1024u)

typedef struct handoff_entry {
	q_slice key;
	q_slice object;
} handoff_entry;

typedef struct handoff_batch {
	q_slice sender;
	handoff_entry *v;
	size_t n;
} handoff_batch;

/* Appends the encoding of a batch to out (entries as given). */
int handoff_batch_encode(q_slice sender, const handoff_entry *v, size_t n, q_buf *out);
int handoff_batch_decode(const void *p, size_t n, handoff_batch *out);
void handoff_batch_clear(handoff_batch *b);

int handoff_batch_resp_encode(uint64_t merged, uint64_t unchanged, q_buf *out);
int handoff_batch_resp_decode(const void *p, size_t n, uint64_t *merged, uint64_t *unchanged);

int handoff_leave_encode(q_slice node, q_buf *out);
int handoff_leave_decode(const void *p, size_t n, q_slice *node);

int handoff_leave_resp_encode(q_slice text, q_buf *out);
int handoff_leave_resp_decode(const void *p, size_t n, q_slice *text);

#endif
