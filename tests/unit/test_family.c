/* Tests common/family/: the table a new family is added to is whole
 * (lookups, names, tensor plans that name only the family's tensors,
 * defaults and known bases that parse and name their family), each name
 * once in a family's arrays however they are put together from the
 * shared rows, the sizes a shape is made of, and the README's table of
 * supported models lists exactly the families in it, with their config
 * names, GGUF architectures and layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/family/family.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/modelcfg.h"

static int known_tensor(const struct mb_family *f, const char *hf)
{
	size_t k;

	for (k = 0; f->tensors[k].hf != NULL; k++)
		if (strcmp(f->tensors[k].hf, hf) == 0)
			return 1;
	return 0;
}

static void check_plan(const struct mb_family *f,
		       const struct mb_family_layout *lay)
{
	const struct mb_family_out *t;

	assert_non_null(lay->name);
	assert_non_null(lay->arch);
	assert_non_null(lay->tensors);
	for (t = lay->tensors; t->gguf != NULL; t++) {
		if (!known_tensor(f, t->hf))
			fail_msg("%s %s: '%s' reads '%s', not a tensor of the "
				 "family", f->name, lay->name, t->gguf, t->hf);
		if (t->when != NULL && !known_tensor(f, t->when))
			fail_msg("%s: '%s' is written when '%s' exists, not a "
				 "tensor of the family", f->name, t->gguf,
				 t->when);
	}
}

static void test_table_whole(void **state)
{
	const struct mb_family *const *fams;
	size_t n, i, j, k;

	(void)state;
	fams = mb_families(&n);
	assert_true(n >= 4);
	assert_null(mb_family_get(MB_FAMILY_UNKNOWN));
	assert_string_equal(mb_family_name(MB_FAMILY_UNKNOWN), "unknown");
	for (i = 0; i < n; i++) {
		const struct mb_family *f = fams[i];
		size_t variant = 99, na = 0, nm = 0;
		cJSON *d;

		assert_ptr_equal(mb_family_get(f->id), f);
		assert_string_equal(mb_family_name(f->id), f->name);
		for (j = 0; j < i; j++) {
			assert_int_not_equal(fams[j]->id, f->id);
			assert_string_not_equal(fams[j]->name, f->name);
		}
		/* config names: parallel, each owned by this family only */
		for (na = 0; f->archs[na] != NULL; na++) {
			assert_ptr_equal(mb_family_by_arch(f->archs[na],
							   &variant), f);
			assert_int_equal(variant, na);
		}
		for (nm = 0; f->model_types[nm] != NULL; nm++) {
			assert_ptr_equal(mb_family_by_model_type(
						 f->model_types[nm], &variant),
					 f);
			assert_int_equal(variant, nm);
		}
		assert_true(na >= 1);
		assert_int_equal(na, nm);
		/* recognised from tensors, or named over another's */
		assert_true(f->markers != NULL ||
			    f->extends != MB_FAMILY_UNKNOWN);
		if (f->extends != MB_FAMILY_UNKNOWN) {
			assert_non_null(mb_family_get(f->extends));
			assert_non_null(f->required_note);
		}
		for (k = 0; f->markers != NULL && f->markers[k] != NULL; k++)
			assert_true(known_tensor(f, f->markers[k]));
		if (f->head_tensor != NULL) {
			assert_true(known_tensor(f, f->head_tensor));
			assert_non_null(f->head_note);
		}
		if (f->fused_qkv != NULL)
			assert_true(known_tensor(f, f->fused_qkv));
		assert_true(f->layout_tensor != NULL || f->layout_text != NULL);
		assert_non_null(f->display);
		/* GGUF layouts */
		assert_non_null(f->native);
		assert_string_equal(f->native->name, "native");
		check_plan(f, f->native);
		assert_ptr_equal(mb_family_layout(f, 0), f->native);
		if (f->split != NULL) {
			assert_string_equal(f->split->name, "split");
			check_plan(f, f->split);
			assert_ptr_equal(mb_family_layout(f, 1), f->split);
		} else {
			assert_ptr_equal(mb_family_layout(f, 1), f->native);
		}
		/* config defaults and the known bases */
		d = cJSON_Parse(f->defaults);
		assert_true(cJSON_IsObject(d));
		cJSON_Delete(d);
		for (k = 0; f->keys[k] != MB_CFG_NKEYS; k++)
			assert_true(mb_family_has_key(f, f->keys[k]));
		for (k = 0; f->bases[k].name != NULL; k++) {
			const char *mt;

			d = cJSON_Parse(f->bases[k].config);
			assert_true(cJSON_IsObject(d));
			assert_int_equal(mb_json_get_str(d, "model_type", 64,
							 &mt), 0);
			if (mb_family_by_model_type(mt, NULL) != f)
				fail_msg("base %s of %s says model_type %s",
					 f->bases[k].name, f->name, mt);
			cJSON_Delete(d);
		}
	}
	assert_null(mb_family_by_arch("GemmaForCausalLM", NULL));
	assert_null(mb_family_by_model_type("qwen3_moe", NULL));
	assert_int_equal(mb_family_rope_kind("su"), MB_ROPE_LONGROPE);
	assert_int_equal(mb_family_rope_kind("yarn"), MB_ROPE_YARN);
	assert_int_equal(mb_family_rope_kind("dynamic"), 0);
}

/* A layout's plan writes each GGUF tensor once. */
static void check_plan_unique(const struct mb_family *f,
			      const struct mb_family_layout *lay)
{
	const struct mb_family_out *t, *u;

	for (t = lay->tensors; t->gguf != NULL; t++)
		for (u = lay->tensors; u != t; u++)
			if (strcmp(u->gguf, t->gguf) == 0)
				fail_msg("%s %s: '%s' is in the plan twice",
					 f->name, lay->name, t->gguf);
}

/* A family's arrays are its own rows and the shared ones (rows.h): each
 * layer tensor, marker and exclusion is in them once, no tensor is both
 * a marker and an exclusion, and each plan writes a GGUF tensor once
 * (that it reads only the family's tensors is test_table_whole's). A
 * shared run listed beside a row of the same name (two
 * q_proj.bias rows, one optional and one required) would make which one
 * counts depend on the order analyze() walks them in. */
static void test_names_once(void **state)
{
	const struct mb_family *const *fams;
	size_t n, i, j, k;

	(void)state;
	fams = mb_families(&n);
	for (i = 0; i < n; i++) {
		const struct mb_family *f = fams[i];

		assert_non_null(f->tensors);
		assert_non_null(f->tensors[0].hf);
		for (k = 0; f->tensors[k].hf != NULL; k++) {
			for (j = 0; j < k; j++)
				if (strcmp(f->tensors[j].hf,
					   f->tensors[k].hf) == 0)
					fail_msg("%s: tensor '%s' is listed "
						 "twice", f->name,
						 f->tensors[k].hf);
		}
		for (k = 0; f->markers != NULL && f->markers[k] != NULL; k++) {
			for (j = 0; j < k; j++)
				assert_string_not_equal(f->markers[j],
							f->markers[k]);
			for (j = 0; f->excludes != NULL &&
				    f->excludes[j] != NULL; j++)
				if (strcmp(f->excludes[j], f->markers[k]) == 0)
					fail_msg("%s: '%s' both marks and "
						 "excludes it", f->name,
						 f->markers[k]);
		}
		for (k = 0; f->excludes != NULL && f->excludes[k] != NULL; k++)
			for (j = 0; j < k; j++)
				assert_string_not_equal(f->excludes[j],
							f->excludes[k]);
		check_plan_unique(f, f->native);
		if (f->split != NULL)
			check_plan_unique(f, f->split);
	}
}

/* The sizes the shapes and row slices are made of, as convert and
 * analyze read them. */
static void test_dims(void **state)
{
	static struct mb_modelcfg c;

	(void)state;
	c.hidden = 3072;
	c.q_width = 4096;
	c.kv_width = 1024;
	c.ff = 8192;
	c.head_dim = 128;
	assert_int_equal(mb_family_dim(&c, MB_DIM_NONE), 0);
	assert_int_equal(mb_family_dim(&c, MB_DIM_HIDDEN), 3072);
	assert_int_equal(mb_family_dim(&c, MB_DIM_Q), 4096);
	assert_int_equal(mb_family_dim(&c, MB_DIM_KV), 1024);
	assert_int_equal(mb_family_dim(&c, MB_DIM_FF), 8192);
	assert_int_equal(mb_family_dim(&c, MB_DIM_QKV), 4096 + 2 * 1024);
	assert_int_equal(mb_family_dim(&c, MB_DIM_Q_KV), 4096 + 1024);
	assert_int_equal(mb_family_dim(&c, MB_DIM_FF2), 2 * 8192);
	assert_int_equal(mb_family_dim(&c, MB_DIM_HEAD), 128);
	assert_int_equal(mb_family_dim(&c, MB_DIM_ANY), 0);
}

/* The backquoted words of a table cell, as a list of names. */
static size_t cell_words(const char *cell, size_t len, char out[][64],
			 size_t cap)
{
	const char *p = cell, *end = cell + len;
	size_t n = 0;

	while (p < end && n < cap) {
		const char *a = memchr(p, '`', (size_t)(end - p)), *b;

		if (a == NULL)
			break;
		b = memchr(a + 1, '`', (size_t)(end - a - 1));
		if (b == NULL || (size_t)(b - a - 1) >= 64)
			break;
		snprintf(out[n++], 64, "%.*s", (int)(b - a - 1), a + 1);
		p = b + 1;
	}
	return n;
}

static int in_words(char words[][64], size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(words[i], s) == 0)
			return 1;
	return 0;
}

/* Checks one README row against the family it names. */
static void check_row(const struct mb_family *f, const char *cells[6],
		      const size_t lens[6])
{
	char words[16][64];
	size_t n, k, want = 0;

	/* config.json's names: architectures and model_type, all of them */
	n = cell_words(cells[1], lens[1], words, 16);
	for (k = 0; f->archs[k] != NULL; k++, want += 2) {
		if (!in_words(words, n, f->archs[k]) ||
		    !in_words(words, n, f->model_types[k]))
			fail_msg("README: %s's row lacks %s (%s)", f->name,
				 f->archs[k], f->model_types[k]);
	}
	if (n != want)
		fail_msg("README: %s's row names %zu config names, the table "
			 "%zu", f->name, n, want);
	/* GGUF architectures: the layouts' */
	n = cell_words(cells[2], lens[2], words, 16);
	if (!in_words(words, n, f->native->arch) ||
	    (f->split != NULL && !in_words(words, n, f->split->arch)) ||
	    n != (f->split != NULL && strcmp(f->split->arch, f->native->arch)
			  ? 2u : 1u))
		fail_msg("README: %s's GGUF architectures are not the "
			 "table's", f->name);
	/* layouts */
	n = cell_words(cells[3], lens[3], words, 16);
	if (!in_words(words, n, "native") ||
	    (f->split != NULL) != in_words(words, n, "split") ||
	    n != (f->split != NULL ? 2u : 1u))
		fail_msg("README: %s's layouts are not the table's", f->name);
}

static void test_readme_lists_the_table(void **state)
{
	const struct mb_family *const *fams;
	const char *src = getenv("MB_SOURCE_DIR"), *p, *line;
	char path[600], name[16][64];
	size_t len, n, i, rows = 0, seen[32] = { 0 };
	char *text = NULL;
	int in_table = 0;

	(void)state;
	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/README.md", src);
	assert_int_equal(mb_read_file(path, 1 << 20, &text, &len), 0);
	fams = mb_families(&n);
	assert_true(n <= 32);
	for (line = text; line < text + len; line = p + 1) {
		const char *cells[6];
		size_t lens[6], nc = 0;
		const char *c;

		p = memchr(line, '\n', (size_t)(text + len - line));
		if (p == NULL)
			p = text + len;
		if (!in_table) {
			in_table = strncmp(line, "| family |", 10) == 0;
			continue;
		}
		if (*line != '|')
			break;
		if (strncmp(line, "|---", 4) == 0 || strncmp(line, "| ---", 5) == 0)
			continue;
		/* | `name` | names | arch | layouts | tested with | */
		for (c = line + 1; c < p && nc < 6;) {
			const char *bar = memchr(c, '|', (size_t)(p - c));

			if (bar == NULL)
				break;
			cells[nc] = c;
			lens[nc++] = (size_t)(bar - c);
			c = bar + 1;
		}
		if (nc < 5)
			fail_msg("README: a supported-models row without five "
				 "cells: %.*s", (int)(p - line), line);
		if (cell_words(cells[0], lens[0], name, 1) != 1)
			fail_msg("README: a row names no family: %.*s",
				 (int)(p - line), line);
		for (i = 0; i < n; i++)
			if (strcmp(fams[i]->name, name[0]) == 0)
				break;
		if (i == n)
			fail_msg("README lists family '%s', which the table "
				 "lacks", name[0]);
		seen[i]++;
		rows++;
		check_row(fams[i], cells, lens);
	}
	free(text);
	if (!in_table)
		fail_msg("README has no table of supported models (a line "
			 "starting '| family |')");
	for (i = 0; i < n; i++)
		if (seen[i] != 1)
			fail_msg("README lists family '%s' %zu times (once "
				 "wanted)", fams[i]->name, seen[i]);
	assert_int_equal(rows, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_whole),
		cmocka_unit_test(test_names_once),
		cmocka_unit_test(test_dims),
		cmocka_unit_test(test_readme_lists_the_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
