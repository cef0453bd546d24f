/* mibera-job version: the versions of mibera and the llama.cpp it links. */
#include <stdio.h>

#include "coordinator/cli/cli.h"
#include "mb_version.h"

int cmd_version(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: mibera-job version\n");
		return 2;
	}
	printf("mibera-job %s (llama.cpp %s)\n", MB_VERSION, MB_LLAMA_VERSION);
	return 0;
}
