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
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from streams.fold import FOLD_BATCH, Fold, RoutedRecord
from streams.metrics import WorkerMetrics
from streams.sender import BatchSender
from streams.settings import Settings
from streams.store import TableStore, recover

log = logging.getLogger("seatledger.worker")

FOLD_WITHIN = 0.1  # seconds getmany waits for a first record
RESTART_DELAY = 1.0  # seconds before the fold restarts after an error


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

    # ---- running -------------------------------------------------------------------------------

    async def run_restarting(self) -> None:
        """Run until cancelled; after an error, start again from the last commit."""
        while True:
            try:
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("event=fold_restart error=%r", exc)
                self._forget_all()
                await asyncio.sleep(RESTART_DELAY)

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
                await self.consumer.stop()
        finally:
            self.sender.producer = None
            await producer.stop()

    @property
    def group(self) -> str:
        return f"{self.settings.worker_app_id}-fold"

    def _producer(self) -> AIOKafkaProducer:
        s = self.settings
        return AIOKafkaProducer(
            **s.kafka_client_kwargs(), enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024, client_id=f"{s.worker_id}-fold",
        )  # fmt: skip

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

    async def fold_and_commit(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """One batch: fold, flush, commit. On any failure nothing is committed and the error
        propagates (the runner restarts from the last commit)."""
        records = [RoutedRecord(tp.partition, m.offset, m.value) for tp, msgs in batches.items() for m in msgs]
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
            dropped = self.store.drop(lost)
            for p in lost:
                self.committed.pop(p, None)
            rec = await recover(self.store, now - self.store.owned, self._recovery_consumer)
            self.fold.reset_caches()
            self._gauges(rec.records, rec.seconds)
            log.info(
                "event=fold_assigned partitions=%s dropped_partitions=%s dropped_keys=%d "
                "recovered_partitions=%s recovered_records=%d recovery_seconds=%.3f",
                sorted(now), sorted(lost), dropped, rec.partitions, rec.records, rec.seconds,
            )  # fmt: skip

    def _forget_all(self) -> None:
        """After leaving the group on an error: nothing held is trusted any more."""
        self.store.drop(set(self.store.owned))
        self.fold.discard()
        self.fold.reset_caches()
        self.committed.clear()

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
        consumer = self.consumer
        if consumer is None:
            return
        try:
            tps = consumer.assignment()
        except Exception:
            return
        for tp in tps:
            hw = consumer.highwater(tp)
            if hw is not None:
                lag = max(0, hw - self.committed.get(tp.partition, 0))
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        self.update_state_size()
