/*
 * qalloc_fail.c - the allocation-failure hook of qalloc_fail.h.
 *
 * The __real_ symbols are resolved by the linker's --wrap option to the
 * functions the program would otherwise have called. Without the wrap
 * options the __wrap_ functions are simply never called (qalloc_fail_linked
 * then says 0 and tests refuse to run blind).
 *
 * Threading: state is in C11 atomics; arming while other threads allocate
 * is allowed (they may or may not see the new count).
 */
#include "qalloc_fail.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define QALLOC_HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(QALLOC_HAVE_LSAN)
#define QALLOC_HAVE_LSAN 1
#endif
#ifdef QALLOC_HAVE_LSAN
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static _Atomic uint64_t fail_at;   /* 0 = disarmed */
static _Atomic int fail_sticky;
static _Atomic uint64_t calls;
static _Atomic uint64_t hits;
static _Atomic int wrapped_seen;
static int trace = -1; /* QFS_OOM_TRACE=1: print the stack of each failed call */

void qalloc_fail_arm(uint64_t n, int sticky)
{
	atomic_store(&fail_at, 0);
	atomic_store(&calls, 0);
	atomic_store(&hits, 0);
	atomic_store(&fail_sticky, sticky);
	atomic_store(&fail_at, n);
}

void qalloc_fail_disarm(void)
{
	atomic_store(&fail_at, 0);
}

uint64_t qalloc_fail_hit(void)
{
	return atomic_load(&hits);
}

uint64_t qalloc_fail_calls(void)
{
	return atomic_load(&calls);
}

int qalloc_fail_linked(void)
{
	/* a wrapped call through a pointer the compiler cannot see through */
	void *(*volatile m)(size_t) = malloc;
	void *p = m(1);
	free(p);
	return atomic_load(&wrapped_seen);
}

/* Counts one call; 1 if it must fail. */
static int fail_now(void)
{
	atomic_store_explicit(&wrapped_seen, 1, memory_order_relaxed);
	uint64_t c = atomic_fetch_add(&calls, 1) + 1;
	uint64_t at = atomic_load(&fail_at);
	if (at == 0)
		return 0;
	if (c == at || (c > at && atomic_load(&fail_sticky))) {
		atomic_fetch_add(&hits, 1);
		if (trace < 0)
			trace = getenv("QFS_OOM_TRACE") != NULL;
#ifdef QALLOC_HAVE_LSAN
		if (trace)
			__sanitizer_print_stack_trace();
#endif
		return 1;
	}
	return 0;
}

void *__wrap_malloc(size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strndup(s, n);
}

int qalloc_leak_check(void)
{
#ifdef QALLOC_HAVE_LSAN
	return __lsan_do_recoverable_leak_check() ? 1 : 0;
#else
	return -1;
#endif
}
