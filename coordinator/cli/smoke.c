/*
 * mibera-job smoke FILE.gguf... [--tokens N] [--prompt TEXT] [--json]:
 * loads each GGUF with llama.cpp on the CPU, runs a prompt and generates
 * greedily; prints load time, speeds, peak memory and the text. Exit 0
 * when every file ran with finite logits, 1 otherwise, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "coordinator/cli/cli.h"
#include "coordinator/smoke.h"

int cmd_smoke(int argc, char **argv)
{
	const char *prompt = NULL;
	int i, n_gen = 32, json = 0, nfiles = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (*end != '\0' || v < 0 || v > 4096)
				goto usage;
			n_gen = (int)v;
		} else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc) {
			prompt = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (argv[i][0] == '-') {
			goto usage;
		} else {
			nfiles++;
		}
	}
	if (nfiles == 0)
		goto usage;
	for (i = 1; i < argc; i++) {
		struct mb_smoke_result r;
		int rc;

		if (strcmp(argv[i], "--tokens") == 0 || strcmp(argv[i], "--prompt") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		rc = mb_smoke_run(argv[i], prompt, n_gen, 0, &r);
		failed |= rc != 0;
		if (json) {
			struct mb_buf b;

			mb_buf_init(&b, 1 << 16);
			mb_buf_adds(&b, "{\"file\":");
			mb_json_quote(&b, argv[i]);
			mb_buf_addf(&b, ",\"ok\":%s,\"load_s\":%.3f,\"prompt_tokens\":%d,"
				    "\"prompt_tps\":%.1f,\"gen_tokens\":%d,"
				    "\"gen_tps\":%.1f,\"peak_rss\":%llu,\"finite\":%s,"
				    "\"templated\":%s,\"repacked\":%s,"
				    "\"mem_need\":%llu,\"mem_available\":%llu,"
				    "\"errcode\":%d,\"text\":",
				    rc == 0 ? "true" : "false", r.load_s, r.n_prompt,
				    r.prompt_tps, r.n_gen, r.gen_tps,
				    (unsigned long long)r.peak_rss,
				    r.finite ? "true" : "false",
				    r.templated ? "true" : "false",
				    r.repacked ? "true" : "false",
				    (unsigned long long)r.mem_need,
				    (unsigned long long)r.mem_available, rc);
			mb_json_quote(&b, r.text);
			mb_buf_adds(&b, ",\"error\":");
			mb_json_quote(&b, r.error);
			mb_buf_adds(&b, "}\n");
			fwrite(b.data, 1, b.len, stdout);
			mb_buf_release(&b);
			continue;
		}
		if (rc != 0) {
			printf("%s: FAILED: %s\n", argv[i], r.error);
			continue;
		}
		printf("%s: ok\n  load %.2f s, prompt %d tokens at %.1f t/s%s, "
		       "generated %d at %.1f t/s, peak RSS %.1f MiB, logits "
		       "finite\n  text: %s\n",
		       argv[i], r.load_s, r.n_prompt, r.prompt_tps,
		       r.templated ? " (chat template)" : "", r.n_gen, r.gen_tps,
		       (double)r.peak_rss / (1 << 20), r.text);
	}
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: mibera-job smoke FILE.gguf... [--tokens N] "
		"[--prompt TEXT] [--json]\n");
	return 2;
}
