/*
 * protocol: the names and checks both sides of the coordinator-worker
 * protocol share (proto/PROTOCOL.md is the spec). Everything that arrives
 * from the other side is checked with these before it is used as a path,
 * an environment variable or a command.
 */
#ifndef MB_PROTOCOL_H
#define MB_PROTOCOL_H

/* The protocol version; a worker and a coordinator of different versions
 * do not talk (the coordinator re-bootstraps the worker). */
#define MB_PROTO_VERSION 1

/* Returns 1 when s is a safe job or step name: 1 to 64 of [A-Za-z0-9_-],
 * not starting with '-'. */
int mb_proto_name_ok(const char *s);

/* Returns 1 when verb is one a started step may run (fetch, convert,
 * quantize, manifest), never the agent's own verbs. */
int mb_proto_step_verb_ok(const char *verb);

/* Returns 1 when s is a valid environment variable name for a secret:
 * [A-Z_][A-Z0-9_]*, at most 64 bytes. */
int mb_proto_env_name_ok(const char *s);

#include <stddef.h>
#include <stdint.h>

/* STEP.result.json, as the supervisor writes it when the verb exits:
 * {"v":1,"ok":true,"exit":0,"cancelled":false,"seconds":1.5,
 *  "peak_rss":123456,"error":""} */
struct mb_step_result {
	int ok;			/* the verb exited 0 */
	int exit;		/* its exit code; -1 when it did not exit */
	int cancelled;
	double seconds;		/* its wall time */
	uint64_t peak_rss;	/* its peak resident set, bytes (0: unknown) */
	char error[1024];	/* the last line it wrote to stderr */
};

/* Reads a result from the worker, checked member by member (names are
 * case-sensitive, numbers finite and in range): MB_EJSON / MB_EPROTO with
 * err saying what is wrong. */
int mb_step_result_parse(const char *text, size_t len,
			 struct mb_step_result *r, char *err, size_t errcap);

/* The coordinator's reading of a failed step's exit code (the worker's
 * side is mb_err_exit): 1 is transient (MB_ENETWORK: start it again
 * after a pause), any other needs a person (MB_EUNSUPPORTED). */
int mb_step_exit_err(int exit);

#endif
