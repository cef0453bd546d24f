/* family/qwen3: Qwen3 dense (Qwen3ForCausalLM): Llama's tensors plus
 * per-head q/k RMS norms, which give the head size; llama.cpp's qwen3,
 * NEOX rope (q and k, and their norms, as transformers keeps them). */
#include "common/family/family.h"

static const char *const archs[] = { "Qwen3ForCausalLM", NULL };
static const char *const model_types[] = { "qwen3", NULL };
static const char *const markers[] = { "self_attn.q_proj.weight",
				       "mlp.gate_proj.weight",
				       "self_attn.q_norm.weight", NULL };
static const char *const excludes[] = { "self_attn.qkv_proj.weight",
					"mlp.gate_up_proj.weight", NULL };

static const struct mb_family_tensor tensors[] = {
	{ "input_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "post_attention_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },
	{ "self_attn.o_proj.weight", MB_DIM_HIDDEN, MB_DIM_Q, 1 },
	{ "mlp.down_proj.weight", MB_DIM_HIDDEN, MB_DIM_FF, 1 },
	{ "self_attn.q_proj.weight", MB_DIM_Q, MB_DIM_HIDDEN, 1 },
	{ "self_attn.k_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },
	{ "self_attn.v_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },
	{ "mlp.gate_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 },
	{ "mlp.up_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 },
	{ "self_attn.q_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 },
	{ "self_attn.k_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 },
	{ "self_attn.rotary_emb.inv_freq", MB_DIM_ANY, MB_DIM_NONE, 0 },
	{ NULL, 0, 0, 0 },
};

static const struct mb_family_out plan[] = {
	{ "attn_norm.weight", "input_layernorm.weight", 0, 0, 0, NULL },
	{ "attn_q.weight", "self_attn.q_proj.weight", 0, 0, 0, NULL },
	{ "attn_k.weight", "self_attn.k_proj.weight", 0, 0, 0, NULL },
	{ "attn_v.weight", "self_attn.v_proj.weight", 0, 0, 0, NULL },
	{ "attn_q_norm.weight", "self_attn.q_norm.weight", 0, 0, 0, NULL },
	{ "attn_k_norm.weight", "self_attn.k_norm.weight", 0, 0, 0, NULL },
	{ "attn_output.weight", "self_attn.o_proj.weight", 0, 0, 0, NULL },
	{ "ffn_norm.weight", "post_attention_layernorm.weight", 0, 0, 0, NULL },
	{ "ffn_gate.weight", "mlp.gate_proj.weight", 0, 0, 0, NULL },
	{ "ffn_up.weight", "mlp.up_proj.weight", 0, 0, 0, NULL },
	{ "ffn_down.weight", "mlp.down_proj.weight", 0, 0, 0, NULL },
	{ NULL, NULL, 0, 0, 0, NULL },
};

static const struct mb_family_layout native = {
	.name = "native",
	.arch = "qwen3",
	.tensors = plan,
	.meta = MB_META_VOCAB_SIZE | MB_META_HEAD_LENGTHS,
	/* Qwen2.5's and Qwen3's long-context configs use yarn */
	.rope = MB_ROPE_LLAMA3 | MB_ROPE_LINEAR | MB_ROPE_YARN,
};

static const enum mb_cfg_key keys[] = {
	MB_CFG_HEAD_DIM,
	MB_CFG_ATTENTION_BIAS,
	MB_CFG_ROPE_THETA,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ROPE_SCALING,
	MB_CFG_NKEYS,
};

static const struct mb_family_base bases[] = {
	{ NULL, NULL, { NULL } },
};

const struct mb_family mb_family_qwen3 = {
	.id = MB_FAMILY_QWEN3,
	.name = "qwen3",
	.display = "Qwen3",
	.archs = archs,
	.model_types = model_types,
	.markers = markers,
	.excludes = excludes,
	.extends = MB_FAMILY_LLAMA,
	.required_note = "Qwen3 has per-head q and k norms in every layer",
	.tensors = tensors,
	.bias_refusal = "unsupported model: Qwen3 layout with bias tensors "
			"(attention_bias): llama.cpp's qwen3 has no attention "
			"output bias",
	.head_tensor = "self_attn.q_norm.weight",
	.head_note = "Qwen3's q and k norms are one head wide",
	.layout_text = "separate q_proj, k_proj, v_proj, gate_proj, up_proj, "
		       "per-head q_norm and k_norm",
	.keys = keys,
	/* transformers' Qwen3Config defaults */
	.defaults = "{\"rope_theta\":10000.0,\"rms_norm_eps\":1e-06,"
		    "\"max_position_embeddings\":32768,\"rope_scaling\":null}",
	.bases = bases,
	.native = &native,
};
