#!/usr/bin/env bash
# Runs word count RUNS times in a row (default 10) with fault injection on: worker processes
# that exit abruptly mid-attempt (30%) and straggling attempts (10%, 2 s). Each run has its own
# seed and is compared byte for byte with a --local run. Prints one PASS/FAIL line per run, with
# the attempts the faults cost (lost or failed, from the run's --json summary), and a summary;
# exits non-zero if any run failed, or if no fault was injected in any run (the test would then
# test nothing). The text is `mr gen text --unicode`: words and line ends where text rules differ.
#
#   scripts/stress-test.sh [RUNS]
#   MR_STRESS_SIZE=64MiB MR_STRESS_WORKERS=4 scripts/stress-test.sh 20
set -euo pipefail
runs=${1:-10}
size=${MR_STRESS_SIZE:-8MiB}
workers=${MR_STRESS_WORKERS:-3}
cd "$(dirname "$0")/.."

cargo build --release --quiet
mr=target/release/mr
work=$(mktemp -d -t mr-stress-XXXXXX)
trap 'rm -rf "$work"' EXIT

"$mr" gen text --unicode --out "$work/input" --size "$size" --files 4 --seed 7 >/dev/null
job=(wordcount --input "$work/input" --split-size 256KiB --reduce-tasks 3)
"$mr" run "${job[@]}" --output "$work/local" --local --quiet

# Attempts a run's faults cost: its lost and failed attempts.
faulted() {
  python3 -c 'import json, sys
attempts = json.load(open(sys.argv[1]))["attempts"]
print(sum(a["outcome"] == "lost" or "failed" in a["outcome"] for a in attempts))' "$1"
}

pass=0
fail=0
faults=0
for run in $(seq 1 "$runs"); do
  out="$work/run-$run"
  start=$(date +%s%N)
  if "$mr" run "${job[@]}" --output "$out" --workers "$workers" \
      --inject-failure 0.3 --inject-straggler 0.1 --straggler-delay 2000 --inject-seed "$run" \
      --json >"$work/summary-$run.json" 2>"$work/stderr-$run" \
    && diff -r -x _job.json "$work/local" "$out" >"$work/diff-$run"; then
    pass=$((pass + 1))
    n=$(faulted "$work/summary-$run.json")
    faults=$((faults + n))
    echo "PASS run $run (seed $run) in $((($(date +%s%N) - start) / 1000000)) ms, $n attempts lost or failed"
  else
    fail=$((fail + 1))
    echo "FAIL run $run (seed $run):"
    tail -n 5 "$work/stderr-$run" "$work/diff-$run" | sed 's/^/    /'
  fi
  rm -rf "$out"
done
echo "stress: $faults attempts lost or failed to injected faults"
echo "stress: $pass passed, $fail failed"
if [ "$pass" -gt 0 ] && [ "$faults" -eq 0 ]; then
  echo "stress: FAIL: no fault was injected in any run, so nothing was tested"
  exit 1
fi
[ "$fail" -eq 0 ]
