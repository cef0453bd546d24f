/*
 * mibera-worker convert MODEL_DIR OUT.gguf [--layout native|split]
 *     [--outtype f16|bf16|f32] [--threads N] [--name NAME] [--repo ORG/NAME]
 *     [--commit SHA] [--overrides FILE] [--converter mibera|llama.cpp]
 *     [--split-max-size SIZE] [--follow [--follow-timeout SECONDS]]
 *     [--also TYPE=Q.gguf]...
 * Converts a safetensors model to GGUF (common/convert.h), with a progress
 * line on a terminal and a summary at the end: tensors, size, time, rate
 * and the peak memory the process used. FILE holds what the user settled
 * ({"set": {KEY: VALUE...}, "base": "org/name", "base_config": {...}}:
 * inspect and submit's --set and --base, the base's config.json as the
 * coordinator read it from the hub). --converter llama.cpp runs llama.cpp's
 * own convert_hf_to_gguf.py instead (worker/pyconvert.h), for a family
 * mibera does not convert natively: it reads config.json as it is, so
 * --overrides and the split layout go with mibera's converter only. With
 * --split-max-size, an output bigger than SIZE is written as a set of
 * parts OUT-00001-of-0000N.gguf ... as llama.cpp's gguf-split makes them
 * (common/splitset.h). With --follow it converts while a headers-first
 * fetch (fetch --headers-first) still downloads into MODEL_DIR: it starts
 * once the shards' headers are there, takes each shard as it arrives, and
 * stops with the fetch's message when the fetch fails, or when the
 * fetch's state has not changed for SECONDS (default 300). With
 * --also TYPE=Q.gguf (up to 8) it writes in the same pass the GGUF that
 * `mibera-worker quantize OUT.gguf Q.gguf TYPE` would make without an
 * importance matrix, byte for byte (libllama plans each tensor's type and
 * makes its blocks, worker/quantplan.h), saying while it runs which parts
 * of it are final (Q.gguf.ready), so the coordinator can pull it as it is
 * written; a file it cannot make so (a set of parts, a type that needs an
 * importance matrix) is left to quantize, and the summary says why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/convert.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/modelcfg.h"
#include "common/splitset.h"
#include "common/json.h"
#include "common/buf.h"
#include "proto/event.h"
#include "worker/pyconvert.h"
#include "worker/quantplan.h"
#include "worker/verbs.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker convert MODEL_DIR OUT.gguf [--layout "
		   "native|split]\n"
		   "           [--outtype f16|bf16|f32] [--threads N] [--name NAME]\n"
		   "           [--repo ORG/NAME] [--commit SHA] [--overrides FILE]\n"
		   "           [--converter mibera|llama.cpp] [--split-max-size SIZE]\n"
		   "           [--follow [--follow-timeout SECONDS]] [--also TYPE=Q.gguf]...\n\n"
		   "--split-max-size SIZE: when the GGUF would be bigger than "
		   "SIZE (bytes, or\n"
		   "K, M, G, T in powers of 1000: 50G), write it as a set of "
		   "parts of at most\n"
		   "SIZE each, OUT-00001-of-0000N.gguf ..., as llama.cpp's "
		   "gguf-split does;\n"
		   "libllama loads the set from its first part. A GGUF that "
		   "fits stays OUT.\n"
		   "--follow: convert while `mibera-worker fetch --headers-first "
		   "--dest MODEL_DIR`\n"
		   "runs, each shard as soon as it is downloaded and verified; "
		   "stop when the\nfetch fails or its state is not rewritten for "
		   "--follow-timeout SECONDS (300).\n"
		   "--also TYPE=Q.gguf (up to 8): write in the same pass the "
		   "GGUF that\n`mibera-worker quantize OUT.gguf Q.gguf TYPE` "
		   "makes without --imatrix, byte\nfor byte.\n");
}

struct progress_ctx {
	int tty;
	struct mb_events ev;
};

static void on_progress(const struct mb_convert_progress *p, void *ctx)
{
	struct progress_ctx *pc = ctx;
	int tty = pc->tty;
	double rate = p->seconds > 0 ? (double)p->done / p->seconds : 0;
	double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;

	mb_events_progress(&pc->ev, "convert", p->done, p->total, rate,
			   p->finished);
	if (tty)
		fprintf(stderr, "\rconvert: %5.1f%%  %8.1f MB of %.1f MB  %7.1f MB/s  "
			"eta %4.0f s ", p->total ? 100.0 * (double)p->done /
							  (double)p->total : 100.0,
			(double)p->done / 1e6, (double)p->total / 1e6, rate / 1e6,
			eta);
	if (tty && p->finished)
		fputc('\n', stderr);
}

/* One "repair" event per config.json field the conversion corrected,
 * with its evidence (the report's "repairs" entries, PROTOCOL.md). */
static void emit_repairs(struct mb_events *ev, const struct mb_buf *report)
{
	cJSON *doc = report->data ? mb_json_parse(report->data, report->len) : NULL;
	const cJSON *rep = doc ? cJSON_GetObjectItemCaseSensitive(doc, "repairs")
			       : NULL, *item;

	cJSON_ArrayForEach(item, rep) {
		char *text = cJSON_PrintUnformatted(item);
		size_t n = text ? strlen(text) : 0;

		if (n >= 2 && text[0] == '{' && text[n - 1] == '}') {
			text[n - 1] = '\0';
			mb_events_emit(ev, "repair", text + 1);
		}
		cJSON_free(text);
	}
	cJSON_Delete(doc);
}

/* Reads the overrides file into u (its strings point into *doc, and the
 * base's config.json text into *base_text). */
static int read_overrides(const char *path, cJSON **doc,
			  struct mb_modelcfg_user *u, char **base_text,
			  char *err, size_t errcap)
{
	char *text = NULL;
	size_t len;
	const cJSON *bc;
	int rc;

	rc = mb_read_file(path, 1 << 20, &text, &len);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read '%s': %s", path,
			  mb_strerror(rc));
		return rc;
	}
	*doc = mb_json_parse(text, len);
	free(text);
	if (!cJSON_IsObject(*doc)) {
		mb_seterr(err, errcap, "'%s' is not a JSON object", path);
		return MB_EJSON;
	}
	u->set = cJSON_GetObjectItemCaseSensitive(*doc, "set");
	u->base = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*doc,
									 "base"));
	bc = cJSON_GetObjectItemCaseSensitive(*doc, "base_config");
	if (cJSON_IsObject(bc))
		*base_text = cJSON_PrintUnformatted(bc);
	return 0;
}

/* convert --converter llama.cpp: llama.cpp's convert_hf_to_gguf.py, its
 * summary in the same "done" event as mibera's, with the converter named. */
static int convert_llama(const char *model_dir, const char *out_path,
			 enum mb_outtype outtype, uint64_t max_size)
{
	struct pyconvert_opts po;
	struct pyconvert_result r;
	struct mb_events ev;
	struct mb_buf b;
	char err[1024] = "", whole[4200];
	unsigned nparts = 1;
	int ret;

	if (mb_events_from_env(&ev, "convert") != 0) {
		fprintf(stderr, "mibera-worker convert: cannot open the event "
			"journal\n");
		return 1;
	}
	po.model_dir = model_dir;
	po.out_path = out_path;
	po.outtype = outtype == MB_OUT_BF16 ? "bf16"
		     : outtype == MB_OUT_F32 ? "f32" : "f16";
	ret = pyconvert_run(&po, &ev, &r, err, sizeof(err));
	if (ret != 0) {
		mb_events_close(&ev);
		fprintf(stderr, "mibera-worker convert: %s\n", err);
		return ret;
	}
	/* llama.cpp's converter writes one file: divided here, as quantize
	 * divides a quant, when it is bigger than --split-max-size */
	if (max_size != 0 && r.file_size > max_size) {
		snprintf(whole, sizeof(whole), "%s.whole", out_path);
		if (rename(out_path, whole) != 0 ||
		    mb_splitset_write(whole, out_path, max_size, &nparts, err,
				      sizeof(err)) != 0) {
			mb_events_close(&ev);
			fprintf(stderr, "mibera-worker convert: cannot divide "
				"'%s' into parts: %s\n", out_path,
				err[0] ? err : strerror(errno));
			unlink(whole);
			return 1;
		}
		unlink(whole);
	}
	mb_buf_init(&b, 4096);
	mb_buf_adds(&b, "\"file\":");
	mb_json_quote(&b, out_path);
	mb_buf_addf(&b, ",\"arch\":\"%s\",\"tensors\":%llu,\"bytes\":%llu,"
		    "\"seconds\":%.3f,\"repairs\":0,\"peak_rss\":%llu,"
		    "\"converter\":", r.arch, (unsigned long long)r.ntensors,
		    (unsigned long long)r.file_size, r.seconds,
		    (unsigned long long)r.peak_rss);
	mb_json_quote(&b, r.converter);
	mb_buf_addf(&b, ",\"parts\":%u", nparts);
	if (mb_buf_error(&b) == 0)
		mb_events_emit(&ev, "done", b.data);
	mb_buf_release(&b);
	mb_events_close(&ev);
	printf("converted %s with %s: arch %s, %llu tensors, %.1f MB in %.2f s, "
	       "peak RSS %.1f MiB\n", out_path, r.converter, r.arch,
	       (unsigned long long)r.ntensors, (double)r.file_size / 1e6,
	       r.seconds, (double)r.peak_rss / 1048576.0);
	return 0;
}

int verb_convert(int argc, char **argv)
{
	struct mb_modelcfg_user user = { NULL, NULL };
	const char *overrides = NULL;
	char *base_text = NULL;
	cJSON *odoc = NULL;
	int ret;
	struct mb_convert_opts o;
	struct mb_convert_result r;
	struct rusage ru;
	struct progress_ctx pc;
	struct mb_buf b, report;
	char err[1024] = "", first[4200];
	int i, rc, npos = 0, llama = 0, layout_given = 0;
	struct mb_convert_quant quants[MB_CONVERT_MAXQ];
	const char *qnames[MB_CONVERT_MAXQ];
	size_t nq = 0, k;

	memset(&o, 0, sizeof(o));
	o.layout = MB_LAYOUT_NATIVE;
	o.outtype = MB_OUT_F16;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--layout") == 0 && v) {
			if ((rc = mb_layout_parse(v)) < 0)
				goto bad;
			o.layout = (enum mb_layout)rc;
			layout_given = o.layout != MB_LAYOUT_NATIVE;
			i++;
		} else if (strcmp(a, "--outtype") == 0 && v) {
			if ((rc = mb_outtype_parse(v)) < 0)
				goto bad;
			o.outtype = (enum mb_outtype)rc;
			i++;
		} else if (strcmp(a, "--threads") == 0 && v) {
			char *end;
			long n = strtol(v, &end, 10);

			if (*v == '\0' || *end != '\0' || n < 1 || n > 64)
				goto bad;
			o.threads = (int)n;
			i++;
		} else if (strcmp(a, "--name") == 0 && v) {
			o.name = argv[++i];
		} else if (strcmp(a, "--repo") == 0 && v) {
			o.source_repo = argv[++i];
		} else if (strcmp(a, "--commit") == 0 && v) {
			o.source_commit = argv[++i];
		} else if (strcmp(a, "--split-max-size") == 0 && v) {
			if (mb_splitset_parse_size(v, &o.split_max_size, err,
						   sizeof(err)) != 0) {
				fprintf(stderr, "mibera-worker convert: "
					"--split-max-size: %s\n", err);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--also") == 0 && v) {
			const char *eq = strchr(v, '=');
			const struct mb_quant_type *t;
			char type[32];

			snprintf(type, sizeof(type), "%.*s",
				 eq ? (int)(eq - v) : 0, v);
			t = mb_quant_find(type);
			if (eq == NULL || eq[1] == '\0' || t == NULL ||
			    nq == MB_CONVERT_MAXQ) {
				fprintf(stderr, "mibera-worker convert: --also "
					"takes TYPE=PATH, a quant type and a "
					"file, at most %d times: '%s'\n",
					MB_CONVERT_MAXQ, v);
				return 2;
			}
			quants[nq].path = eq + 1;
			quants[nq].ftype = t->ftype;
			qnames[nq++] = t->name;
			i++;
		} else if (strcmp(a, "--follow") == 0) {
			o.follow = 1;
		} else if (strcmp(a, "--follow-timeout") == 0 && v) {
			char *end;
			double t = strtod(v, &end);

			if (*v == '\0' || *end != '\0' || !(t > 0 && t <= 86400))
				goto bad;
			o.follow_timeout_s = t;
			i++;
		} else if (strcmp(a, "--overrides") == 0 && v) {
			overrides = argv[++i];
		} else if (strcmp(a, "--converter") == 0 && v) {
			if (strcmp(v, "llama.cpp") == 0)
				llama = 1;
			else if (strcmp(v, "mibera") != 0)
				goto bad;
			i++;
		} else if (a[0] == '-') {
			goto bad;
		} else if (npos == 0) {
			o.model_dir = a;
			npos++;
		} else if (npos == 1) {
			o.out_path = a;
			npos++;
		} else {
			goto bad;
		}
	}
	if (npos != 2)
		goto bad;
	if (llama && o.follow) {
		fprintf(stderr, "mibera-worker convert: --follow goes with "
			"mibera's converter: llama.cpp's reads the whole model "
			"when it starts\n");
		return 2;
	}
	if (llama && nq > 0) {
		fprintf(stderr, "mibera-worker convert: --also goes with "
			"mibera's converter\n");
		return 2;
	}
	for (k = 0; k < nq; k++) {
		size_t m;

		for (m = 0; m < k; m++)
			if (strcmp(quants[m].path, quants[k].path) == 0)
				break;
		if (m < k || strcmp(quants[k].path, o.out_path) == 0) {
			fprintf(stderr, "mibera-worker convert: '%s' is named "
				"twice as an output\n", quants[k].path);
			return 2;
		}
	}
	if (nq > 0) {
		o.quants = quants;
		o.nquants = nq;
		o.quantizer = mb_llama_quantizer();
	}
	if (llama && (overrides != NULL || layout_given)) {
		fprintf(stderr, "mibera-worker convert: %s goes with mibera's "
			"converter: llama.cpp's reads config.json as it is and "
			"writes one file\n", overrides != NULL ? "--overrides"
							     : "--layout split");
		return 2;
	}
	if (llama)
		return convert_llama(o.model_dir, o.out_path, o.outtype,
				     o.split_max_size);
	if (overrides != NULL) {
		rc = read_overrides(overrides, &odoc, &user, &base_text, err,
				    sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "mibera-worker convert: %s\n", err);
			cJSON_Delete(odoc);
			return mb_err_exit(rc);
		}
		o.user = &user;
		if (base_text != NULL) {
			o.base_config = base_text;
			o.base_config_len = strlen(base_text);
		}
	}
	pc.tty = isatty(2);
	if (mb_events_from_env(&pc.ev, "convert") != 0) {
		fprintf(stderr, "mibera-worker convert: cannot open the event "
			"journal\n");
		ret = 1;
		goto done;
	}
	o.progress = on_progress;
	o.progress_ctx = &pc;
	mb_buf_init(&report, 1 << 20);
	o.report = &report;
	rc = mb_convert(&o, &r, err, sizeof(err));
	if (rc == 0)
		emit_repairs(&pc.ev, &report);
	mb_buf_release(&report);
	mb_buf_init(&b, 4096);
	if (rc == MB_EUNSUPPORTED && strstr(err, "converts natively") != NULL) {
		/* the way out, for a job whose model the coordinator could
		 * not inspect (a path on this box) */
		size_t n = strlen(err);

		snprintf(err + n, sizeof(err) - n, "; llama.cpp's own converter "
			 "may convert it: submit the job again with --converter "
			 "llama.cpp");
	}
	if (rc != 0) {
		fprintf(stderr, "%smibera-worker convert: %s\n", pc.tty ? "\n" : "",
			err[0] ? err : mb_strerror(rc));
		mb_buf_addf(&b, "\"code\":\"%s\",\"message\":", mb_errname(rc));
		mb_json_quote(&b, err);
		mb_events_emit(&pc.ev, "error", b.data);
		mb_buf_release(&b);
		mb_events_close(&pc.ev);
		/* 1: a later try may get past it; 3: the same input fails the
		 * same way (missing or broken files, a model mibera cannot
		 * convert, no space), so a person must act */
		ret = mb_err_exit(rc);
		goto done;
	}
	getrusage(RUSAGE_SELF, &ru);
	if (r.nparts > 1)
		mb_splitset_part_path(o.out_path, 0, r.nparts, first,
				      sizeof(first));
	else
		snprintf(first, sizeof(first), "%s", o.out_path);
	mb_buf_adds(&b, "\"file\":");
	mb_json_quote(&b, first);
	mb_buf_addf(&b, ",\"parts\":%u", r.nparts);
	mb_buf_addf(&b, ",\"arch\":\"%s\",\"tensors\":%llu,\"bytes\":%llu,"
		    "\"seconds\":%.3f,\"repairs\":%zu,\"peak_rss\":%llu",
		    r.arch, (unsigned long long)r.ntensors,
		    (unsigned long long)r.file_size, r.seconds, r.nrepairs,
		    (unsigned long long)ru.ru_maxrss * 1024);
	if (o.follow)
		mb_buf_addf(&b, ",\"early_bytes\":%llu,\"redone_bytes\":%llu",
			    (unsigned long long)r.early_bytes,
			    (unsigned long long)r.redone_bytes);
	mb_buf_adds(&b, ",\"also\":[");
	for (k = 0; k < nq; k++) {
		mb_buf_addf(&b, "%s{\"type\":\"%s\",\"file\":", k ? "," : "",
			    qnames[k]);
		mb_json_quote(&b, quants[k].path);
		if (r.quant_size[k] > 0) {
			mb_buf_addf(&b, ",\"bytes\":%llu}",
				    (unsigned long long)r.quant_size[k]);
		} else {
			mb_buf_adds(&b, ",\"why_not\":");
			mb_json_quote(&b, r.quant_why[k]);
			mb_buf_adds(&b, "}");
		}
	}
	mb_buf_adds(&b, "]");
	mb_events_emit(&pc.ev, "done", b.data);
	mb_buf_release(&b);
	mb_events_close(&pc.ev);
	if (r.nparts > 1)
		printf("wrote %u parts: %s ... (libllama loads the set from the "
		       "first)\n", r.nparts, first);
	printf("converted %s: arch %s, %llu tensors, %.1f MB in %.2f s (%.0f MB/s), "
	       "%zu config repair%s, peak RSS %.1f MiB\n",
	       first, r.arch, (unsigned long long)r.ntensors,
	       (double)r.file_size / 1e6, r.seconds,
	       r.seconds > 0 ? (double)r.data_bytes / r.seconds / 1e6 : 0.0,
	       r.nrepairs, r.nrepairs == 1 ? "" : "s", (double)ru.ru_maxrss / 1024);
	if (o.follow)
		printf("%.1f MB of the shards converted while they were still "
		       "downloading%s\n", (double)r.early_bytes / 1e6,
		       r.redone_bytes == 0 ? "" : " (some converted again: the "
		       "fetch started a shard over)");
	for (k = 0; k < nq; k++)
		if (r.quant_size[k] > 0)
			printf("wrote %s beside it: %s, %.1f MB, from the same "
			       "rows\n", quants[k].path, qnames[k],
			       (double)r.quant_size[k] / 1e6);
		else
			printf("no %s beside it (quantize makes it): %s\n",
			       qnames[k], r.quant_why[k]);
	ret = 0;
done:
	cJSON_free(base_text);
	cJSON_Delete(odoc);
	return ret;
bad:
	usage(stderr);
	return 2;
}
