/* family/gemma3: Gemma 3 text models (Gemma3ForCausalLM, model_type
 * gemma3_text): Qwen3's tensors plus a norm after the attention and two
 * around the MLP, four per layer; llama.cpp's gemma3, NEOX rope (q and k
 * as transformers keeps them). The checkpoint's norms multiply by 1 + w,
 * llama.cpp's by the weight: every norm is written plus one. Most layers
 * attend to a sliding window and turn by rope_local_base_freq, every
 * sliding_window_pattern-th (or as layer_types says) to all, by
 * rope_theta with the linear scaling of the 4B and larger models. The
 * output is tied to the embedding. The multimodal
 * Gemma3ForConditionalGeneration (language_model.model.* and a vision
 * tower) is not this family: it is refused by name. */
#include "common/family/family.h"
#include "common/family/rows.h"

static const char *const archs[] = { "Gemma3ForCausalLM", NULL };
static const char *const model_types[] = { "gemma3_text", NULL };
/* Qwen3's markers and the norm before the MLP no other family has */
static const char *const markers[] = { MB_NAMES_SEPARATE,
				       "self_attn.q_norm.weight",
				       "pre_feedforward_layernorm.weight",
				       NULL };
static const char *const excludes[] = { MB_NAMES_FUSED, NULL };

static const struct mb_family_tensor tensors[] = {
	MB_TENSOR_NORMS,
	{ "pre_feedforward_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "post_feedforward_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	MB_TENSOR_OUT_DOWN,
	MB_TENSOR_SEPARATE,
	MB_TENSOR_QK_NORMS,
	MB_TENSOR_END,
};

/* transformers' post_attention_layernorm norms the attention's output
 * (llama.cpp's post_attention_norm); the norm before the MLP is
 * pre_feedforward_layernorm (llama.cpp's ffn_norm) */
static const struct mb_family_out plan[] = {
	MB_PLAN_ATTN_NORM,
	MB_PLAN_QKV(MB_PERM_NONE, MB_PERM_NONE),
	MB_PLAN_QK_NORMS,
	MB_PLAN_ATTN_OUTPUT,
	{ "post_attention_norm.weight", "post_attention_layernorm.weight", 0,
	  0, 0, NULL },
	{ "ffn_norm.weight", "pre_feedforward_layernorm.weight", 0, 0, 0,
	  NULL },
	MB_PLAN_MLP,
	{ "post_ffw_norm.weight", "post_feedforward_layernorm.weight", 0, 0,
	  0, NULL },
	MB_PLAN_END,
};

static const struct mb_family_layout native = {
	.name = "native",
	.arch = "gemma3",
	.tensors = plan,
	.meta = MB_META_HEAD_LENGTHS | MB_META_SWA_LAYERS |
		MB_META_FINAL_SOFTCAP,
	/* the 4B, 12B and 27B models: linear, factor 8, global layers */
	.rope = MB_ROPE_LINEAR,
	.norm_plus_one = 1,
};

static const enum mb_cfg_key keys[] = {
	MB_CFG_HEAD_DIM,
	MB_CFG_ROPE_THETA,
	MB_CFG_ROPE_LOCAL_BASE_FREQ,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ROPE_SCALING,
	MB_CFG_SLIDING_WINDOW,
	/* layer_types first: where it is, the pattern is not asked */
	MB_CFG_LAYER_TYPES,
	MB_CFG_SLIDING_WINDOW_PATTERN,
	MB_CFG_QUERY_PRE_ATTN_SCALAR,
	MB_CFG_ATTN_LOGIT_SOFTCAPPING,
	MB_CFG_FINAL_LOGIT_SOFTCAPPING,
	MB_CFG_NKEYS,
};

static const struct mb_family_base bases[] = {
	{ "google/gemma-3-1b-it",
	  "{\"architectures\":[\"Gemma3ForCausalLM\"],"
	  "\"model_type\":\"gemma3_text\",\"hidden_size\":1152,"
	  "\"num_hidden_layers\":26,\"intermediate_size\":6912,"
	  "\"vocab_size\":262144,\"num_attention_heads\":4,"
	  "\"num_key_value_heads\":1,\"head_dim\":256,"
	  "\"query_pre_attn_scalar\":256,\"rope_theta\":1000000,"
	  "\"rope_local_base_freq\":10000,\"rms_norm_eps\":1e-06,"
	  "\"max_position_embeddings\":32768,\"rope_scaling\":null,"
	  "\"sliding_window\":512,\"sliding_window_pattern\":6,"
	  "\"attn_logit_softcapping\":null,"
	  "\"final_logit_softcapping\":null}",
	  { "google/gemma-3-1b-pt", NULL } },
	{ NULL, NULL, { NULL } },
};

const struct mb_family mb_family_gemma3 = {
	.id = MB_FAMILY_GEMMA3,
	.name = "gemma3",
	.display = "Gemma 3",
	.archs = archs,
	.model_types = model_types,
	.markers = markers,
	.excludes = excludes,
	.extends = MB_FAMILY_QWEN3,
	.required_note = "Gemma 3 has four norms in every layer (before and "
			 "after the attention and the MLP) and per-head q and "
			 "k norms",
	.tensors = tensors,
	.bias_refusal = "unsupported model: Gemma 3 layout with bias tensors: "
			"llama.cpp's gemma3 has none",
	.head_tensor = "self_attn.q_norm.weight",
	.head_note = "Gemma 3's q and k norms are one head wide",
	.layout_text = "separate q_proj, k_proj, v_proj, gate_proj, up_proj, "
		       "per-head q_norm and k_norm, pre_feedforward_layernorm "
		       "and post_feedforward_layernorm",
	.keys = keys,
	/* transformers' Gemma3TextConfig defaults (4.50) */
	.defaults = "{\"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0,"
		    "\"rms_norm_eps\":1e-06,\"max_position_embeddings\":131072,"
		    "\"rope_scaling\":null,\"sliding_window\":4096,"
		    "\"sliding_window_pattern\":6,\"query_pre_attn_scalar\":256,"
		    "\"attn_logit_softcapping\":null,"
		    "\"final_logit_softcapping\":null}",
	.bases = bases,
	.native = &native,
};
