/* family/llama: Llama and Mistral (LlamaForCausalLM, MistralForCausalLM):
 * separate q/k/v and gate/up, optional biases; llama.cpp's llama, q and k
 * permuted for its NORM rope. */
#include "common/family/family.h"

static const char *const archs[] = { "LlamaForCausalLM", "MistralForCausalLM",
				     NULL };
static const char *const model_types[] = { "llama", "mistral", NULL };
static const char *const markers[] = { "self_attn.q_proj.weight",
				       "mlp.gate_proj.weight", NULL };
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
	{ "self_attn.q_proj.bias", MB_DIM_Q, MB_DIM_NONE, 0 },
	{ "self_attn.k_proj.bias", MB_DIM_KV, MB_DIM_NONE, 0 },
	{ "self_attn.v_proj.bias", MB_DIM_KV, MB_DIM_NONE, 0 },
	{ "self_attn.o_proj.bias", MB_DIM_HIDDEN, MB_DIM_NONE, 0 },
	/* old checkpoints keep the rotary frequencies; they are recomputed */
	{ "self_attn.rotary_emb.inv_freq", MB_DIM_ANY, MB_DIM_NONE, 0 },
	{ NULL, 0, 0, 0 },
};

#define QB "self_attn.q_proj.bias"
static const struct mb_family_out plan[] = {
	{ "attn_norm.weight", "input_layernorm.weight", 0, 0, 0, NULL },
	{ "attn_q.weight", "self_attn.q_proj.weight", 0, 0, MB_PERM_Q, NULL },
	{ "attn_k.weight", "self_attn.k_proj.weight", 0, 0, MB_PERM_KV, NULL },
	{ "attn_v.weight", "self_attn.v_proj.weight", 0, 0, 0, NULL },
	{ "attn_q.bias", "self_attn.q_proj.bias", 0, 0, MB_PERM_Q, QB },
	{ "attn_k.bias", "self_attn.k_proj.bias", 0, 0, MB_PERM_KV, QB },
	{ "attn_v.bias", "self_attn.v_proj.bias", 0, 0, 0, QB },
	{ "attn_output.weight", "self_attn.o_proj.weight", 0, 0, 0, NULL },
	{ "attn_output.bias", "self_attn.o_proj.bias", 0, 0, 0,
	  "self_attn.o_proj.bias" },
	{ "ffn_norm.weight", "post_attention_layernorm.weight", 0, 0, 0, NULL },
	{ "ffn_gate.weight", "mlp.gate_proj.weight", 0, 0, 0, NULL },
	{ "ffn_up.weight", "mlp.up_proj.weight", 0, 0, 0, NULL },
	{ "ffn_down.weight", "mlp.down_proj.weight", 0, 0, 0, NULL },
	{ NULL, NULL, 0, 0, 0, NULL },
};
#undef QB

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
