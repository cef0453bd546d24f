/* safetensors: hostile-input header parser and shard index. */
#include "common/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[MB_ST_NDTYPES] = {
	[MB_ST_BOOL] = { "BOOL", 1 },	     [MB_ST_U8] = { "U8", 1 },
	[MB_ST_I8] = { "I8", 1 },	     [MB_ST_U16] = { "U16", 2 },
	[MB_ST_I16] = { "I16", 2 },	     [MB_ST_U32] = { "U32", 4 },
	[MB_ST_I32] = { "I32", 4 },	     [MB_ST_U64] = { "U64", 8 },
	[MB_ST_I64] = { "I64", 8 },	     [MB_ST_F8_E4M3] = { "F8_E4M3", 1 },
	[MB_ST_F8_E5M2] = { "F8_E5M2", 1 }, [MB_ST_F16] = { "F16", 2 },
	[MB_ST_BF16] = { "BF16", 2 },	     [MB_ST_F32] = { "F32", 4 },
	[MB_ST_F64] = { "F64", 8 },
};

const char *mb_st_dtype_name(enum mb_st_dtype d)
{
	return (unsigned)d < MB_ST_NDTYPES ? dtypes[d].name : "?";
}

size_t mb_st_dtype_size(enum mb_st_dtype d)
{
	return (unsigned)d < MB_ST_NDTYPES ? dtypes[d].size : 0;
}

int mb_st_dtype_parse(const char *s, enum mb_st_dtype *out)
{
	int i;

	for (i = 0; i < MB_ST_NDTYPES; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (enum mb_st_dtype)i;
			return 0;
		}
	return MB_EUNSUPPORTED;
}

int mb_st_header_len(const uint8_t first8[8], uint64_t file_size,
		     uint64_t *len, char *err, size_t errcap)
{
	uint64_t n = 0;
	int i;

	for (i = 7; i >= 0; i--)
		n = n << 8 | first8[i];
	if (n < 2 || n > MB_ST_MAX_HEADER) {
		mb_seterr(err, errcap, "header length %llu is outside 2..%u",
		       (unsigned long long)n, MB_ST_MAX_HEADER);
		return MB_EFORMAT;
	}
	if (file_size < 8 || n > file_size - 8) {
		mb_seterr(err, errcap, "header length %llu is past the end of a "
		       "%llu-byte file", (unsigned long long)n,
		       (unsigned long long)file_size);
		return MB_EFORMAT;
	}
	*len = n;
	return 0;
}

static void tensor_release(struct mb_st_tensor *t)
{
	free(t->name);
	t->name = NULL;
}

void mb_st_file_free(struct mb_st_file *f)
{
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->ntensors; i++)
		tensor_release(&f->tensors[i]);
	for (i = 0; i < f->nmeta; i++) {
		free(f->meta[i].key);
		free(f->meta[i].value);
	}
	free(f->tensors);
	free(f->meta);
	free(f);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct mb_st_tensor *)a)->name,
		      ((const struct mb_st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
	const struct mb_st_tensor *x = *(const struct mb_st_tensor *const *)a;
	const struct mb_st_tensor *y = *(const struct mb_st_tensor *const *)b;

	return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > MB_ST_MAX_NAME)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return 0;
	return 1;
}

/* Parses one tensor entry; data_size is the data section's length. */
static int parse_tensor(const cJSON *item, uint64_t data_size,
			struct mb_st_tensor *t, char *err, size_t errcap)
{
	const cJSON *dt, *shape, *offs, *d;
	uint64_t nelem = 1, bytes;
	int k;

	if (!cJSON_IsObject(item)) {
		mb_seterr(err, errcap, "tensor '%s' is not an object", t->name);
		return MB_EFORMAT;
	}
	dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
	if (!cJSON_IsString(dt) || dt->valuestring == NULL) {
		mb_seterr(err, errcap, "tensor '%s' has no dtype", t->name);
		return MB_EFORMAT;
	}
	if (mb_st_dtype_parse(dt->valuestring, &t->dtype) != 0) {
		mb_seterr(err, errcap, "tensor '%s' has unknown dtype '%.32s'",
		       t->name, dt->valuestring);
		return MB_EUNSUPPORTED;
	}
	shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
	if (!cJSON_IsArray(shape)) {
		mb_seterr(err, errcap, "tensor '%s' has no shape list", t->name);
		return MB_EFORMAT;
	}
	if (cJSON_GetArraySize(shape) > MB_ST_MAX_DIMS) {
		mb_seterr(err, errcap, "tensor '%s' has more than %d dimensions",
		       t->name, MB_ST_MAX_DIMS);
		return MB_EFORMAT;
	}
	k = 0;
	cJSON_ArrayForEach(d, shape) {
		double v = cJSON_IsNumber(d) ? d->valuedouble : -1;

		/* range first: casting a huge double to an integer is
		 * undefined behaviour */
		if (!(v >= 0) || v > (double)MB_JSON_MAX_INT ||
		    v != (double)(uint64_t)v) {
			mb_seterr(err, errcap, "tensor '%s' has a bad dimension",
			       t->name);
			return MB_EFORMAT;
		}
		t->shape[k] = (uint64_t)v;
		if (t->shape[k] != 0 && nelem > UINT64_MAX / t->shape[k]) {
			mb_seterr(err, errcap, "tensor '%s' shape overflows",
			       t->name);
			return MB_EFORMAT;
		}
		nelem *= t->shape[k];
		k++;
	}
	t->ndim = k;
	t->nelem = nelem;
	offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
		mb_seterr(err, errcap, "tensor '%s' needs data_offsets [begin, end]",
		       t->name);
		return MB_EFORMAT;
	}
	{
		const cJSON *b = cJSON_GetArrayItem(offs, 0);
		const cJSON *e = cJSON_GetArrayItem(offs, 1);
		double bv = cJSON_IsNumber(b) ? b->valuedouble : -1;
		double ev = cJSON_IsNumber(e) ? e->valuedouble : -1;

		if (!(bv >= 0) || !(ev >= 0) || bv > (double)MB_JSON_MAX_INT ||
		    ev > (double)MB_JSON_MAX_INT ||
		    bv != (double)(uint64_t)bv ||
		    ev != (double)(uint64_t)ev) {
			mb_seterr(err, errcap, "tensor '%s' has bad data_offsets",
			       t->name);
			return MB_EFORMAT;
		}
		t->begin = (uint64_t)bv;
		t->end = (uint64_t)ev;
	}
	if (t->end < t->begin || t->end > data_size) {
		mb_seterr(err, errcap, "tensor '%s' data [%llu, %llu) is outside "
		       "the %llu-byte data section", t->name,
		       (unsigned long long)t->begin,
		       (unsigned long long)t->end,
		       (unsigned long long)data_size);
		return MB_EFORMAT;
	}
	if (nelem > UINT64_MAX / mb_st_dtype_size(t->dtype)) {
		mb_seterr(err, errcap, "tensor '%s' size overflows", t->name);
		return MB_EFORMAT;
	}
	bytes = nelem * mb_st_dtype_size(t->dtype);
	if (t->end - t->begin != bytes) {
		mb_seterr(err, errcap, "tensor '%s' holds %llu bytes, its shape "
		       "and dtype need %llu", t->name,
		       (unsigned long long)(t->end - t->begin),
		       (unsigned long long)bytes);
		return MB_EFORMAT;
	}
	return 0;
}

static int parse_meta(const cJSON *meta, struct mb_st_file *f, char *err,
		      size_t errcap)
{
	const cJSON *kv;
	int n;

	if (!cJSON_IsObject(meta)) {
		mb_seterr(err, errcap, "__metadata__ is not an object");
		return MB_EFORMAT;
	}
	n = cJSON_GetArraySize(meta);
	if (n == 0)
		return 0;
	f->meta = mb_calloc((size_t)n, sizeof(*f->meta));
	if (f->meta == NULL)
		return MB_ENOMEM;
	cJSON_ArrayForEach(kv, meta) {
		struct mb_st_kv *m = &f->meta[f->nmeta];

		if (!cJSON_IsString(kv) || kv->valuestring == NULL) {
			mb_seterr(err, errcap, "__metadata__ '%.64s' is not a string",
			       kv->string);
			return MB_EFORMAT;
		}
		m->key = mb_strdup(kv->string);
		m->value = mb_strdup(kv->valuestring);
		f->nmeta++;
		if (m->key == NULL || m->value == NULL)
			return MB_ENOMEM;
	}
	return 0;
}

int mb_st_parse_header(const char *json, uint64_t n, uint64_t file_size,
		       struct mb_st_file **out, char *err, size_t errcap)
{
	struct mb_st_file *f = NULL;
	struct mb_st_tensor **order = NULL;
	uint64_t data_size;
	const cJSON *item;
	cJSON *doc = NULL;
	size_t i, count;
	int rc = MB_EFORMAT;

	*out = NULL;
	if (n > MB_ST_MAX_HEADER || file_size < 8 || n > file_size - 8) {
		mb_seterr(err, errcap, "header length %llu does not fit the file",
		       (unsigned long long)n);
		return MB_EFORMAT;
	}
	data_size = file_size - 8 - n;
	doc = mb_json_parse(json, (size_t)n);
	if (doc == NULL) {
		mb_seterr(err, errcap, "header is not valid json");
		return MB_EJSON;
	}
	if (!cJSON_IsObject(doc)) {
		mb_seterr(err, errcap, "header is not a json object");
		goto out;
	}
	count = (size_t)cJSON_GetArraySize(doc);
	if (count > MB_ST_MAX_TENSORS) {
		mb_seterr(err, errcap, "header lists more than %d tensors",
		       MB_ST_MAX_TENSORS);
		goto out;
	}
	rc = MB_ENOMEM;
	f = mb_calloc(1, sizeof(*f));
	if (f == NULL)
		goto out;
	f->header_len = n;
	f->data_start = 8 + n;
	f->file_size = file_size;
	if (count > 0 &&
	    (f->tensors = mb_calloc(count, sizeof(*f->tensors))) == NULL)
		goto out;
	cJSON_ArrayForEach(item, doc) {
		struct mb_st_tensor *t;

		if (item->string == NULL) {
			rc = MB_EFORMAT;
			mb_seterr(err, errcap, "header member without a name");
			goto out;
		}
		if (strcmp(item->string, "__metadata__") == 0) {
			if (f->meta != NULL) {
				rc = MB_EFORMAT;
				mb_seterr(err, errcap, "__metadata__ appears twice");
				goto out;
			}
			rc = parse_meta(item, f, err, errcap);
			if (rc != 0)
				goto out;
			continue;
		}
		if (!name_ok(item->string)) {
			rc = MB_EFORMAT;
			mb_seterr(err, errcap, "tensor name '%.64s' is empty, too "
			       "long or has control characters", item->string);
			goto out;
		}
		t = &f->tensors[f->ntensors];
		t->name = mb_strdup(item->string);
		if (t->name == NULL)
			goto out;
		f->ntensors++;
		rc = parse_tensor(item, data_size, t, err, errcap);
		if (rc != 0)
			goto out;
	}
	if (f->ntensors > 0) {
		qsort(f->tensors, f->ntensors, sizeof(*f->tensors), by_name);
		for (i = 1; i < f->ntensors; i++)
			if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) ==
			    0) {
				rc = MB_EFORMAT;
				mb_seterr(err, errcap, "tensor '%s' appears twice",
				       f->tensors[i].name);
				goto out;
			}
		order = mb_calloc(f->ntensors, sizeof(*order));
		if (order == NULL)
			goto out;
		for (i = 0; i < f->ntensors; i++)
			order[i] = &f->tensors[i];
		qsort(order, f->ntensors, sizeof(*order), by_begin);
		for (i = 1; i < f->ntensors; i++)
			if (order[i]->begin < order[i - 1]->end) {
				rc = MB_EFORMAT;
				mb_seterr(err, errcap, "tensors '%s' and '%s' overlap",
				       order[i - 1]->name, order[i]->name);
				goto out;
			}
	}
	*out = f;
	f = NULL;
	rc = 0;
out:
	free(order);
	mb_st_file_free(f);
	cJSON_Delete(doc);
	return rc;
}

int mb_st_read_file(const char *path, struct mb_st_file **out, char *err,
		    size_t errcap)
{
	uint8_t first8[8];
	struct stat st;
	uint64_t n;
	size_t got;
	char *json = NULL;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", path,
		       strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = mb_err_from_errno(errno);
		goto out;
	}
	rc = mb_pread_full(fd, first8, 8, 0, &got);
	if (rc == 0 && got < 8) {
		mb_seterr(err, errcap, "file is shorter than 8 bytes");
		rc = MB_EFORMAT;
	}
	if (rc != 0)
		goto out;
	rc = mb_st_header_len(first8, (uint64_t)st.st_size, &n, err, errcap);
	if (rc != 0)
		goto out;
	json = mb_malloc((size_t)n);
	if (json == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	rc = mb_pread_full(fd, json, (size_t)n, 8, &got);
	if (rc == 0 && got < n) {
		mb_seterr(err, errcap, "file ends inside its header");
		rc = MB_EFORMAT;
	}
	if (rc == 0)
		rc = mb_st_parse_header(json, n, (uint64_t)st.st_size, out, err,
					errcap);
out:
	free(json);
	close(fd);
	return rc;
}

const struct mb_st_tensor *mb_st_file_find(const struct mb_st_file *f,
					   const char *name)
{
	struct mb_st_tensor key = { .name = (char *)name };

	if (f->ntensors == 0)
		return NULL;
	return bsearch(&key, f->tensors, f->ntensors, sizeof(key), by_name);
}

/* --- models and the shard index --- */

void mb_st_model_free(struct mb_st_model *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nshards; i++) {
		free(m->shards[i]);
		if (m->files != NULL)
			mb_st_file_free(m->files[i]);
	}
	for (i = 0; i < m->nindex; i++)
		free(m->index[i].name);
	free(m->shards);
	free(m->files);
	free(m->index);
	free(m->tensors);
	free(m);
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int by_entry(const void *a, const void *b)
{
	return strcmp(((const struct mb_st_index_entry *)a)->name,
		      ((const struct mb_st_index_entry *)b)->name);
}

int mb_st_index_parse(const char *json, size_t len, struct mb_st_model **out,
		      char *err, size_t errcap)
{
	struct mb_st_model *m = NULL;
	const cJSON *map, *item;
	cJSON *doc;
	size_t i, n, u;
	int rc = MB_EFORMAT;

	*out = NULL;
	doc = mb_json_parse(json, len);
	if (doc == NULL) {
		mb_seterr(err, errcap, "index is not valid json");
		return MB_EJSON;
	}
	map = cJSON_GetObjectItemCaseSensitive(doc, "weight_map");
	if (!cJSON_IsObject(map)) {
		mb_seterr(err, errcap, "index has no weight_map object");
		goto out;
	}
	n = (size_t)cJSON_GetArraySize(map);
	if (n == 0 || n > MB_ST_MAX_TENSORS) {
		mb_seterr(err, errcap, "index weight_map has %zu entries", n);
		goto out;
	}
	rc = MB_ENOMEM;
	m = mb_calloc(1, sizeof(*m));
	if (m == NULL || (m->index = mb_calloc(n, sizeof(*m->index))) == NULL ||
	    (m->shards = mb_calloc(n, sizeof(*m->shards))) == NULL)
		goto out;
	/* first pass: the weight map, with shard names collected */
	cJSON_ArrayForEach(item, map) {
		struct mb_st_index_entry *e = &m->index[m->nindex];

		if (item->string == NULL || !name_ok(item->string) ||
		    !cJSON_IsString(item) || item->valuestring == NULL) {
			rc = MB_EFORMAT;
			mb_seterr(err, errcap, "index entry '%.64s' is not a tensor "
			       "name mapped to a file name",
			       item->string ? item->string : "");
			goto out;
		}
		if (!mb_repo_path_ok(item->valuestring)) {
			rc = MB_EFORMAT;
			mb_seterr(err, errcap, "index maps '%.64s' to an unsafe "
			       "path '%.128s'", item->string, item->valuestring);
			goto out;
		}
		e->name = mb_strdup(item->string);
		if (e->name == NULL)
			goto out;
		m->nindex++;
		m->shards[m->nshards] = mb_strdup(item->valuestring);
		if (m->shards[m->nshards] == NULL)
			goto out;
		m->nshards++;
	}
	/* unique shard names, sorted */
	qsort(m->shards, m->nshards, sizeof(*m->shards), by_str);
	for (i = 0, u = 0; i < m->nshards; i++) {
		if (u > 0 && strcmp(m->shards[u - 1], m->shards[i]) == 0) {
			free(m->shards[i]);
			continue;
		}
		m->shards[u++] = m->shards[i];
	}
	m->nshards = u;
	/* second pass: each entry's shard number */
	i = 0;
	cJSON_ArrayForEach(item, map) {
		char *key = item->valuestring;
		char **hit = bsearch(&key, m->shards, m->nshards,
				     sizeof(*m->shards), by_str);

		m->index[i++].shard = (int)(hit - m->shards);
	}
	qsort(m->index, m->nindex, sizeof(*m->index), by_entry);
	for (i = 1; i < m->nindex; i++)
		if (strcmp(m->index[i - 1].name, m->index[i].name) == 0) {
			rc = MB_EFORMAT;
			mb_seterr(err, errcap, "index lists tensor '%s' twice",
			       m->index[i].name);
			goto out;
		}
	m->files = mb_calloc(m->nshards, sizeof(*m->files));
	if (m->files == NULL)
		goto out;
	*out = m;
	m = NULL;
	rc = 0;
out:
	mb_st_model_free(m);
	cJSON_Delete(doc);
	return rc;
}

int mb_st_model_single(const char *name, struct mb_st_file *f,
		       struct mb_st_model **out)
{
	struct mb_st_model *m;

	*out = NULL;
	m = mb_calloc(1, sizeof(*m));
	if (m == NULL || (m->shards = mb_calloc(1, sizeof(char *))) == NULL ||
	    (m->files = mb_calloc(1, sizeof(*m->files))) == NULL ||
	    (m->shards[0] = mb_strdup(name)) == NULL) {
		if (m != NULL) {
			free(m->shards ? m->shards[0] : NULL);
			free(m->shards);
			free(m->files);
			free(m);
		}
		mb_st_file_free(f);
		return MB_ENOMEM;
	}
	m->nshards = 1;
	m->files[0] = f;
	*out = m;
	return 0;
}

int mb_st_model_set_file(struct mb_st_model *m, size_t i,
			 struct mb_st_file *f)
{
	if (i >= m->nshards) {
		mb_st_file_free(f);
		return MB_EINVAL;
	}
	if (m->files[i] != NULL) {
		mb_st_file_free(f);
		return MB_EEXIST;
	}
	m->files[i] = f;
	return 0;
}

int mb_st_model_finish(struct mb_st_model *m, char *err, size_t errcap)
{
	size_t i, j, k, total = 0;

	for (i = 0; i < m->nshards; i++) {
		if (m->files[i] == NULL) {
			mb_seterr(err, errcap, "shard '%s' is missing", m->shards[i]);
			return MB_ENOENT;
		}
		total += m->files[i]->ntensors;
	}
	free(m->tensors);
	m->tensors = NULL;
	m->ntensors = 0;
	m->total_bytes = 0;
	if (total > 0 &&
	    (m->tensors = mb_calloc(total, sizeof(*m->tensors))) == NULL)
		return MB_ENOMEM;
	for (i = 0, k = 0; i < m->nshards; i++) {
		m->total_bytes += m->files[i]->file_size;
		for (j = 0; j < m->files[i]->ntensors; j++) {
			m->tensors[k] = m->files[i]->tensors[j];
			m->tensors[k].shard = (int)i;
			k++;
		}
	}
	m->ntensors = total;
	if (total > 0)
		qsort(m->tensors, total, sizeof(*m->tensors), by_name);
	for (i = 1; i < total; i++)
		if (strcmp(m->tensors[i - 1].name, m->tensors[i].name) == 0) {
			mb_seterr(err, errcap, "tensor '%s' is in both '%s' and '%s'",
			       m->tensors[i].name,
			       m->shards[m->tensors[i - 1].shard],
			       m->shards[m->tensors[i].shard]);
			return MB_EFORMAT;
		}
	if (m->nindex == 0)
		return 0;
	/* with an index, the two sorted lists must name the same tensors in
	 * the same shards */
	for (i = 0, j = 0; i < m->nindex || j < total;) {
		int c = i == m->nindex ? 1
			: j == total   ? -1
				       : strcmp(m->index[i].name,
						m->tensors[j].name);

		if (c < 0) {
			mb_seterr(err, errcap, "index names tensor '%s' in '%s', "
			       "which does not hold it", m->index[i].name,
			       m->shards[m->index[i].shard]);
			return MB_EFORMAT;
		}
		if (c > 0) {
			mb_seterr(err, errcap, "tensor '%s' in '%s' is not in the "
			       "index", m->tensors[j].name,
			       m->shards[m->tensors[j].shard]);
			return MB_EFORMAT;
		}
		if (m->index[i].shard != m->tensors[j].shard) {
			mb_seterr(err, errcap, "index puts tensor '%s' in '%s', it "
			       "is in '%s'", m->index[i].name,
			       m->shards[m->index[i].shard],
			       m->shards[m->tensors[j].shard]);
			return MB_EFORMAT;
		}
		i++;
		j++;
	}
	return 0;
}

const struct mb_st_tensor *mb_st_model_find(const struct mb_st_model *m,
					    const char *name)
{
	struct mb_st_tensor key = { .name = (char *)name };

	if (m->ntensors == 0)
		return NULL;
	return bsearch(&key, m->tensors, m->ntensors, sizeof(key), by_name);
}

/* The index of a large model lists every tensor: Phi-4's is 30 KB, so
 * 64 MiB is far beyond any real one. */
#define MAX_INDEX (64u << 20)

static int join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= cap ? MB_ETOOBIG : 0;
}

static int open_single(const char *dir, struct mb_st_model **out, char *err,
		       size_t errcap)
{
	char path[4096], found[256] = "";
	struct mb_st_file *f;
	struct dirent *de;
	int count = 0, rc;
	DIR *d;

	d = opendir(dir);
	if (d == NULL) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open directory '%s': %s", dir,
		       strerror(errno));
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n > 12 && n < sizeof(found) &&
		    strcmp(de->d_name + n - 12, ".safetensors") == 0) {
			count++;
			memcpy(found, de->d_name, n + 1);
		}
	}
	closedir(d);
	if (count != 1) {
		mb_seterr(err, errcap, count == 0
			       ? "no .safetensors file in '%s'"
			       : "several .safetensors files in '%s' and no "
				 "model.safetensors.index.json", dir);
		return count == 0 ? MB_ENOENT : MB_EFORMAT;
	}
	rc = join(path, sizeof(path), dir, found);
	if (rc == 0)
		rc = mb_st_read_file(path, &f, err, errcap);
	if (rc == 0)
		rc = mb_st_model_single(found, f, out);
	if (rc == 0)
		rc = mb_st_model_finish(*out, err, errcap);
	if (rc != 0) {
		if (err != NULL && errcap > 0 && rc == MB_ENOMEM)
			mb_seterr(err, errcap, "out of memory reading '%s'", path);
		mb_st_model_free(*out);
		*out = NULL;
	}
	return rc;
}

int mb_st_model_open_dir(const char *dir, struct mb_st_model **out, char *err,
			 size_t errcap)
{
	return mb_st_model_open_headers(dir, dir, out, err, errcap);
}

int mb_st_model_open_headers(const char *dir, const char *hdir,
			     struct mb_st_model **out, char *err, size_t errcap)
{
	struct mb_st_model *m = NULL;
	char path[4096], sub[MB_ST_MAX_NAME];
	char *json = NULL;
	size_t len, i;
	int rc;

	*out = NULL;
	rc = join(path, sizeof(path), dir, "model.safetensors.index.json");
	if (rc != 0)
		return rc;
	rc = mb_read_file(path, MAX_INDEX, &json, &len);
	if (rc == MB_ENOENT)
		return open_single(hdir, out, err, errcap);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read '%s': %s", path,
		       mb_strerror(rc));
		return rc;
	}
	rc = mb_st_index_parse(json, len, &m, err, errcap);
	free(json);
	for (i = 0; rc == 0 && i < m->nshards; i++) {
		struct mb_st_file *f;

		rc = join(path, sizeof(path), hdir, m->shards[i]);
		if (rc != 0)
			break;
		rc = mb_st_read_file(path, &f, sub, sizeof(sub));
		if (rc == MB_ENOENT) {
			mb_seterr(err, errcap, "shard '%s' is missing",
			       m->shards[i]);
			break;
		}
		if (rc != 0) {
			mb_seterr(err, errcap, "shard '%s': %s", m->shards[i], sub);
			break;
		}
		rc = mb_st_model_set_file(m, i, f);
	}
	if (rc == 0)
		rc = mb_st_model_finish(m, err, errcap);
	if (rc != 0) {
		if (err != NULL && errcap > 0 && rc == MB_ENOMEM)
			mb_seterr(err, errcap, "out of memory reading '%s'", dir);
		mb_st_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}
