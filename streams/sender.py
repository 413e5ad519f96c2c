"""Records to the broker in aiokafka record batches, with their delivery futures.

Per-record `send()` costs tens of microseconds in Python; a changelog or snapshot record appended
to a BatchBuilder costs a few. Every batch's future is returned: the fold awaits them before it
commits the input offsets that caused the records (streams.fold_runner), so an offset is never
committed over a record the broker did not acknowledge. The offset after each acknowledged batch
is kept per (topic, partition): a local snapshot of the tables names the changelog offsets its
keys correspond to by them (streams.local_state).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

# (topic, partition, key, value); a None value is a tombstone
Record = tuple[str, int, bytes | None, bytes | None]


class BatchSender:
    """Many records to one aiokafka record batch per (topic, partition), one `send_batch` each.
    `producer` is the started AIOKafkaProducer (set by whoever runs it)."""

    def __init__(self, producer: Any = None):
        self.producer = producer
        # (topic, partition) -> the offset after the last record the broker acknowledged from here
        self.next_offsets: dict[tuple[str, int], int] = {}

    def _delivered(self, topic: str, partition: int, count: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        end = fut.result().offset + count  # the batch's base offset + its records
        key = (topic, partition)
        if end > self.next_offsets.get(key, 0):
            self.next_offsets[key] = end

    async def _send_batch(self, batch: Any, topic: str, partition: int, count: int) -> asyncio.Future:
        fut = await self.producer.send_batch(batch, topic, partition=partition)
        fut.add_done_callback(partial(self._delivered, topic, partition, count))
        return fut

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
            batch, count = producer.create_batch(), 0
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._send_batch(batch, topic, partition, count))
                    batch, count = producer.create_batch(), 0
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"record of {len(value or b'')} bytes does not fit a batch for {topic}")
                count += 1
            futures.append(await self._send_batch(batch, topic, partition, count))
        return futures
