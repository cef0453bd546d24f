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
#include "coordinator/cli/opts.h"
#include "coordinator/smoke.h"

static const struct cli_opt opts[] = {
	{ "tokens", 0, "N", NULL, "how many tokens to generate (0 to 4096, "
	  "default 32)" },
	{ "prompt", 0, "TEXT", NULL, "the prompt (default: a short question, "
	  "in the chat template when there is one)" },
	{ "json", 0, NULL, NULL, "one JSON object a file" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job smoke", "FILE.gguf...", 1, -1,
	"Loads each GGUF with llama.cpp on the CPU, runs a prompt and generates "
	"greedily;\nprints load time, speeds, peak memory and the text. Exit 0 "
	"when every file ran\nwith finite logits, 1 otherwise.", opts,
};

int cmd_smoke(int argc, char **argv)
{
	const char *prompt = NULL;
	struct cli_parse p;
	int i, c, n_gen = 32, json = 0, failed = 0;

	cli_parse_init(&p, &spec, argc, argv);
	while ((c = cli_next(&p)) > 0) {
		if (cli_is(&p, "tokens")) {
			char *end;
			long v = strtol(p.val, &end, 10);

			if (*end != '\0' || end == p.val || v < 0 || v > 4096)
				return cli_usage_error(&spec, "--tokens is a number "
						       "from 0 to 4096, not '%s'",
						       p.val);
			n_gen = (int)v;
		} else if (cli_is(&p, "prompt")) {
			prompt = p.val;
		} else if (cli_is(&p, "json")) {
			json = 1;
		}
	}
	if (c < 0)
		return p.exit;
	argc = p.nargs;
	argv = p.args;
	for (i = 0; i < argc; i++) {
		struct mb_smoke_result r;
		int rc;

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
}
