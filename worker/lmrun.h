/*
 * lmrun: what the imatrix and fidelity verbs share: a GGUF loaded in
 * libllama with a context of one chunk, a text file tokenized by the
 * model's own tokenizer, and one chunk evaluated the way llama.cpp's
 * perplexity and imatrix tools do (the chunk's first token replaced by BOS
 * when the vocabulary adds one, the cache cleared before each chunk).
 */
#ifndef MB_WORKER_LMRUN_H
#define MB_WORKER_LMRUN_H

#include <stddef.h>
#include <stdint.h>

#include "llama.h"

struct mb_events;

struct lm {
	struct llama_model *model;
	struct llama_context *ctx;
	const struct llama_vocab *vocab;
	int n_vocab;
	int n_ctx;		/* tokens per chunk */
	struct llama_batch batch;
	int have_batch;
	int gpu_layers;		/* layers offloaded to a GPU (0: none) */
	char offload[800];	/* where the model runs, in words */
};

/* Loads path with a context of n_ctx tokens per chunk (one batch, one
 * micro-batch: the imatrix callback sees whole chunks), with every layer
 * on the GPU when libllama has a GPU device (lm_backend) unless cpu_only
 * (as many as its free memory holds when the model is bigger; the CPU
 * when the load on the GPU fails), else none; lm->offload says which. cb (may be NULL) is the context's
 * evaluation callback. Returns 0 or -1 with llama.cpp's last error lines
 * in err. */
int lm_open(struct lm *lm, const char *path, int n_ctx, int threads,
	    int cpu_only, ggml_backend_sched_eval_callback cb, void *cb_data,
	    char *err, size_t errcap);

/* Frees what lm_open made; safe on a zeroed struct. */
void lm_close(struct lm *lm);

/* Reads the text file at path (at most 64 MiB) and tokenizes it with lm's
 * vocabulary (special tokens added as the model adds them, none parsed in
 * the text). *toks (caller frees) gets *n tokens. 0 or -1 with err. */
int lm_tokenize_file(struct lm *lm, const char *path, int32_t **toks,
		     size_t *n, char *err, size_t errcap);

/* Evaluates the n_ctx tokens at toks as one chunk; logits are kept for the
 * positions from first on (first = n_ctx to keep none but the last).
 * Returns 0, or -1 with err. */
int lm_eval_chunk(struct lm *lm, const int32_t *toks, int first, char *err,
		  size_t errcap);

/* The logits of position pos of the last chunk (pos >= first). */
const float *lm_logits(struct lm *lm, int pos);

/* The calibration text name ("imatrix.txt", "eval.txt") that ships with
 * mibera, found from the running program: DIR/src/data/calibration (a
 * bootstrapped worker: DIR/bin/mibera-worker), the source tree of a build
 * directory, or PREFIX/share/mibera/calibration. 0 with the path in out,
 * or -1 with err saying where it looked. */
int lm_default_text(const char *name, char *out, size_t cap, char *err,
		    size_t errcap);

/* 1 when libllama runs on a GPU here: the verbs size their default work
 * to it (a CPU-only box is a test or development box). */
int lm_has_gpu(void);

/* What libllama computes with here, from ggml's device registry: "cpu",
 * or the GPU backend and its devices ("cuda: NVIDIA H200, 140 GiB").
 * Returns the number of GPU devices (0: the CPU only). */
int lm_backend(char *out, size_t cap);

/* Says where lm's model runs (lm->offload): a line on stdout prefixed by
 * who, and an "info" log event in ev (may be NULL). */
void lm_say_offload(const struct lm *lm, struct mb_events *ev,
		    const char *who);

/* The last error lines llama.cpp logged (for messages), and the log
 * handler lm_open installs: quiet unless MIBERA_LLAMA_LOG is set. */
const char *lm_log_tail(void);

#endif
