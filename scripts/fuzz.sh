#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for FUZZ_SECONDS each (default 60), one after another,
# and prints one line per target: executions, executions per second, and whether it crashed.
# Installs cargo-fuzz if it is missing; uses the nightly toolchain if rustup has one, else
# RUSTC_BOOTSTRAP=1 on the default one. Corpora grow in fuzz/corpus/TARGET (not committed),
# starting from fuzz/seeds/TARGET; a crash is saved in fuzz/artifacts/TARGET and its log in
# fuzz/logs/TARGET.log. Exits non-zero if any target crashed, hung or ran out of memory.
# Not run by .ci/run: too slow. Every crash found becomes a regression test in the normal suite.
#
#   scripts/fuzz.sh [TARGET...]
#   FUZZ_SECONDS=600 scripts/fuzz.sh mapout_read rpc
set -euo pipefail
seconds=${FUZZ_SECONDS:-60}
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
# Optimized, with debug assertions and overflow checks (cargo-fuzz's default), and ASan.
build=(-O --debug-assertions --codegen-units 16)

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi
"${fuzz[@]}" build "${build[@]}"

mkdir -p fuzz/logs
failed=()
summary=()
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "fuzz/seeds/$target" ] && dirs+=("fuzz/seeds/$target")
  [ "$target" = config ] && cp -n mr.example.toml "$corpus/mr.example.toml"
  log=fuzz/logs/$target.log
  echo "== $target: $seconds s"
  status=0
  # -timeout: an input slower than 10 s is a hang; -rss_limit_mb/-malloc_limit_mb: so is
  # memory beyond what any input here justifies.
  "${fuzz[@]}" run "${build[@]}" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="CRASH (exit $status; see $log and fuzz/artifacts/$target)"
    failed+=("$target")
    tail -n 40 "$log"
  fi
  summary+=("$(printf '%-18s %10s execs %8s/s  %s' "$target" "${execs:-?}" "${rate:-?}" "$result")")
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
