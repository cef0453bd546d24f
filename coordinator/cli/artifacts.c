/*
 * mibera-job artifacts JOB: the files a job produced, where they are, their
 * checksums, and what the smoke test measured.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "coordinator/cli/cli.h"
#include "coordinator/store.h"

int cmd_artifacts(int argc, char **argv)
{
	struct mb_manifest_list *ml = NULL;
	char home[4096], path[4300], err[512], *json = NULL;
	long long id;
	size_t len, i;

	if (argc != 2 || cli_job_id(argv[1], &id) != 0) {
		fprintf(stderr, "usage: mibera-job artifacts JOB\n");
		return 2;
	}
	mb_store_home(home, sizeof(home));
	snprintf(path, sizeof(path), "%s/artifacts/job-%lld/manifest.json", home, id);
	if (mb_read_file(path, 16u << 20, &json, &len) != 0 ||
	    mb_manifest_list_from_json(json, len, &ml, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job artifacts: job %lld has no artifacts "
			"here yet (%s)\n", id, path);
		free(json);
		return 1;
	}
	printf("%s/artifacts/job-%lld/\n", home, id);
	for (i = 0; i < ml->n; i++) {
		char hex[MB_SHA256_HEX];

		mb_sha256_hex(ml->files[i]->sha256, hex);
		printf("  %-40s %12llu  sha256 %s\n", ml->files[i]->name,
		       (unsigned long long)ml->files[i]->size, hex);
	}
	printf("  provenance.json, manifest.json\n");
	mb_manifest_list_free(ml);
	free(json);
	return 0;
}
