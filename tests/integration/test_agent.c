/* The worker agent run directly (as the local transport runs it): hello,
 * a detached step followed to its result, resuming a follow from an
 * offset, finished steps not rerun, failures reported, hostile names and
 * specs refused. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "hub.h"
#include "model.h"
#include "th.h"

#define TOKEN "hf_agent_secret_0123456789abcdef"

static char root[512], wdir[600], model[600];
static struct th_hub hub;

static int setup(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };

	(void)state;
	if (th_tmpdir("agent", root, sizeof(root)) != 0)
		return -1;
	snprintf(wdir, sizeof(wdir), "%s/worker", root);
	snprintf(model, sizeof(model), "%s/hub/org/slow", root);
	if (th_mkmodel(model, "phi4-tiny", extra) != 0)
		return -1;
	{
		char hubroot[600];

		snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
		return th_hub_start(&hub, hubroot, TOKEN);
	}
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	return th_rmtree(root);
}

/* Runs `mibera-worker ARGS --dir wdir` with stdin_text; stdout into out. */
static int worker(const char *args, const char *stdin_text, char **out)
{
	char cmd[4096], in[700];
	struct mb_buf b;
	char chunk[65536];
	size_t n;
	FILE *p;
	int st;

	snprintf(in, sizeof(in), "%s/stdin.json", root);
	assert_int_equal(th_write_file(in, stdin_text ? stdin_text : "",
				       stdin_text ? strlen(stdin_text) : 0),
			 0);
	snprintf(cmd, sizeof(cmd), "%s/mibera-worker %s --dir %s <%s",
		 MB_BINARY_DIR, args, wdir, in);
	p = popen(cmd, "r");
	assert_non_null(p);
	mb_buf_init(&b, 64u << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		assert_int_equal(mb_buf_add(&b, chunk, n), 0);
	st = pclose(p);
	*out = mb_buf_detach(&b, NULL);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Returns 1 when doc, printed, contains what. */
static int json_has(const cJSON *doc, const char *what)
{
	char *text = cJSON_PrintUnformatted(doc);
	int found = text != NULL && strstr(text, what) != NULL;

	free(text);
	return found;
}

static cJSON *worker_json(const char *args, const char *in)
{
	char *out;
	cJSON *doc;

	if (worker(args, in, &out) != 0)
		fail_msg("mibera-worker %s failed: %s", args, out);
	doc = cJSON_Parse(out);
	if (doc == NULL)
		fail_msg("mibera-worker %s: not JSON: %s", args, out);
	free(out);
	return doc;
}

static void test_hello(void **state)
{
	cJSON *h;

	(void)state;
	h = worker_json("hello", NULL);
	assert_int_equal(cJSON_GetObjectItem(h, "protocol")->valuedouble, 1);
	assert_true(cJSON_GetObjectItem(h, "cpus")->valuedouble >= 1);
	assert_true(cJSON_GetObjectItem(h, "ram")->valuedouble > 0);
	assert_true(cJSON_GetObjectItem(h, "disk_free")->valuedouble > 0);
	assert_non_null(strstr(cJSON_GetObjectItem(h, "llama_cpp")->valuestring,
			       "v0."));
	assert_true(cJSON_IsArray(cJSON_GetObjectItem(h, "gpus")));
	cJSON_Delete(h);
}

/* hello says what libllama computes with: "cpu" on this build (no GPU
 * backend), and on a box whose nvidia-smi lists a GPU that this build
 * cannot use, that it is there. The GPU case uses a stand-in nvidia-smi
 * (a script answering the query hello makes): the decision is tested,
 * not a GPU, which this machine does not have. */
static void test_hello_backend(void **state)
{
	char dir[700], path[800], *old_path;
	const char *b;
	cJSON *h;

	(void)state;
	h = worker_json("hello", NULL);
	b = cJSON_GetStringValue(cJSON_GetObjectItem(h, "backend"));
	assert_non_null(b);
	if (strncmp(b, "cuda: ", 6) == 0) {
		/* a CUDA build on a GPU box: the GPU's name and memory */
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(h, "gpus")) > 0);
		assert_non_null(strstr(b, " GiB"));
		cJSON_Delete(h);
		skip();
	}
	if (cJSON_GetArraySize(cJSON_GetObjectItem(h, "gpus")) == 0)
		assert_string_equal(b, "cpu");
	else
		assert_string_equal(b, "cpu (GPU present, llama.cpp built for CPU)");
	cJSON_Delete(h);

	snprintf(dir, sizeof(dir), "%s/fake-nvidia", root);
	snprintf(path, sizeof(path), "%s/nvidia-smi", dir);
	assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
	{
		static const char script[] = "#!/bin/sh\necho 'NVIDIA H200, "
					     "143771'\n";

		assert_int_equal(th_write_file(path, script, sizeof(script) - 1), 0);
	}
	assert_int_equal(chmod(path, 0755), 0);
	old_path = strdup(getenv("PATH"));
	assert_non_null(old_path);
	{
		char p[8192];

		snprintf(p, sizeof(p), "%s:%s", dir, old_path);
		setenv("PATH", p, 1);
	}
	h = worker_json("hello", NULL);
	setenv("PATH", old_path, 1);
	free(old_path);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "gpus")), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(h, "backend")),
			    "cpu (GPU present, llama.cpp built for CPU)");
	cJSON_Delete(h);
}

static char *spec_convert(const char *out_name)
{
	static char spec[2048];

	snprintf(spec, sizeof(spec),
		 "{\"v\":1,\"argv\":[\"convert\",\"%s\",\"%s/%s\",\"--outtype\","
		 "\"f32\"]}", model, root, out_name);
	return spec;
}

static void test_step_followed_to_result(void **state)
{
	char *out, *all, path[800];
	cJSON *doc;
	size_t half;
	int pid;

	(void)state;
	doc = worker_json("start j1 convert", spec_convert("a.gguf"));
	pid = (int)cJSON_GetObjectItem(doc, "pid")->valuedouble;
	assert_true(pid > 0);
	cJSON_Delete(doc);
	assert_int_equal(worker("follow j1 convert --from 0", NULL, &all), 0);
	assert_non_null(strstr(all, "\"type\":\"progress\""));
	assert_non_null(strstr(all, "\"type\":\"done\""));
	assert_non_null(strstr(all, "\"seq\":1,"));
	/* whole lines only, and a follow from any line start resumes there */
	assert_int_equal(all[strlen(all) - 1], '\n');
	half = (size_t)(strchr(all, '\n') - all) + 1;
	{
		char args[64];

		snprintf(args, sizeof(args), "follow j1 convert --from %zu", half);
		assert_int_equal(worker(args, NULL, &out), 0);
		assert_string_equal(out, all + half);
		free(out);
	}
	snprintf(path, sizeof(path), "%s/jobs/j1/convert.result.json", wdir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "\"ok\":true"));
	free(out);
	snprintf(path, sizeof(path), "%s/a.gguf", root);
	assert_int_equal(access(path, F_OK), 0);
	/* done is done: a second start does not run it again */
	doc = worker_json("start j1 convert", spec_convert("a.gguf"));
	assert_string_equal(cJSON_GetObjectItem(doc, "already")->valuestring,
			    "done");
	cJSON_Delete(doc);
	doc = worker_json("status j1", NULL);
	assert_true(json_has(doc, "\"state\":\"done\""));
	cJSON_Delete(doc);
	free(all);
}

static void test_failed_step(void **state)
{
	char *out, path[800];
	cJSON *doc;

	(void)state;
	doc = worker_json("start j2 convert",
			  "{\"v\":1,\"argv\":[\"convert\",\"/nonexistent/model\","
			  "\"/tmp/x.gguf\"]}");
	cJSON_Delete(doc);
	assert_int_equal(worker("follow j2 convert", NULL, &out), 0);
	assert_non_null(strstr(out, "\"type\":\"error\""));
	free(out);
	snprintf(path, sizeof(path), "%s/jobs/j2/convert.result.json", wdir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "\"ok\":false"));
	assert_non_null(strstr(out, "/nonexistent/model"));
	free(out);
	doc = worker_json("status j2", NULL);
	assert_true(json_has(doc, "\"state\":\"failed\""));
	cJSON_Delete(doc);
	/* cleanup removes the job */
	assert_int_equal(worker("cleanup j2", NULL, &out), 0);
	free(out);
	snprintf(path, sizeof(path), "%s/jobs/j2", wdir);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_hostile_requests(void **state)
{
	char *out;

	(void)state;
	/* names that would escape the job directory */
	assert_int_equal(worker("start ../x convert", spec_convert("b.gguf"), &out),
			 2);
	free(out);
	assert_int_equal(worker("start j3 ../../bin", spec_convert("b.gguf"), &out),
			 2);
	free(out);
	/* only step verbs: not the agent's own, not anything else */
	assert_int_equal(worker("start j3 s", "{\"v\":1,\"argv\":[\"cleanup\","
					      "\"j1\"]}", &out),
			 1);
	free(out);
	assert_int_equal(worker("start j3 s", "{\"v\":1,\"argv\":[]}", &out), 1);
	free(out);
	assert_int_equal(worker("start j3 s", "not json", &out), 1);
	free(out);
	assert_int_equal(worker("start j3 s", "{\"v\":1,\"argv\":[\"convert\"],"
					      "\"secrets\":{\"A=B\":\"x\"}}", &out),
			 1);
	free(out);
	assert_int_equal(worker("follow j3 s --from x", NULL, &out), 2);
	free(out);
}

/* A fetch slowed to a crawl by the hub: a step that runs for minutes. */
static void start_slow(const char *job)
{
	char spec[2048], args[128], *out;
	cJSON *doc;

	assert_int_equal(th_hub_fault(&hub, "org/slow",
				      "model-00001-of-00002.safetensors",
				      "\"throttle\":100000"),
			 0);
	snprintf(spec, sizeof(spec),
		 "{\"v\":1,\"argv\":[\"fetch\",\"org/slow\",\"--dest\","
		 "\"%s/dl-%s\",\"--cache\",\"%s/cache-%s\"],"
		 "\"secrets\":{\"HF_TOKEN\":\"" TOKEN "\"},"
		 "\"env\":{\"HF_ENDPOINT\":\"%s\"}}", root, job, root, job, hub.url);
	snprintf(args, sizeof(args), "start %s fetch", job);
	doc = worker_json(args, spec);
	assert_true(cJSON_GetObjectItem(doc, "pid")->valuedouble > 0);
	cJSON_Delete(doc);
	/* wait for the first progress event */
	{
		char path[800];
		long long t0 = th_now_ms();
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/jobs/%s/fetch.events", wdir, job);
		while (th_now_ms() - t0 < 20000) {
			char *j = th_slurp(path, &len);
			int have = j != NULL && strstr(j, "progress") != NULL;

			free(j);
			if (have)
				break;
			usleep(100 * 1000);
		}
		assert_true(len > 0);
	}
	(void)out;
}

static int step_pid(const char *job)
{
	char path[800], *s;
	int pid;

	snprintf(path, sizeof(path), "%s/jobs/%s/fetch.pid", wdir, job);
	s = th_slurp(path, NULL);
	assert_non_null(s);
	pid = atoi(s);
	free(s);
	return pid;
}

static void test_secret_never_in_argv_or_journal(void **state)
{
	char path[800], *j;
	struct dirent *de;
	DIR *d;

	(void)state;
	start_slow("j4");
	/* while the step runs with the token: no command line shows it */
	d = opendir("/proc");
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char cl[300], *s;
		size_t len, i;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(cl, sizeof(cl), "/proc/%s/cmdline", de->d_name);
		s = th_slurp(cl, &len);
		if (s == NULL)
			continue;
		for (i = 0; i < len; i++)
			if (s[i] == '\0')
				s[i] = ' ';
		if (strstr(s, TOKEN) != NULL)
			fail_msg("process %s has the token in its command line",
				 de->d_name);
		free(s);
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/jobs/j4/fetch.events", wdir);
	j = th_slurp(path, NULL);
	assert_null(strstr(j, TOKEN));
	free(j);
	snprintf(path, sizeof(path), "%s/jobs/j4/fetch.log", wdir);
	j = th_slurp(path, NULL);
	if (j != NULL)
		assert_null(strstr(j, TOKEN));
	free(j);
}

static void test_cancel_ends_the_process_group(void **state)
{
	char path[800], *out;
	int pid;

	(void)state;
	pid = step_pid("j4");
	/* the supervisor leads a process group that holds the step */
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(kill(-pid, 0), 0);
	assert_int_equal(worker("status j4", NULL, &out), 0);
	assert_non_null(strstr(out, "\"state\":\"running\""));
	free(out);
	assert_int_equal(worker("cancel j4", NULL, &out), 0);
	free(out);
	/* the supervisor and everything in its group are gone */
	assert_int_equal(kill(-pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	snprintf(path, sizeof(path), "%s/jobs/j4/fetch.result.json", wdir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "\"cancelled\":true"));
	free(out);
}

static void test_killed_step_is_a_failed_attempt(void **state)
{
	char *out;
	cJSON *doc;
	int pid;

	(void)state;
	start_slow("j5");
	pid = step_pid("j5");
	/* the box kills everything (OOM, reboot): no result is written */
	kill(-pid, SIGKILL);
	usleep(300 * 1000);
	assert_int_equal(worker("follow j5 fetch", NULL, &out), 4);
	free(out);
	assert_int_equal(worker("status j5", NULL, &out), 0);
	assert_non_null(strstr(out, "\"state\":\"died\""));
	free(out);
	/* a new attempt starts */
	start_slow("j5");
	doc = worker_json("status j5", NULL);
	assert_true(json_has(doc, "running"));
	cJSON_Delete(doc);
	assert_int_not_equal(step_pid("j5"), pid);
	assert_int_equal(worker("cancel j5", NULL, &out), 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_hello_backend),
		cmocka_unit_test(test_step_followed_to_result),
		cmocka_unit_test(test_failed_step),
		cmocka_unit_test(test_hostile_requests),
		cmocka_unit_test(test_secret_never_in_argv_or_journal),
		cmocka_unit_test(test_cancel_ends_the_process_group),
		cmocka_unit_test(test_killed_step_is_a_failed_attempt),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
