/*
 * config: the coordinator's settings, from $MIBERA_HOME/config.json when
 * it exists (every key optional):
 *
 *   {"notify_url": "https://ntfy.sh/my-topic",  -- default for submit
 *    "pull_streams": 4,        -- SFTP streams per pulled file (1-16)
 *    "retry_base_s": 30,       -- first pause after a transient failure
 *    "retry_max": 5,           -- attempts before a job fails for good
 *    "idle_check_s": 30,       -- how often idle workers are looked at
 *    "chunk_mib": 64,          -- chunk size of the artifacts' manifests
 *    "quants_in_pass": "auto"} -- which quants the conversion's pass makes
 *                                 (coordinator/jobrun.c): "auto", "all",
 *                                 "q8_0"
 *
 * A file that is not valid JSON, or a value of the wrong type or range, is
 * an error naming the key: a typo must not pass silently.
 */
#ifndef MB_CONFIG_H
#define MB_CONFIG_H

#include <stddef.h>

struct mb_config {
	char notify_url[512];	/* "" when none */
	int pull_streams;
	int retry_base_s;
	int retry_max;
	int idle_check_s;
	int chunk_mib;
	char quants_in_pass[8];	/* "auto", "all" or "q8_0" */
	const char *hf_token;	/* not from the file: the coordinator's
				   HF_TOKEN, for the steps that fetch */
};

/* Fills c with the defaults, then what path (NULL: $MIBERA_HOME/
 * config.json) says; a missing file is not an error. */
int mb_config_load(const char *path, struct mb_config *c, char *err,
		   size_t errcap);

#endif
