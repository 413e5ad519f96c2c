"""The fold: routed messages -> facts in the tables -> month closes and amendments -> snapshots.

One `Fold` per worker, fed in batches by `streams.fold_runner.FoldRunner` (its own consumer of the
routed topic). The steps are explicit, in this order, per batch:

1. `fold_message` for each message: merge its facts into the tables (streams.state), count it,
   close a month when its last marker arrived, amend closed months a late event changed
   (streams.close); snapshot messages are handed to the producer as they are made (`emit`);
2. `flush`: wait until the broker acknowledged every snapshot message of the batch, then hand the
   batch's table writes, coalesced per key, to the producer as changelog records
   (streams.changelog) and wait for those too. Snapshots first: a crash between the two re-folds
   the batch and repeats its snapshots (the sink keeps one per version and digest), where the
   other order could record a close as done whose snapshots never reached the broker;
3. the commit of the batch's offsets, by the runner, only after `flush` returned.

A failed delivery raises out of `flush`: the runner then restarts from the last commit instead of
committing. The caches over the tables (zones, closed months, the closer's users per company) are
rebuilt from the tables by `reset_caches` after every change of the partitions owned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import orjson

from projections.collector import no_gc
from projections.prices import PriceBook
from projections.rulesets import RuleSet
from schemas.control import CLOSE_MONTH, CONTROL_KEY, ESTIMATE_MONTH, REJECTED, control_of
from streams import faults
from streams.changelog import ChangelogWrites
from streams.close import Closer, Emission, packed
from streams.metrics import WorkerMetrics
from streams.routing import dead_letter, home_partition
from streams.sender import BatchSender, Record
from streams.settings import Settings
from streams.state import Affected, FoldResult, FoldState
from streams.store import TableStore

log = logging.getLogger("seatledger.worker")

FOLD_BATCH = 500  # routed messages per fold batch (their changelog writes are coalesced)
FOLD_WITHIN = 0.1  # seconds a partial fold batch waits: fewer, larger changelog flushes
SEND_YIELD_EVERY = 2000  # snapshot messages handed to the producer between yields to the event loop


def homed(emissions: Iterable[Emission], n: int) -> Iterator[tuple[bytes, bytes, int]]:
    """Each emission with its partition of the snapshots topic: its own, or its key's home
    (looked up once per run of one key: a close emits a company's messages one after another)."""
    last, home = None, 0
    for k, v, p in emissions:
        if p is None:
            if k is not last:
                last, home = k, home_partition(k.decode(), n)
            yield k, v, home
        else:
            yield k, v, p % n


class RoutedRecord(NamedTuple):
    """One message of the routed topic, as the fold needs it."""

    partition: int
    offset: int
    value: bytes


class Fold:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        store: TableStore,
        sender: BatchSender,
        prices: PriceBook,
        ruleset: RuleSet,
    ):
        self.n = settings.partitions
        self.topic_routed = settings.topic_routed
        self.topic_snapshots = settings.topic_snapshots
        self.topic_dlq = settings.topic_dlq
        self.metrics = metrics
        self.store = store
        self.sender = sender
        self.writes = ChangelogWrites()
        self.stores = self.writes.stores(store)
        self._inflight: list[asyncio.Future] = []  # snapshot deliveries of the current batch
        self.state = FoldState(self.stores, self.n, settings.late_window_months)
        self.closer = Closer(self.state, prices, ruleset, blocks=settings.close_blocks)
        self.state.on_new_account = self.closer.account_seen

    # ---- lifecycle -----------------------------------------------------------------------------

    def reset_caches(self) -> None:
        """Forget everything derived from the tables: it is re-read from them on first need."""
        self.state.reset_caches()
        self.closer.reset()

    # ---- the steps -------------------------------------------------------------------------------

    async def fold_batch(self, records: Iterable[RoutedRecord]) -> None:
        for rec in records:
            await self.fold_message(rec)
        await self.flush()

    async def flush(self) -> int:
        """Make the batch durable: every snapshot delivered, then every changelog record; how
        many changelog records there were. Raises when the broker refused any of them."""
        inflight, self._inflight = self._inflight, []
        if inflight:
            await asyncio.gather(*inflight)
        n = len(self.writes)
        if n:
            futures = await self.sender.send(self.writes.drain())
            faults.reached("changelog_sent")
            await asyncio.gather(*futures)
        return n

    def discard(self) -> None:
        """Forget the unflushed writes and deliveries of an abandoned batch (the runner re-reads
        its input from the last commit, after recovering the tables)."""
        self.writes.pending.clear()
        self._inflight = []

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
        if res.past_window:
            await self._late_records(rec, res.past_window)
        for aff in res.affected.values():
            await self._amend(p, aff)

    async def emit(self, emissions: Iterable[Emission]) -> int:
        """Snapshot messages, keyed by company (partition_done: by partition number); a company's
        messages all go to its home partition of the snapshots topic, in order, consecutive ones
        packed into JSON arrays (streams.close.packed). Their deliveries are awaited by `flush`,
        before the batch's changelog records are sent. Returns how many messages."""
        sent = unsent = 0
        chunk: list[Record] = []
        for key, value, part, count in packed(homed(emissions, self.n)):
            chunk.append((self.topic_snapshots, part, key, value))
            sent += count
            unsent += count
            if unsent >= SEND_YIELD_EVERY:
                self._inflight += await self.sender.send(chunk)
                chunk, unsent = [], 0
        self._inflight += await self.sender.send(chunk)
        return sent

    # ---- control messages, closes, amendments ----------------------------------------------------

    async def _control(self, p: int, ctl: dict) -> None:
        """A routed control message. One that is malformed (the router checks only its shape) is
        logged and skipped: it must not stop the partition (a raise would re-fold it forever)."""
        try:
            await self._apply_control(p, ctl)
        except (KeyError, TypeError, ValueError) as exc:
            self.metrics.fold_errors.inc()
            log.error("event=control_error partition=%d error=%r control=%s", p, exc, orjson.dumps(ctl)[:500].decode())

    async def _apply_control(self, p: int, ctl: dict) -> None:
        kind = ctl.get(CONTROL_KEY)
        if kind == REJECTED:
            self.state.count_rejected(p, ctl)
        elif kind == CLOSE_MONTH:
            month = self.closer.on_marker(ctl, p)
            if month is not None:
                await self._close(p, month)
            self._update_close_gauges()
        elif kind == ESTIMATE_MONTH and self.closer.on_estimate_marker(ctl, p):
            t0 = time.monotonic()
            sent = await self.emit(self.closer.estimate(p, ctl))
            self.metrics.snapshots.labels("estimate").inc(sent)
            log.info(
                "event=estimate_emitted month=%s partition=%d estimate_id=%s messages=%d seconds=%.3f",
                ctl["month"], p, ctl["estimate_id"], sent, time.monotonic() - t0,
            )  # fmt: skip

    async def _close(self, p: int, month: str) -> None:
        faults.reached("close_started")
        m = self.metrics
        t0 = time.monotonic()
        before = self.closer.counts.copy()
        with no_gc():
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

    async def _late_records(self, rec: RoutedRecord, late: list[tuple[dict, str]]) -> None:
        """Events for months past their late window: to the DLQ, naming the month, for a dispute
        or `seatledger verify` to settle from the archive (their activity was not folded)."""
        window = self.state.late_window
        records: list[Record] = []
        for i, (item, month) in enumerate(late):
            error = (
                f"late_past_window: {month} was closed and its {window}-month late window has ended; "
                "not amended (settle with seatledger dispute / verify)"
            )
            dl = dead_letter(item, error, topic=self.topic_routed, partition=rec.partition, offset=rec.offset, index=i)
            key = item.get("company_id")
            records.append((self.topic_dlq, rec.partition % self.n, key.encode() if isinstance(key, str) else None,
                            orjson.dumps(dl)))  # fmt: skip
        self._inflight += await self.sender.send(records)
        self.metrics.late_past_window.inc(len(records))

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
