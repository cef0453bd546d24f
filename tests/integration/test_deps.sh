#!/usr/bin/env bash
# test_deps: which llama.cpp deploy/deps.sh builds on a box, as
# MIBERA_DEPS_PLAN_ONLY=1 prints it: CUDA only with an NVIDIA GPU and the
# CUDA toolkit, for the GPU's compute capability when nvcc knows it; the
# CPU otherwise, each case said in a "deps:" line; MIBERA_LLAMA_BACKEND
# forcing either (cuda without a toolkit refused); and a cache entry built
# for one backend, or for other GPUs, never reused for another.
#
# This tests the decision, not a CUDA build: each case runs deps.sh with a
# PATH made of this machine's ordinary tools plus, where the case has them,
# small stand-ins for nvidia-smi (answering -L and compute_cap as the real
# one does) and nvcc (--version and --list-gpu-arch). A real CUDA build
# needs a GPU box; none is used here.
set -euo pipefail

: "${MB_SOURCE_DIR:?MB_SOURCE_DIR is not set}"
DEPS="$MB_SOURCE_DIR/deploy/deps.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mbtest-deps-XXXXXX")
trap 'rm -rf "$TMP"' EXIT

passed=0
fail() {
	echo "FAIL: $*" >&2
	echo "$passed passed, 1 failed" >&2
	exit 1
}

# base/: the tools deps.sh's plan uses, and nothing CUDA
mkdir -p "$TMP/base" "$TMP/gpu" "$TMP/gpu2" "$TMP/toolkit" "$TMP/oldnvcc" \
	"$TMP/nocap"
for t in bash sh env cat grep sed tr sort paste head tail nproc date id \
	mktemp rm mkdir ln stat dirname basename sha256sum cut; do
	p=$(command -v "$t") || fail "no '$t' on this machine"
	ln -s "$p" "$TMP/base/$t"
done
BASE="$TMP/base"

# an H200 (compute capability 9.0)
cat >"$TMP/gpu/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
-L) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
*compute_cap*) echo "9.0" ;;
*) exit 9 ;;
esac
EOF
# two GPUs of different generations (8.6 and 8.9)
cat >"$TMP/gpu2/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
-L) printf 'GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-1)\nGPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-2)\n' ;;
*compute_cap*) printf '8.6\n8.9\n8.6\n' ;;
*) exit 9 ;;
esac
EOF
# a driver too old to give the compute capability
cat >"$TMP/nocap/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
-L) echo "GPU 0: Tesla T4 (UUID: GPU-3)" ;;
*) echo "Field \"compute_cap\" is not a valid field to query." >&2; exit 2 ;;
esac
EOF
cat >"$TMP/toolkit/nvcc" <<'EOF'
#!/bin/sh
case "$1" in
--version) echo "Cuda compilation tools, release 12.4, V12.4.131" ;;
--list-gpu-arch) printf 'compute_50\ncompute_75\ncompute_80\ncompute_86\ncompute_89\ncompute_90\n' ;;
*) exit 9 ;;
esac
EOF
# a toolkit older than the GPU: no compute_90
cat >"$TMP/oldnvcc/nvcc" <<'EOF'
#!/bin/sh
case "$1" in
--version) echo "Cuda compilation tools, release 11.4, V11.4.48" ;;
--list-gpu-arch) printf 'compute_75\ncompute_80\ncompute_86\n' ;;
*) exit 9 ;;
esac
EOF
chmod +x "$TMP"/*/nvidia-smi "$TMP"/*/nvcc

# plan DIRS [VAR=VALUE...]: runs deps.sh's plan with PATH of DIRS (":"
# separated, base added) into $out; its exit status into $rc.
plan() {
	local dirs=$1
	shift
	set +e
	out=$(env -i HOME="$TMP" CUDA_HOME="$TMP/no-cuda-home" \
		MIBERA_DEPS_CACHE="$TMP/cache" MIBERA_DEPS_PLAN_ONLY=1 \
		PATH="${dirs:+$dirs:}$BASE" "$@" "$BASE/bash" "$DEPS" 2>&1)
	rc=$?
	set -e
}
has() {
	printf '%s\n' "$out" | grep -qF -- "$1" ||
		fail "$2: no '$1' in:
$out"
}
ok() {
	[ "$rc" = 0 ] || fail "$1: exit $rc:
$out"
	passed=$((passed + 1))
}

# no GPU, no toolkit: the CPU, said plainly
plan ""
has "deps: no CUDA toolkit: building llama.cpp for the CPU" "bare box"
has "plan: backend cpu" "bare box"
has "plan: build llama.cpp into $TMP/cache/llama.cpp-nlc" "bare box"
ok "bare box"

# a GPU but no toolkit: the CPU, and why
plan "$TMP/gpu"
has "deps: NVIDIA GPU but no CUDA toolkit" "GPU without toolkit"
has "building llama.cpp for the CPU" "GPU without toolkit"
has "plan: backend cpu" "GPU without toolkit"
ok "GPU without toolkit"

# the toolkit without a GPU: the CPU
plan "$TMP/toolkit"
has "no NVIDIA GPU" "toolkit without GPU"
has "plan: backend cpu" "toolkit without GPU"
ok "toolkit without GPU"

# both: CUDA for compute capability 9.0, in an entry of its own
plan "$TMP/gpu:$TMP/toolkit"
has "building llama.cpp with CUDA (nvcc 12.4 at $TMP/toolkit/nvcc) for this box's GPU: compute capability 90" "GPU and toolkit"
has "plan: backend cuda" "GPU and toolkit"
has "plan: nvcc $TMP/toolkit/nvcc" "GPU and toolkit"
has "plan: cuda architectures 90" "GPU and toolkit"
has "plan: build llama.cpp into $TMP/cache/llama.cpp-nlc" "GPU and toolkit"
has "-cuda" "GPU and toolkit"
ok "GPU and toolkit"

# nvcc found in CUDA_HOME/bin when it is not on PATH
mkdir -p "$TMP/cuda-home/bin"
cp "$TMP/toolkit/nvcc" "$TMP/cuda-home/bin/nvcc"
plan "$TMP/gpu" CUDA_HOME="$TMP/cuda-home"
has "plan: nvcc $TMP/cuda-home/bin/nvcc" "toolkit in CUDA_HOME"
has "plan: backend cuda" "toolkit in CUDA_HOME"
ok "toolkit in CUDA_HOME"

# two GPUs: both capabilities, once each
plan "$TMP/gpu2:$TMP/toolkit"
has "plan: cuda architectures 86;89" "two GPUs"
has "compute capability 86, 89" "two GPUs"
ok "two GPUs"

# an nvcc that cannot compile for the GPU, or a GPU that does not say what
# it is: the toolkit's default list, and why
plan "$TMP/gpu:$TMP/oldnvcc"
has "nvcc cannot compile for compute capability 90" "old toolkit"
has "plan: cuda architectures default" "old toolkit"
ok "old toolkit"
plan "$TMP/nocap:$TMP/toolkit"
has "does not give the GPU's compute capability" "no compute_cap"
has "plan: cuda architectures default" "no compute_cap"
ok "no compute_cap"

# MIBERA_LLAMA_BACKEND: cpu on a GPU box; cuda with no toolkit refused
plan "$TMP/gpu:$TMP/toolkit" MIBERA_LLAMA_BACKEND=cpu
has "building llama.cpp for the CPU (MIBERA_LLAMA_BACKEND=cpu)" "forced cpu"
has "plan: backend cpu" "forced cpu"
ok "forced cpu"
plan "$TMP/gpu" MIBERA_LLAMA_BACKEND=cuda
[ "$rc" = 1 ] || fail "cuda forced without a toolkit: exit $rc: $out"
has "deps: failed while" "forced cuda without toolkit"
has "MIBERA_LLAMA_BACKEND=cuda, but there is no CUDA toolkit" "forced cuda without toolkit"
passed=$((passed + 1))
plan "$TMP/toolkit" MIBERA_LLAMA_BACKEND=cuda
has "plan: backend cuda" "forced cuda without GPU"
has "plan: cuda architectures default" "forced cuda without GPU"
ok "forced cuda without GPU"
plan "" MIBERA_LLAMA_BACKEND=gpu
[ "$rc" = 1 ] || fail "a bad MIBERA_LLAMA_BACKEND: exit $rc"
has "MIBERA_LLAMA_BACKEND is cpu or cuda, not 'gpu'" "bad backend"
passed=$((passed + 1))

# the cache: a finished CPU entry is reused for the CPU and never for
# CUDA; an entry built for other GPUs, or with other llama.cpp patches,
# is rebuilt
plan ""
cpu_entry=$(printf '%s\n' "$out" | sed -n 's/.*plan: build llama.cpp into //p')
[ -n "$cpu_entry" ] || fail "no entry named: $out"
mkdir -p "$cpu_entry"
echo "v0.5.0 0123456789ab" >"$cpu_entry/.complete"
# built before deploy/llama-patches, or with other patches: built again
plan ""
patches=$(cat "$MB_SOURCE_DIR"/deploy/llama-patches/*.patch | sha256sum | cut -c1-16)
has "plan: rebuild llama.cpp in $cpu_entry (built with patches none, not $patches)" "entry without the patches"
ok "entry without the patches"
echo "$patches" >"$cpu_entry/mibera-patches"
plan ""
has "plan: reuse llama.cpp in $cpu_entry" "cached CPU entry"
ok "cached CPU entry"
plan "$TMP/gpu:$TMP/toolkit"
has "plan: build llama.cpp into $cpu_entry-cuda" "CPU entry not taken for CUDA"
ok "CPU entry not taken for CUDA"
mkdir -p "$cpu_entry-cuda"
echo "v0.5.0 0123456789ab" >"$cpu_entry-cuda/.complete"
echo "cuda 86" >"$cpu_entry-cuda/mibera-backend"
echo "$patches" >"$cpu_entry-cuda/mibera-patches"
plan "$TMP/gpu:$TMP/toolkit"
has "plan: rebuild llama.cpp in $cpu_entry-cuda (built for cuda 86, not cuda 90)" "entry for other GPUs"
ok "entry for other GPUs"
echo "cuda 90" >"$cpu_entry-cuda/mibera-backend"
plan "$TMP/gpu:$TMP/toolkit"
has "plan: reuse llama.cpp in $cpu_entry-cuda" "entry for this GPU"
ok "entry for this GPU"
# an entry that says it is something else is not the CPU build
echo "cuda 90" >"$cpu_entry/mibera-backend"
plan ""
has "plan: rebuild llama.cpp in $cpu_entry (built for cuda 90, not cpu)" "mislabelled CPU entry"
ok "mislabelled CPU entry"

echo "$passed passed"
