"""Several `seatledger worker` processes in one group on the real broker: workers join, leave
(SIGTERM) and die (kill -9) while events stream in, and the month's decisions still equal the
batch oracle (projections.facts.fold_all + decide_month, which tests/unit show equals the batch
replay), with no account-month decided twice differently.

Each scenario: 8 partitions, one event per message (slow enough to be caught mid-stream), events
published in slices while the membership changes, then the close.
"""

from __future__ import annotations

import asyncio
import random
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


class Group:
    """Workers of one app id, each with its own log, started and stopped by name."""

    def __init__(self, settings: Settings, tmp: Path, app_id: str, env: dict[str, str] | None = None):
        self.settings, self.tmp, self.app_id = settings, tmp, app_id
        self.env = env or {}
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, name: str, fault: str | None = None) -> WorkerProcess:
        env = {**worker_env(self.settings, self.tmp / "data", self.app_id), **self.env}
        if fault:
            env["SEATLEDGER_FAULT"] = fault
        w = self.workers[name] = WorkerProcess(env, self.tmp / f"{name}.log").start()
        return w

    def logs(self) -> str:
        return "\n".join(w.tail(40) for w in self.workers.values())  # each headed by its log's name

    def stop_all(self) -> None:
        for w in self.workers.values():
            w.stop()


async def until_logged(w: WorkerProcess, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while needle not in w.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {needle!r}:\n{w.tail()}"
        await asyncio.sleep(0.05)


async def publish_slowly(settings: Settings, events: list[dict], slices: int = 20, pause: float = 0.4) -> None:
    msgs = one_per_message(events)
    step = -(-len(msgs) // slices)
    for i in range(0, len(msgs), step):
        await publish(settings, msgs[i : i + step])
        await asyncio.sleep(pause)


@pytest.fixture
def group(kafka_topics, tmp_path):
    made: list[Group] = []

    def make(seed: int, env: dict[str, str] | None = None) -> Group:
        g = Group(kafka_topics(partitions=PARTITIONS), tmp_path, f"scale-{seed}-{random.randrange(1 << 30):x}", env)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop_all()


# Local snapshots every second and on-disk standbys refreshed every second, in one data dir shared
# by the workers (streams.local_state): every recovery then starts from some snapshot.
SNAPSHOTS_OFTEN = {"SEATLEDGER_STATE_SNAPSHOT_SECONDS": "1", "SEATLEDGER_STANDBY_REFRESH_SECONDS": "1"}


@pytest.mark.parametrize(("seed", "env"), [(3, None), (17, None), (5, SNAPSHOTS_OFTEN)], ids=["3", "17", "5-snapshots"])
async def test_join_leave_join_and_a_kill_mid_stream_lose_nothing_and_count_nothing_twice(group, seed, env):
    g = group(seed, env)
    events = list(iter_events(10, 500, MONTH, seed=seed))
    expected = oracle(events, MONTH)
    a = g.start("a")
    await until_logged(a, "event=fold_assigned")
    feed = asyncio.create_task(publish_slowly(g.settings, events))
    await asyncio.sleep(1.5)
    b = g.start("b")  # joins mid-stream: A gives up half of the partitions
    await until_logged(b, "event=fold_assigned")
    await asyncio.sleep(1.5)
    assert a.stop() == 0, a.tail()  # leaves with SIGTERM mid-stream
    c = g.start("c")
    await until_logged(c, "event=fold_assigned")
    await asyncio.sleep(random.Random(seed).uniform(0.5, 2.0))
    b.kill9()  # dies mid-stream: C takes everything once B's session expires
    await feed
    await close_month(g.settings, MONTH)
    got = await wait_snapshots(g.settings, c, done_for(MONTH, PARTITIONS), timeout=240)
    assert_equal_to_the_oracle(expected, got)


@pytest.mark.parametrize("fault", ["changelog_sent:25", "close_started:2"])
async def test_a_kill_during_a_changelog_flush_or_during_the_close_loses_nothing(group, fault):
    g = group(5)
    events = list(iter_events(8, 400, MONTH, seed=5))
    expected = oracle(events, MONTH)
    a = g.start("a")
    b = g.start("b", fault=fault)  # dies at the fault point, wherever the stream is then
    await until_logged(a, "event=fold_assigned")
    await until_logged(b, "event=fold_assigned")
    await publish_slowly(g.settings, events, slices=10, pause=0.2)
    await close_month(g.settings, MONTH)
    got = await wait_snapshots(g.settings, a, done_for(MONTH, PARTITIONS), timeout=240)
    assert not b.alive(), "the fault point was never reached"
    assert_equal_to_the_oracle(expected, got)
