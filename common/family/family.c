/* family: the table of families and lookups over it. */
#include "common/family/family.h"

#include <assert.h>
#include <string.h>

extern const struct mb_family mb_family_phi3;
extern const struct mb_family mb_family_llama;
extern const struct mb_family mb_family_qwen2;
extern const struct mb_family mb_family_qwen3;
extern const struct mb_family mb_family_gemma3;

/* Order matters where the tensors fit two families equally well (the
 * first wins) and for the known bases (searched in this order). */
static const struct mb_family *const table[] = {
	&mb_family_phi3,
	&mb_family_llama,
	&mb_family_qwen2,
	&mb_family_qwen3,
	&mb_family_gemma3,
};

#define NTABLE (sizeof(table) / sizeof(table[0]))

const struct mb_family *const *mb_families(size_t *n)
{
	*n = NTABLE;
	return table;
}

const struct mb_family *mb_family_get(enum mb_family_id id)
{
	size_t i;

	for (i = 0; i < NTABLE; i++)
		if (table[i]->id == id)
			return table[i];
	return NULL;
}

static const struct mb_family *by_name(const char *s, int model_type,
				       size_t *variant)
{
	size_t i, k;

	if (s == NULL)
		return NULL;
	for (i = 0; i < NTABLE; i++) {
		const char *const *names = model_type ? table[i]->model_types
						      : table[i]->archs;

		for (k = 0; names[k] != NULL; k++)
			if (strcmp(s, names[k]) == 0) {
				if (variant != NULL)
					*variant = k;
				return table[i];
			}
	}
	return NULL;
}

const struct mb_family *mb_family_by_arch(const char *arch, size_t *variant)
{
	return by_name(arch, 0, variant);
}

const struct mb_family *mb_family_by_model_type(const char *mt,
						size_t *variant)
{
	return by_name(mt, 1, variant);
}

int mb_family_has_key(const struct mb_family *f, enum mb_cfg_key k)
{
	size_t i;

	for (i = 0; f->keys[i] != MB_CFG_NKEYS; i++)
		if (f->keys[i] == k)
			return 1;
	return 0;
}

const struct mb_family_layout *mb_family_layout(const struct mb_family *f,
						int split)
{
	assert(f->native != NULL);
	return split && f->split != NULL ? f->split : f->native;
}

uint64_t mb_family_dim(const struct mb_modelcfg *c, enum mb_dim d)
{
	switch (d) {
	case MB_DIM_HIDDEN:
		return c->hidden;
	case MB_DIM_Q:
		return c->q_width;
	case MB_DIM_KV:
		return c->kv_width;
	case MB_DIM_FF:
		return c->ff;
	case MB_DIM_QKV:
		return c->q_width + 2 * c->kv_width;
	case MB_DIM_Q_KV:
		return c->q_width + c->kv_width;
	case MB_DIM_FF2:
		return 2 * c->ff;
	case MB_DIM_HEAD:
		return c->head_dim;
	default:
		return 0;
	}
}

unsigned mb_family_rope_kind(const char *type)
{
	if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0)
		return MB_ROPE_LONGROPE;
	if (strcmp(type, "llama3") == 0)
		return MB_ROPE_LLAMA3;
	if (strcmp(type, "linear") == 0)
		return MB_ROPE_LINEAR;
	if (strcmp(type, "yarn") == 0)
		return MB_ROPE_YARN;
	return 0;
}
