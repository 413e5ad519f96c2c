"""Read a topic back from the beginning, for tests that check what was published."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

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
