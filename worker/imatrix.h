/*
 * imatrix: importance matrices for quantization, in llama.cpp's GGUF
 * imatrix format (what llama-imatrix writes and llama-quantize --imatrix
 * reads): general.type "imatrix", imatrix.datasets, imatrix.chunk_count,
 * imatrix.chunk_size, and per matrix weight W two F32 tensors,
 * "W.in_sum2" [n_in, n_mat] (the sum over tokens of each input column's
 * squared activation, one row per expert) and "W.counts" [1, n_mat] (the
 * tokens summed).
 */
#ifndef MB_WORKER_IMATRIX_H
#define MB_WORKER_IMATRIX_H

#include <stddef.h>

#include "llama.h"

struct imatrix {
	size_t n;
	struct llama_model_imatrix_data *data;	/* n entries + a NULL row */
	char dataset[128];			/* imatrix.datasets[0] or "" */
	long long chunks;			/* imatrix.chunk_count */
};

/* Reads the imatrix file at path into the per-column means llama.cpp's
 * quantizer takes (sum / count per expert; 1 where nothing was counted, as
 * llama-quantize does). 0, or -1 with a message in err. */
int imatrix_load(const char *path, struct imatrix **out, char *err,
		 size_t errcap);

/* NULL-safe. */
void imatrix_free(struct imatrix *m);

#endif
