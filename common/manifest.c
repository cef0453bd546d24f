/* manifest: per-file and per-chunk SHA-256, to and from JSON. */
#include "common/manifest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"

int mb_manifest_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > MB_MANIFEST_NAME_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int chunk_size_ok(uint64_t cs)
{
	return cs >= MB_MANIFEST_MIN_CHUNK && cs <= MB_MANIFEST_MAX_CHUNK &&
	       cs % MB_MANIFEST_MIN_CHUNK == 0;
}

static struct mb_manifest *alloc_manifest(const char *name, uint64_t size,
					  uint64_t chunk_size)
{
	struct mb_manifest *m = mb_calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->size = size;
	m->chunk_size = chunk_size;
	m->nchunks = size / chunk_size + (size % chunk_size != 0);
	m->name = mb_strdup(name);
	if (m->nchunks > MB_MANIFEST_MAX_CHUNKS)
		goto fail;
	if (m->nchunks > 0)
		m->chunks = mb_calloc((size_t)m->nchunks, MB_SHA256_LEN);
	if (m->name == NULL || (m->nchunks > 0 && m->chunks == NULL))
		goto fail;
	return m;
fail:
	mb_manifest_free(m);
	return NULL;
}

void mb_manifest_free(struct mb_manifest *m)
{
	if (m == NULL)
		return;
	free(m->name);
	free(m->chunks);
	free(m);
}

struct compute {
	struct mb_sha256 whole, chunk;
	uint64_t chunk_size;
	uint64_t in_chunk;	/* bytes of the current chunk hashed */
	uint64_t index;		/* current chunk */
	uint8_t (*out)[MB_SHA256_LEN];
	uint64_t cap;		/* chunks allocated in out */
	mb_manifest_progress_fn progress;
	void *progress_ctx;
	/* the chunks' hashes are made on a thread of their own while this
	 * one makes the whole file's: every byte is hashed twice, on two
	 * cores where there are two */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int th_on, posted, quit, th_rc;
	const char *blk;
	size_t blk_n;
};

static int grow_chunks(struct compute *c)
{
	uint64_t cap = c->cap ? c->cap * 2 : 64;
	void *p;

	if (cap > SIZE_MAX / MB_SHA256_LEN)
		return MB_ENOMEM;
	p = mb_realloc(c->out, (size_t)cap * MB_SHA256_LEN);
	if (p == NULL)
		return MB_ENOMEM;
	c->out = p;
	c->cap = cap;
	return 0;
}

static int finish_chunk(struct compute *c)
{
	int rc;

	if (c->index == c->cap && (rc = grow_chunks(c)) != 0)
		return rc;
	rc = mb_sha256_final(&c->chunk, c->out[c->index]);
	if (rc != 0)
		return rc;
	c->index++;
	c->in_chunk = 0;
	return 0;
}

/* Hashes the next n bytes into the chunks' hashes. */
static int chunk_block(struct compute *c, const char *p, size_t n)
{
	int rc = 0;

	while (rc == 0 && n > 0) {
		uint64_t take = c->chunk_size - c->in_chunk;

		if (take > n)
			take = n;
		if (c->in_chunk == 0 && (rc = mb_sha256_init(&c->chunk)) != 0)
			break;
		rc = mb_sha256_update(&c->chunk, p, (size_t)take);
		c->in_chunk += take;
		p += take;
		n -= (size_t)take;
		if (rc == 0 && c->in_chunk == c->chunk_size)
			rc = finish_chunk(c);
	}
	return rc;
}

static void *chunk_thread(void *arg)
{
	struct compute *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->posted && !c->quit)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->posted)
			break;
		pthread_mutex_unlock(&c->mu);
		c->th_rc = chunk_block(c, c->blk, c->blk_n);
		pthread_mutex_lock(&c->mu);
		c->posted = 0;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void chunk_thread_start(struct compute *c)
{
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->th_on = pthread_create(&c->th, NULL, chunk_thread, c) == 0;
}

static void chunk_thread_stop(struct compute *c)
{
	if (c->th_on) {
		pthread_mutex_lock(&c->mu);
		c->quit = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->th, NULL);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

static int compute_block(const void *data, size_t n, uint64_t off, void *ctx)
{
	struct compute *c = ctx;
	uint64_t end = off + n;
	int rc, crc;

	if (!c->th_on) {
		rc = mb_sha256_update(&c->whole, data, n);
		if (rc == 0)
			rc = chunk_block(c, data, n);
	} else {
		pthread_mutex_lock(&c->mu);
		c->blk = data;
		c->blk_n = n;
		c->posted = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		rc = mb_sha256_update(&c->whole, data, n);
		pthread_mutex_lock(&c->mu);
		while (c->posted)
			pthread_cond_wait(&c->cv, &c->mu);
		crc = c->th_rc;
		pthread_mutex_unlock(&c->mu);
		if (rc == 0)
			rc = crc;
	}
	if (rc == 0 && c->progress != NULL)
		rc = c->progress(end, c->progress_ctx);
	return rc;
}

int mb_manifest_compute(const char *path, const char *name,
			uint64_t chunk_size, struct mb_manifest **out)
{
	return mb_manifest_compute_progress(path, name, chunk_size, NULL, NULL,
					    out);
}

int mb_manifest_compute_progress(const char *path, const char *name,
				 uint64_t chunk_size,
				 mb_manifest_progress_fn progress, void *ctx,
				 struct mb_manifest **out)
{
	struct compute c;
	struct mb_manifest *m = NULL;
	uint64_t size = 0;
	int rc;

	*out = NULL;
	if (!chunk_size_ok(chunk_size) || !mb_manifest_name_ok(name))
		return MB_EINVAL;
	memset(&c, 0, sizeof(c));
	c.chunk_size = chunk_size;
	c.progress = progress;
	c.progress_ctx = ctx;
	rc = mb_sha256_init(&c.whole);
	if (rc != 0)
		return rc;
	chunk_thread_start(&c);
	rc = mb_read_blocks(path, compute_block, &c, &size);
	chunk_thread_stop(&c);
	if (rc == 0 && c.in_chunk > 0)
		rc = finish_chunk(&c);
	if (rc != 0)
		goto out;
	if (size > MB_MANIFEST_MAX_SIZE || c.index > MB_MANIFEST_MAX_CHUNKS) {
		rc = MB_ETOOBIG;
		goto out;
	}
	m = alloc_manifest(name, size, chunk_size);
	if (m == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	if (m->nchunks != c.index) {
		rc = MB_EIO; /* the file changed while we read it */
		goto out;
	}
	if (m->nchunks > 0)
		memcpy(m->chunks, c.out, (size_t)m->nchunks * MB_SHA256_LEN);
	rc = mb_sha256_final(&c.whole, m->sha256);
	if (rc != 0)
		goto out;
	*out = m;
	m = NULL;
out:
	mb_sha256_release(&c.whole);
	mb_sha256_release(&c.chunk);
	free(c.out);
	mb_manifest_free(m);
	return rc;
}

int mb_manifest_to_json(const struct mb_manifest *m, struct mb_buf *b)
{
	char hex[MB_SHA256_HEX];
	uint64_t i;
	int rc;

	rc = mb_buf_addf(b, "{\"version\":%d,\"name\":", MB_MANIFEST_VERSION);
	if (rc == 0)
		rc = mb_json_quote(b, m->name);
	mb_sha256_hex(m->sha256, hex);
	if (rc == 0)
		rc = mb_buf_addf(b,
				 ",\"size\":%llu,\"sha256\":\"%s\","
				 "\"chunk_size\":%llu,\"chunks\":[",
				 (unsigned long long)m->size, hex,
				 (unsigned long long)m->chunk_size);
	for (i = 0; rc == 0 && i < m->nchunks; i++) {
		mb_sha256_hex(m->chunks[i], hex);
		rc = mb_buf_addf(b, "%s\"%s\"", i ? "," : "", hex);
	}
	if (rc == 0)
		rc = mb_buf_adds(b, "]}");
	return rc;
}

/* Parses one manifest object (doc, owned by the caller) into *out. */
static int manifest_from_cjson(const cJSON *doc, struct mb_manifest **out,
			       char *err, size_t errcap)
{
	struct mb_manifest *m = NULL;
	const cJSON *chunks, *item;
	const char *name, *sha;
	uint64_t version, size, chunk_size, i;
	int rc = MB_EFORMAT;

	*out = NULL;
	if (!cJSON_IsObject(doc)) {
		mb_seterr(err, errcap, "manifest is not a json object");
		goto out;
	}
	if (mb_json_get_u64(doc, "version", UINT32_MAX, &version) != 0 ||
	    version != MB_MANIFEST_VERSION) {
		mb_seterr(err, errcap, "manifest 'version' is missing or not %d",
		          MB_MANIFEST_VERSION);
		goto out;
	}
	if (mb_json_get_str(doc, "name", MB_MANIFEST_NAME_MAX, &name) != 0 ||
	    !mb_manifest_name_ok(name)) {
		mb_seterr(err, errcap, "manifest 'name' is missing or unsafe");
		goto out;
	}
	if (mb_json_get_u64(doc, "size", MB_MANIFEST_MAX_SIZE, &size) != 0) {
		mb_seterr(err, errcap, "manifest 'size' is missing or invalid");
		goto out;
	}
	if (mb_json_get_u64(doc, "chunk_size", MB_MANIFEST_MAX_CHUNK,
			    &chunk_size) != 0 ||
	    !chunk_size_ok(chunk_size)) {
		mb_seterr(err, errcap, "manifest 'chunk_size' is missing or not a "
		          "multiple of 4096 between 4 KiB and 1 GiB");
		goto out;
	}
	chunks = cJSON_GetObjectItemCaseSensitive(doc, "chunks");
	if (!cJSON_IsArray(chunks)) {
		mb_seterr(err, errcap, "manifest 'chunks' is missing or not a list");
		goto out;
	}
	/* the count is checked against the list before allocating, so the
	 * memory spent is bounded by the document, not by a claimed size */
	if (size / chunk_size + (size % chunk_size != 0) !=
	    (uint64_t)cJSON_GetArraySize(chunks)) {
		mb_seterr(err, errcap, "manifest lists %d chunks, its size needs "
		          "%llu", cJSON_GetArraySize(chunks),
		          (unsigned long long)(size / chunk_size +
					       (size % chunk_size != 0)));
		goto out;
	}
	m = alloc_manifest(name, size, chunk_size);
	if (m == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	if (mb_json_get_str(doc, "sha256", 64, &sha) != 0 ||
	    mb_sha256_parse(sha, m->sha256) != 0) {
		mb_seterr(err, errcap, "manifest 'sha256' is missing or not 64 "
		          "hex digits");
		goto out;
	}
	i = 0;
	cJSON_ArrayForEach(item, chunks) {
		if (!cJSON_IsString(item) || item->valuestring == NULL ||
		    mb_sha256_parse(item->valuestring, m->chunks[i]) != 0) {
			mb_seterr(err, errcap, "manifest chunk %llu is not 64 hex "
			          "digits", (unsigned long long)i);
			goto out;
		}
		i++;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	mb_manifest_free(m);
	return rc;
}

int mb_manifest_from_json(const char *json, size_t len,
			  struct mb_manifest **out, char *err, size_t errcap)
{
	cJSON *doc;
	int rc;

	*out = NULL;
	doc = mb_json_parse(json, len);
	if (doc == NULL) {
		mb_seterr(err, errcap, "manifest is not valid json");
		return MB_EJSON;
	}
	rc = manifest_from_cjson(doc, out, err, errcap);
	cJSON_Delete(doc);
	return rc;
}

void mb_manifest_chunk(const struct mb_manifest *m, uint64_t i, uint64_t *off,
		       uint64_t *len)
{
	*off = i * m->chunk_size;
	*len = m->size - *off < m->chunk_size ? m->size - *off : m->chunk_size;
}

int mb_manifest_check_chunk(const struct mb_manifest *m, uint64_t i,
			    const void *data, size_t len)
{
	uint8_t d[MB_SHA256_LEN];
	uint64_t off, want;
	int rc;

	if (i >= m->nchunks)
		return MB_EINVAL;
	mb_manifest_chunk(m, i, &off, &want);
	if (len != want)
		return MB_EINVAL;
	rc = mb_sha256_buf(data, len, d);
	if (rc != 0)
		return rc;
	return memcmp(d, m->chunks[i], MB_SHA256_LEN) == 0 ? 0 : MB_ECHECKSUM;
}

int mb_manifest_same(const struct mb_manifest *a, const struct mb_manifest *b)
{
	return a->size == b->size &&
	       memcmp(a->sha256, b->sha256, MB_SHA256_LEN) == 0;
}

/* --- the list of a directory's artifacts --- */

int mb_manifest_list_to_json(struct mb_manifest *const *files, size_t n,
			     struct mb_buf *b)
{
	size_t i;
	int rc;

	rc = mb_buf_addf(b, "{\"version\":%d,\"files\":[", MB_MANIFEST_VERSION);
	for (i = 0; rc == 0 && i < n; i++) {
		if (i > 0)
			rc = mb_buf_adds(b, ",");
		if (rc == 0)
			rc = mb_manifest_to_json(files[i], b);
	}
	if (rc == 0)
		rc = mb_buf_adds(b, "]}");
	return rc;
}

void mb_manifest_list_free(struct mb_manifest_list *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		mb_manifest_free(l->files[i]);
	free(l->files);
	free(l);
}

const struct mb_manifest *mb_manifest_list_find(
	const struct mb_manifest_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->files[i]->name, name) == 0)
			return l->files[i];
	return NULL;
}

static int cmp_manifest_name(const void *a, const void *b)
{
	const struct mb_manifest *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

int mb_manifest_list_from_json(const char *json, size_t len,
			       struct mb_manifest_list **out, char *err,
			       size_t errcap)
{
	struct mb_manifest_list *l = NULL;
	struct mb_manifest **sorted = NULL;
	const cJSON *files, *item;
	uint64_t version;
	char why[256];
	cJSON *doc;
	size_t n, i;
	int rc = MB_EFORMAT;

	*out = NULL;
	doc = mb_json_parse(json, len);
	if (doc == NULL) {
		mb_seterr(err, errcap, "manifest list is not valid json");
		return MB_EJSON;
	}
	if (!cJSON_IsObject(doc)) {
		mb_seterr(err, errcap, "manifest list is not a json object");
		goto out;
	}
	if (mb_json_get_u64(doc, "version", UINT32_MAX, &version) != 0 ||
	    version != MB_MANIFEST_VERSION) {
		mb_seterr(err, errcap, "manifest list 'version' is missing or not "
		          "%d", MB_MANIFEST_VERSION);
		goto out;
	}
	files = cJSON_GetObjectItemCaseSensitive(doc, "files");
	if (!cJSON_IsArray(files)) {
		mb_seterr(err, errcap, "manifest list 'files' is missing or not a "
		          "list");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(files);
	if (n > MB_MANIFEST_LIST_MAX) {
		mb_seterr(err, errcap, "manifest list has %zu files, more than %d",
		          n, MB_MANIFEST_LIST_MAX);
		goto out;
	}
	rc = MB_ENOMEM;
	l = mb_calloc(1, sizeof(*l));
	if (l == NULL)
		goto out;
	if (n > 0 && (l->files = mb_calloc(n, sizeof(*l->files))) == NULL)
		goto out;
	cJSON_ArrayForEach(item, files) {
		why[0] = '\0';
		rc = manifest_from_cjson(item, &l->files[l->n], why,
					 sizeof(why));
		if (rc != 0) {
			mb_seterr(err, errcap, "manifest list file %zu: %s", l->n,
			          why[0] ? why : mb_strerror(rc));
			goto out;
		}
		l->n++;
	}
	/* two entries with one name would let a puller verify one file's
	 * bytes against the other's hashes */
	rc = MB_ENOMEM;
	if (n > 1) {
		sorted = mb_calloc(n, sizeof(*sorted));
		if (sorted == NULL)
			goto out;
		memcpy(sorted, l->files, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cmp_manifest_name);
		for (i = 1; i < n; i++) {
			if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
				rc = MB_EFORMAT;
				mb_seterr(err, errcap, "manifest list names '%s' "
				          "twice", sorted[i]->name);
				goto out;
			}
		}
	}
	*out = l;
	l = NULL;
	rc = 0;
out:
	free(sorted);
	cJSON_Delete(doc);
	mb_manifest_list_free(l);
	return rc;
}
