/*
 * mem.h - the memtable: a skiplist of internal keys in an arena.
 *
 * Invariants: entries are never removed or changed once inserted; a delete is
 * an entry of kind KIND_DEL. All memory comes from the memtable's arena (or,
 * for values added by mem_add_ref, from shared batch encodings it holds
 * references on) and is freed at once when the last reference goes.
 *
 * Thread safety: one writer at a time (the engine's commit leader) may call
 * mem_add while any number of readers call mem_get or iterate; readers need
 * no lock (next pointers are published with release stores and read with
 * acquire loads). mem_ref/mem_unref are atomic.
 */
#ifndef Q_LSM_MEM_H
#define Q_LSM_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "lsm/lsm_internal.h"
#include "util/buf.h"

typedef struct mem_table mem_table;
struct batch_hold;

/* A new memtable with one reference held by the caller. */
mem_table *mem_new(void);
void mem_ref(mem_table *m);
void mem_unref(mem_table *m);
/* Inserts (key, seq, kind, value); -ENOMEM if the arena cannot grow. */
int mem_add(mem_table *m, uint64_t seq, int kind, q_slice key, q_slice value);
/* mem_add without copying the value: value.p..+value.n lies inside the
 * bytes of hold (batch.h), which the memtable takes a reference on until it
 * is freed. (Copies instead when its list of holds cannot grow.) */
int mem_add_ref(mem_table *m, uint64_t seq, int kind, q_slice key, q_slice value,
		struct batch_hold *hold);
/* Newest entry for key with seq <= snap: returns 1 and sets *kind (and
 * appends the value to out, reset first, for KIND_PUT), 0 if none, or
 * -ENOMEM. */
int mem_get(mem_table *m, q_slice key, uint64_t snap, int *kind, q_buf *out);
/* mem_get with hash = mem_key_hash(key) computed by the caller (once per
 * lookup for all memtables; it equals the tables' bloom_hash). */
int mem_get_hashed(mem_table *m, q_slice key, uint64_t hash, uint64_t snap, int *kind,
		   q_buf *out);
uint64_t mem_key_hash(q_slice key);
/* Bytes of entries (and skiplist links) so far; the arena may hold up to
 * one block (256 KiB) more. */
size_t mem_usage(const mem_table *m);
uint64_t mem_entries(const mem_table *m);
/* Iterator over all entries (it holds a reference on m). */
lsm_it *mem_iter_new(mem_table *m);

/* The log file number whose records this memtable holds (set by owner). */
void mem_set_log(mem_table *m, uint64_t lognum);
uint64_t mem_log(const mem_table *m);
/* Marks the memtable's log as closed with all of its records written (by
 * the leader that switched it out; before the flush thread sees it). */
void mem_seal_log(mem_table *m);
/* For a value v returned by an iterator of an immutable memtable: 1 and
 * *offset = the file offset in the memtable's (sealed) log where the
 * value's bytes begin (they run on per wal_payload_offset), if the value
 * is held by reference in a logged batch encoding; else 0 (the value must
 * be copied elsewhere to outlive the log). The first call indexes the
 * memtable's holds by address (O(h log h), then O(log h) per value): one
 * thread at a time (the flush), only once nothing is inserted any more. */
int mem_value_in_log(mem_table *m, q_slice v, uint64_t *offset);
/* 1 if mem_value_in_log can find any value of m (its log is sealed and it
 * holds values by reference); 0: it never will. */
int mem_may_have_log_values(const mem_table *m);

#endif
