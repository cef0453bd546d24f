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
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hub.h"
#include "common/log.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/config.h"
#include "coordinator/jobrun.h"
#include "coordinator/lock.h"
#include "coordinator/notify.h"
#include "coordinator/rent.h"
#include "coordinator/store.h"
#include "mb_version.h"

#define MAX_RUNNING 64

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* --foreground is what the coordinator always does (it stays attached
 * and logs to stderr; systemd runs it that way): accepted, for the unit
 * in deploy/ and older scripts, and not listed. */
static const struct cli_opt opts[] = {
	{ "once", 0, NULL, NULL, "work until no job is queued, waiting or "
	  "running, then exit" },
	{ "version", 0, NULL, NULL, "print the versions of mibera and "
	  "llama.cpp" },
	{ "foreground", 0, NULL, NULL, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-coordinator", NULL, 0, 0,
	"Runs the mibera job queue: claims queued jobs, drives their steps on "
	"the\nworkers (one job per worker at a time unless the worker says "
	"more) and\nrecords every event in the job database "
	"($MIBERA_HOME/jobs.db). Settings:\n$MIBERA_HOME/config.json (see the "
	"README). It stays attached to the\nterminal and logs to stderr.",
	opts,
};

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

/* A worker's idle command (`vastai stop instance 123`): the one thing
 * that stops a rented box, so its exit status matters. It runs through
 * the shell in a thread of its own (the queue goes on meanwhile), up to
 * three times with a growing pause; a command that still fails is an
 * error in the log and an alert to the notify URL, since the box may
 * still be billing. */
#define MAX_IDLE 16
#define IDLE_TIMEOUT_S 600

struct idle_run {
	pthread_t th;
	int used, done;
	char worker[65];
	char command[1024];
	long long idle_s;	/* how long it was idle; -1: --once ended */
	const struct mb_config *cfg;
	struct mb_worker_row w;	/* a rented worker: destroying its instance
				   is its idle action */
	int rented;
	const char *why;	/* "idle", "past its --max-hours" */
};

static struct idle_run idle_runs[MAX_IDLE];

/* Runs cmd once: its exit code (128 + signal when killed, -1 when it did
 * not start), the last line it wrote in last. */
static int idle_once(const char *cmd, char *last, size_t cap)
{
	char buf[4096];
	size_t len = 0;
	int p[2], st = 0;
	double t0 = mb_now_s();
	pid_t pid;

	last[0] = '\0';
	if (pipe(p) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		setsid();
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		pid_t w;

		if (n > 0) {
			len += (size_t)n;
			if (len >= sizeof(buf) - 1) { /* keep the tail */
				memmove(buf, buf + len / 2, len - len / 2);
				len -= len / 2;
			}
			continue;
		}
		w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (mb_now_s() - t0 > IDLE_TIMEOUT_S) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(100 * 1000);
	}
	while (len < sizeof(buf) - 1) { /* what is left in the pipe */
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	{
		char *nl = strrchr(buf, '\n');

		snprintf(last, cap, "%.300s", nl ? nl + 1 : buf);
	}
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void *idle_main(void *arg)
{
	struct idle_run *ir = arg;
	char last[400] = "", err[512];
	int attempt, code = -1;

	for (attempt = 1; attempt <= 3; attempt++) {
		if (attempt > 1) {
			struct timespec ts = { (time_t)ir->cfg->retry_base_s *
					       (attempt - 1), 0 };

			nanosleep(&ts, NULL);
		}
		if (ir->rented) {
			struct mb_store *s = NULL;

			code = mb_store_open(NULL, &s, last, sizeof(last)) == 0 &&
					       mb_rent_give_back(s, &ir->w, last,
								 sizeof(last)) == 0
				       ? 0 : 1;
			mb_store_close(s);
			if (code == 0) {
				mb_log(MB_LOG_INFO, "worker %s (%s instance %s) is "
				       "%s: destroyed its instance and removed it",
				       ir->worker, ir->w.provider, ir->w.instance_id,
				       ir->why);
				break;
			}
			mb_log(MB_LOG_WARN, "worker %s: %s (attempt %d of 3)",
			       ir->worker, last, attempt);
			continue;
		}
		code = idle_once(ir->command, last, sizeof(last));
		if (code == 0) {
			if (ir->idle_s < 0)
				mb_log(MB_LOG_INFO, "worker %s has nothing left to do "
				       "and every artifact is pulled: its idle "
				       "command ran (exit 0)", ir->worker);
			else
				mb_log(MB_LOG_INFO, "worker %s has been idle for "
				       "%lld s with every artifact pulled: its idle "
				       "command ran (exit 0)", ir->worker, ir->idle_s);
			break;
		}
		mb_log(MB_LOG_WARN, "worker %s: its idle command failed (exit %d, "
		       "attempt %d of 3)%s%s", ir->worker, code, attempt,
		       last[0] ? ": " : "", last);
	}
	if (code != 0) {
		char line[1024];

		if (ir->rented)
			snprintf(line, sizeof(line), "worker %s: destroying %s "
				 "instance %s failed 3 times (%s): the box may still be "
				 "running and billing; destroy it by hand", ir->worker,
				 ir->w.provider, ir->w.instance_id, last);
		else
			snprintf(line, sizeof(line), "worker %s: its idle command "
				 "failed 3 times (exit %d%s%s): the box may still be "
				 "running and billing; stop it by hand", ir->worker,
				 code, last[0] ? ": " : "", last);
		mb_log(MB_LOG_ERROR, "%s", line);
		if (ir->cfg->notify_url[0] != '\0' &&
		    mb_notify_alert(ir->cfg->notify_url, "mibera: a box may still "
				    "be running", line, err, sizeof(err)) != 0)
			mb_log(MB_LOG_WARN, "worker %s: %s", ir->worker, err);
	}
	__atomic_store_n(&ir->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Joins the idle runs that ended (all of them, waiting, when wait). */
static void reap_idle(int wait)
{
	int i;

	for (i = 0; i < MAX_IDLE; i++)
		if (idle_runs[i].used &&
		    (wait || __atomic_load_n(&idle_runs[i].done, __ATOMIC_ACQUIRE))) {
			pthread_join(idle_runs[i].th, NULL);
			idle_runs[i].used = 0;
		}
}

static void run_idle(const struct mb_worker_row *w, const struct mb_config *cfg,
		     int at_exit, const char *why)
{
	int i;

	reap_idle(0);
	for (i = 0; i < MAX_IDLE && idle_runs[i].used; i++)
		;
	if (i == MAX_IDLE) {
		mb_log(MB_LOG_ERROR, "worker %s: too many idle commands running; "
		       "not run", w->name);
		return;
	}
	memset(&idle_runs[i], 0, sizeof(idle_runs[i]));
	snprintf(idle_runs[i].worker, sizeof(idle_runs[i].worker), "%s", w->name);
	snprintf(idle_runs[i].command, sizeof(idle_runs[i].command), "%s",
		 w->idle_command);
	idle_runs[i].idle_s = at_exit ? -1 : (long long)w->idle_after_s;
	idle_runs[i].cfg = cfg;
	idle_runs[i].w = *w;
	idle_runs[i].rented = w->provider[0] != '\0';
	idle_runs[i].why = why;
	if (pthread_create(&idle_runs[i].th, NULL, idle_main, &idle_runs[i]) != 0) {
		mb_log(MB_LOG_ERROR, "worker %s: cannot run its idle command",
		       w->name);
		return;
	}
	idle_runs[i].used = 1;
}

struct idle_check {
	struct mb_store *s;
	const struct mb_config *cfg;
	int at_exit;	/* --once is ending: nothing more will come */
};

static int check_idle(const struct mb_worker_row *w, void *ctx)
{
	struct idle_check *ic = ctx;
	struct mb_worker_idle idle;
	time_t now = time(NULL);

	if ((w->idle_command[0] == '\0' && w->provider[0] == '\0') ||
	    w->idle_ran_at != 0)
		return 0;
	/* a box rented for one job goes once that job has ended: the
	 * claim makes it once, whoever else (a cancel) sees it too */
	if (mb_rent_job_over(ic->s, w)) {
		if (mb_store_worker_claim_give_back(ic->s, w->id) == 0) {
			mb_log(MB_LOG_INFO, "worker %s was rented for job %lld, "
			       "which has ended: destroying its instance",
			       w->name, (long long)w->rent_job_id);
			run_idle(w, ic->cfg, ic->at_exit, "done with its job");
		}
		return 0;
	}
	/* a rented box past its hours goes, busy or not: its --max-hours is
	 * the cap on what it may cost */
	if (w->provider[0] != '\0' && w->max_hours > 0 && w->rented_at > 0 &&
	    (double)(now - w->rented_at) > w->max_hours * 3600) {
		if (mb_store_worker_idle_ran(ic->s, w->id) == 0) {
			mb_log(MB_LOG_WARN, "worker %s is past its --max-hours "
			       "(%.1f h): destroying its instance", w->name,
			       w->max_hours);
			run_idle(w, ic->cfg, ic->at_exit, "past its --max-hours");
		}
		return 0;
	}
	if (mb_store_worker_idle(ic->s, w->id, &idle) != 0)
		return 0;
	/* never while a job on it is under way or has artifacts there that
	 * are not pulled and verified yet */
	if (idle.active > 0 || idle.unpulled > 0)
		return 0;
	/* under --once, nothing is left for it when the queue is done */
	if (!ic->at_exit && now - idle.since < w->idle_after_s)
		return 0;
	/* a worker that never ran a job under --once is not stopped */
	if (ic->at_exit && w->last_active_at == 0)
		return 0;
	if (mb_store_worker_idle_ran(ic->s, w->id) == 0)
		run_idle(w, ic->cfg, ic->at_exit, "idle");
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
	{
		struct cli_parse p;
		int c;

		cli_parse_init(&p, &spec, argc, argv);
		while ((c = cli_next(&p)) > 0) {
			if (cli_is(&p, "once")) {
				once = 1;
			} else if (cli_is(&p, "version")) {
				fputs(MB_VERSION_TEXT("mibera-coordinator"), stdout);
				return 0;
			}
		}
		if (c < 0)
			return p.exit;
	}
	mb_log_set_sink(mb_log_stderr_sink, "mibera-coordinator");
	{
		/* the token (HF_TOKEN, or the file `hf auth login` wrote)
		 * goes to the worker steps that fetch, on their stdin, and to
		 * nothing else: not the idle command, not the smoke test, not
		 * ssh; it leaves the environment here */
		char found[512];

		if (mb_hub_token(found, sizeof(found)) == 0) {
			token = strdup(found);
			if (token == NULL)
				return 1;
			mb_log_add_secret(token);
		}
		memset(found, 0, sizeof(found));
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
	{
		/* boxes rented by a run that died before recording them (or
		 * whose worker was lost) are still billing: say so, and give
		 * back the old ones */
		int orphans = 0, destroyed = 0;

		mb_rent_reconcile(s, &orphans, &destroyed);
		if (orphans > 0)
			mb_log(MB_LOG_WARN, "%d rented instance%s belong%s to no "
			       "worker (%d destroyed)", orphans,
			       orphans == 1 ? "" : "s", orphans == 1 ? "s" : "",
			       destroyed);
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
				/* a box rented for that job goes now, not at
				 * the next idle check */
				last_idle = 0;
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
			else
				mb_log(MB_LOG_INFO, "stopping: no job was running");
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
			struct idle_check ic = { s, &cfg, 0 };

			last_idle = time(NULL);
			mb_store_worker_list(s, check_idle, &ic);
		}
		if (once && !stopping && claimed == 0 && running == 0 &&
		    mb_store_jobs_unfinished(s, &unfinished) == 0 &&
		    unfinished == 0) {
			/* nothing is left for the workers: their idle
			 * commands run now, and are waited for */
			struct idle_check ic = { s, &cfg, 1 };

			mb_store_worker_list(s, check_idle, &ic);
			reap_idle(1);
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
