/* model: runs the test model generator, tests/fixtures/mkmodel. */
#include "model.h"

#include "th.h"

#include <stdio.h>

#define MODEL_MAX_ARGS 64

int th_mkmodel(const char *out_dir, const char *preset,
	       const char *const extra[])
{
	const char *argv[MODEL_MAX_ARGS];
	int argc = 0, rc;

	argv[argc++] = MB_PYTHON;
	argv[argc++] = MB_SOURCE_DIR "/tests/fixtures/mkmodel";
	argv[argc++] = "--preset";
	argv[argc++] = preset;
	argv[argc++] = "--out";
	argv[argc++] = out_dir;
	for (; extra != NULL && *extra != NULL; extra++) {
		if (argc + 1 >= MODEL_MAX_ARGS) {
			fprintf(stderr, "th_mkmodel: too many arguments\n");
			return -1;
		}
		argv[argc++] = *extra;
	}
	argv[argc] = NULL;

	/* th_run takes char *const[] as execvp does; it writes nothing. */
	rc = th_run((char *const *)(void *)argv);
	if (rc < 0) {
		fprintf(stderr, "th_mkmodel: mkmodel --preset %s could not run "
			"or was killed\n", preset);
		return -1;
	}
	if (rc != 0) {
		fprintf(stderr, "th_mkmodel: mkmodel --preset %s --out %s "
			"exited with %d\n", preset, out_dir, rc);
		return -1;
	}
	return 0;
}
