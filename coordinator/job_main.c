/*
 * mibera-job: the command line people use. Subcommands come from the table
 * below (see coordinator/cli/cli.h for how to add one); they talk only to
 * the job database.
 */
#include <stdio.h>
#include <string.h>

#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"

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
	{ "push", cmd_push, "push a finished job's files to a hub repository" },
	{ "ollama", cmd_ollama,
	  "register a finished job's model with the local Ollama server" },
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
	fprintf(f, "  %-10s %s\n", "help", "a command's options (mibera-job help "
		"COMMAND, or COMMAND --help)");
}

static const struct cmd *find(const char *name)
{
	const struct cmd *c;

	for (c = cmds; c->name != NULL; c++)
		if (strcmp(name, c->name) == 0)
			return c;
	return NULL;
}

/* Names an unknown command (with the one meant, when it is a typo) and
 * returns 2. */
static int unknown(const char *name)
{
	const char *names[sizeof(cmds) / sizeof(cmds[0]) + 1], *close;
	size_t n = 0;
	const struct cmd *c;

	for (c = cmds; c->name != NULL; c++)
		names[n++] = c->name;
	names[n++] = "help";
	names[n] = NULL;
	close = cli_closest(name, names);
	if (close != NULL)
		fprintf(stderr, "mibera-job: unknown command '%s'; did you mean "
			"'%s'?\n", name, close);
	else
		fprintf(stderr, "mibera-job: unknown command '%s'\n", name);
	fprintf(stderr, "(mibera-job --help lists the commands)\n");
	return 2;
}

/* mibera-job help [COMMAND [VERB]]: the command's own --help. */
static int help(int argc, char **argv)
{
	const struct cmd *c;
	char *args[4];
	int n = 0;

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	c = find(argv[1]);
	if (c == NULL)
		return unknown(argv[1]);
	if (argc > 3) {
		fprintf(stderr, "usage: mibera-job help [COMMAND [VERB]]\n");
		return 2;
	}
	args[n++] = argv[1];
	if (argc == 3)
		args[n++] = argv[2];
	args[n++] = (char *)"--help";
	args[n] = NULL;
	return c->fn(n, args);
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
	if (strcmp(argv[1], "help") == 0)
		return help(argc - 1, argv + 1);
	if (argv[1][0] == '-') {
		fprintf(stderr, "mibera-job: unknown option '%s'; the options are "
			"--version and --help, then a command's own\n", argv[1]);
		return 2;
	}
	c = find(argv[1]);
	if (c == NULL)
		return unknown(argv[1]);
	return c->fn(argc - 1, argv + 1);
}
