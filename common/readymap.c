/* readymap: the map of a file's final blocks, written and read. */
#include "common/readymap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"

#define MAGIC "mibera-ready 1 "

int mb_ready_write(const char *path, uint64_t size, const char *bits,
		   uint64_t n)
{
	char head[80];
	size_t hn = (size_t)snprintf(head, sizeof(head), MAGIC "%llu %u\n",
				     (unsigned long long)size, MB_READY_BLOCK);
	char *doc = mb_malloc(hn + n + 1);
	int rc;

	if (doc == NULL)
		return MB_ENOMEM;
	memcpy(doc, head, hn);
	memcpy(doc + hn, bits, n);
	rc = mb_replace_file(path, doc, hn + n, 0644);
	free(doc);
	return rc;
}

int mb_ready_parse(const char *buf, size_t len, uint64_t max_block,
		   uint64_t max_size, uint64_t *size, uint64_t *block,
		   const char **bits, uint64_t *n)
{
	const char *nl = memchr(buf, '\n', len);
	unsigned long long sz, blk;
	char head[80];
	int used = 0;

	if (nl == NULL || (size_t)(nl - buf) >= sizeof(head))
		return MB_EFORMAT;
	memcpy(head, buf, (size_t)(nl - buf));
	head[nl - buf] = '\0';
	if (sscanf(head, MAGIC "%llu %llu%n", &sz, &blk, &used) != 2 ||
	    head + used != head + (nl - buf) || blk == 0 || blk > max_block ||
	    sz > max_size)
		return MB_EFORMAT;
	*n = (uint64_t)(buf + len - (nl + 1));
	if (sz > 0 && *n != (sz + blk - 1) / blk)
		return MB_EFORMAT;
	*size = sz;
	*block = blk;
	*bits = nl + 1;
	return 0;
}
