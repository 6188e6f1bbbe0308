#!/bin/sh
# Every table of docs/BENCHMARKS.md in one run, each headed by the load average before and
# after it: word count on generated ASCII text of 256 MiB (with word search on 5,000,000
# strings and a 1 KB job), 1 GiB and 4 GiB against the ASCII-only count (wc_rust) and the
# Unicode-correct count, `--local` against one thread, real text, `mr run sort` against GNU
# sort at 256 MiB and 1 GiB, and peak memory at --sort-buffer 8, 32, 64 and 256 MiB on
# 256 MiB and 2 GiB of input.
#
#   scripts/speed-bench.sh [DIR] [SECTIONS...]
#
# DIR (default target/speed-bench) keeps the corpora between runs (about 8 GiB). SECTIONS
# (default all): wc256 wc1g wc4g real sort256 sort1g mem256 mem2g. REPEAT (default 3) is the
# number of alternating runs `mr bench` takes the medians of. Needs the release build and the
# ASCII-only count, built by:
#   cargo build --release
#   cargo build --release --manifest-path ../shared/peers/wc_rust/Cargo.toml --target-dir target/peers
set -eu
mr=${MR:-target/release/mr}
peer=${PEER:-target/peers/release/wc_rust}
dir=${1:-target/speed-bench}
[ $# -gt 0 ] && shift
sections=${*:-wc256 wc1g wc4g real sort256 sort1g mem256 mem2g}
repeat=${REPEAT:-3}
for tool in "$mr" "$peer"; do
    [ -x "$tool" ] || { echo "speed-bench: $tool is missing; build it first (see the top of $0)" >&2; exit 2; }
done
mkdir -p "$dir"
load() { echo "load average ($1): $(cut -d' ' -f1-3 /proc/loadavg)"; }
# Runs a section: a heading, the load before, the command, the load after.
section() {
    title=$1
    shift
    echo
    echo "### $title"
    echo
    load before
    echo
    "$@"
    echo
    load after
}
# A generated corpus of SIZE in DIR/gSIZE, made the way `mr bench` makes its own.
corpus() {
    c="$dir/b$1/corpus-ascii"
    [ -d "$c" ] || "$mr" bench --size "$1" --dir "$dir/b$1" --ascii-count "$peer" --wordcount-only --repeat 1 >/dev/null
    echo "$c"
}
wc() {
    size=$1
    shift
    "$mr" bench --size "$size" --dir "$dir/b$size" --ascii-count "$peer" --repeat "$repeat" "$@"
}
for s in $sections; do
    case $s in
    wc256) section "word count, 256 MiB" wc 256MiB --no-pipeline --word-search-strings 5000000 ;;
    wc1g) section "word count, 1 GiB" wc 1GiB --wordcount-only ;;
    wc4g) section "word count, 4 GiB" wc 4GiB --wordcount-only ;;
    real)
        [ -d "$dir/realtext" ] || scripts/real-text-corpus.sh "$dir/realtext" 256 >/dev/null
        section "word count, real text" "$mr" bench --corpus "$dir/realtext" --dir "$dir/breal" --wordcount-only \
            --repeat "$repeat"
        ;;
    sort256) c=$(corpus 256MiB) && section "sort, 256 MiB, M = 128 MiB" scripts/sort-bench.sh "$c" 128 "$repeat" ;;
    sort1g) c=$(corpus 1GiB) && section "sort, 1 GiB, M = 128 MiB" scripts/sort-bench.sh "$c" 128 "$repeat" ;;
    mem256) c=$(corpus 256MiB) && section "peak memory, 256 MiB of input" scripts/memory-bench.sh "$c" 8 32 64 256 ;;
    mem2g)
        [ -d "$dir/gen2g" ] || "$mr" gen text --out "$dir/gen2g" --size 2GiB --files 8 >/dev/null
        section "peak memory, 2 GiB of input" scripts/memory-bench.sh "$dir/gen2g" 8 32 64 256
        ;;
    *)
        echo "speed-bench: unknown section '$s' (wc256 wc1g wc4g real sort256 sort1g mem256 mem2g)" >&2
        exit 2
        ;;
    esac
done
