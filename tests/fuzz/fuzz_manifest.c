/*
 * libFuzzer target for the manifests a worker sends: one file's manifest
 * and the list of a job's artifacts, both parsed from the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_manifest_list *l = NULL;
	struct mb_manifest *m = NULL;
	char err[256];
	size_t i;

	if (mb_manifest_from_json((const char *)data, size, &m, err,
				  sizeof(err)) == 0) {
		uint64_t off, len;

		/* a parsed manifest's chunks must tile its size exactly */
		for (i = 0; i < m->nchunks; i++)
			mb_manifest_chunk(m, i, &off, &len);
		mb_manifest_free(m);
	}
	if (mb_manifest_list_from_json((const char *)data, size, &l, err,
				       sizeof(err)) == 0) {
		for (i = 0; i < l->n; i++)
			mb_manifest_list_find(l, l->files[i]->name);
		mb_manifest_list_free(l);
	}
	return 0;
}
