#!/usr/bin/env bash
# deploy/worker-bootstrap.sh DIR BUNDLE: installs the mibera agent on a
# worker box from the source bundle the coordinator uploaded.
#
#   1. unpacks BUNDLE (a zstd tarball of the project) into DIR/src
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
mkdir -p "$dir/src" "$dir/bin"
tar --zstd -xf "$bundle" -C "$dir/src"
cd "$dir/src"
if [ "$(id -u)" = 0 ]; then
	deploy/deps.sh
else
	MIBERA_SKIP_APT=1 deploy/deps.sh
fi
# the build type the test suite runs; a failure shows its last lines
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_WORKER_ONLY=ON \
	-DMB_LLAMA_PREFIX="${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}/llama.cpp" \
	>build.log 2>&1 || { tail -20 build.log >&2; exit 1; }
cmake --build build --target mibera-worker >>build.log 2>&1 ||
	{ tail -20 build.log >&2; exit 1; }
install -m 0755 build/mibera-worker "$dir/bin/mibera-worker.new"
mv -f "$dir/bin/mibera-worker.new" "$dir/bin/mibera-worker"
"$dir/bin/mibera-worker" hello --dir "$dir"
