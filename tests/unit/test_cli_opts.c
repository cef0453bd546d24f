/* Tests coordinator/cli/opts.c and the text helpers of
 * coordinator/cli/common.c: options from a table in any order with the
 * arguments, the errors a person makes named (exit 2), --help (exit 0),
 * the closest name for a typo and none for a guess, and text cut to a
 * column saying it was cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"

static const struct cli_opt opts[] = {
	{ "follow", 'f', NULL, NULL, "go on" },
	{ "step", 0, "STEP", NULL, "only that step's" },
	{ "layout", 0, "LAYOUT", "native|split", "how" },
	{ "json", 0, NULL, NULL, "JSON" },
	{ "hidden", 0, NULL, NULL, NULL },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = { "mibera-job t", "JOB", 1, 1, "About.",
				      opts };

struct got {
	int follow, json, hidden, rc, exit, nargs;
	char step[32], layout[32], arg0[32];
};

/* Parses the words of line (split on spaces) and says what came out,
 * with stderr (the messages) in err. */
static struct got parse(const char *line, char *err, size_t errcap)
{
	char buf[256], *argv[16], *save = NULL, *w;
	struct cli_parse p;
	struct got g;
	int argc = 0, c, fd, saved;
	FILE *tmp = tmpfile();

	memset(&g, 0, sizeof(g));
	snprintf(buf, sizeof(buf), "t %s", line);
	for (w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(2);
	fd = fileno(tmp);
	dup2(fd, 2);
	cli_parse_init(&p, &spec, argc, argv);
	while ((c = cli_next(&p)) > 0) {
		if (cli_is(&p, "follow"))
			g.follow = 1;
		else if (cli_is(&p, "json"))
			g.json = 1;
		else if (cli_is(&p, "hidden"))
			g.hidden = 1;
		else if (cli_is(&p, "step"))
			snprintf(g.step, sizeof(g.step), "%s", p.val);
		else if (cli_is(&p, "layout"))
			snprintf(g.layout, sizeof(g.layout), "%s", p.val);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	g.rc = c;
	g.exit = c < 0 ? p.exit : -1;
	if (c == 0) {
		g.nargs = p.nargs;
		snprintf(g.arg0, sizeof(g.arg0), "%s", p.args[0]);
	}
	rewind(tmp);
	err[fread(err, 1, errcap - 1, tmp)] = '\0';
	fclose(tmp);
	return g;
}

static void test_options_in_any_order(void **state)
{
	char err[1024];
	struct got g;

	(void)state;
	g = parse("--step convert 7 -f --json", err, sizeof(err));
	assert_int_equal(g.rc, 0);
	assert_true(g.follow && g.json && !g.hidden);
	assert_string_equal(g.step, "convert");
	assert_string_equal(g.arg0, "7");
	g = parse("7 --layout=split --hidden", err, sizeof(err));
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.layout, "split");
	assert_true(g.hidden);
	/* after --, a word that starts with '-' is an argument */
	g = parse("-- -3", err, sizeof(err));
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.arg0, "-3");
}

static void test_errors_are_named(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "7 --jsno", "mibera-job t: unknown option '--jsno'; did you mean "
		  "'--json'?" },
		{ "7 --bogus", "mibera-job t: unknown option '--bogus'\n" },
		{ "7 -x", "unknown option '-x'" },
		{ "7 --step", "--step needs a value (STEP)" },
		{ "7 --json=1", "--json takes no value" },
		{ "7 --layout flat", "--layout is native or split, not 'flat'" },
		{ "", "missing JOB" },
		{ "7 8", "unexpected argument '8'" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[1024];
		struct got g = parse(cases[i].line, err, sizeof(err));

		if (g.rc != -1 || g.exit != 2 || strstr(err, cases[i].want) == NULL)
			fail_msg("'%s': rc %d exit %d: %s", cases[i].line, g.rc,
				 g.exit, err);
		/* and where to read more */
		assert_non_null(strstr(err, "usage: mibera-job t [OPTIONS] JOB\n"));
	}
}

static void test_help_lists_the_table(void **state)
{
	char text[4096];
	FILE *f = tmpfile();
	size_t n;

	(void)state;
	assert_non_null(f);
	cli_usage(&spec, f);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "usage: mibera-job t [OPTIONS] JOB\n\nAbout.\n"));
	assert_non_null(strstr(text, "\n  -f, --follow "));
	assert_non_null(strstr(text, "\n      --step STEP "));
	assert_non_null(strstr(text, "\n      --layout native|split "));
	{
		/* every help text starts in one column */
		const char *a = strstr(text, "go on\n"), *b = strstr(text, "only that");
		const char *c = strstr(text, "how\n"), *la, *lb, *lc;

		assert_non_null(a);
		assert_non_null(b);
		assert_non_null(c);
		for (la = a; la[-1] != '\n'; la--)
			;
		for (lb = b; lb[-1] != '\n'; lb--)
			;
		for (lc = c; lc[-1] != '\n'; lc--)
			;
		assert_int_equal(a - la, b - lb);
		assert_int_equal(a - la, c - lc);
	}
	assert_non_null(strstr(text, "  -h, --help "));
	/* an option without help is accepted, not listed */
	assert_null(strstr(text, "hidden"));
}

static void test_closest(void **state)
{
	static const char *const cmds[] = { "submit", "status", "show", "logs",
					    "list", "smoke", NULL };

	(void)state;
	assert_string_equal(cli_closest("stauts", cmds), "status");
	assert_string_equal(cli_closest("sumbit", cmds), "submit");
	assert_string_equal(cli_closest("lgos", cmds), "logs");
	/* a guess is not a typo; two as close are not one meant */
	assert_null(cli_closest("bogus", cmds));
	assert_null(cli_closest("xyz", cmds));
	{
		static const char *const two[] = { "add", "odd", NULL };

		assert_null(cli_closest("edd", two));
		assert_string_equal(cli_closest("aad", two), "add");
	}
}

static void test_fit_says_it_cut(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(cli_fit("short", 10, 0, buf, sizeof(buf)), "short");
	assert_string_equal(cli_fit("/models/phi-4-finetune", 12, 0, buf,
				    sizeof(buf)), "/models/p...");
	assert_string_equal(cli_fit("/models/phi-4-finetune", 12, 1, buf,
				    sizeof(buf)), "...-finetune");
	/* never in the middle of a character, never an escape */
	assert_string_equal(cli_fit("mod\xc3\xa8le-long", 7, 0, buf, sizeof(buf)),
			    "mod...");
	assert_string_equal(cli_fit("a\x1b[2Jb", 10, 0, buf, sizeof(buf)), "a?[2Jb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_in_any_order),
		cmocka_unit_test(test_errors_are_named),
		cmocka_unit_test(test_help_lists_the_table),
		cmocka_unit_test(test_closest),
		cmocka_unit_test(test_fit_says_it_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
