/* Converting while the download runs, end to end through the programs a
 * person runs: a hub that serves the first shard slowly, a worker over
 * the loopback sshd, the coordinator. The convert starts before the fetch
 * ends, its progress reaches the job's events while the download runs,
 * and it writes the GGUF a conversion of the finished download writes;
 * a shard that fails verification fails the job with the fetch's message
 * and leaves no GGUF; one that fails it once is fetched again, and what
 * the convert read of it before is converted again; a coordinator killed with -9 while both run is
 * restarted and the job succeeds with the same GGUF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "hub.h"
#include "model.h"
#include "sshd.h"
#include "th.h"

#define SHARD1 "model-00001-of-00002.safetensors"

static char root[512], home[600];
static struct th_sshd sshd;
static struct th_hub hub;

static int setup(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	char path[700], hubroot[700];

	(void)state;
	if (th_tmpdir("follow", root, sizeof(root)) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(path, sizeof(path), "%s/hub/org/slow", root);
	if (th_mkmodel(path, "phi4-tiny", extra) != 0 ||
	    th_sshd_start(&sshd) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mibera", root);
	setenv("MIBERA_HOME", path, 1);
	if (th_sshd_client(&sshd, home) != 0)
		return -1;
	snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
	if (th_hub_start(&hub, hubroot, NULL) != 0)
		return -1;
	setenv("HF_ENDPOINT", hub.url, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	th_sshd_stop(&sshd);
	th_rmtree(root);
	return 0;
}

/* Adds worker name with its own directory (so its hub cache starts empty
 * and the fetch has work to do), accepting the host key. */
static void add_worker(const char *name)
{
	char *out;

	if (th_worker_add(&out, "%s box1 --dir %s/wd-%s --agent %s/mibera-worker",
			  name, root, name, MB_BINARY_DIR) != 0)
		fail_msg("worker add: %s", out);
	free(out);
}

/* Serves the first shard at bytes/s; with corrupt_at, flips that byte of
 * it in every answer that covers it. */
static void hub_faults(long throttle, long corrupt_at)
{
	char knob[128];

	assert_int_equal(th_hub_reset(&hub), 0);
	if (corrupt_at >= 0)
		snprintf(knob, sizeof(knob), "\"throttle\":%ld,\"corrupt_at\":%ld,"
			 "\"times\":100", throttle, corrupt_at);
	else
		snprintf(knob, sizeof(knob), "\"throttle\":%ld", throttle);
	assert_int_equal(th_hub_fault(&hub, "org/slow", SHARD1, knob), 0);
}

static int submit(const char *worker)
{
	char args[256], *out;
	int id;

	snprintf(args, sizeof(args), "submit org/slow --worker %s --quant Q8_0 "
		 "--no-smoke --no-fidelity --imatrix off --pull-f16", worker);
	if (th_prog("mibera-job", args, &out) != 0)
		fail_msg("submit: %s", out);
	id = atoi(out);
	free(out);
	assert_true(id > 0);
	return id;
}

/* The ms of the first (or last) event of step and type of job id, and
 * its member key as a string into val (NULL: not wanted); -1 when none. */
static long long event(int id, const char *step, const char *type, int last,
		       const char *key, char *val, size_t cap)
{
	char args[128], *out, *line, *save = NULL;
	long long ms = -1;

	snprintf(args, sizeof(args), "logs --json --step %s %d", step, id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		cJSON *e = cJSON_Parse(line);
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));

		if (t != NULL && strcmp(t, type) == 0 && (ms < 0 || last)) {
			ms = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e,
										  "ms"));
			if (val != NULL) {
				const char *v = cJSON_GetStringValue(
					cJSON_GetObjectItem(e, key));

				snprintf(val, cap, "%s", v ? v : "");
			}
		}
		cJSON_Delete(e);
	}
	free(out);
	return ms;
}

/* Member key (a number) of the last event of step and type of job id;
 * -1 when there is none. */
static double event_num(int id, const char *step, const char *type,
			const char *key)
{
	char args[128], *out, *line, *save = NULL;
	double v = -1;

	snprintf(args, sizeof(args), "logs --json --step %s %d", step, id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		cJSON *e = cJSON_Parse(line);
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
		const cJSON *n = cJSON_GetObjectItem(e, key);

		if (t != NULL && strcmp(t, type) == 0 && cJSON_IsNumber(n))
			v = cJSON_GetNumberValue(n);
		cJSON_Delete(e);
	}
	free(out);
	return v;
}

/* How many of the job's events of step contain text. */
static int count_events(int id, const char *step, const char *text)
{
	char args[128], *out, *line, *save = NULL;
	int n = 0;

	snprintf(args, sizeof(args), "logs --json --step %s %d", step, id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		n += strstr(line, text) != NULL;
	free(out);
	return n;
}

static void status_of(int id, char **out)
{
	char args[64];

	snprintf(args, sizeof(args), "status %d", id);
	assert_int_equal(th_prog("mibera-job", args, out), 0);
}

/* The job's F16 is the GGUF mibera-worker convert writes from the
 * finished download (the hub's own files), with the job's arguments. */
static void assert_same_as_after_download(int id)
{
	char commit[64] = "", args[2048], got[900], ref[900], *out;

	event(id, "fetch", "result", 1, "commit", commit, sizeof(commit));
	assert_int_equal(strlen(commit), 40);
	snprintf(ref, sizeof(ref), "%s/ref-%d.gguf", root, id);
	snprintf(args, sizeof(args), "convert %s/hub/org/slow %s --layout native "
		 "--outtype f16 --name slow --repo org/slow --commit %s", root,
		 ref, commit);
	if (th_prog("mibera-worker", args, &out) != 0)
		fail_msg("reference convert: %s", out);
	free(out);
	snprintf(got, sizeof(got), "%s/mibera/artifacts/job-%d/slow-F16.gguf",
		 root, id);
	assert_true(th_same_file(got, ref));
}

/* (a) the convert's first progress comes before the fetch's result, and
 * its GGUF is the one converted after the download */
static void test_convert_runs_beside_the_download(void **state)
{
	long long first_progress, fetch_result, t0;
	char *out;
	int id;

	(void)state;
	add_worker("wa");
	hub_faults(3000000, -1);
	id = submit("wa");
	t0 = th_now_ms();
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	status_of(id, &out);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("%s", out);
	free(out);
	first_progress = event(id, "convert", "progress", 0, NULL, NULL, 0);
	fetch_result = event(id, "fetch", "result", 1, NULL, NULL, 0);
	print_message("job %d in %lld ms: the convert's first progress came "
		      "%lld ms before the fetch's result\n", id,
		      th_now_ms() - t0, fetch_result - first_progress);
	assert_true(first_progress > 0 && fetch_result > 0);
	assert_true(first_progress < fetch_result);
	/* the slow shard was converted as it came, not once it was whole */
	print_message("%.0f bytes converted before their shard was whole\n",
		      event_num(id, "convert", "done", "early_bytes"));
	assert_true(event_num(id, "convert", "done", "early_bytes") > 0);
	assert_true(event_num(id, "convert", "done", "redone_bytes") == 0);
	/* and reached the coordinator while the download ran: stored
	 * (events are numbered in the order they are stored) before the
	 * fetch's result, for show and the dashboard to see */
	{
		int rc = th_sh(&out, "sqlite3 '%s/mibera/jobs.db' \"SELECT "
			       "(SELECT min(id) FROM events WHERE job_id = %d "
			       "AND step = 'convert' AND type = 'progress') < "
			       "(SELECT min(id) FROM events WHERE job_id = %d "
			       "AND step = 'fetch' AND type = 'result')\"",
			       root, id, id);

		if (rc != 0 || strncmp(out, "1", 1) != 0)
			fail_msg("the convert's progress was stored only after "
				 "the download ended (%d: %s)", rc, out);
		free(out);
	}
	/* said in the job's events */
	{
		char args[64];

		snprintf(args, sizeof(args), "logs --step convert %d", id);
		assert_int_equal(th_prog("mibera-job", args, &out), 0);
		assert_non_null(strstr(out, "converting while the download runs"));
		free(out);
	}
	assert_same_as_after_download(id);
}

/* True when dir (recursively) holds a file whose name ends in .gguf. */
static int has_gguf(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int found = 0;

	if (d == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		char path[1200];
		size_t n = strlen(de->d_name);
		struct stat st;

		if (de->d_name[0] == '.' && (n == 1 || (n == 2 &&
							de->d_name[1] == '.')))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			found = has_gguf(path);
		else
			found = n > 5 && strcmp(de->d_name + n - 5, ".gguf") == 0;
	}
	closedir(d);
	return found;
}

/* (b) a shard that fails verification fails the job with the fetch's
 * message; the convert stops and leaves no GGUF */
static void test_bad_shard_fails_the_job(void **state)
{
	char path[900], *out, *res = NULL;
	long long t0;
	size_t len;
	int id;

	(void)state;
	add_worker("wb");
	hub_faults(4000000, 6000000);
	id = submit("wb");
	assert_int_not_equal(th_prog("mibera-coordinator", "--once", &out), 0);
	free(out);
	status_of(id, &out);
	print_message("%s", out);
	assert_non_null(strstr(out, "failed"));
	assert_non_null(strstr(out, "failed verification twice"));
	free(out);
	/* the convert on the worker stops on its own, with the fetch's word */
	snprintf(path, sizeof(path), "%s/wd-wb/jobs/job-%d/convert.result.json",
		 root, id);
	t0 = th_now_ms();
	while ((res = th_slurp(path, &len)) == NULL && th_now_ms() - t0 < 20000)
		usleep(100 * 1000);
	assert_non_null(res);
	assert_non_null(strstr(res, "\"ok\":false"));
	assert_non_null(strstr(res, "the download failed"));
	free(res);
	snprintf(path, sizeof(path), "%s/wd-wb/jobs/job-%d/out", root, id);
	assert_false(has_gguf(path));
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d", root, id);
	assert_false(has_gguf(path));
}

/* (d) a shard converted as it came, then failing its check once: the
 * fetch starts it over, the convert does again what it read of it, and
 * the job's GGUF and its Q8_0 are the ones made from the verified files */
static void test_shard_fetched_again_is_converted_again(void **state)
{
	char args[2048], got[900], ref[900], *out;
	int id;

	(void)state;
	add_worker("wd");
	/* the first answer that covers the byte corrupts it; the shard's
	 * second fetch is clean */
	assert_int_equal(th_hub_reset(&hub), 0);
	assert_int_equal(th_hub_fault(&hub, "org/slow", SHARD1,
				      "\"throttle\":3000000"), 0);
	assert_int_equal(th_hub_fault(&hub, "org/slow", SHARD1,
				      "\"corrupt_at\":6000000,\"times\":1"), 0);
	id = submit("wd");
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	status_of(id, &out);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("%s", out);
	free(out);
	print_message("%.0f bytes converted before their shard was whole, "
		      "%.0f of them again\n",
		      event_num(id, "convert", "done", "early_bytes"),
		      event_num(id, "convert", "done", "redone_bytes"));
	assert_true(event_num(id, "convert", "done", "redone_bytes") > 0);
	assert_same_as_after_download(id);
	/* the Q8_0 written in the same pass is quantize's of that F16 */
	snprintf(got, sizeof(got), "%s/mibera/artifacts/job-%d/slow-F16.gguf",
		 root, id);
	snprintf(ref, sizeof(ref), "%s/ref-%d-Q8_0.gguf", root, id);
	snprintf(args, sizeof(args), "quantize %s %s Q8_0", got, ref);
	if (th_prog("mibera-worker", args, &out) != 0)
		fail_msg("quantize: %s", out);
	free(out);
	snprintf(got, sizeof(got), "%s/mibera/artifacts/job-%d/slow-Q8_0.gguf",
		 root, id);
	assert_true(th_same_file(got, ref));
}

/* (c) kill -9 of the coordinator while the fetch and the convert both run;
 * a new one finishes the job with the same GGUF */
static void test_killed_coordinator_resumes_both(void **state)
{
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char args[64], *out;
	long long t0;
	int id, st, both = 0;
	pid_t pid;

	(void)state;
	add_worker("wc");
	hub_faults(2000000, -1);
	id = submit("wc");
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	snprintf(args, sizeof(args), "status %d", id);
	t0 = th_now_ms();
	while (!both && th_now_ms() - t0 < 60000) {
		th_prog("mibera-job", args, &out);
		both = strstr(out, "  fetch      running") != NULL &&
		       strstr(out, "  convert    running") != NULL;
		free(out);
		if (!both)
			usleep(100 * 1000);
	}
	assert_true(both);
	usleep(500 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("restarted coordinator: %s", out);
	assert_non_null(strstr(out, "resuming"));
	free(out);
	status_of(id, &out);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("%s", out);
	free(out);
	/* the convert ran once, said once, not begun again */
	assert_int_equal(count_events(id, "convert", "\"type\":\"done\""), 1);
	assert_int_equal(count_events(id, "convert", "converting while the "
				      "download runs"), 1);
	assert_same_as_after_download(id);
}

/* Writes the side header of shard name of dir as a headers-first fetch
 * does (its first 8 + N bytes, sparse to its size), with the metadata's
 * "pt" changed to "xx" when tamper is set. */
static void side_header(const char *dir, const char *name, int tamper)
{
	char path[900], side[900];
	uint64_t n = 0;
	size_t len;
	char *data, *p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	data = th_slurp(path, &len);
	assert_non_null(data);
	memcpy(&n, data, 8); /* little-endian, as the test machines are */
	assert_true(n + 8 <= len);
	if (tamper) {
		data[8 + n - 1] = '\0';
		p = strstr(data + 8, "\"pt\"");
		assert_non_null(p);
		memcpy(p, "\"xx\"", 4);
		data[8 + n - 1] = ' ';
	}
	snprintf(side, sizeof(side), "%s/.mibera/headers/%s", dir, name);
	f = fopen(side, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, 8 + n, f), 8 + n);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(truncate(side, (off_t)len), 0);
	free(data);
}

/* The verb alone: a shard whose header is not the one planned from fails
 * the conversion, saying so; a fetch that stops without a word ends it
 * after --follow-timeout; neither leaves a GGUF. */
static void test_convert_follow_checks_what_it_planned_from(void **state)
{
	char dir[700], args[2048], out_path[800], *out;
	const char *state_done = "{\"state\":\"done\",\"commit\":\"\","
				 "\"permanent\":false,\"message\":\"\"}\n";
	const char *state_run = "{\"state\":\"headers\",\"commit\":\"\","
				"\"permanent\":false,\"message\":\"\"}\n";
	char path[900];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tamper", root);
	snprintf(args, sizeof(args), "cp -r %s/hub/org/slow %s && mkdir -p "
		 "%s/.mibera/headers", root, dir, dir);
	assert_int_equal(system(args), 0);
	side_header(dir, SHARD1, 0);
	side_header(dir, "model-00002-of-00002.safetensors", 1);
	snprintf(path, sizeof(path), "%s/.mibera/fetch.state", dir);
	assert_int_equal(th_write_file(path, state_done, strlen(state_done)), 0);
	snprintf(out_path, sizeof(out_path), "%s/tamper.gguf", root);
	snprintf(args, sizeof(args), "convert %s %s --follow", dir, out_path);
	assert_int_equal(th_prog("mibera-worker", args, &out), 3);
	assert_non_null(strstr(out, "shard 'model-00002-of-00002.safetensors' "
				    "is not the one the conversion was planned "
				    "from"));
	free(out);
	assert_int_not_equal(access(out_path, F_OK), 0);
	/* the fetch says it runs, then says nothing more: the second shard
	 * never comes */
	side_header(dir, "model-00002-of-00002.safetensors", 0);
	snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/.mibera/fetch.state", dir);
	assert_int_equal(th_write_file(path, state_run, strlen(state_run)), 0);
	snprintf(args, sizeof(args), "convert %s %s --follow --follow-timeout 1",
		 dir, out_path);
	assert_int_equal(th_prog("mibera-worker", args, &out), 1);
	assert_non_null(strstr(out, "the download has not moved for 1 s"));
	free(out);
	assert_int_not_equal(access(out_path, F_OK), 0);
	snprintf(path, sizeof(path), "%s.part", out_path);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* A fetch run again into the same model directory (a restarted step)
 * leaves the files and the side directory, nothing else. */
static void test_fetch_again_leaves_only_the_files(void **state)
{
	char dest[700], args[2048], *out;
	struct dirent *de;
	DIR *d;
	int i, n = 0;

	(void)state;
	assert_int_equal(th_hub_reset(&hub), 0);
	snprintf(dest, sizeof(dest), "%s/again", root);
	for (i = 0; i < 2; i++) {
		snprintf(args, sizeof(args), "fetch org/slow --cache %s/again-cache "
			 "--dest %s --headers-first", root, dest);
		if (th_prog("mibera-worker", args, &out) != 0)
			fail_msg("fetch: %s", out);
		free(out);
	}
	d = opendir(dest);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, "tmp") != NULL)
			fail_msg("'%s' left in %s", de->d_name, dest);
		n++;
	}
	closedir(d);
	/* . .. .mibera and the repo's 9 files */
	assert_int_equal(n, 12);
	/* the links a conversion reads a shard by while it comes are gone
	 * once it is verified */
	snprintf(args, sizeof(args), "find %s/.mibera -name '*.partial' | grep .",
		 dest);
	assert_int_not_equal(th_sh(&out, "%s", args), 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert_runs_beside_the_download),
		cmocka_unit_test(test_bad_shard_fails_the_job),
		cmocka_unit_test(test_shard_fetched_again_is_converted_again),
		cmocka_unit_test(test_killed_coordinator_resumes_both),
		cmocka_unit_test(test_convert_follow_checks_what_it_planned_from),
		cmocka_unit_test(test_fetch_again_leaves_only_the_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
