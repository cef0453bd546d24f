/*
 * mibera-job cancel JOB: stops a job. It is marked cancelled at once (the
 * coordinator starts nothing more for it) and the step running on its
 * worker is ended there, its whole process group.
 * mibera-job retry JOB: queues a failed or cancelled job again; it resumes
 * from its first unfinished step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "coordinator/cli/cli.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"
#include "coordinator/workerconn.h"

static int job_arg(int argc, char **argv, long long *id)
{
	if (argc != 2 || cli_job_id(argv[1], id) != 0) {
		fprintf(stderr, "usage: mibera-job %s JOB\n", argv[0]);
		return 2;
	}
	return 0;
}

/* Runs `mibera-worker cancel job-N` on the job's worker. */
static int cancel_on_worker(struct mb_store *s, const struct mb_job_row *j)
{
	struct mb_transport *t = NULL;
	struct mb_worker_row w;
	char msg[1024], agent[2200], job[32];
	const char *argv[6];
	struct mb_exec x;
	int rc;

	if (mb_store_worker_get(s, j->worker, &w) != 0)
		return MB_ENOENT;
	rc = mb_worker_connect(&w, NULL, &t, agent, sizeof(agent), msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "mibera-job cancel: %s\n", msg);
		return rc;
	}
	snprintf(job, sizeof(job), "job-%lld", (long long)j->id);
	argv[0] = agent;
	argv[1] = "cancel";
	argv[2] = job;
	argv[3] = "--dir";
	argv[4] = w.dir;
	argv[5] = NULL;
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.timeout_ms = 60000;
	rc = mb_transport_exec(t, &x);
	mb_transport_free(t);
	return rc == 0 && x.status == 0 ? 0 : MB_EIO;
}

int cmd_cancel(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	long long id;
	int rc;

	if ((rc = job_arg(argc, argv, &id)) != 0)
		return rc;
	if (cli_open_job("cancel", id, &s, &j) != 0)
		return 1;
	if (strcmp(j.state, "succeeded") == 0 || strcmp(j.state, "failed") == 0 ||
	    strcmp(j.state, "cancelled") == 0) {
		fprintf(stderr, "mibera-job cancel: job %lld is already %s\n", id,
			j.state);
		mb_store_close(s);
		return 1;
	}
	mb_store_job_set_state(s, id, "cancelled", "cancelled by a person");
	if (strcmp(j.state, "running") == 0 && cancel_on_worker(s, &j) != 0)
		fprintf(stderr, "mibera-job cancel: the job is cancelled; its step "
			"on '%s' could not be stopped now (mibera-worker cancel "
			"job-%lld there)\n", j.worker, id);
	printf("cancelled job %lld\n", id);
	mb_store_close(s);
	return 0;
}

int cmd_retry(int argc, char **argv)
{
	struct mb_store *s;
	long long id;
	int rc;

	if ((rc = job_arg(argc, argv, &id)) != 0)
		return rc;
	if (cli_open(&s) != 0)
		return 1;
	{
		/* its worker must still be there to run it */
		struct mb_job_row j;
		struct mb_worker_row w;

		if (mb_store_job_get(s, id, &j) == 0 &&
		    mb_store_worker_get(s, j.worker, &w) == MB_ENOENT) {
			fprintf(stderr, "mibera-job retry: job %lld ran on worker "
				"'%s', which was removed; submit it again with "
				"--worker NAME\n", id, j.worker);
			mb_store_close(s);
			return 1;
		}
	}
	rc = mb_store_job_retry(s, id);
	mb_store_close(s);
	if (rc == MB_ENOENT)
		fprintf(stderr, "mibera-job retry: no job %lld\n", id);
	else if (rc == MB_EBUSY)
		fprintf(stderr, "mibera-job retry: job %lld is not failed or "
			"cancelled\n", id);
	else if (rc != 0)
		fprintf(stderr, "mibera-job retry: %s\n", mb_strerror(rc));
	else
		printf("queued job %lld again\n", id);
	return rc == 0 ? 0 : 1;
}
