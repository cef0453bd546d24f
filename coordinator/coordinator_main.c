/*
 * mibera-coordinator: the daemon that claims queued jobs, leases workers and
 * drives each job's steps over the transports.
 */
#include <stdio.h>
#include <string.h>

#include "mb_version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-coordinator [--once] [--foreground]\n"
		   "       mibera-coordinator --version | --help\n\n"
		   "Runs the mibera job queue: claims queued jobs, drives their "
		   "steps on the\nworkers and records every event in the job "
		   "database.\n\n"
		   "  --once        work until the queue is empty, then exit\n"
		   "  --foreground  stay attached to the terminal, log to "
		   "stderr\n");
}

int main(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("mibera-coordinator %s (llama.cpp %s)\n",
			       MB_VERSION, MB_LLAMA_VERSION);
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "mibera-coordinator: unknown option '%s'\n",
			argv[i]);
		usage(stderr);
		return 2;
	}
	fprintf(stderr, "mibera-coordinator: the scheduler is not built yet\n");
	return 1;
}
