#!/usr/bin/env bash
# test_barebox: `mibera-job worker add` makes a bare Debian 12 box a working
# worker, unattended, as a freshly rented one would be: the box is
# `mmdebstrap --variant=minbase --include=openssh-server bookworm` (no
# compiler, no libraries, no zstd, no Node.js), run as a chroot with its own
# sshd on a loopback port that takes root's throwaway key. The coordinator
# is an installed copy (`cmake --install`), as a person runs it.
#
# Checks, in order, each on the same pristine box:
#   1. the uploaded sources unpack with the box's tar and gzip alone;
#   2. a box without apt-get: worker add fails saying so;
#   3. a box whose package mirror cannot be reached: worker add fails
#      saying that, with apt's error line, not a debconf warning;
#   4. the real thing: worker add installs the worker's packages, builds
#      llama.cpp from the source the coordinator shipped (the same pinned
#      version, no npm) and mibera-worker, shows each step with its time,
#      and the agent answers hello and `worker check`; the box got no
#      Node.js, npm, clang or git.
#
# The pristine box is cached as a tarball under MIBERA_DEPS_CACHE/barebox
# (one per month: the packages on it only need to install, apt-get update
# fetches current lists); every run unpacks a fresh copy. The chroot is torn
# down (its processes killed, /proc unmounted, the tree removed) however the
# test ends. Needs root and mmdebstrap (deploy/deps.sh installs it), and
# apt access to the Debian mirrors as this host has it; skips (exit 77)
# without root or mmdebstrap. Step 4 builds llama.cpp: 4 to 12 min on 2
# cores, as loaded.
set -euo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (a chroot with /proc mounted, apt inside it)"
command -v mmdebstrap >/dev/null 2>&1 ||
	skip "mmdebstrap is not installed (deploy/deps.sh installs it)"
: "${MB_SOURCE_DIR:?MB_SOURCE_DIR is not set}"
: "${MB_BINARY_DIR:?MB_BINARY_DIR is not set}"
CACHE=${MIBERA_DEPS_CACHE:-/var/cache/mibera-deps}
PY=${PYTHON:-python3}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# teardown DIR: kills every process whose root is DIR/box (sshd and what it
# started), unmounts what was mounted in it and removes DIR.
teardown() {
	local t=$1 p r pids=()
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		[ "$r" = "$t/box" ] && pids+=("${p#/proc/}")
	done
	[ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
	if mountpoint -q "$t/box/proc" 2>/dev/null; then
		umount "$t/box/proc" 2>/dev/null || umount -l "$t/box/proc" || true
	fi
	# never remove through a mount that is still there
	if ! grep -qF " $t/" /proc/mounts; then
		rm -rf "$t"
	else
		echo "test_barebox: left $t: still mounted" >&2
	fi
}

# A run killed outright (ctest's timeout) could not tear its box down: do it
# for those whose test is gone, never for one that still runs.
for t in "${TMPDIR:-/tmp}"/mbtest-barebox-*; do
	[ -f "$t/owner" ] || continue
	kill -0 "$(cat "$t/owner")" 2>/dev/null && continue
	echo "removing the box a killed run left in $t"
	teardown "$t"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/mbtest-barebox-XXXXXX")
echo $$ >"$T/owner"
root=$T/box
passed=0
trap 'teardown "$T"' EXIT

fail() {
	echo "FAIL: $*" >&2
	echo "$passed passed, 1 failed" >&2
	exit 1
}
ok() {
	passed=$((passed + 1))
	echo "ok: $*"
}

# ---- the pristine box, cached -------------------------------------------
mkdir -p "$CACHE/barebox"
pristine="$CACHE/barebox/bookworm-minbase-ssh-$(date +%Y%m).tar.gz"
t=$(now)
if [ ! -s "$pristine" ]; then
	# the host's apt sources, so the box reaches the mirrors this host does
	src=()
	[ -f /etc/apt/sources.list.d/debian.sources ] &&
		src=(/etc/apt/sources.list.d/debian.sources)
	echo "making the pristine box with mmdebstrap (a minute or two)"
	mmdebstrap --quiet --mode=root --variant=minbase --include=openssh-server \
		bookworm "$T/pristine.tar.gz" "${src[@]}" >"$T/mmdebstrap.log" 2>&1 ||
		{
			tail -n 20 "$T/mmdebstrap.log"
			skip "mmdebstrap cannot make a Debian 12 tree here (log above)"
		}
	mv -f "$T/pristine.tar.gz" "$pristine"
	# older months' boxes are this test's own: drop them
	find "$CACHE/barebox" -name 'bookworm-minbase-ssh-*.tar.gz' \
		! -name "${pristine##*/}" -delete
	echo "measured: mmdebstrap made the box in $(since "$t") s"
fi
t=$(now)
mkdir -p "$root"
tar -xzf "$pristine" -C "$root"
echo "measured: pristine box unpacked in $(since "$t") s ($(du -sh "$root" | cut -f1))"

# The host's name resolution and apt settings (a proxy, snapshot dates) so
# that apt in the box reaches the mirrors the way this host does.
cp /etc/hosts /etc/resolv.conf "$root/etc/"
for f in /etc/apt/apt.conf.d/*; do
	[ -f "$f" ] && grep -qE 'Acquire::(Check-Valid-Until|Check-Date|https?::Proxy)|Proxy' "$f" &&
		cp "$f" "$root/etc/apt/apt.conf.d/"
done
mount -t proc proc "$root/proc"

# What the box lacks, as a rented one does.
for c in gcc cc cmake zstd node npm git; do
	chroot "$root" sh -c "command -v $c" >/dev/null 2>&1 &&
		fail "the pristine box already has '$c'"
done
ok "the pristine box has no compiler, cmake, zstd, node, npm or git"

# ---- sshd in the box: root logs in with a throwaway key -----------------
ssh-keygen -q -t ed25519 -N '' -C barebox-host -f "$root/etc/ssh/test_host_ed25519" </dev/null
ssh-keygen -q -t ed25519 -N '' -C barebox-user -f "$T/id_ed25519" </dev/null
mkdir -p "$root/root/.ssh" "$root/run/sshd"
chmod 700 "$root/root/.ssh"
cp "$T/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
port=$("$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
cat >"$root/etc/ssh/sshd_test_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey /etc/ssh/test_host_ed25519
PidFile /run/sshd_test.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
chroot "$root" /usr/sbin/sshd -f /etc/ssh/sshd_test_config -E /var/log/sshd_test.log \
	</dev/null >/dev/null 2>&1 || fail "sshd in the box did not start"
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
	fail "sshd in the box does not listen: $(cat "$root/var/log/sshd_test.log")"
fp=$(ssh-keygen -lf "$root/etc/ssh/test_host_ed25519.pub" | cut -d' ' -f2)

# ---- an installed coordinator ------------------------------------------
inst=$T/inst
cmake --install "$MB_BINARY_DIR" --prefix "$inst" >"$T/install.log" 2>&1 ||
	fail "cmake --install: $(tail -n 5 "$T/install.log")"
for f in mibera-src.tar.gz llama.cpp-src.tar.gz mibera-worker-bootstrap.sh; do
	[ -s "$inst/share/mibera/$f" ] || fail "the installed copy lacks share/mibera/$f"
done
ok "the installed copy carries the bundle, llama.cpp's source and the script"
export MIBERA_HOME=$T/home HOME=$T/home
mkdir -p "$HOME"
target="root@127.0.0.1:$port"
# add NAME: worker add NAME into the box; stdout in $T/NAME.out, stderr in
# $T/NAME.err, the exit code in $rc
add() {
	set +e
	"$inst/bin/mibera-job" worker add "$1" "$target" --key "$T/id_ed25519" \
		--accept-host-key "$fp" --dir /root/mibera >"$T/$1.out" 2>"$T/$1.err"
	rc=$?
	set -e
}

# ---- 2. a box without apt-get --------------------------------------------
mv "$root/usr/bin/apt-get" "$root/usr/bin/apt-get.hidden"
add noapt
mv "$root/usr/bin/apt-get.hidden" "$root/usr/bin/apt-get"
cat "$T/noapt.err"
[ "$rc" = 1 ] || fail "worker add on a box without apt-get exited $rc"
grep -q "^mibera-job worker: bootstrap on '$target' failed while installing Debian packages: apt-get not found" "$T/noapt.err" ||
	fail "worker add on a box without apt-get did not say so"
grep -q "gcc" "$T/noapt.err" || fail "the message does not name the missing packages"
"$inst/bin/mibera-job" worker list | grep -q noapt && fail "a failed add was recorded"
ok "a box without apt-get: worker add says apt-get is not found and what to install"

# ---- 1. the uploaded sources unpack with tar and gzip alone --------------
for f in mibera-src.tar.gz llama.cpp-src.tar.gz; do
	cmp -s "$inst/share/mibera/$f" "$root/root/mibera/$f" || fail "$f was not uploaded whole"
	chroot "$root" env PATH=/usr/bin:/bin tar -tzf "/root/mibera/$f" >"$T/list" ||
		fail "$f does not unpack with the box's tar and gzip"
done
grep -q '^llama.cpp/mibera-llama.txt$' "$T/list" || fail "llama.cpp's source does not name its version"
[ -x "$root/root/mibera/src/deploy/deps.sh" ] || fail "the bundle did not unpack in the box"
ok "the uploaded sources unpack with the box's tar and gzip (no zstd there)"

# ---- 3. a box whose package mirrors cannot be reached --------------------
# a loopback port nobody listens on: bound, then closed
closed=$("$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
mkdir -p "$T/sources"
mv "$root"/etc/apt/sources.list.d/* "$T/sources/"
cat >"$root/etc/apt/sources.list.d/closed.sources" <<EOF
Types: deb
URIs: http://127.0.0.1:$closed/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
add nomirror
rm -f "$root/etc/apt/sources.list.d/closed.sources"
mv "$T"/sources/* "$root/etc/apt/sources.list.d/"
cat "$T/nomirror.err"
[ "$rc" = 1 ] || fail "worker add with unreachable mirrors exited $rc"
grep -q "^mibera-job worker: bootstrap on '$target' failed while installing Debian packages: apt-get cannot reach the package mirrors (.*127.0.0.1:$closed" "$T/nomirror.err" ||
	fail "worker add with unreachable mirrors did not say so with apt's error"
grep -q "debconf" "$T/nomirror.err" && fail "a debconf line reached the user"
ok "unreachable mirrors: worker add says apt-get cannot reach them, with apt's error"

# ---- 4. the bare box becomes a worker ------------------------------------
rm -rf "$root/root/mibera" # as a fresh box
t=$(now)
add box
took=$(since "$t")
cat "$T/box.err"
cat "$T/box.out"
[ "$rc" = 0 ] || fail "worker add on the bare box exited $rc"
echo "measured: worker add on the bare box took $took s, $(sed -n 's/.*bootstrap: uploaded \([0-9]*\) bytes.*/\1/p' "$T/box.err") bytes uploaded"
grep -q "^added worker box ($target), host key $fp" "$T/box.out" ||
	fail "worker add did not say it added the worker"
llama=$(cat "$CACHE/llama.cpp/.complete")
grep -q "llama.cpp ${llama%% *}" "$T/box.out" || fail "the agent does not report llama.cpp ${llama%% *}"
ok "worker add installed the agent on the bare box; it answers hello"

# progress: each step as it started, with the time taken so far
for s in "uploading the mibera and llama.cpp sources" "uploaded [0-9]* bytes" \
	"unpacking the mibera source" "installing Debian packages" \
	"building llama.cpp ${llama%% *} (${llama#* })" "building mibera-worker" "asking it hello"; do
	grep -q "^\[ *[0-9hms]*\] bootstrap: $s" "$T/box.err" || fail "no progress line for '$s'"
done
ok "worker add showed each bootstrap step with its elapsed time"

# the same pinned llama.cpp, built from the shipped source, no npm
[ "$(cat "$root/var/cache/mibera-deps/llama.cpp/.complete")" = "$llama" ] ||
	fail "the box's llama.cpp is '$(cat "$root/var/cache/mibera-deps/llama.cpp/.complete")', not '$llama'"
grep -q "unpacking llama.cpp's source" "$T/box.err" || fail "llama.cpp was not built from the shipped source"
grep -q "npm" "$T/box.err" && fail "the bootstrap mentions npm"
for c in node npm clang git tmux; do
	chroot "$root" sh -c "command -v $c" >/dev/null 2>&1 && fail "the worker box got '$c'"
done
ok "the box built llama.cpp $llama from the shipped source and has no node, npm, clang, git or tmux"

"$inst/bin/mibera-job" worker check box >"$T/check.out" 2>&1 ||
	fail "worker check: $(cat "$T/check.out")"
cat "$T/check.out"
"$inst/bin/mibera-job" worker list | grep -q "^box" || fail "worker list does not show the box"
ok "worker check reaches the agent on the box"

echo "$passed passed, 0 failed"
