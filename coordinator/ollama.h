/*
 * ollama: a finished job's GGUF files registered with a local Ollama
 * server through its REST API (Ollama's docs/api.md), so that `ollama run
 * NAME` works without a Modelfile step:
 *
 *   GET  /api/version            is a server there at all?
 *   HEAD /api/blobs/sha256:D     is the file there already? (200 / 404)
 *   POST /api/blobs/sha256:D     the file's bytes, streamed from disk; the
 *                                server checks them against D (201 / 400)
 *   POST /api/create             {"model", "files": {FILE: "sha256:D"},
 *                                "template", "parameters": {"stop": [..]}},
 *                                answered by JSON status lines ending in
 *                                {"status":"success"} or {"error":...}
 *
 * D is the sha256 in the job's manifest.json (computed on the worker,
 * checked at the pull), so nothing is hashed again here. The template
 * and stops are the Modelfile's (publish.h).
 */
#ifndef MB_OLLAMA_H
#define MB_OLLAMA_H

#include <stddef.h>

/* Where Ollama listens when OLLAMA_HOST does not say. */
#define MB_OLLAMA_DEFAULT "127.0.0.1:11434"

/* The server's base URL ("http://127.0.0.1:11434") for an OLLAMA_HOST
 * value, read as Ollama reads it: [scheme://]host[:port][/path], the
 * scheme http by default, the port 11434 without a scheme (80 for
 * http://, 443 for https://), the host 127.0.0.1 when empty; NULL or ""
 * is the default. MB_EINVAL (out untouched) for a scheme other than http
 * or https, or a port that is not a number up to 65535. */
int mb_ollama_url(const char *host, char *out, size_t cap);

/* 1 when name is a model name Ollama takes: [namespace/]model[:tag],
 * letters, digits, '_', '-' and '.', each part starting with a letter or
 * digit, the tag at most 80 bytes, all at most 120; else 0. */
int mb_ollama_name_ok(const char *name);

struct mb_ollama_req {
	const char *host;	/* OLLAMA_HOST's value; NULL: the default */
	const char *name;	/* the model: NAME or NAME:TAG */
	const char *dir;	/* the job's artifacts: manifest.json, the
				 * GGUF files, the Modelfile */
	/* called with a line for a person at each stage; NULL: none */
	void (*progress)(void *ctx, const char *msg);
	void *ctx;
	/* out: the names registered, space-separated */
	char models[1024];
	/* out: what was uploaded and what the server had already */
	int uploaded, reused;
};

/* Registers the recommended GGUF in q->dir as q->name and, when q->name
 * has no tag and the job made several quants, each quant as
 * NAME:<type> (NAME:q4_k_m); a file the server already holds is not sent
 * again. Returns 0, or with a message in err: MB_EINVAL for a bad name
 * or OLLAMA_HOST, MB_ENOENT when the directory holds no verified GGUF,
 * MB_ENETWORK when no server answers (the message names OLLAMA_HOST and
 * the Modelfile route), MB_ECHECKSUM when the server found a file's bytes
 * do not match its sha256, MB_EPROTO when the server refused otherwise. */
int mb_ollama_register(struct mb_ollama_req *q, char *err, size_t errcap);

#endif
