/*
 * converter: which program makes a job's full-precision GGUF. mibera's own
 * converter (common/convert.h) handles the families it knows; for another
 * family the way out is llama.cpp's own convert_hf_to_gguf.py, from the
 * pinned llama.cpp source the worker was built with, run on the worker
 * (submit --converter llama.cpp). This module tells a model refused for
 * its architecture from one refused for anything else, and says what
 * llama.cpp calls that architecture.
 */
#ifndef MB_CONVERTER_H
#define MB_CONVERTER_H

#include <stddef.h>

struct mb_modelcfg;

#define MB_CONVERTER_MIBERA "mibera"
#define MB_CONVERTER_LLAMA "llama.cpp"

/* 1 when name is a converter a job can ask for ("mibera", "llama.cpp"). */
int mb_converter_ok(const char *name);

/* An architecture mibera does not convert natively, as config.json
 * names it. Strings are borrowed from the config and a static table. */
struct mb_foreign {
	const char *arch;	/* architectures[0], or NULL */
	const char *model_type;	/* or NULL */
	const char *llama_arch;	/* llama.cpp's name for it ("deepseek2"),
				 * or NULL when the table does not know it */
};

/* 1 with f filled when c was refused because config.json names an
 * architecture mibera does not convert (not for a tokenizer, a missing
 * tensor or any other reason); 0 otherwise. */
int mb_converter_foreign(const struct mb_modelcfg *c, struct mb_foreign *f);

/* The name the model's architecture goes by in messages: "MixtralForCausalLM
 * (model_type mixtral)". Returns out (cap bytes). */
const char *mb_converter_foreign_name(const struct mb_foreign *f, char *out,
				      size_t cap);

/* What a person does about a model mibera cannot convert natively, for
 * source (as submit takes it): one sentence naming llama.cpp's converter,
 * what it calls the architecture when known, and the submit command.
 * Returns out (cap bytes). */
const char *mb_converter_way_out(const struct mb_foreign *f,
				 const char *source, char *out, size_t cap);

#endif
