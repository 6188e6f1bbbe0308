#!/usr/bin/env python3
"""Independent reference for `mr run wordcount`: walks the inputs like mr (files as given,
directories recursively in path order, hidden entries skipped), counts maximal runs of
alphabetic characters, lowercased, and prints `word<TAB>count` sorted by UTF-8 bytes."""
import os
import sys
from collections import Counter


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p), key=os.fsencode):
                if not name.startswith("."):
                    yield from files([os.path.join(p, name)])
        else:
            yield p


counts = Counter()
for path in files(sys.argv[1:]):
    with open(path, encoding="utf-8", newline="") as f:
        word = []
        for ch in f.read():
            if ch.isalpha():
                word.append(ch)
            elif word:
                counts["".join(word).lower()] += 1
                word = []
        if word:
            counts["".join(word).lower()] += 1

out = sys.stdout.buffer
for word in sorted(counts, key=lambda w: w.encode()):
    out.write(f"{word}\t{counts[word]}\n".encode())
