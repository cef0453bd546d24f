/* smoke: load, prompt and generate with libllama on the CPU. */
#include "coordinator/smoke.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/modelcfg.h"
#include "common/splitset.h"
#include "common/text.h"
#include "llama.h"

/* --- memory, before loading --- */

/* An unsigned integer KV of g (the largest element of an array: per-layer
 * head counts), or 0 when missing or of another type. */
static uint64_t kv_uint(const struct mb_gguf *g, const char *arch,
			const char *suffix)
{
	const struct mb_gguf_kv *kv;
	char key[192];
	uint64_t v = 0, k;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	kv = mb_gguf_kv(g, key);
	if (kv == NULL)
		return 0;
	switch (kv->type) {
	case MB_GGUF_UINT32:
	case MB_GGUF_UINT64:
	case MB_GGUF_UINT16:
	case MB_GGUF_UINT8:
		return kv->v.u;
	case MB_GGUF_INT32:
	case MB_GGUF_INT64:
	case MB_GGUF_INT16:
	case MB_GGUF_INT8:
		return kv->v.i > 0 ? (uint64_t)kv->v.i : 0;
	case MB_GGUF_ARRAY:
		if (kv->arr == NULL || (kv->elem_type != MB_GGUF_UINT32 &&
					kv->elem_type != MB_GGUF_INT32))
			return 0;
		for (k = 0; k < kv->n; k++) {
			uint32_t e;

			memcpy(&e, (const char *)kv->arr + 4 * k, 4);
			if (kv->elem_type == MB_GGUF_INT32 && (int32_t)e < 0)
				continue;
			if (e > v)
				v = e;
		}
		return v;
	default:
		return 0;
	}
}

/* What loading the GGUF at path for the smoke test needs
 * (mb_run_ram_estimate over its header). MB_EFORMAT when the header
 * cannot be read or lacks the shapes: llama.cpp then says why. */
static int memory_need(const char *path, struct mb_run_ram *need)
{
	const struct mb_gguf_kv *a, *toks;
	const struct mb_gguf_tensor *emb;
	struct mb_gguf *g = NULL;
	uint64_t layers, hidden, heads, kv_heads, klen, vlen, vocab, ff, bytes;
	char err[512];
	int rc = MB_EFORMAT;

	if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		return MB_EFORMAT;
	bytes = g->file_size;
	a = mb_gguf_kv(g, "general.architecture");
	if (a == NULL || a->type != MB_GGUF_STRING)
		goto out;
	layers = kv_uint(g, a->v.s, "block_count");
	hidden = kv_uint(g, a->v.s, "embedding_length");
	heads = kv_uint(g, a->v.s, "attention.head_count");
	kv_heads = kv_uint(g, a->v.s, "attention.head_count_kv");
	if (kv_heads == 0)
		kv_heads = heads;
	klen = kv_uint(g, a->v.s, "attention.key_length");
	vlen = kv_uint(g, a->v.s, "attention.value_length");
	if (heads == 0 || layers == 0 || hidden == 0)
		goto out;
	if (klen == 0)
		klen = hidden / heads;
	if (vlen == 0)
		vlen = hidden / heads;
	toks = mb_gguf_kv(g, "tokenizer.ggml.tokens");
	emb = mb_gguf_tensor(g, "token_embd.weight");
	vocab = toks != NULL ? toks->n : emb != NULL ? emb->ne[1] : 0;
	ff = kv_uint(g, a->v.s, "feed_forward_length");
	/* each count is bounded by the file it describes: a header may
	 * not make the sum overflow */
	if (layers > 1u << 16 || hidden > 1u << 20 || kv_heads > 1u << 16 ||
	    klen > 1u << 16 || vlen > 1u << 16 || vocab > 1u << 24 ||
	    ff > 1u << 24)
		goto out;
	/* a set of parts is mapped whole: every part's bytes */
	{
		struct mb_splitset set;
		size_t stem;
		unsigned no, count;

		if (mb_splitset_parse_name(path, &stem, &no, &count) &&
		    mb_splitset_find(path, &set, err, sizeof(err)) == 0)
			bytes = set.bytes;
	}
	mb_run_ram_estimate(bytes, layers, kv_heads * (klen + vlen) / 2,
			    vocab, hidden, ff, need);
	rc = 0;
out:
	mb_gguf_free(g);
	return rc;
}

/* A byte count from the environment (tests stand in for the machine
 * with it), else the /proc/meminfo line. *bytes is 0 when neither says. */
static int mem_figure(const char *env, const char *key, uint64_t *bytes,
		      char *err, size_t cap)
{
	const char *v = getenv(env);
	char *end;

	if (v == NULL || *v == '\0') {
		*bytes = mb_proc_kb_field("/proc/meminfo", key);
		return 0;
	}
	errno = 0;
	*bytes = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || *v == '-') {
		snprintf(err, cap, "%s is '%.40s', not a number of bytes", env, v);
		return MB_EINVAL;
	}
	return 0;
}

/* Checks that the smoke test of path fits in memory before llama.cpp
 * loads it. 0 when it fits (or its need cannot be told: llama.cpp then
 * says what is wrong); MB_ENOMEM when more than what is available now;
 * MB_ETOOBIG when more than the machine has; r->error says which. */
static int check_memory(const char *path, struct mb_smoke_result *r)
{
	struct mb_run_ram need;
	uint64_t avail, total;
	int rc;

	if ((rc = mem_figure("MIBERA_SMOKE_MEM_AVAILABLE", "MemAvailable:",
			     &avail, r->error, sizeof(r->error))) != 0 ||
	    (rc = mem_figure("MIBERA_SMOKE_MEM_TOTAL", "MemTotal:", &total,
			     r->error, sizeof(r->error))) != 0)
		return rc;
	if (memory_need(path, &need) != 0)
		return 0;
	r->mem_need = need.total;
	r->mem_available = avail;
	if (avail == 0 || need.total <= avail)
		return 0;
	rc = total != 0 && need.total > total ? MB_ETOOBIG : MB_ENOMEM;
	snprintf(r->error, sizeof(r->error), "not enough memory: loading it "
		 "needs about %.1f GB (the %.1f GB file, %.2f GB of KV cache at "
		 "%d tokens, %.2f GB of compute buffers) and %s%.1f GB %s; %s",
		 need.total / 1e9, need.weights / 1e9, need.kv / 1e9, MB_RUN_CTX,
		 need.compute / 1e9, rc == MB_ETOOBIG ? "this machine has " : "",
		 (rc == MB_ETOOBIG ? total : avail) / 1e9,
		 rc == MB_ETOOBIG ? "in all" : "is available",
		 rc == MB_ETOOBIG ? "test it on a machine with more memory"
				  : "free some memory and run it again");
	return rc;
}

/* llama.cpp reports why a load failed only through its log, the cause
 * first ("error loading model: tensor ... is not within the file
 * bounds") and a generic line last ("failed to load model"): keep the
 * first error message, else the last warning, for the message. One smoke
 * run at a time: the log callback is process-wide. */
static pthread_mutex_t smoke_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_tail[512];
static int log_level;	/* of what log_tail holds */
static int log_cont;	/* the next CONT line continues log_tail */

static int log_repacked;	/* llama.cpp made a CPU_REPACK weight buffer */

static void on_log(enum ggml_log_level level, const char *text, void *ctx)
{
	size_t n = strlen(log_tail), t = strlen(text);

	(void)ctx;
	if (strstr(text, "CPU_REPACK model buffer size") != NULL)
		log_repacked = 1;
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
	log_repacked = 0;
	{
		/* a set of parts: each part there and the one it says it is,
		 * the one missing named, before llama.cpp is asked */
		struct mb_splitset set;
		size_t stem;
		unsigned no, count;

		if (mb_splitset_parse_name(path, &stem, &no, &count) &&
		    (rc = mb_splitset_find(path, &set, r->error,
					   sizeof(r->error))) != 0) {
			rc = rc == MB_ENOMEM ? MB_EFORMAT : rc;
			goto unlock;
		}
	}
	if ((rc = check_memory(path, r)) != 0)
		goto unlock;
	rc = MB_EINTERNAL;
	llama_log_set(on_log, NULL);
	llama_backend_init();
	reset_peak();
	mp.n_gpu_layers = 0;
	/* No repacking of weights for this CPU (CPU_REPACK: Q4_0, Q4_K,
	 * IQ4_NL into interleaved blocks on AVX2/NEON): it keeps a second,
	 * anonymous copy of those weights beside the mapped file, 1.4x the
	 * file at peak for a Phi-4-shaped Q4_K_M, and loads 3-8x slower,
	 * while the smoke test's speeds on this shared machine did not
	 * measurably change (bench/smoke-memory.md). The file is what is
	 * tested, not llama.cpp's kernels; what it needs is then the
	 * estimate's file + KV cache + compute buffers. */
	mp.use_extra_bufts = false;
	t0 = mb_now_s();
	model = llama_model_load_from_file(path, mp);
	r->load_s = mb_now_s() - t0;
	if (model == NULL) {
		mb_trim_end(log_tail);
		snprintf(r->error, sizeof(r->error), "llama.cpp cannot load '%.400s': %s",
			 path, log_tail[0] ? log_tail : "no reason given");
		rc = MB_EFORMAT;
		goto out;
	}
	/* the context inspect's estimate quotes: the smoke test then
	 * shows that the file runs in what was promised */
	cp.n_ctx = MB_RUN_CTX;
	cp.n_batch = 1024;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	ctx = llama_init_from_model(model, cp);
	if (ctx == NULL) {
		mb_trim_end(log_tail);
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
		mb_trim_end(log_tail);
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
	r->repacked = log_repacked;
	if (smpl != NULL)
		llama_sampler_free(smpl);
	if (ctx != NULL)
		llama_free(ctx);
	if (model != NULL)
		llama_model_free(model);
	llama_log_set(NULL, NULL);
unlock:
	pthread_mutex_unlock(&smoke_mu);
	return rc;
}

/* --- in a child process --- */

/* The line of the child's stderr that says why it died: llama.cpp's
 * GGML_ASSERT or error line, else the last line it printed. */
static void last_words(const char *err, char *out, size_t cap)
{
	const char *p = strstr(err, "GGML_ASSERT");
	const char *e;
	size_t n;

	if (p == NULL)
		p = strstr(err, "error");
	if (p != NULL) {
		while (p > err && p[-1] != '\n')
			p--;
	} else {
		/* the last non-empty line */
		e = err + strlen(err);
		while (e > err && (e[-1] == '\n' || e[-1] == ' '))
			e--;
		p = e;
		while (p > err && p[-1] != '\n')
			p--;
	}
	e = strchr(p, '\n');
	n = e ? (size_t)(e - p) : strlen(p);
	mb_printable_n(out, cap, p, n, 0);
}

static void result_from_json(const char *text, size_t len,
			     struct mb_smoke_result *r, int *code)
{
	cJSON *doc = mb_json_parse(text, len);
	const cJSON *v;

	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		snprintf(r->error, sizeof(r->error), "the smoke test printed "
			 "no result");
		return;
	}
#define NUM(key) ((v = cJSON_GetObjectItemCaseSensitive(doc, key)) != NULL && \
		  cJSON_IsNumber(v) && isfinite(v->valuedouble) && \
		  v->valuedouble >= 0 ? v->valuedouble : 0.0)
	r->load_s = NUM("load_s");
	r->n_prompt = (int)fmin(NUM("prompt_tokens"), 1e6);
	r->prompt_tps = NUM("prompt_tps");
	r->n_gen = (int)fmin(NUM("gen_tokens"), 1e6);
	r->gen_tps = NUM("gen_tps");
	r->peak_rss = (uint64_t)fmin(NUM("peak_rss"), 1e18);
	r->mem_need = (uint64_t)fmin(NUM("mem_need"), 1e18);
	r->mem_available = (uint64_t)fmin(NUM("mem_available"), 1e18);
#undef NUM
	r->repacked = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc,
								    "repacked"));
	v = cJSON_GetObjectItemCaseSensitive(doc, "errcode");
	/* only the codes that say memory was short pass through; any other
	 * failure of the child is a failure of the file */
	if (cJSON_IsNumber(v) && (v->valuedouble == MB_ENOMEM ||
				  v->valuedouble == MB_ETOOBIG))
		*code = (int)v->valuedouble;
	r->finite = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "finite"));
	r->templated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc,
								    "templated"));
	v = cJSON_GetObjectItemCaseSensitive(doc, "text");
	snprintf(r->text, sizeof(r->text), "%s",
		 cJSON_IsString(v) ? v->valuestring : "");
	v = cJSON_GetObjectItemCaseSensitive(doc, "error");
	snprintf(r->error, sizeof(r->error), "%s",
		 cJSON_IsString(v) ? v->valuestring : "");
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok")) &&
	    r->error[0] == '\0')
		snprintf(r->error, sizeof(r->error), "no reason given");
	cJSON_Delete(doc);
}

int mb_smoke_isolated(const char *exe, const char *path, int n_gen,
		      uint64_t mem_limit, int timeout_s,
		      struct mb_smoke_result *r)
{
	char self[4096], tokens[16], **envp = NULL;
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	struct mb_buf ob, eb;
	double deadline;
	pid_t pid;
	int st = 0, rc, timed_out = 0, open_fds = 2;

	memset(r, 0, sizeof(*r));
	if (exe == NULL) {
		if (mb_self_exe(self, sizeof(self)) != 0) {
			snprintf(r->error, sizeof(r->error), "cannot find this "
				 "program to run the smoke test: %s",
				 strerror(errno));
			return MB_EINTERNAL;
		}
		exe = self;
	}
	if (timeout_s <= 0)
		timeout_s = 600;
	if (mem_limit == 0)
		mem_limit = mb_proc_kb_field("/proc/meminfo", "MemTotal:");
	snprintf(tokens, sizeof(tokens), "%d", n_gen);
	/* the child's environment, made before the fork: ggml's abort
	 * attaches gdb for a backtrace unless told not to */
	{
		size_t n = 0;

		while (environ[n] != NULL)
			n++;
		envp = mb_calloc(n + 2, sizeof(*envp));
		if (envp == NULL)
			return MB_ENOMEM;
		n = 0;
		for (size_t k = 0; environ[k] != NULL; k++)
			if (strncmp(environ[k], "GGML_NO_BACKTRACE=", 18) != 0)
				envp[n++] = environ[k];
		envp[n++] = (char *)"GGML_NO_BACKTRACE=1";
		envp[n] = NULL;
	}
	if (pipe(out) != 0 || pipe(errp) != 0 ||
	    fcntl(out[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(out[1], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(errp[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(errp[1], F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(r->error, sizeof(r->error), "cannot run the smoke test: "
			 "%s", strerror(errno));
		rc = mb_err_from_errno(errno);
		goto close;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(r->error, sizeof(r->error), "cannot run the smoke test: "
			 "%s", strerror(errno));
		rc = mb_err_from_errno(errno);
		goto close;
	}
	if (pid == 0) {
		/* async-signal-safe calls only until exec: the parent has
		 * threads */
		struct rlimit core = { 0, 0 };

		setpgid(0, 0); /* its own group, so a timeout ends it all */
		dup2(out[1], 1);
		dup2(errp[1], 2);
		setrlimit(RLIMIT_CORE, &core);
#if !defined(__SANITIZE_ADDRESS__)
		if (mem_limit > 0) {
			/* the heap and anonymous maps, not the model's file
			 * mapping: what a runaway load would grow */
			struct rlimit data = { mem_limit, mem_limit };

			setrlimit(RLIMIT_DATA, &data);
		}
#endif
		{
			char *const args[] = { (char *)exe, (char *)"smoke",
					       (char *)path, (char *)"--tokens",
					       tokens, (char *)"--json", NULL };

			execve(exe, args, envp);
		}
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	out[1] = errp[1] = -1;
	mb_buf_init(&ob, 1 << 20);
	mb_buf_init(&eb, 1 << 20);
	deadline = mb_now_s() + timeout_s;
	while (open_fds > 0) {
		struct pollfd pf[2] = { { out[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
		double left = deadline - mb_now_s();
		int k;

		if (left <= 0) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			break;
		}
		if (poll(pf, 2, (int)(left * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (k = 0; k < 2; k++) {
			char buf[8192];
			ssize_t n;
			struct mb_buf *b = k == 0 ? &ob : &eb;

			if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[k].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pf[k].fd);
				if (k == 0)
					out[0] = -1;
				else
					errp[0] = -1;
				open_fds--;
				continue;
			}
			if (b->len + (size_t)n > b->cap) {
				/* keep the newest stderr: the cause is late */
				size_t drop = b->len / 2;

				memmove(b->data, b->data + drop, b->len - drop);
				b->len -= drop;
			}
			mb_buf_add(b, buf, (size_t)n);
		}
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		snprintf(r->error, sizeof(r->error), "the smoke test of '%.400s' "
			 "did not finish in %d s", path, timeout_s);
		rc = MB_ETIMEDOUT;
	} else if (WIFSIGNALED(st)) {
		char why[512];

		last_words(eb.data ? eb.data : "", why, sizeof(why));
		snprintf(r->error, sizeof(r->error), "llama.cpp crashed on "
			 "'%.300s' (signal %d, %s)%s%s", path, WTERMSIG(st),
			 strsignal(WTERMSIG(st)), why[0] ? ": " : "", why);
		rc = MB_EFORMAT;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(r->error, sizeof(r->error), "cannot run '%.400s' for the "
			 "smoke test", exe);
		rc = MB_EINTERNAL;
	} else {
		int code = MB_EFORMAT;

		result_from_json(ob.data ? ob.data : "", ob.len, r, &code);
		rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 && r->error[0] == '\0'
			     ? 0 : code;
		if (rc != 0 && r->error[0] == '\0') {
			char why[512];

			last_words(eb.data ? eb.data : "", why, sizeof(why));
			snprintf(r->error, sizeof(r->error), "the smoke test "
				 "failed (exit %d): %s", WEXITSTATUS(st), why);
		}
	}
	mb_buf_release(&ob);
	mb_buf_release(&eb);
close:
	if (out[0] >= 0)
		close(out[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	free(envp);
	return rc;
}
