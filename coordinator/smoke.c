/* smoke: load, prompt and generate with libllama on the CPU. */
#include "coordinator/smoke.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "llama.h"

/* llama.cpp reports why a load failed only through its log, the cause
 * first ("error loading model: tensor ... is not within the file
 * bounds") and a generic line last ("failed to load model"): keep the
 * first error message, else the last warning, for the message. One smoke
 * run at a time: the log callback is process-wide. */
static pthread_mutex_t smoke_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_tail[512];
static int log_level;	/* of what log_tail holds */
static int log_cont;	/* the next CONT line continues log_tail */

static void on_log(enum ggml_log_level level, const char *text, void *ctx)
{
	size_t n = strlen(log_tail), t = strlen(text);

	(void)ctx;
	if (level == GGML_LOG_LEVEL_CONT) {
		if (!log_cont)
			return;
	} else if (level == GGML_LOG_LEVEL_ERROR && log_level != GGML_LOG_LEVEL_ERROR) {
		n = 0; /* the first error replaces any warning */
		log_level = GGML_LOG_LEVEL_ERROR;
	} else if (level == GGML_LOG_LEVEL_WARN && log_level != GGML_LOG_LEVEL_ERROR) {
		n = 0; /* a later warning replaces an earlier one */
		log_level = GGML_LOG_LEVEL_WARN;
	} else {
		log_cont = 0;
		return;
	}
	log_cont = 1;
	if (n + t >= sizeof(log_tail))
		t = sizeof(log_tail) - n - 1;
	memcpy(log_tail + n, text, t);
	log_tail[n + t] = '\0';
}

/* The kernel's peak resident set of this process (VmHWM), and its reset
 * (writing 5 to clear_refs), so each artifact's peak is its own. */
static uint64_t peak_rss(void)
{
	return mb_proc_kb_field("/proc/self/status", "VmHWM:");
}

static void reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f != NULL) {
		fputs("5", f);
		fclose(f);
	}
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

static int logits_finite(struct llama_context *ctx, int n_vocab)
{
	const float *l = llama_get_logits_ith(ctx, -1);
	int i;

	if (l == NULL)
		return 0;
	for (i = 0; i < n_vocab; i++)
		if (!isfinite(l[i]))
			return 0;
	return 1;
}

int mb_smoke_run(const char *path, const char *prompt, int n_gen, int threads,
		 struct mb_smoke_result *r)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_context_params cp = llama_context_default_params();
	struct llama_sampler_chain_params sp = llama_sampler_chain_default_params();
	struct llama_model *model = NULL;
	struct llama_context *ctx = NULL;
	struct llama_sampler *smpl = NULL;
	const struct llama_vocab *vocab;
	char chat[4096];
	const char *text, *tmpl;
	llama_token toks[1024], tok;
	size_t tlen = 0;
	int n, i, nv, rc = MB_EINTERNAL;
	double t0;

	memset(r, 0, sizeof(*r));
	if (prompt == NULL)
		prompt = MB_SMOKE_PROMPT;
	if (threads <= 0)
		threads = 2;
	pthread_mutex_lock(&smoke_mu);
	log_tail[0] = '\0';
	log_level = 0;
	log_cont = 0;
	llama_log_set(on_log, NULL);
	llama_backend_init();
	reset_peak();
	mp.n_gpu_layers = 0;
	t0 = mb_now_s();
	model = llama_model_load_from_file(path, mp);
	r->load_s = mb_now_s() - t0;
	if (model == NULL) {
		trim(log_tail);
		snprintf(r->error, sizeof(r->error), "llama.cpp cannot load '%.400s': %s",
			 path, log_tail[0] ? log_tail : "no reason given");
		rc = MB_EFORMAT;
		goto out;
	}
	cp.n_ctx = 1024;
	cp.n_batch = 1024;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	ctx = llama_init_from_model(model, cp);
	if (ctx == NULL) {
		trim(log_tail);
		snprintf(r->error, sizeof(r->error), "llama.cpp cannot make a "
			 "context: %s", log_tail);
		goto out;
	}
	vocab = llama_model_get_vocab(model);
	nv = llama_vocab_n_tokens(vocab);
	text = prompt;
	tmpl = llama_model_chat_template(model, NULL);
	if (tmpl != NULL) {
		struct llama_chat_message msg = { "user", prompt };
		int32_t len = llama_chat_apply_template(tmpl, &msg, 1, 1, chat,
							(int32_t)sizeof(chat));

		/* a template llama.cpp does not know: the plain prompt */
		if (len > 0 && len < (int32_t)sizeof(chat)) {
			chat[len] = '\0';
			text = chat;
			r->templated = 1;
		}
	}
	n = llama_tokenize(vocab, text, (int32_t)strlen(text), toks, 1024,
			   llama_vocab_get_add_bos(vocab), 1);
	if (n <= 0) {
		snprintf(r->error, sizeof(r->error), "the prompt does not "
			 "tokenize (%d)", n);
		goto out;
	}
	r->n_prompt = n;
	t0 = mb_now_s();
	if (llama_decode(ctx, llama_batch_get_one(toks, n)) != 0) {
		trim(log_tail);
		snprintf(r->error, sizeof(r->error), "llama_decode failed on the "
			 "prompt: %s", log_tail);
		goto out;
	}
	r->prompt_tps = n / (mb_now_s() - t0);
	r->finite = logits_finite(ctx, nv);
	smpl = llama_sampler_chain_init(sp);
	llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
	t0 = mb_now_s();
	for (i = 0; i < n_gen && r->finite; i++) {
		char piece[256];
		int pn;

		tok = llama_sampler_sample(smpl, ctx, -1);
		if (llama_vocab_is_eog(vocab, tok))
			break;
		pn = llama_token_to_piece(vocab, tok, piece, sizeof(piece), 0, 0);
		if (pn > 0 && tlen + (size_t)pn < sizeof(r->text)) {
			memcpy(r->text + tlen, piece, (size_t)pn);
			tlen += (size_t)pn;
		}
		r->n_gen++;
		if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) {
			snprintf(r->error, sizeof(r->error), "llama_decode failed "
				 "at generated token %d", i);
			goto out;
		}
		r->finite = logits_finite(ctx, nv);
	}
	r->text[tlen] = '\0';
	if (r->n_gen > 0)
		r->gen_tps = r->n_gen / (mb_now_s() - t0);
	if (!r->finite) {
		snprintf(r->error, sizeof(r->error), "the model produced logits "
			 "that are not finite (NaN or infinity)");
		rc = MB_EFORMAT;
		goto out;
	}
	rc = 0;
out:
	r->peak_rss = peak_rss();
	if (smpl != NULL)
		llama_sampler_free(smpl);
	if (ctx != NULL)
		llama_free(ctx);
	if (model != NULL)
		llama_model_free(model);
	llama_log_set(NULL, NULL);
	pthread_mutex_unlock(&smoke_mu);
	return rc;
}
