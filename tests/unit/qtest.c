/*
 * qtest.c - the runner behind qtest.h: one forked child per test, and the
 * helpers tests share (qtest_free_port, qtest_count_in_file,
 * qtest_wait_flag).
 */
#include "qtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

char qtest_tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int qtest_run(const struct qtest_case *cases, size_t n, int argc, char **argv)
{
	int failed = 0, ran = 0;
	const char *filter = argc > 1 ? argv[1] : NULL;
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (size_t i = 0; i < n; i++) {
		if (filter && !strstr(cases[i].name, filter))
			continue;
		snprintf(qtest_tmpdir, sizeof(qtest_tmpdir), "%s/qtest-%s-XXXXXX", base, cases[i].name);
		if (!mkdtemp(qtest_tmpdir)) {
			fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
			return 1;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			cases[i].fn();
			fflush(stdout);
			_exit(0);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		ran++;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			printf("ok %d - %s (%.0f ms)\n", ran, cases[i].name, ms);
			nftw(qtest_tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		} else {
			failed++;
			if (WIFSIGNALED(st))
				printf("FAIL %d - %s (signal %d; files kept in %s)\n", ran, cases[i].name,
				       WTERMSIG(st), qtest_tmpdir);
			else
				printf("FAIL %d - %s (exit %d; files kept in %s)\n", ran, cases[i].name,
				       WEXITSTATUS(st), qtest_tmpdir);
		}
		fflush(stdout);
	}
	printf("%d tests, %d failed\n", ran, failed);
	if (ran == 0) {
		printf("no test matched\n");
		return 1;
	}
	return failed ? 1 : 0;
}

/* The low end of the kernel's ephemeral port range (32768 if unreadable). */
static int ephemeral_low(void)
{
	int lo = 32768, hi = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	return lo;
}

static int bindable(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int qtest_free_port(void)
{
	int lo = ephemeral_low();
	int top = lo > 11000 ? lo : 65536;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
	for (int i = 0; i < 200; i++) {
		x ^= x << 13; /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		int port = 10000 + (int)(x % (uint64_t)(top - 10000));
		if (bindable(port))
			return port;
	}
	QTEST_FAIL_("no bindable port below %d in 200 tries", top);
}

int qtest_count_in_file(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		QTEST_FAIL_("%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *d = malloc(cap);
	if (!d)
		QTEST_FAIL_("out of memory");
	size_t got;
	while ((got = fread(d + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nd = realloc(d, cap * 2);
			if (!nd)
				QTEST_FAIL_("out of memory");
			d = nd;
			cap *= 2;
		}
	}
	fclose(f);
	int count = 0;
	size_t nl = strlen(needle);
	for (size_t i = 0; nl && i + nl <= n; i++)
		if (memcmp(d + i, needle, nl) == 0)
			count++;
	free(d);
	return count;
}

int qtest_wait_flag(atomic_int *flag, int ms)
{
	struct timespec ts = {0, 1000000};
	for (int i = 0; i < ms && !atomic_load(flag); i++)
		nanosleep(&ts, NULL);
	return atomic_load(flag);
}
