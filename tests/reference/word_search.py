#!/usr/bin/env python3
"""Independent reference for `mr run word-search`: for each target (deduplicated), the number
of input lines containing it as a substring; targets found in no line are not printed."""
import sys

targets_file, inputs = sys.argv[1], sys.argv[2:]
with open(targets_file, encoding="utf-8") as f:
    targets = sorted({t.strip() for t in f if t.strip()}, key=str.encode)
counts = dict.fromkeys(targets, 0)
for path in inputs:
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            for t in targets:
                if t in line:
                    counts[t] += 1
out = sys.stdout.buffer
for t in targets:
    if counts[t]:
        out.write(f"{t}\t{counts[t]}\n".encode())
