/*
 * mibera-job: the command line people use. Subcommands come from the table
 * below (see coordinator/cli/cli.h for how to add one); they talk only to
 * the job database.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/cli/cli.h"

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct cmd cmds[] = {
	{ "submit", cmd_submit, "queue a model to convert on a worker" },
	{ "status", cmd_status, "the jobs, or one job's steps, and their cost" },
	{ "show", cmd_show, "everything about one job: steps, repairs, artifacts" },
	{ "dashboard", cmd_dashboard, "a live view of workers, jobs and events" },
	{ "logs", cmd_logs, "the events of a job (-f: follow)" },
	{ "cancel", cmd_cancel, "stop a job and its step on the worker" },
	{ "retry", cmd_retry, "queue a failed or cancelled job again" },
	{ "artifacts", cmd_artifacts, "a job's files and their checksums" },
	{ "worker", cmd_worker, "add, list, check or remove workers" },
	{ "inspect", cmd_inspect,
	  "what a model really is, and what its config.json gets wrong" },
	{ "smoke", cmd_smoke,
	  "load GGUF files with llama.cpp on the CPU and generate a little" },
	{ "version", cmd_version, "print the versions of mibera and llama.cpp" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct cmd *c;

	fprintf(f, "usage: mibera-job COMMAND [ARGS...]\n"
		   "       mibera-job --version | --help\n\n"
		   "Turns Hugging Face models into tested GGUF files on "
		   "rented workers.\n\ncommands:\n");
	for (c = cmds; c->name != NULL; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->help);
}

int main(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (c = cmds; c->name != NULL; c++) {
		int i;

		if (strcmp(argv[1], c->name) != 0)
			continue;
		for (i = 2; i < argc; i++)
			if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
				break;
		if (i < argc && i == 2 && argc == 3) {
			/* `CMD --help`: the command's usage, on stdout, exit 0
			 * (every command prints it for an argument it does not
			 * take) */
			char *args[] = { argv[1], (char *)"--help", NULL };

			fflush(stdout);
			dup2(STDOUT_FILENO, STDERR_FILENO);
			c->fn(2, args);
			return 0;
		}
		return c->fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "mibera-job: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
