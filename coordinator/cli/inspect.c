/*
 * mibera-job inspect SOURCE [--json] [--quant LIST]: what a model really
 * is, before anything is rented or downloaded. SOURCE is org/name[@rev] on
 * the hub (only each shard's header is read, with range requests) or a
 * local directory. Exit codes: 0 convertible (possibly after repairs),
 * 3 not convertible, 2 usage, 1 other errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/text.h"
#include "common/tokenizer.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/converter.h"

#define EXIT_NOT_CONVERTIBLE 3
/* config.json, the card and the index are small; these caps only stop a
 * hostile repo from making us hold gigabytes */
#define MAX_SMALL_FILE (8u << 20)
#define MAX_INDEX_FILE (64u << 20)

struct source {
	int hub;			/* 1: a hub repo, 0: a directory */
	char repo[128];
	char rev[128];
	char commit[41];
	char dir[4096];			/* local directory (or cache snapshot) */
	char note[600];			/* e.g. "offline: from the local cache" */
	uint64_t side_bytes;		/* non-weight files to download */
	size_t nfiles;
	uint64_t hub_bytes;		/* bytes the hub sent us */
};

static const struct cli_opt opts[] = {
	{ "json", 0, NULL, NULL, "print the report as JSON (schema in "
	  "proto/PROTOCOL.md)" },
	{ "quant", 0, "LIST", NULL, "the quant types to estimate (default "
	  "Q4_K_M,Q3_K_M)" },
	CLI_USER_OPTS,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job inspect", "SOURCE", 1, 1,
	"What a model really is, before anything is rented or downloaded. "
	"SOURCE is\norg/name[@revision] on the hub (only each shard's header "
	"is read) or a local\ndirectory. Exit 0: convertible (possibly after "
	"repairs), 3: not convertible.", opts,
};

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Files fetch would download beside the shards. */
static int side_file(const char *path)
{
	static const char *const names[] = {
		"config.json", "generation_config.json", "tokenizer.json",
		"tokenizer_config.json", "tokenizer.model",
		"special_tokens_map.json", "README.md", "chat_template.jinja",
		"model.safetensors.index.json", "added_tokens.json",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(path, names[i]) == 0)
			return 1;
	return 0;
}

/* The snapshot of repo at rev in the local Hugging Face cache, if any. */
static int cache_snapshot(const char *repo, const char *rev, char *out,
			  size_t cap, char *commit)
{
	const char *hub = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME");
	const char *xdg = getenv("XDG_CACHE_HOME"), *user = getenv("HOME");
	char root[2048], ref[2600], org[128], *slash;
	char *data = NULL;
	size_t len;

	if (hub != NULL && *hub != '\0')
		snprintf(root, sizeof(root), "%s", hub);
	else if (home != NULL && *home != '\0')
		snprintf(root, sizeof(root), "%s/hub", home);
	else if (xdg != NULL && *xdg != '\0')
		snprintf(root, sizeof(root), "%s/huggingface/hub", xdg);
	else if (user != NULL)
		snprintf(root, sizeof(root), "%s/.cache/huggingface/hub", user);
	else
		return -1;
	snprintf(org, sizeof(org), "%s", repo);
	slash = strchr(org, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	if (strlen(rev) == 40 && strspn(rev, "0123456789abcdef") == 40) {
		memcpy(commit, rev, 41);
	} else {
		snprintf(ref, sizeof(ref), "%s/models--%s--%s/refs/%s", root, org,
			 slash + 1, rev);
		if (mb_read_file(ref, 64, &data, &len) != 0)
			return -1;
		while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
			data[--len] = '\0';
		if (len != 40 || strspn(data, "0123456789abcdef") != 40) {
			free(data);
			return -1;
		}
		memcpy(commit, data, 41);
		free(data);
	}
	snprintf(out, cap, "%s/models--%s--%s/snapshots/%s", root, org,
		 slash + 1, commit);
	return is_dir(out) ? 0 : -1;
}

static char *read_local(const char *dir, const char *name, size_t max,
			size_t *len)
{
	char path[4200];
	char *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*len = 0;
	if (mb_read_file(path, max, &data, len) != 0)
		return NULL;
	return data;
}

/* Reads a small hub file whole; NULL when it is missing (or on error,
 * with the hub's message left in h->err). */
static char *read_hub(struct mb_hub *h, const struct source *s,
		      const struct mb_hub_repo *r, const char *name,
		      size_t max, size_t *len, int *rc)
{
	struct mb_buf b;
	char *out;

	*len = 0;
	*rc = 0;
	if (mb_hub_repo_find(r, name) == NULL)
		return NULL;
	mb_buf_init(&b, max);
	*rc = mb_hub_read(h, s->repo, s->commit, name, 0, 0, &b);
	if (*rc != 0) {
		mb_buf_release(&b);
		return NULL;
	}
	out = mb_buf_detach(&b, len);
	mb_buf_release(&b);
	return out;
}

/* The tokenizer, read as convert reads it (common/tokenizer.h): what it
 * refuses makes the model not convertible here too, before a box is paid
 * for. A hub repo's tokenizer files are read into a private temporary
 * directory first. */
static void check_tokenizer(struct mb_hub *h, const struct source *s,
			    const struct mb_hub_repo *r, struct mb_modelcfg *c)
{
	static const char *const files[] = {
		"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
		"added_tokens.json", "config.json", "chat_template.jinja", NULL,
	};
	char tmp[4096], path[4300], sub[512] = "";
	const char *dir = s->dir, *t = getenv("TMPDIR");
	struct mb_vocab *v = NULL;
	int rc, i;

	tmp[0] = '\0';
	if (s->hub) {
		snprintf(tmp, sizeof(tmp), "%s/mibera-inspect-XXXXXX",
			 t != NULL && *t != '\0' ? t : "/tmp");
		if (mkdtemp(tmp) == NULL) {
			snprintf(c->reason, sizeof(c->reason), "cannot make a "
				 "temporary directory for the tokenizer: %s",
				 strerror(errno));
			c->convertible = 0;
			return;
		}
		for (i = 0; files[i] != NULL; i++) {
			size_t len;
			int frc;
			char *data = read_hub(h, s, r, files[i], MB_VOCAB_MAX_FILE,
					      &len, &frc);

			if (data == NULL)
				continue;
			snprintf(path, sizeof(path), "%s/%s", tmp, files[i]);
			mb_atomic_write(path, data, len, 0600);
			free(data);
		}
		dir = tmp;
	}
	rc = mb_vocab_load_dir(dir, c->vocab_rows, &v, sub, sizeof(sub));
	if (rc != 0) {
		c->convertible = 0;
		snprintf(c->reason, sizeof(c->reason), "tokenizer: %.480s", sub);
	}
	mb_vocab_free(v);
	if (tmp[0] != '\0')
		mb_rmtree(tmp);
}

/* Reads one shard's header with two range requests: 8 bytes, then N. */
static int hub_header(struct mb_hub *h, const struct source *s,
		      const struct mb_hub_file *f, struct mb_st_file **out,
		      char *err, size_t errcap)
{
	struct mb_buf b;
	uint64_t n;
	int rc;

	mb_buf_init(&b, MB_ST_MAX_HEADER);
	rc = mb_hub_read(h, s->repo, s->commit, f->path, 0, 8, &b);
	if (rc == 0 && b.len != 8)
		rc = MB_EPROTO;
	if (rc != 0) {
		snprintf(err, errcap, "%s", rc == MB_EPROTO
				 ? "the hub sent the wrong number of bytes"
				 : h->err);
		goto out;
	}
	rc = mb_st_header_len((const uint8_t *)b.data, f->size, &n, err, errcap);
	if (rc != 0)
		goto out;
	mb_buf_reset(&b);
	rc = mb_hub_read(h, s->repo, s->commit, f->path, 8, n, &b);
	if (rc == 0 && b.len != n)
		rc = MB_EPROTO;
	if (rc != 0) {
		snprintf(err, errcap, "%s", rc == MB_EPROTO
				 ? "the hub sent the wrong number of bytes"
				 : h->err);
		goto out;
	}
	rc = mb_st_parse_header(b.data, n, f->size, out, err, errcap);
out:
	mb_buf_release(&b);
	return rc;
}

/* Reads the model's headers from the hub (index first when there is one). */
static int hub_model(struct mb_hub *h, const struct source *s,
		     const struct mb_hub_repo *r, struct mb_st_model **out,
		     char *err, size_t errcap)
{
	const struct mb_hub_file *idx = mb_hub_repo_find(r, "model.safetensors.index.json");
	struct mb_st_model *m = NULL;
	char sub[512];
	size_t i, len;
	char *json;
	int rc;

	*out = NULL;
	if (idx != NULL) {
		json = read_hub(h, s, r, idx->path, MAX_INDEX_FILE, &len, &rc);
		if (json == NULL) {
			snprintf(err, errcap, "cannot read the index: %s", h->err);
			return rc ? rc : MB_ENOENT;
		}
		rc = mb_st_index_parse(json, len, &m, err, errcap);
		free(json);
		if (rc != 0)
			return rc;
	} else {
		const struct mb_hub_file *one = NULL;

		for (i = 0; i < r->nfiles; i++) {
			size_t n = strlen(r->files[i].path);

			if (n > 12 && strchr(r->files[i].path, '/') == NULL &&
			    strcmp(r->files[i].path + n - 12, ".safetensors") == 0) {
				if (one != NULL) {
					snprintf(err, errcap, "several .safetensors "
						 "files and no "
						 "model.safetensors.index.json");
					return MB_EFORMAT;
				}
				one = &r->files[i];
			}
		}
		if (one == NULL) {
			snprintf(err, errcap, "no .safetensors weights in the "
				 "repository (other formats are not supported)");
			return MB_ENOENT;
		}
		m = NULL;
		{
			struct mb_st_file *f;

			rc = hub_header(h, s, one, &f, sub, sizeof(sub));
			if (rc != 0) {
				snprintf(err, errcap, "'%s': %s", one->path, sub);
				return rc;
			}
			rc = mb_st_model_single(one->path, f, &m);
			if (rc != 0)
				return rc;
		}
	}
	for (i = 0; idx != NULL && i < m->nshards; i++) {
		const struct mb_hub_file *f = mb_hub_repo_find(r, m->shards[i]);
		struct mb_st_file *sf;

		if (f == NULL) {
			snprintf(err, errcap, "the index names shard '%s', which "
				 "the repository does not have", m->shards[i]);
			rc = MB_ENOENT;
			goto fail;
		}
		rc = hub_header(h, s, f, &sf, sub, sizeof(sub));
		if (rc != 0) {
			snprintf(err, errcap, "shard '%s': %s", f->path, sub);
			goto fail;
		}
		rc = mb_st_model_set_file(m, i, sf);
		if (rc != 0)
			goto fail;
	}
	rc = mb_st_model_finish(m, err, errcap);
	if (rc != 0)
		goto fail;
	*out = m;
	return 0;
fail:
	mb_st_model_free(m);
	return rc;
}

static void human_bytes(uint64_t n, char *out, size_t cap)
{
	if (n >= 1000000000ull)
		snprintf(out, cap, "%.1f GB", (double)n / 1e9);
	else if (n >= 1000000ull)
		snprintf(out, cap, "%.1f MB", (double)n / 1e6);
	else if (n >= 1000ull)
		snprintf(out, cap, "%.1f kB", (double)n / 1e3);
	else
		snprintf(out, cap, "%llu B", (unsigned long long)n);
}

/* v as JSON text made printable, whole ("(missing)" for none); the caller
 * frees it. NULL when out of memory. */
static char *json_whole(const cJSON *v)
{
	char *s, *out;
	size_t n;

	if (v == NULL)
		return mb_strdup("(missing)");
	if ((s = cJSON_PrintUnformatted(v)) == NULL)
		return NULL;
	n = strlen(s) + 1;
	if ((out = malloc(n)) != NULL)
		mb_printable(out, n, s);
	free(s);
	return out;
}

/* The config table's value columns widen to the widest value up to this
 * (["DeepseekV3ForCausalLM"] fits, and the table stays near 80 columns);
 * a longer value (a rope_scaling object, a per-layer list, a long
 * architecture name) is cut there, says so, and is printed whole under
 * the table. */
#define CELL_W 26

/* The config values as a table, then the ones cut in it, whole. */
static void print_config(const struct mb_modelcfg *c)
{
	char *cl[MB_CFG_NKEYS] = { NULL }, *ac[MB_CFG_NKEYS] = { NULL };
	char a[CELL_W + 8], b[CELL_W + 8];
	int k, cw = 7, aw = 6, cut = 0;

	for (k = 0; k < MB_CFG_NKEYS; k++) {
		size_t n1, n2;

		if (c->v[k].value == NULL)
			continue;
		cl[k] = json_whole(c->v[k].claimed);
		ac[k] = json_whole(c->v[k].value);
		n1 = cl[k] ? strlen(cl[k]) : 1;
		n2 = ac[k] ? strlen(ac[k]) : 1;
		if (n1 > CELL_W || n2 > CELL_W)
			cut++;
		if ((int)n1 > cw)
			cw = n1 > CELL_W ? CELL_W : (int)n1;
		if ((int)n2 > aw)
			aw = n2 > CELL_W ? CELL_W : (int)n2;
	}
	printf("\n%-34s %-*s %-*s %s\n", "field", cw, "claimed", aw, "actual",
	       "source");
	for (k = 0; k < MB_CFG_NKEYS; k++) {
		if (c->v[k].value == NULL)
			continue;
		printf("%-34s %-*s %-*s %s%s\n", mb_cfg_key_name(k), cw,
		       cli_fit(cl[k] ? cl[k] : "?", (size_t)cw, 0, a, sizeof(a)),
		       aw, cli_fit(ac[k] ? ac[k] : "?", (size_t)aw, 0, b, sizeof(b)),
		       mb_src_name(c->v[k].src),
		       c->v[k].repaired ? "  (repaired)" : "");
	}
	if (cut > 0) {
		printf("\nin full (cut above)\n");
		for (k = 0; k < MB_CFG_NKEYS; k++) {
			if (cl[k] == NULL || ac[k] == NULL ||
			    (strlen(cl[k]) <= CELL_W && strlen(ac[k]) <= CELL_W))
				continue;
			if (strcmp(cl[k], ac[k]) == 0)
				printf("  %s: %s\n", mb_cfg_key_name(k), ac[k]);
			else
				printf("  %s: %s -> %s\n", mb_cfg_key_name(k), cl[k],
				       ac[k]);
		}
	}
	for (k = 0; k < MB_CFG_NKEYS; k++) {
		free(cl[k]);
		free(ac[k]);
	}
}

/* What the repo says (names, evidence, reasons quoting config.json) on a
 * terminal: printable only. A few at a time in one printf. */
static const char *pr(const char *s)
{
	static char ring[6][1024];
	static int next;
	char *out = ring[next];

	next = (next + 1) % 6;
	return mb_printable(out, sizeof(ring[0]), s ? s : "");
}

static void print_human(const struct source *s, const struct mb_st_model *m,
			const struct mb_modelcfg *c, const struct mb_estimate *e,
			const struct mb_foreign *f, const char *src)
{
	char a[64], t[64];
	size_t i, nrep = mb_modelcfg_nrepairs(c);
	int k;

	if (s->hub)
		printf("model      %s @ %s (revision %s)\n", s->repo, pr(s->commit),
		       s->rev);
	else
		printf("model      %s\n", s->dir);
	human_bytes(m ? m->total_bytes : 0, a, sizeof(a));
	printf("weights    %zu shard%s, %zu tensors, %s\n", m ? m->nshards : 0,
	       m && m->nshards == 1 ? "" : "s", m ? m->ntensors : 0, a);
	if (s->note[0] != '\0')
		printf("note       %s\n", pr(s->note));
	if (f != NULL) {
		char name[200];

		/* what the model looks like, though mibera does not convert it */
		printf("family     %s%s%s%s: not one mibera converts natively\n",
		       pr(mb_converter_foreign_name(f, name, sizeof(name))),
		       f->llama_arch ? ", llama.cpp arch '" : "",
		       f->llama_arch ? f->llama_arch : "",
		       f->llama_arch ? "'" : "");
	} else {
		printf("family     %s\n", mb_family_name(c->family));
	}
	if (c->base_name[0] != '\0')
		printf("base       %s (%s)\n", pr(c->base_name),
		       c->base_matches ? "shapes match" : "shapes differ");
	if (c->known_base[0] != '\0')
		printf("known base %s (shapes match)\n", pr(c->known_base));
	if (!c->convertible)
		printf("verdict    NOT CONVERTIBLE: %s\n", pr(c->reason));
	if (f != NULL) {
		char way[1200];

		printf("way out    %s\n", pr(mb_converter_way_out(f, src, way,
							       sizeof(way))));
	}
	else if (c->convertible && nrep > 0)
		printf("verdict    convertible after %zu repair%s to "
		       "config.json\n", nrep, nrep == 1 ? "" : "s");
	else if (c->convertible)
		printf("verdict    convertible; config.json is right\n");
	if (c->family != MB_FAMILY_UNKNOWN)
		print_config(c);
	if (nrep > 0) {
		printf("\nrepairs\n");
		for (k = 0; k < MB_CFG_NKEYS; k++) {
			if (!c->v[k].repaired)
				continue;
			char *cl = json_whole(c->v[k].claimed);
			char *ac = json_whole(c->v[k].value);

			printf("  %s: %s -> %s\n      from %s: %s\n",
			       mb_cfg_key_name(k), cl ? cl : "?", ac ? ac : "?",
			       mb_src_name(c->v[k].src), pr(c->v[k].evidence));
			free(cl);
			free(ac);
		}
	}
	if (e != NULL) {
		printf("\nestimates\n");
		human_bytes(e->download, a, sizeof(a));
		printf("  %-24s %10s\n", "download", a);
		human_bytes(e->f16, a, sizeof(a));
		printf("  %-24s %10s\n", "F16 GGUF", a);
		for (i = 0; i < e->nquants; i++) {
			human_bytes(e->quants[i].bytes, a, sizeof(a));
			human_bytes(e->quants[i].ram, t, sizeof(t));
			printf("  %-24s %10s   runs in about %s of RAM\n",
			       e->quants[i].type, a, t);
		}
		human_bytes(e->worker_disk, a, sizeof(a));
		printf("  %-24s %10s\n", "worker disk for the job", a);
	}
	for (i = 0; i < c->nwarnings; i++)
		printf("%s%s\n", i == 0 ? "\nwarnings\n  " : "  ", pr(c->warnings[i]));
	if (s->hub) {
		human_bytes(s->hub_bytes, a, sizeof(a));
		printf("\nread %s from the hub\n", a);
	}
}

static int print_json(const struct source *s, const struct mb_modelcfg *c,
		      const struct mb_estimate *e, const struct mb_foreign *f,
		      const char *src)
{
	struct mb_buf b;
	size_t i;
	int rc;

	mb_buf_init(&b, 64u << 20);
	rc = mb_buf_adds(&b, "{\"version\":1,\"source\":{\"kind\":");
	if (rc == 0)
		rc = mb_buf_adds(&b, s->hub ? "\"hub\",\"repo\":" : "\"dir\",\"path\":");
	if (rc == 0)
		rc = mb_json_quote(&b, s->hub ? s->repo : s->dir);
	if (rc == 0 && s->hub)
		rc = mb_buf_addf(&b, ",\"revision\":\"%s\",\"commit\":\"%s\","
				 "\"hub_bytes\":%llu", s->rev, s->commit,
				 (unsigned long long)s->hub_bytes);
	if (rc == 0)
		rc = mb_buf_adds(&b, ",\"note\":");
	if (rc == 0)
		rc = mb_json_quote(&b, s->note);
	if (rc == 0)
		rc = mb_buf_adds(&b, "},\"model\":");
	if (rc == 0)
		rc = mb_modelcfg_report_json(c, &b);
	if (rc == 0 && e != NULL) {
		rc = mb_buf_addf(&b, ",\"estimates\":{\"download\":%llu,"
				 "\"f16\":%llu,\"worker_disk\":%llu,\"quants\":[",
				 (unsigned long long)e->download,
				 (unsigned long long)e->f16,
				 (unsigned long long)e->worker_disk);
		for (i = 0; rc == 0 && i < e->nquants; i++)
			rc = mb_buf_addf(&b, "%s{\"type\":\"%s\",\"bytes\":%llu,"
					 "\"ram\":%llu}", i ? "," : "",
					 e->quants[i].type,
					 (unsigned long long)e->quants[i].bytes,
					 (unsigned long long)e->quants[i].ram);
		if (rc == 0)
			rc = mb_buf_adds(&b, "]}");
	}
	if (rc == 0 && f != NULL) {
		/* a family only llama.cpp's own converter may convert */
		char way[1200];

		rc = mb_buf_adds(&b, ",\"fallback\":{\"converter\":\"llama.cpp\","
				 "\"architecture\":");
		if (rc == 0)
			rc = f->arch ? mb_json_quote(&b, f->arch)
				     : mb_buf_adds(&b, "null");
		if (rc == 0)
			rc = mb_buf_adds(&b, ",\"model_type\":");
		if (rc == 0)
			rc = f->model_type ? mb_json_quote(&b, f->model_type)
					   : mb_buf_adds(&b, "null");
		if (rc == 0)
			rc = mb_buf_adds(&b, ",\"llama_cpp_arch\":");
		if (rc == 0)
			rc = f->llama_arch ? mb_json_quote(&b, f->llama_arch)
					   : mb_buf_adds(&b, "null");
		if (rc == 0)
			rc = mb_buf_adds(&b, ",\"message\":");
		if (rc == 0)
			rc = mb_json_quote(&b, mb_converter_way_out(f, src, way,
								   sizeof(way)));
		if (rc == 0)
			rc = mb_buf_adds(&b, "}");
	}
	if (rc == 0 && c->family != MB_FAMILY_UNKNOWN) {
		rc = mb_buf_adds(&b, ",\"repaired_config\":");
		if (rc == 0)
			rc = mb_modelcfg_repaired_json(c, &b);
	}
	if (rc == 0)
		rc = mb_buf_adds(&b, "}\n");
	if (rc == 0)
		fwrite(b.data, 1, b.len, stdout);
	mb_buf_release(&b);
	return rc;
}

/* Splits "a,b,c" into a NULL-terminated list (pointers into s). */
static int split_list(char *s, const char **out, size_t cap)
{
	size_t n = 0;
	char *p = s;

	while (p != NULL && *p != '\0') {
		char *comma = strchr(p, ',');

		if (comma != NULL)
			*comma = '\0';
		if (*p != '\0') {
			if (n + 1 >= cap)
				return -1;
			out[n++] = p;
		}
		p = comma ? comma + 1 : NULL;
	}
	out[n] = NULL;
	return 0;
}

/* What inspect read about a model, and what it made of it. */
struct insp {
	struct source s;
	struct mb_hub h;
	int hub_inited, hub_ok;
	struct mb_hub_repo *r;
	struct mb_st_model *m;
	struct mb_modelcfg *c;
	char *cfg, *card, *base;	/* base: the base's config.json */
	size_t cfg_len, card_len, base_len;
};

static void insp_release(struct insp *in)
{
	free(in->cfg);
	free(in->card);
	free(in->base);
	mb_modelcfg_free(in->c);
	mb_st_model_free(in->m);
	mb_hub_repo_free(in->r);
	if (in->hub_inited)
		mb_hub_release(&in->h);
	memset(in, 0, sizeof(*in));
}

/* Reads the model at src (org/name[@rev] or a directory) and infers what
 * it is into in->c, with user's settings (in->base may hold the base's
 * config already). 0, or the exit code with err saying why (2: src is
 * neither, 3: no tensors mibera can read, 1: anything else). */
static int insp_load(struct insp *in, const char *src,
		     const struct mb_modelcfg_user *user, char *err,
		     size_t errcap)
{
	struct source *s = &in->s;
	char sub[1024] = "", *at;
	size_t i;
	int rc;

	if (is_dir(src) || strchr(src, '/') == NULL || src[0] == '/' ||
	    src[0] == '.') {
		if (!is_dir(src)) {
			snprintf(err, errcap, "'%s' is neither a directory nor "
				 "org/name", src);
			return 2;
		}
		snprintf(s->dir, sizeof(s->dir), "%s", src);
	} else {
		s->hub = 1;
		snprintf(s->repo, sizeof(s->repo), "%s", src);
		at = strchr(s->repo, '@');
		snprintf(s->rev, sizeof(s->rev), "%s", at ? at + 1 : "main");
		if (at != NULL)
			*at = '\0';
		if (!mb_hub_repo_id_ok(s->repo) || s->rev[0] == '\0') {
			snprintf(err, errcap, "'%s' is not org/name[@revision]",
				 src);
			return 2;
		}
	}
	rc = mb_hub_init(&in->h, NULL, NULL);
	if (rc != 0) {
		snprintf(err, errcap, "HF_ENDPOINT must be an http(s) URL");
		return 1;
	}
	in->hub_inited = 1;
	/* shorter patience than a download: inspect must answer in seconds */
	in->h.connect_timeout_ms = 5000;
	in->h.stall_timeout_ms = 15000;
	in->h.max_attempts = 3;
	in->h.max_retry_wait_ms = 10000;

	if (s->hub) {
		rc = mb_hub_list(&in->h, s->repo, s->rev, &in->r);
		if (rc == MB_ENETWORK || rc == MB_ETIMEDOUT) {
			/* offline or unreachable: carry on with what is local */
			if (cache_snapshot(s->repo, s->rev, s->dir,
					   sizeof(s->dir), s->commit) != 0) {
				snprintf(err, errcap, "%s; '%s' is not in the "
					 "local cache either", pr(in->h.err),
					 s->repo);
				return 1;
			}
			snprintf(s->note, sizeof(s->note), "%.500s; using the "
				 "local cache", in->h.err);
			s->hub = 0;
		} else if (rc != 0) {
			snprintf(err, errcap, "%s", pr(in->h.err));
			return 1;
		} else {
			in->hub_ok = 1;
			memcpy(s->commit, in->r->commit, sizeof(s->commit));
		}
	}
	if (in->hub_ok) {
		int frc;

		rc = hub_model(&in->h, s, in->r, &in->m, sub, sizeof(sub));
		if (rc == MB_ENOMEM) {
			snprintf(err, errcap, "%s", mb_strerror(rc));
			return 1;
		}
		in->cfg = read_hub(&in->h, s, in->r, "config.json",
				   MAX_SMALL_FILE, &in->cfg_len, &frc);
		in->card = read_hub(&in->h, s, in->r, "README.md",
				    MAX_SMALL_FILE, &in->card_len, &frc);
		for (i = 0; i < in->r->nfiles; i++)
			if (side_file(in->r->files[i].path))
				s->side_bytes += in->r->files[i].size;
	} else {
		rc = mb_st_model_open_dir(s->dir, &in->m, sub, sizeof(sub));
		in->cfg = read_local(s->dir, "config.json", MAX_SMALL_FILE,
				     &in->cfg_len);
		in->card = read_local(s->dir, "README.md", MAX_SMALL_FILE,
				      &in->card_len);
	}
	if (rc != 0) {
		snprintf(err, errcap, "cannot read the model's tensors: %s", sub);
		return rc == MB_ENOENT || rc == MB_EFORMAT || rc == MB_EUNSUPPORTED
			       ? EXIT_NOT_CONVERTIBLE
			       : 1;
	}
	/* the named base's own config, when the hub can give it (the
	 * user's was read before) */
	if (user->base == NULL) {
		char name[128];

		mb_modelcfg_base_name(in->card, in->card_len, in->cfg,
				      in->cfg_len, name, sizeof(name));
		if (name[0] != '\0' && !in->h.offline)
			mb_hub_read_config(&in->h, name, MAX_SMALL_FILE,
					   &in->base, &in->base_len);
	}
	rc = mb_modelcfg_infer_user(in->m, in->cfg, in->cfg_len, in->card,
				    in->card_len, in->base, in->base_len, user,
				    &in->c, sub, sizeof(sub));
	if (rc != 0) {
		snprintf(err, errcap, "%s", pr(sub));
		return 1;
	}
	return 0;
}

int cli_inspect_foreign(const char *source, const char *overrides,
			const char *args, struct cli_foreign *out, char *err,
			size_t errcap)
{
	struct mb_modelcfg_user user = { NULL, NULL };
	cJSON *ov = overrides != NULL && *overrides != '\0'
			    ? mb_json_parse(overrides, strlen(overrides))
			    : NULL;
	struct mb_foreign f;
	struct insp in;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&in, 0, sizeof(in));
	if (cJSON_IsObject(ov)) {
		const cJSON *bc = cJSON_GetObjectItemCaseSensitive(ov,
								   "base_config");

		user.set = cJSON_GetObjectItemCaseSensitive(ov, "set");
		user.base = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(ov, "base"));
		if (cJSON_IsObject(bc)) {
			in.base = cJSON_PrintUnformatted(bc);
			in.base_len = in.base ? strlen(in.base) : 0;
		}
	}
	rc = insp_load(&in, source, &user, err, errcap);
	if (rc == 0 && mb_converter_foreign(in.c, &f)) {
		out->foreign = 1;
		mb_converter_foreign_name(&f, out->name, sizeof(out->name));
		snprintf(out->reason, sizeof(out->reason), "%s", pr(in.c->reason));
		/* the way out shows up to 300 bytes of its command: a
		 * longer one would be cut, so it shows the source alone */
		mb_converter_way_out(&f, args != NULL && strlen(args) <= 300
						 ? args : source,
				     out->way_out, sizeof(out->way_out));
	}
	insp_release(&in);
	cJSON_Delete(ov);
	return rc;
}

int cli_inspect_estimate(const char *source, const char *overrides,
			 const char *quants, uint64_t *disk, uint64_t *ram,
			 char *err, size_t errcap)
{
	struct mb_modelcfg_user user = { NULL, NULL };
	cJSON *ov = overrides != NULL && *overrides != '\0'
			    ? mb_json_parse(overrides, strlen(overrides))
			    : NULL;
	struct mb_estimate est;
	struct insp in;
	char list[256];
	const char *q[17];
	size_t i;
	int rc;

	*disk = *ram = 0;
	memset(&in, 0, sizeof(in));
	snprintf(list, sizeof(list), "%s", quants);
	if (split_list(list, q, 17) != 0) {
		snprintf(err, errcap, "more than 16 quant types");
		cJSON_Delete(ov);
		return 2;
	}
	if (cJSON_IsObject(ov)) {
		const cJSON *bc = cJSON_GetObjectItemCaseSensitive(ov,
								   "base_config");

		user.set = cJSON_GetObjectItemCaseSensitive(ov, "set");
		user.base = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(ov, "base"));
		if (cJSON_IsObject(bc)) {
			in.base = cJSON_PrintUnformatted(bc);
			in.base_len = in.base ? strlen(in.base) : 0;
		}
	}
	rc = insp_load(&in, source, &user, err, errcap);
	if (rc == 0 && (in.c->family == MB_FAMILY_UNKNOWN ||
			mb_modelcfg_estimate(in.c, in.m, q, in.s.side_bytes,
					     &est) != 0)) {
		snprintf(err, errcap, "cannot estimate the size of '%s': %s",
			 source, in.c->reason[0] ? pr(in.c->reason)
						 : "its family is not known");
		rc = 1;
	}
	if (rc == 0) {
		*disk = est.worker_disk;
		for (i = 0; i < est.nquants; i++)
			if (est.quants[i].ram > *ram)
				*ram = est.quants[i].ram;
	}
	insp_release(&in);
	cJSON_Delete(ov);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	struct insp in;
	struct mb_estimate est, *e = NULL;
	struct mb_foreign f, *fp = NULL;
	char err[1024] = "", quant_arg[256] = "Q4_K_M,Q3_K_M";
	const char *quants[17];
	size_t i;
	int json = 0, rc, ret = 1;
	const char *src = NULL;
	struct mb_modelcfg_user user = { NULL, NULL };
	cJSON *set = cJSON_CreateObject();

	if (set == NULL)
		return 1;
	memset(&in, 0, sizeof(in));
	user.set = set;
	{
		struct cli_parse p;
		int c, u;

		cli_parse_init(&p, &spec, argc, argv);
		while ((c = cli_next(&p)) > 0) {
			if ((u = cli_user_setting(&p, set, &user.base)) == 2) {
				cJSON_Delete(set);
				return 2;
			} else if (u == 1) {
				continue;
			} else if (cli_is(&p, "json")) {
				json = 1;
			} else if (cli_is(&p, "quant")) {
				snprintf(quant_arg, sizeof(quant_arg), "%s", p.val);
			}
		}
		if (c < 0) {
			cJSON_Delete(set);
			return p.exit;
		}
		src = p.args[0];
	}
	if (user.base != NULL &&
	    cli_base_config("mibera-job inspect", user.base, &in.base,
			    &in.base_len) != 0) {
		goto out;
	}
	if (split_list(quant_arg, quants, 17) != 0) {
		ret = cli_usage_error(&spec, "--quant is a list of at most 16 "
				      "quant types, like Q4_K_M,Q3_K_M");
		goto out;
	}
	for (i = 0; quants[i] != NULL; i++)
		if (mb_quant_find(quants[i]) == NULL) {
			char list[256];

			/* its message names the valid types */
			mb_quant_list_parse(quants[i], list, sizeof(list), err,
					    sizeof(err));
			fprintf(stderr, "mibera-job inspect: %s\n", err);
			ret = 2;
			goto out;
		}
	ret = insp_load(&in, src, &user, err, sizeof(err));
	if (ret != 0) {
		fprintf(stderr, "mibera-job inspect: %s\n", err);
		goto out;
	}
	ret = 1;
	if (in.c->convertible)
		check_tokenizer(&in.h, &in.s, in.r, in.c);
	if (in.c->family != MB_FAMILY_UNKNOWN &&
	    mb_modelcfg_estimate(in.c, in.m, quants, in.s.side_bytes, &est) == 0)
		e = &est;
	if (mb_converter_foreign(in.c, &f))
		fp = &f;
	in.s.hub_bytes = in.h.bytes_in;
	rc = 0;
	if (json)
		rc = print_json(&in.s, in.c, e, fp, src);
	else
		print_human(&in.s, in.m, in.c, e, fp, src);
	if (rc != 0) {
		fprintf(stderr, "mibera-job inspect: %s\n", mb_strerror(rc));
		goto out;
	}
	ret = in.c->convertible ? 0 : EXIT_NOT_CONVERTIBLE;
out:
	cJSON_Delete(set);
	insp_release(&in);
	return ret;
}
