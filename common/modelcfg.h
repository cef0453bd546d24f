/*
 * modelcfg: what a model really is, from its tensors, reconciled with what
 * its config.json claims.
 *
 * Shapes are the truth for everything they can give (vocab rows, hidden
 * size, layer count, KV width, intermediate size, biases, tied output).
 * What shapes cannot give (head count, rope theta, eps, context length,
 * sliding window, rope scaling) comes, in order, from:
 *   1. the base model named by the card (base_model:) or config.json
 *      (_name_or_path), when its shapes match the tensors: its config from
 *      the hub if the caller fetched it, else the built-in table;
 *   2. a known base from the table whose shapes match the tensors;
 *   3. config.json, when it describes the same family and agrees with the
 *      shapes (head_dim dividing the query and KV widths);
 *   4. the named base when it is of the same family but other shapes;
 *   5. family defaults, flagged as such.
 * A fine-tune does not change head counts, so a matching base outranks the
 * fine-tune's own config.json. Each value records where it came from.
 * config.json and base configs are hostile input.
 */
#ifndef MB_MODELCFG_H
#define MB_MODELCFG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct mb_buf;
struct mb_st_model;

/* The families mibera converts; each is described by a struct mb_family
 * in common/family/ (family.h says how to add one). Append only. */
enum mb_family_id {
	MB_FAMILY_UNKNOWN = 0,
	MB_FAMILY_PHI3,	 /* Phi-3, Phi-3.5, Phi-4: fused qkv and gate_up */
	MB_FAMILY_LLAMA, /* Llama, Mistral: separate q/k/v and gate/up */
	MB_FAMILY_QWEN2, /* Llama's tensors plus q/k/v biases, NEOX rope */
	MB_FAMILY_QWEN3, /* Llama's tensors plus per-head q/k RMS norms */
	MB_FAMILY_GEMMA3, /* Qwen3's tensors plus norms after attention and
			     MLP; (1 + w) norms, sliding layers */
};

/* Where a value came from. Numbered for the JSON report; append only. */
enum mb_src {
	MB_SRC_NONE = 0,
	MB_SRC_TENSORS = 1,	/* a tensor's shape or presence */
	MB_SRC_BASE_HUB = 2,	/* the named base's config.json, from the hub */
	MB_SRC_BASE_TABLE = 3,	/* the named base, built-in table */
	MB_SRC_KNOWN_BASE = 4,	/* a table base whose shapes match */
	MB_SRC_CONFIG = 5,	/* the model's own config.json */
	MB_SRC_BASE_FAMILY = 6,	/* a named base of the family, other shapes */
	MB_SRC_DEFAULT = 7,	/* the family's default: a guess, flagged */
	MB_SRC_DERIVED = 8,	/* computed from other values */
	MB_SRC_USER = 9,	/* set by the user (--set, --base) */
};

/* The config.json keys mibera reconciles. Numbered; append only. */
enum mb_cfg_key {
	MB_CFG_ARCHITECTURES,
	MB_CFG_MODEL_TYPE,
	MB_CFG_VOCAB_SIZE,
	MB_CFG_HIDDEN_SIZE,
	MB_CFG_NUM_HIDDEN_LAYERS,
	MB_CFG_INTERMEDIATE_SIZE,
	MB_CFG_NUM_ATTENTION_HEADS,
	MB_CFG_NUM_KEY_VALUE_HEADS,
	MB_CFG_HEAD_DIM,
	MB_CFG_ROPE_THETA,
	MB_CFG_RMS_NORM_EPS,
	MB_CFG_MAX_POSITION_EMBEDDINGS,
	MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS,
	MB_CFG_SLIDING_WINDOW,
	MB_CFG_ROPE_SCALING,
	MB_CFG_PARTIAL_ROTARY_FACTOR,
	MB_CFG_TIE_WORD_EMBEDDINGS,
	MB_CFG_ATTENTION_BIAS,
	MB_CFG_TORCH_DTYPE,
	/* Gemma 3 */
	MB_CFG_ROPE_LOCAL_BASE_FREQ,	/* the sliding layers' rope base */
	MB_CFG_QUERY_PRE_ATTN_SCALAR,	/* scores times its -1/2 power */
	MB_CFG_ATTN_LOGIT_SOFTCAPPING,	/* null, or scores capped */
	MB_CFG_FINAL_LOGIT_SOFTCAPPING,	/* null, or logits capped */
	MB_CFG_SLIDING_WINDOW_PATTERN,	/* every n-th layer global */
	MB_CFG_LAYER_TYPES,		/* per layer: "sliding_attention" or
					   "full_attention" */
	MB_CFG_NKEYS
};

struct mb_cfg_value {
	cJSON *value;		/* NULL: not applicable to this family */
	enum mb_src src;
	char evidence[200];	/* the tensor and shape, or the source */
	cJSON *claimed;		/* config.json's value; NULL when absent */
	int repaired;		/* claimed is missing or differs */
};

struct mb_modelcfg {
	enum mb_family_id family;
	int convertible;		/* 0: see reason */
	char reason[512];		/* why not, naming what was seen */
	char base_name[128];		/* named base ("" if none) */
	int base_by_user;		/* named by --base */
	int base_matches;		/* its shapes match the tensors */
	char known_base[128];		/* table base matched by shapes */
	int config_family_matches;	/* config.json is of this family */
	int heads_ambiguous;		/* nothing settled the head count */
	char heads_note[300];
	/* from the tensors */
	uint64_t vocab_rows, hidden, layers, ff, q_width, kv_width;
	uint64_t head_dim;		/* q_norm's size (Qwen3); 0: not given */
	int has_bias, tied;
	uint64_t params;		/* elements over all tensors */
	struct mb_cfg_value v[MB_CFG_NKEYS];
	cJSON *config;			/* the parsed config.json, or NULL */
	size_t nwarnings;
	char warnings[8][256];
};

/* What a person settles that the files cannot (inspect and submit's
 * --set KEY=VALUE and --base ORG/NAME). */
struct mb_modelcfg_user {
	const char *base;	/* the base model; NULL: the card's */
	const cJSON *set;	/* {"num_attention_heads": 24, ...}; NULL: none */
};

/* Reads one "KEY=VALUE" into set (a JSON object): KEY must be a
 * config.json key mibera reconciles that the tensors cannot give (the
 * head counts and size, rope and context values, the norm epsilon);
 * VALUE is JSON (24, 1e-5, null, {"type":"longrope",...}). A key given
 * twice takes the later value. MB_EINVAL with err saying what is wrong
 * and what can be set. */
int mb_modelcfg_user_set(cJSON *set, const char *kv, char *err,
			 size_t errcap);

/* Returns the config.json key name of k ("num_attention_heads"). */
const char *mb_cfg_key_name(enum mb_cfg_key k);

/* Returns a short name for a source ("tensors", "config.json" ...). */
const char *mb_src_name(enum mb_src s);

/* Returns the family's name ("phi3", "llama", ...) or "unknown". */
const char *mb_family_name(enum mb_family_id f);

/* Finds the base model a repo names: the model card's front matter
 * (base_model: as a string or the first of a list) first, then
 * config.json's _name_or_path. Writes "" when there is none or it is not a
 * valid org/name. card and config may be NULL. */
void mb_modelcfg_base_name(const char *card, size_t card_len,
			   const char *config, size_t config_len, char *out,
			   size_t cap);

/* Infers the model from m's tensors and reconciles config.json (NULL: no
 * config), the card (NULL: none) and, when the caller fetched it, the
 * named base's config.json (base_config NULL: use the table). The result
 * (free with mb_modelcfg_free) says whether the model is convertible and
 * why not. A config.json that is not a JSON object, or has values of the
 * wrong type, is reported in the warnings and repaired, not an error.
 * Returns MB_ENOMEM (no result) when memory runs out. */
int mb_modelcfg_infer(const struct mb_st_model *m, const char *config,
		      size_t config_len, const char *card, size_t card_len,
		      const char *base_config, size_t base_len,
		      struct mb_modelcfg **out, char *err, size_t errcap);

/* mb_modelcfg_infer with what the user settled (user may be NULL): a set
 * value outranks every other source (one the tensors contradict makes the
 * model not convertible, saying so), and user->base replaces the base
 * the card names (base_config is then that base's config.json). */
int mb_modelcfg_infer_user(const struct mb_st_model *m, const char *config,
			   size_t config_len, const char *card,
			   size_t card_len, const char *base_config,
			   size_t base_len,
			   const struct mb_modelcfg_user *user,
			   struct mb_modelcfg **out, char *err, size_t errcap);

/* Frees c; NULL-safe. */
void mb_modelcfg_free(struct mb_modelcfg *c);

/* Which of c's layers attend to a sliding window, for a family with
 * layer_types or sliding_window_pattern (as transformers reads them:
 * layer_types, else every pattern-th layer global): swa[il] set to 1 or
 * 0 for il below c->layers (swa holds that many). Returns the number of
 * sliding layers; 0 for a family without those keys. */
size_t mb_modelcfg_swa_layers(const struct mb_modelcfg *c, unsigned char *swa);

/* Returns the number of fields that are repaired. */
size_t mb_modelcfg_nrepairs(const struct mb_modelcfg *c);

/* Appends the repaired config.json (pretty-printed JSON) to b: the
 * original's other keys kept when it is of the same family, dropped (and
 * listed in the report) when it described another model. */
int mb_modelcfg_repaired_json(const struct mb_modelcfg *c, struct mb_buf *b);

/* Appends the reconciliation as a JSON object to b (schema in
 * proto/PROTOCOL.md, "inspect report"). */
int mb_modelcfg_report_json(const struct mb_modelcfg *c, struct mb_buf *b);

/* Size estimates. */
struct mb_quant_estimate {
	const char *type;	/* "Q4_K_M" */
	uint64_t bytes;		/* estimated GGUF size */
	uint64_t ram;		/* to run it on a CPU: mb_run_ram_estimate */
};

struct mb_quant_type {
	const char *name;
	double bpw;
	int ftype;	/* llama_ftype */
	int imatrix;	/* 2: needs an importance matrix, 1: gains from one
			 * (below 5 bits), 0: no use for one */
};

/* The quant types mibera knows, with their bits per weight (llama.cpp's
 * mixes, measured on Llama-class models). Returns the count; *types gets
 * a static table. */
size_t mb_quant_types(const struct mb_quant_type **types);

/* Finds a quant type by name (case-insensitive), or NULL. */
const struct mb_quant_type *mb_quant_find(const char *name);

/* Reads a person's list of quant types ("q4_k_m, Q8_0,Q4_K_M") into out
 * as the canonical names, comma-separated, each once, in the order
 * given: names are trimmed and matched case-insensitively. F16 and BF16
 * are refused (a job always makes the float GGUF), as is any name that
 * is not a quant type: MB_EINVAL with err naming it and listing the
 * valid types. */
int mb_quant_list_parse(const char *in, char *out, size_t cap, char *err,
			size_t errcap);

/* What llama.cpp needs to run a GGUF on the CPU the way the smoke test
 * loads it: the file mapped (no repacked second copy), an f16 KV cache of
 * MB_RUN_CTX tokens, and compute buffers for MB_RUN_UBATCH tokens. */
#define MB_RUN_CTX 4096
#define MB_RUN_UBATCH 512

struct mb_run_ram {
	uint64_t weights;	/* the GGUF file, mapped */
	uint64_t kv;		/* K and V, f16, MB_RUN_CTX tokens */
	uint64_t compute;	/* compute buffers and the runtime */
	uint64_t total;		/* the sum */
};

/* Fills out for a GGUF of file_bytes with the given shape (kv_width: KV
 * heads times head size; vocab: logits rows; ff may be 0). */
void mb_run_ram_estimate(uint64_t file_bytes, uint64_t layers,
			 uint64_t kv_width, uint64_t vocab, uint64_t hidden,
			 uint64_t ff, struct mb_run_ram *out);

struct mb_estimate {
	uint64_t download;	/* the shards (and side files given) */
	uint64_t f16;		/* the F16 GGUF */
	size_t nquants;
	struct mb_quant_estimate quants[32];	/* every type in the table */
	uint64_t worker_disk;	/* download + f16 + the requested quants */
};

/* Estimates sizes for the requested quant names (NULL-terminated; NULL
 * means every known type, and the worker disk then counts Q4_K_M).
 * extra_download: bytes of side files to add. MB_EINVAL for an unknown
 * quant name. */
int mb_modelcfg_estimate(const struct mb_modelcfg *c,
			 const struct mb_st_model *m, const char *const *quants,
			 uint64_t extra_download, struct mb_estimate *out);

#endif
