/*
 * llm: run a GGUF with the real libllama on the CPU, for the tests that
 * check what the converter wrote against the reference forward pass.
 */
#ifndef MB_TH_LLM_H
#define MB_TH_LLM_H

#include <stddef.h>
#include <stdint.h>

/* Loads gguf on the CPU, evaluates tokens[0..n) in one batch and returns
 * the logits of every position in *logits (n * *n_vocab floats, caller
 * frees). Returns 0, or -1 with llama.cpp's last log lines in err. */
int th_llama_logits(const char *gguf, const int32_t *tokens, int n,
		    float **logits, int *n_vocab, char *err, size_t errcap);

/* Compares two logit matrices of n rows: the largest absolute difference
 * over the largest absolute value of ref, and the fraction of rows whose
 * arg max agrees. */
void th_logits_compare(const float *ref, const float *got, int n, int n_vocab,
		       double *rel_err, double *top1);

#endif
