/*
 * reference: a plain f32 forward pass of a causal LM straight from its
 * safetensors, the ground truth the converted GGUF's logits are compared
 * with (fidelity). It does what Hugging Face transformers'
 * Phi3ForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM
 * and Gemma3ForCausalLM do in eval mode, in the plainest loops: embedding, per
 * layer RMSNorm, attention (Qwen3: each q and k head RMS-normed) with
 * rotate_half (NEOX) rope, causal softmax and GQA, residual, RMSNorm,
 * SiLU-gated MLP, residual; final norm and lm_head (or the tied embedding).
 *
 * Gemma3ForCausalLM (model_type gemma3_text) as transformers'
 * modeling_gemma3.py computes it in f32: the embedding times
 * sqrt(hidden_size) (an f32, as transformers in f32 and llama.cpp take
 * it), every RMSNorm times (1 + w), per-head q and k norms before rope,
 * four norms per layer (input, post-attention on the attention's output,
 * pre- and post-feedforward), scores times query_pre_attn_scalar^-0.5
 * with attn_logit_softcapping when set, GeGLU with tanh GELU, the tied
 * embedding as output with final_logit_softcapping when set. Sliding
 * layers (layer_types, or all but every sliding_window_pattern-th, 6 by
 * default) see the last sliding_window positions and turn by
 * rope_local_base_freq; global layers see all and turn by rope_theta,
 * with linear rope_scaling (positions / factor) when given.
 *
 * It shares no code with the converter's numerics on purpose (its own
 * bf16/f16 decoding, its own tensor slicing): a bug there must show up as
 * a difference, not be repeated on both sides.
 *
 * Layout comes from config.json's model_type: "phi3" (fused qkv_proj and
 * gate_up_proj), "llama" (q/k/v_proj, gate_proj/up_proj), "qwen2"
 * (Llama's, with the q/k/v biases Qwen2Attention always has), "qwen3"
 * (Llama's, with q_norm and k_norm of head_dim each) or "gemma3_text"
 * (Qwen3's names, and the four norms named above). Phi-3's
 * longrope scaling is applied as transformers does (short factors up to
 * original_max_position_embeddings tokens, long ones past it, cos and sin
 * times the attention factor). Refused with MB_EUNSUPPORTED: any other
 * rope_scaling, attention or MLP biases, an activation other than silu
 * (gelu_pytorch_tanh for Gemma), a sequence longer than Phi-3's
 * sliding_window, bidirectional Gemma attention, and
 * partial_rotary_factor != 1 for llama (Phi-3 applies rope to the first
 * head_dim * factor dimensions, as transformers does).
 *
 * Weights are read with pread one layer at a time (the embedding only for
 * the tokens given, lm_head in row blocks), so memory stays about one
 * layer in f32 plus the activations. Dot products accumulate in double:
 * the reference's own rounding then stays far below that of any f32
 * implementation it is compared with.
 */
#ifndef MB_TH_REFERENCE_H
#define MB_TH_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

/* Most tokens one call takes: the attention scores are n^2 per head. */
#define REF_MAX_TOKENS 8192

/* Computes the logits of tokens[0 .. n_tokens) with the model in dir
 * (dir/config.json, which must be correct, and the safetensors there).
 * On success returns 0, stores a new n_tokens * n_vocab array in *logits
 * (row per position; caller frees) and the vocabulary size in *n_vocab.
 * On failure returns a negative mb_err code (MB_EFORMAT: a tensor missing
 * or of the wrong shape; MB_EJSON: a bad config; MB_EUNSUPPORTED; MB_EINVAL:
 * a token out of range; MB_EIO; MB_ENOMEM) with the reason in err (errcap
 * bytes), and *logits is NULL. */
int ref_logits(const char *dir, const int32_t *tokens, int n_tokens,
	       float **logits, int *n_vocab, char *err, size_t errcap);

#endif
