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
 * quantize, manifest, repair), never the agent's own verbs. */
int mb_proto_step_verb_ok(const char *verb);

/* Returns 1 when s is a valid environment variable name for a secret:
 * [A-Z_][A-Z0-9_]*, at most 64 bytes. */
int mb_proto_env_name_ok(const char *s);

#endif
