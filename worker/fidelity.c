/*
 * mibera-worker fidelity F16.gguf Q.gguf... [--text FILE] [--chunks N]
 *     [--ctx N] [--min-top1 F] [--threads N] [--cpu] [--json]
 * How far each quant's predictions are from its F16's, over held-out
 * text: the figures llama-perplexity --kl-divergence reports, with its
 * definitions (tools/perplexity/perplexity.cpp):
 *
 *   The text is cut into chunks of --ctx tokens; each chunk is evaluated
 *   alone (its first token replaced by BOS when the vocabulary adds one),
 *   and the positions i from ctx/2 to ctx-2 are scored: each predicts
 *   token i+1 having seen at least half a chunk of context.
 *   - KL divergence at a position: sum over the vocabulary of
 *     p_F16 * (log p_F16 - log p_Q); reported as the mean and the 99th
 *     percentile (linear interpolation between the sorted values, as
 *     llama-perplexity's "99.0% KLD").
 *   - top-1 agreement: the fraction of positions where both models' most
 *     likely token is the same.
 *   - perplexity ratio: exp(mean(-log p_Q(next)) - mean(-log p_F16(next))),
 *     llama-perplexity's "Mean PPL(Q)/PPL(base)".
 * llama-perplexity stores the base's log-probabilities as 16-bit values
 * and drops those below -16 from the sum; here they are kept as floats and
 * summed whole, so the figures agree with it to its rounding.
 *
 * The F16's log-probabilities of the scored positions go to an unlinked
 * temporary file beside the first quant (a chunk of them in memory at a
 * time: a 150k vocabulary makes 150 MB per 512-token chunk), then each
 * quant is run over the same chunks and compared. One "result" event (and
 * with --json one line on stdout) per quant. A quant whose top-1 agreement
 * is below --min-top1 is broken, not lossy: the verb reports every file,
 * then exits 3 naming the figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "proto/event.h"
#include "worker/lmrun.h"
#include "worker/verbs.h"
#include "worker/verbutil.h"

#define MAX_FILES 64

/* Below this top-1 agreement with its own F16 a quant is taken for a
 * broken file. Measured over data/calibration/eval.txt (16 chunks of 512):
 * the Q2_K of the tiny random test models agrees at 0.19 (phi4-tiny,
 * whose near-flat distributions make the top token a coin toss between
 * near ties), 0.38 (llama-tiny), 0.44 (qwen2-tiny), 0.87 (phi4-mini-tiny,
 * tied embeddings); IQ2_XS of phi4-mini-tiny 0.88; a quant whose token
 * embedding was written as zeros 0.00 (chance is 1/vocabulary). Real
 * models' 2-bit quants agree at 0.7 or more (llama.cpp's KL divergence
 * tables). 0.10 passes every lossy file and fails the broken ones. */
#define DEFAULT_MIN_TOP1 0.10

struct figures {
	double kld_mean, kld_p99, kld_max, top1, ppl, ppl_base, ppl_ratio;
	long long n;
	double seconds;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker fidelity F16.gguf Q.gguf... [--text "
		   "FILE] [--chunks N]\n"
		   "           [--ctx N] [--min-top1 F] [--threads N] [--cpu] "
		   "[--json]\n\n"
		   "Runs the F16 and each quant over chunks of held-out text "
		   "(default: mibera's\n"
		   "data/calibration/eval.txt, 16 chunks of 512 tokens with a GPU, "
		   "4 without) and\n"
		   "reports, per quant, the KL divergence of its next-token "
		   "distribution from the\n"
		   "F16's (mean and 99th percentile), how "
		   "often both predict\n"
		   "the same token (top-1) and PPL(Q)/PPL(F16), as "
		   "llama-perplexity --kl-divergence\n"
		   "defines them. Exits 3 when a quant's top-1 agreement is below "
		   "--min-top1\n"
		   "(default %.2f): such a file is broken, not lossy.\n",
		DEFAULT_MIN_TOP1);
}

/* log-softmax of x (n values) into out, in double; returns the arg max. */
static int log_softmax(const float *x, int n, float *out)
{
	double max = x[0], sum = 0, lse;
	int i, imax = 0;

	for (i = 1; i < n; i++)
		if (x[i] > max) {
			max = x[i];
			imax = i;
		}
	for (i = 0; i < n; i++)
		sum += exp((double)x[i] - max);
	lse = max + log(sum);
	for (i = 0; i < n; i++)
		out[i] = (float)((double)x[i] - lse);
	return imax;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

/* llama-perplexity's percentile: linear between the sorted values. */
static double percentile(const float *v, long long n, double fraction)
{
	double p = fraction * (double)(n - 1);
	long long ip = (long long)p;

	p -= (double)ip;
	if (ip + 1 >= n)
		return v[n - 1];
	return (1 - p) * v[ip] + p * v[ip + 1];
}

struct run {
	const int32_t *toks;
	int n_ctx, first, nchunk, npos;	/* npos scored per chunk */
	int n_vocab, threads, cpu;
	int fd;				/* the F16's log-probs */
	int *top_base;			/* per scored position */
	double *nll_base;
	float *block;			/* one chunk of log-probs */
	float *lq;			/* one position's, of the quant */
	struct mb_events *ev;		/* where the F16's load is told */
	char err[1024];
};

static int base_pass(struct run *r, const char *f16)
{
	struct lm lm;
	int k, i, rc = -1;

	if (lm_open(&lm, f16, r->n_ctx, r->threads, r->cpu, NULL, NULL, r->err,
		    sizeof(r->err)) != 0)
		return -1;
	/* the quants load the same way */
	lm_say_offload(&lm, r->ev, "fidelity");
	if (lm.n_vocab != r->n_vocab) {
		snprintf(r->err, sizeof(r->err), "'%s' has %d tokens, not %d",
			 f16, lm.n_vocab, r->n_vocab);
		goto out;
	}
	for (k = 0; k < r->nchunk; k++) {
		const int32_t *t = r->toks + (size_t)k * (size_t)r->n_ctx;

		if (lm_eval_chunk(&lm, t, r->first, r->err, sizeof(r->err)) != 0)
			goto out;
		for (i = 0; i < r->npos; i++) {
			int pos = r->first + i;
			size_t at = (size_t)k * (size_t)r->npos + (size_t)i;
			float *lp = r->block + (size_t)i * (size_t)r->n_vocab;

			r->top_base[at] = log_softmax(lm_logits(&lm, pos),
						      r->n_vocab, lp);
			r->nll_base[at] = -(double)lp[t[pos + 1]];
		}
		if (mb_pwrite_all(r->fd, r->block, (size_t)r->npos *
				  (size_t)r->n_vocab * sizeof(float),
				  (uint64_t)k * (uint64_t)r->npos *
				  (uint64_t)r->n_vocab * sizeof(float)) != 0) {
			snprintf(r->err, sizeof(r->err), "cannot write the "
				 "F16's log-probabilities: %s", strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	lm_close(&lm);
	return rc;
}

static int quant_pass(struct run *r, const char *path, struct figures *fg)
{
	struct lm lm;
	long long n = (long long)r->nchunk * r->npos, same = 0;
	double sum_kld = 0, sum_nll = 0, sum_nll_base = 0, t0 = mb_now_s();
	float *kld = NULL;
	size_t got;
	int k, i, j, rc = -1;

	memset(fg, 0, sizeof(*fg));
	if (lm_open(&lm, path, r->n_ctx, r->threads, r->cpu, NULL, NULL, r->err,
		    sizeof(r->err)) != 0)
		return -1;
	kld = malloc((size_t)n * sizeof(float));
	if (kld == NULL) {
		snprintf(r->err, sizeof(r->err), "out of memory");
		goto out;
	}
	if (lm.n_vocab != r->n_vocab) {
		snprintf(r->err, sizeof(r->err), "'%s' has a vocabulary of %d "
			 "tokens, its F16 one of %d", path, lm.n_vocab,
			 r->n_vocab);
		goto out;
	}
	for (k = 0; k < r->nchunk; k++) {
		const int32_t *t = r->toks + (size_t)k * (size_t)r->n_ctx;
		size_t bytes = (size_t)r->npos * (size_t)r->n_vocab *
			       sizeof(float);

		if (lm_eval_chunk(&lm, t, r->first, r->err, sizeof(r->err)) != 0)
			goto out;
		if (mb_pread_full(r->fd, r->block, bytes, (uint64_t)k * bytes,
				  &got) != 0 || got != bytes) {
			snprintf(r->err, sizeof(r->err), "cannot read back the "
				 "F16's log-probabilities");
			goto out;
		}
		for (i = 0; i < r->npos; i++) {
			int pos = r->first + i;
			size_t at = (size_t)k * (size_t)r->npos + (size_t)i;
			const float *lp = r->block + (size_t)i * (size_t)r->n_vocab;
			double s = 0;
			int top;

			top = log_softmax(lm_logits(&lm, pos), r->n_vocab, r->lq);
			for (j = 0; j < r->n_vocab; j++)
				s += exp((double)lp[j]) *
				     ((double)lp[j] - (double)r->lq[j]);
			kld[at] = (float)s;
			sum_kld += s;
			sum_nll += -(double)r->lq[t[pos + 1]];
			sum_nll_base += r->nll_base[at];
			same += top == r->top_base[at];
		}
	}
	qsort(kld, (size_t)n, sizeof(float), cmp_float);
	fg->n = n;
	fg->kld_mean = sum_kld / (double)n;
	fg->kld_p99 = percentile(kld, n, 0.99);
	fg->kld_max = kld[n - 1];
	fg->top1 = (double)same / (double)n;
	fg->ppl = exp(sum_nll / (double)n);
	fg->ppl_base = exp(sum_nll_base / (double)n);
	fg->ppl_ratio = exp((sum_nll - sum_nll_base) / (double)n);
	fg->seconds = mb_now_s() - t0;
	rc = 0;
out:
	free(kld);
	lm_close(&lm);
	return rc;
}

/* A quant is broken when it mostly predicts other tokens than its F16, or
 * when its outputs are not numbers at all (NaN logits from a damaged
 * norm). */
static int broken(const struct figures *f, double min_top1)
{
	return !(f->top1 >= min_top1) || !isfinite(f->kld_mean) ||
	       !isfinite(f->ppl_ratio);
}

/* ,"key":value with %.*g, or null for what JSON cannot hold (NaN). */
static void add_num(struct mb_buf *b, const char *key, double v, int prec)
{
	if (isfinite(v))
		mb_buf_addf(b, ",\"%s\":%.*g", key, prec, v);
	else
		mb_buf_addf(b, ",\"%s\":null", key);
}

/* The members of a result: "file":...,"kld_mean":... */
static int format_result(struct mb_buf *b, const char *file,
			 const struct figures *f, double min_top1)
{
	mb_buf_adds(b, "\"file\":");
	mb_json_quote(b, file);
	add_num(b, "kld_mean", f->kld_mean, 6);
	add_num(b, "kld_p99", f->kld_p99, 6);
	add_num(b, "kld_max", f->kld_max, 6);
	add_num(b, "top1", f->top1, 8);
	add_num(b, "ppl", f->ppl, 8);
	add_num(b, "ppl_base", f->ppl_base, 8);
	add_num(b, "ppl_ratio", f->ppl_ratio, 8);
	mb_buf_addf(b, ",\"tokens\":%lld,\"seconds\":%.3f,\"ok\":%s", f->n,
		    f->seconds, broken(f, min_top1) ? "false" : "true");
	return mb_buf_error(b);
}

int verb_fidelity(int argc, char **argv)
{
	struct mb_events ev = { .fd = -1 };
	struct run r;
	struct lm lm;
	struct figures fg;
	const char *files[MAX_FILES + 1], *text = NULL;
	char tmpl[4200], tbuf[4200], *end;
	int32_t *toks = NULL;
	size_t ntok = 0;
	int a, nf = 0, chunks = 0, json = 0, bad = 0, i, ret = 1;
	double min_top1 = DEFAULT_MIN_TOP1, t0;

	memset(&r, 0, sizeof(r));
	memset(&lm, 0, sizeof(lm));
	r.fd = -1;
	r.n_ctx = 512;
	for (a = 1; a < argc; a++) {
		const char *s = argv[a];
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(s, "--text") == 0 && v) {
			text = v;
			a++;
		} else if (strcmp(s, "--chunks") == 0 && v) {
			if (verb_parse_int(v, 1, 100000, &chunks) != 0)
				goto usage;
			a++;
		} else if (strcmp(s, "--ctx") == 0 && v) {
			if (verb_parse_int(v, 16, 65536, &r.n_ctx) != 0)
				goto usage;
			a++;
		} else if (strcmp(s, "--threads") == 0 && v) {
			if (verb_parse_int(v, 1, 256, &r.threads) != 0)
				goto usage;
			a++;
		} else if (strcmp(s, "--min-top1") == 0 && v) {
			errno = 0;
			min_top1 = strtod(v, &end);
			if (errno != 0 || end == v || *end != '\0' ||
			    !(min_top1 >= 0 && min_top1 <= 1))
				goto usage;
			a++;
		} else if (strcmp(s, "--cpu") == 0) {
			r.cpu = 1;
		} else if (strcmp(s, "--json") == 0) {
			json = 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			goto usage;
		} else if (nf < MAX_FILES + 1) {
			files[nf++] = s;
		} else {
			fprintf(stderr, "mibera-worker fidelity: at most %d quants "
				"at a time\n", MAX_FILES);
			return 2;
		}
	}
	if (nf < 2)
		goto usage;
	if (text == NULL) {
		if (lm_default_text("eval.txt", tbuf, sizeof(tbuf), r.err,
				    sizeof(r.err)) != 0) {
			fprintf(stderr, "mibera-worker fidelity: %s\n", r.err);
			return 2;
		}
		text = tbuf;
	}
	/* 16 chunks of 512 (4080 scored positions) on a GPU; 4 on a
	 * CPU-only box, where a tiny model takes a second a chunk */
	if (chunks == 0)
		chunks = lm_has_gpu() ? 16 : 4;
	if (mb_events_from_env(&ev, "fidelity") != 0) {
		fprintf(stderr, "mibera-worker fidelity: cannot open the event "
			"journal\n");
		return 1;
	}
	r.ev = &ev;
	t0 = mb_now_s();
	/* the F16's vocabulary tokenizes the text for every file: a quant
	 * has the same tokenizer, checked by its vocabulary size below */
	if (lm_open(&lm, files[0], 32, r.threads, 1, NULL, NULL, r.err,
		    sizeof(r.err)) != 0 ||
	    lm_tokenize_file(&lm, text, &toks, &ntok, r.err,
			     sizeof(r.err)) != 0) {
		fprintf(stderr, "mibera-worker fidelity: %s\n", r.err);
		ret = 3;
		goto out;
	}
	r.n_vocab = lm.n_vocab;
	lm_close(&lm);
	r.toks = toks;
	r.first = r.n_ctx / 2;
	r.npos = r.n_ctx - 1 - r.first;
	r.nchunk = (int)(ntok / (size_t)r.n_ctx);
	if (r.nchunk < 1) {
		fprintf(stderr, "mibera-worker fidelity: '%s' has %zu tokens, "
			"fewer than one chunk of %d\n", text, ntok, r.n_ctx);
		ret = 3;
		goto out;
	}
	if (r.nchunk > chunks)
		r.nchunk = chunks;
	r.top_base = calloc((size_t)r.nchunk * (size_t)r.npos, sizeof(int));
	r.nll_base = calloc((size_t)r.nchunk * (size_t)r.npos, sizeof(double));
	r.block = malloc((size_t)r.npos * (size_t)r.n_vocab * sizeof(float));
	r.lq = malloc((size_t)r.n_vocab * sizeof(float));
	if (r.top_base == NULL || r.nll_base == NULL || r.block == NULL ||
	    r.lq == NULL) {
		fprintf(stderr, "mibera-worker fidelity: out of memory for a "
			"vocabulary of %d\n", r.n_vocab);
		goto out;
	}
	end = strrchr(files[1], '/');
	snprintf(tmpl, sizeof(tmpl), "%.*s.fidelity-XXXXXX",
		 end ? (int)(end - files[1] + 1) : 0, files[1]);
	r.fd = mkstemp(tmpl);
	if (r.fd < 0) {
		fprintf(stderr, "mibera-worker fidelity: cannot make a "
			"temporary file '%s': %s\n", tmpl, strerror(errno));
		goto out;
	}
	unlink(tmpl);
	if (base_pass(&r, files[0]) != 0) {
		fprintf(stderr, "mibera-worker fidelity: %s: %s\n",
			verb_base_name(files[0]), r.err);
		ret = 3;
		goto out;
	}
	mb_events_progress_unit(&ev, verb_base_name(files[0]), 1, (uint64_t)nf,
				1 / (mb_now_s() - t0 + 1e-9), "files", 1);
	if (!json)
		printf("%-32s %10s %10s %8s %10s\n", "file", "KLD mean",
		       "KLD p99", "top-1", "PPL ratio");
	for (i = 1; i < nf; i++) {
		struct mb_buf b;

		if (quant_pass(&r, files[i], &fg) != 0) {
			fprintf(stderr, "mibera-worker fidelity: %s: %s\n",
				verb_base_name(files[i]), r.err);
			ret = 3;
			goto out;
		}
		mb_buf_init(&b, 4096);
		if (format_result(&b, verb_base_name(files[i]), &fg, min_top1) == 0) {
			mb_events_emit(&ev, "result", b.data);
			if (json)
				printf("{%s}\n", b.data);
		}
		mb_buf_release(&b);
		if (!json)
			printf("%-32s %10.6f %10.6f %8.4f %10.6f\n",
			       verb_base_name(files[i]), fg.kld_mean, fg.kld_p99,
			       fg.top1, fg.ppl_ratio);
		fflush(stdout);
		if (!isfinite(fg.kld_mean) || !isfinite(fg.ppl_ratio)) {
			fprintf(stderr, "mibera-worker fidelity: %s gives logits "
				"that are not numbers (KL divergence %g): the "
				"file is broken, not just lossy\n",
				verb_base_name(files[i]), fg.kld_mean);
			bad++;
		} else if (broken(&fg, min_top1)) {
			fprintf(stderr, "mibera-worker fidelity: %s agrees with "
				"its F16 on the most likely next token at only "
				"%.1f%% of %lld positions (at least %.0f%% "
				"expected; mean KL divergence %.4f): the file is "
				"broken, not just lossy\n", verb_base_name(files[i]),
				100 * fg.top1, fg.n, 100 * min_top1,
				fg.kld_mean);
			bad++;
		}
		mb_events_progress_unit(&ev, verb_base_name(files[i]),
					(uint64_t)i + 1, (uint64_t)nf,
					(i + 1) / (mb_now_s() - t0 + 1e-9),
					"files", 1);
	}
	if (!json)
		printf("fidelity: %d quants over %d chunks of %d tokens (%d "
		       "scored each) in %.2f s\n", nf - 1, r.nchunk, r.n_ctx,
		       r.npos, mb_now_s() - t0);
	ret = bad ? 3 : 0;
out:
	if (r.fd >= 0)
		close(r.fd);
	free(r.top_base);
	free(r.nll_base);
	free(r.block);
	free(r.lq);
	free(toks);
	lm_close(&lm);
	mb_events_close(&ev);
	return ret;
usage:
	usage(stderr);
	return 2;
}
