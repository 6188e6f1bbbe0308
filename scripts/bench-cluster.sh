#!/usr/bin/env bash
# Benchmarks of `mr cluster` (numbers in docs/BENCHMARKS.md; never a timed test):
#   1. submit-to-done of a 1 KB word count on a warm cluster (`mr submit` from start to exit,
#      and the job's own wall time from its summary), beside `mr run`'s wall time on the same
#      input, RUNS times each (median and best);
#   2. scheduling cost per task: a job of TASKS map tasks of a few bytes each on the cluster, and
#      the same job with `mr run` (the same number of worker processes), per task;
#   3. fairness: two long jobs submitted together; each one's share of the slot-seconds while
#      both run, from the attempts' records (start and end of every attempt).
#
#   scripts/bench-cluster.sh [RUNS] [TASKS] [SECTIONS]   # defaults: 20, 400 and 123 (all three)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
tasks=${2:-400}
sections=${3:-123}
if [ -n "${MR_BIN:-}" ]; then
  mr=$(realpath "$MR_BIN")
else
  cargo build --release --quiet
  mr=$PWD/target/release/mr
fi
tmp=$(mktemp -d -t mr-bench-cluster-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
export MR_TOKEN=bench-$$
slots=2

"$mr" cluster --listen 127.0.0.1:0 --http 127.0.0.1:0 --state-dir "$tmp/state" 2>"$tmp/cluster.log" &
pids+=($!)
until grep -qs '^web:' "$tmp/cluster.log"; do sleep 0.05; done
url=$(sed -n 's/^cluster: //p' "$tmp/cluster.log")
web=$(sed -n 's/^web: //p' "$tmp/cluster.log")
"$mr" worker --cluster "$url" --slots "$slots" --work-dir "$tmp" 2>"$tmp/worker.log" &
pids+=($!)
until curl -s "${web}metrics" | grep -q "mr_cluster_slots{state=\"idle\"} $slots"; do sleep 0.05; done

now_ns() { date +%s%N; }
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# --- 1. submit-to-done of 1 KB -----------------------------------------------------------------
if [[ $sections == *1* ]]; then
mkdir -p "$tmp/in1k"
head -c 1024 sample/*.txt 2>/dev/null | tr -c 'a-zA-Z\n' ' ' | head -c 1024 >"$tmp/in1k/a.txt" || true
[ -s "$tmp/in1k/a.txt" ] || yes 'the quick brown fox jumps over the lazy dog' | head -c 1024 >"$tmp/in1k/a.txt"
"$mr" submit --cluster "$url" wordcount -i "$tmp/in1k" -o "$tmp/warm" -q # warm-up
: >"$tmp/submit.ms" && : >"$tmp/job.ms" && : >"$tmp/run.ms"
for i in $(seq "$runs"); do
  t0=$(now_ns)
  "$mr" submit --cluster "$url" wordcount -i "$tmp/in1k" -o "$tmp/s$i" --json >"$tmp/s$i.json"
  echo $((($(now_ns) - t0) / 1000000)) >>"$tmp/submit.ms"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wall_ms"])' "$tmp/s$i.json" >>"$tmp/job.ms"
  t0=$(now_ns)
  "$mr" run wordcount -i "$tmp/in1k" -o "$tmp/r$i" -w "$slots" -q
  echo $((($(now_ns) - t0) / 1000000)) >>"$tmp/run.ms"
done
echo "1 KB word count, $runs runs (ms, median / best):"
echo "  mr submit, submit to done:  $(median <"$tmp/submit.ms") / $(sort -n "$tmp/submit.ms" | head -1)"
echo "  the job in the cluster:     $(median <"$tmp/job.ms") / $(sort -n "$tmp/job.ms" | head -1)"
echo "  mr run -w $slots:               $(median <"$tmp/run.ms") / $(sort -n "$tmp/run.ms" | head -1)"
echo "  load average after them: $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# --- 2. scheduling cost per task ----------------------------------------------------------------
if [[ $sections == *2* ]]; then
mkdir -p "$tmp/many"
# Files of 5 bytes, split at 5 bytes: one map task each.
for i in $(seq "$tasks"); do echo "w$((i % 10)) x" >"$tmp/many/$i.txt"; done
t0=$(now_ns)
"$mr" submit --cluster "$url" wordcount -i "$tmp/many" -o "$tmp/many-c" --split-size 5 -r 2 -q
cluster_ms=$((($(now_ns) - t0) / 1000000))
t0=$(now_ns)
"$mr" run wordcount -i "$tmp/many" -o "$tmp/many-r" --split-size 5 -r 2 -w "$slots" -q
run_ms=$((($(now_ns) - t0) / 1000000))
diff <(cat "$tmp"/many-c/part-*) <(cat "$tmp"/many-r/part-*) >/dev/null
echo "$tasks map tasks + 2 reduce tasks on $slots slots:"
echo "  cluster: $cluster_ms ms, $(python3 -c "print(round($cluster_ms / ($tasks + 2), 2))") ms per task"
echo "  mr run:  $run_ms ms, $(python3 -c "print(round($run_ms / ($tasks + 2), 2))") ms per task"
fi

# --- 3. fairness ----------------------------------------------------------------------------------
[[ $sections == *3* ]] || exit 0
mkdir -p "$tmp/long"
for i in $(seq 20); do seq 1 5000 | sed "s/^/w$i /" >"$tmp/long/$i.txt"; done
a=$("$mr" submit --cluster "$url" --detach streaming --mapper 'sleep 0.2; cat' --reducer cat -i "$tmp/long" -o "$tmp/fa" --split-size 16KiB -r 2)
b=$("$mr" submit --cluster "$url" --detach streaming --mapper 'sleep 0.2; cat' --reducer cat -i "$tmp/long" -o "$tmp/fb" --split-size 16KiB -r 2)
until curl -s "${web}api/v1/jobs/$b" | grep -q '"state":"succeeded"' && curl -s "${web}api/v1/jobs/$a" | grep -q '"state":"succeeded"'; do sleep 0.2; done
python3 - "$web" "$a" "$b" <<'EOF'
import json, sys, urllib.request
web, ids = sys.argv[1], sys.argv[2:]
jobs = [json.load(urllib.request.urlopen(f"{web}api/v1/jobs/{i}")) for i in ids]
# Each attempt's interval in wall-clock ms: the job's start plus the attempt's times.
spans = []
for j in jobs:
    # Attempt times are relative to the job's start (its coordinator's clock).
    base = j["started_ms"]
    spans.append([(base + a["start_ms"], base + (a["end_ms"] or a["start_ms"])) for a in j["summary"]["attempts"]])
lo = max(min(s for s, _ in sp) for sp in spans)
hi = min(max(e for _, e in sp) for sp in spans)
used = [sum(max(0, min(e, hi) - max(s, lo)) for s, e in sp) for sp in spans]
total = sum(used)
print(f"fairness: two jobs of {len(spans[0])} attempts, both running for {(hi - lo) / 1000:.1f} s:")
for i, u in zip(ids, used):
    print(f"  job {i}: {u / 1000:.1f} slot-seconds, {100 * u / total:.0f} %")
EOF
