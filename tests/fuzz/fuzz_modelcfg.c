/*
 * libFuzzer target for config reconciliation. Input: one byte of options
 * (bit 0: a Llama-shaped model instead of a Phi-3-shaped one; bit 1: a
 * card naming microsoft/phi-4), then config.json, then optionally a NUL
 * and the base model's config.json. Every output path runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* name, rows, cols (0: a vector) */
struct spec {
	const char *name;
	uint64_t r, c;
};

static const struct spec phi3[] = {
	{ "model.embed_tokens.weight", 1024, 512 },
	{ "model.norm.weight", 512, 0 },
	{ "lm_head.weight", 1024, 512 },
	{ "input_layernorm.weight", 512, 0 },
	{ "post_attention_layernorm.weight", 512, 0 },
	{ "self_attn.qkv_proj.weight", 768, 512 },
	{ "self_attn.o_proj.weight", 512, 512 },
	{ "mlp.gate_up_proj.weight", 3584, 512 },
	{ "mlp.down_proj.weight", 512, 1792 },
	{ NULL, 0, 0 },
};

static const struct spec llama[] = {
	{ "model.embed_tokens.weight", 512, 256 },
	{ "model.norm.weight", 256, 0 },
	{ "input_layernorm.weight", 256, 0 },
	{ "post_attention_layernorm.weight", 256, 0 },
	{ "self_attn.q_proj.weight", 256, 256 },
	{ "self_attn.k_proj.weight", 128, 256 },
	{ "self_attn.v_proj.weight", 128, 256 },
	{ "self_attn.o_proj.weight", 256, 256 },
	{ "mlp.gate_proj.weight", 688, 256 },
	{ "mlp.up_proj.weight", 688, 256 },
	{ "mlp.down_proj.weight", 256, 688 },
	{ NULL, 0, 0 },
};

/* Two layers of the spec's per-layer tensors (those after the globals). */
static struct mb_st_model *build(const struct spec *s, int nglobal)
{
	struct mb_st_model *m = NULL;
	struct mb_st_file *f = NULL;
	struct mb_buf b;
	uint64_t off = 0;
	int l, i;

	mb_buf_init(&b, 1 << 20);
	mb_buf_adds(&b, "{");
	for (l = -1; l < 2; l++)
		for (i = l < 0 ? 0 : nglobal; s[i].name && (l >= 0 || i < nglobal);
		     i++) {
			uint64_t n = (s[i].c ? s[i].r * s[i].c : s[i].r) * 2;
			char name[128];

			if (l < 0)
				snprintf(name, sizeof(name), "%s", s[i].name);
			else
				snprintf(name, sizeof(name), "model.layers.%d.%s",
					 l, s[i].name);
			mb_buf_addf(&b, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%llu",
				    off ? "," : "", name, (unsigned long long)s[i].r);
			if (s[i].c)
				mb_buf_addf(&b, ",%llu", (unsigned long long)s[i].c);
			mb_buf_addf(&b, "],\"data_offsets\":[%llu,%llu]}",
				    (unsigned long long)off,
				    (unsigned long long)(off + n));
			off += n;
		}
	mb_buf_adds(&b, "}");
	if (mb_st_parse_header(b.data, b.len, 8 + b.len + off, &f, NULL, 0) != 0 ||
	    mb_st_model_single("m.safetensors", f, &m) != 0 ||
	    mb_st_model_finish(m, NULL, 0) != 0)
		abort();
	mb_buf_release(&b);
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mb_st_model *models[2];
	static const char card[] = "---\nbase_model: microsoft/phi-4\n---\n";
	const char *cfg = (const char *)data + 1, *base = NULL, *nul;
	size_t cfg_len, base_len = 0;
	struct mb_modelcfg *c = NULL;
	struct mb_estimate e;
	struct mb_buf b;
	char err[256];

	if (models[0] == NULL) {
		models[0] = build(phi3, 3);
		models[1] = build(llama, 2);
	}
	if (size < 1)
		return 0;
	cfg_len = size - 1;
	nul = memchr(cfg, '\0', cfg_len);
	if (nul != NULL) {
		base = nul + 1;
		base_len = cfg_len - (size_t)(base - cfg);
		cfg_len = (size_t)(nul - cfg);
	}
	if (mb_modelcfg_infer(models[data[0] & 1], cfg, cfg_len,
			      data[0] & 2 ? card : NULL,
			      data[0] & 2 ? sizeof(card) - 1 : 0, base, base_len,
			      &c, err, sizeof(err)) != 0)
		return 0;
	mb_buf_init(&b, 1 << 22);
	mb_modelcfg_report_json(c, &b);
	mb_buf_reset(&b);
	if (c->family != MB_FAMILY_UNKNOWN) {
		mb_modelcfg_repaired_json(c, &b);
		mb_modelcfg_estimate(c, models[data[0] & 1], NULL, 0, &e);
	}
	mb_buf_release(&b);
	mb_modelcfg_free(c);
	return 0;
}
