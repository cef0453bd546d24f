/*
 * tokenizer: a Hugging Face tokenizer turned into a GGUF vocabulary.
 *
 * tokenizer.json with a byte-level BPE model becomes a "gpt2" vocabulary
 * (tokens, token types, merges, the pre-tokenizer name chosen from the
 * Split regex by a table), tokenizer.model (SentencePiece protobuf) a
 * "llama" vocabulary with scores. A tokenizer.json of SentencePiece BPE
 * with byte fallback (Llama 2, Mistral, Gemma without tokenizer.model)
 * becomes a "llama" vocabulary too: byte tokens, and scores from the
 * merge ranks so that llama.cpp merges in the same order. tokenizer_config.json gives the special
 * tokens, add_bos and the chat template (or chat_template.jinja);
 * config.json's *_token_id fill what it does not. The token list is padded
 * to the embedding's rows with "[PADn]" (type UNUSED): llama.cpp takes the
 * vocabulary size from it. Every input file is hostile.
 */
#ifndef MB_TOKENIZER_H
#define MB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct mb_gguf_w;

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum mb_token_type {
	MB_TOK_NORMAL = 1,
	MB_TOK_UNKNOWN = 2,
	MB_TOK_CONTROL = 3,
	MB_TOK_USER_DEFINED = 4,
	MB_TOK_UNUSED = 5,
	MB_TOK_BYTE = 6,
};

struct mb_vocab {
	char model[16];		/* "gpt2" or "llama" */
	char pre[32];		/* gpt2: the pre-tokenizer name; "" for llama */
	uint64_t n;		/* tokens, after padding */
	char **tokens;
	int32_t *types;
	float *scores;		/* llama only; NULL for gpt2 */
	uint64_t nmerges;
	char **merges;		/* "a b"; gpt2 only */
	int64_t bos, eos, pad, unk;	/* -1: none */
	int add_bos, add_eos;	/* -1: not said */
	int add_space_prefix;	/* llama: a U+2581 before the text (from
				   tokenizer.json, or 0 from a
				   tokenizer.model without
				   add_dummy_prefix); -1: not said */
	char *chat_template;	/* NULL: none */
	uint64_t n_real;	/* tokens before padding */
	uint64_t n_renamed;	/* ids whose text another id kept: made
				   padding, as llama.cpp takes one id a text */
};

/* Reads the tokenizer of the model in dir and pads it to n_rows tokens
 * (the embedding's rows; 0: no padding). A vocabulary larger than n_rows
 * is an error (the model could not embed its own tokens). Returns
 * MB_EUNSUPPORTED for tokenizers mibera cannot convert (an unknown
 * pre-tokenizer regex is named in err), MB_EFORMAT/MB_EJSON for broken
 * files, MB_ENOENT when there is no tokenizer. */
int mb_vocab_load_dir(const char *dir, uint64_t n_rows, struct mb_vocab **out,
		      char *err, size_t errcap);

/* Frees v; NULL-safe. */
void mb_vocab_free(struct mb_vocab *v);

/* Adds the tokenizer.ggml.* keys (and tokenizer.chat_template) to w. */
int mb_vocab_to_gguf(const struct mb_vocab *v, struct mb_gguf_w *w);

/* Bounds on hostile tokenizers. The largest real vocabularies have a few
 * hundred thousand tokens of at most a few hundred bytes, and their
 * tokenizer.json is under 20 MB: these leave room and stop a file from
 * making mibera allocate without limit. */
#define MB_VOCAB_MAX_TOKENS (4u << 20)
#define MB_VOCAB_MAX_TOKEN_LEN (64u << 10)
#define MB_VOCAB_MAX_FILE (64u << 20)

/* Returns llama.cpp's tokenizer.ggml.pre name for a Split pre-tokenizer
 * regex exactly as tokenizer.json spells it (ignore_merges: the BPE model's
 * flag, which tells Llama 3's "llama-bpe" from "dbrx" for the same
 * regex), or NULL when the regex is not in mibera's table. */
const char *mb_vocab_pre_name(const char *regex, int ignore_merges);

/* Parses a tokenizer.json of len bytes alone into a "gpt2" vocabulary (or
 * "llama" for SentencePiece BPE): no padding, no special ids beyond the
 * unk token, no chat template. Errors as mb_vocab_load_dir.
 * The caller frees *out with mb_vocab_free. For tests and fuzzing. */
int mb_vocab_parse_tokenizer_json(const char *json, size_t len,
				  struct mb_vocab **out, char *err,
				  size_t errcap);

/* Parses a SentencePiece tokenizer.model of len bytes alone into a "llama"
 * vocabulary (pieces, scores, types as in the proto; no padding). */
int mb_vocab_parse_spm(const void *buf, size_t len, struct mb_vocab **out,
		       char *err, size_t errcap);

#endif
