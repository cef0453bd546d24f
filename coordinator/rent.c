/* rent: destroying rented workers' instances, and finding forgotten ones. */
#include "coordinator/rent.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "coordinator/provider/provider.h"
#include "coordinator/store.h"

int mb_rent_give_back(struct mb_store *s, const struct mb_worker_row *w,
		      char *err, size_t errcap)
{
	struct mb_provider *p = NULL;
	char msg[1024];
	int rc;

	if (w->provider[0] == '\0' || w->instance_id[0] == '\0') {
		snprintf(err, errcap, "'%s' was not rented (it is removed with "
			 "worker remove)", w->name);
		return MB_EINVAL;
	}
	rc = mb_provider_open(w->provider, &p, msg, sizeof(msg));
	if (rc != 0) {
		snprintf(err, errcap, "cannot destroy %s instance %s of '%s': %s",
			 w->provider, w->instance_id, w->name, msg);
		return rc;
	}
	rc = mb_provider_destroy(p, w->instance_id);
	if (rc == MB_ENOENT)
		rc = 0;
	if (rc != 0) {
		snprintf(err, errcap, "cannot destroy %s instance %s of '%s': %s",
			 w->provider, w->instance_id, w->name,
			 mb_provider_errmsg(p));
		mb_provider_free(p);
		return rc;
	}
	mb_provider_free(p);
	/* a box rented for one job was that job's alone, boot and wait
	 * included: its cost is the instance's whole life */
	if (w->rent_job_id > 0 && w->rented_at > 0)
		mb_store_job_held_at_least(s, w->rent_job_id,
					   (double)(time(NULL) - w->rented_at));
	/* a box past its --max-hours goes with jobs still on it: the
	 * worker stays for them (they fail on it), the billing stops */
	rc = mb_store_worker_remove(s, w->name);
	if (rc == MB_EBUSY)
		mb_log(MB_LOG_WARN, "worker %s keeps its unfinished jobs; its %s "
		       "instance %s is destroyed", w->name, w->provider,
		       w->instance_id);
	if (rc != 0 && rc != MB_ENOENT && rc != MB_EBUSY) {
		snprintf(err, errcap, "destroyed %s instance %s, but cannot remove "
			 "worker '%s': %s", w->provider, w->instance_id, w->name,
			 mb_strerror(rc));
		return rc;
	}
	return 0;
}

int mb_rent_job_over(struct mb_store *s, const struct mb_worker_row *w)
{
	struct mb_job_row j;
	struct mb_worker_idle idle;
	int over;

	if (w->rent_job_id <= 0 || w->provider[0] == '\0')
		return 0;
	if (mb_store_job_get(s, w->rent_job_id, &j) != 0)
		return 0;
	over = strcmp(j.state, "succeeded") == 0 ||
	       strcmp(j.state, "failed") == 0 ||
	       strcmp(j.state, "cancelled") == 0;
	/* another job someone queued on it keeps it, and so do artifacts
	 * not pulled yet (a failed job's are not: it made none to keep) */
	if (!over || mb_store_worker_idle(s, w->id, &idle) != 0 ||
	    idle.active > 0)
		return 0;
	return 1;
}

struct known {
	struct mb_store *s;
	struct mb_provider *p;
	const char *provider;
	int orphans, destroyed;
};

static int has_instance(const struct mb_worker_row *w, void *ctx)
{
	const struct mb_instance *in = ctx;

	return strcmp(w->instance_id, in->id) == 0 && w->provider[0] != '\0';
}

static int check_instance(const struct mb_instance *in, void *ctx)
{
	struct known *k = ctx;
	double age_h;

	if (strncmp(in->label, MB_RENT_LABEL_PREFIX,
		    strlen(MB_RENT_LABEL_PREFIX)) != 0)
		return 0; /* not ours: the account may rent other boxes */
	if (mb_store_worker_list(k->s, has_instance, (void *)in) != 0)
		return 0; /* a worker knows it (or the list failed: leave it) */
	k->orphans++;
	age_h = in->start_date > 0 ? ((double)time(NULL) - in->start_date) / 3600
				   : 0;
	if (in->start_date > 0 && age_h > MB_RENT_DEFAULT_MAX_HOURS) {
		if (mb_provider_destroy(k->p, in->id) == 0) {
			k->destroyed++;
			mb_log(MB_LOG_WARN, "%s instance %s (label %s, %.1f h old, "
			       "$%.3f/h) belonged to no worker: destroyed it",
			       k->provider, in->id, in->label, age_h, in->dph);
		} else {
			mb_log(MB_LOG_ERROR, "%s instance %s (label %s) belongs to "
			       "no worker and cannot be destroyed: %s; destroy it "
			       "by hand", k->provider, in->id, in->label,
			       mb_provider_errmsg(k->p));
		}
		return 0;
	}
	mb_log(MB_LOG_WARN, "%s instance %s (label %s, %.1f h old, $%.3f/h) "
	       "belongs to no worker: it is destroyed once %.0f hours old, or "
	       "now by hand", k->provider, in->id, in->label, age_h, in->dph,
	       MB_RENT_DEFAULT_MAX_HOURS);
	return 0;
}

int mb_rent_reconcile(struct mb_store *s, int *orphans, int *destroyed)
{
	static const char *const names[] = { "vast", NULL };
	char msg[1024];
	size_t i;
	int rc = 0;

	*orphans = *destroyed = 0;
	for (i = 0; names[i] != NULL; i++) {
		struct known k = { s, NULL, names[i], 0, 0 };
		int r;

		if (mb_provider_open(names[i], &k.p, msg, sizeof(msg)) != 0)
			continue; /* no key: nothing rented there by us */
		r = mb_provider_list(k.p, check_instance, &k);
		if (r != 0) {
			mb_log(MB_LOG_WARN, "cannot list the %s instances: %s",
			       names[i], mb_provider_errmsg(k.p));
			rc = r;
		}
		mb_provider_free(k.p);
		*orphans += k.orphans;
		*destroyed += k.destroyed;
	}
	return rc;
}
