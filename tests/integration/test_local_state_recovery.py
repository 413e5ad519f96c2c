"""Local snapshots of the fold's tables (streams.local_state) on the real broker: a restarted
worker reads its snapshots and only the changelogs' tail; a survivor takes a dead worker's
partitions from its on-disk standby snapshots; and the month still equals the batch oracle."""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import pytest

from devtools.workload import iter_events
from streams.settings import Settings
from tests.support.worker_harness import (
    WorkerProcess,
    close_month,
    done_for,
    one_per_message,
    publish,
    wait_snapshots,
    worker_env,
)
from tests.support.worker_oracle import assert_equal_to_the_oracle, oracle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-10"
PARTITIONS = 8
ASSIGNED = re.compile(r"event=fold_assigned partitions=\[([0-9, ]*)\].*recovered_records=(\d+) snapshot_keys=(\d+)")


def start(settings: Settings, tmp: Path, app_id: str, name: str, data: str, **env: str) -> WorkerProcess:
    e = worker_env(settings, tmp / data, app_id)
    e.update({f"SEATLEDGER_{k.upper()}": v for k, v in env.items()})
    return WorkerProcess(e, tmp / f"{name}.log").start()


def assignments(w: WorkerProcess) -> list[tuple[set[int], int, int]]:
    return [
        ({int(p) for p in parts.split(",") if p.strip()}, int(records), int(keys))
        for parts, records, keys in ASSIGNED.findall(w.log.read_text(errors="replace"))
    ]


async def until(check, w: WorkerProcess, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert w.alive(), w.tail()
        assert time.monotonic() < deadline, f"no {what}:\n{w.tail()}"
        await asyncio.sleep(0.1)


@pytest.fixture
def workers():
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()


async def test_a_restarted_worker_reads_its_snapshot_and_only_the_changelog_tail(kafka_topics, tmp_path, workers):
    settings = kafka_topics(partitions=PARTITIONS)
    app_id = f"snap-{random.randrange(1 << 30):x}"
    events = list(iter_events(8, 400, MONTH, seed=11))
    half = len(events) // 2
    a = start(settings, tmp_path, app_id, "a", "data")
    workers.append(a)
    await until(lambda: assignments(a), a, "assignment")
    await publish(settings, one_per_message(events[:half]))
    await asyncio.sleep(3)
    assert a.stop() == 0, a.tail()
    assert "event=state_snapshot kind=stop" in a.log.read_text(), a.tail()

    a2 = start(settings, tmp_path, app_id, "a2", "data")
    workers.append(a2)
    await until(lambda: assignments(a2), a2, "assignment")
    parts, records, keys = assignments(a2)[0]
    assert parts == set(range(PARTITIONS)) and keys > 0, a2.tail()
    assert records < keys, "the restart read more changelog records than its snapshots held keys"

    await publish(settings, one_per_message(events[half:]))
    await close_month(settings, MONTH)
    got = await wait_snapshots(settings, a2, done_for(MONTH, PARTITIONS), timeout=180)
    assert_equal_to_the_oracle(oracle(events, MONTH), got)


async def test_a_survivor_takes_a_dead_workers_partitions_from_its_standby_snapshots(kafka_topics, tmp_path, workers):
    settings = kafka_topics(partitions=PARTITIONS)
    app_id = f"standby-{random.randrange(1 << 30):x}"
    events = list(iter_events(8, 400, MONTH, seed=12))
    half = len(events) // 2
    fast = {"standby_refresh_seconds": "1", "state_snapshot_seconds": "1"}
    a = start(settings, tmp_path, app_id, "a", "data-a", **fast)
    workers.append(a)
    await until(lambda: assignments(a), a, "assignment")
    b = start(settings, tmp_path, app_id, "b", "data-b", **fast)  # its own disk: no shared files
    workers.append(b)
    await until(lambda: assignments(b) and len(assignments(a)) > 1, b, "the rebalance")
    owned_by_a = assignments(a)[-1][0]
    await publish(settings, one_per_message(events[:half]))
    await asyncio.sleep(3)
    await until(lambda: "event=standby_refreshed" in b.log.read_text(errors="replace"), b, "standby refresh")
    await asyncio.sleep(4)  # a few more refreshes (every second): the standbys reach the changelogs' end
    a.kill9()

    await until(lambda: any(len(p) == PARTITIONS for p, _, _ in assignments(b)), b, "takeover", timeout=120)
    parts, records, keys = next(x for x in assignments(b) if len(x[0]) == PARTITIONS)
    assert owned_by_a and keys > 0, b.tail()
    assert records < keys, "the takeover replayed more of the changelogs than its standby snapshots held"

    await publish(settings, one_per_message(events[half:]))
    await close_month(settings, MONTH)
    got = await wait_snapshots(settings, b, done_for(MONTH, PARTITIONS), timeout=180)
    assert_equal_to_the_oracle(oracle(events, MONTH), got)
