"""Months of operation: five generated months published and closed one by one by one worker, with
a graceful restart and a kill -9 between closes. Every month equals the batch oracle, and the
worker's memory stays flat once the late window is full (state bounded by the window, not by the
history).
"""

from __future__ import annotations

import asyncio
import random
import re
import time as clock
import urllib.request
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import orjson
import pytest

from devtools.workload import iter_events
from projections.calendar import Month
from projections.decide import decide_month
from projections.facts import fold_all
from projections.prices import PriceBook
from schemas.decode import validate_event
from tests.support.worker_harness import (
    TopicReader,
    WorkerProcess,
    close_month,
    done_for,
    packed,
    publish,
    wait_snapshots,
    worker_env,
)
from tests.support.worker_oracle import diff, latest_decisions

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FIRST = "2026-06"
MONTHS = 5
PARTITIONS = 4
WINDOW = 2  # months kept after their close: after the 2nd and the 5th close the state holds 2 months


def month_list() -> list[str]:
    m = Month.parse(FIRST)
    out = []
    for _ in range(MONTHS):
        out.append(str(m))
        m = m.next()
    return out


def chunks_by_arrival(events: list[dict], months: list[str]) -> list[list[dict]]:
    """The arrival-ordered events cut where each next month has run two days (late events of a
    month mostly arrive before its close, a few after)."""
    cuts = [datetime.combine(Month.parse(m).next().first_day, time.min, UTC) + timedelta(days=2) for m in months]
    out: list[list[dict]] = [[] for _ in months]
    i = 0
    for e in events:
        at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).astimezone(UTC)
        while i < len(months) - 1 and at >= cuts[i]:
            i += 1
        out[i].append(e)
    return out


def expected_month(facts_all, models, month: str, excluded: set[tuple[str, str]]) -> dict:
    """The oracle for `month`: all events, less those the worker sent to the late record for it."""
    facts = facts_all if not excluded else fold_all(m for m in models if (m.company_id, m.event_id) not in excluded)
    out = {}
    for _, _, decisions in decide_month(facts, Month.parse(month), PriceBook.load(None)):
        for d in decisions:
            row = d.row()
            row["unit_price_usd"] = str(d.unit_price_usd)
            out[(d.company_id, d.user_id, d.month)] = row
    return out


def rss_kb(w: WorkerProcess) -> int:
    assert w.proc is not None
    for line in Path(f"/proc/{w.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def activity_keys(w: WorkerProcess) -> float:
    """The worker's `seatledger_worker_state_keys{table="activity"}` gauge, from its metrics port."""
    port = re.findall(r"event=metrics_listening host=\S+ port=(\d+)", w.log.read_text())[-1]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    (value,) = re.findall(r'^seatledger_worker_state_keys\{table="activity"\} (\S+)$', text, re.M)
    return float(value)


async def quiet_rss(w: WorkerProcess) -> int:
    """RSS once the worker had a few seconds without work (it gives freed heap back then, and its
    state gauges are refreshed every 5 s)."""
    await asyncio.sleep(6)
    return rss_kb(w)


async def test_five_months_with_a_restart_and_a_kill_equal_the_oracle_and_memory_stays_flat(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=PARTITIONS)
    months = month_list()
    events = list(iter_events(12, 1500, FIRST, months=MONTHS, seed=21))
    models = [validate_event(e) for e in events]
    facts_all = fold_all(models)
    env = worker_env(settings, tmp_path / "data", f"soak-{random.randrange(1 << 30):x}")
    env["SEATLEDGER_LATE_WINDOW_MONTHS"] = str(WINDOW)
    log = tmp_path / "worker.log"
    w = WorkerProcess(env, log).start()
    rss: dict[int, int] = {}
    keys: dict[int, float] = {}
    got: list[dict] = []
    async with TopicReader(settings, settings.topic_snapshots) as reader:
        for i, (month, chunk) in enumerate(zip(months, chunks_by_arrival(events, months), strict=True)):
            await publish(settings, [(b[0]["company_id"].encode(), orjson.dumps(b), None) for b in packed(chunk)])
            if i == 2:  # a graceful restart with the month's events published, before its close
                assert w.stop() == 0, w.tail()
                w = WorkerProcess(env, log).start()
            t0 = clock.monotonic()
            await close_month(settings, month)
            got = await wait_snapshots(settings, w, done_for(month, PARTITIONS), timeout=240, reader=reader)
            rss[i + 1] = await quiet_rss(w)
            keys[i + 1] = activity_keys(w)
            print(f"{month}: closed in {clock.monotonic() - t0:.1f}s, RSS {rss[i + 1] / 1024:.0f} MB, "
                  f"activity keys {keys[i + 1]:.0f}")  # fmt: skip
            if i == 3:  # killed between closes
                w.kill9()
                w = WorkerProcess(env, log).start()
        # A late event for the first month, retired since: to the DLQ as late_past_window, nothing amended.
        before = len(reader.values())
        retired = {"event_id": "late-past-window", "type": "login", "occurred_at": f"{FIRST}-15T09:00:00Z",
                   "company_id": events[0]["company_id"], "user_id": "late-user"}  # fmt: skip
        await publish(settings, [(retired["company_id"].encode(), orjson.dumps(retired), None)])
        late = await dead_letters(settings, until=lambda rs: any(r["original"] == retired for r in rs))
        await reader.poll(2000)
        assert [m for m in reader.values()[before:] if m.get("month") == FIRST] == []
    assert [r for r in late if r["original"] == retired][0]["error"].startswith(f"late_past_window: {FIRST}")
    late = [r for r in late if r["original"] != retired]
    for month in months:
        excluded = {(r["original"]["company_id"], r["original"]["event_id"]) for r in late if month in r["error"]}
        want = expected_month(facts_all, models, month, excluded)
        have = {k: v for k, v in latest_decisions(got).items() if k[2] == month}
        assert diff(want, have) == [], month
    assert keys[5] <= keys[2] * 1.15, f"activity keys after each close: {keys}"
    assert rss[5] <= rss[2] * 1.15, f"RSS after each close (KB): {rss}"
    w.stop()


async def dead_letters(settings, until, timeout: float = 60) -> list[dict]:
    """The DLQ's late_past_window records, once `until(records)` holds."""
    deadline = clock.monotonic() + timeout
    async with TopicReader(settings, settings.topic_dlq) as reader:
        while True:
            await reader.poll(500)
            late = [r for r in reader.values() if r.get("reason_class") == "late_past_window"]
            if until(late):
                return late
            assert clock.monotonic() < deadline, f"no late record in the DLQ: {late[-3:]}"
