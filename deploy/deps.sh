#!/usr/bin/env bash
# Installs what mibera needs, as root, on Debian 12 (or Ubuntu).
#
#   deploy/deps.sh            everything to build, test and run mibera
#   deploy/deps.sh --worker   only what a worker box needs to build and run
#                             mibera-worker (no Node.js, no test tools)
#
# Idempotent: Debian packages already present are not touched (apt-get update
# runs only when something is missing), and llama.cpp is built once per pinned
# version into a cache directory that later runs reuse.
#
# llama.cpp's source comes from the npm package node-llama-cpp, which ships a
# git bundle of a llama.cpp release: the npm registry is reachable where a
# plain git clone is not. The full profile also keeps that source as a
# tarball in the cache entry (PREFIX/llama.cpp-src.tar.gz, what building
# libllama needs plus mibera-llama.txt naming the version); the coordinator
# ships it to worker boxes, whose deps.sh builds from it (MIBERA_LLAMA_SRC)
# and never needs npm or a registry. The tarball also holds llama.cpp's
# own converter (convert_hf_to_gguf.py, conversion/, gguf-py/,
# requirements/), unpacked into PREFIX/convert for `--converter llama.cpp`;
# its Python requirements are installed by mibera-worker when a job first
# asks for it, not here.
#
# Environment:
#   MIBERA_DEPS_CACHE   cache root (default /var/cache/mibera-deps)
#   MIBERA_DEPS_JOBS    parallel build jobs (default: nproc)
#   MIBERA_SKIP_APT=1   do not install Debian packages (not root, or done)
#   MIBERA_LLAMA_SRC    a llama.cpp-src.tar.gz to build from instead of npm
#   MIBERA_LLAMA_BACKEND  cpu or cuda: build llama.cpp for it whatever the box
#                       has (default: cuda when nvidia-smi lists a GPU and the
#                       CUDA toolkit is there, else cpu)
#   CUDA_HOME           where the CUDA toolkit is when nvcc is not on PATH
#                       (default /usr/local/cuda)
#   MIBERA_DEPS_PLAN_ONLY=1  print what would be done (the llama.cpp backend,
#                       CUDA architectures, cache entry) and stop: nothing is
#                       installed or built
#
# Progress goes to stdout as "deps: ..." lines, the tools' own output to
# log files. A failure ends with one line on stderr, "deps: failed while
# STEP: WHAT", naming the step and the error that stopped it.
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
CACHE=${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}
JOBS=${MIBERA_DEPS_JOBS:-$(nproc 2>/dev/null || echo 2)}
profile=full
case ${1:-} in
'') ;;
--worker) profile=worker ;;
*)
	echo "usage: deploy/deps.sh [--worker]" >&2
	exit 2
	;;
esac

# What the worker-only build (cmake -DMB_WORKER_ONLY=ON) compiles and links:
# libmibera (cJSON, libcurl, OpenSSL's libcrypto, zstd) and libllama (C++),
# plus the CA certificates its downloads check the hub against.
WORKER_PACKAGES=(
	gcc g++ make libc6-dev cmake ninja-build pkg-config ca-certificates patch
	libcurl4-openssl-dev libcjson-dev libzstd-dev libssl-dev
)
# The coordinator, the test suite (sshd, cmocka, sanitizers, fuzzing, the
# bare-box bootstrap test) and llama.cpp's source from npm.
PACKAGES=(
	"${WORKER_PACKAGES[@]}" build-essential git
	libssh2-1-dev libsqlite3-dev libcmocka-dev
	clang libclang-rt-14-dev
	openssh-server openssh-client python3 nodejs npm sqlite3
	tmux python3-jsonschema mmdebstrap
)
[ "$profile" = worker ] && PACKAGES=("${WORKER_PACKAGES[@]}")

t0=$(date +%s)
step="starting"
say() { printf 'deps: %s\n' "$*"; }
# step NAME: what is being done now, for the progress and the failure line
begin() {
	step=$1
	say "$1"
}
fail() {
	printf 'deps: failed while %s: %s\n' "$step" "$*" >&2
	step=""
	exit 1
}
work=""
# a command that stopped the script on its own still names the step
trap 'rc=$?; [ -z "$work" ] || rm -rf "$work"
[ $rc = 0 ] || [ -z "$step" ] || printf "deps: failed while %s (exit %d)\n" "$step" $rc >&2' EXIT

# The line of an apt log that says what went wrong: a fetch that failed
# (with the reason on the same line), else the first error.
apt_error() {
	grep -m1 -E '^[WE]: Failed to fetch' "$1" ||
		grep -m1 -E '^E: ' "$1" ||
		grep -v -E '^(debconf|dpkg-preconfigure|Extracting templates)' "$1" | tail -n 1 ||
		true
}
apt_unreachable() {
	grep -q -E '^[WE]: Failed to fetch|^Err:|Could not connect|Could not resolve|Temporary failure resolving|Unable to connect|Connection (timed out|refused)' "$1"
}

install_packages() {
	local missing=() p log
	if [ "${MIBERA_SKIP_APT:-0}" = 1 ]; then
		say "skipping Debian packages (MIBERA_SKIP_APT=1)"
		return
	fi
	for p in "${PACKAGES[@]}"; do
		# npm and nodejs may come from elsewhere (nodesource, nvm): a working
		# command is as good as the package.
		case $p in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
		esac
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "Debian packages: all ${#PACKAGES[@]} present"
		return
	fi
	begin "installing Debian packages"
	command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1 ||
		fail "apt-get not found: this is not a Debian or Ubuntu system; install by hand: ${missing[*]}"
	[ "$(id -u)" = 0 ] ||
		fail "not root, and these Debian packages are missing: ${missing[*]}; run as root or install them first"
	say "${#missing[@]} missing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	mkdir -p "$CACHE"
	log="$CACHE/apt.log"
	# A fresh box often runs unattended-upgrades for its first minutes:
	# wait for the dpkg lock rather than fail on it.
	if ! apt-get update -o DPkg::Lock::Timeout=600 >"$log" 2>&1; then
		apt_unreachable "$log" &&
			fail "apt-get cannot reach the package mirrors ($(apt_error "$log"))"
		fail "apt-get update failed: $(apt_error "$log") (log: $log)"
	fi
	# update exits 0 when some index could not be fetched: keep the reason
	# for when the install then fails
	local unreachable=""
	apt_unreachable "$log" && unreachable=$(apt_error "$log")
	if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
		"${missing[@]}" >>"$log" 2>&1; then
		if [ -n "$unreachable" ] || apt_unreachable "$log"; then
			fail "apt-get cannot reach the package mirrors (${unreachable:-$(apt_error "$log")})"
		fi
		fail "apt-get install failed: $(apt_error "$log") (log: $log)"
	fi
	say "Debian packages installed"
}

# The first error line of a build log (else its last line), for the failure
# line; its tail goes to stderr for context.
build_failed() {
	local log=$1 what=$2 line
	tail -n 20 "$log" >&2
	line=$(grep -m1 -E 'error|Error|ERROR' "$log" || tail -n 1 "$log")
	fail "$what failed: $line (log: $log)"
}

# Which llama.cpp to build: with CUDA when the box has an NVIDIA GPU
# (nvidia-smi lists one) and the CUDA toolkit (nvcc on PATH or in
# $CUDA_HOME/bin), else for the CPU; MIBERA_LLAMA_BACKEND forces either.
# Sets backend (cpu or cuda), nvcc (the compiler, for cuda), cuda_archs
# (CMAKE_CUDA_ARCHITECTURES, "" for ggml's own default list) and
# backend_why (the line that tells a person which and why). Only looks:
# runs nvidia-smi and nvcc, builds nothing.
choose_backend() {
	local force=${MIBERA_LLAMA_BACKEND:-} cuda_home=${CUDA_HOME:-/usr/local/cuda}
	local gpus=0 caps="" known="" c a missing="" ver=""
	backend=cpu nvcc="" cuda_archs="" backend_why=""
	case $force in
	'' | cpu | cuda) ;;
	*) fail "MIBERA_LLAMA_BACKEND is cpu or cuda, not '$force'" ;;
	esac
	if command -v nvidia-smi >/dev/null 2>&1; then
		gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
	fi
	if command -v nvcc >/dev/null 2>&1; then
		nvcc=$(command -v nvcc)
	elif [ -x "$cuda_home/bin/nvcc" ]; then
		nvcc=$cuda_home/bin/nvcc
	fi
	if [ "$force" = cpu ]; then
		backend_why="building llama.cpp for the CPU (MIBERA_LLAMA_BACKEND=cpu)"
		[ "$gpus" = 0 ] || backend_why="$backend_why; the NVIDIA GPU here stays unused"
		nvcc=""
		return
	fi
	if [ -z "$nvcc" ]; then
		[ "$force" != cuda ] ||
			fail "MIBERA_LLAMA_BACKEND=cuda, but there is no CUDA toolkit: no nvcc on PATH or in $cuda_home/bin (install the toolkit, or set CUDA_HOME to where it is)"
		if [ "$gpus" = 0 ]; then
			backend_why="no CUDA toolkit: building llama.cpp for the CPU"
		else
			backend_why="NVIDIA GPU but no CUDA toolkit (no nvcc on PATH or in $cuda_home/bin): building llama.cpp for the CPU; install the toolkit and run this again to use the GPU"
		fi
		return
	fi
	if [ "$gpus" = 0 ] && [ "$force" != cuda ]; then
		backend_why="no NVIDIA GPU (nvidia-smi lists none): building llama.cpp for the CPU (MIBERA_LLAMA_BACKEND=cuda builds it for CUDA anyway)"
		nvcc=""
		return
	fi
	backend=cuda
	ver=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -n 1)
	# One build for the GPUs of this box: their compute capabilities
	# ("9.0" -> 90), when nvcc can compile for each; else ggml's default
	# list (several architectures, a much longer build).
	if [ "$gpus" != 0 ]; then
		caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
			tr -d ' .\r' | grep -E '^[0-9]+$' | sort -un | paste -sd ';' || true)
		known=$("$nvcc" --list-gpu-arch 2>/dev/null || true)
		for a in ${caps//;/ }; do
			printf '%s\n' "$known" | grep -qx "compute_$a" || missing="$missing $a"
		done
	fi
	if [ -n "$caps" ] && [ -n "$known" ] && [ -z "$missing" ]; then
		cuda_archs=$caps
	fi
	backend_why="building llama.cpp with CUDA (nvcc ${ver:-of unknown version} at $nvcc"
	if [ -n "$force" ]; then
		backend_why="$backend_why, MIBERA_LLAMA_BACKEND=cuda"
	fi
	if [ -n "$cuda_archs" ]; then
		backend_why="$backend_why) for this box's GPU$([ "$gpus" = 1 ] || echo s): compute capability ${cuda_archs//;/, }"
	elif [ "$gpus" = 0 ]; then
		backend_why="$backend_why) with no GPU seen here: for the toolkit's default architectures"
	elif [ -z "$caps" ]; then
		backend_why="$backend_why): nvidia-smi does not give the GPU's compute capability, so for the toolkit's default architectures"
	elif [ -z "$known" ]; then
		backend_why="$backend_why): nvcc does not list the architectures it knows, so for the toolkit's default architectures"
	else
		backend_why="$backend_why): nvcc cannot compile for compute capability$missing, so for the toolkit's default architectures"
	fi
}

# The cache entry is keyed by the npm package version and the backend (a
# CUDA build has its own entry: a CPU build is never taken for one, nor the
# other way round); mibera-backend in it says what it was built for
# ("cpu", "cuda 90", "cuda default"): an entry built for other GPUs is
# rebuilt, and so is one built with other patches (mibera-patches in it
# holds the sha256 of deploy/llama-patches/*.patch as applied). A marker
# written last says the install finished, so a killed build is redone.
choose_backend
prefix="$CACHE/llama.cpp-nlc$NODE_LLAMA_CPP_VERSION"
[ "$backend" = cpu ] || prefix="$prefix-$backend"
srctar="$prefix/llama.cpp-src.tar.gz"
built_for=$backend
[ "$backend" = cpu ] || built_for="$backend ${cuda_archs:-default}"
# The changes mibera makes to llama.cpp's source before building it
# (deploy/llama-patches, applied in name order): the pinned release plus
# these is the libllama every mibera program and worker links.
patch_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/llama-patches
patches_id=none
if compgen -G "$patch_dir/*.patch" >/dev/null; then
	patches_id=$(cat "$patch_dir"/*.patch | sha256sum | cut -c1-16)
fi
entry_patches() {
	if [ -s "$prefix/mibera-patches" ]; then
		cat "$prefix/mibera-patches"
	else
		echo none
	fi
}
# Applies deploy/llama-patches/*.patch to the source in $work/src.
apply_patches() {
	local p
	[ "$patches_id" != none ] || return 0
	command -v patch >/dev/null 2>&1 ||
		fail "the patch command is not installed (Debian package patch)"
	for p in "$patch_dir"/*.patch; do
		patch -p1 --batch --forward --quiet -d "$work/src" <"$p" >"$work/patch.log" 2>&1 ||
			fail "$(basename "$p") does not apply to llama.cpp $tag: $(head -n 1 "$work/patch.log")"
	done
	say "llama.cpp: applied $(ls "$patch_dir"/*.patch | wc -l) patch(es) from $patch_dir"
}

# what the entry at prefix was built for: an entry from before the record
# was written is a CPU build (deps.sh built nothing else then)
entry_backend() {
	if [ -s "$prefix/mibera-backend" ]; then
		cat "$prefix/mibera-backend"
	else
		echo cpu
	fi
}

# Fetches node-llama-cpp's git bundle and clones it into $work/src; sets
# tag and commit.
fetch_npm() {
	command -v npm >/dev/null 2>&1 ||
		fail "npm not found: it fetches llama.cpp's source; install it, or give MIBERA_LLAMA_SRC"
	(cd "$work" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" \
		>"$work/npm.log" 2>&1) ||
		fail "npm pack node-llama-cpp@$NODE_LLAMA_CPP_VERSION failed: $(grep -m1 -i err "$work/npm.log" || tail -n 1 "$work/npm.log")"
	tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work" \
		package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
	tag=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$work/package/llama/llama.cpp.info.json")
	git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
	rm -rf "$work/package" "$work"/node-llama-cpp-*.tgz
	commit=$(git -C "$work/src" rev-parse --short=12 HEAD)
}

# What llama.cpp's own converter (convert_hf_to_gguf.py) needs from the
# source: the fallback for families mibera does not convert natively.
CONVERTER_PATHS=(convert_hf_to_gguf.py conversion gguf-py requirements)

# Writes the source tarball of the clone in $work/src to $srctar: what
# building libllama needs, llama.cpp's converter, and mibera-llama.txt
# naming the version.
make_srctar() {
	local src=$work/src p conv=()
	for p in "${CONVERTER_PATHS[@]}"; do
		[ -e "$src/$p" ] && conv+=("$p")
	done
	git -C "$src" archive --format=tar --prefix=llama.cpp/ \
		--add-virtual-file="llama.cpp/mibera-llama.txt:node-llama-cpp $NODE_LLAMA_CPP_VERSION
tag $tag
commit $commit
build $(git -C "$src" rev-list --count HEAD)
" HEAD CMakeLists.txt LICENSE cmake ggml include src vendor licenses "${conv[@]}" |
		gzip -n -6 >"$srctar.tmp"
	mv -f "$srctar.tmp" "$srctar"
	say "llama.cpp: source kept in $srctar ($(($(stat -c %s "$srctar") / 1024)) KiB)"
}

# Unpacks MIBERA_LLAMA_SRC into $work/src; sets tag, commit and build.
unpack_srctar() {
	local f=$MIBERA_LLAMA_SRC nlc
	[ -r "$f" ] || fail "cannot read the llama.cpp source '$f'"
	mkdir -p "$work/src"
	tar -xzf "$f" -C "$work/src" --strip-components=1 ||
		fail "cannot unpack the llama.cpp source '$f'"
	[ -r "$work/src/mibera-llama.txt" ] ||
		fail "'$f' is not a llama.cpp source made by deploy/deps.sh (no mibera-llama.txt)"
	nlc=$(sed -n 's/^node-llama-cpp //p' "$work/src/mibera-llama.txt")
	tag=$(sed -n 's/^tag //p' "$work/src/mibera-llama.txt")
	commit=$(sed -n 's/^commit //p' "$work/src/mibera-llama.txt")
	build=$(sed -n 's/^build //p' "$work/src/mibera-llama.txt")
	[ "$nlc" = "$NODE_LLAMA_CPP_VERSION" ] ||
		fail "'$f' holds the llama.cpp of node-llama-cpp $nlc, this deps.sh pins $NODE_LLAMA_CPP_VERSION"
	[ -n "$tag" ] && [ -n "$commit" ] || fail "'$f' does not name its tag and commit"
	build=${build:-0}
}

build_llama() {
	local tag commit build
	if [ -f "$prefix/.complete" ] && [ "$(entry_backend)" != "$built_for" ]; then
		say "llama.cpp: the cache in $prefix was built for $(entry_backend), not $built_for: building it again"
		rm -f "$prefix/.complete"
	fi
	if [ -f "$prefix/.complete" ] && [ "$(entry_patches)" != "$patches_id" ]; then
		say "llama.cpp: the cache in $prefix was built with other patches ($(entry_patches), now $patches_id): building it again"
		rm -f "$prefix/.complete"
	fi
	if [ -f "$prefix/.complete" ]; then
		say "llama.cpp: cached in $prefix ($(cat "$prefix/.complete"), $built_for)"
		ln -sfn "$prefix" "$CACHE/llama.cpp"
		# a cache entry from before the source (or its converter) was
		# kept: fetch it again, check it is the commit that was built,
		# keep it (no rebuild)
		if [ "$profile" = full ] && { [ ! -s "$srctar" ] ||
			! tar -tzf "$srctar" llama.cpp/convert_hf_to_gguf.py >/dev/null 2>&1; }; then
			begin "keeping llama.cpp's source for worker boxes"
			work=$(mktemp -d "$CACHE/.build.XXXXXX")
			fetch_npm
			[ "$tag $commit" = "$(cat "$prefix/.complete")" ] ||
				fail "node-llama-cpp@$NODE_LLAMA_CPP_VERSION holds $tag $commit, the cache $prefix was built from $(cat "$prefix/.complete")"
			make_srctar
			rm -rf "$work"
			work=""
		fi
		return
	fi
	mkdir -p "$CACHE"
	work=$(mktemp -d "$CACHE/.build.XXXXXX")
	if [ -n "${MIBERA_LLAMA_SRC:-}" ]; then
		begin "unpacking llama.cpp's source"
		unpack_srctar
	else
		begin "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION from npm"
		fetch_npm
		build=$(git -C "$work/src" rev-list --count HEAD)
	fi
	# the kept source tarball is made from git, unpatched: a worker
	# patches it with the deps.sh and patches of its own bundle
	apply_patches
	begin "building llama.cpp $tag ($commit) for $built_for with $JOBS jobs"
	local gpu_flags=(-DGGML_CUDA=OFF)
	if [ "$backend" = cuda ]; then
		gpu_flags=(-DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
		[ -z "$cuda_archs" ] || gpu_flags+=(-DCMAKE_CUDA_ARCHITECTURES="$cuda_archs")
	fi
	# the build number and commit as a git checkout would give them, so
	# both sources build the same library
	cmake -S "$work/src" -B "$work/build" -G Ninja \
		"${gpu_flags[@]}" \
		-DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$prefix" \
		-DBUILD_SHARED_LIBS=ON \
		-DLLAMA_BUILD_NUMBER="$build" -DLLAMA_BUILD_COMMIT="${commit:0:7}" \
		-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
		-DGGML_BACKEND_DL=OFF -DGGML_OPENMP=OFF \
		-DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
		-DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
		>"$CACHE/llama-configure.log" 2>&1 ||
		build_failed "$CACHE/llama-configure.log" "cmake configure"
	# minutes of compiling: say how far it got every 30 s
	cmake --build "$work/build" --target llama -j "$JOBS" >"$CACHE/llama-build.log" 2>&1 &
	local pid=$! n=0
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		n=$((n + 1))
		if [ $((n % 30)) = 0 ] && kill -0 "$pid" 2>/dev/null; then
			say "llama.cpp: $(grep -o '^\[[0-9]*/[0-9]*\]' "$CACHE/llama-build.log" | tail -n 1 | tr -d '[]') steps built"
		fi
	done
	wait "$pid" || build_failed "$CACHE/llama-build.log" "the build"
	begin "installing llama.cpp in $prefix"
	rm -rf "$prefix"
	cmake --install "$work/build" >"$CACHE/llama-install.log" 2>&1 ||
		build_failed "$CACHE/llama-install.log" "cmake --install"
	if [ "$profile" = full ]; then
		if [ -n "${MIBERA_LLAMA_SRC:-}" ]; then
			cp "$MIBERA_LLAMA_SRC" "$srctar"
		else
			make_srctar
		fi
	fi
	printf '%s\n' "$built_for" >"$prefix/mibera-backend"
	printf '%s\n' "$patches_id" >"$prefix/mibera-patches"
	printf '%s %s\n' "$tag" "$commit" >"$prefix/.complete"
	rm -rf "$work"
	work=""
	ln -sfn "$prefix" "$CACHE/llama.cpp"
	say "llama.cpp: installed in $prefix"
}

# Unpacks llama.cpp's converter from the kept source (MIBERA_LLAMA_SRC on a
# worker) into $prefix/convert, where mibera-worker looks for it. Its
# Python requirements are installed only when a job asks for that
# converter (mibera-worker convert --converter llama.cpp), into
# $prefix/convert-venv: a few GB a worker converting only what mibera
# converts natively never needs.
keep_converter() {
	local tar=$srctar
	[ "$profile" = worker ] && tar=${MIBERA_LLAMA_SRC:-}
	[ -n "$tar" ] && [ -s "$tar" ] || return 0
	[ -f "$prefix/convert/convert_hf_to_gguf.py" ] && return 0
	tar -tzf "$tar" llama.cpp/convert_hf_to_gguf.py >/dev/null 2>&1 || {
		say "llama.cpp: its source here has no convert_hf_to_gguf.py; --converter llama.cpp will not work on this box"
		return 0
	}
	begin "unpacking llama.cpp's converter"
	rm -rf "$prefix/convert.new"
	mkdir -p "$prefix/convert.new"
	tar -xzf "$tar" -C "$prefix/convert.new" --strip-components=1 \
		llama.cpp/mibera-llama.txt "${CONVERTER_PATHS[@]/#/llama.cpp/}" 2>/dev/null ||
		tar -xzf "$tar" -C "$prefix/convert.new" --strip-components=1 \
			llama.cpp/mibera-llama.txt llama.cpp/convert_hf_to_gguf.py \
			llama.cpp/gguf-py llama.cpp/requirements ||
		fail "cannot unpack llama.cpp's converter from '$tar'"
	rm -rf "$prefix/convert"
	mv "$prefix/convert.new" "$prefix/convert"
	say "llama.cpp: its converter is in $prefix/convert"
}

say "$backend_why"
if [ "${MIBERA_DEPS_PLAN_ONLY:-0}" = 1 ]; then
	say "plan: backend $backend"
	say "plan: nvcc ${nvcc:-none}"
	say "plan: cuda architectures $([ "$backend" = cpu ] && echo none || echo "${cuda_archs:-default}")"
	if [ ! -f "$prefix/.complete" ]; then
		say "plan: build llama.cpp into $prefix"
	elif [ "$(entry_backend)" != "$built_for" ]; then
		say "plan: rebuild llama.cpp in $prefix (built for $(entry_backend), not $built_for)"
	elif [ "$(entry_patches)" != "$patches_id" ]; then
		say "plan: rebuild llama.cpp in $prefix (built with patches $(entry_patches), not $patches_id)"
	else
		say "plan: reuse llama.cpp in $prefix"
	fi
	step=""
	exit 0
fi
install_packages
build_llama
keep_converter
step=""
say "done in $(($(date +%s) - t0)) s; llama.cpp prefix: $CACHE/llama.cpp"
