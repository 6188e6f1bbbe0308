#!/bin/sh
# `mr run sort --workers 2` against `LC_ALL=C sort --parallel=2 -S M` with the same total
# memory M (two workers of --sort-buffer M/2), alternating, in one run; checks that the
# outputs are the same bytes.
#
#   scripts/sort-bench.sh CORPUS_DIR [M_MIB] [ROUNDS]        (default M 128, 3 rounds)
set -eu
mr=${MR:-target/release/mr}
corpus=${1:?usage: scripts/sort-bench.sh CORPUS_DIR [M_MIB] [ROUNDS]}
m=${2:-128}
rounds=${3:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
wall() { python3 -c "import json,sys; u=json.load(sys.stdin); print(f\"{u['wall_s']:.2f} {u['cpu_s']:.2f} {u['peak_rss_mib']:.0f}\")"; }
echo "corpus $corpus ($(du -sb "$corpus" | cut -f1) bytes), M = $m MiB"
i=1
while [ "$i" -le "$rounds" ]; do
    rm -rf "$out/mr"
    a=$("$mr" bench-exec -- "$mr" run sort --input "$corpus" --output "$out/mr" --workers 2 --reduce-tasks 2 \
        --sort-buffer "$((m / 2))MiB" --quiet | wall)
    b=$("$mr" bench-exec -- sh -c "cat '$corpus'/* | LC_ALL=C sort --parallel=2 -S ${m}M -T '$out' > '$out/gnu.txt'" | wall)
    cat "$out"/mr/part-* | cmp -s - "$out/gnu.txt" || { echo "outputs differ" >&2; exit 1; }
    echo "round $i: mr run sort (wall CPU RSS) $a | GNU sort $b"
    i=$((i + 1))
done
