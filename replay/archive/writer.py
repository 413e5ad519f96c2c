"""The archive writer: buffered Kafka messages made durable, exactly once per Kafka offset.

Exactly once across crashes, without Kafka transactions: each flush writes, per Kafka partition,
its Parquet files under a sequence number (`...-p<partition>-<seq>.parquet`, each written to a
temporary name, fsynced and renamed), then the partition's manifest (next offset and seq, same
tmp + rename), and only then does the consumer commit the Kafka offset. The manifest is the truth:
on (re)assignment the writer deletes files of that partition with a seq above the manifest's (a
crash between data and manifest) and resumes at the manifest's offset, skipping anything below it;
the Kafka commit is only there for lag monitoring. One writer per Kafka partition at a time (the
consumer group `CONSUMER_GROUP` ensures it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from replay.archive.compaction import compaction_lock, recover_compactions
from replay.archive.durable import fsync_dir, write_json_durably, write_parquet_durably
from replay.archive.layout import (
    ARCHIVE_SCHEMA,
    PART_NAME,
    REJECTED_SCHEMA,
    Manifest,
    bucket_of,
    event_dir,
    leaf_dirs,
    manifest_path,
    part_name,
    read_manifest,
    rejected_dir,
    utc_month,
)
from replay.rows import element_row, rows_to_table
from schemas.control import parse_control
from schemas.decode import Rejection, accept, parse_message, unexpected
from schemas.fast import fast_accept

CONSUMER_GROUP = "seatledger-archive"
MAX_REJECTED_TEXT = 64 * 1024  # characters of a rejected element kept when it is not an event's JSON


def message_rows(raw: bytes) -> tuple[list[tuple], list[Rejection]]:
    """A message's accepted events as archive rows (`replay.rows.COLUMNS`) and its rejections.

    The contract's judgement (`schemas.decode`); an element whose row cannot be built is a
    rejection too, with the error as its reason: nothing raises, so one message cannot stop the
    archive consumer (or make it crash again on every restart)."""
    parsed = parse_message(raw)
    good, bad = accept(parsed.items, fast_accept)
    rows: list[tuple] = []
    for index, item, ev, _ in good:
        try:
            rows.append(element_row(item, ev))
        except Exception as exc:
            bad.append(Rejection(index, unexpected(exc), item))
    return rows, sorted(parsed.rejected + bad, key=lambda r: r.index)


def rejected_text(original: Any, message: bytes) -> str:
    """What the archive keeps of a rejected element: its JSON, else the message's text (capped)."""
    if isinstance(original, bytes | bytearray):
        return bytes(original[: MAX_REJECTED_TEXT * 4]).decode("utf-8", "replace")[:MAX_REJECTED_TEXT]
    if isinstance(original, str):
        return original[:MAX_REJECTED_TEXT]
    try:
        text = orjson.dumps(original).decode()
    except (TypeError, orjson.JSONEncodeError):  # nested too deep to encode: the message as sent
        text = message[: MAX_REJECTED_TEXT * 4].decode("utf-8", "replace")
    return text[:MAX_REJECTED_TEXT]


def now_us() -> int:
    return time.time_ns() // 1000


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
        with compaction_lock(self.root, blocking=False) as locked:
            if locked:  # else a compaction runs and recovers for itself
                recover_compactions(self.root)
        m = read_manifest(self.root, self.topic, partition) or Manifest(self.topic, partition)
        removed = 0
        for d in leaf_dirs(self.root):
            for f in d.iterdir():
                if f.name.endswith(".tmp") and f.name.startswith(f"part-{self.topic}-p{partition:03d}-"):
                    f.unlink()
                    continue
                info = PART_NAME.match(f.name)
                if (
                    info
                    and info["topic"] == self.topic
                    and int(info["partition"]) == partition
                    and int(info["seq"]) > m.seq
                ):
                    f.unlink()
                    removed += 1
        if removed:
            for d in leaf_dirs(self.root):
                fsync_dir(d)
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
        rows, bad = message_rows(raw)
        for row in rows:
            key = (utc_month(row[2]), bucket_of(row[3]))
            p.rows.setdefault(key, []).append((*row, pub))
        p.events += len(rows)
        for rej in bad:
            p.rejected.append((self.topic, partition, offset, rej.index, rej.reason, rejected_text(rej.raw, raw), pub))
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
            next_offset = p.next_offset
            if next_offset is None:  # p.empty(): nothing buffered for this partition
                continue
            m = self._manifests[partition]
            seq = m.seq + 1
            name = part_name(self.topic, partition, seq)
            dirs = set()
            for (month, bucket), rows in sorted(p.rows.items()):
                path = event_dir(self.root, month, bucket) / name
                write_parquet_durably(rows_to_table([(*r, archived_at) for r in rows], ARCHIVE_SCHEMA), path)
                files.append(path)
                dirs.add(path.parent)
            if p.rejected:  # filed under the UTC month they were archived in
                path = rejected_dir(self.root, utc_month(archived_at)) / name
                write_parquet_durably(rows_to_table([(*r, archived_at) for r in p.rejected], REJECTED_SCHEMA), path)
                files.append(path)
                dirs.add(path.parent)
            for d in sorted(dirs | {d.parent for d in dirs} | {self.root}):
                fsync_dir(d)  # new month=, bucket= and rejected directories must be durable too
            m = Manifest(
                self.topic,
                partition,
                next_offset=next_offset,
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
