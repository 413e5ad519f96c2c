"""Read the batch path's input into DuckDB as validated event rows (`replay.rows` schema).

PATH is one of:
- an NDJSON file, or `-` for stdin: every line is judged as the worker judges a Kafka message
  (`schemas.decode`: the limits, then the contract; a line may hold a JSON array of one company's
  events, each element judged on its own);
- a directory of NDJSON files (`*.ndjson`, `*.jsonl`, `*.json`), read in name order;
- a Parquet file, or a directory holding Parquet files (the archive, possibly hive-partitioned like
  `month=2026-10/bucket=03/part-*.parquet`; `rejected/` and `_manifest/` are skipped). Archive rows
  were validated when they were accepted; they are read with DuckDB's `read_parquet`, never
  through Python, and rows an older version accepted but today's contract refuses are left out
  and reported (`replay.rows.contract_violation_sql`). Any other Parquet file of the rows' schema
  is read the same way, its rows checked as untrusted: the envelope in SQL, and the distinct
  contents of its account and company rows (the ones the rules parse) by the contract itself; a
  column of another type is a SourceError naming it.

Invalid lines are reported as (file, line, reason) and skipped. An event is identified by
(`company_id`, `event_id`), the contract's dedup key: the same id in two companies names two
events. The same key with different content is a conflict: the first stays, the later one is
dropped and reported. Identical duplicates are dropped silently (an event delivered twice counts
once). NDJSON is read by DuckDB: it splits the lines, accepts the plain activity events in bulk
(`replay.ndjson_sql`, the fast path's rules in SQL) and hands every other line to the Python
reader above; the rows and their dedup stay in DuckDB.
For Parquet, conflicts are looked for among account and company events (few rows, the ones whose
first occurrence decides a record); activity duplicates cannot change a fact (bitmasks OR, the
earliest event by min), so the archive's activity rows are not compared.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import orjson
import pyarrow as pa

from projections.text import escape_text
from replay.facts_sql import RECORD_EVENTS, _sql_list
from replay.ndjson_lines import SCHEMA as LINES_SCHEMA
from replay.ndjson_lines import LineFiles, line_windows
from replay.ndjson_sql import lane_sql
from replay.rows import ARROW_SCHEMA, COLUMNS, contract_violation_sql, element_row, rows_to_table
from schemas.decode import EventRejected, Rejection, accept, parse_message, unexpected, validate_event
from schemas.events import COMPANY_TYPES
from schemas.fast import fast_accept

# The contract's control characters (schemas.events.CONTROL_RANGES) as an RE2 class, for DuckDB.

CHUNK_ROWS = 100_000
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".json")
BIG_INPUT_BYTES = 64 * 1024 * 1024
VIEW = "events"


class SourceError(Exception):
    """The input cannot be read at all (missing path, no files, unreadable Parquet)."""


@dataclass(frozen=True, slots=True)
class Invalid:
    file: str
    line: int | None  # None: rows of a Parquet archive (the reason says how many)
    reason: str
    index: int | None = None  # element of a packed array, when the line held one

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        where += f"[{self.index}]" if self.index is not None else ""
        return f"{where}: {escape_text(self.reason)}"


@dataclass(frozen=True, slots=True)
class Conflict:
    company_id: str
    event_id: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"event_id {escape_text(self.event_id)!r} of company {self.company_id} at {where} differs from "
            "its first occurrence; kept the first"
        )


@dataclass(slots=True)
class LoadedEvents:
    """The events now queryable in `con` as view `view` (rows schema)."""

    con: object
    view: str
    kind: str  # "ndjson" or "parquet"
    rows: int | None = None  # accepted rows (NDJSON; unknown for Parquet without a count)
    lines: int = 0  # non-blank lines read (NDJSON)
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


def load_ndjson(con, files: list, view: str = VIEW, progress: bool | None = None) -> LoadedEvents:
    """DuckDB reads the lines (`replay.ndjson_lines`) and accepts the plain activity events in bulk
    (`replay.ndjson_sql`); every other line is judged in Python as before (`_line_rows`), then the
    events are deduplicated in SQL (`_dedup`). The rows stay in DuckDB, never in Python objects."""
    out = LoadedEvents(con, view, "ndjson")
    located = LineFiles()
    total = sum(os.path.getsize(f) for f in files if f != "-")
    bar = _progress(total, progress)
    advance = None
    if bar is not None:
        task = bar.add_task("reading events", total=total or None)
        advance = partial(bar.advance, task)
        bar.start()
    table = f"{view}_rows"
    judged = f"SELECT pos, 0::INTEGER AS idx, * EXCLUDE (pos) FROM ({lane_sql('_sl_lines')})"
    try:
        con.register("_sl_lines", LINES_SCHEMA.empty_table())
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {judged}")
        for window in line_windows(files, located, advance):
            con.register("_sl_lines", window)
            con.execute(f"INSERT INTO {table} {judged}")
    finally:
        con.unregister("_sl_lines")
        if bar is not None:
            bar.stop()
    (fast,) = con.execute(f"SELECT count(*) FROM {table} WHERE type IS NOT NULL").fetchone()
    out.lines = fast
    slow = _slow_rows(out, con, table, located)
    con.execute(f"DELETE FROM {table} WHERE type IS NULL")
    if slow.num_rows:
        con.register("_sl_slow", slow)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _sl_slow")
        con.unregister("_sl_slow")
    _dedup(out, con, table, located)
    (out.rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {', '.join(COLUMNS)} FROM {table}")
    return out


SLOW_SCHEMA = pa.schema([("pos", pa.int64()), ("idx", pa.int32()), *ARROW_SCHEMA])


def _slow_rows(out: LoadedEvents, con, table: str, located: LineFiles) -> pa.Table:
    """The lines the SQL lane left, judged in Python in input order: their events as rows (with
    `pos` and `idx`, the element of a packed line), their rejections reported in `out`."""
    rows: list[tuple] = []
    chunks: list[pa.Table] = []
    cur = con.execute(f"SELECT pos, line, raw FROM {table} WHERE type IS NULL ORDER BY pos")
    while batch := cur.fetchmany(CHUNK_ROWS):
        for pos, line, raw in batch:
            text = (raw if line is None else line.encode("utf-8", "surrogatepass")).strip()
            if not text:
                continue
            out.lines += 1
            name, n = located.where(pos)
            rows.extend((pos, index, *row) for index, row in _line_rows(out, name, n, text))
            if len(rows) >= CHUNK_ROWS:
                chunks.append(rows_to_table(rows, SLOW_SCHEMA))
                rows = []
    chunks.append(rows_to_table(rows, SLOW_SCHEMA))
    return pa.concat_tables(chunks)


def _line_rows(out: LoadedEvents, name: str, n: int, text: bytes) -> list[tuple[int, tuple]]:
    """One line's accepted events as (element index, row), its rejections reported in `out` (judged
    as the worker judges a message: schemas.decode). Nothing raises: a line or an element that makes
    anything fail is reported as invalid with the error."""
    try:
        parsed = parse_message(text)
        good, bad = accept(parsed.items, fast_accept)
    except Exception as exc:  # a bug: report the line, go on
        out.add_invalid(Invalid(name, n, unexpected(exc)))
        return []
    rows = []
    for index, item, ev, _ in good:
        try:
            rows.append((index, element_row(item, ev)))
        except Exception as exc:
            bad.append(Rejection(index, unexpected(exc), item))
    for r in sorted(parsed.rejected + bad, key=lambda r: r.index):
        out.add_invalid(Invalid(name, n, r.reason, r.index if parsed.packed and r.raw is not text else None))
    return rows


_CONTENT = ("type", "occurred_at_us", "user_id", "attrs", "extras", "source")


def _dedup(out: LoadedEvents, con, table: str, located: LineFiles) -> None:
    """Keep the first row of each (company_id, event_id) in input order (`pos`, `idx`); a later
    row with the same content is a duplicate (counted), with another content a conflict (reported).
    Keys seen more than once are found by a hash of the key (one 64-bit column to group), then
    settled exactly on their rows only."""
    content = ", ".join(_CONTENT)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sl_twice AS
        SELECT h FROM (SELECT hash(company_id, event_id) AS h FROM {table}) GROUP BY h HAVING count(*) > 1"""
    )
    if not con.execute("SELECT count(*) FROM _sl_twice").fetchone()[0]:
        con.execute("DROP TABLE _sl_twice")
        return  # every key once: nothing to settle (the common case, one pass)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sl_later AS
        SELECT pos, idx, company_id, event_id, same FROM (
            SELECT pos, idx, company_id, event_id,
                   row_number() OVER w AS nth,
                   ({content}) IS NOT DISTINCT FROM first_value(({content})) OVER w AS same
            FROM {table}
            WHERE hash(company_id, event_id) IN (SELECT h FROM _sl_twice)
            WINDOW w AS (PARTITION BY company_id, event_id ORDER BY pos, idx)
        ) WHERE nth > 1"""
    )
    (out.duplicates,) = con.execute("SELECT count(*) FROM _sl_later WHERE same").fetchone()
    for pos, cid, eid in con.execute(
        "SELECT pos, company_id, event_id FROM _sl_later WHERE NOT same ORDER BY pos, idx"
    ).fetchall():
        name, n = located.where(pos)
        out.add_conflict(Conflict(cid, eid, name, n))
    con.execute(f"DELETE FROM {table} t USING _sl_later l WHERE t.pos = l.pos AND t.idx = l.idx")
    con.execute("DROP TABLE _sl_later")
    con.execute("DROP TABLE _sl_twice")


def load_parquet(con, files: list[str], view: str = VIEW, check_conflicts: bool = True) -> LoadedEvents:
    out = LoadedEvents(con, view, "parquet")
    cols = ", ".join(COLUMNS)
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    source = f"read_parquet({file_list}, hive_partitioning=true, union_by_name=true)"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM {source}")
        columns = con.sql(f"DESCRIBE SELECT * FROM {view}").fetchall()
    except Exception as exc:  # duckdb raises many kinds; the user needs the message
        raise SourceError(f"cannot read Parquet events: {exc}") from None
    _check_column_types(columns)
    # Any Parquet file may be given, not only the archive: its rows are checked as untrusted.
    broken = contract_violation_sql(untrusted=True)
    found = con.sql(
        f"SELECT reason, count(*), min(event_id) FROM (SELECT event_id, {broken} AS reason FROM {view}) "
        "WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason"
    ).fetchall()
    bad_records = _invalid_records(con, view, broken)
    found += bad_records
    if found:  # rows today's contract refuses (archived under older rules, or written elsewhere): left out, reported
        for reason, n, example in found:
            out.invalid_count += n
            if len(out.invalid) < out.MAX_KEPT:
                out.invalid.append(
                    Invalid("<parquet archive>", None, f"{n} row(s): {reason} (e.g. event_id {example!r})")
                )
        keep = f"({broken}) IS NULL"
        if bad_records:  # their contents are in _sl_bad_records
            keep += (
                " AND NOT EXISTS (SELECT 1 FROM _sl_bad_records b WHERE b.type = e.type"
                " AND b.attrs IS NOT DISTINCT FROM e.attrs AND b.extras IS NOT DISTINCT FROM e.extras)"
            )
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM {source} e WHERE {keep}")
    (out.rows,) = con.sql(f"SELECT count(*) FROM {view}").fetchall()[0]
    if check_conflicts:
        rows = con.sql(
            f"""SELECT company_id, event_id, count(DISTINCT (type, occurred_at_us, user_id, attrs)) AS n
                FROM {view} WHERE type IN ({_sql_list(RECORD_EVENTS)})
                GROUP BY company_id, event_id HAVING n > 1 ORDER BY company_id, event_id"""
        ).fetchall()
        for cid, eid, n in rows:
            for _ in range(n - 1):
                out.add_conflict(Conflict(cid, eid, "<parquet archive>", None))
    return out


# The column types of event rows in DuckDB's words (replay.rows.ARROW_SCHEMA); NULL: a column
# a file leaves out or writes with no type (all values null).
_PARQUET_TYPES = {name: ("BIGINT" if name == "occurred_at_us" else "VARCHAR") for name in COLUMNS}


def _check_column_types(columns: list[tuple]) -> None:
    """A SourceError naming the first column of another type than the event rows' (a Parquet file
    written by another tool): compared with the rows' numbers and strings it would fail mid-run."""
    for name, kind, *_ in columns:
        want = _PARQUET_TYPES.get(name)
        if want is not None and kind not in (want, '"NULL"', "NULL"):
            raise SourceError(
                f"cannot read Parquet events: column {name} is {kind}; event rows have {want} "
                "(the archive's schema: replay.rows.ARROW_SCHEMA)"
            )


_RECORD_CONTENT = ("type", "attrs", "extras")


def _invalid_records(con, view: str, broken: str) -> list[tuple[str, int, str]]:
    """(reason, rows, an event_id) per account or company row content the contract refuses, the
    contents kept in temp table `_sl_bad_records` (type, attrs, extras) to leave their rows out.

    The rules parse these rows' attrs (`replay.facts_sql` records), so their values are judged by
    the contract itself (`schemas.decode.validate_event`), once per distinct content: a few per
    kind and company, not one per row. Activity rows' attrs are not read by the rules."""
    contents = con.sql(
        f"SELECT {', '.join(_RECORD_CONTENT)}, count(*), min(event_id) FROM {view} "
        f"WHERE type IN ({_sql_list(RECORD_EVENTS)}) AND (attrs IS NOT NULL OR extras IS NOT NULL) "
        f"AND ({broken}) IS NULL GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    bad, found = [], []
    for kind, attrs, extras, n, example in contents:
        reason = _record_problem(kind, attrs, extras)
        if reason is not None:
            bad.append((kind, attrs, extras))
            found.append((reason, n, example))
    con.execute("CREATE OR REPLACE TEMP TABLE _sl_bad_records (type VARCHAR, attrs VARCHAR, extras VARCHAR)")
    if bad:
        con.executemany("INSERT INTO _sl_bad_records VALUES (?, ?, ?)", bad)
    return found


def _record_problem(kind: str, attrs: str | None, extras: str | None) -> str | None:
    """Why the contract refuses an account or company event with these attrs and extras, or None
    (the envelope was checked in SQL: here a valid one of the kind)."""
    envelope = {"event_id": "x", "type": kind, "occurred_at": "2026-01-01T00:00:00Z", "company_id": "x"}
    if kind not in COMPANY_TYPES:
        envelope["user_id"] = "x"
    try:
        event = orjson.loads(extras or "{}") | orjson.loads(attrs or "{}") | envelope
    except orjson.JSONDecodeError as exc:  # valid for DuckDB, not for orjson (a number past a double's range)
        return f"attrs and extras must be JSON objects: {exc}"
    try:
        validate_event(event)
    except EventRejected as exc:
        return exc.reason
    except Exception as exc:  # a bug: the row is left out with the error, the run goes on
        return unexpected(exc)
    return None


def load_events(
    con, path: str, view: str = VIEW, progress: bool | None = None, check_conflicts: bool = True
) -> LoadedEvents:
    """Make the events at `path` queryable in `con` as `view` (rows schema).

    An input without a single valid event is a SourceError (exit 2): an empty file, or one whose
    every event was refused, is far more likely a wrong path or a broken export than a quiet
    month, and billing nothing from it would look like a clean run."""
    kind, files = classify(path)
    if kind == "parquet":
        loaded = load_parquet(con, files, view, check_conflicts)
    else:
        loaded = load_ndjson(con, files, view, progress)
    if not loaded.rows:
        if not loaded.invalid_count:
            raise SourceError(f"no events in {path}: the input is empty")
        raise SourceError(f"no valid event in {path}: {loaded.invalid_count} invalid, the first at {loaded.invalid[0]}")
    return loaded


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
            f"{loaded.conflict_count} conflicting duplicate(s): same company_id and event_id, different content; "
            "kept the first",
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
