/*
 * libFuzzer target for the GGUF reader. The input is the start of a GGUF
 * file; it is parsed twice: as the whole file, and as the header of a file
 * 1 GiB longer (as when only the header was read), which takes the
 * paths where the data is in the file but the header runs past the bytes
 * held. A parsed file must hold together: every KV and tensor findable,
 * every tensor aligned, in order and inside the file, and the writer must
 * lay the same tensors out at the same offsets.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		__builtin_trap();
}

static void walk(const struct mb_gguf *g)
{
	struct mb_gguf_w w;
	uint64_t i, j, sum = 0, rel;

	check(g->alignment != 0 && (g->alignment & (g->alignment - 1)) == 0);
	check(g->data_start <= g->file_size);
	for (i = 0; i < g->n_kv; i++) {
		const struct mb_gguf_kv *kv = &g->kv[i];

		check(mb_gguf_kv(g, kv->key) == kv);
		if (kv->type == MB_GGUF_STRING)
			sum += strlen(kv->v.s);
		if (kv->type == MB_GGUF_ARRAY && kv->elem_type == MB_GGUF_STRING)
			for (j = 0; j < kv->n; j++)
				sum += strlen(kv->strs[j]);
		if (kv->type == MB_GGUF_ARRAY && kv->elem_type != MB_GGUF_STRING)
			check((kv->n == 0) == (kv->arr == NULL));
	}
	if (mb_gguf_w_init(&w, g->alignment) != 0)
		return;
	for (i = 0; i < g->ntensors; i++) {
		const struct mb_gguf_tensor *t = &g->tensors[i];

		check(mb_gguf_tensor(g, t->name) == t);
		check(mb_ggml_type_name(t->type) != NULL);
		check(t->offset % g->alignment == 0);
		check(t->offset >= g->data_start);
		check(t->size <= g->file_size && t->offset <= g->file_size - t->size);
		check(mb_gguf_w_tensor(&w, t->name, t->type, t->ndim, t->ne) ==
		      (int)i);
		check(w.tensors[i].size == t->size);
	}
	/* the writer places the tensors where the file has them */
	check(mb_gguf_w_layout(&w) == 0);
	for (i = 0; i < g->ntensors; i++) {
		rel = w.tensors[i].offset - w.data_start;
		check(g->tensors[i].offset - g->data_start == rel);
	}
	mb_gguf_w_release(&w);
	(void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_gguf *g = NULL;
	char err[256];

	if (mb_gguf_parse(data, size, size, &g, err, sizeof(err)) == 0) {
		walk(g);
		mb_gguf_free(g);
	}
	if (mb_gguf_parse(data, size, (uint64_t)size + (1u << 30), &g, err,
			  sizeof(err)) == 0) {
		walk(g);
		mb_gguf_free(g);
	}
	return 0;
}
