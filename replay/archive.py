"""The Parquet archive of every accepted event: writer, compaction and company-month reads.

Layout (hive style, readable as one table by DuckDB)::

    <root>/month=2026-10/bucket=07/part-<topic>-p003-0000000042.parquet   events (ARCHIVE_SCHEMA)
    <root>/month=2026-10/bucket=07/compact-<uuid>.parquet                  compacted events
    <root>/rejected/month=2026-10/part-<topic>-p003-0000000042.parquet     rejected (REJECTED_SCHEMA)
    <root>/_manifest/<topic>/p003.json                                     position per Kafka partition

`month` is the UTC month of `occurred_at` (rejected rows: the UTC month they were archived);
`bucket` is `bucket_of(company_id)`, a stable CRC32 of the company id mod 16, two digits. One
company's month is then one directory per UTC month: a reader of a *local* month reads the UTC
months M-1..M+1 (a local month can straddle two UTC months) and filters by company id.

    read_parquet('<root>/month=*/bucket=*/*.parquet', hive_partitioning=true)

reads every event row. The first columns are exactly `replay.rows.ARROW_SCHEMA`; two sidecar
columns follow: `published_at_us` (the Kafka record timestamp: when the event reached the events
topic) and `archived_at_us` (when this archive made it durable). The dispute report uses them to
tell which events arrived after a month was billed. Readers deduplicate by `event_id` (a
publisher may send an event twice; the archive keeps what Kafka holds, exactly once per offset).

Exactly once per Kafka offset, across crashes, without Kafka transactions: each flush writes, per
Kafka partition, its Parquet files under a sequence number (`...-p<partition>-<seq>.parquet`, each
written to a temporary name, fsynced and renamed), then the partition's manifest (next offset and
seq, same tmp + rename), and only then commits the Kafka offset. The manifest is the truth: on
(re)assignment the writer deletes files of that partition with a seq above the manifest's (a crash
between data and manifest) and resumes at the manifest's offset, skipping anything below it; the
Kafka commit is only there for lag monitoring. One writer per Kafka partition at a time (the
consumer group `seatledger-archive` ensures it).

Compaction (`compact`) merges the committed small files of one directory into one file, keeping the
rows exactly: it writes the merged file under a temporary name, records a journal, renames the file
into place, deletes the inputs and then the journal; an interrupted compaction is rolled forward
(output in place) or back (not yet) by the next `compact` or writer start. Between the rename and
the deletes a reader may briefly see rows twice, which the read-time dedup by `event_id` absorbs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from projections.calendar import Month, from_us
from replay.rows import ARROW_SCHEMA, COLUMNS, event_row
from schemas.control import parse_control
from schemas.decode import decode_message

BUCKETS = 16
CONSUMER_GROUP = "seatledger-archive"
MANIFEST_DIR = "_manifest"
REJECTED_DIR = "rejected"
MANIFEST_FORMAT = 1

SIDECAR_FIELDS = [("published_at_us", pa.int64()), ("archived_at_us", pa.int64())]
ARCHIVE_SCHEMA = pa.schema([*ARROW_SCHEMA, *(pa.field(n, t) for n, t in SIDECAR_FIELDS)])
REJECTED_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("index", pa.int32()),  # element of a packed message
        ("reason", pa.string()),
        ("raw", pa.string()),  # the element as JSON, or the message text when it was not JSON
        ("published_at_us", pa.int64()),
        ("archived_at_us", pa.int64()),
    ]
)
_PART = re.compile(r"^part-(?P<topic>.+)-p(?P<partition>\d+)-(?P<seq>\d+)\.parquet$")


def bucket_of(company_id: str) -> int:
    """Stable bucket of a company (CRC32 of its UTF-8 id, mod 16): same on every machine and run."""
    return zlib.crc32(company_id.encode()) % BUCKETS


_DAY_US = 86_400_000_000
_MONTH_OF_DAY: dict[int, str] = {}


def utc_month(us: int) -> str:
    """`YYYY-MM` of an instant in UTC (cached per day: the archive asks once per event)."""
    day = us // _DAY_US
    m = _MONTH_OF_DAY.get(day)
    if m is None:
        m = _MONTH_OF_DAY[day] = str(Month.of(from_us(day * _DAY_US).date()))
    return m


def event_dir(root: Path, month: str, bucket: int) -> Path:
    return Path(root) / f"month={month}" / f"bucket={bucket:02d}"


def archive_glob(root: Path | str) -> str:
    """The glob DuckDB reads every event row with (`hive_partitioning=true`)."""
    return str(Path(root) / "month=*" / "bucket=*" / "*.parquet")


def rejected_glob(root: Path | str) -> str:
    return str(Path(root) / REJECTED_DIR / "month=*" / "*.parquet")


def now_us() -> int:
    return time.time_ns() // 1000


# Durable files --------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_parquet_durably(table: pa.Table, path: Path) -> None:
    """Write to `<name>.tmp`, fsync, rename into place (readers glob `*.parquet`, never see a tmp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    _fsync_file(tmp)
    os.replace(tmp, path)


def write_json_durably(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _leaf_dirs(root: Path) -> Iterator[Path]:
    """Every directory that holds archive files: month=*/bucket=* and rejected/month=*."""
    yield from sorted(root.glob("month=*/bucket=*"))
    yield from sorted((root / REJECTED_DIR).glob("month=*"))


# The writer ------------------------------------------------------------------------------------


@dataclass
class Manifest:
    topic: str
    partition: int
    next_offset: int = 0  # every message below this offset is durable in the archive
    seq: int = 0  # files with a higher seq are uncommitted leftovers of a crash
    events: int = 0
    rejected: int = 0
    controls: int = 0
    updated_at_us: int = 0

    def to_json(self) -> dict:
        return {"format": MANIFEST_FORMAT, **self.__dict__}

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def manifest_path(root: Path, topic: str, partition: int) -> Path:
    return Path(root) / MANIFEST_DIR / topic / f"p{partition:03d}.json"


def read_manifest(root: Path, topic: str, partition: int) -> Manifest | None:
    path = manifest_path(root, topic, partition)
    try:
        return Manifest.from_json(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return None


def committed_seqs(root: Path) -> dict[tuple[str, int], int]:
    """(topic, partition) -> highest committed seq, from every manifest under `root`."""
    out = {}
    for path in sorted((Path(root) / MANIFEST_DIR).glob("*/p*.json")):
        m = Manifest.from_json(orjson.loads(path.read_bytes()))
        out[(m.topic, m.partition)] = m.seq
    return out


@dataclass
class _Pending:
    rows: dict[tuple[str, int], list[tuple]] = field(default_factory=dict)  # (month, bucket) -> rows
    rejected: list[tuple] = field(default_factory=list)
    next_offset: int | None = None
    events: int = 0
    controls: int = 0

    def empty(self) -> bool:
        return self.next_offset is None


@dataclass(frozen=True)
class FlushResult:
    positions: dict[int, int]  # partition -> next offset, now durable
    events: int
    rejected: int
    files: list[Path]


class ArchiveWriter:
    """Buffers decoded messages per Kafka partition and makes them durable in `flush()`.

    No Kafka here: the consumer (streams/archive_consumer.py) feeds `add()` and commits the
    positions `flush()` returns. Call `open_partition()` when a partition is assigned and seek to
    the offset it returns.
    """

    def __init__(self, root: Path | str, topic: str, *, clock: Callable[[], int] = now_us):
        self.root = Path(root)
        self.topic = topic
        self.clock = clock
        self._manifests: dict[int, Manifest] = {}
        self._pending: dict[int, _Pending] = {}
        self.root.mkdir(parents=True, exist_ok=True)

    # -- partitions

    def open_partition(self, partition: int) -> int:
        """Recover the partition's durable state; returns the offset to resume at (0: from the start).

        Deletes the partition's files written after its last manifest (a crash between the data
        files and the manifest): those messages are consumed again from the manifest's offset.
        """
        with _compaction_lock(self.root, blocking=False) as locked:
            if locked:  # else a compaction runs and recovers for itself
                recover_compactions(self.root)
        m = read_manifest(self.root, self.topic, partition) or Manifest(self.topic, partition)
        removed = 0
        for d in _leaf_dirs(self.root):
            for f in d.iterdir():
                if f.name.endswith(".tmp") and f.name.startswith(f"part-{self.topic}-p{partition:03d}-"):
                    f.unlink()
                    continue
                info = _PART.match(f.name)
                if (
                    info
                    and info["topic"] == self.topic
                    and int(info["partition"]) == partition
                    and int(info["seq"]) > m.seq
                ):
                    f.unlink()
                    removed += 1
        if removed:
            for d in _leaf_dirs(self.root):
                _fsync_dir(d)
        self._manifests[partition] = m
        self._pending.pop(partition, None)
        return m.next_offset

    def close_partition(self, partition: int) -> None:
        """Forget a revoked partition (flush first: pending rows of it are dropped)."""
        self._manifests.pop(partition, None)
        self._pending.pop(partition, None)

    def position(self, partition: int) -> int:
        p = self._pending.get(partition)
        if p is not None and p.next_offset is not None:
            return p.next_offset
        return self._manifests[partition].next_offset

    @property
    def partitions(self) -> list[int]:
        return sorted(self._manifests)

    # -- messages

    def add(self, partition: int, offset: int, raw: bytes | None, published_at_us: int | None = None) -> bool:
        """Buffer one Kafka message; False when it is at or below the durable position (skipped)."""
        if partition not in self._manifests:
            raise KeyError(f"partition {partition} of {self.topic} is not open")
        if offset < self.position(partition):
            return False
        p = self._pending.setdefault(partition, _Pending())
        p.next_offset = offset + 1
        raw = raw or b""
        if parse_control(raw) is not None:  # a close marker: not an event, not a rejection
            p.controls += 1
            return True
        pub = published_at_us if published_at_us is not None else self.clock()
        good, bad = decode_message(raw)
        for ev in good:
            row = event_row(ev)
            key = (utc_month(row[2]), bucket_of(row[3]))
            p.rows.setdefault(key, []).append((*row, pub))
            p.events += 1
        for rej in bad:
            text = rej.raw.decode("utf-8", "replace") if isinstance(rej.raw, bytes | bytearray) else None
            if text is None:
                text = rej.raw if isinstance(rej.raw, str) else orjson.dumps(rej.raw, default=str).decode()
            p.rejected.append((self.topic, partition, offset, rej.index, rej.reason, text, pub))
        return True

    def pending_events(self) -> int:
        return sum(p.events + len(p.rejected) for p in self._pending.values())

    def pending_messages(self) -> bool:
        return any(not p.empty() for p in self._pending.values())

    # -- durability

    def flush(self) -> FlushResult:
        """Make everything buffered durable: data files, then each partition's manifest."""
        positions: dict[int, int] = {}
        files: list[Path] = []
        events = rejected = 0
        archived_at = self.clock()
        for partition in sorted(self._pending):
            p = self._pending[partition]
            if p.empty():
                continue
            m = self._manifests[partition]
            seq = m.seq + 1
            name = f"part-{self.topic}-p{partition:03d}-{seq:010d}.parquet"
            dirs = set()
            for (month, bucket), rows in sorted(p.rows.items()):
                path = event_dir(self.root, month, bucket) / name
                write_parquet_durably(_table([(*r, archived_at) for r in rows], ARCHIVE_SCHEMA), path)
                files.append(path)
                dirs.add(path.parent)
            if p.rejected:  # filed under the UTC month they were archived in
                path = self.root / REJECTED_DIR / f"month={utc_month(archived_at)}" / name
                write_parquet_durably(_table([(*r, archived_at) for r in p.rejected], REJECTED_SCHEMA), path)
                files.append(path)
                dirs.add(path.parent)
            for d in sorted(dirs | {d.parent for d in dirs} | {self.root}):
                _fsync_dir(d)  # new month=, bucket= and rejected directories must be durable too
            m = Manifest(
                self.topic,
                partition,
                next_offset=p.next_offset,
                seq=seq,
                events=m.events + p.events,
                rejected=m.rejected + len(p.rejected),
                controls=m.controls + p.controls,
                updated_at_us=archived_at,
            )
            write_json_durably(m.to_json(), manifest_path(self.root, self.topic, partition))
            self._manifests[partition] = m
            positions[partition] = m.next_offset
            events += p.events
            rejected += len(p.rejected)
        self._pending.clear()
        return FlushResult(positions, events, rejected, files)


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    cols = list(zip(*rows)) if rows else [[] for _ in schema]
    return pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cols, schema)], schema=schema)


# Compaction ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _compaction_lock(root: Path, blocking: bool) -> Iterator[bool]:
    path = Path(root) / MANIFEST_DIR / "compact.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def recover_compactions(root: Path) -> int:
    """Finish or undo compactions a crash interrupted (see the module docstring); returns how many.
    Call with the compaction lock held."""
    root = Path(root)
    journals = sorted((root / MANIFEST_DIR).glob("compact-*.json"))
    for j in journals:
        info = orjson.loads(j.read_bytes())
        d = root / info["dir"]
        out = d / info["output"]
        if out.exists():  # roll forward: the merged file is in place, the inputs must go
            for name in info["inputs"]:
                (d / name).unlink(missing_ok=True)
        else:  # roll back: the inputs are intact
            (d / (info["output"] + ".tmp")).unlink(missing_ok=True)
        if d.exists():
            _fsync_dir(d)
        j.unlink()
    if journals:
        _fsync_dir(root / MANIFEST_DIR)
    for d in _leaf_dirs(root):  # a merge that crashed before its journal: its output never counted
        for f in d.glob("compact-*.parquet.tmp"):
            f.unlink()
    return len(journals)


@dataclass(frozen=True)
class Compaction:
    dir: str
    inputs: int
    rows: int
    output: str


def _committed_files(d: Path, seqs: dict[tuple[str, int], int], max_bytes: int) -> list[Path]:
    out = []
    for f in sorted(d.glob("*.parquet")):
        if f.stat().st_size > max_bytes:
            continue
        if f.name.startswith("compact-"):
            out.append(f)
            continue
        info = _PART.match(f.name)
        if info and int(info["seq"]) <= seqs.get((info["topic"], int(info["partition"])), -1):
            out.append(f)
    return out


def compact(
    root: Path | str,
    *,
    min_files: int = 2,
    max_file_bytes: int = 64 << 20,
    blocking: bool = True,
    dirs: Iterable[Path] | None = None,
) -> list[Compaction]:
    """Merge the committed files under `max_file_bytes` of each archive directory holding at least
    `min_files` of them into one file, keeping every row. Returns what was merged ([] when another
    compaction holds the lock and `blocking` is False)."""
    root = Path(root)
    done: list[Compaction] = []
    with _compaction_lock(root, blocking) as locked:
        if not locked:
            return done
        recover_compactions(root)
        seqs = committed_seqs(root)
        for d in dirs if dirs is not None else list(_leaf_dirs(root)):
            inputs = _committed_files(d, seqs, max_file_bytes)
            if len(inputs) < min_files:
                continue
            done.append(_merge(root, d, inputs))
    return done


def _merge(root: Path, d: Path, inputs: list[Path]) -> Compaction:
    tables = [pq.read_table(f) for f in inputs]
    table = pa.concat_tables(tables, promote_options="none")
    if "company_id" in table.schema.names:
        table = table.sort_by([("company_id", "ascending"), ("occurred_at_us", "ascending"), ("event_id", "ascending")])
    name = f"compact-{uuid.uuid4().hex}.parquet"
    tmp = d / (name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    _fsync_file(tmp)
    journal = root / MANIFEST_DIR / f"compact-{name[8:-8]}.json"
    write_json_durably({"dir": str(d.relative_to(root)), "output": name, "inputs": [f.name for f in inputs]}, journal)
    os.replace(tmp, d / name)
    _fsync_dir(d)
    for f in inputs:
        f.unlink()
    _fsync_dir(d)
    journal.unlink()
    _fsync_dir(journal.parent)
    return Compaction(str(d.relative_to(root)), len(inputs), table.num_rows, name)


def small_file_dirs(root: Path | str, threshold: int) -> list[Path]:
    """Directories with at least `threshold` Parquet files (candidates for automatic compaction)."""
    return [d for d in _leaf_dirs(Path(root)) if sum(1 for _ in d.glob("*.parquet")) >= threshold]


# Reading ---------------------------------------------------------------------------------------

# The first of several rows with one event_id: earliest to reach Kafka, then a content order, so the
# choice does not depend on file names or compaction.
_DEDUP = (
    "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY published_at_us, archived_at_us, "
    "occurred_at_us, type, company_id, user_id, attrs, extras, source) = 1"
)
READ_COLUMNS = (*COLUMNS, "published_at_us", "archived_at_us")


def months_upto(root: Path | str, upto: Month | None) -> list[str]:
    """The UTC months present in the archive, up to and including `upto` (all when None)."""
    names = sorted(p.name[len("month=") :] for p in Path(root).glob("month=*") if p.is_dir())
    return [m for m in names if upto is None or m <= str(upto)]


def _files(root: Path, months: list[str], bucket: int | None) -> list[str]:
    pat = "*" if bucket is None else f"{bucket:02d}"
    out = []
    for m in months:
        out.extend(str(f) for f in sorted((Path(root) / f"month={m}").glob(f"bucket={pat}/*.parquet")))
    return out


def _query_rows(sql: str, params: list | None = None) -> list[dict]:
    import duckdb

    con = duckdb.connect()
    try:
        cur = con.execute(sql, params or [])
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_files(files: list[str]) -> str:
    return "[" + ", ".join(_sql_str(f) for f in files) + "]"


def rows_sql(
    root: Path | str,
    upto: Month | None = None,
    *,
    company_id: str | None = None,
    published_upto_us: int | None = None,
) -> str | None:
    """SQL (no parameters, so it can define a view) selecting `READ_COLUMNS` of the archived events
    in UTC months up to `upto`, deduplicated by event_id; None when there are none.

    With `company_id`: that company's events (from its bucket only) and the other companies'
    invites naming it as a guest's home company (they make its derived trial, R5). With
    `published_upto_us`: only events that had reached Kafka by then (what a close could know)."""
    root = Path(root)
    months = months_upto(root, upto)
    every = _files(root, months, None)
    if not every:
        return None
    cols = ", ".join(READ_COLUMNS)
    known = "" if published_upto_us is None else f" AND published_at_us <= {int(published_upto_us)}"
    if company_id is None:
        parts = [f"SELECT {cols} FROM read_parquet({_sql_files(every)}, hive_partitioning=false) WHERE true{known}"]
    else:
        own = _files(root, months, bucket_of(company_id))
        cid = _sql_str(company_id)
        parts = [
            f"SELECT {cols} FROM read_parquet({_sql_files(every)}, hive_partitioning=false) WHERE type = 'invite' "
            f"AND company_id <> {cid} AND json_extract_string(attrs, '$.guest_home_company_id') = {cid}{known}"
        ]
        if own:
            parts.insert(
                0,
                f"SELECT {cols} FROM read_parquet({_sql_files(own)}, hive_partitioning=false) WHERE company_id = {cid}{known}",
            )
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) {_DEDUP}"


def read_company_rows(root: Path | str, company_id: str, upto: Month | None = None) -> list[dict]:
    """A company's archived events in UTC months up to `upto` (inclusive) with the guest invites
    naming it (see `rows_sql`), deduplicated by event_id, ordered by (occurred_at, event_id)."""
    sql = rows_sql(root, upto, company_id=company_id)
    return _query_rows(sql + " ORDER BY occurred_at_us, event_id") if sql else []


def read_all_rows(root: Path | str, upto: Month | None = None) -> list[dict]:
    """Every archived event in UTC months up to `upto`, deduplicated by event_id, ordered by
    (company_id, occurred_at, event_id)."""
    sql = rows_sql(root, upto)
    return _query_rows(sql + " ORDER BY company_id, occurred_at_us, event_id") if sql else []


def read_rejected(root: Path | str) -> list[dict]:
    files = sorted(str(f) for f in (Path(root) / REJECTED_DIR).glob("month=*/*.parquet"))
    if not files:
        return []
    return _query_rows(f'SELECT * FROM read_parquet({_sql_files(files)}) ORDER BY topic, partition, "offset", "index"')
