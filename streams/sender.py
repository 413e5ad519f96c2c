"""Records to the broker in aiokafka record batches, through Faust's own producer.

Per-record `send()` (aiokafka's or Faust's) costs tens of microseconds in Python; a changelog or
snapshot record appended to a BatchBuilder costs a few. The batches go through the aiokafka
producer inside Faust's producer, so Faust's commit-time `producer.flush()` still waits for them
before offsets are committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

# (topic, partition, key, value); a None value is a tombstone
Record = tuple[str, int, bytes | None, bytes | None]


def aiokafka_producer(app: faust.App) -> Any:
    """The aiokafka producer inside Faust's producer (`Producer._producer`, private to Faust's
    aiokafka driver: the only way to send record batches, and to be covered by Faust's flush)."""
    inner = getattr(app.producer, "_producer", None)
    if inner is None:
        raise RuntimeError("Faust's producer has no aiokafka producer (not started?)")
    return inner


class BatchSender:
    """Many records to one aiokafka record batch per (topic, partition), one `send_batch` each."""

    def __init__(self, app: faust.App):
        self.app = app

    async def send(self, records: list[Record]) -> list[asyncio.Future]:
        """Hand the records to the producer; per (topic, partition) order is kept. Returns the
        delivery futures of the batches (resolved when the broker acknowledged them); nothing
        here waits for them: Faust's flush before each commit does."""
        if not records:
            return []
        producer = aiokafka_producer(self.app)
        by_tp: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, partition, key, value in records:
            by_tp.setdefault((topic, partition), []).append((key, value))
        futures: list[asyncio.Future] = []
        for (topic, partition), recs in by_tp.items():
            batch = producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"record of {len(value or b'')} bytes does not fit a batch for {topic}")
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
