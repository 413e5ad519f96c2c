"""Where the archive keeps things: partitioning, file names and the per-partition manifests.

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
tell which events arrived after a month was billed. Readers deduplicate by (`company_id`, `event_id`) (a
publisher may send an event twice; the archive keeps what Kafka holds, exactly once per offset).

A manifest records, per Kafka partition, the next offset and the last committed file sequence
number: it is the truth the writer recovers from (see `replay.archive.writer`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from projections.calendar import Month, from_us
from replay.rows import ARROW_SCHEMA

BUCKETS = 16
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
PART_NAME = re.compile(r"^part-(?P<topic>.+)-p(?P<partition>\d+)-(?P<seq>\d+)\.parquet$")


def part_name(topic: str, partition: int, seq: int) -> str:
    """The file name of one flush of a Kafka partition (matches `PART_NAME`)."""
    return f"part-{topic}-p{partition:03d}-{seq:010d}.parquet"


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


def rejected_dir(root: Path, month: str) -> Path:
    return Path(root) / REJECTED_DIR / f"month={month}"


def archive_glob(root: Path | str) -> str:
    """The glob DuckDB reads every event row with (`hive_partitioning=true`)."""
    return str(Path(root) / "month=*" / "bucket=*" / "*.parquet")


def rejected_glob(root: Path | str) -> str:
    return str(Path(root) / REJECTED_DIR / "month=*" / "*.parquet")


def leaf_dirs(root: Path) -> Iterator[Path]:
    """Every directory that holds archive files: month=*/bucket=* and rejected/month=*."""
    yield from sorted(root.glob("month=*/bucket=*"))
    yield from sorted((root / REJECTED_DIR).glob("month=*"))


# Manifests -------------------------------------------------------------------------------------


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
