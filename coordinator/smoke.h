/*
 * smoke: the short CPU inference mibera runs on every artifact before it
 * calls a job done. libllama loads the file on the CPU, evaluates a fixed
 * prompt (through the model's chat template when it has one), generates
 * tokens greedily and records what a person needs to trust the file: load
 * time, prompt and generation speed, peak memory, whether every logit was
 * finite, and the text. A file llama.cpp cannot load fails with
 * llama.cpp's own message.
 */
#ifndef MB_SMOKE_H
#define MB_SMOKE_H

#include <stdint.h>

#define MB_SMOKE_PROMPT "Write one sentence about the sea."

struct mb_smoke_result {
	double load_s;
	int n_prompt, n_gen;
	double prompt_tps, gen_tps;
	uint64_t peak_rss;	/* bytes, this process, during the run */
	int finite;		/* every logit looked at was finite */
	int templated;		/* the chat template was applied */
	int repacked;		/* llama.cpp repacked weights for this CPU */
	uint64_t mem_need;	/* bytes the load was estimated to need */
	uint64_t mem_available;	/* bytes available when it started */
	char text[2048];	/* the generated text (truncated) */
	char error[1024];	/* why it failed; "" on success */
};

/* Runs the smoke test on the GGUF at path: prompt (NULL: MB_SMOKE_PROMPT),
 * n_gen tokens at most, threads (0: 2), at MB_RUN_CTX context with the
 * file mapped and no repacked copy of its weights. Before loading, what
 * the load needs (mb_run_ram_estimate) is checked against MemAvailable
 * and MemTotal in /proc/meminfo, or the byte counts in
 * MIBERA_SMOKE_MEM_AVAILABLE and MIBERA_SMOKE_MEM_TOTAL when set: a load
 * that does not fit is not tried, MB_ENOMEM (not now) or MB_ETOOBIG (not
 * on this machine) with the figures in r->error. Returns 0 when the file
 * loaded, ran and every logit was finite; otherwise a negative mb_err
 * code with r->error saying why. */
int mb_smoke_run(const char *path, const char *prompt, int n_gen, int threads,
		 struct mb_smoke_result *r);

/* Runs the smoke test in a child process, so that a file llama.cpp
 * answers with abort() (a GGML_ASSERT on a malformed vocabulary, say)
 * fails that artifact instead of the process that asked: exe (NULL: this
 * program, /proc/self/exe) is run as `exe smoke PATH --tokens N --json`,
 * with its heap limited to mem_limit bytes (0: the machine's memory) and
 * killed after timeout_s seconds (0: 600). A crash, a kill or a timeout is
 * MB_EFORMAT / MB_ETIMEDOUT with r->error naming the signal and
 * llama.cpp's last words on stderr; a file that does not fit in memory is
 * MB_ENOMEM or MB_ETOOBIG as from mb_smoke_run. */
int mb_smoke_isolated(const char *exe, const char *path, int n_gen,
		      uint64_t mem_limit, int timeout_s,
		      struct mb_smoke_result *r);

#endif
