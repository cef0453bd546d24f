/* Tests common/modelcfg.c on generated fixtures and on Phi-4's real
 * shapes (headers only): inference, repairs with evidence, base models,
 * ambiguity, hostile configs and incomplete models. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"
#include "model.h"
#include "th.h"

static char root[512];

static int group_setup(void **state)
{
	(void)state;
	return th_tmpdir("modelcfg", root, sizeof(root));
}

static int group_teardown(void **state)
{
	(void)state;
	return th_rmtree(root);
}

/* Generates a fixture once per name and returns its directory. */
static const char *fixture(const char *name, const char *preset,
			   const char *config)
{
	static char dir[600];
	const char *extra[] = { "--config", config, NULL };
	char probe[700];

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	snprintf(probe, sizeof(probe), "%s/config.json", dir);
	if (access(probe, F_OK) != 0)
		assert_int_equal(th_mkmodel(dir, preset, extra), 0);
	return dir;
}

static char *read_in(const char *dir, const char *file, size_t *len)
{
	char path[700];
	char *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (mb_read_file(path, 1 << 24, &data, len) != 0)
		return NULL;
	return data;
}

/* Infers a fixture directory with its config.json and README.md. */
static struct mb_modelcfg *infer_dir(const char *dir, struct mb_st_model **mp)
{
	struct mb_st_model *m;
	struct mb_modelcfg *c;
	size_t clen = 0, rlen = 0;
	char *cfg, *card, err[256] = "";

	assert_int_equal(mb_st_model_open_dir(dir, &m, err, sizeof(err)), 0);
	cfg = read_in(dir, "config.json", &clen);
	card = read_in(dir, "README.md", &rlen);
	assert_int_equal(mb_modelcfg_infer(m, cfg, clen, card, rlen, NULL, 0, &c,
					   err, sizeof(err)),
			 0);
	free(cfg);
	free(card);
	if (mp != NULL)
		*mp = m;
	else
		mb_st_model_free(m);
	return c;
}

static double num(const struct mb_modelcfg *c, enum mb_cfg_key k)
{
	assert_non_null(c->v[k].value);
	assert_true(cJSON_IsNumber(c->v[k].value));
	return c->v[k].value->valuedouble;
}

static void test_phi4_tiny_broken(void **state)
{
	const char *dir = fixture("phi4-broken", "phi4-tiny", "broken");
	struct mb_modelcfg *c = infer_dir(dir, NULL);
	struct mb_buf b;

	(void)state;
	assert_int_equal(c->family, MB_FAMILY_PHI3);
	assert_true(c->convertible);
	assert_false(c->config_family_matches);
	assert_string_equal(c->base_name, "microsoft/phi-4");
	assert_false(c->base_matches);
	/* every lie found, with the truth and its evidence */
	assert_true(c->v[MB_CFG_NUM_HIDDEN_LAYERS].repaired);
	assert_int_equal(num(c, MB_CFG_NUM_HIDDEN_LAYERS), 3);
	assert_int_equal(c->v[MB_CFG_NUM_HIDDEN_LAYERS].claimed->valuedouble, 32);
	assert_non_null(strstr(c->v[MB_CFG_NUM_HIDDEN_LAYERS].evidence,
			       "model.layers.2"));
	assert_true(c->v[MB_CFG_HIDDEN_SIZE].repaired);
	assert_int_equal(num(c, MB_CFG_HIDDEN_SIZE), 512);
	assert_non_null(strstr(c->v[MB_CFG_HIDDEN_SIZE].evidence,
			       "model.embed_tokens.weight [1024, 512]"));
	assert_true(c->v[MB_CFG_VOCAB_SIZE].repaired);
	assert_int_equal(num(c, MB_CFG_VOCAB_SIZE), 1024);
	assert_true(c->v[MB_CFG_MODEL_TYPE].repaired);
	assert_string_equal(c->v[MB_CFG_MODEL_TYPE].value->valuestring, "phi3");
	assert_string_equal(c->v[MB_CFG_MODEL_TYPE].claimed->valuestring, "phi");
	assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
	assert_non_null(strstr(c->v[MB_CFG_ARCHITECTURES].evidence, "qkv_proj"));
	assert_int_equal(num(c, MB_CFG_INTERMEDIATE_SIZE), 1792);
	/* head size from the named base of the family, not the lie */
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 4);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 1);
	assert_int_equal(c->v[MB_CFG_NUM_ATTENTION_HEADS].src,
			 MB_SRC_BASE_FAMILY);
	assert_int_equal(num(c, MB_CFG_ROPE_THETA), 250000);
	assert_int_equal(num(c, MB_CFG_MAX_POSITION_EMBEDDINGS), 16384);
	/* the report lists them and the dropped Phi-2 keys */
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_modelcfg_report_json(c, &b), 0);
	assert_non_null(strstr(b.data, "\"dropped_keys\":["));
	assert_non_null(strstr(b.data, "\"partial_rotary_factor\""));
	assert_non_null(strstr(b.data, "\"repairs\":[{"));
	mb_buf_release(&b);
	assert_true(mb_modelcfg_nrepairs(c) >= 5);
	mb_modelcfg_free(c);
}

/* The keys llama.cpp's phi3 loader reads (through the converter). */
static const char *const loader_keys[] = {
	"architectures", "model_type", "vocab_size", "hidden_size",
	"num_hidden_layers", "intermediate_size", "num_attention_heads",
	"num_key_value_heads", "rms_norm_eps", "rope_theta",
	"max_position_embeddings", "original_max_position_embeddings",
	"sliding_window", "rope_scaling", "partial_rotary_factor",
	"tie_word_embeddings",
};

static void test_repaired_matches_correct(void **state)
{
	const char *bad = fixture("phi4-broken", "phi4-tiny", "broken");
	const char *good = fixture("phi4-correct", "phi4-tiny", "correct");
	struct mb_modelcfg *c = infer_dir(bad, NULL);
	cJSON *fixed, *truth;
	struct mb_buf b;
	size_t len, i;
	char *text;

	(void)state;
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_modelcfg_repaired_json(c, &b), 0);
	fixed = mb_json_parse(b.data, b.len);
	assert_non_null(fixed);
	text = read_in(good, "config.json", &len);
	truth = mb_json_parse(text, len);
	free(text);
	for (i = 0; i < sizeof(loader_keys) / sizeof(loader_keys[0]); i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(fixed,
								   loader_keys[i]);
		const cJSON *y = cJSON_GetObjectItemCaseSensitive(truth,
								   loader_keys[i]);
		int same;

		if (x == NULL || y == NULL)
			same = (x == NULL || cJSON_IsNull(x)) &&
			       (y == NULL || cJSON_IsNull(y));
		else if (cJSON_IsNumber(x) && cJSON_IsNumber(y))
			same = fabs(x->valuedouble - y->valuedouble) <=
			       1e-9 * fabs(y->valuedouble);
		else
			same = cJSON_Compare(x, y, 1);
		if (!same)
			fail_msg("repaired '%s' differs from the correct config",
				 loader_keys[i]);
	}
	/* nothing of the Phi-2 config survives */
	assert_null(cJSON_GetObjectItem(fixed, "partial_rotary_factor"));
	assert_null(cJSON_GetObjectItem(fixed, "layer_norm_eps"));
	cJSON_Delete(fixed);
	cJSON_Delete(truth);
	mb_buf_release(&b);
	mb_modelcfg_free(c);
}

static void test_correct_configs_need_nothing(void **state)
{
	const char *dirs[][3] = {
		{ "phi4-correct", "phi4-tiny", "correct" },
		{ "llama-correct", "llama-tiny", "correct" },
	};
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct mb_modelcfg *c = infer_dir(
			fixture(dirs[i][0], dirs[i][1], dirs[i][2]), NULL);

		assert_true(c->convertible);
		assert_true(c->config_family_matches);
		for (k = 0; k < MB_CFG_NKEYS; k++)
			if (c->v[k].repaired)
				fail_msg("%s: '%s' repaired", dirs[i][0],
					 mb_cfg_key_name(k));
		mb_modelcfg_free(c);
	}
}

static void test_llama_tiny(void **state)
{
	struct mb_modelcfg *c = infer_dir(
		fixture("llama-correct", "llama-tiny", "correct"), NULL);

	(void)state;
	assert_int_equal(c->family, MB_FAMILY_LLAMA);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 4);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 2);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 64);
	assert_false(c->tied);
	assert_int_equal(c->v[MB_CFG_NUM_ATTENTION_HEADS].src, MB_SRC_CONFIG);
	mb_modelcfg_free(c);
}

static void test_llama_broken_is_ambiguous(void **state)
{
	/* Llama-2-7B's sizes over a 256-wide model, no base named: the
	 * claimed head_dim 128 fits the shapes, but so does 64, and a config
	 * that is wrong about the hidden size cannot settle it */
	struct mb_modelcfg *c = infer_dir(
		fixture("llama-broken", "llama-tiny", "broken"), NULL);

	(void)state;
	assert_false(c->convertible);
	assert_true(c->heads_ambiguous);
	assert_non_null(strstr(c->reason, "4 heads of 64"));
	assert_non_null(strstr(c->reason, "2 heads of 128"));
	mb_modelcfg_free(c);
}

/* Infers a fixture directory with what the user set. */
static struct mb_modelcfg *infer_user(const char *dir,
				      const struct mb_modelcfg_user *u)
{
	struct mb_st_model *m;
	struct mb_modelcfg *c;
	size_t clen = 0, rlen = 0;
	char *cfg, *card, err[256] = "";

	assert_int_equal(mb_st_model_open_dir(dir, &m, err, sizeof(err)), 0);
	cfg = read_in(dir, "config.json", &clen);
	card = read_in(dir, "README.md", &rlen);
	assert_int_equal(mb_modelcfg_infer_user(m, cfg, clen, card, rlen, NULL, 0,
						u, &c, err, sizeof(err)), 0);
	free(cfg);
	free(card);
	mb_st_model_free(m);
	return c;
}

static void test_user_settles_what_nothing_else_can(void **state)
{
	const char *dir = fixture("llama-broken", "llama-tiny", "broken");
	cJSON *set = cJSON_CreateObject();
	struct mb_modelcfg_user u = { NULL, set };
	struct mb_modelcfg *c;
	struct mb_buf b;
	char err[512];

	(void)state;
	/* the ambiguous heads, settled by the user: 2 heads of 128 */
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=2", err,
					      sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_user_set(set, "rope_theta=500000", err,
					      sizeof(err)), 0);
	c = infer_user(dir, &u);
	assert_true(c->convertible);
	assert_false(c->heads_ambiguous);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 2);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 128);
	assert_int_equal(c->v[MB_CFG_NUM_ATTENTION_HEADS].src, MB_SRC_USER);
	/* what follows from it is derived, not the user's */
	assert_int_equal(c->v[MB_CFG_HEAD_DIM].src, MB_SRC_DERIVED);
	assert_int_equal(c->v[MB_CFG_NUM_KEY_VALUE_HEADS].src, MB_SRC_DERIVED);
	assert_int_equal(num(c, MB_CFG_ROPE_THETA), 500000);
	assert_int_equal(c->v[MB_CFG_ROPE_THETA].src, MB_SRC_USER);
	assert_string_equal(mb_src_name(MB_SRC_USER), "set by the user");
	/* the report says so for each value */
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_modelcfg_report_json(c, &b), 0);
	assert_non_null(strstr(b.data, "\"set by the user\""));
	mb_buf_release(&b);
	mb_modelcfg_free(c);

	/* the other reading, 4 heads of 64, is just as settled */
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=4", err,
					      sizeof(err)), 0);
	c = infer_user(dir, &u);
	assert_true(c->convertible);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 64);
	mb_modelcfg_free(c);

	/* heads that do not fit the tensors are refused, with the widths */
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=3", err,
					      sizeof(err)), 0);
	c = infer_user(dir, &u);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "do not fit the tensors"));
	assert_non_null(strstr(c->reason, "query width is 256"));
	/* naming only what the user set */
	assert_non_null(strstr(c->reason, "(num_attention_heads=3)"));
	mb_modelcfg_free(c);
	cJSON_Delete(set);

	/* a family's unused setting is said */
	set = cJSON_CreateObject();
	u.set = set;
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=4", err,
					      sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_user_set(set, "partial_rotary_factor=0.5",
					      err, sizeof(err)), 0);
	c = infer_user(dir, &u);
	assert_true(c->convertible);
	{
		size_t i;
		int seen = 0;

		for (i = 0; i < c->nwarnings; i++)
			seen |= strstr(c->warnings[i], "partial_rotary_factor was "
				       "set by the user") != NULL;
		assert_true(seen);
	}
	mb_modelcfg_free(c);
	cJSON_Delete(set);
}

static void test_user_set_refuses(void **state)
{
	cJSON *set = cJSON_CreateObject();
	char err[512];

	(void)state;
	/* what the tensors give cannot be set */
	assert_int_equal(mb_modelcfg_user_set(set, "hidden_size=4096", err,
					      sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "hidden_size cannot be set"));
	assert_non_null(strstr(err, "num_attention_heads"));
	assert_int_equal(mb_modelcfg_user_set(set, "colour=blue", err,
					      sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "'colour' is not a config.json key"));
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads", err,
					      sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "is not KEY=VALUE"));
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=2.5",
					      err, sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "must be a positive integer"));
	assert_int_equal(mb_modelcfg_user_set(set, "rms_norm_eps=2", err,
					      sizeof(err)), MB_EINVAL);
	assert_int_equal(mb_modelcfg_user_set(set, "rope_scaling=[1]", err,
					      sizeof(err)), MB_EINVAL);
	assert_null(set->child);
	/* good ones, the later of two kept */
	assert_int_equal(mb_modelcfg_user_set(set, "sliding_window=null", err,
					      sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_user_set(set, "rope_scaling={\"type\":"
					      "\"linear\",\"factor\":2}", err,
					      sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_user_set(set, "rms_norm_eps=1e-6", err,
					      sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_user_set(set, "rms_norm_eps=1e-5", err,
					      sizeof(err)), 0);
	assert_int_equal(cJSON_GetArraySize(set), 3);
	assert_true(cJSON_GetObjectItem(set, "rms_norm_eps")->valuedouble == 1e-5);
	cJSON_Delete(set);
}

static void test_user_base(void **state)
{
	/* the broken Llama names no base; the user names Llama 3.1 8B, whose
	 * shapes do not match this tiny model, so only its family values
	 * count, and the base is recorded as the user's */
	const char *dir = fixture("llama-broken", "llama-tiny", "broken");
	struct mb_modelcfg_user u = { "meta-llama/Llama-3.1-8B", NULL };
	struct mb_modelcfg *c = infer_user(dir, &u);
	struct mb_buf b;

	(void)state;
	assert_string_equal(c->base_name, "meta-llama/Llama-3.1-8B");
	assert_true(c->base_by_user);
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_modelcfg_report_json(c, &b), 0);
	assert_non_null(strstr(b.data, "\"set_by_user\":true"));
	mb_buf_release(&b);
	mb_modelcfg_free(c);
}

/* --- Phi-4's real shapes, headers only --- */

struct spec {
	const char *name;
	uint64_t r, c; /* c 0: a vector */
};

/* Builds a one-file model whose header lists the tensors; the data is
 * never read, so it need not exist. skip_layer/skip_sfx drop one tensor. */
static struct mb_st_model *phi4_model(int layers, int skip_layer,
				      const char *skip_sfx)
{
	static const struct spec per_layer[] = {
		{ "input_layernorm.weight", 5120, 0 },
		{ "post_attention_layernorm.weight", 5120, 0 },
		{ "self_attn.qkv_proj.weight", 7680, 5120 },
		{ "self_attn.o_proj.weight", 5120, 5120 },
		{ "mlp.gate_up_proj.weight", 35840, 5120 },
		{ "mlp.down_proj.weight", 5120, 17920 },
	};
	static const struct spec globals[] = {
		{ "model.embed_tokens.weight", 100352, 5120 },
		{ "model.norm.weight", 5120, 0 },
		{ "lm_head.weight", 100352, 5120 },
	};
	struct mb_st_model *m;
	struct mb_st_file *f;
	struct mb_buf b;
	uint64_t off = 0, n;
	char name[128];
	int l;
	size_t i;

	mb_buf_init(&b, 1 << 20);
	mb_buf_adds(&b, "{");
	for (l = -1; l < layers; l++) {
		size_t count = l < 0 ? 3 : 6;

		for (i = 0; i < count; i++) {
			const struct spec *s = l < 0 ? &globals[i] : &per_layer[i];

			if (l == skip_layer && strcmp(s->name, skip_sfx) == 0)
				continue;
			if (l < 0)
				snprintf(name, sizeof(name), "%s", s->name);
			else
				snprintf(name, sizeof(name), "model.layers.%d.%s",
					 l, s->name);
			n = (s->c ? s->r * s->c : s->r) * 2;
			if (s->c)
				mb_buf_addf(&b, "%s\"%s\":{\"dtype\":\"BF16\","
					    "\"shape\":[%llu,%llu],"
					    "\"data_offsets\":[%llu,%llu]}",
					    off ? "," : "", name,
					    (unsigned long long)s->r,
					    (unsigned long long)s->c,
					    (unsigned long long)off,
					    (unsigned long long)(off + n));
			else
				mb_buf_addf(&b, "%s\"%s\":{\"dtype\":\"BF16\","
					    "\"shape\":[%llu],"
					    "\"data_offsets\":[%llu,%llu]}",
					    off ? "," : "", name,
					    (unsigned long long)s->r,
					    (unsigned long long)off,
					    (unsigned long long)(off + n));
			off += n;
		}
	}
	mb_buf_adds(&b, "}");
	assert_int_equal(mb_st_parse_header(b.data, b.len, 8 + b.len + off, &f,
					    NULL, 0),
			 0);
	assert_int_equal(mb_st_model_single("model.safetensors", f, &m), 0);
	assert_int_equal(mb_st_model_finish(m, NULL, 0), 0);
	mb_buf_release(&b);
	return m;
}

/* The lying config.json of the model this tool was built for. */
static const char *lie =
	"{\"architectures\":[\"PhiForCausalLM\"],\"model_type\":\"phi\","
	"\"num_hidden_layers\":32,\"hidden_size\":4096,\"vocab_size\":50257,"
	"\"num_attention_heads\":32,\"intermediate_size\":16384,"
	"\"partial_rotary_factor\":0.4,\"rope_theta\":10000.0}";
static const char *card = "---\nbase_model: microsoft/phi-4\n"
			  "library_name: transformers\n---\n# mibera\n";

static struct mb_modelcfg *infer(const struct mb_st_model *m, const char *cfg,
				 const char *crd, const char *base)
{
	struct mb_modelcfg *c;
	char err[256];

	assert_int_equal(mb_modelcfg_infer(m, cfg, cfg ? strlen(cfg) : 0, crd,
					   crd ? strlen(crd) : 0, base,
					   base ? strlen(base) : 0, &c, err,
					   sizeof(err)),
			 0);
	return c;
}

static void test_phi4_shapes_with_named_base(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	struct mb_modelcfg *c = infer(m, lie, card, NULL);

	(void)state;
	assert_int_equal(m->ntensors, 243);
	assert_true(c->convertible);
	assert_true(c->base_matches);
	assert_int_equal(num(c, MB_CFG_NUM_HIDDEN_LAYERS), 40);
	assert_int_equal(num(c, MB_CFG_HIDDEN_SIZE), 5120);
	assert_int_equal(num(c, MB_CFG_VOCAB_SIZE), 100352);
	assert_int_equal(num(c, MB_CFG_INTERMEDIATE_SIZE), 17920);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 40);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 10);
	assert_int_equal(c->v[MB_CFG_NUM_ATTENTION_HEADS].src,
			 MB_SRC_BASE_TABLE);
	assert_int_equal(num(c, MB_CFG_ROPE_THETA), 250000);
	assert_true(c->v[MB_CFG_ROPE_THETA].repaired);
	assert_false(c->has_bias);
	assert_false(c->tied);
	assert_true(cJSON_IsNull(c->v[MB_CFG_SLIDING_WINDOW].value));
	assert_null(c->v[MB_CFG_PARTIAL_ROTARY_FACTOR].value);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_phi4_shapes_known_base_without_card(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	struct mb_modelcfg *c = infer(m, lie, NULL, NULL);

	(void)state;
	assert_true(c->convertible);
	assert_string_equal(c->base_name, ""); /* phi-2 in no card */
	/* Phi-3-medium has the same shapes but 32064 rows: phi-4 wins */
	assert_string_equal(c->known_base, "microsoft/phi-4");
	assert_int_equal(c->v[MB_CFG_NUM_ATTENTION_HEADS].src,
			 MB_SRC_KNOWN_BASE);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 40);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_hub_base_outranks_table_and_config(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	const char *base =
		"{\"model_type\":\"phi3\",\"hidden_size\":5120,"
		"\"num_hidden_layers\":40,\"intermediate_size\":17920,"
		"\"num_attention_heads\":40,\"num_key_value_heads\":10,"
		"\"rope_theta\":123456.0,\"max_position_embeddings\":32768}";
	const char *own =
		"{\"model_type\":\"phi3\",\"hidden_size\":5120,"
		"\"num_hidden_layers\":40,\"num_attention_heads\":32,"
		"\"head_dim\":160,\"num_key_value_heads\":8,"
		"\"rope_theta\":999.0}";
	struct mb_modelcfg *c = infer(m, own, card, base);

	(void)state;
	assert_true(c->base_matches);
	assert_int_equal(num(c, MB_CFG_ROPE_THETA), 123456);
	assert_int_equal(c->v[MB_CFG_ROPE_THETA].src, MB_SRC_BASE_HUB);
	/* a fine-tune does not change head counts: the base wins */
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 40);
	assert_true(c->v[MB_CFG_NUM_ATTENTION_HEADS].repaired);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_nothing_settles_phi4_heads(void **state)
{
	/* Phi-4's widths in 30 layers (no table base has that), no card and
	 * no config: 40 of 128 and 32 of 160 both fit */
	struct mb_st_model *m = phi4_model(30, -2, "");
	struct mb_modelcfg *c;

	(void)state;
	c = infer(m, NULL, NULL, NULL);
	assert_false(c->convertible);
	assert_true(c->heads_ambiguous);
	assert_non_null(strstr(c->reason, "40 heads of 128"));
	assert_non_null(strstr(c->reason, "32 heads of 160"));
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_layer_missing(void **state)
{
	struct mb_st_model *m = phi4_model(40, 7, "mlp.down_proj.weight");
	struct mb_modelcfg *c = infer(m, lie, card, NULL);

	(void)state;
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "layer 7 of 40 is incomplete"));
	assert_non_null(strstr(c->reason, "model.layers.7.mlp.down_proj.weight"));
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_hostile_configs(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	static const struct {
		const char *cfg;
		const char *warning;
	} cases[] = {
		/* Python's json writes NaN: read as missing, said so */
		{ "{\"hidden_size\": NaN, \"name\": \"NaN\"}",
		  "config.json has 1 NaN or Infinity value (Python writes "
		  "them; JSON has none): read as missing" },
		{ "{\"hidden_size\": -Infinity}", "1 NaN or Infinity value" },
		{ "{\"hidden_size\": 5120,\n \"x\": tru}", "config.json is not "
		  "valid JSON (it stops being JSON at line 2, column 7)" },
		{ "{\"a\":1} x", "not valid JSON (it stops being JSON at line 1, "
		  "column 9)" },
		{ "[1,2,3]", "not a JSON object" },
		{ "{\"model_type\":\"phi3\",\"hidden_size\":\"5120\"}",
		  "'hidden_size' is not a positive integer" },
		{ "{\"model_type\":\"phi3\",\"num_hidden_layers\":-40}",
		  "'num_hidden_layers' is not a positive integer" },
		{ "{\"model_type\":\"phi3\",\"rope_theta\":\"big\"}",
		  "'rope_theta' has an invalid value" },
		{ "{\"model_type\":\"phi3\",\"rms_norm_eps\":5}",
		  "'rms_norm_eps' has an invalid value" },
		{ "{\"model_type\":\"phi3\",\"sliding_window\":[1]}",
		  "'sliding_window' has an invalid value" },
	};
	size_t i, w;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mb_modelcfg *c = infer(m, cases[i].cfg, card, NULL);
		int found = 0;

		/* still convertible: the base and the tensors carry it */
		assert_true(c->convertible);
		assert_int_equal(num(c, MB_CFG_HIDDEN_SIZE), 5120);
		for (w = 0; w < c->nwarnings; w++)
			found |= strstr(c->warnings[w], cases[i].warning) != NULL;
		if (!found)
			fail_msg("config %s: no warning '%s'", cases[i].cfg,
				 cases[i].warning);
		mb_modelcfg_free(c);
	}
	mb_st_model_free(m);
}

static void test_case_variant_keys(void **state)
{
	/* cJSON's plain lookups ignore case: a "Num_Key_Value_Heads" beside
	 * the real key once leaked the replacement value (found by fuzzing) */
	struct mb_st_model *m = phi4_model(40, -2, "");
	struct mb_modelcfg *c = infer(m, "{\"model_type\":\"phi3\","
				      "\"Num_Key_Value_Heads\":3,"
				      "\"hidden_size\":5120}", card, NULL);
	struct mb_buf b;

	(void)state;
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_modelcfg_repaired_json(c, &b), 0);
	assert_non_null(strstr(b.data, "\"num_key_value_heads\":\t10"));
	assert_non_null(strstr(b.data, "\"Num_Key_Value_Heads\":\t3"));
	mb_buf_release(&b);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

static void test_unsupported_layouts(void **state)
{
	static const struct {
		const char *header;
		const char *why;
	} cases[] = {
		/* Phi-2: fc1/fc2 and dense, with biases */
		{ "{\"model.layers.0.mlp.fc1.weight\":{\"dtype\":\"F16\","
		  "\"shape\":[2],\"data_offsets\":[0,4]},"
		  "\"model.layers.0.self_attn.dense.weight\":{\"dtype\":\"F16\","
		  "\"shape\":[2],\"data_offsets\":[4,8]}}",
		  "saw 'mlp.fc1.weight'" },
		/* GPT-2 */
		{ "{\"transformer.h.0.attn.c_attn.weight\":{\"dtype\":\"F16\","
		  "\"shape\":[2],\"data_offsets\":[0,4]}}",
		  "no 'model.layers.N.*' tensors" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct mb_st_model *m;
		struct mb_st_file *f;
		struct mb_modelcfg *c;
		size_t n = strlen(cases[i].header);

		assert_int_equal(mb_st_parse_header(cases[i].header, n,
						    8 + n + 8, &f, NULL, 0),
				 0);
		assert_int_equal(mb_st_model_single("m.safetensors", f, &m), 0);
		assert_int_equal(mb_st_model_finish(m, NULL, 0), 0);
		c = infer(m, NULL, NULL, NULL);
		assert_false(c->convertible);
		assert_int_equal(c->family, MB_FAMILY_UNKNOWN);
		if (strstr(c->reason, cases[i].why) == NULL)
			fail_msg("reason '%s', wanted '%s'", c->reason,
				 cases[i].why);
		mb_modelcfg_free(c);
		mb_st_model_free(m);
	}
}

/* Infers the tensors of dir with config text cfg instead of its own. */
static struct mb_modelcfg *infer_with(const char *dir, const char *cfg)
{
	struct mb_st_model *m;
	struct mb_modelcfg *c;
	char err[256];

	assert_int_equal(mb_st_model_open_dir(dir, &m, err, sizeof(err)), 0);
	assert_int_equal(mb_modelcfg_infer(m, cfg, cfg ? strlen(cfg) : 0, NULL,
					   0, NULL, 0, &c, err, sizeof(err)),
			 0);
	mb_st_model_free(m);
	return c;
}

/* The fixture's own config.json without the keys named (NULL-ended). */
static char *config_without(const char *dir, const char *const *keys)
{
	size_t len;
	char *text = read_in(dir, "config.json", &len), *out;
	cJSON *doc = mb_json_parse(text, len);

	assert_non_null(doc);
	for (; *keys != NULL; keys++)
		cJSON_DeleteItemFromObjectCaseSensitive(doc, *keys);
	out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	free(text);
	return out;
}

static const char *const own_archs =
	"(it converts: Gemma3ForCausalLM, LlamaForCausalLM, MistralForCausalLM, "
	"Phi3ForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)";

static int has_warning(const struct mb_modelcfg *c, const char *part)
{
	size_t i;

	for (i = 0; i < c->nwarnings; i++)
		if (strstr(c->warnings[i], part) != NULL)
			return 1;
	return 0;
}

/* Mistral's config over Llama's tensors keeps Mistral's names; its
 * sliding window, which llama.cpp's llama has no key for, is said when
 * the context reaches past it (Mistral 7B v0.1: 4096 of 32768), and not
 * when it does not. */
static void test_mistral_sliding_window(void **state)
{
	const char *dir = fixture("llama-correct", "llama-tiny", "correct");
	static const char *const windows[] = { "4096", "null", "32768" };
	char cfg[1024];
	struct mb_modelcfg *c;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(cfg, sizeof(cfg),
			 "{\"architectures\":[\"MistralForCausalLM\"],"
			 "\"model_type\":\"mistral\",\"hidden_size\":256,"
			 "\"num_hidden_layers\":2,\"intermediate_size\":688,"
			 "\"vocab_size\":512,\"num_attention_heads\":4,"
			 "\"num_key_value_heads\":2,\"head_dim\":64,"
			 "\"max_position_embeddings\":32768,"
			 "\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-05,"
			 "\"rope_scaling\":null,\"attention_bias\":false,"
			 "\"tie_word_embeddings\":false,"
			 "\"torch_dtype\":\"bfloat16\",\"sliding_window\":%s}",
			 windows[i]);
		c = infer_with(dir, cfg);
		if (!c->convertible)
			fail_msg("%s", c->reason);
		assert_int_equal(c->family, MB_FAMILY_LLAMA);
		assert_string_equal(cJSON_GetArrayItem(
			c->v[MB_CFG_ARCHITECTURES].value, 0)->valuestring,
				    "MistralForCausalLM");
		assert_string_equal(c->v[MB_CFG_MODEL_TYPE].value->valuestring,
				    "mistral");
		assert_int_equal(mb_modelcfg_nrepairs(c), 0);
		if (i == 0) {
			assert_int_equal(num(c, MB_CFG_SLIDING_WINDOW), 4096);
			if (!has_warning(c, "sliding_window 4096 is below the "
					 "context of 32768: llama.cpp's llama "
					 "has none"))
				fail_msg("no warning about the window");
		} else {
			assert_false(has_warning(c, "sliding_window"));
		}
		mb_modelcfg_free(c);
	}
}

/* The fixture's own config.json with rope_scaling set to rs (JSON). */
static char *config_with_scaling(const char *dir, const char *rs)
{
	size_t len;
	char *text = read_in(dir, "config.json", &len), *out;
	cJSON *doc = mb_json_parse(text, len);

	assert_non_null(doc);
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "rope_scaling");
	cJSON_AddItemToObject(doc, "rope_scaling", cJSON_Parse(rs));
	out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	free(text);
	return out;
}

/* YaRN (Qwen2.5's long-context configs say "type", Qwen3's "rope_type")
 * is carried by qwen2 and qwen3 and kept as config.json says it; without
 * its factor or original context, or on a family whose GGUF
 * architecture mibera does not give it (Llama), or another type
 * (dynamic), inspect refuses it by name instead of the conversion
 * failing on the worker. */
static void test_yarn_rope_scaling(void **state)
{
	static const char *const ok[] = {
		"{\"type\":\"yarn\",\"factor\":4.0,"
		"\"original_max_position_embeddings\":32768}",
		"{\"rope_type\":\"yarn\",\"factor\":4.0,"
		"\"original_max_position_embeddings\":32768}",
	};
	static const struct {
		const char *rs, *why;
	} bad[] = {
		{ "{\"type\":\"yarn\",\"factor\":4.0}",
		  "yarn rope scaling needs original_max_position_embeddings" },
		{ "{\"type\":\"yarn\",\"original_max_position_embeddings\":"
		  "32768}", "yarn rope scaling needs a positive factor" },
		{ "{\"type\":\"dynamic\",\"factor\":2.0}",
		  "rope scaling 'dynamic' is not supported for Qwen2 "
		  "(llama.cpp's qwen2; mibera writes llama3, linear, yarn)" },
		{ "{\"factor\":2.0}", "rope_scaling has no type" },
		{ "{\"type\":\"yarn\",\"factor\":1e30,"
		  "\"original_max_position_embeddings\":32768}",
		  "yarn rope scaling factor 1e+30 is past any real model's" },
	};
	const char *dirs[2];
	struct mb_modelcfg *c;
	char *cfg;
	size_t i, d;

	(void)state;
	dirs[0] = strdup(fixture("qwen2", "qwen2-tiny", "correct"));
	dirs[1] = strdup(fixture("qwen3", "qwen3-tiny", "correct"));
	for (d = 0; d < 2; d++)
		for (i = 0; i < 2; i++) {
			cfg = config_with_scaling(dirs[d], ok[i]);
			c = infer_with(dirs[d], cfg);
			if (!c->convertible)
				fail_msg("%s: %s", ok[i], c->reason);
			assert_false(c->v[MB_CFG_ROPE_SCALING].repaired);
			assert_int_equal(cJSON_GetObjectItem(
				c->v[MB_CFG_ROPE_SCALING].value,
				"original_max_position_embeddings")->valueint,
					 32768);
			mb_modelcfg_free(c);
			free(cfg);
		}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = config_with_scaling(dirs[0], bad[i].rs);
		c = infer_with(dirs[0], cfg);
		assert_false(c->convertible);
		if (strstr(c->reason, bad[i].why) == NULL)
			fail_msg("reason '%s', wanted '%s'", c->reason,
				 bad[i].why);
		mb_modelcfg_free(c);
		free(cfg);
	}
	cfg = config_with_scaling(fixture("llama-correct", "llama-tiny",
					  "correct"), ok[0]);
	c = infer_with(fixture("llama-correct", "llama-tiny", "correct"), cfg);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "rope scaling 'yarn' is not "
				      "supported for Llama"));
	mb_modelcfg_free(c);
	free(cfg);
	/* a rope base float32 cannot hold is no value: ignored, said so */
	{
		const char *const none[] = { "rope_theta", NULL };
		char *base = config_without(dirs[0], none);

		cfg = malloc(strlen(base) + 32);
		assert_non_null(cfg);
		snprintf(cfg, strlen(base) + 32, "{\"rope_theta\":1e300,%s",
			 base + 1);
		free(base);
		c = infer_with(dirs[0], cfg);
		assert_true(has_warning(c, "config.json 'rope_theta' has an "
					   "invalid value"));
		assert_int_not_equal(c->v[MB_CFG_ROPE_THETA].src, MB_SRC_CONFIG);
		assert_true(num(c, MB_CFG_ROPE_THETA) < 1e12);
		mb_modelcfg_free(c);
		free(cfg);
	}
	free((char *)dirs[0]);
	free((char *)dirs[1]);
}

/* A Qwen2 checkpoint with its true config: Llama's tensor names plus
 * biases, but another rope. It is Qwen2, never rewritten into
 * LlamaForCausalLM (which converted it into a model that loads and talks
 * nonsense); without architectures, model_type says it. Qwen2 named over
 * tensors without the biases Qwen2 always has is refused. */
static void test_qwen2(void **state)
{
	const char *dir = fixture("qwen2", "qwen2-tiny", "correct");
	struct mb_modelcfg *c = infer_dir(dir, NULL);
	const char *const none[] = { "architectures", NULL };
	char *cfg;

	(void)state;
	if (!c->convertible)
		fail_msg("%s", c->reason);
	assert_int_equal(c->family, MB_FAMILY_QWEN2);
	assert_true(c->config_family_matches);
	assert_int_equal(mb_modelcfg_nrepairs(c), 0);
	assert_true(c->has_bias);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 4);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 2);
	assert_true(fabs(num(c, MB_CFG_RMS_NORM_EPS) - 1e-6) < 1e-12);
	mb_modelcfg_free(c);
	cfg = config_without(dir, none);
	c = infer_with(dir, cfg);
	assert_true(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_QWEN2);
	assert_int_equal(mb_modelcfg_nrepairs(c), 1);
	assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
	assert_string_equal(cJSON_GetArrayItem(c->v[MB_CFG_ARCHITECTURES].value,
					       0)->valuestring,
			    "Qwen2ForCausalLM");
	mb_modelcfg_free(c);
	free(cfg);
	/* a config that names no architecture, or names it with a
	 * model_type that is no name, is still the model's own: its
	 * rope_theta and context length are kept, not the defaults of a
	 * family (they would make another model) */
	{
		const char *const both[] = { "architectures", "model_type",
					     NULL };
		char *cfgs[2];
		size_t i;
		cJSON *doc;

		cfgs[0] = config_without(dir, both);
		cfgs[1] = config_without(dir, both);
		doc = cJSON_Parse(cfgs[1]);
		assert_non_null(doc);
		cJSON_AddStringToObject(doc, "model_type", "qwen2\xff");
		cJSON_AddItemToObject(doc, "architectures", cJSON_CreateStringArray(
			(const char *const[]){ "Qwen2ForCausalLM" }, 1));
		free(cfgs[1]);
		cfgs[1] = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
		for (i = 0; i < 2; i++) {
			c = infer_with(dir, cfgs[i]);
			if (!c->convertible)
				fail_msg("config %zu: %s", i, c->reason);
			if (i == 1)
				assert_int_equal(c->family, MB_FAMILY_QWEN2);
			assert_true(c->config_family_matches);
			assert_int_equal(c->v[MB_CFG_ROPE_THETA].src,
					 MB_SRC_CONFIG);
			assert_true(fabs(num(c, MB_CFG_ROPE_THETA) - 1e6) < 1);
			assert_int_equal(num(c, MB_CFG_MAX_POSITION_EMBEDDINGS),
					 32768);
			mb_modelcfg_free(c);
			free(cfgs[i]);
		}
	}
	c = infer_with(fixture("llama-correct", "llama-tiny", "correct"),
		       "{\"architectures\":[\"Qwen2ForCausalLM\"],"
		       "\"model_type\":\"qwen2\",\"hidden_size\":256,"
		       "\"num_attention_heads\":4,\"num_key_value_heads\":2}");
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "Qwen2 without "
				      "'model.layers.0.self_attn.q_proj.bias'"));
	mb_modelcfg_free(c);
}

/* Qwen3: Llama's tensors plus q_norm and k_norm one head wide. The head
 * size is the norms' (128, not hidden / heads = 64), and with it both
 * head counts, whatever config.json says; model_type alone names it, and
 * the tensors name it when config.json names another family. Qwen3
 * named over tensors without the norms is refused, and so are heads set
 * by the user that the norms contradict. */
static void test_qwen3(void **state)
{
	const char *const none[] = { "architectures", "head_dim", NULL };
	struct mb_modelcfg_user u = { NULL, NULL };
	struct mb_modelcfg *c;
	char dir[600], *cfg, err[512];
	cJSON *set;

	(void)state;
	/* fixture() reuses its buffer */
	snprintf(dir, sizeof(dir), "%s", fixture("qwen3", "qwen3-tiny",
						 "correct"));
	c = infer_dir(dir, NULL);
	if (!c->convertible)
		fail_msg("%s", c->reason);
	assert_int_equal(c->family, MB_FAMILY_QWEN3);
	assert_string_equal(mb_family_name(c->family), "qwen3");
	assert_true(c->config_family_matches);
	assert_int_equal(mb_modelcfg_nrepairs(c), 0);
	assert_int_equal(c->head_dim, 128);
	assert_int_equal(c->q_width, 512);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 128);
	assert_int_equal(c->v[MB_CFG_HEAD_DIM].src, MB_SRC_TENSORS);
	assert_int_equal(num(c, MB_CFG_NUM_ATTENTION_HEADS), 4);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 2);
	assert_true(fabs(num(c, MB_CFG_RMS_NORM_EPS) - 1e-6) < 1e-12);
	assert_true(fabs(num(c, MB_CFG_ROPE_THETA) - 1e6) < 1e-3);
	assert_true(c->tied);
	mb_modelcfg_free(c);
	/* no architectures and no head_dim: both from the tensors */
	cfg = config_without(dir, none);
	c = infer_with(dir, cfg);
	free(cfg);
	assert_true(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_QWEN3);
	assert_int_equal(mb_modelcfg_nrepairs(c), 2);
	assert_true(c->v[MB_CFG_HEAD_DIM].repaired);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 128);
	assert_string_equal(cJSON_GetArrayItem(c->v[MB_CFG_ARCHITECTURES].value,
					       0)->valuestring,
			    "Qwen3ForCausalLM");
	mb_modelcfg_free(c);
	/* a Llama config with hidden / heads: the norms say otherwise */
	c = infer_with(dir, "{\"architectures\":[\"LlamaForCausalLM\"],"
			    "\"model_type\":\"llama\",\"hidden_size\":256,"
			    "\"num_attention_heads\":4,"
			    "\"num_key_value_heads\":4}");
	assert_true(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_QWEN3);
	assert_false(c->config_family_matches);
	assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
	assert_int_equal(num(c, MB_CFG_NUM_KEY_VALUE_HEADS), 2);
	assert_int_equal(num(c, MB_CFG_HEAD_DIM), 128);
	mb_modelcfg_free(c);
	/* Qwen3 over Llama's tensors: no norms, refused */
	c = infer_with(fixture("llama-correct", "llama-tiny", "correct"),
		       "{\"architectures\":[\"Qwen3ForCausalLM\"],"
		       "\"model_type\":\"qwen3\",\"hidden_size\":256,"
		       "\"num_attention_heads\":4,\"num_key_value_heads\":2}");
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "Qwen3 without "
				      "'model.layers.0.self_attn.q_norm.weight'"));
	mb_modelcfg_free(c);
	/* heads the user set that the norms contradict */
	set = cJSON_CreateObject();
	assert_int_equal(mb_modelcfg_user_set(set, "num_attention_heads=8", err,
					      sizeof(err)), 0);
	u.set = set;
	c = infer_user(dir, &u);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "'self_attn.q_norm.weight' is [128]"));
	mb_modelcfg_free(c);
	cJSON_Delete(set);
}

/* A true config of an architecture mibera does not convert, over tensors
 * that fit the Llama layout (Gemma's do): refused by name with no repair.
 * A well-formed name no table lists is not guessed into Llama either. */
static void test_foreign_refused_not_repaired(void **state)
{
	const char *dir = fixture("llama-correct", "llama-tiny", "correct");
	struct mb_modelcfg *c;

	(void)state;
	c = infer_with(dir, "{\"architectures\":[\"GemmaForCausalLM\"],"
			    "\"model_type\":\"gemma\",\"hidden_size\":256,"
			    "\"num_attention_heads\":4}");
	assert_false(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_UNKNOWN);
	assert_non_null(strstr(c->reason, "GemmaForCausalLM (model_type gemma) "
				      "is not a family mibera converts natively"));
	assert_non_null(strstr(c->reason, own_archs));
	assert_int_equal(mb_modelcfg_nrepairs(c), 0);
	assert_null(c->v[MB_CFG_ARCHITECTURES].value);
	mb_modelcfg_free(c);
	/* model_type alone names it */
	c = infer_with(dir, "{\"model_type\":\"gemma\"}");
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "GemmaForCausalLM (model_type gemma)"));
	assert_int_equal(mb_modelcfg_nrepairs(c), 0);
	mb_modelcfg_free(c);
	c = infer_with(dir, "{\"architectures\":[\"Zeta7ForCausalLM\"]}");
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "Zeta7ForCausalLM is not a family"));
	mb_modelcfg_free(c);
	c = infer_with(dir, "{\"model_type\":\"zeta7\"}");
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "model_type zeta7 is not a family"));
	mb_modelcfg_free(c);
}

/* A config with no architecture at all, or one that is no name, claims
 * nothing: Llama tensors make it Llama, as always. */
static void test_absent_architecture_repaired(void **state)
{
	const char *dir = fixture("llama-correct", "llama-tiny", "correct");
	const char *const both[] = { "architectures", "model_type", NULL };
	const char *const arch[] = { "architectures", NULL };
	char *cfgs[4];
	size_t i;

	(void)state;
	cfgs[0] = config_without(dir, both);
	cfgs[1] = config_without(dir, arch);
	cfgs[2] = strdup("{\"architectures\":[\"my model\"],\"hidden_size\":256,"
			 "\"num_attention_heads\":4}");
	cfgs[3] = strdup("{\"architectures\":[7],\"model_type\":\"\","
			 "\"hidden_size\":256,\"num_attention_heads\":4}");
	for (i = 0; i < 4; i++) {
		struct mb_modelcfg *c = infer_with(dir, cfgs[i]);

		if (!c->convertible)
			fail_msg("config %zu: %s", i, c->reason);
		assert_int_equal(c->family, MB_FAMILY_LLAMA);
		assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
		assert_string_equal(cJSON_GetArrayItem(
			c->v[MB_CFG_ARCHITECTURES].value, 0)->valuestring,
				    "LlamaForCausalLM");
		assert_string_equal(c->v[MB_CFG_MODEL_TYPE].value->valuestring,
				    "llama");
		mb_modelcfg_free(c);
		free(cfgs[i]);
	}
}

/* A config whose architecture the tensors rule out is a lie, repaired:
 * Phi-3 said of Llama tensors, Llama or Qwen2 said of Phi-3 tensors, the
 * Phi-2 config of the model this tool was built for. */
static void test_contradicted_architecture_repaired(void **state)
{
	const char *dir = fixture("llama-correct", "llama-tiny", "correct");
	struct mb_st_model *m = phi4_model(40, -2, "");
	static const char *const on_phi[] = {
		"{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"}",
		"{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\"}",
		"{\"architectures\":[\"Gemma3ForCausalLM\"],"
		"\"model_type\":\"gemma3_text\"}",
	};
	struct mb_modelcfg *c;
	size_t i;

	(void)state;
	c = infer_with(dir, "{\"architectures\":[\"Phi3ForCausalLM\"],"
			    "\"model_type\":\"phi3\",\"hidden_size\":256,"
			    "\"num_attention_heads\":4}");
	assert_true(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_LLAMA);
	assert_false(c->config_family_matches);
	assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
	assert_string_equal(cJSON_GetArrayItem(c->v[MB_CFG_ARCHITECTURES].value,
					       0)->valuestring,
			    "LlamaForCausalLM");
	mb_modelcfg_free(c);
	for (i = 0; i < sizeof(on_phi) / sizeof(on_phi[0]); i++) {
		c = infer(m, on_phi[i], card, NULL);
		if (!c->convertible)
			fail_msg("%s: %s", on_phi[i], c->reason);
		assert_int_equal(c->family, MB_FAMILY_PHI3);
		assert_true(c->v[MB_CFG_ARCHITECTURES].repaired);
		assert_true(c->v[MB_CFG_MODEL_TYPE].repaired);
		assert_string_equal(c->v[MB_CFG_MODEL_TYPE].value->valuestring,
				    "phi3");
		mb_modelcfg_free(c);
	}
	mb_st_model_free(m);
}

/* Tensors of no layout mibera reads, under a config naming what they
 * are: the refusal names the architecture, not a tensor. */
static void test_foreign_layout_named(void **state)
{
	static const char header[] =
		"{\"model.layers.0.self_attn.q_norm.weight\":{\"dtype\":\"F16\","
		"\"shape\":[2],\"data_offsets\":[0,4]},"
		"\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"F16\","
		"\"shape\":[2],\"data_offsets\":[4,8]}}";
	struct mb_st_model *m;
	struct mb_st_file *f;
	struct mb_modelcfg *c;

	(void)state;
	assert_int_equal(mb_st_parse_header(header, sizeof(header) - 1,
					    8 + sizeof(header) - 1 + 8, &f,
					    NULL, 0),
			 0);
	assert_int_equal(mb_st_model_single("m.safetensors", f, &m), 0);
	assert_int_equal(mb_st_model_finish(m, NULL, 0), 0);
	c = infer(m, "{\"architectures\":[\"Gemma2ForCausalLM\"],"
		     "\"model_type\":\"gemma2\"}", NULL, NULL);
	assert_false(c->convertible);
	assert_int_equal(c->family, MB_FAMILY_UNKNOWN);
	assert_non_null(strstr(c->reason, "Gemma2ForCausalLM (model_type "
				      "gemma2) is not a family"));
	mb_modelcfg_free(c);
	/* architectures at odds with model_type: transformers goes by
	 * model_type, and so does the refusal */
	c = infer(m, "{\"architectures\":[\"LlamaForCausalLM\"],"
		     "\"model_type\":\"olmo2\"}", NULL, NULL);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "Olmo2ForCausalLM (model_type olmo2)"));
	assert_non_null(strstr(c->reason, "architectures says LlamaForCausalLM"));
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

/* Tensors that pass for a family's markers but carry one it lacks (a
 * Gemma 2 or OLMo 2 block's extra norms over Llama-named projections and
 * Qwen3's q norm): the tensors prove no family, so the config's foreign
 * architecture is the refusal, by name, not a tensor of a family the
 * model is not. */
static void test_foreign_claim_over_refused_layout(void **state)
{
	static const char header[] =
		"{\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"F16\","
		"\"shape\":[2],\"data_offsets\":[0,4]},"
		"\"model.layers.0.self_attn.q_norm.weight\":{\"dtype\":\"F16\","
		"\"shape\":[2],\"data_offsets\":[4,8]},"
		"\"model.layers.0.mlp.gate_proj.weight\":{\"dtype\":\"F16\","
		"\"shape\":[2],\"data_offsets\":[8,12]},"
		"\"model.layers.0.post_feedforward_layernorm.weight\":{\"dtype\":"
		"\"F16\",\"shape\":[2],\"data_offsets\":[12,16]}}";
	static const char *const cfgs[][2] = {
		{ "{\"architectures\":[\"Gemma2ForCausalLM\"],"
		  "\"model_type\":\"gemma2\"}",
		  "Gemma2ForCausalLM (model_type gemma2) is not a family" },
		{ "{\"architectures\":[\"Olmo2ForCausalLM\"],"
		  "\"model_type\":\"olmo2\"}",
		  "Olmo2ForCausalLM (model_type olmo2) is not a family" },
	};
	struct mb_st_model *m;
	struct mb_st_file *f;
	struct mb_modelcfg *c;
	size_t i;

	(void)state;
	assert_int_equal(mb_st_parse_header(header, sizeof(header) - 1,
					    8 + sizeof(header) - 1 + 16, &f,
					    NULL, 0),
			 0);
	assert_int_equal(mb_st_model_single("m.safetensors", f, &m), 0);
	assert_int_equal(mb_st_model_finish(m, NULL, 0), 0);
	for (i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
		c = infer(m, cfgs[i][0], NULL, NULL);
		assert_false(c->convertible);
		if (strstr(c->reason, cfgs[i][1]) == NULL)
			fail_msg("%s: %s", cfgs[i][0], c->reason);
		assert_int_equal(c->family, MB_FAMILY_UNKNOWN);
		mb_modelcfg_free(c);
	}
	/* with no architecture claimed the tensor is the reason */
	c = infer(m, "{}", NULL, NULL);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "post_feedforward_layernorm"));
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

/* Phi-4-mini's true config: rope on 96 of 128 dimensions, so longrope
 * has 48 factors per list, one per rotary pair. It needs no repair; a
 * list of another length, or a factor leaving no even rotary dimension,
 * is refused. */
static void test_phi4_mini_partial_rotary(void **state)
{
	const char *dir = fixture("phi4-mini", "phi4-mini-tiny", "correct");
	struct mb_modelcfg *c = infer_dir(dir, NULL);
	size_t len;
	char *text, *cfg;
	cJSON *doc, *rs, *l;

	(void)state;
	if (!c->convertible)
		fail_msg("%s", c->reason);
	assert_int_equal(c->family, MB_FAMILY_PHI3);
	assert_int_equal(mb_modelcfg_nrepairs(c), 0);
	assert_true(c->tied);
	assert_true(fabs(num(c, MB_CFG_PARTIAL_ROTARY_FACTOR) - 0.75) < 1e-12);
	rs = c->v[MB_CFG_ROPE_SCALING].value;
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(rs,
								"long_factor")),
			 48);
	mb_modelcfg_free(c);
	/* 64 factors (one per pair of the whole head) is the wrong count */
	text = read_in(dir, "config.json", &len);
	doc = mb_json_parse(text, len);
	free(text);
	rs = cJSON_GetObjectItem(doc, "rope_scaling");
	l = cJSON_GetObjectItem(rs, "short_factor");
	while (cJSON_GetArraySize(l) < 64)
		cJSON_AddItemToArray(l, cJSON_CreateNumber(1.0));
	cfg = cJSON_PrintUnformatted(doc);
	c = infer_with(dir, cfg);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "short_factor with 48 numbers"));
	assert_non_null(strstr(c->reason, "96 rotated dimensions"));
	mb_modelcfg_free(c);
	free(cfg);
	/* 128 * 0.01 = 1.28: one dimension, which rope cannot turn */
	cJSON_ReplaceItemInObject(doc, "partial_rotary_factor",
				  cJSON_CreateNumber(0.01));
	cfg = cJSON_PrintUnformatted(doc);
	c = infer_with(dir, cfg);
	assert_false(c->convertible);
	assert_non_null(strstr(c->reason, "partial_rotary_factor 0.01 turns 1 "
				      "of the 128 dimensions"));
	mb_modelcfg_free(c);
	free(cfg);
	cJSON_Delete(doc);
}

static void test_base_names(void **state)
{
	char out[128];
	const char *list = "---\nlicense: mit\nbase_model:\n  - "
			   "\"microsoft/phi-4\"\n---\n";
	const char *quoted = "---\nbase_model: 'org/x-1.5'  # comment\n---\n";
	const char *bad = "---\nbase_model: ../../etc\n---\n";
	const char *cfg = "{\"_name_or_path\":\"meta-llama/Llama-3.1-8B\"}";

	(void)state;
	mb_modelcfg_base_name(list, strlen(list), NULL, 0, out, sizeof(out));
	assert_string_equal(out, "microsoft/phi-4");
	mb_modelcfg_base_name(quoted, strlen(quoted), NULL, 0, out, sizeof(out));
	assert_string_equal(out, "org/x-1.5");
	mb_modelcfg_base_name(bad, strlen(bad), NULL, 0, out, sizeof(out));
	assert_string_equal(out, "");
	mb_modelcfg_base_name(NULL, 0, cfg, strlen(cfg), out, sizeof(out));
	assert_string_equal(out, "meta-llama/Llama-3.1-8B");
	/* a local path in _name_or_path is no base */
	mb_modelcfg_base_name(NULL, 0, "{\"_name_or_path\":\"/home/u/ckpt\"}", 33,
			      out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_estimates(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	struct mb_modelcfg *c = infer(m, lie, card, NULL);
	const char *want[] = { "Q4_K_M", "q3_k_m", NULL };
	const char *unknown[] = { "Q9_X", NULL };
	struct mb_estimate e;

	(void)state;
	assert_int_equal(mb_modelcfg_estimate(c, m, want, 0, &e), 0);
	/* 14.66 billion parameters: about 29.3 GB at F16 */
	assert_true(c->params > 14600000000ull && c->params < 14700000000ull);
	assert_true(e.f16 > 29000000000ull && e.f16 < 29600000000ull);
	assert_int_equal(e.nquants, 2);
	assert_string_equal(e.quants[1].type, "Q3_K_M");
	assert_true(e.quants[1].bytes < e.quants[0].bytes);
	assert_true(e.quants[0].bytes > 8000000000ull &&
		    e.quants[0].bytes < 9500000000ull);
	assert_true(e.quants[0].ram > e.quants[0].bytes);
	assert_true(e.worker_disk > e.download + e.f16 + e.quants[0].bytes);
	assert_int_equal(mb_modelcfg_estimate(c, m, unknown, 0, &e), MB_EINVAL);
	assert_int_equal(mb_modelcfg_estimate(c, m, NULL, 0, &e), 0);
	assert_true(e.nquants >= 11);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

/* The memory a run needs, as the smoke test loads a file: the file, an
 * f16 KV cache of 4096 tokens, compute buffers. Checked against peak RSS
 * the smoke test measured (bench/smoke-memory.md): within 10% above it
 * for Phi-4-shaped Q4_K_M files of 8 and 40 layers, never below; and
 * inspect's figure for a quant is this over its estimated size. */
static void test_run_ram(void **state)
{
	struct mb_st_model *m = phi4_model(40, -2, "");
	struct mb_modelcfg *c = infer(m, lie, card, NULL);
	const char *want[] = { "Q4_K_M", NULL };
	struct mb_run_ram r, r2;
	struct mb_estimate e;
	struct {
		uint64_t file, layers, peak;
	} measured[] = {
		{ 2381754336ull, 8, 2595139584ull },
		{ 9057918112ull, 40, 9944272896ull },
	};
	size_t i;

	(void)state;
	/* Phi-4: 40 layers, 10 KV heads of 128 */
	mb_run_ram_estimate(9000000000ull, 40, 1280, 100352, 5120, 17920, &r);
	assert_int_equal(r.weights, 9000000000ull);
	assert_int_equal(r.kv, 2ull * 40 * 4096 * 1280 * 2);
	assert_true(r.compute > (240u << 20) && r.compute < (300u << 20));
	assert_int_equal(r.total, r.weights + r.kv + r.compute);
	/* a larger vocabulary, a larger logits buffer */
	mb_run_ram_estimate(9000000000ull, 40, 1280, 200000, 5120, 17920, &r2);
	assert_true(r2.compute > r.compute + 512ull * 4 * 90000);
	for (i = 0; i < sizeof(measured) / sizeof(measured[0]); i++) {
		mb_run_ram_estimate(measured[i].file, measured[i].layers, 1280,
				    100352, 5120, 17920, &r);
		assert_true(r.total >= measured[i].peak);
		assert_true(r.total < measured[i].peak * 1.1);
	}
	assert_int_equal(mb_modelcfg_estimate(c, m, want, 0, &e), 0);
	mb_run_ram_estimate(e.quants[0].bytes, c->layers, c->kv_width,
			    c->vocab_rows, c->hidden, c->ff, &r);
	assert_int_equal(e.quants[0].ram, r.total);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
}

/* A person's list of quant types: any case, spaces, repeats; F16 and
 * what is not a quant type are refused with the valid types listed. */
static void test_quant_list(void **state)
{
	char out[256], err[512];

	(void)state;
	assert_int_equal(mb_quant_list_parse("q4_k_m, Q8_0 ,Q4_K_M,q8_0", out,
					     sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "Q4_K_M,Q8_0");
	assert_int_equal(mb_quant_list_parse("Q5_K_S", out, sizeof(out), err,
					     sizeof(err)), 0);
	assert_string_equal(out, "Q5_K_S");
	assert_int_equal(mb_quant_list_parse("F16", out, sizeof(out), err,
					     sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "not a quant type 'F16'"));
	assert_non_null(strstr(err, "Q4_K_M"));
	assert_int_equal(mb_quant_list_parse("Q4_K_M,Q9_X", out, sizeof(out), err,
					     sizeof(err)), MB_EINVAL);
	assert_non_null(strstr(err, "unknown quant type 'Q9_X'"));
	assert_non_null(strstr(err, "valid: Q2_K"));
	assert_int_equal(mb_quant_list_parse("Q4_K_M,,Q8_0", out, sizeof(out), err,
					     sizeof(err)), MB_EINVAL);
	assert_int_equal(mb_quant_list_parse("", out, sizeof(out), err,
					     sizeof(err)), MB_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phi4_tiny_broken),
		cmocka_unit_test(test_repaired_matches_correct),
		cmocka_unit_test(test_correct_configs_need_nothing),
		cmocka_unit_test(test_llama_tiny),
		cmocka_unit_test(test_llama_broken_is_ambiguous),
		cmocka_unit_test(test_user_settles_what_nothing_else_can),
		cmocka_unit_test(test_user_set_refuses),
		cmocka_unit_test(test_user_base),
		cmocka_unit_test(test_phi4_shapes_with_named_base),
		cmocka_unit_test(test_phi4_shapes_known_base_without_card),
		cmocka_unit_test(test_hub_base_outranks_table_and_config),
		cmocka_unit_test(test_nothing_settles_phi4_heads),
		cmocka_unit_test(test_layer_missing),
		cmocka_unit_test(test_hostile_configs),
		cmocka_unit_test(test_case_variant_keys),
		cmocka_unit_test(test_unsupported_layouts),
		cmocka_unit_test(test_mistral_sliding_window),
		cmocka_unit_test(test_yarn_rope_scaling),
		cmocka_unit_test(test_qwen2),
		cmocka_unit_test(test_qwen3),
		cmocka_unit_test(test_foreign_refused_not_repaired),
		cmocka_unit_test(test_absent_architecture_repaired),
		cmocka_unit_test(test_contradicted_architecture_repaired),
		cmocka_unit_test(test_foreign_layout_named),
		cmocka_unit_test(test_foreign_claim_over_refused_layout),
		cmocka_unit_test(test_phi4_mini_partial_rotary),
		cmocka_unit_test(test_base_names),
		cmocka_unit_test(test_estimates),
		cmocka_unit_test(test_run_ram),
		cmocka_unit_test(test_quant_list),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
