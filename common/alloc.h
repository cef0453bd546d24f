/*
 * alloc: the allocation functions libmibera uses, so that tests can make
 * any allocation fail (common/fault.h). Same contracts as malloc, calloc
 * and realloc; a failure sets errno to ENOMEM.
 */
#ifndef MB_ALLOC_H
#define MB_ALLOC_H

#include <stddef.h>

void *mb_malloc(size_t n);
void *mb_calloc(size_t count, size_t size);
void *mb_realloc(void *p, size_t n);

/* Returns a heap copy of s (caller frees), or NULL. */
char *mb_strdup(const char *s);

#endif
