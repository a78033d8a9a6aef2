/*
 * qtest.c - the runner behind qtest.h: one forked child per test.
 */
#include "qtest.h"

#include <errno.h>
#include <ftw.h>
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
