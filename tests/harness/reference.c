/* reference: the plain f32 forward pass (see reference.h). */
#include "reference.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/safetensors.h"

/* config.json is a few KB; a megabyte is already absurd. */
#define REF_MAX_CONFIG (1u << 20)
/* Bounds on the config's sizes: well above any real model (Phi-4: hidden
 * 5120, ff 17920, 40 layers, 40 heads, vocab 100352), low enough that no
 * product of them overflows before the allocation checks. */
#define REF_MAX_DIM (1u << 17)
#define REF_MAX_LAYERS 1000u
#define REF_MAX_HEADS 4096u
#define REF_MAX_VOCAB (1u << 22)
/* Raw bytes read per pread: keeps the staging buffer small for any tensor. */
#define REF_READ_CHUNK (1u << 20)
/* lm_head rows converted to f32 at a time (Phi-4: 4096 * 5120 * 4 = 80 MB). */
#define REF_HEAD_ROWS 4096u
/* Longrope factors kept: one per rotary pair, head_dim up to 1024. */
#define REF_MAX_PAIRS 512u

struct ref_cfg {
	int fused;		/* model_type phi3: qkv_proj, gate_up_proj */
	int qkv_bias;		/* model_type qwen2: q/k/v_proj.bias */
	int qk_norm;		/* model_type qwen3: q_norm, k_norm per head */
	int qwen;		/* qwen2 or qwen3: use_sliding_window */
	size_t hidden, ff, layers, heads, kv_heads, head_dim, vocab;
	size_t rot_dim;		/* leading dimensions of a head rope turns */
	double eps, theta;
	/* Phi-3's longrope: per-pair frequency divisors, short ones up to
	 * the original context and long ones past it, and the factor cos
	 * and sin are scaled by */
	int longrope;
	size_t orig_ctx;
	double rope_attn;
	double short_f[REF_MAX_PAIRS], long_f[REF_MAX_PAIRS];
	int tied;
	size_t sliding;		/* 0: no sliding window */
	/* Gemma 3 (model_type gemma3_text): norms times (1 + w), four per
	 * layer; the embedding times embed_scale; scores times attn_scale
	 * (query_pre_attn_scalar^-0.5) and capped by attn_cap (0: not);
	 * logits capped by final_cap (0: not); GeGLU (tanh GELU) MLP;
	 * layers with swa[il] set attend to the last `window` positions
	 * and turn by theta_local, the others by theta with positions
	 * divided by rope_linear */
	int gemma;
	double embed_scale, attn_scale, attn_cap, final_cap;
	double theta_local, rope_linear;
	size_t window;
	unsigned char swa[REF_MAX_LAYERS];
};

struct ref_ctx {
	const char *dir;
	struct mb_st_model *m;
	int *fds;		/* per shard, -1 until opened */
	uint8_t *raw;		/* REF_READ_CHUNK bytes of staging */
	char *err;
	size_t errcap;
};

/* One layer's weights in f32, both layouts stored the Phi-3 way: the
 * fused tensors are read as they are, the Llama ones into the same rows,
 * so the forward pass below is one code path. */
struct ref_layer {
	float *attn_norm;	/* [H] */
	float *qkv;		/* [qd + 2 kvd][H]: q rows, k rows, v rows */
	float *qkv_b;		/* [qd + 2 kvd] or NULL: their biases */
	float *q_norm, *k_norm;	/* [hd] each, or NULL: per-head norms */
	float *o;		/* [H][qd] */
	float *attn_post;	/* [H] or NULL: Gemma 3's norm of o's */
	float *ffn_norm;	/* [H] */
	float *ffn_post;	/* [H] or NULL: Gemma 3's norm of the MLP's */
	float *gate_up;		/* [2 ff][H]: gate rows, then up rows */
	float *down;		/* [H][ff] */
};

static void ref_layer_release(struct ref_layer *l)
{
	free(l->attn_norm);
	free(l->qkv);
	free(l->o);
	free(l->ffn_norm);
	free(l->gate_up);
	free(l->down);
	free(l->qkv_b);
	free(l->q_norm);
	free(l->k_norm);
	free(l->attn_post);
	free(l->ffn_post);
	memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------------- config */

static const cJSON *cfg_item(const cJSON *c, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);

	return cJSON_IsNull(v) ? NULL : v;
}

/* A required positive integer in [1, max]. */
static int cfg_size(const cJSON *c, const char *key, size_t max, size_t *out,
		    char *err, size_t errcap)
{
	uint64_t v;
	int rc = mb_json_get_u64(c, key, max, &v);

	if (rc == MB_ENOENT) {
		snprintf(err, errcap, "config.json: missing '%s'", key);
		return MB_EJSON;
	}
	if (rc != 0 || v == 0) {
		snprintf(err, errcap, "config.json: '%s' is not an integer in "
			 "[1, %zu]", key, max);
		return MB_EJSON;
	}
	*out = (size_t)v;
	return 0;
}

/* An optional positive number; missing or null gives def. */
static int cfg_double(const cJSON *c, const char *key, double def, double *out,
		      char *err, size_t errcap)
{
	const cJSON *v = cfg_item(c, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
	    !(v->valuedouble > 0)) {
		snprintf(err, errcap, "config.json: '%s' is not a positive "
			 "number", key);
		return MB_EJSON;
	}
	*out = v->valuedouble;
	return 0;
}

/* An optional boolean; missing or null gives def. */
static int cfg_bool(const cJSON *c, const char *key, int def, int *out,
		    char *err, size_t errcap)
{
	const cJSON *v = cfg_item(c, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsBool(v)) {
		snprintf(err, errcap, "config.json: '%s' is not a boolean",
			 key);
		return MB_EJSON;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

/* One of longrope's factor lists: rot_dim / 2 positive numbers. */
static int cfg_factors(const cJSON *rs, const char *key, size_t n, double *out,
		       char *err, size_t errcap)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(rs, key), *e;
	size_t i = 0;

	if (!cJSON_IsArray(l) || (size_t)cJSON_GetArraySize(l) != n) {
		snprintf(err, errcap, "config.json: rope_scaling.%s is not a "
			 "list of %zu numbers", key, n);
		return MB_EJSON;
	}
	cJSON_ArrayForEach(e, l) {
		if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) ||
		    !(e->valuedouble > 0)) {
			snprintf(err, errcap, "config.json: rope_scaling.%s "
				 "holds a value that is not a positive number",
				 key);
			return MB_EJSON;
		}
		out[i++] = e->valuedouble;
	}
	return 0;
}

/* Phi-3's longrope, as transformers' _compute_longrope_parameters reads
 * it: factor = max_position_embeddings / original_max_position_embeddings,
 * attention_factor (when not given) sqrt(1 + ln(factor) / ln(original)),
 * the long factors only for sequences longer than the original context.
 * Any other scaling is refused. Needs rot_dim set. */
static int cfg_longrope(const cJSON *c, struct ref_cfg *cfg, char *err,
			size_t errcap)
{
	const cJSON *rs = cfg_item(c, "rope_scaling"), *type;
	double max_pos, orig, factor;
	int rc;

	type = cJSON_GetObjectItemCaseSensitive(rs, "type");
	if (!cJSON_IsString(type))
		type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
	if (!cfg->fused || !cJSON_IsString(type) ||
	    (strcmp(type->valuestring, "longrope") != 0 &&
	     strcmp(type->valuestring, "su") != 0)) {
		snprintf(err, errcap, "config.json: rope_scaling is not "
			 "supported (only null, or longrope for phi3)");
		return MB_EUNSUPPORTED;
	}
	if (cfg->rot_dim / 2 > REF_MAX_PAIRS) {
		snprintf(err, errcap, "config.json: %zu rotary pairs for "
			 "longrope, at most %u supported", cfg->rot_dim / 2,
			 REF_MAX_PAIRS);
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_factors(rs, "short_factor", cfg->rot_dim / 2,
			      cfg->short_f, err, errcap)) != 0 ||
	    (rc = cfg_factors(rs, "long_factor", cfg->rot_dim / 2,
			      cfg->long_f, err, errcap)) != 0 ||
	    (rc = cfg_double(c, "max_position_embeddings", 4096, &max_pos, err,
			     errcap)) != 0 ||
	    (rc = cfg_double(c, "original_max_position_embeddings", max_pos,
			     &orig, err, errcap)) != 0)
		return rc;
	factor = max_pos / orig;
	cfg->rope_attn = factor <= 1.0 ? 1.0
				       : sqrt(1 + log(factor) / log(orig));
	if ((rc = cfg_double(rs, "attention_factor", cfg->rope_attn,
			     &cfg->rope_attn, err, errcap)) != 0)
		return rc;
	cfg->orig_ctx = (size_t)orig;
	cfg->longrope = 1;
	return 0;
}

/* An optional number that may be null (then, or when missing, 0). */
static int cfg_cap(const cJSON *c, const char *key, double *out, char *err,
		   size_t errcap)
{
	return cfg_double(c, key, 0.0, out, err, errcap);
}

/* Gemma 3's rope for one kind of layer from rope_parameters (the form
 * transformers writes since it keeps one per layer type):
 * {"rope_type": "default" or "linear", "rope_theta": t, "factor": f}. */
static int cfg_gemma_rope_params(const cJSON *rp, const char *kind,
				 double *theta, double *factor, char *err,
				 size_t errcap)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(rp, kind), *type;
	char key[96];
	int rc;

	if (!cJSON_IsObject(p))
		return 0;
	snprintf(key, sizeof(key), "rope_parameters.%s", kind);
	type = cJSON_GetObjectItemCaseSensitive(p, "rope_type");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "default") != 0
	    && strcmp(type->valuestring, "linear") != 0) {
		snprintf(err, errcap, "config.json: %s.rope_type '%s' is not "
			 "supported (default, linear)", key, type->valuestring);
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_double(p, "rope_theta", *theta, theta, err,
			     errcap)) != 0)
		return rc;
	if (cJSON_IsString(type) && strcmp(type->valuestring, "linear") == 0 &&
	    (rc = cfg_double(p, "factor", 1.0, factor, err, errcap)) != 0)
		return rc;
	return 0;
}

/* The Gemma 3 specifics, with Gemma3TextConfig's defaults: which layers
 * slide (layer_types, or every sliding_window_pattern-th layer global),
 * the window, both rope bases and the global layers' linear scaling, the
 * attention scale, the soft caps and the activation. */
static int cfg_gemma(const cJSON *c, struct ref_cfg *cfg, char *err,
		     size_t errcap)
{
	const cJSON *lt = cfg_item(c, "layer_types"), *rs, *rp, *e;
	const char *act = "gelu_pytorch_tanh";
	double scalar, local_factor = 1.0;
	uint64_t u;
	size_t il, nswa = 0;
	int rc, bidi;

	if (mb_json_get_str(c, "hidden_activation", 64, &act) != 0)
		(void)mb_json_get_str(c, "hidden_act", 64, &act);
	if (strcmp(act, "gelu_pytorch_tanh") != 0) {
		snprintf(err, errcap, "config.json: hidden_activation '%s' is "
			 "not supported (gelu_pytorch_tanh)", act);
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_bool(c, "use_bidirectional_attention", 0, &bidi, err,
			   errcap)) != 0)
		return rc;
	if (bidi) {
		snprintf(err, errcap, "config.json: "
			 "use_bidirectional_attention is not supported");
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_double(c, "query_pre_attn_scalar", 256.0, &scalar, err,
			     errcap)) != 0 ||
	    (rc = cfg_cap(c, "attn_logit_softcapping", &cfg->attn_cap, err,
			  errcap)) != 0 ||
	    (rc = cfg_cap(c, "final_logit_softcapping", &cfg->final_cap, err,
			  errcap)) != 0 ||
	    (rc = cfg_double(c, "rope_local_base_freq", 10000.0,
			     &cfg->theta_local, err, errcap)) != 0)
		return rc;
	cfg->attn_scale = 1.0 / sqrt(scalar);
	/* sqrt(hidden_size) as a float, what transformers multiplies by in
	 * f32 (in bf16 it rounds it to bf16 first: 1152 gives 34.0, not
	 * 33.94; llama.cpp takes sqrtf(n_embd)) */
	cfg->embed_scale = (double)(float)sqrt((double)cfg->hidden);

	/* which layers slide: layer_types when given (transformers since
	 * 4.53 writes it), else every pattern-th layer is global */
	if (lt != NULL) {
		if (!cJSON_IsArray(lt) ||
		    (size_t)cJSON_GetArraySize(lt) != cfg->layers) {
			snprintf(err, errcap, "config.json: layer_types is not "
				 "a list of %zu strings", cfg->layers);
			return MB_EJSON;
		}
		il = 0;
		cJSON_ArrayForEach(e, lt) {
			if (cJSON_IsString(e) && strcmp(e->valuestring,
					"sliding_attention") == 0)
				cfg->swa[il] = 1;
			else if (!cJSON_IsString(e) || strcmp(e->valuestring,
					"full_attention") != 0) {
				snprintf(err, errcap, "config.json: layer_types"
					 "[%zu] is neither \"sliding_attention"
					 "\" nor \"full_attention\"", il);
				return MB_EJSON;
			}
			il++;
		}
	} else {
		const char *key = cfg_item(c, "sliding_window_pattern") ?
			"sliding_window_pattern" : "_sliding_window_pattern";

		u = 6;
		if (cfg_item(c, key) != NULL &&
		    (mb_json_get_u64(c, key, REF_MAX_LAYERS, &u) != 0 ||
		     u == 0)) {
			snprintf(err, errcap, "config.json: '%s' is not an "
				 "integer in [1, %u]", key, REF_MAX_LAYERS);
			return MB_EJSON;
		}
		for (il = 0; il < cfg->layers; il++)
			cfg->swa[il] = (il + 1) % u != 0;
	}
	for (il = 0; il < cfg->layers; il++)
		nswa += cfg->swa[il];
	if (nswa > 0) {
		u = 4096;
		if (cfg_item(c, "sliding_window") != NULL &&
		    (mb_json_get_u64(c, "sliding_window", UINT32_MAX, &u) != 0
		     || u == 0)) {
			snprintf(err, errcap, "config.json: 'sliding_window' "
				 "is not a positive integer");
			return MB_EJSON;
		}
		cfg->window = (size_t)u;
	}

	/* rope: rope_scaling (linear only) applies to the global layers;
	 * rope_parameters, where given, per layer type */
	cfg->rope_linear = 1.0;
	rs = cfg_item(c, "rope_scaling");
	if (rs != NULL) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(
			rs, "rope_type");

		if (!cJSON_IsString(type))
			type = cJSON_GetObjectItemCaseSensitive(rs, "type");
		if (!cJSON_IsString(type) ||
		    (strcmp(type->valuestring, "linear") != 0 &&
		     strcmp(type->valuestring, "default") != 0)) {
			snprintf(err, errcap, "config.json: rope_scaling is "
				 "not supported (only null or linear for "
				 "gemma3_text)");
			return MB_EUNSUPPORTED;
		}
		if (strcmp(type->valuestring, "linear") == 0 &&
		    (rc = cfg_double(rs, "factor", 1.0, &cfg->rope_linear,
				     err, errcap)) != 0)
			return rc;
	}
	rp = cfg_item(c, "rope_parameters");
	if (rp != NULL) {
		if (!cJSON_IsObject(rp)) {
			snprintf(err, errcap, "config.json: rope_parameters "
				 "is not an object");
			return MB_EJSON;
		}
		if ((rc = cfg_gemma_rope_params(rp, "full_attention",
						&cfg->theta, &cfg->rope_linear,
						err, errcap)) != 0 ||
		    (rc = cfg_gemma_rope_params(rp, "sliding_attention",
						&cfg->theta_local,
						&local_factor, err,
						errcap)) != 0)
			return rc;
		if (local_factor != 1.0) {
			snprintf(err, errcap, "config.json: rope scaling of "
				 "the sliding layers is not supported");
			return MB_EUNSUPPORTED;
		}
	}
	if (cfg->rot_dim / 2 > REF_MAX_PAIRS) {
		snprintf(err, errcap, "config.json: %zu rotary pairs, at most "
			 "%u supported", cfg->rot_dim / 2, REF_MAX_PAIRS);
		return MB_EUNSUPPORTED;
	}
	return 0;
}

/* Reads what the forward pass needs from the parsed config, with the
 * defaults of transformers' Phi3Config, LlamaConfig and Gemma3TextConfig
 * where a key may be left out. */
static int cfg_parse(const cJSON *c, struct ref_cfg *cfg, char *err,
		     size_t errcap)
{
	const char *type, *act;
	const cJSON *v;
	double factor;
	int rc, bias;

	memset(cfg, 0, sizeof(*cfg));
	if (!cJSON_IsObject(c)) {
		snprintf(err, errcap, "config.json: not a JSON object");
		return MB_EJSON;
	}
	if (mb_json_get_str(c, "model_type", 64, &type) != 0) {
		snprintf(err, errcap, "config.json: no string 'model_type'");
		return MB_EJSON;
	}
	if (strcmp(type, "phi3") == 0) {
		cfg->fused = 1;
	} else if (strcmp(type, "qwen2") == 0) {
		/* Qwen2Attention: q/k/v with bias, o without, always */
		cfg->qkv_bias = 1;
		cfg->qwen = 1;
	} else if (strcmp(type, "qwen3") == 0) {
		/* Qwen3Attention: RMSNorm over each head of q and of k,
		 * before rope */
		cfg->qk_norm = 1;
		cfg->qwen = 1;
	} else if (strcmp(type, "gemma3_text") == 0) {
		/* Gemma3ForCausalLM: per-head q and k norms as Qwen3's, and
		 * the rest in cfg_gemma */
		cfg->gemma = 1;
		cfg->qk_norm = 1;
	} else if (strcmp(type, "llama") != 0) {
		snprintf(err, errcap, "config.json: model_type '%s' is not "
			 "supported (phi3, llama, qwen2, qwen3, gemma3_text)",
			 type);
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_size(c, "hidden_size", REF_MAX_DIM, &cfg->hidden, err,
			   errcap)) != 0 ||
	    (rc = cfg_size(c, "intermediate_size", REF_MAX_DIM, &cfg->ff, err,
			   errcap)) != 0 ||
	    (rc = cfg_size(c, "num_hidden_layers", REF_MAX_LAYERS,
			   &cfg->layers, err, errcap)) != 0 ||
	    (rc = cfg_size(c, "num_attention_heads", REF_MAX_HEADS,
			   &cfg->heads, err, errcap)) != 0 ||
	    (rc = cfg_size(c, "vocab_size", REF_MAX_VOCAB, &cfg->vocab, err,
			   errcap)) != 0)
		return rc;
	/* Gemma3TextConfig's default is 4, the others' the head count */
	cfg->kv_heads = cfg->gemma ? 4 : cfg->heads;
	if (cfg_item(c, "num_key_value_heads") != NULL &&
	    (rc = cfg_size(c, "num_key_value_heads", REF_MAX_HEADS,
			   &cfg->kv_heads, err, errcap)) != 0)
		return rc;
	if (cfg->heads % cfg->kv_heads != 0) {
		snprintf(err, errcap, "config.json: num_attention_heads %zu "
			 "is not a multiple of num_key_value_heads %zu",
			 cfg->heads, cfg->kv_heads);
		return MB_EJSON;
	}
	if (cfg_item(c, "head_dim") != NULL) {
		if ((rc = cfg_size(c, "head_dim", REF_MAX_HEADS,
				   &cfg->head_dim, err, errcap)) != 0)
			return rc;
	} else if (cfg->gemma) {
		cfg->head_dim = 256;
	} else if (cfg->hidden % cfg->heads != 0) {
		snprintf(err, errcap, "config.json: hidden_size %zu is not a "
			 "multiple of num_attention_heads %zu", cfg->hidden,
			 cfg->heads);
		return MB_EJSON;
	} else {
		cfg->head_dim = cfg->hidden / cfg->heads;
	}
	/* transformers' defaults: Phi3Config 1e-5, LlamaConfig,
	 * Qwen2Config and Qwen3Config 1e-6. */
	if ((rc = cfg_double(c, "rms_norm_eps", cfg->fused ? 1e-5 : 1e-6,
			     &cfg->eps, err, errcap)) != 0 ||
	    (rc = cfg_double(c, "rope_theta", cfg->gemma ? 1e6 : 10000.0,
			     &cfg->theta, err, errcap)) != 0 ||
	    (rc = cfg_double(c, "partial_rotary_factor", 1.0, &factor, err,
			     errcap)) != 0 ||
	    (rc = cfg_bool(c, "tie_word_embeddings", cfg->gemma, &cfg->tied,
			   err, errcap)) != 0)
		return rc;
	if (factor > 1.0) {
		snprintf(err, errcap, "config.json: partial_rotary_factor %g "
			 "is above 1", factor);
		return MB_EJSON;
	}
	if (factor != 1.0 && !cfg->fused) {
		snprintf(err, errcap, "config.json: partial_rotary_factor is "
			 "not supported for %s", type);
		return MB_EUNSUPPORTED;
	}
	/* int(head_dim * partial_rotary_factor), as transformers does */
	cfg->rot_dim = (size_t)((double)cfg->head_dim * factor);
	if (cfg->rot_dim == 0 || cfg->rot_dim % 2 != 0) {
		snprintf(err, errcap, "config.json: rotary dimension %zu "
			 "(head_dim %zu * partial_rotary_factor %g) is not a "
			 "positive even number", cfg->rot_dim, cfg->head_dim,
			 factor);
		return MB_EJSON;
	}
	if (cfg->gemma) {
		if ((rc = cfg_gemma(c, cfg, err, errcap)) != 0)
			return rc;
	} else if (cfg_item(c, "rope_scaling") != NULL &&
		   (rc = cfg_longrope(c, cfg, err, errcap)) != 0) {
		return rc;
	}
	if (!cfg->gemma && mb_json_get_str(c, "hidden_act", 64, &act) == 0 &&
	    strcmp(act, "silu") != 0) {
		snprintf(err, errcap, "config.json: hidden_act '%s' is not "
			 "supported (silu)", act);
		return MB_EUNSUPPORTED;
	}
	if ((rc = cfg_bool(c, "attention_bias", 0, &bias, err, errcap)) != 0)
		return rc;
	if (!bias && (rc = cfg_bool(c, "mlp_bias", 0, &bias, err,
				    errcap)) != 0)
		return rc;
	if (bias) {
		snprintf(err, errcap, "config.json: biases are not supported");
		return MB_EUNSUPPORTED;
	}
	/* Qwen2 and Qwen3 slide only with use_sliding_window, which is
	 * not done */
	if (cfg->qwen) {
		int sliding;

		if ((rc = cfg_bool(c, "use_sliding_window", 0, &sliding, err,
				   errcap)) != 0)
			return rc;
		if (sliding) {
			snprintf(err, errcap, "config.json: use_sliding_window "
				 "is not supported");
			return MB_EUNSUPPORTED;
		}
	}
	/* LlamaConfig has no sliding window; transformers ignores the key */
	v = cfg_item(c, "sliding_window");
	if (cfg->fused && v != NULL) {
		uint64_t sw;

		if (mb_json_get_u64(c, "sliding_window", UINT32_MAX, &sw) != 0
		    || sw == 0) {
			snprintf(err, errcap, "config.json: 'sliding_window' "
				 "is not a positive integer or null");
			return MB_EJSON;
		}
		cfg->sliding = (size_t)sw;
	}
	return 0;
}

static int cfg_load(const char *dir, struct ref_cfg *cfg, char *err,
		    size_t errcap)
{
	char path[4096];
	char *text = NULL;
	cJSON *doc = NULL;
	size_t len;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", dir) >=
	    sizeof(path)) {
		snprintf(err, errcap, "directory name too long");
		return MB_EINVAL;
	}
	rc = mb_read_file(path, REF_MAX_CONFIG, &text, &len);
	if (rc != 0) {
		snprintf(err, errcap, "cannot read '%s': %s", path,
			 mb_strerror(rc));
		return rc;
	}
	doc = mb_json_parse(text, len);
	if (doc == NULL) {
		snprintf(err, errcap, "config.json: malformed JSON");
		rc = MB_EJSON;
	} else {
		rc = cfg_parse(doc, cfg, err, errcap);
	}
	cJSON_Delete(doc);
	free(text);
	return rc;
}

/* ---------------------------------------------------------------- tensors */

static float ref_bf16(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* IEEE binary16 by its definition: (-1)^s * 2^(e-15) * 1.m, subnormals
 * 2^-14 * 0.m, e = 31 infinity or NaN. */
static float ref_f16(uint16_t h)
{
	int sign = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
	double v;

	if (e == 0)
		v = ldexp((double)m, -24);
	else if (e == 31)
		v = m == 0 ? INFINITY : NAN;
	else
		v = ldexp((double)(m | 0x400), e - 25);
	return (float)(sign ? -v : v);
}

static float ref_f32(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
		     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* Finds name and checks its shape: [rows, cols], or [rows] when cols is
 * 0; and that its dtype is one this file decodes. */
static int ref_find(struct ref_ctx *c, const char *name, size_t rows,
		    size_t cols, const struct mb_st_tensor **out)
{
	const struct mb_st_tensor *t = mb_st_model_find(c->m, name);
	int ok;

	if (t == NULL) {
		snprintf(c->err, c->errcap, "missing tensor '%s'", name);
		return MB_EFORMAT;
	}
	if (cols == 0)
		ok = t->ndim == 1 && t->shape[0] == rows;
	else
		ok = t->ndim == 2 && t->shape[0] == rows &&
		     t->shape[1] == cols;
	if (!ok) {
		char got[128] = "";
		size_t n = 0;
		int i;

		for (i = 0; i < t->ndim && n < sizeof(got); i++)
			n += (size_t)snprintf(got + n, sizeof(got) - n,
					      "%s%llu", i ? ", " : "",
					      (unsigned long long)t->shape[i]);
		if (cols == 0)
			snprintf(c->err, c->errcap, "tensor '%s': shape [%s], "
				 "expected [%zu]", name, got, rows);
		else
			snprintf(c->err, c->errcap, "tensor '%s': shape [%s], "
				 "expected [%zu, %zu]", name, got, rows, cols);
		return MB_EFORMAT;
	}
	if (t->dtype != MB_ST_F32 && t->dtype != MB_ST_F16 &&
	    t->dtype != MB_ST_BF16) {
		snprintf(c->err, c->errcap, "tensor '%s': dtype %s is not "
			 "supported (F32, F16, BF16)", name,
			 mb_st_dtype_name(t->dtype));
		return MB_EUNSUPPORTED;
	}
	*out = t;
	return 0;
}

/* Reads elements [first, first + n) of t as f32 into out. */
static int ref_read(struct ref_ctx *c, const struct mb_st_tensor *t,
		    size_t first, size_t n, float *out)
{
	uint8_t *raw = c->raw;
	size_t es = mb_st_dtype_size(t->dtype), done = 0, got, k, i;
	uint64_t off;
	int *fd = &c->fds[t->shard];
	int rc;

	if (first > t->nelem || n > t->nelem - first) {
		snprintf(c->err, c->errcap, "tensor '%s': elements [%zu, +%zu) "
			 "out of range", t->name, first, n);
		return MB_EINTERNAL;
	}
	if (*fd < 0) {
		char path[4096];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->dir,
				     c->m->shards[t->shard]) >= sizeof(path)) {
			snprintf(c->err, c->errcap, "path too long");
			return MB_EINVAL;
		}
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			rc = mb_err_from_errno(errno);
			snprintf(c->err, c->errcap, "cannot open '%s': %s",
				 path, mb_strerror(rc));
			return rc;
		}
	}
	off = c->m->files[t->shard]->data_start + t->begin + first * es;
	while (done < n) {
		k = n - done;
		if (k > REF_READ_CHUNK / es)
			k = REF_READ_CHUNK / es;
		got = 0;
		rc = mb_pread_full(*fd, raw, k * es, off + done * es, &got);
		if (rc != 0 || got != k * es) {
			snprintf(c->err, c->errcap, "cannot read tensor '%s' "
				 "from '%s': %s", t->name,
				 c->m->shards[t->shard], rc != 0 ?
				 mb_strerror(rc) : "file ends early");
			return rc != 0 ? rc : MB_EIO;
		}
		for (i = 0; i < k; i++) {
			const uint8_t *p = raw + i * es;

			if (t->dtype == MB_ST_F32)
				out[done + i] = ref_f32(p);
			else if (t->dtype == MB_ST_BF16)
				out[done + i] = ref_bf16((uint16_t)(p[0] |
								    p[1] << 8));
			else
				out[done + i] = ref_f16((uint16_t)(p[0] |
								   p[1] << 8));
		}
		done += k;
	}
	return 0;
}

/* Reads the whole tensor name, of shape [rows, cols] ([rows] when cols is
 * 0), into dst. */
static int ref_load_into(struct ref_ctx *c, const char *name, size_t rows,
			 size_t cols, float *dst)
{
	const struct mb_st_tensor *t;
	int rc = ref_find(c, name, rows, cols, &t);

	return rc != 0 ? rc : ref_read(c, t, 0, rows * (cols ? cols : 1), dst);
}

/* Allocates rows * cols floats (checking the product) or says why not. */
static float *ref_alloc(struct ref_ctx *c, size_t rows, size_t cols)
{
	float *p;

	if (cols != 0 && rows > SIZE_MAX / sizeof(float) / cols) {
		snprintf(c->err, c->errcap, "%zu x %zu floats overflow", rows,
			 cols);
		return NULL;
	}
	p = mb_malloc(rows * cols * sizeof(float) + 1);
	if (p == NULL)
		snprintf(c->err, c->errcap, "out of memory for %zu x %zu "
			 "floats", rows, cols);
	return p;
}

/* Reads a norm weight of n values; Gemma's are stored as w - 1 (its
 * RMSNorm multiplies by 1 + w, added in f32 as transformers does). */
static int ref_load_norm(struct ref_ctx *c, const struct ref_cfg *g,
			 const char *name, size_t n, float *dst)
{
	size_t i;
	int rc = ref_load_into(c, name, n, 0, dst);

	if (rc == 0 && g->gemma)
		for (i = 0; i < n; i++)
			dst[i] = 1.0f + dst[i];
	return rc;
}

static int ref_load_layer(struct ref_ctx *c, const struct ref_cfg *g,
			  size_t il, struct ref_layer *l)
{
	size_t H = g->hidden, qd = g->heads * g->head_dim;
	size_t kvd = g->kv_heads * g->head_dim, ff = g->ff;
	char name[MB_ST_MAX_NAME];
	int rc;

#define NAME(suffix) \
	(snprintf(name, sizeof(name), "model.layers.%zu." suffix, il), name)
	memset(l, 0, sizeof(*l));
	if ((l->attn_norm = ref_alloc(c, H, 1)) == NULL ||
	    (l->qkv = ref_alloc(c, qd + 2 * kvd, H)) == NULL ||
	    (l->o = ref_alloc(c, H, qd)) == NULL ||
	    (l->ffn_norm = ref_alloc(c, H, 1)) == NULL ||
	    (l->gate_up = ref_alloc(c, 2 * ff, H)) == NULL ||
	    (l->down = ref_alloc(c, H, ff)) == NULL)
		return MB_ENOMEM;
	if ((rc = ref_load_norm(c, g, NAME("input_layernorm.weight"), H,
				l->attn_norm)) != 0 ||
	    (rc = ref_load_into(c, NAME("self_attn.o_proj.weight"), H, qd,
				l->o)) != 0 ||
	    (rc = ref_load_into(c, NAME("mlp.down_proj.weight"), H, ff,
				l->down)) != 0)
		return rc;
	/* Gemma's post_attention_layernorm norms the attention's output;
	 * the MLP's input norm is pre_feedforward_layernorm. Elsewhere
	 * post_attention_layernorm is the MLP's input norm. */
	if (g->gemma) {
		if ((l->attn_post = ref_alloc(c, H, 1)) == NULL ||
		    (l->ffn_post = ref_alloc(c, H, 1)) == NULL)
			return MB_ENOMEM;
		if ((rc = ref_load_norm(c, g, NAME(
				"post_attention_layernorm.weight"), H,
				l->attn_post)) != 0 ||
		    (rc = ref_load_norm(c, g, NAME(
				"pre_feedforward_layernorm.weight"), H,
				l->ffn_norm)) != 0 ||
		    (rc = ref_load_norm(c, g, NAME(
				"post_feedforward_layernorm.weight"), H,
				l->ffn_post)) != 0)
			return rc;
	} else if ((rc = ref_load_into(c, NAME(
				"post_attention_layernorm.weight"), H, 0,
				l->ffn_norm)) != 0) {
		return rc;
	}
	if (g->fused) {
		if ((rc = ref_load_into(c, NAME("self_attn.qkv_proj.weight"),
					qd + 2 * kvd, H, l->qkv)) != 0 ||
		    (rc = ref_load_into(c, NAME("mlp.gate_up_proj.weight"),
					2 * ff, H, l->gate_up)) != 0)
			return rc;
	} else {
		if (g->qkv_bias &&
		    ((l->qkv_b = ref_alloc(c, qd + 2 * kvd, 1)) == NULL))
			return MB_ENOMEM;
		if (g->qkv_bias &&
		    ((rc = ref_load_into(c, NAME("self_attn.q_proj.bias"), qd, 0,
					 l->qkv_b)) != 0 ||
		     (rc = ref_load_into(c, NAME("self_attn.k_proj.bias"), kvd, 0,
					 l->qkv_b + qd)) != 0 ||
		     (rc = ref_load_into(c, NAME("self_attn.v_proj.bias"), kvd, 0,
					 l->qkv_b + qd + kvd)) != 0))
			return rc;
		if (g->qk_norm &&
		    ((l->q_norm = ref_alloc(c, g->head_dim, 1)) == NULL ||
		     (l->k_norm = ref_alloc(c, g->head_dim, 1)) == NULL))
			return MB_ENOMEM;
		if (g->qk_norm &&
		    ((rc = ref_load_norm(c, g, NAME("self_attn.q_norm.weight"),
					 g->head_dim, l->q_norm)) != 0 ||
		     (rc = ref_load_norm(c, g, NAME("self_attn.k_norm.weight"),
					 g->head_dim, l->k_norm)) != 0))
			return rc;
		if ((rc = ref_load_into(c, NAME("self_attn.q_proj.weight"), qd,
					H, l->qkv)) != 0 ||
		    (rc = ref_load_into(c, NAME("self_attn.k_proj.weight"), kvd,
					H, l->qkv + qd * H)) != 0 ||
		    (rc = ref_load_into(c, NAME("self_attn.v_proj.weight"), kvd,
					H, l->qkv + (qd + kvd) * H)) != 0 ||
		    (rc = ref_load_into(c, NAME("mlp.gate_proj.weight"), ff, H,
					l->gate_up)) != 0 ||
		    (rc = ref_load_into(c, NAME("mlp.up_proj.weight"), ff, H,
					l->gate_up + ff * H)) != 0)
			return rc;
	}
#undef NAME
	return 0;
}

/* ---------------------------------------------------------------- math */

static double ref_dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += (double)a[i] * (double)b[i];
	return s;
}

/* y[t][o] = sum_i x[t][i] * w[o][i]: nn.Linear without bias, x [n][in],
 * w [out][in], y [n][out]. */
static void ref_linear(const float *x, size_t n, size_t in, const float *w,
		       size_t out, float *y)
{
	size_t o, t;

	for (o = 0; o < out; o++)
		for (t = 0; t < n; t++)
			y[t * out + o] = (float)ref_dot(x + t * in,
							w + o * in, in);
}

/* Phi3RMSNorm / LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)). */
static void ref_rmsnorm(const float *x, size_t n, size_t dim, const float *w,
			double eps, float *y)
{
	size_t t, i;

	for (t = 0; t < n; t++) {
		const float *xr = x + t * dim;
		double ms = ref_dot(xr, xr, dim) / (double)dim;
		float r = (float)(1.0 / sqrt(ms + eps));

		for (i = 0; i < dim; i++)
			y[t * dim + i] = w[i] * (xr[i] * r);
	}
}

/* Rope in transformers' rotate_half form on nh heads of hd values at the
 * start of each of the n rows (row stride `stride`): for i < rot/2, pair
 * (i, i + rot/2) turns by pos * theta^(-2i/rot) / ext[i] (ext NULL: 1);
 * cos and sin are scaled by mscale; values past rot stay. */
static void ref_rope(float *x, size_t n, size_t stride, size_t nh, size_t hd,
		     size_t rot, double theta, const double *ext,
		     double mscale)
{
	size_t t, h, i, half = rot / 2;

	for (t = 0; t < n; t++) {
		for (i = 0; i < half; i++) {
			/* inv_freq = 1 / (ext * theta^(2i/rot)) and
			 * pos * inv_freq are f32 in transformers; cos and
			 * sin of that, times the attention factor */
			float inv = (float)(1.0 / ((ext ? ext[i] : 1.0) *
						   pow(theta, (double)(2 * i) /
								(double)rot)));
			float ang = (float)t * inv;
			float cs = (float)(cos((double)ang) * mscale);
			float sn = (float)(sin((double)ang) * mscale);

			for (h = 0; h < nh; h++) {
				float *p = x + t * stride + h * hd;
				float a = p[i], b = p[i + half];

				p[i] = a * cs - b * sn;
				p[i + half] = b * cs + a * sn;
			}
		}
	}
}

/* Causal softmax attention. qkv rows: [q heads | k heads | v heads];
 * out [n][heads * hd]; scores is n doubles of scratch. Scores are q.k
 * times scale, then (cap > 0) cap * tanh(score / cap); window > 0 lets
 * position t see only t - window + 1 .. t (transformers' sliding mask:
 * kv > q - window; llama.cpp's: masked when q - kv >= n_swa). */
static void ref_attention(const struct ref_cfg *g, const float *qkv, size_t n,
			  double scale, double cap, size_t window, float *out,
			  double *scores)
{
	size_t hd = g->head_dim, qd = g->heads * hd, kvd = g->kv_heads * hd;
	size_t stride = qd + 2 * kvd, group = g->heads / g->kv_heads;
	size_t t, h, j, d, j0;

	for (t = 0; t < n; t++) {
		j0 = window > 0 && t + 1 > window ? t + 1 - window : 0;
		for (h = 0; h < g->heads; h++) {
			const float *q = qkv + t * stride + h * hd;
			size_t kvh = h / group;
			double mx = -INFINITY, sum = 0;

			for (j = j0; j <= t; j++) {
				const float *k = qkv + j * stride + qd +
						 kvh * hd;

				scores[j] = (double)(float)(ref_dot(q, k, hd) *
							    scale);
				if (cap > 0)
					scores[j] = (double)(float)(cap *
						tanh(scores[j] / cap));
				if (scores[j] > mx)
					mx = scores[j];
			}
			for (j = j0; j <= t; j++) {
				scores[j] = exp(scores[j] - mx);
				sum += scores[j];
			}
			for (d = 0; d < hd; d++) {
				double acc = 0;

				for (j = j0; j <= t; j++)
					acc += scores[j] *
					       qkv[j * stride + qd + kvd +
						   kvh * hd + d];
				out[t * qd + h * hd + d] = (float)(acc / sum);
			}
		}
	}
}

static float ref_silu(float x)
{
	return (float)((double)x / (1.0 + exp(-(double)x)));
}

/* gelu_pytorch_tanh: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static float ref_gelu_tanh(float x)
{
	double v = (double)x;

	/* 0.7978845608028654 = sqrt(2 / pi) */
	return (float)(0.5 * v * (1.0 + tanh(0.7978845608028654 *
					     (v + 0.044715 * v * v * v))));
}

/* ---------------------------------------------------------------- forward */

/* The decoder layers and the final norm on x [n][H], which ends normed. */
static int ref_layers(struct ref_ctx *c, const struct ref_cfg *g, size_t n,
		      float *x)
{
	size_t H = g->hidden, ff = g->ff, hd = g->head_dim;
	size_t qd = g->heads * hd, kvd = g->kv_heads * hd, il, t, i;
	struct ref_layer l = { 0 };
	float *xn, *qkv, *att, *gu, *act, *res, *fnorm = NULL;
	double *scores;
	/* longrope: the long factors only past the original context */
	const double *ext = !g->longrope ? NULL
			    : n > g->orig_ctx ? g->long_f : g->short_f;
	double mscale = g->longrope ? g->rope_attn : 1.0;
	/* Gemma 3's linear scaling: every pair's positions divided */
	double lin[REF_MAX_PAIRS];
	int rc = MB_ENOMEM;

	xn = ref_alloc(c, n, H);
	qkv = ref_alloc(c, n, qd + 2 * kvd);
	att = ref_alloc(c, n, qd);
	gu = ref_alloc(c, n, 2 * ff);
	act = ref_alloc(c, n, ff);
	res = ref_alloc(c, n, H);
	scores = mb_malloc(n * sizeof(double));
	if (xn == NULL || qkv == NULL || att == NULL || gu == NULL ||
	    act == NULL || res == NULL || scores == NULL) {
		snprintf(c->err, c->errcap, "out of memory for activations");
		goto out;
	}
	for (i = 0; i < REF_MAX_PAIRS; i++)
		lin[i] = g->rope_linear;
	for (il = 0; il < g->layers; il++) {
		double theta = g->theta, scale = 1.0 / sqrt((double)hd);
		const double *lext = ext;
		size_t window = 0;

		if (g->gemma) {
			scale = g->attn_scale;
			if (g->swa[il]) {
				theta = g->theta_local;
				window = g->window;
			} else if (g->rope_linear != 1.0) {
				lext = lin;
			}
		}
		if ((rc = ref_load_layer(c, g, il, &l)) != 0)
			goto out;
		/* attention block */
		ref_rmsnorm(x, n, H, l.attn_norm, g->eps, xn);
		ref_linear(xn, n, H, l.qkv, qd + 2 * kvd, qkv);
		if (l.qkv_b != NULL)
			for (t = 0; t < n; t++)
				for (i = 0; i < qd + 2 * kvd; i++)
					qkv[t * (qd + 2 * kvd) + i] += l.qkv_b[i];
		/* Qwen3: each head of q and of k RMS-normed on its own */
		if (l.q_norm != NULL)
			for (t = 0; t < n; t++)
				for (i = 0; i < g->heads + g->kv_heads; i++) {
					float *hp = qkv + t * (qd + 2 * kvd) +
						    i * hd;

					ref_rmsnorm(hp, 1, hd, i < g->heads
						    ? l.q_norm : l.k_norm,
						    g->eps, hp);
				}
		ref_rope(qkv, n, qd + 2 * kvd, g->heads, hd, g->rot_dim,
			 theta, lext, mscale);
		ref_rope(qkv + qd, n, qd + 2 * kvd, g->kv_heads, hd,
			 g->rot_dim, theta, lext, mscale);
		ref_attention(g, qkv, n, scale, g->attn_cap, window, att,
			      scores);
		ref_linear(att, n, qd, l.o, H, res);
		if (l.attn_post != NULL)
			ref_rmsnorm(res, n, H, l.attn_post, g->eps, res);
		for (i = 0; i < n * H; i++)
			x[i] += res[i];
		/* MLP block: down(act(gate) * up), act silu or (Gemma)
		 * tanh GELU */
		ref_rmsnorm(x, n, H, l.ffn_norm, g->eps, xn);
		ref_linear(xn, n, H, l.gate_up, 2 * ff, gu);
		for (t = 0; t < n; t++)
			for (i = 0; i < ff; i++) {
				float gt = gu[t * 2 * ff + i];

				act[t * ff + i] = gu[t * 2 * ff + ff + i] *
					(g->gemma ? ref_gelu_tanh(gt) :
						    ref_silu(gt));
			}
		ref_linear(act, n, ff, l.down, H, res);
		if (l.ffn_post != NULL)
			ref_rmsnorm(res, n, H, l.ffn_post, g->eps, res);
		for (i = 0; i < n * H; i++)
			x[i] += res[i];
		ref_layer_release(&l);
	}
	rc = MB_ENOMEM;
	if ((fnorm = ref_alloc(c, H, 1)) == NULL)
		goto out;
	if ((rc = ref_load_norm(c, g, "model.norm.weight", H, fnorm)) != 0)
		goto out;
	ref_rmsnorm(x, n, H, fnorm, g->eps, xn);
	memcpy(x, xn, n * H * sizeof(float));
	rc = 0;
out:
	ref_layer_release(&l);
	free(fnorm);
	free(xn);
	free(qkv);
	free(att);
	free(gu);
	free(act);
	free(res);
	free(scores);
	return rc;
}

/* logits [n][V] = x [n][H] times the output matrix, REF_HEAD_ROWS rows of
 * it at a time. */
static int ref_head(struct ref_ctx *c, const struct ref_cfg *g, size_t n,
		    const float *x, float *logits)
{
	const char *name = g->tied ? "model.embed_tokens.weight" :
				     "lm_head.weight";
	const struct mb_st_tensor *t;
	size_t H = g->hidden, V = g->vocab, r0, k, r, p;
	float *w;
	int rc;

	if ((rc = ref_find(c, name, V, H, &t)) != 0)
		return rc;
	k = V < REF_HEAD_ROWS ? V : REF_HEAD_ROWS;
	if ((w = ref_alloc(c, k, H)) == NULL)
		return MB_ENOMEM;
	for (r0 = 0; r0 < V; r0 += k) {
		size_t rows = V - r0 < k ? V - r0 : k;

		if ((rc = ref_read(c, t, r0 * H, rows * H, w)) != 0)
			break;
		for (r = 0; r < rows; r++)
			for (p = 0; p < n; p++)
				logits[p * V + r0 + r] = (float)ref_dot(
					x + p * H, w + r * H, H);
	}
	/* Gemma's final_logit_softcapping: cap * tanh(logit / cap) */
	if (rc == 0 && g->final_cap > 0)
		for (p = 0; p < n * V; p++)
			logits[p] = (float)(g->final_cap * tanh(
				(double)logits[p] / g->final_cap));
	free(w);
	return rc;
}

int ref_logits(const char *dir, const int32_t *tokens, int n_tokens,
	       float **logits, int *n_vocab, char *err, size_t errcap)
{
	struct ref_ctx c = { dir, NULL, NULL, NULL, err, errcap };
	struct ref_cfg g;
	const struct mb_st_tensor *emb;
	float *x = NULL, *out = NULL;
	char name[64];
	size_t n, t, i;
	int rc;

	*logits = NULL;
	if (errcap > 0)
		err[0] = '\0';
	if (n_tokens < 1 || n_tokens > REF_MAX_TOKENS) {
		snprintf(err, errcap, "%d tokens: must be 1 to %d", n_tokens,
			 REF_MAX_TOKENS);
		return MB_EINVAL;
	}
	n = (size_t)n_tokens;
	if ((rc = cfg_load(dir, &g, err, errcap)) != 0)
		return rc;
	if (g.sliding != 0 && n > g.sliding) {
		snprintf(err, errcap, "%zu tokens exceed the sliding window "
			 "of %zu, which is not supported", n, g.sliding);
		return MB_EUNSUPPORTED;
	}
	for (t = 0; t < n; t++) {
		if (tokens[t] < 0 || (size_t)tokens[t] >= g.vocab) {
			snprintf(err, errcap, "token %d at position %zu is "
				 "outside the vocabulary of %zu", tokens[t], t,
				 g.vocab);
			return MB_EINVAL;
		}
	}
	if ((rc = mb_st_model_open_dir(dir, &c.m, err, errcap)) != 0) {
		/* it leaves err empty on some failures (out of memory) */
		if (errcap > 0 && err[0] == '\0')
			snprintf(err, errcap, "cannot open the safetensors in "
				 "'%s': %s", dir, mb_strerror(rc));
		return rc;
	}
	rc = MB_ENOMEM;
	c.fds = mb_malloc(c.m->nshards * sizeof(int) + 1);
	c.raw = mb_malloc(REF_READ_CHUNK);
	if (c.fds == NULL || c.raw == NULL) {
		snprintf(err, errcap, "out of memory");
		goto out;
	}
	for (i = 0; i < c.m->nshards; i++)
		c.fds[i] = -1;
	/* a config with too few layers would silently drop the rest */
	snprintf(name, sizeof(name), "model.layers.%zu.input_layernorm.weight",
		 g.layers);
	if (mb_st_model_find(c.m, name) != NULL) {
		snprintf(err, errcap, "config.json: num_hidden_layers %zu, but "
			 "the tensors have more layers", g.layers);
		rc = MB_EFORMAT;
		goto out;
	}
	if ((x = ref_alloc(&c, n, g.hidden)) == NULL ||
	    (out = ref_alloc(&c, n, g.vocab)) == NULL)
		goto out;
	if ((rc = ref_find(&c, "model.embed_tokens.weight", g.vocab, g.hidden,
			   &emb)) != 0)
		goto out;
	for (t = 0; t < n; t++)
		if ((rc = ref_read(&c, emb, (size_t)tokens[t] * g.hidden,
				   g.hidden, x + t * g.hidden)) != 0)
			goto out;
	/* Gemma scales the embedding (its output use stays unscaled) */
	if (g.gemma)
		for (i = 0; i < n * g.hidden; i++)
			x[i] = x[i] * (float)g.embed_scale;
	if ((rc = ref_layers(&c, &g, n, x)) != 0 ||
	    (rc = ref_head(&c, &g, n, x, out)) != 0)
		goto out;
	*logits = out;
	out = NULL;
	*n_vocab = (int)g.vocab;
	rc = 0;
out:
	if (c.fds != NULL)
		for (i = 0; i < c.m->nshards; i++)
			if (c.fds[i] >= 0)
				close(c.fds[i]);
	free(c.fds);
	free(c.raw);
	mb_st_model_free(c.m);
	free(x);
	free(out);
	return rc;
}
