/*
 * mibera-job ollama JOB NAME: registers a finished job's recommended GGUF
 * with the local Ollama server (OLLAMA_HOST, as Ollama reads it) as NAME,
 * and each quant as NAME:<type> when the job made several and NAME has no
 * tag; what submit --ollama NAME does at the end of a job. Prints each
 * stage, then how to run it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/ollama.h"
#include "coordinator/store.h"

static const struct cli_opt opts[] = {
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job ollama", "JOB NAME", 2, 2,
	"Registers a finished job's recommended GGUF with the local Ollama "
	"server as\nNAME (and each quant as NAME:q4_k_m when the job made "
	"several and NAME has\nno tag), through its API: a file the server "
	"has already is not sent again.\nThe server is OLLAMA_HOST's "
	"(default " MB_OLLAMA_DEFAULT ").", opts,
};

static void progress(void *ctx, const char *msg)
{
	(void)ctx;
	printf("%s\n", msg);
	fflush(stdout);
}

int cmd_ollama(int argc, char **argv)
{
	struct mb_ollama_req q;
	struct mb_job_row j;
	struct mb_store *s = NULL;
	struct cli_parse p;
	char dir[4096], err[2048];
	long long id;
	int c, rc;

	cli_parse_init(&p, &spec, argc, argv);
	while ((c = cli_next(&p)) > 0)
		;
	if (c < 0)
		return p.exit;
	if (cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	if (!mb_ollama_name_ok(p.args[1]))
		return cli_usage_error(&spec, "'%s' is not an Ollama model name: "
				       "[namespace/]model[:tag], of letters, "
				       "digits, '_', '-' and '.'", p.args[1]);
	if (cli_open_job("ollama", id, &s, &j) != 0)
		return 1;
	mb_store_close(s);
	if (strcmp(j.state, "succeeded") != 0) {
		fprintf(stderr, "mibera-job ollama: job %lld has not succeeded (it "
			"is %s): only a finished job's files are verified\n", id,
			j.state);
		return 1;
	}
	mb_job_dir("artifacts", id, dir, sizeof(dir));
	memset(&q, 0, sizeof(q));
	q.host = getenv("OLLAMA_HOST");
	q.name = p.args[1];
	q.dir = dir;
	q.progress = progress;
	rc = mb_ollama_register(&q, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job ollama: %s\n", err);
		return 1;
	}
	printf("ready: ollama run %s\n", p.args[1]);
	return 0;
}
