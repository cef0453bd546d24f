/* llm: libllama evaluation of a whole sequence, for fidelity tests. */
#include "llm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static char log_tail[2048];

static void on_log(enum ggml_log_level level, const char *text, void *ctx)
{
	size_t n = strlen(log_tail), t = strlen(text);

	(void)ctx;
	if (level < GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_NONE)
		return;
	if (n + t >= sizeof(log_tail)) { /* keep the end */
		n = 0;
		log_tail[0] = '\0';
	}
	if (t >= sizeof(log_tail))
		text += t - sizeof(log_tail) + 1, t = sizeof(log_tail) - 1;
	memcpy(log_tail + n, text, t + 1);
}

int th_llama_logits(const char *gguf, const int32_t *tokens, int n,
		    float **logits, int *n_vocab, char *err, size_t errcap)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_context_params cp = llama_context_default_params();
	struct llama_model *model = NULL;
	struct llama_context *ctx = NULL;
	struct llama_batch batch;
	int i, nv, rc = -1;
	float *out = NULL;

	log_tail[0] = '\0';
	llama_log_set(on_log, NULL);
	llama_backend_init();
	mp.n_gpu_layers = 0;
	model = llama_model_load_from_file(gguf, mp);
	if (model == NULL) {
		snprintf(err, errcap, "llama.cpp cannot load '%s': %s", gguf,
			 log_tail);
		goto out;
	}
	cp.n_ctx = (uint32_t)(n < 64 ? 64 : n);
	cp.n_batch = (uint32_t)n;
	cp.n_ubatch = (uint32_t)n;
	cp.n_threads = 2;
	cp.n_threads_batch = 2;
	ctx = llama_init_from_model(model, cp);
	if (ctx == NULL) {
		snprintf(err, errcap, "llama.cpp cannot make a context: %s", log_tail);
		goto out;
	}
	nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
	batch = llama_batch_init(n, 0, 1);
	for (i = 0; i < n; i++) {
		batch.token[i] = tokens[i];
		batch.pos[i] = i;
		batch.n_seq_id[i] = 1;
		batch.seq_id[i][0] = 0;
		batch.logits[i] = 1;
	}
	batch.n_tokens = n;
	if (llama_decode(ctx, batch) != 0) {
		snprintf(err, errcap, "llama_decode failed: %s", log_tail);
		llama_batch_free(batch);
		goto out;
	}
	out = malloc((size_t)n * (size_t)nv * sizeof(float));
	if (out == NULL) {
		llama_batch_free(batch);
		goto out;
	}
	for (i = 0; i < n; i++)
		memcpy(out + (size_t)i * (size_t)nv, llama_get_logits_ith(ctx, i),
		       (size_t)nv * sizeof(float));
	llama_batch_free(batch);
	*logits = out;
	*n_vocab = nv;
	out = NULL;
	rc = 0;
out:
	free(out);
	if (ctx != NULL)
		llama_free(ctx);
	if (model != NULL)
		llama_model_free(model);
	llama_log_set(NULL, NULL);
	return rc;
}

void th_logits_compare(const float *ref, const float *got, int n, int n_vocab,
		       double *rel_err, double *top1)
{
	double maxdiff = 0, maxref = 0;
	int i, j, agree = 0;

	for (i = 0; i < n; i++) {
		const float *r = ref + (size_t)i * (size_t)n_vocab;
		const float *g = got + (size_t)i * (size_t)n_vocab;
		int ar = 0, ag = 0;

		for (j = 0; j < n_vocab; j++) {
			double d = fabs((double)r[j] - (double)g[j]);

			if (!(d <= maxdiff)) /* NaN counts as infinitely wrong */
				maxdiff = isnan(d) ? INFINITY : d;
			if (fabs(r[j]) > maxref)
				maxref = fabs(r[j]);
			if (r[j] > r[ar])
				ar = j;
			if (g[j] > g[ag])
				ag = j;
		}
		agree += ar == ag;
	}
	*rel_err = maxref > 0 ? maxdiff / maxref : maxdiff;
	*top1 = n > 0 ? (double)agree / n : 1;
}
