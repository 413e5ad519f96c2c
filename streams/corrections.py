"""Sending a dispute's corrections to the snapshots topic, where the sink versions them.

`replay.dispute` computes the messages (an amendment per changed account, then the dispute record)
and knows no Kafka; this puts them on the topic with the project's idempotent `Publisher`.
"""

from __future__ import annotations

import asyncio

from projections.snapshots import encode
from replay.dispute import DisputeError
from streams.publisher import Message, Publisher
from streams.settings import Settings


async def publish_corrections(settings: Settings, company_id: str, messages: list[dict]) -> None:
    """Send `messages` under the company's key, in order, and wait until every one is acknowledged."""
    key = company_id.encode()  # one key: one partition, so the sink sees them in this order
    async with Publisher(settings, topic=settings.topic_snapshots, acks="all") as pub:
        acks = [await pub.send_message(Message(key, encode(m), 1)) for m in messages]
        await asyncio.gather(*acks)


def send_corrections(settings: Settings, company_id: str, messages: list[dict]) -> None:
    """`replay.dispute.apply_report`'s sender: publish, or raise a DisputeError naming the broker."""
    try:
        asyncio.run(publish_corrections(settings, company_id, messages))
    except Exception as exc:
        raise DisputeError(f"publishing to {settings.bootstrap} failed: {type(exc).__name__}: {exc}") from None
