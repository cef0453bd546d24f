#!/usr/bin/env bash
# tests/run.sh: installs what the build needs (deploy/deps.sh), builds
# everything twice (normal, and with AddressSanitizer + UBSan) and runs the
# whole suite against both through ctest, then builds the libFuzzer
# targets with clang, replays their seed corpora and fuzzes each for a
# short fixed time. Exits non-zero on any failure.
#
#   tests/run.sh [ctest args...]     e.g. tests/run.sh -L unit
#
# Environment: MB_SKIP_ASAN=1 runs only the normal build (and no fuzzing);
# MB_FUZZ_SECONDS sets each fuzz target's run (default 20); MB_JOBS sets the
# build and test parallelism (default: nproc); MIBERA_DEPS_CACHE is passed
# on to deploy/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
jobs=${MB_JOBS:-$(nproc)}

if [ "$(id -u)" = 0 ]; then
	deploy/deps.sh
else
	MIBERA_SKIP_APT=1 deploy/deps.sh
fi

llama="-DMB_LLAMA_PREFIX=${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}/llama.cpp"
configs=("build:-DCMAKE_BUILD_TYPE=RelWithDebInfo $llama")
if [ "${MB_SKIP_ASAN:-0}" != 1 ]; then
	configs+=("build-asan:-DCMAKE_BUILD_TYPE=Debug -DMB_SANITIZE=ON $llama")
	configs+=("build-fuzz:-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMB_FUZZ=ON -DMB_FUZZ_SECONDS=${MB_FUZZ_SECONDS:-20} $llama")
fi

for c in "${configs[@]}"; do
	dir=${c%%:*}
	# shellcheck disable=SC2086 # the flags are words
	cmake -S . -B "$dir" -G Ninja ${c#*:} >"/tmp/mibera-configure-$dir.log" 2>&1 ||
		{ cat "/tmp/mibera-configure-$dir.log"; exit 1; }
	echo "== building $dir"
	set +e
	cmake --build "$dir" -j "$jobs" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] '
	rc=${PIPESTATUS[0]}
	set -e
	[ "$rc" = 0 ] || { echo "build of $dir failed"; exit 1; }
done

passed=0 failed=0 status=0
for c in "${configs[@]}"; do
	dir=${c%%:*}
	echo "== testing $dir"
	log=$dir/ctest.log
	set +e
	ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	[ "$rc" = 0 ] || status=1
	# "100% tests passed, 0 tests failed out of 12"
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
	if [ -z "$line" ] && grep -q 'No tests were found' "$log"; then
		continue # a filter that selects nothing in this build
	fi
	if [ -z "$line" ]; then
		echo "ctest printed no summary for $dir"
		status=1
		continue
	fi
	f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	n=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	passed=$((passed + n - f))
	failed=$((failed + f))
done

echo "== done in $(($(date +%s) - t0)) s (${configs[*]%%:*})"
echo "tests: $passed passed, $failed failed"
exit "$status"
