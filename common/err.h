/*
 * err: the one error enum of libmibera. Every function that can fail returns
 * 0 on success or a negative mb_err code. Codes are append-only: a code's
 * number never changes and is never reused, because codes travel in the
 * protocol and are stored in the job database.
 */
#ifndef MB_ERR_H
#define MB_ERR_H

#include <stddef.h>

/* X(name, number, message): message is lowercase, no final period. */
#define MB_ERR_MAP(X)                                                        \
	X(MB_OK, 0, "success")                                               \
	X(MB_EINTERNAL, -1, "internal error")                                \
	X(MB_ENOMEM, -2, "out of memory")                                    \
	X(MB_EINVAL, -3, "invalid argument")                                 \
	X(MB_EIO, -4, "input/output error")                                  \
	X(MB_ENOENT, -5, "no such file or directory")                        \
	X(MB_ENOSPC, -6, "no space left on device")                          \
	X(MB_ETOOBIG, -7, "size limit exceeded")                             \
	X(MB_EFORMAT, -8, "malformed input")                                 \
	X(MB_EJSON, -9, "malformed json")                                    \
	X(MB_ECHECKSUM, -10, "checksum mismatch")                            \
	X(MB_EUNSUPPORTED, -11, "unsupported")                               \
	X(MB_ETIMEDOUT, -12, "timed out")                                    \
	X(MB_ENETWORK, -13, "network error")                                 \
	X(MB_EAUTH, -14, "authentication failed")                            \
	X(MB_EHOSTKEY, -15, "host key verification failed")                  \
	X(MB_EPROTO, -16, "protocol error")                                  \
	X(MB_EEXIST, -17, "already exists")                                  \
	X(MB_EPERM, -18, "permission denied")                                \
	X(MB_ECANCELLED, -19, "cancelled")                                   \
	X(MB_EBUSY, -20, "resource busy")                                    \
	X(MB_ECRYPTO, -21, "cryptography library error")

typedef enum {
#define MB_ERR_ENUM(name, num, msg) name = num,
	MB_ERR_MAP(MB_ERR_ENUM)
#undef MB_ERR_ENUM
} mb_err;

/* Returns a static message for code; unknown codes get "unknown error". */
const char *mb_strerror(int code);

/* Returns the code's name ("MB_ENOSPC"), or "MB_UNKNOWN". */
const char *mb_errname(int code);

/* Maps an errno value to the closest mb_err code (ENOSPC -> MB_ENOSPC ...). */
int mb_err_from_errno(int e);

/* 1 when a later attempt may get past the failure with nobody acting:
 * the network, a timeout, memory, an I/O error or an internal hiccup.
 * The one judgement of it: worker verbs' exit codes, fetch's retries and
 * the coordinator's job retries all ask here. */
int mb_err_transient(int code);

/* The exit code of a worker verb that failed with code (proto/PROTOCOL.md,
 * "Exit codes"): 0 for success, 1 when transient (the coordinator starts
 * the step again after a pause), 3 when a person must act. */
int mb_err_exit(int code);

/* Writes a printf-formatted message into err (cap bytes, truncated,
 * always terminated); does nothing when err is NULL or cap is 0. The one
 * way a library function leaves a message for its caller. */
void mb_seterr(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
