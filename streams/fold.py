"""The fold: routed messages -> facts in the tables -> month closes and amendments -> snapshots.

One `Fold` per worker, fed by the fold agent (Faust, routed topic, concurrency 1) in batches. The
steps are explicit, in this order, per batch:

1. `fold_message` for each message: merge its facts into the tables (streams.state), count it,
   close a month when its last marker arrived, amend closed months a late event changed
   (streams.close); snapshot messages are handed to the producer as they are made (`emit`);
2. `flush`: hand the batch's table writes, coalesced per key, to the producer as changelog records
   (streams.changelog);
3. the commit: today Faust's. `take_events` acknowledges the batch once the agent's body has
   returned, and Faust's periodic commit flushes the producer (streams.sender) before it commits.

The caches over the tables (zones, closed months, the closer's users per company) are rebuilt from
the tables by `reset_caches`, which `attach` runs when the agent starts (after recovery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import orjson
from faust.streams import Stream
from faust.transport.consumer import Consumer
from faust.types import TP, ConsumerT, StreamT, TableT

from projections.prices import PriceBook
from projections.rulesets import RuleSet
from schemas.control import CLOSE_MONTH, CONTROL_KEY, REJECTED, control_of
from streams.changelog import ChangelogWrites, store_dict
from streams.close import Closer, Emission
from streams.metrics import WorkerMetrics
from streams.routing import home_partition
from streams.sender import BatchSender, Record
from streams.settings import Settings
from streams.state import Affected, FoldResult, FoldState

log = logging.getLogger("seatledger.worker")

FOLD_BATCH = 500  # routed messages per fold batch (their changelog writes are coalesced)
FOLD_WITHIN = 0.1  # seconds a partial fold batch waits: fewer, larger changelog flushes
SEND_YIELD_EVERY = 2000  # snapshot sends between yields to the event loop during a close


class RoutedRecord(NamedTuple):
    """One message of the routed topic, as the fold needs it."""

    partition: int
    offset: int
    value: bytes


def committed_offset(consumer: ConsumerT, tp: TP) -> int | None:
    """The offset Faust's consumer last committed for `tp`. Faust keeps it in
    `Consumer._committed_offset` (private) and has no public reader; raises TypeError for a
    consumer that is not Faust's."""
    if not isinstance(consumer, Consumer):
        raise TypeError(f"not a Faust consumer: {type(consumer).__name__}")
    return consumer._committed_offset.get(tp)


class Fold:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        tables: Mapping[str, TableT],
        sender: BatchSender,
        prices: PriceBook,
        ruleset: RuleSet,
    ):
        self.n = settings.partitions
        self.topic_routed = settings.topic_routed
        self.topic_snapshots = settings.topic_snapshots
        self.metrics = metrics
        self.tables = tables
        self.sender = sender
        self.writes = ChangelogWrites()
        self.stores = self.writes.stores(tables)
        self.state = FoldState(self.stores, self.n)
        self.closer = Closer(self.state, prices, ruleset)
        self.state.on_new_account = self.closer.account_seen

    # ---- lifecycle -----------------------------------------------------------------------------

    def attach(self) -> None:
        """Point the stores at the tables' dicts (after recovery, before processing)."""
        for name, table in self.tables.items():
            getattr(self.stores, name).raw = store_dict(table)
        self.reset_caches()

    def reset_caches(self) -> None:
        """Forget everything derived from the tables: it is re-read from them on first need."""
        self.state.reset_caches()
        self.closer.reset()

    async def run(self, stream: StreamT) -> None:
        """The fold agent's body: batches of routed messages; the changelog records of a whole
        batch are coalesced per key and handed to the producer before the batch is acknowledged
        (take_events acks after the body ran)."""
        if not isinstance(stream, Stream):  # take_events is Stream's, not StreamT's
            raise TypeError(f"not a Faust stream: {type(stream).__name__}")
        self.attach()
        async for batch in stream.take_events(FOLD_BATCH, FOLD_WITHIN):
            await self.fold_batch([RoutedRecord(e.message.partition, e.message.offset, e.value) for e in batch])

    # ---- the steps -------------------------------------------------------------------------------

    async def fold_batch(self, records: Iterable[RoutedRecord]) -> None:
        for rec in records:
            await self.fold_message(rec)
        await self.flush()

    async def flush(self) -> int:
        """Hand the pending changelog records to the producer; how many there were."""
        n = len(self.writes)
        if n:
            await self.sender.send(self.writes.drain())
        return n

    async def fold_message(self, rec: RoutedRecord) -> None:
        p = rec.partition
        self.writes.partition = p
        try:
            data = orjson.loads(rec.value)
        except orjson.JSONDecodeError as exc:
            log.error("event=routed_not_json partition=%d offset=%d error=%r", p, rec.offset, exc)
            return
        ctl = control_of(data)
        if ctl is not None:
            await self._control(p, ctl)
            return
        res = self.state.fold_items(data if isinstance(data, list) else [data], p)
        self.state.count_folded(p, rec.offset, res)
        self._count(res)
        for aff in res.affected.values():
            await self._amend(p, aff)

    async def emit(self, emissions: Iterable[Emission]) -> int:
        """Snapshot messages, keyed by company (partition_done: by partition number); a company's
        messages all go to its home partition of the snapshots topic, in order. The table writes
        made while producing them are flushed after each chunk."""
        n = self.n
        sent = 0
        chunk: list[Record] = []
        for key, value, part in emissions:
            if part is None:
                part = home_partition(key.decode(), n)
            chunk.append((self.topic_snapshots, part % n, key, value))
            sent += 1
            if len(chunk) >= SEND_YIELD_EVERY:
                await self.sender.send(chunk)
                chunk = []
                await self.flush()
        await self.sender.send(chunk)
        await self.flush()
        return sent

    # ---- control messages, closes, amendments ----------------------------------------------------

    async def _control(self, p: int, ctl: dict) -> None:
        kind = ctl.get(CONTROL_KEY)
        if kind == REJECTED:
            self.state.count_rejected(p, ctl)
        elif kind == CLOSE_MONTH:
            month = self.closer.on_marker(ctl, p)
            if month is not None:
                await self._close(p, month)
            self._update_close_gauges()

    async def _close(self, p: int, month: str) -> None:
        m = self.metrics
        t0 = time.monotonic()
        before = self.closer.counts.copy()
        sent = await self.emit(self.closer.close(p, month))
        dt = time.monotonic() - t0
        d = self.closer.counts.since(before)
        m.close_seconds.set(dt)
        m.snapshots.labels("decision").inc(d.decisions)
        m.snapshots.labels("company_month").inc(d.company_months)
        m.snapshots.labels("partition_done").inc()
        log.info("event=close_emitted month=%s partition=%d messages=%d seconds=%.3f", month, p, sent, dt)

    async def _amend(self, p: int, aff: Affected) -> None:
        before = self.closer.counts.copy()
        await self.emit(self.closer.recompute(p, aff))
        d = self.closer.counts.since(before)
        self.metrics.amendments.inc(d.amendments)
        self.metrics.snapshots.labels("decision").inc(d.decisions + d.amendments)
        self.metrics.snapshots.labels("company_month").inc(d.company_months)

    # ---- metrics ---------------------------------------------------------------------------------

    def _count(self, res: FoldResult) -> None:
        m = self.metrics
        m.folded.inc(res.events)
        if res.changed:
            m.fact_changes.inc(res.changed)
        if res.duplicates:
            m.duplicates.inc(res.duplicates)
        if res.late:
            m.late.inc(res.late)
        if res.errors:
            m.fold_errors.inc(res.errors)

    def _update_close_gauges(self) -> None:
        for month, (seen, expected, closed) in self.closer.progress().items():
            self.metrics.close_markers.labels(month).set(seen)
            self.metrics.close_expected.labels(month).set(expected)
            self.metrics.partitions_closed.labels(month).set(closed)

    def update_lag(self, consumer: ConsumerT) -> None:
        """The consumer-lag gauge of the routed partitions assigned to Faust's consumer."""
        for tp in consumer.assignment():
            if tp.topic != self.topic_routed:
                continue
            try:
                hw = consumer.highwater(tp)
                committed = committed_offset(consumer, tp)
            except Exception:
                continue
            if hw is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - (committed or 0)))
