/*
 * The agent verbs: how the coordinator runs steps on a box it does not
 * control, over a link that drops (proto/PROTOCOL.md).
 *
 *   hello                    what this worker is and has
 *   start JOB STEP           run a step detached; the spec comes on stdin
 *   follow JOB STEP --from N stream the step's journal from byte N until
 *                            its result exists
 *   status JOB               the state of every step of a job
 *   cancel JOB               end the running step's whole process group
 *   cleanup JOB              remove the job's directory
 *
 * A started step runs under a supervisor in its own session (setsid), with
 * stdio on a log file, so a dropped SSH connection never touches it. The
 * supervisor runs `mibera-worker ARGV...` (the spec's argv, a verb of this
 * binary), with the spec's secrets in the environment only, and writes
 * STEP.result.json atomically when the verb exits. A supervisor killed
 * outright leaves no result: the coordinator sees a pid that is gone and
 * no result, a failed attempt.
 *
 * Layout: DIR/jobs/JOB/STEP.{spec.json,pid,events,log,result.json}. DIR is
 * --dir, else $MIBERA_WORKER_DIR, else ~/.mibera.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "mb_version.h"
#include "proto/protocol.h"
#include "worker/lmrun.h"
#include "worker/verbs.h"

/* The spec of a step is small: argv and a few secrets. */
#define MAX_SPEC (1u << 20)
#define MAX_ARGS 64

static int usage_err(const char *msg)
{
	fprintf(stderr, "mibera-worker: %s\n", msg);
	return 2;
}

/* Takes --dir DIR out of argv (wherever it is); returns the new argc. */
static int take_dir(int argc, char **argv, char *dir, size_t cap)
{
	const char *env = getenv("MIBERA_WORKER_DIR"), *home = getenv("HOME");
	int i, j;

	if (env != NULL && *env != '\0')
		snprintf(dir, cap, "%s", env);
	else
		snprintf(dir, cap, "%s/.mibera", home ? home : "/tmp");
	for (i = j = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			snprintf(dir, cap, "%s", argv[++i]);
			continue;
		}
		argv[j++] = argv[i];
	}
	argv[j] = NULL;
	return j;
}

static int job_dir(const char *dir, const char *job, char *out, size_t cap)
{
	if (!mb_proto_name_ok(job))
		return MB_EINVAL;
	return snprintf(out, cap, "%s/jobs/%s", dir, job) < (int)cap ? 0
								   : MB_ETOOBIG;
}

static void step_path(char *out, size_t cap, const char *jd, const char *step,
		      const char *suffix)
{
	snprintf(out, cap, "%s/%s.%s", jd, step, suffix);
}

/* --- hello --- */

static uint64_t mem_total(void)
{
	return mb_proc_kb_field("/proc/meminfo", "MemTotal:");
}

/* GPUs from nvidia-smi, when there is one: "name, memory MiB" lines.
 * Returns how many. */
static int gpus(struct mb_buf *b)
{
	FILE *p = popen("nvidia-smi --query-gpu=name,memory.total "
			"--format=csv,noheader,nounits 2>/dev/null", "r");
	char line[512];
	int n = 0;

	mb_buf_adds(b, "[");
	while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
		char *comma = strrchr(line, ',');
		unsigned long long mib;

		if (comma == NULL)
			continue;
		*comma = '\0';
		mib = strtoull(comma + 1, NULL, 10);
		mb_buf_adds(b, n++ ? ",{\"name\":" : "{\"name\":");
		mb_json_quote(b, line);
		mb_buf_addf(b, ",\"memory\":%llu}", mib << 20);
	}
	if (p != NULL)
		pclose(p);
	mb_buf_adds(b, "]");
	return n;
}

/* What the steps that run the model (imatrix, fidelity) compute with:
 * lm_backend's words, and on a box whose GPU this build of llama.cpp
 * cannot use, that said, as a person renting the GPU wants to know. */
static void backend(struct mb_buf *b, int nvidia)
{
	char what[600], line[700];

	if (lm_backend(what, sizeof(what)) == 0 && nvidia > 0)
		snprintf(line, sizeof(line), "cpu (GPU present, llama.cpp built "
			 "for CPU)");
	else
		snprintf(line, sizeof(line), "%s", what);
	mb_buf_adds(b, ",\"backend\":");
	mb_json_quote(b, line);
}

int verb_hello(int argc, char **argv)
{
	char dir[2048];
	struct mb_buf b;
	uint64_t free_bytes = 0;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	if (argc != 1)
		return usage_err("usage: mibera-worker hello [--dir DIR]");
	if (mb_mkdir_p(dir, 0700) != 0 || mb_fs_free_space(dir, &free_bytes) != 0) {
		fprintf(stderr, "mibera-worker: cannot use '%s': %s\n", dir,
			strerror(errno));
		return 1;
	}
	mb_buf_init(&b, 1 << 16);
	mb_buf_addf(&b, "{\"v\":%d,\"agent\":\"%s\",\"protocol\":%d,\"cpus\":%ld,"
		    "\"ram\":%llu,\"dir\":", MB_PROTO_VERSION, MB_VERSION,
		    MB_PROTO_VERSION, sysconf(_SC_NPROCESSORS_ONLN),
		    (unsigned long long)mem_total());
	mb_json_quote(&b, dir);
	mb_buf_addf(&b, ",\"disk_free\":%llu,\"llama_cpp\":\"%s\",\"gpus\":",
		    (unsigned long long)free_bytes, MB_LLAMA_VERSION);
	backend(&b, gpus(&b));
	mb_buf_adds(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	mb_buf_release(&b);
	return 0;
}

/* --- start and the supervisor --- */

static int pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static pid_t read_pid(const char *path)
{
	char *s = NULL, *end;
	size_t len;
	long v;

	if (mb_read_file(path, 64, &s, &len) != 0)
		return 0;
	v = strtol(s, &end, 10);
	free(s);
	return end != s && v > 0 ? (pid_t)v : 0;
}

static int result_ok(const char *path)
{
	char *s = NULL;
	size_t len;
	cJSON *doc;
	int ok = -1;

	if (mb_read_file(path, 1 << 20, &s, &len) != 0)
		return -1; /* none */
	doc = mb_json_parse(s, len);
	if (doc != NULL)
		ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok"));
	cJSON_Delete(doc);
	free(s);
	return ok;
}

/* The last line of the step's log, for the result's error text. */
static void last_line(const char *path, char *out, size_t cap)
{
	char *s = NULL, *p, *end;
	size_t len;

	out[0] = '\0';
	if (mb_read_file(path, 64u << 20, &s, &len) != 0)
		return;
	end = s + len;
	while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	*end = '\0';
	p = end;
	while (p > s && p[-1] != '\n' && p[-1] != '\r')
		p--;
	snprintf(out, cap, "%s", p);
	free(s);
}

static void write_result(const char *path, int ok, int code, int cancelled,
			 const char *error, double seconds, uint64_t peak_rss)
{
	struct mb_buf b;

	mb_buf_init(&b, 1 << 16);
	mb_buf_addf(&b, "{\"v\":%d,\"ok\":%s,\"exit\":%d,\"cancelled\":%s,"
		    "\"seconds\":%.3f,\"peak_rss\":%llu,\"error\":",
		    MB_PROTO_VERSION, ok ? "true" : "false", code,
		    cancelled ? "true" : "false", seconds,
		    (unsigned long long)peak_rss);
	mb_json_quote(&b, error);
	mb_buf_adds(&b, "}\n");
	mb_atomic_write(path, b.data, b.len, 0600);
	mb_buf_release(&b);
}

/* In the detached session: run the verb, wait, write the result. */
static void supervise(const char *self, const char *jd, const char *step,
		      char **args, char **env_set)
{
	char log[2300], events[2300], result[2300], err[1024];
	struct rusage ru;
	uint64_t peak;
	pid_t child;
	int status = 0, fd, i;
	double t0 = mb_now_s();

	memset(&ru, 0, sizeof(ru));

	step_path(log, sizeof(log), jd, step, "log");
	step_path(events, sizeof(events), jd, step, "events");
	step_path(result, sizeof(result), jd, step, "result.json");
	child = fork();
	if (child == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("MIBERA_EVENTS", events, 1);
		for (i = 0; env_set[i] != NULL; i++)
			putenv(env_set[i]);
		execv(self, args);
		fprintf(stderr, "cannot run '%s': %s\n", self, strerror(errno));
		_exit(127);
	}
	if (child < 0) {
		write_result(result, 0, -1, 0, "cannot fork the step", 0, 0);
		_exit(1);
	}
	/* SIGTERM from cancel reaches the whole group; the supervisor lets
	 * cancel write the result */
	while (wait4(child, &status, 0, &ru) < 0 && errno == EINTR)
		;
	peak = (uint64_t)ru.ru_maxrss * 1024;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		write_result(result, 1, 0, 0, "", mb_now_s() - t0, peak);
	} else {
		last_line(log, err, sizeof(err));
		if (WIFSIGNALED(status) && err[0] == '\0')
			snprintf(err, sizeof(err), "killed by signal %d",
				 WTERMSIG(status));
		write_result(result, 0,
			     WIFEXITED(status) ? WEXITSTATUS(status)
					       : 128 + WTERMSIG(status),
			     0, err, mb_now_s() - t0, peak);
	}
	_exit(0);
}

int verb_start(int argc, char **argv)
{
	char dir[2048], jd[2200], path[2300], self[2048];
	char *args[MAX_ARGS + 2], *env_set[MAX_ARGS + 1];
	struct mb_buf spec;
	const cJSON *av, *item, *sec;
	cJSON *doc = NULL;
	pid_t pid;
	int n = 0, ne = 0, rc = 1, p[2];
	ssize_t r;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	if (argc != 3 || job_dir(dir, argv[1], jd, sizeof(jd)) != 0 ||
	    !mb_proto_name_ok(argv[2]))
		return usage_err("usage: mibera-worker start JOB STEP [--dir DIR] "
				 "< spec.json");
	/* the spec: {"v":1,"argv":[verb, args...],"secrets":{"K":"V"}} */
	mb_buf_init(&spec, MAX_SPEC);
	for (;;) {
		char chunk[8192];

		r = read(0, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (mb_buf_add(&spec, chunk, (size_t)r) != 0) {
			fprintf(stderr, "mibera-worker: the step spec is larger "
				"than %u bytes\n", MAX_SPEC);
			goto out;
		}
	}
	doc = spec.len ? mb_json_parse(spec.data, spec.len) : NULL;
	av = doc ? cJSON_GetObjectItemCaseSensitive(doc, "argv") : NULL;
	if (!cJSON_IsArray(av) || cJSON_GetArraySize(av) < 1 ||
	    cJSON_GetArraySize(av) > MAX_ARGS) {
		fprintf(stderr, "mibera-worker: the step spec needs an argv list "
			"of 1 to %d strings\n", MAX_ARGS);
		goto out;
	}
	if (mb_self_exe(self, sizeof(self)) != 0) {
		fprintf(stderr, "mibera-worker: cannot find its own binary\n");
		goto out;
	}
	args[n++] = self;
	cJSON_ArrayForEach(item, av) {
		if (!cJSON_IsString(item)) {
			fprintf(stderr, "mibera-worker: argv must be strings\n");
			goto out;
		}
		args[n++] = item->valuestring;
	}
	args[n] = NULL;
	if (!mb_proto_step_verb_ok(args[1])) {
		fprintf(stderr, "mibera-worker: '%s' is not a verb a step may run\n",
			args[1]);
		goto out;
	}
	/* secrets and plain settings (HF_ENDPOINT) both become the step's
	 * environment; only secrets are wiped here after use */
	for (int pass = 0; pass < 2; pass++) {
		sec = cJSON_GetObjectItemCaseSensitive(doc, pass ? "env" : "secrets");
		if (sec == NULL || !cJSON_IsObject(sec))
			continue;
		cJSON_ArrayForEach(item, sec) {
			struct mb_buf kv;

			if (!cJSON_IsString(item) || !mb_proto_env_name_ok(item->string) ||
			    ne == MAX_ARGS) {
				fprintf(stderr, "mibera-worker: bad secret name\n");
				goto out;
			}
			mb_buf_init(&kv, 1 << 16);
			mb_buf_addf(&kv, "%s=%s", item->string, item->valuestring);
			env_set[ne++] = mb_buf_detach(&kv, NULL);
		}
	}
	env_set[ne] = NULL;

	if (mb_mkdir_p(jd, 0700) != 0) {
		fprintf(stderr, "mibera-worker: cannot create '%s': %s\n", jd,
			strerror(errno));
		goto out;
	}
	/* a step with a successful result is done; a running one is left */
	step_path(path, sizeof(path), jd, argv[2], "result.json");
	if (result_ok(path) == 1) {
		printf("{\"v\":%d,\"pid\":0,\"already\":\"done\"}\n", MB_PROTO_VERSION);
		rc = 0;
		goto out;
	}
	step_path(path, sizeof(path), jd, argv[2], "pid");
	pid = read_pid(path);
	if (pid_alive(pid)) {
		printf("{\"v\":%d,\"pid\":%d,\"already\":\"running\"}\n",
		       MB_PROTO_VERSION, (int)pid);
		rc = 0;
		goto out;
	}
	/* a new attempt: the last one's result goes; the journal stays, so a
	 * follower's offsets stay valid */
	step_path(path, sizeof(path), jd, argv[2], "result.json");
	unlink(path);
	/* the step's own files (the hub cache of fetch) go under the same
	 * worker directory */
	setenv("MIBERA_WORKER_DIR", dir, 1);
	if (pipe(p) != 0)
		goto out;
	pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		pid_t s;
		int fd;

		close(p[0]);
		setsid();
		s = fork();
		if (s != 0) {
			if (s > 0)
				(void)!write(p[1], &s, sizeof(s));
			_exit(0);
		}
		/* the supervisor: in the new session, the leader of its own
		 * process group (the session leader has exited), so cancel
		 * reaches it and the step through kill(-pid) */
		setpgid(0, 0);
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(p[1]);
		if (chdir(jd) != 0)
			_exit(1);
		supervise(self, jd, argv[2], args, env_set);
		_exit(0);
	}
	close(p[1]);
	{
		pid_t sup = 0;

		while ((r = read(p[0], &sup, sizeof(sup))) < 0 && errno == EINTR)
			;
		close(p[0]);
		waitpid(pid, NULL, 0);
		if (r != sizeof(sup) || sup <= 0) {
			fprintf(stderr, "mibera-worker: the step did not start\n");
			goto out;
		}
		step_path(path, sizeof(path), jd, argv[2], "pid");
		{
			char s[32];
			int l = snprintf(s, sizeof(s), "%d\n", (int)sup);

			mb_atomic_write(path, s, (size_t)l, 0600);
		}
		printf("{\"v\":%d,\"pid\":%d}\n", MB_PROTO_VERSION, (int)sup);
	}
	rc = 0;
out:
	while (ne > 0) {
		/* the secrets leave memory with the process; wipe them anyway */
		char *e = env_set[--ne];

		for (volatile char *q = e; *q; q++)
			*q = 0;
		free(e);
	}
	cJSON_Delete(doc);
	mb_buf_release(&spec);
	return rc;
}

/* --- follow --- */

int verb_follow(int argc, char **argv)
{
	char dir[2048], jd[2200], events[2300], result[2300], pidf[2300];
	char buf[65536];
	unsigned long long from = 0;
	int fd = -1, i, idle_checks = 0;
	char *end;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			from = strtoull(argv[++i], &end, 10);
			if (*end != '\0')
				return usage_err("--from needs a byte offset");
		} else {
			return usage_err("usage: mibera-worker follow JOB STEP "
					 "[--from OFFSET] [--dir DIR]");
		}
	}
	if (argc < 3 || job_dir(dir, argv[1], jd, sizeof(jd)) != 0 ||
	    !mb_proto_name_ok(argv[2]))
		return usage_err("usage: mibera-worker follow JOB STEP "
				 "[--from OFFSET] [--dir DIR]");
	step_path(events, sizeof(events), jd, argv[2], "events");
	step_path(result, sizeof(result), jd, argv[2], "result.json");
	step_path(pidf, sizeof(pidf), jd, argv[2], "pid");
	for (;;) {
		int done = access(result, F_OK) == 0;
		ssize_t n;

		if (fd < 0)
			fd = open(events, O_RDONLY | O_CLOEXEC);
		/* read everything there is; a result seen before the read
		 * means nothing more will be appended after it */
		while (fd >= 0 && (n = pread(fd, buf, sizeof(buf), (off_t)from)) > 0) {
			/* whole lines only: a follower resumes at a line start */
			ssize_t k = n;

			while (k > 0 && buf[k - 1] != '\n')
				k--;
			if (k == 0)
				break;
			if (fwrite(buf, 1, (size_t)k, stdout) != (size_t)k)
				return 1; /* the reader went away */
			fflush(stdout);
			from += (unsigned long long)k;
		}
		if (done)
			break;
		/* no result and no supervisor: the attempt died */
		if (++idle_checks % 10 == 0 && !pid_alive(read_pid(pidf)) &&
		    access(result, F_OK) != 0) {
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "mibera-worker: step '%s' of job '%s' ended "
				"without a result\n", argv[2], argv[1]);
			return 4;
		}
		usleep(100 * 1000);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* --- status, cancel, cleanup --- */

/* Each step of the job: its state from the files. */
static int each_step(const char *jd, int (*fn)(const char *jd, const char *step,
					       void *ctx),
		     void *ctx)
{
	struct dirent *de;
	DIR *d = opendir(jd);
	int rc = 0;

	if (d == NULL)
		return errno == ENOENT ? MB_ENOENT : mb_err_from_errno(errno);
	while ((de = readdir(d)) != NULL && rc == 0) {
		size_t n = strlen(de->d_name);
		char step[64];

		if (n <= 4 || strcmp(de->d_name + n - 4, ".pid") != 0 || n - 4 >= 64)
			continue;
		memcpy(step, de->d_name, n - 4);
		step[n - 4] = '\0';
		rc = fn(jd, step, ctx);
	}
	closedir(d);
	return rc;
}

static int status_one(const char *jd, const char *step, void *ctx)
{
	struct mb_buf *b = ctx;
	char path[2300];
	struct stat st;
	pid_t pid;
	int ok;

	step_path(path, sizeof(path), jd, step, "result.json");
	ok = result_ok(path);
	step_path(path, sizeof(path), jd, step, "pid");
	pid = read_pid(path);
	step_path(path, sizeof(path), jd, step, "events");
	if (b->len > 1)
		mb_buf_adds(b, ",");
	mb_buf_adds(b, "{\"step\":");
	mb_json_quote(b, step);
	mb_buf_addf(b, ",\"state\":\"%s\",\"pid\":%d,\"journal\":%lld}",
		    ok == 1 ? "done" : ok == 0 ? "failed"
				   : pid_alive(pid) ? "running" : "died",
		    (int)pid, stat(path, &st) == 0 ? (long long)st.st_size : 0LL);
	return 0;
}

int verb_status(int argc, char **argv)
{
	char dir[2048], jd[2200];
	struct mb_buf b;
	int rc;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	if (argc != 2 || job_dir(dir, argv[1], jd, sizeof(jd)) != 0)
		return usage_err("usage: mibera-worker status JOB [--dir DIR]");
	mb_buf_init(&b, 1 << 20);
	mb_buf_adds(&b, "[");
	rc = each_step(jd, status_one, &b);
	mb_buf_adds(&b, "]");
	printf("{\"v\":%d,\"job\":\"%s\",\"steps\":%s}\n", MB_PROTO_VERSION,
	       argv[1], rc == MB_ENOENT ? "[]" : b.data);
	mb_buf_release(&b);
	return rc == 0 || rc == MB_ENOENT ? 0 : 1;
}

static int cancel_one(const char *jd, const char *step, void *ctx)
{
	char path[2300];
	pid_t pid;
	int i;

	(void)ctx;
	step_path(path, sizeof(path), jd, step, "pid");
	pid = read_pid(path);
	if (!pid_alive(pid))
		return 0;
	/* the supervisor leads its session's process group: the step and
	 * whatever it started go with it */
	kill(-pid, SIGTERM);
	for (i = 0; i < 50 && pid_alive(pid); i++)
		usleep(100 * 1000);
	kill(-pid, SIGKILL);
	for (i = 0; i < 50 && pid_alive(pid); i++)
		usleep(100 * 1000);
	step_path(path, sizeof(path), jd, step, "result.json");
	write_result(path, 0, -1, 1, "cancelled", 0, 0);
	return 0;
}

int verb_cancel(int argc, char **argv)
{
	char dir[2048], jd[2200];
	int rc;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	if (argc != 2 || job_dir(dir, argv[1], jd, sizeof(jd)) != 0)
		return usage_err("usage: mibera-worker cancel JOB [--dir DIR]");
	rc = each_step(jd, cancel_one, NULL);
	return rc == 0 || rc == MB_ENOENT ? 0 : 1;
}

int verb_cleanup(int argc, char **argv)
{
	char dir[2048], jd[2200];
	int rc;

	argc = take_dir(argc, argv, dir, sizeof(dir));
	if (argc != 2 || job_dir(dir, argv[1], jd, sizeof(jd)) != 0)
		return usage_err("usage: mibera-worker cleanup JOB [--dir DIR]");
	each_step(jd, cancel_one, NULL); /* nothing keeps running in it */
	rc = mb_rmtree(jd);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker: cannot remove '%s': %s\n", jd,
			mb_strerror(rc));
		return 1;
	}
	return 0;
}
