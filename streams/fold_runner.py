"""The fold's consumer: routed partitions in, facts folded, offsets committed only once durable.

Its own aiokafka consumer of the routed topic (group `<app_id>-fold`, no auto-commit) and its own
idempotent producer for changelog and snapshot records, run as a task of the worker's Faust app,
like the router. The one invariant: an offset is committed only after every record the messages
before it caused was acknowledged by the broker. Per batch, under `lock`:

    fold every message -> flush (snapshots acknowledged, then changelog records) -> commit

- revoke (`on_partitions_revoked`, which aiokafka awaits before it re-joins): take the lock, so
  the batch in hand finishes, flushes and commits before the partitions are given up;
- assign (`on_partitions_assigned`, awaited before fetching starts): drop the keys of partitions
  no longer owned, recover the newly owned ones from their changelogs, reset the caches; fetching
  then starts at the committed offsets (aiokafka discards what it prefetched for the old
  assignment);
- a failed delivery or commit, or any error: the batch is not committed; the runner leaves the
  group, forgets all state and starts again (the facts' merge is idempotent, so re-folding what
  reached the changelog changes nothing);
- stop (SIGTERM) or kill -9: whatever was not committed is folded again by the next owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from streams.fold import FOLD_BATCH, Fold, RoutedRecord
from streams.kafka_task import batch_producer, run_restarting, set_lag
from streams.local_state import LocalState
from streams.metrics import WorkerMetrics
from streams.sender import BatchSender
from streams.settings import Settings
from streams.store import TableStore, recover, refresh_standbys, save_snapshots

log = logging.getLogger("seatledger.worker")

FOLD_WITHIN = 0.1  # seconds getmany waits for a first record


class FoldRunner(ConsumerRebalanceListener):
    def __init__(self, settings: Settings, metrics: WorkerMetrics, store: TableStore, fold: Fold, sender: BatchSender):
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.fold = fold
        self.sender = sender
        self.lock = asyncio.Lock()
        self.consumer: Any = None  # AIOKafkaConsumer once running
        self.committed: dict[int, int] = {}  # routed partition -> offset committed last
        self.local = local_state(settings)
        self.dirty = False  # a batch is between its first fold and its commit
        self.changed: set[int] = set()  # owned partitions folded since their last snapshot
        self.snapshot_due = time.monotonic() + settings.state_snapshot_seconds

    # ---- running -------------------------------------------------------------------------------

    async def run_restarting(self) -> None:
        """Run until cancelled; after an error, start again from the last commit."""
        await run_restarting(self.run, "fold_restart", self._forget_all)

    async def run(self) -> None:
        producer = self._producer()
        await producer.start()
        self.sender.producer = producer
        try:
            self.consumer = self._consumer()
            await self.consumer.start()
            try:
                log.info("event=fold_started group=%s topic=%s", self.group, self.settings.topic_routed)
                await self._loop()
            finally:
                await self._snapshot_on_stop()
                await self.consumer.stop()
        finally:
            self.sender.producer = None
            await producer.stop()

    @property
    def group(self) -> str:
        return f"{self.settings.worker_app_id}-fold"

    def _producer(self) -> AIOKafkaProducer:
        return batch_producer(self.settings, f"{self.settings.worker_id}-fold")

    def _consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        c = AIOKafkaConsumer(
            **s.kafka_client_kwargs(), group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20,
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.session_timeout_seconds * 1000 / 5),
            max_poll_interval_ms=int(s.max_poll_interval_seconds * 1000),
            client_id=f"{s.worker_id}-fold",
        )  # fmt: skip
        c.subscribe([s.topic_routed], listener=self)
        return c

    def _recovery_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            **s.kafka_client_kwargs(), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20, client_id=f"{s.worker_id}-recovery",
        )  # fmt: skip

    async def _loop(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=int(FOLD_WITHIN * 1000), max_records=FOLD_BATCH)
            if batches:
                async with self.lock:
                    await self.fold_and_commit(batches)
            if self.local is not None and time.monotonic() >= self.snapshot_due:
                async with self.lock:
                    await self.snapshot(self.changed, "periodic")
                self.snapshot_due = time.monotonic() + self.settings.state_snapshot_seconds

    async def fold_and_commit(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """One batch: fold, flush, commit. On any failure nothing is committed and the error
        propagates (the runner restarts from the last commit)."""
        records = [RoutedRecord(tp.partition, m.offset, m.value) for tp, msgs in batches.items() for m in msgs]
        self.dirty = True
        try:
            await self.fold.fold_batch(records)
        except BaseException:
            self.fold.discard()
            raise
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items() if msgs}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (this member was considered dead): its partitions are someone
            # else's now, and what this batch wrote is re-folded there. Start over.
            raise RuntimeError(f"commit refused: {exc!r}") from exc
        self.committed.update({tp.partition: off for tp, off in offsets.items()})
        self.changed |= {tp.partition for tp in offsets}
        self.dirty = False

    # ---- rebalances ------------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """The batch in hand (if any) finishes, flushes and commits before the partitions go."""
        async with self.lock:
            self.metrics.rebalances.inc()
            log.info("event=fold_revoked partitions=%s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.lock:
            now = {tp.partition for tp in assigned}
            lost = self.store.owned - now
            await self.snapshot(lost & self.changed, "revoked")
            dropped = self.store.drop(lost)
            for p in lost:
                self.committed.pop(p, None)
            rec = await recover(
                self.store, now - self.store.owned, self._recovery_consumer, self.local,
                self.metrics.recovery_remaining.set,
            )  # fmt: skip
            self.fold.reset_caches()
            self._gauges(rec.records, rec.seconds)
            self.metrics.snapshot_keys.inc(rec.from_snapshots)
            log.info(
                "event=fold_assigned partitions=%s dropped_partitions=%s dropped_keys=%d "
                "recovered_partitions=%s recovered_records=%d snapshot_keys=%d recovery_seconds=%.3f",
                sorted(now), sorted(lost), dropped, rec.partitions, rec.records, rec.from_snapshots, rec.seconds,
            )  # fmt: skip

    def _forget_all(self) -> None:
        """After leaving the group on an error: nothing held is trusted any more."""
        self.store.clear()  # also the keys of a recovery that failed half-way
        self.fold.discard()
        self.fold.reset_caches()
        self.committed.clear()
        self.changed.clear()
        self.dirty = False

    # ---- local snapshots (streams.local_state) -------------------------------------------------

    async def snapshot(self, partitions: set[int], kind: str) -> None:
        """Snapshot `partitions` (under the lock, at a batch boundary: every write acknowledged).
        A failure is logged and costs only a longer recovery later."""
        parts = set(partitions) & self.store.owned
        if self.local is None or self.dirty or not parts:
            return
        t0 = time.monotonic()
        try:
            keys, size = await save_snapshots(self.store, parts, self.sender.next_offsets, self.local)
        except Exception as exc:
            log.warning("event=state_snapshot_failed partitions=%s error=%r", sorted(parts), exc)
            return
        self.changed -= parts
        self.metrics.snapshots_written.labels(kind).inc(len(parts))
        log.info(
            "event=state_snapshot kind=%s partitions=%s keys=%d bytes=%d seconds=%.3f",
            kind, sorted(parts), keys, size, time.monotonic() - t0,
        )  # fmt: skip

    async def _snapshot_on_stop(self) -> None:
        """On a graceful stop, snapshot what changed, so the next start reads only the tail."""
        try:
            async with self.lock:
                await self.snapshot(self.changed, "stop")
        except BaseException as exc:  # a second cancellation: the snapshot is only an optimisation
            log.warning("event=state_snapshot_failed partitions=%s error=%r", sorted(self.changed), exc)

    async def refresh_standbys(self) -> None:
        """Bring the on-disk snapshots of the partitions this worker does not own up to date."""
        if self.local is None or self.settings.standby_refresh_seconds <= 0:
            return
        others = set(range(self.settings.partitions)) - self.store.owned
        t0 = time.monotonic()
        refreshed, records = await refresh_standbys(
            self.settings.worker_app_id, self.settings.partitions, others, self._recovery_consumer, self.local
        )
        if refreshed:
            self.metrics.snapshots_written.labels("standby").inc(refreshed)
            log.info(
                "event=standby_refreshed partitions=%d records=%d seconds=%.3f",
                refreshed, records, time.monotonic() - t0,
            )  # fmt: skip

    # ---- metrics ---------------------------------------------------------------------------------

    def _gauges(self, recovered: int, seconds: float) -> None:
        m = self.metrics
        m.owned_partitions.set(len(self.store.owned))
        m.recovered_records.inc(recovered)
        m.recovery_seconds.set(seconds)
        self.update_state_size()

    def update_state_size(self) -> None:
        for table, n in self.store.sizes().items():
            self.metrics.state_keys.labels(table).set(n)

    def update_lag(self) -> None:
        """The consumer-lag gauge of the routed partitions this worker owns."""
        if self.consumer is None:
            return
        set_lag(self.metrics.lag, self.consumer, lambda tp: self.committed.get(tp.partition, 0))
        self.update_state_size()


def local_state(settings: Settings) -> LocalState | None:
    """The snapshot files of this app id, or None when snapshots are off (STATE_SNAPSHOT_SECONDS=0)."""
    if settings.state_snapshot_seconds <= 0:
        return None
    return LocalState(
        settings.local_state_dir, settings.worker_app_id, settings.state_max_age_hours * 3600, settings.worker_id
    )
