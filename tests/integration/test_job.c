/* The job, end to end, through the programs a person runs: a worker added
 * over the loopback sshd (unknown host key refused until its fingerprint
 * is given), a model whose config.json lies submitted, the coordinator
 * running every step on the worker and pulling the artifacts back over
 * SFTP, verified; and a worker whose host key changed refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "hub.h"
#include "model.h"
#include "proxy.h"
#include "sshd.h"
#include "th.h"

static char root[512], home[600], model[600];
static struct th_sshd sshd;

static int setup(void **state)
{
	const char *extra[] = { "--config", "broken", NULL };

	(void)state;
	if (th_tmpdir("job", root, sizeof(root)) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(model, sizeof(model), "%s/phi4-tiny", root);
	if (th_mkmodel(model, "phi4-tiny", extra) != 0 ||
	    th_sshd_start(&sshd) != 0)
		return -1;
	/* everything the programs keep goes under the test's own HOME */
	{
		char mh[700];

		snprintf(mh, sizeof(mh), "%s/mibera", root);
		setenv("MIBERA_HOME", mh, 1);
	}
	return th_sshd_client(&sshd, home);
}

/* Before each test: the ssh config and environment every test starts
 * from, whatever a failed test before it left changed. */
static int fresh(void **state)
{
	(void)state;
	unsetenv("HF_ENDPOINT");
	assert_int_equal(th_sshd_client(&sshd, home), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_sshd_stop(&sshd);
	th_rmtree(root);
	return 0;
}

static const char *fingerprint_in(const char *text)
{
	static char fp[80];

	assert_non_null(strstr(text, "SHA256:"));
	return th_fingerprint(text, fp, sizeof(fp));
}

static void test_worker_add_pins_host_key(void **state)
{
	char args[2048], *out;
	const char *fp;

	(void)state;
	/* an unknown host key: refused, with the fingerprint to check */
	snprintf(args, sizeof(args), "worker add w1 box1 --dir %s/wd --agent "
		 "%s/mibera-worker --cost-per-hour 3.60", root, MB_BINARY_DIR);
	assert_int_equal(th_prog("mibera-job", args, &out), 1);
	assert_non_null(strstr(out, "unknown host key"));
	fp = fingerprint_in(out);
	free(out);
	snprintf(args, sizeof(args), "worker add w1 box1 --dir %s/wd --agent "
		 "%s/mibera-worker --cost-per-hour 3.60 --accept-host-key %s", root,
		 MB_BINARY_DIR, fp);
	if (th_prog("mibera-job", args, &out) != 0)
		fail_msg("worker add: %s", out);
	assert_non_null(strstr(out, "added worker w1"));
	assert_non_null(strstr(out, fp));
	free(out);
	assert_int_equal(th_prog("mibera-job", "worker list --json", &out), 0);
	assert_non_null(strstr(out, "\"name\":\"w1\""));
	assert_non_null(strstr(out, fp));
	free(out);
	assert_int_equal(th_prog("mibera-job", "worker check w1", &out), 0);
	free(out);
}

/* provenance.json lists every repair with its evidence, the versions and
 * each artifact's checksum (equal to the file's); the Modelfile starts
 * from the recommended quant with the model's chat template translated;
 * the card lists the files and the repairs. */
static void check_published(int job, int nrepairs)
{
	char dir[800], path[900], *out;
	cJSON *doc, *it;
	const cJSON *repairs, *arts;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/mibera/artifacts/job-%d", root, job);
	snprintf(path, sizeof(path), "%s/provenance.json", dir);
	out = th_slurp(path, &len);
	assert_non_null(out);
	doc = cJSON_ParseWithLength(out, len);
	free(out);
	assert_non_null(doc);
	repairs = cJSON_GetObjectItem(doc, "repairs");
	assert_int_equal(cJSON_GetArraySize(repairs), nrepairs);
	cJSON_ArrayForEach(it, repairs) {
		const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(it, "evidence"));

		assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(it, "key")));
		assert_non_null(cJSON_GetObjectItem(it, "actual"));
		assert_non_null(ev);
		assert_true(strlen(ev) > 0);
	}
	{
		/* the lying layer count was repaired from the tensors */
		int seen = 0;

		cJSON_ArrayForEach(it, repairs)
			if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "key")),
				   "num_hidden_layers") == 0) {
				assert_int_equal(cJSON_GetNumberValue(
						 cJSON_GetObjectItem(it, "claimed")), 32);
				assert_int_equal(cJSON_GetNumberValue(
						 cJSON_GetObjectItem(it, "actual")), 3);
				seen = 1;
			}
		assert_true(seen);
	}
	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "mibera")));
	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "llama_cpp")));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "convert"),
					    "tensors"));
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "smoke")) >= 1);
	arts = cJSON_GetObjectItem(doc, "artifacts");
	assert_true(cJSON_GetArraySize(arts) >= 2);
	cJSON_ArrayForEach(it, arts) {
		uint8_t d[MB_SHA256_LEN];
		char hex[MB_SHA256_HEX];

		snprintf(path, sizeof(path), "%s/%s", dir,
			 cJSON_GetStringValue(cJSON_GetObjectItem(it, "file")));
		assert_int_equal(mb_sha256_file(path, d, NULL), 0);
		mb_sha256_hex(d, hex);
		assert_string_equal(hex, cJSON_GetStringValue(
						 cJSON_GetObjectItem(it, "sha256")));
	}
	cJSON_Delete(doc);

	snprintf(path, sizeof(path), "%s/Modelfile", dir);
	out = th_slurp(path, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "FROM ./phi4-tiny-Q8_0.gguf\n"));
	assert_non_null(strstr(out, "TEMPLATE \"\"\"{{ if .System }}<|im_start|>"
				    "system<|im_sep|>"));
	assert_non_null(strstr(out, "PARAMETER stop \"<|im_end|>\""));
	free(out);
	snprintf(path, sizeof(path), "%s/README.md", dir);
	out = th_slurp(path, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf (recommended)"));
	assert_non_null(strstr(out, "`num_hidden_layers`: 32 -> 3"));
	free(out);
}

static void test_job_end_to_end(void **state)
{
	struct mb_manifest_list *ml;
	char args[2048], *out, path[900], err[256];
	size_t len, i;

	(void)state;
	snprintf(args, sizeof(args), "submit %s --worker w1 --quant Q8_0 "
		 "--layout split --pull-f16", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_string_equal(out, "1\n");
	free(out);
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	assert_int_equal(th_prog("mibera-job", "status 1", &out), 0);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "pull       done"));
	assert_non_null(strstr(out, "smoke      done"));
	assert_non_null(strstr(out, "fidelity   done"));
	/* Q8_0 needs no importance matrix */
	assert_non_null(strstr(out, "imatrix    skipped"));
	free(out);
	/* each quant's distance from its F16, for a person */
	assert_int_equal(th_prog("mibera-job", "show 1", &out), 0);
	assert_non_null(strstr(out, "quality against the F16"));
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf"));
	assert_null(strstr(out, "BROKEN"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "logs --step fidelity 1", &out), 0);
	assert_non_null(strstr(out, "fidelity of phi4-tiny-Q8_0.gguf against the "
				    "F16: KL divergence mean"));
	/* where the model ran: this build of llama.cpp has no GPU */
	assert_non_null(strstr(out, "info: offload: none, on the CPU: llama.cpp "
				    "has no GPU here (cpu)"));
	free(out);
	/* the file to start with, and why: the only quant, measured */
	assert_int_equal(th_prog("mibera-job", "show 1", &out), 0);
	print_message("%s", strstr(out, "quality against") ? strstr(out, "quality against") : out);
	assert_non_null(strstr(out, "\nrecommended: phi4-tiny-Q8_0.gguf, the "));
	assert_non_null(strstr(out, "(mean KL "));
	free(out);
	/* the artifacts are here and match the worker's manifest */
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-1/manifest.json", root);
	out = th_slurp(path, &len);
	assert_non_null(out);
	assert_int_equal(mb_manifest_list_from_json(out, len, &ml, err, sizeof(err)),
			 0);
	free(out);
	assert_int_equal(ml->n, 2); /* F16 and Q8_0 */
	for (i = 0; i < ml->n; i++) {
		uint8_t d[MB_SHA256_LEN];
		uint64_t size;

		snprintf(path, sizeof(path), "%s/mibera/artifacts/job-1/%s", root,
			 ml->files[i]->name);
		assert_int_equal(mb_sha256_file(path, d, &size), 0);
		assert_int_equal(size, ml->files[i]->size);
		assert_memory_equal(d, ml->files[i]->sha256, MB_SHA256_LEN);
	}
	mb_manifest_list_free(ml);
	check_published(1, 13);
	/* the events of the worker's steps were stored */
	assert_int_equal(th_prog("mibera-job", "logs --json 1", &out), 0);
	assert_non_null(strstr(out, "\"type\":\"done\""));
	assert_non_null(strstr(out, "\"repairs\":13"));
	assert_non_null(strstr(out, "\"type\":\"pulled\""));
	{
		/* the Q8_0 was written in the conversion's pass and pulled as
		 * it was written: all of it matched its manifest, and the pull
		 * after fetched nothing */
		const char *e = strstr(out, "\"file\":\"phi4-tiny-Q8_0.gguf\","
					    "\"ok\":true,");
		unsigned long long bytes = 0, reused = 1, fetched = 1;

		assert_non_null(e);
		assert_int_equal(sscanf(e, "\"file\":\"phi4-tiny-Q8_0.gguf\","
					"\"ok\":true,\"bytes\":%llu,\"reused\":%llu,"
					"\"fetched\":%llu", &bytes, &reused,
					&fetched), 3);
		assert_true(bytes > 0);
		assert_int_equal(reused, bytes);
		assert_int_equal(fetched, 0);
	}
	free(out);
	/* and in words, for a person */
	assert_int_equal(th_prog("mibera-job", "logs 1", &out), 0);
	assert_non_null(strstr(out, "convert   repaired "));
	assert_non_null(strstr(out, "pull      pulled and verified phi4-tiny-Q8_0.gguf"));
	assert_non_null(strstr(out, "writing phi4-tiny-Q8_0.gguf in the same "
				    "pass, and pulling it as it is written"));
	assert_non_null(strstr(out, "MB pulled while it was written match its "
				    "manifest"));
	assert_non_null(strstr(out, "13 config repairs"));
	assert_non_null(strstr(out, "job 1 succeeded"));
	assert_null(strstr(out, "\"type\""));
	/* the coordinator's own steps say what they did */
	assert_non_null(strstr(out, "preflight info: w1 answers: agent "));
	assert_non_null(strstr(out, "cleanup   info: removed "));
	assert_null(strstr(out, "files stay"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "logs --step smoke 1", &out), 0);
	assert_null(strstr(out, "repaired"));
	free(out);
	/* cost: the worker's price times the time the job held it */
	assert_int_equal(th_prog("mibera-job", "status --json", &out), 0);
	assert_non_null(strstr(out, "\"total_cost\":"));
	free(out);
}

static void test_changed_host_key_refused(void **state)
{
	char *out;
	struct th_sshd other;

	(void)state;
	/* box1 now answers with another key (a new sshd, the alias moved) */
	assert_int_equal(th_sshd_start(&other), 0);
	{
		struct th_sshd keep = sshd;

		sshd = other;
		snprintf(sshd.key, sizeof(sshd.key), "%s", keep.key);
		assert_int_equal(th_sshd_client(&sshd, home), 0);
		sshd = keep;
	}
	assert_int_equal(th_prog("mibera-job", "worker check w1", &out), 1);
	assert_non_null(strstr(out, "changed"));
	assert_non_null(strstr(out, "pinned SHA256:"));
	assert_non_null(strstr(out, "offers SHA256:"));
	free(out);
	th_sshd_stop(&other);
	assert_int_equal(th_sshd_client(&sshd, home), 0);
}

static int seq_of(const char *line)
{
	const char *p = strstr(line, "\"seq\":");

	return p ? atoi(p + 6) : -1;
}

/* Waits until `status JOB` shows the step running (or 60 s pass). */
static void wait_running(const char *job, const char *step)
{
	char args[64], want[64], *out;
	long long t0 = th_now_ms();
	int found = 0;

	snprintf(args, sizeof(args), "status %s", job);
	snprintf(want, sizeof(want), "  %-10s running", step);
	while (!found && th_now_ms() - t0 < 60000) {
		th_prog("mibera-job", args, &out);
		found = strstr(out, want) != NULL;
		free(out);
		if (!found)
			usleep(200 * 1000);
	}
	assert_true(found);
}

/* The events of a job's step: every seq once, in order. Returns n. */
static int check_seqs(const char *job, const char *step)
{
	char args[64], *out, *line, *save = NULL;
	int last = 0, n = 0;

	snprintf(args, sizeof(args), "logs --json --step %s %s", step, job);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* the coordinator's own events (a step's "finished") have
		 * seq 0: the worker's journal is what is checked here */
		if (seq_of(line) == 0)
			continue;
		/* a new attempt of the step starts its journal's seq where the
		 * last left off: the journal is appended to, never rewritten */
		if (seq_of(line) != last + 1)
			fail_msg("%s event seq %d after %d", step, seq_of(line), last);
		last = seq_of(line);
		n++;
	}
	free(out);
	return n;
}

/* Starts a fake hub over root/hub with org/slow's first shard served at
 * throttle bytes/s, and points HF_ENDPOINT at it. */
static void slow_hub_start(struct th_hub *hub, long throttle)
{
	char hubroot[700], knob[64];

	snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
	assert_int_equal(th_hub_start(hub, hubroot, NULL), 0);
	snprintf(knob, sizeof(knob), "\"throttle\":%ld", throttle);
	assert_int_equal(th_hub_fault(hub, "org/slow",
				      "model-00001-of-00002.safetensors", knob),
			 0);
	setenv("HF_ENDPOINT", hub->url, 1);
}


static void test_follow_survives_dropped_links(void **state)
{
	struct th_proxy proxy;
	struct th_hub hub;
	char repo[800], cfg[700], text[2048], args[2048], *out;
	const char *extra[] = { "--config", "correct", NULL };
	const char *pargs[] = { NULL };
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	const char *fp;
	pid_t pid;
	int cuts = 0, st, n;
	long long t0;

	(void)state;
	/* a slow hub, and the worker reached through a proxy we can cut */
	snprintf(repo, sizeof(repo), "%s/hub/org/slow", root);
	assert_int_equal(th_mkmodel(repo, "phi4-tiny", extra), 0);
	slow_hub_start(&hub, 1000000);
	assert_int_equal(th_proxy_start(&proxy, "127.0.0.1", sshd.port, pargs), 0);
	snprintf(cfg, sizeof(cfg), "%s/.ssh/config", home);
	snprintf(text, sizeof(text), "Host box2\n  HostName 127.0.0.1\n  Port %d\n"
		 "  User %s\n  IdentityFile %s\n", proxy.port, sshd.user, sshd.key);
	assert_int_equal(th_write_file(cfg, text, strlen(text)), 0);
	snprintf(args, sizeof(args), "worker add w2 box2 --dir %s/wd2 --agent "
		 "%s/mibera-worker", root, MB_BINARY_DIR);
	assert_int_equal(th_prog("mibera-job", args, &out), 1);
	fp = fingerprint_in(out);
	free(out);
	snprintf(args + strlen(args), sizeof(args) - strlen(args),
		 " --accept-host-key %s", fp);
	if (th_prog("mibera-job", args, &out) != 0)
		fail_msg("worker add: %s", out);
	free(out);
	assert_int_equal(th_prog("mibera-job", "submit org/slow --worker w2 "
				 "--quant Q8_0 --no-smoke", &out), 0);
	free(out);
	/* cut every connection a few times while the fetch is followed */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	t0 = th_now_ms();
	while (waitpid(pid, &st, WNOHANG) == 0) {
		assert_true(th_now_ms() - t0 < 180000);
		usleep(100 * 1000);
		if (cuts < 3 && th_now_ms() - t0 > 3000 + cuts * 2500) {
			th_proxy_cut_all(&proxy);
			cuts++;
		}
	}
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(cuts, 3);
	/* the fetch's events: every seq once, in order, none missing */
	n = check_seqs("2", "fetch");
	print_message("fetch: %d events, followed across %d cut links\n", n, cuts);
	assert_true(n >= 3);
	assert_int_equal(th_prog("mibera-job", "status 2", &out), 0);
	assert_non_null(strstr(out, "succeeded"));
	free(out);
	th_proxy_stop(&proxy);
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");
	assert_int_equal(th_sshd_client(&sshd, home), 0);
}

static void test_coordinator_killed_then_resumed(void **state)
{
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	struct th_hub hub;
	char *out;
	pid_t pid;
	int st;

	(void)state;
	slow_hub_start(&hub, 1500000);
	assert_int_equal(th_prog("mibera-job", "submit org/slow --worker w1 --quant "
				     "Q8_0 --no-smoke", &out), 0);
	assert_string_equal(out, "3\n");
	free(out);
	/* kill -9 during the fetch: the step goes on on the worker */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	wait_running("3", "fetch");
	usleep(1500 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	/* a new coordinator takes the job up where it was */
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("restarted coordinator: %s", out);
	assert_non_null(strstr(out, "resuming"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "status 3", &out), 0);
	assert_non_null(strstr(out, "succeeded"));
	free(out);
	assert_true(check_seqs("3", "fetch") >= 2);
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");
}

static void test_cancel_then_retry(void **state)
{
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	struct th_hub hub;
	char *out;
	pid_t pid;
	int st;

	(void)state;
	slow_hub_start(&hub, 300000);
	/* a fresh cache directory, so the fetch has work to do */
	{
		char args[1024];

		snprintf(args, sizeof(args), "submit org/slow --worker w1 --quant Q8_0 "
			 "--no-smoke");
		assert_int_equal(th_prog("mibera-job", args, &out), 0);
		assert_string_equal(out, "4\n");
		free(out);
	}
	{
		char cache[800];

		snprintf(cache, sizeof(cache), "%s/wd/hub", root);
		th_rmtree(cache);
	}
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	wait_running("4", "fetch");
	assert_int_equal(th_prog("mibera-job", "cancel 4", &out), 0);
	free(out);
	waitpid(pid, &st, 0);
	assert_int_equal(th_prog("mibera-job", "status 4", &out), 0);
	assert_non_null(strstr(out, "cancelled"));
	free(out);
	/* the job says where its files stay, and why */
	assert_int_equal(th_prog("mibera-job", "logs --step job 4", &out), 0);
	assert_non_null(strstr(out, "the job's files stay on w1 in "));
	assert_non_null(strstr(out, "/jobs/job-4, so that `mibera-job retry 4` "
				    "resumes"));
	free(out);
	/* nothing of the job runs on the worker any more */
	{
		char args[1024];

		snprintf(args, sizeof(args), "status job-4 --dir %s/wd", root);
		assert_int_equal(th_prog("mibera-worker", args, &out), 0);
		assert_null(strstr(out, "\"running\""));
		free(out);
	}
	/* retry resumes it to the end */
	th_hub_reset(&hub);
	assert_int_equal(th_prog("mibera-job", "retry 4", &out), 0);
	free(out);
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("coordinator after retry: %s", out);
	free(out);
	assert_int_equal(th_prog("mibera-job", "status 4", &out), 0);
	assert_non_null(strstr(out, "succeeded"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "artifacts 4", &out), 0);
	assert_non_null(strstr(out, "slow-Q8_0.gguf"));
	/* the F16 stays on the worker unless asked for */
	assert_null(strstr(out, "slow-F16.gguf"));
	free(out);
	/* nor is it hashed: the last manifest hashed Q8_0 alone (its final
	 * progress event's total is what it hashed) */
	{
		char path[900], *line, *save = NULL;
		long long total = -1;
		struct stat sb;

		snprintf(path, sizeof(path),
			 "%s/mibera/artifacts/job-4/slow-Q8_0.gguf", root);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(th_prog("mibera-job", "logs --json --step manifest 4",
				     &out), 0);
		for (line = strtok_r(out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			cJSON *e = cJSON_Parse(line);
			const char *what = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(e, "what"));

			if (what != NULL && strcmp(what, "manifest") == 0)
				total = (long long)cJSON_GetNumberValue(
					cJSON_GetObjectItemCaseSensitive(e, "total"));
			cJSON_Delete(e);
		}
		free(out);
		print_message("the last manifest hashed %lld bytes (Q8_0: %lld)\n",
			      total, (long long)sb.st_size);
		assert_true(total >= 0 && total <= (long long)sb.st_size);
	}
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");
}

/* A worker's manifest chooses the names of files written here: one that
 * names anything but this job's GGUFs (provenance.json, which mibera
 * writes itself beside them) fails the job by name, and nothing of it
 * lands. The name carries terminal escapes (the 8-bit CSI), which no
 * command prints. The worker is honest but for its manifest: an agent wrapper
 * adds the entry once the manifest step is done. */
static void test_manifest_names_only_the_jobs_ggufs(void **state)
{
	static const char wrapper[] =
		"#!/bin/sh\n"
		"real=%s/mibera-worker\n"
		"if [ \"$1\" = follow ] && [ \"$3\" = manifest ]; then\n"
		"  \"$real\" \"$@\"; rc=$?\n"
		"  dir=; prev=; for a in \"$@\"; do [ \"$prev\" = --dir ] && dir=$a; "
		"prev=$a; done\n"
		"  %s -c 'import json,sys; p=sys.argv[1]; m=json.load(open(p)); "
		"m[\"files\"].append(dict(m[\"files\"][0], name=\"\\u009b2J\\u009b0;0Hprovenance.json\")); "
		"json.dump(m, open(p, \"w\"))' \"$dir/jobs/$2/out/manifest.json\"\n"
		"  exit $rc\n"
		"fi\n"
		"exec \"$real\" \"$@\"\n";
	char agent[800], text[2048], args[2048], path[900], *out;
	int id;

	(void)state;
	snprintf(agent, sizeof(agent), "%s/hostile-agent.sh", root);
	snprintf(text, sizeof(text), wrapper, MB_BINARY_DIR, MB_PYTHON);
	assert_int_equal(th_write_file(agent, text, strlen(text)), 0);
	assert_int_equal(chmod(agent, 0755), 0);
	if (th_worker_add(&out, "wh box1 --dir %s/wdh --agent %s", root,
			  agent) != 0)
		fail_msg("worker add: %s", out);
	free(out);
	snprintf(args, sizeof(args), "submit %s --worker wh --quant Q8_0 "
		 "--no-smoke", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	id = atoi(out);
	free(out);
	th_prog("mibera-coordinator", "--once", &out);
	assert_null(strstr(out, "\xc2\x9b"));
	free(out);
	snprintf(args, sizeof(args), "status %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "failed"));
	assert_non_null(strstr(out, "'?2J?0;0Hprovenance.json', which is not an "
				    "artifact"));
	assert_null(strstr(out, "\xc2\x9b"));
	free(out);
	snprintf(args, sizeof(args), "show %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_non_null(strstr(out, "0Hprovenance.json"));
	assert_null(strstr(out, "\xc2\x9b"));
	free(out);
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d/provenance.json",
		 root, id);
	assert_int_not_equal(access(path, F_OK), 0);
}

static void test_bootstrap_installs_the_agent(void **state)
{
	char args[2048], path[900], inst[700], *out;
	const char *fp;

	(void)state;
	/* an installed copy, as the README's `worker add` runs it: the
	 * bundle and the bootstrap script come with the programs */
	snprintf(inst, sizeof(inst), "%s/inst", root);
	snprintf(args, sizeof(args), "cmake --install %s --prefix %s", MB_BINARY_DIR,
		 inst);
	if (th_capture(args, &out) != 0)
		fail_msg("cmake --install: %s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/share/mibera/mibera-src.tar.gz", inst);
	assert_int_equal(access(path, R_OK), 0);
	/* no --agent: an empty worker directory gets the agent built from
	 * the bundle the installed copy carries */
	snprintf(args, sizeof(args), "%s/bin/mibera-job worker add w3 box1 --dir "
		 "%s/wd3", inst, root);
	assert_int_equal(th_capture(args, &out), 1);
	fp = fingerprint_in(out);
	free(out);
	snprintf(args + strlen(args), sizeof(args) - strlen(args),
		 " --accept-host-key %s", fp);
	if (th_capture(args, &out) != 0)
		fail_msg("worker add with bootstrap: %s", out);
	assert_non_null(strstr(out, "added worker w3"));
	assert_non_null(strstr(out, "agent 0.1.0"));
	free(out);
	snprintf(path, sizeof(path), "%s/wd3/bin/mibera-worker", root);
	assert_int_equal(access(path, X_OK), 0);
	/* the installed agent is what answers from now on */
	assert_int_equal(th_prog("mibera-job", "worker check w3", &out), 0);
	assert_non_null(strstr(out, "llama.cpp v0."));
	free(out);
	/* an agent gone by the time a job starts is installed again by the
	 * job, its steps in the job's events as they happen */
	assert_int_equal(unlink(path), 0);
	snprintf(args, sizeof(args), "submit %s --worker w3 --quant Q8_0 "
		 "--no-smoke", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	{
		char id[32];

		snprintf(id, sizeof(id), "%s", out);
		id[strcspn(id, "\n")] = '\0';
		free(out);
		if (th_prog("mibera-coordinator", "--once", &out) != 0)
			fail_msg("coordinator: %s", out);
		free(out);
		snprintf(args, sizeof(args), "logs --step preflight %s", id);
		assert_int_equal(th_prog("mibera-job", args, &out), 0);
		print_message("%s", out);
		assert_non_null(strstr(out, "installing the agent: "));
		assert_non_null(strstr(out, "building mibera-worker"));
		assert_non_null(strstr(out, "w3 answers: agent 0.1.0"));
		assert_non_null(strstr(out, "succeeded"));
		free(out);
	}
	assert_int_equal(access(path, X_OK), 0);
}

/* A repo that does not exist is refused at submit, before any box is
 * paid for; one that exists is queued. */
static void test_submit_checks_the_source(void **state)
{
	struct th_hub hub;
	char *out;

	(void)state;
	slow_hub_start(&hub, 100000000);
	assert_int_equal(th_prog("mibera-job", "submit org/nothing-here --worker w1 "
			     "--quant Q8_0", &out), 1);
	assert_non_null(strstr(out, "not found"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "status --json", &out), 0);
	assert_null(strstr(out, "org/nothing-here"));
	free(out);
	/* a hub that cannot be reached: queued, with a warning */
	setenv("HF_ENDPOINT", "http://127.0.0.1:9", 1);
	assert_int_equal(th_prog("mibera-job", "submit org/slow --worker w1 --quant "
			     "Q8_0", &out), 0);
	assert_non_null(strstr(out, "cannot check"));
	free(out);
	assert_int_equal(th_prog("mibera-job", "status --json", &out), 0);
	{
		/* that one is not for running here */
		cJSON *doc = cJSON_Parse(out);
		const cJSON *j = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "jobs"), 0);
		char args[64];

		snprintf(args, sizeof(args), "cancel %d",
			 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "id")));
		cJSON_Delete(doc);
		free(out);
		assert_int_equal(th_prog("mibera-job", args, &out), 0);
	}
	free(out);
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");
}

/* The ms of the job's event of step and type whose key is value (the last
 * one), and how many such events there are. */
static long long event_ms(int id, const char *step, const char *type,
			  const char *key, const char *value, int *count)
{
	char args[128], *out, *line, *save = NULL;
	long long ms = -1;

	*count = 0;
	snprintf(args, sizeof(args), "logs --json --step %s %d", step, id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *e = cJSON_Parse(line);
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(e, key));
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));

		if (v != NULL && t != NULL && strcmp(t, type) == 0 &&
		    strcmp(v, value) == 0) {
			ms = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "ms"));
			(*count)++;
		}
		cJSON_Delete(e);
	}
	free(out);
	return ms;
}

/* Job id ended well; else the test fails showing its status. */
static void expect_succeeded(int id)
{
	char args[64], *out;

	snprintf(args, sizeof(args), "status %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("%s", out);
	free(out);
}

/* Adds worker name (directory root/wd-name) whose agent holds the
 * quantize-Q4_0 step stopped as it starts, until the shell command until
 * (run in sh -c "...", so its $ are escaped) has run: a last quant still
 * being made while the job goes on with the first. pre: shell lines the
 * agent runs first, on every call ("" for none). */
static void add_holding_worker(const char *name, const char *until,
			       const char *pre)
{
	static const char wrapper[] =
		"#!/bin/sh\n"
		"real=%s/mibera-worker\n"
		"%s\n"
		"if [ \"$1\" = start ] && [ \"$3\" = quantize-Q4_0 ]; then\n"
		"  out=$(\"$real\" \"$@\"); rc=$?\n"
		"  printf '%%s\\n' \"$out\"\n"
		"  pid=$(printf '%%s' \"$out\" | sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p')\n"
		"  if [ -n \"$pid\" ] && [ \"$pid\" != 0 ]; then\n"
		"    kill -STOP -\"$pid\"\n"
		"    setsid sh -c \"%s; kill -CONT -$pid\" </dev/null >/dev/null 2>&1 &\n"
		"  fi\n"
		"  exit $rc\n"
		"fi\n"
		"exec \"$real\" \"$@\"\n";
	char agent[800], text[4096], *out;

	snprintf(agent, sizeof(agent), "%s/holding-agent-%s.sh", root, name);
	snprintf(text, sizeof(text), wrapper, MB_BINARY_DIR, pre, until);
	assert_int_equal(th_write_file(agent, text, strlen(text)), 0);
	assert_int_equal(chmod(agent, 0755), 0);
	if (th_worker_add(&out, "%s box1 --dir %s/wd-%s --agent %s", name, root,
			  name, agent) != 0)
		fail_msg("worker add: %s", out);
	free(out);
}

/* The pipeline: the first quant is pulled (and smoke tested) while the
 * worker still makes the last one, which is held stopped for a few
 * seconds (the agent below stops the step's process group as it starts);
 * a coordinator killed with -9 during that overlap resumes without
 * pulling the first quant again, and the job's files match the worker's
 * manifest. */
static void test_pull_overlaps_quantize_and_resumes(void **state)
{
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char args[2048], path[900], err[256], *out;
	struct mb_manifest_list *ml;
	long long pulled_ms, last_done_ms, t0;
	int id, n, st, found = 0;
	size_t len, i;
	pid_t pid;

	(void)state;
	add_holding_worker("wp", "sleep 8", "");
	snprintf(args, sizeof(args), "submit %s --worker wp --quant Q8_0,Q4_0 "
		 "--no-fidelity", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	id = atoi(out);
	free(out);
	/* the first quant pulled while the last is made: then kill -9 */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	t0 = th_now_ms();
	while (!found && th_now_ms() - t0 < 120000) {
		event_ms(id, "pull", "pulled", "file", "phi4-tiny-Q8_0.gguf", &n);
		found = n > 0;
		if (!found)
			usleep(100 * 1000);
	}
	assert_true(found);
	/* the pull and the quantize run as overlapping stages */
	snprintf(args, sizeof(args), "status %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "quantize   running"));
	assert_non_null(strstr(out, "pull       running"));
	free(out);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	/* a new coordinator takes the job up where it was */
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("restarted coordinator: %s", out);
	assert_non_null(strstr(out, "resuming"));
	free(out);
	expect_succeeded(id);
	/* the first quant was pulled once, before the last quant was done */
	pulled_ms = event_ms(id, "pull", "pulled", "file", "phi4-tiny-Q8_0.gguf",
			     &n);
	assert_int_equal(n, 1);
	last_done_ms = event_ms(id, "quantize", "finished", "wstep",
				"quantize-Q4_0", &n);
	assert_int_equal(n, 1);
	print_message("Q8_0 pulled at %lld, Q4_0 finished at %lld\n", pulled_ms,
		      last_done_ms);
	assert_true(pulled_ms > 0 && pulled_ms < last_done_ms);
	event_ms(id, "pull", "pulled", "file", "phi4-tiny-Q4_0.gguf", &n);
	assert_int_equal(n, 1);
	/* how the types were made, in words */
	snprintf(args, sizeof(args), "logs --step quantize %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_non_null(strstr(out, "Q8_0 comes from the conversion's pass; "
				    "the other types are made while it is "
				    "pulled"));
	free(out);
	/* the last quant was pulled as llama.cpp wrote it, after the
	 * restart too, and what came so was checked against its manifest */
	snprintf(args, sizeof(args), "logs --step pull %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	if (strstr(out, "pulling phi4-tiny-Q4_0.gguf as quantize-Q4_0 writes "
			"it") == NULL ||
	    strstr(out, "phi4-tiny-Q4_0.gguf: ") == NULL ||
	    strstr(out, "pulled while it was written match its manifest") == NULL)
		fail_msg("no pull of Q4_0 as it was written:\n%s", out);
	free(out);
	/* both quants smoke tested, and here as the manifest says */
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d/manifest.json",
		 root, id);
	out = th_slurp(path, &len);
	assert_non_null(out);
	assert_int_equal(mb_manifest_list_from_json(out, len, &ml, err, sizeof(err)),
			 0);
	free(out);
	assert_int_equal(ml->n, 2);
	for (i = 0; i < ml->n; i++) {
		uint8_t d[MB_SHA256_LEN];
		uint64_t size;

		snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d/%s", root,
			 id, ml->files[i]->name);
		assert_int_equal(mb_sha256_file(path, d, &size), 0);
		assert_int_equal(size, ml->files[i]->size);
		assert_memory_equal(d, ml->files[i]->sha256, MB_SHA256_LEN);
	}
	mb_manifest_list_free(ml);
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d/provenance.json",
		 root, id);
	out = th_slurp(path, &len);
	assert_non_null(out);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf"));
	assert_non_null(strstr(out, "gen_tps"));
	free(out);
}

/* Waits up to two minutes for path to exist. */
static int wait_file(const char *path)
{
	long long t0 = th_now_ms();
	struct stat sb;

	while (stat(path, &sb) != 0) {
		if (th_now_ms() - t0 > 120000)
			return -1;
		usleep(100 * 1000);
	}
	return 0;
}

/* A coordinator killed with -9 after the first quant is made, before it
 * is pulled: the new one does not go through the finished first quant's
 * stage again, but pulls the first file beside the step that runs then
 * (the last quant, held stopped), and says so. */
static void test_resume_pulls_beside_the_running_quant(void **state)
{
	char *argv[] = { MB_BINARY_DIR "/mibera-coordinator", "--once", NULL };
	char pre[4096], until[1024], args[2048], path[900], *out;
	long long t0;
	int id, st, n = 0;
	pid_t pid;

	(void)state;
	snprintf(pre, sizeof(pre),
		 "if [ \"$1\" = start ] && [ \"$3\" = manifest-while-Q6_K ] && "
		 "[ ! -e %s/go-manifest ]; then\n"
		 "  i=0; while ! ls %s/wd-wr/jobs/*/quantize-Q6_K.result.json "
		 ">/dev/null 2>&1 && [ $i -lt 600 ]; do sleep 0.2; "
		 "i=$((i+1)); done\n"
		 "  touch %s/at-manifest\n"
		 "  i=0; while [ ! -e %s/go-manifest ] && [ $i -lt 600 ]; do "
		 "sleep 0.2; i=$((i+1)); done\n"
		 "fi", root, root, root, root);
	snprintf(until, sizeof(until), "i=0; while [ ! -e %s/go-q4 ] && "
		 "[ \\$i -lt 600 ]; do sleep 0.2; i=\\$((i+1)); done", root);
	add_holding_worker("wr", until, pre);
	snprintf(args, sizeof(args), "submit %s --worker wr --quant Q6_K,Q4_0 "
		 "--no-fidelity", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	id = atoi(out);
	free(out);
	/* Q6_K made: kill -9 before it is pulled */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	snprintf(path, sizeof(path), "%s/at-manifest", root);
	assert_int_equal(wait_file(path), 0);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	snprintf(path, sizeof(path), "%s/go-manifest", root);
	assert_int_equal(th_write_file(path, "", 0), 0);
	/* the new coordinator pulls Q6_K while Q4_0 is still held */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	t0 = th_now_ms();
	while (n == 0 && th_now_ms() - t0 < 120000) {
		event_ms(id, "pull", "pulled", "file", "phi4-tiny-Q6_K.gguf", &n);
		if (n == 0)
			usleep(100 * 1000);
	}
	snprintf(path, sizeof(path), "%s/go-q4", root);
	assert_int_equal(th_write_file(path, "", 0), 0);
	waitpid(pid, &st, 0);
	assert_int_equal(n, 1);
	expect_succeeded(id);
	snprintf(args, sizeof(args), "logs --step pull %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	if (strstr(out, "while the worker goes on with Q4_0") == NULL ||
	    strstr(out, "goes on with Q6_K") != NULL)
		fail_msg("the resumed pull went beside the wrong step:\n%s", out);
	free(out);
}

/* The smoke result show --json gives for the job's artifact file, as JSON
 * text (the caller frees it), or NULL when it has none yet. */
static char *early_smoke_of(int id, const char *file)
{
	char args[64], *out, *sm = NULL;
	const cJSON *a;
	cJSON *doc;

	snprintf(args, sizeof(args), "show --json %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	doc = cJSON_Parse(out);
	free(out);
	cJSON_ArrayForEach(a, cJSON_GetObjectItem(doc, "artifacts")) {
		const cJSON *smoke = cJSON_GetObjectItem(a, "smoke");

		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(a, "name")),
			   file) == 0 && cJSON_IsObject(smoke))
			sm = cJSON_PrintUnformatted(smoke);
	}
	cJSON_Delete(doc);
	return sm;
}

/* A file smoke tested while the worker made the next, by a coordinator
 * whose program was upgraded (replaced by a new file) after it started,
 * then that coordinator killed with -9 before the smoke step: the new
 * coordinator keeps that result (the file's sha256 is the one tested)
 * instead of loading the file again. The last quant is held stopped until
 * the test says go on (or two minutes pass). */
static void test_early_smoke_survives_a_restart(void **state)
{
	char coord[900], exe[1000], link[64], text[2048], args[2048], path[900],
	     *out, *before = NULL, *after;
	char *argv[] = { coord, "--once", NULL };
	long long t0;
	int id, st;
	pid_t pid;
	ssize_t n;

	(void)state;
	/* the coordinator runs from a copy that is upgraded under it (a new
	 * file installed at its path): the smoke test it runs of itself
	 * runs the new copy */
	snprintf(coord, sizeof(coord), "%s/upgraded/mibera-coordinator", root);
	if (th_sh(&out, "mkdir -p '%s/upgraded' && cp '%s/mibera-coordinator' "
		  "'%s'", root, MB_BINARY_DIR, coord) != 0)
		fail_msg("copy the coordinator: %s", out);
	free(out);
	snprintf(text, sizeof(text), "i=0; while [ ! -e %s/go-on ] && "
		 "[ \\$i -lt 600 ]; do sleep 0.2; i=\\$((i+1)); done", root);
	add_holding_worker("we", text, "");
	snprintf(args, sizeof(args), "submit %s --worker we --quant Q8_0,Q4_0 "
		 "--no-fidelity", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	id = atoi(out);
	free(out);
	/* Q8_0 pulled and smoke tested while Q4_0 is held stopped */
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	t0 = th_now_ms();
	while ((n = readlink(link, exe, sizeof(exe) - 1)) <= 0 ||
	       (size_t)n != strlen(coord) || memcmp(exe, coord, (size_t)n) != 0) {
		if (th_now_ms() - t0 > 10000) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("the coordinator did not start from %s", coord);
		}
		usleep(10 * 1000);
	}
	if (th_sh(&out, "rm '%s' && cp '%s/mibera-coordinator' '%s'", coord,
		  MB_BINARY_DIR, coord) != 0)
		fail_msg("upgrade the coordinator: %s", out);
	free(out);
	t0 = th_now_ms();
	while (before == NULL && th_now_ms() - t0 < 120000) {
		before = early_smoke_of(id, "phi4-tiny-Q8_0.gguf");
		if (before == NULL)
			usleep(100 * 1000);
	}
	if (before == NULL) {
		/* the next test's coordinator would find this one running */
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("no smoke result stored for phi4-tiny-Q8_0.gguf");
	}
	snprintf(args, sizeof(args), "status %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	if (strstr(out, "quantize   running") == NULL ||
	    strstr(out, "smoke      done") != NULL)
		fail_msg("not in the overlap:\n%s", out);
	free(out);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	snprintf(path, sizeof(path), "%s/go-on", root);
	assert_int_equal(th_write_file(path, "", 0), 0);
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("restarted coordinator: %s", out);
	free(out);
	expect_succeeded(id);
	/* the smoke events say Q8_0's result was kept, and it was not loaded
	 * again: the figures are the ones measured before the kill */
	snprintf(args, sizeof(args), "logs --step smoke %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf: smoke result kept"));
	assert_null(strstr(out, "smoke testing phi4-tiny-Q8_0.gguf"));
	/* each file's result, with its figures, is in the job's log */
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf passed the smoke test "
				    "before the restart: loaded in "));
	assert_non_null(strstr(out, "phi4-tiny-Q4_0.gguf passed the smoke test"));
	free(out);
	after = early_smoke_of(id, "phi4-tiny-Q8_0.gguf");
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);
	free(before);
	after = early_smoke_of(id, "phi4-tiny-Q4_0.gguf");
	assert_non_null(after);
	free(after);
}

/* With no importance matrix, every quant comes from the conversion's
 * pass: the quantize steps find them made, each is pulled as it is
 * written, and they are the very bytes quantize makes
 * of the F16 pulled beside them. */
static void test_quants_from_the_conversion_pass(void **state)
{
	static const char *types[] = { "Q8_0", "Q4_K_M" };
	char args[2048], path[900], mine[900], *out;
	int id;
	size_t t;

	(void)state;
	/* as on a worker with the CPUs for it: this one has too few */
	snprintf(path, sizeof(path), "%s/mibera/config.json", root);
	assert_int_equal(th_write_file(path, "{\"quants_in_pass\":\"all\"}",
				       strlen("{\"quants_in_pass\":\"all\"}")), 0);
	add_holding_worker("wb", "true", "");
	snprintf(args, sizeof(args), "submit %s --worker wb --quant Q8_0,Q4_K_M "
		 "--imatrix off --no-fidelity --pull-f16", model);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	id = atoi(out);
	free(out);
	if (th_prog("mibera-coordinator", "--once", &out) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	expect_succeeded(id);
	snprintf(args, sizeof(args), "logs %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_non_null(strstr(out, "writing phi4-tiny-Q8_0.gguf in the same "
				    "pass, and pulling it as it is written\n"));
	assert_non_null(strstr(out, "writing phi4-tiny-Q4_K_M.gguf in the same "
				    "pass, and pulling it as it is written\n"));
	assert_non_null(strstr(out, "Q8_0 and Q4_K_M come from the conversion's "
				    "pass\n"));
	free(out);
	/* the convert said it made both */
	snprintf(args, sizeof(args), "logs --json %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_non_null(strstr(out, "\"also\":[{\"type\":\"Q8_0\""));
	assert_non_null(strstr(out, "{\"type\":\"Q4_K_M\""));
	assert_null(strstr(out, "why_not"));
	free(out);
	/* the pull step smoke tests each file as soon as it is here, the
	 * largest first, while it pulls the next */
	snprintf(args, sizeof(args), "logs --step smoke %d", id);
	assert_int_equal(th_prog("mibera-job", args, &out), 0);
	assert_non_null(strstr(out, "phi4-tiny-F16.gguf passed the smoke test "
				    "as soon as it was pulled"));
	assert_non_null(strstr(out, "phi4-tiny-Q8_0.gguf passed the smoke test "
				    "as soon as it was pulled"));
	free(out);
	for (t = 0; t < 2; t++) {
		snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%d/"
			 "phi4-tiny-%s.gguf", root, id, types[t]);
		snprintf(mine, sizeof(mine), "%s/mine-%s.gguf", root, types[t]);
		if (th_sh(&out, "'%s/mibera-worker' quantize "
			  "'%s/mibera/artifacts/job-%d/phi4-tiny-F16.gguf' '%s' %s",
			  MB_BINARY_DIR, root, id, mine, types[t]) != 0)
			fail_msg("quantize: %s", out);
		free(out);
		if (!th_same_file(path, mine))
			fail_msg("the job's %s differs from quantize's", types[t]);
		unlink(mine);
	}
	snprintf(path, sizeof(path), "%s/mibera/config.json", root);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_worker_add_pins_host_key, fresh),
		cmocka_unit_test_setup(test_job_end_to_end, fresh),
		cmocka_unit_test_setup(test_changed_host_key_refused, fresh),
		cmocka_unit_test_setup(test_follow_survives_dropped_links, fresh),
		cmocka_unit_test_setup(test_coordinator_killed_then_resumed, fresh),
		cmocka_unit_test_setup(test_cancel_then_retry, fresh),
		cmocka_unit_test_setup(test_bootstrap_installs_the_agent, fresh),
		cmocka_unit_test_setup(test_manifest_names_only_the_jobs_ggufs, fresh),
		cmocka_unit_test_setup(test_submit_checks_the_source, fresh),
		cmocka_unit_test_setup(test_pull_overlaps_quantize_and_resumes, fresh),
		cmocka_unit_test_setup(test_early_smoke_survives_a_restart, fresh),
		cmocka_unit_test_setup(test_resume_pulls_beside_the_running_quant, fresh),
		cmocka_unit_test_setup(test_quants_from_the_conversion_pass, fresh),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
