/*
 * pyconvert: the fallback converter, llama.cpp's own convert_hf_to_gguf.py
 * from the pinned llama.cpp source this worker was built with, for a
 * family mibera does not convert natively (convert --converter llama.cpp).
 *
 * The source tree (convert_hf_to_gguf.py, conversion/, gguf-py/,
 * requirements/) is $MIBERA_LLAMA_CONVERTER, else MB_LLAMA_PREFIX/convert
 * where deploy/deps.sh unpacks it. Its Python requirements (torch's CPU
 * wheel, transformers, sentencepiece, numpy...) go into a virtual
 * environment beside it, TREE-venv, the first time a job asks for this
 * converter: minutes and a few GB from the package index, once per
 * worker. $MIBERA_LLAMA_CONVERTER_PYTHON names an interpreter that already
 * has them instead (nothing is installed).
 *
 * The converter's log and progress become the step's events ("log",
 * "progress"), its failure one line that says what went wrong.
 */
#ifndef MB_WORKER_PYCONVERT_H
#define MB_WORKER_PYCONVERT_H

#include <stddef.h>
#include <stdint.h>

struct mb_events;

struct pyconvert_opts {
	const char *model_dir;
	const char *out_path;	/* written as OUT.part, renamed when whole */
	const char *outtype;	/* "f16", "bf16" or "f32" */
};

struct pyconvert_result {
	char converter[160];	/* "llama.cpp convert_hf_to_gguf.py (llama.cpp
				 * TAG COMMIT)" */
	char arch[64];		/* general.architecture of the file */
	uint64_t ntensors, file_size;
	double seconds;		/* the conversion's wall time */
	uint64_t peak_rss;	/* the converter's, in bytes */
};

/* Converts o->model_dir to o->out_path with llama.cpp's converter,
 * installing its Python requirements first when they are not. 0 with r
 * filled; else an exit code (1: a later try may get past it, 3: a person
 * must act) with err saying why in one line and an "error" event. */
int pyconvert_run(const struct pyconvert_opts *o, struct mb_events *ev,
		  struct pyconvert_result *r, char *err, size_t errcap);

#endif
