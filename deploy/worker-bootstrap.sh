#!/usr/bin/env bash
# deploy/worker-bootstrap.sh DIR BUNDLE: installs the mibera agent on a
# worker box from the source bundle the coordinator uploaded.
#
#   1. unpacks BUNDLE (a gzip tarball of the project) into DIR/src
#   2. deploy/deps.sh from it: the Debian/Ubuntu build dependencies when
#      missing (needs root) and llama.cpp from the same pinned source,
#      unless its cache is already there
#   3. builds mibera-worker alone and installs it as DIR/bin/mibera-worker
#
# Prints the agent's hello at the end. Idempotent: a rerun rebuilds only
# what changed.
set -euo pipefail
dir=$1
bundle=$2
phase="starting"
say() { phase=$1; printf 'bootstrap: %s\n' "$1" >&2; }
# the last line says which step failed, whatever the tool printed before
trap 'rc=$?; [ $rc = 0 ] || printf "bootstrap: failed while %s (exit %d)\n" "$phase" $rc >&2' EXIT
say "unpacking the mibera source"
mkdir -p "$dir/src" "$dir/bin"
tar -xzf "$bundle" -C "$dir/src"
cd "$dir/src"
say "installing the build dependencies and llama.cpp (deploy/deps.sh; minutes the first time)"
if [ "$(id -u)" = 0 ]; then
	deploy/deps.sh >deps.log 2>&1 || { tail -20 deps.log >&2; exit 1; }
else
	MIBERA_SKIP_APT=1 deploy/deps.sh >deps.log 2>&1 || { tail -20 deps.log >&2; exit 1; }
fi
say "building mibera-worker"
# the build type the test suite runs; a failure shows its last lines
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_WORKER_ONLY=ON \
	-DMB_LLAMA_PREFIX="${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}/llama.cpp" \
	>build.log 2>&1 || { tail -20 build.log >&2; exit 1; }
cmake --build build --target mibera-worker >>build.log 2>&1 ||
	{ tail -20 build.log >&2; exit 1; }
say "installing it as $dir/bin/mibera-worker"
install -m 0755 build/mibera-worker "$dir/bin/mibera-worker.new"
mv -f "$dir/bin/mibera-worker.new" "$dir/bin/mibera-worker"
say "asking it hello"
"$dir/bin/mibera-worker" hello --dir "$dir"
