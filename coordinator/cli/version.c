/* mibera-job version: the versions of mibera and of the llama.cpp it
 * links, and what built it, as llama.cpp's own tools print them. */
#include <stdio.h>

#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "mb_version.h"

static const struct cli_opt opts[] = {
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job version", NULL, 0, 0,
	"Prints the versions of mibera and of the llama.cpp it links, and the "
	"compiler\nand processor it was built for (the same as "
	"mibera-job --version).", opts,
};

int cmd_version(int argc, char **argv)
{
	struct cli_parse p;
	int c;

	cli_parse_init(&p, &spec, argc, argv);
	while ((c = cli_next(&p)) > 0)
		;
	if (c < 0)
		return p.exit;
	fputs(MB_VERSION_TEXT("mibera-job"), stdout);
	return 0;
}
