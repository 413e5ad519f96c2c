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

`line_windows` groups the batches into Arrow tables of `WINDOW_CHUNKS` chunks, read one window
ahead in a thread: DuckDB scans a table with several threads (a stream of batches with one), and
numpy and Arrow release the GIL, so the next window is split while DuckDB judges this one.
"""

from __future__ import annotations

import bisect
import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa

CHUNK_BYTES = 16 * 1024 * 1024
WINDOW_CHUNKS = 2  # chunks per window: about two windows of lines in flight, 64 MiB
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


def line_windows(files: list, located: LineFiles, advance: Callable[[int], None] | None = None) -> Iterator[pa.Table]:
    """`line_batches` grouped into tables of up to `WINDOW_CHUNKS` batches, the next one read ahead."""
    return _read_ahead(_grouped(line_batches(files, located, advance)))


def _grouped(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    window: list[pa.RecordBatch] = []
    for batch in batches:
        window.append(batch)
        if len(window) == WINDOW_CHUNKS:
            yield pa.Table.from_batches(window, SCHEMA)
            window = []
    if window:
        yield pa.Table.from_batches(window, SCHEMA)


_END = object()


def _read_ahead(items: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """`items`, produced one ahead in a thread; its exception is raised here, where it is consumed.
    A consumer that stops early (an error in DuckDB) leaves the thread blocked on a full queue: it
    is a daemon holding at most one window, gone with the process or the next get."""
    q: queue.Queue = queue.Queue(maxsize=1)

    def produce() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        q.put(_END)

    threading.Thread(target=produce, name="ndjson-read-ahead", daemon=True).start()
    while (item := q.get()) is not _END:
        if isinstance(item, BaseException):
            raise item
        yield item


__all__ = ["line_batches", "line_windows", "LineFiles", "SCHEMA", "CHUNK_BYTES"]
