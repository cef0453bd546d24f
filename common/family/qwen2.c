/* family/qwen2: Qwen2 and Qwen2.5 (Qwen2ForCausalLM): Llama's tensors plus
 * q/k/v biases, which only config.json tells apart; llama.cpp's qwen2,
 * NEOX rope (q and k as transformers keeps them). */
#include "common/family/family.h"
#include "common/family/rows.h"

static const char *const archs[] = { "Qwen2ForCausalLM", NULL };
static const char *const model_types[] = { "qwen2", NULL };

/* llama.cpp's qwen2 requires the three biases in every layer and has no
 * o_proj bias */
static const struct mb_family_tensor tensors[] = {
	MB_TENSOR_NORMS,
	MB_TENSOR_OUT_DOWN,
	MB_TENSOR_SEPARATE,
	MB_TENSOR_QKV_BIAS(1),
	MB_TENSOR_INV_FREQ,
	MB_TENSOR_END,
};

static const struct mb_family_out plan[] = {
	MB_PLAN_ATTN_NORM,
	MB_PLAN_QKV(MB_PERM_NONE, MB_PERM_NONE),
	MB_PLAN_QKV_BIAS(MB_PERM_NONE, MB_PERM_NONE, NULL),
	MB_PLAN_ATTN_OUTPUT,
	MB_PLAN_FFN_NORM,
	MB_PLAN_MLP,
	MB_PLAN_END,
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
