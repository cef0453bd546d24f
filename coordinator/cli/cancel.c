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
#include "coordinator/cli/opts.h"
#include "coordinator/lock.h"
#include "coordinator/rent.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"
#include "coordinator/workerconn.h"

static const struct cli_opt no_opts[] = {
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec cancel_spec = {
	"mibera-job cancel", "JOB", 1, 1,
	"Stops a job: it is marked cancelled at once and the step running on "
	"its worker\nis ended there. mibera-job retry JOB queues it again.",
	no_opts,
};

static const struct cli_spec retry_spec = {
	"mibera-job retry", "JOB", 1, 1,
	"Queues a failed or cancelled job again; it resumes from its first "
	"unfinished step.", no_opts,
};

static int job_arg(const struct cli_spec *spec, int argc, char **argv,
		   long long *id)
{
	struct cli_parse p;
	int c;

	cli_parse_init(&p, spec, argc, argv);
	while ((c = cli_next(&p)) > 0)
		;
	if (c < 0)
		return p.exit == 0 ? -1 : p.exit;
	if (cli_job_id(p.args[0], id) != 0)
		return cli_usage_error(spec, "'%s' is not a job id", p.args[0]);
	return 0;
}

/* How a finished job ended, for a person: "already succeeded". */
static const char *ended(const char *state)
{
	if (strcmp(state, "succeeded") == 0)
		return "already succeeded";
	if (strcmp(state, "failed") == 0)
		return "already failed";
	if (strcmp(state, "cancelled") == 0)
		return "was already cancelled";
	return NULL;
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

/* A box rented for the job alone (submit --rent) goes with it: the
 * coordinator running the job destroys it as the job stops; when none
 * runs it, it is destroyed here. Either way the claim in the database
 * makes it once. */
static void rent_done(struct mb_store *s, const struct mb_job_row *j)
{
	struct mb_worker_row w;
	struct mb_coord_info ci;
	char msg[2048];

	if (mb_store_worker_get(s, j->worker, &w) != 0 ||
	    w.rent_job_id != j->id || w.provider[0] == '\0')
		return;
	if (strcmp(j->state, "running") == 0 && mb_coord_probe(&ci) == 0 &&
	    ci.alive) {
		printf("the coordinator destroys %s instance %s (worker %s) as "
		       "the job stops\n", w.provider, w.instance_id, w.name);
		return;
	}
	if (!mb_rent_job_over(s, &w) ||
	    mb_store_worker_claim_give_back(s, w.id) != 0)
		return;
	if (mb_rent_give_back(s, &w, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "mibera-job cancel: %s; run `mibera-job worker "
			"destroy %s`, or destroy it at %s by hand: it may be "
			"billing\n", msg, w.name, w.provider);
		return;
	}
	printf("destroyed %s instance %s and removed worker %s, rented for "
	       "this job\n", w.provider, w.instance_id, w.name);
}

int cmd_cancel(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	long long id;
	int rc;

	if ((rc = job_arg(&cancel_spec, argc, argv, &id)) != 0)
		return rc < 0 ? 0 : rc;
	if (cli_open_job("cancel", id, &s, &j) != 0)
		return 1;
	if (ended(j.state) != NULL) {
		fprintf(stderr, "mibera-job cancel: job %lld %s\n", id,
			ended(j.state));
		mb_store_close(s);
		return 1;
	}
	mb_store_job_set_state(s, id, "cancelled", "cancelled by a person");
	if (strcmp(j.state, "running") == 0 && cancel_on_worker(s, &j) != 0)
		fprintf(stderr, "mibera-job cancel: the job is cancelled; its step "
			"on '%s' could not be stopped now (mibera-worker cancel "
			"job-%lld there)\n", j.worker, id);
	printf("cancelled job %lld\n", id);
	rent_done(s, &j);
	mb_store_close(s);
	return 0;
}

int cmd_retry(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	long long id;
	int rc, found;

	if ((rc = job_arg(&retry_spec, argc, argv, &id)) != 0)
		return rc < 0 ? 0 : rc;
	if (cli_open(&s) != 0)
		return 1;
	found = mb_store_job_get(s, id, &j) == 0;
	if (found) {
		/* its worker must still be there to run it */
		struct mb_worker_row w;

		if (mb_store_worker_get(s, j.worker, &w) == MB_ENOENT) {
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
	else if (rc == MB_EBUSY && found && strcmp(j.state, "succeeded") == 0)
		fprintf(stderr, "mibera-job retry: job %lld already succeeded; "
			"nothing to retry\n", id);
	else if (rc == MB_EBUSY && found)
		fprintf(stderr, "mibera-job retry: job %lld is %s; only a failed "
			"or cancelled job is retried\n", id, j.state);
	else if (rc == MB_EBUSY)
		fprintf(stderr, "mibera-job retry: job %lld is not failed or "
			"cancelled\n", id);
	else if (rc != 0)
		fprintf(stderr, "mibera-job retry: %s\n", mb_strerror(rc));
	else
		printf("queued job %lld again\n", id);
	return rc == 0 ? 0 : 1;
}
