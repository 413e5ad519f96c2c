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

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

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


class TableStore:
    """The worker's tables (name -> key -> JSON value) for the partitions it owns."""

    def __init__(self, app_id: str, partitions: int):
        self.app_id = app_id
        self.n = partitions
        self.raw: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        self.owned: set[int] = set()

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

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget every key of `partitions`; how many were dropped."""
        gone = set(partitions)
        if not gone:
            return 0
        dropped = 0
        for table, data in self.raw.items():
            doomed = [k for k in data if self.partition_of(table, k) in gone]
            for k in doomed:
                del data[k]
            dropped += len(doomed)
        self.owned -= gone
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


async def recover(store: TableStore, partitions: Iterable[int], consumer: Callable[[], AIOKafkaConsumer]) -> Recovery:
    """Read the changelogs of `partitions` from their start to their current end into the store.

    `consumer` makes an unstarted consumer with no group (manual assignment, nothing committed).
    The end is taken once, at the start: the previous owner flushed and committed before giving
    the partitions up (the group protocol runs every revocation before any assignment), and a dead
    owner writes nothing more.
    """
    parts = sorted(set(partitions))
    rec = Recovery(parts)
    if not parts:
        return rec
    t0 = time.monotonic()
    tps = {TopicPartition(store.changelog(t), p): t for t in TABLES for p in parts}
    c = consumer()
    await c.start()
    try:
        c.assign(list(tps))
        ends = await c.end_offsets(list(tps))
        await c.seek_to_beginning(*tps)
        todo = {tp for tp, end in ends.items() if end > 0}
        while todo:
            batches = await c.getmany(*todo, timeout_ms=500, max_records=RECOVERY_FETCH)
            for tp, msgs in batches.items():
                table = tps[tp]
                for m in msgs:
                    if m.offset < ends[tp]:
                        store.apply(table, m.key, m.value)
                        rec.records += 1
            todo = {tp for tp in todo if await c.position(tp) < ends[tp]}
    finally:
        await c.stop()
    store.owned |= set(parts)
    rec.seconds = time.monotonic() - t0
    return rec
