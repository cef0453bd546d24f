/* family/qwen2: Qwen2 and Qwen2.5 (Qwen2ForCausalLM): Llama's tensors plus
 * q/k/v biases, which only config.json tells apart; llama.cpp's qwen2,
 * NEOX rope (q and k as transformers keeps them). */
#include "common/family/family.h"

static const char *const archs[] = { "Qwen2ForCausalLM", NULL };
static const char *const model_types[] = { "qwen2", NULL };

/* llama.cpp's qwen2 requires the three biases in every layer and has no
 * o_proj bias */
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
	{ "self_attn.q_proj.bias", MB_DIM_Q, MB_DIM_NONE, 1 },
	{ "self_attn.k_proj.bias", MB_DIM_KV, MB_DIM_NONE, 1 },
	{ "self_attn.v_proj.bias", MB_DIM_KV, MB_DIM_NONE, 1 },
	{ "self_attn.rotary_emb.inv_freq", MB_DIM_ANY, MB_DIM_NONE, 0 },
	{ NULL, 0, 0, 0 },
};

static const struct mb_family_out plan[] = {
	{ "attn_norm.weight", "input_layernorm.weight", 0, 0, 0, NULL },
	{ "attn_q.weight", "self_attn.q_proj.weight", 0, 0, 0, NULL },
	{ "attn_k.weight", "self_attn.k_proj.weight", 0, 0, 0, NULL },
	{ "attn_v.weight", "self_attn.v_proj.weight", 0, 0, 0, NULL },
	{ "attn_q.bias", "self_attn.q_proj.bias", 0, 0, 0, NULL },
	{ "attn_k.bias", "self_attn.k_proj.bias", 0, 0, 0, NULL },
	{ "attn_v.bias", "self_attn.v_proj.bias", 0, 0, 0, NULL },
	{ "attn_output.weight", "self_attn.o_proj.weight", 0, 0, 0, NULL },
	{ "ffn_norm.weight", "post_attention_layernorm.weight", 0, 0, 0, NULL },
	{ "ffn_gate.weight", "mlp.gate_proj.weight", 0, 0, 0, NULL },
	{ "ffn_up.weight", "mlp.up_proj.weight", 0, 0, 0, NULL },
	{ "ffn_down.weight", "mlp.down_proj.weight", 0, 0, 0, NULL },
	{ NULL, NULL, 0, 0, 0, NULL },
};

static const struct mb_family_layout native = {
	.name = "native",
	.arch = "qwen2",
	.tensors = plan,
	.meta = MB_META_VOCAB_SIZE | MB_META_HEAD_LENGTHS,
	/* Qwen2.5's and Qwen3's long-context configs use yarn */
	.rope = MB_ROPE_LLAMA3 | MB_ROPE_LINEAR | MB_ROPE_YARN,
};

/* Qwen2's sliding_window is off unless use_sliding_window says so, and
 * llama.cpp's qwen2 has none: not carried */
static const enum mb_cfg_key keys[] = {
	MB_CFG_ROPE_THETA,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ROPE_SCALING,
	MB_CFG_NKEYS,
};

static const struct mb_family_base bases[] = {
	{ NULL, NULL, { NULL } },
};

const struct mb_family mb_family_qwen2 = {
	.id = MB_FAMILY_QWEN2,
	.name = "qwen2",
	.display = "Qwen2",
	.archs = archs,
	.model_types = model_types,
	.extends = MB_FAMILY_LLAMA,
	.required_note = "Qwen2 has q, k and v biases in every layer",
	.tensors = tensors,
	.q_is_hidden = 1,
	.layout_text = "separate q_proj, k_proj, v_proj with biases, "
		       "gate_proj, up_proj; config.json says qwen2",
	.keys = keys,
	/* transformers' Qwen2Config defaults */
	.defaults = "{\"rope_theta\":10000.0,\"rms_norm_eps\":1e-06,"
		    "\"max_position_embeddings\":32768,\"rope_scaling\":null}",
	.bases = bases,
	.native = &native,
};
