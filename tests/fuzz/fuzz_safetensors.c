/*
 * libFuzzer target for the safetensors header parser. Input: 8 bytes of
 * little-endian file size, then the start of the file (length prefix and
 * header JSON); the data section need not be there, as when inspect reads
 * only a shard's header from the hub. The index parser gets the same
 * bytes, as JSON.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_st_model *m = NULL;
	struct mb_st_file *f = NULL;
	uint64_t file_size = 0, n;
	char err[256];
	int i;

	if (size < 16)
		return 0;
	for (i = 7; i >= 0; i--)
		file_size = file_size << 8 | data[i];
	if (mb_st_header_len(data + 8, file_size, &n, err, sizeof(err)) == 0 &&
	    n <= size - 16 &&
	    mb_st_parse_header((const char *)data + 16, n, file_size, &f, err,
			       sizeof(err)) == 0) {
		/* a parsed header must be usable as a model */
		if (mb_st_model_single("x.safetensors", f, &m) == 0) {
			mb_st_model_finish(m, err, sizeof(err));
			if (m->ntensors > 0)
				mb_st_model_find(m, m->tensors[0].name);
		}
		mb_st_model_free(m);
		m = NULL;
	}
	if (mb_st_index_parse((const char *)data + 8, size - 8, &m, err,
			      sizeof(err)) == 0)
		mb_st_model_free(m);
	return 0;
}
