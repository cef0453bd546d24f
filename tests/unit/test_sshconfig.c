/*
 * Tests coordinator/sshconfig.c (config lookup, patterns, fingerprints,
 * known_hosts lines, pins) and the two pure parts of coordinator/transport.c
 * that must be exact: TARGET parsing and the shell quoting of arguments.
 * Key vectors were made with ssh-keygen and fingerprinted by ssh-keygen -l.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/err.h"
#include "coordinator/sshconfig.h"
#include "coordinator/transport.h"

#define ED_PUB                                                              \
	"ssh-ed25519 "                                                      \
	"AAAAC3NzaC1lZDI1NTE5AAAAIDqjhnhAQEfsdQlRIcIJ2YQn1p2oRUBvqYyyQh/SqB00"
#define ED_FP "SHA256:VhKlc6HpebJ7lMlio4BGzFcQKMMR2BTDeZigSvmOx+o"
#define EC_PUB                                                              \
	"ecdsa-sha2-nistp256 "                                              \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIypa6KjcSzu6i" \
	"Jn1djGbacCXsmula4/WC3+VVzBadnKWXAz1W2XpXFkyG1qKkTl4rLrbCaSgfQn0yqQ" \
	"MC87kU0="
#define EC_FP "SHA256:rnEXB5aYR3xLmm2WAxSgyyZjCv1elVhPhBIWBT2yLwg"

static int apply(const char *text, const char *alias, struct mb_ssh_host *h)
{
	char err[256];

	return mb_sshconfig_apply(text, strlen(text), alias, "/home/me", "me",
				  h, err, sizeof(err));
}

static void test_patterns(void **state)
{
	(void)state;
	assert_true(mb_ssh_pattern_match("*", "anything"));
	assert_true(mb_ssh_pattern_match("w?", "w1"));
	assert_false(mb_ssh_pattern_match("w?", "w12"));
	assert_true(mb_ssh_pattern_match("*.example.com", "a.b.example.com"));
	assert_false(mb_ssh_pattern_match("*.example.com", "example.com"));
	assert_true(mb_ssh_pattern_match("GPU-*", "gpu-box"));
	assert_true(mb_ssh_pattern_match("a*b*c", "aXXbYYbc"));
	assert_false(mb_ssh_pattern_match("a*b*c", "aXXbYYb"));
	assert_true(mb_ssh_pattern_match("", ""));
	assert_false(mb_ssh_pattern_match("", "x"));
}

static void test_config_alias(void **state)
{
	const char *cfg =
		"# a comment\n"
		"Host w1 w1-alt\n"
		"    HostName 127.0.0.1\n"
		"    Port 2222\n"
		"    User bob\n"
		"    IdentityFile ~/.ssh/w1_key\n"
		"\n"
		"Host w2\n"
		"\tHostName=10.0.0.2\n"
		"\tIdentityFile \"/keys/with space\"\n"
		"Host *\n"
		"    User fallback\n"
		"    Port 22\n"
		"    IdentityFile %d/.ssh/id_%h\n";
	struct mb_ssh_host h;

	(void)state;
	assert_int_equal(apply(cfg, "w1", &h), 0);
	assert_string_equal(h.hostname, "127.0.0.1");
	assert_int_equal(h.port, 2222);
	assert_string_equal(h.user, "bob");
	/* IdentityFile accumulates, in order, like ssh */
	assert_int_equal(h.n_identity, 2);
	assert_string_equal(h.identity[0], "/home/me/.ssh/w1_key");
	assert_string_equal(h.identity[1], "/home/me/.ssh/id_127.0.0.1");

	assert_int_equal(apply(cfg, "W1-ALT", &h), 0);
	assert_string_equal(h.hostname, "127.0.0.1");

	assert_int_equal(apply(cfg, "w2", &h), 0);
	assert_string_equal(h.hostname, "10.0.0.2");
	assert_string_equal(h.user, "fallback"); /* first value wins */
	assert_int_equal(h.port, 22);
	assert_string_equal(h.identity[0], "/keys/with space");

	assert_int_equal(apply(cfg, "other", &h), 0);
	assert_string_equal(h.hostname, "");
	assert_string_equal(h.user, "fallback");
}

static void test_config_negation_match_and_globals(void **state)
{
	const char *cfg = "Port 2200\n"
			  "Host * !secret\n"
			  "  User anyone\n"
			  "Match host secret\n"
			  "  User matched\n"
			  "Host sec*\n"
			  "  HostName %h.internal\n";
	struct mb_ssh_host h;

	(void)state;
	assert_int_equal(apply(cfg, "secret", &h), 0);
	assert_int_equal(h.port, 2200);
	assert_string_equal(h.user, ""); /* negated; Match is skipped */
	assert_string_equal(h.hostname, "secret.internal");
	assert_int_equal(apply(cfg, "open", &h), 0);
	assert_string_equal(h.user, "anyone");
}

static void test_config_errors(void **state)
{
	struct mb_ssh_host h;
	char err[256] = "";

	(void)state;
	assert_int_equal(apply("Host x\n Port 0\n", "x", &h), MB_EFORMAT);
	assert_int_equal(apply("Host x\n Port 70000\n", "x", &h), MB_EFORMAT);
	assert_int_equal(apply("Host x\n Port 22x\n", "x", &h), MB_EFORMAT);
	assert_int_equal(apply("Host x\n User \"open\n", "x", &h), MB_EFORMAT);
	assert_int_equal(apply("Host x\n IdentityFile %q\n", "x", &h),
			 MB_EFORMAT);
	/* a bad Port in a block that does not apply is not looked at */
	assert_int_equal(apply("Host y\n Port nope\n", "x", &h), 0);
	assert_int_equal(mb_sshconfig_lookup("/nonexistent/config", "x", "/h",
					     "u", &h, err, sizeof(err)),
			 0);
	assert_string_equal(h.hostname, "");
}

static void decode(const char *b64, unsigned char *out, size_t *len)
{
	size_t l = strlen(b64), pad = 0;
	int n;

	while (l > 0 && b64[l - 1 - pad] == '=')
		pad++;
	n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)l);
	assert_true(n > 0);
	*len = (size_t)n - pad;
}

static void test_fingerprint_and_line(void **state)
{
	unsigned char blob[256];
	char fp[MB_SSH_FP_LEN], line[512];
	size_t len;

	(void)state;
	decode(strchr(ED_PUB, ' ') + 1, blob, &len);
	assert_int_equal(mb_ssh_fingerprint(blob, len, fp), 0);
	assert_string_equal(fp, ED_FP);
	assert_int_equal(mb_ssh_known_hosts_line("h.example", 22, blob, len,
						 line, sizeof(line)),
			 0);
	assert_string_equal(line, "h.example " ED_PUB);
	assert_int_equal(mb_ssh_known_hosts_line("127.0.0.1", 2222, blob, len,
						 line, sizeof(line)),
			 0);
	assert_string_equal(line, "[127.0.0.1]:2222 " ED_PUB);
	assert_int_equal(mb_ssh_known_hosts_line("h", 22, blob, len, line, 20),
			 MB_ETOOBIG);
	assert_int_equal(mb_ssh_known_hosts_line("h", 22, blob, 3, line,
						 sizeof(line)),
			 MB_EFORMAT);

	decode(strchr(EC_PUB, ' ') + 1, blob, &len);
	assert_int_equal(mb_ssh_fingerprint(blob, len, fp), 0);
	assert_string_equal(fp, EC_FP);
}

static void test_pins(void **state)
{
	char fp[MB_SSH_FP_LEN];

	(void)state;
	assert_int_equal(mb_ssh_pin_fingerprint(ED_FP, fp), 0);
	assert_string_equal(fp, ED_FP);
	assert_int_equal(mb_ssh_pin_fingerprint(ED_FP "=\n", fp), 0);
	assert_string_equal(fp, ED_FP);
	assert_int_equal(mb_ssh_pin_fingerprint("[1.2.3.4]:22 " ED_PUB, fp), 0);
	assert_string_equal(fp, ED_FP);
	assert_int_equal(mb_ssh_pin_fingerprint(ED_PUB " comment\n", fp), 0);
	assert_string_equal(fp, ED_FP);
	assert_int_equal(mb_ssh_pin_fingerprint("box,10.0.0.1 " EC_PUB, fp), 0);
	assert_string_equal(fp, EC_FP);

	assert_int_equal(mb_ssh_pin_fingerprint("SHA256:short", fp),
			 MB_EFORMAT);
	assert_int_equal(mb_ssh_pin_fingerprint("@cert-authority * " ED_PUB,
						fp),
			 MB_EFORMAT);
	assert_int_equal(mb_ssh_pin_fingerprint("host ssh-ed25519 !!!!", fp),
			 MB_EFORMAT);
	/* the type field must agree with the blob */
	assert_int_equal(
		mb_ssh_pin_fingerprint(
			"host ssh-rsa "
			"AAAAC3NzaC1lZDI1NTE5AAAAIDqjhnhAQEfsdQlRIcIJ2YQn1p2oR"
			"UBvqYyyQh/SqB00",
			fp),
		MB_EFORMAT);
	assert_int_equal(mb_ssh_pin_fingerprint("", fp), MB_EFORMAT);
	assert_int_equal(mb_ssh_pin_fingerprint("MD5:aa:bb", fp), MB_EFORMAT);
}

static void test_targets(void **state)
{
	struct mb_target t;
	char err[256];
	static const char *const bad[] = {
		"", "user@", "@host", "host:", "host:0", "host:65536",
		"host:22x", "-oProxyCommand=x", "ho st", "a;b", "h\n",
		"[::1", "[::1]x", "us er@h", "host:-1",
	};
	size_t i;

	(void)state;
	assert_int_equal(mb_target_parse("local", &t, err, sizeof(err)), 0);
	assert_int_equal(t.kind, MB_TRANSPORT_LOCAL);
	assert_int_equal(mb_target_parse("gpu1", &t, err, sizeof(err)), 0);
	assert_int_equal(t.kind, MB_TRANSPORT_SSH);
	assert_string_equal(t.host, "gpu1");
	assert_string_equal(t.user, "");
	assert_int_equal(t.port, 0);
	assert_int_equal(mb_target_parse("root@1.2.3.4:40022", &t, err,
					 sizeof(err)),
			 0);
	assert_string_equal(t.user, "root");
	assert_string_equal(t.host, "1.2.3.4");
	assert_int_equal(t.port, 40022);
	assert_int_equal(mb_target_parse("me@[::1]:2222", &t, err, sizeof(err)),
			 0);
	assert_string_equal(t.host, "::1");
	assert_int_equal(t.port, 2222);
	assert_int_equal(mb_target_parse("fe80::1", &t, err, sizeof(err)), 0);
	assert_string_equal(t.host, "fe80::1");
	assert_int_equal(t.port, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(mb_target_parse(bad[i], &t, err, sizeof(err)),
				 MB_EINVAL);
		assert_true(strstr(err, "bad target") != NULL);
	}
}

static void test_quoting(void **state)
{
	struct mb_buf b;
	const char *const argv[] = { "printf", "%s", "it's", "", "a b",
				     NULL };
	const char *const none[] = { NULL };

	(void)state;
	mb_buf_init(&b, 1024);
	assert_int_equal(mb_shell_quote(&b, "plain"), 0);
	assert_string_equal(b.data, "'plain'");
	mb_buf_reset(&b);
	assert_int_equal(mb_shell_quote(&b, "it's"), 0);
	assert_string_equal(b.data, "'it'\\''s'");
	mb_buf_reset(&b);
	assert_int_equal(mb_shell_quote(&b, "''"), 0);
	assert_string_equal(b.data, "''\\'''\\'''");
	mb_buf_reset(&b);
	assert_int_equal(mb_shell_quote(&b, "$(rm -rf ~)\n`x`;|&\\\""), 0);
	assert_string_equal(b.data, "'$(rm -rf ~)\n`x`;|&\\\"'");
	mb_buf_reset(&b);
	assert_int_equal(mb_shell_join(&b, argv), 0);
	assert_string_equal(b.data, "'printf' '%s' 'it'\\''s' '' 'a b'");
	assert_int_equal(mb_shell_join(&b, none), MB_EINVAL);
	mb_buf_release(&b);

	/* over the cap: the buffer is left as it was */
	mb_buf_init(&b, 12);
	assert_int_equal(mb_shell_quote(&b, "abc"), 0);
	assert_int_equal(mb_shell_quote(&b, "defghijk"), MB_ETOOBIG);
	assert_string_equal(b.data, "'abc'");
	assert_int_equal(mb_shell_join(&b, argv), MB_ETOOBIG);
	assert_string_equal(b.data, "'abc'");
	mb_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_config_alias),
		cmocka_unit_test(test_config_negation_match_and_globals),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_fingerprint_and_line),
		cmocka_unit_test(test_pins),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_quoting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
