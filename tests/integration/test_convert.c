/* The converter, end to end: fixtures converted in both layouts and three
 * output types, loaded by the real libllama, and their logits compared
 * with the plain reference forward pass over the safetensors. Proves the
 * comparison bites (swapped gate/up, a skipped q/k permutation), that
 * every tensor is the source after the expected conversion, and that
 * failures leave nothing behind. */
#define _GNU_SOURCE /* memmem */
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
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/convert.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/half.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"
#include "llama.h"
#include "llm.h"
#include "model.h"
#include "reference.h"
#include "th.h"

#define NTOK 48

static char root[512];
static char phi_bad[600], phi_good[600], llama_good[600], llama_bad[600];
static char qwen2[600], qwen2_tied[600], phi_mini[600], gemma[600];
static char qwen3[600], qwen3_untied[600];
static char gemma3[600], gemma3_noarch[600], gemma3_lie[600];
static int32_t toks[NTOK];
static float *ref_phi, *ref_llama;
static int nv_phi, nv_llama;

static void gen(char *dir, size_t cap, const char *name, const char *preset,
		const char *config)
{
	const char *extra[] = { "--config", config, NULL };

	snprintf(dir, cap, "%s/%s", root, name);
	assert_int_equal(th_mkmodel(dir, preset, extra), 0);
}

static int setup(void **state)
{
	char err[512];
	int i;

	(void)state;
	if (th_tmpdir("convert", root, sizeof(root)) != 0)
		return -1;
	gen(phi_bad, sizeof(phi_bad), "phi-broken", "phi4-tiny", "broken");
	gen(phi_good, sizeof(phi_good), "phi-correct", "phi4-tiny", "correct");
	gen(llama_good, sizeof(llama_good), "llama-correct", "llama-tiny", "correct");
	gen(llama_bad, sizeof(llama_bad), "llama-broken", "llama-tiny", "broken");
	gen(qwen2, sizeof(qwen2), "qwen2", "qwen2-tiny", "correct");
	{
		const char *extra[] = { "--tied", "yes", NULL };

		snprintf(qwen2_tied, sizeof(qwen2_tied), "%s/qwen2-tied", root);
		assert_int_equal(th_mkmodel(qwen2_tied, "qwen2-tiny", extra), 0);
	}
	/* Gemma's config over Llama-shaped tensors: a true config of an
	 * architecture mibera does not convert */
	gen(gemma, sizeof(gemma), "gemma", "llama-tiny", "correct");
	{
		char p[700];
		static const char cfg[] =
			"{\"architectures\":[\"GemmaForCausalLM\"],"
			"\"model_type\":\"gemma\",\"hidden_size\":256,"
			"\"num_attention_heads\":4,\"num_key_value_heads\":2,"
			"\"head_dim\":64,\"num_hidden_layers\":2,"
			"\"intermediate_size\":688,\"vocab_size\":512,"
			"\"hidden_activation\":\"gelu_pytorch_tanh\"}\n";

		snprintf(p, sizeof(p), "%s/config.json", gemma);
		assert_int_equal(th_write_file(p, cfg, sizeof(cfg) - 1), 0);
	}
	gen(phi_mini, sizeof(phi_mini), "phi4-mini", "phi4-mini-tiny", "correct");
	gen(qwen3, sizeof(qwen3), "qwen3", "qwen3-tiny", "correct");
	{
		const char *extra[] = { "--tied", "no", NULL };

		snprintf(qwen3_untied, sizeof(qwen3_untied), "%s/qwen3-untied",
			 root);
		assert_int_equal(th_mkmodel(qwen3_untied, "qwen3-tiny", extra),
				 0);
	}
	gen(gemma3, sizeof(gemma3), "gemma3", "gemma3-tiny", "correct");
	{
		const char *extra[] = { "--no-architectures", NULL };

		snprintf(gemma3_noarch, sizeof(gemma3_noarch),
			 "%s/gemma3-noarch", root);
		assert_int_equal(th_mkmodel(gemma3_noarch, "gemma3-tiny",
					    extra),
				 0);
	}
	/* Gemma 3's text weights under the multimodal checkpoint's config
	 * (its sizes in text_config, where a text model has none) */
	gen(gemma3_lie, sizeof(gemma3_lie), "gemma3-lie", "gemma3-tiny",
	    "correct");
	{
		char p[700];
		static const char cfg[] =
			"{\"architectures\":"
			"[\"Gemma3ForConditionalGeneration\"],"
			"\"model_type\":\"gemma3\",\"text_config\":"
			"{\"hidden_size\":192,\"num_hidden_layers\":7,"
			"\"model_type\":\"gemma3_text\"},"
			"\"vision_config\":{\"model_type\":"
			"\"siglip_vision_model\"}}\n";

		snprintf(p, sizeof(p), "%s/config.json", gemma3_lie);
		assert_int_equal(th_write_file(p, cfg, sizeof(cfg) - 1), 0);
	}
	/* 48 real tokens (the tiny vocabularies have 500 and 616) */
	for (i = 0; i < NTOK; i++)
		toks[i] = (int32_t)((i * 7919 + 13) % 499);
	if (ref_logits(phi_good, toks, NTOK, &ref_phi, &nv_phi, err,
		       sizeof(err)) != 0 ||
	    ref_logits(llama_good, toks, NTOK, &ref_llama, &nv_llama, err,
		       sizeof(err)) != 0) {
		fprintf(stderr, "reference: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ref_phi);
	free(ref_llama);
	th_rmtree(root);
	return 0;
}

static void convert(const char *src, const char *out, enum mb_layout layout,
		    enum mb_outtype type, struct mb_convert_result *r)
{
	struct mb_convert_opts o;
	char err[1024] = "";
	int rc;

	memset(&o, 0, sizeof(o));
	o.model_dir = src;
	o.out_path = out;
	o.layout = layout;
	o.outtype = type;
	o.threads = 2;
	rc = mb_convert(&o, r, err, sizeof(err));
	if (rc != 0)
		fail_msg("convert %s -> %s: %s", src, out, err);
}

/* Converts, runs with libllama, compares with the reference. */
/* Writes data (len bytes) to root/name and returns that path in out. */
static void write_copy(const char *name, const char *data, size_t len,
		       char *out, size_t cap)
{
	int fd;

	snprintf(out, cap, "%s/%s", root, name);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(mb_write_all(fd, data, len), 0);
	close(fd);
}

/* libllama's logits of the file at path against ref, printed as label's
 * relative max error and top-1 agreement. */
static void compare_file(const char *path, const float *ref,
			 const char *label, double *rel, double *top1)
{
	char err[2048];
	float *got;
	int n;

	if (th_llama_logits(path, toks, NTOK, &got, &n, err, sizeof(err)) != 0)
		fail_msg("%s: %s", label, err);
	th_logits_compare(ref, got, NTOK, n, rel, top1);
	free(got);
	print_message("%s: rel max err %.2e, top-1 %.0f%%\n", label, *rel,
		      *top1 * 100);
}

/* The file at path agrees with ref as a correct conversion does. */
static void must_match(const char *path, const float *ref, const char *label)
{
	double rel, top1;

	compare_file(path, ref, label, &rel, &top1);
	assert_true(rel <= 5e-3 && top1 == 1.0);
}

/* A sabotaged copy (data, len bytes, written to root/name) must not agree
 * with ref: the comparison bites on what label names. Agreement is a top-1
 * of at least top1_min with a relative error within 5e-3. */
static void must_differ(const char *name, const char *data, size_t len,
			const float *ref, const char *label, double top1_min)
{
	char bad[700], what[256];
	double rel, top1;

	write_copy(name, data, len, bad, sizeof(bad));
	snprintf(what, sizeof(what), "%s (must fail)", label);
	compare_file(bad, ref, what, &rel, &top1);
	assert_true(rel > 5e-3 || top1 < top1_min);
}

static void fidelity(const char *src, const char *name, enum mb_layout layout,
		     enum mb_outtype type, const float *ref, int nv,
		     double limit, float **keep)
{
	struct mb_convert_result r;
	char out[700], err[2048];
	double rel, top1;
	float *got;
	int n;

	snprintf(out, sizeof(out), "%s/%s.gguf", root, name);
	convert(src, out, layout, type, &r);
	if (th_llama_logits(out, toks, NTOK, &got, &n, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	assert_int_equal(n, nv);
	th_logits_compare(ref, got, NTOK, nv, &rel, &top1);
	print_message("%-22s %-6s rel max err %.2e, top-1 %.0f%%\n", name,
		      r.arch, rel, top1 * 100);
	if (!(rel <= limit) || top1 < 1.0)
		fail_msg("%s: relative error %.3e (limit %.1e), top-1 %.1f%%",
			 name, rel, limit, top1 * 100);
	if (keep != NULL)
		*keep = got;
	else
		free(got);
}

static void test_phi4_native_f32(void **state)
{
	struct mb_gguf *g;
	char path[700], err[512];

	(void)state;
	/* from the BROKEN config: the repairs are what make it right */
	fidelity(phi_bad, "phi-native-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref_phi,
		 nv_phi, 5e-3, NULL);
	snprintf(path, sizeof(path), "%s/phi-native-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->ntensors, 6 * 3 + 3);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, "phi3");
	assert_int_equal(mb_gguf_kv(g, "phi3.block_count")->v.u, 3);
	assert_int_equal(mb_gguf_kv(g, "phi3.attention.head_count")->v.u, 4);
	assert_int_equal(mb_gguf_kv(g, "phi3.attention.head_count_kv")->v.u, 1);
	assert_int_equal(mb_gguf_kv(g, "phi3.attention.sliding_window")->v.u, 0);
	assert_non_null(mb_gguf_tensor(g, "blk.2.attn_qkv.weight"));
	assert_int_equal(mb_gguf_tensor(g, "blk.0.ffn_up.weight")->ne[1], 2 * 1792);
	mb_gguf_free(g);
}

static void test_phi4_split_f32_and_agreement(void **state)
{
	float *native, *split;
	struct mb_gguf *g;
	char path[700], err[2048];
	double rel, top1;
	int n;

	(void)state;
	fidelity(phi_bad, "phi-split-f32", MB_LAYOUT_SPLIT, MB_OUT_F32, ref_phi,
		 nv_phi, 5e-3, &split);
	snprintf(path, sizeof(path), "%s/phi-split-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->ntensors, 9 * 3 + 3);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, "llama");
	mb_gguf_free(g);
	snprintf(path, sizeof(path), "%s/phi-native-f32.gguf", root);
	if (access(path, F_OK) != 0) {
		struct mb_convert_result r;

		convert(phi_bad, path, MB_LAYOUT_NATIVE, MB_OUT_F32, &r);
	}
	assert_int_equal(th_llama_logits(path, toks, NTOK, &native, &n, err,
					 sizeof(err)),
			 0);
	th_logits_compare(native, split, NTOK, n, &rel, &top1);
	print_message("native vs split f32: rel max err %.2e\n", rel);
	assert_true(rel <= 1e-3);
	assert_true(top1 == 1.0);
	free(native);
	free(split);
}

static void test_phi4_f16_and_bf16(void **state)
{
	(void)state;
	fidelity(phi_bad, "phi-native-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref_phi,
		 nv_phi, 1e-2, NULL);
	fidelity(phi_bad, "phi-split-f16", MB_LAYOUT_SPLIT, MB_OUT_F16, ref_phi,
		 nv_phi, 1e-2, NULL);
	fidelity(phi_bad, "phi-native-bf16", MB_LAYOUT_NATIVE, MB_OUT_BF16,
		 ref_phi, nv_phi, 1e-2, NULL);
}

static void test_llama(void **state)
{
	(void)state;
	fidelity(llama_good, "llama-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref_llama,
		 nv_llama, 5e-3, NULL);
	fidelity(llama_good, "llama-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref_llama,
		 nv_llama, 1e-2, NULL);
}

/* Rewrites tensor data in a copy of a GGUF, to prove the comparison
 * catches a converter that gets the layout wrong. */
static void sabotage(const char *in, const char *out, int what)
{
	struct mb_gguf *g;
	char err[512], name[64];
	char *data;
	size_t len;
	uint64_t l;
	int fd;

	data = th_slurp(in, &len);
	assert_non_null(data);
	assert_int_equal(mb_gguf_read(in, &g, err, sizeof(err)), 0);
	for (l = 0; l < 3; l++) {
		const struct mb_gguf_tensor *a, *b;

		if (what == 0) {
			/* gate and up swapped */
			snprintf(name, sizeof(name), "blk.%llu.ffn_gate.weight",
				 (unsigned long long)l);
			a = mb_gguf_tensor(g, name);
			snprintf(name, sizeof(name), "blk.%llu.ffn_up.weight",
				 (unsigned long long)l);
			b = mb_gguf_tensor(g, name);
			assert_int_equal(a->size, b->size);
			{
				char *tmp = malloc(a->size);

				memcpy(tmp, data + a->offset, a->size);
				memcpy(data + a->offset, data + b->offset, a->size);
				memcpy(data + b->offset, tmp, a->size);
				free(tmp);
			}
		} else {
			/* q rows back in the source order: the permutation
			 * skipped */
			uint64_t rows, per, half, s, cols;
			float *q, *orig;

			snprintf(name, sizeof(name), "blk.%llu.attn_q.weight",
				 (unsigned long long)l);
			a = mb_gguf_tensor(g, name);
			assert_int_equal(a->type, MB_GGML_F32);
			cols = a->ne[0];
			rows = a->ne[1];
			per = rows / 4; /* 4 heads */
			half = per / 2;
			q = (float *)(data + a->offset);
			orig = malloc(a->size);
			memcpy(orig, q, a->size);
			for (s = 0; s < rows; s++) {
				uint64_t h = s / per, r = s % per;
				uint64_t t = r / half, aa = r % half;
				uint64_t j = h * per + 2 * aa + t;

				memcpy(q + s * cols, orig + j * cols, cols * 4);
			}
			free(orig);
		}
	}
	mb_gguf_free(g);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(mb_write_all(fd, data, len), 0);
	close(fd);
	free(data);
}

static void test_comparison_bites(void **state)
{
	char split[700], bad[700];
	struct mb_convert_result r;
	double rel, top1;
	int what;

	(void)state;
	snprintf(split, sizeof(split), "%s/phi-split-f32.gguf", root);
	if (access(split, F_OK) != 0)
		convert(phi_bad, split, MB_LAYOUT_SPLIT, MB_OUT_F32, &r);
	for (what = 0; what < 2; what++) {
		snprintf(bad, sizeof(bad), "%s/sabotaged-%d.gguf", root, what);
		sabotage(split, bad, what);
		compare_file(bad, ref_phi, what == 0 ? "gate/up swapped (must "
			     "fail)" : "q not permuted (must fail)", &rel, &top1);
		assert_true(rel > 5e-3 || top1 < 1.0);
	}
}

/* Every tensor of a bf16 native file is a byte copy of its source. */
static void test_tensors_read_back(void **state)
{
	static const struct {
		const char *gguf, *src;
	} map[] = {
		{ "token_embd.weight", "model.embed_tokens.weight" },
		{ "output.weight", "lm_head.weight" },
		{ "blk.1.attn_qkv.weight", "model.layers.1.self_attn.qkv_proj.weight" },
		{ "blk.2.ffn_up.weight", "model.layers.2.mlp.gate_up_proj.weight" },
		{ "blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight" },
		{ "blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight" },
	};
	struct mb_convert_result r;
	struct mb_st_model *m;
	struct mb_gguf *g;
	char out[700], err[512], shard[800];
	size_t i;

	(void)state;
	snprintf(out, sizeof(out), "%s/phi-native-bf16.gguf", root);
	if (access(out, F_OK) != 0)
		convert(phi_bad, out, MB_LAYOUT_NATIVE, MB_OUT_BF16, &r);
	assert_int_equal(mb_gguf_read(out, &g, err, sizeof(err)), 0);
	assert_int_equal(mb_st_model_open_dir(phi_bad, &m, err, sizeof(err)), 0);
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const struct mb_gguf_tensor *t = mb_gguf_tensor(g, map[i].gguf);
		const struct mb_st_tensor *s = mb_st_model_find(m, map[i].src);
		size_t n = (size_t)(s->end - s->begin), got;
		char *a = malloc(n), *b = malloc(n);
		int fa = open(out, O_RDONLY), fb;

		snprintf(shard, sizeof(shard), "%s/%s", phi_bad, m->shards[s->shard]);
		fb = open(shard, O_RDONLY);
		assert_int_equal(t->type, MB_GGML_BF16);
		assert_int_equal(t->size, n);
		assert_int_equal(mb_pread_full(fa, a, n, t->offset, &got), 0);
		assert_int_equal(mb_pread_full(fb, b, n,
					       m->files[s->shard]->data_start + s->begin,
					       &got),
				 0);
		if (memcmp(a, b, n) != 0)
			fail_msg("'%s' is not a copy of '%s'", map[i].gguf, map[i].src);
		close(fa);
		close(fb);
		free(a);
		free(b);
	}
	/* norms are F32, widened exactly */
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_norm.weight")->type,
			 MB_GGML_F32);
	mb_st_model_free(m);
	mb_gguf_free(g);
}

static int run_worker(const char *args, char *out, size_t cap)
{
	char cmd[2048];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/mibera-worker %s 2>&1", MB_BINARY_DIR, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
	char args[2048], out[8192], path[700];
	struct mb_gguf *g;
	char err[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/cli.gguf", root);
	snprintf(args, sizeof(args), "convert %s %s --layout split --outtype f16 "
		 "--name my-phi3-finetune --repo org/x", phi_bad, path);
	if (run_worker(args, out, sizeof(out)) != 0)
		fail_msg("mibera-worker %s: %s", args, out);
	assert_non_null(strstr(out, "converted"));
	assert_non_null(strstr(out, "peak RSS"));
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	/* "phi3" in general.name makes llama.cpp demand tokens this vocab
	 * lacks: the name is written so that it does not */
	assert_string_equal(mb_gguf_kv(g, "general.name")->v.s, "my-phi 3-finetune");
	assert_string_equal(mb_gguf_kv(g, "general.source.huggingface.repository")->v.s,
			    "org/x");
	mb_gguf_free(g);
	/* not convertible: exit 3 with the reason */
	snprintf(args, sizeof(args), "convert %s %s/no.gguf", llama_bad, root);
	assert_int_equal(run_worker(args, out, sizeof(out)), 3);
	assert_non_null(strstr(out, "head count unknown"));
	snprintf(path, sizeof(path), "%s/no.gguf", root);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(args, sizeof(args), "convert %s", phi_bad);
	assert_int_equal(run_worker(args, out, sizeof(out)), 2);
	snprintf(args, sizeof(args), "convert %s %s/x.gguf --outtype q4", phi_bad, root);
	assert_int_equal(run_worker(args, out, sizeof(out)), 2);
}

/* Phi-4-mini's layout: rope on 96 of each head's 128 dimensions, longrope
 * factors for those 48 pairs, the output tied to the embedding. The GGUF
 * says 96 and carries 48 factors per list; libllama's logits match the
 * reference, which applies the short factors and the attention factor as
 * transformers does at this length. */
static void test_phi4_mini_partial_rotary_longrope(void **state)
{
	const struct mb_gguf_tensor *t;
	struct mb_gguf *g;
	char path[700], err[2048];
	float *ref;
	int nv;

	(void)state;
	if (ref_logits(phi_mini, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(phi_mini, "phi-mini-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref, nv,
		 5e-3, NULL);
	fidelity(phi_mini, "phi-mini-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref, nv,
		 1e-2, NULL);
	snprintf(path, sizeof(path), "%s/phi-mini-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	{
		/* the factors matter at this length: all 1 must fail */
		size_t len, i;
		char *data = th_slurp(path, &len);
		float *f;

		assert_non_null(data);
		t = mb_gguf_tensor(g, "rope_factors_short.weight");
		assert_non_null(t);
		f = (float *)(void *)(data + t->offset);
		for (i = 0; i < t->ne[0]; i++)
			f[i] = 1.0f;
		must_differ("phi-mini-no-factors.gguf", data, len, ref,
			    "short factors all 1", 1.0);
		free(data);
	}
	free(ref);
	assert_int_equal(mb_gguf_kv(g, "phi3.rope.dimension_count")->v.u, 96);
	assert_int_equal(mb_gguf_kv(g, "phi3.attention.head_count")->v.u, 3);
	assert_int_equal(mb_gguf_kv(g, "phi3.rope.scaling.original_context_length")->v.u,
			 4096);
	t = mb_gguf_tensor(g, "rope_factors_long.weight");
	assert_non_null(t);
	assert_int_equal(t->ne[0], 48);
	t = mb_gguf_tensor(g, "rope_factors_short.weight");
	assert_non_null(t);
	assert_int_equal(t->ne[0], 48);
	assert_null(mb_gguf_tensor(g, "output.weight"));
	mb_gguf_free(g);
}

/* Reorders each head's rows as the llama layout's q/k permutation does:
 * what the converter once did to Qwen2. */
static void permute_heads(float *x, uint64_t rows, uint64_t cols,
			  uint64_t heads)
{
	uint64_t per = rows / heads, half = per / 2, s;
	float *orig = malloc(rows * cols * sizeof(float));

	assert_non_null(orig);
	memcpy(orig, x, rows * cols * sizeof(float));
	for (s = 0; s < rows; s++) {
		uint64_t h = s / per, r = s % per;
		uint64_t j = h * per + (r % 2) * half + r / 2;

		memcpy(x + s * cols, orig + j * cols, cols * sizeof(float));
	}
	free(orig);
}

/* Qwen2 converts as llama.cpp's qwen2: q and k as transformers keeps them
 * (NEOX rope), their biases, and the output tied or not; libllama's
 * logits match the reference. Converted the llama way (q permuted) the
 * comparison fails: the model that once passed the smoke test. */
static void test_qwen2(void **state)
{
	const struct mb_gguf_tensor *t;
	const struct mb_st_tensor *s;
	struct mb_st_model *m;
	struct mb_gguf *g;
	char path[700], shard[800], err[2048];
	float *ref;
	uint16_t *src;
	size_t len, i, got_n;
	char *data;
	int nv, fd;

	(void)state;
	if (ref_logits(qwen2, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(qwen2, "qwen2-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref, nv, 5e-3,
		 NULL);
	fidelity(qwen2, "qwen2-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref, nv, 1e-2,
		 NULL);
	snprintf(path, sizeof(path), "%s/qwen2-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, "qwen2");
	assert_int_equal(mb_gguf_kv(g, "qwen2.attention.head_count")->v.u, 4);
	assert_int_equal(mb_gguf_kv(g, "qwen2.attention.head_count_kv")->v.u, 2);
	assert_non_null(mb_gguf_tensor(g, "blk.1.attn_k.bias"));
	assert_non_null(mb_gguf_tensor(g, "output.weight"));
	/* attn_q is q_proj row for row: no permutation */
	t = mb_gguf_tensor(g, "blk.0.attn_q.weight");
	assert_non_null(t);
	assert_int_equal(mb_st_model_open_dir(qwen2, &m, err, sizeof(err)), 0);
	s = mb_st_model_find(m, "model.layers.0.self_attn.q_proj.weight");
	assert_non_null(s);
	assert_int_equal(t->size, (s->end - s->begin) * 2);
	data = th_slurp(path, &len);
	assert_non_null(data);
	src = malloc(s->end - s->begin);
	snprintf(shard, sizeof(shard), "%s/%s", qwen2, m->shards[s->shard]);
	fd = open(shard, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(mb_pread_full(fd, src, s->end - s->begin,
				       m->files[s->shard]->data_start + s->begin,
				       &got_n), 0);
	close(fd);
	for (i = 0; i < (s->end - s->begin) / 2; i++)
		if (((float *)(void *)(data + t->offset))[i] !=
		    mb_bf16_to_f32(src[i]))
			fail_msg("blk.0.attn_q.weight element %zu is not "
				 "q_proj's", i);
	free(src);
	mb_st_model_free(m);
	/* q and its bias permuted the llama way: must fail */
	for (i = 0; i < 2; i++) {
		const struct mb_gguf_tensor *q, *qb;
		char name[64];

		snprintf(name, sizeof(name), "blk.%zu.attn_q.weight", i);
		q = mb_gguf_tensor(g, name);
		snprintf(name, sizeof(name), "blk.%zu.attn_q.bias", i);
		qb = mb_gguf_tensor(g, name);
		assert_int_equal(q->type, MB_GGML_F32);
		permute_heads((float *)(void *)(data + q->offset), q->ne[1],
			      q->ne[0], 4);
		permute_heads((float *)(void *)(data + qb->offset), qb->ne[0], 1,
			      4);
	}
	must_differ("qwen2-permuted.gguf", data, len, ref, "qwen2 q permuted",
		    1.0);
	free(data);
	mb_gguf_free(g);
	free(ref);
	/* tied: no output.weight, llama.cpp reads the embedding */
	if (ref_logits(qwen2_tied, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(qwen2_tied, "qwen2-tied-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref,
		 nv, 5e-3, NULL);
	free(ref);
	snprintf(path, sizeof(path), "%s/qwen2-tied-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_null(mb_gguf_tensor(g, "output.weight"));
	mb_gguf_free(g);
}


/* Qwen3 converts as llama.cpp's qwen3: a head size of its own (128, with
 * queries twice the hidden size), q and k in transformers' order (NEOX
 * rope) and their per-head norms; libllama's logits match the reference,
 * tied output or not. Without the norms' weights, or with q and k
 * permuted the llama way, the comparison fails. */
static void test_qwen3(void **state)
{
	static const char *const norms[] = { "attn_q_norm", "attn_k_norm" };
	struct mb_gguf *g;
	char path[700], name[64], err[2048];
	float *ref;
	size_t len, i, k, j;
	char *data;
	int nv;

	(void)state;
	if (ref_logits(qwen3, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(qwen3, "qwen3-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref, nv, 5e-3,
		 NULL);
	fidelity(qwen3, "qwen3-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref, nv, 1e-2,
		 NULL);
	snprintf(path, sizeof(path), "%s/qwen3-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, "qwen3");
	assert_int_equal(mb_gguf_kv(g, "qwen3.attention.head_count")->v.u, 4);
	assert_int_equal(mb_gguf_kv(g, "qwen3.attention.head_count_kv")->v.u, 2);
	assert_int_equal(mb_gguf_kv(g, "qwen3.attention.key_length")->v.u, 128);
	assert_int_equal(mb_gguf_kv(g, "qwen3.attention.value_length")->v.u, 128);
	assert_int_equal(mb_gguf_kv(g, "qwen3.rope.dimension_count")->v.u, 128);
	assert_int_equal(mb_gguf_tensor(g, "blk.1.attn_q_norm.weight")->ne[0],
			 128);
	assert_int_equal(mb_gguf_tensor(g, "blk.1.attn_k_norm.weight")->ne[0],
			 128);
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_q.weight")->ne[1], 512);
	assert_null(mb_gguf_tensor(g, "blk.0.attn_q.bias"));
	assert_null(mb_gguf_tensor(g, "output.weight"));
	data = th_slurp(path, &len);
	assert_non_null(data);
	/* the norms' weights dropped (all ones): must fail */
	for (i = 0; i < 2; i++)
		for (k = 0; k < 2; k++) {
			const struct mb_gguf_tensor *t;
			float *w;

			snprintf(name, sizeof(name), "blk.%zu.%s.weight", i,
				 norms[k]);
			t = mb_gguf_tensor(g, name);
			assert_int_equal(t->type, MB_GGML_F32);
			w = (float *)(void *)(data + t->offset);
			for (j = 0; j < t->ne[0]; j++)
				w[j] = 1.0f;
		}
	must_differ("qwen3-no-norms.gguf", data, len, ref,
		    "qwen3 norms as ones", 1.0);
	free(data);
	/* q and k permuted the llama way: must fail */
	data = th_slurp(path, &len);
	assert_non_null(data);
	for (i = 0; i < 2; i++) {
		const struct mb_gguf_tensor *q, *kk;

		snprintf(name, sizeof(name), "blk.%zu.attn_q.weight", i);
		q = mb_gguf_tensor(g, name);
		snprintf(name, sizeof(name), "blk.%zu.attn_k.weight", i);
		kk = mb_gguf_tensor(g, name);
		permute_heads((float *)(void *)(data + q->offset), q->ne[1],
			      q->ne[0], 4);
		permute_heads((float *)(void *)(data + kk->offset), kk->ne[1],
			      kk->ne[0], 2);
	}
	must_differ("qwen3-permuted.gguf", data, len, ref,
		    "qwen3 q, k permuted", 1.0);
	free(data);
	mb_gguf_free(g);
	free(ref);
	/* an untied output: output.weight is lm_head */
	if (ref_logits(qwen3_untied, toks, NTOK, &ref, &nv, err,
		       sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(qwen3_untied, "qwen3-untied-f32", MB_LAYOUT_NATIVE,
		 MB_OUT_F32, ref, nv, 5e-3, NULL);
	free(ref);
	snprintf(path, sizeof(path), "%s/qwen3-untied-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_non_null(mb_gguf_tensor(g, "output.weight"));
	mb_gguf_free(g);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *ud)
{
	(void)level;
	(void)text;
	(void)ud;
}

/* The float value of a GGUF KV, asserting it is there. */
static double kv_f(const struct mb_gguf *g, const char *key)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, key);

	if (kv == NULL)
		fail_msg("no %s", key);
	return kv->v.f;
}

static uint64_t kv_u(const struct mb_gguf *g, const char *key)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, key);

	if (kv == NULL)
		fail_msg("no %s", key);
	return kv->v.u;
}

/* Writes the config.json mibera repairs the model in dir to (its card
 * read as the converter reads it) to path. */
static void write_repaired(const char *dir, const char *path)
{
	struct mb_st_model *m;
	struct mb_modelcfg *c;
	struct mb_buf b;
	char p[800], err[512], *cfg, *card;
	size_t cfg_len, card_len;

	assert_int_equal(mb_st_model_open_dir(dir, &m, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/config.json", dir);
	cfg = th_slurp(p, &cfg_len);
	snprintf(p, sizeof(p), "%s/README.md", dir);
	card = th_slurp(p, &card_len);
	assert_int_equal(mb_modelcfg_infer(m, cfg, cfg_len, card, card_len,
					   NULL, 0, &c, err, sizeof(err)),
			 0);
	assert_true(c->convertible);
	mb_buf_init(&b, 1u << 20);
	assert_int_equal(mb_modelcfg_repaired_json(c, &b), 0);
	assert_int_equal(th_write_file(path, b.data, b.len), 0);
	mb_buf_release(&b);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
	free(cfg);
	free(card);
}

/* Gemma 3 converts as llama.cpp's gemma3: Gemma-3-1B's ratios (one KV
 * head, a head size of 64 over a hidden size of 192), four norms per
 * layer, every norm written as 1 + w, sliding layers (window 4, layer 5
 * global, its own rope base) and the tied output; libllama's logits
 * match the reference in F32 and F16. The norms as stored (w, not
 * 1 + w) fail the comparison, and so does a file where the global layer
 * slides too. */
static void test_gemma3(void **state)
{
	static const unsigned char want_swa[7] = { 1, 1, 1, 1, 1, 0, 1 };
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	struct mb_st_model *m;
	char path[700], err[2048];
	float *ref;
	size_t len, i, j, nnorms = 0;
	char *data;
	int nv;

	(void)state;
	if (ref_logits(gemma3, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	fidelity(gemma3, "gemma3-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref, nv,
		 5e-3, NULL);
	fidelity(gemma3, "gemma3-f16", MB_LAYOUT_NATIVE, MB_OUT_F16, ref, nv,
		 1e-2, NULL);
	snprintf(path, sizeof(path), "%s/gemma3-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s,
			    "gemma3");
	assert_int_equal(kv_u(g, "gemma3.context_length"), 32768);
	assert_int_equal(kv_u(g, "gemma3.embedding_length"), 192);
	assert_int_equal(kv_u(g, "gemma3.block_count"), 7);
	assert_int_equal(kv_u(g, "gemma3.feed_forward_length"), 512);
	assert_int_equal(kv_u(g, "gemma3.attention.head_count"), 4);
	assert_int_equal(kv_u(g, "gemma3.attention.head_count_kv"), 1);
	assert_int_equal(kv_u(g, "gemma3.attention.key_length"), 64);
	assert_int_equal(kv_u(g, "gemma3.attention.value_length"), 64);
	assert_true(kv_f(g, "gemma3.rope.freq_base") == 1e6);
	assert_true(kv_f(g, "gemma3.rope.freq_base_swa") == 1e4);
	assert_true(fabs(kv_f(g, "gemma3.attention.layer_norm_rms_epsilon") -
			 1e-6) < 1e-12);
	assert_int_equal(kv_u(g, "gemma3.attention.sliding_window"), 4);
	kv = mb_gguf_kv(g, "gemma3.attention.sliding_window_pattern");
	assert_non_null(kv);
	assert_int_equal(kv->elem_type, MB_GGUF_BOOL);
	assert_int_equal(kv->n, 7);
	assert_memory_equal(kv->arr, want_swa, 7);
	assert_null(mb_gguf_kv(g, "gemma3.final_logit_softcapping"));
	assert_null(mb_gguf_kv(g, "gemma3.rope.scaling.type"));
	/* the tokenizer as llama.cpp reads Gemma's */
	assert_true(kv_u(g, "tokenizer.ggml.add_bos_token") != 0);
	assert_true(kv_u(g, "tokenizer.ggml.add_space_prefix") == 0);
	assert_string_equal(mb_gguf_kv(g, "tokenizer.ggml.model")->v.s, "llama");
	/* <end_of_turn> ends a turn: llama.cpp finds it by its text */
	{
		struct llama_model_params mp = llama_model_default_params();
		const struct llama_vocab *vocab;
		struct llama_model *lm;
		llama_token eot;

		mp.vocab_only = true;
		llama_log_set(quiet_log, NULL);
		llama_backend_init();
		lm = llama_model_load_from_file(path, mp);
		llama_log_set(NULL, NULL);
		assert_non_null(lm);
		vocab = llama_model_get_vocab(lm);
		eot = llama_vocab_eot(vocab);
		kv = mb_gguf_kv(g, "tokenizer.ggml.tokens");
		assert_non_null(kv);
		assert_true(eot >= 0 && (uint64_t)eot < kv->n);
		assert_string_equal(kv->strs[eot], "<end_of_turn>");
		assert_true(llama_vocab_is_eog(vocab, eot));
		assert_true(llama_vocab_get_add_bos(vocab));
		assert_string_equal(kv->strs[llama_vocab_bos(vocab)], "<bos>");
		llama_model_free(lm);
	}
	/* four norms a layer, the q/k norms and the tied output */
	assert_non_null(mb_gguf_tensor(g, "blk.6.post_attention_norm.weight"));
	assert_non_null(mb_gguf_tensor(g, "blk.6.ffn_norm.weight"));
	assert_non_null(mb_gguf_tensor(g, "blk.6.post_ffw_norm.weight"));
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_q_norm.weight")->ne[0],
			 64);
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_q.weight")->ne[1], 256);
	assert_null(mb_gguf_tensor(g, "output.weight"));
	/* every norm is the checkpoint's w plus one, exactly (bf16 w + 1
	 * in f32), and nothing else is shifted */
	assert_int_equal(mb_st_model_open_dir(gemma3, &m, err, sizeof(err)), 0);
	data = th_slurp(path, &len);
	assert_non_null(data);
	for (i = 0; i < g->ntensors; i++) {
		const struct mb_gguf_tensor *t = &g->tensors[i];
		const struct mb_st_tensor *st;
		char src[160], shard[800], *sd;
		const uint16_t *bf;
		const float *w = (const float *)(void *)(data + t->offset);
		size_t slen;
		unsigned layer;
		char what[64];

		if (strstr(t->name, "norm") == NULL)
			continue;
		if (strcmp(t->name, "output_norm.weight") == 0)
			snprintf(src, sizeof(src), "model.norm.weight");
		else {
			static const char *const map[][2] = {
				{ "attn_norm", "input_layernorm" },
				{ "attn_q_norm", "self_attn.q_norm" },
				{ "attn_k_norm", "self_attn.k_norm" },
				{ "post_attention_norm",
				  "post_attention_layernorm" },
				{ "ffn_norm", "pre_feedforward_layernorm" },
				{ "post_ffw_norm",
				  "post_feedforward_layernorm" },
			};
			size_t k;

			assert_int_equal(sscanf(t->name, "blk.%u.%63[^.]",
						&layer, what), 2);
			for (k = 0; k < 6 && strcmp(map[k][0], what) != 0; k++)
				;
			assert_true(k < 6);
			snprintf(src, sizeof(src), "model.layers.%u.%s.weight",
				 layer, map[k][1]);
		}
		st = mb_st_model_find(m, src);
		assert_non_null(st);
		assert_int_equal(st->dtype, MB_ST_BF16);
		assert_int_equal(t->type, MB_GGML_F32);
		snprintf(shard, sizeof(shard), "%s/%s", gemma3,
			 m->shards[st->shard]);
		sd = th_slurp(shard, &slen);
		assert_non_null(sd);
		bf = (const uint16_t *)(void *)(sd + m->files[st->shard]->data_start +
						st->begin);
		for (j = 0; j < t->ne[0]; j++) {
			uint32_t u = (uint32_t)bf[j] << 16;
			float f;

			memcpy(&f, &u, 4);
			if (w[j] != f + 1.0f)
				fail_msg("%s[%zu] is %g, the checkpoint's %g "
					 "plus one is %g", t->name, j, w[j], f,
					 f + 1.0f);
		}
		free(sd);
		nnorms++;
	}
	assert_int_equal(nnorms, 7 * 6 + 1);
	mb_st_model_free(m);
	/* the norms as the checkpoint stores them (w, not 1 + w): must
	 * fail */
	for (i = 0; i < g->ntensors; i++) {
		const struct mb_gguf_tensor *t = &g->tensors[i];
		float *w = (float *)(void *)(data + t->offset);

		if (strstr(t->name, "norm") != NULL)
			for (j = 0; j < t->ne[0]; j++)
				w[j] -= 1.0f;
	}
	must_differ("gemma3-norms-unshifted.gguf", data, len, ref,
		    "gemma3 norms without +1", 1.0);
	free(data);
	/* layer 5 sliding too (every bool of the pattern set): must fail,
	 * so the per-layer pattern is read and the global layer is
	 * global (llama.cpp refuses a window with no sliding layer) */
	data = th_slurp(path, &len);
	assert_non_null(data);
	{
		static const char key[] = "gemma3.attention.sliding_window_pattern";
		char *at = memmem(data, len, key, sizeof(key) - 1);

		assert_non_null(at);
		/* key, then type (u32), element type (u32), count (u64) */
		at += sizeof(key) - 1 + 4 + 4 + 8;
		assert_memory_equal(at, want_swa, 7);
		memset(at, 1, 7);
	}
	must_differ("gemma3-all-sliding.gguf", data, len, ref,
		    "gemma3 every layer sliding", 1.0);
	free(data);
	mb_gguf_free(g);
	free(ref);
}

/* Gemma 3's config as transformers 5 writes it: rope per layer type
 * (rope_parameters, here the 4B's linear scaling by 8 on the global
 * layers) and layer_types instead of a pattern (here layers 2 and 5
 * global). Converted with linear rope scaling, the per-layer pattern and
 * both bases; libllama's logits match the reference, which reads that
 * form itself. */
static void test_gemma3_transformers5_config(void **state)
{
	static const unsigned char want_swa[7] = { 1, 1, 0, 1, 1, 0, 1 };
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char dir[700], p[800], cmd[2048], path[700], err[2048];
	cJSON *cfg, *lt;
	char *text;
	size_t len;
	float *ref;
	int nv, i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/gemma3-tf5", root);
	snprintf(cmd, sizeof(cmd), "cp -r %s %s", gemma3, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s/config.json", dir);
	text = th_slurp(p, &len);
	assert_non_null(text);
	cfg = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(cfg);
	cJSON_DeleteItemFromObject(cfg, "rope_theta");
	cJSON_DeleteItemFromObject(cfg, "rope_local_base_freq");
	cJSON_DeleteItemFromObject(cfg, "rope_scaling");
	cJSON_DeleteItemFromObject(cfg, "sliding_window_pattern");
	cJSON_AddItemToObject(cfg, "rope_parameters", cJSON_Parse(
		"{\"full_attention\":{\"rope_type\":\"linear\",\"factor\":8.0,"
		"\"rope_theta\":1000000.0},\"sliding_attention\":"
		"{\"rope_type\":\"default\",\"rope_theta\":10000.0}}"));
	lt = cJSON_AddArrayToObject(cfg, "layer_types");
	for (i = 0; i < 7; i++)
		cJSON_AddItemToArray(lt, cJSON_CreateString(
			want_swa[i] ? "sliding_attention" : "full_attention"));
	text = cJSON_Print(cfg);
	cJSON_Delete(cfg);
	assert_int_equal(th_write_file(p, text, strlen(text)), 0);
	free(text);
	if (ref_logits(dir, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	{
		struct mb_convert_result r;
		double rel, top1, maxref = 0;
		float *got;
		int n, row, j, ties = 0;

		snprintf(path, sizeof(path), "%s/gemma3-tf5-f32.gguf", root);
		convert(dir, path, MB_LAYOUT_NATIVE, MB_OUT_F32, &r);
		if (th_llama_logits(path, toks, NTOK, &got, &n, err,
				    sizeof(err)) != 0)
			fail_msg("%s", err);
		assert_int_equal(n, nv);
		th_logits_compare(ref, got, NTOK, nv, &rel, &top1);
		for (j = 0; j < NTOK * nv; j++)
			maxref = fmax(maxref, fabs(ref[j]));
		/* a row whose arg max differs must be a tie in the
		 * reference, its two logits closer than the error allowed
		 * (with random weights, one of 48 rows has two logits 2e-4
		 * apart) */
		for (row = 0; row < NTOK; row++) {
			const float *a = ref + (size_t)row * (size_t)nv;
			const float *b = got + (size_t)row * (size_t)nv;
			int ar = 0, ag = 0;

			for (j = 0; j < nv; j++) {
				if (a[j] > a[ar])
					ar = j;
				if (b[j] > b[ag])
					ag = j;
			}
			if (ar == ag)
				continue;
			if (!(a[ar] - a[ag] <= 5e-3 * maxref))
				fail_msg("row %d: top-1 %d, the reference's %d "
					 "(%g above it)", row, ag, ar,
					 a[ar] - a[ag]);
			ties++;
		}
		free(got);
		print_message("%-22s %-6s rel max err %.2e, top-1 %.0f%% (%d "
			      "tie%s within the error)\n", "gemma3-tf5-f32",
			      r.arch, rel, top1 * 100, ties,
			      ties == 1 ? "" : "s");
		assert_true(rel <= 5e-3);
	}
	free(ref);
	snprintf(path, sizeof(path), "%s/gemma3-tf5-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "gemma3.rope.scaling.type")->v.s,
			    "linear");
	assert_true(kv_f(g, "gemma3.rope.scaling.factor") == 8.0);
	assert_true(kv_f(g, "gemma3.rope.freq_base") == 1e6);
	assert_true(kv_f(g, "gemma3.rope.freq_base_swa") == 1e4);
	kv = mb_gguf_kv(g, "gemma3.attention.sliding_window_pattern");
	assert_non_null(kv);
	assert_int_equal(kv->n, 7);
	assert_memory_equal(kv->arr, want_swa, 7);
	mb_gguf_free(g);
	/* the scaling dropped (factor 1): must fail */
	{
		static const char key[] = "gemma3.rope.scaling.factor";
		char *data = th_slurp(path, &len), *at;
		float one = 1.0f;

		assert_non_null(data);
		at = memmem(data, len, key, sizeof(key) - 1);
		assert_non_null(at);
		/* key, type (u32), the f32 */
		memcpy(at + sizeof(key) - 1 + 4, &one, 4);
		if (ref_logits(dir, toks, NTOK, &ref, &nv, err,
			       sizeof(err)) != 0)
			fail_msg("reference: %s", err);
		must_differ("gemma3-tf5-unscaled.gguf", data, len, ref,
			    "gemma3 linear scaling dropped", 0.95);
		free(data);
		free(ref);
	}
}

/* Repairs of a Gemma 3 config: architectures left out (model_type
 * stays) is put back from the tensors and the model converts to the same
 * logits; the multimodal checkpoint's config over the text model's
 * weights is a lie the tensors prove (a Gemma3ForConditionalGeneration
 * checkpoint has its layers under language_model.), repaired to
 * Gemma3ForCausalLM with the tensors as evidence, its other values from
 * the card's base (google/gemma-3-1b-it), and the result runs as the
 * reference runs the repaired config. */
static void test_gemma3_repaired(void **state)
{
	struct mb_convert_opts o;
	struct mb_convert_result r;
	struct mb_buf rep;
	struct mb_gguf *g;
	char out[700], dir[700], cfgpath[800], cmd[2048], err[2048] = "";
	const cJSON *f, *e;
	cJSON *doc;
	float *ref;
	int nv, saw_arch = 0;

	(void)state;
	if (ref_logits(gemma3_noarch, toks, NTOK, &ref, &nv, err,
		       sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	memset(&o, 0, sizeof(o));
	mb_buf_init(&rep, 1u << 20);
	snprintf(out, sizeof(out), "%s/gemma3-noarch.gguf", root);
	o.model_dir = gemma3_noarch;
	o.out_path = out;
	o.outtype = MB_OUT_F32;
	o.threads = 2;
	o.report = &rep;
	if (mb_convert(&o, &r, err, sizeof(err)) != 0)
		fail_msg("convert: %s", err);
	assert_string_equal(r.arch, "gemma3");
	assert_int_equal(r.nrepairs, 1);
	doc = cJSON_ParseWithLength(rep.data, rep.len);
	assert_non_null(doc);
	f = cJSON_GetObjectItem(doc, "repairs");
	cJSON_ArrayForEach(e, f) {
		const char *ev = cJSON_GetStringValue(
			cJSON_GetObjectItem(e, "evidence"));

		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "key")),
			   "architectures") != 0)
			continue;
		saw_arch = 1;
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "missing")));
		assert_non_null(strstr(ev, "pre_feedforward_layernorm"));
		assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(
				e, "actual"), 0)->valuestring,
				    "Gemma3ForCausalLM");
	}
	assert_true(saw_arch);
	cJSON_Delete(doc);
	mb_buf_release(&rep);
	must_match(out, ref, "gemma3 no architectures");
	free(ref);

	/* the multimodal config: repaired, not refused */
	mb_buf_init(&rep, 1u << 20);
	snprintf(out, sizeof(out), "%s/gemma3-lie.gguf", root);
	o.model_dir = gemma3_lie;
	o.out_path = out;
	o.report = &rep;
	if (mb_convert(&o, &r, err, sizeof(err)) != 0)
		fail_msg("convert: %s", err);
	assert_string_equal(r.arch, "gemma3");
	doc = cJSON_ParseWithLength(rep.data, rep.len);
	assert_non_null(doc);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
				"family")), "gemma3");
	saw_arch = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "repairs")) {
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(e,
								"key"));
		const char *ev = cJSON_GetStringValue(
			cJSON_GetObjectItem(e, "evidence"));

		if (strcmp(key, "architectures") == 0) {
			saw_arch = 1;
			assert_string_equal(cJSON_GetArrayItem(
				cJSON_GetObjectItem(e, "claimed"), 0)->valuestring,
				"Gemma3ForConditionalGeneration");
			assert_non_null(strstr(ev, "q_norm"));
			assert_non_null(strstr(ev, "pre_feedforward_layernorm"));
		}
		if (strcmp(key, "sliding_window") == 0)
			assert_non_null(strstr(ev, "google/gemma-3-1b-it"));
	}
	assert_true(saw_arch);
	cJSON_Delete(doc);
	mb_buf_release(&rep);
	assert_int_equal(mb_gguf_read(out, &g, err, sizeof(err)), 0);
	/* the base's window, not the fixture's: the config had none */
	assert_int_equal(kv_u(g, "gemma3.attention.sliding_window"), 512);
	assert_int_equal(kv_u(g, "gemma3.attention.head_count"), 4);
	mb_gguf_free(g);
	/* the reference over the repaired config computes what libllama
	 * computes over the file */
	snprintf(dir, sizeof(dir), "%s/gemma3-repaired", root);
	snprintf(cmd, sizeof(cmd), "cp -r %s %s", gemma3_lie, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", dir);
	write_repaired(gemma3_lie, cfgpath);
	if (ref_logits(dir, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference over the repaired config: %s", err);
	must_match(out, ref, "gemma3 multimodal config repaired");
	free(ref);
}

/* The multimodal checkpoint itself (its layers under
 * language_model.model., a vision tower beside them) is refused by name,
 * saying that only the text model converts. */
static void test_gemma3_multimodal_refused(void **state)
{
	static const char header[] =
		"{\"language_model.model.layers.0.self_attn.q_proj.weight\":"
		"{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
		"\"vision_tower.vision_model.embeddings.patch_embedding.weight\":"
		"{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
	static const char cfg[] =
		"{\"architectures\":[\"Gemma3ForConditionalGeneration\"],"
		"\"model_type\":\"gemma3\"}\n";
	struct mb_convert_opts o;
	struct mb_convert_result r;
	char dir[700], p[800], out[800], err[1024] = "";
	unsigned char buf[8 + sizeof(header) - 1 + 8];
	uint64_t hl = sizeof(header) - 1;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/gemma3-mm", root);
	assert_int_equal(mkdir(dir, 0755), 0);
	memcpy(buf, &hl, 8);
	memcpy(buf + 8, header, hl);
	memset(buf + 8 + hl, 0, 8);
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	assert_int_equal(th_write_file(p, buf, sizeof(buf)), 0);
	snprintf(p, sizeof(p), "%s/config.json", dir);
	assert_int_equal(th_write_file(p, cfg, sizeof(cfg) - 1), 0);
	snprintf(out, sizeof(out), "%s/gemma3-mm.gguf", root);
	memset(&o, 0, sizeof(o));
	o.model_dir = dir;
	o.out_path = out;
	o.outtype = MB_OUT_F16;
	o.threads = 2;
	assert_int_equal(mb_convert(&o, &r, err, sizeof(err)), MB_EUNSUPPORTED);
	if (strstr(err, "Gemma3ForConditionalGeneration (model_type gemma3) "
			"is not a family") == NULL ||
	    strstr(err, "only Gemma 3's text models (Gemma3ForCausalLM") == NULL)
		fail_msg("convert said: %s", err);
	assert_int_equal(access(out, F_OK), -1);
}

/* Mistral's own names over Llama's tensors, with a head size that is not
 * hidden / heads (Mistral Nemo: 32 heads of 128 over a hidden size of
 * 5120; here 4 of 128 over 256) and Mistral 7B v0.1's sliding window:
 * converted as llama.cpp's llama with key and value lengths of 128, its
 * names kept, nothing repaired; libllama's logits match the reference. */
static void test_mistral_head_dim(void **state)
{
	const char *extra[] = { "--config", "correct", "--head-dim", "128",
				NULL };
	struct mb_gguf *g;
	char dir[600], path[700], err[2048], *text;
	float *ref;
	size_t len;
	cJSON *cfg, *a;
	int nv;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/mistral-hd128", root);
	assert_int_equal(th_mkmodel(dir, "llama-tiny", extra), 0);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	text = th_slurp(path, &len);
	assert_non_null(text);
	cfg = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(cfg);
	assert_int_equal(cJSON_GetObjectItem(cfg, "head_dim")->valueint, 128);
	cJSON_ReplaceItemInObject(cfg, "max_position_embeddings",
				  cJSON_CreateNumber(32768));
	cJSON_ReplaceItemInObject(cfg, "rope_theta",
				  cJSON_CreateNumber(1000000.0));
	/* the reference reads Llama's names: Mistral's forward pass is
	 * Llama's (the window does not reach over NTOK tokens) */
	text = cJSON_Print(cfg);
	assert_int_equal(th_write_file(path, text, strlen(text)), 0);
	free(text);
	if (ref_logits(dir, toks, NTOK, &ref, &nv, err, sizeof(err)) != 0)
		fail_msg("reference: %s", err);
	a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString("MistralForCausalLM"));
	cJSON_ReplaceItemInObject(cfg, "architectures", a);
	cJSON_ReplaceItemInObject(cfg, "model_type",
				  cJSON_CreateString("mistral"));
	cJSON_AddNumberToObject(cfg, "sliding_window", 4096);
	text = cJSON_Print(cfg);
	cJSON_Delete(cfg);
	assert_int_equal(th_write_file(path, text, strlen(text)), 0);
	free(text);
	fidelity(dir, "mistral-hd128-f32", MB_LAYOUT_NATIVE, MB_OUT_F32, ref,
		 nv, 5e-3, NULL);
	free(ref);
	snprintf(path, sizeof(path), "%s/mistral-hd128-f32.gguf", root);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, "llama");
	assert_int_equal(mb_gguf_kv(g, "llama.attention.head_count")->v.u, 4);
	assert_int_equal(mb_gguf_kv(g, "llama.attention.head_count_kv")->v.u, 2);
	assert_int_equal(mb_gguf_kv(g, "llama.attention.key_length")->v.u, 128);
	assert_int_equal(mb_gguf_kv(g, "llama.attention.value_length")->v.u, 128);
	assert_int_equal(mb_gguf_kv(g, "llama.rope.dimension_count")->v.u, 128);
	assert_int_equal(mb_gguf_kv(g, "llama.context_length")->v.u, 32768);
	assert_int_equal(mb_gguf_kv(g, "mibera.config_repairs")->v.u, 0);
	assert_null(mb_gguf_kv(g, "llama.attention.sliding_window"));
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_q.weight")->ne[1], 512);
	assert_int_equal(mb_gguf_tensor(g, "blk.0.attn_output.weight")->ne[0],
			 512);
	mb_gguf_free(g);
}

/* Qwen2.5's long-context config (rope_scaling yarn, factor 4 over 32768)
 * is written with llama.cpp's yarn keys, which libllama loads and runs. */
static void test_qwen2_yarn(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	struct mb_convert_result r;
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char dir[600], path[700], err[2048], *text;
	float *got;
	size_t len;
	cJSON *cfg;
	int n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/qwen2-yarn", root);
	assert_int_equal(th_mkmodel(dir, "qwen2-tiny", extra), 0);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	text = th_slurp(path, &len);
	assert_non_null(text);
	cfg = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(cfg);
	cJSON_ReplaceItemInObject(cfg, "rope_scaling", cJSON_Parse(
		"{\"type\":\"yarn\",\"factor\":4.0,"
		"\"original_max_position_embeddings\":32768}"));
	text = cJSON_Print(cfg);
	cJSON_Delete(cfg);
	assert_int_equal(th_write_file(path, text, strlen(text)), 0);
	free(text);
	snprintf(path, sizeof(path), "%s/qwen2-yarn.gguf", root);
	convert(dir, path, MB_LAYOUT_NATIVE, MB_OUT_F16, &r);
	assert_string_equal(r.arch, "qwen2");
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(mb_gguf_kv(g, "qwen2.rope.scaling.type")->v.s,
			    "yarn");
	kv = mb_gguf_kv(g, "qwen2.rope.scaling.factor");
	assert_non_null(kv);
	assert_true(kv->v.f == 4.0);
	assert_int_equal(mb_gguf_kv(g, "qwen2.rope.scaling.original_context_"
					"length")->v.u, 32768);
	assert_int_equal(mb_gguf_kv(g, "qwen2.context_length")->v.u, 32768);
	mb_gguf_free(g);
	if (th_llama_logits(path, toks, NTOK, &got, &n, err, sizeof(err)) != 0)
		fail_msg("libllama: %s", err);
	free(got);
}

/* A true config of an architecture mibera does not convert (Gemma, whose
 * tensors have Llama's names and shapes) is refused by name, by the
 * library and by the worker's command, and nothing is written: never
 * converted as Llama. */
static void test_foreign_architecture_refused(void **state)
{
	static const char *const want =
		"GemmaForCausalLM (model_type gemma) is not a family mibera "
		"converts natively";
	struct mb_convert_opts o;
	struct mb_convert_result r;
	char out[700], part[720], args[2048], text[8192], err[1024] = "";

	(void)state;
	snprintf(out, sizeof(out), "%s/gemma.gguf", root);
	snprintf(part, sizeof(part), "%s.part", out);
	memset(&o, 0, sizeof(o));
	o.model_dir = gemma;
	o.out_path = out;
	o.outtype = MB_OUT_F32;
	o.threads = 2;
	assert_int_equal(mb_convert(&o, &r, err, sizeof(err)), MB_EUNSUPPORTED);
	if (strstr(err, want) == NULL)
		fail_msg("convert said: %s", err);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(access(part, F_OK), -1);
	snprintf(args, sizeof(args), "convert %s %s --layout split", gemma, out);
	assert_int_equal(run_worker(args, text, sizeof(text)), 3);
	if (strstr(text, want) == NULL)
		fail_msg("mibera-worker said: %s", text);
	assert_int_equal(access(out, F_OK), -1);
}

/* The pages of the file at path in the page cache, and (in *all) its
 * pages, once its pages are clean (droppable); reading them all first
 * when warm. */
static size_t cached_pages(const char *path, int warm, size_t *all)
{
	int fd = open(path, O_RDONLY);
	char buf[65536];
	long n;

	assert_true(fd >= 0);
	assert_int_equal(fsync(fd), 0);
	while (warm && read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	n = th_cached_pages(path, 0, 0, all);
	assert_true(n >= 0);
	return (size_t)n;
}

/* The shards of dir: their cached pages and all their pages. */
static size_t shards_cached(const char *dir, int warm, size_t *all)
{
	struct dirent *de;
	size_t count = 0, n;
	DIR *d = opendir(dir);
	char path[1200];

	assert_non_null(d);
	*all = 0;
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".safetensors") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		count += cached_pages(path, warm, &n);
		*all += n;
	}
	closedir(d);
	return count;
}

/* A conversion reads each shard once: what it read leaves the page cache
 * (a model of tens of GB would otherwise push out everything else, and on
 * a virtual machine cost fresh pages), and the output is still right. */
static void test_sources_leave_page_cache(void **state)
{
	struct mb_convert_result r;
	size_t before, after, all;
	char out[700];

	(void)state;
	if (th_on_tmpfs(phi_bad))
		skip();
	before = shards_cached(phi_bad, 1, &all);
	assert_true(before * 10 >= all * 9);
	snprintf(out, sizeof(out), "%s/phi-dropped-f16.gguf", root);
	convert(phi_bad, out, MB_LAYOUT_NATIVE, MB_OUT_F16, &r);
	after = shards_cached(phi_bad, 0, &all);
	print_message("shard pages cached: %zu of %zu before, %zu after\n",
		      before, all, after);
	/* the headers, and a page where two units meet, may stay */
	assert_true(after * 10 <= all);
	must_match(out, ref_phi, "f16 after dropping its sources");
}

static void test_full_disk_leaves_nothing(void **state)
{
	struct mb_convert_opts o;
	struct mb_convert_result r;
	char out[700], part[720], err[1024] = "";

	(void)state;
	snprintf(out, sizeof(out), "%s/full.gguf", root);
	snprintf(part, sizeof(part), "%s.part", out);
	memset(&o, 0, sizeof(o));
	o.model_dir = phi_bad;
	o.out_path = out;
	o.outtype = MB_OUT_F16;
	o.threads = 2;
	mb_fault_set(MB_FAULT_WRITE, 5, -1, ENOSPC);
	assert_int_equal(mb_convert(&o, &r, err, sizeof(err)), MB_ENOSPC);
	mb_fault_clear();
	assert_non_null(strstr(err, "no space left"));
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(access(part, F_OK), -1);
	/* a truncated shard: an error naming the tensor, nothing left */
	{
		char shard[800], copy[700], cmd[2048];

		snprintf(copy, sizeof(copy), "%s/phi-cut", root);
		snprintf(cmd, sizeof(cmd), "cp -r %s %s", phi_bad, copy);
		assert_int_equal(system(cmd), 0);
		snprintf(shard, sizeof(shard), "%s/model-00002-of-00002.safetensors",
			 copy);
		assert_int_equal(truncate(shard, 4096), 0);
		o.model_dir = copy;
		assert_int_not_equal(mb_convert(&o, &r, err, sizeof(err)), 0);
		assert_int_equal(access(out, F_OK), -1);
		assert_int_equal(access(part, F_OK), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phi4_native_f32),
		cmocka_unit_test(test_phi4_split_f32_and_agreement),
		cmocka_unit_test(test_phi4_f16_and_bf16),
		cmocka_unit_test(test_llama),
		cmocka_unit_test(test_comparison_bites),
		cmocka_unit_test(test_tensors_read_back),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_phi4_mini_partial_rotary_longrope),
		cmocka_unit_test(test_qwen2),
		cmocka_unit_test(test_qwen3),
		cmocka_unit_test(test_gemma3),
		cmocka_unit_test(test_gemma3_transformers5_config),
		cmocka_unit_test(test_gemma3_repaired),
		cmocka_unit_test(test_gemma3_multimodal_refused),
		cmocka_unit_test(test_mistral_head_dim),
		cmocka_unit_test(test_qwen2_yarn),
		cmocka_unit_test(test_foreign_architecture_refused),
		cmocka_unit_test(test_full_disk_leaves_nothing),
		cmocka_unit_test(test_sources_leave_page_cache),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
