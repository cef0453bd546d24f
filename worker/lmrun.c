/* lmrun: a model, a text and one chunk at a time, for imatrix and
 * fidelity (see lmrun.h). */
#include "worker/lmrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/splitset.h"
#include "proto/event.h"

/* A text file larger than this is not calibration text: 64 MiB is ~16M
 * tokens, hundreds of times what a run uses. */
#define MAX_TEXT ((size_t)64 << 20)

static char log_tail[2048];
static int log_verbose = -1;

static void on_log(enum ggml_log_level level, const char *text, void *ctx)
{
	size_t n = strlen(log_tail), t = strlen(text);

	(void)ctx;
	if (log_verbose < 0)
		log_verbose = getenv("MIBERA_LLAMA_LOG") != NULL;
	if (log_verbose)
		fputs(text, stderr);
	if (level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN)
		return;
	if (n + t >= sizeof(log_tail)) { /* keep the end */
		n = 0;
		log_tail[0] = '\0';
	}
	if (t >= sizeof(log_tail)) {
		text += t - sizeof(log_tail) + 1;
		t = sizeof(log_tail) - 1;
	}
	memcpy(log_tail + n, text, t + 1);
}

const char *lm_log_tail(void)
{
	size_t n = strlen(log_tail);

	while (n > 0 && (log_tail[n - 1] == '\n' || log_tail[n - 1] == ' '))
		log_tail[--n] = '\0';
	return log_tail[0] ? log_tail : "no reason given";
}

/* The free memory of the GPU devices, together (llama.cpp spreads the
 * layers over them). */
static uint64_t gpu_free(void)
{
	size_t i, n = ggml_backend_dev_count(), free_b, total;
	uint64_t sum = 0;

	for (i = 0; i < n; i++) {
		ggml_backend_dev_t d = ggml_backend_dev_get(i);
		enum ggml_backend_dev_type t = ggml_backend_dev_type(d);

		if (t != GGML_BACKEND_DEVICE_TYPE_GPU &&
		    t != GGML_BACKEND_DEVICE_TYPE_IGPU)
			continue;
		free_b = total = 0;
		ggml_backend_dev_memory(d, &free_b, &total);
		sum += free_b;
	}
	return sum;
}

/* What a context of one chunk needs on the GPU besides the weights (the
 * KV cache of 512 tokens, the compute buffers and the logits of a large
 * vocabulary are a few hundred MiB), with room to spare. */
#define GPU_MARGIN ((uint64_t)1 << 30)

/* How many layers of the model at path go on the GPU: all (-1) when its
 * weights and GPU_MARGIN fit the free memory, else as many as fit (a
 * 14B F16 on a 24 GB card), else none; size is of all its files.
 * n_layer from the header
 * alone (vocab_only loads no weights). */
static int layers_that_fit(const char *path, uint64_t size, uint64_t free_b,
			   int *n_layer)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_model *m;
	uint64_t per;
	int n;

	*n_layer = 0;
	if (size == 0)
		return -1;	/* the load will say why */
	if (size + GPU_MARGIN <= free_b)
		return -1;
	mp.vocab_only = true;
	mp.n_gpu_layers = 0;
	m = llama_model_load_from_file(path, mp);
	if (m == NULL)
		return -1;
	n = llama_model_n_layer(m) + 1;	/* the blocks and the output */
	llama_model_free(m);
	*n_layer = n;
	if (free_b <= GPU_MARGIN || n <= 0)
		return 0;
	per = size / (uint64_t)n + 1;
	return (int)((free_b - GPU_MARGIN) / per < (uint64_t)n
			     ? (free_b - GPU_MARGIN) / per : (uint64_t)n);
}

int lm_open(struct lm *lm, const char *path, int n_ctx, int threads,
	    int cpu_only, ggml_backend_sched_eval_callback cb, void *cb_data,
	    char *err, size_t errcap)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_context_params cp = llama_context_default_params();
	char backend[300];
	const char *load = path;
	struct mb_splitset set;
	uint64_t bytes;
	int ngpu, n_layer = 0;

	memset(lm, 0, sizeof(*lm));
	log_tail[0] = '\0';
	llama_log_set(on_log, NULL);
	llama_backend_init();
	{
		/* a set of parts named as a whole (common/splitset.h): it
		 * loads from its first part, which names the others */
		char why[512];
		int rc = access(path, F_OK) == 0 ? MB_ENOENT
			 : mb_splitset_find(path, &set, why, sizeof(why));

		if (rc != 0 && rc != MB_ENOENT) {
			snprintf(err, errcap, "cannot load '%s': %s", path, why);
			return -1;
		}
		if (rc == 0) {
			load = set.first;
			bytes = set.bytes;
		} else {
			struct stat sb;

			bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		}
	}
	/* every layer on the GPU when there is one and the model fits it,
	 * as many as fit when it does not, none without a GPU */
	ngpu = lm_backend(backend, sizeof(backend));
	mp.n_gpu_layers = ngpu > 0 && !cpu_only
		? layers_that_fit(load, bytes, gpu_free(), &n_layer) : 0;
	lm->model = llama_model_load_from_file(load, mp);
	if (lm->model == NULL && mp.n_gpu_layers != 0) {
		/* what the estimate did not foresee (another process took the
		 * memory): the CPU is slower, not wrong */
		snprintf(lm->offload, sizeof(lm->offload), "offload: none, on "
			 "the CPU: the model did not load on the GPU (%.250s): %.200s",
			 backend, lm_log_tail());
		mp.n_gpu_layers = 0;
		log_tail[0] = '\0';
		lm->model = llama_model_load_from_file(load, mp);
	}
	if (lm->model == NULL) {
		snprintf(err, errcap, "llama.cpp cannot load '%s': %s", path,
			 lm_log_tail());
		return -1;
	}
	if (mp.n_gpu_layers < 0) {
		lm->gpu_layers = llama_model_n_layer(lm->model) + 1;
		snprintf(lm->offload, sizeof(lm->offload), "offload: all %d "
			 "layers to the GPU (%.250s)", lm->gpu_layers, backend);
	} else if (mp.n_gpu_layers > 0) {
		lm->gpu_layers = mp.n_gpu_layers;
		snprintf(lm->offload, sizeof(lm->offload), "offload: %d of %d "
			 "layers to the GPU, as many as its free memory holds; "
			 "the rest on the CPU (%.250s)", mp.n_gpu_layers, n_layer,
			 backend);
	} else if (lm->offload[0] != '\0') {
		/* said above */
	} else if (ngpu > 0 && cpu_only) {
		snprintf(lm->offload, sizeof(lm->offload), "offload: none, on "
			 "the CPU as asked (--cpu), though there is a GPU (%.250s)",
			 backend);
	} else if (ngpu > 0) {
		snprintf(lm->offload, sizeof(lm->offload), "offload: none, on "
			 "the CPU: not one layer fits the GPU's free memory (%.250s)",
			 backend);
	} else {
		snprintf(lm->offload, sizeof(lm->offload), "offload: none, on "
			 "the CPU: llama.cpp has no GPU here (%.250s)", backend);
	}
	cp.n_ctx = (uint32_t)n_ctx;
	cp.n_batch = (uint32_t)n_ctx;
	cp.n_ubatch = (uint32_t)n_ctx;
	cp.n_seq_max = 1;
	if (threads > 0) {
		cp.n_threads = threads;
		cp.n_threads_batch = threads;
	}
	cp.cb_eval = cb;
	cp.cb_eval_user_data = cb_data;
	lm->ctx = llama_init_from_model(lm->model, cp);
	if (lm->ctx == NULL) {
		snprintf(err, errcap, "llama.cpp cannot make a context of %d "
			 "tokens for '%s': %s", n_ctx, path, lm_log_tail());
		lm_close(lm);
		return -1;
	}
	lm->vocab = llama_model_get_vocab(lm->model);
	lm->n_vocab = llama_vocab_n_tokens(lm->vocab);
	lm->n_ctx = n_ctx;
	lm->batch = llama_batch_init(n_ctx, 0, 1);
	lm->have_batch = 1;
	return 0;
}

void lm_close(struct lm *lm)
{
	if (lm->have_batch)
		llama_batch_free(lm->batch);
	if (lm->ctx != NULL)
		llama_free(lm->ctx);
	if (lm->model != NULL)
		llama_model_free(lm->model);
	memset(lm, 0, sizeof(*lm));
}

int lm_tokenize_file(struct lm *lm, const char *path, int32_t **toks,
		     size_t *n, char *err, size_t errcap)
{
	struct stat sb;
	char *text = NULL;
	int32_t *t = NULL;
	size_t len;
	int32_t got, cap;
	FILE *f = NULL;
	int rc = -1;

	*toks = NULL;
	*n = 0;
	f = fopen(path, "rb");
	if (f == NULL || fstat(fileno(f), &sb) != 0) {
		snprintf(err, errcap, "cannot read '%s': %s", path,
			 strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || (size_t)sb.st_size > MAX_TEXT) {
		snprintf(err, errcap, "'%s' is not a text file of at most %zu "
			 "MiB", path, MAX_TEXT >> 20);
		goto out;
	}
	len = (size_t)sb.st_size;
	text = malloc(len + 1);
	if (text == NULL || fread(text, 1, len, f) != len) {
		snprintf(err, errcap, "cannot read '%s'", path);
		goto out;
	}
	text[len] = '\0';
	/* a token is at least one byte, plus BOS and EOS */
	cap = (int32_t)len + 8;
	t = malloc((size_t)cap * sizeof(*t));
	if (t == NULL) {
		snprintf(err, errcap, "out of memory tokenizing '%s'", path);
		goto out;
	}
	got = llama_tokenize(lm->vocab, text, (int32_t)len, t, cap, true,
			     false);
	if (got < 0) {
		snprintf(err, errcap, "cannot tokenize '%s': %s", path,
			 lm_log_tail());
		goto out;
	}
	*toks = t;
	*n = (size_t)got;
	t = NULL;
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	free(text);
	free(t);
	return rc;
}

int lm_eval_chunk(struct lm *lm, const int32_t *toks, int first, char *err,
		  size_t errcap)
{
	struct llama_batch *b = &lm->batch;
	int i;

	llama_memory_clear(llama_get_memory(lm->ctx), true);
	for (i = 0; i < lm->n_ctx; i++) {
		b->token[i] = toks[i];
		b->pos[i] = i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = i >= first || i == lm->n_ctx - 1;
	}
	/* as perplexity and imatrix do: each chunk starts as a text does */
	if (llama_vocab_get_add_bos(lm->vocab))
		b->token[0] = llama_vocab_bos(lm->vocab);
	b->n_tokens = lm->n_ctx;
	if (llama_decode(lm->ctx, *b) != 0) {
		snprintf(err, errcap, "llama_decode failed: %s", lm_log_tail());
		return -1;
	}
	return 0;
}

const float *lm_logits(struct lm *lm, int pos)
{
	return llama_get_logits_ith(lm->ctx, pos);
}

int lm_has_gpu(void)
{
	return llama_supports_gpu_offload() ? 1 : 0;
}

/* A backend's registry name as this program writes it: lower case
 * ("CUDA" -> "cuda"). */
static void backend_name(const char *reg, char *out, size_t cap)
{
	size_t k;

	snprintf(out, cap, "%s", reg ? reg : "?");
	for (k = 0; out[k] != '\0'; k++)
		if (out[k] >= 'A' && out[k] <= 'Z')
			out[k] = (char)(out[k] - 'A' + 'a');
}

int lm_backend(char *out, size_t cap)
{
	size_t i, n = ggml_backend_dev_count(), o = 0;
	int ngpu = 0, same = 1;
	char first[200] = "", one[200], reg[32] = "", r[32];

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		ggml_backend_dev_t d = ggml_backend_dev_get(i);
		enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
		size_t free_b = 0, total = 0;

		if (t != GGML_BACKEND_DEVICE_TYPE_GPU &&
		    t != GGML_BACKEND_DEVICE_TYPE_IGPU)
			continue;
		ggml_backend_dev_memory(d, &free_b, &total);
		backend_name(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)),
			     r, sizeof(r));
		snprintf(one, sizeof(one), "%.150s, %.0f GiB",
			 ggml_backend_dev_description(d),
			 (double)total / (1024.0 * 1024 * 1024));
		if (ngpu == 0) {
			snprintf(first, sizeof(first), "%s", one);
			snprintf(reg, sizeof(reg), "%s", r);
		} else if (strcmp(one, first) != 0 || strcmp(r, reg) != 0) {
			same = 0;
		}
		/* several kinds: "cuda: A, 24 GiB; cuda: B, 48 GiB" */
		if (o < cap)
			o += (size_t)snprintf(out + o, cap - o, "%s%s: %s",
					      ngpu ? "; " : "", r, one);
		ngpu++;
	}
	if (ngpu == 0)
		snprintf(out, cap, "cpu");
	else if (same && ngpu > 1)
		snprintf(out, cap, "%s: %d x %s", reg, ngpu, first);
	return ngpu;
}

void lm_say_offload(const struct lm *lm, struct mb_events *ev,
		    const char *who)
{
	struct mb_buf b;

	printf("%s: %s\n", who, lm->offload);
	fflush(stdout);
	if (ev == NULL)
		return;
	mb_buf_init(&b, 2048);
	if (mb_buf_adds(&b, "\"level\":\"info\",\"msg\":") == 0 &&
	    mb_json_quote(&b, lm->offload) == 0)
		mb_events_emit(ev, "log", b.data);
	mb_buf_release(&b);
}

int lm_default_text(const char *name, char *out, size_t cap, char *err,
		    size_t errcap)
{
	static const char *const rel[] = { "../src/data/calibration",
					   "../data/calibration",
					   "../share/mibera/calibration", NULL };
	char exe[4096], *slash;
	int i;

	if (mb_self_exe(exe, sizeof(exe)) != 0) {
		snprintf(err, errcap, "cannot find the calibration text: where "
			 "is this program? (give --text FILE)");
		return -1;
	}
	slash = strrchr(exe, '/');
	if (slash != NULL)
		*slash = '\0';
	for (i = 0; rel[i] != NULL; i++) {
		if ((size_t)snprintf(out, cap, "%s/%s/%s", exe, rel[i], name) >= cap)
			continue;
		if (access(out, R_OK) == 0)
			return 0;
	}
	snprintf(err, errcap, "no calibration text '%s' in %s/../src/data/"
		 "calibration, %s/../data/calibration or %s/../share/mibera/"
		 "calibration (give --text FILE)", name, exe, exe, exe);
	return -1;
}
