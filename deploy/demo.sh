#!/usr/bin/env bash
# deploy/demo.sh: mibera on its embedded default, end to end as far as it
# goes today, on this machine alone: a generated Phi-4-shaped tiny model
# whose config.json lies the way the real one did, served by a loopback
# stand-in for the Hugging Face hub.
#
#   1. install what is needed and build (deploy/deps.sh, cmake)
#   2. generate the model and serve it on 127.0.0.1
#   3. mibera-job inspect: every lie found, with its evidence
#   4. mibera-worker convert: GGUF in both layouts, with the repairs
#   5. mibera-job smoke: load and run each file with llama.cpp
#
# Environment: MIBERA_DEMO_DIR (default /tmp/mibera-demo) holds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=${MIBERA_DEMO_DIR:-/tmp/mibera-demo}
step() { printf '\n== %s\n' "$*"; }

step "dependencies"
if [ "$(id -u)" = 0 ]; then deploy/deps.sh; else MIBERA_SKIP_APT=1 deploy/deps.sh; fi

step "build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DMB_LLAMA_PREFIX="${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}/llama.cpp" >/dev/null
cmake --build build --target mibera-job mibera-worker mibera-coordinator \
	2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] ' || true

step "a model whose config.json lies"
rm -rf "$demo"
mkdir -p "$demo/hub/demo"
python3 tests/fixtures/mkmodel --preset phi4-tiny --config broken --out "$demo/hub/demo/phi4-tiny"
grep -E '"(model_type|num_hidden_layers|hidden_size|vocab_size)"' "$demo/hub/demo/phi4-tiny/config.json"

step "a loopback hub serving it"
python3 tests/harness/fakehub.py --root "$demo/hub" >"$demo/hub.ports" &
hub_pid=$!
trap 'kill $hub_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$demo/hub.ports" ] && break; sleep 0.1; done
port=$(sed -E 's/HUB_PORT=([0-9]+).*/\1/' "$demo/hub.ports")
export HF_ENDPOINT=http://127.0.0.1:$port
echo "HF_ENDPOINT=$HF_ENDPOINT"

step "mibera-job inspect demo/phi4-tiny"
build/mibera-job inspect demo/phi4-tiny

step "mibera-worker convert (native phi3 layout, and split into llama)"
build/mibera-worker convert "$demo/hub/demo/phi4-tiny" "$demo/phi4-tiny-F16.gguf" \
	--layout native --outtype f16 --repo demo/phi4-tiny
build/mibera-worker convert "$demo/hub/demo/phi4-tiny" "$demo/phi4-tiny-split-F16.gguf" \
	--layout split --outtype f16 --repo demo/phi4-tiny

step "llama.cpp loads and runs both"
build/mibera-job smoke "$demo/phi4-tiny-F16.gguf" "$demo/phi4-tiny-split-F16.gguf"

step "done"
echo "Files are in $demo. The rest of the job (download from the hub by the"
echo "worker over SSH, quantize, verified pull, the queue) is being built;"
echo "see README.md."
cd "$top"
