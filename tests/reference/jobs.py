#!/usr/bin/env python3
"""Independent references for the built-in jobs, walking inputs like mr (files as given,
directories recursively in path order, entries whose name starts with "_" or "." skipped;
paths relative to the input as given). File names in grep and index output are percent-encoded like mr's (see
path_text). Output
lines are printed in byte order.

  jobs.py wordcount PATH...      ->  word<TAB>count
  jobs.py grep PATTERN PATH...   ->  path:line<TAB>line  (the matching is ripgrep's, `rg`)
  jobs.py index PATH...          ->  word<TAB>doc,doc,...
  jobs.py sort PATH...           ->  every line, sorted by bytes
  jobs.py alphabetic             ->  the code points with Unicode's Alphabetic property, as
                                     ranges `first-last` in hex, one per line

The documented rules, followed here exactly:
- Lines: a file's bytes split on \\n; one \\r right before a \\n is dropped with it; the last
  line needs no \\n (and then keeps a final \\r); a lone \\r is part of its line.
- Words: maximal runs of characters with Unicode's Alphabetic property (Rust's
  `char::is_alphabetic`), here PyPI's `regex` with \\p{Alphabetic}, lowercased as Rust's
  `str::to_lowercase` does. Python's `str.isalpha` is a different set (letters only: no
  combining marks, letter numbers or circled letters). `str.lower` agrees with Rust's
  lowercasing on every character Python's own Unicode data knows; a letter newer than that
  data is refused rather than guessed.
"""
import os
import subprocess
import sys
import tempfile
import unicodedata

import regex

ALPHABETIC = regex.compile(r"\p{Alphabetic}+")


def files(paths):
    """Each input file, named as reached from the input as given: a file given directly as
    given, a file under a directory D as D/relative (joined as Rust's `Path::join` does)."""
    for p in paths:
        yield from walk(p)


def walk(p):
    if os.path.isdir(p):
        for name in sorted(os.listdir(p), key=os.fsencode):
            if not name.startswith((".", "_")):
                yield from walk(os.path.join(p, name))
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
    """The file's lines by the documented rule."""
    with open(path, "rb") as f:
        data = f.read()
    out = data.split(b"\n")
    last = out.pop()  # after the last \n: the unterminated last line, if not empty
    out = [l[:-1] if l.endswith(b"\r") else l for l in out]
    if last:
        out.append(last)
    return out


def lower(word):
    for ch in word:
        if unicodedata.category(ch) == "Cn":
            sys.exit(
                f"U+{ord(ch):04X} is a letter newer than Python's Unicode data "
                f"({unicodedata.unidata_version}): this reference cannot lowercase it"
            )
    return word.lower()


def words(text):
    return (lower(m.group()) for m in ALPHABETIC.finditer(text))


def grep(pattern, paths):
    """ripgrep on the lines of each file: each file is copied as its lines (by the rule above)
    each ended by \\n, so ripgrep's line numbers and line text are the job's records."""
    result = []
    paths = list(files(paths))
    if not paths:
        return result
    with tempfile.TemporaryDirectory(prefix="mr-grep-ref-") as tmp:
        names = []
        for i, path in enumerate(paths):
            name = f"f{i}"
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(b"".join(l + b"\n" for l in lines(path)))
            names.append(name)
        # -a: every file is text; -E none: no BOM sniffing or transcoding; --no-config: no
        # RIPGREP_CONFIG_PATH. Status 1 means no line matched.
        rg = subprocess.run(
            ["rg", "--no-config", "-n", "--no-heading", "--with-filename", "-a", "-E", "none", "-e", pattern, "--"]
            + names,
            cwd=tmp,
            stdout=subprocess.PIPE,
        )
        if rg.returncode not in (0, 1):
            sys.exit(f"rg failed with status {rg.returncode}")
    for line in rg.stdout.split(b"\n")[:-1]:
        name, number, text = line.split(b":", 2)
        path = paths[int(name[1:])]
        result.append(path_text(path) + b":" + number + b"\t" + text)
    return result


mode, args = sys.argv[1], sys.argv[2:]
result = []
if mode == "wordcount":
    counts = {}
    for path in files(args):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        for w in words(text):
            counts[w] = counts.get(w, 0) + 1
    for w, n in counts.items():
        result.append(w.encode() + b"\t" + str(n).encode())
elif mode == "grep":
    result = grep(args[0], args[1:])
elif mode == "index":
    docs = {}
    for path in files(args):
        for line in lines(path):
            for w in words(line.decode("utf-8")):
                docs.setdefault(w, set()).add(path_text(path))
    for w, ds in docs.items():
        result.append(w.encode() + b"\t" + b",".join(sorted(ds)))
elif mode == "sort":
    for path in files(args):
        result.extend(lines(path))
elif mode == "alphabetic":
    one = regex.compile(r"\p{Alphabetic}")
    start = None
    for cp in range(0x110001):
        inside = cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF and one.match(chr(cp)) is not None
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            result.append(f"{start:x}-{cp - 1:x}".encode())
            start = None
    sys.stdout.buffer.write(b"".join(l + b"\n" for l in result))
    sys.exit(0)
else:
    sys.exit(f"unknown mode {mode}")
sys.stdout.buffer.write(b"".join(l + b"\n" for l in sorted(result)))
