/* family/phi3: Phi-3, Phi-3.5 and Phi-4 (Phi3ForCausalLM): fused qkv and
 * gate_up, no biases; llama.cpp's phi3 (native) or llama (split). */
#include "common/family/family.h"
#include "common/family/rows.h"

static const char *const archs[] = { "Phi3ForCausalLM", NULL };
static const char *const model_types[] = { "phi3", NULL };
static const char *const markers[] = { MB_NAMES_FUSED, NULL };
static const char *const excludes[] = { MB_NAMES_SEPARATE, NULL };

static const struct mb_family_tensor tensors[] = {
	MB_TENSOR_NORMS,
	MB_TENSOR_OUT_DOWN,
	{ "self_attn.qkv_proj.weight", MB_DIM_QKV, MB_DIM_HIDDEN, 1 },
	{ "mlp.gate_up_proj.weight", MB_DIM_FF2, MB_DIM_HIDDEN, 1 },
	MB_TENSOR_INV_FREQ,
	MB_TENSOR_END,
};

static const struct mb_family_out native_tensors[] = {
	MB_PLAN_ATTN_NORM,
	{ "attn_qkv.weight", "self_attn.qkv_proj.weight", 0, 0, 0, NULL },
	MB_PLAN_ATTN_OUTPUT,
	MB_PLAN_FFN_NORM,
	/* llama.cpp's phi3 takes gate and up fused as ffn_up, 2 * n_ff rows */
	{ "ffn_up.weight", "mlp.gate_up_proj.weight", 0, 0, 0, NULL },
	MB_PLAN_FFN_DOWN,
	MB_PLAN_END,
};

/* llama's tensors: the fused ones split by rows, q and k permuted for
 * NORM rope */
static const struct mb_family_out split_tensors[] = {
	MB_PLAN_ATTN_NORM,
	{ "attn_q.weight", "self_attn.qkv_proj.weight", MB_DIM_NONE, MB_DIM_Q,
	  MB_PERM_Q, NULL },
	{ "attn_k.weight", "self_attn.qkv_proj.weight", MB_DIM_Q, MB_DIM_KV,
	  MB_PERM_KV, NULL },
	{ "attn_v.weight", "self_attn.qkv_proj.weight", MB_DIM_Q_KV, MB_DIM_KV,
	  MB_PERM_NONE, NULL },
	MB_PLAN_ATTN_OUTPUT,
	MB_PLAN_FFN_NORM,
	{ "ffn_gate.weight", "mlp.gate_up_proj.weight", MB_DIM_NONE, MB_DIM_FF,
	  MB_PERM_NONE, NULL },
	{ "ffn_up.weight", "mlp.gate_up_proj.weight", MB_DIM_FF, MB_DIM_FF,
	  MB_PERM_NONE, NULL },
	MB_PLAN_FFN_DOWN,
	MB_PLAN_END,
};

static const struct mb_family_layout native = {
	.name = "native",
	.arch = "phi3",
	.tensors = native_tensors,
	.meta = MB_META_ORIG_CONTEXT | MB_META_SLIDING_WINDOW |
		MB_META_PARTIAL_ROTARY,
	.rope = MB_ROPE_LONGROPE,
};

static const struct mb_family_layout split = {
	.name = "split",
	.arch = "llama",
	.tensors = split_tensors,
	.meta = MB_META_VOCAB_SIZE | MB_META_HEAD_LENGTHS,
	.rope = 0,
};

static const enum mb_cfg_key keys[] = {
	MB_CFG_ROPE_THETA,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ROPE_SCALING,
	MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS,
	MB_CFG_SLIDING_WINDOW,
	MB_CFG_PARTIAL_ROTARY_FACTOR,
	MB_CFG_NKEYS,
};

/* Longrope factors are not kept here: a 128k model's own config.json
 * carries them. */
static const struct mb_family_base bases[] = {
	{ "microsoft/phi-4",
	  "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\","
	  "\"hidden_size\":5120,\"num_hidden_layers\":40,"
	  "\"intermediate_size\":17920,\"vocab_size\":100352,"
	  "\"num_attention_heads\":40,\"num_key_value_heads\":10,"
	  "\"rope_theta\":250000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":16384,"
	  "\"original_max_position_embeddings\":16384,"
	  "\"sliding_window\":null,\"rope_scaling\":null}",
	  { NULL } },
	{ "microsoft/Phi-3-medium-4k-instruct",
	  "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\","
	  "\"hidden_size\":5120,\"num_hidden_layers\":40,"
	  "\"intermediate_size\":17920,\"vocab_size\":32064,"
	  "\"num_attention_heads\":40,\"num_key_value_heads\":10,"
	  "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":4096,"
	  "\"original_max_position_embeddings\":4096,"
	  "\"sliding_window\":2047,\"rope_scaling\":null}",
	  { NULL } },
	{ "microsoft/Phi-3-medium-128k-instruct",
	  "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\","
	  "\"hidden_size\":5120,\"num_hidden_layers\":40,"
	  "\"intermediate_size\":17920,\"vocab_size\":32064,"
	  "\"num_attention_heads\":40,\"num_key_value_heads\":10,"
	  "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":131072,"
	  "\"original_max_position_embeddings\":4096,"
	  "\"sliding_window\":131072,\"rope_scaling\":{\"type\":\"longrope\"}}",
	  { NULL } },
	{ "microsoft/Phi-3-mini-4k-instruct",
	  "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\","
	  "\"hidden_size\":3072,\"num_hidden_layers\":32,"
	  "\"intermediate_size\":8192,\"vocab_size\":32064,"
	  "\"num_attention_heads\":32,\"num_key_value_heads\":32,"
	  "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":4096,"
	  "\"original_max_position_embeddings\":4096,"
	  "\"sliding_window\":2047,\"rope_scaling\":null}",
	  { NULL } },
	{ "microsoft/Phi-3-mini-128k-instruct",
	  "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":\"phi3\","
	  "\"hidden_size\":3072,\"num_hidden_layers\":32,"
	  "\"intermediate_size\":8192,\"vocab_size\":32064,"
	  "\"num_attention_heads\":32,\"num_key_value_heads\":32,"
	  "\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
	  "\"max_position_embeddings\":131072,"
	  "\"original_max_position_embeddings\":4096,"
	  "\"sliding_window\":262144,\"rope_scaling\":{\"type\":\"longrope\"}}",
	  { NULL } },
	{ NULL, NULL, { NULL } },
};

const struct mb_family mb_family_phi3 = {
	.id = MB_FAMILY_PHI3,
	.name = "phi3",
	.display = "Phi-3",
	.archs = archs,
	.model_types = model_types,
	.markers = markers,
	.excludes = excludes,
	.extends = MB_FAMILY_UNKNOWN,
	.layout_desc = "qkv_proj, gate_up_proj",
	.tensors = tensors,
	.bias_refusal = "unsupported model: Phi-3 layout with bias tensors "
			"(Phi-3 and Phi-4 have none)",
	.fused_qkv = "self_attn.qkv_proj.weight",
	.layout_tensor = "self_attn.qkv_proj.weight",
	.ff_note = ", half of gate_up_proj rows",
	.keys = keys,
	.defaults = "{\"rope_theta\":10000.0,\"rms_norm_eps\":1e-05,"
		    "\"max_position_embeddings\":4096,"
		    "\"original_max_position_embeddings\":4096,"
		    "\"sliding_window\":null,\"rope_scaling\":null}",
	.bases = bases,
	.native = &native,
	.split = &split,
};
