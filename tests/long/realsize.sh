#!/usr/bin/env bash
# tests/long/realsize.sh: the whole job at real size, the way it runs
# overnight, with the coordinator killed at the worst moments. Not part of
# tests/run.sh: it needs tens of GB of disk and a quarter of an hour.
#
# A full-size Phi-4-shaped model (40 layers, hidden 5120, vocabulary
# 100352; its weights are zeros in sparse files, so it costs no disk to
# make) goes to a loopback worker (OpenSSH's sshd on 127.0.0.1) with one
# quant type. The coordinator runs as the daemon and is killed with
# SIGKILL once during each of convert, quantize and pull, and started
# again each time. The job must succeed, every stored event must be an
# event, and no step's work may be done twice (one convert, one result per
# quant type, no byte pulled twice beyond one chunk per stream). Prints
# the wall time and peak RSS of each step.
#
#   tests/long/realsize.sh [--layers N] [--quant TYPE] [--dir DIR]
#   tests/long/realsize.sh --report [--dir DIR]   the checks and figures of
#                                                 the last run, again
#
# Needs a build in build/ (tests/run.sh or deploy/demo.sh make one; or
# MIBERA_BUILD names another directory holding the three programs). The
# disk it needs (the F16 and the quant on the worker, the quant pulled
# back, all in DIR) is checked first; --layers makes it smaller.
set -euo pipefail
cd "$(dirname "$0")/../.."
layers=40 quant=Q4_K_M dir=${MIBERA_REALSIZE_DIR:-/var/tmp/mibera-realsize}
report_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--layers) layers=$2; shift 2 ;;
	--quant) quant=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--report) report_only=1; shift ;;
	*) echo "usage: $0 [--layers N] [--quant TYPE] [--dir DIR] [--report]" >&2; exit 2 ;;
	esac
done
bin=${MIBERA_BUILD:-$PWD/build}
for p in mibera-job mibera-coordinator mibera-worker; do
	[ -x "$bin/$p" ] || { echo "realsize: no $bin/$p: build first (tests/run.sh)" >&2; exit 2; }
done
say() { printf '%s realsize: %s\n' "$(date +%T)" "$*"; }
t_start=$(date +%s)

# The checks and the figures, from what the run left in $dir.
report() {
	sqlite3 "$MIBERA_HOME/jobs.db" "PRAGMA wal_checkpoint" >/dev/null
	python3 - "$MIBERA_HOME/jobs.db" "$job" "$dir/coord-rss" "$quant" <<-'PY'
	import json, sqlite3, sys
	
	db, job, rssf, quant = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
	c = sqlite3.connect(db)
	rows = c.execute("select step, type, data from events where job_id = ?",
	                 (job,)).fetchall()
	bad = [r for r in rows if r[1] == "invalid"]
	ev = []
	for step, typ, data in rows:
	    try:
	        ev.append((step, typ, json.loads(data)))
	    except ValueError:
	        bad.append((step, typ, data))
	problems = []
	if bad:
	    problems.append("%d stored events are not events: %r" % (len(bad), bad[:3]))
	dup = c.execute("select count(*) - count(distinct data) from events where "
	                "job_id = ? and seq > 0", (job,)).fetchone()[0]
	if dup:
	    problems.append("%d worker events stored twice" % dup)
	done = [e for s, t, e in ev if s == "convert" and t == "done"]
	if len(done) != 1:
	    problems.append("convert finished %d times" % len(done))
	fin = {}
	for s, t, e in ev:
	    if t == "finished" and e.get("ok"):
	        fin.setdefault(e["wstep"], []).append(e)
	for w, l in fin.items():
	    if len(l) != 1:
	        problems.append("%s finished %d times" % (w, len(l)))
	pulled = [e for s, t, e in ev if t == "pulled" and e.get("ok")]
	size = {e["file"]: e["bytes"] for e in pulled}
	fetched = {}
	for s, t, e in ev:
	    if t == "pulled":
	        fetched[e["file"]] = fetched.get(e["file"], 0) + e["fetched"]
	for f, n in fetched.items():
	    # a killed pull refetches at most one 64 MiB chunk per stream
	    if n > size.get(f, 0) + 16 * (64 << 20):
	        problems.append("%s: %d bytes pulled for a file of %d" % (f, n, size[f]))
	steps = {r[0]: r for r in c.execute(
	    "select name, state, attempts, started_at, finished_at from steps "
	    "where job_id = ?", (job,))}
	rss = [int(x) for x in open(rssf).read().split()]
	smoke = [json.loads(r[0]) for r in c.execute(
	    "select smoke from artifacts where job_id = ? and smoke is not null",
	    (job,))]
	
	
	def mib(n):
	    return "%.0f MiB" % (n / 2**20)
	
	
	print("\nstep       wall            peak RSS        (attempts; how measured)")
	for w in ["convert", "quantize-" + quant, "manifest"]:
	    for e in fin.get(w, []):
	        print("%-10s %8.1f s      %10s      (%s on the worker)" % (
	            w.split("-")[0], e["seconds"], mib(e["peak_rss"]), w))
	p = steps.get("pull")
	if p:
	    print("%-10s %8.0f s      %10s      (%d starts; the coordinator, "
	          "restarts included)" % ("pull", p[4] - p[3], mib(max(rss or [0]) * 1024),
	                                  p[2]))
	for s in smoke:
	    print("%-10s %8.1f s      %10s      (%s: the load; then %.1f tok/s)" % (
	        "smoke", s["load_s"], mib(s["peak_rss"]), s["file"], s["gen_tps"]))
	jr = c.execute("select started_at, finished_at, held_seconds from jobs "
	               "where id = ?", (job,)).fetchone()
	print("\njob: %.0f s from its first start to its end (%.0f s held "
	      "by coordinators)" % (jr[1] - jr[0], jr[2]))
	print("step attempts: " + ", ".join("%s %d" % (n, r[2]) for n, r in
	                                     sorted(steps.items(), key=lambda x: x[1][3] or 0)))
	print("events: %d stored, all valid" % len(rows) if not bad else "")
	if problems:
	    print("\nPROBLEMS:\n  " + "\n  ".join(problems))
	    sys.exit(1)
	print("no invalid event, no step done twice")
	PY
}

if [ "$report_only" = 1 ]; then
	export MIBERA_HOME=$dir/mibera
	job=$(sqlite3 "$MIBERA_HOME/jobs.db" "select max(id) from jobs")
	quant=$(sqlite3 "$MIBERA_HOME/jobs.db" "select quants from jobs where id = $job")
	report
	exit
fi

rm -rf "$dir"
mkdir -p "$dir"
total=$(python3 tests/fixtures/mkmodel --preset phi4-slice --layers "$layers" --dry-run |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["total_size"])')
# the F16 (the same size as the bf16 weights) and a quant of at most 0.35
# of it on the worker, the quant pulled back, plus 5% and 2 GB
need=$(( total * 17 / 10 + total / 20 + (2 << 30) ))
avail=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') * 1024 ))
if [ "$avail" -lt "$need" ]; then
	echo "realsize: $dir has $((avail >> 30)) GiB free; $layers layers need about" \
		"$((need >> 30)) GiB (try --layers $(( layers * avail / need )))" >&2
	exit 2
fi

say "a $layers-layer Phi-4-shaped model, $((total / 1000000000)) GB of sparse bf16 weights"
python3 tests/fixtures/mkmodel --preset phi4-slice --layers "$layers" --sparse \
	--out "$dir/model"

export MIBERA_HOME=$dir/mibera
mkdir -p "$MIBERA_HOME"
echo '{"chunk_mib": 64, "retry_base_s": 2}' >"$MIBERA_HOME/config.json"
tests/harness/sshd.sh start "$dir/sshd" >"$dir/sshd.env"
coord=
sampler=
cleanup() {
	[ -n "$coord" ] && kill -9 "$coord" 2>/dev/null || true
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
	tests/harness/sshd.sh stop "$dir/sshd" >/dev/null 2>&1 || true
}
trap cleanup EXIT
port=$(sed -n 's/^PORT=//p' "$dir/sshd.env")
user=$(sed -n 's/^USER=//p' "$dir/sshd.env")
key=$(sed -n 's/^KEY=//p' "$dir/sshd.env")
add=(worker add box "$user@127.0.0.1:$port" --key "$key" --dir "$dir/worker"
	--agent "$bin/mibera-worker")
if ! out=$("$bin/mibera-job" "${add[@]}" 2>&1); then
	fp=$(grep -o 'SHA256:[A-Za-z0-9+/=]*' <<<"$out" | head -n 1)
	"$bin/mibera-job" "${add[@]}" --accept-host-key "$fp" >/dev/null
fi
job=$("$bin/mibera-job" submit "$dir/model" --worker box --quant "$quant")
jd=$dir/worker/jobs/job-$job

state() { # the state of step $1
	"$bin/mibera-job" status "$job" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)["job"]
print(next((s["state"] for s in j["steps"] if s["name"] == sys.argv[1]), "?"))' "$1"
}
job_state() {
	"$bin/mibera-job" status "$job" --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["state"])'
}
start() {
	"$bin/mibera-coordinator" >>"$dir/coordinator.log" 2>&1 &
	coord=$!
	say "coordinator started (pid $coord)"
}
# the coordinator's peak RSS, sampled, whichever process it is now
: >"$dir/coord-rss"
(while :; do
	p=$(pgrep -f "^$bin/mibera-coordinator\$" | head -n 1) || true
	[ -n "$p" ] && awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null >>"$dir/coord-rss"
	sleep 0.5
done) &
sampler=$!
wait_for() { # a description, then a test command; up to 1 h
	local what=$1 t0=$SECONDS
	shift
	until "$@"; do
		[ $((SECONDS - t0)) -lt 3600 ] || { say "timed out waiting for $what"; exit 1; }
		[ "$(job_state)" != failed ] || { say "the job failed while waiting for $what"; "$bin/mibera-job" show "$job"; exit 1; }
		sleep 0.5
	done
}
kill_coord() {
	kill -9 "$coord"
	wait "$coord" 2>/dev/null || true
	say "coordinator killed (SIGKILL) during $1"
}
under_way() { # the worker's journal of step $1 has a progress line past 0
	[ -f "$jd/$1.events" ] &&
		grep -q '"type":"progress".*"done":[1-9]' "$jd/$1.events"
}
pulled_some() {
	cat "$MIBERA_HOME/partial/job-$job"/*.chunks 2>/dev/null |
		grep -v mibera-chunks | grep -q 1
}

start
wait_for "convert to be under way" under_way convert
kill_coord convert
start
wait_for "quantize to be under way" under_way "quantize-$quant"
kill_coord quantize
start
wait_for "the pull to have verified chunks" pulled_some
kill_coord pull
start
job_succeeded() { [ "$(job_state)" = succeeded ]; }
wait_for "the job to end" job_succeeded
kill "$coord"
wait "$coord" 2>/dev/null || true
coord=
kill "$sampler" 2>/dev/null || true
sampler=

say "the job succeeded in $(( $(date +%s) - t_start )) s; checking what it stored"
report
say "done in $(( $(date +%s) - t_start )) s"
