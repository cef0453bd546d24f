/*
 * The queue as it runs overnight, through the programs a person runs, over
 * the loopback sshd: two workers and four jobs (both workers busy at once,
 * every job succeeds, one notification per job to a local webhook server,
 * each worker's idle command run once and only after its last artifacts
 * were pulled and verified, `status --json` valid against its schema, the
 * dashboard under tmux showing the jobs' steps and giving the terminal
 * back on q); the coordinator killed with SIGKILL during convert and
 * again during pull, each time restarted: the job succeeds, no finished
 * step runs again and the pull resumes from its verified chunks; and a
 * cancel while the worker quantizes: the worker's process ends, the job is
 * cancelled, and a retry goes on from the quantize step.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "model.h"
#include "sshd.h"
#include "th.h"

#define JOB MB_BINARY_DIR "/mibera-job"
#define COORD MB_BINARY_DIR "/mibera-coordinator"

static char root[512], home[600];
static struct th_sshd sshd;

static cJSON *status_json(const char *job)
{
	char *out;
	cJSON *doc;

	assert_int_equal(th_sh(&out, JOB " status %s --json", job), 0);
	doc = cJSON_Parse(out);
	if (doc == NULL)
		fail_msg("status --json is not JSON: %s", out);
	free(out);
	return doc;
}

static void path_in(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", root, name);
}

/* Adds worker name (over ssh to the loopback sshd) with extra options,
 * accepting its host key. */
static void add_worker(const char *name, const char *extra)
{
	char *out;

	if (th_worker_add(&out, "%s box1 --dir %s/wd-%s --agent "
			  "%s/mibera-worker %s", name, root, name, MB_BINARY_DIR,
			  extra) != 0)
		fail_msg("worker add %s: %s", name, out);
	free(out);
}

static int setup(void **state)
{
	char path[800], model[700];
	const char *broken[] = { "--config", "broken", NULL };
	const char *big[] = { "--config", "broken", "--layers", "40", NULL };

	(void)state;
	if (th_tmpdir("queue", root, sizeof(root)) != 0 ||
	    th_sshd_start(&sshd) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(path, sizeof(path), "%s/mibera", root);
	setenv("MIBERA_HOME", path, 1);
	unsetenv("HF_ENDPOINT");
	if (th_sshd_client(&sshd, home) != 0)
		return -1;
	path_in(model, sizeof(model), "tiny");
	if (th_mkmodel(model, "phi4-tiny", broken) != 0)
		return -1;
	/* 40 layers: convert, quantize and pull take seconds, not
	 * milliseconds, so a kill lands inside them */
	path_in(model, sizeof(model), "big");
	return th_mkmodel(model, "phi4-tiny", big);
}

static int teardown(void **state)
{
	(void)state;
	th_sshd_stop(&sshd);
	th_rmtree(root);
	return 0;
}

static void write_config(const char *json)
{
	char path[800];

	snprintf(path, sizeof(path), "%s/mibera", root);
	assert_int_equal(mb_mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/mibera/config.json", root);
	assert_int_equal(th_write_file(path, json, strlen(json)), 0);
}

/* A webhook server on loopback: appends each POST body, one line each, to
 * FILE and answers 204. Prints PORT=<n> when it listens. */
static const char webhook_py[] =
	"import http.server, sys\n"
	"out = sys.argv[1]\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def do_POST(self):\n"
	"        n = int(self.headers.get('Content-Length', 0))\n"
	"        body = self.rfile.read(n).decode()\n"
	"        with open(out, 'a') as f:\n"
	"            f.write(body.replace('\\n', ' ') + '\\n')\n"
	"        self.send_response(204)\n"
	"        self.end_headers()\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"print('PORT=%d' % s.server_address[1], flush=True)\n"
	"s.serve_forever()\n";

static int count_lines(const char *path)
{
	char *data = th_slurp(path, NULL), *p;
	int n = 0;

	if (data == NULL)
		return 0;
	for (p = data; *p; p++)
		n += *p == '\n';
	free(data);
	return n;
}

/* Checks that no idle file exists while a job of its worker is unfinished
 * or has artifacts not pulled yet; returns the number of workers busy. */
static int watch(const cJSON *jobs, const char *idle1, const char *idle2)
{
	const cJSON *j;
	int busy1 = 0, busy2 = 0;

	cJSON_ArrayForEach(j, jobs) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(j, "worker"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(j, "state"));
		int done = strcmp(st, "succeeded") == 0;

		if (strcmp(st, "running") == 0)
			*(strcmp(w, "w1") == 0 ? &busy1 : &busy2) = 1;
		if (!done && strcmp(w, "w1") == 0 && access(idle1, F_OK) == 0)
			fail_msg("w1's idle command ran while job %d was %s",
				 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id")),
				 st);
		if (!done && strcmp(w, "w2") == 0 && access(idle2, F_OK) == 0)
			fail_msg("w2's idle command ran while job %d was %s",
				 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id")),
				 st);
	}
	return busy1 + busy2;
}

/* Coordinators a test started: a test that fails midway leaves none
 * running to hold the next test's queue (its teardown kills them). */
static pid_t spawned[16];
static size_t nspawned;

static void track(pid_t pid)
{
	if (nspawned < sizeof(spawned) / sizeof(spawned[0]))
		spawned[nspawned++] = pid;
}

static int kill_spawned(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nspawned; i++)
		if (kill(spawned[i], SIGKILL) == 0)
			waitpid(spawned[i], NULL, 0);
	nspawned = 0;
	return 0;
}

static void test_two_workers_four_jobs(void **state)
{
	char *hook_argv[] = { (char *)"python3", (char *)"-c", (char *)webhook_py,
			      NULL, NULL };
	char *coord_argv[] = { MB_BINARY_DIR "/mibera-coordinator", NULL };
	char hooks[700], idle1[700], idle2[700], cfg[1024], line[256], *out;
	char cmd[8192], model[700];
	pid_t hook_pid, coord_pid;
	int fd, i, most_busy = 0, all_done = 0, saw_step = 0, st;
	long long t0;
	cJSON *doc;

	(void)state;
	path_in(hooks, sizeof(hooks), "hooks.jsonl");
	path_in(idle1, sizeof(idle1), "idle-w1");
	path_in(idle2, sizeof(idle2), "idle-w2");
	path_in(model, sizeof(model), "tiny");
	hook_argv[3] = hooks;
	assert_int_equal(th_spawn(hook_argv, &hook_pid, &fd), 0);
	assert_true(th_read_line(fd, line, sizeof(line), 10000) > 0);
	assert_non_null(strstr(line, "PORT="));
	snprintf(cfg, sizeof(cfg), "{\"notify_url\": \"http://127.0.0.1:%s/hook\", "
		 "\"idle_check_s\": 1, \"retry_base_s\": 1}", line + 5);
	write_config(cfg);
	snprintf(cmd, sizeof(cmd), "--cost-per-hour 2.40 --idle-command 'date "
		 "+%%s >> %s; env > %s.env' --idle-after 2", idle1, idle1);
	add_worker("w1", cmd);
	snprintf(cmd, sizeof(cmd), "--cost-per-hour 1.20 --idle-command 'date "
		 "+%%s >> %s' --idle-after 2", idle2);
	add_worker("w2", cmd);
	for (i = 0; i < 4; i++) {
		/* the F16 too: each job long enough to see both workers
		 * busy at once */
		assert_int_equal(th_sh(&out, JOB " submit %s --worker %s --quant "
				     "Q8_0 --pull-f16", model, i % 2 ? "w2" : "w1"), 0);
		free(out);
	}

	/* the dashboard in a real terminal, 80x24, while the queue runs */
	snprintf(cmd, sizeof(cmd), "tmux kill-session -t mbq 2>/dev/null; tmux "
		 "new-session -d -s mbq -x 80 -y 24 'env MIBERA_HOME=%s/mibera "
		 "%s/mibera-job dashboard'", root, MB_BINARY_DIR);
	assert_int_equal(th_capture(cmd, &out), 0);
	free(out);
	/* the token is in the coordinator's environment, as the unit's
	 * EnvironmentFile puts it: it must not reach the idle command */
	setenv("HF_TOKEN", "hf_queueSecretToken0123456789", 1);
	assert_int_equal(th_spawn(coord_argv, &coord_pid, NULL), 0);
	track(coord_pid);
	unsetenv("HF_TOKEN");
	t0 = th_now_ms();
	while (!all_done) {
		const cJSON *j;
		int n = 0, busy;

		assert_true(th_now_ms() - t0 < 240000);
		doc = status_json("");
		busy = watch(cJSON_GetObjectItem(doc, "jobs"), idle1, idle2);
		if (busy > most_busy)
			most_busy = busy;
		cJSON_ArrayForEach(j, cJSON_GetObjectItem(doc, "jobs"))
			n += strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "state")),
				    "succeeded") == 0;
		all_done = n == 4;
		cJSON_Delete(doc);
		if (!saw_step) {
			/* a running job's step and a busy worker on screen */
			th_capture("tmux capture-pane -p -t mbq", &out);
			saw_step = strstr(out, "busy") != NULL &&
				   (strstr(out, "convert") || strstr(out, "quantize") ||
				    strstr(out, "pull") || strstr(out, "smoke") ||
				    strstr(out, "manifest"));
			if (saw_step)
				print_message("dashboard:\n%s", out);
			free(out);
		}
		usleep(100 * 1000);
	}
	print_message("both workers busy at once: %s\n", most_busy == 2 ? "yes" : "no");
	assert_int_equal(most_busy, 2);
	assert_true(saw_step);

	/* q quits the dashboard (its session ends with it) */
	usleep(1200 * 1000);
	assert_int_equal(th_capture("tmux capture-pane -p -t mbq", &out), 0);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "EVENTS"));
	free(out);
	assert_int_equal(th_capture("tmux send-keys -t mbq q", &out), 0);
	free(out);
	usleep(1500 * 1000);
	assert_true(th_capture("tmux has-session -t mbq", &out) != 0);
	free(out);

	/* each worker's idle command once, after its last pull */
	t0 = th_now_ms();
	while ((count_lines(idle1) < 1 || count_lines(idle2) < 1) &&
	       th_now_ms() - t0 < 20000)
		usleep(200 * 1000);
	usleep(2500 * 1000); /* and not again */
	assert_int_equal(count_lines(idle1), 1);
	assert_int_equal(count_lines(idle2), 1);
	kill(coord_pid, SIGTERM);
	assert_int_equal(waitpid(coord_pid, &st, 0), coord_pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	{
		/* the idle command ran after the worker's last job ended */
		char *t = th_slurp(idle1, NULL);
		long long ran = atoll(t), last = 0;
		const cJSON *j;

		free(t);
		doc = status_json("");
		cJSON_ArrayForEach(j, cJSON_GetObjectItem(doc, "jobs"))
			if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "worker")),
				   "w1") == 0 &&
			    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "finished_at")) > last)
				last = (long long)cJSON_GetNumberValue(
					cJSON_GetObjectItem(j, "finished_at"));
		cJSON_Delete(doc);
		assert_true(ran >= last);
	}
	{
		/* the idle command's environment holds no token */
		char envf[800], *env;

		snprintf(envf, sizeof(envf), "%s.env", idle1);
		env = th_slurp(envf, NULL);
		assert_non_null(env);
		assert_non_null(strstr(env, "PATH="));
		assert_null(strstr(env, "HF_TOKEN"));
		assert_null(strstr(env, "hf_queueSecretToken"));
		free(env);
	}
	{
		/* the pull's progress is stored as progress events, each one
		 * JSON, and no row of any job is anything but an event */
		char q[1200];

		snprintf(q, sizeof(q), "sqlite3 %s/mibera/jobs.db \"select count(*) "
			 "from events where step = 'pull' and type = 'progress' and "
			 "json_valid(data)\"", root);
		assert_int_equal(th_capture(q, &out), 0);
		print_message("pull progress events: %s", out);
		assert_true(atoi(out) >= 4);
		free(out);
		snprintf(q, sizeof(q), "sqlite3 %s/mibera/jobs.db \"select count(*) "
			 "from events where not json_valid(data) or type = "
			 "'invalid'\"", root);
		assert_int_equal(th_capture(q, &out), 0);
		assert_string_equal(out, "0\n");
		free(out);
	}

	/* one summary per job at the webhook */
	t0 = th_now_ms();
	while (count_lines(hooks) < 4 && th_now_ms() - t0 < 10000)
		usleep(100 * 1000);
	assert_int_equal(count_lines(hooks), 4);
	{
		char *data = th_slurp(hooks, NULL), *l, *save = NULL;
		int seen = 0;

		for (l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			cJSON *h = cJSON_Parse(l);
			const cJSON *job = cJSON_GetObjectItem(h, "job");
			int id = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(job, "id"));

			assert_non_null(h);
			assert_true(id >= 1 && id <= 4);
			assert_false(seen & (1 << id));
			seen |= 1 << id;
			assert_string_equal(cJSON_GetStringValue(
						    cJSON_GetObjectItem(job, "state")),
					    "succeeded");
			assert_non_null(strstr(cJSON_GetStringValue(
						       cJSON_GetObjectItem(h, "text")),
					       "succeeded"));
			assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
						 job, "artifacts")), 2);
			cJSON_Delete(h);
		}
		free(data);
	}
	th_stop(hook_pid, 2000);

	/* status --json validates against its documented schema */
	snprintf(cmd, sizeof(cmd), "%s/mibera-job status --json > %s/s.json && "
		 "%s/mibera-job status 2 --json > %s/s2.json && python3 -c \"import "
		 "json, jsonschema; s = json.load(open('%s/proto/status.schema.json'"
		 ")); [jsonschema.validate(json.load(open(f)), s) for f in ('%s/"
		 "s.json', '%s/s2.json')]; print('valid')\"", MB_BINARY_DIR, root,
		 MB_BINARY_DIR, root, MB_SOURCE_DIR, root, root);
	if (th_capture(cmd, &out) != 0)
		fail_msg("schema: %s", out);
	assert_non_null(strstr(out, "valid"));
	free(out);
}

/* Submits the 40-layer model to w1 with quants, no smoke; it must get
 * job id want. */
static void submit_big(const char *quants, const char *want)
{
	char model[700], *out;

	path_in(model, sizeof(model), "big");
	/* the 40-layer model is for the kills and the long journal: the
	 * quality steps, tested elsewhere, would only slow it down */
	assert_int_equal(th_sh(&out, JOB " submit %s --worker w1 --quant %s "
			     "--no-smoke --no-fidelity --imatrix off", model,
			     quants), 0);
	assert_int_equal(atoi(out), atoi(want));
	free(out);
}

/* Waits until job's step is running; returns 1, or 0 after 60 s. */
static int wait_step(const char *job, const char *step)
{
	long long t0 = th_now_ms();

	while (th_now_ms() - t0 < 60000) {
		cJSON *doc = status_json(job);
		const cJSON *s;
		int found = 0;

		cJSON_ArrayForEach(s, cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "job"),
							  "steps"))
			found |= strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")),
					step) == 0 &&
				 strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")),
					"running") == 0;
		cJSON_Delete(doc);
		if (found)
			return 1;
		usleep(50 * 1000);
	}
	return 0;
}

static int attempts_of(const cJSON *job, const char *step)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, cJSON_GetObjectItem(job, "steps"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")),
			   step) == 0)
			return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s,
									   "attempts"));
	return -1;
}

/* Verified chunks in the pull's records under partial/job-N/. */
static int verified_chunks(int job)
{
	char cmd[1024], *out;
	int n = 0;
	char *p;

	snprintf(cmd, sizeof(cmd), "cat %s/mibera/partial/job-%d/*.chunks "
		 "2>/dev/null | grep -v mibera-chunks", root, job);
	th_capture(cmd, &out);
	for (p = out; *p; p++)
		n += *p == '1';
	free(out);
	return n;
}

static void test_killed_during_convert_and_pull(void **state)
{
	char *coord_argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char *out, *l, *save = NULL;
	long long reused = 0;
	pid_t pid;
	int st, verified, done_events = 0;
	cJSON *doc, *job;

	(void)state;
	/* small chunks, so the pull has chunks verified before the kill */
	write_config("{\"chunk_mib\": 4, \"pull_streams\": 2}");
	submit_big("Q8_0", "5");

	/* kill -9 during convert */
	assert_int_equal(th_spawn(coord_argv, &pid, NULL), 0);
	track(pid);
	assert_true(wait_step("5", "convert"));
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);

	/* restarted: it follows the convert, goes on, and is killed again
	 * once the pull has verified some chunks */
	assert_int_equal(th_spawn(coord_argv, &pid, NULL), 0);
	track(pid);
	assert_true(wait_step("5", "pull"));
	{
		long long t0 = th_now_ms();

		while ((verified = verified_chunks(5)) < 8 && th_now_ms() - t0 < 60000)
			usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_true(verified >= 8);

	/* the last start finishes the job */
	if (th_sh(&out, COORD " --once") != 0)
		fail_msg("coordinator: %s", out);
	assert_non_null(strstr(out, "resuming"));
	free(out);
	doc = status_json("5");
	job = cJSON_GetObjectItem(doc, "job");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(job, "state")),
			    "succeeded");
	/* convert was started once and followed after the first kill; the
	 * steps that finished before a kill did not run again */
	print_message("step starts: convert %d, quantize %d, manifest %d, pull %d\n",
		      attempts_of(job, "convert"), attempts_of(job, "quantize"),
		      attempts_of(job, "manifest"), attempts_of(job, "pull"));
	assert_int_equal(attempts_of(job, "convert"), 2);
	assert_int_equal(attempts_of(job, "quantize"), 1);
	assert_int_equal(attempts_of(job, "manifest"), 1);
	assert_int_equal(attempts_of(job, "pull"), 2);
	cJSON_Delete(doc);
	assert_int_equal(th_sh(&out, JOB " logs --json 5"), 0);
	for (l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *r = strstr(l, "\"reused\":");

		if (strstr(l, "\"step\":\"convert\"") && strstr(l, "\"type\":\"done\""))
			done_events++;
		if (strstr(l, "\"step\":\"pull\"") && strstr(l, "\"type\":\"pulled\"") &&
		    r != NULL)
			reused += atoll(r + 9);
	}
	free(out);
	/* each restart said, in the job's events, which step it resumed */
	assert_int_equal(th_sh(&out, JOB " logs --step convert 5"), 0);
	assert_non_null(strstr(out, "the coordinator stopped while this step ran"));
	free(out);
	assert_int_equal(th_sh(&out, JOB " logs --step pull 5"), 0);
	assert_non_null(strstr(out, "the coordinator stopped while this step ran"));
	free(out);
	/* the worker converted once; the pull kept what it had verified */
	assert_int_equal(done_events, 1);
	print_message("pull after the kill reused %lld bytes (%d chunks of 4 MiB "
		      "verified at the kill)\n", reused, verified);
	assert_true(reused >= (long long)verified * (4 << 20) - (4 << 20));
}

/* Counts the processes whose command line holds what. */
static int processes_with(const char *what)
{
	char cmd[1024], *out;
	int n;

	snprintf(cmd, sizeof(cmd), "pgrep -fc -- '%s'", what);
	th_capture(cmd, &out);
	n = atoi(out);
	free(out);
	return n;
}

static void test_cancel_during_a_worker_step_then_retry(void **state)
{
	char *coord_argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char what[800], *out;
	cJSON *doc, *job;
	pid_t pid;
	int st;

	(void)state;
	write_config("{}");
	submit_big("Q4_K_M", "6");
	assert_int_equal(th_spawn(coord_argv, &pid, NULL), 0);
	track(pid);
	assert_true(wait_step("6", "quantize"));
	/* [m]: the pattern does not match the shell that runs pgrep */
	snprintf(what, sizeof(what), "[m]ibera-worker quantize .*job-6/");
	{
		/* the worker's quantize is held still, so the cancel lands
		 * while it runs however fast this machine quantizes (a
		 * stopped process still dies of cancel's signals) */
		long long t0 = th_now_ms();
		char cmd[1000];

		while (processes_with(what) == 0 && th_now_ms() - t0 < 60000)
			usleep(20 * 1000);
		assert_true(processes_with(what) > 0);
		snprintf(cmd, sizeof(cmd), "pkill -STOP -f -- '%s'", what);
		assert_int_equal(th_capture(cmd, &out), 0);
		free(out);
	}
	assert_int_equal(th_sh(&out, JOB " cancel 6"), 0);
	free(out);
	/* the coordinator gives the job up, the worker's process is gone */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	doc = status_json("6");
	job = cJSON_GetObjectItem(doc, "job");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(job, "state")),
			    "cancelled");
	cJSON_Delete(doc);
	assert_int_equal(processes_with(what), 0);
	/* retry: from the first unfinished step; convert is not run again */
	assert_int_equal(th_sh(&out, JOB " retry 6"), 0);
	free(out);
	if (th_sh(&out, COORD " --once") != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	doc = status_json("6");
	job = cJSON_GetObjectItem(doc, "job");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(job, "state")),
			    "succeeded");
	assert_int_equal(attempts_of(job, "convert"), 1);
	assert_int_equal(attempts_of(job, "quantize"), 2);
	cJSON_Delete(doc);
}


/* Journal bytes of worker step wstep of job N on worker w1. */
static long long journal_size(int job, const char *wstep)
{
	char path[900];
	struct stat st;

	snprintf(path, sizeof(path), "%s/wd-w1/jobs/job-%d/%s.events", root, job,
		 wstep);
	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* The coordinator killed while the worker quantizes the second of two
 * types, with a journal backlog far past one read (a 40-layer model's
 * quantize journal is tens of KiB): the restart streams the backlog of
 * each type's own journal from where it stopped, the job succeeds, and
 * every event is stored once, whole. */
static void test_killed_during_quantize_with_a_long_journal(void **state)
{
	char *coord_argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char q[1200], *out;
	long long t0, q4 = 0;
	cJSON *doc, *job;
	pid_t pid;
	int st, journal_lines = 0;

	(void)state;
	write_config("{}");
	submit_big("Q8_0,Q4_K_M", "7");
	assert_int_equal(th_spawn(coord_argv, &pid, NULL), 0);
	track(pid);
	/* kill once Q4_K_M's journal holds more than 16 KiB */
	t0 = th_now_ms();
	while ((q4 = journal_size(7, "quantize-Q4_K_M")) < 20000 &&
	       th_now_ms() - t0 < 120000)
		usleep(20 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	print_message("killed with %lld journal bytes of Q4_K_M\n", q4);
	assert_true(q4 >= 20000);
	/* the worker finishes the type meanwhile: the whole journal waits */
	t0 = th_now_ms();
	snprintf(q, sizeof(q), "%s/wd-w1/jobs/job-7/quantize-Q4_K_M.result.json",
		 root);
	while (access(q, F_OK) != 0 && th_now_ms() - t0 < 120000)
		usleep(50 * 1000);
	print_message("backlog at the restart: %lld bytes\n",
		      journal_size(7, "quantize-Q4_K_M"));
	{
		/* the lines of both journals, before cleanup removes them */
		char cnt[1200], *lines;

		snprintf(cnt, sizeof(cnt), "cat %s/wd-w1/jobs/job-7/quantize-*.events "
			 "| wc -l", root);
		assert_int_equal(th_capture(cnt, &lines), 0);
		journal_lines = atoi(lines);
		free(lines);
		assert_true(journal_lines > 100);
	}
	if (th_sh(&out, COORD " --once") != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	doc = status_json("7");
	job = cJSON_GetObjectItem(doc, "job");
	if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(job, "state")),
		   "succeeded") != 0)
		fail_msg("job 7: %s", cJSON_GetStringValue(cJSON_GetObjectItem(job,
										"error")));
	assert_int_equal(attempts_of(job, "convert"), 1);
	assert_int_equal(attempts_of(job, "quantize"), 2);
	cJSON_Delete(doc);
	/* every stored line is an event, none stored twice, and every line
	 * of both journals is there */
	snprintf(q, sizeof(q), "sqlite3 %s/mibera/jobs.db \"select count(*), "
		 "count(distinct data), sum(json_valid(data)) from events where "
		 "job_id = 7 and step = 'quantize' and seq > 0\"", root);
	assert_int_equal(th_capture(q, &out), 0);
	print_message("quantize events (rows|distinct|valid): %s", out);
	{
		int rows = 0, distinct = 0, valid = 0;

		assert_int_equal(sscanf(out, "%d|%d|%d", &rows, &distinct, &valid), 3);
		assert_int_equal(rows, distinct);
		assert_int_equal(rows, valid);
		assert_int_equal(rows, journal_lines);
	}
	free(out);
	/* each type's result was read once, however often it was followed */
	snprintf(q, sizeof(q), "sqlite3 %s/mibera/jobs.db \"select count(*) from "
		 "events where job_id = 7 and type = 'finished' and step = "
		 "'quantize'\"", root);
	assert_int_equal(th_capture(q, &out), 0);
	assert_string_equal(out, "2\n");
	free(out);
}

/* One coordinator per MIBERA_HOME: a second one exits at once naming the
 * first one's pid and takes none of its jobs; once the first is dead, a
 * new one starts. A damaged database stops it with the reason. */
static void test_one_coordinator(void **state)
{
	char *coord_argv[] = { MB_BINARY_DIR "/mibera-coordinator", NULL };
	char pidtext[32], dbcopy[800], db[800], *out;
	pid_t pid;
	int st;
	long long t0;

	(void)state;
	write_config("{}");
	assert_int_equal(th_spawn(coord_argv, &pid, NULL), 0);
	track(pid);
	t0 = th_now_ms();
	do {
		usleep(50 * 1000);
		snprintf(dbcopy, sizeof(dbcopy), "%s/mibera/coordinator.lock", root);
		out = th_slurp(dbcopy, NULL);
		st = out != NULL && atoi(out) == (int)pid;
		free(out);
	} while (!st && th_now_ms() - t0 < 10000);
	assert_true(st);
	/* the CLI sees it, with its pid and heartbeat */
	{
		cJSON *doc = status_json(""), *co;

		co = cJSON_GetObjectItem(doc, "coordinator");
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(co, "running")));
		assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(co, "pid")),
				 (int)pid);
		assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(co, "heartbeat")) > 0);
		cJSON_Delete(doc);
	}
	assert_int_equal(th_sh(&out, COORD " --once"), 1);
	print_message("%s", out);
	snprintf(pidtext, sizeof(pidtext), "(pid %d)", (int)pid);
	assert_non_null(strstr(out, "another coordinator"));
	assert_non_null(strstr(out, pidtext));
	free(out);
	/* the first is killed: its lock goes with it */
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_int_equal(th_sh(&out, JOB " status"), 0);
	assert_non_null(strstr(out, "coordinator: not running"));
	free(out);
	if (th_sh(&out, COORD " --once") != 0)
		fail_msg("after the first died: %s", out);
	free(out);

	/* a damaged database: said, and a non-zero exit, not a hang */
	snprintf(db, sizeof(db), "%s/mibera/jobs.db", root);
	snprintf(dbcopy, sizeof(dbcopy), "%s/jobs.db.good", root);
	{
		char cmd[8000];

		snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA wal_checkpoint(TRUNCATE)' "
			 ">/dev/null && mv %s %s && cp %s %s && rm -f %s-wal %s-shm",
			 db, db, dbcopy, dbcopy, db, db, db);
		assert_int_equal(th_capture(cmd, &out), 0);
		free(out);
		snprintf(cmd, sizeof(cmd), "dd if=/dev/urandom of=%s "
			 "bs=4096 seek=2 count=8 conv=notrunc status=none", db);
		assert_int_equal(th_capture(cmd, &out), 0);
		free(out);
	}
	{
		char cmd[1000];

		snprintf(cmd, sizeof(cmd), "timeout 30 %s/mibera-coordinator --once",
			 MB_BINARY_DIR);
		assert_int_equal(th_capture(cmd, &out), 1);
	}
	print_message("%s", out);
	assert_non_null(strstr(out, "jobs.db"));
	free(out);
	assert_int_equal(th_sh(&out, JOB " status") != 0, 1);
	assert_null(strstr(out, "0 jobs"));
	assert_non_null(strstr(out, "jobs.db"));
	free(out);
	{
		/* the good copy back, without what the damaged one left */
		char side[900];

		snprintf(side, sizeof(side), "%s-wal", db);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", db);
		unlink(side);
	}
	assert_int_equal(rename(dbcopy, db), 0);
}

/* A worker's idle command is what stops a rented box: under --once it
 * runs when nothing is left for the worker (not --idle-after later, when
 * no coordinator is there to run it), and one that fails is tried again
 * and then reported loudly, with what it said. */
static void test_idle_command_under_once_and_failing(void **state)
{
	char model[700], idle4[700], cmd[2000], *out;

	(void)state;
	write_config("{\"retry_base_s\": 1}");
	path_in(idle4, sizeof(idle4), "idle-w4");
	snprintf(cmd, sizeof(cmd), "--idle-command 'echo the box said no >&2; "
		 "exit 3' --idle-after 1000");
	add_worker("w3", cmd);
	snprintf(cmd, sizeof(cmd), "--idle-command 'date +%%s >> %s' --idle-after "
		 "1000", idle4);
	add_worker("w4", cmd);
	path_in(model, sizeof(model), "tiny");
	assert_int_equal(th_sh(&out, JOB " submit %s --worker w3 --quant Q8_0 "
			     "--no-smoke", model), 0);
	free(out);
	assert_int_equal(th_sh(&out, JOB " submit %s --worker w4 --quant Q8_0 "
			     "--no-smoke", model), 0);
	free(out);
	if (th_sh(&out, COORD " --once") != 0)
		fail_msg("coordinator: %s", out);
	print_message("%s", out);
	assert_non_null(strstr(out, "worker w3: its idle command failed (exit 3, "
				    "attempt 3 of 3): the box said no"));
	assert_non_null(strstr(out, "may still be running"));
	assert_non_null(strstr(out, "worker w4 has nothing left to do"));
	free(out);
	assert_int_equal(count_lines(idle4), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_two_workers_four_jobs, kill_spawned),
		cmocka_unit_test_teardown(test_killed_during_convert_and_pull, kill_spawned),
		cmocka_unit_test_teardown(test_cancel_during_a_worker_step_then_retry, kill_spawned),
		cmocka_unit_test_teardown(test_killed_during_quantize_with_a_long_journal, kill_spawned),
		cmocka_unit_test_teardown(test_one_coordinator, kill_spawned),
		cmocka_unit_test_teardown(test_idle_command_under_once_and_failing, kill_spawned),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
