/* opts: a command's option table, parsed with getopt_long and printed as
 * its usage (see opts.h). */
#include "coordinator/cli/opts.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's value for table entry i: above any letter, ':' and '?' */
#define KEY_BASE 256

void cli_parse_init(struct cli_parse *p, const struct cli_spec *spec,
		    int argc, char **argv)
{
	size_t n = 0, k = 0, i;

	memset(p, 0, sizeof(*p));
	p->spec = spec;
	p->argc = argc;
	p->argv = argv;
	/* ':' first: a missing value is told apart from an unknown option */
	p->shorts[k++] = ':';
	for (i = 0; spec->opts != NULL && spec->opts[i].name != NULL; i++) {
		const struct cli_opt *o = &spec->opts[i];

		assert(i < CLI_MAX_OPTS);
		p->lopts[n].name = o->name;
		p->lopts[n].has_arg = o->arg ? required_argument : no_argument;
		p->lopts[n].flag = NULL;
		p->lopts[n].val = KEY_BASE + (int)i;
		n++;
		if (o->letter != 0) {
			p->shorts[k++] = (char)o->letter;
			if (o->arg)
				p->shorts[k++] = ':';
		}
	}
	p->lopts[n].name = "help";
	p->lopts[n].has_arg = no_argument;
	p->lopts[n].val = 'h';
	p->shorts[k++] = 'h';
	p->shorts[k] = '\0';
	/* 0, not 1: glibc starts over entirely (a test calls commands one
	 * after another in one process) */
	optind = 0;
	opterr = 0;
}

/* "native|split" as "native or split", "a|b|c" as "a, b or c". */
static void choices_words(const char *choices, char *out, size_t cap)
{
	size_t o = 0;
	const char *c, *last = strrchr(choices, '|');

	for (c = choices; *c && o + 5 < cap; c++) {
		if (*c != '|') {
			out[o++] = *c;
			continue;
		}
		if (c == last) {
			memcpy(out + o, " or ", 4);
			o += 4;
		} else {
			memcpy(out + o, ", ", 2);
			o += 2;
		}
	}
	out[o] = '\0';
}

static int in_choices(const char *choices, const char *v)
{
	size_t n = strlen(v);
	const char *c = choices;

	while (c != NULL) {
		const char *bar = strchr(c, '|');
		size_t len = bar ? (size_t)(bar - c) : strlen(c);

		if (len == n && strncmp(c, v, n) == 0)
			return 1;
		c = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* The table entry getopt_long returned c for; NULL for none. */
static const struct cli_opt *opt_of(const struct cli_spec *spec, int c)
{
	size_t i;

	if (c >= KEY_BASE)
		return &spec->opts[c - KEY_BASE];
	for (i = 0; spec->opts[i].name != NULL; i++)
		if (spec->opts[i].letter == c)
			return &spec->opts[i];
	return NULL;
}

static void unknown_option(struct cli_parse *p)
{
	const struct cli_spec *spec = p->spec;
	const char *names[CLI_MAX_OPTS + 2], *close;
	char word[64], shown[80];
	size_t i, n = 0;

	if (optopt != 0 && optopt < KEY_BASE) {
		/* a short one: -x */
		snprintf(shown, sizeof(shown), "-%c", optopt);
		word[0] = '\0';
	} else {
		const char *a = p->argv[optind - 1];

		snprintf(shown, sizeof(shown), "%.*s", (int)strcspn(a, "="), a);
		snprintf(word, sizeof(word), "%s", shown + strspn(shown, "-"));
	}
	for (i = 0; spec->opts[i].name != NULL; i++)
		names[n++] = spec->opts[i].name;
	names[n++] = "help";
	names[n] = NULL;
	close = word[0] ? cli_closest(word, names) : NULL;
	if (close != NULL)
		p->exit = cli_usage_error(spec, "unknown option '%s'; did you "
					  "mean '--%s'?", shown, close);
	else
		p->exit = cli_usage_error(spec, "unknown option '%s'", shown);
}

int cli_next(struct cli_parse *p)
{
	const struct cli_spec *spec = p->spec;
	int c;

	p->opt = NULL;
	p->val = NULL;
	c = getopt_long(p->argc, p->argv, p->shorts, p->lopts, NULL);
	if (c == -1) {
		p->args = p->argv + optind;
		p->nargs = p->argc - optind;
		if (p->nargs < spec->min_args) {
			p->exit = cli_usage_error(spec, "missing %s", spec->args
						  ? spec->args : "arguments");
			return -1;
		}
		if (spec->max_args >= 0 && p->nargs > spec->max_args) {
			p->exit = cli_usage_error(spec, "unexpected argument '%s'",
						  p->args[spec->max_args]);
			return -1;
		}
		return 0;
	}
	if (c == 'h') {
		cli_usage(spec, stdout);
		p->exit = 0;
		return -1;
	}
	if (c == ':') {
		const struct cli_opt *o = opt_of(spec, optopt);

		p->exit = o ? cli_usage_error(spec, "--%s needs a value (%s)",
					      o->name, o->arg)
			    : cli_usage_error(spec, "an option needs a value");
		return -1;
	}
	if (c == '?') {
		if (optopt >= KEY_BASE) {
			/* --flag=value */
			p->exit = cli_usage_error(spec, "--%s takes no value",
						  spec->opts[optopt - KEY_BASE].name);
			return -1;
		}
		unknown_option(p);
		return -1;
	}
	p->opt = opt_of(spec, c);
	assert(p->opt != NULL);
	p->val = p->opt->arg ? optarg : NULL;
	if (p->opt->choices != NULL && !in_choices(p->opt->choices, p->val)) {
		char words[128];

		choices_words(p->opt->choices, words, sizeof(words));
		p->exit = cli_usage_error(spec, "--%s is %s, not '%s'",
					  p->opt->name, words, p->val);
		return -1;
	}
	return 1;
}

int cli_is(const struct cli_parse *p, const char *name)
{
	return p->opt != NULL && strcmp(p->opt->name, name) == 0;
}

int cli_path_given(const struct cli_parse *p)
{
	if (p->val != NULL && p->val[0] != '\0')
		return 0;
	return cli_usage_error(p->spec, "--%s needs a path, not '' (leave "
			       "--%s out for the default)", p->opt->name,
			       p->opt->name);
}

static void synopsis(const struct cli_spec *spec, FILE *f)
{
	int has_opts = spec->opts != NULL && spec->opts[0].name != NULL;

	fprintf(f, "usage: %s%s%s%s\n", spec->cmd, has_opts ? " [OPTIONS]" : "",
		spec->args ? " " : "", spec->args ? spec->args : "");
}

/* Writes help after an option's column (width columns from the left
 * margin), wrapped at 79 columns. */
static void wrapped(FILE *f, int at, const char *help)
{
	int room = 79 - at;

	if (room < 30)
		room = 30;
	while ((int)strlen(help) > room) {
		int cut = room;

		while (cut > 0 && help[cut] != ' ')
			cut--;
		if (cut == 0)
			break;
		fprintf(f, "%.*s\n%*s", cut, help, at, "");
		help += cut + 1;
	}
	fprintf(f, "%s\n", help);
}

void cli_usage(const struct cli_spec *spec, FILE *f)
{
	char left[128];
	size_t i;
	int width = 10, pass;

	synopsis(spec, f);
	if (spec->about != NULL)
		fprintf(f, "\n%s\n", spec->about);
	fprintf(f, "\noptions:\n");
	/* two passes: the widest option (up to 28 columns) sets where every
	 * help text starts; a wider one has its help on the next line. Long
	 * names line up whether or not they have a letter, as GNU tools do. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; spec->opts != NULL && spec->opts[i].name != NULL; i++) {
			const struct cli_opt *o = &spec->opts[i];
			char letter[8] = "    ";
			int n;

			if (o->help == NULL)
				continue;
			if (o->letter != 0)
				snprintf(letter, sizeof(letter), "-%c, ", o->letter);
			n = snprintf(left, sizeof(left), "%s--%s%s%s", letter,
				     o->name, o->arg ? " " : "",
				     o->choices ? o->choices : o->arg ? o->arg : "");
			if (pass == 0) {
				if (n > width && n <= 28)
					width = n;
				continue;
			}
			if (n > width)
				fprintf(f, "  %s\n  %*s  ", left, width, "");
			else
				fprintf(f, "  %-*s  ", width, left);
			wrapped(f, width + 4, o->help);
		}
	}
	fprintf(f, "  %-*s  %s\n", width, "-h, --help", "print this help");
}

int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", spec->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	synopsis(spec, stderr);
	fprintf(stderr, "(%s --help tells more)\n", spec->cmd);
	return 2;
}

/* The optimal string alignment distance: insertions, deletions,
 * substitutions and swaps of two neighbours, each 1. Words here are
 * short (names of options and commands); longer ones count as far. */
static int distance(const char *a, const char *b)
{
	int d[34][34];
	int n = (int)strlen(a), m = (int)strlen(b), i, j;

	if (n > 32 || m > 32)
		return 99;
	for (i = 0; i <= n; i++)
		d[i][0] = i;
	for (j = 0; j <= m; j++)
		d[0][j] = j;
	for (i = 1; i <= n; i++)
		for (j = 1; j <= m; j++) {
			int cost = a[i - 1] != b[j - 1], v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[n][m];
}

const char *cli_closest(const char *word, const char *const *cands)
{
	const char *best = NULL;
	int bestd = 99, ties = 0;
	size_t i;

	for (i = 0; cands[i] != NULL; i++) {
		int d = distance(word, cands[i]);

		if (d < bestd) {
			bestd = d;
			best = cands[i];
			ties = 0;
		} else if (d == bestd) {
			ties++;
		}
	}
	/* one slip in a short word, two in a longer one: "logs" is not what
	 * "bogus" meant */
	if (best == NULL || ties > 0 || bestd > (strlen(word) <= 5 ? 1 : 2))
		return NULL;
	return best;
}
