/*
 * fault: fault injection, so tests run the error paths instead of only
 * reading them (after curl's failing allocator and sqlite's faultsim).
 * Allocation and file I/O in libmibera ask mb_fault_hit() before doing the
 * real thing; a test arms a site to fail after some number of calls.
 * Disarmed (the default, and always in production) the check is one
 * relaxed atomic load.
 */
#ifndef MB_FAULT_H
#define MB_FAULT_H

enum mb_fault_site {
	MB_FAULT_ALLOC,	 /* mb_malloc, mb_calloc, mb_realloc */
	MB_FAULT_WRITE,	 /* mb_write_all, mb_pwrite_all */
	MB_FAULT_READ,	 /* mb_read_full, mb_pread_full */
	MB_FAULT_FSYNC,	 /* fsync of files and directories */
	MB_FAULT_RENAME, /* the rename that publishes a file */
	MB_FAULT_NSITES
};

/* Arms site: the next `after` calls succeed, then calls fail with errno
 * value err, `count` times (count < 0: every call from then on).
 * err 0 disarms the site. */
void mb_fault_set(enum mb_fault_site site, long after, long count, int err);

/* Disarms every site. */
void mb_fault_clear(void);

/* Returns the errno value the current call at site must fail with, or 0. */
int mb_fault_hit(enum mb_fault_site site);

#endif
