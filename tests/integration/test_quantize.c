/* mibera-worker quantize and manifest and mibera-job smoke, as the job runs
 * them: the real
 * binary converts the tiny fixtures to F16 and quantizes them with
 * libllama; the outputs load and run in libllama with logits close to the
 * F16's, carry the right file type, appear only when complete, and are
 * not redone when already there. A model whose rows do not fit the k-quant
 * blocks (llama-tiny's n_ff 688) falls back without an error. The manifest
 * over the artifacts agrees with sha256sum and with a chunk recomputed by
 * hand. The smoke test checks memory before loading and does not repack.
 * The k-quant blocks made on AVX2 lanes give the file the scalar code
 * gives, byte for byte (Q8_0 too). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/gguf.h"
#include "common/manifest.h"
#include "coordinator/smoke.h"
#include "llm.h"
#include "model.h"
#include "th.h"

#define NTOK 16

static char root[512], art[600], worker[600];
static char phi_f16[700], llama_f16[700];
static int32_t toks[NTOK];

static int exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static void path_in(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", art, name);
}

/* Quantizes the F16 in to out (names in art/) as type; asserts success. */
static char *quantize(const char *in, const char *name, const char *type)
{
	char out[700], *log;
	int rc;

	path_in(out, sizeof(out), name);
	rc = th_sh(&log, "'%s' quantize '%s' '%s' %s --threads 2", worker, in,
		 out, type);
	if (rc != 0)
		fail_msg("quantize %s -> %s exited %d:\n%s", in, out, rc, log);
	return log;
}

static uint64_t file_type(const char *path)
{
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char err[512];
	uint64_t v;

	if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	kv = mb_gguf_kv(g, "general.file_type");
	assert_non_null(kv);
	v = kv->v.u;
	mb_gguf_free(g);
	return v;
}

static int tensor_type(const char *path, const char *name)
{
	const struct mb_gguf_tensor *t;
	struct mb_gguf *g;
	char err[512];
	int type;

	if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	t = mb_gguf_tensor(g, name);
	assert_non_null(t);
	type = t->type;
	mb_gguf_free(g);
	return type;
}

static float *logits(const char *path, int *nv)
{
	char err[2048];
	float *l;
	int i;

	if (th_llama_logits(path, toks, NTOK, &l, nv, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	for (i = 0; i < NTOK * *nv; i++)
		if (!isfinite(l[i]))
			fail_msg("%s: logit %d is not finite", path, i);
	return l;
}

static long long file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return (long long)sb.st_size;
}

static int setup(void **state)
{
	const char *phi_extra[] = { "--config", "correct", NULL };
	char src[700], *log;
	int i, rc;

	(void)state;
	snprintf(worker, sizeof(worker), "%s/mibera-worker", MB_BINARY_DIR);
	if (th_tmpdir("quantize", root, sizeof(root)) != 0)
		return -1;
	snprintf(art, sizeof(art), "%s/artifacts", root);
	if (mkdir(art, 0755) != 0)
		return -1;
	for (i = 0; i < NTOK; i++)
		toks[i] = (int32_t)((i * 7919 + 13) % 499);
	/* the converter's output is <model>-F16.gguf, as the job names it */
	snprintf(src, sizeof(src), "%s/phi", root);
	path_in(phi_f16, sizeof(phi_f16), "phi4-tiny-F16.gguf");
	if (th_mkmodel(src, "phi4-tiny", phi_extra) != 0)
		return -1;
	rc = th_sh(&log, "'%s' convert '%s' '%s'", worker, src, phi_f16);
	if (rc != 0) {
		fprintf(stderr, "convert phi4-tiny: exit %d\n%s", rc, log);
		free(log);
		return -1;
	}
	free(log);
	/* llama-tiny: n_ff 688, so ffn_down's rows (688) fit neither the
	 * 256-blocks of the k-quants nor the 32-blocks of their fallbacks */
	snprintf(src, sizeof(src), "%s/llama", root);
	snprintf(llama_f16, sizeof(llama_f16), "%s/llama-tiny-F16.gguf", root);
	if (th_mkmodel(src, "llama-tiny", phi_extra) != 0)
		return -1;
	rc = th_sh(&log, "'%s' convert '%s' '%s'", worker, src, llama_f16);
	if (rc != 0) {
		fprintf(stderr, "convert llama-tiny: exit %d\n%s", rc, log);
		free(log);
		return -1;
	}
	free(log);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmtree(root);
	return 0;
}

static void test_q4_k_m_and_q8_0_run(void **state)
{
	char q4[700], q8[700], part[720];
	float *f16, *l4, *l8;
	double rel4, top4, rel8, top8;
	int nv, nv4, nv8;
	char *log;

	(void)state;
	/* the type is case-insensitive */
	log = quantize(phi_f16, "phi4-tiny-Q4_K_M.gguf", "q4_k_m");
	assert_non_null(strstr(log, "quantized"));
	assert_null(strstr(log, "fallback")); /* rows of 512 and 1792 fit */
	free(log);
	free(quantize(phi_f16, "phi4-tiny-Q8_0.gguf", "Q8_0"));
	path_in(q4, sizeof(q4), "phi4-tiny-Q4_K_M.gguf");
	path_in(q8, sizeof(q8), "phi4-tiny-Q8_0.gguf");
	snprintf(part, sizeof(part), "%s.part", q4);
	assert_false(exists(part));

	assert_int_equal(file_type(q4), 15);
	assert_int_equal(file_type(q8), 7);
	assert_int_equal(file_type(phi_f16), 1);
	assert_int_equal(tensor_type(q4, "blk.0.attn_qkv.weight"), MB_GGML_Q4_K);
	assert_int_equal(tensor_type(q8, "blk.0.ffn_down.weight"), MB_GGML_Q8_0);

	f16 = logits(phi_f16, &nv);
	l4 = logits(q4, &nv4);
	l8 = logits(q8, &nv8);
	assert_int_equal(nv4, nv);
	assert_int_equal(nv8, nv);
	th_logits_compare(f16, l8, NTOK, nv, &rel8, &top8);
	th_logits_compare(f16, l4, NTOK, nv, &rel4, &top4);
	print_message("F16    %9lld bytes\n", file_size(phi_f16));
	print_message("Q8_0   %9lld bytes (%.3f of F16), vs F16: rel max err "
		      "%.2e, top-1 %.0f%%\n",
		      file_size(q8), (double)file_size(q8) / file_size(phi_f16),
		      rel8, top8 * 100);
	print_message("Q4_K_M %9lld bytes (%.3f of F16), vs F16: rel max err "
		      "%.2e, top-1 %.0f%%\n",
		      file_size(q4), (double)file_size(q4) / file_size(phi_f16),
		      rel4, top4 * 100);
	assert_true(rel8 < 5e-2);
	assert_true(top8 >= 0.9);
	assert_true(file_size(q8) < file_size(phi_f16) * 6 / 10);
	assert_true(file_size(q4) < file_size(q8));
	free(f16);
	free(l4);
	free(l8);
}

/* The blocks made on the AVX2 lanes of the libggml-base deploy/deps.sh
 * patches, and by the scalar code (GGML_QUANTS_SCALAR=1): the whole file
 * is the same, byte for byte, and the result line says which ran. Q5_K_M
 * holds Q5_K and Q6_K tensors, Q4_K_M Q4_K and Q6_K. */
static void test_lanes_same_file(void **state)
{
	static const char *const types[] = { "Q4_K_M", "Q5_K_M", "Q8_0" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char lanes[700], scalar[700], *log;
		int rc;

		snprintf(lanes, sizeof(lanes), "%s/lanes-%s.gguf", art, types[i]);
		snprintf(scalar, sizeof(scalar), "%s/scalar-%s.gguf", art,
			 types[i]);
		rc = th_sh(&log, "'%s' quantize '%s' '%s' %s", worker, phi_f16,
			   lanes, types[i]);
		if (rc != 0 || strstr(log, "blocks made on AVX2 lanes") == NULL)
			fail_msg("quantize %s on the lanes exited %d:\n%s",
				 types[i], rc, log);
		free(log);
		rc = th_sh(&log, "GGML_QUANTS_SCALAR=1 '%s' quantize '%s' '%s' %s",
			   worker, phi_f16, scalar, types[i]);
		if (rc != 0 || strstr(log, "blocks made by the scalar "
					   "code (GGML_QUANTS_SCALAR is set)") == NULL)
			fail_msg("quantize %s scalar exited %d:\n%s", types[i],
				 rc, log);
		free(log);
		assert_true(th_same_file(lanes, scalar));
		unlink(lanes); /* the manifest test counts what art/ holds */
		unlink(scalar);
	}
}

/* convert --also TYPE=PATH writes, in the conversion's pass, the very
 * bytes quantize makes of its output, for every family and layout and
 * each output type: Q8_0, and Q4_K_M with its mix of types (Q6_K for
 * some layers, Q5_0 or F16 where rows are not whole blocks, as
 * libllama's plan says), with no stale file left by an earlier run; a
 * type that needs an importance matrix is left to quantize, saying so,
 * with no file. */
static void test_quants_beside_conversion(void **state)
{
	static const struct {
		const char *preset, *layout, *outtype;
	} cases[] = {
		{ "phi4-tiny", "native", "f16" },
		{ "phi4-tiny", "split", "f16" },
		{ "llama-tiny", "native", "f16" },
		{ "llama-tiny", "native", "bf16" },
		{ "qwen2-tiny", "native", "f16" },
		{ "qwen3-tiny", "native", "f16" },
		{ "gemma3-tiny", "native", "bf16" },
		{ "gemma3-tiny", "native", "f32" },
		{ "phi4-mini-tiny", "native", "f16" },
	};
	static const char *types[] = { "Q8_0", "Q4_K_M" };
	const char *extra[] = { "--config", "correct", NULL };
	size_t i, t;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char src[700], f[700], beside[2][700], q[700], side[1500], iq[700];
		char *log;
		int rc;

		snprintf(src, sizeof(src), "%s/q8-%s", root, cases[i].preset);
		snprintf(f, sizeof(f), "%s/q8-f.gguf", root);
		snprintf(q, sizeof(q), "%s/q8-quantized.gguf", root);
		snprintf(iq, sizeof(iq), "%s/q8-iq2.gguf", root);
		if (access(src, F_OK) != 0 &&
		    th_mkmodel(src, cases[i].preset, extra) != 0)
			fail_msg("mkmodel %s", cases[i].preset);
		for (t = 0; t < 2; t++) {
			snprintf(beside[t], sizeof(beside[t]), "%s/q8-beside-%s.gguf",
				 root, types[t]);
			/* a file an earlier run left is not taken for this
			 * one's */
			assert_int_equal(th_write_file(beside[t], "stale", 5), 0);
		}
		rc = th_sh(&log, "'%s' convert '%s' '%s' --layout %s --outtype %s "
			   "--also Q8_0='%s' --also Q4_K_M='%s' --also IQ2_XXS='%s'",
			   worker, src, f, cases[i].layout, cases[i].outtype,
			   beside[0], beside[1], iq);
		if (rc != 0)
			fail_msg("convert %s exited %d:\n%s", cases[i].preset, rc,
				 log);
		assert_non_null(strstr(log, "beside it: Q8_0"));
		assert_non_null(strstr(log, "beside it: Q4_K_M"));
		assert_non_null(strstr(log, "no IQ2_XXS beside it (quantize makes "
					    "it): it needs an importance matrix"));
		assert_int_not_equal(access(iq, F_OK), 0);
		free(log);
		for (t = 0; t < 2; t++) {
			snprintf(side, sizeof(side), "%s.ready", beside[t]);
			assert_int_not_equal(access(side, F_OK), 0);
			snprintf(side, sizeof(side), "%s.part", beside[t]);
			assert_int_not_equal(access(side, F_OK), 0);
			rc = th_sh(&log, "'%s' quantize '%s' '%s' %s", worker, f, q,
				   types[t]);
			if (rc != 0)
				fail_msg("quantize exited %d:\n%s", rc, log);
			free(log);
			if (!th_same_file(beside[t], q))
				fail_msg("%s %s %s: the %s made beside the "
					 "conversion differs from quantize's",
					 cases[i].preset, cases[i].layout,
					 cases[i].outtype, types[t]);
			unlink(beside[t]);
			unlink(q);
		}
		unlink(f);
	}
}

/* While llama.cpp writes a quant, OUT.ready calls final only blocks whose
 * bytes stay as they are: every block it named, read from OUT.part the
 * moment it was named, is the same in the published file; the header's
 * room is never named; the map goes when the file is published. A 40-layer
 * model quantized on one thread gives the map time to be read many
 * times. */
static void test_ready_map_is_honest(void **state)
{
	enum { BLOCK = 1 << 20, MAXB = 4096 };
	const char *extra[] = { "--config", "correct", "--layers", "40", NULL };
	char src[700], f[700], out[700], part[760], ready[760], *log, *doc;
	char *argv[9];
	unsigned char **seen = calloc(MAXB, sizeof(*seen));
	unsigned char *fin;
	size_t len, flen, b, named = 0, first = MAXB;
	pid_t pid;
	int st, fd, done = 0;

	(void)state;
	assert_non_null(seen);
	snprintf(src, sizeof(src), "%s/deep", root);
	snprintf(f, sizeof(f), "%s/deep-F16.gguf", root);
	snprintf(out, sizeof(out), "%s/deep-Q4_K_M.gguf", root);
	snprintf(part, sizeof(part), "%s.part", out);
	snprintf(ready, sizeof(ready), "%s.ready", out);
	assert_int_equal(th_mkmodel(src, "phi4-tiny", extra), 0);
	if (th_sh(&log, "'%s' convert '%s' '%s'", worker, src, f) != 0)
		fail_msg("convert: %s", log);
	free(log);
	argv[0] = worker;
	argv[1] = "quantize";
	argv[2] = f;
	argv[3] = out;
	argv[4] = "Q4_K_M";
	argv[5] = "--threads";
	argv[6] = "1";
	argv[7] = NULL;
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	while (!done) {
		done = waitpid(pid, &st, WNOHANG) == pid;
		doc = th_slurp(ready, &len);
		if (doc != NULL) {
			const char *nl = memchr(doc, '\n', len);

			assert_non_null(nl);
			assert_true(strncmp(doc, "mibera-ready 1 0 1048576\n",
					    (size_t)(nl + 1 - doc)) == 0);
			fd = open(part, O_RDONLY);
			for (b = 0; fd >= 0 && nl + 1 + b < doc + len && b < MAXB;
			     b++) {
				if (nl[1 + b] != '1' || seen[b] != NULL)
					continue;
				seen[b] = malloc(BLOCK);
				assert_non_null(seen[b]);
				assert_int_equal(pread(fd, seen[b], BLOCK,
						       (off_t)b * BLOCK), BLOCK);
				named++;
				if (b < first)
					first = b;
			}
			if (fd >= 0)
				close(fd);
			free(doc);
		}
		usleep(20 * 1000);
	}
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_not_equal(access(ready, F_OK), 0);
	assert_int_not_equal(access(part, F_OK), 0);
	print_message("%zu blocks named final while the quant was written\n",
		      named);
	assert_true(named >= 10);
	/* the header (its placeholder is rewritten at the end) never */
	assert_true(first >= 1);
	fin = (unsigned char *)th_slurp(out, &flen);
	assert_non_null(fin);
	for (b = 0; b < MAXB; b++) {
		if (seen[b] == NULL)
			continue;
		assert_true((b + 1) * BLOCK <= flen);
		if (memcmp(seen[b], fin + b * BLOCK, BLOCK) != 0)
			fail_msg("block %zu was named final and changed after", b);
		free(seen[b]);
	}
	free(seen);
	free(fin);
	unlink(f);
	unlink(out);
}

static void test_fallback_rows(void **state)
{
	char out[700], events[700], *log, *ev, *last;
	unsigned long long done, total;
	float *f16, *l4;
	double rel, top1;
	int nv, nv4, rc;

	(void)state;
	path_in(out, sizeof(out), "llama-tiny-Q4_K_M.gguf");
	snprintf(events, sizeof(events), "%s/quantize.events", root);
	rc = th_sh(&log, "MIBERA_EVENTS='%s' '%s' quantize '%s' '%s' Q4_K_M",
		 events, worker, llama_f16, out);
	if (rc != 0)
		fail_msg("exit %d:\n%s", rc, log);
	print_message("%s", log);
	/* both layers' ffn_down: 688 columns, q4_K then its fallback q5_0
	 * need multiples of 256 and 32, so llama.cpp keeps them F16 */
	assert_non_null(strstr(log, "fallback: blk.0.ffn_down.weight (rows of "
				    "688) q4_K -> f16"));
	assert_non_null(strstr(log, "fallback: blk.1.ffn_down.weight"));
	free(log);
	assert_int_equal(file_type(out), 15);
	assert_int_equal(tensor_type(out, "blk.0.ffn_down.weight"), MB_GGML_F16);
	assert_int_equal(tensor_type(out, "blk.0.ffn_up.weight"), MB_GGML_Q4_K);

	f16 = logits(llama_f16, &nv);
	l4 = logits(out, &nv4);
	assert_int_equal(nv, nv4);
	th_logits_compare(f16, l4, NTOK, nv, &rel, &top1);
	print_message("llama-tiny Q4_K_M vs F16: rel max err %.2e, top-1 "
		      "%.0f%%\n", rel, top1 * 100);
	free(f16);
	free(l4);

	/* per-tensor progress and the fallbacks reached the journal */
	ev = th_slurp(events, NULL);
	assert_non_null(ev);
	assert_non_null(strstr(ev, "\"step\":\"quantize\""));
	assert_non_null(strstr(ev, "\"what\":\"blk.0.attn_q.weight\""));
	assert_non_null(strstr(ev, "\"type\":\"fallback\",\"tensor\":"
				   "\"blk.0.ffn_down.weight\",\"ncols\":688"));
	last = strstr(ev, "\"what\":\"quantize\"");
	assert_non_null(last);
	assert_int_equal(sscanf(last, "\"what\":\"quantize\",\"done\":%llu,"
				      "\"total\":%llu", &done, &total), 2);
	assert_true(total > 3000000); /* the F16's tensor bytes */
	assert_int_equal(done, total);
	free(ev);
}

static void test_bad_type(void **state)
{
	char out[700], *log;
	int rc;

	(void)state;
	path_in(out, sizeof(out), "phi4-tiny-Q4_K_X.gguf");
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q4_K_X", worker, phi_f16, out);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(log, "unknown type 'Q4_K_X'"));
	assert_non_null(strstr(log, "Q4_K_M"));
	assert_non_null(strstr(log, "Q8_0"));
	assert_non_null(strstr(log, "BF16"));
	assert_false(exists(out));
	free(log);
	rc = th_sh(NULL, "'%s' quantize '%s' '%s'", worker, phi_f16, out);
	assert_int_equal(rc, 2);
	rc = th_sh(NULL, "'%s' quantize '%s' '%s' Q8_0", worker, phi_f16, phi_f16);
	assert_int_equal(rc, 2);
}

static void test_corrupt_input(void **state)
{
	char bad[700], out[700], part[720], *data, *log;
	size_t len;
	int rc;

	(void)state;
	/* the F16 cut short: the header promises tensors the file lacks */
	data = th_slurp(phi_f16, &len);
	assert_non_null(data);
	snprintf(bad, sizeof(bad), "%s/cut.gguf", root);
	assert_int_equal(th_write_file(bad, data, 100000), 0);
	free(data);
	path_in(out, sizeof(out), "cut-Q4_K_M.gguf");
	snprintf(part, sizeof(part), "%s.part", out);
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q4_K_M", worker, bad, out);
	print_message("%s", log);
	/* 3: the same input fails again, so the job fails instead of
	 * retrying */
	assert_int_equal(rc, 3);
	assert_non_null(strstr(log, "llama.cpp could not quantize"));
	assert_non_null(strstr(log, "not within the file bounds"));
	assert_false(exists(out));
	assert_false(exists(part));
	free(log);

	/* not a GGUF at all */
	assert_int_equal(th_write_file(bad, "GGUF\3\0\0\0garbage", 15), 0);
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q4_K_M", worker, bad, out);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(log, "failed to"));
	assert_false(exists(out));
	assert_false(exists(part));
	free(log);
}

static void test_no_space(void **state)
{
	char out[700], part[720], *log;
	int rc;

	(void)state;
	path_in(out, sizeof(out), "phi4-tiny-Q6_K.gguf");
	snprintf(part, sizeof(part), "%s.part", out);
	/* a reserve larger than any disk: the check must refuse up front */
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q6_K --reserve %llu", worker,
		 phi_f16, out, 1ull << 62);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(log, "not enough free space"));
	assert_false(exists(out));
	assert_false(exists(part));
	free(log);
}

static void test_already_done(void **state)
{
	char q8[700], q4[700], wrong[700], part[720], *log, *data;
	struct stat before, after;
	long long t0;
	size_t len;
	int rc;

	(void)state;
	path_in(q8, sizeof(q8), "phi4-tiny-Q8_0.gguf");
	assert_int_equal(stat(q8, &before), 0);
	t0 = th_now_ms();
	rc = th_sh(&log, "'%s' quantize '%s' '%s' q8_0", worker, phi_f16, q8);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(log, "already done"));
	free(log);
	print_message("already done in %lld ms\n", th_now_ms() - t0);
	assert_int_equal(stat(q8, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

	/* an OUT of another type, and a stale .part, are replaced */
	path_in(q4, sizeof(q4), "phi4-tiny-Q4_K_M.gguf");
	path_in(wrong, sizeof(wrong), "phi4-tiny-Q5_K_M.gguf");
	data = th_slurp(q4, &len);
	assert_non_null(data);
	assert_int_equal(th_write_file(wrong, data, len), 0);
	free(data);
	snprintf(part, sizeof(part), "%s.part", wrong);
	assert_int_equal(th_write_file(part, "stale", 5), 0);
	log = quantize(phi_f16, "phi4-tiny-Q5_K_M.gguf", "Q5_K_M");
	assert_null(strstr(log, "already done"));
	free(log);
	assert_int_equal(file_type(wrong), 17);
	assert_false(exists(part));
}

static void sha256sum(const char *path, char hex[MB_SHA256_HEX])
{
	char *log;

	assert_int_equal(th_sh(&log, "sha256sum '%s'", path), 0);
	assert_true(strlen(log) >= 64);
	memcpy(hex, log, 64);
	hex[64] = '\0';
	free(log);
}

static void test_manifest(void **state)
{
	static const char *const want[] = {
		"phi4-tiny-F16.gguf", "phi4-tiny-Q4_K_M.gguf",
		"phi4-tiny-Q5_K_M.gguf", "phi4-tiny-Q8_0.gguf",
		"llama-tiny-Q4_K_M.gguf",
	};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	struct mb_manifest_list *l;
	const struct mb_manifest *m;
	char path[700], mpath[700], err[512], hex[MB_SHA256_HEX],
		got[MB_SHA256_HEX], *text, *log, *data;
	uint64_t off, clen;
	size_t len, i;
	int rc;

	(void)state;
	/* what must stay out: an in-flight file, other files, a link */
	path_in(path, sizeof(path), "phi4-tiny-Q2_K.gguf.part");
	assert_int_equal(th_write_file(path, "partial", 7), 0);
	path_in(path, sizeof(path), "notes.txt");
	assert_int_equal(th_write_file(path, "x", 1), 0);
	path_in(path, sizeof(path), "link.gguf");
	assert_int_equal(symlink("phi4-tiny-F16.gguf", path), 0);

	rc = th_sh(&log, "'%s' manifest '%s' --chunk-size 1048576", worker, art);
	if (rc != 0)
		fail_msg("manifest exited %d:\n%s", rc, log);
	print_message("%s", log);
	free(log);
	path_in(mpath, sizeof(mpath), "manifest.json");
	text = th_slurp(mpath, &len);
	assert_non_null(text);
	rc = mb_manifest_list_from_json(text, len, &l, err, sizeof(err));
	if (rc != 0)
		fail_msg("manifest.json: %s", err);
	free(text);
	assert_int_equal(l->n, nwant);
	for (i = 1; i < l->n; i++) /* sorted by name */
		assert_true(strcmp(l->files[i - 1]->name, l->files[i]->name) < 0);
	for (i = 0; i < nwant; i++) {
		m = mb_manifest_list_find(l, want[i]);
		if (m == NULL)
			fail_msg("manifest lacks %s", want[i]);
		path_in(path, sizeof(path), want[i]);
		assert_int_equal(m->size, file_size(path));
		assert_int_equal(m->chunk_size, 1 << 20);
		sha256sum(path, hex);
		mb_sha256_hex(m->sha256, got);
		assert_string_equal(got, hex);
	}
	/* one chunk, recomputed from the bytes: the F16 has 22 of 1 MiB */
	m = mb_manifest_list_find(l, "phi4-tiny-F16.gguf");
	assert_true(m->nchunks > 3);
	path_in(path, sizeof(path), m->name);
	data = th_slurp(path, &len);
	assert_non_null(data);
	mb_manifest_chunk(m, 3, &off, &clen);
	assert_int_equal(mb_manifest_check_chunk(m, 3, data + off, clen), 0);
	mb_manifest_chunk(m, m->nchunks - 1, &off, &clen);
	assert_true(clen < 1 << 20);
	assert_int_equal(mb_manifest_check_chunk(m, m->nchunks - 1, data + off,
						 clen),
			 0);
	data[off] ^= 1;
	assert_int_equal(mb_manifest_check_chunk(m, m->nchunks - 1, data + off,
						 clen),
			 MB_ECHECKSUM);
	free(data);
	mb_manifest_list_free(l);

	/* a second run reuses every entry; --force and a changed chunk size
	 * hash again */
	rc = th_sh(&log, "'%s' manifest '%s' --chunk-size 1048576", worker, art);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(log, "(5 reused)"));
	free(log);
	rc = th_sh(&log, "'%s' manifest '%s' --chunk-size 1048576 --force",
		 worker, art);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(log, "(0 reused)"));
	free(log);
	snprintf(path, sizeof(path), "%s/other.json", root);
	rc = th_sh(&log, "'%s' manifest '%s' --out '%s'", worker, art, path);
	assert_int_equal(rc, 0);
	free(log);
	text = th_slurp(path, &len);
	assert_non_null(text);
	assert_int_equal(mb_manifest_list_from_json(text, len, &l, err,
						    sizeof(err)),
			 0);
	free(text);
	assert_int_equal(l->files[0]->chunk_size, 64 << 20);
	assert_int_equal(l->files[0]->nchunks, 1);
	mb_manifest_list_free(l);

	/* --skip leaves the float GGUF out (the coordinator's manifest of
	 * what it pulls while the worker makes the rest), the others listed */
	snprintf(path, sizeof(path), "%s/skip.json", root);
	rc = th_sh(&log, "'%s' manifest '%s' --out '%s' --skip phi4-tiny-F16.gguf",
		 worker, art, path);
	assert_int_equal(rc, 0);
	free(log);
	text = th_slurp(path, &len);
	assert_non_null(text);
	assert_int_equal(mb_manifest_list_from_json(text, len, &l, err,
						    sizeof(err)),
			 0);
	free(text);
	assert_null(mb_manifest_list_find(l, "phi4-tiny-F16.gguf"));
	assert_int_equal(l->n, nwant - 1);
	mb_manifest_list_free(l);

	rc = th_sh(&log, "'%s' manifest '%s' --chunk-size 1000", worker, art);
	assert_int_equal(rc, 2);
	free(log);
}

/* Runs `mibera-worker quantize IN OUT TYPE` as a child of its own and
 * returns its peak RSS in bytes (0 when it failed). */
static uint64_t quantize_peak(const char *in, const char *out,
			      const char *type)
{
	struct rusage ru;
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(worker, worker, "quantize", in, out, type, "--threads",
		      "2", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024;
}

/* A quantize holds a slab of rows at a time, not a whole tensor: on
 * Phi-4's shapes (one layer, its 100352 x 5120 embedding and output) its
 * peak memory stays under the largest tensor as F32 (2 GB), which
 * libllama's default, a whole tensor at once, holds beside the F16
 * mapped from the file. */
static void test_quantize_memory_is_bounded(void **state)
{
	const char *extra[] = { "--layers", "1", "--sparse", "--config",
				"correct", NULL };
	char src[700], f16[700], q8[700], *log;
	double f32_largest = 100352.0 * 5120 * 4;
	uint64_t peak;
	int rc;

	(void)state;
	snprintf(src, sizeof(src), "%s/slice", root);
	path_in(f16, sizeof(f16), "slice-F16.gguf");
	path_in(q8, sizeof(q8), "slice-Q8_0.gguf");
	assert_int_equal(th_mkmodel(src, "phi4-slice", extra), 0);
	rc = th_sh(&log, "'%s' convert '%s' '%s'", worker, src, f16);
	if (rc != 0)
		fail_msg("convert phi4-slice: exit %d\n%s", rc, log);
	free(log);
	th_rmtree(src);
	peak = quantize_peak(f16, q8, "Q8_0");
	print_message("quantize Q8_0 of a %.1f GB F16: peak RSS %.2f GB\n",
		      (double)file_size(f16) / 1e9, (double)peak / 1e9);
	unlink(f16);
	assert_true(peak > 0);
	assert_int_equal(file_type(q8), 7);
	unlink(q8);
	assert_true((double)peak < f32_largest);
}

/* The smoke test, as the job runs it (mibera-job smoke): a quantized file
 * loads, runs through its chat template and produces text at a measured
 * speed with finite logits. */
static void test_smoke_runs_quantized(void **state)
{
	char q4[700], *out;
	cJSON *doc;

	(void)state;
	free(quantize(phi_f16, "smoke-Q4_K_M.gguf", "Q4_K_M"));
	path_in(q4, sizeof(q4), "smoke-Q4_K_M.gguf");
	if (th_sh(&out, "'%s/mibera-job' smoke '%s' --json 2>/dev/null",
		MB_BINARY_DIR, q4) != 0)
		fail_msg("smoke failed: %s", out);
	print_message("%s", out);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "finite")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "templated")));
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "prompt_tps")) > 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "gen_tps")) > 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "gen_tokens")) > 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "load_s")) > 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "peak_rss")) > 0);
	assert_true(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "text"))) > 0);
	cJSON_Delete(doc);
}

/* Gemma 3 (gemma3-tiny, converted by the worker as a job does) quantizes
 * to Q4_K_M (its hidden size of 192 fits no 256-block: those rows fall
 * back), runs close to its F16, and passes the smoke test through its
 * own chat template. */
static void test_gemma3_q4_k_m_smoke(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	char src[700], f16[700], q4[700], *log, *out;
	float *lf, *l4;
	double rel, top1;
	int nv, nv4;
	cJSON *doc;

	(void)state;
	snprintf(src, sizeof(src), "%s/gemma3", root);
	path_in(f16, sizeof(f16), "gemma3-tiny-F16.gguf");
	assert_int_equal(th_mkmodel(src, "gemma3-tiny", extra), 0);
	if (th_sh(&log, "'%s' convert '%s' '%s'", worker, src, f16) != 0)
		fail_msg("convert gemma3-tiny: %s", log);
	free(log);
	free(quantize(f16, "gemma3-tiny-Q4_K_M.gguf", "Q4_K_M"));
	path_in(q4, sizeof(q4), "gemma3-tiny-Q4_K_M.gguf");
	assert_int_equal(file_type(q4), 15);
	assert_int_equal(tensor_type(q4, "blk.0.ffn_down.weight") != MB_GGML_F16,
			 1);
	lf = logits(f16, &nv);
	l4 = logits(q4, &nv4);
	assert_int_equal(nv4, nv);
	th_logits_compare(lf, l4, NTOK, nv, &rel, &top1);
	print_message("gemma3 Q4_K_M %lld bytes (%.3f of F16), vs F16: rel max "
		      "err %.2e, top-1 %.0f%%\n", file_size(q4),
		      (double)file_size(q4) / file_size(f16), rel, top1 * 100);
	assert_true(file_size(q4) < file_size(f16));
	assert_true(rel < 0.5);
	free(lf);
	free(l4);
	if (th_sh(&out, "'%s/mibera-job' smoke '%s' --json 2>/dev/null",
		MB_BINARY_DIR, q4) != 0)
		fail_msg("smoke failed: %s", out);
	print_message("%s", out);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "finite")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "templated")));
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(doc,
							     "gen_tokens")) > 0);
	cJSON_Delete(doc);
}

/* A file cut short (a transfer that stopped) fails the smoke test with
 * llama.cpp's own words, and the exit code says so. */
static void test_smoke_truncated_fails(void **state)
{
	char q8[700], cut[700], *out;
	long long size;

	(void)state;
	free(quantize(phi_f16, "cut-Q8_0.gguf", "Q8_0"));
	path_in(q8, sizeof(q8), "cut-Q8_0.gguf");
	path_in(cut, sizeof(cut), "cut-Q8_0.truncated.gguf");
	size = file_size(q8);
	assert_int_equal(th_sh(NULL, "cp '%s' '%s'", q8, cut), 0);
	assert_int_equal(truncate(cut, size * 2 / 3), 0);
	assert_int_equal(th_sh(&out, "'%s/mibera-job' smoke '%s' 2>/dev/null",
			     MB_BINARY_DIR, cut), 1);
	print_message("%s", out);
	assert_non_null(strstr(out, "FAILED"));
	/* llama.cpp's loader: "tensor '...' data is not within the file
	 * bounds, model is corrupted or incomplete" */
	assert_non_null(strstr(out, "not within the file bounds"));
	free(out);
}

/* A file llama.cpp answers with abort(): a vocabulary with a text at two
 * ids (GGML_ASSERT in its vocabulary loader). Run in a child, the smoke
 * test fails that file with llama.cpp's words and the caller lives on;
 * the same file loaded in this process would have ended it. */
static void test_smoke_crash_is_contained(void **state)
{
	char bad[700];
	struct mb_smoke_result r;
	int rc;

	(void)state;
	path_in(bad, sizeof(bad), "dup-F16.gguf");
	/* token "b" (a GGUF string: u64 length 1, then the byte) becomes
	 * a second "a" */
	assert_int_equal(th_sh(NULL, "%s -c \"import struct,sys; d=open(sys.argv[1],"
			     "'rb').read(); p=lambda c: struct.pack('<Q',1)+c; "
			     "i=d.index(p(b'b')); open(sys.argv[2],'wb').write("
			     "d[:i]+p(b'a')+d[i+9:])\" '%s' '%s'", MB_PYTHON,
			     phi_f16, bad), 0);
	rc = mb_smoke_isolated(MB_BINARY_DIR "/mibera-job", bad, 8, 0, 120, &r);
	print_message("%s\n", r.error);
	assert_int_equal(rc, MB_EFORMAT);
	assert_non_null(strstr(r.error, "crashed"));
	assert_non_null(strstr(r.error, "id_to_token.size() == token_to_id.size()"));
	/* a good file through the same path: the figures come back */
	rc = mb_smoke_isolated(MB_BINARY_DIR "/mibera-job", phi_f16, 8, 0, 120, &r);
	if (rc != 0)
		fail_msg("%s", r.error);
	assert_true(r.finite);
	assert_true(r.peak_rss > 0);
	assert_true(r.n_prompt > 0);
	/* a load that takes too long is stopped */
	path_in(bad, sizeof(bad), "slow-smoke.sh");
	assert_int_equal(th_sh(NULL, "printf '#!/bin/sh\\nsleep 30\\n' > '%s' && "
			     "chmod +x '%s'", bad, bad), 0);
	rc = mb_smoke_isolated(bad, phi_f16, 8, 0, 1, &r);
	assert_int_equal(rc, MB_ETIMEDOUT);
	assert_non_null(strstr(r.error, "did not finish in 1 s"));
}

static cJSON *smoke_json(const char *env, const char *path, int want_rc)
{
	char *out;
	cJSON *doc;
	int rc;

	rc = th_sh(&out, "%s '%s/mibera-job' smoke '%s' --json 2>/dev/null", env,
		 MB_BINARY_DIR, path);
	if (rc != want_rc)
		fail_msg("smoke with '%s' exited %d, not %d: %s", env, rc,
			 want_rc, out);
	doc = cJSON_Parse(out);
	if (doc == NULL)
		fail_msg("not JSON: %s", out);
	free(out);
	return doc;
}

static double num(const cJSON *doc, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(doc, key));
}

/* Before loading, the smoke test works out what the load needs (the
 * mapped file, the KV cache at 4096 tokens, the compute buffers) and
 * compares it with the memory available: a file that fits runs, with a
 * peak memory under that figure and no repacked copy of its weights
 * (llama.cpp repacks Q4_K on AVX2 CPUs unless told not to: this file
 * logs a CPU_REPACK buffer when loaded with llama.cpp's defaults); one
 * byte short and it is not loaded, with a message giving both figures.
 * inspect's RAM estimate for the same model and quant is the same
 * figure. */
static void test_smoke_memory_checked(void **state)
{
	char q4[700], env[128], dir[700], *out;
	cJSON *doc, *it;
	double need, peak, est = 0;

	(void)state;
	free(quantize(phi_f16, "mem-Q4_K_M.gguf", "Q4_K_M"));
	path_in(q4, sizeof(q4), "mem-Q4_K_M.gguf");
	doc = smoke_json("", q4, 0);
	need = num(doc, "mem_need");
	peak = num(doc, "peak_rss");
	print_message("need %.0f, peak RSS %.0f, available %.0f\n", need, peak,
		      num(doc, "mem_available"));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(doc, "repacked")));
	assert_true(num(doc, "mem_available") > 0);
	/* an upper bound, not far above: on this 7 MB file llama.cpp's own
	 * code and heap are most of the gap (bench/smoke-memory.md has the
	 * figures at real size) */
	assert_true(peak > 0);
#if !defined(__SANITIZE_ADDRESS__)
	/* (AddressSanitizer's shadow memory and quarantine are not what a
	 * load needs) */
	assert_true(peak <= need);
	assert_true(need < peak * 1.5);
#endif
	cJSON_Delete(doc);

	/* inspect on the model the file was made from says the same */
	snprintf(dir, sizeof(dir), "%s/phi", root);
	assert_int_equal(th_sh(&out, "'%s/mibera-job' inspect '%s' --json "
			     "2>/dev/null", MB_BINARY_DIR, dir), 0);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(doc,
		"estimates"), "quants"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "type")),
			   "Q4_K_M") == 0)
			est = num(it, "ram");
	cJSON_Delete(doc);
	print_message("inspect's estimate %.0f\n", est);
	assert_true(est > need * 0.9 && est < need * 1.1);

	/* exactly enough runs; a byte less is refused before loading */
	snprintf(env, sizeof(env), "MIBERA_SMOKE_MEM_AVAILABLE=%.0f", need);
	doc = smoke_json(env, q4, 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	cJSON_Delete(doc);
	snprintf(env, sizeof(env), "MIBERA_SMOKE_MEM_AVAILABLE=%.0f", need - 1);
	doc = smoke_json(env, q4, 1);
	print_message("%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(doc, "error")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(doc, "ok")));
	assert_int_equal((int)num(doc, "errcode"), MB_ENOMEM);
	assert_true(num(doc, "load_s") == 0 && num(doc, "peak_rss") == 0);
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
		"error")), "not enough memory: loading it needs about 0.0 GB"));
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
		"error")), "is available; free some memory"));
	cJSON_Delete(doc);
	/* a value that is not a byte count is named */
	assert_int_equal(th_sh(&out, "MIBERA_SMOKE_MEM_AVAILABLE=6G '%s/mibera-job' "
			     "smoke '%s' 2>/dev/null", MB_BINARY_DIR, q4), 1);
	assert_non_null(strstr(out, "MIBERA_SMOKE_MEM_AVAILABLE is '6G', not a "
			       "number of bytes"));
	free(out);
}

/* In a child, as the job runs it: short of memory now is MB_ENOMEM (the
 * job waits and tries again), more than the machine has is MB_ETOOBIG,
 * each with the figures. */
static void test_smoke_isolated_memory(void **state)
{
	struct mb_smoke_result r;
	int rc;

	(void)state;
	setenv("MIBERA_SMOKE_MEM_AVAILABLE", "1000000", 1);
	rc = mb_smoke_isolated(MB_BINARY_DIR "/mibera-job", phi_f16, 8, 0, 120, &r);
	print_message("%s\n", r.error);
	assert_int_equal(rc, MB_ENOMEM);
	assert_non_null(strstr(r.error, "and 0.0 GB is available"));
	assert_true(r.mem_need > 22000000 && r.mem_available == 1000000);
	setenv("MIBERA_SMOKE_MEM_TOTAL", "2000000", 1);
	rc = mb_smoke_isolated(MB_BINARY_DIR "/mibera-job", phi_f16, 8, 0, 120, &r);
	unsetenv("MIBERA_SMOKE_MEM_AVAILABLE");
	unsetenv("MIBERA_SMOKE_MEM_TOTAL");
	print_message("%s\n", r.error);
	assert_int_equal(rc, MB_ETOOBIG);
	assert_non_null(strstr(r.error, "this machine has 0.0 GB in all; test it "
			       "on a machine with more memory"));
	assert_int_equal(r.peak_rss, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_q4_k_m_and_q8_0_run),
		cmocka_unit_test(test_lanes_same_file),
		cmocka_unit_test(test_quants_beside_conversion),
		cmocka_unit_test(test_ready_map_is_honest),
		cmocka_unit_test(test_fallback_rows),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_corrupt_input),
		cmocka_unit_test(test_no_space),
		cmocka_unit_test(test_already_done),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_quantize_memory_is_bounded),
		cmocka_unit_test(test_smoke_runs_quantized),
		cmocka_unit_test(test_gemma3_q4_k_m_smoke),
		cmocka_unit_test(test_smoke_truncated_fails),
		cmocka_unit_test(test_smoke_crash_is_contained),
		cmocka_unit_test(test_smoke_memory_checked),
		cmocka_unit_test(test_smoke_isolated_memory),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
