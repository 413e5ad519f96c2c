"""`seatledger archive`: the events topic into the Parquet archive (replay/archive/), until SIGTERM.

Its own consumer group (`seatledger-archive`), so it reads every message whatever the worker does.
Order of durability per flush: Parquet files, then the partition manifests, then the Kafka offset
commit. On assignment each partition resumes at its manifest's offset (the manifest, not Kafka's
committed offset, is the truth: see replay/archive/writer.py), so a kill -9 at any point neither loses
nor duplicates a message.

A flush happens every `flush_seconds`, or when `flush_events` events are buffered, on revocation
and on shutdown. After a flush, directories holding `compact_threshold` or more files are compacted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from replay.archive.compaction import compact, small_file_dirs
from replay.archive.writer import CONSUMER_GROUP, ArchiveWriter
from streams.settings import Settings

log = logging.getLogger("seatledger.archive")


@dataclass
class ArchiveStats:
    messages: int = 0
    skipped: int = 0  # at or below the durable position (redelivered after a restart)
    events: int = 0
    rejected: int = 0
    flushes: int = 0
    compactions: int = 0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, run: ArchiveRun, consumer: AIOKafkaConsumer):
        self.run = run
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked):
        await self.run.flush()
        for tp in revoked:
            self.run.writer.close_partition(tp.partition)

    async def on_partitions_assigned(self, assigned):
        for tp in sorted(assigned, key=lambda t: t.partition):
            offset = self.run.writer.open_partition(tp.partition)
            self.consumer.seek(tp, offset)
            log.info("archive: %s[%d] resumes at offset %d", tp.topic, tp.partition, offset)


class ArchiveRun:
    def __init__(
        self,
        settings: Settings,
        *,
        flush_seconds: float = 2.0,
        flush_events: int = 50_000,
        compact_threshold: int = 64,
        group_id: str = CONSUMER_GROUP,
    ):
        self.settings = settings
        self.topic = settings.topic_events
        self.writer = ArchiveWriter(settings.archive_dir, self.topic)
        self.flush_seconds = flush_seconds
        self.flush_events = flush_events
        self.compact_threshold = compact_threshold
        self.group_id = group_id
        self.stats = ArchiveStats()
        self.consumer: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def flush(self) -> None:
        if not self.writer.pending_messages():
            return
        result = await asyncio.to_thread(self.writer.flush)
        self.stats.flushes += 1
        self.stats.events += result.events
        self.stats.rejected += result.rejected
        if result.positions and self.consumer is not None:
            offsets = {TopicPartition(self.topic, p): OffsetAndMetadata(o, "") for p, o in result.positions.items()}
            try:
                await self.consumer.commit(offsets)
            except Exception as exc:
                log.warning("archive: offset commit failed (data is durable, manifest decides): %s", exc)
        if self.compact_threshold:
            dirs = await asyncio.to_thread(small_file_dirs, self.writer.root, self.compact_threshold)
            if dirs:
                done = await asyncio.to_thread(compact, self.writer.root, blocking=False, dirs=dirs)
                self.stats.compactions += len(done)

    async def run(self) -> ArchiveStats:
        self.consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_kwargs(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5_000,
        )
        await self.consumer.start()
        try:
            self.consumer.subscribe([self.topic], listener=_Rebalance(self, self.consumer))
            loop = asyncio.get_running_loop()
            last_flush = loop.time()
            while not self._stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=200, max_records=5_000)
                for tp, records in batch.items():
                    if tp.partition not in self.writer.partitions:
                        continue  # revoked meanwhile
                    for rec in records:
                        self.stats.messages += 1
                        ts = rec.timestamp * 1000 if rec.timestamp is not None and rec.timestamp >= 0 else None
                        if not self.writer.add(tp.partition, rec.offset, rec.value, ts):
                            self.stats.skipped += 1
                now = loop.time()
                if self.writer.pending_events() >= self.flush_events or now - last_flush >= self.flush_seconds:
                    await self.flush()
                    last_flush = now
            await self.flush()
        finally:
            await self.consumer.stop()
        return self.stats


async def run_archive(settings: Settings, **kwargs) -> ArchiveStats:
    """Run until SIGTERM or SIGINT, then flush and return the counts."""
    run = ArchiveRun(settings, **kwargs)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, run.stop)
    try:
        return await run.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
