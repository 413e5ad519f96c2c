"""What the worker's two tasks on their own aiokafka clients (the router and the fold's runner)
share: the idempotent producer they send their batches through, the loop that restarts a task
from its last commit after an error, and the lag gauge of their consumers.

Both commit an offset only after every send it caused was acknowledged, so starting again from the
last commit loses nothing; what was sent twice is deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.settings import Settings

log = logging.getLogger("seatledger.worker")

RESTART_DELAY = 1.0  # seconds before a task restarts after an error


def batch_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer (not started) tuned for batches: a short linger, large requests."""
    return AIOKafkaProducer(
        **settings.kafka_client_kwargs(), enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024, client_id=client_id,
    )  # fmt: skip


async def run_restarting(
    run: Callable[[], Awaitable[None]], event: str, forget: Callable[[], None] | None = None
) -> None:
    """Await `run()` until it returns or is cancelled; after any other error, log `event=<event>`
    with it, `forget()` what the failed run held, wait RESTART_DELAY and run it again."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event=%s error=%r", event, exc)
            if forget is not None:
                forget()
            await asyncio.sleep(RESTART_DELAY)


def set_lag(gauge: Any, consumer: Any, committed: Callable[[Any], int]) -> None:
    """Set the consumer-lag `gauge` (labels: topic, partition) of every partition `consumer` (an
    AIOKafkaConsumer, or None before it runs) is assigned: highwater - `committed(tp)`."""
    if consumer is None:
        return
    try:
        tps = consumer.assignment()
    except Exception:
        return
    for tp in tps:
        try:
            hw = consumer.highwater(tp)
        except Exception:
            continue
        if hw is not None:
            gauge.labels(tp.topic, str(tp.partition)).set(max(0, hw - committed(tp)))
