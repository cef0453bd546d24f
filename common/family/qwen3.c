/* family/qwen3: Qwen3 dense (Qwen3ForCausalLM): Llama's tensors plus
 * per-head q/k RMS norms, which give the head size; llama.cpp's qwen3,
 * NEOX rope (q and k, and their norms, as transformers keeps them). */
#include "common/family/family.h"
#include "common/family/rows.h"

static const char *const archs[] = { "Qwen3ForCausalLM", NULL };
static const char *const model_types[] = { "qwen3", NULL };
static const char *const markers[] = { MB_NAMES_SEPARATE,
				       "self_attn.q_norm.weight", NULL };
static const char *const excludes[] = { MB_NAMES_FUSED, NULL };

static const struct mb_family_tensor tensors[] = {
	MB_TENSOR_NORMS,
	MB_TENSOR_OUT_DOWN,
	MB_TENSOR_SEPARATE,
	MB_TENSOR_QK_NORMS,
	MB_TENSOR_INV_FREQ,
	MB_TENSOR_END,
};

static const struct mb_family_out plan[] = {
	MB_PLAN_ATTN_NORM,
	MB_PLAN_QKV(MB_PERM_NONE, MB_PERM_NONE),
	MB_PLAN_QK_NORMS,
	MB_PLAN_ATTN_OUTPUT,
	MB_PLAN_FFN_NORM,
	MB_PLAN_MLP,
	MB_PLAN_END,
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
