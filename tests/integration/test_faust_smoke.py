"""faust-streaming 0.15.3 on our Kafka 4 broker: a worker subprocess starts, consumes, creates its
table's changelog topic, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from devtools.local_broker import answers, free_port_pair

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

APP = Path(__file__).with_name("faust_smoke_app.py")


async def produce(settings, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def topic_partitions(settings, name: str) -> int | None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        if name not in await admin.list_topics():
            return None
        [t] = await admin.describe_topics([name])
        return len(t["partitions"])
    finally:
        await admin.close()


def wait_for(predicate, timeout: float, proc: subprocess.Popen, log: Path, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


async def test_faust_worker_consumes_creates_its_changelog_and_stops_on_sigterm(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=4)
    app_id = f"smoke-{uuid.uuid4().hex[:8]}"
    web_port = free_port_pair()
    await produce(settings, settings.topic_events, b"acme", b"before-start")  # read from the beginning

    log = tmp_path / "worker.log"
    env = {**os.environ, "SMOKE_APP_ID": app_id, "SMOKE_BOOTSTRAP": settings.bootstrap, "SMOKE_TOPIC": settings.topic_events,
           "SMOKE_PARTITIONS": "4", "SMOKE_DATADIR": str(tmp_path / "faust-data"), "SMOKE_WEB_PORT": str(web_port)}  # fmt: skip
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(APP), "worker", "--loglevel", "info", "--without-web"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
        )  # fmt: skip

    def text() -> str:
        return log.read_text(errors="replace")

    try:
        wait_for(
            lambda: "SMOKE-CONSUMED key=acme value=before-start count=1" in text(), 90, proc, log, "the first event"
        )
        ready_s = time.monotonic() - started
        await produce(settings, settings.topic_events, b"acme", b"while-running")
        wait_for(lambda: "value=while-running count=2" in text(), 30, proc, log, "the second event")

        changelog = f"{app_id}-counts-changelog"
        assert await topic_partitions(settings, changelog) == 4, f"{changelog} missing; {text()[-3000:]}"
        assert not answers("127.0.0.1", web_port), "the web server is disabled and must not listen"

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 0, text()[-4000:]
    assert stop_s < 30
    print(f"faust smoke: first event consumed {ready_s:.1f}s after start; stopped in {stop_s:.1f}s")
