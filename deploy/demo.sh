#!/usr/bin/env bash
# deploy/demo.sh: the main job end to end on the embedded default, on this
# machine alone: a loopback worker (OpenSSH's sshd on 127.0.0.1 with a
# throwaway key) and a generated Phi-4-shaped tiny model whose config.json
# lies the way the real one did, served by a loopback stand-in for the
# Hugging Face hub.
#
#   1. install what is needed and build (deploy/deps.sh, cmake)
#   2. generate the model and serve it on 127.0.0.1
#   3. mibera-job inspect: every lie found, with its evidence
#   4. mibera-job worker add: the loopback box, its host key pinned
#   5. mibera-job submit + mibera-coordinator --once: fetch, convert (with
#      the repairs), quantize, manifest, verified pull over SFTP, smoke
#   6. the status table, the repairs it made, the artifacts with their
#      checksums, the smoke results, the Modelfile and model card
#
# Environment: MIBERA_DEMO_DIR (default /tmp/mibera-demo) holds everything,
# the job database included (MIBERA_HOME is set inside it).
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${MIBERA_DEMO_DIR:-/tmp/mibera-demo}
step() { printf '\n== %s\n' "$*"; }

step "dependencies"
if [ "$(id -u)" = 0 ]; then deploy/deps.sh; else MIBERA_SKIP_APT=1 deploy/deps.sh; fi

step "build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DMB_LLAMA_PREFIX="${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}/llama.cpp" >/dev/null
cmake --build build --target mibera-job mibera-worker mibera-coordinator \
	2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
bin=$PWD/build

rm -rf "$demo"
mkdir -p "$demo/hub/demo"
export MIBERA_HOME=$demo/mibera

step "a model whose config.json lies"
python3 tests/fixtures/mkmodel --preset phi4-tiny --config broken --out "$demo/hub/demo/phi4-tiny"
grep -E '"(model_type|num_hidden_layers|hidden_size|vocab_size)"' "$demo/hub/demo/phi4-tiny/config.json"

step "a loopback hub serving it, and a loopback worker"
python3 tests/harness/fakehub.py --root "$demo/hub" >"$demo/hub.ports" &
hub_pid=$!
sshd_dir=$demo/sshd
mkdir -p "$sshd_dir"
cleanup() {
	kill "$hub_pid" 2>/dev/null || true
	tests/harness/sshd.sh stop "$sshd_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$demo/hub.ports" ] && break; sleep 0.1; done
export HF_ENDPOINT=http://127.0.0.1:$(sed -E 's/HUB_PORT=([0-9]+).*/\1/' "$demo/hub.ports")
tests/harness/sshd.sh start "$sshd_dir" >"$demo/sshd.env"
ssh_port=$(sed -n 's/^PORT=//p' "$demo/sshd.env")
ssh_user=$(sed -n 's/^USER=//p' "$demo/sshd.env")
ssh_key=$(sed -n 's/^KEY=//p' "$demo/sshd.env")
echo "HF_ENDPOINT=$HF_ENDPOINT; worker: sshd on 127.0.0.1:$ssh_port"

step "mibera-job inspect demo/phi4-tiny"
"$bin/mibera-job" inspect demo/phi4-tiny

step "mibera-job worker add (the first try shows the host key to check)"
target=$ssh_user@127.0.0.1:$ssh_port
add=(worker add box1 "$target" --key "$ssh_key" --dir "$demo/worker"
	--agent "$bin/mibera-worker" --cost-per-hour 0.40)
if out=$("$bin/mibera-job" "${add[@]}" 2>&1); then
	echo "$out"
else
	echo "$out"
	fp=$(grep -o 'SHA256:[A-Za-z0-9+/=]*' <<<"$out" | head -n 1)
	"$bin/mibera-job" "${add[@]}" --accept-host-key "$fp"
fi

step "mibera-job submit demo/phi4-tiny --worker box1 --quant Q4_K_M,Q8_0"
src=demo/phi4-tiny
"$bin/mibera-worker" --help | grep -q '^  fetch ' || src=$demo/hub/demo/phi4-tiny
job=$("$bin/mibera-job" submit "$src" --worker box1 --quant Q4_K_M,Q8_0)
echo "job $job"

step "mibera-coordinator --once"
"$bin/mibera-coordinator" --once
[ "$("$bin/mibera-job" status "$job" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["state"])')" = succeeded ] ||
	{ echo "demo: the job did not succeed" >&2; exit 1; }

step "the result: mibera-job status, then show (steps, repairs, artifacts)"
"$bin/mibera-job" status
"$bin/mibera-job" show "$job"
ls -l "$MIBERA_HOME/artifacts/job-$job"
(cd "$MIBERA_HOME/artifacts/job-$job" && sha256sum ./*.gguf)
python3 - "$MIBERA_HOME/artifacts/job-$job/provenance.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print("provenance: %d config repairs, %d artifacts, recommended %s" % (
    len(p["repairs"]), len(p["artifacts"]), p["recommended"]))
for s in p["smoke"]:
    print("smoke %-24s load %.2f s, %6.1f tokens/s, peak RSS %.0f MiB: %r" % (
        s["file"], s["load_s"], s["gen_tps"], s["peak_rss"] / 2**20, s["text"][:40]))
PY
echo
sed -n '1,12p' "$MIBERA_HOME/artifacts/job-$job/Modelfile"
echo
echo "Done: everything is in $demo (job database: $MIBERA_HOME/jobs.db)."
