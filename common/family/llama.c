/* family/llama: Llama and Mistral (LlamaForCausalLM, MistralForCausalLM):
 * separate q/k/v and gate/up, optional biases; llama.cpp's llama, q and k
 * permuted for its NORM rope. */
#include "common/family/family.h"
#include "common/family/rows.h"

static const char *const archs[] = { "LlamaForCausalLM", "MistralForCausalLM",
				     NULL };
static const char *const model_types[] = { "llama", "mistral", NULL };
static const char *const markers[] = { MB_NAMES_SEPARATE, NULL };
static const char *const excludes[] = { MB_NAMES_FUSED, NULL };

static const struct mb_family_tensor tensors[] = {
	MB_TENSOR_NORMS,
	MB_TENSOR_OUT_DOWN,
	MB_TENSOR_SEPARATE,
	MB_TENSOR_QKV_BIAS(0),
	{ "self_attn.o_proj.bias", MB_DIM_HIDDEN, MB_DIM_NONE, 0 },
	MB_TENSOR_INV_FREQ,
	MB_TENSOR_END,
};

/* the biases, where a layer has them, permuted as q and k are */
static const struct mb_family_out plan[] = {
	MB_PLAN_ATTN_NORM,
	MB_PLAN_QKV(MB_PERM_Q, MB_PERM_KV),
	MB_PLAN_QKV_BIAS(MB_PERM_Q, MB_PERM_KV, "self_attn.q_proj.bias"),
	MB_PLAN_ATTN_OUTPUT,
	{ "attn_output.bias", "self_attn.o_proj.bias", 0, 0, 0,
	  "self_attn.o_proj.bias" },
	MB_PLAN_FFN_NORM,
	MB_PLAN_MLP,
	MB_PLAN_END,
};

/* llama.cpp's llama has no sliding window: a Mistral config's is read
 * (inspect says when the context exceeds it) but not written */
static const struct mb_family_layout native = {
	.name = "native",
	.arch = "llama",
	.tensors = plan,
	.meta = MB_META_VOCAB_SIZE | MB_META_HEAD_LENGTHS,
	.rope = MB_ROPE_LLAMA3 | MB_ROPE_LINEAR,
};

static const enum mb_cfg_key keys[] = {
	MB_CFG_HEAD_DIM,
	MB_CFG_ATTENTION_BIAS,
	MB_CFG_ROPE_THETA,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ROPE_SCALING,
	MB_CFG_SLIDING_WINDOW,
	MB_CFG_NKEYS,
};

static const struct mb_family_base bases[] = {
	{ "meta-llama/Llama-3.1-8B",
	  "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
	  "\"hidden_size\":4096,\"num_hidden_layers\":32,"
	  "\"intermediate_size\":14336,\"vocab_size\":128256,"
	  "\"num_attention_heads\":32,\"num_key_value_heads\":8,"
	  "\"rope_theta\":500000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":131072,"
	  "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
	  "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
	  "\"rope_type\":\"llama3\"}}",
	  { "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct",
	    "meta-llama/Meta-Llama-3.1-8B-Instruct", NULL } },
	{ "mistralai/Mistral-7B-v0.3",
	  "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\","
	  "\"hidden_size\":4096,\"num_hidden_layers\":32,"
	  "\"intermediate_size\":14336,\"vocab_size\":32768,"
	  "\"num_attention_heads\":32,\"num_key_value_heads\":8,"
	  "\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":32768,\"sliding_window\":null,"
	  "\"rope_scaling\":null}",
	  { "mistralai/Mistral-7B-Instruct-v0.3", NULL } },
	{ NULL, NULL, { NULL } },
};

const struct mb_family mb_family_llama = {
	.id = MB_FAMILY_LLAMA,
	.name = "llama",
	.display = "Llama",
	.archs = archs,
	.model_types = model_types,
	.markers = markers,
	.excludes = excludes,
	.extends = MB_FAMILY_UNKNOWN,
	.layout_desc = "q_proj, k_proj, v_proj, gate_proj, up_proj",
	.tensors = tensors,
	.layout_text = "separate q_proj, k_proj, v_proj, gate_proj, up_proj",
	.keys = keys,
	.defaults = "{\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
		    "\"max_position_embeddings\":4096,\"rope_scaling\":null}",
	.bases = bases,
	.native = &native,
};
