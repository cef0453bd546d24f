/*
 * convert: a Hugging Face safetensors model to one GGUF file, streaming.
 *
 * The model is inspected first (common/modelcfg): the conversion uses the
 * repaired configuration, never the claims of config.json, and refuses
 * what it cannot convert with the reason. The whole layout is computed
 * before a byte of data is written; the output is NAME.part with its full
 * size reserved up front (a full disk fails at once, not at 90%), then
 * each tensor is written at its offset by a pool of threads that read the
 * source rows with pread (or copy them in the kernel when nothing needs
 * converting), convert them in blocks of a few MiB and write them with
 * pwrite. Memory stays bounded whatever the model size. The file is
 * fsynced and renamed into place only when complete.
 *
 * With follow, the conversion runs while a headers-first fetch downloads
 * the model: it plans from the shards' headers, writes the GGUF's header,
 * then converts each shard's tensors once the shard is downloaded and
 * verified, stopping with the fetch's message when the fetch fails. The
 * output is byte for byte the one a conversion after the download writes.
 *
 * What each family's layouts write (architecture, tensor plan, metadata
 * keys, rope scalings) is data in common/family/. Layouts: "native" keeps
 * Phi-3's fused attn_qkv and ffn_up (2 * n_ff) under arch phi3; "split"
 * writes arch llama with q/k/v and gate/up split by rows and q, k permuted
 * for llama.cpp's NORM rope. A family without a split layout (Llama,
 * Qwen2, Qwen3) is written natively whatever the layout asked.
 */
#ifndef MB_CONVERT_H
#define MB_CONVERT_H

#include <stddef.h>
#include <stdint.h>

struct mb_buf;
struct mb_modelcfg_user;

enum mb_layout {
	MB_LAYOUT_NATIVE,
	MB_LAYOUT_SPLIT,
};

enum mb_outtype {
	MB_OUT_F16,
	MB_OUT_BF16,
	MB_OUT_F32,
};

struct mb_convert_progress {
	uint64_t done, total;	/* tensor data bytes written, to write */
	double seconds;		/* since the data started */
	int finished;
};

typedef void (*mb_convert_progress_fn)(const struct mb_convert_progress *p,
				       void *ctx);

/* --- quantized GGUFs made in the conversion's pass ---
 *
 * The bytes llama_model_quantize makes of the output for a file type,
 * without an importance matrix, made from the rows as they are converted
 * rather than from the written output afterwards: its KVs in the
 * output's order with general.quantization_version and general.file_type
 * set last, its tensors in its loader's order (those outside the layers,
 * then each layer's, each group by name), each tensor as the quantizer's
 * plan says: the output's bytes where its type stays, else the rows'
 * values quantized. */
#define MB_CONVERT_MAXQ 8

struct mb_quantizer {
	/* The ggml type llama_model_quantize gives each of the n tensors
	 * (names) of the GGUF at path for ftype, into types. The GGUF's
	 * header is final and its data not yet written. 0; MB_EUNSUPPORTED
	 * with why when that file is not to be made in the pass; other
	 * errors. */
	int (*plan)(void *ctx, const char *path, int ftype, size_t n,
		    const char *const *names, int *types, char *why,
		    size_t cap);
	/* Quantizes nrows rows of n values (f32) at src into dst as type
	 * (whose rows are whole blocks of n); called from several threads. */
	void (*rows)(int type, const float *src, void *dst, uint64_t nrows,
		     uint64_t n);
	void *ctx;
};

struct mb_convert_quant {
	const char *path;
	int ftype;			/* llama_ftype */
};

struct mb_convert_opts {
	const char *model_dir;
	const char *out_path;
	enum mb_layout layout;
	enum mb_outtype outtype;
	int threads;			/* 0: the CPU count, at most 16 */
	const char *name;		/* general.name; NULL: from repo or dir */
	const char *source_repo;	/* org/name, or NULL */
	const char *source_commit;	/* 40 hex, or NULL */
	const char *base_config;	/* the named base's config.json, or NULL */
	size_t base_config_len;
	uint64_t split_max_size;		/* 0: one file; else a file
					   bigger than this is written as a
					   set of parts of at most this many
					   bytes (common/splitset.h) */
	const struct mb_modelcfg_user *user;	/* what the user settled, or
						   NULL */
	mb_convert_progress_fn progress;	/* called about twice a second */
	void *progress_ctx;
	struct mb_buf *report;		/* when not NULL, gets the inspect
					   report (PROTOCOL.md) of the model
					   as converted: the repairs made */
	int follow;			/* the download into model_dir runs
					   (a headers-first fetch, common/
					   download.h): plan from its side
					   headers, convert each shard once it
					   is there and matches them; with
					   source_repo and no source_commit,
					   the commit is the fetch's */
	const struct mb_convert_quant *quants;	/* also writes these
					   quantized GGUFs, in the same pass
					   (at most MB_CONVERT_MAXQ); while
					   one is written, PATH.part holds it
					   and PATH.ready says which of its
					   blocks are final (common/
					   readymap.h); not for a set of
					   parts (the result says why not) */
	size_t nquants;
	const struct mb_quantizer *quantizer;	/* with quants: what each
						   tensor becomes, and its
						   rows' blocks */
	double follow_timeout_s;	/* follow: stop when its state file
					   is not rewritten for this long; 0:
					   300 s */
};

struct mb_convert_result {
	char arch[16];
	uint64_t ntensors;
	uint64_t file_size;		/* of all its parts */
	unsigned nparts;		/* 1: out_path; else the parts */
	uint64_t data_bytes;
	size_t nrepairs;
	double seconds;
	uint64_t early_bytes;		/* follow: source bytes converted before
					   their shard was whole */
	uint64_t redone_bytes;		/* source bytes converted again: the
					   fetch started their shard over */
	uint64_t quant_size[MB_CONVERT_MAXQ];	/* per quants[i]: its size;
						   0: not made, and why */
	char quant_why[MB_CONVERT_MAXQ][256];
};

/* Returns the layout named s ("native", "split"), or -1. */
int mb_layout_parse(const char *s);

/* Returns the output type named s ("f16", "bf16", "f32"), or -1. */
int mb_outtype_parse(const char *s);

/* Converts as o says. On failure returns an mb_err code with a message in
 * err (the output path is untouched and no .part is left):
 * MB_EUNSUPPORTED for a model mibera cannot convert (the reason names
 * what was seen), MB_ENOSPC when the output does not fit, MB_EFORMAT for
 * broken input files, MB_EIO and others for I/O. */
int mb_convert(const struct mb_convert_opts *o, struct mb_convert_result *r,
	       char *err, size_t errcap);

#endif
