/* mibera-worker imatrix, quantize --imatrix and fidelity, as the job runs
 * them on phi4-mini-tiny (2 layers, tied embeddings: its next-token
 * distributions are peaked enough that quantization noise orders the
 * types). The importance matrix covers every block weight with the tokens
 * it saw and is kept on a rerun; the i-quants that need one are refused
 * without it and made with it, and load and run in libllama; the fidelity
 * report orders Q8_0 < Q4_K_M < Q2_K by KL divergence, gives the same
 * figures twice, agrees with KL divergence, top-1 and perplexity ratio
 * computed here from both models' full logits, and fails a quant whose
 * embedding was written as zeros with its top-1 figure, and one whose
 * logits are NaN. */
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/gguf.h"
#include "llama.h"
#include "llm.h"
#include "model.h"
#include "th.h"

#define CTX 64		/* the fidelity chunk of the independent check */

static char root[512], worker[600], f16[700], imx[700], text[700];

static void path_in(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", root, name);
}

/* Quantizes the F16 to name as type, with the imatrix when use_imx. */
static void quantize(const char *in, const char *name, const char *type,
		     int use_imx)
{
	char out[700], *log;
	int rc;

	path_in(out, sizeof(out), name);
	rc = th_sh(&log, "'%s' quantize '%s' '%s' %s --threads 2 %s%s", worker,
		 in, out, type, use_imx ? "--imatrix " : "",
		 use_imx ? imx : "");
	if (rc != 0)
		fail_msg("quantize %s exited %d:\n%s", name, rc, log);
	free(log);
}

static int setup(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	char src[700], *log;
	int rc;

	(void)state;
	snprintf(worker, sizeof(worker), "%s/mibera-worker", MB_BINARY_DIR);
	snprintf(text, sizeof(text), "%s/data/calibration/eval.txt",
		 MB_SOURCE_DIR);
	if (th_tmpdir("fidelity", root, sizeof(root)) != 0)
		return -1;
	path_in(src, sizeof(src), "mini");
	path_in(f16, sizeof(f16), "mini-F16.gguf");
	path_in(imx, sizeof(imx), "imatrix.gguf");
	if (th_mkmodel(src, "phi4-mini-tiny", extra) != 0)
		return -1;
	rc = th_sh(&log, "'%s' convert '%s' '%s'", worker, src, f16);
	if (rc == 0) {
		free(log);
		rc = th_sh(&log, "'%s' imatrix '%s' '%s' --text "
			 "'%s/data/calibration/imatrix.txt' --chunks 8 --ctx 128 "
			 "--threads 2 --cpu", worker, f16, imx, MB_SOURCE_DIR);
	}
	if (rc != 0 || strstr(log, "imatrix: offload: none, on the CPU") == NULL) {
		/* it runs the model, and says where */
		fprintf(stderr, "setup: exit %d\n%s", rc, log);
		free(log);
		return -1;
	}
	print_message("%s", log);
	free(log);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmtree(root);
	return 0;
}

static const struct mb_gguf_kv *kv_of(const struct mb_gguf *g, const char *k)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, k);

	if (kv == NULL)
		fail_msg("no key '%s'", k);
	return kv;
}

/* With the importance matrix the k-quants take another code path; on the
 * AVX2 lanes of the libllama deploy/deps.sh builds it writes the file the
 * scalar code (GGML_QUANTS_SCALAR=1) writes, byte for byte. */
static void test_imatrix_lanes_same_file(void **state)
{
	char lanes[700], scalar[700], *log;
	int rc;

	(void)state;
	path_in(lanes, sizeof(lanes), "lanes-imx-Q4_K_M.gguf");
	path_in(scalar, sizeof(scalar), "scalar-imx-Q4_K_M.gguf");
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q4_K_M --imatrix '%s'",
		   worker, f16, lanes, imx);
	if (rc != 0 || strstr(log, "with an importance matrix; blocks made "
				   "on AVX2 lanes") == NULL)
		fail_msg("quantize on the lanes exited %d:\n%s", rc, log);
	free(log);
	rc = th_sh(&log, "GGML_QUANTS_SCALAR=1 '%s' quantize '%s' '%s' Q4_K_M "
		   "--imatrix '%s'", worker, f16, scalar, imx);
	if (rc != 0 || strstr(log, "blocks made by the scalar code") == NULL)
		fail_msg("quantize with the scalar code exited %d:\n%s", rc,
			 log);
	free(log);
	assert_true(th_same_file(lanes, scalar));
	unlink(lanes);
	unlink(scalar);
}

/* Reads n floats of tensor name of the GGUF at path. */
static float *tensor_f32(const char *path, const struct mb_gguf *g,
			 const char *name, size_t n)
{
	const struct mb_gguf_tensor *t = mb_gguf_tensor(g, name);
	float *v = malloc(n * sizeof(float));
	FILE *f = fopen(path, "rb");

	assert_non_null(t);
	assert_non_null(v);
	assert_non_null(f);
	assert_int_equal(t->type, MB_GGML_F32);
	assert_int_equal(t->size, n * sizeof(float));
	assert_int_equal(fseek(f, (long)t->offset, SEEK_SET), 0);
	assert_int_equal(fread(v, sizeof(float), n, f), n);
	fclose(f);
	return v;
}

static void test_imatrix_file(void **state)
{
	static const char *const weights[] = { "attn_qkv", "attn_output",
					       "ffn_up", "ffn_down" };
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char err[512], name[128], shortf[700], *log;
	int layer, w;
	size_t j;

	(void)state;
	if (mb_gguf_read(imx, &g, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(kv_of(g, "general.type")->v.s, "imatrix");
	assert_int_equal(kv_of(g, "imatrix.chunk_count")->v.u, 8);
	assert_int_equal(kv_of(g, "imatrix.chunk_size")->v.u, 128);
	kv = kv_of(g, "imatrix.datasets");
	assert_int_equal(kv->n, 1);
	assert_string_equal(kv->strs[0], "imatrix.txt");
	/* every weight of both blocks, the last layer's included */
	assert_int_equal(g->ntensors, 2 * 2 * 4);
	for (layer = 0; layer < 2; layer++)
		for (w = 0; w < 4; w++) {
			const struct mb_gguf_tensor *t;
			float *sums, *cnt;
			double total = 0;

			snprintf(name, sizeof(name), "blk.%d.%s.weight.in_sum2",
				 layer, weights[w]);
			t = mb_gguf_tensor(g, name);
			assert_non_null(t);
			/* the input width: hidden 384, ffn_down's 1024 */
			assert_int_equal(t->ne[0], w == 3 ? 1024 : 384);
			sums = tensor_f32(imx, g, name, t->ne[0]);
			snprintf(name, sizeof(name), "blk.%d.%s.weight.counts",
				 layer, weights[w]);
			cnt = tensor_f32(imx, g, name, 1);
			/* every token of the 8 chunks of 128 */
			assert_true(cnt[0] == 8 * 128);
			for (j = 0; j < t->ne[0]; j++) {
				assert_true(isfinite(sums[j]) && sums[j] >= 0);
				total += sums[j];
			}
			assert_true(total > 0);
			free(sums);
			free(cnt);
		}
	mb_gguf_free(g);

	/* a second run keeps the file */
	assert_int_equal(th_sh(&log, "'%s' imatrix '%s' '%s' --text '%s' --ctx "
			     "128 --cpu", worker, f16, imx, text), 0);
	assert_non_null(strstr(log, "already done"));
	free(log);
	/* too little text for one chunk: a message, not a crash */
	path_in(shortf, sizeof(shortf), "short.txt");
	assert_int_equal(th_write_file(shortf, "Hello.", 6), 0);
	assert_int_equal(th_sh(&log, "'%s' imatrix '%s' '%s/x.gguf' --text '%s' "
			     "--ctx 128 --cpu", worker, f16, root, shortf), 3);
	assert_non_null(strstr(log, "fewer than one chunk of 128"));
	free(log);
}

static int file_type_of(const char *path, const char *tensor)
{
	const struct mb_gguf_tensor *t;
	struct mb_gguf *g;
	char err[512];
	int type;

	if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	t = mb_gguf_tensor(g, tensor);
	assert_non_null(t);
	type = t->type;
	mb_gguf_free(g);
	return type;
}

static void test_iquants_with_imatrix(void **state)
{
	static const int32_t toks[16] = { 1, 50, 300, 7, 99, 512, 13, 640,
					  2, 88, 901, 45, 77, 230, 5, 400 };
	const char *const names[] = { "mini-IQ4_XS.gguf", "mini-IQ2_XS.gguf" };
	char out[700], plain[700], *log, err[2048];
	struct mb_gguf *g;
	float *ref, *l;
	double rel, top1;
	int nv, nv2, i;

	(void)state;
	path_in(out, sizeof(out), "mini-IQ2_XS.gguf");
	/* IQ2_XS without an importance matrix: refused before any work */
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' IQ2_XS", worker,
			     f16, out), 2);
	assert_non_null(strstr(log, "IQ2_XS needs an importance matrix"));
	assert_int_equal(access(out, F_OK), -1);
	free(log);
	quantize(f16, names[0], "iq4_xs", 1);
	quantize(f16, names[1], "IQ2_XS", 1);
	/* rows of 384 do not fit IQ4_XS's 256-blocks: IQ4_NL; ffn_down's
	 * 1024 do */
	path_in(out, sizeof(out), names[0]);
	assert_int_equal(file_type_of(out, "blk.0.ffn_down.weight"),
			 MB_GGML_IQ4_XS);
	path_in(out, sizeof(out), names[1]);
	assert_int_equal(file_type_of(out, "blk.0.ffn_down.weight"),
			 MB_GGML_IQ2_XS);
	if (mb_gguf_read(out, &g, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(kv_of(g, "quantize.imatrix.file")->v.s,
			    "imatrix.gguf");
	assert_int_equal(kv_of(g, "quantize.imatrix.entries_count")->v.u, 8);
	mb_gguf_free(g);

	/* the imatrix changes what a k-quant stores */
	quantize(f16, "mini-Q2_K.gguf", "Q2_K", 0);
	quantize(f16, "mini-Q2_K-imx.gguf", "Q2_K", 1);
	path_in(out, sizeof(out), "mini-Q2_K-imx.gguf");
	path_in(plain, sizeof(plain), "mini-Q2_K.gguf");
	assert_int_not_equal(th_sh(NULL, "cmp -s '%s' '%s'", out, plain), 0);

	if (th_llama_logits(f16, toks, 16, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	for (i = 0; i < 2; i++) {
		size_t k;

		path_in(out, sizeof(out), names[i]);
		if (th_llama_logits(out, toks, 16, &l, &nv2, err,
				    sizeof(err)) != 0)
			fail_msg("%s: %s", names[i], err);
		assert_int_equal(nv2, nv);
		for (k = 0; k < (size_t)16 * (size_t)nv; k++)
			assert_true(isfinite(l[k]));
		th_logits_compare(ref, l, 16, nv, &rel, &top1);
		print_message("%s vs F16: rel max err %.3f, top-1 %.0f%%\n",
			      names[i], rel, 100 * top1);
		assert_true(top1 >= 0.5);
		free(l);
	}
	free(ref);
}

/* The fidelity verb's --json line for file (a base name) in log. */
static cJSON *result_of(const char *log, const char *file)
{
	const char *p = log;

	while ((p = strstr(p, "{\"file\":")) != NULL) {
		const char *e = strchr(p, '\n');
		cJSON *o = cJSON_ParseWithLength(p, e ? (size_t)(e - p) :
						 strlen(p));
		cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "file");

		if (cJSON_IsString(f) && strcmp(f->valuestring, file) == 0)
			return o;
		cJSON_Delete(o);
		p++;
	}
	fail_msg("no result for %s in:\n%s", file, log);
	return NULL;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		fail_msg("no number '%s'", k);
	return v->valuedouble;
}

static void test_order_and_reproducible(void **state)
{
	static const char *const types[] = { "Q8_0", "Q4_K_M", "Q2_K" };
	char q[3][700], name[64], *log, *again, *line, *line2;
	double kld[3];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "mini-%s.gguf", types[i]);
		path_in(q[i], sizeof(q[i]), name);
		if (access(q[i], F_OK) != 0)
			quantize(f16, name, types[i], 0);
	}
	assert_int_equal(th_sh(&log, "'%s' fidelity '%s' '%s' '%s' '%s' --text "
			     "'%s' --chunks 4 --ctx 128 --threads 2 --cpu "
			     "--json", worker, f16, q[0], q[1], q[2], text), 0);
	/* where the model ran, said once: on the CPU (--cpu, and no GPU) */
	assert_non_null(strstr(log, "fidelity: offload: none, on the CPU"));
	for (i = 0; i < 3; i++) {
		cJSON *o;

		snprintf(name, sizeof(name), "mini-%s.gguf", types[i]);
		o = result_of(log, name);
		kld[i] = num(o, "kld_mean");
		print_message("%-7s KLD mean %.6f p99 %.6f top-1 %.4f PPL ratio "
			      "%.6f over %.0f tokens\n", types[i], kld[i],
			      num(o, "kld_p99"), num(o, "top1"),
			      num(o, "ppl_ratio"), num(o, "tokens"));
		assert_true(num(o, "tokens") == 4 * 63);
		assert_true(num(o, "kld_p99") >= kld[i]);
		assert_true(num(o, "top1") >= 0.5 && num(o, "top1") <= 1);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
		cJSON_Delete(o);
	}
	/* more bits, less divergence: with room between them (measured:
	 * about 30x from Q8_0 to Q4_K_M and 4x from Q4_K_M to Q2_K) */
	assert_true(kld[0] > 0);
	assert_true(kld[0] * 5 < kld[1]);
	assert_true(kld[1] * 2 < kld[2]);

	/* the same files give the same figures */
	assert_int_equal(th_sh(&again, "'%s' fidelity '%s' '%s' --text '%s' "
			     "--chunks 4 --ctx 128 --threads 2 --cpu --json",
			     worker, f16, q[1], text), 0);
	line = strstr(log, "{\"file\":\"mini-Q4_K_M.gguf\"");
	line2 = strstr(again, "{\"file\":\"mini-Q4_K_M.gguf\"");
	assert_non_null(line);
	assert_non_null(line2);
	/* all but the timing, which ends the line */
	assert_int_equal(strncmp(line, line2,
				 (size_t)(strstr(line, "\"seconds\"") - line)), 0);
	free(log);
	free(again);
}

/* The first CTX tokens of the eval text as the verb evaluates them: the
 * model's own tokenizer, the first token BOS. */
static int32_t *chunk_tokens(const char *model_path)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_model *m;
	const struct llama_vocab *v;
	size_t len;
	char *t = th_slurp(text, &len);
	int32_t *toks;
	int n;

	assert_non_null(t);
	mp.n_gpu_layers = 0;
	m = llama_model_load_from_file(model_path, mp);
	assert_non_null(m);
	v = llama_model_get_vocab(m);
	toks = malloc((len + 8) * sizeof(int32_t));
	assert_non_null(toks);
	n = llama_tokenize(v, t, (int32_t)len, toks, (int32_t)len + 8, true,
			   false);
	assert_true(n >= CTX);
	if (llama_vocab_get_add_bos(v))
		toks[0] = llama_vocab_bos(v);
	llama_model_free(m);
	free(t);
	return toks;
}

static void logsoftmax(const float *x, int n, double *out)
{
	double max = x[0], s = 0;
	int i;

	for (i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (i = 0; i < n; i++)
		s += exp(x[i] - max);
	for (i = 0; i < n; i++)
		out[i] = x[i] - max - log(s);
}

static void test_agrees_with_independent_kl(void **state)
{
	char q4[700], *log, err[2048];
	int32_t *toks;
	float *lb, *lq;
	double *pb, *pq, sum_kl = 0, nll = 0, nll_b = 0;
	int nv, nv2, i, j, same = 0, n = 0;
	cJSON *o;

	(void)state;
	path_in(q4, sizeof(q4), "mini-Q4_K_M.gguf");
	if (access(q4, F_OK) != 0)
		quantize(f16, "mini-Q4_K_M.gguf", "Q4_K_M", 0);
	assert_int_equal(th_sh(&log, "'%s' fidelity '%s' '%s' --text '%s' "
			     "--chunks 1 --ctx %d --threads 2 --cpu --json",
			     worker, f16, q4, text, CTX), 0);
	o = result_of(log, "mini-Q4_K_M.gguf");
	free(log);

	toks = chunk_tokens(f16);
	if (th_llama_logits(f16, toks, CTX, &lb, &nv, err, sizeof(err)) != 0 ||
	    th_llama_logits(q4, toks, CTX, &lq, &nv2, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(nv, nv2);
	pb = malloc((size_t)nv * sizeof(double));
	pq = malloc((size_t)nv * sizeof(double));
	assert_non_null(pb);
	assert_non_null(pq);
	/* perplexity.cpp's scored positions: ctx/2 .. ctx-2 */
	for (i = CTX / 2; i < CTX - 1; i++) {
		const float *b = lb + (size_t)i * (size_t)nv;
		const float *q = lq + (size_t)i * (size_t)nv;
		int ab = 0, aq = 0;

		logsoftmax(b, nv, pb);
		logsoftmax(q, nv, pq);
		for (j = 0; j < nv; j++) {
			sum_kl += exp(pb[j]) * (pb[j] - pq[j]);
			if (b[j] > b[ab])
				ab = j;
			if (q[j] > q[aq])
				aq = j;
		}
		same += ab == aq;
		nll += -pq[toks[i + 1]];
		nll_b += -pb[toks[i + 1]];
		n++;
	}
	print_message("independent: KLD %.6f top-1 %.4f PPL ratio %.6f; verb: "
		      "KLD %.6f top-1 %.4f PPL ratio %.6f\n", sum_kl / n,
		      (double)same / n, exp((nll - nll_b) / n),
		      num(o, "kld_mean"), num(o, "top1"), num(o, "ppl_ratio"));
	assert_true(num(o, "tokens") == n);
	assert_true(fabs(num(o, "kld_mean") - sum_kl / n) <=
		    1e-3 * (sum_kl / n) + 1e-7);
	assert_true(fabs(num(o, "top1") - (double)same / n) < 1e-7);
	assert_true(fabs(num(o, "ppl_ratio") - exp((nll - nll_b) / n)) < 1e-4);
	cJSON_Delete(o);
	free(pb);
	free(pq);
	free(lb);
	free(lq);
	free(toks);
}

/* Copies the F16 with the bytes from..to of its tensor data zeroed. */
static void write_zeroed(const char *out, int whole_embedding)
{
	const struct mb_gguf_tensor *t;
	struct mb_gguf *g;
	char err[512];
	unsigned char *data;
	size_t len;

	if (mb_gguf_read(f16, &g, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	t = mb_gguf_tensor(g, "token_embd.weight");
	assert_non_null(t);
	data = (unsigned char *)th_slurp(f16, &len);
	assert_non_null(data);
	if (whole_embedding) /* a tensor written as zeros */
		memset(data + t->offset, 0, (size_t)t->size);
	else /* a write that stopped half-way, the rest left as zeros */
		memset(data + len / 2, 0, len - len / 2);
	assert_int_equal(th_write_file(out, data, len), 0);
	free(data);
	mb_gguf_free(g);
}

static void test_broken_quant_fails(void **state)
{
	char bad_f16[700], bad_q[700], fig[48], *log;
	cJSON *o;

	(void)state;
	path_in(bad_f16, sizeof(bad_f16), "zeroed-F16.gguf");
	path_in(bad_q, sizeof(bad_q), "zeroed-Q8_0.gguf");
	write_zeroed(bad_f16, 1);
	quantize(bad_f16, "zeroed-Q8_0.gguf", "Q8_0", 0);
	assert_int_equal(th_sh(&log, "'%s' fidelity '%s' '%s' --text '%s' "
			     "--chunks 2 --ctx 128 --threads 2 --cpu --json",
			     worker, f16, bad_q, text), 3);
	o = result_of(log, "zeroed-Q8_0.gguf");
	print_message("zeroed embedding: top-1 %.4f, KLD %.4f\n",
		      num(o, "top1"), num(o, "kld_mean"));
	assert_true(num(o, "top1") < 0.5);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
	/* the message names the file and the figure */
	assert_non_null(strstr(log, "zeroed-Q8_0.gguf agrees with its F16"));
	snprintf(fig, sizeof(fig), "at only %.1f%%", 100 * num(o, "top1"));
	assert_non_null(strstr(log, fig));
	assert_non_null(strstr(log, "broken"));
	cJSON_Delete(o);
	free(log);

	/* half the data zeroed: the norms are zero, the logits NaN; the
	 * result says so in valid JSON and the verb fails */
	path_in(bad_f16, sizeof(bad_f16), "half-F16.gguf");
	path_in(bad_q, sizeof(bad_q), "half-Q8_0.gguf");
	write_zeroed(bad_f16, 0);
	quantize(bad_f16, "half-Q8_0.gguf", "Q8_0", 0);
	assert_int_equal(th_sh(&log, "'%s' fidelity '%s' '%s' --text '%s' "
			     "--chunks 1 --ctx 128 --threads 2 --cpu --json",
			     worker, f16, bad_q, text), 3);
	o = result_of(log, "half-Q8_0.gguf");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "kld_mean")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "ok")));
	assert_non_null(strstr(log, "half-Q8_0.gguf gives logits that are "
				    "not numbers"));
	cJSON_Delete(o);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_imatrix_file),
		cmocka_unit_test(test_iquants_with_imatrix),
		cmocka_unit_test(test_imatrix_lanes_same_file),
		cmocka_unit_test(test_order_and_reproducible),
		cmocka_unit_test(test_agrees_with_independent_kl),
		cmocka_unit_test(test_broken_quant_fails),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
