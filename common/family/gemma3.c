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

static const char *const archs[] = { "Gemma3ForCausalLM", NULL };
static const char *const model_types[] = { "gemma3_text", NULL };
/* Qwen3's markers and the norm before the MLP no other family has */
static const char *const markers[] = { "self_attn.q_proj.weight",
				       "mlp.gate_proj.weight",
				       "self_attn.q_norm.weight",
				       "pre_feedforward_layernorm.weight",
				       NULL };
static const char *const excludes[] = { "self_attn.qkv_proj.weight",
					"mlp.gate_up_proj.weight", NULL };

static const struct mb_family_tensor tensors[] = {
	{ "input_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "post_attention_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "pre_feedforward_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "post_feedforward_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "self_attn.o_proj.weight", MB_DIM_HIDDEN, MB_DIM_Q, 1 },
	{ "mlp.down_proj.weight", MB_DIM_HIDDEN, MB_DIM_FF, 1 },
	{ "self_attn.q_proj.weight", MB_DIM_Q, MB_DIM_HIDDEN, 1 },
	{ "self_attn.k_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },
	{ "self_attn.v_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },
	{ "mlp.gate_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 },
	{ "mlp.up_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 },
	{ "self_attn.q_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 },
	{ "self_attn.k_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 },
	{ NULL, 0, 0, 0 },
};

/* transformers' post_attention_layernorm norms the attention's output
 * (llama.cpp's post_attention_norm); the norm before the MLP is
 * pre_feedforward_layernorm (llama.cpp's ffn_norm) */
static const struct mb_family_out plan[] = {
	{ "attn_norm.weight", "input_layernorm.weight", 0, 0, 0, NULL },
	{ "attn_q.weight", "self_attn.q_proj.weight", 0, 0, 0, NULL },
	{ "attn_k.weight", "self_attn.k_proj.weight", 0, 0, 0, NULL },
	{ "attn_v.weight", "self_attn.v_proj.weight", 0, 0, 0, NULL },
	{ "attn_q_norm.weight", "self_attn.q_norm.weight", 0, 0, 0, NULL },
	{ "attn_k_norm.weight", "self_attn.k_norm.weight", 0, 0, 0, NULL },
	{ "attn_output.weight", "self_attn.o_proj.weight", 0, 0, 0, NULL },
	{ "post_attention_norm.weight", "post_attention_layernorm.weight", 0,
	  0, 0, NULL },
	{ "ffn_norm.weight", "pre_feedforward_layernorm.weight", 0, 0, 0,
	  NULL },
	{ "ffn_gate.weight", "mlp.gate_proj.weight", 0, 0, 0, NULL },
	{ "ffn_up.weight", "mlp.up_proj.weight", 0, 0, 0, NULL },
	{ "ffn_down.weight", "mlp.down_proj.weight", 0, 0, 0, NULL },
	{ "post_ffw_norm.weight", "post_feedforward_layernorm.weight", 0, 0,
	  0, NULL },
	{ NULL, NULL, 0, 0, 0, NULL },
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
