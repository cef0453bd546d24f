/*
 * mibera-coordinator: the daemon that claims queued jobs, leases workers and
 * drives each job's steps over the transports.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "coordinator/jobrun.h"
#include "coordinator/store.h"
#include "mb_version.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-coordinator [--once] [--foreground]\n"
		   "       mibera-coordinator --version | --help\n\n"
		   "Runs the mibera job queue: claims queued jobs, drives their "
		   "steps on the\nworkers and records every event in the job "
		   "database ($MIBERA_HOME/jobs.db).\n\n"
		   "  --once        work until the queue is empty, then exit\n"
		   "  --foreground  stay attached to the terminal, log to "
		   "stderr (the default)\n");
}

int main(int argc, char **argv)
{
	struct mb_store *s = NULL;
	char err[2048];
	int i, once = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("mibera-coordinator %s (llama.cpp %s)\n",
			       MB_VERSION, MB_LLAMA_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--once") == 0) {
			once = 1;
			continue;
		}
		if (strcmp(argv[i], "--foreground") == 0)
			continue;
		fprintf(stderr, "mibera-coordinator: unknown option '%s'\n",
			argv[i]);
		usage(stderr);
		return 2;
	}
	mb_log_set_sink(mb_log_stderr_sink, "mibera-coordinator");
	if (getenv("HF_TOKEN") != NULL)
		mb_log_add_secret(getenv("HF_TOKEN"));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (mb_store_open(NULL, &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-coordinator: %s\n", err);
		return 1;
	}
	{
		int n = 0;

		if (mb_store_jobs_requeue_running(s, &n) == 0 && n > 0)
			mb_log(MB_LOG_INFO, "%d job%s left running by a coordinator "
			       "that stopped: resuming", n, n == 1 ? "" : "s");
	}
	while (!stopping) {
		struct mb_job_row j;
		int rc = mb_store_job_claim(s, &j);

		if (rc == MB_ENOENT) {
			if (once)
				break;
			sleep(2);
			continue;
		}
		if (rc != 0) {
			mb_log(MB_LOG_ERROR, "cannot claim a job: %s", mb_strerror(rc));
			sleep(2);
			continue;
		}
		mb_log(MB_LOG_INFO, "job %lld: %s on %s", (long long)j.id, j.source,
		       j.worker);
		rc = mb_jobrun(s, &j, err, sizeof(err));
		if (rc == 0) {
			mb_log(MB_LOG_INFO, "job %lld succeeded", (long long)j.id);
		} else if (rc == MB_ECANCELLED) {
			mb_log(MB_LOG_INFO, "job %lld cancelled", (long long)j.id);
		} else {
			mb_log(MB_LOG_ERROR, "job %lld failed: %s", (long long)j.id, err);
			failed++;
		}
	}
	mb_store_close(s);
	return failed ? 1 : 0;
}
