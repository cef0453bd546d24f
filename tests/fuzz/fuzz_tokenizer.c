/*
 * libFuzzer target for the tokenizer parsers. Input: one byte choosing the
 * parser (even: tokenizer.json, odd: a SentencePiece tokenizer.model), then
 * the file's bytes. A vocabulary that parses is also written to a GGUF
 * writer, as the converter does.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/gguf.h"
#include "common/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mb_vocab *v = NULL;
	struct mb_gguf_w w;
	char err[256];
	int rc;

	if (size < 1)
		return 0;
	if (data[0] & 1)
		rc = mb_vocab_parse_spm(data + 1, size - 1, &v, err,
					sizeof(err));
	else
		rc = mb_vocab_parse_tokenizer_json((const char *)data + 1,
						   size - 1, &v, err,
						   sizeof(err));
	if (rc == 0 && mb_gguf_w_init(&w, 0) == 0) {
		mb_vocab_to_gguf(v, &w);
		mb_gguf_w_release(&w);
	}
	mb_vocab_free(v);
	return 0;
}
