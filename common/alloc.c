/* alloc: fault-injectable allocation. */
#include "common/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"

static int failing(void)
{
	int e = mb_fault_hit(MB_FAULT_ALLOC);

	if (e != 0)
		errno = ENOMEM;
	return e != 0;
}

void *mb_malloc(size_t n)
{
	return failing() ? NULL : malloc(n);
}

void *mb_calloc(size_t count, size_t size)
{
	return failing() ? NULL : calloc(count, size);
}

void *mb_realloc(void *p, size_t n)
{
	return failing() ? NULL : realloc(p, n);
}

char *mb_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mb_malloc(n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}
