"""`seatledger worker` as a subprocess on the real broker, against the batch oracle.

Every test: its own topics (4 partitions), app id and data dir; a generated workload of a few
companies and ~300 accounts; the month closed with `streams.worker.send_close_markers` (what
`seatledger close` runs); the snapshots topic read back and the latest version per
(company, user, month) compared with projections.facts.fold_all + decide_company.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib

import orjson
import pytest

from devtools.workload import iter_events
from tests.support.worker_harness import (
    TopicReader,
    WorkerProcess,
    close_month,
    done_for,
    one_per_message,
    packed,
    publish,
    wait_snapshots,
    worker_env,
)
from tests.support.worker_oracle import diff, latest_decisions, oracle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-10"
PARTITIONS = 4


@pytest.fixture(scope="module")
def workload() -> list[dict]:
    return list(iter_events(6, 300, MONTH, seed=11))


@pytest.fixture(scope="module")
def expected(workload) -> dict:
    return oracle(workload, MONTH)


@pytest.fixture
def worker_factory(tmp_path):
    started: list[WorkerProcess] = []

    def make(settings, app_id: str | None = None) -> WorkerProcess:
        env = worker_env(settings, tmp_path / "data", app_id)
        w = WorkerProcess(env, tmp_path / "worker.log")
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


async def wait_log(w: WorkerProcess, needle: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while w.log.read_text(errors="replace").count(needle) < count:
        assert w.alive(), w.tail()
        assert time.monotonic() < deadline, f"no {needle!r} x{count} in the log:\n{w.tail()}"
        await asyncio.sleep(0.05)


async def test_packed_workload_equals_oracle_then_one_late_event_is_one_amendment(
    kafka_topics, worker_factory, workload, expected
):
    settings = kafka_topics(partitions=PARTITIONS)
    await publish(settings, [(p[0]["company_id"].encode(), orjson.dumps(p), None) for p in packed(workload)])
    w = worker_factory(settings).start()
    await close_month(settings, MONTH)
    async with TopicReader(settings, settings.topic_snapshots) as reader:
        msgs = await wait_snapshots(settings, w, done_for(MONTH, PARTITIONS), timeout=120, reader=reader)
        assert diff(expected, latest_decisions(msgs)) == []
        assert {m["version"] for m in msgs if m["kind"] == "decision"} == {1}
        done = [m for m in msgs if m["kind"] == "partition_done"]
        assert sum(m["accounts"] for m in done) == len(expected)
        assert sum(m["counts"]["events_counted"] for m in done) == len(workload) + sum(
            1
            for e in workload
            if e["type"] == "invite" and e.get("guest_home_company_id") not in (None, e["company_id"])
        )  # every accepted event, plus one derived trial per guest invite

        # A late deactivate in the closed month, published twice: exactly one amendment.
        cid, uid, _ = next(k for k, v in sorted(expected.items()) if v["billable"])
        late = {"event_id": "late-deactivate-1", "type": "deactivate", "occurred_at": "2026-10-20T10:00:00Z",
                "company_id": cid, "user_id": uid}  # fmt: skip
        await publish(settings, one_per_message([late, late]))
        before = len(msgs)

        def amended(ms):
            return any(m["kind"] == "decision" and m["version"] > 1 for m in ms[before:])

        msgs = await wait_snapshots(settings, w, amended, timeout=60, reader=reader)
        await asyncio.sleep(3)  # anything else it would (wrongly) emit
        await reader.poll(1000)
        msgs = reader.values()
        amendments = [m for m in msgs if m["kind"] == "decision" and m["version"] > 1]
        assert len(amendments) == 1
        a = amendments[0]
        assert (a["company_id"], a["user_id"], a["version"], a["corrects_version"], a["amend_reason"]) == (
            cid, uid, 2, 1, "late_event",
        )  # fmt: skip
        assert diff(oracle([*workload, late], MONTH), latest_decisions(msgs)) == []
        cm = [m for m in msgs if m["kind"] == "company_month" and m["company_id"] == cid]
        assert [m["version"] for m in cm] == [1, 2]  # the invoice changed: one billable account fewer


async def test_shuffled_duplicated_any_partitioner_equals_oracle(kafka_topics, worker_factory, workload, expected):
    """One event per message, shuffled (company_registered after activity), 15 % sent twice, over
    explicit random partitions, a CRC32-like choice and no key at all."""
    settings = kafka_topics(partitions=PARTITIONS)
    rng = random.Random(5)
    events = workload + rng.sample(workload, len(workload) * 15 // 100)
    rng.shuffle(events)
    msgs = []
    for i, e in enumerate(events):
        value = orjson.dumps(e)
        style = i % 3
        if style == 0:
            msgs.append((e["company_id"].encode(), value, rng.randrange(PARTITIONS)))
        elif style == 1:
            msgs.append((e["company_id"].encode(), value, zlib.crc32(e["company_id"].encode()) % PARTITIONS))
        else:
            msgs.append((None, value, None))
    await publish(settings, msgs)
    w = worker_factory(settings).start()
    await close_month(settings, MONTH)
    got = await wait_snapshots(settings, w, done_for(MONTH, PARTITIONS), timeout=150)
    assert diff(expected, latest_decisions(got)) == []
    assert {m["version"] for m in got if m["kind"] == "decision"} == {1}
    done = [m for m in got if m["kind"] == "partition_done"]
    assert sum(m["counts"]["duplicates_ignored"] for m in done) >= len(events) - len(workload)


async def test_kill_9_during_ingestion_recovers_from_changelogs(kafka_topics, worker_factory, workload, expected):
    settings = kafka_topics(partitions=PARTITIONS)
    app_id = f"crash-{random.randrange(1 << 30):x}"
    rng = random.Random(9)
    # One event per message: slow enough to be killed mid-stream.
    await publish(settings, one_per_message(workload))
    kills = 0
    for delay in (rng.uniform(0.2, 1.0), rng.uniform(1.0, 2.5), rng.uniform(0.5, 2.0)):
        w = worker_factory(settings, app_id).start()
        await wait_log(w, "event=worker_started", kills + 1)
        await asyncio.sleep(delay)
        assert w.alive(), w.tail()
        w.kill9()
        kills += 1
    # close, and crash once more in the middle of the close
    await close_month(settings, MONTH)
    w = worker_factory(settings, app_id).start()
    await wait_log(w, "event=close_marker ", 1)
    w.kill9()
    w = worker_factory(settings, app_id).start()
    t0 = time.monotonic()
    # The killed worker may have finished the close before the kill landed (it is fast now), so
    # the snapshots can be complete already: read them only once the last worker is up too.
    await wait_log(w, "event=worker_started", 5)
    got = await wait_snapshots(settings, w, done_for(MONTH, PARTITIONS), timeout=180)
    assert kills == 3
    log = w.log.read_text()
    assert log.count("event=worker_started") == 5
    assert diff(expected, latest_decisions(got)) == [], f"after {time.monotonic() - t0:.1f}s"
    # redelivery may repeat a version-1 message, never change it
    by_version: dict = {}
    for m in got:
        if m["kind"] == "decision":
            k = (m["company_id"], m["user_id"], m["month"], m["version"])
            assert by_version.setdefault(k, m["digest"]) == m["digest"]


async def test_bad_messages_go_to_the_dlq_and_good_ones_around_them_are_processed(
    kafka_topics, worker_factory, workload, expected
):
    settings = kafka_topics(partitions=PARTITIONS)
    one = workload[100]
    cid = one["company_id"]
    user = next(e for e in workload if "user_id" in e)
    bad: list[tuple[str, bytes]] = [
        ("not_json", b"{this is not json"),
        ("missing_field", orjson.dumps({k: v for k, v in user.items() if k != "event_id"})),
        ("unknown_type", orjson.dumps({**user, "event_id": "bad-type", "type": "teleport"})),
        ("bad_timestamp", orjson.dumps({**user, "event_id": "bad-ts", "occurred_at": "2026-10-02T08:00:00"})),
        ("user_id_forbidden", orjson.dumps({"event_id": "bad-uid", "type": "plan_changed", "plan": "premium",
                                            "occurred_at": "2026-10-02T08:00:00Z", "company_id": cid, "user_id": "u"})),
        ("user_id_missing", orjson.dumps({k: v for k, v in user.items() if k != "user_id"} | {"event_id": "bad-nouid"})),
        ("bad_value", orjson.dumps({**user, "event_id": "bad-chan", "type": "visit", "channel": "fax"})),
        ("empty_array", b"[]"),
    ]  # fmt: skip
    # a pack mixing companies: the first company's events are kept, the other's rejected
    other = next(e for e in workload if e["company_id"] != user["company_id"] and "user_id" in e)
    mixed = [user, {**other, "event_id": "mixed-other"}]
    msgs = one_per_message(workload[:3000])
    for i, (_, raw) in enumerate(bad):
        msgs.insert(100 + i * 300, (b"junk", raw, None))
    msgs.insert(50, (user["company_id"].encode(), orjson.dumps(mixed), None))
    msgs += one_per_message(workload[3000:])
    await publish(settings, msgs)
    w = worker_factory(settings).start()
    await close_month(settings, MONTH)
    got = await wait_snapshots(settings, w, done_for(MONTH, PARTITIONS), timeout=120)
    assert diff(expected, latest_decisions(got)) == []
    async with TopicReader(settings, settings.topic_dlq) as dlq:
        deadline = time.monotonic() + 30
        while len(dlq.records) < len(bad) + 1 and time.monotonic() < deadline:
            await dlq.poll()
        dead = dlq.values()
    assert sorted(d["reason_class"] for d in dead) == sorted([c for c, _ in bad] + ["mixed_companies"])
    for d in dead:
        assert d["error"] and d["rejected_at"] and d["source"]["topic"] == settings.topic_events
        assert d["source"]["offset"] >= 0 and 0 <= d["source"]["partition"] < PARTITIONS
    by_class = {d["reason_class"]: d for d in dead}
    assert by_class["not_json"]["original"] == "{this is not json"
    import base64

    assert base64.b64decode(by_class["not_json"]["original_b64"]) == b"{this is not json"
    assert by_class["bad_value"]["original"]["channel"] == "fax"
    assert by_class["mixed_companies"]["original"]["event_id"] == "mixed-other"
    assert by_class["mixed_companies"]["index"] == 1
    done = [m for m in got if m["kind"] == "partition_done"]
    assert sum(m["counts"]["rejected"] for m in done) == len(bad) + 1


async def test_auto_close_closes_a_month_that_ended_everywhere_plus_the_grace(
    kafka_topics, worker_factory, workload, expected
):
    # October 2026 ended in every zone on 2026-11-01T12:00Z; a grace that ends mid-November makes
    # it the month due now, whenever the test runs.
    from datetime import UTC, datetime

    grace = (datetime.now(UTC) - datetime(2026, 11, 15, 12, tzinfo=UTC)).total_seconds() / 3600 - 12
    settings = kafka_topics(partitions=PARTITIONS)
    await publish(settings, [(p[0]["company_id"].encode(), orjson.dumps(p), None) for p in packed(workload)])
    w = worker_factory(settings)
    w.env.update(SEATLEDGER_AUTO_CLOSE_GRACE_HOURS=f"{grace:.3f}", SEATLEDGER_AUTO_CLOSE_CHECK_SECONDS="2")
    w.start()
    msgs = await wait_snapshots(settings, w, done_for(MONTH, PARTITIONS), timeout=120)
    assert diff(expected, latest_decisions(msgs)) == []
    assert {m["close_id"] for m in msgs if m["kind"] == "partition_done"} == {f"auto-{MONTH}"}


async def test_an_estimate_marker_makes_every_partition_emit_the_bill_so_far_equal_to_the_batch_estimate(
    kafka_topics, worker_factory, workload, tmp_path
):
    from datetime import UTC, datetime

    from projections.calendar import Month
    from projections.prices import PriceBook
    from replay.estimate import estimates_from_events
    from streams.markers import send_estimate_markers

    settings = kafka_topics(partitions=PARTITIONS)
    as_of = datetime(2026, 10, 20, tzinfo=UTC)
    known = [e for e in workload if datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) < as_of]
    await publish(settings, [(p[0]["company_id"].encode(), orjson.dumps(p), None) for p in packed(known)])
    w = worker_factory(settings).start()
    await send_estimate_markers(settings, MONTH, estimate_id="e-1", as_of=as_of)
    path = tmp_path / "known.ndjson"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in known))
    batch = estimates_from_events(str(path), Month.parse(MONTH), as_of, PriceBook.load(None))
    companies = {e.company_id for e in batch}

    def complete(ms: list[dict]) -> bool:
        return {m["company_id"] for m in ms if m["kind"] == "company_estimate"} >= companies

    msgs = await wait_snapshots(settings, w, complete, timeout=120)
    got = {(m["company_id"], m["user_id"]): m for m in msgs if m["kind"] == "estimate"}
    want = {(e.company_id, a.decision.user_id): a for e in batch for a in e.accounts}
    assert got.keys() == want.keys()
    for k, a in want.items():
        m = got[k]
        assert (m["status"], m["billable"], m["rule"], m["reason"]) == (
            a.status, a.decision.billable, a.decision.rule, a.decision.reason,
        ), k  # fmt: skip
    assert all(m["provisional"] and m["estimate_id"] == "e-1" for m in msgs if "estimate" in m["kind"])
    assert not [m for m in msgs if m["kind"] in ("decision", "partition_done")]  # nothing closed


async def test_the_worker_asks_for_the_bill_so_far_of_the_current_month_on_its_own_every_period(
    kafka_topics, worker_factory
):
    """`--estimate-every` (SEATLEDGER_ESTIMATE_EVERY_MINUTES, 60 by default): the worker's timer
    sends the estimate markers itself, so estimates of the current (UTC) month arrive with nobody
    running `seatledger estimate`, one run per period."""
    from datetime import UTC, datetime

    from streams.settings import load_settings

    assert load_settings().estimate_every_minutes == 60  # hourly unless told otherwise
    now = datetime.now(UTC)
    month = f"{now.year:04d}-{now.month:02d}"
    settings = kafka_topics(partitions=PARTITIONS)
    events = list(iter_events(2, 20, month, seed=5))
    await publish(settings, [(p[0]["company_id"].encode(), orjson.dumps(p), None) for p in packed(events)])
    w = worker_factory(settings)
    w.env.update(SEATLEDGER_ESTIMATE_EVERY_MINUTES="0.05")  # every 3 s
    w.start()
    companies = {e["company_id"] for e in events}

    def two_runs(ms: list[dict]) -> bool:
        runs = {m["estimate_id"] for m in ms if m["kind"] == "company_estimate" and m["company_id"] in companies}
        return len(runs) >= 2

    msgs = await wait_snapshots(settings, w, two_runs, timeout=120)
    estimates = [m for m in msgs if m["kind"] in ("estimate", "company_estimate")]
    end = datetime.now(UTC)
    months = {month, f"{end.year:04d}-{end.month:02d}"}  # a run at midnight UTC of the 1st is the new month's
    assert all(m["month"] in months and m["provisional"] for m in estimates)
    assert all(m["estimate_id"].startswith(f"{m['month']}-auto-") for m in estimates)
    as_of = {datetime.fromisoformat(m["as_of"].replace("Z", "+00:00")) for m in estimates}
    assert all(now.timestamp() - 5 <= t.timestamp() <= end.timestamp() for t in as_of)
    assert not [m for m in msgs if m["kind"] in ("decision", "partition_done")]  # nothing closed
