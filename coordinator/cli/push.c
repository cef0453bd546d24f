/*
 * mibera-job push JOB ORG/NAME [--private]: pushes a finished job's
 * quants, model card and provenance from this machine's copy
 * ($MIBERA_HOME/artifacts/job-N) to a model repository on the hub, in one
 * commit, by running `mibera-worker push` here (the program beside this
 * one): the same upload a job's push step runs on its worker. Each file
 * must still match the job's manifest. The token comes from HF_TOKEN or
 * the file `hf auth login` wrote.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/manifest.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/store.h"

static const struct cli_opt opts[] = {
	{ "private", 0, NULL, NULL, "create the repository private" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job push", "JOB ORG/NAME", 2, 2,
	"Pushes a finished job's quants, model card and provenance to a model "
	"repository\non the hub in one commit (HF_TOKEN with write access). "
	"submit --push does it\nfrom the worker as part of the job.", opts,
};

/* The files of the job's manifest, then the card and provenance, as
 * "a,b,c" into b. */
static int file_list(const char *dir, struct mb_buf *b, char *err,
		     size_t errcap)
{
	struct mb_manifest_list *ml = NULL;
	char path[4300], *text = NULL;
	size_t len, i;
	int rc;

	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	rc = mb_read_file(path, 256u << 20, &text, &len);
	if (rc == 0)
		rc = mb_manifest_list_from_json(text, len, &ml, err, errcap);
	else
		snprintf(err, errcap, "cannot read '%.300s': %s", path,
			 mb_strerror(rc));
	free(text);
	if (rc != 0)
		return rc;
	for (i = 0; i < ml->n; i++)
		mb_buf_addf(b, "%s,", ml->files[i]->name);
	mb_buf_adds(b, "README.md,provenance.json");
	mb_manifest_list_free(ml);
	return mb_buf_error(b);
}

int cmd_push(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	struct cli_parse p;
	struct mb_buf files;
	char dir[4096], self[4096], worker[4200], err[512];
	const char *args[9];
	long long id;
	int k, n = 0, priv = 0, st;
	pid_t pid;

	cli_parse_init(&p, &spec, argc, argv);
	while ((k = cli_next(&p)) > 0)
		if (cli_is(&p, "private"))
			priv = 1;
	if (k < 0)
		return p.exit;
	if (cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	if (!mb_hub_repo_id_ok(p.args[1]))
		return cli_usage_error(&spec, "'%s' is not a repository on the "
				       "hub (org/name)", p.args[1]);
	if (cli_open_job("push", id, &s, &j) != 0)
		return 1;
	{
		/* a job that failed at its own push has every file here,
		 * verified and smoke-tested */
		struct mb_step_row ps, pl;
		int at_push = strcmp(j.state, "failed") == 0 &&
			      mb_store_step_get(s, id, "push", &ps) == 0 &&
			      strcmp(ps.state, "failed") == 0 &&
			      mb_store_step_get(s, id, "pull", &pl) == 0 &&
			      strcmp(pl.state, "done") == 0;

		mb_store_close(s);
		if (strcmp(j.state, "succeeded") != 0 && !at_push) {
			fprintf(stderr, "mibera-job push: job %lld is %s: only a "
				"job whose files were pulled and checked has "
				"files to push\n", id, j.state);
			return 1;
		}
	}
	mb_job_dir("artifacts", id, dir, sizeof(dir));
	mb_buf_init(&files, 1 << 16);
	if (file_list(dir, &files, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job push: %s\n", err);
		mb_buf_release(&files);
		return 1;
	}
	if (mb_self_exe(self, sizeof(self)) != 0) {
		mb_buf_release(&files);
		return 1;
	}
	snprintf(worker, sizeof(worker), "%s/mibera-worker", dirname(self));
	args[n++] = worker;
	args[n++] = "push";
	args[n++] = dir;
	args[n++] = p.args[1];
	args[n++] = "--files";
	args[n++] = files.data;
	if (priv)
		args[n++] = "--private";
	args[n] = NULL;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execv(worker, (char *const *)args);
		fprintf(stderr, "mibera-job push: cannot run '%s': %s\n", worker,
			strerror(errno));
		_exit(127);
	}
	mb_buf_release(&files);
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		fprintf(stderr, "mibera-job push: cannot run '%s'\n", worker);
		return 1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	printf("pushed job %lld to https://huggingface.co/%s\n", id, p.args[1]);
	return 0;
}
