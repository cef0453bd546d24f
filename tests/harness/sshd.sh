#!/usr/bin/env bash
# sshd.sh: a throwaway OpenSSH sshd on 127.0.0.1 for the tests and demos.
#
#   sshd.sh start DIR   make DIR (if needed) and put everything in it: a host
#                       key, a user key, authorized_keys, known_hosts,
#                       sshd_config, sshd.pid and sshd.log; start sshd on a
#                       free port and print KEY=VALUE lines:
#                       HOST PORT USER KEY PUBKEY HOSTKEY_PUB KNOWN_HOSTS PID
#                       DIR LOG (KEY, PUBKEY, HOSTKEY_PUB, KNOWN_HOSTS are
#                       paths). Shell scripts can `eval "$(sshd.sh start d)"`.
#   sshd.sh stop DIR    stop the sshd started in DIR and wait for it to exit.
#
# It runs as the current user (the only user who can log in) and never reads
# or writes ~/.ssh or /etc/ssh. As root, sshd also needs its privilege
# separation directory (/run/sshd on Debian), which this creates.
# Environment: SSHD (default /usr/sbin/sshd), PYTHON (default python3).
set -euo pipefail

SSHD=${SSHD:-/usr/sbin/sshd}
PY=${PYTHON:-python3}

die() {
	echo "sshd.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: sshd.sh start|stop DIR" >&2
	exit 2
}

# Prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
	if command -v "$PY" >/dev/null 2>&1; then
		"$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
	else
		echo $((20000 + RANDOM % 40000))
	fi
}

# Succeeds when an SSH server answers on 127.0.0.1:$1. Trading banners
# (rather than hanging up at once) keeps sshd from logging an error.
port_open() {
	local banner
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		read -r -t 5 banner <&3 || exit 1
		case $banner in SSH-*) ;; *) exit 1 ;; esac
		printf 'SSH-2.0-sshd.sh-probe\r\n' >&3
	) 2>/dev/null
}

# The pid in DIR/sshd.pid, if that process is the sshd started with our
# config (a stale pid file may name an unrelated process by now).
our_pid() {
	local pid
	[ -s "$dir/sshd.pid" ] || return 1
	pid=$(<"$dir/sshd.pid")
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/sshd_config" ||
			return 1
	fi
	echo "$pid"
}

write_config() {
	cat >"$dir/sshd_config" <<EOF
# Written by sshd.sh for a test; not a system config.
ListenAddress 127.0.0.1
Port $1
AddressFamily inet
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
UseDNS no
PermitRootLogin prohibit-password
AllowUsers $user
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
	# OpenSSH 9.8+ refuses for a while sources whose connections failed
	# authentication; tests that provoke failures must not lock themselves
	# out. Older sshd rejects the keyword, so add it only where accepted.
	cp "$dir/sshd_config" "$dir/sshd_config.try"
	echo "PerSourcePenalties no" >>"$dir/sshd_config.try"
	if "$SSHD" -t -f "$dir/sshd_config.try" >/dev/null 2>&1; then
		mv "$dir/sshd_config.try" "$dir/sshd_config"
	else
		rm -f "$dir/sshd_config.try"
	fi
}

start() {
	local port pid
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	# The paths go out as unquoted KEY=VALUE lines and into sshd_config.
	case $dir in *[!A-Za-z0-9_./+-]*) die "unsupported characters in '$dir'" ;; esac
	[ -x "$SSHD" ] || die "no sshd at '$SSHD'"
	user=$(id -un)
	[ -e "$dir/sshd.pid" ] && our_pid >/dev/null && die "an sshd already runs in '$dir'"
	rm -f "$dir/host_ed25519" "$dir/host_ed25519.pub" \
		"$dir/id_ed25519" "$dir/id_ed25519.pub" "$dir/sshd.pid"
	ssh-keygen -q -t ed25519 -N '' -C mibera-test-host -f "$dir/host_ed25519" </dev/null ||
		die "cannot generate the host key"
	ssh-keygen -q -t ed25519 -N '' -C mibera-test-user -f "$dir/id_ed25519" </dev/null ||
		die "cannot generate the user key"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	chmod 600 "$dir/host_ed25519" "$dir/id_ed25519" "$dir/authorized_keys"
	if [ "$(id -u)" -eq 0 ]; then
		mkdir -p /run/sshd
		chmod 0755 /run/sshd
	fi
	: >"$dir/sshd.log"

	# Another process may take the port between picking and binding: retry.
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		write_config "$port"
		# sshd checks the config, then daemonizes before it binds; its
		# stdio must not hold our caller's pipe open.
		"$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 ||
			die "sshd refused to start (config $dir/sshd_config): $(tail -n 5 "$dir/sshd.log")"
		# The pid file appears once it listens; 10 s covers a loaded box.
		pid=
		for _ in $(seq 1 200); do
			if pid=$(our_pid); then
				break
			fi
			pid=
			if grep -q -e "Cannot bind" -e "Bind to port" "$dir/sshd.log"; then
				break
			fi
			sleep 0.05
		done
		if [ -n "$pid" ] && port_open "$port"; then
			break
		fi
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
		pid=
		grep -q -e "Cannot bind" -e "Bind to port" "$dir/sshd.log" ||
			die "sshd did not start: $(tail -n 5 "$dir/sshd.log")"
		: >"$dir/sshd.log"
	done
	[ -n "$pid" ] || die "no free port for sshd after 5 tries"

	echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
	echo "HOST=127.0.0.1"
	echo "PORT=$port"
	echo "USER=$user"
	echo "KEY=$dir/id_ed25519"
	echo "PUBKEY=$dir/id_ed25519.pub"
	echo "HOSTKEY_PUB=$dir/host_ed25519.pub"
	echo "KNOWN_HOSTS=$dir/known_hosts"
	echo "PID=$pid"
	echo "DIR=$dir"
	echo "LOG=$dir/sshd.log"
}

stop() {
	local pid
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd -P)
	pid=$(our_pid) || {
		rm -f "$dir/sshd.pid"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.1
	fi
	rm -f "$dir/sshd.pid"
}

[ $# -eq 2 ] || usage
dir=$2
case $1 in
start) start ;;
stop) stop ;;
*) usage ;;
esac
