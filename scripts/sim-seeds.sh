#!/usr/bin/env bash
# The paper's scenarios over several seeds: each seed draws other slowed machines, replica
# placements and killed workers. Prints one line per seed (simulated seconds) and the medians.
# Usage: scripts/sim-seeds.sh [SEEDS] (default 1..9), with mr on PATH or MR=path/to/mr.
set -euo pipefail
mr=${MR:-mr}
seeds=${1:-$(seq 1 9)}
t() { "$mr" simulate "$@" | head -1 | sed -E 's/.* in ([0-9.]+) s of simulated time.*/\1/'; }
printf '%-5s %10s %10s %10s %10s %10s %10s\n' seed fault-free normal no-backup kill-200 normal-5x no-backup-5x
for s in $seeds; do
  printf '%-5s %10s %10s %10s %10s %10s %10s\n' "$s" \
    "$(t sort-normal --seed "$s" --slow-fraction 0)" "$(t sort-normal --seed "$s")" \
    "$(t sort-no-backup --seed "$s")" "$(t sort-kill-200 --seed "$s")" \
    "$(t sort-normal --seed "$s" --slow-factor 5)" "$(t sort-no-backup --seed "$s" --slow-factor 5)"
done | tee /dev/stderr | python3 -c '
import sys, statistics
rows = [list(map(float, l.split()[1:])) for l in sys.stdin if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
print("%-5s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f" % ("med", *med))
ratio = lambda a, b: statistics.median(r[a] / r[b] - 1 for r in rows) * 100
print("median over seeds: no-backup vs normal %+.1f %%, kill-200 vs normal %+.1f %%, at 5x: no-backup vs normal %+.1f %%"
      % (ratio(2, 1), ratio(3, 1), ratio(5, 4)))
'
