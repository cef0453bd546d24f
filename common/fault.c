/* fault: armed failure points for tests. */
#include "common/fault.h"

#include <stdatomic.h>

struct site {
	atomic_int err;
	atomic_long after;
	atomic_long count;
};

static struct site sites[MB_FAULT_NSITES];

void mb_fault_set(enum mb_fault_site site, long after, long count, int err)
{
	atomic_store(&sites[site].err, 0);
	atomic_store(&sites[site].after, after);
	atomic_store(&sites[site].count, count);
	atomic_store(&sites[site].err, err);
}

void mb_fault_clear(void)
{
	int i;

	for (i = 0; i < MB_FAULT_NSITES; i++)
		atomic_store(&sites[i].err, 0);
}

int mb_fault_hit(enum mb_fault_site site)
{
	struct site *s = &sites[site];
	int err = atomic_load_explicit(&s->err, memory_order_relaxed);

	if (err == 0)
		return 0;
	if (atomic_fetch_sub(&s->after, 1) > 0)
		return 0;
	if (atomic_load(&s->count) < 0)
		return err;
	if (atomic_fetch_sub(&s->count, 1) > 0)
		return err;
	atomic_store(&s->err, 0);
	return 0;
}
