/*
 * node_fault.c - the run-time fault switch of a node's store (node_fault.h).
 *
 * Invariants: the fault env lives from node_fault_open to node_fault_free
 * and is armed only by the poll thread (sticky failures from the next call
 * of the chosen kinds, or disarmed). The thread re-reads the control file
 * every NODE_FAULT_POLL_MS and acts only when its text changed.
 * Threading: one poll thread; stop/join under a mutex + condition variable
 * so node_fault_free returns within one poll period.
 */
#include "node/node_fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/qerr.h"

#define CONTROL_MAX 256

struct node_fault {
	q_env *fe;
	char *path;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	char last[CONTROL_MAX];
};

static const struct {
	const char *name;
	int mask;
} kinds[] = {
	{"open", Q_FAULT_OPEN},     {"read", Q_FAULT_READ},     {"write", Q_FAULT_WRITE},
	{"sync", Q_FAULT_SYNC},     {"rename", Q_FAULT_RENAME}, {"unlink", Q_FAULT_UNLINK},
	{"all", Q_FAULT_ALL},
};

int node_fault_parse(const char *line, int *mask, int *err)
{
	char buf[CONTROL_MAX];
	snprintf(buf, sizeof(buf), "%s", line);
	char *save = NULL;
	char *k = strtok_r(buf, " \t\r\n", &save);
	*mask = 0;
	*err = 0;
	if (!k || !strcmp(k, "off"))
		return strtok_r(NULL, " \t\r\n", &save) ? -EINVAL : 0;
	char *e = strtok_r(NULL, " \t\r\n", &save);
	if (!e || strtok_r(NULL, " \t\r\n", &save))
		return -EINVAL;
	if (!strcmp(e, "eio"))
		*err = -EIO;
	else if (!strcmp(e, "enospc"))
		*err = -ENOSPC;
	else
		return -EINVAL;
	char *ksave = NULL;
	for (char *t = strtok_r(k, ",", &ksave); t; t = strtok_r(NULL, ",", &ksave)) {
		size_t i;
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (!strcmp(t, kinds[i].name))
				break;
		if (i == sizeof(kinds) / sizeof(kinds[0]))
			return -EINVAL;
		*mask |= kinds[i].mask;
	}
	return *mask ? 0 : -EINVAL;
}

/* Reads the control file's first line ("" if absent or unreadable). */
static void read_control(const char *path, char *out, size_t cap)
{
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(out, (int)cap, f))
		out[0] = 0;
	fclose(f);
}

static void apply(node_fault *nf, const char *text)
{
	int mask, err;
	if (node_fault_parse(text, &mask, &err)) {
		Q_ERROR("fault", "%s: cannot parse \"%s\" (want \"<kinds> eio|enospc\" or \"off\"); "
			"faults unchanged", nf->path, text);
		return;
	}
	if (mask) {
		q_fault_env_fail_at(nf->fe, mask, 1, err, 1);
		Q_WARN("fault", "injecting %s into the store's calls (mask 0x%x) from %s",
		       err == -EIO ? "EIO" : "ENOSPC", mask, nf->path);
	} else {
		q_fault_env_fail_at(nf->fe, 0, 0, 0, 0);
		Q_WARN("fault", "fault injection off (%s)", nf->path);
	}
}

static void *poll_main(void *arg)
{
	node_fault *nf = arg;
	char text[CONTROL_MAX];
	pthread_mutex_lock(&nf->mu);
	while (!nf->stop) {
		pthread_mutex_unlock(&nf->mu);
		read_control(nf->path, text, sizeof(text));
		if (strcmp(text, nf->last)) {
			memcpy(nf->last, text, sizeof(text));
			apply(nf, text);
		}
		pthread_mutex_lock(&nf->mu);
		if (nf->stop)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += NODE_FAULT_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&nf->cv, &nf->mu, &ts);
	}
	pthread_mutex_unlock(&nf->mu);
	return NULL;
}

int node_fault_open(node_fault **out)
{
	*out = NULL;
	const char *path = getenv(NODE_FAULT_ENV_VAR);
	if (!path || !*path)
		return 0;
	int rc;
	node_fault *nf = calloc(1, sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	nf->path = strdup(path);
	nf->fe = q_fault_env_new(q_env_posix());
	if (!nf->path || !nf->fe) {
		rc = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&nf->mu, NULL);
	pthread_cond_init(&nf->cv, NULL);
	/* the state at start applies before the store opens */
	read_control(nf->path, nf->last, sizeof(nf->last));
	if (nf->last[0])
		apply(nf, nf->last);
	rc = -pthread_create(&nf->thr, NULL, poll_main, nf);
	if (rc) {
		pthread_cond_destroy(&nf->cv);
		pthread_mutex_destroy(&nf->mu);
		goto fail;
	}
	Q_WARN("fault", "test facility on: the store's I/O goes through the fault env, "
	       "controlled by %s", nf->path);
	*out = nf;
	return 0;
fail:
	q_fault_env_free(nf->fe);
	free(nf->path);
	free(nf);
	return rc;
}

q_env *node_fault_env(node_fault *nf)
{
	return nf->fe;
}

void node_fault_free(node_fault *nf)
{
	if (!nf)
		return;
	pthread_mutex_lock(&nf->mu);
	nf->stop = 1;
	pthread_cond_signal(&nf->cv);
	pthread_mutex_unlock(&nf->mu);
	pthread_join(nf->thr, NULL);
	pthread_cond_destroy(&nf->cv);
	pthread_mutex_destroy(&nf->mu);
	q_fault_env_free(nf->fe);
	free(nf->path);
	free(nf);
}
