/*
 * fakehub: the fake Hugging Face hub proves itself. A small repo is written
 * to a temporary directory, the hub is started over it with a token, and a
 * plain libcurl client checks each part of the protocol the downloader
 * relies on (revision and tree APIs, resolve redirects and their headers,
 * Range, auth, errors) and that every fault knob changes what a client sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "hub.h"
#include "th.h"

#define TOKEN "hf_fakehub_test_token"
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define SHARD1_SIZE (3u << 20)
#define SHARD2_SIZE (1u << 20)
#define CONFIG "{\"architectures\":[\"Phi3ForCausalLM\"],\"vocab_size\":100}\n"
#define SUBTXT "nested file\n"
#define NFILES 4

struct file {
	const char *path;
	unsigned char *data;
	size_t size;
	int lfs;
	char sha256[65];
	char oid[41];	/* git blob sha1 of the content, or of the LFS pointer */
};

static struct {
	char dir[512];
	struct th_hub hub;
	struct file files[NFILES];
	char commit[41];
} F;

/* ------------------------------------------------------------------ */
/* Fixture                                                              */

static void hex(const unsigned char *md, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned n = 0;

	assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	hex(md, n, out);
}

/* Git's blob id: sha1("blob <len>\0" + data). */
static void git_oid(const void *data, size_t len, char out[41])
{
	unsigned char md[20];
	unsigned n = 0;
	char head[32];
	int hl = snprintf(head, sizeof(head), "blob %zu", len);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha1(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, head, (size_t)hl + 1), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, data, len), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, md, &n), 1);
	EVP_MD_CTX_free(ctx);
	hex(md, n, out);
}

static unsigned char *det_bytes(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
	return p;
}

static void put(const char *rel, const void *data, size_t len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", F.dir, rel);
	if (th_write_file(path, data, len) != 0)
		fail_msg("cannot write %s", path);
}

static void mkdirs(const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", F.dir, rel);
	if (mkdir(path, 0755) != 0)
		fail_msg("cannot create %s", path);
}

static struct file *file_named(const char *path)
{
	int i;

	for (i = 0; i < NFILES; i++)
		if (strcmp(F.files[i].path, path) == 0)
			return &F.files[i];
	return NULL;
}

static int group_setup(void **state)
{
	static const char *paths[NFILES] = { "config.json", SHARD1, SHARD2,
					     "sub/x.txt" };
	char rel[256];
	int i;

	(void)state;
	assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	assert_int_equal(th_tmpdir("fakehub", F.dir, sizeof(F.dir)), 0);
	mkdirs("org");
	mkdirs("org/tiny");
	mkdirs("org/tiny/sub");
	mkdirs("org/gated");
	mkdirs("org/private");

	for (i = 0; i < NFILES; i++) {
		struct file *f = &F.files[i];

		f->path = paths[i];
		if (i == 0) {
			f->size = strlen(CONFIG);
			f->data = (unsigned char *)strdup(CONFIG);
		} else if (i == 3) {
			f->size = strlen(SUBTXT);
			f->data = (unsigned char *)strdup(SUBTXT);
		} else {
			f->size = i == 1 ? SHARD1_SIZE : SHARD2_SIZE;
			f->data = det_bytes(f->size, (uint64_t)i);
			f->lfs = 1;
		}
		assert_non_null(f->data);
		sha256_hex(f->data, f->size, f->sha256);
		if (f->lfs) {
			char ptr[256];
			int n = snprintf(ptr, sizeof(ptr),
					 "version https://git-lfs.github.com/"
					 "spec/v1\noid sha256:%s\nsize %zu\n",
					 f->sha256, f->size);

			git_oid(ptr, (size_t)n, f->oid);
		} else {
			git_oid(f->data, f->size, f->oid);
		}
		snprintf(rel, sizeof(rel), "org/tiny/%s", f->path);
		put(rel, f->data, f->size);
	}
	put("org/gated/config.json", CONFIG, strlen(CONFIG));
	put("org/gated/.fakehub.json", "{\"gated\": true}", 15);
	put("org/private/config.json", CONFIG, strlen(CONFIG));
	put("org/private/.fakehub.json", "{\"private\": true}", 17);

	assert_int_equal(th_hub_start(&F.hub, F.dir, TOKEN), 0);
	return 0;
}

static int group_teardown(void **state)
{
	int i;

	(void)state;
	th_hub_stop(&F.hub);
	for (i = 0; i < NFILES; i++)
		free(F.files[i].data);
	if (F.dir[0] != '\0')
		th_rmtree(F.dir);
	curl_global_cleanup();
	return 0;
}

/* Every test starts from a hub with no faults and zero counters. */
static int test_setup(void **state)
{
	(void)state;
	assert_int_equal(th_hub_reset(&F.hub), 0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                               */

struct req {
	const char *url;
	const char *range;	/* "a-b" or NULL */
	int auth;		/* send the Bearer token */
	int follow;		/* follow redirects */
	int head;
	long low_speed_secs;	/* give up after this long under 1 B/s */
};

struct resp {
	CURLcode cc;
	long code;
	struct mb_buf body;
	struct mb_buf hdrs;	/* raw header lines of every response */
	long long ms;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	return mb_buf_add(arg, data, size * n) == 0 ? size * n : 0;
}

static void fetch(const struct req *q, struct resp *r)
{
	struct curl_slist *hdrs = NULL;
	char range[128];
	long long t0;
	CURL *c = curl_easy_init();

	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	mb_buf_init(&r->body, 16u << 20);
	mb_buf_init(&r->hdrs, 1u << 16);
	curl_easy_setopt(c, CURLOPT_URL, q->url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, q->follow ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_NOBODY, q->head ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (q->range != NULL) {
		snprintf(range, sizeof(range), "%s", q->range);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	if (q->low_speed_secs > 0) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, q->low_speed_secs);
	}
	if (q->auth) {
		hdrs = curl_slist_append(hdrs, "Authorization: Bearer " TOKEN);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	t0 = th_now_ms();
	r->cc = curl_easy_perform(c);
	r->ms = th_now_ms() - t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
}

static void resp_release(struct resp *r)
{
	mb_buf_release(&r->body);
	mb_buf_release(&r->hdrs);
}

/* The value of the first header called name, or "" (static buffer). */
static const char *header(const struct resp *r, const char *name)
{
	static char val[1024];
	const char *p = r->hdrs.data;
	size_t nl = strlen(name);

	val[0] = '\0';
	while (p != NULL && *p != '\0') {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			len -= (size_t)(v - p);
			if (len >= sizeof(val))
				len = sizeof(val) - 1;
			memcpy(val, v, len);
			val[len] = '\0';
			return val;
		}
		p = eol != NULL ? eol + 2 : NULL;
	}
	return val;
}

static void url_of(char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void url_of(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(out, cap, "%s", F.hub.url);
	assert_true(n > 0 && (size_t)n < cap);
	va_start(ap, fmt);
	vsnprintf(out + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

static void resolve_url(char *out, size_t cap, const char *repo,
			const char *path)
{
	url_of(out, cap, "/%s/resolve/main/%s", repo, path);
}

/* GETs a file of org/tiny through resolve, following the redirect. */
static void get_file(const char *path, const char *range, struct resp *r)
{
	char url[512];
	struct req q = { .url = url, .range = range, .follow = 1 };

	resolve_url(url, sizeof(url), "org/tiny", path);
	fetch(&q, r);
}

static void expect_error(const char *url, int auth, long code,
			 const char *err_code)
{
	struct req q = { .url = url, .auth = auth };
	struct resp r;
	cJSON *j;

	fetch(&q, &r);
	if (r.cc != CURLE_OK || r.code != code ||
	    strcmp(header(&r, "X-Error-Code"), err_code) != 0)
		fail_msg("%s: expected HTTP %ld with X-Error-Code %s, got "
			 "curl %d, HTTP %ld, X-Error-Code '%s'", url, code,
			 err_code, r.cc, r.code, header(&r, "X-Error-Code"));
	j = cJSON_Parse(r.body.data != NULL ? r.body.data : "");
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "error")))
		fail_msg("%s: error body is not {\"error\": ...}: %s", url,
			 r.body.data);
	cJSON_Delete(j);
	resp_release(&r);
}

static cJSON *get_json(const char *url, struct resp *r)
{
	struct req q = { .url = url };
	cJSON *j;

	fetch(&q, r);
	if (r->cc != CURLE_OK || r->code != 200)
		fail_msg("%s: curl %d, HTTP %ld", url, r->cc, r->code);
	j = cJSON_Parse(r->body.data);
	if (j == NULL)
		fail_msg("%s: not JSON: %s", url, r->body.data);
	return j;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void expect_stats(const char *path, long long bytes, long long reqs)
{
	long long b = -1, n = -1;

	assert_int_equal(th_hub_stats(&F.hub, "org/tiny", path, &b, &n), 0);
	if (b != bytes || (reqs >= 0 && n != reqs))
		fail_msg("stats for %s: expected %lld bytes / %lld requests, "
			 "got %lld / %lld", path, bytes, reqs, b, n);
}

static void expect_body(const struct resp *r, const struct file *f,
			size_t off, size_t len)
{
	if (r->body.len != len)
		fail_msg("%s: expected %zu body bytes, got %zu", f->path, len,
			 r->body.len);
	if (len > 0 && memcmp(r->body.data, f->data + off, len) != 0)
		fail_msg("%s: body differs from bytes %zu..%zu of the file",
			 f->path, off, off + len - 1);
}

/* ------------------------------------------------------------------ */
/* Protocol                                                             */

static void fetch_commit(void)
{
	char url[256];
	struct resp r;
	cJSON *j;

	url_of(url, sizeof(url), "/api/models/org/tiny/revision/main");
	j = get_json(url, &r);
	snprintf(F.commit, sizeof(F.commit), "%s", jstr(j, "sha"));
	cJSON_Delete(j);
	resp_release(&r);
	assert_int_equal(strlen(F.commit), 40);
}

static void test_revision(void **state)
{
	const cJSON *sib, *s;
	char url[256];
	struct resp r;
	cJSON *j;
	int n = 0;

	(void)state;
	url_of(url, sizeof(url), "/api/models/org/tiny/revision/main");
	j = get_json(url, &r);
	assert_string_equal(jstr(j, "id"), "org/tiny");
	assert_int_equal(strlen(jstr(j, "sha")), 40);
	assert_string_equal(header(&r, "X-Repo-Commit"), jstr(j, "sha"));
	snprintf(F.commit, sizeof(F.commit), "%s", jstr(j, "sha"));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "gated")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "private")));
	sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
	assert_true(cJSON_IsArray(sib));
	cJSON_ArrayForEach(s, sib) {
		const struct file *f = file_named(jstr(s, "rfilename"));
		const cJSON *lfs = cJSON_GetObjectItem(s, "lfs");

		if (f == NULL)
			fail_msg("unexpected sibling '%s'",
				 jstr(s, "rfilename"));
		assert_int_equal((size_t)jnum(s, "size"), f->size);
		if (f->lfs != (lfs != NULL))
			fail_msg("%s: lfs expected %d", f->path, f->lfs);
		if (lfs != NULL) {
			assert_string_equal(jstr(lfs, "sha256"), f->sha256);
			assert_int_equal((size_t)jnum(lfs, "size"), f->size);
		}
		n++;
	}
	assert_int_equal(n, NFILES);
	cJSON_Delete(j);
	resp_release(&r);

	/* The full commit resolves too; any other revision does not. */
	url_of(url, sizeof(url), "/api/models/org/tiny/revision/%s", F.commit);
	j = get_json(url, &r);
	assert_string_equal(jstr(j, "sha"), F.commit);
	cJSON_Delete(j);
	resp_release(&r);
	url_of(url, sizeof(url), "/api/models/org/tiny/revision/v1.0");
	expect_error(url, 0, 404, "RevisionNotFound");
	url_of(url, sizeof(url), "/org/tiny/resolve/%040d/config.json", 0);
	expect_error(url, 0, 404, "RevisionNotFound");
	url_of(url, sizeof(url), "/api/models/org/gated/revision/main");
	expect_error(url, 0, 401, "GatedRepo");
}

static void check_tree_entry(const cJSON *e)
{
	const char *path = jstr(e, "path");
	const struct file *f = file_named(path);
	const cJSON *lfs = cJSON_GetObjectItem(e, "lfs");

	if (f == NULL)
		fail_msg("tree lists unexpected file '%s'", path);
	if ((size_t)jnum(e, "size") != f->size)
		fail_msg("%s: tree size %.0f, file has %zu", path,
			 jnum(e, "size"), f->size);
	if (strcmp(jstr(e, "oid"), f->oid) != 0)
		fail_msg("%s: tree oid %s, expected git sha1 %s", path,
			 jstr(e, "oid"), f->oid);
	if (f->lfs != (lfs != NULL))
		fail_msg("%s: lfs expected %d", path, f->lfs);
	if (lfs != NULL) {
		if (strcmp(jstr(lfs, "oid"), f->sha256) != 0)
			fail_msg("%s: lfs.oid %s, expected sha256 %s", path,
				 jstr(lfs, "oid"), f->sha256);
		assert_int_equal((size_t)jnum(lfs, "size"), f->size);
		assert_true(jnum(lfs, "pointerSize") > 100);
	}
}

static void test_tree(void **state)
{
	const cJSON *e;
	char url[256];
	struct resp r;
	cJSON *j;
	int files = 0, dirs = 0;

	(void)state;
	url_of(url, sizeof(url),
	       "/api/models/org/tiny/tree/main?recursive=true");
	j = get_json(url, &r);
	assert_true(cJSON_IsArray(j));
	assert_string_equal(header(&r, "Link"), "");
	cJSON_ArrayForEach(e, j) {
		if (strcmp(jstr(e, "type"), "directory") == 0) {
			assert_string_equal(jstr(e, "path"), "sub");
			dirs++;
			continue;
		}
		assert_string_equal(jstr(e, "type"), "file");
		check_tree_entry(e);
		files++;
	}
	assert_int_equal(files, NFILES);
	assert_int_equal(dirs, 1);
	cJSON_Delete(j);
	resp_release(&r);

	/* Not recursive: the top level only, "sub" as a directory. */
	url_of(url, sizeof(url), "/api/models/org/tiny/tree/main");
	j = get_json(url, &r);
	files = dirs = 0;
	cJSON_ArrayForEach(e, j) {
		if (strcmp(jstr(e, "type"), "directory") == 0)
			dirs++;
		else
			files++;
		assert_null(strchr(jstr(e, "path"), '/'));
	}
	assert_int_equal(files, NFILES - 1);
	assert_int_equal(dirs, 1);
	cJSON_Delete(j);
	resp_release(&r);

	/* A subdirectory. */
	url_of(url, sizeof(url), "/api/models/org/tiny/tree/main/sub");
	j = get_json(url, &r);
	assert_int_equal(cJSON_GetArraySize(j), 1);
	check_tree_entry(cJSON_GetArrayItem(j, 0));
	cJSON_Delete(j);
	resp_release(&r);
	url_of(url, sizeof(url), "/api/models/org/tiny/tree/main/nope");
	expect_error(url, 0, 404, "EntryNotFound");
}

/* Copies the URL out of 'Link: <URL>; rel="next"', or returns 0. */
static int next_link(const struct resp *r, char *out, size_t cap)
{
	const char *v = header(r, "Link");
	const char *end = strchr(v, '>');

	if (v[0] != '<' || end == NULL || strstr(end, "rel=\"next\"") == NULL)
		return 0;
	assert_true((size_t)(end - v) < cap);
	memcpy(out, v + 1, (size_t)(end - v - 1));
	out[end - v - 1] = '\0';
	return 1;
}

static void test_tree_pagination(void **state)
{
	const char *extra[] = { "--page-size", "2", NULL };
	struct th_hub paged;
	char url[512], all[1024] = "", paged_all[1024] = "";
	const cJSON *e;
	struct resp r;
	cJSON *j;
	int pages = 0, n = 0, more;
	size_t len = 0;

	(void)state;
	url_of(url, sizeof(url),
	       "/api/models/org/tiny/tree/main?recursive=true");
	j = get_json(url, &r);
	cJSON_ArrayForEach(e, j)
		len += (size_t)snprintf(all + len, sizeof(all) - len, "%s\n",
					jstr(e, "path"));
	cJSON_Delete(j);
	resp_release(&r);

	assert_int_equal(th_hub_start_args(&paged, F.dir, TOKEN, extra), 0);
	snprintf(url, sizeof(url),
		 "%s/api/models/org/tiny/tree/main?recursive=true", paged.url);
	len = 0;
	do {
		j = get_json(url, &r);
		if (cJSON_GetArraySize(j) > 2)
			fail_msg("page %d has %d entries, page size is 2",
				 pages, cJSON_GetArraySize(j));
		cJSON_ArrayForEach(e, j) {
			len += (size_t)snprintf(paged_all + len,
						sizeof(paged_all) - len,
						"%s\n", jstr(e, "path"));
			n++;
		}
		cJSON_Delete(j);
		pages++;
		more = next_link(&r, url, sizeof(url));
		resp_release(&r);
	} while (more && pages < 20);
	th_hub_stop(&paged);
	assert_int_equal(n, NFILES + 1);
	assert_int_equal(pages, (NFILES + 1 + 1) / 2);
	assert_string_equal(paged_all, all);
}

static void test_resolve_redirect(void **state)
{
	const struct file *f = file_named(SHARD1);
	char url[512], want[128], loc_prefix[64];
	struct req q = { .url = url };
	struct resp r;
	char sha[65];
	int head;

	(void)state;
	fetch_commit();
	resolve_url(url, sizeof(url), "org/tiny", SHARD1);
	snprintf(want, sizeof(want), "\"%s\"", f->sha256);
	snprintf(loc_prefix, sizeof(loc_prefix), "http://127.0.0.1:%d/",
		 F.hub.blob_port);
	for (head = 0; head < 2; head++) {
		q.head = head;
		fetch(&q, &r);
		assert_int_equal(r.cc, CURLE_OK);
		assert_int_equal(r.code, 302);
		if (strncmp(header(&r, "Location"), loc_prefix,
			    strlen(loc_prefix)) != 0)
			fail_msg("Location '%s' is not on the blob port %d",
				 header(&r, "Location"), F.hub.blob_port);
		assert_string_equal(header(&r, "X-Repo-Commit"), F.commit);
		assert_string_equal(header(&r, "X-Linked-Etag"), want);
		assert_string_equal(header(&r, "X-Linked-Size"), "3145728");
		assert_true(header(&r, "ETag")[0] == '"');
		assert_int_equal(r.body.len, 0);
		resp_release(&r);
	}

	/* Following it yields the exact bytes. */
	get_file(SHARD1, NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.body.len, f->size);
	sha256_hex(r.body.data, r.body.len, sha);
	assert_string_equal(sha, f->sha256);
	assert_string_equal(header(&r, "Accept-Ranges"), "bytes");
	resp_release(&r);

	/* Small files come straight from the hub with their git oid. */
	f = file_named("sub/x.txt");
	resolve_url(url, sizeof(url), "org/tiny", "sub/x.txt");
	q.head = 0;
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	snprintf(want, sizeof(want), "\"%s\"", f->oid);
	assert_string_equal(header(&r, "ETag"), want);
	assert_string_equal(header(&r, "X-Repo-Commit"), F.commit);
	expect_body(&r, f, 0, f->size);
	resp_release(&r);
}

static void test_range(void **state)
{
	const struct file *f = file_named(SHARD1);
	char want[128], url[512];
	struct req q = { .url = url, .range = "4000000-", .follow = 1 };
	struct resp r;

	(void)state;
	get_file(SHARD1, "1000-1999", &r);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.code, 206);
	assert_string_equal(header(&r, "Content-Range"),
			    "bytes 1000-1999/3145728");
	expect_body(&r, f, 1000, 1000);
	resp_release(&r);

	get_file(SHARD1, "3145720-", &r);
	assert_int_equal(r.code, 206);
	expect_body(&r, f, 3145720, 8);
	resp_release(&r);

	/* Non-LFS files served by the hub take ranges too. */
	get_file("config.json", "2-5", &r);
	assert_int_equal(r.code, 206);
	expect_body(&r, file_named("config.json"), 2, 4);
	resp_release(&r);

	resolve_url(url, sizeof(url), "org/tiny", SHARD1);
	fetch(&q, &r);
	assert_int_equal(r.code, 416);
	snprintf(want, sizeof(want), "bytes */%u", SHARD1_SIZE);
	assert_string_equal(header(&r, "Content-Range"), want);
	resp_release(&r);
}

static void test_auth(void **state)
{
	char url[512];
	struct req q = { .url = url, .auth = 1 };
	struct resp r;
	cJSON *j;

	(void)state;
	resolve_url(url, sizeof(url), "org/gated", "config.json");
	expect_error(url, 0, 401, "GatedRepo");
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body.data, CONFIG);
	resp_release(&r);

	resolve_url(url, sizeof(url), "org/private", "config.json");
	expect_error(url, 0, 401, "RepoNotFound");
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);

	url_of(url, sizeof(url), "/api/models/org/gated/revision/main");
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	j = cJSON_Parse(r.body.data);
	assert_string_equal(jstr(j, "gated"), "auto");
	cJSON_Delete(j);
	resp_release(&r);
	url_of(url, sizeof(url), "/api/models/org/private/tree/main");
	expect_error(url, 0, 401, "RepoNotFound");
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
}

static void test_token_not_sent_to_blob(void **state)
{
	const struct file *f = file_named(SHARD2);
	char url[512];
	struct req q = { .url = url, .auth = 1, .follow = 1 };
	struct resp r;
	long long n = -1;

	(void)state;
	resolve_url(url, sizeof(url), "org/tiny", SHARD2);
	fetch(&q, &r);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.code, 200);
	expect_body(&r, f, 0, f->size);
	resp_release(&r);
	assert_int_equal(th_hub_blob_auth_count(&F.hub, &n), 0);
	if (n != 0)
		fail_msg("the blob port saw %lld Authorization headers", n);

	/* The counter does count: send the token to the blob URL itself. */
	q.follow = 0;
	fetch(&q, &r);
	assert_int_equal(r.code, 302);
	snprintf(url, sizeof(url), "%s", header(&r, "Location"));
	resp_release(&r);
	q.head = 1;
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
	assert_int_equal(th_hub_blob_auth_count(&F.hub, &n), 0);
	assert_int_equal(n, 1);
}

static void test_missing(void **state)
{
	char url[512];

	(void)state;
	resolve_url(url, sizeof(url), "org/nope", "config.json");
	expect_error(url, 0, 401, "RepoNotFound");
	expect_error(url, 1, 401, "RepoNotFound");
	url_of(url, sizeof(url), "/api/models/org/nope/revision/main");
	expect_error(url, 0, 401, "RepoNotFound");
	resolve_url(url, sizeof(url), "org/tiny", "nope.safetensors");
	expect_error(url, 0, 404, "EntryNotFound");
	resolve_url(url, sizeof(url), "org/tiny", "%2e%2e/gated/config.json");
	expect_error(url, 0, 404, "EntryNotFound");
}

/* ------------------------------------------------------------------ */
/* Fault knobs                                                          */

static void test_cut_after(void **state)
{
	const struct file *f = file_named(SHARD1);
	struct resp r;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD1,
				      "\"cut_after\":100000"), 0);
	get_file(SHARD1, NULL, &r);
	if (r.cc == CURLE_OK)
		fail_msg("a cut transfer ended without error");
	assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
	expect_body(&r, f, 0, 100000);
	resp_release(&r);
	expect_stats(SHARD1, 100000, 2);

	/* Once by default: the next transfer is whole; so is a resume. */
	get_file(SHARD1, "100000-", &r);
	assert_int_equal(r.cc, CURLE_OK);
	expect_body(&r, f, 100000, f->size - 100000);
	resp_release(&r);
	expect_stats(SHARD1, f->size, 4);

	/* On a directly served file, and for a set number of times. */
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", "config.json",
				      "\"cut_after\":5,\"times\":2"), 0);
	get_file("config.json", NULL, &r);
	assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
	resp_release(&r);
	get_file("config.json", NULL, &r);
	assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
	resp_release(&r);
	get_file("config.json", NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	resp_release(&r);
	expect_stats("config.json", 10 + strlen(CONFIG), 3);
}

static void test_corrupt_at(void **state)
{
	const struct file *f = file_named(SHARD1);
	const size_t k = 1234567;
	struct resp r;
	size_t i;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD1,
				      "\"corrupt_at\":1234567"), 0);
	/* A range that does not hold K is served clean and keeps the fault. */
	get_file(SHARD1, "0-999", &r);
	expect_body(&r, f, 0, 1000);
	resp_release(&r);

	get_file(SHARD1, NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.body.len, f->size);
	for (i = 0; i < f->size; i++) {
		unsigned char got = (unsigned char)r.body.data[i];

		if (i == k && got == f->data[i])
			fail_msg("byte %zu was not corrupted", k);
		if (i != k && got != f->data[i])
			fail_msg("byte %zu differs, only %zu should", i, k);
	}
	resp_release(&r);

	get_file(SHARD1, "1234560-1234570", &r);
	expect_body(&r, f, 1234560, 11);
	resp_release(&r);
}

static void test_stall(void **state)
{
	const struct file *f = file_named(SHARD2);
	char url[512];
	struct req q = { .url = url, .follow = 1, .low_speed_secs = 1 };
	struct resp r;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD2,
				      "\"stall\":1.5"), 0);
	get_file(SHARD2, NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	expect_body(&r, f, 0, f->size);
	if (r.ms < 1400)
		fail_msg("a 1.5 s stall took only %lld ms", r.ms);
	resp_release(&r);

	/* A client with a low-speed limit gives up on a long stall. */
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD2,
				      "\"stall\":4"), 0);
	resolve_url(url, sizeof(url), "org/tiny", SHARD2);
	fetch(&q, &r);
	assert_int_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(r.body.len, 0);
	if (r.ms > 3500)
		fail_msg("low-speed abort took %lld ms", r.ms);
	resp_release(&r);

	/* With cut_after: N bytes, then silence, then the connection ends. */
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD2,
				      "\"stall\":1,\"cut_after\":1000"), 0);
	get_file(SHARD2, NULL, &r);
	assert_int_equal(r.cc, CURLE_PARTIAL_FILE);
	expect_body(&r, f, 0, 1000);
	if (r.ms < 900)
		fail_msg("stall after the cut point took only %lld ms", r.ms);
	resp_release(&r);
}

static void test_throttle(void **state)
{
	const struct file *f = file_named(SHARD2);
	struct resp r;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD2,
				      "\"throttle\":524288"), 0);
	get_file(SHARD2, NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	expect_body(&r, f, 0, f->size);
	if (r.ms < 1500)
		fail_msg("1 MiB at 512 KiB/s took only %lld ms", r.ms);
	resp_release(&r);
}

static void test_ignore_range(void **state)
{
	const struct file *f = file_named(SHARD1);
	struct resp r;
	int i;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD1,
				      "\"ignore_range\":true"), 0);
	for (i = 0; i < 2; i++) {	/* forever by default */
		get_file(SHARD1, "1000-1999", &r);
		assert_int_equal(r.cc, CURLE_OK);
		assert_int_equal(r.code, 200);
		assert_string_equal(header(&r, "Content-Range"), "");
		expect_body(&r, f, 0, f->size);
		resp_release(&r);
	}
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", "config.json",
				      "\"ignore_range\":true,\"times\":1"), 0);
	get_file("config.json", "0-1", &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
	get_file("config.json", "0-1", &r);
	assert_int_equal(r.code, 206);
	resp_release(&r);
}

static void test_rate_limit(void **state)
{
	char url[512];
	struct req q = { .url = url };
	struct resp r;
	int i;

	(void)state;
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", "config.json",
				      "\"rate_limit\":2,\"retry_after\":7"),
			 0);
	resolve_url(url, sizeof(url), "org/tiny", "config.json");
	for (i = 0; i < 2; i++) {
		fetch(&q, &r);
		if (r.code != 429)
			fail_msg("request %d: expected 429, got %ld", i, r.code);
		assert_string_equal(header(&r, "RateLimit"),
				    "\"resolvers\";r=0;t=7");
		assert_string_equal(header(&r, "Retry-After"), "7");
		resp_release(&r);
	}
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
	expect_stats("config.json", (long long)strlen(CONFIG), 3);

	/* Other paths are not limited; without a path the APIs are. */
	get_file("sub/x.txt", NULL, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", NULL,
				      "\"rate_limit\":1"), 0);
	url_of(url, sizeof(url), "/api/models/org/tiny/revision/main");
	fetch(&q, &r);
	assert_int_equal(r.code, 429);
	assert_string_equal(header(&r, "Retry-After"), "1");
	resp_release(&r);
	fetch(&q, &r);
	assert_int_equal(r.code, 200);
	resp_release(&r);
}

static void test_stats_and_reset(void **state)
{
	long long n = -1;
	struct resp r;

	(void)state;
	expect_stats(SHARD1, 0, 0);
	get_file("config.json", NULL, &r);
	resp_release(&r);
	get_file("config.json", NULL, &r);
	resp_release(&r);
	expect_stats("config.json", 2 * (long long)strlen(CONFIG), 2);
	get_file(SHARD1, "0-999", &r);
	resp_release(&r);
	expect_stats(SHARD1, 1000, 2);	/* resolve + blob */
	assert_int_equal(th_hub_request_count(&F.hub, &n), 0);
	assert_int_equal(n, 4);

	/* Reset clears counters and faults. */
	assert_int_equal(th_hub_fault(&F.hub, "org/tiny", SHARD1,
				      "\"cut_after\":10"), 0);
	assert_int_equal(th_hub_reset(&F.hub), 0);
	expect_stats("config.json", 0, 0);
	expect_stats(SHARD1, 0, 0);
	assert_int_equal(th_hub_request_count(&F.hub, &n), 0);
	assert_int_equal(n, 0);
	get_file(SHARD1, NULL, &r);
	assert_int_equal(r.cc, CURLE_OK);
	assert_int_equal(r.body.len, SHARD1_SIZE);
	resp_release(&r);

	/* A knob typo is reported, not ignored. */
	assert_int_not_equal(th_hub_fault(&F.hub, "org/tiny", SHARD1,
					  "\"cut_after\":"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup(fn, test_setup)
		T(test_revision),
		T(test_tree),
		T(test_tree_pagination),
		T(test_resolve_redirect),
		T(test_range),
		T(test_auth),
		T(test_token_not_sent_to_blob),
		T(test_missing),
		T(test_cut_after),
		T(test_corrupt_at),
		T(test_stall),
		T(test_throttle),
		T(test_ignore_range),
		T(test_rate_limit),
		T(test_stats_and_reset),
#undef T
	};

	return cmocka_run_group_tests_name("fakehub", tests, group_setup,
					   group_teardown);
}
