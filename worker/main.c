/*
 * mibera-worker: the agent that runs on a worker box. One verb per job step,
 * plus verbs that are useful on their own (convert, fetch, quantize).
 * Verbs come from the table below; add one by writing its function and a
 * row.
 */
#include <stdio.h>
#include <string.h>

#include "mb_version.h"
#include "worker/verbs.h"

struct verb {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct verb verbs[] = {
	{ "convert", verb_convert,
	  "convert a safetensors model directory to GGUF" },
	{ "fetch", verb_fetch, "download a model from the hub, resumable" },
	{ "quantize", verb_quantize, "quantize a GGUF with llama.cpp" },
	{ "imatrix", verb_imatrix, "importance matrix over a calibration text" },
	{ "fidelity", verb_fidelity, "KL divergence of quants from their F16" },
	{ "manifest", verb_manifest, "checksum a directory's GGUF files" },
	{ "push", verb_push, "upload GGUF files to a hub repository, one commit" },
	{ "hello", verb_hello, "what this worker is and has, as JSON" },
	{ "start", verb_start, "run a step detached (spec on stdin)" },
	{ "follow", verb_follow, "stream a step's events from an offset" },
	{ "status", verb_status, "the state of a job's steps" },
	{ "cancel", verb_cancel, "end a job's running step" },
	{ "cleanup", verb_cleanup, "remove a job's directory" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct verb *v;

	fprintf(f, "usage: mibera-worker VERB [ARGS...]\n"
		   "       mibera-worker --version | --help\n\n"
		   "The mibera agent on a worker box: downloads, converts, "
		   "quantizes and checksums\nmodels for the coordinator.\n");
	if (verbs[0].name != NULL)
		fprintf(f, "\nverbs:\n");
	for (v = verbs; v->name != NULL; v++)
		fprintf(f, "  %-10s %s\n", v->name, v->help);
	fprintf(f, "\nmibera-worker VERB --help tells more.\n");
}

int main(int argc, char **argv)
{
	const struct verb *v;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0) {
		fputs(MB_VERSION_TEXT("mibera-worker"), stdout);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (v = verbs; v->name != NULL; v++)
		if (strcmp(argv[1], v->name) == 0)
			return v->fn(argc - 1, argv + 1);
	fprintf(stderr, "mibera-worker: unknown verb '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
