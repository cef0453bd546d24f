#!/usr/bin/env python3
"""A stand-in for vast.ai's REST API (the endpoints its `vastai` CLI uses,
under /api/v0), for the tests of `mibera-job worker rent`.

  POST   /api/v0/bundles/         search: {"disk_space": {"gte": N},
                                  "dph_total": {"lte": P}, "gpu_name":
                                  {"eq": "RTX_4090"}, "order": [...], ...}
                                  -> {"offers": [...]}, cheapest first
  PUT    /api/v0/asks/ID/         rent offer ID: {"client_id": "me", "image",
                                  "disk", "onstart", "label", "runtype"}
                                  -> {"success": true, "new_contract": N}
  GET    /api/v0/instances/       {"instances": [...]}
  GET    /api/v0/instances/ID/    {"instances": {...}} ({"instances": null}
                                  when there is none)
  DELETE /api/v0/instances/ID/    {"success": true}; 404 when unknown

Every call needs "Authorization: Bearer KEY" (KEY from $FAKEVAST_KEY, never
argv): else 401. A rented instance runs the onstart script it was sent
with MIBERA_SSH_ETC, MIBERA_AUTHORIZED_KEYS and MIBERA_DEADLINE_CMD
pointing into its own directory, then a real OpenSSH sshd on 127.0.0.1
with the host key and authorized_keys the script wrote; once sshd
listens the instance is "running" with ssh_host 127.0.0.1 and its port.

For the tests:
  GET  /_control/state   {"creates", "puts": [offer ids], "deletes": {id:
                         count}, "alive": [ids], "onstart": {id: text},
                         "key_in_url": bool, "requests": N, "throttled": N}
  POST /_control/fault   {"unauthorized": bool, "throttle": N (the next N
                         calls answer 429), "taken": [offer ids],
                         "never_run": bool}
  POST /_control/orphan  {"label", "age_s"}: an instance nobody rented here

Prints VAST_PORT=N on stdout once it listens. Python 3 standard library.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

OFFERS = [
    {"id": 1001, "cpu_ram": 64000, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564,
     "disk_space": 200.0, "dph_total": 0.31, "reliability2": 0.995,
     "geolocation": "Norway, NO", "rentable": True},
    {"id": 1002, "cpu_ram": 32000, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564,
     "disk_space": 120.0, "dph_total": 0.36, "reliability2": 0.991,
     "geolocation": "Texas, US", "rentable": True},
    {"id": 1003, "cpu_ram": 32000, "gpu_name": "RTX 3090", "num_gpus": 1, "gpu_ram": 24576,
     "disk_space": 80.0, "dph_total": 0.18, "reliability2": 0.985,
     "geolocation": "Quebec, CA", "rentable": True},
    {"id": 1004, "cpu_ram": 256000, "gpu_name": "H100 SXM", "num_gpus": 1, "gpu_ram": 81559,
     "disk_space": 500.0, "dph_total": 2.10, "reliability2": 0.999,
     "geolocation": "Oregon, US", "rentable": True},
    {"id": 1005, "cpu_ram": 128000, "gpu_name": "RTX 4090", "num_gpus": 2, "gpu_ram": 24564,
     "disk_space": 300.0, "dph_total": 0.72, "reliability2": 0.99,
     "geolocation": "Germany, DE", "rentable": True},
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Instance:
    def __init__(self, iid, offer, req, root):
        self.id = iid
        self.offer = offer
        self.req = req
        self.dir = os.path.join(root, "inst-%d" % iid)
        self.status = "loading"
        self.port = 0
        self.sshd_pid = 0
        self.script = None
        self.label = req.get("label") or ""
        self.start = time.time()

    def as_json(self):
        running = self.status == "running"
        return {"id": self.id, "actual_status": self.status,
                "intended_status": "running", "cur_state": self.status,
                "ssh_host": "127.0.0.1" if running else None,
                "ssh_port": self.port if running else None,
                "public_ipaddr": "127.0.0.1",
                "dph_total": self.offer["dph_total"],
                "gpu_name": self.offer["gpu_name"],
                "num_gpus": self.offer["num_gpus"],
                "disk_space": self.req.get("disk"),
                "image_uuid": self.req.get("image"),
                "label": self.label, "start_date": self.start}


class State:
    def __init__(self, root, key, sshd):
        self.root = root
        self.key = key
        self.sshd = sshd
        self.lock = threading.Lock()
        self.instances = {}
        self.next_id = 7001
        self.creates = 0
        self.puts = []
        self.deletes = {}
        self.onstart = {}
        self.key_in_url = False
        self.requests = 0
        self.throttled = 0
        self.fault = {"unauthorized": False, "throttle": 0, "taken": [],
                      "never_run": False}


def boot(st, inst):
    """Runs the onstart script as the box would, then sshd with its keys."""
    os.makedirs(inst.dir, exist_ok=True)
    etc = os.path.join(inst.dir, "etc")
    auth = os.path.join(inst.dir, "authorized_keys")
    env = dict(os.environ)
    env["MIBERA_SSH_ETC"] = etc
    env["MIBERA_AUTHORIZED_KEYS"] = auth
    env["MIBERA_DEADLINE_CMD"] = "echo deadline >%s/deadline" % inst.dir
    with open(os.path.join(inst.dir, "onstart.log"), "wb") as log:
        inst.script = subprocess.Popen(
            ["sh", "-c", inst.req.get("onstart") or "true"], env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
    for _ in range(200):
        if inst.script.poll() is not None:
            break
        time.sleep(0.05)
    if st.fault["never_run"]:
        return
    hostkey = os.path.join(etc, "ssh_host_ed25519_key")
    if not os.path.exists(hostkey):
        inst.status = "exited"
        return
    for _ in range(5):
        port = free_port()
        conf = os.path.join(inst.dir, "sshd_config")
        pidf = os.path.join(inst.dir, "sshd.pid")
        with open(conf, "w") as f:
            f.write("ListenAddress 127.0.0.1\nPort %d\nAddressFamily inet\n"
                    "HostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n"
                    "PubkeyAuthentication yes\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nUseDNS no\n"
                    "PermitRootLogin prohibit-password\nAllowUsers %s\n"
                    "PrintMotd no\nLogLevel ERROR\n"
                    "Subsystem sftp internal-sftp\n"
                    % (port, hostkey, auth, pidf,
                       os.environ.get("USER") or
                       __import__("pwd").getpwuid(os.getuid()).pw_name))
        try_conf = conf + ".try"
        shutil.copy(conf, try_conf)
        with open(try_conf, "a") as f:
            f.write("PerSourcePenalties no\n")
        if subprocess.call([st.sshd, "-t", "-f", try_conf],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) == 0:
            os.replace(try_conf, conf)
        else:
            os.unlink(try_conf)
        subprocess.call([st.sshd, "-f", conf, "-E",
                         os.path.join(inst.dir, "sshd.log")],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(pidf):
                try:
                    with socket.create_connection(("127.0.0.1", port), 1):
                        pass
                    inst.sshd_pid = int(open(pidf).read().strip())
                    break
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
        if inst.sshd_pid:
            break
    with st.lock:
        if inst.id in st.instances and inst.sshd_pid:
            inst.port = port
            inst.status = "running"


def kill(inst):
    if inst.sshd_pid:
        try:
            os.kill(inst.sshd_pid, signal.SIGTERM)
        except OSError:
            pass
    if inst.script is not None and inst.script.poll() is None:
        try:
            os.killpg(inst.script.pid, signal.SIGKILL)
        except OSError:
            pass
    # the deadline sleeps in a process of the script's session
    if inst.script is not None:
        try:
            os.killpg(inst.script.pid, signal.SIGKILL)
        except OSError:
            pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakevast/1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            return None

    def control(self, method):
        st = self.server.state
        if method == "GET" and self.path == "/_control/state":
            with st.lock:
                return self.send_json(200, {
                    "creates": st.creates, "puts": st.puts,
                    "deletes": {str(k): v for k, v in st.deletes.items()},
                    "alive": sorted(st.instances),
                    "onstart": {str(k): v for k, v in st.onstart.items()},
                    "key_in_url": st.key_in_url, "requests": st.requests,
                    "throttled": st.throttled})
        if method == "POST" and self.path == "/_control/fault":
            req = self.body() or {}
            with st.lock:
                st.fault.update(req)
            return self.send_json(200, st.fault)
        if method == "POST" and self.path == "/_control/orphan":
            req = self.body() or {}
            with st.lock:
                iid = st.next_id
                st.next_id += 1
                inst = Instance(iid, OFFERS[0], {"label": req.get("label")},
                                st.root)
                inst.start = time.time() - float(req.get("age_s") or 0)
                inst.status = "running"
                st.instances[iid] = inst
            return self.send_json(200, {"id": iid})
        return self.send_json(404, {"error": "not_found"})

    def api(self, method):
        st = self.server.state
        path = self.path
        if "api_key" in path or st.key in path:
            st.key_in_url = True
        req = self.body() if method in ("POST", "PUT") else None
        with st.lock:
            st.requests += 1
            if st.fault["throttle"] > 0:
                st.fault["throttle"] -= 1
                st.throttled += 1
                return self.send_json(429, {"detail": "API requests too "
                                            "frequent"}, {"Retry-After": "0"})
            auth = self.headers.get("Authorization") or ""
            if st.fault["unauthorized"] or auth != "Bearer " + st.key:
                return self.send_json(401, {"success": False,
                                            "error": "invalid_user_key",
                                            "msg": "Invalid user key"})
        m = re.match(r"^/api/v0/(bundles|asks|instances)/(?:(\d+)/)?$",
                     path.split("?")[0])
        if not m:
            return self.send_json(404, {"error": "not_found"})
        what, ident = m.group(1), m.group(2)
        if what == "bundles" and method == "POST" and ident is None:
            return self.search(req or {})
        if what == "asks" and method == "PUT" and ident:
            return self.create(int(ident), req or {})
        if what == "instances" and method == "GET":
            with st.lock:
                if ident is None:
                    return self.send_json(200, {"instances": [
                        i.as_json() for i in st.instances.values()]})
                inst = st.instances.get(int(ident))
                return self.send_json(200, {"instances":
                                            inst.as_json() if inst else None})
        if what == "instances" and method == "DELETE" and ident:
            with st.lock:
                iid = int(ident)
                st.deletes[iid] = st.deletes.get(iid, 0) + 1
                inst = st.instances.pop(iid, None)
            if inst is None:
                return self.send_json(404, {"success": False,
                                            "error": "no_such_instance"})
            kill(inst)
            return self.send_json(200, {"success": True})
        return self.send_json(405, {"error": "method_not_allowed"})

    def search(self, q):
        def ok(o):
            for k, cond in q.items():
                if not isinstance(cond, dict) or k not in o:
                    continue
                v = o[k]
                if k == "gpu_name" and "eq" in cond:
                    if v != str(cond["eq"]).replace("_", " "):
                        return False
                    continue
                if "gte" in cond and not v >= cond["gte"]:
                    return False
                if "lte" in cond and not v <= cond["lte"]:
                    return False
                if "eq" in cond and v != cond["eq"]:
                    return False
            return True
        st = self.server.state
        with st.lock:
            taken = set(int(x) for x in st.fault["taken"])
        offers = [o for o in OFFERS if ok(o)]
        offers.sort(key=lambda o: o["dph_total"])
        return self.send_json(200, {"offers": offers})

    def create(self, offer_id, req):
        st = self.server.state
        offer = next((o for o in OFFERS if o["id"] == offer_id), None)
        with st.lock:
            st.puts.append(offer_id)
            if offer is None or offer_id in [int(x) for x in
                                             st.fault["taken"]]:
                return self.send_json(400, {
                    "success": False, "error": "no_such_ask",
                    "msg": "Instance type by id %d is not available."
                           % offer_id})
            if req.get("client_id") != "me" or not req.get("image"):
                return self.send_json(400, {"success": False,
                                            "error": "invalid_args"})
            iid = st.next_id
            st.next_id += 1
            st.creates += 1
            inst = Instance(iid, offer, req, st.root)
            st.instances[iid] = inst
            st.onstart[iid] = req.get("onstart") or ""
        threading.Thread(target=boot, args=(st, inst), daemon=True).start()
        return self.send_json(200, {"success": True, "new_contract": iid})

    def do_GET(self):
        if self.path.startswith("/_control/"):
            return self.control("GET")
        return self.api("GET")

    def do_POST(self):
        if self.path.startswith("/_control/"):
            return self.control("POST")
        return self.api("POST")

    def do_PUT(self):
        return self.api("PUT")

    def do_DELETE(self):
        return self.api("DELETE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--sshd", default=os.environ.get("SSHD", "/usr/sbin/sshd"))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    key = os.environ.get("FAKEVAST_KEY") or "fake-vast-key"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(os.path.abspath(a.dir), key, a.sshd)

    def stop(sig, frame):
        with srv.state.lock:
            for inst in list(srv.state.instances.values()):
                kill(inst)
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("VAST_PORT=%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
