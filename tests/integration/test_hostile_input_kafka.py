"""Poison on a real broker: every class of hostile message (tests/support/hostile.POISON_CLASSES)
published between good events to a running `seatledger worker`, `seatledger archive` and
`seatledger sink`, and hostile records on the snapshots topic the sink reads. All three stay up;
the good events are billed exactly as the batch oracle bills them (in the worker's snapshots, in
DuckDB, and in a replay of the archive); every poison message is one dead letter with its reason,
one archived rejection, or (on the snapshots topic) one `sink_rejects` row."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from devtools.workload import iter_events
from ledger.connection import read_connection
from projections.snapshots import company_month_message, decision_message
from replay.archive.layout import read_manifest
from replay.archive.writer import message_rows
from replay.month import run_month
from schemas.control import parse_control
from tests.support.hostile import POISON_CLASSES, nested
from tests.support.services import Service
from tests.support.worker_harness import (
    TopicReader,
    WorkerProcess,
    close_month,
    done_for,
    one_per_message,
    publish,
    wait_snapshots,
    worker_env,
)
from tests.support.worker_oracle import diff, latest_decisions, oracle
from tests.unit.ledger.closes import dec

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-10"
PARTITIONS = 4


def snapshot_poison() -> list[bytes]:
    """Records a broken or hostile producer could put on the snapshots topic: one sink_rejects row each."""
    good = decision_message(dec(company="zz-poison", month=MONTH), version=1)
    cm = company_month_message({"company_id": "zz-poison", "month": MONTH, "lines": []}, [], version=1)
    return [
        b"{not json",
        b"null",
        orjson.dumps(good | {"version": 2**40}),  # no INTEGER column holds it
        orjson.dumps(good | {"unit_price_usd": "1e12"}),
        orjson.dumps(good | {"evidence": "not json"}),
        orjson.dumps(good | {"kind": ["decision"]}),
        orjson.dumps(good)[:-1] + b',"x":' + nested(300) + b"}",
        orjson.dumps(cm | {"invoice": {"lines": [{"plan": "p", "tier": "t", "count": "many", "unit_price_usd": "1"}]}}),
        orjson.dumps(cm | {"mau": [["yesterday", 1]]}),
        orjson.dumps({"kind": "partition_done", "month": MONTH, "partition": "zero", "partitions": 4, "checksum": "x"}),
    ]


def wait_until(pred, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.3)


def db_rows(db: Path, sql: str) -> list[tuple] | None:
    if not db.exists():
        return None
    try:
        with read_connection(db, timeout=5) as con:
            return con.execute(sql).fetchall()
    except Exception:  # not created yet, or the sink holds it
        return None


async def test_poison_between_good_events_stops_nothing_and_bills_the_good_ones(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=PARTITIONS)
    workload = list(iter_events(4, 120, MONTH, seed=21))
    expected = oracle(workload, MONTH)
    poison_msgs: list[tuple[str, bytes]] = []
    messages: list[tuple[bytes | None, bytes, int | None]] = []
    for i, ev in enumerate(workload):
        messages.append((ev["company_id"].encode(), orjson.dumps(ev), None))
        if i % 97 == 50:  # a round of every class, built around this good event
            for name, make in POISON_CLASSES.items():
                raw = make(ev, "evil")
                poison_msgs.append((name, raw))
                messages.append((b"junk" if i % 2 else None, raw, None))
    assert len(poison_msgs) >= 3 * len(POISON_CLASSES)

    data = tmp_path / "data"
    env = worker_env(settings, data)
    env |= {"SEATLEDGER_ARCHIVE_ROOT": str(tmp_path / "archive"), "SEATLEDGER_DB": str(tmp_path / "ledger.duckdb")}
    env |= {"SEATLEDGER_SINK_METRICS_PORT": "-1", "SEATLEDGER_SINK_BATCH_SECONDS": "0.2"}
    logs = [tmp_path / "worker.log", tmp_path / "archive.log", tmp_path / "sink.log"]
    worker = WorkerProcess(env, logs[0])
    archive = sink = None
    try:
        await publish(settings, messages)
        worker.start()
        archive = Service(["archive", "--flush-seconds", "0.2"], env, logs[1]).start()
        sink = Service(["sink"], env, logs[2]).start()
        await close_month(settings, MONTH)

        # The worker bills the good events exactly.
        async with TopicReader(settings, settings.topic_snapshots) as reader:
            snaps = await wait_snapshots(settings, worker, done_for(MONTH, PARTITIONS), timeout=180, reader=reader)
        assert diff(expected, latest_decisions(snaps)) == []
        # hostile records on the snapshots topic too, read by the running sink (after the worker's,
        # which the harness above reads as JSON)
        await publish(
            settings, [(b"zz-poison", raw, None) for raw in snapshot_poison()], topic=settings.topic_snapshots
        )

        # Every poison message is one dead letter with a reason (the mixed pack's first event is good).
        async with TopicReader(settings, settings.topic_dlq) as dlq:
            deadline = time.monotonic() + 60
            while len(dlq.records) < len(poison_msgs) and time.monotonic() < deadline:
                await dlq.poll()
            dead = dlq.values()
        assert len(dead) == len(poison_msgs)
        assert all(d["error"] and d["reason_class"] for d in dead)
        assert Counter(d["reason_class"] for d in dead)["internal_error"] == 0

        # The sink stores the good decisions and one sink_rejects row per hostile record.
        want = len(expected)
        wait_until(
            lambda: (db_rows(tmp_path / "ledger.duckdb", f"SELECT count(*) FROM account_decisions WHERE month = '{MONTH}'") or [(0,)])[0][0] == want,
            120, "the month in DuckDB", logs,
        )  # fmt: skip
        stored = db_rows(
            tmp_path / "ledger.duckdb",
            "SELECT company_id, user_id, month, billable, charged, tier, rule, reason, evidence, "
            f"CAST(unit_price_usd AS VARCHAR), ruleset_version FROM account_decisions WHERE month = '{MONTH}'",
        )
        assert stored is not None
        fields = ("company_id", "user_id", "month", "billable", "charged", "tier", "rule", "reason", "evidence",
                  "unit_price_usd", "ruleset_version")  # fmt: skip
        assert diff(expected, {r[:3]: dict(zip(fields, r, strict=True)) for r in stored}) == []
        rejects = db_rows(tmp_path / "ledger.duckdb", "SELECT error FROM sink_rejects")
        assert rejects is not None and len(rejects) == len(snapshot_poison()) and all(e for (e,) in rejects)

        # The archive holds the accepted events and one rejection per refused element.
        judged = [message_rows(raw) for _, raw, _ in messages if parse_control(raw) is None]
        accepted = sum(len(rows) for rows, _ in judged)
        refused = sum(len(bad) for _, bad in judged)

        def archived() -> tuple[int, int]:
            ms = [read_manifest(tmp_path / "archive", settings.topic_events, p) for p in range(PARTITIONS)]
            return sum(m.events for m in ms if m), sum(m.rejected for m in ms if m)

        wait_until(lambda: archived() == (accepted, refused), 60, f"{accepted} archived, {refused} rejected", logs)
        replayed = run_month(str(tmp_path / "archive"), MONTH, with_mau=False)
        billed = {
            (d.company_id, d.user_id, d.month): d.row() | {"unit_price_usd": str(d.unit_price_usd)}
            for d in replayed.decisions
        }
        assert diff(expected, billed) == []

        # And all three are still up.
        assert worker.alive(), worker.tail()
        assert archive.alive(), archive.tail()
        assert sink.alive(), sink.tail()
    finally:
        worker.stop()
        for svc in (archive, sink):
            if svc is not None:
                svc.stop()


@pytest.mark.parametrize("attacker_first", [True, False], ids=["attacker first", "victim first"])
async def test_reused_ids_across_tenants_bill_alike_on_a_running_worker_and_in_batch(
    kafka_topics, tmp_path, attacker_first
):
    """Issue 10's cross-tenant collision on the real broker: `evil` reuses every event id of c1
    and c2 (tests.unit.test_tenant_isolation builds the events). A running worker bills what the
    batch replay of the same events bills, and c1's account is billed."""
    from tests.unit.test_tenant_isolation import OCT, batch_rows, victim_and_attacker

    events = victim_and_attacker(attacker_first)
    settings = kafka_topics(partitions=PARTITIONS)
    await publish(settings, one_per_message(events))
    worker = WorkerProcess(worker_env(settings, tmp_path / "data"), tmp_path / "worker.log").start()
    try:
        await close_month(settings, OCT)
        streamed = latest_decisions(await wait_snapshots(settings, worker, done_for(OCT, PARTITIONS), timeout=180))
    finally:
        worker.stop()
    nd = tmp_path / "events.ndjson"
    nd.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    batch = batch_rows(run_month(str(nd), OCT, with_mau=False))
    assert diff(batch, streamed) == []
    assert diff(oracle(events, OCT), streamed) == []
    ann = streamed[("c1", "ann", OCT)]
    assert (ann["billable"], ann["charged"], ann["unit_price_usd"]) == (True, True, "6.00")
