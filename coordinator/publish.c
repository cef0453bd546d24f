/* publish: provenance.json, Modelfile and README.md beside artifacts. */
#include "coordinator/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "common/splitset.h"
#include "coordinator/store.h"
#include "mb_version.h"

/* --- which file to start with --- */

/* The parts of a set (common/splitset.h): how many the set of name has,
 * 1 for a whole file; *no is its place from 0. */
static unsigned parts_of(const char *name, unsigned *no)
{
	size_t stem;
	unsigned count;

	if (mb_splitset_parse_name(name, &stem, no, &count))
		return count;
	*no = 0;
	return 1;
}

const char *mb_publish_type(const char *file, char *out, size_t cap)
{
	char whole[512];
	const char *dash;
	size_t n;

	/* model-Q8_0-00001-of-00003.gguf is a part of model-Q8_0.gguf */
	mb_splitset_artifact_name(file, whole, sizeof(whole));
	dash = strrchr(whole, '-');
	snprintf(out, cap, "%s", dash ? dash + 1 : whole);
	n = strlen(out);
	if (n > 5 && strcmp(out + n - 5, ".gguf") == 0)
		out[n - 5] = '\0';
	return out;
}

const char *mb_publish_recommended(const struct mb_manifest_list *files)
{
	return mb_publish_recommend(files, NULL, NULL, 0);
}

/*
 * With fidelity figures the choice is the smallest file close enough to
 * its F16. The bounds come from llama.cpp's own measurements
 * (tools/perplexity/README.md, LLaMA 2 7B and LLaMA 3 8B against their
 * FP16 on Wikitext-2): Q4_K_M, the usual choice, has a mean KL
 * divergence of 0.013 and 0.031 and the same top token 94.7% and 91.9% of
 * the time; Q8_0 0.0004-0.0014 and 97.7-98.8%; Q6_K 0.002-0.005; the
 * quants people find clearly worse are past both bounds (Q4_0 0.072,
 * Q3_K_M 0.10, Q2_K 0.11-0.45 with 71-86% the same). So mean KL <= 0.05
 * and top-1 >= 90% admit Q4_K_M on both models with room for a shorter
 * evaluation text's noise, and turn away what is a step worse.
 */
static int passes(const struct mb_publish_cand *c)
{
	return c->measured && !c->broken && c->kld_mean <= MB_RECOMMEND_MAX_KLD &&
	       c->top1 >= MB_RECOMMEND_MIN_TOP1;
}

int mb_publish_choose(const struct mb_publish_cand *c, size_t n, char *why,
		      size_t whycap)
{
	static const char *const order[] = { "Q4_K_M", "Q5_K_M", "Q4_K_S",
					     "Q5_K_S", "Q6_K", "Q8_0", "Q4_0",
					     "Q3_K_L", "Q3_K_M", "Q3_K_S",
					     "Q2_K", "F16", "BF16", "F32", NULL };
	char t[64], buf[8];
	int best = -1, measured = 0, pass;
	size_t i, k;

	if (why == NULL) {
		why = buf;
		whycap = sizeof(buf);
	}
	if (n == 0) {
		snprintf(why, whycap, "no files");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (c[i].measured && !c[i].broken)
			measured++;
		if (!passes(&c[i]))
			continue;
		/* a whole file before a set of parts, which Ollama cannot
		 * take; then the smallest */
		if (best < 0 || c[i].parts < c[best].parts ||
		    (c[i].parts == c[best].parts &&
		     (c[i].size < c[best].size ||
		      (c[i].size == c[best].size &&
		       c[i].kld_mean < c[best].kld_mean))))
			best = (int)i;
	}
	if (best >= 0) {
		snprintf(why, whycap, "the smallest with mean KL <= %g and "
			 "top-1 >= %g%%", MB_RECOMMEND_MAX_KLD,
			 100 * MB_RECOMMEND_MIN_TOP1);
		return best;
	}
	if (measured > 0) {
		for (i = 0; i < n; i++)
			if (c[i].measured && !c[i].broken &&
			    (best < 0 || c[i].kld_mean < c[best].kld_mean))
				best = (int)i;
		snprintf(why, whycap, "the closest to the F16: no quant has mean "
			 "KL <= %g and top-1 >= %g%%", MB_RECOMMEND_MAX_KLD,
			 100 * MB_RECOMMEND_MIN_TOP1);
		return best;
	}
	/* by type: the usual best trade of size and quality first, a whole
	 * file before a set of parts; a file found broken only when nothing
	 * else is left */
	for (pass = 0; pass < 4; pass++)
		for (k = 0; order[k] != NULL; k++)
			for (i = 0; i < n; i++)
				if ((pass >= 2 || !c[i].broken) &&
				    c[i].parts == (pass % 2) &&
				    strcmp(mb_publish_type(c[i].name, t, sizeof(t)),
					   order[k]) == 0) {
					snprintf(why, whycap, "by type (no fidelity "
						 "figures)");
					return (int)i;
				}
	for (i = 0; i < n; i++)
		if (!c[i].broken)
			break;
	snprintf(why, whycap, "by type (no fidelity figures)");
	return i < n ? (int)i : 0;
}

/* The last result in arr for file (a retried job may have several), or
 * NULL. Borrowed from arr. */
static const cJSON *fidelity_of(const cJSON *arr, const char *file);

const char *mb_publish_recommend(const struct mb_manifest_list *files,
				 const char *fidelity, char *why, size_t whycap)
{
	struct mb_publish_cand *c;
	const char *name;
	cJSON *fid;
	size_t i, n = 0;
	int k;

	if (files == NULL || files->n == 0)
		return NULL;
	c = calloc(files->n, sizeof(*c));
	if (c == NULL) {
		if (why != NULL)
			snprintf(why, whycap, "by type (out of memory for the "
				 "figures)");
		return mb_publish_recommended(files);
	}
	fid = fidelity ? mb_json_parse(fidelity, strlen(fidelity)) : NULL;
	/* one candidate per artifact: a whole file, or a set of parts by its
	 * first part (which libllama loads) with the size of all of them */
	for (i = 0; i < files->n; i++) {
		const char *name = files->files[i]->name;
		const cJSON *f, *kl, *t1;
		char whole[512];
		unsigned no, count = parts_of(name, &no);
		size_t m;

		if (no != 0)
			continue;
		f = fidelity_of(fid, name);
		if (f == NULL && count > 1) {
			mb_splitset_artifact_name(name, whole, sizeof(whole));
			f = fidelity_of(fid, whole);
		}
		kl = cJSON_GetObjectItemCaseSensitive(f, "kld_mean");
		t1 = cJSON_GetObjectItemCaseSensitive(f, "top1");
		c[n].name = name;
		c[n].parts = count > 1;
		c[n].size = files->files[i]->size;
		if (count > 1) {
			mb_splitset_artifact_name(name, whole, sizeof(whole));
			for (m = 0; m < files->n; m++) {
				char other[512];

				mb_splitset_artifact_name(files->files[m]->name,
							  other, sizeof(other));
				if (m != i && strcmp(other, whole) == 0)
					c[n].size += files->files[m]->size;
			}
		}
		c[n].measured = cJSON_IsNumber(kl) && cJSON_IsNumber(t1);
		c[n].broken = f != NULL && cJSON_IsFalse(
			cJSON_GetObjectItemCaseSensitive(f, "ok"));
		c[n].kld_mean = c[n].measured ? kl->valuedouble : 0;
		c[n].top1 = c[n].measured ? t1->valuedouble : 0;
		n++;
	}
	k = mb_publish_choose(c, n, why, whycap);
	name = k >= 0 ? c[k].name : files->files[0]->name;
	cJSON_Delete(fid);
	free(c);
	return name;
}

const char *mb_publish_whole(const struct mb_manifest_list *files,
			     const char *fidelity, char *why, size_t whycap)
{
	struct mb_manifest_list whole = { 0, NULL };
	const char *rec = NULL;
	unsigned no;
	size_t i;

	if (files == NULL || files->n == 0)
		return NULL;
	whole.files = calloc(files->n, sizeof(*whole.files));
	if (whole.files == NULL)
		return NULL;
	for (i = 0; i < files->n; i++)
		if (parts_of(files->files[i]->name, &no) == 1)
			whole.files[whole.n++] = files->files[i];
	if (whole.n > 0)
		rec = mb_publish_recommend(&whole, fidelity, why, whycap);
	free(whole.files);
	return rec;
}

/* --- chat templates --- */

struct chat_format {
	const char *name;
	const char *marks[2];	/* all must appear in the Jinja template */
	const char *tmpl;	/* Ollama's Go template */
	const char *stops[4];
};

static const struct chat_format formats[] = {
	{ "phi4", { "<|im_start|>", "<|im_sep|>" },
	  "{{ if .System }}<|im_start|>system<|im_sep|>{{ .System }}<|im_end|>"
	  "{{ end }}{{ if .Prompt }}<|im_start|>user<|im_sep|>{{ .Prompt }}"
	  "<|im_end|>{{ end }}<|im_start|>assistant<|im_sep|>{{ .Response }}"
	  "<|im_end|>",
	  { "<|im_start|>", "<|im_sep|>", "<|im_end|>", NULL } },
	{ "chatml", { "<|im_start|>", NULL },
	  "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n"
	  "{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
	  "{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
	  { "<|im_start|>", "<|im_end|>", NULL } },
	{ "llama3", { "<|start_header_id|>", NULL },
	  "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
	  "{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>"
	  "user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
	  "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}"
	  "<|eot_id|>",
	  { "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", NULL } },
	{ "phi3", { "<|user|>", "<|end|>" },
	  "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
	  "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}"
	  "<|assistant|>\n{{ .Response }}<|end|>\n",
	  { "<|end|>", "<|user|>", "<|assistant|>", NULL } },
	{ "inst", { "[INST]", NULL },
	  "[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]",
	  { "[INST]", "[/INST]", NULL } },
};

/* Translates a Jinja chat template of a known format (ChatML, Phi-3,
 * Phi-4, Llama 3, Llama 2 / Mistral [INST]) into an Ollama Go template
 * and its stop strings. Returns the format's name, or NULL when the
 * template is none of them (*tmpl and *stops untouched). */
static const char *ollama_template(const char *jinja, const char **tmpl,
				   const char *const **stops)
{
	size_t i, k;

	if (jinja == NULL)
		return NULL;
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const struct chat_format *f = &formats[i];

		for (k = 0; k < 2 && f->marks[k] != NULL; k++)
			if (strstr(jinja, f->marks[k]) == NULL)
				break;
		if (k < 2 && f->marks[k] != NULL)
			continue;
		*tmpl = f->tmpl;
		*stops = f->stops;
		return f->name;
	}
	return NULL;
}

/* --- reading the recommended GGUF --- */

static const char *kv_str(const struct mb_gguf *g, const char *key)
{
	const struct mb_gguf_kv *kv = g ? mb_gguf_kv(g, key) : NULL;

	return kv && kv->type == MB_GGUF_STRING ? kv->v.s : NULL;
}

/* The text of the token whose id the key holds, or NULL. */
static const char *token_text(const struct mb_gguf *g, const char *key)
{
	const struct mb_gguf_kv *id = g ? mb_gguf_kv(g, key) : NULL;
	const struct mb_gguf_kv *toks = g ? mb_gguf_kv(g, "tokenizer.ggml.tokens")
					  : NULL;
	uint64_t i;

	if (id == NULL || toks == NULL || toks->strs == NULL)
		return NULL;
	if (id->type == MB_GGUF_UINT32 || id->type == MB_GGUF_UINT64)
		i = id->v.u;
	else if (id->type == MB_GGUF_INT32 || id->type == MB_GGUF_INT64)
		i = id->v.i < 0 ? UINT64_MAX : (uint64_t)id->v.i;
	else
		return NULL;
	return i < toks->n ? toks->strs[i] : NULL;
}

/* --- the three files --- */

static int write_buf(const char *dir, const char *name, const struct mb_buf *b,
		     char *err, size_t errcap)
{
	char path[4400];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = b->data ? mb_atomic_write(path, b->data, b->len, 0644) : MB_ENOMEM;
	if (rc != 0)
		mb_seterr(err, errcap, "cannot write '%s': %s", path,
			  mb_strerror(rc));
	return rc;
}

static void iso_now(char *out, size_t cap)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The last fidelity result for file (a retried job may have several), or
 * NULL. Borrowed from arr. */
static const cJSON *fidelity_of(const cJSON *arr, const char *file)
{
	const cJSON *it, *found = NULL;

	cJSON_ArrayForEach(it, arr) {
		const char *f = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(it, "file"));

		if (f != NULL && strcmp(f, file) == 0)
			found = it;
	}
	return found;
}

/* ,"fidelity": {...} for an artifact: the figures, without the file. */
static void add_fidelity(struct mb_buf *b, const cJSON *f)
{
	static const char *const keys[] = { "kld_mean", "kld_p99", "top1",
					    "ppl_ratio", "tokens", NULL };
	int k;

	if (f == NULL)
		return;
	mb_buf_adds(b, ", \"fidelity\": {");
	for (k = 0; keys[k] != NULL; k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, keys[k]);

		mb_buf_addf(b, "%s\"%s\": ", k ? ", " : "", keys[k]);
		if (cJSON_IsNumber(v))
			mb_buf_addf(b, "%.8g", v->valuedouble);
		else
			mb_buf_adds(b, "null");
	}
	mb_buf_adds(b, "}");
}

/* Which converter made the full-precision GGUF, as convert's summary
 * names it: "mibera" for mibera's own (whose summary names none), or
 * "llama.cpp convert_hf_to_gguf.py (llama.cpp TAG COMMIT)". Into out. */
static const char *converter_of(const struct mb_publish *p, char *out,
				size_t cap)
{
	cJSON *c = p->convert ? mb_json_parse(p->convert, strlen(p->convert))
			      : NULL;
	const char *name = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(c, "converter"));

	if (name != NULL && *name != '\0')
		snprintf(out, cap, "%s", name);
	else if (strcmp(p->j->converter, "llama.cpp") == 0)
		snprintf(out, cap, "llama.cpp convert_hf_to_gguf.py (llama.cpp "
			 "%s)", MB_LLAMA_VERSION);
	else
		snprintf(out, cap, "mibera");
	cJSON_Delete(c);
	return out;
}

/* A worker step's summary object (text) into b with its "file" cut to the
 * file's name: where the file lay on the worker is the worker's business,
 * and the artifacts listed beside it are named the same way. "null" for
 * none, the text as it is when it is not an object. */
static void summary_named(struct mb_buf *b, const char *text)
{
	cJSON *c = text ? mb_json_parse(text, strlen(text)) : NULL;
	const char *file = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(c, "file"));
	const char *slash = file ? strrchr(file, '/') : NULL;
	cJSON *name = slash && slash[1] ? cJSON_CreateString(slash + 1) : NULL;
	char *out = NULL;

	if (name != NULL &&
	    !cJSON_ReplaceItemInObjectCaseSensitive(c, "file", name))
		cJSON_Delete(name);
	else if (name != NULL)
		out = cJSON_PrintUnformatted(c);
	mb_buf_adds(b, out ? out : text ? text : "null");
	cJSON_free(out);
	cJSON_Delete(c);
}

static void provenance(const struct mb_publish *p, const char *rec,
		       const char *why, struct mb_buf *b)
{
	cJSON *fid = p->fidelity ? mb_json_parse(p->fidelity,
						 strlen(p->fidelity)) : NULL;
	const struct mb_job_row *j = p->j;
	char hex[MB_SHA256_HEX], when[32], conv[200];
	size_t i, n;

	iso_now(when, sizeof(when));
	mb_buf_adds(b, "{\n  \"version\": 1,\n  \"job\": ");
	mb_buf_addf(b, "%lld,\n  \"created\": \"%s\",\n  \"source\": {",
		    (long long)j->id, when);
	mb_buf_adds(b, mb_job_source_is_path(j->source) ? "\"path\": " : "\"repo\": ");
	mb_json_quote(b, j->source);
	mb_buf_adds(b, ", \"revision\": ");
	mb_json_quote(b, j->revision[0] ? j->revision : "main");
	mb_buf_adds(b, ", \"commit\": ");
	if (p->commit != NULL && *p->commit != '\0')
		mb_json_quote(b, p->commit);
	else
		mb_buf_adds(b, "null");
	mb_buf_adds(b, "},\n  \"worker\": ");
	mb_json_quote(b, p->worker);
	mb_buf_addf(b, ",\n  \"layout\": \"%s\",\n  \"outtype\": \"%s\",\n"
		    "  \"quants\": ", j->layout, j->outtype);
	mb_json_quote(b, j->quants);
	mb_buf_addf(b, ",\n  \"mibera\": \"%s\",\n  \"llama_cpp\": \"%s\",\n"
		    "  \"converter\": ", MB_VERSION, MB_LLAMA_VERSION);
	mb_json_quote(b, converter_of(p, conv, sizeof(conv)));
	mb_buf_adds(b, ",\n  \"convert\": ");
	summary_named(b, p->convert);
	mb_buf_addf(b, ",\n  \"repairs\": %s,\n  \"artifacts\": [",
		    p->repairs ? p->repairs : "[]");
	for (i = 0, n = 0; p->files != NULL && i < p->files->n; i++) {
		const struct mb_manifest *m = p->files->files[i];
		unsigned no, count = parts_of(m->name, &no), k;
		char whole[512], part[600];
		uint64_t total = 0;

		if (no != 0)
			continue; /* with its first part */
		mb_splitset_artifact_name(m->name, whole, sizeof(whole));
		mb_buf_adds(b, n++ ? ",\n    {\"file\": " : "\n    {\"file\": ");
		mb_json_quote(b, m->name);
		if (count == 1) {
			mb_sha256_hex(m->sha256, hex);
			mb_buf_addf(b, ", \"size\": %llu, \"sha256\": \"%s\", "
				    "\"chunk_size\": %llu",
				    (unsigned long long)m->size, hex,
				    (unsigned long long)m->chunk_size);
		} else {
			/* one artifact of count parts, loaded from the first */
			mb_buf_adds(b, ", \"artifact\": ");
			mb_json_quote(b, whole);
			mb_buf_adds(b, ", \"parts\": [");
			for (k = 0; k < count; k++) {
				const struct mb_manifest *pm;

				mb_splitset_part_path(whole, k, count, part,
						      sizeof(part));
				pm = mb_manifest_list_find(p->files, part);
				if (pm == NULL)
					continue;
				total += pm->size;
				mb_sha256_hex(pm->sha256, hex);
				mb_buf_adds(b, k ? ", {\"file\": " : "{\"file\": ");
				mb_json_quote(b, pm->name);
				mb_buf_addf(b, ", \"size\": %llu, \"sha256\": \"%s\", "
					    "\"chunk_size\": %llu}",
					    (unsigned long long)pm->size, hex,
					    (unsigned long long)pm->chunk_size);
			}
			mb_buf_addf(b, "], \"size\": %llu",
				    (unsigned long long)total);
		}
		add_fidelity(b, fidelity_of(fid, whole));
		mb_buf_adds(b, "}");
	}
	mb_buf_addf(b, "\n  ],\n  \"recommended\": ");
	if (rec != NULL)
		mb_json_quote(b, rec);
	else
		mb_buf_adds(b, "null");
	mb_buf_adds(b, ",\n  \"recommended_why\": ");
	if (rec != NULL)
		mb_json_quote(b, why);
	else
		mb_buf_adds(b, "null");
	mb_buf_adds(b, ",\n  \"imatrix\": ");
	summary_named(b, p->imatrix);
	mb_buf_addf(b, ",\n  \"smoke\": %s\n}\n", p->smoke ? p->smoke : "null");
	cJSON_Delete(fid);
}

/* The quality table: each quant's distance from the F16. */
static void card_fidelity(const struct mb_publish *p, struct mb_buf *b)
{
	cJSON *fid = p->fidelity ? mb_json_parse(p->fidelity,
						 strlen(p->fidelity)) : NULL;
	size_t i;
	int any = 0;

	for (i = 0; p->files != NULL && i < p->files->n; i++) {
		char whole[512];
		unsigned no;
		const cJSON *f;

		mb_splitset_artifact_name(p->files->files[i]->name, whole,
					  sizeof(whole));
		f = parts_of(p->files->files[i]->name, &no) >= 1 && no == 0
			    ? fidelity_of(fid, whole) : NULL;
		if (f == NULL)
			continue;
		if (!any++)
			mb_buf_adds(b, "\n## Quality against the F16\n\n"
				    "Each quant and the F16 it was made from read "
				    "the same held-out text (prose in five "
				    "languages, mathematics, dialogue, code); per "
				    "next-token prediction, the KL divergence of "
				    "the quant's distribution from the F16's, how "
				    "often both rank the same token first, and the "
				    "ratio of their perplexities, as "
				    "`llama-perplexity --kl-divergence` defines "
				    "them. Lower KL divergence is closer.\n\n"
				    "| file | KL divergence (mean) | KL divergence "
				    "(99th percentile) | same top token | PPL "
				    "ratio |\n|---|---:|---:|---:|---:|\n");
		mb_buf_addf(b, "| %s | %.5f | %.5f | %.1f%% | %.4f |\n",
			    whole,
			    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "kld_mean")),
			    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "kld_p99")),
			    100 * cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "top1")),
			    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(f, "ppl_ratio")));
	}
	if (any && p->imatrix != NULL)
		mb_buf_adds(b, "\nThe quants below 5 bits per weight were made "
			    "with an importance matrix computed on a separate "
			    "calibration text.\n");
	cJSON_Delete(fid);
}

/* Which file to start with, and why: its figures when it has them. */
static void card_recommended(const struct mb_publish *p, const char *rec,
			     const char *why, struct mb_buf *b)
{
	cJSON *fid = p->fidelity ? mb_json_parse(p->fidelity,
						 strlen(p->fidelity)) : NULL;
	const cJSON *f = fidelity_of(fid, rec);
	const cJSON *kl = cJSON_GetObjectItemCaseSensitive(f, "kld_mean");
	const cJSON *t1 = cJSON_GetObjectItemCaseSensitive(f, "top1");

	mb_buf_addf(b, "\nRecommended: **%s**, %s", rec, why);
	if (cJSON_IsNumber(kl) && cJSON_IsNumber(t1))
		mb_buf_addf(b, " (mean KL divergence %.5f, same top token "
			    "%.1f%% of the time, against the F16)",
			    kl->valuedouble, 100 * t1->valuedouble);
	mb_buf_adds(b, ".\n");
	cJSON_Delete(fid);
}

/* Adds s to the stop list unless it is there or empty. */
static void add_stop(const char **list, size_t *n, size_t cap, const char *s)
{
	size_t i;

	if (s == NULL || *s == '\0' || strchr(s, '"') != NULL ||
	    strchr(s, '\n') != NULL)
		return;
	for (i = 0; i < *n; i++)
		if (strcmp(list[i], s) == 0)
			return;
	if (*n < cap)
		list[(*n)++] = s;
}

void mb_publish_chat(const struct mb_gguf *g, struct mb_publish_chat *c)
{
	const char *jinja = kv_str(g, "tokenizer.chat_template");
	const char *const *fstops = NULL;
	size_t i, cap = sizeof(c->stops) / sizeof(c->stops[0]);

	memset(c, 0, sizeof(*c));
	c->has_jinja = jinja != NULL;
	c->format = ollama_template(jinja, &c->tmpl, &fstops);
	if (c->format != NULL)
		for (i = 0; fstops[i] != NULL; i++)
			add_stop(c->stops, &c->nstops, cap, fstops[i]);
	else if (jinja == NULL)
		c->tmpl = "{{ .Prompt }}";	/* a base model: plain text */
	add_stop(c->stops, &c->nstops, cap,
		 token_text(g, "tokenizer.ggml.eos_token_id"));
	add_stop(c->stops, &c->nstops, cap,
		 token_text(g, "tokenizer.ggml.eot_token_id"));
}

static void modelfile(const struct mb_publish *p, const struct mb_gguf *g,
		      const char *rec, const char *from, const char *why,
		      struct mb_buf *b)
{
	struct mb_publish_chat c;
	size_t i;

	mb_publish_chat(g, &c);
	mb_buf_addf(b, "# Ollama Modelfile for %s, made by mibera %s.\n"
		    "#   ollama create NAME -f Modelfile\n", p->j->source,
		    MB_VERSION);
	if (from == NULL)
		mb_buf_addf(b, "# %s is a set of parts and Ollama takes one GGUF "
			    "file: no file here\n# is one Ollama can create a "
			    "model from (submit again with a larger\n# "
			    "--split-max-size, or run the set with llama.cpp)\n",
			    rec);
	else if (strcmp(from, rec) != 0)
		mb_buf_addf(b, "# the recommended %s is a set of parts, which "
			    "Ollama cannot take;\n# this is the whole file "
			    "chosen the same way: %s\n", rec, why);
	mb_buf_addf(b, "FROM ./%s\n", from ? from : rec);
	if (c.format != NULL) {
		mb_buf_addf(b, "\n# translated from the model's chat template "
			    "(%s format)\nTEMPLATE \"\"\"%s\"\"\"\n", c.format,
			    c.tmpl);
	} else if (c.has_jinja) {
		mb_buf_adds(b, "\n# The chat template is not one of the formats "
			    "mibera translates;\n# Ollama reads it from the GGUF "
			    "(tokenizer.chat_template).\n");
	} else {
		mb_buf_adds(b, "\n# The model has no chat template: a base "
			    "model, prompted as plain text.\n"
			    "TEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n");
	}
	if (c.nstops > 0)
		mb_buf_adds(b, "\n");
	for (i = 0; i < c.nstops; i++)
		mb_buf_addf(b, "PARAMETER stop \"%s\"\n", c.stops[i]);
}

static void card(const struct mb_publish *p, const char *rec, const char *why,
		 struct mb_buf *b)
{
	const struct mb_job_row *j = p->j;
	cJSON *rep = p->repairs ? mb_json_parse(p->repairs, strlen(p->repairs))
				: NULL;
	cJSON *smoke = p->smoke ? mb_json_parse(p->smoke, strlen(p->smoke)) : NULL;
	const cJSON *it;
	char hex[MB_SHA256_HEX], conv[200];
	const char *slash = strrchr(j->source, '/');
	size_t i;
	int nrep = cJSON_GetArraySize(rep);

	mb_buf_adds(b, "---\n");
	if (!mb_job_source_is_path(j->source))
		/* the hub links a quantized model to its source by these */
		mb_buf_addf(b, "base_model: %.*s\nbase_model_relation: quantized\n",
			    (int)strcspn(j->source, "@"), j->source);
	mb_buf_adds(b, "quantized_by: mibera\n"
		       "tags:\n- gguf\n- llama.cpp\n- mibera\n---\n\n");
	mb_buf_addf(b, "# %s GGUF\n\n", slash ? slash + 1 : j->source);
	if (mb_job_source_is_path(j->source))
		mb_buf_addf(b, "GGUF files of the model in `%s`", j->source);
	else
		mb_buf_addf(b, "GGUF files of [%s](https://huggingface.co/%s)",
			    j->source, j->source);
	if (p->commit != NULL && *p->commit != '\0')
		mb_buf_addf(b, " at commit `%.12s`", p->commit);
	if (strcmp(converter_of(p, conv, sizeof(conv)), "mibera") == 0)
		mb_buf_addf(b, ", converted by mibera %s with llama.cpp %s (%s "
			    "layout, %s weights before quantization). "
			    "`provenance.json` has the details.\n\n", MB_VERSION,
			    MB_LLAMA_VERSION, j->layout, j->outtype);
	else
		mb_buf_addf(b, ", converted by %s (%s weights before "
			    "quantization: mibera does not convert this "
			    "architecture itself) and quantized by mibera %s with "
			    "llama.cpp %s. `provenance.json` has the details.\n\n",
			    conv, j->outtype, MB_VERSION, MB_LLAMA_VERSION);
	mb_buf_adds(b, "## Files\n\n| file | size | sha256 |\n|---|---:|---|\n");
	for (i = 0; p->files != NULL && i < p->files->n; i++) {
		const struct mb_manifest *m = p->files->files[i];
		unsigned no, count = parts_of(m->name, &no), k;
		char whole[512], part[600];
		uint64_t size = 0;

		if (no != 0)
			continue; /* with its first part */
		mb_splitset_artifact_name(m->name, whole, sizeof(whole));
		for (k = 0; k < count; k++) {
			const struct mb_manifest *pm = m;

			if (count > 1) {
				mb_splitset_part_path(whole, k, count, part,
						      sizeof(part));
				pm = mb_manifest_list_find(p->files, part);
			}
			size += pm != NULL ? pm->size : 0;
		}
		mb_buf_addf(b, "| %s%s", m->name,
			    strcmp(m->name, rec) == 0 ? " (recommended)" : "");
		if (count > 1)
			mb_buf_addf(b, " and %u more parts (load the first: "
				    "llama.cpp finds the others)", count - 1);
		mb_buf_addf(b, " | %.2f %s | ",
			    size >= 1000000000ull ? (double)size / 1e9
						  : (double)size / 1e6,
			    size >= 1000000000ull ? "GB" : "MB");
		for (k = 0; k < count; k++) {
			const struct mb_manifest *pm = m;

			if (count > 1) {
				mb_splitset_part_path(whole, k, count, part,
						      sizeof(part));
				pm = mb_manifest_list_find(p->files, part);
			}
			if (pm == NULL)
				continue;
			mb_sha256_hex(pm->sha256, hex);
			mb_buf_addf(b, "%s`%s`", k ? "<br>" : "", hex);
		}
		mb_buf_adds(b, " |\n");
	}
	card_recommended(p, rec, why, b);
	mb_buf_adds(b, "\n## How they were checked\n\nEach file was copied "
		    "back from the machine that made it with every chunk and "
		    "the whole file checked against the sha256 computed there");
	if (cJSON_GetArraySize(smoke) > 0) {
		mb_buf_adds(b, ", then loaded by llama.cpp on a CPU, which "
			    "generated text greedily from a fixed prompt:\n\n"
			    "| file | load | prompt | generation | logits | text |\n"
			    "|---|---:|---:|---:|---|---|\n");
		cJSON_ArrayForEach(it, smoke) {
			const char *text = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(it, "text"));
			char shown[81];
			size_t k;

			snprintf(shown, sizeof(shown), "%s", text ? text : "");
			for (k = 0; shown[k]; k++)
				if (shown[k] == '\n' || shown[k] == '|' ||
				    shown[k] == '`')
					shown[k] = ' ';
			mb_buf_addf(b, "| %s | %.2f s | %.1f tok/s | %.1f tok/s | "
				    "%s | `%s` |\n",
				    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "file")),
				    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "load_s")),
				    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "prompt_tps")),
				    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "gen_tps")),
				    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "finite"))
					    ? "finite" : "NOT finite", shown);
		}
	} else {
		mb_buf_adds(b, ". They were not run (the job skipped the smoke "
			    "test).\n");
	}
	card_fidelity(p, b);
	mb_buf_adds(b, "\n## Config repairs\n\n");
	if (nrep <= 0) {
		mb_buf_adds(b, "config.json agreed with the weights; nothing was "
			    "repaired.\n");
	} else {
		mb_buf_addf(b, "config.json disagreed with the weights in %d "
			    "field%s; the conversion used what the weights "
			    "show:\n\n", nrep, nrep == 1 ? "" : "s");
		cJSON_ArrayForEach(it, rep) {
			char *claimed = cJSON_PrintUnformatted(
				cJSON_GetObjectItemCaseSensitive(it, "claimed"));
			char *actual = cJSON_PrintUnformatted(
				cJSON_GetObjectItemCaseSensitive(it, "actual"));

			mb_buf_addf(b, "- `%s`: %s -> %s (%s: %s)\n",
				    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "key")),
				    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "missing"))
					    ? "missing" : claimed ? claimed : "?",
				    actual ? actual : "?",
				    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "source")),
				    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "evidence")));
			cJSON_free(claimed);
			cJSON_free(actual);
		}
	}
	mb_buf_addf(b, "\n## Run\n\n```\nllama-cli -m %s -cnv\nollama create "
		    "%s -f Modelfile\n```\n", rec,
		    slash ? slash + 1 : "model");
	cJSON_Delete(rep);
	cJSON_Delete(smoke);
}

int mb_publish(const struct mb_publish *p, char *err, size_t errcap)
{
	char why[256] = "", fwhy[256] = "";
	const char *rec = mb_publish_recommend(p->files, p->fidelity, why,
					       sizeof(why));
	struct mb_gguf *g = NULL;
	struct mb_buf b;
	char path[4400], sub[512];
	int rc;

	mb_buf_init(&b, 16u << 20);
	provenance(p, rec, why, &b);
	rc = write_buf(p->dir, "provenance.json", &b, err, errcap);
	if (rc == 0 && rec != NULL) {
		unsigned no;
		const char *from = parts_of(rec, &no) == 1
			? rec : mb_publish_whole(p->files, p->fidelity, fwhy,
						 sizeof(fwhy));

		snprintf(path, sizeof(path), "%s/%s", p->dir, from ? from : rec);
		/* a header it cannot read only costs the template */
		if (mb_gguf_read(path, &g, sub, sizeof(sub)) != 0)
			g = NULL;
		mb_buf_reset(&b);
		modelfile(p, g, rec, from, fwhy, &b);
		rc = write_buf(p->dir, "Modelfile", &b, err, errcap);
	}
	if (rc == 0 && rec != NULL) {
		mb_buf_reset(&b);
		card(p, rec, why, &b);
		rc = write_buf(p->dir, "README.md", &b, err, errcap);
	}
	mb_gguf_free(g);
	mb_buf_release(&b);
	return rc;
}
