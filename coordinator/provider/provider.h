/*
 * provider: renting a box from a GPU cloud and giving it back. A provider
 * is a kind of worker: `mibera-job worker rent` searches its offers, rents
 * one, and the worker row keeps the provider's name and instance id so the
 * coordinator can destroy the instance when the worker is idle, too old,
 * or removed.
 *
 * Each provider is a table of operations (provider.c lists them; vast.c is
 * the first). The API key is read from the environment or the provider's
 * own CLI's key file, kept in memory only and registered with the log
 * redactor: it never reaches argv, the database, events or logs.
 *
 * The module also makes what a rented box needs to be reached without
 * trust on first use: an ed25519 host key generated here, and the onstart
 * script that installs it (and the user's public key) on the box.
 */
#ifndef MB_PROVIDER_H
#define MB_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

struct mb_provider;

/* An offer, as a search returns it: cheapest first. */
struct mb_offer {
	char id[32];
	char gpu[64];		/* "RTX 4090" */
	int num_gpus;
	double gpu_ram_gb;	/* per GPU */
	double ram_gb;		/* the box's memory, 0 unknown */
	double disk_gb;		/* the most disk it gives */
	double dph;		/* dollars per hour, everything included */
	double reliability;	/* 0..1 */
	char where[64];		/* geolocation, "" unknown */
};

struct mb_offer_query {
	const char *gpu;	/* exact GPU name, NULL: any */
	double disk_gb;		/* at least this much disk */
	double max_price;	/* dollars per hour, 0: any */
	double min_gpu_ram_gb;	/* 0: any */
	double min_ram_gb;	/* the box's memory; 0: any */
};

/* What a rented box looks like now. */
struct mb_instance {
	char id[32];
	char status[32];	/* "running", "loading", "exited", ... */
	char ssh_host[256];	/* "" until it has one */
	int ssh_port;
	double dph;
	char label[128];
	double start_date;	/* seconds since the epoch, 0 unknown */
};

/* What to run on the box: the container image, its disk, the script it
 * runs at start and a label to find it by. */
struct mb_create_req {
	const char *image;
	double disk_gb;
	const char *onstart;
	const char *label;
};

/* Returns 1 when name is a provider this build knows ("vast"). */
int mb_provider_known(const char *name);

/* Opens the provider called name with its API key. MB_EINVAL for an
 * unknown provider, MB_EAUTH when no key is found (err says where it was
 * looked for), MB_ENOMEM. */
int mb_provider_open(const char *name, struct mb_provider **out, char *err,
		     size_t errcap);

/* Frees p and wipes its key; NULL-safe. */
void mb_provider_free(struct mb_provider *p);

/* What the last failed call said, for a person (never the key). */
const char *mb_provider_errmsg(const struct mb_provider *p);

/* The provider's name ("vast"). */
const char *mb_provider_name(const struct mb_provider *p);

/* Fills offers (up to cap, cheapest first) and *n. MB_EAUTH for a key the
 * provider refuses, MB_ENETWORK, MB_EPROTO for a malformed answer. */
int mb_provider_search(struct mb_provider *p, const struct mb_offer_query *q,
		       struct mb_offer *offers, size_t cap, size_t *n);

/* Rents offer_id; the new instance's id goes to id. MB_EBUSY when the
 * offer is no longer there (rented by someone else meanwhile): the caller
 * tries the next one. Nothing was rented when this fails. */
int mb_provider_create(struct mb_provider *p, const char *offer_id,
		       const struct mb_create_req *req, char *id, size_t cap);

/* Reads instance id. MB_ENOENT when there is no such instance. */
int mb_provider_show(struct mb_provider *p, const char *id,
		     struct mb_instance *out);

/* Destroys instance id (stops its billing for good). MB_ENOENT when it is
 * already gone. */
int mb_provider_destroy(struct mb_provider *p, const char *id);

/* Calls fn for each instance of the account; stops at fn's first nonzero
 * return and returns it. */
int mb_provider_list(struct mb_provider *p,
		     int (*fn)(const struct mb_instance *in, void *ctx),
		     void *ctx);

/* The label rented instances carry: "mibera:" + the worker's name. */
#define MB_RENT_LABEL_PREFIX "mibera:"

/* A host key made for a box about to be rented. */
struct mb_hostkey {
	char *private_key;	/* OpenSSH private key file text */
	char public_line[256];	/* "ssh-ed25519 AAAA... mibera-host" */
	char fingerprint[64];	/* "SHA256:..." */
};

/* Generates an ed25519 key pair with ssh-keygen (in a private temporary
 * directory, removed after). err says why on failure. */
int mb_hostkey_generate(struct mb_hostkey *k, char *err, size_t errcap);

/* Wipes and frees the private key; NULL-safe. */
void mb_hostkey_release(struct mb_hostkey *k);

/* Writes to *out (caller frees) the onstart script for a box: it installs
 * k as the box's ed25519 host key (and reloads sshd so it serves it),
 * appends user_pub (a public key line) to root's authorized_keys, and arms
 * a deadline: deadline_min minutes after start the box stops itself, in
 * case no coordinator is left to destroy it. The test harness redirects
 * the paths with MIBERA_SSH_ETC, MIBERA_AUTHORIZED_KEYS and
 * MIBERA_DEADLINE_CMD. MB_EINVAL for a user_pub with quotes or newlines. */
int mb_onstart_script(const struct mb_hostkey *k, const char *user_pub,
		      long deadline_min, char **out);

/* Provider operations, one table each (provider.c dispatches). */
struct mb_provider_ops {
	const char *name;
	int (*open)(struct mb_provider *p, char *err, size_t errcap);
	void (*release)(struct mb_provider *p);
	int (*search)(struct mb_provider *p, const struct mb_offer_query *q,
		      struct mb_offer *offers, size_t cap, size_t *n);
	int (*create)(struct mb_provider *p, const char *offer_id,
		      const struct mb_create_req *req, char *id, size_t cap);
	int (*show)(struct mb_provider *p, const char *id,
		    struct mb_instance *out);
	int (*destroy)(struct mb_provider *p, const char *id);
	int (*list)(struct mb_provider *p,
		    int (*fn)(const struct mb_instance *in, void *ctx),
		    void *ctx);
};

/* The state every provider shares; ops see the whole struct. */
struct mb_provider {
	const struct mb_provider_ops *ops;
	char base[512];		/* API base URL, no trailing slash */
	char *key;		/* API key (wiped on free) */
	char key_from[600];	/* where it came from, for messages */
	void *curl;		/* CURL easy handle */
	int max_attempts;	/* for 429 and 5xx */
	long retry_base_ms;
	char err[1024];
};

extern const struct mb_provider_ops mb_vast_ops;

#endif
