/*
 * transport: how the coordinator reaches a worker. One interface, two
 * implementations, so the same calling code drives a rented box over SSH
 * (libssh2: exec channels + SFTP) and the local machine (fork/exec + the
 * file system):
 *
 *   - run a command given as an argv vector (never a shell string), with
 *     stdin bytes, stdout/stderr captured into capped buffers or streamed
 *     to a callback, and its exit status;
 *   - read and write files at offsets, stat, rename, unlink, truncate,
 *     mkdir -p.
 *
 * Paths: relative paths are relative to the login home directory on both
 * transports (SFTP and exec start there over SSH; the local transport runs
 * commands in $HOME and resolves relative file paths against it). A leading
 * "~/" in a file path is read the same way; "~" inside argv is NOT expanded
 * (arguments are quoted), so pass relative paths instead.
 *
 * The SSH transport reconnects by itself: a call that finds the link dropped
 * reconnects with exponential backoff; stat, read, write, truncate, mkdirs,
 * unlink and rename are retried (a read or write resumes where it stopped);
 * exec is not: it returns MB_ENETWORK and the caller decides (the worker's
 * detached steps make that safe). Reconnects insist on the host key the
 * first connection accepted.
 *
 * A transport is used by one thread at a time; separate transports (one per
 * pull stream) may run in parallel. The library never prints: each call
 * returns 0 or a negative mb_err code, and the transport keeps a message
 * (mb_transport_errmsg) saying what failed.
 */
#ifndef MB_TRANSPORT_H
#define MB_TRANSPORT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mb_buf;

/* ---- targets -------------------------------------------------------- */

enum mb_transport_kind {
	MB_TRANSPORT_LOCAL = 1,
	MB_TRANSPORT_SSH = 2,
};

/* A parsed TARGET: "local", "[user@]host[:port]" (IPv6 as "[::1]:port"),
 * or an ssh config alias (a host token that ~/.ssh/config may rename). */
struct mb_target {
	enum mb_transport_kind kind;
	char user[64];	/* "" when the target names none */
	char host[256];	/* host or alias as written; "" for local */
	int port;	/* 0 when the target names none */
};

/* Parses s into *t. MB_EINVAL (with a message in err, errcap bytes) for an
 * empty or malformed target, a bad port or a host with unsafe characters
 * (whitespace, control characters, a leading '-'). err may be NULL. */
int mb_target_parse(const char *s, struct mb_target *t, char *err,
		    size_t errcap);

/* ---- quoting -------------------------------------------------------- */

/* Appends arg to out quoted once for a POSIX shell: wrapped in single
 * quotes, each ' written as '\''. The one function that builds remote
 * command lines. MB_ETOOBIG past out's cap, MB_ENOMEM. */
int mb_shell_quote(struct mb_buf *out, const char *arg);

/* Appends argv (NULL-terminated, at least one element) quoted and joined
 * by spaces. MB_EINVAL for an empty argv. */
int mb_shell_join(struct mb_buf *out, const char *const *argv);

/* ---- opening -------------------------------------------------------- */

/* Options for mb_transport_open. Zero means the default everywhere. */
struct mb_transport_opts {
	const char *target;	/* required: see struct mb_target */

	/* ssh only */
	const char *pinned_key;	  /* known_hosts line or "SHA256:..." the
				     worker was added with; NULL: none */
	const char *accept_fingerprint; /* "SHA256:..." to trust an unknown
					   key (what `worker add` shows) */
	const char *known_hosts;  /* default ~/.ssh/known_hosts; "" = none */
	const char *ssh_config;	  /* default ~/.ssh/config; "" = none */
	const char *identity;	  /* key file tried before config/default */
	int no_agent;		  /* 1: skip ssh-agent even with SSH_AUTH_SOCK */
	int connect_timeout_ms;	  /* TCP connect + handshake; default 15000 */
	int io_timeout_ms;	  /* bound on one blocking libssh2 call and on a
				     silent link; default 60000 */
	int keepalive_s;	  /* keepalive interval; default 15 */
	int retries;		  /* reconnect attempts per call; default 5,
				     -1 = none */
	int backoff_ms;		  /* first backoff, doubled up to 8 s;
				     default 500 */

	/* local only */
	const char *home;	  /* base of relative paths; default $HOME */
};

struct mb_transport;

/* Opens a transport. For ssh it connects, checks the host key (pinned key
 * first, else known_hosts; an unknown key only when accept_fingerprint
 * names it; a changed key never) and authenticates (ssh-agent, then
 * identity, the config's IdentityFiles, else ~/.ssh/id_ed25519, id_ecdsa,
 * id_rsa). On success *out is the caller's (mb_transport_free); on failure
 * *out is NULL and err (errcap bytes, may be NULL) says why: MB_EHOSTKEY,
 * MB_EAUTH, MB_ENETWORK, MB_ETIMEDOUT, MB_EINVAL ... */
int mb_transport_open(const struct mb_transport_opts *o,
		      struct mb_transport **out, char *err, size_t errcap);

/* Closes the connection and frees t. NULL-safe. */
void mb_transport_free(struct mb_transport *t);

/* The kind of t. */
enum mb_transport_kind mb_transport_kind(const struct mb_transport *t);

/* A static-lifetime (until free) description: "local" or
 * "ssh user@host:port" with the host after config resolution. */
const char *mb_transport_name(const struct mb_transport *t);

/* The message of the last failed call ("" before any failure). */
const char *mb_transport_errmsg(const struct mb_transport *t);

/* ssh: the known_hosts line of the key the server offered
 * ("host ssh-ed25519 AAAA..." or "[host]:port ..."), for the caller to pin.
 * NULL for local. Valid until free. */
const char *mb_transport_host_key_line(const struct mb_transport *t);

/* ssh: that key's "SHA256:..." fingerprint; NULL for local. */
const char *mb_transport_fingerprint(const struct mb_transport *t);

/* ssh: how many times the transport reconnected since open (tests, logs). */
unsigned mb_transport_reconnects(const struct mb_transport *t);

/* ---- commands ------------------------------------------------------- */

#define MB_EXEC_STDOUT 1
#define MB_EXEC_STDERR 2

/* Receives output as it arrives (stream is MB_EXEC_STDOUT or _STDERR).
 * Return 0 to go on, anything else to stop: the command is abandoned
 * (channel closed / process killed) and exec returns MB_ECANCELLED. */
typedef int (*mb_exec_output_fn)(int stream, const void *data, size_t len,
				 void *ctx);

struct mb_exec {
	/* in */
	const char *const *argv; /* NULL-terminated; argv[0] found in PATH */
	const void *in;		 /* stdin bytes (then EOF); may be NULL */
	size_t in_len;
	struct mb_buf *out;	 /* capture stdout (caller's buffer and cap);
				    NULL: discard, unless on_output */
	struct mb_buf *err;	 /* same for stderr */
	mb_exec_output_fn on_output; /* if set, output goes here instead */
	void *ctx;
	int timeout_ms;		 /* whole command; 0 = no limit */
	const volatile sig_atomic_t *cancel; /* nonzero: stop, MB_ECANCELLED */

	/* out */
	int status;		 /* exit code, or -1 when killed by a signal */
	char signal[32];	 /* the signal's name ("KILL") or "" */
	int truncated;		 /* MB_EXEC_STDOUT|_STDERR: a buffer hit its
				    cap; the rest was read and dropped */
};

/* Runs x->argv to completion and fills status. Returns 0 whenever the
 * command ran, whatever its exit status; MB_ENOENT when argv[0] cannot be
 * run locally (remotely that is status 127), MB_ETIMEDOUT, MB_ECANCELLED,
 * MB_ENETWORK when the link dropped (not retried). */
int mb_transport_exec(struct mb_transport *t, struct mb_exec *x);

/* ---- files ---------------------------------------------------------- */

struct mb_transport_stat {
	uint64_t size;
	int is_dir;
	int64_t mtime;	/* seconds since the epoch */
	unsigned mode;	/* permission bits */
};

/* Receives the bytes of a streamed read as they arrive: n bytes of the
 * file at offset off, in order. Return 0 to go on; anything else stops the
 * read, which returns that value. */
typedef int (*mb_read_sink_fn)(const void *data, size_t n, uint64_t off,
			       void *ctx);

/* Streams up to len bytes of path from off to sink, in pieces of a few
 * MiB, stopping early only at end of file (*got, may be NULL, says how
 * many were delivered). SSH reads keep about 8 MiB in flight on one SFTP
 * handle and ask for nothing past off + len; after a reconnect the read
 * resumes at the first byte not yet delivered, so sink sees every byte
 * exactly once. MB_ENOENT when path is missing. */
int mb_transport_read_stream(struct mb_transport *t, const char *path,
			     uint64_t off, uint64_t len, mb_read_sink_fn sink,
			     void *ctx, uint64_t *got);

/* Reads up to len bytes of path from off into buf (a streamed read into
 * memory); *got < len only at end of file. MB_ENOENT when path is
 * missing. */
int mb_transport_read(struct mb_transport *t, const char *path, uint64_t off,
		      void *buf, size_t len, size_t *got);

/* Writes len bytes to path at off, creating the file (mode 0644) when
 * missing; never truncates. */
int mb_transport_write(struct mb_transport *t, const char *path,
		       uint64_t off, const void *buf, size_t len);

/* Sets path's size to size (creating it when missing). */
int mb_transport_truncate(struct mb_transport *t, const char *path,
			  uint64_t size);

/* Stats path (following links). MB_ENOENT when missing. */
int mb_transport_stat(struct mb_transport *t, const char *path,
		      struct mb_transport_stat *st);

/* Renames from to to, replacing to when it exists (atomically: over SSH a
 * refused SFTP rename falls back to `mv -f`). */
int mb_transport_rename(struct mb_transport *t, const char *from,
			const char *to);

/* Removes the file path. MB_ENOENT when missing. */
int mb_transport_unlink(struct mb_transport *t, const char *path);

/* Creates dir and missing parents (mode 0755); existing is fine. */
int mb_transport_mkdirs(struct mb_transport *t, const char *dir);

/* ---- for the implementations (transport_ssh.c, transport_local.c) ---- */

struct mb_transport_ops {
	void (*free)(struct mb_transport *t);
	int (*exec)(struct mb_transport *t, struct mb_exec *x);
	int (*read_stream)(struct mb_transport *t, const char *path,
			   uint64_t off, uint64_t len, mb_read_sink_fn sink,
			   void *ctx, uint64_t *got);
	int (*write)(struct mb_transport *t, const char *path, uint64_t off,
		     const void *buf, size_t len);
	int (*truncate)(struct mb_transport *t, const char *path,
			uint64_t size);
	int (*stat)(struct mb_transport *t, const char *path,
		    struct mb_transport_stat *st);
	int (*rename)(struct mb_transport *t, const char *from,
		      const char *to);
	int (*unlink)(struct mb_transport *t, const char *path);
	int (*mkdirs)(struct mb_transport *t, const char *dir);
};

/* The part every implementation starts with. */
struct mb_transport {
	const struct mb_transport_ops *ops;
	enum mb_transport_kind kind;
	char name[400];
	char errmsg[1024];
	char fingerprint[64];	  /* ssh: "SHA256:..." of the accepted key */
	char host_key_line[2048]; /* ssh: its known_hosts line */
	unsigned reconnects;
};

/* Sets t->errmsg (printf); returns rc, so `return mb_transport_fail(t, rc,
 * "cannot open '%s'", p)` reads well. */
int mb_transport_fail(struct mb_transport *t, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Hands n bytes of stream output to x: its callback (MB_ECANCELLED when
 * that says stop), else its buffer up to the cap (the rest dropped and
 * x->truncated marked), else nowhere. */
int mb_exec_deliver(struct mb_exec *x, int stream, const void *data,
		    size_t n);

/* The constructors mb_transport_open dispatches to. */
int mb_transport_local_open(const struct mb_transport_opts *o,
			    struct mb_transport **out, char *err,
			    size_t errcap);
int mb_transport_ssh_open(const struct mb_transport_opts *o,
			  const struct mb_target *tg,
			  struct mb_transport **out, char *err, size_t errcap);

#endif
