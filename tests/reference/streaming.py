#!/usr/bin/env python3
"""Independent reference for Hadoop Streaming's documented examples run by `mr run streaming`.

    streaming.py secondary-sort N K DIR   Hadoop's secondary sort with `cat` as mapper and
        reducer: the key is a line's first N tab-separated fields, the first K of them pick the
        reducer. Prints each group of lines that share their first K fields, its lines sorted
        by key bytes, the groups in byte order of their text.
    streaming.py aggregate DIR            Hadoop's aggregate counting (`LongValueSum:WORD 1`):
        each field of each line (fields separated by runs of spaces and tabs, as awk's default
        FS splits them) with its count, `word<TAB>count` lines sorted by bytes.

Input files: every file under DIR, recursively, except names starting with `_` or `.`. Lines:
split on \\n, one \\r before a \\n dropped, a lone \\r kept, the last line needing no \\n."""
import os
import re
import sys


def files(root):
    found = []
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        found.extend(os.path.join(base, n) for n in names if not n.startswith(("_", ".")))
    return sorted(found)


def lines(root):
    for path in files(root):
        with open(path, "rb") as f:
            data = f.read()
        parts = data.split(b"\n")
        last = parts.pop()
        for line in parts:
            yield line[:-1] if line.endswith(b"\r") else line
        if last:
            yield last


def secondary_sort(n, k, root):
    groups = {}
    for line in lines(root):
        fields = line.split(b"\t")
        groups.setdefault(b"\t".join(fields[:k]), []).append((b"\t".join(fields[:n]), line))
    texts = [b"".join(line + b"\n" for _, line in sorted(group)) for group in groups.values()]
    sys.stdout.buffer.write(b"".join(sorted(texts)))


def aggregate(root):
    counts = {}
    for line in lines(root):
        for word in re.split(rb"[ \t]+", line.strip(b" \t")):
            if word:
                counts[word] = counts.get(word, 0) + 1
    out = sorted(word + b"\t" + str(n).encode() + b"\n" for word, n in counts.items())
    sys.stdout.buffer.write(b"".join(out))


if sys.argv[1] == "secondary-sort":
    secondary_sort(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
elif sys.argv[1] == "aggregate":
    aggregate(sys.argv[2])
else:
    sys.exit(f"unknown mode {sys.argv[1]}")
