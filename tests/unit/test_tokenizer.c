/* Tests common/tokenizer.c: the fixtures' byte-level BPE and SentencePiece
 * tokenizers load with the right tokens, types, ids and merges; the
 * pre-tokenizer table; each hostile tokenizer.json or tokenizer.model
 * fails with its own error; every allocation failure is an error, never a
 * leak. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/gguf.h"
#include "common/tokenizer.h"
#include "llama.h"
#include "model.h"
#include "th.h"

/* Phi-4's Split regex, as its tokenizer.json (and the fixture) spell it. */
#define CL100K                                                             \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"      \
	"\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"        \
	"\\s+(?!\\S)|\\s+"

struct fixtures {
	char root[512];
	char phi4[600];		/* merges as "a b" strings */
	char phi4_pairs[600];	/* merges as ["a", "b"] pairs */
	char llama[600];
	char gemma3[600];	/* tokenizer.model without a dummy prefix */
};

static struct fixtures fx;

static int setup(void **state)
{
	const char *pairs[] = { "--merges", "pairs", NULL };

	(void)state;
	if (th_tmpdir("tokenizer", fx.root, sizeof(fx.root)) != 0)
		return -1;
	snprintf(fx.phi4, sizeof(fx.phi4), "%s/phi4", fx.root);
	snprintf(fx.phi4_pairs, sizeof(fx.phi4_pairs), "%s/phi4p", fx.root);
	snprintf(fx.llama, sizeof(fx.llama), "%s/llama", fx.root);
	snprintf(fx.gemma3, sizeof(fx.gemma3), "%s/gemma3", fx.root);
	if (th_mkmodel(fx.phi4, "phi4-tiny", NULL) != 0 ||
	    th_mkmodel(fx.phi4_pairs, "phi4-tiny", pairs) != 0 ||
	    th_mkmodel(fx.llama, "llama-tiny", NULL) != 0 ||
	    th_mkmodel(fx.gemma3, "gemma3-tiny", NULL) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return th_rmtree(fx.root);
}

/* Reads a fixture file into a heap string (the test frees it). */
static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[700];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	s = th_slurp(path, len);
	assert_non_null(s);
	return s;
}

/* Replaces the first from in s by to (a new heap string; s is freed). */
static char *replace(char *s, const char *from, const char *to)
{
	char *at = strstr(s, from), *r;
	size_t n = strlen(s), f = strlen(from), t = strlen(to);

	assert_non_null(at);
	r = malloc(n - f + t + 1);
	assert_non_null(r);
	memcpy(r, s, (size_t)(at - s));
	memcpy(r + (at - s), to, t);
	memcpy(r + (at - s) + t, at + f, n - (size_t)(at - s) - f + 1);
	free(s);
	return r;
}

static void test_phi4_fixture(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	uint64_t i;

	(void)state;
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 1024, &v, err,
					   sizeof(err)), 0);
	assert_string_equal(v->model, "gpt2");
	assert_string_equal(v->pre, "dbrx");
	assert_int_equal(v->n, 1024);
	assert_int_equal(v->n_real, 622);
	assert_null(v->scores);
	for (i = 0; i < 616; i++)
		assert_int_equal(v->types[i], MB_TOK_NORMAL);
	assert_string_equal(v->tokens[616], "<|endoftext|>");
	assert_string_equal(v->tokens[617], "<|im_start|>");
	assert_string_equal(v->tokens[618], "<|im_end|>");
	assert_string_equal(v->tokens[619], "<|im_sep|>");
	assert_string_equal(v->tokens[620], "<|dummy_0|>");
	assert_string_equal(v->tokens[621], "<tool_call>");
	for (i = 616; i < 621; i++)
		assert_int_equal(v->types[i], MB_TOK_CONTROL);
	assert_int_equal(v->types[621], MB_TOK_USER_DEFINED);
	assert_string_equal(v->tokens[622], "[PAD622]");
	assert_string_equal(v->tokens[1023], "[PAD1023]");
	for (i = 622; i < 1024; i++)
		assert_int_equal(v->types[i], MB_TOK_UNUSED);
	/* byte-level: the 256 byte tokens come first, byte 0 as U+0100 */
	assert_string_equal(v->tokens[0], "\xc4\x80");
	assert_string_equal(v->tokens[33], "!");
	assert_int_equal(v->nmerges, 360);
	assert_string_equal(v->merges[0], "\xc4\xa0 t");
	for (i = 0; i < v->nmerges; i++)
		assert_non_null(strchr(v->merges[i] + 1, ' '));
	assert_int_equal(v->bos, 616);
	assert_int_equal(v->eos, 618);
	assert_int_equal(v->pad, 620);
	assert_int_equal(v->unk, 616);	/* Phi-4 names <|endoftext|> */
	assert_int_equal(v->add_bos, 0);
	assert_int_equal(v->add_eos, 0);
	assert_non_null(v->chat_template);
	assert_non_null(strstr(v->chat_template, "<|im_start|>assistant"));
	mb_vocab_free(v);

	/* no padding asked: the vocabulary as it is */
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 0, &v, err, sizeof(err)),
			 0);
	assert_int_equal(v->n, 622);
	assert_int_equal(v->n_real, 622);
	mb_vocab_free(v);
}

static void test_merges_formats_agree(void **state)
{
	struct mb_vocab *a = NULL, *b = NULL;
	char err[512] = "";
	uint64_t i;

	(void)state;
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 1024, &a, err,
					   sizeof(err)), 0);
	assert_int_equal(mb_vocab_load_dir(fx.phi4_pairs, 1024, &b, err,
					   sizeof(err)), 0);
	assert_int_equal(a->nmerges, b->nmerges);
	for (i = 0; i < a->nmerges; i++)
		assert_string_equal(a->merges[i], b->merges[i]);
	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		assert_string_equal(a->tokens[i], b->tokens[i]);
		assert_int_equal(a->types[i], b->types[i]);
	}
	assert_string_equal(a->pre, b->pre);
	mb_vocab_free(a);
	mb_vocab_free(b);
}

/* A pair holding a space is written with the space as U+0120, as gguf-py
 * writes it. */
static void test_merge_pair_with_space(void **state)
{
	const char *json =
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b c\":1},"
		"\"merges\":[[\"a\",\"b c\"]]},"
		"\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
	struct mb_vocab *v = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(mb_vocab_parse_tokenizer_json(json, strlen(json), &v,
						       err, sizeof(err)), 0);
	assert_int_equal(v->nmerges, 1);
	assert_string_equal(v->merges[0], "a b\xc4\xa0" "c");
	/* a lone ByteLevel with its default use_regex is GPT-2's regex */
	assert_string_equal(v->pre, "gpt-2");
	assert_int_equal(v->bos, -1);
	assert_int_equal(v->add_bos, -1);
	assert_null(v->chat_template);
	mb_vocab_free(v);
}

static void test_llama_fixture(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	uint64_t i;

	(void)state;
	assert_int_equal(mb_vocab_load_dir(fx.llama, 512, &v, err,
					   sizeof(err)), 0);
	assert_string_equal(v->model, "llama");
	assert_string_equal(v->pre, "");
	assert_int_equal(v->n, 512);
	assert_int_equal(v->n_real, 500);
	assert_non_null(v->scores);
	assert_int_equal(v->nmerges, 0);
	assert_string_equal(v->tokens[0], "<unk>");
	assert_int_equal(v->types[0], MB_TOK_UNKNOWN);
	assert_string_equal(v->tokens[1], "<s>");
	assert_int_equal(v->types[1], MB_TOK_CONTROL);
	assert_string_equal(v->tokens[2], "</s>");
	assert_int_equal(v->types[2], MB_TOK_CONTROL);
	assert_string_equal(v->tokens[3], "<0x00>");
	assert_string_equal(v->tokens[258], "<0xFF>");
	for (i = 3; i < 259; i++)
		assert_int_equal(v->types[i], MB_TOK_BYTE);
	for (i = 259; i < 500; i++) {
		assert_int_equal(v->types[i], MB_TOK_NORMAL);
		/* learned pieces have strictly descending scores */
		assert_true(v->scores[i] == -(float)(i - 259));
	}
	assert_string_equal(v->tokens[500], "[PAD500]");
	for (i = 500; i < 512; i++) {
		assert_int_equal(v->types[i], MB_TOK_UNUSED);
		assert_true(v->scores[i] == -1000.0f);
	}
	assert_int_equal(v->bos, 1);
	assert_int_equal(v->eos, 2);
	assert_int_equal(v->unk, 0);
	assert_int_equal(v->pad, -1);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->add_eos, 0);
	assert_non_null(v->chat_template);
	assert_non_null(strstr(v->chat_template, "[INST]"));
	mb_vocab_free(v);
}

/* added_tokens.json and chat_template.jinja next to a tokenizer.model:
 * tokens past the proto are added (ids over the proto are not), the
 * template file is used when tokenizer_config.json has none, and
 * config.json gives the ids tokenizer_config.json does not. */
static void test_llama_added_and_template_file(void **state)
{
	char dir[700], path[800];
	const char *added = "{\"<extra>\": 501, \"<|tool|>\": 500, "
			    "\"ignored\": 3}";
	const char *tcfg = "{\"add_bos_token\": true}";
	const char *cfg = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 3], "
			  "\"pad_token_id\": 9999, \"unk_token_id\": 0}";
	const char *tmpl = "{{ messages }}";
	struct mb_vocab *v = NULL;
	char err[512] = "";
	char *spm;
	size_t len;

	(void)state;
	spm = slurp(fx.llama, "tokenizer.model", &len);
	assert_int_equal(th_tmpdir("tokadd", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/tokenizer.model", dir);
	assert_int_equal(th_write_file(path, spm, len), 0);
	free(spm);
	snprintf(path, sizeof(path), "%s/added_tokens.json", dir);
	assert_int_equal(th_write_file(path, added, strlen(added)), 0);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	assert_int_equal(th_write_file(path, tcfg, strlen(tcfg)), 0);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	assert_int_equal(th_write_file(path, cfg, strlen(cfg)), 0);
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	assert_int_equal(th_write_file(path, tmpl, strlen(tmpl)), 0);

	assert_int_equal(mb_vocab_load_dir(dir, 512, &v, err, sizeof(err)),
			 0);
	assert_int_equal(v->n_real, 502);
	assert_string_equal(v->tokens[500], "<|tool|>");
	assert_int_equal(v->types[500], MB_TOK_CONTROL);
	assert_string_equal(v->tokens[501], "<extra>");
	assert_int_equal(v->types[501], MB_TOK_USER_DEFINED);
	assert_true(v->scores[501] == -1000.0f);
	assert_string_equal(v->tokens[3], "<0x00>");	/* proto wins */
	assert_int_equal(v->bos, 1);
	assert_int_equal(v->eos, -1);	/* a list is skipped */
	assert_int_equal(v->pad, -1);	/* out of range */
	assert_int_equal(v->unk, 0);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->add_eos, -1);
	assert_string_equal(v->chat_template, tmpl);
	mb_vocab_free(v);

	/* more added tokens than rows */
	assert_int_equal(mb_vocab_load_dir(dir, 501, &v, err, sizeof(err)),
			 MB_EFORMAT);
	assert_null(v);
	assert_non_null(strstr(err, "502 tokens"));
	th_rmtree(dir);
}

static void test_pre_names(void **state)
{
	(void)state;
	assert_string_equal(mb_vocab_pre_name(CL100K, 0), "dbrx");
	assert_string_equal(mb_vocab_pre_name(CL100K, 1), "llama-bpe");
	assert_string_equal(
		mb_vocab_pre_name(
			"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|"
			"'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
			"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
			"\\s+(?!\\S)|\\s+", 1),
		"llama-bpe");
	assert_string_equal(
		mb_vocab_pre_name(
			"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?"
			"\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
			"\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 0),
		"qwen2");
	assert_string_equal(
		mb_vocab_pre_name("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|"
				  " ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", 0),
		"gpt-2");
	assert_null(mb_vocab_pre_name("\\s+", 0));
	assert_null(mb_vocab_pre_name("", 1));
}

/* The fixture's tokenizer.json with ignore_merges on is Llama 3's. */
static void test_ignore_merges_is_llama_bpe(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	size_t len;
	char *json = slurp(fx.phi4, "tokenizer.json", &len);

	(void)state;
	json = replace(json, "\"ignore_merges\": false",
		       "\"ignore_merges\": true");
	assert_int_equal(mb_vocab_parse_tokenizer_json(json, strlen(json), &v,
						       err, sizeof(err)), 0);
	assert_string_equal(v->pre, "llama-bpe");
	mb_vocab_free(v);
	free(json);
}

/* Every text once: llama.cpp maps each token's text to one id and
 * aborts on a vocabulary where two ids share one. */
static void assert_unique(const struct mb_vocab *v)
{
	uint64_t i, k;

	for (i = 0; i < v->n; i++)
		for (k = i + 1; k < v->n; k++)
			if (strcmp(v->tokens[i], v->tokens[k]) == 0)
				fail_msg("ids %llu and %llu are both '%s'",
					 (unsigned long long)i,
					 (unsigned long long)k, v->tokens[i]);
}

/* Repos that hold a vocabulary with a text twice convert to one that
 * llama.cpp loads: the id the tokenizer decodes to keeps the text, the
 * other becomes padding. */
static void test_duplicate_texts_resolved(void **state)
{
	static const char *const cases[] = {
		/* an added token with a vocabulary token's text at another id */
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
		"\"merges\":[\"a b\"]},\"added_tokens\":[{\"id\":3,\"content\":"
		"\"ab\",\"special\":false}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
		/* a key twice in the vocabulary */
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,"
		"\"a\":3},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":"
		"\"ByteLevel\"}}",
		/* a hole whose "[PAD1]" filler is also a real token */
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2,"
		"\"[PAD1]\":3,\"ab\":4},\"merges\":[\"a b\"]},\"pre_tokenizer\":"
		"{\"type\":\"ByteLevel\"}}",
	};
	static const uint64_t renamed[] = { 1, 1, 1 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mb_vocab *v = NULL;
		char err[256] = "";

		if (mb_vocab_parse_tokenizer_json(cases[i], strlen(cases[i]), &v,
						  err, sizeof(err)) != 0)
			fail_msg("case %zu: %s", i, err);
		assert_unique(v);
		assert_int_equal(v->n_renamed, renamed[i]);
		mb_vocab_free(v);
	}
	{
		/* the added token keeps its text: it is what the tokenizer
		 * makes of "ab"; the vocabulary's id is padding */
		struct mb_vocab *v = NULL;
		char err[256] = "";

		assert_int_equal(mb_vocab_parse_tokenizer_json(cases[0],
							       strlen(cases[0]),
							       &v, err, sizeof(err)),
				 0);
		assert_string_equal(v->tokens[3], "ab");
		assert_int_equal(v->types[3], MB_TOK_USER_DEFINED);
		assert_string_equal(v->tokens[2], "[PAD2]");
		assert_int_equal(v->types[2], MB_TOK_UNUSED);
		mb_vocab_free(v);
		/* the real "[PAD1]" keeps its text; the hole gets another */
		assert_int_equal(mb_vocab_parse_tokenizer_json(cases[2],
							       strlen(cases[2]),
							       &v, err, sizeof(err)),
				 0);
		assert_string_equal(v->tokens[3], "[PAD1]");
		assert_int_equal(v->types[3], MB_TOK_NORMAL);
		assert_string_equal(v->tokens[1], "[PAD1_1]");
		mb_vocab_free(v);
	}
}

static void test_unknown_regex(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	size_t len;
	char *json = slurp(fx.phi4, "tokenizer.json", &len);

	(void)state;
	/* one digit more per number: not a pre-tokenizer llama.cpp has */
	json = replace(json, "\\\\p{N}{1,3}", "\\\\p{N}{1,4}");
	assert_int_equal(mb_vocab_parse_tokenizer_json(json, strlen(json), &v,
						       err, sizeof(err)),
			 MB_EUNSUPPORTED);
	assert_null(v);
	assert_non_null(strstr(err, "unknown pre-tokenizer regex"));
	assert_non_null(strstr(err, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|"));
	assert_non_null(strstr(err, "\\p{N}{1,4}"));
	free(json);
}

struct bad_json {
	const char *json;
	int rc;
	const char *msg;
};

#define PRE_OK "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}"
#define MODEL(v, m) "{\"model\":{\"type\":\"BPE\",\"vocab\":" v ",\"merges\":" m "},"

static void test_hostile_tokenizer_json(void **state)
{
	static const struct bad_json cases[] = {
		{ "[1, 2]", MB_EFORMAT, "not a json object" },
		{ "{\"model\":", MB_EJSON, "not valid json" },
		{ "{}", MB_EFORMAT, "no model object" },
		{ "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
		  MB_EUNSUPPORTED, "'Unigram' is not supported" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":[]}}", MB_EFORMAT,
		  "no vocab object" },
		{ MODEL("{}", "[]") PRE_OK "}", MB_EFORMAT, "no tokens" },
		{ MODEL("{\"a\":0,\"b\":0}", "[\"a b\"]") PRE_OK "}",
		  MB_EFORMAT, "token id 0 is given to both 'a' and 'b'" },
		{ MODEL("{\"a\":-1}", "[\"a b\"]") PRE_OK "}", MB_EFORMAT,
		  "token 'a' needs an id" },
		{ MODEL("{\"a\":1.5}", "[\"a b\"]") PRE_OK "}", MB_EFORMAT,
		  "token 'a' needs an id" },
		{ MODEL("{\"a\":\"0\"}", "[\"a b\"]") PRE_OK "}", MB_EFORMAT,
		  "token 'a' needs an id" },
		{ MODEL("{\"a\":4194304}", "[\"a b\"]") PRE_OK "}", MB_EFORMAT,
		  "token 'a' needs an id" },
		{ MODEL("{\"a\":0}", "42") PRE_OK "}", MB_EFORMAT,
		  "no merges list" },
		{ MODEL("{\"a\":0}", "[]") PRE_OK "}", MB_EFORMAT,
		  "no merges list" },
		{ MODEL("{\"a\":0}", "[7]") PRE_OK "}", MB_EFORMAT,
		  "merge 0 is neither" },
		{ MODEL("{\"a\":0}", "[[\"a\"]]") PRE_OK "}", MB_EFORMAT,
		  "merge 0 is neither" },
		{ MODEL("{\"a\":0}", "[[\"a\",1]]") PRE_OK "}", MB_EFORMAT,
		  "merge 0 is neither" },
		{ MODEL("{\"a\":0}", "[\"a b\",\"ab\"]") PRE_OK "}", MB_EFORMAT,
		  "merge 1 ('ab') is not two tokens" },
		{ MODEL("{\"a\":0}", "[\" ab\"]") PRE_OK "}", MB_EFORMAT,
		  "is not two tokens" },
		{ MODEL("{\"a\":0}", "[\"a b\"]") "\"added_tokens\":{}}",
		  MB_EFORMAT, "added_tokens is not a list" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"added_tokens\":[{\"id\":1}]}",
		  MB_EFORMAT, "added token 0 needs an id" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"added_tokens\":[{\"id\":1,\"content\":\"x\"},"
		  "{\"id\":1,\"content\":\"y\"}]," PRE_OK "}",
		  MB_EFORMAT, "added token id 1 is given to both 'x' and 'y'" },
		{ MODEL("{\"a\":0}", "[\"a b\"]") "\"pre_tokenizer\":null}",
		  MB_EUNSUPPORTED, "no pre-tokenizer" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
		  "[{\"type\":\"Digits\"},{\"type\":\"ByteLevel\"}]}}",
		  MB_EUNSUPPORTED, "pre-tokenizer 'Digits' is not supported" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
		  "{}}}",
		  MB_EFORMAT, "no pretokenizers list" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Metaspace\"}}",
		  MB_EUNSUPPORTED, "'Metaspace' is not supported" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
		  "[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"}}]}}",
		  MB_EUNSUPPORTED, "not byte-level" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
		  "[{\"type\":\"Split\",\"pattern\":{\"String\":\" \"}},"
		  "{\"type\":\"ByteLevel\",\"use_regex\":false}]}}",
		  MB_EUNSUPPORTED, "without a Regex pattern" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
		  "[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+\"}},"
		  "{\"type\":\"ByteLevel\"}]}}",
		  MB_EUNSUPPORTED, "together are not supported" },
		{ MODEL("{\"a\":0}", "[\"a b\"]")
		  "\"pre_tokenizer\":{\"type\":\"ByteLevel\","
		  "\"use_regex\":false}}",
		  MB_EUNSUPPORTED, "no pre-tokenizer regex" },
	};
	struct mb_vocab *v;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = NULL;
		err[0] = '\0';
		assert_int_equal(mb_vocab_parse_tokenizer_json(
					 cases[i].json, strlen(cases[i].json),
					 &v, err, sizeof(err)),
				 cases[i].rc);
		assert_null(v);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err,
				 cases[i].msg);
	}
}

static void test_token_too_long(void **state)
{
	size_t n = MB_VOCAB_MAX_TOKEN_LEN + 1, k = 0;
	char *json = malloc(n + 256);
	struct mb_vocab *v = NULL;
	char err[256] = "";

	(void)state;
	assert_non_null(json);
	k += (size_t)snprintf(json, 256,
			      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"");
	memset(json + k, 'a', n);
	k += n;
	snprintf(json + k, 200, "\":0},\"merges\":[\"a b\"]}," PRE_OK "}");
	assert_int_equal(mb_vocab_parse_tokenizer_json(json, strlen(json), &v,
						       err, sizeof(err)),
			 MB_ETOOBIG);
	assert_null(v);
	assert_non_null(strstr(err, "longer than 65536 bytes"));
	free(json);
}

static void test_more_tokens_than_rows(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";

	(void)state;
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 621, &v, err, sizeof(err)),
			 MB_EFORMAT);
	assert_null(v);
	assert_non_null(strstr(err, "622 tokens, more than the 621 rows"));
	assert_int_equal(mb_vocab_load_dir(fx.llama, 499, &v, err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "500 tokens, more than the 499 rows"));
}

static void test_no_tokenizer(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	char dir[600];

	(void)state;
	assert_int_equal(th_tmpdir("toknone", dir, sizeof(dir)), 0);
	assert_int_equal(mb_vocab_load_dir(dir, 0, &v, err, sizeof(err)),
			 MB_ENOENT);
	assert_null(v);
	assert_non_null(strstr(err, "no tokenizer.json or tokenizer.model"));
	th_rmtree(dir);
}

/* A broken tokenizer_config.json is an error, not a vocabulary without
 * special tokens. */
static void test_bad_tokenizer_config(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	char dir[600], path[700];
	const char *tcfg;
	size_t len;
	char *json = slurp(fx.phi4, "tokenizer.json", &len);

	(void)state;
	assert_int_equal(th_tmpdir("tokcfg", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	assert_int_equal(th_write_file(path, json, len), 0);
	free(json);
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	assert_int_equal(th_write_file(path, "{\"bos_token\":", 13), 0);
	assert_int_equal(mb_vocab_load_dir(dir, 0, &v, err, sizeof(err)),
			 MB_EJSON);
	assert_null(v);
	assert_non_null(strstr(err, "'tokenizer_config.json' is not valid"));
	/* a chat template list: the "default" one */
	tcfg = "{\"chat_template\":[{\"name\":\"tool_use\",\"template\":"
	       "\"T\"},{\"name\":\"default\",\"template\":\"D\"}],"
	       "\"eos_token\":{\"content\":\"<|im_end|>\"}}";
	assert_int_equal(th_write_file(path, tcfg, strlen(tcfg)), 0);
	assert_int_equal(mb_vocab_load_dir(dir, 0, &v, err, sizeof(err)), 0);
	assert_string_equal(v->chat_template, "D");
	assert_int_equal(v->eos, 618);
	assert_int_equal(v->bos, -1);
	mb_vocab_free(v);
	th_rmtree(dir);
}

/* ------------------------------------------------------------ protobuf */

struct pbw {
	uint8_t b[1024];
	size_t n;
};

static void pbw_byte(struct pbw *w, uint8_t c)
{
	assert_true(w->n < sizeof(w->b));
	w->b[w->n++] = c;
}

static void pbw_varint(struct pbw *w, uint64_t v)
{
	do {
		pbw_byte(w, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v != 0);
}

static void pbw_bytes(struct pbw *w, unsigned field, const void *p, size_t n)
{
	pbw_varint(w, field << 3 | 2);
	pbw_varint(w, n);
	assert_true(w->n + n <= sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* A SentencePiece message: text, score, type (type 0: left out). */
static void pbw_piece(struct pbw *w, const char *text, float score,
		      uint64_t type)
{
	struct pbw p = { .n = 0 };
	uint32_t bits;
	int i;

	if (text != NULL)
		pbw_bytes(&p, 1, text, strlen(text));
	pbw_varint(&p, 2 << 3 | 5);
	memcpy(&bits, &score, 4);
	for (i = 0; i < 4; i++)
		pbw_byte(&p, (uint8_t)(bits >> (8 * i)));
	if (type != 0) {
		pbw_varint(&p, 3 << 3 | 0);
		pbw_varint(&p, type);
	}
	pbw_bytes(w, 1, p.b, p.n);
}

static void test_spm_minimal(void **state)
{
	struct pbw w = { .n = 0 };
	struct mb_vocab *v = NULL;
	char err[256] = "";

	(void)state;
	pbw_piece(&w, "<unk>", 0, 2);
	pbw_piece(&w, "<s>", 0, 3);
	pbw_piece(&w, "\xe2\x96\x81the", -1.5f, 0);	/* type defaults */
	pbw_bytes(&w, 2, "\x18\x01", 2);		/* trainer_spec */
	pbw_varint(&w, 7 << 3 | 0);			/* unknown field */
	pbw_varint(&w, 300);
	assert_int_equal(mb_vocab_parse_spm(w.b, w.n, &v, err, sizeof(err)),
			 0);
	assert_int_equal(v->n, 3);
	assert_string_equal(v->tokens[2], "\xe2\x96\x81the");
	assert_int_equal(v->types[0], MB_TOK_UNKNOWN);
	assert_int_equal(v->types[1], MB_TOK_CONTROL);
	assert_int_equal(v->types[2], MB_TOK_NORMAL);
	assert_true(v->scores[2] == -1.5f);
	mb_vocab_free(v);
}

static void expect_spm(const struct pbw *w, int rc, const char *msg)
{
	struct mb_vocab *v = NULL;
	char err[256] = "";

	assert_int_equal(mb_vocab_parse_spm(w->b, w->n, &v, err, sizeof(err)),
			 rc);
	assert_null(v);
	if (strstr(err, msg) == NULL)
		fail_msg("'%s' lacks '%s'", err, msg);
}

/* Appends a varint to buf at *k. */
static void put_varint(uint8_t *buf, size_t *k, uint64_t v)
{
	do {
		buf[(*k)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
}

/* A piece one byte longer than MB_VOCAB_MAX_TOKEN_LEN. */
static void test_spm_long_piece(void)
{
	size_t n = MB_VOCAB_MAX_TOKEN_LEN + 1, k = 0;
	uint8_t *buf = malloc(n + 16);
	struct mb_vocab *v = NULL;
	char err[256] = "";

	assert_non_null(buf);
	buf[k++] = 0x0a;		/* pieces: the SentencePiece message */
	put_varint(buf, &k, n + 4);
	buf[k++] = 0x0a;		/* piece: the text */
	put_varint(buf, &k, n);
	memset(buf + k, 'x', n);
	k += n;
	assert_int_equal(mb_vocab_parse_spm(buf, k, &v, err, sizeof(err)),
			 MB_ETOOBIG);
	assert_null(v);
	assert_non_null(strstr(err, "piece 0 is longer than 65536"));
	free(buf);
}

static void test_hostile_spm(void **state)
{
	struct pbw w;

	(void)state;
	/* empty model */
	w.n = 0;
	expect_spm(&w, MB_EFORMAT, "has no pieces");
	/* only a trainer_spec */
	w.n = 0;
	pbw_bytes(&w, 2, "\x18\x01", 2);
	expect_spm(&w, MB_EFORMAT, "has no pieces");
	/* a length past the end */
	w.n = 0;
	pbw_piece(&w, "a", 0, 1);
	pbw_varint(&w, 1 << 3 | 2);
	pbw_varint(&w, 100);
	pbw_byte(&w, 'x');
	expect_spm(&w, MB_EFORMAT, "field 1 of 100 bytes runs past the end");
	/* a length near 2^64 */
	w.n = 0;
	pbw_varint(&w, 1 << 3 | 2);
	pbw_varint(&w, UINT64_MAX);
	expect_spm(&w, MB_EFORMAT, "runs past the end");
	/* a truncated varint */
	w.n = 0;
	pbw_piece(&w, "a", 0, 1);
	pbw_byte(&w, 0x08);
	pbw_byte(&w, 0x80);
	expect_spm(&w, MB_EFORMAT, "truncated varint");
	/* a varint of 11 bytes */
	w.n = 0;
	pbw_byte(&w, 0x08);
	memset(w.b + w.n, 0xff, 10);
	w.n += 10;
	pbw_byte(&w, 0x01);
	expect_spm(&w, MB_EFORMAT, "longer than 64 bits");
	/* a 10th byte over 1 */
	w.n = 0;
	pbw_byte(&w, 0x08);
	memset(w.b + w.n, 0xff, 9);
	w.n += 9;
	pbw_byte(&w, 0x02);
	expect_spm(&w, MB_EFORMAT, "longer than 64 bits");
	/* bad piece types */
	w.n = 0;
	pbw_piece(&w, "a", 0, 7);
	expect_spm(&w, MB_EFORMAT, "piece 0 has bad type 7");
	w.n = 0;
	pbw_piece(&w, "a", 0, 1);
	pbw_piece(&w, "b", 0, 1ULL << 40);
	expect_spm(&w, MB_EFORMAT, "piece 1 has bad type 1099511627776");
	/* a piece without text */
	w.n = 0;
	pbw_piece(&w, NULL, 0, 1);
	expect_spm(&w, MB_EFORMAT, "piece 0 has no text");
	/* a piece with a NUL */
	w.n = 0;
	{
		struct pbw p = { .n = 0 };

		pbw_bytes(&p, 1, "a\0b", 3);
		pbw_bytes(&w, 1, p.b, p.n);
	}
	expect_spm(&w, MB_EFORMAT, "holds a NUL byte");
	/* pieces is not a message */
	w.n = 0;
	pbw_varint(&w, 1 << 3 | 0);
	pbw_varint(&w, 5);
	expect_spm(&w, MB_EFORMAT, "piece 0 is not a message");
	/* group wire types */
	w.n = 0;
	pbw_varint(&w, 4 << 3 | 3);
	expect_spm(&w, MB_EFORMAT, "wire type 3");
	/* a truncated fixed32 score */
	w.n = 0;
	pbw_bytes(&w, 1, "\x15\x00\x00", 3);
	expect_spm(&w, MB_EFORMAT, "truncated fixed field 2");

	/* a piece longer than the cap */
	test_spm_long_piece();
}

/* A truncated tokenizer.model in a model directory is an error. */
static void test_truncated_model_file(void **state)
{
	struct mb_vocab *v = NULL;
	char err[512] = "";
	char dir[600], path[700];
	size_t len;
	char *spm = slurp(fx.llama, "tokenizer.model", &len);

	(void)state;
	assert_int_equal(th_tmpdir("toktrunc", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/tokenizer.model", dir);
	assert_int_equal(th_write_file(path, spm, len / 2), 0);
	free(spm);
	assert_int_equal(mb_vocab_load_dir(dir, 0, &v, err, sizeof(err)),
			 MB_EFORMAT);
	assert_null(v);
	assert_non_null(strstr(err, "tokenizer.model"));
	th_rmtree(dir);
}

/* ------------------------------------------------------------ gguf */

/* Writes a GGUF of general.architecture and the vocabulary's keys only:
 * what llama.cpp loads with vocab_only. */
static void write_gguf(const struct mb_vocab *v, const char *arch,
		       const char *path)
{
	struct mb_gguf_w w;
	int fd;

	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(mb_gguf_w_str(&w, "general.architecture", arch), 0);
	assert_int_equal(mb_vocab_to_gguf(v, &w), 0);
	assert_int_equal(mb_gguf_w_layout(&w), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(mb_gguf_w_write_header(&w, fd), 0);
	assert_int_equal(close(fd), 0);
	mb_gguf_w_release(&w);
}

static const struct mb_gguf_kv *kv(const struct mb_gguf *g, const char *key,
				   enum mb_gguf_type type)
{
	const struct mb_gguf_kv *k = mb_gguf_kv(g, key);

	if (k == NULL)
		fail_msg("no key '%s'", key);
	assert_int_equal(k->type, type);
	return k;
}

static void test_gguf_roundtrip_gpt2(void **state)
{
	struct mb_vocab *v = NULL;
	struct mb_gguf *g = NULL;
	const struct mb_gguf_kv *k;
	char err[512] = "", path[700];
	uint64_t i;

	(void)state;
	snprintf(path, sizeof(path), "%s/gpt2.gguf", fx.root);
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 1024, &v, err,
					   sizeof(err)), 0);
	write_gguf(v, "phi3", path);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->ntensors, 0);
	assert_string_equal(kv(g, "tokenizer.ggml.model", MB_GGUF_STRING)->v.s,
			    "gpt2");
	assert_string_equal(kv(g, "tokenizer.ggml.pre", MB_GGUF_STRING)->v.s,
			    "dbrx");
	k = kv(g, "tokenizer.ggml.tokens", MB_GGUF_ARRAY);
	assert_int_equal(k->elem_type, MB_GGUF_STRING);
	assert_int_equal(k->n, 1024);
	for (i = 0; i < v->n; i++)
		assert_string_equal(k->strs[i], v->tokens[i]);
	k = kv(g, "tokenizer.ggml.token_type", MB_GGUF_ARRAY);
	assert_int_equal(k->elem_type, MB_GGUF_INT32);
	assert_int_equal(k->n, 1024);
	assert_memory_equal(k->arr, v->types, 1024 * sizeof(int32_t));
	k = kv(g, "tokenizer.ggml.merges", MB_GGUF_ARRAY);
	assert_int_equal(k->elem_type, MB_GGUF_STRING);
	assert_int_equal(k->n, v->nmerges);
	for (i = 0; i < v->nmerges; i++)
		assert_string_equal(k->strs[i], v->merges[i]);
	assert_null(mb_gguf_kv(g, "tokenizer.ggml.scores"));
	assert_int_equal(kv(g, "tokenizer.ggml.bos_token_id",
			    MB_GGUF_UINT32)->v.u, 616);
	assert_int_equal(kv(g, "tokenizer.ggml.eos_token_id",
			    MB_GGUF_UINT32)->v.u, 618);
	assert_int_equal(kv(g, "tokenizer.ggml.padding_token_id",
			    MB_GGUF_UINT32)->v.u, 620);
	assert_int_equal(kv(g, "tokenizer.ggml.unknown_token_id",
			    MB_GGUF_UINT32)->v.u, 616);
	assert_int_equal(kv(g, "tokenizer.ggml.add_bos_token",
			    MB_GGUF_BOOL)->v.u, 0);
	assert_int_equal(kv(g, "tokenizer.ggml.add_eos_token",
			    MB_GGUF_BOOL)->v.u, 0);
	assert_string_equal(kv(g, "tokenizer.chat_template",
			       MB_GGUF_STRING)->v.s, v->chat_template);
	assert_int_equal(g->n_kv, 13);
	mb_gguf_free(g);
	mb_vocab_free(v);
}

static void test_gguf_roundtrip_llama(void **state)
{
	struct mb_vocab *v = NULL;
	struct mb_gguf *g = NULL;
	const struct mb_gguf_kv *k;
	char err[512] = "", path[700];

	(void)state;
	snprintf(path, sizeof(path), "%s/llama.gguf", fx.root);
	assert_int_equal(mb_vocab_load_dir(fx.llama, 512, &v, err,
					   sizeof(err)), 0);
	write_gguf(v, "llama", path);
	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_string_equal(kv(g, "tokenizer.ggml.model", MB_GGUF_STRING)->v.s,
			    "llama");
	assert_null(mb_gguf_kv(g, "tokenizer.ggml.pre"));
	assert_null(mb_gguf_kv(g, "tokenizer.ggml.merges"));
	assert_null(mb_gguf_kv(g, "tokenizer.ggml.padding_token_id"));
	k = kv(g, "tokenizer.ggml.tokens", MB_GGUF_ARRAY);
	assert_int_equal(k->n, 512);
	assert_string_equal(k->strs[258], "<0xFF>");
	k = kv(g, "tokenizer.ggml.scores", MB_GGUF_ARRAY);
	assert_int_equal(k->elem_type, MB_GGUF_FLOAT32);
	assert_int_equal(k->n, 512);
	assert_memory_equal(k->arr, v->scores, 512 * sizeof(float));
	k = kv(g, "tokenizer.ggml.token_type", MB_GGUF_ARRAY);
	assert_memory_equal(k->arr, v->types, 512 * sizeof(int32_t));
	assert_int_equal(kv(g, "tokenizer.ggml.unknown_token_id",
			    MB_GGUF_UINT32)->v.u, 0);
	assert_int_equal(kv(g, "tokenizer.ggml.add_bos_token",
			    MB_GGUF_BOOL)->v.u, 1);
	mb_gguf_free(g);
	mb_vocab_free(v);
}

/* ------------------------------------------------------ llama.cpp */

static void quiet_log(enum ggml_log_level level, const char *text, void *ctx)
{
	(void)ctx;
	if (level == GGML_LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

/* Loads path with llama.cpp's own loader, vocabulary only. */
static struct llama_model *llama_vocab_load(const char *path)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_model *m;

	llama_log_set(quiet_log, NULL);
	llama_backend_init();
	mp.vocab_only = true;
	mp.n_gpu_layers = 0;
	m = llama_model_load_from_file(path, mp);
	llama_log_set(NULL, NULL);
	assert_non_null(m);
	return m;
}

/* Tokenizes text (special tokens parsed) and detokenizes it back. */
static int roundtrip_text(const struct llama_vocab *vocab, const char *text,
			  bool add_special, llama_token *toks, int max,
			  char *back, int backcap)
{
	int n, len;

	n = llama_tokenize(vocab, text, (int32_t)strlen(text), toks, max,
			   add_special, true);
	assert_true(n > 0);
	len = llama_detokenize(vocab, toks, n, back, backcap - 1, true, true);
	assert_true(len >= 0);
	back[len] = '\0';
	return n;
}

/* The GGUF mibera writes for the Phi-4 fixture is a vocabulary llama.cpp
 * loads, with the special tokens it names, and that tokenizes with the
 * merges (fewer tokens than bytes) and back to the same text. */
static void test_llama_cpp_gpt2(void **state)
{
	const char *chat = "<|im_start|>user<|im_sep|>the machine is given "
			   "back, and the bill stops<|im_end|>";
	struct mb_vocab *v = NULL;
	struct llama_model *m;
	const struct llama_vocab *vocab;
	llama_token toks[256];
	char err[512] = "", path[700], back[1024];
	int n, i;

	(void)state;
	snprintf(path, sizeof(path), "%s/llama-gpt2.gguf", fx.root);
	assert_int_equal(mb_vocab_load_dir(fx.phi4, 1024, &v, err,
					   sizeof(err)), 0);
	write_gguf(v, "phi3", path);
	mb_vocab_free(v);
	m = llama_vocab_load(path);
	vocab = llama_model_get_vocab(m);
	assert_int_equal(llama_vocab_type(vocab), LLAMA_VOCAB_TYPE_BPE);
	assert_int_equal(llama_vocab_n_tokens(vocab), 1024);
	assert_int_equal(llama_vocab_bos(vocab), 616);
	assert_int_equal(llama_vocab_eos(vocab), 618);
	assert_int_equal(llama_vocab_pad(vocab), 620);
	assert_false(llama_vocab_get_add_bos(vocab));
	n = roundtrip_text(vocab, chat, false, toks, 256, back, sizeof(back));
	assert_int_equal(toks[0], 617);
	for (i = 1; i < n && toks[i] != 619; i++)
		;
	assert_true(i < n);	/* <|im_sep|> is one token */
	assert_int_equal(toks[n - 1], 618);
	assert_true((size_t)n < strlen(chat) / 2);
	assert_string_equal(back, chat);
	/* <tool_call> is user-defined: one token, text kept */
	n = roundtrip_text(vocab, "call <tool_call>", false, toks, 256, back,
			   sizeof(back));
	assert_int_equal(toks[n - 1], 621);
	assert_string_equal(back, "call <tool_call>");
	llama_model_free(m);
}

static void test_llama_cpp_spm(void **state)
{
	const char *text = "the machine is given back";
	struct mb_vocab *v = NULL;
	struct llama_model *m;
	const struct llama_vocab *vocab;
	llama_token toks[256];
	char err[512] = "", path[700], back[1024];
	int n;

	(void)state;
	snprintf(path, sizeof(path), "%s/llama-spm.gguf", fx.root);
	assert_int_equal(mb_vocab_load_dir(fx.llama, 512, &v, err,
					   sizeof(err)), 0);
	write_gguf(v, "llama", path);
	mb_vocab_free(v);
	m = llama_vocab_load(path);
	vocab = llama_model_get_vocab(m);
	assert_int_equal(llama_vocab_type(vocab), LLAMA_VOCAB_TYPE_SPM);
	assert_int_equal(llama_vocab_n_tokens(vocab), 512);
	assert_int_equal(llama_vocab_bos(vocab), 1);
	assert_int_equal(llama_vocab_eos(vocab), 2);
	assert_true(llama_vocab_get_add_bos(vocab));
	n = roundtrip_text(vocab, text, true, toks, 256, back, sizeof(back));
	assert_int_equal(toks[0], 1);
	assert_true((size_t)n < strlen(text) / 2);
	/* llama.cpp keeps the dummy prefix's space after a BOS */
	assert_string_equal(back + (back[0] == ' '), text);
	n = roundtrip_text(vocab, text, false, toks, 256, back, sizeof(back));
	assert_int_not_equal(toks[0], 1);
	assert_string_equal(back, text);
	llama_model_free(m);
}

/* ------------------------------------ SentencePiece BPE tokenizer.json */

static void fail_each_alloc_min(const char *dir, uint64_t rows, long min);

/* A SentencePiece BPE tokenizer.json as the tokenizers library writes
 * Llama 2's and Mistral's: byte fallback, spaces made U+2581 by the
 * normalizer TEXT_STEPS (or by a pre-tokenizer), merges ranked so that
 * (y, z) comes before (x, y). */
#define SPM_JSON(normalizer, pre_tokenizer)                                  \
	"{\"version\":\"1.0\",\"added_tokens\":["                               \
	"{\"id\":0,\"content\":\"<unk>\",\"special\":true},"                   \
	"{\"id\":1,\"content\":\"<s>\",\"special\":true},"                     \
	"{\"id\":2,\"content\":\"</s>\",\"special\":true}],"                   \
	"\"normalizer\":" normalizer ",\"pre_tokenizer\":" pre_tokenizer ","    \
	"\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","                 \
	"\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{"                \
	"\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"<0x0A>\":3,\"<0x78>\":4,"          \
	"\"\xe2\x96\x81\":5,\"x\":6,\"y\":7,\"z\":8,\"xy\":9,\"yz\":10,"          \
	"\"\xe2\x96\x81x\":11,\"\xe2\x96\x81xy\":12},"                           \
	"\"merges\":[\"y z\",\"x y\",\"\xe2\x96\x81 x\",\"\xe2\x96\x81x y\"]}}"
#define LEGACY_NORM                                                          \
	"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\","       \
	"\"prepend\":\"\xe2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":"     \
	"{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}"
#define METASPACE(scheme, split)                                            \
	"{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","            \
	"\"prepend_scheme\":\"" scheme "\",\"split\":" split "}"

/* The tokenizers library's merge order, rank by rank: "xyz" is x, yz
 * ((y, z) ranks first) where left-to-right merging makes xy, z. The
 * vocabulary is "llama" with the scores that make llama.cpp merge in
 * that order, the byte tokens BYTE and <unk> UNKNOWN. */
static void test_spm_bpe_json(void **state)
{
	static const char legacy[] = SPM_JSON(LEGACY_NORM, "null");
	static const char never[] = SPM_JSON("null", METASPACE("never", "false"));
	struct mb_vocab *v = NULL;
	struct llama_model *m;
	const struct llama_vocab *vocab;
	llama_token toks[16];
	char err[512] = "", path[700];
	int n;

	(void)state;
	assert_int_equal(mb_vocab_parse_tokenizer_json(legacy, sizeof(legacy) - 1,
						       &v, err, sizeof(err)),
			 0);
	assert_string_equal(v->model, "llama");
	assert_string_equal(v->pre, "");
	assert_int_equal(v->n, 13);
	assert_null(v->merges);
	assert_int_equal(v->add_space_prefix, 1);
	assert_int_equal(v->unk, 0);
	assert_int_equal(v->types[0], MB_TOK_UNKNOWN);
	assert_int_equal(v->types[1], MB_TOK_CONTROL);
	assert_int_equal(v->types[3], MB_TOK_BYTE);
	assert_int_equal(v->types[4], MB_TOK_BYTE);
	assert_int_equal(v->types[10], MB_TOK_NORMAL);
	/* -rank of the merge that makes each token; below them all: none */
	assert_true(v->scores[10] == 0.0f);
	assert_true(v->scores[9] == -1.0f);
	assert_true(v->scores[11] == -2.0f);
	assert_true(v->scores[12] == -3.0f);
	assert_true(v->scores[6] == -5.0f);
	mb_vocab_free(v);
	v = NULL;
	assert_int_equal(mb_vocab_parse_tokenizer_json(never, sizeof(never) - 1,
						       &v, err, sizeof(err)),
			 0);
	assert_int_equal(v->add_space_prefix, 0);
	snprintf(path, sizeof(path), "%s/spm-json.gguf", fx.root);
	write_gguf(v, "llama", path);
	mb_vocab_free(v);
	m = llama_vocab_load(path);
	vocab = llama_model_get_vocab(m);
	assert_int_equal(llama_vocab_type(vocab), LLAMA_VOCAB_TYPE_SPM);
	n = llama_tokenize(vocab, "xyz", 3, toks, 16, false, false);
	assert_int_equal(n, 2);
	assert_int_equal(toks[0], 6);	/* x */
	assert_int_equal(toks[1], 10);	/* yz */
	/* a character no token holds: its UTF-8 bytes */
	n = llama_tokenize(vocab, "\n", 1, toks, 16, false, false);
	assert_int_equal(n, 1);
	assert_int_equal(toks[0], 3);
	llama_model_free(m);
}

/* What llama.cpp's SentencePiece tokenizer cannot do is refused by
 * name: a Metaspace that splits at spaces, another normalizer, spaces
 * left as spaces; broken merges are format errors. */
static void test_spm_bpe_json_refused(void **state)
{
	static const struct {
		const char *json;
		int rc;
		const char *why;
	} cases[] = {
		{ SPM_JSON("null", METASPACE("first", "true")), MB_EUNSUPPORTED,
		  "Metaspace pre-tokenizer that splits at spaces" },
		{ SPM_JSON("{\"type\":\"NFKC\"}", "null"), MB_EUNSUPPORTED,
		  "normalizer 'NFKC' is not supported" },
		{ SPM_JSON("null", "null"), MB_EUNSUPPORTED,
		  "spaces are not replaced by U+2581" },
		{ SPM_JSON(LEGACY_NORM, "{\"type\":\"Whitespace\"}"),
		  MB_EUNSUPPORTED, "pre-tokenizer 'Whitespace' is not supported" },
	};
	static const char no_merges[] =
		"{\"normalizer\":" LEGACY_NORM ",\"model\":{\"type\":\"BPE\","
		"\"byte_fallback\":true,\"vocab\":{\"a\":0}}}";
	static const char bad_merge[] =
		"{\"normalizer\":" LEGACY_NORM ",\"model\":{\"type\":\"BPE\","
		"\"byte_fallback\":true,\"vocab\":{\"a\":0},\"merges\":"
		"[\"ab\"]}}";
	struct mb_vocab *v = NULL;
	char err[512];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		rc = mb_vocab_parse_tokenizer_json(cases[i].json,
						   strlen(cases[i].json), &v, err,
						   sizeof(err));
		assert_null(v);
		if (rc != cases[i].rc || strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu: %s: %s", i, mb_errname(rc), err);
	}
	assert_int_equal(mb_vocab_parse_tokenizer_json(no_merges,
						       sizeof(no_merges) - 1, &v,
						       err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "no merges list"));
	assert_int_equal(mb_vocab_parse_tokenizer_json(bad_merge,
						       sizeof(bad_merge) - 1, &v,
						       err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "is not two tokens and a space"));
}

static void test_alloc_failures_spm_json(void **state)
{
	static const char legacy[] = SPM_JSON(LEGACY_NORM, "null");
	char dir[700];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/spm-json", fx.root);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/spm-json/tokenizer.json", fx.root);
	assert_int_equal(th_write_file(dir, legacy, sizeof(legacy) - 1), 0);
	snprintf(dir, sizeof(dir), "%s/spm-json", fx.root);
	fail_each_alloc_min(dir, 16, 10);
}

/* ---------------------------------------------------------- faults */

/* Fails allocation k for k = 0, 1, ... until the load succeeds: every
 * failure must be MB_ENOMEM with nothing returned (and, under ASan,
 * nothing leaked). */
static void fail_each_alloc(const char *dir, uint64_t rows)
{
	fail_each_alloc_min(dir, rows, 100);
}

/* The same, with at least min allocations before the load succeeds. */
static void fail_each_alloc_min(const char *dir, uint64_t rows, long min)
{
	struct mb_vocab *v;
	char err[512];
	long k;
	int rc;

	for (k = 0;; k++) {
		v = NULL;
		mb_fault_set(MB_FAULT_ALLOC, k, 1, ENOMEM);
		rc = mb_vocab_load_dir(dir, rows, &v, err, sizeof(err));
		mb_fault_clear();
		if (rc == 0)
			break;
		if (rc != MB_ENOMEM)
			fail_msg("allocation %ld: %s (%s)", k, mb_errname(rc),
				 err);
		assert_null(v);
	}
	assert_non_null(v);
	assert_true(k > min);
	mb_vocab_free(v);
}

static void test_alloc_failures_gpt2(void **state)
{
	(void)state;
	fail_each_alloc(fx.phi4_pairs, 1024);
}

static void test_alloc_failures_llama(void **state)
{
	(void)state;
	fail_each_alloc(fx.llama, 512);
}

/* The first token llama.cpp makes of "the model" on dir's vocabulary
 * written as a GGUF. */
static void first_token(const char *dir, const char *name, char *out,
			size_t cap, struct mb_vocab **vp)
{
	struct mb_vocab *v = NULL;
	struct llama_model *m;
	llama_token toks[16];
	char err[512] = "", path[700];
	int n;

	assert_int_equal(mb_vocab_load_dir(dir, 512, &v, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/%s.gguf", fx.root, name);
	write_gguf(v, "llama", path);
	m = llama_vocab_load(path);
	n = llama_tokenize(llama_model_get_vocab(m), "the model", 9, toks, 16,
			   false, false);
	assert_true(n > 0);
	snprintf(out, cap, "%s", llama_vocab_get_text(llama_model_get_vocab(m),
						      toks[0]));
	llama_model_free(m);
	*vp = v;
}

/* Gemma's tokenizer.model turns add_dummy_prefix off: the vocabulary
 * says no space prefix (tokenizer.ggml.add_space_prefix false), and
 * llama.cpp's first token of "the model" is "t..." , not "\u2581the",
 * as Gemma's own tokenizer gives. Llama's leaves the key out (its
 * default, a prefix). Gemma's specials come from its proto and
 * tokenizer_config.json. */
static void test_spm_no_dummy_prefix(void **state)
{
	struct mb_vocab *v;
	char tok[64];

	(void)state;
	first_token(fx.gemma3, "gemma3-spm", tok, sizeof(tok), &v);
	assert_string_equal(v->model, "llama");
	assert_int_equal(v->add_space_prefix, 0);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->bos, 2);
	assert_int_equal(v->eos, 1);
	assert_int_equal(v->pad, 0);
	assert_int_equal(v->unk, 3);
	assert_string_equal(v->tokens[6], "<end_of_turn>");
	mb_vocab_free(v);
	assert_true(tok[0] == 't');
	first_token(fx.llama, "llama-spm", tok, sizeof(tok), &v);
	assert_int_equal(v->add_space_prefix, -1);
	mb_vocab_free(v);
	assert_memory_equal(tok, "\xe2\x96\x81t", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phi4_fixture),
		cmocka_unit_test(test_merges_formats_agree),
		cmocka_unit_test(test_merge_pair_with_space),
		cmocka_unit_test(test_llama_fixture),
		cmocka_unit_test(test_llama_added_and_template_file),
		cmocka_unit_test(test_pre_names),
		cmocka_unit_test(test_ignore_merges_is_llama_bpe),
		cmocka_unit_test(test_unknown_regex),
		cmocka_unit_test(test_duplicate_texts_resolved),
		cmocka_unit_test(test_hostile_tokenizer_json),
		cmocka_unit_test(test_token_too_long),
		cmocka_unit_test(test_more_tokens_than_rows),
		cmocka_unit_test(test_no_tokenizer),
		cmocka_unit_test(test_bad_tokenizer_config),
		cmocka_unit_test(test_spm_minimal),
		cmocka_unit_test(test_hostile_spm),
		cmocka_unit_test(test_truncated_model_file),
		cmocka_unit_test(test_gguf_roundtrip_gpt2),
		cmocka_unit_test(test_gguf_roundtrip_llama),
		cmocka_unit_test(test_llama_cpp_gpt2),
		cmocka_unit_test(test_llama_cpp_spm),
		cmocka_unit_test(test_spm_bpe_json),
		cmocka_unit_test(test_spm_no_dummy_prefix),
		cmocka_unit_test(test_spm_bpe_json_refused),
		cmocka_unit_test(test_alloc_failures_spm_json),
		cmocka_unit_test(test_alloc_failures_gpt2),
		cmocka_unit_test(test_alloc_failures_llama),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
