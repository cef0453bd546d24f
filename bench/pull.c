/*
 * mb-bench-pull: times mibera's pull of one file over SSH, for bench/run.
 *
 *   mb-bench-pull TARGET KEY KNOWN_HOSTS_LINE REMOTE DEST [STREAMS]
 *
 * Hashes REMOTE (a path this machine can also read: the worker is the
 * loopback sshd) into a manifest of 64 MiB chunks first, untimed, as the
 * worker's manifest step does; then pulls it through TARGET
 * ("user@host:port") with STREAMS streams (default 4) into DEST and prints
 * "SECONDS BYTES STREAMS".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/manifest.h"
#include "coordinator/pull.h"
#include "coordinator/transport.h"

static const char *g_target, *g_key, *g_line;

static int open_one(void *ctx, struct mb_transport **t, char *err,
		    size_t errcap)
{
	struct mb_transport_opts o;

	(void)ctx;
	memset(&o, 0, sizeof(o));
	o.target = g_target;
	o.known_hosts = "";
	o.pinned_key = g_line;
	o.ssh_config = "";
	o.identity = g_key;
	o.no_agent = 1;
	return mb_transport_open(&o, t, err, errcap);
}

int main(int argc, char **argv)
{
	struct mb_manifest *m = NULL;
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct timespec a, b;
	char err[1024];
	int rc;

	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: mb-bench-pull TARGET KEY KNOWN_HOSTS_LINE "
			"REMOTE DEST [STREAMS]\n");
		return 2;
	}
	g_target = argv[1];
	g_key = argv[2];
	g_line = argv[3];
	if (mb_manifest_compute(argv[4], "bench.gguf", MB_MANIFEST_DEFAULT_CHUNK,
				&m) != 0) {
		fprintf(stderr, "mb-bench-pull: cannot hash %s\n", argv[4]);
		return 1;
	}
	memset(&o, 0, sizeof(o));
	o.open = open_one;
	o.streams = argc == 7 ? (int)strtol(argv[6], NULL, 10) : 4;
	o.drop_behind = 1; /* as a job pulls what nothing reads after */
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = open_one(NULL, &o.t, err, sizeof(err));
	if (rc == 0)
		rc = mb_pull_file(&o, argv[4], m, argv[5], &st, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &b);
	mb_transport_free(o.t);
	if (rc != 0) {
		fprintf(stderr, "mb-bench-pull: %s\n", err);
		mb_manifest_free(m);
		return 1;
	}
	printf("%.3f %llu %u\n",
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
	       (unsigned long long)m->size, st.streams);
	mb_manifest_free(m);
	return 0;
}
