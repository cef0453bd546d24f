/* modelcfg: infer a model from its tensors and reconcile its config. */
#include "common/modelcfg.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/family/family.h"
#include "common/json.h"
#include "common/safetensors.h"

#define MAX_LAYERS 1000

static const char *const key_names[MB_CFG_NKEYS] = {
	[MB_CFG_ARCHITECTURES] = "architectures",
	[MB_CFG_MODEL_TYPE] = "model_type",
	[MB_CFG_VOCAB_SIZE] = "vocab_size",
	[MB_CFG_HIDDEN_SIZE] = "hidden_size",
	[MB_CFG_NUM_HIDDEN_LAYERS] = "num_hidden_layers",
	[MB_CFG_INTERMEDIATE_SIZE] = "intermediate_size",
	[MB_CFG_NUM_ATTENTION_HEADS] = "num_attention_heads",
	[MB_CFG_NUM_KEY_VALUE_HEADS] = "num_key_value_heads",
	[MB_CFG_HEAD_DIM] = "head_dim",
	[MB_CFG_ROPE_THETA] = "rope_theta",
	[MB_CFG_RMS_NORM_EPS] = "rms_norm_eps",
	[MB_CFG_MAX_POSITION_EMBEDDINGS] = "max_position_embeddings",
	[MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS] =
		"original_max_position_embeddings",
	[MB_CFG_SLIDING_WINDOW] = "sliding_window",
	[MB_CFG_ROPE_SCALING] = "rope_scaling",
	[MB_CFG_PARTIAL_ROTARY_FACTOR] = "partial_rotary_factor",
	[MB_CFG_TIE_WORD_EMBEDDINGS] = "tie_word_embeddings",
	[MB_CFG_ATTENTION_BIAS] = "attention_bias",
	[MB_CFG_TORCH_DTYPE] = "torch_dtype",
	[MB_CFG_ROPE_LOCAL_BASE_FREQ] = "rope_local_base_freq",
	[MB_CFG_QUERY_PRE_ATTN_SCALAR] = "query_pre_attn_scalar",
	[MB_CFG_ATTN_LOGIT_SOFTCAPPING] = "attn_logit_softcapping",
	[MB_CFG_FINAL_LOGIT_SOFTCAPPING] = "final_logit_softcapping",
	[MB_CFG_SLIDING_WINDOW_PATTERN] = "sliding_window_pattern",
	[MB_CFG_LAYER_TYPES] = "layer_types",
};

static const char *const src_names[] = {
	[MB_SRC_NONE] = "none",
	[MB_SRC_TENSORS] = "tensors",
	[MB_SRC_BASE_HUB] = "base model (hub)",
	[MB_SRC_BASE_TABLE] = "base model (built-in table)",
	[MB_SRC_KNOWN_BASE] = "known base matched by shapes",
	[MB_SRC_CONFIG] = "config.json",
	[MB_SRC_BASE_FAMILY] = "base model of the family (other shapes)",
	[MB_SRC_DEFAULT] = "family default",
	[MB_SRC_DERIVED] = "derived",
	[MB_SRC_USER] = "set by the user",
};

const char *mb_cfg_key_name(enum mb_cfg_key k)
{
	return (unsigned)k < MB_CFG_NKEYS ? key_names[k] : "?";
}

const char *mb_src_name(enum mb_src s)
{
	return (unsigned)s < sizeof(src_names) / sizeof(src_names[0]) ? src_names[s] : "?";
}

const char *mb_family_name(enum mb_family_id f)
{
	const struct mb_family *fam = mb_family_get(f);

	return fam != NULL ? fam->name : "unknown";
}

/* The config.json of a known base model (common/family/: each family's
 * bases, with the other names they go by on the hub), or NULL. */
static const char *table_config(const char *name)
{
	const struct mb_family *const *fams;
	size_t nf, i, k, a;

	fams = mb_families(&nf);
	for (i = 0; i < nf; i++)
		for (k = 0; fams[i]->bases[k].name != NULL; k++) {
			const struct mb_family_base *b = &fams[i]->bases[k];

			if (strcasecmp(name, b->name) == 0)
				return b->config;
			for (a = 0; a < 4 && b->aliases[a] != NULL; a++)
				if (strcasecmp(name, b->aliases[a]) == 0)
					return b->config;
		}
	return NULL;
}

static void addwarn(struct mb_modelcfg *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void addwarn(struct mb_modelcfg *c, const char *fmt, ...)
{
	va_list ap;

	if (c->nwarnings == sizeof(c->warnings) / sizeof(c->warnings[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(c->warnings[c->nwarnings++], sizeof(c->warnings[0]), fmt, ap);
	va_end(ap);
}

static void refuse(struct mb_modelcfg *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void refuse(struct mb_modelcfg *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->convertible)
		return; /* keep the first reason: it is the root cause */
	c->convertible = 0;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

/* --- base model names --- */

static int repo_id_ok(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t i, n = strlen(s);

	if (slash == NULL || slash == s || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL || n > 96)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("/._-", s[i]) == NULL)
			return 0;
	return strstr(s, "..") == NULL;
}

/* Copies a YAML scalar (optionally quoted) from p up to the line end. */
static void yaml_scalar(const char *p, const char *end, char *out, size_t cap)
{
	size_t n = 0;
	char q = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && (*p == '"' || *p == '\'')) {
		q = *p++;
	}
	while (p < end && *p != '\n' && *p != '\r' && *p != q &&
	       !(q == 0 && (*p == '#' || *p == ' ')) && n + 1 < cap)
		out[n++] = *p++;
	out[n] = '\0';
}

static void card_base(const char *card, size_t len, char *out, size_t cap)
{
	const char *p = card, *end = card + len, *fm_end;

	out[0] = '\0';
	if (len < 4 || strncmp(card, "---", 3) != 0)
		return;
	/* the front matter ends at the next line that is "---" */
	for (fm_end = p + 3; fm_end + 4 <= end; fm_end++)
		if (fm_end[0] == '\n' && strncmp(fm_end + 1, "---", 3) == 0)
			break;
	if (fm_end + 4 > end)
		return;
	while (p < fm_end) {
		const char *eol = memchr(p, '\n', (size_t)(fm_end - p));

		if (eol == NULL)
			eol = fm_end;
		if ((size_t)(eol - p) >= 11 && strncmp(p, "base_model:", 11) == 0) {
			yaml_scalar(p + 11, eol, out, cap);
			if (out[0] != '\0')
				return;
			/* a list: the first "- item" line that follows */
			p = eol + 1;
			while (p < fm_end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < fm_end && *p == '-') {
				eol = memchr(p, '\n', (size_t)(fm_end - p));
				yaml_scalar(p + 1, eol ? eol : fm_end, out, cap);
			}
			return;
		}
		p = eol + 1;
	}
}

void mb_modelcfg_base_name(const char *card, size_t card_len,
			   const char *config, size_t config_len, char *out,
			   size_t cap)
{
	out[0] = '\0';
	if (card != NULL)
		card_base(card, card_len, out, cap);
	if (out[0] == '\0' && config != NULL) {
		char why[64];
		int nan;
		cJSON *doc = mb_json_parse_python(config, config_len, &nan, why,
						  sizeof(why));
		const char *s;

		if (doc != NULL &&
		    mb_json_get_str(doc, "_name_or_path", 200, &s) == 0)
			snprintf(out, cap, "%s", s);
		cJSON_Delete(doc);
	}
	if (!repo_id_ok(out))
		out[0] = '\0';
}

/* --- tensor analysis --- */

/* Splits "model.layers.12.mlp.down_proj.weight" into 12 and the suffix.
 * Returns 0 when name is not a layer tensor (or its index is not a plain
 * number below MAX_LAYERS). */
static int layer_of(const char *name, unsigned *layer, const char **suffix)
{
	static const char prefix[] = "model.layers.";
	const char *p = name + sizeof(prefix) - 1;
	unsigned v = 0;
	int digits = 0;

	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	while (isdigit((unsigned char)*p) && digits < 5) {
		v = v * 10 + (unsigned)(*p++ - '0');
		digits++;
	}
	if (digits == 0 || *p != '.' || v >= MAX_LAYERS ||
	    (digits > 1 && name[sizeof(prefix) - 1] == '0'))
		return 0;
	*layer = v;
	*suffix = p + 1;
	return 1;
}

static const struct mb_st_tensor *layer_tensor(const struct mb_st_model *m,
					       unsigned layer, const char *sfx)
{
	char name[MB_ST_MAX_NAME + 32];

	snprintf(name, sizeof(name), "model.layers.%u.%s", layer, sfx);
	return mb_st_model_find(m, name);
}

static void shape_str(const struct mb_st_tensor *t, char *out, size_t cap)
{
	size_t n = 0;
	int i;

	n += (size_t)snprintf(out, cap, "[");
	for (i = 0; i < t->ndim && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? ", " : "",
				      (unsigned long long)t->shape[i]);
	if (n < cap)
		snprintf(out + n, cap - n, "]");
}

/* Evidence text "name [r, c]" for a tensor. */
static void evid(char *out, size_t cap, const struct mb_st_tensor *t)
{
	char s[96];

	shape_str(t, s, sizeof(s));
	snprintf(out, cap, "%s %s", t->name, s);
}

static int is2d(const struct mb_st_tensor *t, uint64_t r, uint64_t c)
{
	return t->ndim == 2 && t->shape[0] == r && t->shape[1] == c;
}

static int is1d(const struct mb_st_tensor *t, uint64_t n)
{
	return t->ndim == 1 && t->shape[0] == n;
}

static const struct mb_family_tensor *fam_tensor(const struct mb_family *f,
						 const char *sfx)
{
	size_t k;

	for (k = 0; f->tensors[k].hf != NULL; k++)
		if (strcmp(sfx, f->tensors[k].hf) == 0)
			return &f->tensors[k];
	return NULL;
}

/* Whether some layer has a tensor with suffix sfx. */
static int seen_sfx(const struct mb_st_model *m, const char *sfx)
{
	unsigned layer;
	const char *s;
	size_t i;

	for (i = 0; i < m->ntensors; i++)
		if (layer_of(m->tensors[i].name, &layer, &s) &&
		    strcmp(s, sfx) == 0)
			return 1;
	return 0;
}

/* The family the tensors name: every marker seen, no exclusion; the one
 * with the most markers when several are (Qwen3's tensors are Llama's
 * plus norms). NULL when none. */
static const struct mb_family *tensor_family(const struct mb_st_model *m)
{
	const struct mb_family *const *fams, *best = NULL;
	size_t nf, i, k, nbest = 0;

	fams = mb_families(&nf);
	for (i = 0; i < nf; i++) {
		const struct mb_family *f = fams[i];
		int ok = f->markers != NULL;

		for (k = 0; ok && f->markers[k] != NULL; k++)
			ok = seen_sfx(m, f->markers[k]);
		for (k = 0; ok && f->excludes != NULL && f->excludes[k] != NULL;
		     k++)
			ok = !seen_sfx(m, f->excludes[k]);
		if (!ok)
			continue;
		for (k = 0; f->markers[k] != NULL; k++)
			;
		if (best == NULL || k > nbest) {
			best = f;
			nbest = k;
		}
	}
	return best;
}

/* Refuses tensors no family's layout fits, naming the layouts. */
static void refuse_layout(struct mb_modelcfg *c, const struct mb_st_model *m)
{
	const struct mb_family *const *fams;
	const char *examples[3] = { "", "", "" };
	char layouts[400];
	size_t nf, i, n = 0, nl = 0, shown = 0;
	unsigned layer;
	const char *sfx;
	int ne = 0;

	for (i = 0; i < m->ntensors && ne < 3; i++)
		if (layer_of(m->tensors[i].name, &layer, &sfx) && layer == 0)
			examples[ne++] = sfx;
	fams = mb_families(&nf);
	for (i = 0; i < nf; i++)
		nl += fams[i]->layout_desc != NULL;
	layouts[0] = '\0';
	for (i = 0; i < nf && n < sizeof(layouts); i++) {
		if (fams[i]->layout_desc == NULL)
			continue;
		n += (size_t)snprintf(layouts + n, sizeof(layouts) - n,
				      "%sthe %s layout (%s)",
				      shown == 0 ? "" : shown + 1 == nl
						? (nl == 2 ? " nor " : " or ")
						: ", ",
				      fams[i]->display, fams[i]->layout_desc);
		shown++;
	}
	refuse(c, "unsupported model: layer tensors match %s %s; saw '%s', "
	       "'%s', '%s'", nl == 2 ? "neither" : "none of", layouts,
	       examples[0], examples[1], examples[2]);
}

/* Finds the family, the layer count and the sizes, and checks that every
 * tensor has the shape those sizes require. Refuses c on any surprise. */
static void analyze(const struct mb_st_model *m, struct mb_modelcfg *c)
{
	const struct mb_st_tensor *emb, *norm, *head, *t;
	const struct mb_family *f;
	unsigned layer, max_layer = 0, nlayer_tensors = 0;
	const char *sfx;
	char s[96];
	size_t i, k;

	for (i = 0; i < m->ntensors; i++) {
		t = &m->tensors[i];
		c->params += t->nelem;
		if (!layer_of(t->name, &layer, &sfx))
			continue;
		nlayer_tensors++;
		if (layer > max_layer)
			max_layer = layer;
		if (strstr(sfx, ".bias") != NULL)
			c->has_bias = 1;
	}
	if (nlayer_tensors == 0) {
		refuse(c, "unsupported model: no 'model.layers.N.*' tensors "
		       "(first tensors: '%s'%s%s)",
		       m->ntensors > 0 ? m->tensors[0].name : "none",
		       m->ntensors > 1 ? ", " : "",
		       m->ntensors > 1 ? m->tensors[1].name : "");
		return;
	}
	f = tensor_family(m);
	if (f == NULL) {
		refuse_layout(c, m);
		return;
	}
	c->family = f->id;
	if (f->bias_refusal != NULL && c->has_bias) {
		refuse(c, "%s", f->bias_refusal);
		return;
	}
	/* every tensor must be one we know; one the family lacks makes the
	 * layout no family's (a config naming another architecture is then
	 * not contradicted by it) */
	for (i = 0; i < m->ntensors; i++) {
		t = &m->tensors[i];
		if (!layer_of(t->name, &layer, &sfx)) {
			if (strcmp(t->name, "model.embed_tokens.weight") != 0 &&
			    strcmp(t->name, "model.norm.weight") != 0 &&
			    strcmp(t->name, "lm_head.weight") != 0) {
				c->family = MB_FAMILY_UNKNOWN;
				refuse(c, "unsupported model: unexpected tensor "
				       "'%s'", t->name);
				return;
			}
			continue;
		}
		if (fam_tensor(f, sfx) == NULL) {
			c->family = MB_FAMILY_UNKNOWN;
			refuse(c, "unsupported model: unexpected tensor '%s'",
			       t->name);
			return;
		}
	}
	c->layers = max_layer + 1;
	for (layer = 0; layer < c->layers; layer++)
		for (k = 0; f->tensors[k].hf != NULL; k++)
			if (f->tensors[k].required &&
			    layer_tensor(m, layer, f->tensors[k].hf) == NULL) {
				refuse(c, "layer %u of %llu is incomplete: "
				       "'model.layers.%u.%s' is missing",
				       layer, (unsigned long long)c->layers,
				       layer, f->tensors[k].hf);
				return;
			}
	emb = mb_st_model_find(m, "model.embed_tokens.weight");
	norm = mb_st_model_find(m, "model.norm.weight");
	head = mb_st_model_find(m, "lm_head.weight");
	if (emb == NULL || emb->ndim != 2 || emb->shape[0] == 0 ||
	    emb->shape[1] == 0) {
		refuse(c, "'model.embed_tokens.weight' is missing or not a "
		       "matrix");
		return;
	}
	c->vocab_rows = emb->shape[0];
	c->hidden = emb->shape[1];
	c->tied = head == NULL;
	if (norm == NULL || !is1d(norm, c->hidden)) {
		refuse(c, "'model.norm.weight' is missing or not [%llu]",
		       (unsigned long long)c->hidden);
		return;
	}
	if (head != NULL && !is2d(head, c->vocab_rows, c->hidden)) {
		shape_str(head, s, sizeof(s));
		refuse(c, "'lm_head.weight' is %s, the embedding needs [%llu, "
		       "%llu]", s, (unsigned long long)c->vocab_rows,
		       (unsigned long long)c->hidden);
		return;
	}
	/* sizes from layer 0, then every layer checked against them */
	t = layer_tensor(m, 0, "mlp.down_proj.weight");
	if (t->ndim != 2 || t->shape[0] != c->hidden || t->shape[1] == 0) {
		evid(s, sizeof(s), t);
		refuse(c, "'%s' is not [%llu, n_ff]", s,
		       (unsigned long long)c->hidden);
		return;
	}
	c->ff = t->shape[1];
	if (f->fused_qkv != NULL) {
		t = layer_tensor(m, 0, f->fused_qkv);
		if (t->ndim != 2 || t->shape[1] != c->hidden ||
		    t->shape[0] <= c->hidden ||
		    (t->shape[0] - c->hidden) % 2 != 0) {
			evid(s, sizeof(s), t);
			refuse(c, "'%s' is not [hidden + 2 * kv width, %llu]",
			       s, (unsigned long long)c->hidden);
			return;
		}
		c->q_width = c->hidden;
		c->kv_width = (t->shape[0] - c->hidden) / 2;
	} else {
		t = layer_tensor(m, 0, "self_attn.q_proj.weight");
		c->q_width = t->ndim == 2 ? t->shape[0] : 0;
		t = layer_tensor(m, 0, "self_attn.k_proj.weight");
		c->kv_width = t->ndim == 2 ? t->shape[0] : 0;
		if (c->q_width == 0 || c->kv_width == 0) {
			refuse(c, "layer 0 attention projections are not "
			       "matrices");
			return;
		}
	}
	if (f->head_tensor != NULL) {
		/* one head wide: the head size, from the tensors, that
		 * config.json need not get right */
		t = layer_tensor(m, 0, f->head_tensor);
		c->head_dim = t->ndim == 1 ? t->shape[0] : 0;
		if (c->head_dim == 0 || c->head_dim % 2 != 0 ||
		    c->q_width % c->head_dim != 0 ||
		    c->kv_width % c->head_dim != 0) {
			evid(s, sizeof(s), t);
			refuse(c, "'%s' is not one head wide: its size must be "
			       "even and divide the query width %llu and the "
			       "KV width %llu", s,
			       (unsigned long long)c->q_width,
			       (unsigned long long)c->kv_width);
			c->head_dim = 0;
			return;
		}
	}
	for (layer = 0; layer < c->layers; layer++) {
		for (k = 0; f->tensors[k].hf != NULL; k++) {
			const struct mb_family_tensor *ft = &f->tensors[k];
			/* the sizes analyze() has read so far */
			uint64_t r = mb_family_dim(c, ft->rows);
			uint64_t cols = mb_family_dim(c, ft->cols);

			if (ft->rows == MB_DIM_ANY)
				continue;
			t = layer_tensor(m, layer, ft->hf);
			if (t == NULL)
				continue;
			if (ft->cols != MB_DIM_NONE ? is2d(t, r, cols)
						    : is1d(t, r))
				continue;
			evid(s, sizeof(s), t);
			if (ft->cols != MB_DIM_NONE)
				refuse(c, "'%s' should be [%llu, %llu]", s,
				       (unsigned long long)r,
				       (unsigned long long)cols);
			else
				refuse(c, "'%s' should be [%llu]", s,
				       (unsigned long long)r);
			return;
		}
	}
}

/* --- configs: the model's own and its bases' --- */

/*
 * Architectures transformers knows that mibera does not convert, and the
 * family analyze() would see in their checkpoints: Llama when their tensors
 * are named and shaped as Llama's (Gemma ties the output and scales its
 * norms and embedding), UNKNOWN when their checkpoints never pass as Phi-3 or
 * Llama (extra norms, experts, fused or other names). A config naming one
 * of them tells the truth unless the tensors contradict it: Gemma's
 * tensors fit the Llama layout, but converted as Llama it would load and
 * produce nonsense. Only a config the tensors prove wrong (the Phi-2
 * config shipped with Phi-4 weights) is rewritten.
 */
static const struct foreign_arch {
	const char *arch;	/* its architectures[0] */
	const char *model_type;
	enum mb_family_id looks_like; /* the family their tensors pass as, or
				      UNKNOWN: none mibera reads */
} foreign_archs[] = {
	{ "GemmaForCausalLM", "gemma", MB_FAMILY_LLAMA },
	{ "GraniteForCausalLM", "granite", MB_FAMILY_LLAMA },
	{ "MinistralForCausalLM", "ministral", MB_FAMILY_LLAMA },
	{ "HeliumForCausalLM", "helium", MB_FAMILY_LLAMA },
	{ "SmolLM3ForCausalLM", "smollm3", MB_FAMILY_LLAMA },
	{ "Ernie4_5ForCausalLM", "ernie4_5", MB_FAMILY_LLAMA },
	{ "MiniCPMForCausalLM", "minicpm", MB_FAMILY_LLAMA },
	{ "Qwen2MoeForCausalLM", "qwen2_moe", MB_FAMILY_UNKNOWN },
	{ "Qwen3MoeForCausalLM", "qwen3_moe", MB_FAMILY_UNKNOWN },
	{ "Gemma2ForCausalLM", "gemma2", MB_FAMILY_UNKNOWN },
	{ "Gemma3ForConditionalGeneration", "gemma3", MB_FAMILY_UNKNOWN },
	{ "MixtralForCausalLM", "mixtral", MB_FAMILY_UNKNOWN },
	{ "DeepseekV2ForCausalLM", "deepseek_v2", MB_FAMILY_UNKNOWN },
	{ "DeepseekV3ForCausalLM", "deepseek_v3", MB_FAMILY_UNKNOWN },
	{ "PhiForCausalLM", "phi", MB_FAMILY_UNKNOWN },
	{ "PhimoeForCausalLM", "phimoe", MB_FAMILY_UNKNOWN },
	{ "GPT2LMHeadModel", "gpt2", MB_FAMILY_UNKNOWN },
	{ "GPTBigCodeForCausalLM", "gpt_bigcode", MB_FAMILY_UNKNOWN },
	{ "GPTNeoXForCausalLM", "gpt_neox", MB_FAMILY_UNKNOWN },
	{ "GPTJForCausalLM", "gptj", MB_FAMILY_UNKNOWN },
	{ "FalconForCausalLM", "falcon", MB_FAMILY_UNKNOWN },
	{ "BloomForCausalLM", "bloom", MB_FAMILY_UNKNOWN },
	{ "OPTForCausalLM", "opt", MB_FAMILY_UNKNOWN },
	{ "MptForCausalLM", "mpt", MB_FAMILY_UNKNOWN },
	{ "Starcoder2ForCausalLM", "starcoder2", MB_FAMILY_UNKNOWN },
	{ "OlmoForCausalLM", "olmo", MB_FAMILY_UNKNOWN },
	{ "Olmo2ForCausalLM", "olmo2", MB_FAMILY_UNKNOWN },
	{ "OlmoeForCausalLM", "olmoe", MB_FAMILY_UNKNOWN },
	{ "CohereForCausalLM", "cohere", MB_FAMILY_UNKNOWN },
	{ "Cohere2ForCausalLM", "cohere2", MB_FAMILY_UNKNOWN },
	{ "StableLmForCausalLM", "stablelm", MB_FAMILY_UNKNOWN },
	{ "GlmForCausalLM", "glm", MB_FAMILY_UNKNOWN },
	{ "Glm4ForCausalLM", "glm4", MB_FAMILY_UNKNOWN },
	{ "NemotronForCausalLM", "nemotron", MB_FAMILY_UNKNOWN },
	{ "GraniteMoeForCausalLM", "granitemoe", MB_FAMILY_UNKNOWN },
	{ "DbrxForCausalLM", "dbrx", MB_FAMILY_UNKNOWN },
	{ "JambaForCausalLM", "jamba", MB_FAMILY_UNKNOWN },
	{ "MambaForCausalLM", "mamba", MB_FAMILY_UNKNOWN },
	{ "Mamba2ForCausalLM", "mamba2", MB_FAMILY_UNKNOWN },
	{ "InternLM2ForCausalLM", "internlm2", MB_FAMILY_UNKNOWN },
	{ "BaichuanForCausalLM", "baichuan", MB_FAMILY_UNKNOWN },
	{ "Exaone4ForCausalLM", "exaone4", MB_FAMILY_UNKNOWN },
	{ "Llama4ForCausalLM", "llama4_text", MB_FAMILY_UNKNOWN },
	{ "Llama4ForConditionalGeneration", "llama4", MB_FAMILY_UNKNOWN },
	{ "LlavaForConditionalGeneration", "llava", MB_FAMILY_UNKNOWN },
	{ "MllamaForConditionalGeneration", "mllama", MB_FAMILY_UNKNOWN },
	{ "Mistral3ForConditionalGeneration", "mistral3", MB_FAMILY_UNKNOWN },
	{ "Qwen2VLForConditionalGeneration", "qwen2_vl", MB_FAMILY_UNKNOWN },
	{ "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", MB_FAMILY_UNKNOWN },
};

#define NFOREIGN (sizeof(foreign_archs) / sizeof(foreign_archs[0]))

/* What a refusal adds for an architecture whose relative mibera does
 * convert. */
static const struct {
	const char *arch;
	const char *note;
} foreign_notes[] = {
	/* its language model's tensors are under language_model.model.,
	 * beside a vision tower */
	{ "Gemma3ForConditionalGeneration",
	  "only Gemma 3's text models (Gemma3ForCausalLM, model_type "
	  "gemma3_text) convert, not the multimodal checkpoint with its "
	  "vision tower" },
};

/* What mibera converts, for the refusal message: every family's
 * architectures names, sorted. */
static void own_archs(char *out, size_t cap)
{
	const struct mb_family *const *fams;
	const char *names[32];
	size_t nf, i, k, n = 0, len = 0;

	fams = mb_families(&nf);
	for (i = 0; i < nf; i++)
		for (k = 0; fams[i]->archs[k] != NULL && n < 32; k++)
			names[n++] = fams[i]->archs[k];
	for (i = 1; i < n; i++) /* insertion sort: a handful of names */
		for (k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
			const char *t = names[k];

			names[k] = names[k - 1];
			names[k - 1] = t;
		}
	out[0] = '\0';
	for (i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s",
					i ? ", " : "", names[i]);
}

/* The architecture a config.json claims, when mibera does not convert it. */
struct claim {
	int foreign;			/* names one mibera does not convert */
	const char *arch;		/* architectures[0], or NULL */
	const char *model_type;		/* or NULL */
	const struct foreign_arch *known; /* its table entry, or NULL */
};

/* A model_type as transformers spells them: "qwen2", "gpt_neox". */
static int model_type_like(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 48 || !isalpha((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

/* A model class name: "Qwen2ForCausalLM", "GPT2LMHeadModel". */
static int arch_like(const char *s)
{
	static const char *const ends[] = { "ForCausalLM",
					    "ForConditionalGeneration",
					    "LMHeadModel" };
	size_t i, n = strlen(s), e;

	if (n == 0 || n > 96 || !isupper((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		e = strlen(ends[i]);
		if (n > e && strcmp(s + n - e, ends[i]) == 0)
			return 1;
	}
	return 0;
}

/* Reads the architecture config.json claims. model_type decides, as it
 * does for transformers' Auto classes; architectures only when there is
 * no model_type. A name in neither form (a number, "", "my model") claims
 * nothing: the tensors then say what the model is. A well-formed name
 * mibera's table lacks is foreign all the same: it may be a real
 * architecture newer than the table, and guessing Llama for it is the
 * silent wrong model this check exists to prevent. */
static void config_claim(const cJSON *doc, struct claim *cl)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "architectures");
	const char *mt = NULL;
	size_t i;

	memset(cl, 0, sizeof(*cl));
	if (!cJSON_IsObject(doc))
		return;
	if (mb_json_get_str(doc, "model_type", 64, &mt) == 0 &&
	    model_type_like(mt))
		cl->model_type = mt;
	if (cJSON_IsArray(a) && cJSON_IsString(cJSON_GetArrayItem(a, 0)) &&
	    arch_like(cJSON_GetArrayItem(a, 0)->valuestring))
		cl->arch = cJSON_GetArrayItem(a, 0)->valuestring;
	if (cl->model_type != NULL) {
		if (mb_family_by_model_type(mt, NULL) != NULL)
			return;
		for (i = 0; i < NFOREIGN; i++)
			if (strcmp(mt, foreign_archs[i].model_type) == 0)
				cl->known = &foreign_archs[i];
	} else if (cl->arch != NULL) {
		if (mb_family_by_arch(cl->arch, NULL) != NULL)
			return;
		for (i = 0; i < NFOREIGN; i++)
			if (strcmp(cl->arch, foreign_archs[i].arch) == 0)
				cl->known = &foreign_archs[i];
	} else {
		return;
	}
	cl->foreign = 1;
}

/* Whether the tensors prove the claim wrong: analyze() found a layout
 * that the claimed architecture's checkpoints never have. */
static int claim_contradicted(const struct claim *cl,
			      const struct mb_modelcfg *c)
{
	return cl->known != NULL && c->family != MB_FAMILY_UNKNOWN &&
	       cl->known->looks_like != c->family;
}

/* Refuses c for a claim the tensors do not contradict. The reason names
 * the architecture; it replaces any earlier one (a tensor the layout
 * lacks is a symptom, the architecture the cause), and the family is
 * unknown: mibera does not know this model, whatever its names look
 * like. */
static void refuse_claim(struct mb_modelcfg *c, const struct claim *cl)
{
	const char *name = cl->arch;
	char also[400] = "", own[300];
	size_t i;

	if (cl->model_type != NULL && cl->known != NULL &&
	    (name == NULL || strcmp(name, cl->known->arch) != 0)) {
		if (name != NULL)
			snprintf(also, sizeof(also), "; config.json's "
				 "architectures says %s, but transformers "
				 "loads it by model_type", name);
		name = cl->known->arch;
	}
	c->convertible = 1; /* so that refuse() takes this reason */
	c->family = MB_FAMILY_UNKNOWN;
	own_archs(own, sizeof(own));
	for (i = 0; cl->known != NULL &&
		    i < sizeof(foreign_notes) / sizeof(foreign_notes[0]); i++)
		if (strcmp(cl->known->arch, foreign_notes[i].arch) == 0) {
			size_t n = strlen(also);

			snprintf(also + n, sizeof(also) - n, "; %s",
				 foreign_notes[i].note);
		}
	if (name != NULL && cl->model_type != NULL)
		refuse(c, "%s (model_type %s) is not a family mibera converts "
		       "natively (it converts: %s)%s", name, cl->model_type,
		       own, also);
	else if (name != NULL)
		refuse(c, "%s is not a family mibera converts natively (it "
		       "converts: %s)%s", name, own, also);
	else
		refuse(c, "model_type %s is not a family mibera converts "
		       "natively (it converts: %s)", cl->model_type, own);
}

struct view {
	const char *label;	/* for evidence: "config.json", a base name */
	enum mb_src src;
	const cJSON *doc;
	enum mb_family_id family;
	const char *model_type;	/* as the config says it, or NULL */
	size_t variant;		/* the name's index in the family's lists */
	uint64_t hidden, layers, ff, vocab, heads, kv_heads, head_dim;
};

/* The family a config names: model_type decides, as it does for
 * transformers' Auto classes; architectures only when there is none.
 * *variant gets the index of the name in the family's lists. */
static enum mb_family_id family_of(const cJSON *doc, const char **model_type,
				size_t *variant)
{
	const cJSON *arch = cJSON_GetObjectItemCaseSensitive(doc, "architectures");
	const char *mt = NULL, *a = NULL;
	const struct mb_family *f;

	/* a value that is no name names nothing, as for config_claim */
	if (mb_json_get_str(doc, "model_type", 64, &mt) != 0 ||
	    !model_type_like(mt))
		mt = NULL;
	if (cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0)) &&
	    arch_like(cJSON_GetArrayItem(arch, 0)->valuestring))
		a = cJSON_GetArrayItem(arch, 0)->valuestring;
	*model_type = mt;
	*variant = 0;
	f = mt != NULL ? mb_family_by_model_type(mt, variant)
		       : mb_family_by_arch(a, variant);
	return f != NULL ? f->id : MB_FAMILY_UNKNOWN;
}

/* Reads a positive integer member; a present member of another type is
 * reported once (for the model's own config) and ignored. */
static uint64_t view_int(struct mb_modelcfg *c, const struct view *v,
			 const char *key, int warn)
{
	uint64_t x = 0;
	int rc = mb_json_get_u64(v->doc, key, 1u << 30, &x);

	if (rc == MB_EJSON && warn)
		addwarn(c, "%s '%s' is not a positive integer: ignored",
			v->label, key);
	return rc == 0 ? x : 0;
}

static void view_init(struct mb_modelcfg *c, struct view *v, const cJSON *doc,
		      const char *label, enum mb_src src, int warn)
{
	memset(v, 0, sizeof(*v));
	v->label = label;
	v->src = src;
	v->doc = doc;
	if (!cJSON_IsObject(doc))
		return;
	v->family = family_of(doc, &v->model_type, &v->variant);
	v->hidden = view_int(c, v, "hidden_size", warn);
	v->layers = view_int(c, v, "num_hidden_layers", warn);
	v->ff = view_int(c, v, "intermediate_size", warn);
	v->vocab = view_int(c, v, "vocab_size", warn);
	v->heads = view_int(c, v, "num_attention_heads", warn);
	v->kv_heads = view_int(c, v, "num_key_value_heads", warn);
	v->head_dim = view_int(c, v, "head_dim", warn);
	if (v->kv_heads == 0)
		v->kv_heads = v->heads; /* transformers' default */
}

/* The head size a config implies: head_dim, else hidden / heads. */
static uint64_t view_hd(const struct view *v)
{
	if (v->head_dim != 0)
		return v->head_dim;
	if (v->heads != 0 && v->hidden % v->heads == 0)
		return v->hidden / v->heads;
	return 0;
}

static int view_matches(const struct view *v, const struct mb_modelcfg *c)
{
	return v->doc != NULL && v->family == c->family &&
	       v->hidden == c->hidden && v->layers == c->layers &&
	       v->ff == c->ff && view_hd(v) != 0 &&
	       v->kv_heads * view_hd(v) == c->kv_width;
}

/* --- values --- */

static void set_value(struct mb_modelcfg *c, enum mb_cfg_key k, cJSON *val,
		      enum mb_src src, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void set_value(struct mb_modelcfg *c, enum mb_cfg_key k, cJSON *val,
		      enum mb_src src, const char *fmt, ...)
{
	va_list ap;

	cJSON_Delete(c->v[k].value);
	c->v[k].value = val;
	c->v[k].src = src;
	va_start(ap, fmt);
	vsnprintf(c->v[k].evidence, sizeof(c->v[k].evidence), fmt, ap);
	va_end(ap);
}

static int try_hd(struct mb_modelcfg *c, uint64_t hd, enum mb_src src,
		  const char *why)
{
	if (hd == 0 || hd % 2 != 0 || c->q_width % hd != 0 ||
	    c->kv_width % hd != 0)
		return 0;
	set_value(c, MB_CFG_NUM_ATTENTION_HEADS,
		  cJSON_CreateNumber((double)(c->q_width / hd)), src,
		  "query width %llu / head_dim %llu; head_dim from %s",
		  (unsigned long long)c->q_width, (unsigned long long)hd, why);
	set_value(c, MB_CFG_NUM_KEY_VALUE_HEADS,
		  cJSON_CreateNumber((double)(c->kv_width / hd)), src,
		  "kv width %llu / head_dim %llu; head_dim from %s",
		  (unsigned long long)c->kv_width, (unsigned long long)hd, why);
	if (mb_family_has_key(mb_family_get(c->family), MB_CFG_HEAD_DIM))
		set_value(c, MB_CFG_HEAD_DIM, cJSON_CreateNumber((double)hd),
			  src, "from %s", why);
	return 1;
}

static void settle_heads(struct mb_modelcfg *c, const struct view *named,
			 const struct view *known, const struct view *cf)
{
	static const uint64_t sizes[] = { 64, 80, 96, 128, 160, 256 };
	char why[200], cands[200] = "";
	size_t i, n = 0;

	if (named->doc != NULL && c->base_matches) {
		snprintf(why, sizeof(why), "base %s", named->label);
		if (try_hd(c, view_hd(named), named->src, why))
			return;
	}
	if (known->doc != NULL) {
		snprintf(why, sizeof(why), "known base %s", known->label);
		if (try_hd(c, view_hd(known), MB_SRC_KNOWN_BASE, why))
			return;
	}
	if (cf->doc != NULL && c->config_family_matches &&
	    cf->hidden == c->hidden && cf->heads != 0 &&
	    view_hd(cf) * cf->heads == c->q_width &&
	    try_hd(c, view_hd(cf), MB_SRC_CONFIG,
		   "config.json num_attention_heads"))
		return;
	if (named->doc != NULL && named->family == c->family) {
		snprintf(why, sizeof(why), "base %s", named->label);
		if (try_hd(c, view_hd(named), MB_SRC_BASE_FAMILY, why))
			return;
	}
	/* a config.json that is wrong about the hidden size cannot vouch for
	 * its head size either: only one that is right about it counts */
	if (cf->doc != NULL && cf->hidden == c->hidden && view_hd(cf) != 0 &&
	    try_hd(c, view_hd(cf), MB_SRC_CONFIG, "config.json head_dim"))
		return;
	/* nothing settles it: list what the shapes allow */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (c->q_width % sizes[i] == 0 && c->kv_width % sizes[i] == 0)
			n += (size_t)snprintf(cands + n, sizeof(cands) - n,
					      "%s%llu heads of %llu",
					      n ? " or " : "",
					      (unsigned long long)(c->q_width /
								   sizes[i]),
					      (unsigned long long)sizes[i]);
	c->heads_ambiguous = 1;
	snprintf(c->heads_note, sizeof(c->heads_note),
		 "the shapes allow %s and nothing settles which",
		 n ? cands : "no usual head size");
	refuse(c, "head count unknown: %s; settle it with --set "
	       "num_attention_heads=N (or --set head_dim=N), or name the base "
	       "model with --base ORG/NAME", c->heads_note);
}

/* A value checker: returns 1 when v is acceptable for the key. */
static int ok_pos_number(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	       v->valuedouble > 0;
}

/* A rope base the GGUF's float32 holds with room: real models use
 * 1e4 to 1e8; a config claiming 1e300 would be written as infinity */
#define MAX_ROPE_THETA 1e12

static int ok_theta(const cJSON *v)
{
	return ok_pos_number(v) && v->valuedouble <= MAX_ROPE_THETA;
}

/* A rope scaling factor: real ones are 2 to 64 (YaRN on Qwen, DeepSeek);
 * a factor past this stretches the context beyond anything llama.cpp
 * holds */
#define MAX_ROPE_FACTOR 1024

static int ok_eps(const cJSON *v)
{
	return ok_pos_number(v) && v->valuedouble < 1;
}

static int ok_pos_int(const cJSON *v)
{
	return ok_pos_number(v) && v->valuedouble <= (double)(1u << 30) &&
	       v->valuedouble == floor(v->valuedouble);
}

static int ok_window(const cJSON *v)
{
	return cJSON_IsNull(v) || ok_pos_int(v);
}

static int ok_fraction(const cJSON *v)
{
	return ok_pos_number(v) && v->valuedouble <= 1;
}

static int ok_scaling(const cJSON *v)
{
	return cJSON_IsNull(v) || cJSON_IsObject(v);
}

static int ok_cap(const cJSON *v)
{
	return cJSON_IsNull(v) || ok_pos_number(v);
}

/* A list of "sliding_attention" and "full_attention", one per layer (its
 * length is checked against the layers once they are known). */
static int ok_layer_types(const cJSON *v)
{
	const cJSON *e;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
	    cJSON_GetArraySize(v) > MAX_LAYERS)
		return 0;
	cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e) ||
				     (strcmp(e->valuestring,
					     "sliding_attention") != 0 &&
				      strcmp(e->valuestring,
					     "full_attention") != 0))
		return 0;
	return 1;
}

/* What a person may set, and how each value is checked: the values the
 * tensors cannot give. */
static const struct settable {
	enum mb_cfg_key key;
	int (*ok)(const cJSON *);
	const char *what;
} settable[] = {
	{ MB_CFG_NUM_ATTENTION_HEADS, ok_pos_int, "a positive integer" },
	{ MB_CFG_NUM_KEY_VALUE_HEADS, ok_pos_int, "a positive integer" },
	{ MB_CFG_HEAD_DIM, ok_pos_int, "a positive integer" },
	{ MB_CFG_ROPE_THETA, ok_theta, "a positive number up to 1e12" },
	{ MB_CFG_RMS_NORM_EPS, ok_eps, "a number between 0 and 1" },
	{ MB_CFG_MAX_POSITION_EMBEDDINGS, ok_pos_int, "a positive integer" },
	{ MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS, ok_pos_int,
	  "a positive integer" },
	{ MB_CFG_SLIDING_WINDOW, ok_window, "a positive integer or null" },
	{ MB_CFG_ROPE_SCALING, ok_scaling, "a JSON object or null" },
	{ MB_CFG_PARTIAL_ROTARY_FACTOR, ok_fraction,
	  "a number above 0, at most 1" },
	{ MB_CFG_ROPE_LOCAL_BASE_FREQ, ok_pos_number, "a positive number" },
	{ MB_CFG_QUERY_PRE_ATTN_SCALAR, ok_pos_number, "a positive number" },
	{ MB_CFG_ATTN_LOGIT_SOFTCAPPING, ok_cap, "a positive number or null" },
	{ MB_CFG_FINAL_LOGIT_SOFTCAPPING, ok_cap, "a positive number or null" },
	{ MB_CFG_SLIDING_WINDOW_PATTERN, ok_pos_int, "a positive integer" },
	{ MB_CFG_LAYER_TYPES, ok_layer_types,
	  "a list of \"sliding_attention\" and \"full_attention\"" },
};
#define NSETTABLE (sizeof(settable) / sizeof(settable[0]))

static const struct settable *settable_find(const char *name)
{
	size_t i;

	for (i = 0; i < NSETTABLE; i++)
		if (strcmp(key_names[settable[i].key], name) == 0)
			return &settable[i];
	return NULL;
}

static void settable_list(char *out, size_t cap)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < NSETTABLE && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "",
				      key_names[settable[i].key]);
}

int mb_modelcfg_user_set(cJSON *set, const char *kv, char *err, size_t errcap)
{
	const struct settable *st;
	const char *eq = strchr(kv, '=');
	char key[64], list[600];
	cJSON *v;
	int k;

	if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
		mb_seterr(err, errcap, "'%.80s' is not KEY=VALUE (for example "
			  "num_attention_heads=24)", kv);
		return MB_EINVAL;
	}
	snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
	st = settable_find(key);
	if (st == NULL) {
		settable_list(list, sizeof(list));
		for (k = 0; k < MB_CFG_NKEYS; k++)
			if (strcmp(key_names[k], key) == 0)
				break;
		if (k < MB_CFG_NKEYS)
			mb_seterr(err, errcap, "%s cannot be set: mibera reads it "
				  "from the tensors' names and shapes, which are "
				  "the truth for it; what can be set: %s", key,
				  list);
		else
			mb_seterr(err, errcap, "'%.60s' is not a config.json key "
				  "mibera reconciles; what can be set: %s", key,
				  list);
		return MB_EINVAL;
	}
	v = mb_json_parse(eq + 1, strlen(eq + 1));
	if (v == NULL || !st->ok(v)) {
		cJSON_Delete(v);
		mb_seterr(err, errcap, "%s=%.200s: the value must be %s", key,
			  eq + 1, st->what);
		return MB_EINVAL;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(set, key);
	cJSON_AddItemToObject(set, key, v);
	return 0;
}

/* The user's settings that fix the head count: head_dim, else the query
 * width over num_attention_heads, else the KV width over
 * num_key_value_heads; each given count must then fit the tensors. */
static void user_heads(struct mb_modelcfg *c, const cJSON *set)
{
	uint64_t heads = 0, kvh = 0, hd = 0;
	char why[200];

	mb_json_get_u64(set, "num_attention_heads", 1u << 30, &heads);
	mb_json_get_u64(set, "num_key_value_heads", 1u << 30, &kvh);
	mb_json_get_u64(set, "head_dim", 1u << 30, &hd);
	if (hd == 0 && heads != 0 && c->q_width % heads == 0)
		hd = c->q_width / heads;
	if (hd == 0 && kvh != 0 && c->kv_width % kvh == 0)
		hd = c->kv_width / kvh;
	snprintf(why, sizeof(why), "the user's --set");
	if (!try_hd(c, hd, MB_SRC_USER, why) ||
	    (heads != 0 && c->q_width / hd != heads) ||
	    (kvh != 0 && c->kv_width / hd != kvh)) {
		char given[200] = "";
		size_t n = 0;
		static const char *const keys[] = { "num_attention_heads",
						    "num_key_value_heads",
						    "head_dim" };
		size_t i;

		/* only what the user gave: the rest was never said */
		for (i = 0; i < 3; i++) {
			uint64_t v = 0;

			if (mb_json_get_u64(set, keys[i], 1u << 30, &v) == 0)
				n += (size_t)snprintf(given + n, sizeof(given) - n,
						      "%s%s=%llu", n ? ", " : "",
						      keys[i],
						      (unsigned long long)v);
		}
		refuse(c, "the heads set by the user (%s) do not fit the "
		       "tensors: the query width is %llu and the KV width %llu, "
		       "so heads x head_dim must equal each", given,
		       (unsigned long long)c->q_width,
		       (unsigned long long)c->kv_width);
		return;
	}
	/* what the user did not set follows from what they did and the
	 * tensors: derived, not theirs */
	{
		static const enum mb_cfg_key keys[] = {
			MB_CFG_NUM_ATTENTION_HEADS, MB_CFG_NUM_KEY_VALUE_HEADS,
			MB_CFG_HEAD_DIM,
		};
		size_t i;

		for (i = 0; i < 3; i++)
			if (c->v[keys[i]].value != NULL &&
			    c->v[keys[i]].src == MB_SRC_USER &&
			    !cJSON_HasObjectItem(set, key_names[keys[i]])) {
				c->v[keys[i]].src = MB_SRC_DERIVED;
				snprintf(c->v[keys[i]].evidence,
					 sizeof(c->v[keys[i]].evidence),
					 "from the tensors' widths and the "
					 "user's head size (head_dim %llu)",
					 (unsigned long long)hd);
			}
	}
	c->heads_ambiguous = 0;
}

/* Takes key from the first source that has an acceptable value; an
 * unacceptable value in the model's own config.json is reported whether
 * or not a better source made it moot. */
static void pick(struct mb_modelcfg *c, enum mb_cfg_key k,
		 const struct view *const *order, size_t n,
		 int (*ok)(const cJSON *), const cJSON *fallback)
{
	const char *name = key_names[k];
	int found = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const cJSON *v;

		if (order[i]->doc == NULL)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(order[i]->doc, name);
		if (v == NULL)
			continue;
		if (!ok(v)) {
			if (order[i]->src == MB_SRC_CONFIG)
				addwarn(c, "config.json '%s' has an invalid "
					"value: ignored", name);
			continue;
		}
		if (found)
			continue;
		set_value(c, k, cJSON_Duplicate(v, 1), order[i]->src, "%s",
			  order[i]->label);
		found = 1;
	}
	if (!found && fallback != NULL) {
		set_value(c, k, cJSON_Duplicate(fallback, 1), MB_SRC_DEFAULT,
			  "no source has it");
		addwarn(c, "'%s' is in no source: the family default is a "
			"guess", name);
	}
}

/* Rope turns pairs of dimensions: a partial rotary factor must leave a
 * positive even number of them in a head. */
static void check_rotary(struct mb_modelcfg *c)
{
	const cJSON *prf = c->v[MB_CFG_PARTIAL_ROTARY_FACTOR].value;
	const cJSON *heads = c->v[MB_CFG_NUM_ATTENTION_HEADS].value;
	uint64_t hd, rot;

	if (!cJSON_IsNumber(prf) || !cJSON_IsNumber(heads) ||
	    heads->valuedouble < 1)
		return;
	hd = c->q_width / (uint64_t)heads->valuedouble;
	rot = (uint64_t)((double)hd * prf->valuedouble);
	if (rot == 0 || rot % 2 != 0)
		refuse(c, "partial_rotary_factor %g turns %llu of the %llu "
		       "dimensions of a head: not a positive even number",
		       prf->valuedouble, (unsigned long long)rot,
		       (unsigned long long)hd);
}

/* A longrope scaling needs its factor lists, one per rotary pair: rope
 * turns int(head_dim * partial_rotary_factor) dimensions of each head, as
 * transformers counts them (Phi-4-mini: 96 of 128, so 48 factors), and
 * the converter writes that count as rope.dimension_count. */
static void check_longrope(struct mb_modelcfg *c, const struct view *cf)
{
	cJSON *rs = c->v[MB_CFG_ROPE_SCALING].value;
	const cJSON *type, *own, *prf = c->v[MB_CFG_PARTIAL_ROTARY_FACTOR].value;
	const char *lists[] = { "long_factor", "short_factor" };
	uint64_t hd = 0;
	size_t i;

	if (!cJSON_IsObject(rs))
		return;
	type = cJSON_GetObjectItemCaseSensitive(rs, "type");
	if (!cJSON_IsString(type))
		type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "longrope") != 0)
		return;
	if (c->v[MB_CFG_NUM_ATTENTION_HEADS].value != NULL)
		hd = c->q_width /
		     (uint64_t)c->v[MB_CFG_NUM_ATTENTION_HEADS].value->valuedouble;
	if (cJSON_IsNumber(prf))
		hd = (uint64_t)((double)hd * prf->valuedouble);
	/* the table has no factors: the model's own config carries them */
	own = cf->doc ? cJSON_GetObjectItemCaseSensitive(cf->doc, "rope_scaling")
		      : NULL;
	for (i = 0; i < 2; i++) {
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(rs, lists[i]), *e;

		if (l == NULL && cJSON_IsObject(own)) {
			l = cJSON_GetObjectItemCaseSensitive(own, lists[i]);
			if (l != NULL)
				cJSON_AddItemToObject(rs, lists[i],
						      cJSON_Duplicate(l, 1));
		}
		if (!cJSON_IsArray(l) ||
		    (hd != 0 && (uint64_t)cJSON_GetArraySize(l) != hd / 2)) {
			refuse(c, "longrope scaling needs %s with %llu numbers "
			       "(one per rotary pair of the %llu rotated "
			       "dimensions of a head)", lists[i],
			       (unsigned long long)(hd / 2),
			       (unsigned long long)hd);
			return;
		}
		cJSON_ArrayForEach(e, l) if (!ok_pos_number(e)) {
			refuse(c, "longrope %s holds a value that is not a "
			       "positive number", lists[i]);
			return;
		}
	}
}

/* A rope scaling the family's GGUF architecture cannot carry is refused
 * here, by name, rather than by the conversion on a rented box; yarn and
 * linear need their factor, yarn the context it was trained at. The type
 * is read as the converter reads it: rope_type, else type. */
static void check_rope_scaling(struct mb_modelcfg *c,
			       const struct mb_family *fam)
{
	static const struct {
		unsigned kind;
		const char *name;
	} kinds[] = { { MB_ROPE_LONGROPE, "longrope" },
		      { MB_ROPE_LLAMA3, "llama3" },
		      { MB_ROPE_LINEAR, "linear" },
		      { MB_ROPE_YARN, "yarn" } };
	const cJSON *rs = c->v[MB_CFG_ROPE_SCALING].value, *type, *f, *oc;
	char takes[80] = "";
	size_t i, n = 0;
	unsigned kind;

	if (!cJSON_IsObject(rs))
		return;
	type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
	if (!cJSON_IsString(type))
		type = cJSON_GetObjectItemCaseSensitive(rs, "type");
	if (!cJSON_IsString(type)) {
		refuse(c, "rope_scaling has no type (rope_type or type)");
		return;
	}
	kind = mb_family_rope_kind(type->valuestring);
	if (!(fam->native->rope & kind)) {
		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (fam->native->rope & kinds[i].kind)
				n += (size_t)snprintf(takes + n, sizeof(takes) - n,
						      "%s%s", n ? ", " : "",
						      kinds[i].name);
		refuse(c, "rope scaling '%.40s' is not supported for %s "
		       "(llama.cpp's %s; mibera writes %s)", type->valuestring,
		       fam->display, fam->native->arch, n ? takes : "none");
		return;
	}
	f = cJSON_GetObjectItemCaseSensitive(rs, "factor");
	oc = cJSON_GetObjectItemCaseSensitive(rs,
					      "original_max_position_embeddings");
	if ((kind == MB_ROPE_YARN || kind == MB_ROPE_LINEAR) &&
	    !ok_pos_number(f))
		refuse(c, "%s rope scaling needs a positive factor",
		       type->valuestring);
	else if ((kind == MB_ROPE_YARN || kind == MB_ROPE_LINEAR) &&
		 f->valuedouble > MAX_ROPE_FACTOR)
		refuse(c, "%s rope scaling factor %g is past any real model's "
		       "(at most %d)", type->valuestring, f->valuedouble,
		       MAX_ROPE_FACTOR);
	else if (kind == MB_ROPE_YARN && !ok_pos_int(oc))
		refuse(c, "yarn rope scaling needs "
		       "original_max_position_embeddings, the context the "
		       "model was trained at before scaling");
}

/* The attention values only Gemma 3's keys carry, against what
 * llama.cpp's gemma3 computes: scores scaled by head_dim^-1/2 (by
 * (hidden / heads)^-1/2 for 62 layers, the 27B's query_pre_attn_scalar
 * of 168), no cap on the scores, and every layer said to slide or not. */
static void check_attention(struct mb_modelcfg *c, const struct mb_family *fam)
{
	const cJSON *q = c->v[MB_CFG_QUERY_PRE_ATTN_SCALAR].value;
	const cJSON *cap = c->v[MB_CFG_ATTN_LOGIT_SOFTCAPPING].value;
	const cJSON *lt = c->v[MB_CFG_LAYER_TYPES].value;
	const cJSON *heads = c->v[MB_CFG_NUM_ATTENTION_HEADS].value;

	if (mb_family_has_key(fam, MB_CFG_QUERY_PRE_ATTN_SCALAR) &&
	    cJSON_IsNumber(q) && cJSON_IsNumber(heads) &&
	    heads->valuedouble >= 1) {
		uint64_t nh = (uint64_t)heads->valuedouble;
		double want = c->layers == 62 ? (double)(c->hidden / nh)
					      : (double)(c->q_width / nh);

		enum mb_src src = c->v[MB_CFG_QUERY_PRE_ATTN_SCALAR].src;

		/* a base of other shapes or the default says it of another
		 * head size: every Gemma 3 has the value llama.cpp takes */
		if (q->valuedouble != want && (src == MB_SRC_BASE_FAMILY ||
					       src == MB_SRC_DEFAULT)) {
			addwarn(c, "query_pre_attn_scalar %g (from %s) is "
				"another head size's: %g taken, as every "
				"Gemma 3 has", q->valuedouble,
				c->v[MB_CFG_QUERY_PRE_ATTN_SCALAR].evidence,
				want);
			set_value(c, MB_CFG_QUERY_PRE_ATTN_SCALAR,
				  cJSON_CreateNumber(want), MB_SRC_DERIVED,
				  "%s %llu", c->layers == 62
					? "hidden size / heads:"
					: "head size from the tensors:",
				  (unsigned long long)want);
		} else if (q->valuedouble != want) {
			refuse(c, "query_pre_attn_scalar %g (from %s): "
			       "llama.cpp's %s scales attention scores by "
			       "%g^-1/2 for this model, so it would compute "
			       "another model", q->valuedouble,
			       c->v[MB_CFG_QUERY_PRE_ATTN_SCALAR].evidence,
			       fam->native->arch, want);
		}
	}
	if (mb_family_has_key(fam, MB_CFG_ATTN_LOGIT_SOFTCAPPING) &&
	    cJSON_IsNumber(cap))
		refuse(c, "attn_logit_softcapping %g (from %s): llama.cpp's %s "
		       "has no cap on attention scores", cap->valuedouble,
		       c->v[MB_CFG_ATTN_LOGIT_SOFTCAPPING].evidence,
		       fam->native->arch);
	if (lt != NULL && (uint64_t)cJSON_GetArraySize(lt) != c->layers) {
		refuse(c, "layer_types (from %s) lists %d layers, the tensors "
		       "have %llu", c->v[MB_CFG_LAYER_TYPES].evidence,
		       cJSON_GetArraySize(lt), (unsigned long long)c->layers);
		return;
	}
	if (mb_family_has_key(fam, MB_CFG_SLIDING_WINDOW_PATTERN) &&
	    c->layers <= MAX_LAYERS) {
		unsigned char swa[MAX_LAYERS];

		if (mb_modelcfg_swa_layers(c, swa) > 0 &&
		    !cJSON_IsNumber(c->v[MB_CFG_SLIDING_WINDOW].value))
			refuse(c, "sliding layers without a sliding_window "
			       "(from %s)",
			       c->v[MB_CFG_SLIDING_WINDOW].evidence);
	}
}

static const char *torch_dtype(const struct mb_st_model *m, size_t *count,
			       size_t *total)
{
	size_t n[MB_ST_NDTYPES] = { 0 }, i, best = 0;

	*total = 0;
	for (i = 0; i < m->ntensors; i++)
		if (m->tensors[i].ndim == 2) {
			n[m->tensors[i].dtype]++;
			(*total)++;
		}
	for (i = 1; i < MB_ST_NDTYPES; i++)
		if (n[i] > n[best])
			best = i;
	*count = n[best];
	switch (best) {
	case MB_ST_BF16:
		return "bfloat16";
	case MB_ST_F16:
		return "float16";
	case MB_ST_F32:
		return "float32";
	default:
		return NULL;
	}
}

/* Two values are the same when they are equal JSON, numbers compared with
 * a relative tolerance (1e-05 and 1e-5 are one value), and an absent key
 * equal to null. */
static int same_value(const cJSON *a, const cJSON *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL || cJSON_IsNull(a)) &&
		       (b == NULL || cJSON_IsNull(b));
	if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
		return fabs(a->valuedouble - b->valuedouble) <=
		       1e-9 * fmax(fabs(a->valuedouble), fabs(b->valuedouble));
	return cJSON_Compare(a, b, 1);
}

static void shape_values(struct mb_modelcfg *c, const struct mb_st_model *m)
{
	const struct mb_family *f = mb_family_get(c->family);
	const struct mb_st_tensor *emb = mb_st_model_find(m, "model.embed_tokens.weight");
	const struct mb_st_tensor *down = mb_st_model_find(m, "model.layers.0.mlp.down_proj.weight");
	/* a family named by config.json over another's tensors: its name
	 * comes from the config */
	enum mb_src name_src = f->markers == NULL ? MB_SRC_CONFIG
						  : MB_SRC_TENSORS;
	const char *td;
	char e[160];
	size_t n, total;
	cJSON *a;

	evid(e, sizeof(e), emb);
	set_value(c, MB_CFG_VOCAB_SIZE, cJSON_CreateNumber((double)c->vocab_rows),
		  MB_SRC_TENSORS, "%s rows", e);
	set_value(c, MB_CFG_HIDDEN_SIZE, cJSON_CreateNumber((double)c->hidden),
		  MB_SRC_TENSORS, "%s columns", e);
	set_value(c, MB_CFG_NUM_HIDDEN_LAYERS,
		  cJSON_CreateNumber((double)c->layers), MB_SRC_TENSORS,
		  "highest index model.layers.%llu.*, every layer complete",
		  (unsigned long long)(c->layers - 1));
	evid(e, sizeof(e), down);
	set_value(c, MB_CFG_INTERMEDIATE_SIZE, cJSON_CreateNumber((double)c->ff),
		  MB_SRC_TENSORS, "%s columns%s", e,
		  f->ff_note != NULL ? f->ff_note : "");
	set_value(c, MB_CFG_TIE_WORD_EMBEDDINGS, cJSON_CreateBool(c->tied),
		  MB_SRC_TENSORS, "%s", c->tied ? "no lm_head.weight"
						: "lm_head.weight present");
	if (mb_family_has_key(f, MB_CFG_ATTENTION_BIAS))
		set_value(c, MB_CFG_ATTENTION_BIAS, cJSON_CreateBool(c->has_bias),
			  MB_SRC_TENSORS, "%s", c->has_bias
				? "attention bias tensors present"
				: "no bias tensors");
	if (f->layout_tensor != NULL)
		evid(e, sizeof(e), layer_tensor(m, 0, f->layout_tensor));
	else if (f->head_tensor != NULL)
		snprintf(e, sizeof(e), "%s [%llu]", f->layout_text,
			 (unsigned long long)c->head_dim);
	else
		snprintf(e, sizeof(e), "%s", f->layout_text);
	a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString(f->archs[0]));
	set_value(c, MB_CFG_ARCHITECTURES, a, name_src, "tensor layout: %s", e);
	set_value(c, MB_CFG_MODEL_TYPE, cJSON_CreateString(f->model_types[0]),
		  name_src, "tensor layout: %s", e);
	td = torch_dtype(m, &n, &total);
	if (td != NULL)
		set_value(c, MB_CFG_TORCH_DTYPE, cJSON_CreateString(td),
			  MB_SRC_TENSORS, "%zu of %zu matrices", n, total);
}

/* A family's other names (Mistral's over Llama's tensors) are kept when
 * a config or base says them by model_type. */
static void variant_names(struct mb_modelcfg *c, const struct view *v)
{
	const struct mb_family *f = mb_family_get(c->family);
	cJSON *a;

	if (v->family != c->family || v->model_type == NULL || v->variant == 0)
		return;
	a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString(f->archs[v->variant]));
	set_value(c, MB_CFG_ARCHITECTURES, a, v->src, "%s layout; %s says %s",
		  f->display, v->label, f->model_types[v->variant]);
	set_value(c, MB_CFG_MODEL_TYPE,
		  cJSON_CreateString(f->model_types[v->variant]), v->src,
		  "%s layout; %s says %s", f->display, v->label,
		  f->model_types[v->variant]);
}

/* A family named by config.json over the tensors of the family it
 * extends (Qwen2 over Llama's: only the config tells them apart). It
 * takes them when they are all its own and its required ones are there
 * in every layer; anything else is refused rather than guessed at. A
 * family with markers of its own (Qwen3's norms) whose tensors lack them
 * is refused: converted as the other family it would run without them. */
static void config_family(struct mb_modelcfg *c, const struct mb_st_model *m,
			  const struct mb_family *f)
{
	const struct mb_family *base = mb_family_get(f->extends);
	unsigned layer;
	size_t k;

	c->family = f->id;
	if (f->markers != NULL) {
		for (k = 0; f->markers[k] != NULL; k++)
			if (layer_tensor(m, 0, f->markers[k]) == NULL)
				break;
		refuse(c, "%s without 'model.layers.0.%s': %s", f->display,
		       f->markers[f->markers[k] != NULL ? k : 0],
		       f->required_note);
		return;
	}
	if (f->q_is_hidden && c->q_width != c->hidden) {
		refuse(c, "%s with a query width of %llu and a hidden size "
		       "of %llu: llama.cpp's %s needs them equal", f->display,
		       (unsigned long long)c->q_width,
		       (unsigned long long)c->hidden, f->native->arch);
		return;
	}
	for (layer = 0; layer < c->layers; layer++) {
		for (k = 0; f->tensors[k].hf != NULL; k++)
			if (f->tensors[k].required &&
			    layer_tensor(m, layer, f->tensors[k].hf) == NULL) {
				refuse(c, "%s without 'model.layers.%u.%s': %s",
				       f->display, layer, f->tensors[k].hf,
				       f->required_note);
				return;
			}
		for (k = 0; base->tensors[k].hf != NULL; k++)
			if (fam_tensor(f, base->tensors[k].hf) == NULL &&
			    layer_tensor(m, layer, base->tensors[k].hf) != NULL) {
				refuse(c, "%s with 'model.layers.%u.%s': %s has "
				       "none", f->display, layer,
				       base->tensors[k].hf, f->display);
				return;
			}
	}
}

/* A family whose tensors give the head size (Qwen3's q and k norms, one
 * head wide): with it both head counts. A head count the user set must
 * agree with them. */
static void tensor_heads(struct mb_modelcfg *c, const cJSON *set)
{
	const struct mb_family *f = mb_family_get(c->family);
	const cJSON *heads;
	char why[200];

	if (set != NULL &&
	    (cJSON_HasObjectItem(set, "num_attention_heads") ||
	     cJSON_HasObjectItem(set, "num_key_value_heads") ||
	     cJSON_HasObjectItem(set, "head_dim"))) {
		user_heads(c, set);
		heads = c->v[MB_CFG_NUM_ATTENTION_HEADS].value;
		if (c->convertible && cJSON_IsNumber(heads) &&
		    heads->valuedouble >= 1 &&
		    c->q_width / (uint64_t)heads->valuedouble != c->head_dim)
			refuse(c, "the heads set by the user give a head size "
			       "of %llu, but '%s' is [%llu]: %s",
			       (unsigned long long)(c->q_width /
						    (uint64_t)heads->valuedouble),
			       f->head_tensor, (unsigned long long)c->head_dim,
			       f->head_note);
		return;
	}
	snprintf(why, sizeof(why), "model.layers.0.%s [%llu], one head wide",
		 f->head_tensor, (unsigned long long)c->head_dim);
	try_hd(c, c->head_dim, MB_SRC_TENSORS, why);
}

/* Adds key to the config when it lacks it (v is then owned by it, else
 * freed). */
static void add_absent(cJSON *cfg, const char *key, cJSON *v)
{
	if (v == NULL)
		return;
	if (cJSON_GetObjectItemCaseSensitive(cfg, key) != NULL)
		cJSON_Delete(v);
	else
		cJSON_AddItemToObject(cfg, key, v);
}

/* transformers 5 writes the rope of a model with sliding layers (Gemma
 * 3) as rope_parameters, one per layer type: {"full_attention":
 * {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
 * "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}.
 * Read as the keys of the older form (rope_theta, rope_scaling,
 * rope_local_base_freq) where the config lacks them, so that the 4B's
 * scaling is not taken for none. */
static void rope_parameters(struct mb_modelcfg *c)
{
	const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c->config,
							   "rope_parameters");
	const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp,
							     "full_attention");
	const cJSON *slide = cJSON_GetObjectItemCaseSensitive(
		rp, "sliding_attention");
	const cJSON *t, *type;

	if (!cJSON_IsObject(full))
		return;
	t = cJSON_GetObjectItemCaseSensitive(full, "rope_theta");
	if (cJSON_IsNumber(t))
		add_absent(c->config, "rope_theta", cJSON_Duplicate(t, 1));
	type = cJSON_GetObjectItemCaseSensitive(full, "rope_type");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "default") != 0) {
		cJSON *rs = cJSON_Duplicate(full, 1);

		if (rs != NULL)
			cJSON_DeleteItemFromObjectCaseSensitive(rs,
								"rope_theta");
		add_absent(c->config, "rope_scaling", rs);
	} else {
		add_absent(c->config, "rope_scaling", cJSON_CreateNull());
	}
	t = cJSON_GetObjectItemCaseSensitive(slide, "rope_theta");
	if (cJSON_IsObject(slide) && cJSON_IsNumber(t))
		add_absent(c->config, "rope_local_base_freq",
			   cJSON_Duplicate(t, 1));
	type = cJSON_GetObjectItemCaseSensitive(slide, "rope_type");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "default") != 0)
		refuse(c, "rope_parameters.sliding_attention has rope_type "
		       "'%.40s': llama.cpp scales no sliding layer's rope",
		       type->valuestring);
}

int mb_modelcfg_infer(const struct mb_st_model *m, const char *config,
		      size_t config_len, const char *card, size_t card_len,
		      const char *base_config, size_t base_len,
		      struct mb_modelcfg **out, char *err, size_t errcap)
{
	return mb_modelcfg_infer_user(m, config, config_len, card, card_len,
				      base_config, base_len, NULL, out, err,
				      errcap);
}

int mb_modelcfg_infer_user(const struct mb_st_model *m, const char *config,
			   size_t config_len, const char *card,
			   size_t card_len, const char *base_config,
			   size_t base_len,
			   const struct mb_modelcfg_user *user,
			   struct mb_modelcfg **out, char *err, size_t errcap)
{
	struct view cf, named, known, tmp, uv;
	const struct view *order[6];
	const cJSON *set = user != NULL && cJSON_IsObject(user->set) &&
			   user->set->child != NULL ? user->set : NULL;
	struct claim claim;
	const struct mb_family *fam, *const *fams;
	const char *mt;
	cJSON *base_doc = NULL, *known_doc = NULL, *defaults = NULL;
	struct mb_modelcfg *c;
	char label_named[200], label_known[160];
	size_t i, j, n, nf, variant;
	int k;

	*out = NULL;
	c = mb_calloc(1, sizeof(*c));
	if (c == NULL) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap, "out of memory");
		return MB_ENOMEM;
	}
	c->convertible = 1;
	memset(&cf, 0, sizeof(cf));
	memset(&named, 0, sizeof(named));
	memset(&known, 0, sizeof(known));
	memset(&uv, 0, sizeof(uv));
	if (config != NULL) {
		char why[64];
		int nan;

		c->config = mb_json_parse_python(config, config_len, &nan, why,
						 sizeof(why));
		if (c->config == NULL) {
			addwarn(c, "config.json is not valid JSON (it stops being "
				"JSON at %s): every value comes from the "
				"tensors and the base", why);
		} else if (!cJSON_IsObject(c->config)) {
			addwarn(c, "config.json is not a JSON object: every value "
				"comes from the tensors and the base");
			cJSON_Delete(c->config);
			c->config = NULL;
		} else if (nan > 0) {
			addwarn(c, "config.json has %d NaN or Infinity value%s "
				"(Python writes them; JSON has none): read as "
				"missing", nan, nan == 1 ? "" : "s");
		}
	} else {
		addwarn(c, "no config.json: every value comes from the tensors "
			"and the base");
	}
	if (c->config != NULL)
		rope_parameters(c);
	if (c->config != NULL)
		for (k = 0; k < MB_CFG_NKEYS; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(
				c->config, key_names[k]);

			c->v[k].claimed = v ? cJSON_Duplicate(v, 1) : NULL;
		}
	analyze(m, c);
	/* an architecture mibera does not convert is refused by name, never
	 * rewritten into one it does, unless the tensors prove it a lie */
	config_claim(c->config, &claim);
	if (claim.foreign && !claim_contradicted(&claim, c)) {
		refuse_claim(c, &claim);
		goto done;
	}
	/* a family named by config.json over the tensors of the one it
	 * extends */
	if (c->family != MB_FAMILY_UNKNOWN && c->convertible &&
	    c->config != NULL) {
		const struct mb_family *named_fam =
			mb_family_get(family_of(c->config, &mt, &variant));

		if (named_fam != NULL && named_fam->extends == c->family)
			config_family(c, m, named_fam);
	}
	if (c->family == MB_FAMILY_UNKNOWN || !c->convertible)
		goto done;
	view_init(c, &cf, c->config, "config.json", MB_SRC_CONFIG, 1);
	/* a config.json that names no architecture describes no other
	 * kind of model: it is this one's, and its values (rope_theta, the
	 * context) are the best there are */
	if (cf.doc != NULL && cf.family == MB_FAMILY_UNKNOWN &&
	    claim.model_type == NULL && claim.arch == NULL)
		cf.family = c->family;
	c->config_family_matches = cf.doc != NULL && cf.family == c->family;
	if (cf.doc != NULL && !c->config_family_matches)
		addwarn(c, "config.json describes another kind of model "
			"(model_type '%s'); the tensors are %s: none of its "
			"other values are trusted",
			cf.model_type ? cf.model_type : "none",
			mb_family_name(c->family));

	/* what the user set: every key one that can be set, with a good
	 * value (the command line checked them; a worker reads them from a
	 * file) */
	if (set != NULL) {
		const cJSON *e;

		cJSON_ArrayForEach(e, set) {
			const struct settable *st = settable_find(e->string);

			if (st == NULL || !st->ok(e)) {
				refuse(c, "the user's setting of '%.60s' is not "
				       "one mibera can use", e->string);
				goto done;
			}
		}
		uv.doc = set;
		uv.label = "set by the user";
		uv.src = MB_SRC_USER;
		uv.family = c->family;
	}
	/* the named base: the user's, else the card's; from the hub when
	 * the caller fetched it */
	if (user != NULL && user->base != NULL && user->base[0] != '\0') {
		snprintf(c->base_name, sizeof(c->base_name), "%s", user->base);
		c->base_by_user = 1;
	} else {
		mb_modelcfg_base_name(card, card_len, config, config_len,
				      c->base_name, sizeof(c->base_name));
	}
	if (c->base_name[0] != '\0') {
		const char *table = table_config(c->base_name);
		enum mb_src src = MB_SRC_BASE_HUB;

		if (base_config != NULL) {
			char why[64];
			int nan;

			base_doc = mb_json_parse_python(base_config, base_len,
							&nan, why, sizeof(why));
		}
		if (base_doc == NULL && table != NULL) {
			base_doc = mb_json_parse(table, strlen(table));
			src = MB_SRC_BASE_TABLE;
		}
		snprintf(label_named, sizeof(label_named), "%s%s", c->base_name,
			 src == MB_SRC_BASE_HUB ? " (hub)" : " (table)");
		if (base_doc != NULL)
			view_init(c, &named, base_doc, label_named, src, 0);
		c->base_matches = view_matches(&named, c);
		if (base_doc != NULL && !c->base_matches) {
			/* its values are a family's, not this model's */
			named.src = MB_SRC_BASE_FAMILY;
			snprintf(label_named, sizeof(label_named), "%s%s, other "
				 "shapes", c->base_name, src == MB_SRC_BASE_HUB
					 ? " (hub)" : " (table)");
		}
		if (base_doc != NULL && !c->base_matches)
			addwarn(c, "base model %s does not have these shapes%s",
				c->base_name, named.family == c->family
					? " (same family: its values are used "
					  "where nothing better is known)"
					: "");
		if (base_doc == NULL)
			addwarn(c, "base model %s: no config available (not in "
				"the table and not fetched)", c->base_name);
	}
	/* a known base with the same shapes, when the named one is not it */
	if (!c->base_matches) {
		fams = mb_families(&nf);
		for (j = 0; j < nf; j++)
			for (i = 0; fams[j]->bases[i].name != NULL; i++) {
				const struct mb_family_base *kb =
					&fams[j]->bases[i];
				cJSON *d = mb_json_parse(kb->config,
							 strlen(kb->config));

				snprintf(label_known, sizeof(label_known),
					 "%s (table)", kb->name);
				view_init(c, &tmp, d, label_known,
					  MB_SRC_KNOWN_BASE, 0);
				if (view_matches(&tmp, c) &&
				    (known_doc == NULL ||
				     tmp.vocab == c->vocab_rows)) {
					cJSON_Delete(known_doc);
					known_doc = d;
					known = tmp;
					snprintf(c->known_base,
						 sizeof(c->known_base), "%s",
						 kb->name);
				} else {
					cJSON_Delete(d);
				}
			}
	}

	fam = mb_family_get(c->family);
	shape_values(c, m);
	if (fam->head_tensor != NULL)
		tensor_heads(c, set);
	else if (set != NULL &&
	    (cJSON_HasObjectItem(set, "num_attention_heads") ||
	     cJSON_HasObjectItem(set, "num_key_value_heads") ||
	     cJSON_HasObjectItem(set, "head_dim")))
		user_heads(c, set);
	else
		settle_heads(c, &named, &known, &cf);

	/* the values shapes cannot give, in the order of trust */
	n = 0;
	if (set != NULL)
		order[n++] = &uv;
	if (c->base_matches)
		order[n++] = &named;
	if (known.doc != NULL)
		order[n++] = &known;
	if (c->config_family_matches)
		order[n++] = &cf;
	/* a config.json of another family is not asked at all: Phi-2's
	 * partial_rotary_factor or rope_theta would be wrong for Phi-3 */
	if (named.doc != NULL && !c->base_matches && named.family == c->family)
		order[n++] = &named;
	for (i = 0; i < n; i++)
		variant_names(c, order[i]);
	defaults = cJSON_Parse(fam->defaults);
	if (defaults == NULL)
		goto nomem;
	/* the keys of the family that no tensor gives, in its order */
	for (i = 0; fam->keys[i] != MB_CFG_NKEYS; i++) {
		enum mb_cfg_key key = fam->keys[i];
		const struct settable *st = settable_find(key_names[key]);
		const cJSON *fallback;

		if (key == MB_CFG_HEAD_DIM || key == MB_CFG_ATTENTION_BIAS ||
		    st == NULL)
			continue;
		/* layer_types (transformers since 4.53) says per layer what
		 * the pattern says in one number */
		if (key == MB_CFG_SLIDING_WINDOW_PATTERN &&
		    c->v[MB_CFG_LAYER_TYPES].value != NULL)
			continue;
		/* transformers reads a missing original context as the
		 * context itself */
		fallback = key == MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS
			? c->v[MB_CFG_MAX_POSITION_EMBEDDINGS].value
			: cJSON_GetObjectItemCaseSensitive(defaults,
							   key_names[key]);
		pick(c, key, order, n, st->ok, fallback);
	}
	/* a window the GGUF architecture has no key for (Mistral 7B v0.1's
	 * 4096 under llama.cpp's llama): attention spans the whole context,
	 * which matches the model only up to the window */
	if (mb_family_has_key(fam, MB_CFG_SLIDING_WINDOW) &&
	    !(fam->native->meta &
	      (MB_META_SLIDING_WINDOW | MB_META_SWA_LAYERS)) &&
	    cJSON_IsNumber(c->v[MB_CFG_SLIDING_WINDOW].value) &&
	    cJSON_IsNumber(c->v[MB_CFG_MAX_POSITION_EMBEDDINGS].value) &&
	    c->v[MB_CFG_SLIDING_WINDOW].value->valuedouble <
		    c->v[MB_CFG_MAX_POSITION_EMBEDDINGS].value->valuedouble)
		addwarn(c, "sliding_window %.0f is below the context of %.0f: "
			"llama.cpp's %s has none and attends over the whole "
			"context, so past %.0f tokens the model sees more than "
			"it was trained to", c->v[MB_CFG_SLIDING_WINDOW].value->valuedouble,
			c->v[MB_CFG_MAX_POSITION_EMBEDDINGS].value->valuedouble,
			fam->native->arch,
			c->v[MB_CFG_SLIDING_WINDOW].value->valuedouble);
	check_rotary(c);
	check_longrope(c, &cf);
	check_rope_scaling(c, fam);
	check_attention(c, fam);
	if (set != NULL) {
		const cJSON *e;

		/* a setting this family has no use for is said, not dropped
		 * in silence */
		cJSON_ArrayForEach(e, set) {
			for (k = 0; k < MB_CFG_NKEYS; k++)
				if (strcmp(key_names[k], e->string) == 0)
					break;
			if (k < MB_CFG_NKEYS && c->v[k].src != MB_SRC_USER)
				addwarn(c, "%s was set by the user, but a %s "
					"model has no use for it: ignored",
					e->string, mb_family_name(c->family));
		}
	}
	for (k = 0; k < MB_CFG_NKEYS; k++)
		if (c->v[k].value != NULL)
			c->v[k].repaired = !same_value(c->v[k].claimed,
						       c->v[k].value);
done:
	cJSON_Delete(defaults);
	cJSON_Delete(base_doc);
	cJSON_Delete(known_doc);
	*out = c;
	return 0;
nomem:
	cJSON_Delete(base_doc);
	cJSON_Delete(known_doc);
	mb_modelcfg_free(c);
	if (err != NULL && errcap > 0)
		snprintf(err, errcap, "out of memory");
	return MB_ENOMEM;
}

void mb_modelcfg_free(struct mb_modelcfg *c)
{
	int k;

	if (c == NULL)
		return;
	for (k = 0; k < MB_CFG_NKEYS; k++) {
		cJSON_Delete(c->v[k].value);
		cJSON_Delete(c->v[k].claimed);
	}
	cJSON_Delete(c->config);
	free(c);
}

size_t mb_modelcfg_swa_layers(const struct mb_modelcfg *c, unsigned char *swa)
{
	const cJSON *lt = c->v[MB_CFG_LAYER_TYPES].value;
	const cJSON *pat = c->v[MB_CFG_SLIDING_WINDOW_PATTERN].value;
	uint64_t il, n = cJSON_IsNumber(pat) ? (uint64_t)pat->valuedouble : 0;
	size_t nswa = 0;

	for (il = 0; il < c->layers; il++) {
		const cJSON *e = cJSON_GetArrayItem(lt, (int)il);

		if (lt != NULL)
			swa[il] = cJSON_IsString(e) &&
				  strcmp(e->valuestring,
					 "sliding_attention") == 0;
		else
			swa[il] = n != 0 && (il + 1) % n != 0;
		nswa += swa[il];
	}
	return nswa;
}

size_t mb_modelcfg_nrepairs(const struct mb_modelcfg *c)
{
	size_t n = 0;
	int k;

	for (k = 0; k < MB_CFG_NKEYS; k++)
		n += c->v[k].repaired != 0;
	return n;
}

/* --- output --- */

int mb_modelcfg_repaired_json(const struct mb_modelcfg *c, struct mb_buf *b)
{
	cJSON *out;
	char *text;
	int k, rc;

	out = c->config_family_matches ? cJSON_Duplicate(c->config, 1)
				       : cJSON_CreateObject();
	if (out == NULL)
		return MB_ENOMEM;
	for (k = 0; k < MB_CFG_NKEYS; k++) {
		cJSON *v;

		if (c->v[k].value == NULL)
			continue;
		v = cJSON_Duplicate(c->v[k].value, 1);
		if (v == NULL) {
			cJSON_Delete(out);
			return MB_ENOMEM;
		}
		/* exact names only: "Hidden_Size" is another key to cJSON's
		 * case-insensitive lookups, and would leak the replacement */
		if (cJSON_GetObjectItemCaseSensitive(out, key_names[k]) != NULL)
			cJSON_ReplaceItemInObjectCaseSensitive(out, key_names[k], v);
		else
			cJSON_AddItemToObject(out, key_names[k], v);
	}
	text = cJSON_Print(out);
	cJSON_Delete(out);
	if (text == NULL)
		return MB_ENOMEM;
	rc = mb_buf_adds(b, text);
	if (rc == 0)
		rc = mb_buf_adds(b, "\n");
	free(text);
	return rc;
}

static cJSON *dup_or_null(const cJSON *v)
{
	return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

int mb_modelcfg_report_json(const struct mb_modelcfg *c, struct mb_buf *b)
{
	cJSON *r = cJSON_CreateObject(), *t, *fields, *repairs, *w, *dropped;
	char *text;
	size_t i;
	int k, rc;

	if (r == NULL)
		return MB_ENOMEM;
	cJSON_AddNumberToObject(r, "version", 1);
	cJSON_AddStringToObject(r, "family", mb_family_name(c->family));
	cJSON_AddBoolToObject(r, "convertible", c->convertible);
	cJSON_AddStringToObject(r, "reason", c->reason);
	t = cJSON_AddObjectToObject(r, "base_model");
	cJSON_AddStringToObject(t, "name", c->base_name);
	cJSON_AddBoolToObject(t, "matches", c->base_matches);
	cJSON_AddBoolToObject(t, "set_by_user", c->base_by_user);
	cJSON_AddStringToObject(r, "known_base", c->known_base);
	cJSON_AddBoolToObject(r, "config_family_matches",
			      c->config_family_matches);
	cJSON_AddBoolToObject(r, "heads_ambiguous", c->heads_ambiguous);
	cJSON_AddStringToObject(r, "heads_note", c->heads_note);
	t = cJSON_AddObjectToObject(r, "tensors");
	cJSON_AddNumberToObject(t, "params", (double)c->params);
	cJSON_AddNumberToObject(t, "vocab_rows", (double)c->vocab_rows);
	cJSON_AddNumberToObject(t, "hidden", (double)c->hidden);
	cJSON_AddNumberToObject(t, "layers", (double)c->layers);
	cJSON_AddNumberToObject(t, "intermediate", (double)c->ff);
	cJSON_AddNumberToObject(t, "q_width", (double)c->q_width);
	cJSON_AddNumberToObject(t, "kv_width", (double)c->kv_width);
	cJSON_AddBoolToObject(t, "bias", c->has_bias);
	cJSON_AddBoolToObject(t, "tied_output", c->tied);
	fields = cJSON_AddArrayToObject(r, "fields");
	repairs = cJSON_AddArrayToObject(r, "repairs");
	for (k = 0; k < MB_CFG_NKEYS; k++) {
		const struct mb_cfg_value *v = &c->v[k];
		cJSON *f;

		if (v->value == NULL)
			continue;
		f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "key", key_names[k]);
		cJSON_AddItemToObject(f, "value", cJSON_Duplicate(v->value, 1));
		cJSON_AddStringToObject(f, "source", mb_src_name(v->src));
		cJSON_AddStringToObject(f, "evidence", v->evidence);
		if (v->claimed != NULL)
			cJSON_AddItemToObject(f, "claimed",
					      cJSON_Duplicate(v->claimed, 1));
		cJSON_AddBoolToObject(f, "repaired", v->repaired);
		cJSON_AddItemToArray(fields, f);
		if (!v->repaired)
			continue;
		f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "key", key_names[k]);
		cJSON_AddItemToObject(f, "claimed", dup_or_null(v->claimed));
		cJSON_AddBoolToObject(f, "missing", v->claimed == NULL);
		cJSON_AddItemToObject(f, "actual", cJSON_Duplicate(v->value, 1));
		cJSON_AddStringToObject(f, "source", mb_src_name(v->src));
		cJSON_AddStringToObject(f, "evidence", v->evidence);
		cJSON_AddItemToArray(repairs, f);
	}
	dropped = cJSON_AddArrayToObject(r, "dropped_keys");
	if (c->config != NULL && !c->config_family_matches) {
		const cJSON *item;

		cJSON_ArrayForEach(item, c->config) {
			for (k = 0; k < MB_CFG_NKEYS; k++)
				if (c->v[k].value != NULL &&
				    strcmp(item->string, key_names[k]) == 0)
					break;
			if (k == MB_CFG_NKEYS)
				cJSON_AddItemToArray(dropped,
					cJSON_CreateString(item->string));
		}
	}
	w = cJSON_AddArrayToObject(r, "warnings");
	for (i = 0; i < c->nwarnings; i++)
		cJSON_AddItemToArray(w, cJSON_CreateString(c->warnings[i]));
	text = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	if (text == NULL)
		return MB_ENOMEM;
	rc = mb_buf_adds(b, text);
	free(text);
	return rc;
}

/* --- estimates --- */

/* Effective bits per weight of llama.cpp's quant mixes (the file size over
 * the parameter count, measured on Llama-class 7-8B models); the small
 * tensors kept at higher precision are inside these figures. */
static const struct mb_quant_type quants[] = {
	{ "Q2_K", 2.96, 10, 1 },	{ "Q3_K_S", 3.50, 11, 1 },
	{ "Q3_K_M", 3.91, 12, 1 },	{ "Q3_K_L", 4.27, 13, 1 },
	{ "Q4_0", 4.55, 2, 1 },		{ "Q4_K_S", 4.58, 14, 1 },
	{ "Q4_K_M", 4.89, 15, 1 },	{ "Q5_K_S", 5.54, 16, 0 },
	{ "Q5_K_M", 5.70, 17, 0 },	{ "Q6_K", 6.56, 18, 0 },
	{ "Q8_0", 8.50, 7, 0 },		{ "F16", 16.0, 1, 0 },
	{ "BF16", 16.0, 32, 0 },
	/* the i-quants: libllama refuses the 2-bit ones and IQ3_XXS without
	 * an importance matrix ("Missing importance matrix for tensor ...") */
	{ "IQ2_XXS", 2.06, 19, 2 },	{ "IQ2_XS", 2.31, 20, 2 },
	{ "IQ2_S", 2.50, 28, 2 },	{ "IQ3_XXS", 3.06, 23, 2 },
	{ "IQ3_S", 3.44, 26, 1 },	{ "IQ4_XS", 4.25, 30, 1 },
	{ "IQ4_NL", 4.50, 25, 1 },
};

#define NQUANTS (sizeof(quants) / sizeof(quants[0]))

size_t mb_quant_types(const struct mb_quant_type **types)
{
	*types = quants;
	return NQUANTS;
}

const struct mb_quant_type *mb_quant_find(const char *name)
{
	size_t i;

	for (i = 0; i < NQUANTS; i++)
		if (strcasecmp(name, quants[i].name) == 0)
			return &quants[i];
	return NULL;
}

/* 1 when the comma-separated list holds name as one of its items. */
static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p += len + (end != NULL);
	}
	return 0;
}

int mb_quant_list_parse(const char *in, char *out, size_t cap, char *err,
			size_t errcap)
{
	char valid[256] = "";
	const char *p = in;
	size_t i, o = 0, n = 0;

	for (i = 0; i < NQUANTS; i++)
		if (quants[i].bpw < 16)
			snprintf(valid + strlen(valid), sizeof(valid) - strlen(valid),
				 "%s%s", strlen(valid) ? ", " : "", quants[i].name);
	if (cap > 0)
		out[0] = '\0';
	while (*p != '\0') {
		const struct mb_quant_type *q;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[32];

		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(name)) {
			mb_seterr(err, errcap, "'%s' is not a list of quant types "
				  "(valid: %s)", in, valid);
			return MB_EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		q = mb_quant_find(name);
		if (q == NULL || q->bpw >= 16) {
			mb_seterr(err, errcap, "%s quant type '%s' (valid: %s)%s",
				  q ? "not a" : "unknown", name, valid,
				  q ? "; every job makes the float GGUF (--outtype "
				      "f16 or bf16) and pulls it back with "
				      "--pull-f16" : "");
			return MB_EINVAL;
		}
		/* once each */
		if (!in_list(out, q->name)) {
			int w = snprintf(out + o, cap - o, "%s%s", n ? "," : "",
					 q->name);

			if (w < 0 || (size_t)w >= cap - o) {
				mb_seterr(err, errcap, "too many quant types");
				return MB_ETOOBIG;
			}
			o += (size_t)w;
			n++;
		}
		p = end != NULL ? end + 1 : p + strlen(p);
	}
	if (n == 0) {
		mb_seterr(err, errcap, "no quant type given (valid: %s)", valid);
		return MB_EINVAL;
	}
	return 0;
}

void mb_run_ram_estimate(uint64_t file_bytes, uint64_t layers,
			 uint64_t kv_width, uint64_t vocab, uint64_t hidden,
			 uint64_t ff, struct mb_run_ram *out)
{
	out->weights = file_bytes;
	out->kv = 2 * layers * MB_RUN_CTX * kv_width * 2;
	/* llama.cpp reserves its compute buffer for a full batch: logits and
	 * activations of MB_RUN_UBATCH tokens (f32) and the attention mask
	 * over the context; plus 16 MiB for the libraries' code and heap.
	 * Fitted to the buffer sizes llama.cpp logs (phi4-tiny 17.5 MiB,
	 * llama-tiny 10.0 MiB, a Phi-4-shaped model 240 MiB) and to peak RSS
	 * measured by the smoke test (bench/smoke-memory.md). */
	out->compute = (uint64_t)MB_RUN_UBATCH * 4 * (vocab + hidden + ff) +
		       (uint64_t)MB_RUN_CTX * MB_RUN_UBATCH * 4 + (16u << 20);
	out->total = out->weights + out->kv + out->compute;
}

int mb_modelcfg_estimate(const struct mb_modelcfg *c,
			 const struct mb_st_model *m, const char *const *want,
			 uint64_t extra_download, struct mb_estimate *out)
{
	/* tokenizer strings, merges and the other metadata: about 24 bytes
	 * a vocab entry, measured on Phi-4 and Llama-3 GGUFs */
	uint64_t meta = c->vocab_rows * 24 + (1u << 20);
	uint64_t mat = 0, vec = 0, dflt_disk = 0;
	const struct mb_quant_type *q;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < m->ntensors; i++) {
		if (m->tensors[i].ndim >= 2)
			mat += m->tensors[i].nelem;
		else
			vec += m->tensors[i].nelem;
	}
	out->download = m->total_bytes + extra_download;
	out->f16 = mat * 2 + vec * 4 + meta + 32 * m->ntensors;
	for (i = 0; want ? want[i] != NULL : i < NQUANTS; i++) {
		struct mb_quant_estimate *e;
		struct mb_run_ram run;

		q = want ? mb_quant_find(want[i]) : &quants[i];
		if (q == NULL)
			return MB_EINVAL;
		if (out->nquants == sizeof(out->quants) / sizeof(out->quants[0]))
			return MB_ETOOBIG;
		e = &out->quants[out->nquants++];
		e->type = q->name;
		e->bytes = (uint64_t)((double)mat * q->bpw / 8) + vec * 4 + meta;
		/* what the smoke test will need to load it */
		mb_run_ram_estimate(e->bytes, c->layers, c->kv_width,
				    c->vocab_rows, c->hidden, c->ff, &run);
		e->ram = run.total;
		if (want != NULL)
			dflt_disk += e->bytes;
		else if (strcmp(q->name, "Q4_K_M") == 0)
			dflt_disk = e->bytes;
	}
	out->worker_disk = out->download + out->f16 + dflt_disk;
	/* 5% for the job's small files and the file system's own overhead */
	out->worker_disk += out->worker_disk / 20;
	return 0;
}
