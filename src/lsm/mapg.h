/*
 * mapg.h - guarded copies out of read-only file mappings.
 *
 * Tables are read through a shared read-only mmap. If the file shrinks
 * under the mapping (an outside agent truncates it, or the disk fails to
 * deliver a page), touching the lost pages raises SIGBUS, which would kill
 * the whole node. Every access of the engine to mapped table bytes goes
 * through mapg_copy, which turns such a fault into an error return.
 *
 * How: mapg_init installs (once per process) a SIGBUS handler. mapg_copy
 * records the source range and a jump buffer in thread-local storage, then
 * copies. A SIGBUS whose fault address lies in the range of the copy that
 * the faulting thread has in progress jumps back and mapg_copy returns
 * -EIO. Any other SIGBUS goes to the handler that was installed before
 * (or, if that was the default action, the default action is restored and
 * the fault repeats, so the process dies as it would have). The copy is a
 * plain memcpy into caller memory: nothing is allocated or locked while a
 * fault can occur, so jumping out of it leaks nothing.
 *
 * Threading: mapg_copy may run in any number of threads at once (the
 * state is per thread). mapg_init is idempotent and thread-safe.
 */
#ifndef Q_LSM_MAPG_H
#define Q_LSM_MAPG_H

#include <stddef.h>

/* Installs the SIGBUS handler (first call only): 0 or -errno. */
int mapg_init(void);
/* Copies n bytes from the mapped src to dst: 0, or -EIO if a page of src
 * could not be read (mapg_init must have succeeded). */
int mapg_copy(void *dst, const void *src, size_t n);

#endif
