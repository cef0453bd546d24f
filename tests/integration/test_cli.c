/*
 * The mibera-job command line as a person and a script meet it, through
 * the real programs: every command's --help comes from its option table
 * (each option listed with what it does, on stdout, exit 0); a mistyped
 * option or command is named with the one meant, exit 2; --version says
 * llama.cpp's version and commit the same way in every program; show,
 * artifacts and worker list --json validate against their schemas in
 * proto/; show's repairs line up and an empty artifact list says so; the
 * held time of a running job counts its running step; cut text says it
 * was cut; the dashboard prints no escape sequence into a pipe or with
 * NO_COLOR, and keeps its colours on a terminal; worker update changes a
 * worker (a new host's key is checked as add checks it); worker list
 * --check names a worker that does not answer, quickly; submit refuses a
 * job the worker's disk cannot hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "hub.h"
#include "model.h"
#include "sshd.h"
#include "th.h"

static char root[512], home[600], mhome[600], model[600];
static struct th_sshd sshd;

#define JOB MB_BINARY_DIR "/mibera-job"

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs SQL on the job database, as a test's way to put a job or a worker
 * in the state it needs. */
static void sql(const char *fmt, ...)
{
	char q[4000], *out;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	if (th_sh(&out, "sqlite3 %s/jobs.db \"%s\"", mhome, q) != 0)
		fail_msg("sqlite3 %s: %s", q, out);
	free(out);
}

/* Validates the JSON a command prints against proto/<schema>.schema.json
 * with python3-jsonschema. */
static void validate(const char *cmd, const char *schema)
{
	char *out;

	if (th_sh(&out, "%s > %s/v.json && python3 -c \"import json, jsonschema; "
		"jsonschema.validate(json.load(open('%s/v.json')), json.load(open("
		"'%s/proto/%s.schema.json'))); print('valid')\"", cmd, root, root,
		MB_SOURCE_DIR, schema) != 0)
		fail_msg("%s against %s: %s", cmd, schema, out);
	assert_non_null(strstr(out, "valid"));
	free(out);
}

static int setup(void **state)
{
	char path[800];
	const char *broken[] = { "--config", "broken", NULL };

	(void)state;
	if (th_tmpdir("cli", root, sizeof(root)) != 0 || th_sshd_start(&sshd) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(mhome, sizeof(mhome), "%s/mibera", root);
	setenv("MIBERA_HOME", mhome, 1);
	unsetenv("HF_ENDPOINT");
	unsetenv("NO_COLOR");
	if (th_sshd_client(&sshd, home) != 0)
		return -1;
	snprintf(model, sizeof(model), "%s/tiny", root);
	if (th_mkmodel(model, "phi4-tiny", broken) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/hub/org/tiny", root);
	return th_mkmodel(path, "phi4-tiny", broken);
}

static int teardown(void **state)
{
	(void)state;
	th_sshd_stop(&sshd);
	th_rmtree(root);
	return 0;
}

/* Every command and worker verb: --help is its usage on stdout, exit 0,
 * with each option of its table and what it does; `help CMD` is the
 * same. */
static void test_help_from_the_tables(void **state)
{
	static const struct {
		const char *cmd;
		const char *lines[4];	/* option lines --help must hold */
	} cases[] = {
		{ "submit", { "--quant LIST ", "--layout native|split ",
			      "--outtype f16|bf16 ", "--notify URL " } },
		{ "status", { "--all ", "--json " } },
		{ "show", { "--json ", "show.schema.json" } },
		{ "dashboard", { "--once " } },
		{ "logs", { "-f, --follow ", "--step STEP " } },
		{ "cancel", { "-h, --help " } },
		{ "retry", { "-h, --help " } },
		{ "artifacts", { "--json ", "artifacts.schema.json" } },
		{ "inspect", { "--quant LIST ", "--json " } },
		{ "smoke", { "--tokens N ", "--prompt TEXT " } },
		{ "version", { "-h, --help " } },
		{ "worker add", { "--accept-host-key SHA256:...", "--max-jobs N ",
				  "--idle-command CMD " } },
		{ "worker list", { "--check ", "workers.schema.json" } },
		{ "worker update", { "--target TARGET ", "--host TARGET ",
				     "--cost-per-hour N " } },
		{ "worker check", { "-h, --help " } },
		{ "worker remove", { "-h, --help " } },
		{ "worker", { "update ", "list " } },
	};
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out, *out2, want[64];

		if (th_sh(&out, "{ %s %s --help 2>/dev/null; }", JOB, cases[i].cmd) != 0)
			fail_msg("%s --help: exit not 0: %s", cases[i].cmd, out);
		snprintf(want, sizeof(want), "usage: mibera-job %s", cases[i].cmd);
		if (strncmp(out, want, strlen(want)) != 0)
			fail_msg("%s --help: no usage on stdout: %s", cases[i].cmd, out);
		for (k = 0; k < 4 && cases[i].lines[k] != NULL; k++)
			if (strstr(out, cases[i].lines[k]) == NULL)
				fail_msg("%s --help lacks '%s':\n%s", cases[i].cmd,
					 cases[i].lines[k], out);
		/* the options as columns: a line names an option or goes on
		 * with the help in its column, never a stray line at the
		 * margin or one of blanks */
		{
			const char *l = strstr(out, "\noptions:\n");

			for (l = l ? l + 10 : ""; *l != '\0';) {
				size_t len = strcspn(l, "\n"), sp = strspn(l, " ");

				if (len > 0 && (sp >= len ||
						(sp < 10 && l[sp] != '-')))
					fail_msg("%s --help: line '%.*s' is out of "
						 "its column:\n%s", cases[i].cmd,
						 (int)len, l, out);
				l += len + (l[len] == '\n');
			}
		}
		/* help COMMAND [VERB] is the same text */
		assert_int_equal(th_sh(&out2, "{ %s help %s 2>/dev/null; }", JOB,
				     cases[i].cmd), 0);
		assert_string_equal(out, out2);
		free(out2);
		free(out);
	}
	{
		/* each option with what it does, not a bare list */
		char *out;

		assert_int_equal(th_sh(&out, "%s submit --help", JOB), 0);
		assert_non_null(strstr(out, "--pull-f16             pull back the "
					    "full-precision GGUF too"));
		free(out);
		assert_int_equal(th_sh(&out, "%s help", JOB), 0);
		assert_non_null(strstr(out, "  help "));
		free(out);
	}
}

/* Usage errors: named, with the option or command meant, exit 2, and
 * nothing on stdout. */
static void test_usage_errors_name_what_was_meant(void **state)
{
	static const struct {
		const char *args, *want;
	} cases[] = {
		{ "submit org/x --quatn Q8_0", "mibera-job submit: unknown option "
		  "'--quatn'; did you mean '--quant'?" },
		{ "submit org/x --bogus", "mibera-job submit: unknown option "
		  "'--bogus'\n" },
		{ "status --jsno", "did you mean '--json'?" },
		{ "logs -x 1", "mibera-job logs: unknown option '-x'" },
		{ "stauts", "mibera-job: unknown command 'stauts'; did you mean "
		  "'status'?" },
		{ "worker lsit", "mibera-job worker: unknown verb 'lsit'; did you "
		  "mean 'list'?" },
		{ "show", "mibera-job show: missing JOB" },
		{ "show 1 2", "mibera-job show: unexpected argument '2'" },
		{ "show abc", "mibera-job show: 'abc' is not a job id" },
		{ "logs 1 --step", "mibera-job logs: --step needs a value (STEP)" },
		{ "status --json=yes", "mibera-job status: --json takes no value" },
		{ "submit org/x --layout flat", "--layout is native or split, not "
		  "'flat'" },
		{ "submit org/x --notify ftp://x", "--notify is an http:// or "
		  "https:// URL" },
		{ "smoke a.gguf --tokens many", "--tokens is a number from 0 to "
		  "4096" },
		{ "worker add w local --max-jobs 0", "--max-jobs is a number from "
		  "1 to 64" },
		{ "help nothing", "mibera-job: unknown command 'nothing'" },
		{ "inspect org/x --quant Q4_K_M,Q9_K", "unknown quant type "
		  "'Q9_K' (valid: Q2_K, " },
		{ "submit org/x --set rope_theta=1e4 --set rope_theta=5e5",
		  "--set rope_theta is given twice (10000, then 5e5): keep one" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out;
		int rc = th_sh(&out, "{ %s %s 2>&1 >/dev/null; }", JOB, cases[i].args);

		if (rc != 2 || strstr(out, cases[i].want) == NULL)
			fail_msg("'%s': exit %d, stderr:\n%s\nwanted '%s'",
				 cases[i].args, rc, out, cases[i].want);
		free(out);
		/* stdout stays empty: scripts read it */
		assert_int_equal(th_sh(&out, "{ %s %s 2>/dev/null; }", JOB, cases[i].args), 2);
		assert_string_equal(out, "");
		free(out);
	}
}

/* The value of set(NAME VALUE) in llama.cpp's llama-config.cmake. */
static void llama_config(const char *name, char *out, size_t cap)
{
	char path[1200], *cache, *cfg, *p, prefix[1024] = "";
	char key[64];

	snprintf(path, sizeof(path), "%s/CMakeCache.txt", MB_BINARY_DIR);
	cache = th_slurp(path, NULL);
	assert_non_null(cache);
	p = strstr(cache, "MB_LLAMA_PREFIX:PATH=");
	assert_non_null(p);
	p += strlen("MB_LLAMA_PREFIX:PATH=");
	snprintf(prefix, sizeof(prefix), "%.*s", (int)strcspn(p, "\n"), p);
	free(cache);
	snprintf(path, sizeof(path), "%s/lib/cmake/llama/llama-config.cmake", prefix);
	cfg = th_slurp(path, NULL);
	assert_non_null(cfg);
	snprintf(key, sizeof(key), "set(%s ", name);
	p = strstr(cfg, key);
	assert_non_null(p);
	p += strlen(key);
	p += strspn(p, " ");
	snprintf(out, cap, "%.*s", (int)strcspn(p, ")"), p);
	free(cfg);
}

/* --version says llama.cpp's version and commit as its package gives
 * them, and what built the program, the same in every program. */
static void test_version_is_llama_cpps(void **state)
{
	static const char *const progs[] = { "mibera-job --version",
					     "mibera-job version",
					     "mibera-coordinator --version",
					     "mibera-worker --version" };
	char version[64], commit[64], want[256], build_number[64];
	char *first = NULL;
	struct utsname u;
	size_t i;

	(void)state;
	llama_config("LLAMA_VERSION", version, sizeof(version));
	llama_config("LLAMA_BUILD_COMMIT", commit, sizeof(commit));
	llama_config("LLAMA_BUILD_NUMBER", build_number, sizeof(build_number));
	assert_int_equal(uname(&u), 0);
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		char *out, *rest;

		assert_int_equal(th_sh(&out, "%s/%s", MB_BINARY_DIR, progs[i]), 0);
		print_message("%s:\n%s", progs[i], out);
		snprintf(want, sizeof(want), "\nllama.cpp version: %s (%s)\n", version,
			 commit);
		assert_non_null(strstr(out, want));
		assert_non_null(strstr(out, "\nbuilt with "));
		snprintf(want, sizeof(want), " for %s-linux\n", u.machine);
		assert_non_null(strstr(out, want));
		/* not the bundle's tag, nor its meaningless build number */
		assert_null(strstr(out, "(llama.cpp v"));
		snprintf(want, sizeof(want), "b%s", build_number);
		assert_null(strstr(out, want));
		/* the same lines but for the program's name */
		rest = strchr(out, '\n');
		assert_non_null(rest);
		if (first == NULL)
			first = strdup(rest);
		else
			assert_string_equal(first, rest);
		free(out);
	}
	free(first);
}

/* --foreground is what the coordinator does anyway: accepted (the systemd
 * unit passes it), not listed as if it changed anything. */
static void test_coordinator_options(void **state)
{
	char *out;

	(void)state;
	assert_int_equal(th_sh(&out, "%s/mibera-coordinator --help", MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, "usage: mibera-coordinator"));
	assert_non_null(strstr(out, "--once "));
	assert_null(strstr(out, "--foreground"));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-coordinator --foreground --version",
			     MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, "llama.cpp version: "));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-coordinator --onec", MB_BINARY_DIR), 2);
	assert_non_null(strstr(out, "unknown option '--onec'; did you mean "
				    "'--once'?"));
	free(out);
}

/* The offset of needle in the line of text that holds key, or -1. */
static int column_in_line(const char *text, const char *key, const char *needle)
{
	const char *p = strstr(text, key), *b, *n;

	if (p == NULL)
		return -1;
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	n = strstr(b, needle);
	if (n == NULL || (strchr(b, '\n') != NULL && n > strchr(b, '\n')))
		return -1;
	return (int)(n - b);
}

/* A job run to the end on a local worker: show, artifacts and worker
 * list as text and as JSON valid against their schemas; cancel and retry
 * of it say how it ended. */
static void test_show_artifacts_and_workers(void **state)
{
	char cmd[2048], *out;
	int col, c2;

	(void)state;
	assert_int_equal(th_sh(&out, "%s worker add wl local --dir %s/wd --agent "
			     "%s/mibera-worker", JOB, root, MB_BINARY_DIR), 0);
	/* what its llama.cpp computes with: this build has no GPU backend */
	assert_non_null(strstr(out, "\n  backend cpu\n"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list", JOB), 0);
	assert_true(column_in_line(out, "NAME ", "BACKEND") > 0);
	assert_int_equal(column_in_line(out, "wl ", "cpu "),
			 column_in_line(out, "NAME ", "BACKEND"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list --json", JOB), 0);
	assert_non_null(strstr(out, "\"backend\":\"cpu\""));
	free(out);
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0 2>/dev/null; }", JOB,
			     model), 0);
	assert_string_equal(out, "1\n");
	free(out);
	if (th_sh(&out, "%s/mibera-coordinator --once", MB_BINARY_DIR) != 0)
		fail_msg("coordinator: %s", out);
	free(out);

	assert_int_equal(th_sh(&out, "%s show 1", JOB), 0);
	print_message("%s", out);
	/* the repairs are a table: the arrows and the evidence line up */
	col = column_in_line(out, "  num_hidden_layers", "-> ");
	assert_true(col > 0);
	assert_int_equal(column_in_line(out, "  architectures", "-> "), col);
	assert_int_equal(column_in_line(out, "  rms_norm_eps", "-> "), col);
	c2 = column_in_line(out, "  num_hidden_layers", "tensors: ");
	assert_true(c2 > col);
	assert_int_equal(column_in_line(out, "  rms_norm_eps", "base model"), c2);
	assert_non_null(strstr(out, "tiny-Q8_0.gguf"));
	assert_null(strstr(out, "none yet"));
	/* the file to start with and why: measured against its F16 */
	assert_non_null(strstr(out, "\nrecommended: tiny-Q8_0.gguf, the "));
	assert_non_null(strstr(out, "(mean KL "));
	free(out);

	snprintf(cmd, sizeof(cmd), "%s show 1 --json", JOB);
	validate(cmd, "show");
	assert_int_equal(th_sh(&out, "%s", cmd), 0);
	{
		cJSON *doc = cJSON_Parse(out);
		const cJSON *arts = cJSON_GetObjectItem(doc, "artifacts");

		assert_non_null(doc);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "repairs")),
				 13);
		assert_int_equal(cJSON_GetArraySize(arts), 1);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(doc, "recommended"), "file")),
			"tiny-Q8_0.gguf");
		assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(
			doc, "recommended"), "top1")));
		assert_true(cJSON_IsObject(cJSON_GetObjectItem(
			cJSON_GetArrayItem(arts, 0), "smoke")));
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
			cJSON_GetObjectItem(doc, "job"), "steps")), 12);
		cJSON_Delete(doc);
	}
	free(out);
	snprintf(cmd, sizeof(cmd), "%s artifacts 1 --json", JOB);
	validate(cmd, "artifacts");
	assert_int_equal(th_sh(&out, "%s", cmd), 0);
	assert_non_null(strstr(out, "\"name\":\"tiny-Q8_0.gguf\""));
	/* the files written beside the GGUF, each with its kind */
	{
		static const char *const want[][2] = {
			{ "manifest.json", "manifest" },
			{ "provenance.json", "provenance" },
			{ "Modelfile", "modelfile" },
			{ "README.md", "model-card" },
		};
		cJSON *doc = cJSON_Parse(out);
		const cJSON *sc = cJSON_GetObjectItem(doc, "sidecar_files");
		size_t k;

		assert_int_equal(cJSON_GetArraySize(sc), 4);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc,
								       "sidecars")), 4);
		for (k = 0; k < 4; k++) {
			const cJSON *f = cJSON_GetArrayItem(sc, (int)k);

			assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				f, "name")), want[k][0]);
			assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				f, "kind")), want[k][1]);
			assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(f,
									     "size")) > 0);
		}
		cJSON_Delete(doc);
	}
	free(out);
	assert_int_equal(th_sh(&out, "%s artifacts 1", JOB), 0);
	assert_non_null(strstr(out, "  Modelfile "));
	assert_non_null(strstr(out, "modelfile: for ollama create\n"));
	assert_non_null(strstr(out, "model-card: the model card\n"));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s worker list --json", JOB);
	validate(cmd, "workers");
	snprintf(cmd, sizeof(cmd), "%s worker list --json --check", JOB);
	validate(cmd, "workers");

	/* a finished job: how it ended, in words */
	assert_int_equal(th_sh(&out, "%s cancel 1", JOB), 1);
	assert_non_null(strstr(out, "mibera-job cancel: job 1 already succeeded"));
	assert_null(strstr(out, "is already"));
	free(out);
	assert_int_equal(th_sh(&out, "%s retry 1", JOB), 1);
	assert_non_null(strstr(out, "job 1 already succeeded"));
	assert_null(strstr(out, "is not failed"));
	free(out);
}

/* A job in its first step: the time it held its worker counts that step
 * so far; a job with no artifacts says so under its heading. */
static void test_held_time_and_no_artifacts(void **state)
{
	char *out;
	cJSON *doc;
	double held;

	(void)state;
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0 2>/dev/null; }", JOB,
			     model), 0);
	assert_string_equal(out, "2\n");
	free(out);
	assert_int_equal(th_sh(&out, "%s show 2", JOB), 0);
	assert_non_null(strstr(out, "/artifacts/job-2\n  none yet\n"));
	free(out);
	/* as the coordinator leaves it 100 s into preflight */
	sql("UPDATE jobs SET state = 'running', started_at = strftime('%%s','now') "
	    "- 100, held_seconds = 0 WHERE id = 2; UPDATE steps SET state = "
	    "'running', attempts = 1, started_at = strftime('%%s','now') - 100 "
	    "WHERE job_id = 2 AND name = 'preflight'");
	assert_int_equal(th_sh(&out, "%s status", JOB), 0);
	print_message("%s", out);
	assert_null(strstr(out, "      0s"));
	free(out);
	assert_int_equal(th_sh(&out, "%s status 2 --json", JOB), 0);
	doc = cJSON_Parse(out);
	assert_non_null(doc);
	held = cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "job"),
							"held_seconds"));
	cJSON_Delete(doc);
	free(out);
	assert_true(held >= 100 && held < 200);
	assert_int_equal(th_sh(&out, "%s show 2", JOB), 0);
	assert_null(strstr(out, "held 0 s"));
	assert_non_null(strstr(out, "held 10"));
	free(out);
	sql("UPDATE jobs SET state = 'cancelled' WHERE id = 2; UPDATE steps SET "
	    "state = 'failed' WHERE job_id = 2 AND state = 'running'");
}

/* A long source is cut where it shows, and says so; the dashboard into a
 * pipe, or with NO_COLOR, is plain text; on a terminal it has colour. */
static void test_cut_text_and_plain_dashboard(void **state)
{
	char dir[800], *out;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/models/a-very-long-directory-of-models/"
		 "phi-4-my-finetune-with-a-long-name", root);
	assert_int_equal(mb_mkdir_p(dir, 0755), 0);
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0 2>/dev/null; }", JOB,
			     dir), 0);
	assert_string_equal(out, "3\n");
	free(out);
	assert_int_equal(th_sh(&out, "%s status", JOB), 0);
	/* cut to its column, ending "..." */
	assert_true(column_in_line(out, "3     queued", "... ") > 0);
	assert_null(strstr(out, "long-name"));
	free(out);

	assert_int_equal(th_sh(&out, "%s dashboard --once | cat", JOB), 0);
	print_message("%s", out);
	assert_null(strchr(out, '\033'));
	assert_null(strchr(out, '\r'));
	assert_non_null(strstr(out, " JOB   MODEL"));
	/* the model column keeps the end of the path, and says it was cut */
	assert_non_null(strstr(out, "...a-long-name "));
	/* the finished job: its recommended quant, how close to its F16 */
	assert_true(column_in_line(out, "succeeded ", "Q8_0 top-1 ") > 0);
	assert_true(column_in_line(out, "succeeded ", "% KL") > 0);
	free(out);
	/* on a terminal (script(1) gives it one): colours */
	assert_int_equal(th_sh(&out, "script -qec '%s dashboard --once' /dev/null",
			     JOB), 0);
	assert_non_null(strstr(out, "\033[7m"));
	assert_non_null(strstr(out, " JOB   MODEL"));
	free(out);
	assert_int_equal(th_sh(&out, "NO_COLOR=1 script -qec '%s dashboard --once' "
			     "/dev/null", JOB), 0);
	assert_null(strchr(out, '\033'));
	assert_non_null(strstr(out, " JOB   MODEL"));
	free(out);
}

/* worker update: settings change; a new target or directory waits for
 * the worker's jobs; a new host's key is checked as add checks it. */
static void test_worker_update(void **state)
{
	char *out, fp[80];
	cJSON *doc, *w;

	(void)state;
	assert_int_equal(th_sh(&out, "%s worker update wl --cost-per-hour 2.5 "
			     "--max-jobs 3 --idle-command 'true' --idle-after 60",
			     JOB), 0);
	assert_non_null(strstr(out, "updated worker wl"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list --json", JOB), 0);
	doc = cJSON_Parse(out);
	free(out);
	w = cJSON_GetArrayItem(doc, 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(w, "name")), "wl");
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(w, "cost_per_hour")) == 2.5);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(w, "max_jobs")), 3);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(w, "idle_after")), 60);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(w, "idle_command")),
			    "true");
	cJSON_Delete(doc);
	assert_int_equal(th_sh(&out, "%s worker update nobody --max-jobs 2", JOB), 1);
	assert_non_null(strstr(out, "no worker 'nobody'"));
	free(out);
	/* job 3 is queued on it: its files would be left behind */
	assert_int_equal(th_sh(&out, "%s worker update wl --dir %s/wd-other", JOB,
			     root), 1);
	assert_non_null(strstr(out, "unfinished jobs"));
	free(out);
	assert_int_equal(th_sh(&out, "%s cancel 3", JOB), 0);
	free(out);
	/* to the loopback sshd: its key is unknown, so refused until given */
	assert_int_equal(th_sh(&out, "%s worker update wl --host box1", JOB), 1);
	assert_non_null(strstr(out, "unknown host key"));
	assert_non_null(strstr(out, "SHA256:"));
	th_fingerprint(out, fp, sizeof(fp));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list", JOB), 0);
	assert_non_null(strstr(out, "local"));
	free(out);
	if (th_sh(&out, "%s worker update wl --target box1 --accept-host-key %s", JOB,
		fp) != 0)
		fail_msg("update: %s", out);
	assert_non_null(strstr(out, "updated worker wl (box1), host key SHA256:"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list --json", JOB), 0);
	assert_non_null(strstr(out, "\"target\":\"box1\""));
	assert_non_null(strstr(out, fp));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker check wl", JOB), 0);
	free(out);
}

/* worker list --check names a worker that does not answer, and why,
 * within seconds; one that does answers. */
static void test_list_check_names_the_silent(void **state)
{
	char cmd[1024], *out;
	long long t0;
	int port = th_free_port();

	(void)state;
	assert_int_equal(th_sh(&out, "%s worker add gone local --dir %s/wd-gone "
			     "--agent %s/mibera-worker", JOB, root, MB_BINARY_DIR), 0);
	free(out);
	/* the box went away: nothing listens where it was */
	sql("UPDATE workers SET target = '%s@127.0.0.1:%d' WHERE name = 'gone'",
	    sshd.user, port);
	assert_int_equal(th_sh(&out, "%s worker list", JOB), 0);
	assert_null(strstr(out, "not answering"));
	free(out);
	t0 = th_now_ms();
	assert_int_equal(th_sh(&out, "%s worker list --check", JOB), 0);
	print_message("%s", out);
	assert_true(th_now_ms() - t0 < 10000);
	assert_true(column_in_line(out, "gone ", "not answering: ") > 0);
	assert_true(column_in_line(out, "wl ", "answers") > 0);
	assert_true(column_in_line(out, "wl ", "not answering") < 0);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s worker list --check --json", JOB);
	validate(cmd, "workers");
	assert_int_equal(th_sh(&out, "%s", cmd), 0);
	{
		cJSON *doc = cJSON_Parse(out), *w;
		int seen = 0;

		cJSON_ArrayForEach(w, doc) {
			const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(w, "name"));
			const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(w, "problem"));
			int answers = cJSON_IsTrue(cJSON_GetObjectItem(w, "answers"));

			assert_non_null(why);
			assert_int_equal(answers, strcmp(name, "gone") != 0);
			assert_int_equal(why[0] != '\0', !answers);
			seen++;
		}
		assert_int_equal(seen, 2);
		cJSON_Delete(doc);
	}
	free(out);
	assert_int_equal(th_sh(&out, "%s worker remove gone", JOB), 0);
	free(out);
}

/* Submit reads the worker's free disk from its last hello: a job that
 * would not fit is refused before anything runs; one that fits is
 * queued. */
static void test_submit_checks_the_workers_disk(void **state)
{
	char hubroot[700], *out;
	struct th_hub hub;

	(void)state;
	snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
	assert_int_equal(th_hub_start(&hub, hubroot, NULL), 0);
	setenv("HF_ENDPOINT", hub.url, 1);
	sql("UPDATE workers SET hello = json_set(hello, '$.disk_free', 1000) "
	    "WHERE name = 'wl'");
	assert_int_equal(th_sh(&out, "%s submit org/tiny --worker wl --quant Q8_0",
			     JOB), 1);
	print_message("%s", out);
	assert_non_null(strstr(out, "'wl' had 0.0 GB free in"));
	assert_non_null(strstr(out, "this job needs about"));
	free(out);
	assert_int_equal(th_sh(&out, "%s status --json", JOB), 0);
	assert_null(strstr(out, "org/tiny"));
	free(out);
	sql("UPDATE workers SET hello = json_set(hello, '$.disk_free', "
	    "1000000000000) WHERE name = 'wl'");
	assert_int_equal(th_sh(&out, "{ %s submit org/tiny --worker wl --quant Q8_0 "
			     "2>/dev/null; }", JOB), 0);
	assert_string_equal(out, "4\n");
	free(out);
	assert_int_equal(th_sh(&out, "%s cancel 4", JOB), 0);
	free(out);
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");
}

/* What a model's files cannot settle, a person can: --set and --base on
 * inspect and submit, checked as they are read, carried by the job to
 * the worker's conversion, and recorded as set by the user. */
static void test_user_settings(void **state)
{
	char llama[700], hubroot[700], cmd[2048], *out;
	const char *broken[] = { "--config", "broken", NULL };
	struct th_hub hub;
	long long id;
	cJSON *doc;

	(void)state;
	/* Llama-2's sizes over a 256-wide model: 4 heads of 64 or 2 of 128,
	 * and nothing in its files says which */
	snprintf(llama, sizeof(llama), "%s/llama", root);
	assert_int_equal(th_mkmodel(llama, "llama-tiny", broken), 0);
	assert_int_equal(th_sh(&out, "%s inspect %s", JOB, llama), 3);
	assert_non_null(strstr(out, "--set num_attention_heads=N"));
	free(out);
	assert_int_equal(th_sh(&out, "%s inspect %s --set num_attention_heads=4",
			     JOB, llama), 0);
	assert_non_null(strstr(out, "set by the user"));
	free(out);
	assert_int_equal(th_sh(&out, "%s inspect %s --set num_attention_heads=3",
			     JOB, llama), 3);
	assert_non_null(strstr(out, "do not fit the tensors"));
	free(out);
	assert_int_equal(th_sh(&out, "%s inspect %s --set hidden_size=8", JOB, llama),
			 2);
	assert_non_null(strstr(out, "hidden_size cannot be set"));
	free(out);
	assert_int_equal(th_sh(&out, "%s submit %s --sett x=1", JOB, llama), 2);
	assert_non_null(strstr(out, "did you mean '--set'?"));
	free(out);

	/* submitted with the setting, the job converts with it */
	assert_int_equal(th_sh(&out, "{ %s submit %s --worker wl --quant Q8_0 --json "
			     "--set num_attention_heads=4 --set rope_theta=500000 "
			     "2>/dev/null; }", JOB, llama), 0);
	doc = cJSON_Parse(out);
	id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "id"));
	cJSON_Delete(doc);
	free(out);
	assert_true(id > 0);
	if (th_sh(&out, "%s/mibera-coordinator --once", MB_BINARY_DIR) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	assert_int_equal(th_sh(&out, "%s show %lld", JOB, id), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "set by the user: num_attention_heads=4 "
				    "rope_theta=500000"));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s show %lld --json", JOB, id);
	validate(cmd, "show");
	assert_int_equal(th_sh(&out, "%s logs --json %lld", JOB, id), 0);
	assert_non_null(strstr(out, "\"key\":\"rope_theta\""));
	assert_non_null(strstr(out, "\"source\":\"set by the user\""));
	free(out);
	assert_int_equal(th_sh(&out, "cat %s/artifacts/job-%lld/provenance.json",
			     mhome, id), 0);
	assert_non_null(strstr(out, "set by the user"));
	free(out);

	/* a base the hub does not have is refused at submit */
	snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
	assert_int_equal(th_hub_start(&hub, hubroot, NULL), 0);
	setenv("HF_ENDPOINT", hub.url, 1);
	assert_int_equal(th_sh(&out, "%s submit %s --worker wl --base org/nothere",
			     JOB, llama), 1);
	assert_non_null(strstr(out, "--base org/nothere"));
	free(out);
	/* one it has travels with the job, its config as the hub has it (a
	 * Phi-2 config: org/tiny's lies) read now */
	assert_int_equal(th_sh(&out, "{ %s submit %s --worker wl --base org/tiny "
			     "--set num_attention_heads=2 --json 2>/dev/null; }",
			     JOB, llama), 0);
	doc = cJSON_Parse(out);
	id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "id"));
	cJSON_Delete(doc);
	free(out);
	assert_int_equal(th_sh(&out, "%s show %lld --json", JOB, id), 0);
	doc = cJSON_Parse(out);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(doc, "settings"), "base")), "org/tiny");
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "settings"),
					"base_config"));
	cJSON_Delete(doc);
	free(out);
	assert_int_equal(th_sh(&out, "sqlite3 %s/jobs.db \"SELECT json_extract("
			     "overrides, '$.base_config.model_type') FROM jobs "
			     "WHERE id = %lld\"", mhome, id), 0);
	assert_string_equal(out, "phi\n");
	free(out);
	assert_int_equal(th_sh(&out, "%s cancel %lld", JOB, id), 0);
	free(out);
	th_hub_stop(&hub);
	unsetenv("HF_ENDPOINT");

	/* a relative path is kept whole for a local worker: the
	 * coordinator may run elsewhere */
	assert_int_equal(th_sh(&out, "%s worker add wrel local --dir %s/wd-rel "
			     "--agent %s/mibera-worker", JOB, root, MB_BINARY_DIR),
			 0);
	free(out);
	assert_int_equal(th_sh(&out, "{ cd %s && %s submit ./llama --worker wrel "
			     "--set num_attention_heads=4 --json 2>/dev/null; }",
			     root, JOB), 0);
	doc = cJSON_Parse(out);
	id = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "id"));
	cJSON_Delete(doc);
	free(out);
	assert_int_equal(th_sh(&out, "%s show %lld --json", JOB, id), 0);
	doc = cJSON_Parse(out);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(doc, "job"), "source")), llama);
	cJSON_Delete(doc);
	free(out);
	assert_int_equal(th_sh(&out, "%s cancel %lld", JOB, id), 0);
	free(out);
	/* a step that is not one is named, with the one meant */
	assert_int_equal(th_sh(&out, "%s logs %lld --step fidelty", JOB, id), 2);
	assert_non_null(strstr(out, "no step 'fidelty'; did you mean 'fidelity'?"));
	free(out);
}

/* A local worker's relative --dir is kept as the absolute path it meant
 * where the command ran (the coordinator runs elsewhere); `worker rm` and
 * `worker ls` are the verbs people type from habit. */
static void test_local_dir_absolute_and_short_verbs(void **state)
{
	char *out, want[1200];

	(void)state;
	if (th_sh(&out, "cd %s && %s worker add wcwd local --dir wd-cwd --agent "
		"%s/mibera-worker", root, JOB, MB_BINARY_DIR) != 0)
		fail_msg("worker add: %s", out);
	free(out);
	assert_int_equal(th_sh(&out, "cd / && %s worker ls --json", JOB), 0);
	snprintf(want, sizeof(want), "\"dir\":\"%s/wd-cwd\"", root);
	if (strstr(out, want) == NULL)
		fail_msg("wanted %s in:\n%s", want, out);
	free(out);
	if (th_sh(&out, "%s worker rm wcwd", JOB) != 0)
		fail_msg("worker rm: %s", out);
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list", JOB), 0);
	assert_null(strstr(out, "wcwd"));
	free(out);
	/* an empty path is refused, not taken for the default */
	assert_int_equal(th_sh(&out, "%s worker add wempty local --dir '' --agent "
			     "%s/mibera-worker", JOB, MB_BINARY_DIR), 2);
	assert_non_null(strstr(out, "--dir needs a path, not ''"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker add wempty local --agent ''", JOB),
			 2);
	assert_non_null(strstr(out, "--agent needs a path, not ''"));
	free(out);
	assert_int_equal(th_sh(&out, "%s submit %s --rent vast --worker-dir ''", JOB,
			     model), 2);
	assert_non_null(strstr(out, "--worker-dir needs a path, not ''"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker list", JOB), 0);
	assert_null(strstr(out, "wempty"));
	free(out);
}

/* Progress that counts chunks or files, not bytes (imatrix, fidelity),
 * reads as a count in logs: "3 of 10 chunks", never "3 B of 10 B". */
static void test_counted_progress(void **state)
{
	char *out;

	(void)state;
	sql("INSERT INTO events (job_id, step, seq, at_ms, type, data) VALUES "
	    "(1, 'imatrix', 5, 1764158400123, 'progress', '{\\\"v\\\":1,"
	    "\\\"seq\\\":5,\\\"ms\\\":1764158400123,\\\"step\\\":"
	    "\\\"imatrix\\\",\\\"type\\\":\\\"progress\\\","
	    "\\\"what\\\":\\\"imatrix\\\",\\\"done\\\":3,"
	    "\\\"total\\\":10,\\\"rate\\\":0.5,\\\"unit\\\":"
	    "\\\"chunks\\\"}')");
	assert_int_equal(th_sh(&out, "%s logs 1 --step imatrix", JOB), 0);
	if (strstr(out, "imatrix  3 of 10 chunks (30%)  ETA 14s") == NULL)
		fail_msg("logs:\n%s", out);
	assert_null(strstr(out, " B of "));
	free(out);
}

/* A file pulled over one stream says "1 stream", in logs and in the
 * dashboard's events alike. */
static void test_one_stream_is_one(void **state)
{
	char *out;

	(void)state;
	sql("INSERT INTO events (job_id, step, seq, at_ms, type, data) VALUES "
	    "(1, 'pull', 0, strftime('%%s','now') * 1000, 'pulled', '{\\\"v\\\":1,"
	    "\\\"seq\\\":0,\\\"ms\\\":1764158400123,\\\"step\\\":\\\"pull\\\","
	    "\\\"type\\\":\\\"pulled\\\",\\\"file\\\":\\\"one-Q8_0.gguf\\\","
	    "\\\"ok\\\":true,\\\"bytes\\\":1000,\\\"reused\\\":0,"
	    "\\\"seconds\\\":0.5,\\\"streams\\\":1}')");
	assert_int_equal(th_sh(&out, "%s logs 1 --step pull", JOB), 0);
	if (strstr(out, "one-Q8_0.gguf: 1.0 kB in 0.5 s over 1 stream (") == NULL)
		fail_msg("logs:\n%s", out);
	free(out);
	assert_int_equal(th_sh(&out, "%s dashboard --once | cat",
			     JOB), 0);
	if (strstr(out, "one-Q8_0.gguf verified (1 stream, 0.5 s)") == NULL)
		fail_msg("dashboard:\n%s", out);
	assert_null(strstr(out, "1 streams"));
	free(out);
	sql("DELETE FROM events WHERE job_id = 1 AND type = 'pulled' AND data "
	    "LIKE '%%one-Q8_0%%'");
}

/* show lists a job's files in name order, so the parts of a set stay
 * together and in order whatever their sizes. */
static void test_show_keeps_sets_together(void **state)
{
	char *out, *p1, *p2, *p3, *f16;

	(void)state;
	sql("INSERT INTO artifacts (job_id, name, type, size, sha256, path) "
	    "VALUES (2, 'm-Q4_0-00001-of-00003.gguf', 'gguf', 3000000, 'aa', ''),"
	    "(2, 'm-Q4_0-00002-of-00003.gguf', 'gguf', 1000000, 'bb', ''),"
	    "(2, 'm-Q4_0-00003-of-00003.gguf', 'gguf', 500000, 'cc', ''),"
	    "(2, 'm-F16.gguf', 'gguf', 2000000, 'dd', '')");
	assert_int_equal(th_sh(&out, "%s show 2", JOB), 0);
	print_message("%s", out);
	f16 = strstr(out, "  m-F16.gguf ");
	p1 = strstr(out, "  m-Q4_0-00001-of-00003.gguf ");
	p2 = strstr(out, "  m-Q4_0-00002-of-00003.gguf ");
	p3 = strstr(out, "  m-Q4_0-00003-of-00003.gguf ");
	assert_non_null(f16);
	assert_non_null(p1);
	assert_non_null(p2);
	assert_non_null(p3);
	/* the set in order, nothing between its parts */
	assert_true(p1 < p2 && p2 < p3);
	assert_true(f16 < p1 || f16 > p3);
	free(out);
	sql("DELETE FROM artifacts WHERE job_id = 2");
}

/* A model mibera does not convert natively: submit's way out is the
 * person's own command, every flag they gave kept, with --converter
 * llama.cpp in place of theirs. */
static void test_way_out_keeps_the_flags(void **state)
{
	static const char gemma[] =
		"{\"architectures\":[\"GemmaForCausalLM\"],\"model_type\":"
		"\"gemma\",\"hidden_size\":256,\"num_attention_heads\":4,"
		"\"num_key_value_heads\":2,\"head_dim\":64,\"num_hidden_layers\":2,"
		"\"intermediate_size\":688,\"vocab_size\":512}";
	const char *extra[] = { "--config", "correct", NULL };
	char dir[800], path[900], want[1400], *out;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/gemma-tiny", root);
	assert_int_equal(th_mkmodel(dir, "llama-tiny", extra), 0);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	assert_int_equal(th_write_file(path, gemma, strlen(gemma)), 0);
	/* a local worker reads the directory: submit inspects it */
	if (th_sh(&out, "%s worker add wg local --dir %s/wg --agent "
		"%s/mibera-worker", JOB, root, MB_BINARY_DIR) != 0)
		fail_msg("worker add: %s", out);
	free(out);
	if (th_sh(&out, "%s submit --worker wg --quant Q8_0,Q4_0 --imatrix off "
		"--converter mibera %s", JOB, dir) != 3)
		fail_msg("submit: %s", out);
	print_message("%s", out);
	snprintf(want, sizeof(want), "mibera-job submit --worker wg --quant "
		 "Q8_0,Q4_0 --imatrix off %s --converter llama.cpp", dir);
	if (strstr(out, want) == NULL)
		fail_msg("wanted \"%s\" in:\n%s", want, out);
	assert_null(strstr(out, "--converter mibera"));
	free(out);
	assert_int_equal(th_sh(&out, "%s worker rm wg", JOB), 0);
	free(out);
}

/* The dashboard's job table gives the time a job has held its worker
 * under the word status uses (HELD), and the same figure show and status
 * give, not the time since the job started. */
static void test_dashboard_held_as_show(void **state)
{
	char *out, *line;

	(void)state;
	/* started 1000 s ago, 50 s held before its running step (it waited
	 * in between), which started 10 s ago: 60 s held */
	sql("UPDATE jobs SET state = 'running', started_at = strftime('%%s','now') "
	    "- 1000, held_seconds = 50 WHERE id = 2; UPDATE steps SET state = "
	    "'running', attempts = 1, started_at = strftime('%%s','now') - 10 "
	    "WHERE job_id = 2 AND name = 'preflight'");
	assert_int_equal(th_sh(&out, "%s dashboard --once | cat", JOB), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "PROGRESS"));
	assert_non_null(strstr(out, "HELD"));
	assert_null(strstr(out, "TIME"));
	line = strstr(out, "\n 2     ");
	assert_non_null(line);
	if (strchr(line + 1, '\n') != NULL)
		*strchr(line + 1, '\n') = '\0';
	if (strstr(line, " 1m0") == NULL || strstr(line, "16m") != NULL)
		fail_msg("wanted about 1m00s held in: %s", line);
	free(out);
	assert_int_equal(th_sh(&out, "%s show 2", JOB), 0);
	if (strstr(out, "held 6") == NULL)
		fail_msg("show:\n%s", out);
	free(out);
	sql("UPDATE jobs SET state = 'cancelled' WHERE id = 2; UPDATE steps SET "
	    "state = 'failed' WHERE job_id = 2 AND state = 'running'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_from_the_tables),
		cmocka_unit_test(test_usage_errors_name_what_was_meant),
		cmocka_unit_test(test_version_is_llama_cpps),
		cmocka_unit_test(test_coordinator_options),
		cmocka_unit_test(test_show_artifacts_and_workers),
		cmocka_unit_test(test_held_time_and_no_artifacts),
		cmocka_unit_test(test_cut_text_and_plain_dashboard),
		cmocka_unit_test(test_worker_update),
		cmocka_unit_test(test_list_check_names_the_silent),
		cmocka_unit_test(test_submit_checks_the_workers_disk),
		cmocka_unit_test(test_user_settings),
		cmocka_unit_test(test_local_dir_absolute_and_short_verbs),
		cmocka_unit_test(test_counted_progress),
		cmocka_unit_test(test_show_keeps_sets_together),
		cmocka_unit_test(test_one_stream_is_one),
		cmocka_unit_test(test_way_out_keeps_the_flags),
		cmocka_unit_test(test_dashboard_held_as_show),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
