"""Read a topic back from the beginning, for tests that check what was published (and whether the
archive holds all of it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from replay.archive.layout import read_manifest
from streams.settings import Settings


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def read_all(settings: Settings, topic: str, timeout: float = 30.0) -> list:
    """Every record now in `topic` (up to its end offsets at call time), in partition order."""
    ends = await end_offsets(settings, topic)
    wanted = sum(ends.values())
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records: list = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < wanted and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


def archive_caught_up(settings: Settings, root: Path) -> bool:
    """The archive under `root` has made durable every record of the events topic (close markers
    included): each partition's manifest is at the topic's end offset."""
    ends = asyncio.run(end_offsets(settings, settings.topic_events))
    ms = {p: read_manifest(root, settings.topic_events, p) for p in ends}
    return all(ms[p] is not None and ms[p].next_offset == off for p, off in ends.items())
