"""Control markers on every partition of the events topic (`seatledger close`, `seatledger estimate`).

A marker is sent to every partition so that each source partition's copy is ordered after the
events published on it before; the worker acts once it has seen the marker from every one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from projections.calendar import Month, utc_iso
from schemas.control import estimate_marker
from streams.settings import Settings

log = logging.getLogger("seatledger.markers")


async def send_to_every_partition(settings: Settings, marker: dict) -> int:
    """Put `marker` (a control object whose `partitions` is 0, filled in here) on every partition of
    the events topic, through an idempotent producer; returns how many partitions got it."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), enable_idempotence=True)
    try:
        await producer.start()  # inside: a start that fails (no broker) is stopped too, not left unclosed
        parts = await producer.partitions_for(settings.topic_events)
        if not parts:
            raise RuntimeError(f"topic {settings.topic_events!r} does not exist or has no partitions")
        value = orjson.dumps({**marker, "partitions": len(parts)})
        futs = [await producer.send(settings.topic_events, value, partition=p) for p in sorted(parts)]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return len(parts)


async def send_estimate_markers(
    settings: Settings, month: str, estimate_id: str | None = None, as_of: datetime | None = None
) -> tuple[str, str, int]:
    """Ask the worker for the bill so far of `month`: (estimate_id, as_of, partitions)."""
    month = str(Month.parse(month))
    stamp = utc_iso(as_of or datetime.now(UTC))
    estimate_id = estimate_id or f"{month}-{uuid.uuid4().hex[:12]}"
    n = await send_to_every_partition(settings, estimate_marker(month, estimate_id, stamp, 0))
    log.info("event=estimate_requested month=%s estimate_id=%s as_of=%s partitions=%d", month, estimate_id, stamp, n)
    return estimate_id, stamp, n
