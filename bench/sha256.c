/*
 * mb-bench-sha256 FILE [--manifest CHUNK]: hashes FILE the way mibera does
 * (mb_sha256_file, or a full chunk manifest) and prints
 * "<sha256> <bytes> <seconds>" for bench/run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/manifest.h"
#include "common/sha256.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint8_t d[MB_SHA256_LEN];
	char hex[MB_SHA256_HEX];
	uint64_t size = 0;
	double t0, t1;
	int rc;

	if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--manifest") == 0)) {
		fprintf(stderr, "usage: mb-bench-sha256 FILE [--manifest CHUNK]\n");
		return 2;
	}
	t0 = now();
	if (argc == 4) {
		struct mb_manifest *m = NULL;
		char *end;
		unsigned long long cs = strtoull(argv[3], &end, 10);

		if (*argv[3] == '\0' || *end != '\0') {
			fprintf(stderr, "mb-bench-sha256: bad chunk size '%s'\n",
				argv[3]);
			return 2;
		}
		rc = mb_manifest_compute(argv[1], "bench", cs, &m);
		if (rc == 0) {
			memcpy(d, m->sha256, sizeof(d));
			size = m->size;
		}
		mb_manifest_free(m);
	} else {
		rc = mb_sha256_file(argv[1], d, &size);
	}
	t1 = now();
	if (rc != 0) {
		fprintf(stderr, "mb-bench-sha256: cannot hash '%s': %s\n",
			argv[1], mb_strerror(rc));
		return 1;
	}
	mb_sha256_hex(d, hex);
	printf("%s %llu %.6f\n", hex, (unsigned long long)size, t1 - t0);
	return 0;
}
