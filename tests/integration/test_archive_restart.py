"""`seatledger archive` against the real broker: killed -9 mid-stream and restarted, the archive holds
exactly the event_id multiset that was published (no loss, no duplicates), rejections kept apart,
close markers skipped; DuckDB reads the result as one hive-partitioned table."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from devtools.workload import iter_events
from replay.archive.compaction import compact
from replay.archive.layout import archive_glob, read_manifest
from replay.archive.reader import read_rejected
from schemas.control import close_marker
from streams.publisher import Publisher
from tests.support.kafka_readback import end_offsets

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def archive_proc(settings, root: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "SEATLEDGER_BOOTSTRAP": settings.bootstrap,
        "SEATLEDGER_TOPIC_EVENTS": settings.topic_events,
        "SEATLEDGER_ARCHIVE_ROOT": str(root),
    }
    cmd = [
        sys.executable,
        "-m",
        "seatledger.cli",
        "archive",
        "--flush-seconds",
        "0.05",
        "--flush-events",
        "150",
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


def archived(root: Path, settings) -> tuple[int, int]:
    """(events made durable, next offsets summed) over the topic's partitions."""
    ms = [read_manifest(root, settings.topic_events, p) for p in range(settings.partitions)]
    return sum(m.events for m in ms if m), sum(m.next_offset for m in ms if m)


async def publish(settings, events: list[dict], pack: int) -> None:
    async with Publisher(settings, pack=pack) as pub:
        summary = await pub.send_events((i, orjson.dumps(e)) for i, e in enumerate(events, 1))
    assert summary.ok


async def publish_raw(settings, items: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), enable_idempotence=True)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(settings.topic_events, value, key=key)
    finally:
        await producer.stop()


def wait_for(pred, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}; archive log:\n{log.read_text()[-3000:]}")


def test_kill9_restart_keeps_exact_multiset(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=3)
    root = tmp_path / "archive"
    log = tmp_path / "archive.log"
    events = list(iter_events(companies=12, accounts=400, month="2026-10", seed=5, activity=0.5))
    assert len(events) > 8_000
    published = Counter(e["event_id"] for e in events)
    assert any(n > 1 for n in published.values())  # the workload redelivers some events
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    bad = [
        (b"c-x", orjson.dumps(close_marker("2026-10", "close-x", 3))),
        (b"c-x", b"{not json"),
        (
            b"c-x",
            orjson.dumps(
                {"event_id": "bad-1", "type": "login", "occurred_at": "2026-10-02", "company_id": "c-x", "user_id": "u"}
            ),
        ),
    ]
    asyncio.run(publish(settings, first, pack=7))
    asyncio.run(publish_raw(settings, bad))

    kills = []
    proc = archive_proc(settings, root, log)
    try:
        wait_for(lambda: archived(root, settings)[0] > 0, 120, "a first durable flush", log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills.append(archived(root, settings)[0])
        # restart while the rest is being published; kill once more mid-stream
        proc = archive_proc(settings, root, log)
        asyncio.run(publish(settings, second, pack=3))
        wait_for(lambda: archived(root, settings)[0] > kills[0], 120, "progress after the restart", log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills.append(archived(root, settings)[0])
        proc = archive_proc(settings, root, log)
        ends = sum(asyncio.run(end_offsets(settings, settings.topic_events)).values())
        wait_for(lambda: archived(root, settings)[1] == ends, 180, "the whole topic archived", log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 0 < kills[0] < len(events), kills  # the first kill really was mid-stream

    con = duckdb.connect()
    glob = archive_glob(root)
    got = Counter(
        dict(
            con.execute(
                f"SELECT event_id, count(*) FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY 1"
            ).fetchall()
        )
    )
    assert got == published
    assert archived(root, settings)[0] == len(events)
    rej = read_rejected(root)
    assert [r["reason"][:12] for r in rej] == ["not valid JS", "field 'occur"]
    assert not list(root.rglob("*.tmp"))
    # the company/month layout agrees with the rows, and compaction keeps the multiset
    n_files = len(list(root.glob("month=*/bucket=*/*.parquet")))
    assert compact(root)
    assert len(list(root.glob("month=*/bucket=*/*.parquet"))) < n_files
    again = Counter(
        dict(
            con.execute(
                f"SELECT event_id, count(*) FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY 1"
            ).fetchall()
        )
    )
    assert again == published
