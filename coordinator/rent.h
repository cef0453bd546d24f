/*
 * rent: giving rented boxes back. One place destroys a rented worker's
 * instance and removes the worker, for `worker destroy`, for the
 * coordinator when the worker is idle or past its hours, and finds the
 * instances a provider still bills for that no worker knows.
 */
#ifndef MB_RENT_H
#define MB_RENT_H

#include <stddef.h>

struct mb_store;
struct mb_worker_row;

/* Hours a rented box lives when --max-hours is not given, and the age past
 * which an instance with mibera's label that no worker knows is destroyed. */
#define MB_RENT_DEFAULT_MAX_HOURS 12.0

/* Destroys w's instance at its provider (one already gone is fine) and
 * removes the worker. err says why on failure; the worker stays then, so
 * it can be tried again. */
int mb_rent_give_back(struct mb_store *s, const struct mb_worker_row *w,
		      char *err, size_t errcap);

/* 1 when w was rented for one job (submit --rent), that job has ended
 * (succeeded, failed or cancelled) and no other unfinished job is on w:
 * its instance can go now. */
int mb_rent_job_over(struct mb_store *s, const struct mb_worker_row *w);

/* Lists the instances of every provider whose key is at hand; those with
 * mibera's label that no worker row names are logged, and destroyed when
 * older than MB_RENT_DEFAULT_MAX_HOURS. *orphans gets how many were found,
 * *destroyed how many went. A provider without a key is skipped. */
int mb_rent_reconcile(struct mb_store *s, int *orphans, int *destroyed);

#endif
