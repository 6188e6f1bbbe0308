#!/usr/bin/env python3
"""Independent reading of TeraGen's documented record format, for `mr run teragen` and a sort
of its output: `KEY(10) SPACE SPACE ROW(32 hex) SPACE SPACE FILLER(52) CR LF`, 100 bytes, the
key printable ASCII, the filler letters `A` + (row + i) mod 26. Reads every `part-*` file of DIR
in name order and prints `N records, checksum X`, X the sum (mod 2^64) of the records' CRC32s
in 16 hex digits.

  tera.py generated DIR   the rows are 0..N-1, in order across the files
  tera.py sorted DIR      the keys are in order across the files, and the rows are 0..N-1
"""
import os
import re
import sys
import zlib

RECORD = re.compile(rb"[ -~]{10}  ([0-9A-F]{32})  ([A-Z]{52})\r\n", re.DOTALL)

mode, directory = sys.argv[1], sys.argv[2]
records, checksum, rows, previous = 0, 0, [], None
for name in sorted(n for n in os.listdir(directory) if n.startswith("part-")):
    with open(os.path.join(directory, name), "rb") as f:
        data = f.read()
    if len(data) % 100:
        sys.exit(f"{name}: {len(data)} bytes is not a whole number of 100-byte records")
    for offset in range(0, len(data), 100):
        record = data[offset : offset + 100]
        m = RECORD.fullmatch(record)
        if not m:
            sys.exit(f"{name} at byte {offset}: not a TeraGen record: {record!r}")
        row = int(m.group(1), 16)
        filler = bytes(ord("A") + (row + i) % 26 for i in range(52))
        if m.group(2) != filler:
            sys.exit(f"{name} at byte {offset}: the filler of row {row} is {m.group(2)!r}")
        key = record[:10]
        if mode == "sorted" and previous is not None and key < previous:
            sys.exit(f"{name} at byte {offset}: key {key!r} sorts before {previous!r}")
        previous = key
        rows.append(row)
        records += 1
        checksum = (checksum + zlib.crc32(record)) % 2**64
if mode == "generated" and rows != list(range(records)):
    sys.exit("the rows are not 0..N-1 in order")
if mode == "sorted" and sorted(rows) != list(range(records)):
    sys.exit("the rows are not 0..N-1, each once")
print(f"{records} records, checksum {checksum:016x}")
