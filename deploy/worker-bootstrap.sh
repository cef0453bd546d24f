#!/usr/bin/env bash
# deploy/worker-bootstrap.sh DIR BUNDLE [LLAMA_SRC]: installs the mibera
# agent on a worker box from what the coordinator uploaded.
#
#   1. unpacks BUNDLE (a gzip tarball of the project) into DIR/src
#   2. deploy/deps.sh --worker from it: the Debian/Ubuntu packages a worker
#      needs when missing (needs root) and llama.cpp built from LLAMA_SRC
#      (the pinned source the coordinator was built with), unless its cache
#      is already there; no Node.js, npm or other registry
#   3. builds mibera-worker alone and installs it as DIR/bin/mibera-worker
#
# Prints the agent's hello at the end. Idempotent: a rerun rebuilds only
# what changed. Progress goes to stderr as "bootstrap: STEP" lines as each
# step starts; a failure ends with "bootstrap: failed while STEP: WHAT"
# (the error that stopped it), the line `worker add` reports.
set -euo pipefail
shopt -s lastpipe
dir=$1
bundle=$2
llama_src=${3:-}
phase="starting"
reported=0
say() { phase=$1; printf 'bootstrap: %s\n' "$1" >&2; }
fail() {
	printf 'bootstrap: failed while %s: %s\n' "$phase" "$*" >&2
	reported=1
	exit 1
}
# the last line says which step failed, whatever the tool printed before
trap 'rc=$?; [ $rc = 0 ] || [ $reported = 1 ] || printf "bootstrap: failed while %s (exit %d)\n" "$phase" $rc >&2' EXIT
# the last lines of a log for context, then its first error line
log_failed() {
	local log=$1 what=$2
	tail -n 20 "$log" >&2
	fail "$what failed: $(grep -m1 -E 'error|Error|ERROR' "$log" || tail -n 1 "$log") (log: $log)"
}

say "unpacking the mibera source"
command -v tar >/dev/null && command -v gzip >/dev/null ||
	fail "tar and gzip are needed to unpack the mibera source"
mkdir -p "$dir/src" "$dir/bin"
tar -xzf "$bundle" -C "$dir/src" || fail "cannot unpack '$bundle'"
cd "$dir/src"

# deps.sh's steps are this script's steps: each "deps: X" line is shown as
# "bootstrap: X", its failure line is this script's; all of it goes to
# deps.log.
say "installing the build dependencies and llama.cpp (deploy/deps.sh; minutes the first time)"
export MIBERA_DEPS_CACHE=${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}
# not root: llama.cpp goes beside the agent, unless root's cache has it
if [ "$(id -u)" != 0 ] && [ ! -f "$MIBERA_DEPS_CACHE/llama.cpp/.complete" ] &&
	! { mkdir -p "$MIBERA_DEPS_CACHE" 2>/dev/null && [ -w "$MIBERA_DEPS_CACHE" ]; }; then
	MIBERA_DEPS_CACHE="$dir/deps"
fi
[ -z "$llama_src" ] || export MIBERA_LLAMA_SRC="$llama_src"
: >deps.log
set +e
bash deploy/deps.sh --worker 2>&1 | while IFS= read -r line; do
	printf '%s\n' "$line" >>deps.log
	case $line in
	"deps: failed while "*)
		phase=${line#deps: failed while }
		phase=${phase%%: *}
		printf 'bootstrap: %s\n' "${line#deps: }" >&2
		reported=1
		;;
	"deps: done "*) ;;
	"deps: "*) printf 'bootstrap: %s\n' "${line#deps: }" >&2 ;;
	*) printf '%s\n' "$line" >&2 ;;
	esac
done
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	[ $reported = 1 ] || fail "deploy/deps.sh exited $rc (log: $dir/src/deps.log)"
	exit 1
fi

say "building mibera-worker"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_WORKER_ONLY=ON \
	-DMB_LLAMA_PREFIX="$MIBERA_DEPS_CACHE/llama.cpp" \
	>build.log 2>&1 || log_failed "$dir/src/build.log" "cmake configure"
cmake --build build --target mibera-worker >>build.log 2>&1 ||
	log_failed "$dir/src/build.log" "the build"
say "installing it as $dir/bin/mibera-worker"
install -m 0755 build/mibera-worker "$dir/bin/mibera-worker.new"
mv -f "$dir/bin/mibera-worker.new" "$dir/bin/mibera-worker"
say "asking it hello"
"$dir/bin/mibera-worker" hello --dir "$dir"
