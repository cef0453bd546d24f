/*
 * model: the test model generator (tests/fixtures/mkmodel) for the tests.
 * Writes a Hugging Face-style repo with deterministic random bf16 weights:
 * "phi4-tiny" (Phi-4's ratios, fused qkv/gate_up, byte-level BPE
 * tokenizer.json, config.json broken as Phi-2's by default), "llama-tiny"
 * (separate q/k/v, GQA, SentencePiece tokenizer.model) and "phi4-slice"
 * (Phi-4's real shapes, 2 layers, about 3.4 GB: benchmarks only). Run
 * mkmodel --help for its options.
 *
 * Like the rest of the harness, returns 0 on success and -1 on failure
 * after printing the reason to stderr.
 */
#ifndef MB_TH_MODEL_H
#define MB_TH_MODEL_H

/* Writes preset into out_dir (created; must be empty if it exists). extra
 * is a NULL-terminated list of more mkmodel arguments, e.g.
 * { "--config", "correct", "--shards", "1", NULL }, or NULL. The same
 * arguments always give byte-identical files. */
int th_mkmodel(const char *out_dir, const char *preset,
	       const char *const extra[]);

#endif
