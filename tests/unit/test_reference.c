/* Tests tests/harness/reference.c, the f32 forward pass that fidelity
 * checks trust, without a second implementation to compare with: logits of
 * hand-built micro models worked out by hand, the same numbers in the
 * Phi-3 and Llama layouts and in F32, BF16 and F16, causality, the
 * generated fixtures, the Phi-3 -> Llama split of phi4-tiny, and the
 * error paths (with every allocation and read failed in turn). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/fs.h"
#include "common/safetensors.h"
#include "model.h"
#include "reference.h"
#include "th.h"

static char root[512];

static int group_setup(void **state)
{
	(void)state;
	return th_tmpdir("reference", root, sizeof(root));
}

static int group_teardown(void **state)
{
	(void)state;
	return th_rmtree(root);
}

/* A fresh directory root/name (removed first if a test ran before). */
static const char *subdir(const char *name)
{
	static char dir[600];

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	assert_int_equal(th_rmtree(dir), 0);
	assert_int_equal(mb_mkdir_p(dir, 0755), 0);
	return dir;
}

/* ------------------------------------------------ writing safetensors */

struct entry {
	const char *name;
	const char *dtype;	/* F32, F16, BF16 */
	size_t rows, cols;	/* cols 0: 1-D [rows] */
	const void *data;	/* rows * cols elements, little endian */
};

static size_t entry_bytes(const struct entry *e)
{
	size_t es = strcmp(e->dtype, "F32") == 0 ? 4 : 2;

	return e->rows * (e->cols ? e->cols : 1) * es;
}

/* Writes a one-file safetensors model. */
static void write_st(const char *path, const struct entry *e, size_t n)
{
	struct mb_buf h;
	uint8_t len8[8];
	uint64_t pos = 0, hl;
	size_t i;
	FILE *f;

	mb_buf_init(&h, 1 << 20);
	assert_int_equal(mb_buf_adds(&h, "{\"__metadata__\":{\"format\":"
					 "\"pt\"}"), 0);
	for (i = 0; i < n; i++) {
		size_t b = entry_bytes(&e[i]);

		if (e[i].cols)
			assert_int_equal(mb_buf_addf(&h, ",\"%s\":{\"dtype\":"
				"\"%s\",\"shape\":[%zu,%zu],\"data_offsets\":"
				"[%llu,%llu]}", e[i].name, e[i].dtype,
				e[i].rows, e[i].cols, (unsigned long long)pos,
				(unsigned long long)(pos + b)), 0);
		else
			assert_int_equal(mb_buf_addf(&h, ",\"%s\":{\"dtype\":"
				"\"%s\",\"shape\":[%zu],\"data_offsets\":"
				"[%llu,%llu]}", e[i].name, e[i].dtype,
				e[i].rows, (unsigned long long)pos,
				(unsigned long long)(pos + b)), 0);
		pos += b;
	}
	assert_int_equal(mb_buf_adds(&h, "}"), 0);
	while (h.len % 8 != 0)
		assert_int_equal(mb_buf_adds(&h, " "), 0);
	hl = h.len;
	for (i = 0; i < 8; i++)
		len8[i] = (uint8_t)(hl >> (8 * i));
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(len8, 1, 8, f), 8);
	assert_int_equal(fwrite(h.data, 1, h.len, f), h.len);
	for (i = 0; i < n; i++)
		assert_int_equal(fwrite(e[i].data, 1, entry_bytes(&e[i]), f),
				 entry_bytes(&e[i]));
	assert_int_equal(fclose(f), 0);
	mb_buf_release(&h);
}

static void write_text(const char *dir, const char *file, const char *text)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_int_equal(th_write_file(path, text, strlen(text)), 0);
}

/* ------------------------------------------------ the micro model */

/* 1 layer, hidden 4, ff 4, vocab 5; heads, kv_heads and head_dim vary
 * (q rows heads * hd <= 8, k and v rows kv_heads * hd <= 4; o is
 * [4][heads * hd], stored with room for 8). Every value is exact in f16
 * and bf16. */
struct micro {
	int heads, kv_heads, hd;
	float emb[5][4], ln1[4], q[8][4], k[4][4], v[4][4], o[4][8];
	float ln2[4], gate[4][4], up[4][4], down[4][4], norm[4], head[5][4];
};

/* w[i][i] = s for i < min(rows, cols) of a 2-D array; the rest is 0. */
#define DIAG(w, s) diag(&(w)[0][0], sizeof(w) / sizeof((w)[0]),          \
			sizeof((w)[0]) / sizeof(float), s)

static void diag(float *w, size_t rows, size_t cols, float s)
{
	size_t i;

	memset(w, 0, rows * cols * sizeof(float));
	for (i = 0; i < rows && i < cols; i++)
		w[i * cols + i] = s;
}

/* The common part: embedding rows
 *   0: [1, 1, 1, 1]   1: [2, 0, 0, 0]   2: [0, 2, 0, 0]
 *   3: [1,-1, 1,-1]   4: [0, 0, 3, 4]
 * (the first four have mean square 1, so RMSNorm leaves them as they
 * are), unit norms before attention and MLP, final norm [1, 2, 0.5, 1],
 * lm_head rows e0, e1, e2, e3 and [1, 1, 1, 1]: logit v < 4 is component
 * v of the final normed state, logit 4 their sum. Attention and MLP are
 * all zero: each case sets what it uses. */
static void micro_base(struct micro *m, int heads, int kv_heads)
{
	static const float emb[5][4] = {
		{ 1, 1, 1, 1 }, { 2, 0, 0, 0 }, { 0, 2, 0, 0 },
		{ 1, -1, 1, -1 }, { 0, 0, 3, 4 },
	};
	static const float nf[4] = { 1, 2, 0.5f, 1 };
	int i;

	memset(m, 0, sizeof(*m));
	m->heads = heads;
	m->kv_heads = kv_heads;
	m->hd = 4 / heads;
	memcpy(m->emb, emb, sizeof(emb));
	memcpy(m->norm, nf, sizeof(nf));
	for (i = 0; i < 4; i++) {
		m->ln1[i] = m->ln2[i] = 1;
		m->head[i][i] = 1;
		m->head[4][i] = 1;
	}
}

static uint16_t to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	assert_int_equal(u & 0xFFFF, 0); /* exact */
	return (uint16_t)(u >> 16);
}

static uint16_t to_f16(float f)
{
	uint32_t u;
	int e;

	memcpy(&u, &f, 4);
	if ((u & 0x7FFFFFFF) == 0)
		return (uint16_t)(u >> 16);
	e = (int)((u >> 23) & 0xFF) - 127 + 15;
	assert_true(e >= 1 && e <= 30);
	assert_int_equal(u & 0x1FFF, 0); /* exact */
	return (uint16_t)((u >> 16 & 0x8000) | (uint32_t)e << 10 |
			  (u >> 13 & 0x3FF));
}

/* Converts n floats to dtype in a new buffer (little endian host). */
static void *encode(const float *x, size_t n, const char *dtype)
{
	uint16_t *h;
	size_t i;

	if (strcmp(dtype, "F32") == 0) {
		float *f = malloc(n * 4);

		assert_non_null(f);
		memcpy(f, x, n * 4);
		return f;
	}
	h = malloc(n * 2);
	assert_non_null(h);
	for (i = 0; i < n; i++)
		h[i] = strcmp(dtype, "BF16") == 0 ? to_bf16(x[i]) :
						    to_f16(x[i]);
	return h;
}

struct micro_opts {
	const char *layout;	/* "phi3" (fused) or "llama" */
	const char *dtype;
	int tied;		/* tie_word_embeddings, no lm_head tensor */
	const char *extra;	/* more config members, ",\"k\":v", or NULL */
	int ff;			/* intermediate_size in config (0: 4) */
};

/* Writes m into dir (config.json and model.safetensors) in the layout
 * and dtype asked for. */
static void write_micro(const char *dir, const struct micro *m,
			const struct micro_opts *o)
{
	size_t qd = (size_t)(m->heads * m->hd), kvd = (size_t)(m->kv_heads *
								 m->hd);
	size_t n = 0, i;
	int fused = strcmp(o->layout, "phi3") == 0;
	float qkv[16][4], gate_up[8][4], ow[4 * 8];
	struct entry e[16];
	void *bufs[16];
	char path[700], cfg[1024], hd[32] = "";

	assert_true(qd <= 8 && kvd <= 4);
	/* Phi-3's fused rows: q, then k, then v; gate, then up */
	memcpy(qkv, m->q, qd * 4 * sizeof(float));
	memcpy(qkv[qd], m->k, kvd * 4 * sizeof(float));
	memcpy(qkv[qd + kvd], m->v, kvd * 4 * sizeof(float));
	memcpy(gate_up, m->gate, sizeof(m->gate));
	memcpy(gate_up[4], m->up, sizeof(m->up));
	for (i = 0; i < 4 * qd; i++)
		ow[i] = m->o[i / qd][i % qd];

#define ADD(nm, ptr, r, c)                                                \
	do {                                                              \
		bufs[n] = encode(ptr, (r) * ((c) ? (c) : 1), o->dtype);   \
		e[n] = (struct entry){ nm, o->dtype, r, c, bufs[n] };     \
		n++;                                                      \
	} while (0)
#define ADD1(nm, ptr)                                                     \
	do {                                                              \
		bufs[n] = encode(ptr, 4, o->dtype);                       \
		e[n] = (struct entry){ nm, o->dtype, 4, 0, bufs[n] };     \
		n++;                                                      \
	} while (0)
	ADD("model.embed_tokens.weight", m->emb[0], 5, 4);
	ADD1("model.layers.0.input_layernorm.weight", m->ln1);
	if (fused) {
		ADD("model.layers.0.self_attn.qkv_proj.weight", qkv[0],
		    qd + 2 * kvd, 4);
		ADD("model.layers.0.mlp.gate_up_proj.weight", gate_up[0], 8,
		    4);
	} else {
		ADD("model.layers.0.self_attn.q_proj.weight", m->q[0], qd, 4);
		ADD("model.layers.0.self_attn.k_proj.weight", m->k[0], kvd, 4);
		ADD("model.layers.0.self_attn.v_proj.weight", m->v[0], kvd, 4);
		ADD("model.layers.0.mlp.gate_proj.weight", m->gate[0], 4, 4);
		ADD("model.layers.0.mlp.up_proj.weight", m->up[0], 4, 4);
	}
	ADD("model.layers.0.self_attn.o_proj.weight", ow, 4, qd);
	ADD1("model.layers.0.post_attention_layernorm.weight", m->ln2);
	ADD("model.layers.0.mlp.down_proj.weight", m->down[0], 4, 4);
	ADD1("model.norm.weight", m->norm);
	if (!o->tied)
		ADD("lm_head.weight", m->head[0], 5, 4);
#undef ADD
#undef ADD1
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	write_st(path, e, n);
	for (i = 0; i < n; i++)
		free(bufs[i]);

	if (m->hd * m->heads != 4)
		snprintf(hd, sizeof(hd), ",\"head_dim\":%d", m->hd);
	snprintf(cfg, sizeof(cfg),
		 "{\"architectures\":[\"%s\"],\"model_type\":\"%s\","
		 "\"hidden_size\":4,\"intermediate_size\":%d,"
		 "\"num_hidden_layers\":1,\"num_attention_heads\":%d,"
		 "\"num_key_value_heads\":%d,\"vocab_size\":5,"
		 "\"rms_norm_eps\":1e-06,\"rope_theta\":10000.0,"
		 "\"hidden_act\":\"silu\","
		 "\"tie_word_embeddings\":%s%s%s}",
		 fused ? "Phi3ForCausalLM" : "LlamaForCausalLM", o->layout,
		 o->ff ? o->ff : 4, m->heads, m->kv_heads,
		 o->tied ? "true" : "false", hd, o->extra ? o->extra : "");
	write_text(dir, "config.json", cfg);
}

/* Logits of tokens with m written as opts; n_vocab must be 5. */
static float *micro_run(const struct micro *m, const struct micro_opts *o,
			const int32_t *tokens, int n)
{
	const char *dir = subdir("micro");
	char err[256] = "";
	float *lg = NULL;
	int nv = 0;

	write_micro(dir, m, o);
	if (ref_logits(dir, tokens, n, &lg, &nv, err, sizeof(err)) != 0)
		fail_msg("ref_logits: %s", err);
	assert_int_equal(nv, 5);
	return lg;
}

/* Runs m in both layouts (F32), checks that they agree bit for bit, and
 * returns the logits. */
static float *micro_both(const struct micro *m, const int32_t *tokens, int n)
{
	struct micro_opts phi = { "phi3", "F32", 0, NULL, 0 };
	struct micro_opts llama = { "llama", "F32", 0, NULL, 0 };
	float *a = micro_run(m, &phi, tokens, n);
	float *b = micro_run(m, &llama, tokens, n);

	assert_memory_equal(a, b, (size_t)n * 5 * sizeof(float));
	free(b);
	return a;
}

/* |got - want| within 1e-5 for rows of 5 logits. The tolerance covers f32
 * rounding and eps = 1e-6 in RMSNorm (a relative 5e-7 at mean square 1). */
static void expect_logits(const float *got, const double *want, int n)
{
	int i;

	for (i = 0; i < n * 5; i++)
		if (fabs((double)got[i] - want[i]) > 1e-5)
			fail_msg("logit %d (position %d, token %d): got %.7f, "
				 "want %.7f", i, i / 5, i % 5, (double)got[i],
				 want[i]);
}

/* Final norm by hand: x / rms(x) * [1, 2, 0.5, 1], then lm_head (the
 * components and their sum). */
static void head_by_hand(const double x[4], double out[5])
{
	static const double nf[4] = { 1, 2, 0.5, 1 };
	double ms = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]) /
		    4;
	int i;

	out[4] = 0;
	for (i = 0; i < 4; i++) {
		out[i] = x[i] / sqrt(ms + 1e-6) * nf[i];
		out[4] += out[i];
	}
}

/* Attention and MLP write nothing (o_proj = down_proj = 0), so the logits
 * are lm_head(norm(embedding)):
 *   token 4: [0,0,3,4], mean square 25/4, rms 2.5 -> [0,0,1.2,1.6]
 *            * [1,2,.5,1] = [0,0,0.6,1.6] -> logits [0,0,0.6,1.6,2.2]
 *   token 1: [2,0,0,0] -> [2,0,0,0] -> [2,0,0,0,2]
 *   token 3: [1,-1,1,-1] -> [1,-2,0.5,-1] -> [1,-2,0.5,-1,-1.5]
 *   token 0: [1,1,1,1] -> [1,2,0.5,1] -> [1,2,0.5,1,4.5]
 * whatever q, k and v are (they are set, to show they do not leak). */
static void test_micro_no_blocks(void **state)
{
	static const int32_t tok[4] = { 4, 1, 3, 0 };
	static const double want[4 * 5] = {
		0, 0, 0.6, 1.6, 2.2,
		2, 0, 0, 0, 2,
		1, -2, 0.5, -1, -1.5,
		1, 2, 0.5, 1, 4.5,
	};
	struct micro m;
	float *lg;

	(void)state;
	micro_base(&m, 2, 1);
	DIAG(m.q, 1);
	DIAG(m.k, 1);
	DIAG(m.v, 1);
	DIAG(m.gate, 1);
	DIAG(m.up, 1);
	lg = micro_both(&m, tok, 4);
	expect_logits(lg, want, 4);
	free(lg);
}

/* Tied output: no lm_head tensor, the embedding rows are the output rows.
 * Token 4's final state [0,0,0.6,1.6] (above) against the embedding:
 *   row 0 [1,1,1,1]: 2.2   row 1 [2,0,0,0]: 0   row 2 [0,2,0,0]: 0
 *   row 3 [1,-1,1,-1]: 0.6 - 1.6 = -1   row 4 [0,0,3,4]: 1.8 + 6.4 = 8.2 */
static void test_micro_tied(void **state)
{
	static const int32_t tok[1] = { 4 };
	static const double want[5] = { 2.2, 0, 0, -1, 8.2 };
	struct micro_opts o = { "phi3", "F32", 1, NULL, 0 };
	struct micro m;
	float *lg;

	(void)state;
	micro_base(&m, 2, 1);
	lg = micro_run(&m, &o, tok, 1);
	expect_logits(lg, want, 1);
	free(lg);
	o.layout = "llama";
	lg = micro_run(&m, &o, tok, 1);
	expect_logits(lg, want, 1);
	free(lg);
}

/* Attention on, MLP off. 2 heads of head_dim 2 sharing 1 kv head (GQA);
 * q = I (4x4), k = v = the first two inputs ([[1,0,0,0],[0,1,0,0]]),
 * o = I. Tokens [1, 2]: normed inputs x0 = [2,0,0,0], x1 = [0,2,0,0].
 * Rope with head_dim 2 turns the pair (0, 1) by pos * theta^0 = pos rad:
 * [a, b] -> [a cos p - b sin p, b cos p + a sin p].
 *
 * Position 0 sees only itself: both heads output v0 = [2,0], so
 *   attn = [2,0,2,0], x = [2,0,0,0] + attn = [4,0,2,0].
 * Position 1: q1 = [0,2 | 0,0], head 0 turned by 1 rad:
 *   [-2 sin 1, 2 cos 1]; k0 = [2,0], k1 = [0,2] turned the same way.
 *   Head 0 scores (scale 1/sqrt 2): s0 = -4 sin 1 / sqrt 2 = -2.3801,
 *   s1 = 4 / sqrt 2 = 2.8284; p1 = 1 / (1 + e^(s0 - s1)) = 0.994559,
 *   p0 = 0.005441; output p0 v0 + p1 v1 = [2 p0, 2 p1].
 *   Head 1 has q = 0: scores 0, 0, weights 1/2, output [1, 1].
 *   x = [0,2,0,0] + [2 p0, 2 p1, 1, 1] = [0.010882, 3.989118, 1, 1].
 * (Rope turning the other way would give s0 = +2.3801, p1 = 0.61.) */
static void micro_attention(struct micro *m)
{
	micro_base(m, 2, 1);
	DIAG(m->q, 1);
	DIAG(m->o, 1);
	m->k[0][0] = m->k[1][1] = 1;
	m->v[0][0] = m->v[1][1] = 1;
}

static void attention_by_hand(double want[2 * 5])
{
	double s0 = -4 * sin(1.0) / sqrt(2.0), s1 = 4 / sqrt(2.0);
	double p1 = 1 / (1 + exp(s0 - s1)), p0 = 1 - p1;
	double x0[4] = { 4, 0, 2, 0 };
	double x1[4] = { 2 * p0, 2 + 2 * p1, 1, 1 };

	assert_true(fabs(p1 - 0.994559) < 1e-6);
	head_by_hand(x0, want);
	head_by_hand(x1, want + 5);
}

static void test_micro_attention(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	double want[2 * 5];
	struct micro m;
	float *lg;

	(void)state;
	micro_attention(&m);
	attention_by_hand(want);
	/* spelled out for position 0: [4,0,2,0] / sqrt 5 * [1,2,.5,1] */
	assert_true(fabs(want[0] - 4 / sqrt(5.0)) < 1e-6);
	assert_true(fabs(want[4] - sqrt(5.0)) < 1e-6);
	lg = micro_both(&m, tok, 2);
	expect_logits(lg, want, 2);
	free(lg);
}

/* GQA: query head h reads kv head h / (heads / kv_heads), as
 * transformers' repeat_kv lays them out. 4 heads of head_dim 2 (q has 8
 * rows, more than hidden 4: config head_dim), 2 kv heads. One token, 1:
 * x = [2,0,0,0]; attention over one position returns that position's v,
 * so head h outputs v of its kv head. v = [[1,0,0,0], 0, 0, 0]: kv head 0
 * has v [2, 0], kv head 1 [0, 0]. Heads 0, 1 read kv 0, heads 2, 3 kv 1:
 *   attn = [2,0, 2,0, 0,0, 0,0]; o row i picks attn[2i]: [2, 2, 0, 0];
 *   x = [2,0,0,0] + [2,2,0,0] = [4,2,0,0], mean square 5:
 *   [4,2,0,0] / sqrt 5 * [1,2,.5,1] = [1.788854, 1.788854, 0, 0]
 *   logits [1.788854, 1.788854, 0, 0, 3.577709].
 * (h % kv_heads would give heads 0, 2 kv 0: [2,0,2,0], [4,0,2,0].) */
static void test_micro_gqa(void **state)
{
	static const int32_t tok[1] = { 1 };
	static const double want[5] = { 1.788854, 1.788854, 0, 0, 3.577709 };
	struct micro m;
	float *lg;
	int i;

	(void)state;
	micro_base(&m, 4, 2);
	m.hd = 2;
	DIAG(m.q, 1);
	DIAG(m.k, 1);
	m.v[0][0] = 1;
	for (i = 0; i < 4; i++)
		m.o[i][2 * i] = 1;
	lg = micro_both(&m, tok, 1);
	expect_logits(lg, want, 1);
	free(lg);
}

/* The same numbers stored as BF16 and F16 decode to the same floats, so
 * the logits are the same bits. */
static void test_micro_dtypes(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	static const char *const dt[2] = { "BF16", "F16" };
	struct micro_opts o = { "phi3", "F32", 0, NULL, 0 };
	struct micro m;
	float *ref, *lg;
	int i;

	(void)state;
	micro_attention(&m);
	/* non-trivial exponents and signs in the weights that matter */
	m.o[0][0] = -0.5f;
	m.o[3][2] = 3;
	ref = micro_run(&m, &o, tok, 2);
	for (i = 0; i < 2; i++) {
		o.dtype = dt[i];
		lg = micro_run(&m, &o, tok, 2);
		assert_memory_equal(lg, ref, 2 * 5 * sizeof(float));
		free(lg);
	}
	free(ref);
}

/* Rope pairs (i, i + d/2), not (2i, 2i + 1). One head of head_dim 4,
 * q = k = v = o = I, theta 10000: pair (0, 2) turns by pos, pair (1, 3)
 * by pos * 10000^(-1/2) = pos * 0.01. Tokens [0, 2]: x0 = [1,1,1,1],
 * x1 = [0,2,0,0].
 * Position 0: only itself, output v0 = x0: x = [2,2,2,2].
 * Position 1: q1 = k1 = x1 turned: component 1 is in pair (1, 3):
 *   [0, 2 cos .01, 0, 2 sin .01]. Scores (scale 1/2):
 *   s0 = q1 . x0 / 2 = cos .01 + sin .01 = 1.009950, s1 = 4 / 2 = 2;
 *   p0 = 1 / (1 + e^(s1 - s0)) = 0.270902; output p0 x0 + p1 x1 =
 *   [p0, p0 + 2 p1, p0, p0]; x = x1 + that.
 * (Pairs (0, 1) would turn component 1 by 1 rad: s0 = cos 1 - sin 1 =
 *  -0.30, p0 = 0.09.) */
static void test_micro_rope_pairs(void **state)
{
	static const int32_t tok[2] = { 0, 2 };
	double s0 = cos(0.01) + sin(0.01), s1 = 2;
	double p0 = 1 / (1 + exp(s1 - s0)), p1 = 1 - p0;
	double x0[4] = { 2, 2, 2, 2 };
	double x1[4] = { p0, 2 + p0 + 2 * p1, p0, p0 };
	double want[2 * 5];
	struct micro m;
	float *lg;

	(void)state;
	assert_true(fabs(p0 - 0.270902) < 1e-6);
	micro_base(&m, 1, 1);
	DIAG(m.q, 1);
	DIAG(m.k, 1);
	DIAG(m.v, 1);
	DIAG(m.o, 1);
	head_by_hand(x0, want);
	head_by_hand(x1, want + 5);
	lg = micro_both(&m, tok, 2);
	expect_logits(lg, want, 2);
	free(lg);
}

/* Phi-3's partial_rotary_factor: rope turns only the first head_dim *
 * factor dimensions of each head. The model of the test above with factor
 * 0.5: rotary dim 2, so only pair (0, 1) turns, by pos * theta^0 = pos;
 * dimensions 2 and 3 pass. Position 1: q1 = k1 = [0,2,0,0] turned:
 *   [-2 sin 1, 2 cos 1, 0, 0]; s0 = q1 . x0 / 2 = cos 1 - sin 1 = -0.301169,
 *   s1 = 2; p0 = 1 / (1 + e^(s1 - s0)) = 0.091026. */
static void test_micro_partial_rotary(void **state)
{
	static const int32_t tok[2] = { 0, 2 };
	struct micro_opts o = { "phi3", "F32", 0,
				",\"partial_rotary_factor\":0.5", 0 };
	double s0 = cos(1.0) - sin(1.0), s1 = 2;
	double p0 = 1 / (1 + exp(s1 - s0)), p1 = 1 - p0;
	double x0[4] = { 2, 2, 2, 2 };
	double x1[4] = { p0, 2 + p0 + 2 * p1, p0, p0 };
	double want[2 * 5];
	struct micro m;
	float *lg;

	(void)state;
	assert_true(fabs(p0 - 0.091026) < 1e-6);
	micro_base(&m, 1, 1);
	DIAG(m.q, 1);
	DIAG(m.k, 1);
	DIAG(m.v, 1);
	DIAG(m.o, 1);
	head_by_hand(x0, want);
	head_by_hand(x1, want + 5);
	lg = micro_run(&m, &o, tok, 2);
	expect_logits(lg, want, 2);
	free(lg);
}

/* MLP on, attention off: gate = I, up = 2 I, down = I. Token 3: normed
 * input xn = [1,-1,1,-1]; gate = xn, up = 2 xn;
 *   silu(1) = 1 / (1 + e^-1) = 0.731059, silu(-1) = -0.268941;
 *   silu(gate) * up = [1.462117, 0.537883, 1.462117, 0.537883];
 *   x = xn + that = [2.462117, -0.462117, 2.462117, -0.462117].
 * (gate and up swapped would give silu(2 xn) * xn = [1.76, 0.24, ..].) */
static void test_micro_mlp(void **state)
{
	static const int32_t tok[1] = { 3 };
	double a = 2 * (1 / (1 + exp(-1.0))), b = -2 * (-1 / (1 + exp(1.0)));
	double x[4] = { 1 + a, -1 + b, 1 + a, -1 + b };
	double want[5];
	struct micro m;
	float *lg;

	(void)state;
	assert_true(fabs(x[0] - 2.462117) < 1e-6);
	assert_true(fabs(x[1] + 0.462117) < 1e-6);
	micro_base(&m, 2, 1);
	DIAG(m.gate, 1);
	DIAG(m.up, 2);
	DIAG(m.down, 1);
	head_by_hand(x, want);
	lg = micro_both(&m, tok, 1);
	expect_logits(lg, want, 1);
	free(lg);
}

/* A sliding window no shorter than the sequence changes nothing; a
 * shorter one is refused. */
static void test_micro_sliding_window(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	struct micro_opts o = { "phi3", "F32", 0, ",\"sliding_window\":2", 0 };
	const char *dir;
	double want[2 * 5];
	struct micro m;
	char err[256] = "";
	float *lg;
	int nv;

	(void)state;
	micro_attention(&m);
	attention_by_hand(want);
	lg = micro_run(&m, &o, tok, 2);
	expect_logits(lg, want, 2);
	free(lg);
	o.extra = ",\"sliding_window\":1";
	dir = subdir("micro");
	write_micro(dir, &m, &o);
	assert_int_equal(ref_logits(dir, tok, 2, &lg, &nv, err, sizeof(err)),
			 MB_EUNSUPPORTED);
	assert_null(lg);
	assert_non_null(strstr(err, "sliding window"));
}

/* Logits at position i depend on tokens 0..i only: change the last token
 * of the micro model's sequence, and of a generated fixture's. */
static void test_micro_causal(void **state)
{
	int32_t tok[3] = { 0, 4, 1 };
	struct micro m;
	float *a, *b;

	(void)state;
	micro_attention(&m);
	DIAG(m.gate, 1);
	DIAG(m.up, 1);
	DIAG(m.down, 1);
	a = micro_both(&m, tok, 3);
	tok[2] = 3;
	b = micro_both(&m, tok, 3);
	assert_memory_equal(a, b, 2 * 5 * sizeof(float));
	assert_memory_not_equal(a + 10, b + 10, 5 * sizeof(float));
	free(a);
	free(b);
}

/* ------------------------------------------------ errors */


static void expect_error(const char *dir, const int32_t *tok, int n, int code,
			 const char *msg)
{
	char err[256] = "";
	static float dummy;
	float *lg = &dummy;
	int nv = -1;

	assert_int_equal(ref_logits(dir, tok, n, &lg, &nv, err, sizeof(err)),
			 code);
	assert_null(lg);
	if (strstr(err, msg) == NULL)
		fail_msg("error '%s' does not say '%s'", err, msg);
}

static void test_errors(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	static const int32_t bad[2] = { 1, 5 };
	struct micro_opts o = { "llama", "F32", 0, NULL, 0 };
	const char *dir = subdir("errors");
	struct micro m;
	char cfg[256];

	(void)state;
	micro_attention(&m);
	write_micro(dir, &m, &o);
	expect_error(dir, bad, 2, MB_EINVAL, "token 5 at position 1");
	expect_error(dir, tok, 0, MB_EINVAL, "0 tokens");
	/* Llama tensors under a Phi-3 config */
	snprintf(cfg, sizeof(cfg), "{\"model_type\":\"phi3\","
		 "\"hidden_size\":4,\"intermediate_size\":4,"
		 "\"num_hidden_layers\":1,\"num_attention_heads\":2,"
		 "\"num_key_value_heads\":1,\"vocab_size\":5}");
	write_text(dir, "config.json", cfg);
	expect_error(dir, tok, 2, MB_EFORMAT, "missing tensor "
		     "'model.layers.0.self_attn.qkv_proj.weight'");
	/* a config that disagrees with the shapes */
	o.ff = 8;
	write_micro(dir, &m, &o);
	expect_error(dir, tok, 2, MB_EFORMAT, "tensor 'model.layers.0.mlp."
		     "down_proj.weight': shape [4, 4], expected [4, 8]");
	o.ff = 0;
	o.extra = ",\"rope_scaling\":{\"type\":\"longrope\"}";
	write_micro(dir, &m, &o);
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "rope_scaling");
	o.extra = ",\"partial_rotary_factor\":0.5";
	write_micro(dir, &m, &o);
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "partial_rotary_factor");
	o.extra = ",\"attention_bias\":true";
	write_micro(dir, &m, &o);
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "biases");
	/* Phi-2's config, as the broken fixture ships */
	write_text(dir, "config.json", "{\"model_type\":\"phi\","
		   "\"hidden_size\":4}");
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "model_type 'phi'");
	write_text(dir, "config.json", "{\"model_type\":\"llama\"");
	expect_error(dir, tok, 2, MB_EJSON, "malformed");
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	assert_int_equal(unlink(cfg), 0);
	expect_error(dir, tok, 2, MB_ENOENT, "config.json");
}

/* Every allocation and every read failed in turn: an error with a message
 * and no output (and no leak under ASan), until the run gets through and
 * gives the logits of the run without faults. */
static void test_faults(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	static const enum mb_fault_site site[2] = { MB_FAULT_ALLOC,
						    MB_FAULT_READ };
	static const int code[2] = { ENOMEM, EIO };
	struct micro_opts o = { "phi3", "F32", 0, NULL, 0 };
	const char *dir = subdir("faults");
	struct micro m;
	float *want, *lg;
	char err[256];
	long after;
	int s, nv, rc;

	(void)state;
	micro_attention(&m);
	write_micro(dir, &m, &o);
	assert_int_equal(ref_logits(dir, tok, 2, &want, &nv, err,
				    sizeof(err)), 0);
	for (s = 0; s < 2; s++) {
		for (after = 0; after < 10000; after++) {
			err[0] = '\0';
			mb_fault_set(site[s], after, 1, code[s]);
			rc = ref_logits(dir, tok, 2, &lg, &nv, err,
					sizeof(err));
			mb_fault_clear();
			if (rc == 0)
				break;
			assert_null(lg);
			if (err[0] == '\0')
				fail_msg("site %d after %ld: rc %d, no "
					 "message", s, after, rc);
		}
		assert_true(after > 0 && after < 10000);
		assert_memory_equal(lg, want, 2 * 5 * sizeof(float));
		free(lg);
	}
	free(want);
}

/* ------------------------------------------------ Gemma 3 */

/* A one-layer Gemma 3 micro model: hidden 4, one head of head_dim 4 (so
 * q_norm and k_norm span the same values as the full norm), vocab 5 with
 * micro_base's embedding rows, tied output. Norm weights here are the
 * effective ones, 1 + w: the file stores them minus 1, as Gemma's
 * checkpoints do. */
struct gmicro {
	float emb[5][4], ln_in[4], q[4][4], k[4][4], v[4][4], qn[4], kn[4];
	float o[4][4], ln_post[4], ln_pre[4], gate[4][4], up[4][4];
	float down[4][4], ln_ffpost[4], norm[4];
};

/* Unit norms, final norm [1, 2, 0.5, 1], q = k = v = o = I, gate = I,
 * up = 2 I, down = 0 (the MLP adds nothing until a case sets it). */
static void gmicro_base(struct gmicro *m)
{
	static const float emb[5][4] = {
		{ 1, 1, 1, 1 }, { 2, 0, 0, 0 }, { 0, 2, 0, 0 },
		{ 1, -1, 1, -1 }, { 0, 0, 3, 4 },
	};
	static const float nf[4] = { 1, 2, 0.5f, 1 };
	int i;

	memset(m, 0, sizeof(*m));
	memcpy(m->emb, emb, sizeof(emb));
	memcpy(m->norm, nf, sizeof(nf));
	for (i = 0; i < 4; i++)
		m->ln_in[i] = m->qn[i] = m->kn[i] = m->ln_post[i] =
			m->ln_pre[i] = m->ln_ffpost[i] = 1;
	DIAG(m->q, 1);
	DIAG(m->k, 1);
	DIAG(m->v, 1);
	DIAG(m->o, 1);
	DIAG(m->gate, 1);
	DIAG(m->up, 2);
}

/* Writes m as a Gemma3ForCausalLM checkpoint in dtype, with more config
 * members in extra (",\"k\":v", or NULL). */
static void write_gmicro(const char *dir, const struct gmicro *m,
			 const char *dtype, const char *extra)
{
	const float *norms[8] = { m->ln_in, m->qn, m->kn, m->ln_post,
				  m->ln_pre, m->ln_ffpost, m->norm, NULL };
	float stored[7][4];
	struct entry e[16];
	void *bufs[16];
	size_t n = 0, i, j;
	char path[700], cfg[1024];

	/* Gemma3RMSNorm multiplies by 1 + w: store w = effective - 1 */
	for (i = 0; norms[i] != NULL; i++)
		for (j = 0; j < 4; j++)
			stored[i][j] = norms[i][j] - 1;
#define ADD(nm, ptr, r, c)                                                \
	do {                                                              \
		bufs[n] = encode(ptr, (r) * ((c) ? (c) : 1), dtype);      \
		e[n] = (struct entry){ nm, dtype, r, c, bufs[n] };        \
		n++;                                                      \
	} while (0)
	ADD("model.embed_tokens.weight", m->emb[0], 5, 4);
	ADD("model.layers.0.input_layernorm.weight", stored[0], 4, 0);
	ADD("model.layers.0.self_attn.q_proj.weight", m->q[0], 4, 4);
	ADD("model.layers.0.self_attn.k_proj.weight", m->k[0], 4, 4);
	ADD("model.layers.0.self_attn.v_proj.weight", m->v[0], 4, 4);
	ADD("model.layers.0.self_attn.q_norm.weight", stored[1], 4, 0);
	ADD("model.layers.0.self_attn.k_norm.weight", stored[2], 4, 0);
	ADD("model.layers.0.self_attn.o_proj.weight", m->o[0], 4, 4);
	ADD("model.layers.0.post_attention_layernorm.weight", stored[3], 4,
	    0);
	ADD("model.layers.0.pre_feedforward_layernorm.weight", stored[4], 4,
	    0);
	ADD("model.layers.0.mlp.gate_proj.weight", m->gate[0], 4, 4);
	ADD("model.layers.0.mlp.up_proj.weight", m->up[0], 4, 4);
	ADD("model.layers.0.mlp.down_proj.weight", m->down[0], 4, 4);
	ADD("model.layers.0.post_feedforward_layernorm.weight", stored[5], 4,
	    0);
	ADD("model.norm.weight", stored[6], 4, 0);
#undef ADD
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	write_st(path, e, n);
	for (i = 0; i < n; i++)
		free(bufs[i]);
	/* Gemma 3's keys; query_pre_attn_scalar 16, not head_dim 4, so
	 * that the scale shows; the one layer's kind comes from extra
	 * (default: sliding_window_pattern 6, so layer 0 slides). A key
	 * extra sets is left out here: JSON readers take the first of
	 * two. */
#define KEY(k, v) (extra != NULL && strstr(extra, "\"" k "\"") ? "" :    \
		   ",\"" k "\":" v)
	snprintf(cfg, sizeof(cfg),
		 "{\"architectures\":[\"Gemma3ForCausalLM\"],"
		 "\"model_type\":\"gemma3_text\",\"hidden_size\":4,"
		 "\"intermediate_size\":4,\"num_hidden_layers\":1,"
		 "\"num_attention_heads\":1,\"num_key_value_heads\":1,"
		 "\"head_dim\":4,\"vocab_size\":5,\"rms_norm_eps\":1e-06,"
		 "\"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0"
		 "%s%s%s%s%s%s%s}",
		 KEY("query_pre_attn_scalar", "16"),
		 KEY("sliding_window", "2"),
		 KEY("hidden_activation", "\"gelu_pytorch_tanh\""),
		 KEY("attn_logit_softcapping", "null"),
		 KEY("final_logit_softcapping", "null"),
		 KEY("rope_scaling", "null"), extra ? extra : "");
#undef KEY
	write_text(dir, "config.json", cfg);
}

static float *gmicro_run(const struct gmicro *m, const char *dtype,
			 const char *extra, const int32_t *tokens, int n)
{
	const char *dir = subdir("gmicro");
	char err[256] = "";
	float *lg = NULL;
	int nv = 0;

	write_gmicro(dir, m, dtype, extra);
	if (ref_logits(dir, tokens, n, &lg, &nv, err, sizeof(err)) != 0)
		fail_msg("ref_logits: %s", err);
	assert_int_equal(nv, 5);
	return lg;
}

/* v / rms(v) * w, the Gemma norm with effective weights w (eps 1e-6). */
static void gnorm_by_hand(const double v[4], const double w[4], double y[4])
{
	double ms = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3]) /
		    4;
	int i;

	for (i = 0; i < 4; i++)
		y[i] = v[i] / sqrt(ms + 1e-6) * w[i];
}

/* Final norm [1, 2, 0.5, 1], then the tied output: logit v is the normed
 * state dotted with embedding row v (unscaled). */
static void gemma_head_by_hand(const double x[4], double out[5])
{
	static const double nf[4] = { 1, 2, 0.5, 1 };
	static const double emb[5][4] = {
		{ 1, 1, 1, 1 }, { 2, 0, 0, 0 }, { 0, 2, 0, 0 },
		{ 1, -1, 1, -1 }, { 0, 0, 3, 4 },
	};
	double y[4];
	int v, i;

	gnorm_by_hand(x, nf, y);
	for (v = 0; v < 5; v++) {
		out[v] = 0;
		for (i = 0; i < 4; i++)
			out[v] += y[i] * emb[v][i];
	}
}

/* The blocks write nothing (o = down = 0; the post norms of a zero
 * vector are zero): the logits are the tied output of the normed
 * embedding, whatever its scale. Token 4: 2 * [0,0,3,4] normed is
 * [0,0,1.2,1.6], times [1,2,.5,1] (stored [0,1,-.5,0]: without the
 * + 1 the logits would be 0 but for row 1) = [0,0,.6,1.6]; against the
 * rows: [2.2, 0, 0, -1, 8.2]. With final_logit_softcapping 2 each
 * logit l becomes 2 tanh(l / 2). */
static void test_gemma_no_blocks(void **state)
{
	static const int32_t tok[4] = { 4, 1, 3, 0 };
	static const double x[4][4] = {
		{ 0, 0, 6, 8 }, { 4, 0, 0, 0 }, { 2, -2, 2, -2 },
		{ 2, 2, 2, 2 },
	};
	double want[4 * 5];
	struct gmicro m;
	float *lg;
	int i;

	(void)state;
	gmicro_base(&m);
	DIAG(m.o, 0);
	for (i = 0; i < 4; i++)
		gemma_head_by_hand(x[i], want + 5 * i);
	assert_true(fabs(want[0] - 2.2) < 1e-6 && fabs(want[4] - 8.2) < 1e-6);
	lg = gmicro_run(&m, "F32", NULL, tok, 4);
	expect_logits(lg, want, 4);
	free(lg);
	lg = gmicro_run(&m, "BF16", NULL, tok, 4);
	expect_logits(lg, want, 4);
	free(lg);
	for (i = 0; i < 4 * 5; i++)
		want[i] = 2 * tanh(want[i] / 2);
	lg = gmicro_run(&m, "F32", ",\"final_logit_softcapping\":2.0", tok,
			4);
	expect_logits(lg, want, 4);
	free(lg);
}

/* The MLP with tanh GELU and the norm after it, attention off. Token 3:
 * the embedding scaled by sqrt(4) = 2 is x0 = [2,-2,2,-2]; its norm
 * xn = [1,-1,1,-1]; gelu_tanh(1) = 0.841192, gelu_tanh(-1) = -0.158808;
 * gelu(gate) * up = gelu(xn) * 2 xn = [1.682384, 0.317616, ..]; the
 * post-feedforward norm (effective [2,1,1,1]) of that is added to x0.
 * (Without the embedding scale x0 would be [1,-1,1,-1]; with silu,
 * 0.731059 and 0.268941; without the post norm, the raw product.) */
static void test_gemma_mlp(void **state)
{
	static const int32_t tok[1] = { 3 };
	static const double w[4] = { 2, 1, 1, 1 };
	double c = sqrt(2 / M_PI);
	double g1 = 0.5 * (1 + tanh(c * (1 + 0.044715)));
	double gm1 = -0.5 * (1 + tanh(c * (-1 - 0.044715)));
	double m4[4] = { 2 * g1, -2 * gm1, 2 * g1, -2 * gm1 }, y[4], x[4];
	double want[5];
	struct gmicro m;
	float *lg;
	int i;

	(void)state;
	assert_true(fabs(g1 - 0.841192) < 1e-6);
	assert_true(fabs(gm1 + 0.158808) < 1e-6);
	gmicro_base(&m);
	DIAG(m.o, 0);
	DIAG(m.down, 1);
	m.ln_ffpost[0] = 2;
	gnorm_by_hand(m4, w, y);
	for (i = 0; i < 4; i++)
		x[i] = (i % 2 ? -2 : 2) + y[i];
	gemma_head_by_hand(x, want);
	lg = gmicro_run(&m, "F32", NULL, &tok[0], 1);
	expect_logits(lg, want, 1);
	free(lg);
}

/* Attention of the one head (q = k = v = o = I, all norms unit) over
 * tokens [0, 2, 1], whose normed inputs are x0 = [1,1,1,1],
 * x1 = [0,2,0,0], x2 = [2,0,0,0] (they have mean square 1, so q_norm and
 * k_norm leave q and k as they are). Rope pairs (0, 2) by pos / div and
 * (1, 3) by pos / div * theta^(-1/2); scores times scale, then capped
 * (cap > 0: cap tanh(s / cap)); position t sees the last `window`.
 *   position 1: q1 = k1 = [0, 2 cos a, 0, 2 sin a], a = theta^-1/2 / div;
 *     s0 = 2 (cos a + sin a) scale, s1 = 4 scale.
 *   position 2: q2 = k2 = [2 cos b, 0, 2 sin b, 0], b = 2 / div;
 *     s0 = 2 (cos b + sin b) scale, s1 = 0, s2 = 4 scale.
 * The attention output (softmax-weighted v = x) goes through the
 * post-attention norm and is added to 2 x_t (the scaled embedding). */
static void gemma_attention_by_hand(double theta, double div, double scale,
				    double cap, int window, double want[15])
{
	static const double xs[3][4] = {
		{ 1, 1, 1, 1 }, { 0, 2, 0, 0 }, { 2, 0, 0, 0 },
	};
	static const double one[4] = { 1, 1, 1, 1 };
	double a = pow(theta, -0.5) / div, b = 2 / div;
	double s[3][3] = {
		{ 4 * scale, 0, 0 },
		{ 2 * (cos(a) + sin(a)) * scale, 4 * scale, 0 },
		{ 2 * (cos(b) + sin(b)) * scale, 0, 4 * scale },
	};
	int t, j, i;

	for (t = 0; t < 3; t++) {
		double p[3] = { 0, 0, 0 }, sum = 0, att[4] = { 0 }, y[4];
		double x[4];
		int j0 = window > 0 && t + 1 > window ? t + 1 - window : 0;

		for (j = j0; j <= t; j++) {
			double sc = cap > 0 ? cap * tanh(s[t][j] / cap)
					    : s[t][j];

			p[j] = exp(sc);
			sum += p[j];
		}
		for (j = j0; j <= t; j++)
			for (i = 0; i < 4; i++)
				att[i] += p[j] / sum * xs[j][i];
		gnorm_by_hand(att, one, y);
		for (i = 0; i < 4; i++)
			x[i] = 2 * xs[t][i] + y[i];
		gemma_head_by_hand(x, want + 5 * t);
	}
}

static void test_gemma_attention(void **state)
{
	static const int32_t tok[3] = { 0, 2, 1 };
	static const struct {
		const char *extra;
		double theta, div, scale, cap;
		int window;
	} cases[] = {
		/* layer 0 of 6 slides: local base, window 2, scale 1/4 */
		{ NULL, 1e4, 1, 0.25, 0, 2 },
		{ ",\"sliding_window_pattern\":6", 1e4, 1, 0.25, 0, 2 },
		{ ",\"layer_types\":[\"sliding_attention\"]", 1e4, 1, 0.25, 0,
		  2 },
		/* a window as long as the text changes nothing */
		{ ",\"layer_types\":[\"sliding_attention\"],"
		  "\"sliding_window\":3", 1e4, 1, 0.25, 0, 0 },
		/* pattern 1: every layer global: rope_theta, no window */
		{ ",\"sliding_window_pattern\":1", 1e6, 1, 0.25, 0, 0 },
		{ ",\"layer_types\":[\"full_attention\"]", 1e6, 1, 0.25, 0,
		  0 },
		/* linear scaling turns the global layers only */
		{ ",\"layer_types\":[\"full_attention\"],\"rope_scaling\":"
		  "{\"factor\":2.0,\"rope_type\":\"linear\"}", 1e6, 2, 0.25, 0,
		  0 },
		{ ",\"layer_types\":[\"sliding_attention\"],\"rope_scaling\":"
		  "{\"factor\":2.0,\"rope_type\":\"linear\"}", 1e4, 1, 0.25, 0,
		  2 },
		/* transformers' newer per-layer-type rope_parameters */
		{ ",\"layer_types\":[\"full_attention\"],\"rope_parameters\":"
		  "{\"full_attention\":{\"rope_type\":\"linear\",\"factor\":"
		  "4.0,\"rope_theta\":5e5},\"sliding_attention\":{\"rope_type\""
		  ":\"default\",\"rope_theta\":1e4}}", 5e5, 4, 0.25, 0, 0 },
		/* the scale is query_pre_attn_scalar's, not head_dim's */
		{ ",\"query_pre_attn_scalar\":4", 1e4, 1, 0.5, 0, 2 },
		{ ",\"attn_logit_softcapping\":0.5", 1e4, 1, 0.25, 0.5, 2 },
	};
	double want[15];
	struct gmicro m;
	float *lg;
	size_t i;

	(void)state;
	gmicro_base(&m);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gemma_attention_by_hand(cases[i].theta, cases[i].div,
					cases[i].scale, cases[i].cap,
					cases[i].window, want);
		lg = gmicro_run(&m, "F32", cases[i].extra, tok, 3);
		print_message("case %zu\n", i);
		expect_logits(lg, want, 3);
		free(lg);
	}
	/* the window is what position 2 sees: with it, changing token 0
	 * leaves position 2 as it was (but not position 1) */
	{
		static const int32_t tok2[3] = { 3, 2, 1 };
		float *a = gmicro_run(&m, "F32", NULL, tok, 3);
		float *b = gmicro_run(&m, "F32", NULL, tok2, 3);

		assert_memory_equal(a + 10, b + 10, 5 * sizeof(float));
		assert_memory_not_equal(a + 5, b + 5, 5 * sizeof(float));
		free(a);
		free(b);
	}
}

/* The q and k norms are Gemma norms of each head: effective weights
 * scale q and k. q_norm [2,2,2,2] doubles every score: position 1 of
 * the full-attention case has s0 = 4 (cos a + sin a) scale, s1 = 8 scale.
 * Checked against the by-hand attention with the scale doubled. */
static void test_gemma_qk_norm(void **state)
{
	static const int32_t tok[3] = { 0, 2, 1 };
	double want[15];
	struct gmicro m;
	float *lg;
	int i;

	(void)state;
	gmicro_base(&m);
	for (i = 0; i < 4; i++)
		m.qn[i] = 2;
	gemma_attention_by_hand(1e6, 1, 0.5, 0, 0, want);
	lg = gmicro_run(&m, "F32", ",\"layer_types\":[\"full_attention\"]",
			tok, 3);
	expect_logits(lg, want, 3);
	free(lg);
}

static void test_gemma_errors(void **state)
{
	static const int32_t tok[2] = { 1, 2 };
	const char *dir = subdir("gemma-errors");
	struct gmicro m;
	char path[700];

	(void)state;
	gmicro_base(&m);
	write_gmicro(dir, &m, "F32", ",\"hidden_activation\":\"silu\"");
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "hidden_activation");
	write_gmicro(dir, &m, "F32", ",\"use_bidirectional_attention\":true");
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "bidirectional");
	write_gmicro(dir, &m, "F32", ",\"rope_scaling\":{\"rope_type\":"
		     "\"yarn\",\"factor\":4.0}");
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "rope_scaling");
	write_gmicro(dir, &m, "F32", ",\"layer_types\":[\"sliding_attention\","
		     "\"full_attention\"]");
	expect_error(dir, tok, 2, MB_EJSON, "layer_types");
	write_gmicro(dir, &m, "F32", ",\"layer_types\":[\"chunked\"]");
	expect_error(dir, tok, 2, MB_EJSON, "layer_types[0]");
	write_gmicro(dir, &m, "F32", ",\"sliding_window_pattern\":0");
	expect_error(dir, tok, 2, MB_EJSON, "sliding_window_pattern");
	/* the multimodal checkpoint's config is another model_type */
	write_gmicro(dir, &m, "F32", NULL);
	write_text(dir, "config.json", "{\"model_type\":\"gemma3\","
		   "\"text_config\":{}}");
	expect_error(dir, tok, 2, MB_EUNSUPPORTED, "model_type 'gemma3'");
	/* Llama tensors (no pre_feedforward_layernorm) under a Gemma
	 * config */
	write_micro(dir, &(struct micro){ .heads = 1, .kv_heads = 1, .hd = 4 },
		    &(struct micro_opts){ "llama", "F32", 1, NULL, 0 });
	snprintf(path, sizeof(path), "{\"model_type\":\"gemma3_text\","
		 "\"hidden_size\":4,\"intermediate_size\":4,"
		 "\"num_hidden_layers\":1,\"num_attention_heads\":1,"
		 "\"num_key_value_heads\":1,\"head_dim\":4,\"vocab_size\":5}");
	write_text(dir, "config.json", path);
	expect_error(dir, tok, 2, MB_EFORMAT, "missing tensor");
}

/* ------------------------------------------------ generated fixtures */

static const char *fixture(const char *name, const char *preset)
{
	static char dir[3][600];
	const char *extra[] = { "--config", "correct", NULL };
	char *d = dir[strcmp(preset, "llama-tiny") == 0 ? 1 :
		      strcmp(preset, "gemma3-tiny") == 0 ? 2 : 0];
	char probe[700];

	snprintf(d, 600, "%s/%s", root, name);
	snprintf(probe, sizeof(probe), "%s/config.json", d);
	if (access(probe, F_OK) != 0)
		assert_int_equal(th_mkmodel(d, preset, extra), 0);
	return d;
}

/* Token ids spread over the vocabulary, the same every run. */
static void tokens(int32_t *t, int n, int vocab, int salt)
{
	int i;

	for (i = 0; i < n; i++)
		t[i] = (int32_t)((i * 397 + salt * 131 + 11) % vocab);
}

static float *run_ok(const char *dir, const int32_t *t, int n, int vocab)
{
	char err[256] = "";
	float *lg = NULL;
	int nv = 0;

	if (ref_logits(dir, t, n, &lg, &nv, err, sizeof(err)) != 0)
		fail_msg("ref_logits %s: %s", dir, err);
	assert_int_equal(nv, vocab);
	return lg;
}

/* Finite, not constant, and the same bits on a second run. */
static void check_fixture(const char *dir, int vocab)
{
	int32_t t[48];
	float *a, *b, lo = INFINITY, hi = -INFINITY;
	size_t i;

	tokens(t, 48, vocab, 0);
	a = run_ok(dir, t, 48, vocab);
	b = run_ok(dir, t, 48, vocab);
	for (i = 0; i < (size_t)48 * (size_t)vocab; i++) {
		assert_true(isfinite(a[i]));
		lo = a[i] < lo ? a[i] : lo;
		hi = a[i] > hi ? a[i] : hi;
	}
	assert_true(hi - lo > 1e-3f);
	assert_memory_equal(a, b, (size_t)48 * (size_t)vocab * sizeof(float));
	free(a);
	free(b);
}

static void test_fixture_phi4_tiny(void **state)
{
	(void)state;
	check_fixture(fixture("phi4", "phi4-tiny"), 1024);
}

static void test_fixture_llama_tiny(void **state)
{
	(void)state;
	check_fixture(fixture("llama", "llama-tiny"), 512);
}

static void test_fixture_causal(void **state)
{
	const char *dir = fixture("phi4", "phi4-tiny");
	int32_t t[24], u[24];
	float *a, *b;

	(void)state;
	tokens(t, 24, 1024, 0);
	memcpy(u, t, sizeof(t));
	tokens(u + 12, 12, 1024, 7);	/* positions 12.. differ */
	assert_true(u[12] != t[12]);
	a = run_ok(dir, t, 24, 1024);
	b = run_ok(dir, u, 24, 1024);
	assert_memory_equal(a, b, (size_t)12 * 1024 * sizeof(float));
	assert_memory_not_equal(a + 12 * 1024, b + 12 * 1024,
				1024 * sizeof(float));
	free(a);
	free(b);
}

/* A config that claims fewer layers than the tensors hold is refused
 * rather than run on the first layers only (the fixture's shards linked
 * under a config saying 2 of its 3 layers). */
static void test_fixture_too_few_layers(void **state)
{
	const char *src = fixture("phi4", "phi4-tiny");
	const char *dst = subdir("phi4-2-layers");
	static const int32_t tok[2] = { 1, 2 };
	struct mb_st_model *m = NULL;
	char err[256] = "", a[1200], b[1200];
	char *text, *out;
	cJSON *cfg;
	size_t i;

	(void)state;
	assert_int_equal(mb_st_model_open_dir(src, &m, err, sizeof(err)), 0);
	assert_true(m->nshards > 1);
	for (i = 0; i <= m->nshards; i++) {
		const char *f = i < m->nshards ? m->shards[i] :
			"model.safetensors.index.json";

		snprintf(a, sizeof(a), "%s/%s", src, f);
		snprintf(b, sizeof(b), "%s/%s", dst, f);
		assert_int_equal(symlink(a, b), 0);
	}
	mb_st_model_free(m);
	snprintf(a, sizeof(a), "%s/config.json", src);
	text = th_slurp(a, NULL);
	assert_non_null(text);
	cfg = cJSON_Parse(text);
	free(text);
	assert_non_null(cfg);
	cJSON_ReplaceItemInObject(cfg, "num_hidden_layers",
				  cJSON_CreateNumber(2));
	out = cJSON_Print(cfg);
	assert_non_null(out);
	write_text(dst, "config.json", out);
	free(out);
	cJSON_Delete(cfg);
	expect_error(dst, tok, 2, MB_EFORMAT, "num_hidden_layers 2, but");
}

/* dst (a fresh subdirectory) with src's shards linked and src's
 * config.json with member key replaced by item (taken). */
static const char *fixture_variant(const char *src, const char *name,
				   const char *key, cJSON *item)
{
	const char *dst = subdir(name);
	struct mb_st_model *m = NULL;
	char err[256] = "", a[1200], b[1200];
	char *text, *out;
	cJSON *cfg;
	size_t i;

	assert_int_equal(mb_st_model_open_dir(src, &m, err, sizeof(err)), 0);
	for (i = 0; i <= m->nshards; i++) {
		const char *f = i < m->nshards ? m->shards[i] :
			"model.safetensors.index.json";

		snprintf(a, sizeof(a), "%s/%s", src, f);
		snprintf(b, sizeof(b), "%s/%s", dst, f);
		assert_int_equal(symlink(a, b), 0);
	}
	mb_st_model_free(m);
	snprintf(a, sizeof(a), "%s/config.json", src);
	text = th_slurp(a, NULL);
	assert_non_null(text);
	cfg = cJSON_Parse(text);
	free(text);
	assert_non_null(cfg);
	cJSON_DeleteItemFromObject(cfg, key);
	cJSON_AddItemToObject(cfg, key, item);
	out = cJSON_Print(cfg);
	assert_non_null(out);
	write_text(dst, "config.json", out);
	free(out);
	cJSON_Delete(cfg);
	return dst;
}

/* gemma3-tiny (7 layers, sliding window 4, layer 5 global) over 48
 * tokens: finite, varied, repeatable. */
static void test_fixture_gemma3_tiny(void **state)
{
	(void)state;
	check_fixture(fixture("gemma3", "gemma3-tiny"), 512);
}

/* The window at work on the generated Gemma 3: with every layer
 * sliding (layer_types), position t sees tokens t - 7 * 3 .. t at most
 * (each of the 7 layers reaches 3 positions further back), so changing
 * tokens 0..2 leaves positions 24.. as they were; with the fixture's own
 * pattern, global layer 5 carries token 0 to the last position. */
static void test_fixture_gemma3_window(void **state)
{
	const char *src = fixture("gemma3", "gemma3-tiny");
	const char *all_swa;
	cJSON *lt = cJSON_CreateArray();
	int32_t t[48], u[48];
	float *a, *b;
	int i;

	(void)state;
	for (i = 0; i < 7; i++)
		cJSON_AddItemToArray(lt, cJSON_CreateString(
			"sliding_attention"));
	all_swa = fixture_variant(src, "gemma3-all-swa", "layer_types", lt);
	tokens(t, 48, 512, 0);
	memcpy(u, t, sizeof(t));
	tokens(u, 3, 512, 5);
	assert_true(u[0] != t[0]);
	a = run_ok(all_swa, t, 48, 512);
	b = run_ok(all_swa, u, 48, 512);
	assert_memory_not_equal(a + 3 * 512, b + 3 * 512, 512 * sizeof(float));
	assert_memory_equal(a + 24 * 512, b + 24 * 512,
			    (size_t)24 * 512 * sizeof(float));
	free(a);
	free(b);
	a = run_ok(src, t, 48, 512);
	b = run_ok(src, u, 48, 512);
	assert_memory_not_equal(a + 47 * 512, b + 47 * 512,
				512 * sizeof(float));
	free(a);
	free(b);
}

/* Reads a tensor's raw bytes from the model in dir (caller frees). */
static uint8_t *raw_tensor(const char *dir, const struct mb_st_model *m,
			   const char *name, const struct mb_st_tensor **tp)
{
	const struct mb_st_tensor *t = mb_st_model_find(m, name);
	char path[1200];
	uint8_t *p;
	size_t got;
	int fd;

	if (t == NULL)
		fail_msg("fixture has no tensor '%s'", name);
	snprintf(path, sizeof(path), "%s/%s", dir, m->shards[t->shard]);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	p = malloc(t->end - t->begin);
	assert_non_null(p);
	assert_int_equal(mb_pread_full(fd, p, t->end - t->begin,
				       m->files[t->shard]->data_start +
					       t->begin, &got), 0);
	assert_int_equal(got, t->end - t->begin);
	close(fd);
	*tp = t;
	return p;
}

/* The converter's split layout: phi4-tiny's fused qkv_proj and
 * gate_up_proj cut into Llama's q/k/v_proj and gate/up_proj by rows (no
 * permutation: transformers' Llama and Phi-3 both use rotate_half), under
 * a Llama config with the same numbers, gives the same logits, bit for
 * bit. */
static void test_phi3_as_llama(void **state)
{
	const char *src = fixture("phi4", "phi4-tiny");
	const char *dst = subdir("phi4-as-llama");
	struct mb_st_model *m = NULL;
	struct entry e[64] = { { 0 } };
	uint8_t *bufs[64];
	char names[64][96], err[256] = "", path[700];
	size_t n = 0, i, H, hd, qd, kvd, ff, layers;
	char *text, *out;
	cJSON *cfg;
	int32_t t[48];
	float *a, *b;

	(void)state;
	assert_int_equal(mb_st_model_open_dir(src, &m, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/config.json", src);
	text = th_slurp(path, NULL);
	assert_non_null(text);
	cfg = cJSON_Parse(text);
	free(text);
	assert_non_null(cfg);
	H = (size_t)cJSON_GetObjectItem(cfg, "hidden_size")->valueint;
	ff = (size_t)cJSON_GetObjectItem(cfg, "intermediate_size")->valueint;
	layers = (size_t)cJSON_GetObjectItem(cfg,
					     "num_hidden_layers")->valueint;
	hd = H / (size_t)cJSON_GetObjectItem(cfg,
					     "num_attention_heads")->valueint;
	kvd = hd * (size_t)cJSON_GetObjectItem(cfg,
					       "num_key_value_heads")->valueint;
	qd = H;
	assert_true(6 * layers + 3 <= 64);

	/* every tensor as it is, but the fused ones split by rows */
	for (i = 0; i < m->ntensors; i++) {
		const char *name = m->tensors[i].name;
		const struct mb_st_tensor *tt;
		const char *dot = strstr(name, ".self_attn.qkv_proj.");
		uint8_t *p;
		size_t rb;

		if (dot == NULL)
			dot = strstr(name, ".mlp.gate_up_proj.");
		p = raw_tensor(src, m, name, &tt);
		assert_string_equal(mb_st_dtype_name(tt->dtype), "BF16");
		bufs[n] = p;
		rb = tt->ndim == 2 ? tt->shape[1] * 2 : 0;
		if (dot == NULL) {
			snprintf(names[n], sizeof(names[n]), "%s", name);
			e[n] = (struct entry){ names[n], "BF16", tt->shape[0],
					       tt->ndim == 2 ? tt->shape[1] : 0,
					       p };
			n++;
		} else if (strstr(dot, "qkv") != NULL) {
			int pre = (int)(dot - name);

			assert_int_equal(tt->shape[0], qd + 2 * kvd);
			snprintf(names[n], 96, "%.*s.self_attn.q_proj.weight",
				 pre, name);
			e[n] = (struct entry){ names[n], "BF16", qd, H, p };
			n++;
			snprintf(names[n], 96, "%.*s.self_attn.k_proj.weight",
				 pre, name);
			bufs[n] = NULL;
			e[n] = (struct entry){ names[n], "BF16", kvd, H,
					       p + qd * rb };
			n++;
			snprintf(names[n], 96, "%.*s.self_attn.v_proj.weight",
				 pre, name);
			bufs[n] = NULL;
			e[n] = (struct entry){ names[n], "BF16", kvd, H,
					       p + (qd + kvd) * rb };
			n++;
		} else {
			int pre = (int)(dot - name);

			assert_int_equal(tt->shape[0], 2 * ff);
			snprintf(names[n], 96, "%.*s.mlp.gate_proj.weight",
				 pre, name);
			e[n] = (struct entry){ names[n], "BF16", ff, H, p };
			n++;
			snprintf(names[n], 96, "%.*s.mlp.up_proj.weight",
				 pre, name);
			bufs[n] = NULL;
			e[n] = (struct entry){ names[n], "BF16", ff, H,
					       p + ff * rb };
			n++;
		}
		assert_true(n + 3 <= 64);
	}
	snprintf(path, sizeof(path), "%s/model.safetensors", dst);
	write_st(path, e, n);
	for (i = 0; i < n; i++)
		free(bufs[i]);
	mb_st_model_free(m);

	cJSON_ReplaceItemInObject(cfg, "model_type",
				  cJSON_CreateString("llama"));
	cJSON_DeleteItemFromObject(cfg, "architectures");
	cJSON_AddItemToObject(cfg, "architectures", cJSON_CreateStringArray(
		(const char *const[]){ "LlamaForCausalLM" }, 1));
	out = cJSON_Print(cfg);
	assert_non_null(out);
	write_text(dst, "config.json", out);
	free(out);
	cJSON_Delete(cfg);

	tokens(t, 48, 1024, 3);
	a = run_ok(src, t, 48, 1024);
	b = run_ok(dst, t, 48, 1024);
	assert_memory_equal(a, b, (size_t)48 * 1024 * sizeof(float));
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_micro_no_blocks),
		cmocka_unit_test(test_micro_tied),
		cmocka_unit_test(test_micro_attention),
		cmocka_unit_test(test_micro_gqa),
		cmocka_unit_test(test_micro_dtypes),
		cmocka_unit_test(test_micro_rope_pairs),
		cmocka_unit_test(test_micro_partial_rotary),
		cmocka_unit_test(test_micro_mlp),
		cmocka_unit_test(test_micro_sliding_window),
		cmocka_unit_test(test_micro_causal),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_gemma_no_blocks),
		cmocka_unit_test(test_gemma_mlp),
		cmocka_unit_test(test_gemma_attention),
		cmocka_unit_test(test_gemma_qk_norm),
		cmocka_unit_test(test_gemma_errors),
		cmocka_unit_test(test_fixture_phi4_tiny),
		cmocka_unit_test(test_fixture_llama_tiny),
		cmocka_unit_test(test_fixture_gemma3_tiny),
		cmocka_unit_test(test_fixture_gemma3_window),
		cmocka_unit_test(test_fixture_causal),
		cmocka_unit_test(test_fixture_too_few_layers),
		cmocka_unit_test(test_phi3_as_llama),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
