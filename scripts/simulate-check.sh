#!/usr/bin/env bash
# Runs the randomized fault schedules of `mr simulate check` over many seeds (cargo test runs
# 300). Each seed simulates a small cluster with and without random worker deaths, slowed
# machines, lost heartbeats and network partitions, driving mr's real scheduler, and checks its
# invariants. A failing seed prints what broke and the command that reproduces it; the script
# exits non-zero if any seed failed.
#
#   scripts/simulate-check.sh [FIRST..END]      (default 0..5000)
set -euo pipefail
seeds=${1:-0..5000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec target/release/mr simulate check --seeds "$seeds"
