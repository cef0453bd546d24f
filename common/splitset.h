/*
 * splitset: GGUF files too big for one piece, as sets of parts on disk
 * (llama.cpp's gguf-split format; the keys are in common/gguf.h).
 *
 * An artifact has one name, NAME.gguf. Written whole it is that file;
 * written as a set of N parts it is NAME-00001-of-0000N.gguf ...
 * NAME-0000N-of-0000N.gguf beside it and NAME.gguf does not exist.
 * libllama loads a set from its first part. A set is made only when the
 * file would be larger than the size asked for: an artifact that fits
 * stays one file.
 */
#ifndef MB_SPLITSET_H
#define MB_SPLITSET_H

#include <stddef.h>
#include <stdint.h>

/* The smallest size a part may be asked to have: below it nearly every
 * tensor of a real model would be a part of its own. */
#define MB_SPLITSET_MIN_SIZE 1000000ull

/* The largest file the hub takes (50 GB): a job that pushes there writes
 * bigger GGUFs as parts of at most this. */
#define MB_SPLITSET_HUB_MAX 50000000000ull

/* Parses a part size as llama.cpp's gguf-split takes it, plus plain
 * bytes: digits, then nothing (bytes), K, M, G or T (powers of 1000, as
 * the hub counts its 50 GB). Returns 0, or MB_EINVAL with a message for a
 * person in err ("50G", "2M", at least MB_SPLITSET_MIN_SIZE). */
int mb_splitset_parse_size(const char *s, uint64_t *out, char *err,
			   size_t errcap);

/* Writes bytes as the shortest exact size text ("50G", "2M", "12345"). */
void mb_splitset_size_text(uint64_t bytes, char *out, size_t cap);

/* Writes the path of part no (from 0) of count of the artifact at path
 * ("dir/NAME.gguf" or "dir/NAME"): dir/NAME-0000<no+1>-of-0000<count>.gguf.
 * Returns 0, or MB_ETOOBIG when it does not fit in cap. */
int mb_splitset_part_path(const char *path, unsigned no, unsigned count,
			  char *out, size_t cap);

/* Recognises a part's file name (a base name or a path):
 * NAME-NNNNN-of-MMMMM.gguf with 1 <= NNNNN <= MMMMM. Returns 1 and sets
 * *stem (the length of NAME, path included), *no (from 0) and *count;
 * returns 0 for any other name. */
int mb_splitset_parse_name(const char *name, size_t *stem, unsigned *no,
			   unsigned *count);

/* Writes the artifact's name ("NAME.gguf") of a part's name, or the name
 * itself when it is not a part's. */
void mb_splitset_artifact_name(const char *name, char *out, size_t cap);

struct mb_splitset {
	unsigned count;		/* 1: one whole file */
	uint64_t tensors;	/* in the whole set */
	uint64_t bytes;		/* of all its files */
	uint64_t largest;	/* its largest file's bytes */
	char first[4096];	/* the file libllama loads */
};

/* Finds the artifact at path: path itself when it exists (a whole file,
 * or the first part of a set named as such), else the set whose first
 * part is beside it (NAME-00001-of-*.gguf for NAME.gguf). Every part is
 * read and checked: present, a GGUF with split.no and split.count as its
 * name says, the tensors adding up to split.tensors.count. Returns 0,
 * MB_ENOENT when there is nothing by that name, MB_EFORMAT (a part
 * missing or wrong, named in err) or the reader's error. */
int mb_splitset_find(const char *path, struct mb_splitset *set, char *err,
		     size_t errcap);

/* Removes the artifact at path ("dir/NAME.gguf") in every form but the
 * one kept: the whole file when keep_count > 1, and every part of a set of
 * another count (all of them when keep_count <= 1), with their .part
 * files. What a run before a change of --split-max-size left behind. */
int mb_splitset_remove_others(const char *path, unsigned keep_count);

/* Writes the GGUF at in as the artifact out ("dir/NAME.gguf"): parts of
 * at most max_size bytes (a tensor bigger than that alone in a part), each
 * written as .part, fsynced and renamed; or out whole when it fits. Other
 * forms of out are removed after. *nparts gets the count (1: whole).
 * Returns 0 or an mb_err code with a message in err. */
int mb_splitset_write(const char *in, const char *out, uint64_t max_size,
		      unsigned *nparts, char *err, size_t errcap);

#endif
