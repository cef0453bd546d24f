/*
 * libllama as the converter's quantizer (common/convert.h): what each
 * tensor becomes comes from llama_model_quantize itself, run as a dry run
 * on the output whose header is written (its log names each tensor's
 * type), and each row's blocks from ggml_quantize_chunk, as the quantize
 * verb's libllama makes them. No importance matrix: a type that needs
 * one is not made in the pass.
 */
#ifndef MB_WORKER_QUANTPLAN_H
#define MB_WORKER_QUANTPLAN_H

#include "common/convert.h"

/* The quantizer; llama_backend_init is called the first time. */
const struct mb_quantizer *mb_llama_quantizer(void);

#endif
