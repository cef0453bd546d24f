/* converter: mibera's converter or llama.cpp's, and the architectures
 * only llama.cpp's converts. */
#include "coordinator/converter.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/family/family.h"
#include "common/json.h"
#include "common/modelcfg.h"

int mb_converter_ok(const char *name)
{
	return name != NULL && (strcmp(name, MB_CONVERTER_MIBERA) == 0 ||
				strcmp(name, MB_CONVERTER_LLAMA) == 0);
}

/*
 * What the pinned llama.cpp's convert_hf_to_gguf.py registers these
 * transformers classes as (in its conversion/ modules: the class each
 * name is registered to, and that class's gguf.MODEL_ARCH). Only a few common
 * families: an architecture not listed may still be one llama.cpp
 * converts (`convert_hf_to_gguf.py --print-supported-models` lists them).
 */
static const struct llama_arch {
	const char *arch, *model_type, *llama;
} llama_archs[] = {
	{ "MixtralForCausalLM", "mixtral", "llama" },
	{ "DeepseekV2ForCausalLM", "deepseek_v2", "deepseek2" },
	{ "DeepseekV3ForCausalLM", "deepseek_v3", "deepseek2" },
	{ "GemmaForCausalLM", "gemma", "gemma" },
	{ "Gemma2ForCausalLM", "gemma2", "gemma2" },
	{ "Gemma3ForCausalLM", "gemma3_text", "gemma3" },
	{ "Gemma3ForConditionalGeneration", "gemma3", "gemma3" },
	{ "Qwen2MoeForCausalLM", "qwen2_moe", "qwen2moe" },
	{ "Qwen3MoeForCausalLM", "qwen3_moe", "qwen3moe" },
	{ "PhiForCausalLM", "phi", "phi2" },
	{ "GPT2LMHeadModel", "gpt2", "gpt2" },
	{ "GPTNeoXForCausalLM", "gpt_neox", "gptneox" },
	{ "GPTBigCodeForCausalLM", "gpt_bigcode", "starcoder" },
	{ "FalconForCausalLM", "falcon", "falcon" },
	{ "BloomForCausalLM", "bloom", "bloom" },
	{ "Starcoder2ForCausalLM", "starcoder2", "starcoder2" },
	{ "OlmoForCausalLM", "olmo", "olmo" },
	{ "Olmo2ForCausalLM", "olmo2", "olmo2" },
	{ "OlmoeForCausalLM", "olmoe", "olmoe" },
	{ "CohereForCausalLM", "cohere", "command-r" },
	{ "Cohere2ForCausalLM", "cohere2", "cohere2" },
	{ "StableLmForCausalLM", "stablelm", "stablelm" },
	{ "GraniteForCausalLM", "granite", "granite" },
	{ "GraniteMoeForCausalLM", "granitemoe", "granitemoe" },
	{ "MiniCPMForCausalLM", "minicpm", "minicpm" },
	{ "InternLM2ForCausalLM", "internlm2", "internlm2" },
	{ "BaichuanForCausalLM", "baichuan", "baichuan" },
	{ "DbrxForCausalLM", "dbrx", "dbrx" },
	{ "MambaForCausalLM", "mamba", "mamba" },
	{ "Mamba2ForCausalLM", "mamba2", "mamba2" },
	{ "JambaForCausalLM", "jamba", "jamba" },
	{ "Exaone4ForCausalLM", "exaone4", "exaone4" },
	{ "Ernie4_5ForCausalLM", "ernie4_5", "ernie4_5" },
	{ "SmolLM3ForCausalLM", "smollm3", "smollm3" },
	{ "GlmForCausalLM", "glm", "chatglm" },
	{ "Glm4ForCausalLM", "glm4", "glm4" },
	{ "NemotronForCausalLM", "nemotron", "nemotron" },
	{ "Llama4ForCausalLM", "llama4_text", "llama4" },
};

/* A name as transformers spells them ("Qwen3MoeForCausalLM", "gpt_neox"):
 * anything else claims no architecture, and modelcfg read the tensors. */
static int name_like(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 96 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int mb_converter_foreign(const struct mb_modelcfg *c, struct mb_foreign *f)
{
	const cJSON *a;
	const char *mt = NULL;
	size_t i;

	memset(f, 0, sizeof(*f));
	/* a refusal for the architecture leaves the family unknown; a
	 * config the tensors proved wrong was repaired, and is convertible */
	if (c == NULL || c->convertible || c->family != MB_FAMILY_UNKNOWN ||
	    !cJSON_IsObject(c->config))
		return 0;
	a = cJSON_GetObjectItemCaseSensitive(c->config, "architectures");
	if (mb_json_get_str(c->config, "model_type", 64, &mt) == 0 &&
	    name_like(mt))
		f->model_type = mt;
	if (cJSON_IsArray(a) && cJSON_IsString(cJSON_GetArrayItem(a, 0)) &&
	    name_like(cJSON_GetArrayItem(a, 0)->valuestring))
		f->arch = cJSON_GetArrayItem(a, 0)->valuestring;
	/* model_type decides, as it does for transformers (and modelcfg) */
	/* mibera's own families (the family table) are never foreign */
	if (f->model_type != NULL
		    ? mb_family_by_model_type(f->model_type, NULL) != NULL
		    : f->arch == NULL || mb_family_by_arch(f->arch, NULL) != NULL) {
		memset(f, 0, sizeof(*f));
		return 0;
	}
	if (f->model_type == NULL && f->arch == NULL)
		return 0;
	for (i = 0; i < sizeof(llama_archs) / sizeof(llama_archs[0]); i++)
		if (f->model_type != NULL
			    ? strcmp(f->model_type, llama_archs[i].model_type) == 0
			    : strcmp(f->arch, llama_archs[i].arch) == 0) {
			f->llama_arch = llama_archs[i].llama;
			if (f->arch == NULL)
				f->arch = llama_archs[i].arch;
			break;
		}
	return 1;
}

const char *mb_converter_foreign_name(const struct mb_foreign *f, char *out,
				      size_t cap)
{
	if (f->arch != NULL && f->model_type != NULL)
		snprintf(out, cap, "%.96s (model_type %.64s)", f->arch,
			 f->model_type);
	else
		snprintf(out, cap, "%.96s", f->arch ? f->arch : f->model_type);
	return out;
}

const char *mb_converter_way_out(const struct mb_foreign *f,
				 const char *source, char *out, size_t cap)
{
	char name[200];

	mb_converter_foreign_name(f, name, sizeof(name));
	if (f->llama_arch != NULL)
		snprintf(out, cap, "mibera cannot convert %s natively; llama.cpp's "
			 "own converter (convert_hf_to_gguf.py, from the "
			 "llama.cpp mibera is pinned to) converts it as "
			 "llama.cpp arch '%s': mibera-job submit %.300s "
			 "--converter llama.cpp", name, f->llama_arch, source);
	else
		snprintf(out, cap, "mibera cannot convert %s natively; llama.cpp's "
			 "own converter (convert_hf_to_gguf.py, from the "
			 "llama.cpp mibera is pinned to) may: mibera-job submit "
			 "%.300s --converter llama.cpp (it fails saying so when "
			 "it does not know the architecture either)", name,
			 source);
	return out;
}
