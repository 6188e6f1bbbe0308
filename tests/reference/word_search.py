#!/usr/bin/env python3
"""Independent reference for `mr run word-search`: for each target (deduplicated), the number
of input lines containing it as a substring; targets found in no line are not printed.

The documented rules, followed here exactly: targets are the lines of the targets file (split
on \\n) trimmed of the characters with Unicode's White_Space property at both ends (Rust's
`str::trim`; Python's `str.strip` also strips \\x1c-\\x1f, which are not White_Space), blank
ones dropped. Input lines: split on \\n, one \\r before a \\n dropped, a lone \\r kept."""
import sys

import regex

EDGES = regex.compile(r"^\p{White_Space}+|\p{White_Space}+$")

targets_file, inputs = sys.argv[1], sys.argv[2:]
with open(targets_file, "rb") as f:
    text = f.read().decode("utf-8")
trimmed = (EDGES.sub("", t) for t in text.split("\n"))
targets = sorted({t.encode() for t in trimmed if t})
counts = dict.fromkeys(targets, 0)
for path in inputs:
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    last = lines.pop()
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    if last:
        lines.append(last)
    for line in lines:
        for t in targets:
            if t in line:
                counts[t] += 1
out = sys.stdout.buffer
for t in targets:
    if counts[t]:
        out.write(t + b"\t" + str(counts[t]).encode() + b"\n")
