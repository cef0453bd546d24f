/*
 * opts: one table per command that both parses its options (getopt_long,
 * with GNU argument permutation: options and arguments in any order) and
 * writes its usage text, so the two never disagree. A command declares
 *
 *   static const struct cli_opt opts[] = {
 *           { "json", 0, NULL, NULL, "print JSON (proto/show.schema.json)" },
 *           { "step", 0, "STEP", NULL, "only that step's events" },
 *           { "follow", 'f', NULL, NULL, "go on until the job ends" },
 *           { NULL, 0, NULL, NULL, NULL },
 *   };
 *   static const struct cli_spec spec = { "mibera-job logs", "JOB", 1, 1,
 *           "The events of a job ...", opts };
 *
 * and loops on cli_next(), which gives each option (p.opt, its value in
 * p.val) in turn; the command tells them apart by name. --help (-h)
 * is every command's: its usage on stdout, exit 0. An unknown option, a
 * missing value, a value outside an option's choices or the wrong number
 * of arguments is named on stderr, with the closest option when one is
 * close, and the command exits 2.
 */
#ifndef MB_CLI_OPTS_H
#define MB_CLI_OPTS_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/* Options a table holds at most (one more is --help). */
#define CLI_MAX_OPTS 40

struct cli_opt {
	const char *name;	/* the long name, without "--" */
	int letter;		/* a short form ('f' for -f), 0: none */
	const char *arg;	/* the value's name ("NAME"), NULL: a flag */
	const char *choices;	/* "native|split": the values allowed, NULL: any */
	const char *help;	/* one line; NULL: accepted, not listed */
};

struct cli_spec {
	const char *cmd;	/* "mibera-job submit": how errors start */
	const char *args;	/* the arguments in the synopsis ("SOURCE",
				   "[JOB]", "FILE.gguf..."), NULL: none */
	int min_args, max_args;	/* how many; max_args -1: no limit */
	const char *about;	/* what it does, for --help; NULL: nothing */
	const struct cli_opt *opts; /* ends with a NULL name */
};

struct cli_parse {
	const struct cli_spec *spec;
	int argc;
	char **argv;		/* argv[0] is the command's name */
	const struct cli_opt *opt; /* the option cli_next just gave */
	const char *val;	/* its value (NULL for a flag) */
	char **args;		/* after the options: the arguments */
	int nargs;
	int exit;		/* when cli_next returns -1: the exit code */
	struct option lopts[CLI_MAX_OPTS + 2];
	char shorts[3 * CLI_MAX_OPTS + 8];
};

/* Starts parsing argv (argc entries, argv[0] the command) against spec.
 * argv is reordered (options first) as getopt_long does. */
void cli_parse_init(struct cli_parse *p, const struct cli_spec *spec,
		    int argc, char **argv);

/* The next option: 1 with it in p->opt (its value in p->val), 0 when the options are over and the number of arguments is right
 * (p->args, p->nargs), -1 when the command must end now with p->exit:
 * 0 after --help printed the usage, 2 after a usage error was named on
 * stderr. */
int cli_next(struct cli_parse *p);

/* Whether the option cli_next just gave is the one called name. */
int cli_is(const struct cli_parse *p, const char *name);

/* Writes the usage of spec (synopsis, about, each option with its help)
 * to f. */
void cli_usage(const struct cli_spec *spec, FILE *f);

/* Names a usage error of spec's command on stderr ("mibera-job submit:
 * MESSAGE" and where to read more) and returns 2, the exit code. */
int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* For an option whose value is a path: 0 when the value cli_next just
 * gave is one, else names the empty value ('' never means the default,
 * which is what leaving the option out gives) and returns 2. */
int cli_path_given(const struct cli_parse *p);

/* The candidate closest to word when one is close enough to be a typo
 * (an edit distance of 1 for a word of up to 5 letters, 2 for a longer
 * one; a swap of neighbours is 1) and no other is as close; NULL
 * otherwise. cands ends with NULL. */
const char *cli_closest(const char *word, const char *const *cands);

#endif
