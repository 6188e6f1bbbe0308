#!/usr/bin/env python3
"""Independent references of the csv and jsonl input formats, read with Python's own csv and
json modules, through `mr run sort`: every record as the job sees it, sorted by bytes.

  formats.py csv FILE...     ->  each RFC 4180 record as a JSON array of its fields
  formats.py jsonl FILE...   ->  each line, checked to be one JSON value

The documented rules, followed here:
- csv: a UTF-8 byte-order mark at the start of a file is dropped (encoding "utf-8-sig"); records
  end with CRLF or LF outside quotes; quoted fields keep their newlines as they are (newline="");
  a record's fields are written as a compact JSON array, non-ASCII characters as they are.
- jsonl: lines split on \\n with one \\r before it dropped, as text; a byte-order mark that starts
  the file is dropped; each line must parse as JSON (else this exits 1, naming the line).
"""
import csv
import json
import sys


def csv_records(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f, strict=True):
            yield json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


def jsonl_records(path):
    data = open(path, "rb").read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if data.endswith(b"\n") or number < len(lines):
            line = line[:-1] if line.endswith(b"\r") else line
        try:
            json.loads(line.decode("utf-8"))
        except ValueError as e:
            sys.exit(f"{path}: line {number}: {e}")
        yield line


mode, paths = sys.argv[1], sys.argv[2:]
reader = {"csv": csv_records, "jsonl": jsonl_records}[mode]
records = [r for p in paths for r in reader(p)]
sys.stdout.buffer.write(b"".join(r + b"\n" for r in sorted(records)))
