/*
 * tokenizer: Hugging Face tokenizers turned into GGUF vocabularies, the way
 * llama.cpp's convert_hf_to_gguf.py does it (conversion/base.py
 * get_vocab_base and _create_vocab_sentencepiece, gguf-py vocab.py
 * SpecialVocab), without Python: tokenizer.json and tokenizer.model are
 * parsed here, and the pre-tokenizer is named from its regex by a table
 * instead of by hashing a sample's tokens.
 */
#include "common/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"

/* tokenizer_config.json, config.json and added_tokens.json: a few KB, up
 * to a few MB when added_tokens_decoder lists thousands of tokens. */
#define MAX_SMALL_JSON (16u << 20)
/* The largest chat templates on the hub are tens of KB; a GGUF string
 * holds at most MB_GGUF_MAX_STRING bytes. */
#define MAX_TEMPLATE MB_GGUF_MAX_STRING
/* The score convert_hf_to_gguf.py gives padding and added tokens. */
#define PAD_SCORE (-1000.0f)
#define MAX_PATH_LEN 4096

/* ---------------------------------------------------------------- table */

/* HF tokenizers' ByteLevel pre-tokenizer regex (use_regex: true), which is
 * GPT-2's. */
#define GPT2_REGEX                                                          \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|" \
	"\\s+(?!\\S)|\\s+"

/*
 * Split regexes as tokenizer.json spells them, and the name llama.cpp
 * (src/llama-vocab.cpp, pinned de3ff815) gives the pre-tokenizer that
 * splits the same way. The regexes are those llama-vocab.cpp quotes as
 * "original regex from tokenizer.json" next to each type; the cl100k and
 * Qwen2 rows are also the two Ollama's converter keys by the regex's
 * sha256. Each row's names are in llama-vocab.cpp's name list. The
 * "(?:'[sS]|..." spellings are llama.cpp's own rewrites of the same
 * regexes: a tokenizer.json written from them is mapped as well.
 *
 * cl100k (Phi-4, DBRX, Llama 3) has two names for one regex: "llama-bpe"
 * also turns on ignore_merges (a word that is a token is taken whole), which
 * is Llama 3's tokenizer.json model flag; "dbrx" is the same split without
 * it, as Phi-4's tokenizer.json has it.
 */
static const struct {
	const char *regex;
	const char *name;
	const char *name_ignore_merges;	/* NULL: the same as name */
} pre_table[] = {
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
	  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
	  "\\s+(?!\\S)|\\s+",
	  "dbrx", "llama-bpe" },
	{ "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
	  "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
	  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
	  "dbrx", "llama-bpe" },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
	  "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
	  "\\s+(?!\\S)|\\s+",
	  "qwen2", NULL },
	{ "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|"
	  "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
	  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
	  "qwen2", NULL },
	{ GPT2_REGEX, "gpt-2", NULL },
	/* llama-vocab.cpp's spelling, without the final |\s+ */
	{ "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
	  "\\s+(?!\\S)",
	  "gpt-2", NULL },
	{ "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*"
	  "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
	  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
	  "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
	  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
	  "\\s+(?!\\S)|\\s+",
	  "gpt-4o", NULL },
	{ "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*"
	  "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?"
	  "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
	  "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
	  "\\s+(?!\\S)|\\s+",
	  "tekken", NULL },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|"
	  "\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
	  "\\s+(?!\\S)|\\s+",
	  "qwen35", NULL },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?"
	  "(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
	  "[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
	  "exaone-moe", NULL },
	{ "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| "
	  "?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
	  "bailingmoe", NULL },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
	  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
	  "\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|"
	  "\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|"
	  "\\s{1,2}(?!\\S)|\\s{1}",
	  "jais-2", NULL },
};

const char *mb_vocab_pre_name(const char *regex, int ignore_merges)
{
	size_t i;

	for (i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]); i++)
		if (strcmp(regex, pre_table[i].regex) == 0)
			return ignore_merges && pre_table[i].name_ignore_merges
				       ? pre_table[i].name_ignore_merges
				       : pre_table[i].name;
	return NULL;
}

/* ---------------------------------------------------------------- vocab */

void mb_vocab_free(struct mb_vocab *v)
{
	uint64_t i;

	if (v == NULL)
		return;
	if (v->tokens != NULL)
		for (i = 0; i < v->n; i++)
			free(v->tokens[i]);
	if (v->merges != NULL)
		for (i = 0; i < v->nmerges; i++)
			free(v->merges[i]);
	free(v->tokens);
	free(v->types);
	free(v->scores);
	free(v->merges);
	free(v->chat_template);
	free(v);
}

static struct mb_vocab *vocab_new(void)
{
	struct mb_vocab *v = mb_calloc(1, sizeof(*v));

	if (v == NULL)
		return NULL;
	v->bos = v->eos = v->pad = v->unk = -1;
	v->add_bos = v->add_eos = v->add_space_prefix = -1;
	return v;
}

/* Allocates n (>= 1) empty token slots; type 0 marks a slot not yet set. */
static int vocab_alloc(struct mb_vocab *v, uint64_t n, int scores)
{
	v->tokens = mb_calloc((size_t)n, sizeof(*v->tokens));
	if (v->tokens == NULL)
		return MB_ENOMEM;
	v->n = n;
	v->types = mb_calloc((size_t)n, sizeof(*v->types));
	if (v->types == NULL)
		return MB_ENOMEM;
	if (scores) {
		v->scores = mb_calloc((size_t)n, sizeof(*v->scores));
		if (v->scores == NULL)
			return MB_ENOMEM;
	}
	return 0;
}

/* Checks the vocabulary's size against the embedding and returns the
 * number of slots to allocate. */
static int vocab_size(uint64_t n_real, uint64_t n_rows, uint64_t *n,
		      char *err, size_t errcap)
{
	if (n_rows > 0 && n_real > n_rows) {
		mb_seterr(err, errcap,
		       "the vocabulary has %llu tokens, more than the %llu "
		       "rows of the token embedding",
		       (unsigned long long)n_real, (unsigned long long)n_rows);
		return MB_EFORMAT;
	}
	if (n_rows > MB_VOCAB_MAX_TOKENS) {
		mb_seterr(err, errcap, "%llu embedding rows are more than the "
		       "%u tokens mibera allows", (unsigned long long)n_rows,
		       MB_VOCAB_MAX_TOKENS);
		return MB_ETOOBIG;
	}
	*n = n_real > n_rows ? n_real : n_rows;
	return 0;
}

/* Fills every unset slot with "[PAD<id>]", UNUSED (the holes in a sparse
 * vocabulary and the rows past it), as convert_hf_to_gguf.py does. */
static int vocab_pad(struct mb_vocab *v)
{
	char name[32];
	uint64_t i;

	for (i = 0; i < v->n; i++) {
		if (v->tokens[i] != NULL)
			continue;
		snprintf(name, sizeof(name), "[PAD%llu]", (unsigned long long)i);
		v->tokens[i] = mb_strdup(name);
		if (v->tokens[i] == NULL)
			return MB_ENOMEM;
		v->types[i] = MB_TOK_UNUSED;
		if (v->scores != NULL)
			v->scores[i] = PAD_SCORE;
	}
	return 0;
}

/* Which of two tokens with the same text keeps it: an added token (the
 * tokenizer decodes to it) before an ordinary one, an ordinary one before
 * padding, then the lower id. */
static int dup_rank(int32_t type)
{
	return type == MB_TOK_CONTROL || type == MB_TOK_USER_DEFINED ? 0
	       : type == MB_TOK_UNUSED ? 2 : 1;
}

struct dup_entry {
	const char *text;
	uint64_t id;
	int rank;
};

static int dup_cmp(const void *a, const void *b)
{
	const struct dup_entry *x = a, *y = b;
	int c = strcmp(x->text, y->text);

	if (c != 0)
		return c;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* llama.cpp maps each token's text to one id and refuses a vocabulary
 * where two ids share a text (the loader asserts that both maps have the
 * same size, and aborts). A repo can hold such a vocabulary: an added
 * token with a vocabulary token's text at another id, a key twice in
 * tokenizer.json, a "[PADn]" filler that is also a real token. The
 * tokenizer library maps the text to one id too, which leaves the other a
 * hole: that id becomes padding ("[PAD<id>]", UNUSED) as
 * convert_hf_to_gguf.py makes holes, with a suffix while that name is
 * taken as well. */
static int vocab_dedupe(struct mb_vocab *v)
{
	struct dup_entry *e;
	uint64_t i, changed;
	int pass, rc = 0;

	if (v->n == 0)
		return 0;
	e = mb_calloc(v->n, sizeof(*e));
	if (e == NULL)
		return MB_ENOMEM;
	for (pass = 0; pass < 16; pass++) {
		for (i = 0; i < v->n; i++) {
			e[i].text = v->tokens[i];
			e[i].id = i;
			e[i].rank = dup_rank(v->types[i]);
		}
		qsort(e, v->n, sizeof(*e), dup_cmp);
		changed = 0;
		for (i = 1; i < v->n; i++) {
			char name[64];
			char *t;
			uint64_t id = e[i].id;

			if (strcmp(e[i].text, e[i - 1].text) != 0)
				continue;
			if (pass == 0)
				snprintf(name, sizeof(name), "[PAD%llu]",
					 (unsigned long long)id);
			else
				snprintf(name, sizeof(name), "[PAD%llu_%d]",
					 (unsigned long long)id, pass);
			t = mb_strdup(name);
			if (t == NULL) {
				rc = MB_ENOMEM;
				goto out;
			}
			/* e[i].text points into the token being replaced; the
			 * next comparison uses e[i - 1] of the next pair,
			 * which is e[i]: keep its text alive until the pass
			 * ends by comparing against the kept copy instead */
			e[i].text = e[i - 1].text;
			free(v->tokens[id]);
			v->tokens[id] = t;
			v->types[id] = MB_TOK_UNUSED;
			if (v->scores != NULL)
				v->scores[id] = PAD_SCORE;
			changed++;
		}
		if (pass == 0)
			v->n_renamed = changed;
		if (changed == 0)
			goto out;
	}
	rc = MB_EFORMAT; /* cannot happen: each pass names fewer tokens */
out:
	free(e);
	return rc;
}

/* Returns the first id holding text, or -1. */
static int64_t vocab_find(const struct mb_vocab *v, const char *text)
{
	uint64_t i;

	for (i = 0; i < v->n; i++)
		if (v->tokens[i] != NULL && strcmp(v->tokens[i], text) == 0)
			return (int64_t)i;
	return -1;
}

static int starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int ends(const char *s, const char *p)
{
	size_t n = strlen(s), m = strlen(p);

	return n >= m && memcmp(s + n - m, p, m) == 0;
}

/* convert_hf_to_gguf.py's does_token_look_special: added tokens some
 * models forget to mark special, which must still be CONTROL. */
static int looks_special(const char *s)
{
	return strcmp(s, "<pad>") == 0 || strcmp(s, "<mask>") == 0 ||
	       strcmp(s, "<2mass>") == 0 || strcmp(s, "[@BOS@]") == 0 ||
	       (starts(s, "<|") && ends(s, "|>")) ||
	       /* deepseek-coder's fullwidth bars */
	       (starts(s, "<\xef\xbd\x9c") && ends(s, "\xef\xbd\x9c>")) ||
	       (starts(s, "<unused") && ends(s, ">"));
}

/* Replaces SentencePiece's space "\xe2\x96\x81" by " " in place: llama.cpp
 * takes user-defined tokens as already normalized (convert_hf_to_gguf.py
 * does the same). */
static void unescape_spm_space(char *s)
{
	char *r = s, *w = s;

	while (*r != '\0') {
		if (strncmp(r, "\xe2\x96\x81", 3) == 0) {
			*w++ = ' ';
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* ---------------------------------------------------------------- added */

struct added {
	uint64_t id;
	const char *text;	/* in a cJSON document the caller keeps */
	int special;
};

struct added_list {
	struct added *a;
	size_t n, cap;
};

static void added_release(struct added_list *l)
{
	free(l->a);
	l->a = NULL;
	l->n = l->cap = 0;
}

/* Reads a token id: an integral JSON number below the token limit. */
static int json_id(const cJSON *v, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= 0) || d != floor(d) || d >= (double)MB_VOCAB_MAX_TOKENS)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

/* Reads a token id written as a decimal string (added_tokens_decoder's
 * keys). */
static int str_id(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v >= MB_VOCAB_MAX_TOKENS)
			return -1;
	}
	*out = v;
	return 0;
}

static int added_push(struct added_list *l, uint64_t id, const char *text,
		      int special, const char *file, char *err, size_t errcap)
{
	if (strlen(text) > MB_VOCAB_MAX_TOKEN_LEN) {
		mb_seterr(err, errcap, "%s: added token %llu is longer than %u "
		       "bytes", file, (unsigned long long)id,
		       MB_VOCAB_MAX_TOKEN_LEN);
		return MB_ETOOBIG;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct added *a;

		if (l->cap >= MB_VOCAB_MAX_TOKENS) {
			mb_seterr(err, errcap, "%s: more than %u added tokens",
			       file, MB_VOCAB_MAX_TOKENS);
			return MB_ETOOBIG;
		}
		a = mb_realloc(l->a, cap * sizeof(*a));
		if (a == NULL)
			return MB_ENOMEM;
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n].id = id;
	l->a[l->n].text = text;
	l->a[l->n].special = special;
	l->n++;
	return 0;
}

/* tokenizer.json's added_tokens: [{"id": N, "content": "...",
 * "special": bool}, ...]. */
static int added_from_tokenizer_json(const cJSON *doc, struct added_list *l,
				     char *err, size_t errcap)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "added_tokens");
	const cJSON *it;
	size_t i = 0;
	int rc;

	if (arr == NULL || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr)) {
		mb_seterr(err, errcap, "tokenizer.json: added_tokens is not a list");
		return MB_EFORMAT;
	}
	cJSON_ArrayForEach(it, arr) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
		uint64_t id;

		if (!cJSON_IsObject(it) || !cJSON_IsString(c) ||
		    json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id)) {
			mb_seterr(err, errcap, "tokenizer.json: added token %zu "
			       "needs an id in 0..%u and a content string", i,
			       MB_VOCAB_MAX_TOKENS - 1);
			return MB_EFORMAT;
		}
		rc = added_push(l, id, c->valuestring,
				cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
					it, "special")),
				"tokenizer.json", err, errcap);
		if (rc != 0)
			return rc;
		i++;
	}
	return 0;
}

/* added_tokens.json: {"content": id, ...}; never special (convert_hf_to_
 * gguf.py makes them USER_DEFINED, unless they look special). */
static int added_from_added_json(const cJSON *doc, struct added_list *l,
				 char *err, size_t errcap)
{
	const cJSON *it;
	int rc;

	cJSON_ArrayForEach(it, doc) {
		uint64_t id;

		if (json_id(it, &id)) {
			mb_seterr(err, errcap, "added_tokens.json: '%.64s' needs an "
			       "id in 0..%u", it->string,
			       MB_VOCAB_MAX_TOKENS - 1);
			return MB_EFORMAT;
		}
		rc = added_push(l, id, it->string, 0, "added_tokens.json",
				err, errcap);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* tokenizer_config.json's added_tokens_decoder: {"id": {"content": "...",
 * "special": bool}, ...}. */
static int added_from_decoder(const cJSON *tcfg, struct added_list *l,
			      char *err, size_t errcap)
{
	const cJSON *dec, *it;
	int rc;

	dec = cJSON_GetObjectItemCaseSensitive(tcfg, "added_tokens_decoder");
	if (dec == NULL || cJSON_IsNull(dec))
		return 0;
	if (!cJSON_IsObject(dec)) {
		mb_seterr(err, errcap, "tokenizer_config.json: "
		       "added_tokens_decoder is not an object");
		return MB_EFORMAT;
	}
	cJSON_ArrayForEach(it, dec) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
		uint64_t id;

		if (str_id(it->string, &id) || !cJSON_IsObject(it) ||
		    !cJSON_IsString(c)) {
			mb_seterr(err, errcap, "tokenizer_config.json: "
			       "added_tokens_decoder entry '%.32s' needs an id "
			       "in 0..%u and a content string", it->string,
			       MB_VOCAB_MAX_TOKENS - 1);
			return MB_EFORMAT;
		}
		rc = added_push(l, id, c->valuestring,
				cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
					it, "special")),
				"tokenizer_config.json", err, errcap);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Puts the added tokens with ids >= min_id into v: special ones (or ones
 * that look special) CONTROL, the others USER_DEFINED, as
 * convert_hf_to_gguf.py does. An added token replaces an ordinary token of
 * the same id (the tokenizer library decodes the id to the added text);
 * two added tokens may share an id only with the same text. */
static int apply_added(struct mb_vocab *v, const struct added_list *l,
		       uint64_t min_id, char *err, size_t errcap)
{
	char *text = NULL;
	size_t i;
	int rc = 0;

	for (i = 0; i < l->n; i++) {
		const struct added *a = &l->a[i];
		int32_t type;

		if (a->id < min_id)
			continue;
		text = mb_strdup(a->text);
		if (text == NULL) {
			rc = MB_ENOMEM;
			goto out;
		}
		type = MB_TOK_CONTROL;
		if (!a->special && !looks_special(text)) {
			type = MB_TOK_USER_DEFINED;
			unescape_spm_space(text);
		}
		if (v->tokens[a->id] != NULL &&
		    v->types[a->id] != MB_TOK_NORMAL) {
			if (strcmp(v->tokens[a->id], text) != 0) {
				mb_seterr(err, errcap, "added token id %llu is "
				       "given to both '%.64s' and '%.64s'",
				       (unsigned long long)a->id,
				       v->tokens[a->id], text);
				rc = MB_EFORMAT;
				goto out;
			}
			if (type == MB_TOK_CONTROL)
				v->types[a->id] = type;
			free(text);
			text = NULL;
			continue;
		}
		free(v->tokens[a->id]);
		v->tokens[a->id] = text;
		text = NULL;
		v->types[a->id] = type;
		if (v->scores != NULL)
			v->scores[a->id] = PAD_SCORE;
	}
out:
	free(text);
	return rc;
}

/* ---------------------------------------------------------------- gpt2 */

static int gpt2_merges(struct mb_vocab *v, const cJSON *model, char *err,
		       size_t errcap)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *it;
	struct mb_buf b;
	uint64_t i = 0;
	int count, rc = MB_EFORMAT;

	mb_buf_init(&b, 6 * (size_t)MB_VOCAB_MAX_TOKEN_LEN + 1);
	if (!cJSON_IsArray(m) || (count = cJSON_GetArraySize(m)) == 0) {
		mb_seterr(err, errcap, "tokenizer.json: the BPE model has no "
		       "merges list");
		goto out;
	}
	if ((unsigned)count > MB_VOCAB_MAX_TOKENS) {
		mb_seterr(err, errcap, "tokenizer.json: more than %u merges",
		       MB_VOCAB_MAX_TOKENS);
		rc = MB_ETOOBIG;
		goto out;
	}
	rc = MB_ENOMEM;
	v->merges = mb_calloc((size_t)count, sizeof(*v->merges));
	if (v->merges == NULL)
		goto out;
	v->nmerges = (uint64_t)count;
	cJSON_ArrayForEach(it, m) {
		const char *s;

		if (i == v->nmerges)
			break;
		if (cJSON_IsString(it)) {
			/* "a b": llama.cpp splits at the first space after
			 * the first byte */
			s = it->valuestring;
			if (strlen(s) > 2 * (size_t)MB_VOCAB_MAX_TOKEN_LEN + 1) {
				mb_seterr(err, errcap, "tokenizer.json: merge %llu "
				       "is longer than %u bytes",
				       (unsigned long long)i,
				       2 * MB_VOCAB_MAX_TOKEN_LEN + 1);
				rc = MB_ETOOBIG;
				goto out;
			}
			if (s[0] == '\0' || strchr(s + 1, ' ') == NULL) {
				mb_seterr(err, errcap, "tokenizer.json: merge %llu "
				       "('%.64s') is not two tokens and a space",
				       (unsigned long long)i, s);
				rc = MB_EFORMAT;
				goto out;
			}
			v->merges[i] = mb_strdup(s);
		} else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
			   cJSON_IsString(it->child) &&
			   cJSON_IsString(it->child->next) &&
			   it->child->valuestring[0] != '\0' &&
			   it->child->next->valuestring[0] != '\0') {
			/* ["a", "b"] (transformers >= 4.45, so tokens may
			 * hold spaces): written "a b" with a space inside a
			 * token as U+0120, as gguf-py does */
			const cJSON *part;

			mb_buf_reset(&b);
			cJSON_ArrayForEach(part, it) {
				const char *p = part->valuestring;

				if (strlen(p) > MB_VOCAB_MAX_TOKEN_LEN) {
					mb_seterr(err, errcap, "tokenizer.json: "
					       "merge %llu has a token longer "
					       "than %u bytes",
					       (unsigned long long)i,
					       MB_VOCAB_MAX_TOKEN_LEN);
					rc = MB_ETOOBIG;
					goto out;
				}
				rc = 0;
				if (part != it->child)
					rc = mb_buf_add(&b, " ", 1);
				for (; rc == 0 && *p != '\0'; p++)
					rc = *p == ' '
						     ? mb_buf_add(&b, "\xc4\xa0", 2)
						     : mb_buf_add(&b, p, 1);
				if (rc != 0)
					goto out;
			}
			v->merges[i] = mb_strdup(b.data);
		} else {
			mb_seterr(err, errcap, "tokenizer.json: merge %llu is "
			       "neither \"a b\" nor [\"a\", \"b\"]",
			       (unsigned long long)i);
			rc = MB_EFORMAT;
			goto out;
		}
		rc = MB_ENOMEM;
		if (v->merges[i] == NULL)
			goto out;
		i++;
	}
	rc = 0;
out:
	mb_buf_release(&b);
	return rc;
}

/* Finds the pre-tokenizer regex: the one Split of a Sequence of Split and
 * ByteLevel (use_regex false), or a lone ByteLevel with use_regex, which is
 * GPT-2's regex. Anything else llama.cpp could not reproduce. */
static int gpt2_pre(struct mb_vocab *v, const cJSON *doc, int ignore_merges,
		    char *err, size_t errcap)
{
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(doc, "pre_tokenizer");
	const cJSON *list, *it, *type;
	const char *regex = NULL, *name;
	int bytelevel = 0, use_regex = 0;

	if (!cJSON_IsObject(pt)) {
		mb_seterr(err, errcap, "tokenizer.json has no pre-tokenizer");
		return MB_EUNSUPPORTED;
	}
	type = cJSON_GetObjectItemCaseSensitive(pt, "type");
	list = NULL;
	if (cJSON_IsString(type) && strcmp(type->valuestring, "Sequence") == 0) {
		list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
		if (!cJSON_IsArray(list)) {
			mb_seterr(err, errcap, "tokenizer.json: the Sequence "
			       "pre-tokenizer has no pretokenizers list");
			return MB_EFORMAT;
		}
		it = list->child;
	} else {
		it = pt;
	}
	for (; it != NULL; it = list != NULL ? it->next : NULL) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");

		if (!cJSON_IsString(t)) {
			mb_seterr(err, errcap, "tokenizer.json: a pre-tokenizer "
			       "has no type");
			return MB_EFORMAT;
		}
		if (strcmp(t->valuestring, "ByteLevel") == 0) {
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(
				it, "use_regex");

			bytelevel = 1;
			/* the tokenizers library's default is true */
			if (u == NULL || cJSON_IsTrue(u))
				use_regex = 1;
		} else if (strcmp(t->valuestring, "Split") == 0) {
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(
				it, "pattern");
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(
				p, "Regex");

			if (!cJSON_IsString(r)) {
				mb_seterr(err, errcap, "tokenizer.json: a Split "
				       "pre-tokenizer without a Regex pattern "
				       "is not supported");
				return MB_EUNSUPPORTED;
			}
			if (regex != NULL) {
				mb_seterr(err, errcap, "tokenizer.json: more than "
				       "one Split pre-tokenizer is not "
				       "supported");
				return MB_EUNSUPPORTED;
			}
			regex = r->valuestring;
		} else {
			mb_seterr(err, errcap, "tokenizer.json: pre-tokenizer "
			       "'%.32s' is not supported", t->valuestring);
			return MB_EUNSUPPORTED;
		}
	}
	if (!bytelevel) {
		mb_seterr(err, errcap, "tokenizer.json is not byte-level BPE (no "
		       "ByteLevel pre-tokenizer)");
		return MB_EUNSUPPORTED;
	}
	if (regex != NULL && use_regex) {
		mb_seterr(err, errcap, "tokenizer.json: a Split regex and "
		       "ByteLevel's own regex together are not supported");
		return MB_EUNSUPPORTED;
	}
	if (regex == NULL && !use_regex) {
		mb_seterr(err, errcap, "tokenizer.json has no pre-tokenizer regex");
		return MB_EUNSUPPORTED;
	}
	if (regex == NULL)
		regex = GPT2_REGEX;
	name = mb_vocab_pre_name(regex, ignore_merges);
	if (name == NULL) {
		mb_seterr(err, errcap, "unknown pre-tokenizer regex '%.100s%s'",
		       regex, strlen(regex) > 100 ? "..." : "");
		return MB_EUNSUPPORTED;
	}
	snprintf(v->pre, sizeof(v->pre), "%s", name);
	return 0;
}

/* Reads the BPE model's vocab and the added tokens of a parsed
 * tokenizer.json into v (scores too when scores is set; every token
 * NORMAL), sized for n_rows; the added tokens are left in *added for the
 * caller to apply. */
static int json_vocab(struct mb_vocab *v, const cJSON *doc, uint64_t n_rows,
		      int scores, struct added_list *added, char *err,
		      size_t errcap)
{
	const cJSON *model, *vocab, *it;
	uint64_t count = 0, maxid = 0, id = 0, n = 0;
	size_t i;
	int rc = MB_EFORMAT, any = 0;

	model = cJSON_GetObjectItemCaseSensitive(doc, "model");
	vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	if (!cJSON_IsObject(vocab)) {
		mb_seterr(err, errcap, "tokenizer.json: the model has no vocab "
		       "object");
		goto out;
	}
	/* first pass: bounds, so one allocation fits every id */
	cJSON_ArrayForEach(it, vocab) {
		if (++count > MB_VOCAB_MAX_TOKENS) {
			mb_seterr(err, errcap, "tokenizer.json: more than %u "
			       "tokens", MB_VOCAB_MAX_TOKENS);
			rc = MB_ETOOBIG;
			goto out;
		}
		if (strlen(it->string) > MB_VOCAB_MAX_TOKEN_LEN) {
			mb_seterr(err, errcap, "tokenizer.json: token %llu is "
			       "longer than %u bytes",
			       (unsigned long long)count - 1,
			       MB_VOCAB_MAX_TOKEN_LEN);
			rc = MB_ETOOBIG;
			goto out;
		}
		if (json_id(it, &id)) {
			mb_seterr(err, errcap, "tokenizer.json: token '%.64s' "
			       "needs an id in 0..%u", it->string,
			       MB_VOCAB_MAX_TOKENS - 1);
			goto out;
		}
		maxid = id > maxid ? id : maxid;
		any = 1;
	}
	rc = added_from_tokenizer_json(doc, added, err, errcap);
	if (rc != 0)
		goto out;
	for (i = 0; i < added->n; i++)
		maxid = added->a[i].id > maxid ? added->a[i].id : maxid;
	any = any || added->n > 0;
	rc = MB_EFORMAT;
	if (!any) {
		mb_seterr(err, errcap, "tokenizer.json has no tokens");
		goto out;
	}
	rc = vocab_size(maxid + 1, n_rows, &n, err, errcap);
	if (rc != 0)
		goto out;
	rc = vocab_alloc(v, n, scores);
	if (rc != 0)
		goto out;
	v->n_real = maxid + 1;
	cJSON_ArrayForEach(it, vocab) {
		json_id(it, &id);
		if (v->tokens[id] != NULL) {
			mb_seterr(err, errcap, "tokenizer.json: token id %llu is "
			       "given to both '%.64s' and '%.64s'",
			       (unsigned long long)id, v->tokens[id],
			       it->string);
			rc = MB_EFORMAT;
			goto out;
		}
		v->tokens[id] = mb_strdup(it->string);
		if (v->tokens[id] == NULL) {
			rc = MB_ENOMEM;
			goto out;
		}
		v->types[id] = MB_TOK_NORMAL;
	}
	rc = 0;
out:
	return rc;
}

/* The BPE model of a parsed tokenizer.json, or NULL with err set. */
static const cJSON *bpe_model(const cJSON *doc, char *err, size_t errcap)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");

	if (!cJSON_IsObject(model)) {
		mb_seterr(err, errcap, "tokenizer.json has no model object");
		return NULL;
	}
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0) {
		mb_seterr(err, errcap, "tokenizer.json: model type '%.32s' is not "
		       "supported (only BPE)",
		       cJSON_IsString(type) ? type->valuestring : "?");
		return NULL;
	}
	return model;
}

/* Builds a gpt2 vocabulary from a parsed tokenizer.json, padded to n_rows. */
static int gpt2_build(struct mb_vocab *v, const cJSON *doc, uint64_t n_rows,
		      char *err, size_t errcap)
{
	const cJSON *model;
	struct added_list added = { 0 };
	int rc;

	model = bpe_model(doc, err, errcap);
	if (model == NULL)
		return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "model"))
			       ? MB_EUNSUPPORTED : MB_EFORMAT;
	rc = json_vocab(v, doc, n_rows, 0, &added, err, errcap);
	if (rc == 0)
		rc = apply_added(v, &added, 0, err, errcap);
	if (rc == 0)
		rc = vocab_pad(v);
	if (rc == 0)
		rc = vocab_dedupe(v);
	if (rc == 0)
		rc = gpt2_merges(v, model, err, errcap);
	if (rc == 0)
		rc = gpt2_pre(v, doc,
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				      model, "ignore_merges")),
			      err, errcap);
	if (rc == 0)
		snprintf(v->model, sizeof(v->model), "gpt2");
	added_release(&added);
	return rc;
}

/* ------------------------------------ SentencePiece BPE in tokenizer.json */

/* SentencePiece's word boundary, U+2581. */
#define SPM_SPACE "\xe2\x96\x81"

/* Whether a tokenizer.json is SentencePiece BPE converted to the
 * tokenizers library's format (Llama 2, Mistral, Gemma): BPE with byte
 * fallback and no ByteLevel step. llama.cpp tokenizes these as a "llama"
 * vocabulary (SentencePiece's merge loop, <0xNN> byte tokens). */
static int is_spm_json(const cJSON *doc)
{
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(doc, "pre_tokenizer");
	const cJSON *list, *it;

	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model,
							   "byte_fallback")))
		return 0;
	list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
	it = cJSON_IsArray(list) ? list->child : pt;
	for (; it != NULL; it = cJSON_IsArray(list) ? it->next : NULL) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");

		if (cJSON_IsString(t) &&
		    strcmp(t->valuestring, "ByteLevel") == 0)
			return 0;
	}
	return 1;
}

/* A {"String": s} pattern equal to s. */
static int pattern_is(const cJSON *step, const char *s)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(step, "pattern");
	const cJSON *str = cJSON_GetObjectItemCaseSensitive(p, "String");

	return cJSON_IsString(str) && strcmp(str->valuestring, s) == 0;
}

static int str_is(const cJSON *obj, const char *key, const char *s)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
}

/* Reads how the text reaches the BPE model, and refuses what llama.cpp's
 * SentencePiece tokenizer does not do. llama.cpp turns every space into
 * U+2581 and, with add_space_prefix, puts one before the text and after
 * each special token; it splits nothing. The tokenizers library gets
 * there with a normalizer (Replace " " by U+2581, Prepend U+2581: Llama 2,
 * Mistral), or a Metaspace pre-tokenizer that does not split (newer
 * conversions); Gemma's Split at " " finds no space left after its
 * Replace. Anything else would tokenize differently. */
static int spm_json_text(struct mb_vocab *v, const cJSON *doc, char *err,
			 size_t errcap)
{
	const cJSON *norm = cJSON_GetObjectItemCaseSensitive(doc, "normalizer");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(doc, "pre_tokenizer");
	const cJSON *list, *it, *t;
	int replace = 0, prepend = 0;

	if (norm != NULL && !cJSON_IsNull(norm)) {
		list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
		it = str_is(norm, "type", "Sequence") ? (cJSON_IsArray(list)
							 ? list->child : NULL)
						      : norm;
		for (; it != NULL; it = str_is(norm, "type", "Sequence")
					       ? it->next : NULL) {
			t = cJSON_GetObjectItemCaseSensitive(it, "type");
			if (str_is(it, "type", "Replace") &&
			    pattern_is(it, " ") &&
			    str_is(it, "content", SPM_SPACE)) {
				replace = 1;
			} else if (str_is(it, "type", "Prepend") &&
				   str_is(it, "prepend", SPM_SPACE) &&
				   !prepend) {
				prepend = 1;
			} else {
				mb_seterr(err, errcap, "tokenizer.json: normalizer "
				       "'%.32s' is not supported for a "
				       "SentencePiece vocabulary (only spaces "
				       "replaced by U+2581, and one prepended)",
				       cJSON_IsString(t) ? t->valuestring : "?");
				return MB_EUNSUPPORTED;
			}
		}
	}
	if (pt != NULL && !cJSON_IsNull(pt)) {
		t = cJSON_GetObjectItemCaseSensitive(pt, "type");
		if (str_is(pt, "type", "Metaspace")) {
			const cJSON *split = cJSON_GetObjectItemCaseSensitive(
				pt, "split");
			const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(
				pt, "prepend_scheme");
			const cJSON *aps = cJSON_GetObjectItemCaseSensitive(
				pt, "add_prefix_space");

			if (!str_is(pt, "replacement", SPM_SPACE)) {
				mb_seterr(err, errcap, "tokenizer.json: a "
				       "Metaspace pre-tokenizer with another "
				       "replacement than U+2581 is not "
				       "supported");
				return MB_EUNSUPPORTED;
			}
			/* the library's default is to split */
			if (split == NULL || cJSON_IsTrue(split)) {
				mb_seterr(err, errcap, "tokenizer.json: a "
				       "Metaspace pre-tokenizer that splits at "
				       "spaces is not supported (llama.cpp's "
				       "SentencePiece tokenizer merges across "
				       "them)");
				return MB_EUNSUPPORTED;
			}
			replace = 1;
			if (cJSON_IsString(scheme))
				prepend = strcmp(scheme->valuestring, "never") != 0;
			else
				prepend = aps == NULL || cJSON_IsTrue(aps);
		} else if (!(str_is(pt, "type", "Split") && pattern_is(pt, " ") &&
			     replace)) {
			mb_seterr(err, errcap, "tokenizer.json: pre-tokenizer "
			       "'%.32s' is not supported for a SentencePiece "
			       "vocabulary (none, or Metaspace)",
			       cJSON_IsString(t) ? t->valuestring : "?");
			return MB_EUNSUPPORTED;
		}
	}
	if (!replace) {
		mb_seterr(err, errcap, "tokenizer.json: a SentencePiece BPE "
		       "model whose spaces are not replaced by U+2581 is not "
		       "supported");
		return MB_EUNSUPPORTED;
	}
	v->add_space_prefix = prepend;
	return 0;
}

static const struct mb_vocab *sort_vocab;

static int by_text(const void *a, const void *b)
{
	return strcmp(sort_vocab->tokens[*(const uint32_t *)a],
		      sort_vocab->tokens[*(const uint32_t *)b]);
}

/* Finds text among the ids sorted by by_text; -1 when absent. */
static int64_t sorted_find(const struct mb_vocab *v, const uint32_t *ids,
			   const char *text)
{
	size_t lo = 0, hi = (size_t)v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->tokens[ids[mid]], text);

		if (c == 0)
			return ids[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Scores for llama.cpp's SentencePiece loop, which merges the adjacent
 * pair whose joined text is the token of the highest score. The
 * tokenizers library merges the pair of the lowest rank in the merges
 * list; SentencePiece-made lists rank a pair by the score of the piece it
 * makes, so -rank of the first merge that makes a token reproduces the
 * order. A token no merge makes scores below every merge. Without these
 * (equal scores for every token), llama.cpp merges left to right and
 * tokenizes otherwise. Only ordinary tokens are scored: every slot is
 * filled (padded) by now, added tokens and padding keep theirs. */
static int spm_json_scores(struct mb_vocab *v, const cJSON *model, char *err,
			   size_t errcap)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *it;
	uint32_t *ids = NULL;
	char *joined = NULL;
	uint64_t i, rank = 0, count;
	int rc = MB_EFORMAT;

	if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0) {
		mb_seterr(err, errcap, "tokenizer.json: the BPE model has no "
		       "merges list");
		return MB_EFORMAT;
	}
	count = (uint64_t)cJSON_GetArraySize(m);
	if (count > MB_VOCAB_MAX_TOKENS) {
		mb_seterr(err, errcap, "tokenizer.json: more than %u merges",
		       MB_VOCAB_MAX_TOKENS);
		return MB_ETOOBIG;
	}
	rc = MB_ENOMEM;
	ids = mb_calloc((size_t)v->n, sizeof(*ids));
	joined = mb_malloc(2 * (size_t)MB_VOCAB_MAX_TOKEN_LEN + 2);
	if (ids == NULL || joined == NULL)
		goto out;
	for (i = 0; i < v->n; i++) {
		ids[i] = (uint32_t)i;
		if (v->types[i] == MB_TOK_NORMAL)
			v->scores[i] = -(float)(count + 1);
	}
	sort_vocab = v;
	qsort(ids, (size_t)v->n, sizeof(*ids), by_text);
	sort_vocab = NULL;
	cJSON_ArrayForEach(it, m) {
		const char *a, *b;
		size_t la, lb;
		int64_t id;

		rc = MB_EFORMAT;
		if (cJSON_IsString(it)) {
			/* "a b": SentencePiece pieces hold no space */
			a = it->valuestring;
			b = a[0] != '\0' ? strchr(a + 1, ' ') : NULL;
			if (b == NULL) {
				mb_seterr(err, errcap, "tokenizer.json: merge "
				       "%llu ('%.64s') is not two tokens and a "
				       "space", (unsigned long long)rank, a);
				goto out;
			}
			la = (size_t)(b - a);
			b++;
		} else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
			   cJSON_IsString(it->child) &&
			   cJSON_IsString(it->child->next)) {
			a = it->child->valuestring;
			b = it->child->next->valuestring;
			la = strlen(a);
		} else {
			mb_seterr(err, errcap, "tokenizer.json: merge %llu is "
			       "neither \"a b\" nor [\"a\", \"b\"]",
			       (unsigned long long)rank);
			goto out;
		}
		lb = strlen(b);
		if (la > MB_VOCAB_MAX_TOKEN_LEN || lb > MB_VOCAB_MAX_TOKEN_LEN) {
			mb_seterr(err, errcap, "tokenizer.json: merge %llu has a "
			       "token longer than %u bytes",
			       (unsigned long long)rank, MB_VOCAB_MAX_TOKEN_LEN);
			rc = MB_ETOOBIG;
			goto out;
		}
		memcpy(joined, a, la);
		memcpy(joined + la, b, lb);
		joined[la + lb] = '\0';
		id = sorted_find(v, ids, joined);
		if (id >= 0 && v->types[id] == MB_TOK_NORMAL &&
		    v->scores[id] < -(float)rank)
			v->scores[id] = -(float)rank;
		rank++;
	}
	rc = 0;
out:
	free(ids);
	free(joined);
	return rc;
}

/* Whether s is a byte token "<0xNN>" (two hex digits). */
static int is_byte_token(const char *s)
{
	static const char hex[] = "0123456789ABCDEFabcdef";

	return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>' &&
	       strchr(hex, s[3]) != NULL && strchr(hex, s[4]) != NULL;
}

/* Builds a "llama" vocabulary from a SentencePiece BPE tokenizer.json, as
 * llama.cpp's converter builds one from tokenizer.model: byte tokens
 * BYTE, the unk token UNKNOWN, the added tokens CONTROL or USER_DEFINED;
 * the scores from the merges (spm_json_scores). */
static int spm_json_build(struct mb_vocab *v, const cJSON *doc,
			  uint64_t n_rows, char *err, size_t errcap)
{
	const cJSON *model, *unk;
	struct added_list added = { 0 };
	uint64_t i;
	int64_t id;
	int rc;

	model = bpe_model(doc, err, errcap);
	if (model == NULL)
		return MB_EFORMAT;
	rc = spm_json_text(v, doc, err, errcap);
	if (rc == 0)
		rc = json_vocab(v, doc, n_rows, 1, &added, err, errcap);
	if (rc == 0)
		rc = apply_added(v, &added, 0, err, errcap);
	if (rc == 0)
		rc = vocab_pad(v);
	if (rc == 0)
		rc = vocab_dedupe(v);
	if (rc == 0)
		rc = spm_json_scores(v, model, err, errcap);
	if (rc != 0)
		goto out;
	for (i = 0; i < v->n; i++)
		if (v->types[i] == MB_TOK_NORMAL && is_byte_token(v->tokens[i])) {
			v->types[i] = MB_TOK_BYTE;
			v->scores[i] = 0;
		}
	unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
	if (cJSON_IsString(unk) && (id = vocab_find(v, unk->valuestring)) >= 0) {
		v->unk = id;
		v->types[id] = MB_TOK_UNKNOWN;
	}
	snprintf(v->model, sizeof(v->model), "llama");
out:
	added_release(&added);
	return rc;
}

/* Builds the vocabulary a tokenizer.json describes: SentencePiece BPE as
 * "llama", byte-level BPE as "gpt2". */
static int json_build(struct mb_vocab *v, const cJSON *doc, uint64_t n_rows,
		      char *err, size_t errcap)
{
	return is_spm_json(doc) ? spm_json_build(v, doc, n_rows, err, errcap)
				: gpt2_build(v, doc, n_rows, err, errcap);
}

/* ------------------------------------------------------ SentencePiece */

/* A bounded cursor over protobuf bytes. */
struct pb {
	const uint8_t *p;
	size_t left;
};

static int pb_varint(struct pb *c, uint64_t *out, char *err, size_t errcap)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 10; i++) {
		uint8_t b;

		if (c->left == 0) {
			mb_seterr(err, errcap, "tokenizer.model: truncated varint");
			return MB_EFORMAT;
		}
		b = *c->p++;
		c->left--;
		if (i == 9 && b > 1)
			break;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*out = v;
			return 0;
		}
	}
	mb_seterr(err, errcap, "tokenizer.model: varint longer than 64 bits");
	return MB_EFORMAT;
}

/* Reads one field: its number, wire type and value (varints and fixed
 * values in *num, length-delimited bytes in *sub). */
static int pb_field(struct pb *c, uint64_t *field, int *wire, uint64_t *num,
		    struct pb *sub, char *err, size_t errcap)
{
	uint64_t key, len;
	int rc, i;

	rc = pb_varint(c, &key, err, errcap);
	if (rc != 0)
		return rc;
	*field = key >> 3;
	*wire = (int)(key & 7);
	*num = 0;
	switch (*wire) {
	case 0:
		return pb_varint(c, num, err, errcap);
	case 1:
	case 5:
		len = *wire == 1 ? 8 : 4;
		if (c->left < len) {
			mb_seterr(err, errcap, "tokenizer.model: truncated fixed "
			       "field %llu", (unsigned long long)*field);
			return MB_EFORMAT;
		}
		for (i = (int)len - 1; i >= 0; i--)
			*num = *num << 8 | c->p[i];
		c->p += len;
		c->left -= len;
		return 0;
	case 2:
		rc = pb_varint(c, &len, err, errcap);
		if (rc != 0)
			return rc;
		if (len > c->left) {
			mb_seterr(err, errcap, "tokenizer.model: field %llu of "
			       "%llu bytes runs past the end (%zu left)",
			       (unsigned long long)*field,
			       (unsigned long long)len, c->left);
			return MB_EFORMAT;
		}
		sub->p = c->p;
		sub->left = (size_t)len;
		c->p += len;
		c->left -= (size_t)len;
		return 0;
	default:
		mb_seterr(err, errcap, "tokenizer.model: field %llu has wire type "
		       "%d", (unsigned long long)*field, *wire);
		return MB_EFORMAT;
	}
}

/* Counts the pieces of a ModelProto (field 1, repeated SentencePiece),
 * checking the framing of every top-level field. */
static int spm_count(const void *buf, size_t len, uint64_t *count, char *err,
		     size_t errcap)
{
	struct pb c = { buf, len }, sub;
	uint64_t field, num, n = 0;
	int wire, rc;

	while (c.left > 0) {
		rc = pb_field(&c, &field, &wire, &num, &sub, err, errcap);
		if (rc != 0)
			return rc;
		if (field != 1)
			continue;
		if (wire != 2) {
			mb_seterr(err, errcap, "tokenizer.model: piece %llu is "
			       "not a message", (unsigned long long)n);
			return MB_EFORMAT;
		}
		if (++n > MB_VOCAB_MAX_TOKENS) {
			mb_seterr(err, errcap, "tokenizer.model: more than %u "
			       "pieces", MB_VOCAB_MAX_TOKENS);
			return MB_ETOOBIG;
		}
	}
	if (n == 0) {
		mb_seterr(err, errcap, "tokenizer.model has no pieces");
		return MB_EFORMAT;
	}
	*count = n;
	return 0;
}

/* Reads the NormalizerSpec (ModelProto field 3) for add_dummy_prefix
 * (its field 3; true when absent). Gemma's tokenizer.model says false:
 * no space goes before the text, which llama.cpp does for a "llama"
 * vocabulary unless tokenizer.ggml.add_space_prefix is false, the key
 * convert_hf_to_gguf.py writes for Gemma. Sets *prefix to 0 when false,
 * leaves it otherwise (llama.cpp's default is what the proto says). */
static int spm_dummy_prefix(const void *buf, size_t len, int *prefix,
			    char *err, size_t errcap)
{
	struct pb c = { buf, len }, sub, inner;
	uint64_t field, num;
	int wire, rc;

	while (c.left > 0) {
		rc = pb_field(&c, &field, &wire, &num, &sub, err, errcap);
		if (rc != 0)
			return rc;
		if (field != 3 || wire != 2)
			continue;
		while (sub.left > 0) {
			rc = pb_field(&sub, &field, &wire, &num, &inner, err,
				      errcap);
			if (rc != 0)
				return rc;
			if (field == 3 && wire == 0 && num == 0)
				*prefix = 0;
		}
	}
	return 0;
}

/* Parses SentencePiece {piece = 1 (string), score = 2 (float), type = 3
 * (enum NORMAL 1 .. BYTE 6, llama.cpp's numbers)} into slot idx. */
static int spm_piece(struct mb_vocab *v, uint64_t idx, struct pb m,
		     char *err, size_t errcap)
{
	struct pb sub = { NULL, 0 };
	uint64_t field, num;
	char *text = NULL;
	float score = 0;
	int32_t type = MB_TOK_NORMAL;
	uint32_t bits;
	int wire, rc;

	while (m.left > 0) {
		rc = pb_field(&m, &field, &wire, &num, &sub, err, errcap);
		if (rc != 0)
			goto out;
		rc = MB_EFORMAT;
		if (field == 1) {
			if (wire != 2) {
				mb_seterr(err, errcap, "tokenizer.model: piece "
				       "%llu text is not a string",
				       (unsigned long long)idx);
				goto out;
			}
			if (sub.left > MB_VOCAB_MAX_TOKEN_LEN) {
				mb_seterr(err, errcap, "tokenizer.model: piece "
				       "%llu is longer than %u bytes",
				       (unsigned long long)idx,
				       MB_VOCAB_MAX_TOKEN_LEN);
				rc = MB_ETOOBIG;
				goto out;
			}
			if (memchr(sub.p, 0, sub.left) != NULL) {
				mb_seterr(err, errcap, "tokenizer.model: piece "
				       "%llu holds a NUL byte",
				       (unsigned long long)idx);
				goto out;
			}
			free(text);
			text = mb_malloc(sub.left + 1);
			if (text == NULL) {
				rc = MB_ENOMEM;
				goto out;
			}
			memcpy(text, sub.p, sub.left);
			text[sub.left] = '\0';
		} else if (field == 2) {
			if (wire != 5) {
				mb_seterr(err, errcap, "tokenizer.model: piece "
				       "%llu score is not a float",
				       (unsigned long long)idx);
				goto out;
			}
			bits = (uint32_t)num;
			memcpy(&score, &bits, sizeof(score));
		} else if (field == 3) {
			if (wire != 0 || num < MB_TOK_NORMAL ||
			    num > MB_TOK_BYTE) {
				mb_seterr(err, errcap, "tokenizer.model: piece "
				       "%llu has bad type %llu",
				       (unsigned long long)idx,
				       (unsigned long long)num);
				goto out;
			}
			type = (int32_t)num;
		}
	}
	rc = MB_EFORMAT;
	if (text == NULL) {
		mb_seterr(err, errcap, "tokenizer.model: piece %llu has no text",
		       (unsigned long long)idx);
		goto out;
	}
	v->tokens[idx] = text;
	text = NULL;
	v->scores[idx] = score;
	v->types[idx] = type;
	rc = 0;
out:
	free(text);
	return rc;
}

/* Fills slots 0 .. count-1 (already counted by spm_count). */
static int spm_fill(struct mb_vocab *v, const void *buf, size_t len,
		    char *err, size_t errcap)
{
	struct pb c = { buf, len }, sub;
	uint64_t field, num, idx = 0;
	int wire, rc;

	while (c.left > 0) {
		rc = pb_field(&c, &field, &wire, &num, &sub, err, errcap);
		if (rc != 0)
			return rc;
		if (field != 1)
			continue;
		rc = spm_piece(v, idx++, sub, err, errcap);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Builds a llama vocabulary: the proto's pieces, then the added tokens
 * past them, padded to n_rows. Added tokens over proto ids are left out:
 * the proto's pieces, types and scores are what llama.cpp tokenizes
 * with. */
static int llama_build(struct mb_vocab *v, const void *buf, size_t len,
		       const struct added_list *added, uint64_t n_rows,
		       char *err, size_t errcap)
{
	uint64_t count, maxid, n;
	size_t i;
	int rc;

	rc = spm_count(buf, len, &count, err, errcap);
	if (rc != 0)
		return rc;
	maxid = count - 1;
	for (i = 0; i < added->n; i++)
		maxid = added->a[i].id > maxid ? added->a[i].id : maxid;
	rc = vocab_size(maxid + 1, n_rows, &n, err, errcap);
	if (rc == 0)
		rc = vocab_alloc(v, n, 1);
	if (rc == 0)
		rc = spm_fill(v, buf, len, err, errcap);
	if (rc == 0)
		rc = spm_dummy_prefix(buf, len, &v->add_space_prefix, err,
				      errcap);
	if (rc == 0)
		rc = apply_added(v, added, count, err, errcap);
	if (rc == 0)
		rc = vocab_pad(v);
	if (rc == 0)
		rc = vocab_dedupe(v);
	if (rc != 0)
		return rc;
	v->n_real = maxid + 1;
	snprintf(v->model, sizeof(v->model), "llama");
	return 0;
}

/* ---------------------------------------------------------------- files */

static int join(char *out, size_t cap, const char *dir, const char *name,
		char *err, size_t errcap)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= cap) {
		mb_seterr(err, errcap, "path '%.64s...' is too long", dir);
		return MB_EINVAL;
	}
	return 0;
}

/* Reads dir/name of at most max bytes. MB_ENOENT (err untouched) when the
 * file is not there. */
static int read_opt(const char *dir, const char *name, size_t max,
		    char **data, size_t *len, char *err, size_t errcap)
{
	char path[MAX_PATH_LEN];
	int rc;

	*data = NULL;
	rc = join(path, sizeof(path), dir, name, err, errcap);
	if (rc != 0)
		return rc;
	rc = mb_read_file(path, max, data, len);
	if (rc == MB_ETOOBIG)
		mb_seterr(err, errcap, "'%s' is larger than %zu bytes", name, max);
	else if (rc != 0 && rc != MB_ENOENT)
		mb_seterr(err, errcap, "cannot read '%s': %s", name,
		       mb_strerror(rc));
	return rc;
}

/* Reads and parses dir/name, which must hold a JSON object. MB_ENOENT
 * (err untouched) when the file is not there. */
static int read_json(const char *dir, const char *name, size_t max,
		     cJSON **out, char *err, size_t errcap)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = read_opt(dir, name, max, &text, &len, err, errcap);
	if (rc != 0)
		return rc;
	*out = mb_json_parse(text, len);
	free(text);
	if (*out == NULL) {
		mb_seterr(err, errcap, "'%s' is not valid json", name);
		return MB_EJSON;
	}
	if (!cJSON_IsObject(*out)) {
		mb_seterr(err, errcap, "'%s' is not a json object", name);
		cJSON_Delete(*out);
		*out = NULL;
		return MB_EFORMAT;
	}
	return 0;
}

/* The special ids tokenizer_config.json names by text ("<s>" or {"content":
 * "<s>", ...}), and its add_bos_token / add_eos_token. */
static void specials_from_tcfg(struct mb_vocab *v, const cJSON *tcfg)
{
	static const char *const keys[] = { "bos_token", "eos_token",
					    "pad_token", "unk_token" };
	int64_t *slots[] = { &v->bos, &v->eos, &v->pad, &v->unk };
	const cJSON *e;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		e = cJSON_GetObjectItemCaseSensitive(tcfg, keys[i]);
		if (cJSON_IsObject(e))
			e = cJSON_GetObjectItemCaseSensitive(e, "content");
		if (cJSON_IsString(e))
			*slots[i] = vocab_find(v, e->valuestring);
	}
	e = cJSON_GetObjectItemCaseSensitive(tcfg, "add_bos_token");
	if (cJSON_IsBool(e))
		v->add_bos = cJSON_IsTrue(e);
	e = cJSON_GetObjectItemCaseSensitive(tcfg, "add_eos_token");
	if (cJSON_IsBool(e))
		v->add_eos = cJSON_IsTrue(e);
}

/* config.json's *_token_id for the ids tokenizer_config.json did not give
 * (gguf-py: integers inside the vocabulary only; a list of eos ids is
 * skipped). Multimodal configs keep them in text_config. */
static void specials_from_cfg(struct mb_vocab *v, const cJSON *cfg)
{
	static const char *const keys[] = { "bos_token_id", "eos_token_id",
					    "pad_token_id", "unk_token_id" };
	int64_t *slots[] = { &v->bos, &v->eos, &v->pad, &v->unk };
	const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
	uint64_t id = 0;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (*slots[i] >= 0)
			continue;
		if ((mb_json_get_u64(cfg, keys[i], v->n - 1, &id) == 0) ||
		    (cJSON_IsObject(tc) &&
		     mb_json_get_u64(tc, keys[i], v->n - 1, &id) == 0))
			*slots[i] = (int64_t)id;
	}
}

/* tokenizer_config.json's chat_template (a string, or a list of {name,
 * template}: the "default" one), else chat_template.jinja. */
static int chat_template(struct mb_vocab *v, const char *dir,
			 const cJSON *tcfg, char *err, size_t errcap)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(tcfg, "chat_template");
	const cJSON *it, *name;
	const char *s = NULL;
	size_t len = 0;
	char *text;
	int rc;

	if (cJSON_IsString(t)) {
		s = t->valuestring;
	} else if (cJSON_IsArray(t)) {
		cJSON_ArrayForEach(it, t) {
			name = cJSON_GetObjectItemCaseSensitive(it, "name");
			if (cJSON_IsString(name) &&
			    strcmp(name->valuestring, "default") == 0 &&
			    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
				    it, "template"))) {
				s = cJSON_GetObjectItemCaseSensitive(
					    it, "template")->valuestring;
				break;
			}
		}
	}
	if (s != NULL && strlen(s) > MAX_TEMPLATE) {
		mb_seterr(err, errcap, "tokenizer_config.json: the chat template "
		       "is larger than %u bytes", MAX_TEMPLATE);
		return MB_ETOOBIG;
	}
	if (s != NULL) {
		v->chat_template = mb_strdup(s);
		return v->chat_template != NULL ? 0 : MB_ENOMEM;
	}
	rc = read_opt(dir, "chat_template.jinja", MAX_TEMPLATE, &text, &len,
		      err, errcap);
	if (rc == MB_ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	if (memchr(text, 0, len) != NULL) {
		mb_seterr(err, errcap, "'chat_template.jinja' holds a NUL byte");
		free(text);
		return MB_EFORMAT;
	}
	v->chat_template = text;
	return 0;
}

int mb_vocab_load_dir(const char *dir, uint64_t n_rows, struct mb_vocab **out,
		      char *err, size_t errcap)
{
	struct added_list added = { 0 };
	struct mb_vocab *v = NULL;
	cJSON *tokjson = NULL, *tcfg = NULL, *cfg = NULL, *addjson = NULL;
	char *spm = NULL;
	size_t spmlen = 0;
	int rc = MB_ENOMEM;

	*out = NULL;
	v = vocab_new();
	if (v == NULL)
		goto out;
	rc = read_json(dir, "tokenizer_config.json", MAX_SMALL_JSON, &tcfg,
		       err, errcap);
	if (rc != 0 && rc != MB_ENOENT)
		goto out;
	rc = read_opt(dir, "tokenizer.model", MB_VOCAB_MAX_FILE, &spm, &spmlen,
		      err, errcap);
	if (rc != 0 && rc != MB_ENOENT)
		goto out;
	rc = read_json(dir, "tokenizer.json", MB_VOCAB_MAX_FILE, &tokjson,
		       err, errcap);
	if (rc != 0 && rc != MB_ENOENT)
		goto out;
	if (spm != NULL) {
		/* SentencePiece first, as convert_hf_to_gguf.py tries it:
		 * its tokenizer.json, if any, is a conversion of it */
		rc = read_json(dir, "added_tokens.json", MAX_SMALL_JSON,
			       &addjson, err, errcap);
		if (rc != 0 && rc != MB_ENOENT)
			goto out;
		rc = 0;
		if (addjson != NULL)
			rc = added_from_added_json(addjson, &added, err,
						   errcap);
		if (rc == 0 && tokjson != NULL)
			rc = added_from_tokenizer_json(tokjson, &added, err,
						       errcap);
		if (rc == 0 && tcfg != NULL)
			rc = added_from_decoder(tcfg, &added, err, errcap);
		if (rc == 0)
			rc = llama_build(v, spm, spmlen, &added, n_rows, err,
					 errcap);
	} else if (tokjson != NULL) {
		rc = json_build(v, tokjson, n_rows, err, errcap);
	} else {
		mb_seterr(err, errcap, "no tokenizer.json or tokenizer.model in "
		       "'%s'", dir);
		rc = MB_ENOENT;
	}
	if (rc != 0)
		goto out;
	if (tcfg != NULL)
		specials_from_tcfg(v, tcfg);
	/* config.json only fills special ids tokenizer_config.json left
	 * open; one that cannot be read (too big, not JSON, nested too
	 * deep) is taken as absent, as the model's configuration takes it
	 * (common/modelcfg.h), so inspect and convert agree on it */
	if (read_json(dir, "config.json", MAX_SMALL_JSON, &cfg, err, errcap) != 0)
		cfg = NULL;
	err[0] = '\0';
	if (cfg != NULL)
		specials_from_cfg(v, cfg);
	rc = chat_template(v, dir, tcfg, err, errcap);
	if (rc != 0)
		goto out;
	*out = v;
	v = NULL;
	rc = 0;
out:
	added_release(&added);
	cJSON_Delete(tokjson);
	cJSON_Delete(tcfg);
	cJSON_Delete(cfg);
	cJSON_Delete(addjson);
	free(spm);
	mb_vocab_free(v);
	return rc;
}

int mb_vocab_parse_tokenizer_json(const char *json, size_t len,
				  struct mb_vocab **out, char *err,
				  size_t errcap)
{
	struct mb_vocab *v = NULL;
	cJSON *doc = NULL;
	int rc = MB_EJSON;

	*out = NULL;
	doc = mb_json_parse(json, len);
	if (doc == NULL) {
		mb_seterr(err, errcap, "tokenizer.json is not valid json");
		goto out;
	}
	rc = MB_EFORMAT;
	if (!cJSON_IsObject(doc)) {
		mb_seterr(err, errcap, "tokenizer.json is not a json object");
		goto out;
	}
	rc = MB_ENOMEM;
	v = vocab_new();
	if (v == NULL)
		goto out;
	rc = json_build(v, doc, 0, err, errcap);
	if (rc != 0)
		goto out;
	*out = v;
	v = NULL;
out:
	cJSON_Delete(doc);
	mb_vocab_free(v);
	return rc;
}

int mb_vocab_parse_spm(const void *buf, size_t len, struct mb_vocab **out,
		       char *err, size_t errcap)
{
	struct added_list none = { 0 };
	struct mb_vocab *v;
	int rc;

	*out = NULL;
	v = vocab_new();
	if (v == NULL)
		return MB_ENOMEM;
	rc = llama_build(v, buf, len, &none, 0, err, errcap);
	if (rc != 0) {
		mb_vocab_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* ---------------------------------------------------------------- gguf */

int mb_vocab_to_gguf(const struct mb_vocab *v, struct mb_gguf_w *w)
{
	static const char *const id_keys[] = {
		"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
		"tokenizer.ggml.padding_token_id",
		"tokenizer.ggml.unknown_token_id"
	};
	const int64_t ids[] = { v->bos, v->eos, v->pad, v->unk };
	size_t i;
	int rc;

	rc = mb_gguf_w_str(w, "tokenizer.ggml.model", v->model);
	if (rc == 0 && v->pre[0] != '\0')
		rc = mb_gguf_w_str(w, "tokenizer.ggml.pre", v->pre);
	if (rc == 0)
		rc = mb_gguf_w_arr_str(w, "tokenizer.ggml.tokens",
				       (const char *const *)v->tokens, v->n);
	if (rc == 0)
		rc = mb_gguf_w_arr(w, "tokenizer.ggml.token_type",
				   MB_GGUF_INT32, v->types, v->n);
	if (rc == 0 && v->scores != NULL)
		rc = mb_gguf_w_arr(w, "tokenizer.ggml.scores", MB_GGUF_FLOAT32,
				   v->scores, v->n);
	if (rc == 0 && v->nmerges > 0)
		rc = mb_gguf_w_arr_str(w, "tokenizer.ggml.merges",
				       (const char *const *)v->merges,
				       v->nmerges);
	for (i = 0; rc == 0 && i < sizeof(ids) / sizeof(ids[0]); i++)
		if (ids[i] >= 0)
			rc = mb_gguf_w_u32(w, id_keys[i], (uint32_t)ids[i]);
	if (rc == 0 && v->add_bos >= 0)
		rc = mb_gguf_w_bool(w, "tokenizer.ggml.add_bos_token",
				    v->add_bos);
	if (rc == 0 && v->add_eos >= 0)
		rc = mb_gguf_w_bool(w, "tokenizer.ggml.add_eos_token",
				    v->add_eos);
	if (rc == 0 && v->add_space_prefix >= 0)
		rc = mb_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix",
				    v->add_space_prefix);
	if (rc == 0 && v->chat_template != NULL)
		rc = mb_gguf_w_str(w, "tokenizer.chat_template",
				   v->chat_template);
	return rc;
}
