/*
 * family: the model families mibera converts, as data.
 *
 * Each family is one const struct mb_family in its own file
 * (common/family/llama.c ...): the config.json names it owns, how its
 * tensors are recognised and what shape each must have, the GGUF tensor
 * plan and architecture of each layout, the metadata keys and rope
 * scalings that architecture carries, transformers' config defaults and
 * the base models whose configs are known. common/modelcfg.c,
 * common/convert.c and the inspect command walk the table in
 * common/family/family.c; none of them names a family.
 *
 * To add a family: a constant in enum mb_family_id (common/modelcfg.h), a
 * file here defining `const struct mb_family mb_family_NAME`, its line in
 * family.c's table, its fixtures, and its row in README.md's table of
 * supported models (a unit test checks the README against the table).
 *
 * Rows the families share are written once, in common/family/rows.h: a
 * family's layer tensors, its layouts' plans and its markers and
 * exclusions list the shared runs it has (MB_TENSOR_NORMS,
 * MB_PLAN_QKV(...), MB_NAMES_SEPARATE ...) in its order, between rows
 * only it has; where families differ in a run (q and k permuted, biases
 * required) the run takes it as an argument. Each array stays whole,
 * flat and NULL-ended, as the walkers read it, and names each tensor
 * once (a unit test checks). A family is not its base's rows plus more:
 * Qwen3 lacks Llama's biases, Gemma 3 the rotary frequencies, and
 * `extends` refuses a base's tensor the family does not list.
 */
#ifndef MB_FAMILY_H
#define MB_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "common/modelcfg.h"

/* A size a tensor's shape or a row slice is made of, from the tensors. */
enum mb_dim {
	MB_DIM_NONE = 0,	/* no size: a vector's columns; a row offset 0 */
	MB_DIM_HIDDEN,		/* hidden size (the embedding's columns) */
	MB_DIM_Q,		/* query width: heads x head size */
	MB_DIM_KV,		/* KV width: KV heads x head size */
	MB_DIM_FF,		/* intermediate size (down_proj's columns) */
	MB_DIM_QKV,		/* q + 2 kv: a fused qkv's rows */
	MB_DIM_Q_KV,		/* q + kv: where v starts in a fused qkv */
	MB_DIM_FF2,		/* 2 ff: a fused gate_up's rows */
	MB_DIM_HEAD,		/* the head size a tensor gives (head_tensor) */
	MB_DIM_ANY,		/* as rows: the shape is not checked */
};

/* A layer tensor a family's checkpoints have, named after
 * "model.layers.N.". */
struct mb_family_tensor {
	const char *hf;		/* "self_attn.q_proj.weight"; NULL ends */
	enum mb_dim rows, cols;	/* its shape; cols NONE: a vector of rows */
	int required;		/* in every layer */
};

/* Which head count a q/k tensor is permuted over for llama.cpp's NORM
 * rope (transformers turns the two halves of a head, NORM rope turns
 * neighbouring pairs). NEOX-rope architectures permute nothing. */
enum mb_perm {
	MB_PERM_NONE = 0,
	MB_PERM_Q,		/* num_attention_heads */
	MB_PERM_KV,		/* num_key_value_heads */
};

/* One GGUF tensor of a layer: rows [row0, row0 + rows) of a source
 * tensor, both named after the layer prefix ("blk.N.",
 * "model.layers.N."). row0 NONE and rows NONE: the whole tensor. */
struct mb_family_out {
	const char *gguf;	/* "attn_q.weight"; NULL ends the plan */
	const char *hf;		/* "self_attn.q_proj.weight" */
	enum mb_dim row0, rows;	/* a row slice (fused tensors split) */
	enum mb_perm perm;
	const char *when;	/* written only when this layer tensor exists
				   (NULL: always; a missing source is then an
				   error) */
};

/* GGUF metadata keys a layout writes beyond the common ones
 * (context_length, embedding_length, feed_forward_length, block_count,
 * head counts, rms epsilon, rope.freq_base, rope.dimension_count). */
#define MB_META_VOCAB_SIZE	(1u << 0) /* {arch}.vocab_size */
#define MB_META_HEAD_LENGTHS	(1u << 1) /* attention.key_length and
					     value_length, when the head
					     size is not hidden / heads */
#define MB_META_ORIG_CONTEXT	(1u << 2) /* rope.scaling.original_context_
					     length, always */
#define MB_META_SLIDING_WINDOW	(1u << 3) /* attention.sliding_window, 0
					     when null */
#define MB_META_PARTIAL_ROTARY	(1u << 4) /* rope on part of a head
					     (rope.dimension_count below the
					     head size) */
#define MB_META_SWA_LAYERS	(1u << 5) /* some layers slide, the others
					     attend to all: sliding_window
					     written only when some layer
					     slides, attention.sliding_
					     window_pattern (layer_types or
					     sliding_window_pattern) and
					     rope.freq_base_swa (rope_local_
					     base_freq); never with
					     MB_META_SLIDING_WINDOW */
#define MB_META_FINAL_SOFTCAP	(1u << 6) /* final_logit_softcapping, when
					     set */

/* The rope scalings (config.json rope_scaling's type) a layout carries. */
#define MB_ROPE_LONGROPE	(1u << 0) /* "longrope" or "su": factor
					     tensors and attn_factor */
#define MB_ROPE_LLAMA3		(1u << 1) /* rope_freqs.weight */
#define MB_ROPE_LINEAR		(1u << 2) /* rope.scaling.type linear */
#define MB_ROPE_YARN		(1u << 3) /* rope.scaling.type yarn, factor,
					     original_context_length */

/* How a family is written as GGUF. */
struct mb_family_layout {
	const char *name;	/* "native" or "split" */
	const char *arch;	/* general.architecture: llama.cpp's name */
	const struct mb_family_out *tensors;	/* per layer, in file order */
	unsigned meta;		/* MB_META_* */
	unsigned rope;		/* MB_ROPE_* */
	/* the checkpoint stores norm weights as w - 1 (Gemma's RMSNorm
	 * multiplies by 1 + w, llama.cpp's by the weight): every source
	 * tensor whose name ends in "norm.weight", the output norm's
	 * included, is written plus one, in f32 */
	int norm_plus_one;
};

/* A base model whose config.json values (those shapes cannot give) are
 * known, as published on the hub. */
struct mb_family_base {
	const char *name;	/* "meta-llama/Llama-3.1-8B"; NULL ends */
	const char *config;	/* its config.json */
	const char *aliases[4];	/* other names it goes by on the hub */
};

struct mb_family {
	enum mb_family_id id;
	const char *name;	/* "llama": inspect's family, the report's */
	const char *display;	/* "Llama": in messages */

	/* --- recognition --- */
	/* config.json's names, parallel arrays, NULL-ended: the first pair
	 * is written when the model is repaired; another pair is kept when
	 * the config or base names it (Mistral over Llama's tensors) */
	const char *const *archs;	/* architectures[0] */
	const char *const *model_types;	/* model_type */
	/* the tensors name the family when every marker is seen in some
	 * layer and no exclusion is; the candidate with the most markers
	 * wins. NULL markers: the tensors never name it alone (it shares
	 * another family's, see extends) */
	const char *const *markers;
	const char *const *excludes;
	/* a family whose tensors are another's (plus more): named by
	 * config.json over that family's tensors. Without markers it takes
	 * them when its required tensors are there; with markers, the
	 * config over tensors that lack them is refused, saying so */
	enum mb_family_id extends;		/* MB_FAMILY_UNKNOWN: none */
	const char *required_note;	/* why a required tensor must be
					   there: "Qwen2 has q, k and v biases
					   in every layer" */
	const char *layout_desc;	/* "qkv_proj, gate_up_proj": for the
					   refusal of tensors no family has;
					   NULL: a variant not listed */
	const struct mb_family_tensor *tensors;	/* every layer tensor */
	const char *bias_refusal;	/* bias tensors refused with this
					   reason; NULL: allowed */
	/* the query and KV widths: from this fused tensor's rows (query
	 * hidden wide), or NULL: from q_proj's and k_proj's rows */
	const char *fused_qkv;
	/* a layer-0 tensor one head wide that gives the head size (and
	 * with it the head counts), or NULL */
	const char *head_tensor;
	const char *head_note;		/* why it is one head wide */
	int q_is_hidden;		/* refuse a query width other than the
					   hidden size (llama.cpp needs it) */
	/* evidence for architectures: this layer-0 tensor's name and
	 * shape, or the text (with the head size appended when head_tensor
	 * gives it) */
	const char *layout_tensor;
	const char *layout_text;
	const char *ff_note;		/* appended to intermediate_size's
					   evidence, or NULL */

	/* --- config --- */
	/* config.json keys beyond the common ones (architectures,
	 * model_type, sizes, head counts, tie_word_embeddings,
	 * torch_dtype): head_dim and attention_bias are given from the
	 * tensors, the rest picked from the sources in order of trust;
	 * MB_CFG_NKEYS ends */
	const enum mb_cfg_key *keys;
	const char *defaults;		/* transformers' defaults, JSON */
	const struct mb_family_base *bases;	/* NULL-name ended */

	/* --- GGUF --- */
	const struct mb_family_layout *native;
	const struct mb_family_layout *split;	/* NULL: --layout split
						   writes native */
};

/* Returns the families, in table order; *n gets the count. */
const struct mb_family *const *mb_families(size_t *n);

/* Returns the family with id, or NULL (MB_FAMILY_UNKNOWN included). */
const struct mb_family *mb_family_get(enum mb_family_id id);

/* Returns the family owning architectures name arch (NULL: none); with
 * *variant (may be NULL) set to its index in archs. */
const struct mb_family *mb_family_by_arch(const char *arch, size_t *variant);

/* The same for a model_type. */
const struct mb_family *mb_family_by_model_type(const char *mt,
						size_t *variant);

/* Returns 1 when f lists key k among its keys. */
int mb_family_has_key(const struct mb_family *f, enum mb_cfg_key k);

/* Returns the MB_ROPE_* flag of a rope_scaling type ("longrope" and its
 * old name "su", "llama3", "linear", "yarn"), or 0 for any other. */
unsigned mb_family_rope_kind(const char *type);

/* Returns the layout of f for "native" or "split" (split = 1): the native
 * one when f has no split layout. */
const struct mb_family_layout *mb_family_layout(const struct mb_family *f,
						int split);

/* Returns the size d stands for in c's shapes (0 for MB_DIM_NONE and
 * MB_DIM_ANY, and for a size c does not know yet). */
uint64_t mb_family_dim(const struct mb_modelcfg *c, enum mb_dim d);

#endif
