"""Driving `seatledger worker` as a subprocess against the real broker, for the worker tests.

Each test gets its own topics (conftest `kafka_topics`), its own Faust app id (so its own consumer
group and changelog topics) and its own data dir, all passed as SEATLEDGER_* environment variables,
so the worker can be killed with SIGKILL and restarted like in production.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import Settings
from tests.support.services import Service
from tests.support.snapshot_messages import snapshot_messages


def worker_env(settings: Settings, data_dir: Path, app_id: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "SEATLEDGER_BOOTSTRAP": settings.bootstrap,
        "SEATLEDGER_TOPIC_EVENTS": settings.topic_events,
        "SEATLEDGER_TOPIC_ROUTED": settings.topic_routed,
        "SEATLEDGER_TOPIC_DLQ": settings.topic_dlq,
        "SEATLEDGER_TOPIC_SNAPSHOTS": settings.topic_snapshots,
        "SEATLEDGER_PARTITIONS": str(settings.partitions),
        "SEATLEDGER_DATA_DIR": str(data_dir),
        "SEATLEDGER_WORKER_APP_ID": app_id or f"w-{uuid.uuid4().hex[:10]}",
        "SEATLEDGER_WORKER_METRICS_PORT": "0",
        # a restart after kill -9 waits less for the dead member
        "SEATLEDGER_SESSION_TIMEOUT_SECONDS": "6",
    }


class WorkerProcess(Service):
    """`seatledger worker` in its own process group; logs to `log`."""

    def __init__(self, env: dict[str, str], log: Path):
        super().__init__(["worker"], env, log)

    def kill9(self) -> None:
        if self.proc is not None and self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def one_per_message(events: list[dict]) -> list[tuple[bytes, bytes, None]]:
    """Each event its own message keyed by its company, for `publish` (as `seatledger publish` sends)."""
    return [(e["company_id"].encode(), orjson.dumps(e), None) for e in events]


async def publish(
    settings: Settings, messages: list[tuple[bytes | None, bytes, int | None]], topic: str | None = None
) -> None:
    """(key, value, partition or None) each; acknowledged before returning."""
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), enable_idempotence=True, linger_ms=10, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        futs = []
        for key, value, partition in messages:
            futs.append(await producer.send(topic or settings.topic_events, value, key=key, partition=partition))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def close_month(settings: Settings, month: str) -> str:
    from streams.worker import send_close_markers

    close_id, _ = await send_close_markers(settings, month)
    return close_id


class TopicReader:
    """Reads a topic from the beginning, incrementally."""

    def __init__(self, settings: Settings, topic: str):
        self.settings = settings
        self.topic = topic
        self.records: list = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        parts = [TopicPartition(self.topic, p) for p in range(self.settings.partitions)]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 300) -> int:
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=50_000)
        n = 0
        for recs in batch.values():
            self.records.extend(recs)
            n += len(recs)
        return n

    def values(self) -> list[dict]:
        """Every message read, in order: a record holding a JSON array (a packed record of the
        snapshots topic, streams.close.packed) gives each element, a decision_block each of its
        decisions (tests/support/snapshot_messages.py)."""
        return [m for r in self.records for m in snapshot_messages(r.value)]


async def wait_snapshots(
    settings: Settings,
    worker: WorkerProcess | None,
    until,
    timeout: float = 120,
    reader: TopicReader | None = None,
) -> list[dict]:
    """Poll the snapshots topic until `until(messages)` holds; fail with the worker's log tail."""
    own = reader is None
    reader = reader or TopicReader(settings, settings.topic_snapshots)
    if own:
        await reader.__aenter__()
    try:
        deadline = time.monotonic() + timeout
        while True:
            await reader.poll()
            msgs = reader.values()
            if until(msgs):
                return msgs
            if worker is not None and not worker.alive():
                raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.tail()}")
            if time.monotonic() > deadline:
                log = worker.tail() if worker else ""
                raise AssertionError(f"timed out after {timeout}s with {len(msgs)} snapshot messages\n{log}")
    finally:
        if own:
            await reader.__aexit__(None, None, None)


def done_for(month: str, partitions: int):
    def until(msgs: list[dict]) -> bool:
        parts = {m["partition"] for m in msgs if m.get("kind") == "partition_done" and m["month"] == month}
        return len(parts) == partitions

    return until


def packed(events: list[dict], size: int = 300) -> list[list[dict]]:
    """Consecutive runs of one company's events, at most `size` per message."""
    out: list[list[dict]] = []
    for e in events:
        if out and out[-1][0]["company_id"] == e["company_id"] and len(out[-1]) < size:
            out[-1].append(e)
        else:
            out.append([e])
    return out
