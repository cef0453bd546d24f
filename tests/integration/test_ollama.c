/*
 * A job's model registered with a local Ollama server, through the real
 * programs against tests/harness/fakeollama.py (Ollama's REST API as its
 * docs/api.md describes it: HEAD and POST /api/blobs/sha256:..., POST
 * /api/create with files, template and parameters): a job submitted with
 * --ollama ends with the model registered from the blob whose digest is
 * the artifact's sha256, with the Modelfile's template and stops, and
 * each quant as NAME:type; a second registration sends no file again; a
 * file whose bytes changed on disk is refused by the server and said so;
 * with no server the job still succeeds and says how to do it later;
 * `mibera-job ollama JOB NAME` works on a finished job and refuses one
 * that has not finished, and a bad name. OLLAMA_HOST is read as Ollama
 * reads it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/fs.h"
#include "coordinator/ollama.h"
#include "model.h"
#include "th.h"

#define JOB MB_BINARY_DIR "/mibera-job"

static char root[512], mhome[600], model[600];

struct fake {
	pid_t pid;
	int port;
};

static struct fake srv;

/* Starts a fake Ollama keeping its blobs in root/<tag>. */
static int fake_start(struct fake *f, const char *tag)
{
	char dir[700], line[128];
	char *argv[] = { (char *)MB_PYTHON,
			 (char *)MB_SOURCE_DIR "/tests/harness/fakeollama.py",
			 (char *)"--dir", dir, NULL };
	int fd = -1, n;

	snprintf(dir, sizeof(dir), "%s/%s", root, tag);
	memset(f, 0, sizeof(*f));
	if (th_spawn(argv, &f->pid, &fd) != 0)
		return -1;
	n = th_read_line(fd, line, sizeof(line), 10000);
	close(fd);
	if (n < 0 || sscanf(line, "OLLAMA_PORT=%d", &f->port) != 1) {
		fprintf(stderr, "fakeollama did not start (got '%s')\n",
			n < 0 ? "" : line);
		th_stop(f->pid, 2000);
		f->pid = 0;
		return -1;
	}
	return 0;
}

/* The fake's /_control/state (caller frees with cJSON_Delete). */
static cJSON *fake_state(const struct fake *f)
{
	char *out;
	cJSON *doc;

	if (th_sh(&out, "curl -sf http://127.0.0.1:%d/_control/state", f->port) != 0)
		fail_msg("fakeollama state: %s", out);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	return doc;
}

static int state_int(const cJSON *st, const char *key)
{
	return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(st, key));
}

static void use_server(int port)
{
	char v[64];

	snprintf(v, sizeof(v), "127.0.0.1:%d", port);
	setenv("OLLAMA_HOST", v, 1);
}

static int setup(void **state)
{
	char path[800], *out = NULL;
	const char *extra[] = { "--config", "correct", NULL };

	(void)state;
	if (th_tmpdir("ollama", root, sizeof(root)) != 0)
		return -1;
	snprintf(mhome, sizeof(mhome), "%s/mibera", root);
	snprintf(path, sizeof(path), "%s/home", root);
	setenv("HOME", path, 1);
	if (mb_mkdir_p(path, 0700) != 0)
		return -1;
	setenv("MIBERA_HOME", mhome, 1);
	unsetenv("HF_ENDPOINT");
	snprintf(model, sizeof(model), "%s/tiny", root);
	if (th_mkmodel(model, "phi4-tiny", extra) != 0 ||
	    fake_start(&srv, "ollama") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s worker add wl local --dir %s/wd "
		 "--agent %s/mibera-worker", JOB, root, MB_BINARY_DIR);
	if (th_capture(path, &out) != 0) {
		fprintf(stderr, "%s: %s\n", path, out ? out : "");
		free(out);
		return -1;
	}
	free(out);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_stop(srv.pid, 2000);
	th_rmtree(root);
	return 0;
}

/* OLLAMA_HOST as Ollama reads it, and the names Ollama takes. */
static void url_is(const char *host, const char *want)
{
	char out[400];

	assert_int_equal(mb_ollama_url(host, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_host(void **state)
{
	char out[400] = "untouched";

	(void)state;
	url_is(NULL, "http://127.0.0.1:11434");
	url_is("", "http://127.0.0.1:11434");
	url_is("  ", "http://127.0.0.1:11434");
	url_is("0.0.0.0", "http://0.0.0.0:11434");
	url_is("box:8080", "http://box:8080");
	url_is(":9000", "http://127.0.0.1:9000");
	url_is("\"127.0.0.1:1234\"", "http://127.0.0.1:1234");
	url_is("http://box", "http://box:80");
	url_is("https://box", "https://box:443");
	url_is("https://box:8443/ollama/", "https://box:8443/ollama");
	url_is("http://127.0.0.1:5/", "http://127.0.0.1:5");
	url_is("[::1]:7000", "http://[::1]:7000");
	url_is("::1", "http://[::1]:11434");
	assert_int_equal(mb_ollama_url("ftp://box", out, sizeof(out)), MB_EINVAL);
	assert_int_equal(mb_ollama_url("box:port", out, sizeof(out)), MB_EINVAL);
	assert_int_equal(mb_ollama_url("box:70000", out, sizeof(out)), MB_EINVAL);
	assert_string_equal(out, "untouched");
}

static void test_names(void **state)
{
	(void)state;
	assert_true(mb_ollama_name_ok("tiny"));
	assert_true(mb_ollama_name_ok("tiny:q4_k_m"));
	assert_true(mb_ollama_name_ok("me/phi-4.1:latest"));
	assert_false(mb_ollama_name_ok(""));
	assert_false(mb_ollama_name_ok("a:b:c"));
	assert_false(mb_ollama_name_ok("a:b/c"));
	assert_false(mb_ollama_name_ok("Bad Name"));
	assert_false(mb_ollama_name_ok("-x"));
	assert_false(mb_ollama_name_ok("me/"));
	assert_false(mb_ollama_name_ok("/x"));
	assert_false(mb_ollama_name_ok("x:"));
	assert_false(mb_ollama_name_ok("x;rm -rf"));
}

/* The artifact's sha256, from `mibera-job artifacts JOB --json`. */
static void artifact_sha(int job, const char *file, char *out, size_t cap)
{
	const cJSON *it;
	cJSON *doc;
	char *text;

	assert_int_equal(th_sh(&text, "%s artifacts %d --json", JOB, job), 0);
	doc = cJSON_Parse(text);
	free(text);
	assert_non_null(doc);
	out[0] = '\0';
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "files"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "name")),
			   file) == 0)
			snprintf(out, cap, "sha256:%s", cJSON_GetStringValue(
					 cJSON_GetObjectItem(it, "sha256")));
	cJSON_Delete(doc);
	assert_true(out[0] != '\0');
}

/* The Modelfile's TEMPLATE into tmpl and its stops, in order, as a JSON
 * array text into stops. */
static void modelfile(int job, char *tmpl, size_t tcap, char *stops,
		      size_t scap)
{
	char path[800], *text, *p, *end;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/artifacts/job-%d/Modelfile", mhome, job);
	text = th_slurp(path, NULL);
	assert_non_null(text);
	p = strstr(text, "TEMPLATE \"\"\"");
	assert_non_null(p);
	p += 12;
	end = strstr(p, "\"\"\"");
	assert_non_null(end);
	snprintf(tmpl, tcap, "%.*s", (int)(end - p), p);
	n += (size_t)snprintf(stops + n, scap - n, "[");
	for (p = strstr(text, "PARAMETER stop \""); p != NULL;
	     p = strstr(end, "PARAMETER stop \"")) {
		p += 16;
		end = strchr(p, '"');
		assert_non_null(end);
		n += (size_t)snprintf(stops + n, scap - n, "%s\"%.*s\"",
				      stops[1] ? "," : "", (int)(end - p), p);
	}
	snprintf(stops + n, scap - n, "]");
	free(text);
}

/* A job with --ollama: the recommended quant as NAME and each quant as
 * NAME:type, from blobs whose digests are the artifacts' sha256, with the
 * Modelfile's template and stops; the step says so in the job's logs. */
static void test_job_registers_the_model(void **state)
{
	char sha6[80], sha8[80], tmpl[2048], stops[1024], *out, *got;
	const cJSON *models, *m, *st6;
	cJSON *st, *want;

	(void)state;
	use_server(srv.port);
	/* without the fidelity step: the recommendation goes by type (the
	 * tiny random model's Q6_K is not within the bounds figures would
	 * hold it to; the choice on figures is tested below) */
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0,Q6_K --no-fidelity "
			     "--ollama tiny 2>/dev/null; }", JOB, model), 0);
	assert_string_equal(out, "1\n");
	free(out);
	if (th_sh(&out, "%s/mibera-coordinator --once", MB_BINARY_DIR) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	assert_int_equal(th_sh(&out, "%s status 1", JOB), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "ollama     done"));
	free(out);

	artifact_sha(1, "tiny-Q6_K.gguf", sha6, sizeof(sha6));
	artifact_sha(1, "tiny-Q8_0.gguf", sha8, sizeof(sha8));
	modelfile(1, tmpl, sizeof(tmpl), stops, sizeof(stops));
	st = fake_state(&srv);
	models = cJSON_GetObjectItem(st, "models");
	assert_int_equal(cJSON_GetArraySize(models), 3);
	/* NAME: the recommended one (by type, Q6_K before Q8_0), as the
	 * Modelfile */
	m = cJSON_GetObjectItem(models, "tiny:latest");
	assert_non_null(m);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(m, "files"), "tiny-Q6_K.gguf")), sha6);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "files")), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(m,
				"template")), tmpl);
	assert_non_null(strstr(tmpl, "{{ .Prompt }}"));
	got = cJSON_PrintUnformatted(cJSON_GetObjectItem(
		cJSON_GetObjectItem(m, "parameters"), "stop"));
	want = cJSON_Parse(stops);
	assert_true(cJSON_GetArraySize(want) >= 1);
	cJSON_Delete(want);
	assert_string_equal(got, stops);
	cJSON_free(got);
	/* each quant under its type */
	m = cJSON_GetObjectItem(models, "tiny:q8_0");
	assert_non_null(m);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(m, "files"), "tiny-Q8_0.gguf")), sha8);
	st6 = cJSON_GetObjectItem(models, "tiny:q6_k");
	assert_non_null(st6);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(st6, "files"), "tiny-Q6_K.gguf")), sha6);
	/* each file sent once, and kept under its digest */
	assert_int_equal(state_int(st, "uploads"), 2);
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "blobs"), sha6));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "blobs"), sha8));
	cJSON_Delete(st);

	/* Ollama shows it with that template */
	assert_int_equal(th_sh(&out, "curl -sf http://127.0.0.1:%d/api/show -d "
			     "'{\"model\":\"tiny\"}'", srv.port), 0);
	assert_non_null(strstr(out, "\"template\""));
	assert_non_null(strstr(out, "PARAMETER stop"));
	free(out);
	/* the job's events say what happened, in words */
	assert_int_equal(th_sh(&out, "%s logs 1", JOB), 0);
	assert_non_null(strstr(out, "uploading tiny-Q6_K.gguf"));
	assert_non_null(strstr(out, "registered tiny:q8_0"));
	assert_non_null(strstr(out, "ready: ollama run tiny"));
	free(out);
}

/* Registering again (other names, OLLAMA_HOST with a scheme and a slash)
 * asks before sending and sends nothing: the server has both files. A
 * NAME with a tag registers the recommended file alone. */
static void test_second_registration_sends_nothing(void **state)
{
	char host[80], *out;
	const cJSON *models;
	cJSON *st;

	(void)state;
	snprintf(host, sizeof(host), "http://127.0.0.1:%d/", srv.port);
	setenv("OLLAMA_HOST", host, 1);
	assert_int_equal(th_sh(&out, "%s ollama 1 me/tiny2", JOB), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "Ollama has tiny-Q6_K.gguf already"));
	assert_non_null(strstr(out, "Ollama has tiny-Q8_0.gguf already"));
	assert_null(strstr(out, "uploading"));
	assert_non_null(strstr(out, "registered me/tiny2:q6_k"));
	assert_non_null(strstr(out, "ready: ollama run me/tiny2\n"));
	free(out);
	assert_int_equal(th_sh(&out, "%s ollama 1 tiny3:best", JOB), 0);
	assert_non_null(strstr(out, "registered tiny3:best (tiny-Q6_K.gguf"));
	free(out);
	st = fake_state(&srv);
	assert_int_equal(state_int(st, "uploads"), 2);
	assert_true(state_int(st, "heads") >= 5);
	models = cJSON_GetObjectItem(st, "models");
	assert_non_null(cJSON_GetObjectItem(models, "me/tiny2:latest"));
	assert_non_null(cJSON_GetObjectItem(models, "me/tiny2:q8_0"));
	assert_non_null(cJSON_GetObjectItem(models, "tiny3:best"));
	assert_null(cJSON_GetObjectItem(models, "tiny3:best:q8_0"));
	assert_int_equal(cJSON_GetArraySize(models), 7);
	cJSON_Delete(st);
	/* the file the job's provenance recommends, as its Modelfile does:
	 * a job whose figures chose Q8_0 registers Q8_0 */
	{
		char path[800];
		char *text, *was;
		size_t len;
		cJSON *prov;

		snprintf(path, sizeof(path), "%s/artifacts/job-1/provenance.json",
			 mhome);
		was = th_slurp(path, &len);
		assert_non_null(was);
		prov = cJSON_Parse(was);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
			prov, "recommended")), "tiny-Q6_K.gguf");
		cJSON_ReplaceItemInObject(prov, "recommended",
					  cJSON_CreateString("tiny-Q8_0.gguf"));
		text = cJSON_Print(prov);
		assert_int_equal(th_write_file(path, text, strlen(text)), 0);
		cJSON_free(text);
		cJSON_Delete(prov);
		assert_int_equal(th_sh(&out, "%s ollama 1 tiny4:best", JOB), 0);
		assert_non_null(strstr(out, "registered tiny4:best (tiny-Q8_0.gguf"));
		free(out);
		/* as it was, for the tests after */
		assert_int_equal(th_write_file(path, was, len), 0);
		free(was);
	}
}

/* A file whose bytes changed after the pull: a server that does not hold
 * it yet hashes the upload, refuses it, and the command says so, names
 * the file and registers nothing. */
static void test_corrupted_upload_refused(void **state)
{
	struct fake fresh;
	char path[800], *out;
	FILE *f;
	int c;
	cJSON *st;

	(void)state;
	assert_int_equal(fake_start(&fresh, "ollama-fresh"), 0);
	use_server(fresh.port);
	snprintf(path, sizeof(path), "%s/artifacts/job-1/tiny-Q6_K.gguf", mhome);
	f = fopen(path, "r+b");
	assert_non_null(f);
	/* flip a byte in the middle, keeping the size */
	fseek(f, 0, SEEK_END);
	fseek(f, ftell(f) / 2, SEEK_SET);
	c = fgetc(f);
	fseek(f, -1, SEEK_CUR);
	fputc(c ^ 0x55, f);
	fclose(f);
	assert_int_equal(th_sh(&out, "%s ollama 1 tiny", JOB), 1);
	print_message("%s", out);
	assert_non_null(strstr(out, "Ollama refused tiny-Q6_K.gguf: digest "
				    "mismatch"));
	assert_non_null(strstr(out, "no longer matches the sha256"));
	assert_null(strstr(out, "ready:"));
	free(out);
	st = fake_state(&fresh);
	assert_int_equal(state_int(st, "rejected"), 1);
	assert_int_equal(state_int(st, "uploads"), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "models")), 0);
	cJSON_Delete(st);
	th_stop(fresh.pid, 2000);
	/* put it back for the tests after */
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	fseek(f, ftell(f) / 2, SEEK_SET);
	fputc(c, f);
	fclose(f);
}

/* No server: the job succeeds, its ollama step failed with the address,
 * OLLAMA_HOST and the Modelfile route; the command says the same. */
static void test_no_server_keeps_the_job(void **state)
{
	char want[900], *out;
	int port = th_free_port();

	(void)state;
	assert_true(port > 0);
	use_server(port);
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0 --no-smoke "
			       "--ollama tiny 2>/dev/null; }", JOB, model), 0);
	assert_string_equal(out, "2\n");
	free(out);
	if (th_sh(&out, "%s/mibera-coordinator --once", MB_BINARY_DIR) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	assert_int_equal(th_sh(&out, "%s status 2", JOB), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "ollama     failed"));
	free(out);
	snprintf(want, sizeof(want), "no Ollama server answers at "
		 "http://127.0.0.1:%d (OLLAMA_HOST=127.0.0.1:%d)", port, port);
	assert_int_equal(th_sh(&out, "%s show 2 --json", JOB), 0);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "ollama create tiny -f "));
	assert_non_null(strstr(out, "/artifacts/job-2/Modelfile"));
	assert_non_null(strstr(out, "it succeeds without this"));
	assert_non_null(strstr(out, "mibera-job ollama 2 tiny"));
	free(out);
	assert_int_equal(th_sh(&out, "%s logs 2", JOB), 0);
	assert_non_null(strstr(out, "not registered with Ollama"));
	assert_non_null(strstr(out, "job 2 succeeded"));
	free(out);
	assert_int_equal(th_sh(&out, "%s ollama 2 tiny", JOB), 1);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "ollama create tiny -f "));
	free(out);
	unsetenv("OLLAMA_HOST");
	assert_int_equal(th_sh(&out, "OLLAMA_HOST= %s ollama 2 tiny", JOB), 1);
	/* the default, as Ollama's own: 127.0.0.1:11434 */
	assert_non_null(strstr(out, "at http://127.0.0.1:11434 (OLLAMA_HOST is "
				    "not set"));
	free(out);
}

/* The command refuses a job that has not finished, a job that does not
 * exist and a name Ollama would refuse; submit refuses that name too. */
static void test_refusals(void **state)
{
	char *out;

	(void)state;
	use_server(srv.port);
	assert_int_equal(th_sh(&out, "{ %s submit %s --quant Q8_0 2>/dev/null; }",
			     JOB, model), 0);
	assert_string_equal(out, "3\n");
	free(out);
	assert_int_equal(th_sh(&out, "%s ollama 3 tiny", JOB), 1);
	assert_non_null(strstr(out, "job 3 has not succeeded (it is queued)"));
	free(out);
	assert_int_equal(th_sh(&out, "%s ollama 99 tiny", JOB), 1);
	assert_non_null(strstr(out, "no job 99"));
	free(out);
	assert_int_equal(th_sh(&out, "%s ollama 1 'Bad Name!'", JOB), 2);
	assert_non_null(strstr(out, "'Bad Name!' is not an Ollama model name"));
	free(out);
	assert_int_equal(th_sh(&out, "%s submit %s --ollama 'a:b:c'", JOB, model), 2);
	assert_non_null(strstr(out, "--ollama: 'a:b:c' is not an Ollama model "
				    "name"));
	free(out);
	assert_int_equal(th_sh(&out, "%s status 3", JOB), 0);
	assert_non_null(strstr(out, "queued"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_job_registers_the_model),
		cmocka_unit_test(test_second_registration_sends_nothing),
		cmocka_unit_test(test_corrupted_upload_refused),
		cmocka_unit_test(test_no_server_keeps_the_job),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
