"""The fold's tables: plain dicts in memory, made durable by compacted changelog topics.

The fold owns the routed partitions its consumer group gives it, so the tables must be recovered
and dropped by the same code that knows which partitions it owns, in step with its commits:
- every key belongs to one routed partition: its company's home partition (the `closes` and
  `stats` keys name the partition instead), and its changelog records go to that partition of the
  table's changelog topic;
- on assignment, a partition's keys are read back from the changelogs to their end
  (`recover`), before any of its input is folded;
- on losing a partition, its keys are dropped (`drop`), so nothing is ever decided or emitted for
  a partition this worker does not own.

Faust's tables did this on Faust's consumer and lost input at the edges (recovery clearing
prefetched messages, acknowledgements in `finally`, stale keys after a rebalance): see
docs/streaming.md, "Exactly once". The changelog topics keep Faust's names and record format
(JSON key and value; a None value deletes), so state written by earlier versions reads back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.local_state import LocalState
from streams.migrations import migrate
from streams.routing import home_partition
from streams.state import SEP, TABLES

log = logging.getLogger("seatledger.worker")

RECOVERY_FETCH = 5000  # changelog records per getmany while recovering
PARTITION_KEYED = ("closes", "stats")  # tables whose key names the partition, not the company


@dataclass
class Recovery:
    """What one recovery read: changelog records applied, keys now held, seconds taken."""

    partitions: list[int]
    records: int = 0
    seconds: float = 0.0
    from_snapshots: int = 0  # keys read from local snapshots instead of the changelogs
    oldest_snapshot: float | None = None  # the oldest snapshot's time of writing (Unix seconds)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)  # (table, partition) -> offset read to


class TableStore:
    """The worker's tables (name -> key -> JSON value) for the partitions it owns."""

    def __init__(self, app_id: str, partitions: int):
        self.app_id = app_id
        self.n = partitions
        self.raw: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        self.owned: set[int] = set()
        # (table, partition) -> the changelog offset the recovery read to; with this worker's own
        # acknowledged writes since (BatchSender.next_offsets), the prefix its keys stand for
        self.recovered_to: dict[tuple[str, int], int] = {}

    def changelog(self, table: str) -> str:
        """The table's changelog topic (Faust's naming: `<app_id>-<table>-changelog`)."""
        return f"{self.app_id}-{table}-changelog"

    def changelogs(self) -> list[str]:
        return [self.changelog(t) for t in TABLES]

    def partition_of(self, table: str, key: str) -> int:
        """The routed partition a key belongs to."""
        if table == "stats":
            return int(key)
        if table == "closes":
            return int(key.split(SEP)[1])
        return home_partition(key.split(SEP, 1)[0], self.n)

    def partition_tables(self, partitions: Iterable[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """The keys of `partitions`, per partition and table (one pass over the tables)."""
        wanted = set(partitions)
        out: dict[int, dict[str, dict[str, Any]]] = {p: {t: {} for t in self.raw} for p in wanted}
        homes: dict[str, int] = {}  # company -> home partition: one hash per company, not per key
        for table, data in self.raw.items():
            if table in PARTITION_KEYED:
                for k, v in data.items():
                    p = self.partition_of(table, k)
                    if p in wanted:
                        out[p][table][k] = v
                continue
            for k, v in data.items():
                cid = k.partition(SEP)[0]
                home = homes.get(cid)
                if home is None:
                    home = homes[cid] = home_partition(cid, self.n)
                if home in wanted:
                    out[home][table][k] = v
        return out

    def clear(self) -> None:
        """Forget every key and partition (after an error nothing held is trusted)."""
        for data in self.raw.values():
            data.clear()
        self.owned.clear()
        self.recovered_to.clear()

    def load(self, tables: dict[str, dict[str, Any]]) -> None:
        """Keys read from a local snapshot (streams.local_state), before the changelog's tail."""
        for table, data in tables.items():
            self.raw[table].update(data)

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget every key of `partitions`; how many were dropped."""
        gone = set(partitions)
        if not gone:
            return 0
        dropped = 0
        for tables in self.partition_tables(gone).values():
            for table, doomed in tables.items():
                data = self.raw[table]
                for k in doomed:
                    del data[k]
                dropped += len(doomed)
        self.owned -= gone
        self.recovered_to = {k: v for k, v in self.recovered_to.items() if k[1] not in gone}
        return dropped

    def apply(self, table: str, key: bytes | None, value: bytes | None) -> None:
        """One changelog record: the key's value (as today's contract allows it: streams.migrations),
        or its deletion (a tombstone)."""
        if key is None:
            return
        k = orjson.loads(key)
        if value is None:
            self.raw[table].pop(k, None)
        else:
            self.raw[table][k] = migrate(table, k, orjson.loads(value))

    def sizes(self) -> dict[str, int]:
        return {t: len(d) for t, d in self.raw.items()}


async def recover(
    store: TableStore,
    partitions: Iterable[int],
    consumer: Callable[[], AIOKafkaConsumer],
    local: LocalState | None = None,
    progress: Callable[[int], None] | None = None,
) -> Recovery:
    """Read the changelogs of `partitions` to their current end into the store: from a local
    snapshot's offsets when `local` has a usable one (streams.local_state), else from the start.

    `consumer` makes an unstarted consumer with no group (manual assignment, nothing committed);
    `progress` is told how many changelog records are still to read (at most) as it goes.
    The end is taken once, at the start: the previous owner flushed and committed before giving
    the partitions up (the group protocol runs every revocation before any assignment), and a dead
    owner writes nothing more.
    """
    parts = sorted(set(partitions))
    rec = Recovery(parts)
    if not parts:
        return rec
    t0 = time.monotonic()
    c = consumer()
    await c.start()
    try:
        await _read_to_end(c, store, parts, local, rec, progress)
    finally:
        await c.stop()
        if progress is not None:
            progress(0)
    store.owned |= set(parts)
    store.recovered_to.update(rec.ends)
    rec.seconds = time.monotonic() - t0
    return rec


async def _read_to_end(
    c: AIOKafkaConsumer,
    store: TableStore,
    parts: list[int],
    local: LocalState | None,
    rec: Recovery,
    progress: Callable[[int], None] | None,
) -> None:
    """On the started consumer `c` (its assignment replaced by these changelog partitions): load
    the usable snapshots of `parts`, then apply each changelog from there (or its start) up to the
    end it had when this began; what was read goes into `rec`."""
    tps = {TopicPartition(store.changelog(t), p): t for t in TABLES for p in parts}
    c.assign(list(tps))
    ends = await c.end_offsets(list(tps))
    starts = await _snapshot_starts(store, parts, ends, tps, local, rec)
    for tp, offset in starts.items():
        c.seek(tp, offset)
    from_start = [tp for tp in tps if tp not in starts]
    if from_start:
        await c.seek_to_beginning(*from_start)  # one offset reset for all (each costs a fetch round)
    todo = {tp for tp, end in ends.items() if end > starts.get(tp, 0)}
    remaining = sum(ends[tp] - starts.get(tp, 0) for tp in todo)  # an upper bound (compaction)
    while todo:
        if progress is not None:
            progress(max(0, remaining - rec.records))
        batches = await c.getmany(*todo, timeout_ms=500, max_records=RECOVERY_FETCH)
        for tp, msgs in batches.items():
            table = tps[tp]
            for m in msgs:
                if m.offset < ends[tp]:
                    store.apply(table, m.key, m.value)
                    rec.records += 1
        todo = {tp for tp in todo if await c.position(tp) < ends[tp]}
    rec.ends = {(tps[tp], tp.partition): end for tp, end in ends.items()}


async def _snapshot_starts(
    store: TableStore,
    parts: list[int],
    ends: dict[TopicPartition, int],
    tps: dict[TopicPartition, str],
    local: LocalState | None,
    rec: Recovery,
) -> dict[TopicPartition, int]:
    """Load the usable local snapshots of `parts` into the store; where each changelog's replay starts."""
    starts: dict[TopicPartition, int] = {}
    if local is None:
        return starts
    for p in parts:
        mine = {tps[tp]: end for tp, end in ends.items() if tp.partition == p}
        snap = await asyncio.to_thread(local.load, p, mine)  # a large file: off the event loop
        if snap is None:
            continue
        store.load(snap.tables)
        rec.from_snapshots += snap.keys()
        rec.oldest_snapshot = min(rec.oldest_snapshot or snap.written_at, snap.written_at)
        for t, off in snap.offsets.items():
            starts[TopicPartition(store.changelog(t), p)] = off
    return starts


def written_to(store: TableStore, partition: int, acknowledged: dict[tuple[str, int], int]) -> dict[str, int] | None:
    """The changelog offsets the store's keys of `partition` stand for: where its recovery read to,
    or after this worker's last acknowledged write there (`acknowledged`: BatchSender.next_offsets).
    Never the changelog's current end: once the partition moves, the end includes the new owner's
    writes, which these keys lack. None when the partition was not recovered here."""
    out = {}
    for t in TABLES:
        base = store.recovered_to.get((t, partition))
        if base is None:
            return None
        out[t] = max(base, acknowledged.get((store.changelog(t), partition), 0))
    return out


async def save_snapshots(
    store: TableStore, partitions: Iterable[int], acknowledged: dict[tuple[str, int], int], local: LocalState
) -> tuple[int, int]:
    """Snapshot the store's keys of `partitions` (held, and every write of them acknowledged by
    the broker: a batch boundary); (keys, bytes) written."""
    offsets: dict[int, dict[str, int]] = {}
    for p in set(partitions) & store.owned:
        o = written_to(store, p, acknowledged)
        if o is not None:
            offsets[p] = o
    parts = list(offsets)
    keys = size = 0
    # off the event loop (heartbeats go on); the lock held by the caller keeps the fold out
    by_partition = await asyncio.to_thread(store.partition_tables, parts)
    for p, tables in by_partition.items():
        size += await asyncio.to_thread(local.save, p, offsets[p], tables)
        keys += sum(len(d) for d in tables.values())
    return keys, size


async def refresh_standbys(
    app_id: str, n: int, partitions: Iterable[int], consumer: Callable[[], AIOKafkaConsumer], local: LocalState
) -> tuple[int, int]:
    """Bring the snapshots of partitions this worker does not own up to their changelogs' end,
    one partition at a time (a warm standby on disk: a takeover then reads only what was written
    since), all through one consumer; (partitions refreshed, changelog records read). A snapshot
    with nothing new is rewritten only once it is a quarter of the way to its maximum age (to keep
    it usable)."""
    parts = sorted(set(partitions))
    refreshed = records = 0
    if not parts:
        return refreshed, records
    c = consumer()  # one for all the partitions: each read replaces its assignment
    await c.start()
    try:
        for p in parts:
            scratch = TableStore(app_id, n)
            rec = Recovery([p])
            await _read_to_end(c, scratch, [p], local, rec, None)
            fresh = rec.oldest_snapshot is not None and time.time() - rec.oldest_snapshot < local.max_age / 4
            if rec.records == 0 and fresh:
                continue
            ends = {t: end for (t, q), end in rec.ends.items() if q == p}
            await asyncio.to_thread(local.save, p, ends, scratch.raw)
            refreshed += 1
            records += rec.records
    finally:
        await c.stop()
    return refreshed, records
