#!/usr/bin/env bash
# Installs everything mibera needs to build, test and run, as root, on Debian 12.
# Idempotent: Debian packages already present are not touched (apt-get update
# runs only when something is missing), and llama.cpp is built once per pinned
# version into a cache directory that later runs reuse.
#
# llama.cpp's source comes from the npm package node-llama-cpp, which ships a
# git bundle of a llama.cpp release: the npm registry is reachable where a
# plain git clone is not.
#
# Environment:
#   MIBERA_DEPS_CACHE   cache root (default /var/cache/mibera-deps)
#   MIBERA_DEPS_JOBS    parallel build jobs (default: nproc)
#   MIBERA_SKIP_APT=1   do not install Debian packages (not root, or done)
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
CACHE=${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}
JOBS=${MIBERA_DEPS_JOBS:-$(nproc)}

PACKAGES=(
	build-essential cmake ninja-build pkg-config git ca-certificates
	libssh2-1-dev libcurl4-openssl-dev libsqlite3-dev libcjson-dev
	libzstd-dev libssl-dev libcmocka-dev
	clang libclang-rt-14-dev
	openssh-server openssh-client python3 nodejs npm sqlite3
	tmux python3-jsonschema
)

t0=$(date +%s)
say() { printf 'deps: %s\n' "$*"; }

install_packages() {
	if [ "${MIBERA_SKIP_APT:-0}" = 1 ]; then
		say "skipping Debian packages (MIBERA_SKIP_APT=1)"
		return
	fi
	local missing=() p
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
	if [ "$(id -u)" != 0 ]; then
		say "missing Debian packages: ${missing[*]}; run this script as root" >&2
		exit 1
	fi
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	say "Debian packages installed"
}

build_llama() {
	local work tag commit prefix
	# The cache entry is keyed by the npm package version; a marker written
	# last says the install finished, so a killed build is redone.
	prefix="$CACHE/llama.cpp-nlc$NODE_LLAMA_CPP_VERSION"
	if [ -f "$prefix/.complete" ]; then
		say "llama.cpp: cached in $prefix ($(cat "$prefix/.complete"))"
		ln -sfn "$prefix" "$CACHE/llama.cpp"
		return
	fi
	mkdir -p "$CACHE"
	work=$(mktemp -d "$CACHE/.build.XXXXXX")
	trap 'rm -rf "${work:-}"' RETURN EXIT
	say "llama.cpp: fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION from npm"
	(cd "$work" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null)
	tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work" \
		package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
	tag=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$work/package/llama/llama.cpp.info.json")
	git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
	commit=$(git -C "$work/src" rev-parse --short=12 HEAD)
	say "llama.cpp: building $tag ($commit) with $JOBS jobs"
	cmake -S "$work/src" -B "$work/build" -G Ninja \
		-DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$prefix" \
		-DBUILD_SHARED_LIBS=ON \
		-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
		-DGGML_BACKEND_DL=OFF -DGGML_OPENMP=OFF \
		-DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
		-DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
		>"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
	cmake --build "$work/build" --target llama -j "$JOBS" >"$work/build.log" 2>&1 ||
		{ tail -30 "$work/build.log" >&2; exit 1; }
	rm -rf "$prefix"
	cmake --install "$work/build" >"$work/install.log" 2>&1 ||
		{ tail -30 "$work/install.log" >&2; exit 1; }
	printf '%s %s\n' "$tag" "$commit" >"$prefix/.complete"
	ln -sfn "$prefix" "$CACHE/llama.cpp"
	say "llama.cpp: installed in $prefix"
}

install_packages
build_llama
say "done in $(($(date +%s) - t0)) s; llama.cpp prefix: $CACHE/llama.cpp"
