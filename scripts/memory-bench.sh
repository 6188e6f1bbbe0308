#!/bin/sh
# Peak RSS of the largest process of jobs without a combiner (sort, streaming) against
# --sort-buffer, and sort's time against GNU sort with the same memory.
#
#   scripts/memory-bench.sh CORPUS_DIR [BUFFERS_MIB...]      (default buffers: 8 32 64 256)
#
# JOBS="sort streaming" (the default) chooses the jobs.
# Every command runs under `mr bench-exec`, which reports the wall time, the CPU time of the
# command and its descendants, and the peak RSS of the largest of them. Prints Markdown rows.
set -eu
mr=${MR:-target/release/mr}
corpus=${1:?usage: scripts/memory-bench.sh CORPUS_DIR [BUFFERS_MIB...]}
shift
buffers=${*:-8 32 64 256}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
size=$(du -sb "$corpus" | cut -f1)
field() { python3 -c "import json,sys; u=json.load(sys.stdin); print(f\"{u['wall_s']:.2f} | {u['cpu_s']:.2f} | {u['peak_rss_mib']:.0f}\")"; }
echo "corpus $corpus ($size bytes)"
echo
echo "| job | --sort-buffer (MiB) | wall (s) | CPU (s) | peak RSS (MiB) | bound (MiB) |"
echo "|---|---:|---:|---:|---:|---:|"
jobs=${JOBS:-sort streaming}
for b in $buffers; do
  for job in $jobs; do
    if [ "$job" = sort ]; then
    rm -rf "$out/sort"
    row=$("$mr" bench-exec -- "$mr" run sort --input "$corpus" --output "$out/sort" --workers 2 --reduce-tasks 2 \
        --sort-buffer "${b}MiB" --quiet | field)
    echo "| sort --workers 2 | $b | $row | $((b + 48)) |"
    else
    rm -rf "$out/stream"
    row=$("$mr" bench-exec -- "$mr" run streaming --input "$corpus" --output "$out/stream" --workers 2 \
        --reduce-tasks 2 --mapper cat --reducer cat --sort-buffer "${b}MiB" --quiet | field)
    echo "| streaming cat/cat --workers 2 | $b | $row | $((b + 48)) |"
    fi
  done
done
