/*
 * sshconfig: the parts of OpenSSH's client configuration the ssh transport
 * honours, parsed without libssh2 so they can be unit-tested: ~/.ssh/config
 * Host blocks (HostName, Port, User, IdentityFile; patterns with * and ?,
 * negation with !, first value wins per option as ssh does), host key
 * fingerprints as OpenSSH prints them, known_hosts lines, and pins (a
 * known_hosts line or a "SHA256:..." fingerprint).
 *
 * Not supported: Match blocks (their options are skipped), Include (the
 * line is skipped), and every other keyword (ignored, as ssh -G would
 * show them to an ssh that does not use them).
 */
#ifndef MB_SSHCONFIG_H
#define MB_SSHCONFIG_H

#include <stddef.h>

#define MB_SSH_MAX_IDENTITIES 8

/* What a config says about one host. Unset fields are "" / 0. */
struct mb_ssh_host {
	char hostname[256];
	char user[64];
	int port;
	int n_identity;
	char identity[MB_SSH_MAX_IDENTITIES][512];
};

/* "SHA256:" + 43 base64 characters + NUL */
#define MB_SSH_FP_LEN 52

/* Applies the config text (len bytes, need not be NUL-terminated) to the
 * host alias: fills *h with the first value of each option from the blocks
 * whose Host patterns match alias. home expands "~/" and %d; user is the
 * local user for %u (%h is the host, %r the remote user, %% a '%').
 * MB_EFORMAT (message in err) for a malformed line: a bad Port, an
 * unterminated quote, a value too long. */
int mb_sshconfig_apply(const char *text, size_t len, const char *alias,
		       const char *home, const char *user,
		       struct mb_ssh_host *h, char *err, size_t errcap);

/* The same for the file at path; a missing file is no match (0, *h
 * empty). Files over 1 MiB are MB_ETOOBIG. */
int mb_sshconfig_lookup(const char *path, const char *alias,
			const char *home, const char *user,
			struct mb_ssh_host *h, char *err, size_t errcap);

/* Returns 1 when s matches the ssh pattern pat (* any run, ? one char),
 * case-insensitively as ssh compares host names. */
int mb_ssh_pattern_match(const char *pat, const char *s);

/* Writes the OpenSSH fingerprint of a public key blob to fp:
 * "SHA256:" + unpadded base64 of its SHA-256. */
int mb_ssh_fingerprint(const void *blob, size_t len, char fp[MB_SSH_FP_LEN]);

/* Decodes a base64 key blob (as in a known_hosts line or a .pub file) and
 * writes its fingerprint. MB_EFORMAT for bad base64 or a blob without a
 * key type. */
int mb_ssh_b64_fingerprint(const char *b64, char fp[MB_SSH_FP_LEN]);

/* Writes the known_hosts line (no newline) for blob as seen at host:port
 * ("host TYPE BASE64" for port 22, else "[host]:port TYPE BASE64"; the type
 * is read from the blob) to out (cap bytes). MB_EFORMAT for a blob that
 * does not start with a type string, MB_ETOOBIG when out is too small. */
int mb_ssh_known_hosts_line(const char *host, int port, const void *blob,
			    size_t len, char *out, size_t cap);

/* Reduces a pin to a fingerprint: "SHA256:..." is taken as written (a
 * trailing '=' padding dropped); a known_hosts line ("hosts TYPE BASE64
 * [comment]") or a public key ("TYPE BASE64 [comment]") is decoded and
 * fingerprinted. MB_EFORMAT for anything else (markers like
 * @cert-authority included). */
int mb_ssh_pin_fingerprint(const char *pin, char fp[MB_SSH_FP_LEN]);

#endif
