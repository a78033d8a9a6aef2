/*
 * mapg.c - guarded copies out of read-only file mappings (see mapg.h).
 *
 * Invariant: tl_active is set only between the sigsetjmp and the end of the
 * memcpy in mapg_copy, on the thread doing the copy; the handler jumps only
 * when the fault address lies in the pages of that copy's source range, so
 * a fault anywhere else is never swallowed.
 */
#include "lsm/mapg.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static struct sigaction g_prev;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;
static uintptr_t g_page = 4096;

static __thread sigjmp_buf tl_jb;
static __thread volatile sig_atomic_t tl_active;
static __thread uintptr_t tl_lo, tl_hi; /* page-rounded source range */

static void mapg_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	if (tl_active && a >= tl_lo && a < tl_hi) {
		tl_active = 0;
		siglongjmp(tl_jb, 1);
	}
	/* not ours: behave as if we had never been installed */
	if (g_prev.sa_flags & SA_SIGINFO) {
		g_prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (g_prev.sa_handler != SIG_DFL && g_prev.sa_handler != SIG_IGN) {
		g_prev.sa_handler(sig);
		return;
	}
	/* default action: restore it; returning re-executes the faulting
	 * access, which now terminates the process as usual */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGBUS, &dfl, NULL);
}

static void mapg_install(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	if (ps > 0)
		g_page = (uintptr_t)ps;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = mapg_handler;
	/* SA_NODEFER: the jump leaves the handler without restoring the signal
	 * mask, so SIGBUS must not be blocked while it runs */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &g_prev))
		g_init_rc = -errno;
}

int mapg_init(void)
{
	pthread_once(&g_once, mapg_install);
	return g_init_rc;
}

int mapg_copy(void *dst, const void *src, size_t n)
{
	if (n == 0)
		return 0;
	if (sigsetjmp(tl_jb, 0)) {
		tl_active = 0;
		return -EIO;
	}
	tl_lo = (uintptr_t)src & ~(g_page - 1);
	tl_hi = ((uintptr_t)src + n + g_page - 1) & ~(g_page - 1);
	tl_active = 1;
	atomic_signal_fence(memory_order_seq_cst);
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	tl_active = 0;
	return 0;
}
