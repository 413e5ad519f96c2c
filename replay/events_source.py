"""Read the batch path's input into DuckDB as validated event rows (`replay.rows` schema).

PATH is one of:
- an NDJSON file, or `-` for stdin: every line is validated with `schemas.decode.validate_event`
  (a line may hold a JSON array, a packed message: each element is judged on its own);
- a directory of NDJSON files (`*.ndjson`, `*.jsonl`, `*.json`), read in name order;
- a Parquet file, or a directory holding Parquet files (the archive, possibly hive-partitioned like
  `month=2026-10/bucket=03/part-*.parquet`; `rejected/` and `_manifest/` are skipped). Archive rows
  were validated when they were accepted; they are read with DuckDB's `read_parquet`, never
  through Python.

Invalid lines are reported as (file, line, reason) and skipped. The same event_id with different
content is a conflict: the first stays, the later one is dropped and reported. Identical
duplicates are dropped silently (an event delivered twice counts once).
For Parquet, conflicts are looked for among account and company events (few rows, the ones whose
first occurrence decides a record); activity duplicates cannot change a fact (bitmasks OR, the
earliest event by min), so the archive's activity rows are not compared.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import pyarrow as pa

from replay.facts_sql import RECORD_EVENTS, _sql_list
from replay.rows import ARROW_SCHEMA, COLUMNS, event_row, rows_to_table
from schemas.decode import EventRejected, validate_event

CHUNK_ROWS = 100_000
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".json")
BIG_INPUT_BYTES = 64 * 1024 * 1024
VIEW = "events"


class SourceError(Exception):
    """The input cannot be read at all (missing path, no files, unreadable Parquet)."""


@dataclass(frozen=True, slots=True)
class Invalid:
    file: str
    line: int
    reason: str
    index: int | None = None  # element of a packed array, when the line held one

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f"[{self.index}]" if self.index is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Conflict:
    event_id: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"event_id {self.event_id!r} at {where} differs from its first occurrence; kept the first"


@dataclass(slots=True)
class LoadedEvents:
    """The events now queryable in `con` as view `view` (rows schema)."""

    con: object
    view: str
    kind: str  # "ndjson" or "parquet"
    rows: int | None = None  # accepted rows (NDJSON; unknown for Parquet without a count)
    invalid: list[Invalid] = field(default_factory=list)
    invalid_count: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    conflict_count: int = 0
    duplicates: int = 0

    MAX_KEPT = 1000  # keep the first reports; always count them all

    def add_invalid(self, item: Invalid) -> None:
        self.invalid_count += 1
        if len(self.invalid) < self.MAX_KEPT:
            self.invalid.append(item)

    def add_conflict(self, item: Conflict) -> None:
        self.conflict_count += 1
        if len(self.conflicts) < self.MAX_KEPT:
            self.conflicts.append(item)


def _is_parquet(path: Path) -> bool:
    if path.is_file():
        if path.suffix == ".parquet":
            return True
        with path.open("rb") as fp:
            return fp.read(4) == b"PAR1"
    return False


def _parquet_files(root: Path) -> list[str]:
    skip = {"rejected", "_manifest"}
    out = []
    for p in root.rglob("*.parquet"):
        rel = p.relative_to(root).parts
        if any(part in skip or part.startswith(".") for part in rel[:-1]):
            continue
        out.append(str(p))
    return sorted(out)


def _ndjson_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix in NDJSON_SUFFIXES)


def classify(path: str) -> tuple[str, list]:
    """('ndjson', [files]) or ('parquet', [files]); raises SourceError."""
    if path == "-":
        return "ndjson", ["-"]
    p = Path(path)
    if not p.exists():
        raise SourceError(f"events path not found: {path}")
    if p.is_file():
        return ("parquet", [str(p)]) if _is_parquet(p) else ("ndjson", [p])
    pq = _parquet_files(p)
    nd = _ndjson_files(p)
    if pq and not nd:
        return "parquet", pq
    if nd and not pq:
        return "ndjson", nd
    if pq and nd:
        raise SourceError(f"{path} holds both Parquet and NDJSON files; point at one kind")
    raise SourceError(f"no event files (*.parquet, *.ndjson, *.jsonl, *.json) in {path}")


# NDJSON ----------------------------------------------------------------------------------------


def _progress(total_bytes: int, force: bool | None):
    show = force if force is not None else (sys.stderr.isatty() or total_bytes >= BIG_INPUT_BYTES)
    if not show:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _lines(files: list, progress, task) -> Iterator[tuple[str, int, bytes]]:
    for f in files:
        name = "<stdin>" if f == "-" else str(f)
        with contextlib.ExitStack() as stack:  # closes the file, never stdin
            fp: IO[bytes] = sys.stdin.buffer if f == "-" else stack.enter_context(open(f, "rb"))
            for n, line in enumerate(fp, 1):
                if progress is not None:
                    progress.advance(task, len(line))
                yield name, n, line


def load_ndjson(con, files: list, view: str = VIEW, progress: bool | None = None) -> LoadedEvents:
    out = LoadedEvents(con, view, "ndjson")
    seen: dict[str, tuple] = {}
    chunks: list[pa.Table] = []
    batch: list[tuple] = []
    total = sum(os.path.getsize(f) for f in files if f != "-")
    bar = _progress(total, progress)
    task = bar.add_task("reading events", total=total or None) if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        for name, n, line in _lines(files, bar, task):
            text = line.strip()
            if not text:
                continue
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                out.add_invalid(Invalid(name, n, f"not valid JSON: {exc}"))
                continue
            packed = isinstance(data, list)
            if packed and not data:
                out.add_invalid(Invalid(name, n, "empty JSON array: a packed message needs at least one event"))
                continue
            for i, item in enumerate(data if packed else [data]):
                try:
                    ev = validate_event(item)
                except EventRejected as exc:
                    out.add_invalid(Invalid(name, n, exc.reason, i if packed else None))
                    continue
                row = event_row(ev)
                first = seen.get(row[0])
                if first is not None:
                    if first != row[1:]:
                        out.add_conflict(Conflict(row[0], name, n))
                    else:
                        out.duplicates += 1
                    continue
                seen[row[0]] = row[1:]
                batch.append(row)
                if len(batch) >= CHUNK_ROWS:
                    chunks.append(rows_to_table(batch))
                    batch = []
    finally:
        if bar is not None:
            bar.stop()
    if batch or not chunks:
        chunks.append(rows_to_table(batch))
    table = pa.concat_tables(chunks)
    out.rows = table.num_rows
    con.register(view + "_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_arrow")
    return out


# Parquet ---------------------------------------------------------------------------------------


def load_parquet(con, files: list[str], view: str = VIEW, check_conflicts: bool = True) -> LoadedEvents:
    out = LoadedEvents(con, view, "parquet")
    cols = ", ".join(COLUMNS)
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} "
            f"FROM read_parquet({file_list}, hive_partitioning=true, union_by_name=true)"
        )
        con.sql(f"SELECT * FROM {view} LIMIT 0").fetchall()
    except Exception as exc:  # duckdb raises many kinds; the user needs the message
        raise SourceError(f"cannot read Parquet events: {exc}") from None
    if check_conflicts:
        rows = con.sql(
            f"""SELECT event_id, count(DISTINCT (type, occurred_at_us, company_id, user_id, attrs)) AS n
                FROM {view} WHERE type IN ({_sql_list(RECORD_EVENTS)})
                GROUP BY event_id HAVING n > 1 ORDER BY event_id"""
        ).fetchall()
        for eid, n in rows:
            for _ in range(n - 1):
                out.add_conflict(Conflict(eid, "<parquet archive>", None))
    return out


def load_events(
    con, path: str, view: str = VIEW, progress: bool | None = None, check_conflicts: bool = True
) -> LoadedEvents:
    """Make the events at `path` queryable in `con` as `view` (rows schema)."""
    kind, files = classify(path)
    if kind == "parquet":
        return load_parquet(con, files, view, check_conflicts)
    return load_ndjson(con, files, view, progress)


def report(loaded: LoadedEvents, err=None, limit: int = 20) -> None:
    """Invalid lines (each with its line number and reason, then a count) and conflicts, to stderr."""
    err = err or sys.stderr
    for item in loaded.invalid[:limit]:
        print(f"invalid: {item}", file=err)
    if loaded.invalid_count > limit:
        print(f"invalid: ... and {loaded.invalid_count - limit} more", file=err)
    if loaded.invalid_count:
        print(f"{loaded.invalid_count} invalid event(s) skipped", file=err)
    for conflict in loaded.conflicts[:5]:
        print(f"conflict: {conflict}", file=err)
    if loaded.conflict_count:
        print(
            f"{loaded.conflict_count} conflicting duplicate(s): same event_id, different content; kept the first",
            file=err,
        )


__all__ = [
    "load_events",
    "load_ndjson",
    "load_parquet",
    "classify",
    "report",
    "LoadedEvents",
    "Invalid",
    "Conflict",
    "SourceError",
    "ARROW_SCHEMA",
]
