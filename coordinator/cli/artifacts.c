/*
 * mibera-job artifacts JOB [--json]: the files a job produced, where they
 * are and their checksums, as the manifest pulled with them lists them.
 * --json prints the same as proto/artifacts.schema.json (version 1).
 * A set of parts (--split-max-size) is one artifact made of its parts:
 * listed under its name, each part with its size and checksum. The files
 * mibera writes beside them (the manifest, provenance.json, the Ollama
 * Modelfile and the model card) follow, each with its kind; --json has
 * their names in "sidecars" and each with its kind and size in
 * "sidecar_files".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "common/splitset.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/store.h"

static const struct cli_opt opts[] = {
	{ "json", 0, NULL, NULL, "print JSON (proto/artifacts.schema.json)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job artifacts", "JOB", 1, 1,
	"The files a job produced, where they are, and their sizes and "
	"checksums.", opts,
};

/* The files written beside the GGUFs, as far as a job has them. */
static const struct sidecar {
	const char *name, *kind, *what;
} sidecars[] = {
	{ "manifest.json", "manifest", "each file's size and checksums" },
	{ "provenance.json", "provenance", "what was made from what, and how" },
	{ "Modelfile", "modelfile", "for ollama create" },
	{ "README.md", "model-card", "the model card" },
};
#define NSIDECARS (sizeof(sidecars) / sizeof(sidecars[0]))

/* The size of sidecar k in dir: 0, or -1 when the job has none. */
static int sidecar_size(const char *dir, size_t k, unsigned long long *size)
{
	char path[4400];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, sidecars[k].name);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	*size = (unsigned long long)st.st_size;
	return 0;
}

static void print_json(long long id, const char *dir,
		       const struct mb_manifest_list *ml)
{
	unsigned long long size;
	size_t k, n;
	struct mb_buf b;
	size_t i;

	mb_buf_init(&b, 16u << 20);
	mb_buf_addf(&b, "{\"version\":1,\"job\":%lld,\"dir\":", id);
	mb_json_quote(&b, dir);
	mb_buf_adds(&b, ",\"files\":[");
	for (i = 0; i < ml->n; i++) {
		char hex[MB_SHA256_HEX];

		mb_sha256_hex(ml->files[i]->sha256, hex);
		mb_buf_adds(&b, i ? ",{\"name\":" : "{\"name\":");
		mb_json_quote(&b, ml->files[i]->name);
		mb_buf_addf(&b, ",\"size\":%llu,\"sha256\":\"%s\"",
			    (unsigned long long)ml->files[i]->size, hex);
		{
			char whole[512];
			size_t stem;
			unsigned no, count;

			if (mb_splitset_parse_name(ml->files[i]->name, &stem, &no,
						   &count)) {
				mb_splitset_artifact_name(ml->files[i]->name,
							  whole, sizeof(whole));
				mb_buf_adds(&b, ",\"artifact\":");
				mb_json_quote(&b, whole);
				mb_buf_addf(&b, ",\"part\":%u,\"parts\":%u",
					    no + 1, count);
			}
		}
		mb_buf_adds(&b, "}");
	}
	mb_buf_adds(&b, "],\"sidecars\":[");
	for (k = 0, n = 0; k < NSIDECARS; k++)
		if (sidecar_size(dir, k, &size) == 0)
			mb_buf_addf(&b, "%s\"%s\"", n++ ? "," : "",
				    sidecars[k].name);
	mb_buf_adds(&b, "],\"sidecar_files\":[");
	for (k = 0, n = 0; k < NSIDECARS; k++)
		if (sidecar_size(dir, k, &size) == 0)
			mb_buf_addf(&b, "%s{\"name\":\"%s\",\"kind\":\"%s\","
				    "\"size\":%llu}", n++ ? "," : "",
				    sidecars[k].name, sidecars[k].kind, size);
	mb_buf_adds(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	mb_buf_release(&b);
}

int cmd_artifacts(int argc, char **argv)
{
	struct mb_manifest_list *ml = NULL;
	struct cli_parse p;
	char dir[4096], path[4300], err[512], *json = NULL;
	long long id;
	size_t len, i;
	int c, as_json = 0;

	cli_parse_init(&p, &spec, argc, argv);
	while ((c = cli_next(&p)) > 0)
		if (cli_is(&p, "json"))
			as_json = 1;
	if (c < 0)
		return p.exit;
	if (cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	mb_job_dir("artifacts", id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	if (mb_read_file(path, 16u << 20, &json, &len) != 0 ||
	    mb_manifest_list_from_json(json, len, &ml, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job artifacts: job %lld has no artifacts "
			"here yet (%s)\n", id, path);
		free(json);
		return 1;
	}
	if (as_json) {
		print_json(id, dir, ml);
	} else {
		printf("%s/\n", dir);
		for (i = 0; i < ml->n; i++) {
			char hex[MB_SHA256_HEX], safe[512], whole[512];
			size_t stem, k;
			unsigned no, count;
			uint64_t total = 0;
			int part = mb_splitset_parse_name(ml->files[i]->name,
							  &stem, &no, &count);

			if (part && no == 0) {
				/* the set's heading: its name, parts and size */
				mb_splitset_artifact_name(ml->files[i]->name, whole,
							  sizeof(whole));
				for (k = 0; k < ml->n; k++) {
					char w2[512];

					mb_splitset_artifact_name(ml->files[k]->name,
								  w2, sizeof(w2));
					if (strcmp(w2, whole) == 0)
						total += ml->files[k]->size;
				}
				printf("  %-40s %12llu  in %u parts (llama.cpp loads "
				       "the first)\n",
				       mb_printable(safe, sizeof(safe), whole),
				       (unsigned long long)total, count);
			}
			mb_sha256_hex(ml->files[i]->sha256, hex);
			printf("  %s%-*s %12llu  sha256 %s\n", part ? "  " : "",
			       part ? 38 : 40,
			       mb_printable(safe, sizeof(safe), ml->files[i]->name),
			       (unsigned long long)ml->files[i]->size, hex);
		}
		for (i = 0; i < NSIDECARS; i++) {
			unsigned long long size;

			if (sidecar_size(dir, i, &size) == 0)
				printf("  %-40s %12llu  %s: %s\n", sidecars[i].name,
				       size, sidecars[i].kind, sidecars[i].what);
		}
	}
	mb_manifest_list_free(ml);
	free(json);
	return 0;
}
