#!/usr/bin/env python3
"""A stand-in for a local Ollama server: the parts of its REST API
(docs/api.md in ollama/ollama) that creating a model from a GGUF file uses,
as that document describes them.

  GET  /api/version             {"version": "..."}
  HEAD /api/blobs/sha256:HEX    200 when the blob is held, 404 when not
  POST /api/blobs/sha256:HEX    the raw bytes; hashed as they arrive and
                                kept only when their sha256 is HEX: 201,
                                else 400 {"error": "digest mismatch ..."}
  POST /api/create              {"model", "files": {NAME: "sha256:HEX"},
                                "template", "system", "parameters", ...}:
                                every file must be a held blob that starts
                                with the GGUF magic; answers a stream of
                                {"status": ...} lines ending in
                                {"status": "success"} (or 400 {"error"})
  GET  /api/tags                the models created, as Ollama lists them
  POST /api/show                {"model"}: template, parameters, modelfile

and, for the tests, GET /_control/state: {"blobs": {digest: size},
"uploads": N (accepted), "rejected": N, "heads": N, "models": {name:
the create request as received}}. A name without a tag gets ":latest".

Prints OLLAMA_PORT=N on stdout once it listens (port 0: a free one).
Python 3 standard library only.
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import sys
import tempfile
import threading
import time

DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class State:
    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.blobs = {}      # "sha256:HEX" -> size
        self.models = {}     # "name:tag" -> request
        self.uploads = 0
        self.rejected = 0
        self.heads = 0


def full_name(name):
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeollama/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fakeollama: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_empty(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            return None

    def blob_digest(self):
        m = re.match(r"^/api/blobs/(.*)$", self.path)
        if not m:
            return None, False
        d = DIGEST.match(m.group(1))
        return ("sha256:" + d.group(1) if d else None), True

    # --- HEAD ---
    def do_HEAD(self):
        st = self.server.state
        digest, is_blob = self.blob_digest()
        if not is_blob:
            return self.send_empty(404)
        if digest is None:
            return self.send_empty(400)
        with st.lock:
            st.heads += 1
            held = digest in st.blobs
        self.send_empty(200 if held else 404)

    # --- GET ---
    def do_GET(self):
        st = self.server.state
        if self.path == "/api/version":
            return self.send_json(200, {"version": "0.0.0-fake"})
        if self.path == "/api/tags":
            with st.lock:
                models = [{"name": n, "model": n,
                           "size": sum(st.blobs.get(d, 0)
                                       for d in r.get("files", {}).values()),
                           "digest": hashlib.sha256(
                               json.dumps(r, sort_keys=True).encode()
                           ).hexdigest(),
                           "details": {"format": "gguf"}}
                          for n, r in sorted(st.models.items())]
            return self.send_json(200, {"models": models})
        if self.path == "/_control/state":
            with st.lock:
                return self.send_json(200, {
                    "blobs": dict(st.blobs), "models": dict(st.models),
                    "uploads": st.uploads, "rejected": st.rejected,
                    "heads": st.heads})
        self.send_json(404, {"error": "not found"})

    # --- POST ---
    def do_POST(self):
        digest, is_blob = self.blob_digest()
        if is_blob:
            return self.post_blob(digest)
        if self.path == "/api/create":
            return self.post_create()
        if self.path == "/api/show":
            return self.post_show()
        self.body_json()
        self.send_json(404, {"error": "not found"})

    def post_blob(self, digest):
        st = self.server.state
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self.send_json(400, {"error": "chunked uploads are not "
                                        "expected here"})
        n = int(self.headers.get("Content-Length") or 0)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=st.root, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                left = n
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    h.update(chunk)
                    f.write(chunk)
                    left -= len(chunk)
            if digest is None:
                os.unlink(tmp)
                return self.send_json(400, {"error": "invalid digest format"})
            got = "sha256:" + h.hexdigest()
            if got != digest:
                os.unlink(tmp)
                with st.lock:
                    st.rejected += 1
                return self.send_json(400, {
                    "error": "digest mismatch, expected %s, got %s"
                             % (digest, got)})
            os.rename(tmp, os.path.join(st.root, digest.replace(":", "-")))
            with st.lock:
                st.blobs[digest] = n
                st.uploads += 1
            self.send_empty(201)
        except Exception:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def post_create(self):
        st = self.server.state
        req = self.body_json()
        if not isinstance(req, dict) or not isinstance(req.get("model"), str) \
                or not req["model"]:
            return self.send_json(400, {"error": "model is required"})
        files = req.get("files")
        if not isinstance(files, dict) or not files:
            return self.send_json(400, {"error": "neither 'from' nor "
                                        "'files' was specified"})
        lines = [{"status": "parsing GGUF"}]
        for name, digest in files.items():
            if not isinstance(digest, str) or not DIGEST.match(digest):
                return self.send_json(400, {"error": "invalid digest for %s"
                                            % name})
            with st.lock:
                held = digest in st.blobs
            if not held:
                return self.send_json(400, {"error": "blob %s not found"
                                            % digest})
            with open(os.path.join(st.root, digest.replace(":", "-")),
                      "rb") as f:
                if f.read(4) != b"GGUF":
                    lines.append({"error": "%s is not a GGUF file" % name})
                    return self.stream(lines)
            lines.append({"status": "using existing layer %s" % digest})
        params = req.get("parameters")
        if params is not None and not isinstance(params, dict):
            return self.send_json(400, {"error": "parameters is an object"})
        if "template" in req:
            lines.append({"status": "creating template layer"})
        if params:
            lines.append({"status": "creating parameters layer"})
        lines.append({"status": "writing manifest"})
        with st.lock:
            st.models[full_name(req["model"])] = req
        lines.append({"status": "success"})
        self.stream(lines)

    def stream(self, lines):
        # a stream of JSON objects, one a line, as Ollama sends them
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for obj in lines:
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(0.005)
        self.wfile.write(b"0\r\n\r\n")

    def post_show(self):
        st = self.server.state
        req = self.body_json()
        name = full_name(req.get("model", "")) if isinstance(req, dict) else ""
        with st.lock:
            m = st.models.get(name)
        if m is None:
            return self.send_json(404, {"error": "model '%s' not found"
                                        % name})
        params = m.get("parameters") or {}
        plines = []
        for k, v in params.items():
            for item in (v if isinstance(v, list) else [v]):
                plines.append("%-30s %s" % (k, json.dumps(item)))
        mf = ["FROM %s" % os.path.join(st.root, d.replace(":", "-"))
              for d in m["files"].values()]
        if "template" in m:
            mf.append('TEMPLATE """%s"""' % m["template"])
        for k, v in params.items():
            for item in (v if isinstance(v, list) else [v]):
                mf.append("PARAMETER %s %s" % (k, json.dumps(item)))
        self.send_json(200, {"modelfile": "\n".join(mf) + "\n",
                             "parameters": "\n".join(plines),
                             "template": m.get("template", ""),
                             "details": {"format": "gguf"}})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", help="where blobs are kept (default: a "
                    "temporary directory)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    root = a.dir or tempfile.mkdtemp(prefix="fakeollama-")
    os.makedirs(root, exist_ok=True)
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = State(root)
    srv.verbose = a.verbose
    print("OLLAMA_PORT=%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
