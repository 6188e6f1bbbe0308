#!/usr/bin/env python3
"""Independent references for the built-in jobs, walking inputs like mr (files as given,
directories recursively in path order, entries whose name starts with "_" or "." skipped).
File names in grep and index output are percent-encoded like mr's (see path_text). Output
lines are printed in byte order.

  jobs.py wordcount PATH...      ->  word<TAB>count (words: maximal alphabetic runs, lowercased)
  jobs.py grep PATTERN PATH...   ->  path:line<TAB>line
  jobs.py index PATH...          ->  word<TAB>doc,doc,...
  jobs.py sort PATH...           ->  every line, sorted by bytes
"""
import os
import re
import sys
import unicodedata


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p), key=os.fsencode):
                if not name.startswith((".", "_")):
                    yield from files([os.path.join(p, name)])
        else:
            yield p


def path_text(path):
    """The file name as mr's jobs see it: "%", ",", control characters (category Cc) and
    bytes that are not UTF-8 percent-encoded, byte by byte; everything else as it is."""
    out = []
    for ch in os.fsencode(path).decode("utf-8", "surrogateescape"):
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append("%%%02X" % (ord(ch) - 0xDC00))
        elif ch in "%," or unicodedata.category(ch) == "Cc":
            out.extend("%%%02X" % b for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out).encode()


def lines(path):
    with open(path, "rb") as f:
        data = f.read()
    out = data.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    return [l[:-1] if l.endswith(b"\r") else l for l in out]


def words(text):
    word = []
    for ch in text:
        if ch.isalpha():
            word.append(ch)
        elif word:
            yield "".join(word).lower()
            word = []
    if word:
        yield "".join(word).lower()


mode, args = sys.argv[1], sys.argv[2:]
result = []
if mode == "wordcount":
    counts = {}
    for path in files(args):
        with open(path, encoding="utf-8", newline="") as f:
            for w in words(f.read()):
                counts[w] = counts.get(w, 0) + 1
    for w, n in counts.items():
        result.append(w.encode() + b"\t" + str(n).encode())
elif mode == "grep":
    pattern = re.compile(args[0].encode())
    for path in files(args[1:]):
        for n, line in enumerate(lines(path), 1):
            if pattern.search(line):
                result.append(path_text(path) + b":" + str(n).encode() + b"\t" + line)
elif mode == "index":
    docs = {}
    for path in files(args):
        for line in lines(path):
            for w in words(line.decode()):
                docs.setdefault(w, set()).add(path_text(path))
    for w, ds in docs.items():
        result.append(w.encode() + b"\t" + b",".join(sorted(ds)))
elif mode == "sort":
    for path in files(args):
        result.extend(lines(path))
else:
    sys.exit(f"unknown mode {mode}")
sys.stdout.buffer.write(b"".join(l + b"\n" for l in sorted(result)))
