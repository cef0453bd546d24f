/*
 * mibera-coordinator: the daemon that claims queued jobs, leases workers and
 * drives each job's steps over the transports.
 *
 * Each claimed job runs in its own thread with its own database
 * connection; a worker takes as many jobs at once as its max_jobs (one
 * unless configured), so two workers work on two jobs side by side. A job
 * that failed transiently waits (state `waiting`) and is claimed again once
 * its pause is over. When a job ends, its notify URL (or the config's)
 * gets a summary. A worker that has been idle for its idle_after_s, with
 * every artifact made on it pulled and verified, gets its idle command run
 * here once.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "coordinator/cli/cli.h"
#include "coordinator/config.h"
#include "coordinator/jobrun.h"
#include "coordinator/lock.h"
#include "coordinator/notify.h"
#include "coordinator/store.h"
#include "mb_version.h"

#define MAX_RUNNING 64

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
		   "steps on the\nworkers (one job per worker at a time unless "
		   "the worker says more) and\nrecords every event in the job "
		   "database ($MIBERA_HOME/jobs.db). Settings:\n"
		   "$MIBERA_HOME/config.json (see the README).\n\n"
		   "  --once        work until no job is queued, waiting or "
		   "running, then exit\n"
		   "  --foreground  stay attached to the terminal, log to "
		   "stderr (the default)\n");
}

struct slot {
	pthread_t th;
	int used;
	int done;		/* set by its thread (atomic) */
	struct mb_job_row j;
	const struct mb_config *cfg;
	int failed;	/* the job ended failed */
};

/* One job, start to end, on its own connection to the database. */
static void *job_main(void *arg)
{
	struct slot *sl = arg;
	struct mb_store *s = NULL;
	struct mb_job_row now;
	char err[2048];

	if (mb_store_open(NULL, &s, err, sizeof(err)) != 0) {
		mb_log(MB_LOG_ERROR, "job %lld: %s", (long long)sl->j.id, err);
		sl->failed = 1;
		__atomic_store_n(&sl->done, 1, __ATOMIC_RELEASE);
		return NULL;
	}
	mb_jobrun(s, &sl->j, sl->cfg, err, sizeof(err));
	if (mb_store_job_get(s, sl->j.id, &now) != 0)
		now = sl->j;
	if (strcmp(now.state, "succeeded") == 0)
		mb_log(MB_LOG_INFO, "job %lld succeeded", (long long)now.id);
	else if (strcmp(now.state, "waiting") == 0)
		mb_log(MB_LOG_WARN, "job %lld waits to try again: %s",
		       (long long)now.id, now.error);
	else
		mb_log(strcmp(now.state, "cancelled") == 0 ? MB_LOG_INFO
							   : MB_LOG_ERROR,
		       "job %lld %s%s%s", (long long)now.id, now.state,
		       now.error[0] ? ": " : "", now.error);
	sl->failed = strcmp(now.state, "failed") == 0;
	if (strcmp(now.state, "succeeded") == 0 || sl->failed) {
		const char *url = now.notify_url[0] ? now.notify_url
						    : sl->cfg->notify_url;

		if (url[0] != '\0' &&
		    mb_notify_send(s, &now, url, err, sizeof(err)) != 0)
			mb_log(MB_LOG_WARN, "job %lld: %s", (long long)now.id, err);
	}
	mb_store_close(s);
	__atomic_store_n(&sl->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Runs a worker's idle command through the shell, detached from us: it
 * is the person's own command line (`vastai stop instance 123`). */
static void run_idle(const struct mb_worker_row *w)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		/* the grandchild runs it, the child is reaped at once: no
		 * zombie, and no SIGCHLD handling that would take the job
		 * threads' children from them */
		setsid();
		if (fork() == 0) {
			execl("/bin/sh", "sh", "-c", w->idle_command, (char *)NULL);
			_exit(127);
		}
		_exit(0);
	}
	if (pid < 0) {
		mb_log(MB_LOG_ERROR, "worker %s: cannot run its idle command: %s",
		       w->name, strerror(errno));
		return;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	mb_log(MB_LOG_INFO, "worker %s has been idle for %lld s with every "
	       "artifact pulled: ran its idle command", w->name,
	       (long long)w->idle_after_s);
}

static int check_idle(const struct mb_worker_row *w, void *ctx)
{
	struct mb_store *s = ctx;
	struct mb_worker_idle idle;
	time_t now = time(NULL);

	if (w->idle_command[0] == '\0' || w->idle_ran_at != 0)
		return 0;
	if (mb_store_worker_idle(s, w->id, &idle) != 0)
		return 0;
	/* never while a job on it is under way or has artifacts there that
	 * are not pulled and verified yet */
	if (idle.active > 0 || idle.unpulled > 0)
		return 0;
	if (now - idle.since < w->idle_after_s)
		return 0;
	if (mb_store_worker_idle_ran(s, w->id) == 0)
		run_idle(w);
	return 0;
}

int main(int argc, char **argv)
{
	static struct slot slots[MAX_RUNNING];
	struct mb_config cfg;
	struct mb_store *s = NULL;
	char err[2048];
	struct mb_coord_lock lock;
	char *token = NULL;
	int i, once = 0, failed = 0, claim_failures = 0, fatal = 0;
	time_t last_idle = 0, last_beat = time(NULL), last_full = 0;
	int full_wait = 0;

	/* the smoke test's child (coordinator/smoke.h): llama.cpp loads an
	 * artifact in a process of its own, this program run again */
	if (argc >= 2 && strcmp(argv[1], "smoke") == 0)
		return cmd_smoke(argc - 1, argv + 1);
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
	if (getenv("HF_TOKEN") != NULL && *getenv("HF_TOKEN") != '\0') {
		/* the token goes to the worker steps that fetch, on their
		 * stdin, and to nothing else: not the idle command, not the
		 * smoke test, not ssh; it leaves the environment here */
		token = strdup(getenv("HF_TOKEN"));
		if (token == NULL)
			return 1;
		mb_log_add_secret(token);
	}
	unsetenv("HF_TOKEN");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (mb_config_load(NULL, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-coordinator: %s\n", err);
		free(token);
		return 1;
	}
	cfg.hf_token = token;
	if (mb_coord_lock_take(&lock, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-coordinator: %s\n", err);
		free(token);
		return 1;
	}
	if (mb_store_open(NULL, &s, err, sizeof(err)) != 0 ||
	    mb_store_check(s, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-coordinator: %s\n", err);
		mb_store_close(s);
		free(token);
		return 1;
	}
	if (mb_store_full(s)) {
		fprintf(stderr, "mibera-coordinator: the disk holding the job "
			"database is full: free some space, then start again\n");
		mb_store_close(s);
		free(token);
		return 1;
	}
	{
		int n = 0;

		if (mb_store_jobs_requeue_running(s, &n) == 0 && n > 0)
			mb_log(MB_LOG_INFO, "%d job%s left running by a coordinator "
			       "that stopped: resuming", n, n == 1 ? "" : "s");
	}
	for (;;) {
		int running = 0, claimed = 0, unfinished = 0;

		/* reap the jobs that ended */
		for (i = 0; i < MAX_RUNNING; i++) {
			if (slots[i].used &&
			    __atomic_load_n(&slots[i].done, __ATOMIC_ACQUIRE)) {
				pthread_join(slots[i].th, NULL);
				failed |= slots[i].failed;
				slots[i].used = 0;
			}
			running += slots[i].used;
		}
		if (stopping) {
			/* a stop leaves running jobs to the next start, which
			 * follows their steps on the workers: every write so far
			 * is a whole transaction, so nothing waits for them */
			if (running > 0)
				mb_log(MB_LOG_INFO, "stopping: %d running job%s will "
				       "resume at the next start", running,
				       running == 1 ? "" : "s");
			break;
		} else {
			for (i = 0; i < MAX_RUNNING; i++) {
				struct slot *sl = &slots[i];
				int rc;

				if (sl->used)
					continue;
				rc = mb_store_job_claim(s, &sl->j);
				if (rc == MB_ENOENT)
					break;
				if (rc == MB_ENOSPC) {
					/* nothing can be written until space is
					 * freed: say so now and then, and wait */
					if (time(NULL) - last_full >= 60) {
						last_full = time(NULL);
						mb_log(MB_LOG_ERROR, "the disk holding "
						       "the job database is full: no job "
						       "is started until space is freed");
					}
					full_wait = 1;
					break;
				}
				if (rc != 0) {
					mb_log(MB_LOG_ERROR, "cannot claim a job: %s",
					       mb_store_errmsg(s));
					/* a database that fails every time
					 * (damaged, unreadable) is not
					 * waited out in silence */
					if (++claim_failures >= 5)
						stopping = fatal = 1;
					break;
				}
				claim_failures = 0;
				mb_log(MB_LOG_INFO, "job %lld: %s on %s (attempt %d)",
				       (long long)sl->j.id, sl->j.source,
				       sl->j.worker, sl->j.attempts);
				sl->cfg = &cfg;
				sl->done = 0;
				sl->failed = 0;
				sl->used = 1;
				if (pthread_create(&sl->th, NULL, job_main, sl) != 0) {
					mb_log(MB_LOG_ERROR, "cannot start a thread");
					mb_store_job_set_state(s, sl->j.id, "queued",
							       NULL);
					sl->used = 0;
					break;
				}
				claimed++;
			}
		}
		if (time(NULL) - last_beat >= MB_COORD_BEAT_S) {
			last_beat = time(NULL);
			mb_coord_lock_beat(&lock);
		}
		if (!stopping && time(NULL) - last_idle >= cfg.idle_check_s) {
			last_idle = time(NULL);
			mb_store_worker_list(s, check_idle, s);
		}
		if (once && !stopping && claimed == 0 && running == 0 &&
		    mb_store_jobs_unfinished(s, &unfinished) == 0 &&
		    unfinished == 0) {
			/* the last job's end may make a worker idle */
			mb_store_worker_list(s, check_idle, s);
			break;
		}
		if (claimed == 0) {
			struct timespec ts = { full_wait ? 5 : 0,
					       full_wait ? 0 : 200000000L };

			full_wait = 0;
			nanosleep(&ts, NULL);
		}
	}
	mb_store_close(s);
	if (fatal) {
		fprintf(stderr, "mibera-coordinator: the job database fails "
			"every read; stopping\n");
		_exit(1);
	}
	if (stopping)
		_exit(0); /* the job threads end with the process (and the
			     kernel drops the lock with it) */
	mb_coord_lock_release(&lock);
	free(token);
	return failed ? 1 : 0;
}
