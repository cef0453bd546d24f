/* mibera-job inspect against real directories and the fake hub: every lie
 * of the broken fixture found, a Phi-4-shaped 13-shard repo identified
 * from a few kilobytes, and each failure (gated, missing, offline,
 * unreachable) answered with a message a person can act on. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/fs.h"
#include "hub.h"
#include "model.h"
#include "th.h"

#define TOKEN "hf_testtoken_0123456789"

static char root[512], hubdir[600];
static struct th_hub hub;
static uint64_t phi4_header_bytes; /* sum of 8 + N over the 13 shards */

/* Runs mibera-job with args; stdout into out (caller frees), stderr into
 * err; returns the exit code. */
static int run_job(const char *args, char **out, char *err, size_t errcap)
{
	char cmd[4096], errpath[700];
	struct mb_buf b;
	char chunk[65536];
	size_t n;
	FILE *p;
	int st;

	snprintf(errpath, sizeof(errpath), "%s/stderr.txt", root);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job %s 2>%s", MB_BINARY_DIR, args,
		 errpath);
	p = popen(cmd, "r");
	assert_non_null(p);
	mb_buf_init(&b, 64u << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		assert_int_equal(mb_buf_add(&b, chunk, n), 0);
	st = pclose(p);
	*out = mb_buf_detach(&b, NULL);
	mb_buf_release(&b);
	if (err != NULL) {
		char *e = th_slurp(errpath, NULL);

		snprintf(err, errcap, "%s", e ? e : "");
		free(e);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *run_json(const char *args, int want_exit)
{
	char err[4096];
	char *out;
	cJSON *doc;
	int rc = run_job(args, &out, err, sizeof(err));

	if (rc != want_exit)
		fail_msg("mibera-job %s: exit %d, wanted %d; stderr: %s", args, rc,
			 want_exit, err);
	doc = cJSON_Parse(out);
	if (doc == NULL)
		fail_msg("mibera-job %s: output is not JSON: %.300s", args, out);
	free(out);
	return doc;
}

static const cJSON *field(const cJSON *doc, const char *key)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"),
						  "fields"))
		if (strcmp(cJSON_GetObjectItem(f, "key")->valuestring, key) == 0)
			return f;
	fail_msg("no field '%s' in the report", key);
	return NULL;
}

static double value(const cJSON *doc, const char *key)
{
	return cJSON_GetObjectItem(field(doc, key), "value")->valuedouble;
}

static int repaired(const cJSON *doc, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(field(doc, key), "repaired"));
}

static void mkdirs(const char *p)
{
	assert_int_equal(mb_mkdir_p(p, 0755), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[1200];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(th_write_file(p, text, strlen(text)), 0);
}

static void le64(uint8_t out[8], uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

/*
 * A repo with Phi-4's real shapes in 13 shards: real headers, sparse data
 * (the files are ~29 GB long and take no disk), the lying config.json and
 * a card naming microsoft/phi-4.
 */
static void make_phi4_repo(const char *dir)
{
	static const struct {
		const char *sfx;
		uint64_t r, c;
	} per_layer[] = {
		{ "input_layernorm.weight", 5120, 0 },
		{ "mlp.down_proj.weight", 5120, 17920 },
		{ "mlp.gate_up_proj.weight", 35840, 5120 },
		{ "post_attention_layernorm.weight", 5120, 0 },
		{ "self_attn.o_proj.weight", 5120, 5120 },
		{ "self_attn.qkv_proj.weight", 7680, 5120 },
	};
	struct { char name[96]; uint64_t r, c; } t[243];
	struct mb_buf idx, sha;
	int nt = 0, l, shard, i;
	size_t k;

	snprintf(t[nt].name, 96, "model.embed_tokens.weight");
	t[nt].r = 100352, t[nt++].c = 5120;
	for (l = 0; l < 40; l++)
		for (k = 0; k < 6; k++) {
			snprintf(t[nt].name, 96, "model.layers.%d.%s", l,
				 per_layer[k].sfx);
			t[nt].r = per_layer[k].r;
			t[nt++].c = per_layer[k].c;
		}
	snprintf(t[nt].name, 96, "model.norm.weight");
	t[nt].r = 5120, t[nt++].c = 0;
	snprintf(t[nt].name, 96, "lm_head.weight");
	t[nt].r = 100352, t[nt++].c = 5120;
	assert_int_equal(nt, 243);

	mkdirs(dir);
	mb_buf_init(&idx, 1 << 20);
	mb_buf_init(&sha, 1 << 20);
	mb_buf_adds(&idx, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
	mb_buf_adds(&sha, "{\"sha256\":{");
	for (shard = 0, i = 0; shard < 13; shard++) {
		int end = (shard + 1) * 243 / 13;
		struct mb_buf h;
		uint64_t off = 0;
		char fname[64], path[1200];
		uint8_t len8[8];
		int fd, first = 1;

		snprintf(fname, sizeof(fname), "model-%05d-of-00013.safetensors",
			 shard + 1);
		mb_buf_init(&h, 1 << 20);
		mb_buf_adds(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
		for (; i < end; i++) {
			uint64_t n = (t[i].c ? t[i].r * t[i].c : t[i].r) * 2;

			if (t[i].c)
				mb_buf_addf(&h, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":"
					    "[%llu,%llu],\"data_offsets\":[%llu,%llu]}",
					    t[i].name, (unsigned long long)t[i].r,
					    (unsigned long long)t[i].c,
					    (unsigned long long)off,
					    (unsigned long long)(off + n));
			else
				mb_buf_addf(&h, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":"
					    "[%llu],\"data_offsets\":[%llu,%llu]}",
					    t[i].name, (unsigned long long)t[i].r,
					    (unsigned long long)off,
					    (unsigned long long)(off + n));
			off += n;
			mb_buf_addf(&idx, "%s\"%s\":\"%s\"",
				    idx.data[idx.len - 1] == '{' ? "" : ",",
				    t[i].name, fname);
		}
		mb_buf_adds(&h, "}");
		while (h.len % 8 != 0)
			mb_buf_adds(&h, " ");
		snprintf(path, sizeof(path), "%s/%s", dir, fname);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		le64(len8, h.len);
		assert_int_equal(write(fd, len8, 8), 8);
		assert_int_equal(write(fd, h.data, h.len), (ssize_t)h.len);
		assert_int_equal(ftruncate(fd, (off_t)(8 + h.len + off)), 0);
		close(fd);
		phi4_header_bytes += 8 + h.len;
		/* declared hashes: nothing reads these sparse blobs */
		mb_buf_addf(&sha, "%s\"%s\":\"%064d\"", first && shard == 0 ? "" : ",",
			    fname, shard + 1);
		first = 0;
		mb_buf_release(&h);
	}
	mb_buf_adds(&idx, "}}");
	mb_buf_adds(&sha, "}}");
	write_text(dir, "model.safetensors.index.json", idx.data);
	write_text(dir, ".fakehub.json", sha.data);
	write_text(dir, "config.json",
		   "{\"architectures\":[\"PhiForCausalLM\"],\"model_type\":\"phi\","
		   "\"num_hidden_layers\":32,\"hidden_size\":4096,"
		   "\"vocab_size\":50257,\"num_attention_heads\":32,"
		   "\"intermediate_size\":16384,\"rope_theta\":10000.0}");
	write_text(dir, "README.md", "---\nbase_model: microsoft/phi-4\n---\n"
				     "# mibera-v1-merged\n");
	mb_buf_release(&idx);
	mb_buf_release(&sha);
}

static void copy_fixture(const char *preset, const char *config,
			 const char *dest)
{
	const char *extra[] = { "--config", config, NULL };

	assert_int_equal(th_mkmodel(dest, preset, extra), 0);
}

static int setup(void **state)
{
	char p[800];

	(void)state;
	if (th_tmpdir("inspect", root, sizeof(root)) != 0)
		return -1;
	snprintf(hubdir, sizeof(hubdir), "%s/hub", root);
	snprintf(p, sizeof(p), "%s/org/phi4-tiny", hubdir);
	copy_fixture("phi4-tiny", "broken", p);
	snprintf(p, sizeof(p), "%s/org/gated-tiny", hubdir);
	copy_fixture("phi4-tiny", "broken", p);
	write_text(p, ".fakehub.json", "{\"gated\":true}");
	snprintf(p, sizeof(p), "%s/org/llama-broken", hubdir);
	copy_fixture("llama-tiny", "broken", p);
	snprintf(p, sizeof(p), "%s/local/correct", root);
	copy_fixture("phi4-tiny", "correct", p);
	snprintf(p, sizeof(p), "%s/org/phi4-mini-tiny", hubdir);
	copy_fixture("phi4-mini-tiny", "correct", p);
	snprintf(p, sizeof(p), "%s/org/qwen2-tiny", hubdir);
	copy_fixture("qwen2-tiny", "correct", p);
	{
		const char *extra[] = { "--no-architectures", NULL };

		snprintf(p, sizeof(p), "%s/local/qwen2-noarch", root);
		assert_int_equal(th_mkmodel(p, "qwen2-tiny", extra), 0);
	}
	snprintf(p, sizeof(p), "%s/org/qwen3-tiny", hubdir);
	copy_fixture("qwen3-tiny", "correct", p);
	/* Qwen3's config with the head size a Llama config would have
	 * (hidden / heads) */
	snprintf(p, sizeof(p), "%s/local/qwen3-headdim", root);
	copy_fixture("qwen3-tiny", "correct", p);
	write_text(p, "config.json",
		   "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":"
		   "\"qwen3\",\"hidden_size\":256,\"num_attention_heads\":2,"
		   "\"num_key_value_heads\":1,\"head_dim\":128,"
		   "\"num_hidden_layers\":2,\"intermediate_size\":688,"
		   "\"vocab_size\":1024,\"tie_word_embeddings\":true}");
	snprintf(p, sizeof(p), "%s/org/gemma3-tiny", hubdir);
	copy_fixture("gemma3-tiny", "correct", p);
	/* Gemma 3 with the attention scale of another head size (256 over
	 * heads of 64), and with capped attention scores */
	snprintf(p, sizeof(p), "%s/local/gemma3-scalar", root);
	copy_fixture("gemma3-tiny", "correct", p);
	write_text(p, "config.json",
		   "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":"
		   "\"gemma3_text\",\"hidden_size\":192,\"head_dim\":64,"
		   "\"num_attention_heads\":4,\"num_key_value_heads\":1,"
		   "\"query_pre_attn_scalar\":256,\"sliding_window\":4}");
	snprintf(p, sizeof(p), "%s/local/gemma3-softcap", root);
	copy_fixture("gemma3-tiny", "correct", p);
	write_text(p, "config.json",
		   "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":"
		   "\"gemma3_text\",\"hidden_size\":192,\"head_dim\":64,"
		   "\"query_pre_attn_scalar\":64,\"sliding_window\":4,"
		   "\"attn_logit_softcapping\":50.0,"
		   "\"final_logit_softcapping\":30.0}");
	/* Gemma's true config over Llama-shaped tensors, and the same with
	 * model_type alone */
	snprintf(p, sizeof(p), "%s/org/gemma-tiny", hubdir);
	copy_fixture("llama-tiny", "correct", p);
	write_text(p, "config.json",
		   "{\"architectures\":[\"GemmaForCausalLM\"],\"model_type\":"
		   "\"gemma\",\"hidden_size\":256,\"num_attention_heads\":4,"
		   "\"num_key_value_heads\":2,\"head_dim\":64,"
		   "\"num_hidden_layers\":2,\"intermediate_size\":688,"
		   "\"vocab_size\":512}");
	snprintf(p, sizeof(p), "%s/local/gemma-noarch", root);
	copy_fixture("llama-tiny", "correct", p);
	write_text(p, "config.json",
		   "{\"model_type\":\"gemma\",\"hidden_size\":256,"
		   "\"num_attention_heads\":4,\"num_key_value_heads\":2}");
	snprintf(p, sizeof(p), "%s/ivxxdegen/mibera-v1-merged", hubdir);
	make_phi4_repo(p);
	{
		/* a tokenizer, as every real repo has: inspect reads it as
		 * convert does */
		char cmd[4000], *out;

		snprintf(cmd, sizeof(cmd), "cp %s/org/phi4-tiny/tokenizer.json "
			 "%s/org/phi4-tiny/tokenizer_config.json %s/", hubdir, hubdir, p);
		if (th_capture(cmd, &out) != 0)
			return -1;
		free(out);
	}
	/* the base on the hub, so its config comes from there */
	snprintf(p, sizeof(p), "%s/microsoft/phi-4", hubdir);
	mkdirs(p);
	write_text(p, "config.json",
		   "{\"architectures\":[\"Phi3ForCausalLM\"],\"model_type\":"
		   "\"phi3\",\"hidden_size\":5120,\"num_hidden_layers\":40,"
		   "\"intermediate_size\":17920,\"vocab_size\":100352,"
		   "\"num_attention_heads\":40,\"num_key_value_heads\":10,"
		   "\"rope_theta\":250000.0,\"rms_norm_eps\":1e-05,"
		   "\"max_position_embeddings\":16384,"
		   "\"original_max_position_embeddings\":16384,"
		   "\"sliding_window\":null}");
	if (th_hub_start(&hub, hubdir, TOKEN) != 0)
		return -1;
	setenv("HF_ENDPOINT", hub.url, 1);
	unsetenv("HF_TOKEN");
	unsetenv("HF_HUB_OFFLINE");
	snprintf(p, sizeof(p), "%s/hfcache", root);
	setenv("HF_HUB_CACHE", p, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	th_rmtree(root);
	return 0;
}

static void check_tiny_lies(const cJSON *doc)
{
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"),
						"family")->valuestring, "phi3");
	assert_true(repaired(doc, "num_hidden_layers"));
	assert_int_equal(value(doc, "num_hidden_layers"), 3);
	assert_true(repaired(doc, "hidden_size"));
	assert_int_equal(value(doc, "hidden_size"), 512);
	assert_true(repaired(doc, "vocab_size"));
	assert_int_equal(value(doc, "vocab_size"), 1024);
	assert_true(repaired(doc, "model_type"));
	assert_true(repaired(doc, "architectures"));
	assert_non_null(strstr(cJSON_GetObjectItem(field(doc, "hidden_size"),
						   "evidence")->valuestring,
			       "model.embed_tokens.weight"));
}

static void test_local_directory(void **state)
{
	char args[900];
	cJSON *doc;

	(void)state;
	snprintf(args, sizeof(args), "inspect --json %s/org/phi4-tiny", hubdir);
	doc = run_json(args, 0);
	check_tiny_lies(doc);
	cJSON_Delete(doc);
	/* a correct config: nothing to repair */
	snprintf(args, sizeof(args), "inspect --json %s/local/correct", root);
	doc = run_json(args, 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(doc, "model"), "repairs")),
			 0);
	cJSON_Delete(doc);
}

static void test_hub_repo(void **state)
{
	const cJSON *src;
	char *out, err[2048];
	cJSON *doc;

	(void)state;
	doc = run_json("inspect --json org/phi4-tiny", 0);
	check_tiny_lies(doc);
	src = cJSON_GetObjectItem(doc, "source");
	assert_string_equal(cJSON_GetObjectItem(src, "kind")->valuestring, "hub");
	assert_int_equal(strlen(cJSON_GetObjectItem(src, "commit")->valuestring),
			 40);
	assert_non_null(cJSON_GetObjectItem(doc, "repaired_config"));
	cJSON_Delete(doc);
	/* the human report says the same in words */
	assert_int_equal(run_job("inspect org/phi4-tiny", &out, err, sizeof(err)),
			 0);
	assert_non_null(strstr(out, "convertible after"));
	assert_non_null(strstr(out, "num_hidden_layers: 32 -> 3"));
	free(out);
}

static void test_phi4_shaped_from_headers(void **state)
{
	long long bytes = 0, reqs = 0, total = 0;
	const cJSON *src, *t;
	char path[64];
	cJSON *doc;
	int i;

	(void)state;
	th_hub_reset(&hub);
	doc = run_json("inspect --json ivxxdegen/mibera-v1-merged", 0);
	t = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"), "tensors");
	assert_int_equal(cJSON_GetObjectItem(t, "layers")->valuedouble, 40);
	assert_int_equal(cJSON_GetObjectItem(t, "hidden")->valuedouble, 5120);
	assert_int_equal(cJSON_GetObjectItem(t, "vocab_rows")->valuedouble, 100352);
	assert_int_equal(cJSON_GetObjectItem(t, "intermediate")->valuedouble, 17920);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(t, "bias")));
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(t, "tied_output")));
	assert_int_equal(value(doc, "num_attention_heads"), 40);
	assert_int_equal(value(doc, "num_key_value_heads"), 10);
	assert_int_equal(value(doc, "num_hidden_layers"), 40);
	assert_true(repaired(doc, "num_hidden_layers"));
	assert_string_equal(cJSON_GetObjectItem(field(doc, "num_attention_heads"),
						"source")->valuestring,
			    "base model (hub)");
	/* the traffic: headers and small files, not 29 GB of weights */
	src = cJSON_GetObjectItem(doc, "source");
	assert_true(cJSON_GetObjectItem(src, "hub_bytes")->valuedouble <
		    (double)((1u << 20) + phi4_header_bytes));
	for (i = 1; i <= 13; i++) {
		snprintf(path, sizeof(path), "model-%05d-of-00013.safetensors", i);
		assert_int_equal(th_hub_stats(&hub, "ivxxdegen/mibera-v1-merged",
					      path, &bytes, &reqs),
				 0);
		total += bytes;
	}
	assert_int_equal(total, (long long)phi4_header_bytes);
	print_message("inspect read %.0f bytes from the hub for a 13-shard "
		      "Phi-4-shaped repo (%llu of them shard headers)\n",
		      cJSON_GetObjectItem(src, "hub_bytes")->valuedouble,
		      (unsigned long long)phi4_header_bytes);
	cJSON_Delete(doc);
}

static void test_gated_and_missing(void **state)
{
	char *out, err[2048];

	(void)state;
	assert_int_equal(run_job("inspect org/gated-tiny", &out, err, sizeof(err)),
			 1);
	free(out);
	assert_non_null(strstr(err, "gated"));
	assert_non_null(strstr(err, "HF_TOKEN"));
	setenv("HF_TOKEN", TOKEN, 1);
	assert_int_equal(run_job("inspect org/gated-tiny", &out, err, sizeof(err)),
			 0);
	free(out);
	unsetenv("HF_TOKEN");
	{
		/* or the file `hf auth login` writes, as huggingface_hub
		 * reads it */
		char tp[700];

		snprintf(tp, sizeof(tp), "%s/hf-token", root);
		assert_int_equal(th_write_file(tp, TOKEN "\n", strlen(TOKEN) + 1), 0);
		setenv("HF_TOKEN_PATH", tp, 1);
		assert_int_equal(run_job("inspect org/gated-tiny", &out, err,
					 sizeof(err)), 0);
		free(out);
		unsetenv("HF_TOKEN_PATH");
	}
	/* the token never shows in what a person sees */
	unsetenv("HF_TOKEN");
	assert_int_equal(run_job("inspect org/nothing-here", &out, err,
				 sizeof(err)),
			 1);
	free(out);
	assert_non_null(strstr(err, "not found"));
	assert_null(strstr(err, TOKEN));
	assert_int_equal(run_job("inspect org/phi4-tiny@nobranch", &out, err,
				 sizeof(err)),
			 1);
	free(out);
	assert_non_null(strstr(err, "revision"));
}

static void test_not_convertible_and_usage(void **state)
{
	char *out, err[2048];

	(void)state;
	assert_int_equal(run_job("inspect org/llama-broken", &out, err,
				 sizeof(err)),
			 3);
	assert_non_null(strstr(out, "NOT CONVERTIBLE"));
	assert_non_null(strstr(out, "head count unknown"));
	/* one verdict: a refused model is never also called convertible */
	assert_null(strstr(out, "verdict    convertible"));
	assert_null(strstr(strstr(out, "verdict") + 1, "verdict"));
	free(out);
	assert_int_equal(run_job("inspect", &out, err, sizeof(err)), 2);
	free(out);
	assert_int_equal(run_job("inspect a/b/c/d --bogus", &out, err, sizeof(err)),
			 2);
	free(out);
	assert_int_equal(run_job("inspect org/phi4-tiny --quant Q9_X", &out, err,
				 sizeof(err)),
			 2);
	free(out);
}

/* A true config of an architecture mibera does not convert (Gemma, whose
 * tensors have Llama's names and shapes) is refused before a box is
 * rented, naming the architecture, with nothing "repaired" into Llama
 * (which would convert it into a model that loads and talks nonsense). */
static void test_foreign_architecture_refused(void **state)
{
	static const char *const want =
		"NOT CONVERTIBLE: GemmaForCausalLM (model_type gemma) is not a "
		"family mibera converts natively (it converts: "
		"Gemma3ForCausalLM, LlamaForCausalLM, MistralForCausalLM, "
		"Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)";
	const cJSON *model;
	char args[900], *out, err[2048];
	cJSON *doc;

	(void)state;
	assert_int_equal(run_job("inspect org/gemma-tiny", &out, err,
				 sizeof(err)),
			 3);
	if (strstr(out, want) == NULL)
		fail_msg("inspect said: %s", out);
	assert_null(strstr(out, "repaired"));
	free(out);
	doc = run_json("inspect --json org/gemma-tiny", 3);
	model = cJSON_GetObjectItem(doc, "model");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(model, "convertible")));
	assert_string_equal(cJSON_GetObjectItem(model, "family")->valuestring,
			    "unknown");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(model, "repairs")),
			 0);
	cJSON_Delete(doc);
	/* no architectures, model_type gemma: the same refusal */
	snprintf(args, sizeof(args), "inspect %s/local/gemma-noarch", root);
	assert_int_equal(run_job(args, &out, err, sizeof(err)), 3);
	if (strstr(out, want) == NULL)
		fail_msg("inspect said: %s", out);
	free(out);
}

/* Qwen2 with its true config converts natively: nothing to repair, and
 * never taken for Llama. Without architectures, model_type qwen2 still
 * says what it is; the missing name is the one repair. */
static void test_qwen2_accepted(void **state)
{
	char args[900], *out, err[2048];
	cJSON *doc;

	(void)state;
	assert_int_equal(run_job("inspect org/qwen2-tiny", &out, err,
				 sizeof(err)),
			 0);
	if (strstr(out, "convertible; config.json is right") == NULL ||
	    strstr(out, "family     qwen2") == NULL)
		fail_msg("inspect said: %s", out);
	free(out);
	snprintf(args, sizeof(args), "inspect --json %s/local/qwen2-noarch", root);
	doc = run_json(args, 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"),
						"family")->valuestring, "qwen2");
	assert_true(repaired(doc, "architectures"));
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(
				field(doc, "architectures"), "value"), 0)->valuestring,
			    "Qwen2ForCausalLM");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(doc, "model"), "repairs")),
			 1);
	cJSON_Delete(doc);
}

/* Qwen3 with its true config converts natively. Head counts that do not
 * fit the tensors are repaired from q_norm's size, one head wide (128:
 * queries are twice the hidden size), not from hidden / heads. */
static void test_qwen3_accepted(void **state)
{
	char args[900], *out, err[2048];
	const cJSON *f;
	cJSON *doc;

	(void)state;
	assert_int_equal(run_job("inspect org/qwen3-tiny", &out, err,
				 sizeof(err)),
			 0);
	if (strstr(out, "convertible; config.json is right") == NULL ||
	    strstr(out, "family     qwen3") == NULL)
		fail_msg("inspect said: %s", out);
	free(out);
	snprintf(args, sizeof(args), "inspect --json %s/local/qwen3-headdim",
		 root);
	doc = run_json(args, 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"),
						"family")->valuestring, "qwen3");
	assert_true(repaired(doc, "num_attention_heads"));
	assert_true(repaired(doc, "num_key_value_heads"));
	assert_false(repaired(doc, "head_dim"));
	assert_int_equal(value(doc, "num_attention_heads"), 4);
	assert_int_equal(value(doc, "num_key_value_heads"), 2);
	f = cJSON_GetObjectItem(field(doc, "num_attention_heads"), "evidence");
	if (strstr(f->valuestring, "q_norm.weight [128]") == NULL)
		fail_msg("num_attention_heads evidence: %s", f->valuestring);
	cJSON_Delete(doc);
}

/* Gemma 3's text model with its true config converts natively, the
 * sliding window, its pattern and the attention scale as the config says
 * them. An attention scale llama.cpp's gemma3 would not compute, or a cap
 * on the attention scores it does not apply, is refused by name. */
static void test_gemma3_accepted(void **state)
{
	char args[900], *out, err[2048];
	cJSON *doc;

	(void)state;
	assert_int_equal(run_job("inspect org/gemma3-tiny", &out, err,
				 sizeof(err)),
			 0);
	if (strstr(out, "convertible; config.json is right") == NULL ||
	    strstr(out, "family     gemma3") == NULL)
		fail_msg("inspect said: %s", out);
	/* the architecture's name whole in its column, not cut */
	assert_non_null(strstr(out, "[\"Gemma3ForCausalLM\"] "));
	free(out);
	doc = run_json("inspect --json org/gemma3-tiny", 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model"),
						"family")->valuestring, "gemma3");
	assert_int_equal(value(doc, "sliding_window"), 4);
	assert_int_equal(value(doc, "sliding_window_pattern"), 6);
	assert_int_equal(value(doc, "query_pre_attn_scalar"), 64);
	assert_int_equal(value(doc, "head_dim"), 64);
	assert_int_equal(value(doc, "num_key_value_heads"), 1);
	assert_false(repaired(doc, "architectures"));
	cJSON_Delete(doc);
	snprintf(args, sizeof(args), "inspect %s/local/gemma3-scalar", root);
	assert_int_equal(run_job(args, &out, err, sizeof(err)), 3);
	if (strstr(out, "query_pre_attn_scalar 256 (from config.json): "
			"llama.cpp's gemma3 scales attention scores by 64^-1/2")
	    == NULL)
		fail_msg("inspect said: %s", out);
	free(out);
	snprintf(args, sizeof(args), "inspect %s/local/gemma3-softcap", root);
	assert_int_equal(run_job(args, &out, err, sizeof(err)), 3);
	if (strstr(out, "attn_logit_softcapping 50 (from config.json): "
			"llama.cpp's gemma3 has no cap on attention scores")
	    == NULL)
		fail_msg("inspect said: %s", out);
	free(out);
}

/* Phi-4-mini's true config (partial rotary 0.75, 48 longrope factors per
 * list for the 96 rotated dimensions of a 128-wide head) is right as it
 * is. */
static void test_phi4_mini_accepted(void **state)
{
	char *out, err[2048];
	cJSON *doc;

	(void)state;
	assert_int_equal(run_job("inspect org/phi4-mini-tiny", &out, err,
				 sizeof(err)),
			 0);
	if (strstr(out, "convertible; config.json is right") == NULL)
		fail_msg("inspect said: %s", out);
	/* rope_scaling is too long for the table: cut there, saying so, and
	 * shown whole under it, to its last member */
	assert_non_null(strstr(out, "rope_scaling                       "
			       "{\"long_factor\":["));
	assert_non_null(strstr(out, "... "));
	assert_non_null(strstr(out, "\nin full (cut above)\n  rope_scaling: "
			       "{\"long_factor\":["));
	assert_non_null(strstr(out, "\"type\":\"longrope\"}\n"));
	free(out);
	doc = run_json("inspect --json org/phi4-mini-tiny", 0);
	assert_true(fabs(value(doc, "partial_rotary_factor") - 0.75) < 1e-12);
	assert_false(repaired(doc, "rope_scaling"));
	cJSON_Delete(doc);
}

static void test_offline_uses_local_cache(void **state)
{
	char p[900], *out, err[2048];
	const char *commit = "0123456789abcdef0123456789abcdef01234567";

	(void)state;
	setenv("HF_HUB_OFFLINE", "1", 1);
	assert_int_equal(run_job("inspect org/phi4-tiny", &out, err, sizeof(err)),
			 1);
	free(out);
	assert_non_null(strstr(err, "HF_HUB_OFFLINE"));
	assert_non_null(strstr(err, "not in the local cache"));
	/* the same repo in the hub cache layout: inspect carries on */
	snprintf(p, sizeof(p), "%s/hfcache/models--org--phi4-tiny/refs", root);
	mkdirs(p);
	write_text(p, "main", commit);
	snprintf(p, sizeof(p), "%s/hfcache/models--org--phi4-tiny/snapshots/%s",
		 root, commit);
	copy_fixture("phi4-tiny", "broken", p);
	assert_int_equal(run_job("inspect org/phi4-tiny", &out, err, sizeof(err)),
			 0);
	assert_non_null(strstr(out, "using the local cache"));
	assert_non_null(strstr(out, "num_hidden_layers: 32 -> 3"));
	free(out);
	unsetenv("HF_HUB_OFFLINE");
}

static void test_unreachable_does_not_hang(void **state)
{
	char url[64], *out, err[2048];
	long long t0;
	int port = th_free_port();

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	setenv("HF_ENDPOINT", url, 1);
	t0 = th_now_ms();
	assert_int_equal(run_job("inspect org/unknown-model", &out, err,
				 sizeof(err)),
			 1);
	free(out);
	assert_true(th_now_ms() - t0 < 20000);
	assert_non_null(strstr(err, "cannot reach"));
	setenv("HF_ENDPOINT", hub.url, 1);
}

/* inspect and convert run one set of checks: for config.json files that
 * are not JSON, nested past any parser's depth, or 52 MB, and for a
 * broken tokenizer, inspect's verdict (exit 0 or 3) is what convert does
 * with the same files, locally and from the hub. */
static void test_inspect_agrees_with_convert(void **state)
{
	static const struct {
		const char *name, *make;
	} cases[] = {
		{ "notjson", "printf '{\"architectures\": [\"Phi3' > config.json" },
		{ "deep", "python3 -c \"print('[' * 100000 + ']' * 100000)\" > "
			  "config.json" },
		{ "huge", "python3 -c \"import json; print(json.dumps({'pad': 'x' * "
			  "52000000}))\" > config.json" },
		{ "badtok", "head -c 3000 tokenizer.json > t && mv t tokenizer.json" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dir[800], cmd[4000], *out, err[2048];
		int irc, hrc, crc;

		snprintf(dir, sizeof(dir), "%s/org/agree-%s", hubdir, cases[i].name);
		copy_fixture("phi4-tiny", "broken", dir);
		snprintf(cmd, sizeof(cmd), "cd %s && %s", dir, cases[i].make);
		assert_int_equal(th_capture(cmd, &out), 0);
		free(out);
		snprintf(cmd, sizeof(cmd), "inspect %s", dir);
		irc = run_job(cmd, &out, err, sizeof(err));
		free(out);
		snprintf(cmd, sizeof(cmd), "inspect org/agree-%s", cases[i].name);
		hrc = run_job(cmd, &out, err, sizeof(err));
		free(out);
		snprintf(cmd, sizeof(cmd), "%s/mibera-worker convert %s %s/agree.gguf "
			 "2>&1", MB_BINARY_DIR, dir, root);
		crc = th_capture(cmd, &out);
		print_message("%s: inspect %d (hub %d), convert %d: %.200s\n",
			      cases[i].name, irc, hrc, crc, out);
		free(out);
		assert_true(irc == 0 || irc == 3);
		assert_int_equal(irc, hrc);
		assert_int_equal(irc == 0, crc == 0);
	}
}

/* Every command's --help is its usage on stdout, with exit 0, as the
 * tools people know do it; nothing is done. */
static void test_every_help(void **state)
{
	static const char *const cmds[] = { "submit", "status", "show", "dashboard",
					    "logs", "cancel", "retry", "artifacts",
					    "worker", "inspect", "smoke", "version" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char args[64], *out, err[2048];

		snprintf(args, sizeof(args), "%s --help", cmds[i]);
		if (run_job(args, &out, err, sizeof(err)) != 0)
			fail_msg("%s: exit not 0: %s", args, err);
		if (strncmp(out, "usage: mibera-job ", 18) != 0)
			fail_msg("%s: no usage on stdout: '%s'", args, out);
		free(out);
	}
}

static void test_hostile_index(void **state)
{
	char p[900], *out, err[2048];

	(void)state;
	snprintf(p, sizeof(p), "%s/org/evil", hubdir);
	copy_fixture("phi4-tiny", "broken", p);
	write_text(p, "model.safetensors.index.json",
		   "{\"weight_map\":{\"model.norm.weight\":\"../../x.safetensors\"}}");
	assert_int_equal(run_job("inspect org/evil", &out, err, sizeof(err)), 3);
	free(out);
	assert_non_null(strstr(err, "unsafe path"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_directory),
		cmocka_unit_test(test_hub_repo),
		cmocka_unit_test(test_phi4_shaped_from_headers),
		cmocka_unit_test(test_gated_and_missing),
		cmocka_unit_test(test_not_convertible_and_usage),
		cmocka_unit_test(test_foreign_architecture_refused),
		cmocka_unit_test(test_qwen2_accepted),
		cmocka_unit_test(test_qwen3_accepted),
		cmocka_unit_test(test_gemma3_accepted),
		cmocka_unit_test(test_phi4_mini_accepted),
		cmocka_unit_test(test_offline_uses_local_cache),
		cmocka_unit_test(test_unreachable_does_not_hang),
		cmocka_unit_test(test_hostile_index),
		cmocka_unit_test(test_inspect_agrees_with_convert),
		cmocka_unit_test(test_every_help),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
