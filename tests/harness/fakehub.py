#!/usr/bin/env python3
"""fakehub: a Hugging Face hub stand-in for the tests, over a directory.

Serves DIR/<org>/<name>/ as the model repo org/name: the revision and tree
APIs, resolve (302 to a second "blob" port for LFS files, direct for the
rest), Range, Bearer auth, gated and private repos, and fault knobs set per
file through a control API on the hub port. Standard library only.

Uploads, as the hub takes them from huggingface_hub's create_commit (each
needs the Bearer token): POST /api/repos/create ({"name", "organization",
"private"}; 409 when it exists; a new repo holds .gitattributes);
POST /api/models/<org>/<name>/preupload/<rev> (uploadMode "lfs" for the
LFS suffixes above and files of 10 MB or more); POST
<org>/<name>.git/info/lfs/objects/batch (per object: no actions when the
store has it; above --multipart-threshold a multipart upload: header
chunk_size and one signed part URL per chunk on the blob port, each PUT
answered with ETag "<md5>", then a POST of {"oid", "parts": [{"partNumber",
"etag"}]} to the action's href; else one PUT URL and a verify action);
POST /api/models/<org>/<name>/commit/<rev> (NDJSON: a header line with
summary and an optional parentCommit, 412 when that is not the head; then
"file" lines with base64 content and "lfsFile" lines naming stored
objects). A commit writes the files into the repo's directory, so the
revision, tree and resolve endpoints serve them.
Fault paths for uploads: "lfs-part/<n>" (part n of any object),
"lfs-object" (a single PUT), "commit" (refused before it applies) and
"commit-applied" (applied, then answered with the status: a lost answer).

Usage: fakehub.py --root DIR [--port 0] [--blob-port 0] [--token TOKEN]
                  [--page-size N] [--multipart-threshold BYTES]
                  [--chunk-size BYTES] [--verbose]

Prints one line "HUB_PORT=<p> BLOB_PORT=<q>" when both ports listen, then
serves until SIGTERM.

Repo options: DIR/<org>/<name>/.fakehub.json may hold
  {"gated": true, "private": true, "commit": "<40 hex>",
   "sha256": {"<path>": "<64 hex>"}}                       (all optional)
"sha256" declares LFS hashes instead of computing them: for huge sparse
files whose content no test reads (their blobs then do not verify).

Control API (hub port, no auth):
  POST /_control/fault  {"repo": "org/name", "path": "file", knobs...}
      cut_after N     close the connection after N body bytes
      corrupt_at K    flip the byte at absolute file offset K when served
      stall S         send nothing for S seconds after the headers (or, with
                      cut_after, after the N bytes, and then close)
      throttle B      send at B bytes/s
      ignore_range    answer 200 with the whole file to a Range request
      rate_limit N    the next N resolve/API requests get 429
      retry_after T   the t= and Retry-After of those 429s (default 1)
      status C        answer HTTP C (e.g. 503) to the next resolve or blob
                      requests for the path, `times` of them (default 1)
      times M         responses the byte knobs apply to (default 1 when
                      cut_after, corrupt_at or stall is set, else forever)
    A fault without "path" (or with "") matches every path of the repo and,
    for rate_limit, the repo's revision and tree API calls too.
  POST /_control/reset  clears faults and counters
  GET  /_control/stats  {"files": {"org/name/path": {"bytes", "requests"}},
                         "blob_auth_headers": K, "requests": total,
                         "uploads": {"org/name": {"batches", "part_puts",
                           "object_puts", "bytes", "objects", "commits",
                           "refused"}}}
    part_puts and object_puts count every PUT (failed ones too); bytes:
    body bytes received by them; objects: LFS objects stored; commits:
    commits applied; refused: requests refused with an injected status.
    bytes: body bytes of that file actually written to a socket; requests:
    resolve and blob requests that named that file.
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".model", ".pt")
LFS_MIN_SIZE = 10 * 1024 * 1024
CHUNK = 256 * 1024
META_NAME = ".fakehub.json"
STORE_NAME = ".lfs-store"
OID_RE = re.compile(r"^[0-9a-f]{64}$")
GITATTRIBUTES = b"""*.bin filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
"""


class State:
    """Everything the two servers share, behind one lock."""

    def __init__(self, root, token, page_size, verbose,
                 multipart_threshold=64 << 20, chunk_size=16 << 20):
        self.root = os.path.abspath(root)
        self.token = token
        self.page_size = page_size
        self.verbose = verbose
        self.multipart_threshold = multipart_threshold
        self.chunk_size = chunk_size
        self.store = os.path.join(self.root, STORE_NAME)
        self.multipart = {}
        self.commit_lock = threading.Lock()
        self.hub_port = 0
        self.blob_port = 0
        self.lock = threading.Lock()
        self.hash_cache = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.faults = []
            self.files = {}
            self.blob_auth = 0
            self.requests = 0
            self.uploads = {}

    def count_upload(self, repo_id, key, n=1):
        with self.lock:
            st = self.uploads.setdefault(repo_id, {
                "batches": 0, "part_puts": 0, "object_puts": 0, "bytes": 0,
                "objects": 0, "commits": 0, "refused": 0})
            st[key] += n

    def count_request(self):
        with self.lock:
            self.requests += 1

    def count_file(self, key, nbytes=0, request=False):
        with self.lock:
            st = self.files.setdefault(key, {"bytes": 0, "requests": 0})
            st["bytes"] += nbytes
            if request:
                st["requests"] += 1

    # Faults -------------------------------------------------------------

    def add_fault(self, spec):
        repo = spec.get("repo")
        if not isinstance(repo, str) or not repo:
            raise ValueError("fault needs a repo")
        path = spec.get("path") or ""
        f = {"repo": repo, "path": path}
        for k in ("cut_after", "corrupt_at", "throttle", "rate_limit"):
            if k in spec and spec[k] is not None:
                f[k] = int(spec[k])
                if f[k] < 0 or (k == "throttle" and f[k] == 0):
                    raise ValueError("bad " + k)
        if "stall" in spec and spec["stall"] is not None:
            f["stall"] = float(spec["stall"])
        f["ignore_range"] = bool(spec.get("ignore_range", False))
        f["retry_after"] = int(spec.get("retry_after", 1))
        once = any(k in f for k in ("cut_after", "corrupt_at", "stall"))
        times = spec.get("times")
        f["times"] = int(times) if times is not None else (1 if once else -1)
        f["rate_left"] = f.get("rate_limit", 0)
        if "status" in spec and spec["status"] is not None:
            f["status"] = int(spec["status"])
            if not 400 <= f["status"] <= 599:
                raise ValueError("bad status")
            f["status_left"] = int(times) if times is not None else 1
            if "cut_after" not in f and "corrupt_at" not in f and \
                    "stall" not in f:
                f["times"] = 0  # the byte knobs do not apply
        with self.lock:
            self.faults.append(f)

    def _match(self, f, repo, path):
        return f["repo"] == repo and (f["path"] == "" or f["path"] == path)

    def take_rate_limit(self, repo, path):
        """Returns the retry_after of a 429 to answer now, or None."""
        with self.lock:
            for f in self.faults:
                if f["rate_left"] > 0 and self._match(f, repo, path):
                    f["rate_left"] -= 1
                    return f["retry_after"]
        return None

    def take_status(self, repo, path):
        """Returns the HTTP status to answer now instead of the file, or
        None."""
        with self.lock:
            for f in self.faults:
                if f.get("status_left", 0) > 0 and self._match(f, repo, path):
                    f["status_left"] -= 1
                    return f["status"]
        return None

    def take_byte_faults(self, repo, path, start, end):
        """Combines the byte faults that apply to a response serving file
        offsets [start, end] and uses one of each one's times."""
        out = {"cut_after": None, "corrupt_at": [], "stall": 0.0,
               "throttle": None, "ignore_range": False}
        with self.lock:
            for f in self.faults:
                if f["times"] == 0 or not self._match(f, repo, path):
                    continue
                used = False
                if "cut_after" in f:
                    c = out["cut_after"]
                    out["cut_after"] = (f["cut_after"] if c is None
                                        else min(c, f["cut_after"]))
                    used = True
                if "corrupt_at" in f and start <= f["corrupt_at"] <= end:
                    out["corrupt_at"].append(f["corrupt_at"])
                    used = True
                if "stall" in f:
                    out["stall"] = max(out["stall"], f["stall"])
                    used = True
                if "throttle" in f:
                    t = out["throttle"]
                    out["throttle"] = (f["throttle"] if t is None
                                       else min(t, f["throttle"]))
                    used = True
                if f["ignore_range"]:
                    out["ignore_range"] = True
                    used = True
                if used and f["times"] > 0:
                    f["times"] -= 1
        return out

    def peek_ignore_range(self, repo, path):
        with self.lock:
            return any(f["ignore_range"] and f["times"] != 0 and
                       self._match(f, repo, path) for f in self.faults)

    # Repos --------------------------------------------------------------

    def file_hash(self, full, size, mtime, algo):
        key = (full, size, mtime, algo)
        with self.lock:
            h = self.hash_cache.get(key)
        if h is not None:
            return h
        if algo == "sha256":
            m = hashlib.sha256()
        else:
            m = hashlib.sha1()
            m.update(b"blob %d\0" % size)
        with open(full, "rb") as fp:
            while True:
                b = fp.read(1 << 20)
                if not b:
                    break
                m.update(b)
        h = m.hexdigest()
        with self.lock:
            self.hash_cache[key] = h
        return h

    def load_repo(self, org, name):
        """Returns the repo as a dict, or None when it does not exist."""
        for part in (org, name):
            if not part or part.startswith(".") or "/" in part or \
                    "\\" in part or "\0" in part:
                return None
        base = os.path.join(self.root, org, name)
        if not os.path.isdir(base):
            return None
        meta = {}
        mp = os.path.join(base, META_NAME)
        if os.path.isfile(mp):
            with open(mp, "rb") as fp:
                meta = json.load(fp)
        files = {}
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, base).replace(os.sep, "/")
                if rel == META_NAME:
                    continue
                st = os.stat(full)
                size = st.st_size
                lfs = fn.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
                ent = {"path": rel, "full": full, "size": size, "lfs": lfs}
                if lfs:
                    sha = meta.get("sha256", {}).get(rel) or self.file_hash(
                        full, size, st.st_mtime_ns, "sha256")
                    ptr = ("version https://git-lfs.github.com/spec/v1\n"
                           "oid sha256:%s\nsize %d\n" % (sha, size)).encode()
                    ent["sha256"] = sha
                    ent["pointer_size"] = len(ptr)
                    ent["oid"] = hashlib.sha1(
                        b"blob %d\0" % len(ptr) + ptr).hexdigest()
                else:
                    ent["oid"] = self.file_hash(full, size, st.st_mtime_ns,
                                                "git")
                files[rel] = ent
        commit = meta.get("commit")
        if not commit:
            m = hashlib.sha1()
            for rel in sorted(files):
                e = files[rel]
                m.update(("%s\0%d\0%s\n" % (
                    rel, e["size"], e.get("sha256", e["oid"]))).encode())
            commit = m.hexdigest()
        return {"id": org + "/" + name, "files": files, "commit": commit,
                "gated": bool(meta.get("gated", False)),
                "private": bool(meta.get("private", False))}


def tree_entries(repo, subpath):
    """All entries (files and directories) under subpath, sorted by path,
    each with its depth below subpath. None when subpath is not a dir."""
    prefix = subpath + "/" if subpath else ""
    dirs = {}
    files = []
    for rel, e in repo["files"].items():
        if not rel.startswith(prefix):
            continue
        rest = rel[len(prefix):]
        parts = rest.split("/")
        for i in range(1, len(parts)):
            d = prefix + "/".join(parts[:i])
            dirs.setdefault(d, []).append(e)
        files.append((rel, len(parts) - 1, e))
    if subpath and not files:
        return None
    out = []
    for rel, depth, e in files:
        ent = {"type": "file", "oid": e["oid"], "size": e["size"],
               "path": rel}
        if e["lfs"]:
            ent["lfs"] = {"oid": e["sha256"], "size": e["size"],
                          "pointerSize": e["pointer_size"]}
        out.append((rel, depth, ent))
    for d, members in dirs.items():
        m = hashlib.sha1()
        for e in sorted(members, key=lambda x: x["path"]):
            m.update(("%s %s\n" % (e["path"], e["oid"])).encode())
        depth = d[len(prefix):].count("/")
        out.append((d, depth, {"type": "directory", "oid": m.hexdigest(),
                               "size": 0, "path": d}))
    out.sort(key=lambda x: x[0])
    return out


def parse_range(value, size):
    """Returns (start, end) inclusive, "bad" when unsatisfiable, or None
    when there is no usable Range header (serve the whole file)."""
    if not value or not value.startswith("bytes="):
        return None
    spec = value[6:].split(",")[0].strip()
    if "-" not in spec:
        return None
    a, b = spec.split("-", 1)
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return "bad"
            return (max(0, size - n), size - 1) if size > 0 else "bad"
        start = int(a)
        end = int(b) if b else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "bad"
    return (start, min(end, size - 1))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakehub/1"
    timeout = 120

    @property
    def st(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if self.st.verbose:
            sys.stderr.write("fakehub: %s %s\n" % (
                self.address_string(), fmt % args))

    # Replies ------------------------------------------------------------

    def reply(self, code, body=b"", headers=None, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, code, err_code, msg):
        headers = {"X-Error-Code": err_code} if err_code else {}
        headers["X-Error-Message"] = msg
        self.reply(code, {"error": msg}, headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def authorized(self):
        tok = self.st.token
        auth = self.headers.get("Authorization", "")
        return tok is not None and auth == "Bearer " + tok

    def get_repo(self, org, name):
        """The repo if this client may see it; else answers and returns
        None."""
        repo = self.st.load_repo(org, name)
        if repo is None:
            self.error(401, "RepoNotFound",
                       "Repository Not Found for url: %s" % self.path)
            return None
        if (repo["gated"] or repo["private"]) and not self.authorized():
            if repo["private"]:
                self.error(401, "RepoNotFound",
                           "Repository Not Found for url: %s" % self.path)
            else:
                self.error(401, "GatedRepo", "Access to model %s is "
                           "restricted. You must have access to it and be "
                           "authenticated to access it." % repo["id"])
            return None
        return repo

    def check_rev(self, repo, rev):
        if rev in ("main", repo["commit"]):
            return True
        self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
        return False

    def reply_429(self, t):
        hdr = {"RateLimit": '"resolvers";r=0;t=%d' % t,
               "RateLimit-Policy": '"fixed window";"resolvers";q=5000;w=300',
               "Retry-After": t}
        self.reply(429, {"error": "You have been rate-limited; you can "
                         "retry this action in %d seconds." % t}, hdr)

    def serve_file(self, repo_id, ent, headers):
        """Sends a file's bytes (or a Range of them) with the faults that
        apply to this path."""
        key = repo_id + "/" + ent["path"]
        size = ent["size"]
        head = self.command == "HEAD"
        rng = parse_range(self.headers.get("Range"), size)
        if rng is not None and self.st.peek_ignore_range(repo_id, ent["path"]):
            rng = None
        if rng == "bad":
            self.reply(416, {"error": "range not satisfiable"},
                       {"Content-Range": "bytes */%d" % size})
            return
        start, end = rng if rng else (0, size - 1)
        if head:
            faults = None
        else:
            faults = self.st.take_byte_faults(repo_id, ent["path"], start, end)
        length = end - start + 1 if size > 0 else 0
        self.send_response(206 if rng else 200)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if rng:
            self.send_header("Content-Range",
                             "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        self.wfile.flush()
        if head:
            return
        cut = faults["cut_after"]
        limit = length if cut is None else min(cut, length)
        if faults["stall"] > 0 and cut is None:
            time.sleep(faults["stall"])
        rate = faults["throttle"]
        chunk = CHUNK if rate is None else max(1024, min(CHUNK, rate // 20))
        sent = 0
        t0 = time.monotonic()
        try:
            with open(ent["full"], "rb") as fp:
                fp.seek(start)
                while sent < limit:
                    b = fp.read(min(chunk, limit - sent))
                    if not b:
                        break
                    off = start + sent
                    if faults["corrupt_at"]:
                        ba = None
                        for k in faults["corrupt_at"]:
                            if off <= k < off + len(b):
                                ba = ba or bytearray(b)
                                ba[k - off] ^= 0xFF
                        if ba is not None:
                            b = bytes(ba)
                    # Counted before the write: a client that has read
                    # the last byte may ask for the stats at once.
                    self.st.count_file(key, len(b))
                    try:
                        self.wfile.write(b)
                    except OSError:
                        self.st.count_file(key, -len(b))
                        raise
                    sent += len(b)
                    if rate is not None:
                        ahead = t0 + sent / rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
        except OSError:
            self.close_connection = True
            return
        if cut is not None or sent < length:
            if faults["stall"] > 0:
                time.sleep(faults["stall"])
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # Dispatch -----------------------------------------------------------

    def do_HEAD(self):
        self.dispatch()

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def dispatch(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug here must show, not hang the client
            sys.stderr.write("fakehub: %s %s: %r\n" % (
                self.command, self.path, e))
            try:
                self.error(500, None, "internal error: %r" % e)
            except OSError:
                self.close_connection = True


class HubHandler(Handler):
    def route(self):
        url = urllib.parse.urlsplit(self.path)
        raw = url.path.split("/")[1:]
        segs = [urllib.parse.unquote(s) for s in raw]
        query = urllib.parse.parse_qs(url.query)
        if segs and segs[0] == "_control":
            return self.control(segs[1:])
        body = self.read_body()
        self.st.count_request()
        if self.command == "POST":
            return self.post(segs, query, body)
        if self.command != "GET" and self.command != "HEAD":
            return self.error(405, None, "method not allowed")
        if len(segs) >= 6 and segs[0] == "api" and segs[1] == "models":
            org, name, kind, rev = segs[2:6]
            if kind == "revision" and len(segs) == 6:
                return self.api_revision(org, name, rev)
            if kind == "tree":
                sub = "/".join(s for s in segs[6:] if s)
                return self.api_tree(org, name, rev, sub, query)
        if len(segs) >= 5 and segs[2] == "resolve":
            path = "/".join(segs[4:])
            return self.resolve(segs[0], segs[1], segs[3], path)
        self.error(404, None, "not found: %s" % url.path)

    # Uploads ------------------------------------------------------------

    def post(self, segs, query, body):
        if segs == ["api", "repos", "create"]:
            return self.create_repo(body)
        if len(segs) == 6 and segs[:2] == ["api", "models"]:
            org, name, kind, rev = segs[2:6]
            if kind == "preupload":
                return self.preupload(org, name, rev, body)
            if kind == "commit":
                return self.commit(org, name, rev, body)
        if len(segs) == 6 and segs[1].endswith(".git") and \
                segs[2:5] == ["info", "lfs", "objects"]:
            org, name = segs[0], segs[1][:-4]
            if segs[5] == "batch":
                return self.lfs_batch(org, name, body)
            if segs[5] == "verify":
                return self.lfs_verify(org, name, body)
        if len(segs) == 5 and segs[1].endswith(".git") and \
                segs[2:5] == ["info", "lfs", "complete_multipart"]:
            return self.lfs_complete(segs[0], segs[1][:-4], query, body)
        self.error(405, None, "method not allowed")

    def need_write(self):
        """The writer's token; else answers 401 and returns False."""
        if self.authorized():
            return True
        self.error(401, None, "Invalid credentials in Authorization header"
                   if self.headers.get("Authorization") else
                   "You must be authenticated to access this endpoint")
        return False

    def json_body(self, body):
        try:
            doc = json.loads(body or b"null")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self.error(400, "BadRequest", "the body is not a JSON object")
            return None
        return doc

    def write_repo(self, org, name):
        """The repo for a write (it exists, the token is the writer's);
        else answers and returns None."""
        if not self.need_write():
            return None
        repo = self.st.load_repo(org, name)
        if repo is None:
            self.error(404, "RepoNotFound",
                       "Repository Not Found for url: %s" % self.path)
            return None
        return repo

    def refused(self, repo_id, what):
        code = self.st.take_status(repo_id, what)
        if code is None:
            return False
        self.st.count_upload(repo_id, "refused")
        self.error(code, None, "injected HTTP %d" % code)
        return True

    def create_repo(self, body):
        if not self.need_write():
            return
        doc = self.json_body(body)
        if doc is None:
            return
        org, name = doc.get("organization"), doc.get("name")
        if doc.get("type") not in (None, "model"):
            return self.error(400, None, "only model repos here")
        if not isinstance(org, str) or not isinstance(name, str) or \
                not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$", name) or \
                not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$", org) or \
                ".." in name:
            return self.error(400, None, "Invalid repo name")
        base = os.path.join(self.st.root, org, name)
        url = "http://127.0.0.1:%d/%s/%s" % (self.st.hub_port, org, name)
        with self.st.commit_lock:
            if os.path.isdir(base):
                return self.reply(409, {"error": "You already created this "
                                        "model repo", "url": url})
            os.makedirs(base)
            with open(os.path.join(base, ".gitattributes"), "wb") as fp:
                fp.write(GITATTRIBUTES)
            if doc.get("private"):
                with open(os.path.join(base, META_NAME), "w") as fp:
                    json.dump({"private": True}, fp)
        self.reply(200, {"url": url, "name": org + "/" + name,
                         "id": org + "/" + name})

    def preupload(self, org, name, rev, body):
        repo = self.write_repo(org, name)
        if repo is None or not self.check_rev(repo, rev):
            return
        doc = self.json_body(body)
        if doc is None:
            return
        files = doc.get("files")
        if not isinstance(files, list):
            return self.error(400, None, "files must be a list")
        out = []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str) \
                    or not isinstance(f.get("size"), int) or \
                    not isinstance(f.get("sample"), str):
                return self.error(400, None, "malformed file entry")
            try:
                base64.b64decode(f["sample"], validate=True)
            except binascii.Error:
                return self.error(400, None, "sample is not base64")
            lfs = f["path"].endswith(LFS_SUFFIXES) or \
                f["size"] >= LFS_MIN_SIZE
            ent = repo["files"].get(f["path"])
            out.append({"path": f["path"],
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": ent["oid"] if ent else None})
        self.reply(200, {"files": out, "commitOid": repo["commit"]})

    def store_path(self, oid):
        return os.path.join(self.st.store, oid)

    def stored(self, oid, size):
        p = self.store_path(oid)
        return os.path.isfile(p) and os.path.getsize(p) == size

    def lfs_batch(self, org, name, body):
        repo = self.write_repo(org, name)
        if repo is None:
            return
        doc = self.json_body(body)
        if doc is None:
            return
        self.st.count_upload(repo["id"], "batches")
        if doc.get("operation") != "upload" or \
                not isinstance(doc.get("objects"), list):
            return self.error(422, None, "operation must be upload")
        transfers = doc.get("transfers") or ["basic"]
        out = []
        for o in doc["objects"]:
            oid, size = o.get("oid"), o.get("size")
            if not isinstance(oid, str) or not OID_RE.match(oid) or \
                    not isinstance(size, int) or size < 0:
                out.append({"oid": str(oid), "size": size if
                            isinstance(size, int) else 0,
                            "error": {"code": 422,
                                      "message": "invalid oid or size"}})
                continue
            ent = {"oid": oid, "size": size, "authenticated": True}
            if self.stored(oid, size):
                out.append(ent)  # nothing to do: the hub has it
                continue
            sig = uuid.uuid4().hex
            if size > self.st.multipart_threshold and \
                    "multipart" in transfers:
                upload_id = uuid.uuid4().hex
                chunk = self.st.chunk_size
                nparts = (size + chunk - 1) // chunk
                with self.st.lock:
                    self.st.multipart[upload_id] = {
                        "oid": oid, "size": size, "repo": repo["id"],
                        "nparts": nparts, "parts": {}}
                header = {"chunk_size": str(chunk)}
                for n in range(1, nparts + 1):
                    header[str(n)] = ("http://127.0.0.1:%d/upload/%s/%d"
                                      "?X-Amz-Signature=%s" % (
                                          self.st.blob_port, upload_id, n,
                                          sig))
                ent["actions"] = {"upload": {
                    "href": "http://127.0.0.1:%d/%s.git/info/lfs/"
                            "complete_multipart?uploadId=%s" % (
                                self.st.hub_port, repo["id"], upload_id),
                    "header": header}}
            else:
                ent["actions"] = {
                    "upload": {"href": "http://127.0.0.1:%d/upload/%s?%s" % (
                        self.st.blob_port, oid, urllib.parse.urlencode(
                            {"repo": repo["id"], "size": size,
                             "X-Amz-Signature": sig}, safe="/"))},
                    "verify": {"href": "http://127.0.0.1:%d/%s.git/info/"
                               "lfs/objects/verify" % (self.st.hub_port,
                                                      repo["id"])}}
            out.append(ent)
        self.reply(200, {"transfer": "basic", "objects": out,
                         "hash_algo": "sha256"},
                   ctype="application/vnd.git-lfs+json")

    def lfs_verify(self, org, name, body):
        repo = self.write_repo(org, name)
        if repo is None:
            return
        doc = self.json_body(body)
        if doc is None:
            return
        oid, size = doc.get("oid"), doc.get("size")
        if not isinstance(oid, str) or not OID_RE.match(oid) or \
                not isinstance(size, int) or not self.stored(oid, size):
            return self.error(404, None, "object not found")
        self.reply(200, {"ok": True})

    def lfs_complete(self, org, name, query, body):
        # Signed by its uploadId, as on the hub: no token needed.
        upload_id = query.get("uploadId", [""])[0]
        doc = self.json_body(body)
        if doc is None:
            return
        with self.st.lock:
            up = self.st.multipart.get(upload_id)
        if up is None or up["repo"] != org + "/" + name:
            return self.error(404, None, "no such upload")
        parts = doc.get("parts")
        if doc.get("oid") != up["oid"] or not isinstance(parts, list) or \
                len(parts) != up["nparts"]:
            return self.error(400, None, "oid or part count does not match")
        tmp = os.path.join(self.st.store, "tmp")
        m = hashlib.sha256()
        total = 0
        for i, part in enumerate(parts):
            n = part.get("partNumber") if isinstance(part, dict) else None
            have = up["parts"].get(n)
            if n != i + 1 or have is None or part.get("etag") != have:
                return self.error(400, None, "part %s missing or its etag "
                                  "does not match" % (i + 1))
            with open(os.path.join(tmp, "%s.%d" % (upload_id, n)),
                      "rb") as fp:
                while True:
                    b = fp.read(1 << 20)
                    if not b:
                        break
                    m.update(b)
                    total += len(b)
        if total != up["size"] or m.hexdigest() != up["oid"]:
            return self.error(400, None, "the parts do not make the object "
                              "(size %d, sha256 %s)" % (total, m.hexdigest()))
        dst = self.store_path(up["oid"])
        with open(dst + ".tmp", "wb") as out:
            for n in range(1, up["nparts"] + 1):
                pp = os.path.join(tmp, "%s.%d" % (upload_id, n))
                with open(pp, "rb") as fp:
                    shutil.copyfileobj(fp, out, 1 << 20)
                os.unlink(pp)
        os.replace(dst + ".tmp", dst)
        with self.st.lock:
            self.st.multipart.pop(upload_id, None)
        self.st.count_upload(up["repo"], "objects")
        self.reply(200, {"ok": True})

    def commit(self, org, name, rev, body):
        repo = self.write_repo(org, name)
        if repo is None or not self.check_rev(repo, rev):
            return
        if self.refused(repo["id"], "commit"):
            return
        lines = [x for x in body.split(b"\n") if x.strip()]
        try:
            items = [json.loads(x) for x in lines]
        except ValueError:
            return self.error(400, None, "the body is not NDJSON")
        if not items or not isinstance(items[0], dict) or \
                items[0].get("key") != "header" or \
                not isinstance(items[0].get("value"), dict) or \
                not isinstance(items[0]["value"].get("summary"), str):
            return self.error(400, None, "the first line must be the header "
                              "with a summary")
        header = items[0]["value"]
        writes = []
        for it in items[1:]:
            v = it.get("value") if isinstance(it, dict) else None
            key = it.get("key") if isinstance(it, dict) else None
            path = v.get("path") if isinstance(v, dict) else None
            if not isinstance(path, str) or not path or \
                    path.startswith("/") or path.startswith(".git/") or \
                    any(x in ("", ".", "..") for x in path.split("/")) or \
                    path == META_NAME:
                return self.error(400, None, "bad path %r" % path)
            if key == "file":
                if v.get("encoding") != "base64":
                    return self.error(400, None, "encoding must be base64")
                try:
                    data = base64.b64decode(v.get("content", ""),
                                            validate=True)
                except (binascii.Error, TypeError):
                    return self.error(400, None, "content is not base64")
                writes.append((path, data, None))
            elif key == "lfsFile":
                oid, size = v.get("oid"), v.get("size")
                if v.get("algo") != "sha256" or not isinstance(oid, str) or \
                        not OID_RE.match(oid):
                    return self.error(400, None, "bad lfsFile %r" % path)
                p = self.store_path(oid)
                if not os.path.isfile(p) or (
                        size is not None and os.path.getsize(p) != size):
                    return self.error(400, None, "Your push was rejected "
                                      "because an LFS pointer pointed to a "
                                      "file that does not exist: %s" % path)
                writes.append((path, None, p))
            else:
                return self.error(400, None, "unknown key %r" % key)
        base = os.path.join(self.st.root, org, name)
        with self.st.commit_lock:
            now = self.st.load_repo(org, name)
            parent = header.get("parentCommit")
            if parent is not None and parent != now["commit"]:
                return self.error(412, None, "A commit has happened since. "
                                  "Please refresh and try again.")
            for path, data, src in writes:
                full = os.path.join(base, *path.split("/"))
                os.makedirs(os.path.dirname(full), exist_ok=True)
                tmp = full + ".fakehub-tmp"
                if src is not None:
                    shutil.copyfile(src, tmp)
                else:
                    with open(tmp, "wb") as fp:
                        fp.write(data)
                os.replace(tmp, full)
            after = self.st.load_repo(org, name)
        self.st.count_upload(repo["id"], "commits")
        if self.refused(repo["id"], "commit-applied"):
            return
        self.reply(200, {"success": True, "commitOid": after["commit"],
                         "commitUrl": "http://127.0.0.1:%d/%s/commit/%s" % (
                             self.st.hub_port, repo["id"], after["commit"]),
                         "commitMessage": header["summary"],
                         "hookOutput": "", "pullRequestUrl": None})

    def control(self, segs):
        body = self.read_body()
        cmd = "/".join(segs)
        if self.command == "POST" and cmd == "fault":
            try:
                self.st.add_fault(json.loads(body or b"{}"))
            except (ValueError, TypeError) as e:
                return self.error(400, None, "bad fault: %s" % e)
            return self.reply(200, {"ok": True})
        if self.command == "POST" and cmd == "reset":
            self.st.reset()
            return self.reply(200, {"ok": True})
        if self.command == "GET" and cmd == "stats":
            with self.st.lock:
                out = {"files": json.loads(json.dumps(self.st.files)),
                       "blob_auth_headers": self.st.blob_auth,
                       "requests": self.st.requests,
                       "uploads": json.loads(json.dumps(self.st.uploads))}
            return self.reply(200, out)
        self.error(404, None, "no control command %s" % cmd)

    def api_revision(self, org, name, rev):
        repo = self.get_repo(org, name)
        if repo is None or not self.check_rev(repo, rev):
            return
        if self.rate_limited_api(repo):
            return
        sib = []
        for rel in sorted(repo["files"]):
            e = repo["files"][rel]
            s = {"rfilename": rel, "size": e["size"]}
            if e["lfs"]:
                s["lfs"] = {"sha256": e["sha256"], "size": e["size"],
                            "pointerSize": e["pointer_size"]}
            sib.append(s)
        self.reply(200, {"id": repo["id"], "modelId": repo["id"],
                         "sha": repo["commit"], "siblings": sib,
                         "gated": "auto" if repo["gated"] else False,
                         "private": repo["private"]},
                   {"X-Repo-Commit": repo["commit"]})

    def rate_limited_api(self, repo):
        t = self.st.take_rate_limit(repo["id"], "")
        if t is None:
            return False
        self.reply_429(t)
        return True

    def api_tree(self, org, name, rev, sub, query):
        repo = self.get_repo(org, name)
        if repo is None or not self.check_rev(repo, rev):
            return
        if self.rate_limited_api(repo):
            return
        entries = tree_entries(repo, sub)
        if entries is None:
            return self.error(404, "EntryNotFound",
                              "%s does not exist on %s" % (sub, rev))
        recursive = query.get("recursive", ["false"])[0].lower() in (
            "true", "1")
        if not recursive:
            entries = [x for x in entries if x[1] == 0]
        entries = [x[2] for x in entries]
        try:
            cursor = int(query.get("cursor", ["0"])[0])
        except ValueError:
            return self.error(400, None, "bad cursor")
        n = self.st.page_size
        page = entries[cursor:cursor + n]
        headers = {}
        if cursor + n < len(entries):
            q = {"recursive": "true" if recursive else "false",
                 "cursor": str(cursor + n)}
            base = "/api/models/%s/%s/tree/%s" % (
                urllib.parse.quote(org), urllib.parse.quote(name),
                urllib.parse.quote(rev, safe=""))
            if sub:
                base += "/" + urllib.parse.quote(sub)
            headers["Link"] = '<http://127.0.0.1:%d%s?%s>; rel="next"' % (
                self.st.hub_port, base, urllib.parse.urlencode(q))
        self.reply(200, page, headers)

    def resolve(self, org, name, rev, path):
        repo = self.get_repo(org, name)
        if repo is None or not self.check_rev(repo, rev):
            return
        ent = repo["files"].get(path)
        key = repo["id"] + "/" + path
        if ent is not None:
            self.st.count_file(key, request=True)
        t = self.st.take_rate_limit(repo["id"], path)
        if t is not None:
            return self.reply_429(t)
        if ent is not None:
            code = self.st.take_status(repo["id"], path)
            if code is not None:
                return self.error(code, None, "injected HTTP %d" % code)
        if ent is None:
            return self.error(404, "EntryNotFound",
                              "%s does not exist on %s" % (path, rev))
        headers = {"X-Repo-Commit": repo["commit"]}
        if ent["lfs"]:
            loc = "http://127.0.0.1:%d/blobs/%s?%s" % (
                self.st.blob_port, ent["sha256"], urllib.parse.urlencode(
                    {"repo": repo["id"], "path": path}, safe="/"))
            headers.update({
                "Location": loc,
                "ETag": '"%s"' % ent["oid"],
                "X-Linked-Etag": '"%s"' % ent["sha256"],
                "X-Linked-Size": ent["size"]})
            return self.reply(302, b"", headers, "text/plain")
        headers["ETag"] = '"%s"' % ent["oid"]
        self.serve_file(repo["id"], ent, headers)


class BlobHandler(Handler):
    def route(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        self.st.count_request()
        if self.headers.get("Authorization") is not None:
            with self.st.lock:
                self.st.blob_auth += 1
        segs = url.path.split("/")[1:]
        query = urllib.parse.parse_qs(url.query)
        if self.command == "PUT" and segs and segs[0] == "upload":
            return self.upload(segs[1:], query, body)
        if self.command == "POST" or len(segs) != 2 or segs[0] != "blobs":
            return self.error(404, None, "no such blob")
        sha = segs[1]
        repo_id = query.get("repo", [""])[0]
        path = query.get("path", [""])[0]
        parts = repo_id.split("/")
        repo = self.st.load_repo(*parts) if len(parts) == 2 else None
        ent = repo["files"].get(path) if repo else None
        if ent is None or not ent["lfs"] or ent["sha256"] != sha:
            return self.error(404, None, "no such blob")
        self.st.count_file(repo["id"] + "/" + path, request=True)
        code = self.st.take_status(repo["id"], path)
        if code is not None:
            return self.error(code, None, "injected HTTP %d" % code)
        self.serve_file(repo["id"], ent, {"ETag": '"%s"' % sha})


    def upload(self, segs, query, body):
        """A storage PUT: one part of a multipart upload, or a whole
        object. Signed URLs: no token is needed (and none should come)."""
        if "X-Amz-Signature" not in query:
            return self.error(403, None, "unsigned upload URL")
        os.makedirs(os.path.join(self.st.store, "tmp"), exist_ok=True)
        if len(segs) == 2:
            upload_id = segs[0]
            try:
                n = int(segs[1])
            except ValueError:
                return self.error(404, None, "no such part")
            with self.st.lock:
                up = self.st.multipart.get(upload_id)
            if up is None or not 1 <= n <= up["nparts"]:
                return self.error(404, None, "no such upload")
            self.st.count_upload(up["repo"], "part_puts")
            self.st.count_upload(up["repo"], "bytes", len(body))
            code = self.st.take_status(up["repo"], "lfs-part/%d" % n)
            if code is not None:
                self.st.count_upload(up["repo"], "refused")
                return self.error(code, None, "injected HTTP %d" % code)
            want = min(self.st.chunk_size,
                       up["size"] - (n - 1) * self.st.chunk_size)
            if len(body) != want:
                return self.error(400, None, "part %d: %d bytes, expected "
                                  "%d" % (n, len(body), want))
            tmp = os.path.join(self.st.store, "tmp", "%s.%d" % (upload_id, n))
            with open(tmp, "wb") as fp:
                fp.write(body)
            etag = '"%s"' % hashlib.md5(body).hexdigest()
            with self.st.lock:
                up["parts"][n] = etag
            return self.reply(200, b"", {"ETag": etag}, "text/plain")
        if len(segs) != 1 or not OID_RE.match(segs[0]):
            return self.error(404, None, "no such object")
        oid = segs[0]
        repo_id = query.get("repo", [""])[0]
        self.st.count_upload(repo_id, "object_puts")
        self.st.count_upload(repo_id, "bytes", len(body))
        code = self.st.take_status(repo_id, "lfs-object")
        if code is not None:
            self.st.count_upload(repo_id, "refused")
            return self.error(code, None, "injected HTTP %d" % code)
        if hashlib.sha256(body).hexdigest() != oid or \
                str(len(body)) != query.get("size", [""])[0]:
            return self.error(400, None, "the body is not object %s" % oid)
        dst = os.path.join(self.st.store, oid)
        with open(dst + ".tmp", "wb") as fp:
            fp.write(body)
        os.replace(dst + ".tmp", dst)
        self.st.count_upload(repo_id, "objects")
        self.reply(200, b"", {"ETag": '"%s"' % hashlib.md5(body).hexdigest()},
                   "text/plain")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="fake Hugging Face hub")
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--blob-port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--multipart-threshold", type=int, default=64 << 20)
    ap.add_argument("--chunk-size", type=int, default=16 << 20)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.page_size < 1:
        ap.error("--page-size must be positive")
    if args.chunk_size < 1 or args.multipart_threshold < 0:
        ap.error("--chunk-size must be positive")

    state = State(args.root, args.token, args.page_size, args.verbose,
                  args.multipart_threshold, args.chunk_size)
    hub = Server(("127.0.0.1", args.port), HubHandler)
    blob = Server(("127.0.0.1", args.blob_port), BlobHandler)
    hub.state = blob.state = state
    state.hub_port = hub.server_address[1]
    state.blob_port = blob.server_address[1]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for srv in (hub, blob):
        threading.Thread(target=srv.serve_forever, kwargs={
            "poll_interval": 0.1}, daemon=True).start()
    sys.stdout.write("HUB_PORT=%d BLOB_PORT=%d\n" % (
        state.hub_port, state.blob_port))
    sys.stdout.flush()
    while not stop.wait(1.0):
        pass
    hub.shutdown()
    blob.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Handler threads may be stalled on purpose: do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    main()
