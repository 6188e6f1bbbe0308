#!/usr/bin/env bash
# Sort of 128 MiB of text, 2 workers: map outputs read in place (mr run) vs fetched over the
# Shuffle service (mr coordinator + 2 workers advertising 127.0.0.2 and 127.0.0.3, so every
# reducer fetches the other worker's outputs over gRPC). Three runs; prints the ratios.
set -euo pipefail
cd "$(dirname "$0")/.." && cargo build --release --quiet
M=$PWD/target/release/mr
W=$(mktemp -d -t mr-shuffle-XXXXXX)
trap 'rm -rf "$W"' EXIT
$M gen text --out $W/in --size 128MiB --files 8 --seed 3 >/dev/null
common=(sort --input $W/in --reduce-tasks 4 --split-size 8MiB --quiet)
for i in 1 2 3; do
  rm -rf $W/a $W/b
  s=$(date +%s%N); $M run "${common[@]}" --output $W/a --workers 2; e=$(date +%s%N)
  inplace=$(( (e - s) / 1000000 ))
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  s=$(date +%s%N)
  MR_TOKEN=t $M coordinator "${common[@]}" --output $W/b --listen 127.0.0.1:$port --http off 2>/dev/null &
  c=$!
  MR_TOKEN=t $M worker --coordinator http://127.0.0.1:$port --advertise 127.0.0.2 &
  MR_TOKEN=t $M worker --coordinator http://127.0.0.1:$port --advertise 127.0.0.3 &
  wait
  e=$(date +%s%N)
  fetched=$(( (e - s) / 1000000 ))
  diff -r -x _job.json $W/a $W/b >/dev/null && same=same || same=DIFFERENT
  echo "run $i: in place ${inplace} ms, over the Shuffle service ${fetched} ms, ratio $(python3 -c "print(round($fetched/$inplace,2))"), outputs $same"
done
