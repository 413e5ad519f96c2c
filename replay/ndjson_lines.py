"""NDJSON files as Arrow batches of lines, for DuckDB: the bytes split at newlines without Python
work per line.

A file is read in chunks of `CHUNK_BYTES`; numpy finds the newlines of a chunk and the lines become
an Arrow string array over the chunk's own buffer (no copy). Lines are split at b"\\n" only, as
Python's file iteration does (a lone carriage return stays in its line), and each keeps its newline
(the last line of a file gets one). `pos` numbers the lines of every file in one sequence, so the
input order is known across files; `LineFiles.where(pos)` gives the file and the line number back.
A chunk that is not all valid UTF-8 is passed on as NULL lines, each carrying its bytes in `raw`
(DuckDB decodes the valid ones; the Python reader judges the others and reports the exact error);
valid chunks leave `raw` NULL.
"""

from __future__ import annotations

import bisect
import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa

CHUNK_BYTES = 32 * 1024 * 1024
SCHEMA = pa.schema([("pos", pa.int64()), ("line", pa.large_string()), ("raw", pa.large_binary())])


@dataclass(slots=True)
class LineFiles:
    """Where each file's lines start in the `pos` sequence (filled while the batches are read)."""

    names: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # pos of each file's first line

    def where(self, pos: int) -> tuple[str, int]:
        """(file name, 1-based line number) of the line at `pos`."""
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.names[i], pos - self.starts[i] + 1


def _batch(data: bytes, first_pos: int) -> pa.RecordBatch:
    """The complete lines of `data` (which ends with a newline) as one batch."""
    nl = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    n = len(nl)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = nl + 1
    binary = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    pos = pa.array(np.arange(first_pos, first_pos + n, dtype=np.int64))
    try:
        lines = binary.cast(pa.large_string())  # validates UTF-8
        raw = pa.nulls(n, pa.large_binary())
    except pa.ArrowInvalid:
        lines, raw = pa.nulls(n, pa.large_string()), binary
    return pa.record_batch([pos, lines, raw], schema=SCHEMA)


def _chunks(fp: IO[bytes]) -> Iterator[bytes]:
    """`fp`'s bytes in pieces of whole lines, each ending with a newline."""
    rest = b""
    while True:
        buf = fp.read(CHUNK_BYTES)
        if not buf:
            break
        data = rest + buf if rest else buf
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data if cut == len(data) else data[:cut]
    if rest:
        yield rest + b"\n"


def line_batches(
    files: list, located: LineFiles, advance: Callable[[int], None] | None = None
) -> Iterator[pa.RecordBatch]:
    """Every line of `files` (paths, or "-" for stdin) as batches of `SCHEMA`, in input order."""
    pos = 0
    for f in files:
        located.names.append("<stdin>" if f == "-" else str(f))
        located.starts.append(pos)
        with contextlib.ExitStack() as stack:  # closes the file, never stdin
            fp: IO[bytes] = sys.stdin.buffer if f == "-" else stack.enter_context(open(f, "rb"))
            for data in _chunks(fp):
                batch = _batch(data, pos)
                pos += batch.num_rows
                if advance is not None:
                    advance(len(data))
                yield batch


__all__ = ["line_batches", "LineFiles", "SCHEMA", "CHUNK_BYTES"]
