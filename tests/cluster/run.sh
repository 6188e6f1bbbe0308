#!/usr/bin/env bash
# A job across three hosts: network namespaces, each with its own IP on 10.77.0.0/24, joined by
# a Linux bridge. The coordinator runs on host 1 (10.77.0.1), one worker on host 2 (10.77.0.2)
# and one on host 3 (10.77.0.3); every map output a reducer reads from the other host crosses
# the network through the Shuffle service. Five scenarios, each compared byte for byte with
# a --local run:
#   plain     no faults;
#   link-cut  mid-job, host 3's link goes down and stays down: the job finishes on host 2,
#             and host 3's worker exits by itself once its coordinator is lost;
#   kill      mid-job, every process on host 2 is killed (kill -9): the job finishes on host 3;
#   service   `mr cluster` on host 1 and long-lived `mr worker --cluster` on hosts 2 and 3; five
#             jobs (wordcount, sort, grep, streaming) submitted at once; mid-jobs, every
#             process on host 3 is killed: every job finishes, equal to its own --local run;
#   restart   `mr cluster` and its workers again: mid-job, the service is SIGKILLed and started
#             again; the job finishes from its journal, equal to --local, the history keeps a
#             job that ended before, and a job killed with `mr kill` leaves no files behind.
# Prints one PASS/FAIL line per scenario; exits non-zero if any failed, after printing the
# coordinator's stderr and the worker logs of each failed scenario.
#
#   sudo tests/cluster/run.sh                 # builds target/release/mr
#   sudo MR_BIN=/path/to/mr tests/cluster/run.sh
#
# Needs root and `ip netns`; without them it skips (exit 0), unless CI is set.
#
# The bridge lives in a fourth namespace of its own and each veth pair is made with its ends
# already in their namespaces, so nothing is ever added to the root namespace (nor exposed to
# the host's firewall), and deleting the namespaces removes every link. The namespaces' names
# carry this script's pid, so that runs in parallel do not clash.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() {
  if [ -n "${CI:-}" ]; then
    echo "cluster: FAIL: $1 (CI is set, so this test must run)" >&2
    exit 1
  fi
  echo "cluster: SKIP: $1 (run as root with iproute2 to test across network namespaces)"
  exit 0
}
[ "$(id -u)" -eq 0 ] || skip "not root"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
ip netns list >/dev/null 2>&1 || skip "ip netns is unavailable"
if ! command -v python3 >/dev/null 2>&1; then
  echo "cluster: FAIL: python3 is needed to read the status JSON" >&2
  exit 1
fi

if [ -n "${MR_BIN:-}" ]; then
  mr=$(realpath "$MR_BIN")
else
  cargo build --release --quiet
  mr=$PWD/target/release/mr
fi
# The real interpreter, not a version manager's shim: it is started on every poll.
python=$(python3 -c 'import sys; print(sys.executable)')

tag=mr-cluster-$$
ns1=$tag-h1
ns2=$tag-h2
ns3=$tag-h3
nsb=$tag-br
coordinator_url=http://10.77.0.1:7000
status_url=http://10.77.0.1:7001/
export MR_TOKEN=$tag-secret
export RUST_LOG=${RUST_LOG:-info}
job=(wordcount --reduce-tasks 3 --split-size 128KiB)

tmp=$(mktemp -d -t "$tag-XXXXXX")
namespaces=() # made so far
pids=()       # started and not yet reaped, so their pids cannot have been reused

cleanup() {
  local rc=$? pid ns
  set +e
  trap - EXIT INT TERM
  # Quietly: bash would report each process killed by a signal.
  {
    for pid in "${pids[@]}"; do kill -9 "$pid"; done
    for ns in "${namespaces[@]}"; do ip netns pids "$ns" | xargs -r kill -9; done
    for pid in "${pids[@]}"; do wait "$pid"; done
  } 2>/dev/null
  # A namespace's links go with it once its last process is gone.
  for _ in $(seq 50); do
    local left=""
    for ns in "${namespaces[@]}"; do left+=$(ip netns pids "$ns" 2>/dev/null); done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for ns in "${namespaces[@]}"; do
    ip netns del "$ns" || echo "cluster: cannot delete namespace $ns" >&2
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The network -------------------------------------------------------------------------------

ip netns add "$nsb" 2>/dev/null || skip "cannot create a network namespace"
namespaces+=("$nsb")
ip -n "$nsb" link add br0 type bridge
ip -n "$nsb" link set br0 up
ip -n "$nsb" link set lo up
for h in 1 2 3; do
  ns=$tag-h$h
  ip netns add "$ns"
  namespaces+=("$ns")
  # eth0 on host h, plugged into port hN of the bridge.
  ip link add eth0 netns "$ns" type veth peer name "h$h" netns "$nsb"
  ip -n "$nsb" link set "h$h" master br0 up
  ip -n "$ns" addr add "10.77.0.$h/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# --- Helpers -----------------------------------------------------------------------------------

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# `start NS LOG CMD...`: starts CMD in namespace NS in the background (`ip netns exec` execs
# it, so its pid is CMD's); sets `started` to its pid.
start() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" </dev/null >"$log" 2>&1 &
  started=$!
  pids+=("$started")
}

# True once the child PID has exited (a zombie until reaped).
exited() {
  local state
  { read -r _ _ state _ <"/proc/$1/stat"; } 2>/dev/null || return 0
  [ "$state" = Z ]
}

# `reap PID SECONDS`: waits up to SECONDS for the child PID to exit; sets rc to its exit status.
# Returns 1 if it is still running (it is then left alone).
reap() {
  local pid=$1 deadline=$(($(now_ms) + $2 * 1000)) p rest=()
  while ! exited "$pid"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
  rc=0
  wait "$pid" || rc=$?
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  pids=("${rest[@]+"${rest[@]}"}")
}

# `job_is EXPR`: true if EXPR holds for the coordinator's status JSON `j` (p = j["phases"];
# worker(PID) = the worker whose process is PID, named "HOST pid PID", or {}). Exits 2 if the
# status server does not answer.
job_is() {
  ip netns exec "$ns1" "$python" - "$status_url" "$1" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "api/v1/job", timeout=2) as r:
        j = json.load(r)
except Exception:
    sys.exit(2)
p = j["phases"]
def worker(pid):
    return next((w for w in j["workers"] if w["name"].endswith(" pid %s" % pid)), {})
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

# `wait_job SECONDS WHAT EXPR`: polls the status JSON until EXPR holds; fails if the
# coordinator exits first or SECONDS pass.
wait_job() {
  local deadline=$(($(now_ms) + $1 * 1000))
  until job_is "$3"; do
    if exited "$coordinator"; then
      problem "the coordinator exited while waiting for $2"
      return 1
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      problem "timed out after $1 s waiting for $2"
      return 1
    fi
    sleep 0.1
  done
}

# `history EXPR`: EXPR on the committed job's _job.json `h` (attempts = its attempts).
history() {
  "$python" - "$out/_job.json" "$1" <<'EOF'
import json, sys
h = json.load(open(sys.argv[1]))
attempts = h["summary"]["attempts"]
print(eval(sys.argv[2]))
EOF
}

# `start_cluster HTTP [FLAG...]`: starts scenario $name's coordinator on host 1 (status server
# on HTTP, more coordinator flags after it) and a worker on hosts 2 and 3; sets coordinator,
# worker2 and worker3 to their pids.
start_cluster() {
  local http=$1
  shift
  dir=$tmp/$name
  out=$dir/out
  mkdir -p "$dir/h1" "$dir/h2" "$dir/h3"
  start "$ns1" "$dir/coordinator.log" env TMPDIR="$dir/h1" \
    "$mr" coordinator "${job[@]}" --input "$tmp/input" --output "$out" \
    --listen 10.77.0.1:7000 --worker-timeout 2s --http "$http" "$@"
  coordinator=$started
  start "$ns2" "$dir/worker-2.log" env TMPDIR="$dir/h2" \
    "$mr" worker --coordinator "$coordinator_url"
  worker2=$started
  start "$ns3" "$dir/worker-3.log" env TMPDIR="$dir/h3" \
    "$mr" worker --coordinator "$coordinator_url"
  worker3=$started
}

problem() { why+="${why:+; }$*"; }

# Waits for the coordinator to exit with status 0, within 60 s and within 10 s of the job's
# commit (_SUCCESS). One still running then is killed, so that the checks that follow still run.
finish_job() {
  local deadline=$(($(now_ms) + 60000)) committed=""
  until exited "$coordinator"; do
    [ -n "$committed" ] || [ ! -e "$out/_SUCCESS" ] || committed=$(now_ms)
    if [ -n "$committed" ] && [ $(($(now_ms) - committed)) -ge 10000 ]; then
      problem "the job committed (_SUCCESS) but the coordinator had not exited 10 s later;" \
        "its TCP connections then (ss -tno):"$'\n'"$(ip netns exec "$ns1" ss -tno)"
      break
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      problem "the job did not end within 60 s"
      break
    fi
    sleep 0.05
  done
  if exited "$coordinator"; then
    reap "$coordinator" 0
    [ "$rc" -eq 0 ] || problem "the coordinator exited with status $rc"
  else
    kill -9 "$coordinator"
    reap "$coordinator" 10
  fi
}

# `workers_exit PID...`: the workers exit with status 0 within 10 s (once the job is over).
workers_exit() {
  local w
  for w in "$@"; do
    if ! reap "$w" 10; then
      problem "worker $w still running 10 s after the job ended"
    elif [ "$rc" -ne 0 ]; then
      problem "worker $w exited with status $rc"
    fi
  done
}

same_as_oracle() {
  diff -r -x _job.json "$tmp/oracle" "$out" >"$dir/diff" 2>&1 \
    || problem "the output differs from --local: $(head -c 2000 "$dir/diff")"
}

# --- Scenarios ---------------------------------------------------------------------------------
# Each sets `why` and returns non-zero when it fails; a failed check that leaves the next ones
# meaningful does not stop the scenario, so that its report is complete.

scenario_plain() {
  start_cluster off
  finish_job
  workers_exit "$worker2" "$worker3"
  same_as_oracle
  if [ -e "$out/_job.json" ]; then
    local workers
    workers=$(history 'len({a["worker"] for a in attempts})')
    [ "$workers" -eq 2 ] || problem "expected both hosts to run attempts, $workers did"
  fi
  [ -z "$why" ]
}

# Every attempt straggles 300 ms, so that the map phase lasts several seconds.
slow=(--inject-straggler 1 --straggler-delay 300)

# `mid_job PID`: waits until worker PID has committed two map outputs (which its loss must
# have re-executed) while the map phase still has most of its tasks to run.
mid_job() {
  wait_job 30 "worker $1 to commit 2 tasks" "worker($1).get('committed', 0) >= 2" || return 1
  job_is "j['state'] == 'running' and p[0]['done'] + 16 <= p[0]['tasks']" \
    || { problem "the job was past the middle of its map phase before the fault"; return 1; }
}

# `declared_dead PID`: the coordinator declares worker PID dead and its attempts lost.
declared_dead() {
  wait_job 15 "worker $1 to be declared dead and its attempts lost" \
    "not worker($1).get('alive', True) and p[0]['lost_attempts'] > 0"
}

scenario_link_cut() {
  start_cluster 10.77.0.1:7001 "${slow[@]}"
  mid_job "$worker3" || return 1
  local cut
  cut=$(now_ms)
  ip -n "$nsb" link set h3 down || { problem "cannot cut host 3's link"; return 1; }
  declared_dead "$worker3" || return 1
  finish_job
  workers_exit "$worker2"
  # It exits once the coordinator has been unreachable for its lost timeout (5 s).
  reap "$worker3" $((20 - ($(now_ms) - cut) / 1000)) \
    || problem "the cut worker was still running 20 s after the cut"
  # Compared after the cut worker is gone: it must not have written to the output either.
  same_as_oracle
  [ -z "$why" ]
}

scenario_kill() {
  start_cluster 10.77.0.1:7001 "${slow[@]}"
  mid_job "$worker2" || return 1
  ip netns pids "$ns2" | xargs -r kill -9 || true
  reap "$worker2" 10 || { problem "host 2's worker survived kill -9"; return 1; }
  declared_dead "$worker2" || return 1
  finish_job
  workers_exit "$worker3"
  same_as_oracle
  [ -z "$why" ]
}

# The jobs of the `service` scenario: a mix, each compared with its own --local run.
mixed=(
  "wordcount --reduce-tasks 3 --split-size 256KiB"
  "sort --reduce-tasks 2 --split-size 512KiB"
  "grep the --reduce-tasks 2"
  "streaming --mapper tr_-s_'_'_'\n' --reducer uniq_-c --reduce-tasks 2"
  "wordcount --reduce-tasks 1 --split-size 1MiB"
)

# `mixed_job I`: the words of job I of `mixed` (streaming's commands have `_` for spaces).
mixed_job() {
  local word
  for word in ${mixed[$1]}; do printf '%s\n' "${word//_/ }"; done
}

# `mr cluster` on host 1, a long-lived `mr worker --cluster --slots 2` on hosts 2 and 3, five
# jobs submitted at once from host 1; mid-jobs, every process on host 3 is killed (kill -9).
# Every job finishes, equal to --local.
scenario_service() {
  dir=$tmp/$name
  mkdir -p "$dir/h1" "$dir/h2" "$dir/h3"
  start "$ns1" "$dir/coordinator.log" env TMPDIR="$dir/h1" \
    "$mr" cluster --listen 10.77.0.1:7000 --http 10.77.0.1:7001 --state-dir "$dir/state"
  start "$ns2" "$dir/worker-2.log" env TMPDIR="$dir/h2" "$mr" worker --cluster "$coordinator_url" --slots 2
  start "$ns3" "$dir/worker-3.log" env TMPDIR="$dir/h3" "$mr" worker --cluster "$coordinator_url" --slots 2
  local i submits=() args
  for i in "${!mixed[@]}"; do
    mapfile -t args < <(mixed_job "$i")
    start "$ns1" "$dir/submit-$i.log" env TMPDIR="$dir/h1" "$mr" submit --cluster "$coordinator_url" \
      "${args[@]}" --worker-timeout 2s "${slow[@]}" --input "$tmp/input" --output "$dir/out-$i" --quiet
    submits+=("$started")
  done
  # Mid-jobs: once some map task has committed, host 3 goes.
  local deadline=$(($(now_ms) + 30000))
  until ip netns exec "$ns1" "$python" - "$status_url" 2>/dev/null <<'EOF'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "api/v1/jobs", timeout=2) as r:
    jobs = json.load(r)
sys.exit(0 if any(j["state"] == "running" and j["progress"]["map_done"] > 0 for j in jobs) else 1)
EOF
  do
    [ "$(now_ms)" -lt "$deadline" ] || { problem "no map task committed within 30 s"; return 1; }
    sleep 0.05
  done
  ip netns pids "$ns3" | xargs -r kill -9 || true
  for i in "${!submits[@]}"; do
    if ! reap "${submits[$i]}" 120; then
      problem "job $i did not end within 120 s"
    elif [ "$rc" -ne 0 ]; then
      problem "job $i: mr submit exited with status $rc: $(tail -n 5 "$dir/submit-$i.log")"
    else
      diff -r -x _job.json "$tmp/oracle-$i" "$dir/out-$i" >"$dir/diff-$i" 2>&1 \
        || problem "job $i differs from --local: $(head -c 1000 "$dir/diff-$i")"
    fi
  done
  [ -z "$why" ]
}

# `cluster_is PATH EXPR`: EXPR on the JSON `j` the cluster service serves at PATH (under its
# web root). Exits 2 if the service does not answer.
cluster_is() {
  ip netns exec "$ns1" "$python" - "$status_url$1" "$2" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        j = json.load(r)
except Exception:
    sys.exit(2)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

# `wait_cluster SECONDS WHAT PATH EXPR`: polls `cluster_is PATH EXPR` until it holds.
wait_cluster() {
  local deadline=$(($(now_ms) + $1 * 1000))
  until cluster_is "$3" "$4"; do
    [ "$(now_ms)" -lt "$deadline" ] || { problem "timed out after $1 s waiting for $2"; return 1; }
    sleep 0.05
  done
}

# `start_service`: `mr cluster` on host 1, with its state in $dir/state; sets `service`.
start_service() {
  start "$ns1" "$dir/service-$(now_ms).log" env TMPDIR="$dir/h1" \
    "$mr" cluster --listen 10.77.0.1:7000 --http 10.77.0.1:7001 --state-dir "$dir/state"
  service=$started
}

# `submit_detached ARGS...`: submits a job from host 1 with --detach; sets `id` to its id.
submit_detached() {
  id=$(ip netns exec "$ns1" env TMPDIR="$dir/h1" "$mr" submit --cluster "$coordinator_url" "$@" --detach)
}

# `mr cluster` on host 1, long-lived workers on hosts 2 and 3. A job that ended stays in the
# history across a restart. Mid-job, the service is SIGKILLed and started again: the job goes
# on from its journal without running all its committed maps again (the workers register again
# by themselves), and equals --local. A job killed with `mr kill` after the restart leaves
# neither output nor work files on any host.
scenario_restart() {
  dir=$tmp/$name
  mkdir -p "$dir/h1" "$dir/h2" "$dir/h3" "$dir/in"
  # Six files of 4000 bytes, one map task each; the mapper of the `slow` one waits for a gate.
  local f i
  for f in 0 1 2 3 4 5; do
    for i in $(seq 0 199); do printf 'w%02d straße Été %d\n' $((i % 17)) "$f"; done \
      >"$dir/in/$f$([ "$f" -eq 5 ] && echo -slow).txt"
  done
  local gate=$dir/gate never=$dir/never
  local gated=(streaming --reducer sort --reduce-tasks 2 --split-size 4000 --mapper
    "case \"\$mapreduce_map_input_file\" in *slow*) while [ ! -e '$gate' ]; do sleep 0.02; done;; esac; cat")
  local held=(streaming --reducer cat --reduce-tasks 2 --split-size 4000 --mapper
    "while [ ! -e '$never' ]; do sleep 0.02; done; cat")
  touch "$gate"
  "$mr" run "${gated[@]}" --input "$dir/in" --output "$dir/oracle" --local --quiet \
    || { problem "the --local run failed"; return 1; }
  rm "$gate"
  start_service
  start "$ns2" "$dir/worker-2.log" env TMPDIR="$dir/h2" "$mr" worker --cluster "$coordinator_url" --slots 2
  start "$ns3" "$dir/worker-3.log" env TMPDIR="$dir/h3" "$mr" worker --cluster "$coordinator_url" --slots 2
  ip netns exec "$ns1" env TMPDIR="$dir/h1" "$mr" submit --cluster "$coordinator_url" "${job[@]}" \
    --input "$tmp/input" --output "$dir/before" --quiet >"$dir/before.log" 2>&1 \
    || { problem "the first job failed: $(tail -n 5 "$dir/before.log")"; return 1; }
  submit_detached "${gated[@]}" --input "$dir/in" --output "$dir/out" || { problem "submit failed"; return 1; }
  local resumed=$id
  submit_detached "${held[@]}" --input "$dir/in" --output "$dir/held" || { problem "submit failed"; return 1; }
  local doomed=$id
  wait_cluster 30 "five maps of job $resumed" "api/v1/jobs/$resumed" 'j["progress"]["map_done"] == 5' || return 1
  kill -9 "$service"
  reap "$service" 10 || { problem "the service survived kill -9"; return 1; }
  touch "$gate"
  start_service
  wait_cluster 30 "the restarted service" api/v1/jobs 'len(j) == 3' || return 1
  cluster_is api/v1/jobs 'any(x["state"] == "succeeded" and x["output"].endswith("/before") for x in j)' \
    || problem "the history lost the job that ended before the restart"
  ip netns exec "$ns1" "$mr" kill --cluster "$coordinator_url" "$doomed" >"$dir/kill.log" 2>&1 \
    || problem "mr kill failed: $(cat "$dir/kill.log")"
  wait_cluster 30 "job $doomed killed" "api/v1/jobs/$doomed" 'j["state"] == "killed"'
  wait_cluster 60 "job $resumed resumed and succeeded" "api/v1/jobs/$resumed" 'j["state"] == "succeeded"' \
    || return 1
  diff -r -x _job.json "$dir/oracle" "$dir/out" >"$dir/diff" 2>&1 \
    || problem "job $resumed differs from --local: $(head -c 1000 "$dir/diff")"
  # The restarted service runs only the maps its journal does not hold. A commit can be lost
  # with the service only if its journal's writer had not stored it yet, and the five commits
  # were spread over two waves of attempts: never are all six maps run again.
  cluster_is "api/v1/jobs/$resumed" \
    'len([a for a in j["summary"]["attempts"] if a["id"]["task"]["phase"] == "map"]) < 6' \
    || problem "job $resumed ran every map again after the restart"
  [ ! -e "$dir/held" ] || problem "the killed job's output $dir/held is still there"
  local deadline=$(($(now_ms) + 30000)) left
  while left=$(find "$dir/h2" "$dir/h3" -name "job-$doomed" 2>/dev/null) && [ -n "$left" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || { problem "the killed job's work files are still there: $left"; break; }
    sleep 0.05
  done
  [ -z "$why" ]
}

# Ends whatever a scenario left running and plugs host 3 back in.
reset_hosts() {
  local ns p
  # A process may exit between `ip netns pids` and `kill`.
  for ns in "$ns1" "$ns2" "$ns3"; do ip netns pids "$ns" | xargs -r kill -9 || true; done
  for p in "${pids[@]}"; do reap "$p" 10 || true; done
  ip -n "$nsb" link set h3 up
}

# --- Run ---------------------------------------------------------------------------------------

"$mr" gen text --out "$tmp/input" --size 4MiB --files 4 --seed 1 >/dev/null
"$mr" run "${job[@]}" --input "$tmp/input" --output "$tmp/oracle" --local --quiet
for i in "${!mixed[@]}"; do
  mapfile -t args < <(mixed_job "$i")
  "$mr" run "${args[@]}" --input "$tmp/input" --output "$tmp/oracle-$i" --local --quiet
done

scenarios=(plain link-cut kill service restart)
failed=0
for name in "${scenarios[@]}"; do
  why=""
  begin=$(now_ms)
  mkdir -p "$tmp/$name"
  # The scenario's stderr goes to a file: bash reports there the processes it kills.
  if "scenario_${name//-/_}" 2>"$tmp/$name/script.log"; then
    echo "PASS $name in $(($(now_ms) - begin)) ms"
  else
    failed=$((failed + 1))
    echo "FAIL $name after $(($(now_ms) - begin)) ms: ${why:-a command failed}"
    for log in "$tmp/$name"/{script,coordinator,worker-2,worker-3}.log; do
      echo "---- $name: $(basename "$log") (last 200 lines)"
      tail -n 200 "$log"
    done
  fi
  reset_hosts 2>>"$tmp/$name/script.log"
done
echo "cluster: $((${#scenarios[@]} - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
