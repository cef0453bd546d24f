/*
 * family/rows: the rows several families share, for the family files
 * only (family.h says how they are used).
 *
 * Each macro is a run of array elements: MB_TENSOR_* of struct
 * mb_family_tensor (a family's layer tensors), MB_PLAN_* of struct
 * mb_family_out (a layout's GGUF plan), MB_NAMES_* of tensor names
 * (markers and exclusions). A family's array lists the runs it has, in
 * its order, between rows of its own:
 *
 *	static const struct mb_family_out plan[] = {
 *		MB_PLAN_ATTN_NORM,
 *		MB_PLAN_QKV(MB_PERM_NONE, MB_PERM_NONE),
 *		{ "attn_q_norm.weight", "self_attn.q_norm.weight", ... },
 *		...
 *		MB_PLAN_END,
 *	};
 *
 * A run that would differ between families takes the difference as an
 * argument (a bias required or not, q and k permuted or not); a row only
 * one family has is written out in its file.
 */
#ifndef MB_FAMILY_ROWS_H
#define MB_FAMILY_ROWS_H

#include "common/family/family.h"

/* --- layer tensors (struct mb_family_tensor) --- */

/* The norm before the attention and the one after it (before the MLP in
 * every family but Gemma 3, which has two more). */
#define MB_TENSOR_NORMS                                                        \
	{ "input_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 },           \
	{ "post_attention_layernorm.weight", MB_DIM_HIDDEN, MB_DIM_NONE, 1 }

/* The attention's output and the MLP's down projection, whatever the
 * family fuses. */
#define MB_TENSOR_OUT_DOWN                                                     \
	{ "self_attn.o_proj.weight", MB_DIM_HIDDEN, MB_DIM_Q, 1 },             \
	{ "mlp.down_proj.weight", MB_DIM_HIDDEN, MB_DIM_FF, 1 }

/* q, k, v, gate and up as separate projections (no qkv_proj,
 * gate_up_proj). */
#define MB_TENSOR_SEPARATE                                                     \
	{ "self_attn.q_proj.weight", MB_DIM_Q, MB_DIM_HIDDEN, 1 },             \
	{ "self_attn.k_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },            \
	{ "self_attn.v_proj.weight", MB_DIM_KV, MB_DIM_HIDDEN, 1 },            \
	{ "mlp.gate_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 },               \
	{ "mlp.up_proj.weight", MB_DIM_FF, MB_DIM_HIDDEN, 1 }

/* q, k and v biases, in every layer when required. */
#define MB_TENSOR_QKV_BIAS(required)                                           \
	{ "self_attn.q_proj.bias", MB_DIM_Q, MB_DIM_NONE, (required) },        \
	{ "self_attn.k_proj.bias", MB_DIM_KV, MB_DIM_NONE, (required) },       \
	{ "self_attn.v_proj.bias", MB_DIM_KV, MB_DIM_NONE, (required) }

/* Per-head RMS norms of q and k (Qwen3, Gemma 3): one head wide. */
#define MB_TENSOR_QK_NORMS                                                     \
	{ "self_attn.q_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 },            \
	{ "self_attn.k_norm.weight", MB_DIM_HEAD, MB_DIM_NONE, 1 }

/* Old checkpoints keep the rotary frequencies; they are recomputed. */
#define MB_TENSOR_INV_FREQ                                                     \
	{ "self_attn.rotary_emb.inv_freq", MB_DIM_ANY, MB_DIM_NONE, 0 }

#define MB_TENSOR_END { NULL, 0, 0, 0 }

/* --- GGUF plan rows (struct mb_family_out) --- */

#define MB_PLAN_ATTN_NORM                                                      \
	{ "attn_norm.weight", "input_layernorm.weight", 0, 0, 0, NULL }

/* q and k permuted over qperm's and kperm's heads (MB_PERM_NONE for a
 * NEOX-rope architecture). */
#define MB_PLAN_QKV(qperm, kperm)                                              \
	{ "attn_q.weight", "self_attn.q_proj.weight", 0, 0, (qperm), NULL },   \
	{ "attn_k.weight", "self_attn.k_proj.weight", 0, 0, (kperm), NULL },   \
	{ "attn_v.weight", "self_attn.v_proj.weight", 0, 0, 0, NULL }

/* The biases as q and k are permuted, written when the layer has when's
 * tensor (NULL: always). */
#define MB_PLAN_QKV_BIAS(qperm, kperm, when)                                   \
	{ "attn_q.bias", "self_attn.q_proj.bias", 0, 0, (qperm), (when) },     \
	{ "attn_k.bias", "self_attn.k_proj.bias", 0, 0, (kperm), (when) },     \
	{ "attn_v.bias", "self_attn.v_proj.bias", 0, 0, 0, (when) }

#define MB_PLAN_QK_NORMS                                                       \
	{ "attn_q_norm.weight", "self_attn.q_norm.weight", 0, 0, 0, NULL },    \
	{ "attn_k_norm.weight", "self_attn.k_norm.weight", 0, 0, 0, NULL }

#define MB_PLAN_ATTN_OUTPUT                                                    \
	{ "attn_output.weight", "self_attn.o_proj.weight", 0, 0, 0, NULL }

/* The norm before the MLP, where it is post_attention_layernorm. */
#define MB_PLAN_FFN_NORM                                                       \
	{ "ffn_norm.weight", "post_attention_layernorm.weight", 0, 0, 0, NULL }

#define MB_PLAN_FFN_DOWN                                                       \
	{ "ffn_down.weight", "mlp.down_proj.weight", 0, 0, 0, NULL }

/* The MLP of separate gate and up projections. */
#define MB_PLAN_MLP                                                            \
	{ "ffn_gate.weight", "mlp.gate_proj.weight", 0, 0, 0, NULL },          \
	{ "ffn_up.weight", "mlp.up_proj.weight", 0, 0, 0, NULL },              \
	MB_PLAN_FFN_DOWN

#define MB_PLAN_END { NULL, NULL, 0, 0, 0, NULL }

/* --- tensor names (markers, excludes) --- */

/* What separate projections are told by, and fused ones. */
#define MB_NAMES_SEPARATE "self_attn.q_proj.weight", "mlp.gate_proj.weight"
#define MB_NAMES_FUSED "self_attn.qkv_proj.weight", "mlp.gate_up_proj.weight"

#endif
