#!/usr/bin/env bash
# Builds the example, runs it on the sample corpus with worker processes and with --local,
# and checks both against an awk reference. Run by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p line-lengths
bin=target/release/line-lengths
work=$(mktemp -d -t line-lengths-XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bin" run line-lengths --input sample --output "$work/dist" --workers 2 --reduce-tasks 4 --quiet
"$bin" run line-lengths --input sample --output "$work/local" --local --reduce-tasks 4 --quiet
diff -r -x _job.json "$work/dist" "$work/local"
# Lengths in bytes; words split on blanks, as Rust's split_whitespace does for ASCII.
LC_ALL=C awk '{ lines[length($0)]++; words[length($0)] += NF }
  END { for (l in lines) print l "\t" lines[l] " " words[l] }' sample/*.txt | sort -n > "$work/expected"
cat "$work"/dist/part-r-* > "$work/got"
diff "$work/expected" "$work/got"

# The job's own flag, --round N, before or after mr run's flags.
"$bin" run line-lengths --round 10 --input sample --output "$work/round-dist" --workers 2 --reduce-tasks 4 --quiet
"$bin" run --local --input sample line-lengths --output "$work/round-local" --reduce-tasks 4 --quiet --round 10
diff -r -x _job.json "$work/round-dist" "$work/round-local"
LC_ALL=C awk '{ l = int(length($0) / 10) * 10; lines[l]++; words[l] += NF }
  END { for (l in lines) print l "\t" lines[l] " " words[l] }' sample/*.txt | sort -n > "$work/expected-round"
cat "$work"/round-dist/part-r-* > "$work/got-round"
diff "$work/expected-round" "$work/got-round"
"$bin" run line-lengths -h | grep -q -- '--round <N>'
echo "line-lengths example: output matches the reference (also with --round), and part files are in length order"
