"""Records to the broker in aiokafka record batches, with their delivery futures.

Per-record `send()` costs tens of microseconds in Python; a changelog or snapshot record appended
to a BatchBuilder costs a few. Every batch's future is returned: the fold awaits them before it
commits the input offsets that caused the records (streams.fold_runner), so an offset is never
committed over a record the broker did not acknowledge.
"""

from __future__ import annotations

import asyncio
from typing import Any

# (topic, partition, key, value); a None value is a tombstone
Record = tuple[str, int, bytes | None, bytes | None]


class BatchSender:
    """Many records to one aiokafka record batch per (topic, partition), one `send_batch` each.
    `producer` is the started AIOKafkaProducer (set by whoever runs it)."""

    def __init__(self, producer: Any = None):
        self.producer = producer

    async def send(self, records: list[Record]) -> list[asyncio.Future]:
        """Hand the records to the producer; per (topic, partition) order is kept. Returns the
        delivery futures of the batches (resolved when the broker acknowledged them)."""
        if not records:
            return []
        producer = self.producer
        if producer is None:
            raise RuntimeError("BatchSender has no producer (not started?)")
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
