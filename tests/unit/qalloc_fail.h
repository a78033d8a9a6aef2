/*
 * qalloc_fail.h - a test-only hook that makes the Nth allocation fail.
 *
 * Test programs that use it link with
 *   -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=strdup
 *   -Wl,--wrap=strndup
 * (QALLOC_WRAP_FLAGS in tests/unit/oom.mk). The linker then sends every
 * call to those functions made by the objects of the program - the test
 * itself and the static module libraries it links - to the __wrap_
 * functions in qalloc_fail.c, which count the calls and fail the armed
 * one with NULL and errno = ENOMEM, or pass it to the real function (under
 * ASan that is the sanitizer's allocator, so leaks are still tracked).
 * Calls made inside shared libraries (libc itself, libuv, snappy) are not
 * wrapped and never fail.
 *
 * Threading: the counters are atomic; calls from background threads count
 * too, so with threads the Nth call is not always the same call.
 * Ownership: nothing is allocated by the hook itself.
 */
#ifndef QALLOC_FAIL_H
#define QALLOC_FAIL_H

#include <stdint.h>

/* From now on the nth (1-based) wrapped allocation fails; if sticky, every
 * later one fails too. Resets the counters. n = 0 disarms. */
void qalloc_fail_arm(uint64_t n, int sticky);
/* Stops failing; the counters are kept for qalloc_fail_hit/_calls. */
void qalloc_fail_disarm(void);
/* Number of allocations that failed since the last arm. */
uint64_t qalloc_fail_hit(void);
/* Wrapped allocation calls seen since the last arm (or since start). */
uint64_t qalloc_fail_calls(void);
/* 1 if the program was really linked with the wraps (a self-check). */
int qalloc_fail_linked(void);

/*
 * Leak checks for the forked qtest children, which end with _exit and so
 * never run LeakSanitizer's exit-time check. qalloc_leak_check() runs it
 * now: 1 if LeakSanitizer reported a leak (printed on stderr), 0 if not,
 * -1 if the program was built without LeakSanitizer.
 */
int qalloc_leak_check(void);

#endif
