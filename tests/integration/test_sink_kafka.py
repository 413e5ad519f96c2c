"""The sink against the real broker: `seatledger sink` as a subprocess, killed -9 mid-stream and
restarted: no row lost, none duplicated; analysts reading from another process meanwhile.

Snapshot messages are produced here from decide() results over a generated month (not by the
worker), shaped and keyed like the worker's: decisions and company_months keyed by company,
partition_done keyed by the worker partition's number (so they land on other topic partitions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from devtools.workload import iter_events
from ledger.connection import read_connection
from projections.calendar import Month
from projections.decide import decide_company
from projections.facts import fold_all
from projections.invoice import build_invoice
from projections.prices import PriceBook
from projections.snapshots import (
    checksum,
    company_month_message,
    decision_message,
    dispute_applied_message,
    partition_done_message,
)
from schemas import validate_event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-02"
WORKER_PARTITIONS = 3


@functools.cache
def month_decisions(companies: int, accounts: int, month: str = MONTH, seed: int = 11):
    """(company -> (CompanyMonth, [Decision])) for a generated month, via fold_all + decide_company."""
    events = [validate_event(e) for e in iter_events(companies, accounts, month, seed=seed)]
    facts = fold_all(events)
    m = Month.parse(month)
    prices = PriceBook.load()
    cids = sorted({c for c, _ in facts.accounts} | set(facts.companies))
    out = {}
    for cid in cids:
        accts = {u: a for (c, u), a in facts.accounts.items() if c == cid}
        act = {u: a for (c, u, mm), a in facts.activity.items() if c == cid and mm == m}
        out[cid] = decide_company(cid, m, facts.company(cid), accts, act, prices)
    return out


def close_records(per_company, month=MONTH, partitions=WORKER_PARTITIONS, close_id="close-it"):
    """(key, value) records of one close, in the worker's order per partition."""
    recs, expected = [], Counter()
    for p in range(partitions):
        cids = [c for c in per_company if zlib.crc32(c.encode()) % partitions == p]
        decs_p = []
        for cid in cids:
            cm, decs = per_company[cid]
            for d in decs:
                recs.append(
                    (
                        cid.encode(),
                        orjson.dumps(
                            decision_message(d, version=1, in_report=d.billable, close_id=close_id, partition=p)
                        ),
                    )
                )
            decs_p.extend(decs)
            inv = build_invoice(cm, decs).to_json()
            recs.append((cid.encode(), orjson.dumps(company_month_message(inv, [], close_id=close_id, partition=p))))
        recs.append(
            (
                str(p).encode(),
                orjson.dumps(
                    partition_done_message(
                        month,
                        p,
                        partitions,
                        close_id=close_id,
                        companies=len(cids),
                        accounts=len(decs_p),
                        checksum_=checksum(decs_p),
                        counts={
                            "events_counted": 1000 + p,
                            "rejected": p,
                            "duplicates_ignored": 1,
                            "late_since_close": 0,
                        },
                    )
                ),
            )
        )
        expected["decisions"] += len(decs_p)
    expected["companies"] = len(per_company)
    return recs, expected


async def _produce(settings, records, packed: int = 0):
    prod = AIOKafkaProducer(**settings.kafka_client_kwargs(), enable_idempotence=True, linger_ms=20)
    await prod.start()
    try:
        futs = [await prod.send(settings.topic_snapshots, v, key=k) for k, v in records]
        await asyncio.gather(*futs)
    finally:
        await prod.stop()


def produce(settings, records):
    asyncio.run(_produce(settings, records))


def sink_env(settings, db: Path, **extra) -> dict:
    return {
        **os.environ,
        "SEATLEDGER_BOOTSTRAP": settings.bootstrap,
        "SEATLEDGER_TOPIC_SNAPSHOTS": settings.topic_snapshots,
        "SEATLEDGER_DB": str(db),
        "SEATLEDGER_SINK_METRICS_PORT": "-1",
        **{k: str(v) for k, v in extra.items()},
    }


def start_sink(env: dict, log_path: Path) -> subprocess.Popen:
    fp = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "seatledger.cli", "sink"],
        env=env,
        stdout=fp,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_sink(proc: subprocess.Popen, sig=signal.SIGTERM, timeout=60) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout)


def read(db: Path, sql: str, timeout: float = 30.0):
    with read_connection(db, timeout=timeout) as con:
        return con.execute(sql).fetchall()


def wait_until(pred, timeout: float, what: str, log_path: Path | None = None, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    tail = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def total_written(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return read(db, "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets")[0][0]
    except duckdb.CatalogException:
        return 0


def kill_if_running(*procs: subprocess.Popen) -> None:
    """After a test's body, whatever happened in it: no sink or reader left behind."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def batches_in_log(log_path: Path) -> int:
    return log_path.read_text().count("event=batch_written") if log_path.exists() else 0


def shift_month(per_company, month):
    """The same companies and decisions, as another month (synthetic, for a second close)."""
    out = {}
    for cid, (cm, decs) in per_company.items():
        out[cid] = (
            dataclasses.replace(cm, month=Month.parse(month)),
            [dataclasses.replace(d, month=month) for d in decs],
        )
    return out


def test_kill_9_and_restart_loses_and_duplicates_nothing(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=4)
    db, log_path = tmp_path / "sink.duckdb", tmp_path / "sink.log"
    feb = month_decisions(12, 2500)
    mar = shift_month(feb, "2026-03")
    feb_recs, expected = close_records(feb)
    # Phase 2: redeliveries of 300 records (a worker that crashed and re-emitted), a late event that
    # amends 40 February decisions, a dispute amending 5 more (one packed record, with its
    # dispute_applied message), then March's close.
    phase2 = feb_recs[:300]
    decs = [d for _, ds in feb.values() for d in ds]
    amounts = Counter()
    for d in decs[:40]:
        nd = dataclasses.replace(
            d,
            charged=not d.charged,
            billable=True,
            unit_price_usd=Decimal("9.99") if not d.charged else Decimal("0.00"),
        )
        amounts[d.company_id] += (nd.unit_price_usd if nd.charged else 0) - (d.unit_price_usd if d.charged else 0)
        phase2.append(
            (
                d.company_id.encode(),
                orjson.dumps(
                    decision_message(nd, version=2, corrects_version=1, amend_reason="late_event", partition=0)
                ),
            )
        )
    disputed = [dataclasses.replace(d, reason="dispute_fix") for d in decs[100:105]]
    packed = [decision_message(nd, version=2, corrects_version=1, amend_reason="dispute:T-42") for nd in disputed]
    packed.append(
        dispute_applied_message(
            "T-42",
            disputed[0].company_id,
            MONTH,
            requested_by="ops",
            applied_at="2026-03-05T10:00:00Z",
            changes=[{"n": 5}],
        )
    )
    phase2.append((disputed[0].company_id.encode(), orjson.dumps(packed)))
    mar_recs, mar_expected = close_records(mar, month="2026-03", close_id="close-mar")
    phase2 += mar_recs
    n1, n_records = len(feb_recs), len(feb_recs) + len(phase2)

    # small transactions even while behind, so that the kill lands between phase 2's batches
    env = sink_env(
        settings,
        db,
        SEATLEDGER_SINK_BATCH_MESSAGES=200,
        SEATLEDGER_SINK_BATCH_SECONDS=0.2,
        SEATLEDGER_SINK_BATCH_MAX_MESSAGES=200,
    )
    proc = start_sink(env, log_path)
    try:
        produce(settings, feb_recs)
        wait_until(lambda: total_written(db) == n1, 60, "February written", log_path)
        batches_before = batches_in_log(log_path)
        produce(settings, phase2)
        wait_until(lambda: batches_in_log(log_path) >= batches_before + 2, 60, "two more batches", log_path, 0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        written_at_kill = total_written(db)
        assert n1 < written_at_kill < n_records, "the kill must land mid-stream"
        proc = start_sink(env, log_path)
        wait_until(lambda: total_written(db) == n_records, 120, "every record written after restart", log_path)
        assert stop_sink(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    n_dec, n_co = expected["decisions"], expected["companies"]
    with read_connection(db) as con:

        def q(sql):
            return con.execute(sql).fetchall()

        assert q("SELECT month, version, count(*) FROM snapshot_versions GROUP BY ALL ORDER BY ALL") == [
            (MONTH, 1, n_dec),
            (MONTH, 2, 45),
            ("2026-03", 1, n_dec),
        ]
        assert q(
            "SELECT count(*) FROM (SELECT DISTINCT company_id, user_id, month, version FROM snapshot_versions)"
        ) == [(2 * n_dec + 45,)]
        assert q(
            "SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM snapshot_versions "
            "WHERE amend_reason IS DISTINCT FROM 'dispute:T-42')"
        ) == [(2 * n_dec + 40,)]
        assert q("SELECT count(*) FROM account_decisions") == [(2 * n_dec,)]
        assert q("SELECT count(*) FROM company_month_versions") == [(2 * n_co,)]
        assert q("SELECT month, count(*) FROM invoices GROUP BY month ORDER BY month") == [
            (MONTH, n_co),
            ("2026-03", n_co),
        ]
        assert q("SELECT count(*) FROM partition_reports") == [(2 * WORKER_PARTITIONS,)]
        assert q("SELECT count(*) FROM disputes") == [(1,)]
        assert q(
            "SELECT month, complete, checksums_match, decisions, decisions_reported FROM close_certificates "
            "ORDER BY month"
        ) == [(MONTH, True, True, n_dec, n_dec), ("2026-03", True, True, n_dec, n_dec)]
        assert q("SELECT sum(next_offset) FROM sink_offsets") == [(n_records,)]
        assert q("SELECT count(*) FROM sink_rejects") == [(0,)]
        # February's invoices equal build_invoice over the same decisions; the 45 corrections
        # became adjustments carried by March's invoices
        feb_inv = dict(q(f"SELECT company_id, subtotal_usd FROM invoices WHERE month = '{MONTH}'"))
        assert feb_inv == {c: build_invoice(cm, ds).subtotal_usd for c, (cm, ds) in feb.items()}
        assert q(
            "SELECT count(*), count(*) FILTER (WHERE applied_to_invoice_month = '2026-03') FROM invoice_adjustments"
        ) == [(45, 45)]
        mar_adj = {c: a for c, a in q("SELECT company_id, adjustments_usd FROM invoices WHERE month = '2026-03'") if a}
        assert mar_adj == {c: a for c, a in amounts.items() if a}
    log_text = log_path.read_text()
    assert log_text.count("event=sink_started") == 2 and "resume=beginning" in log_text
    print(f"killed after {written_at_kill - n1} of {n_records - n1} phase-2 records were written")


def test_a_backlog_is_written_in_larger_transactions_then_small_ones_once_caught_up(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=4)
    db, log_path = tmp_path / "sink.duckdb", tmp_path / "sink.log"
    recs, expected = close_records(month_decisions(12, 2500))
    produce(settings, recs)  # a backlog: the whole close is in Kafka before the sink starts
    env = sink_env(
        settings,
        db,
        SEATLEDGER_SINK_BATCH_MESSAGES=100,
        SEATLEDGER_SINK_BATCH_SECONDS=0.2,
        SEATLEDGER_SINK_BATCH_MAX_MESSAGES=1000,
    )

    def batches() -> list[int]:  # from the log: a reader polling the file would make the sink wait
        text = log_path.read_text() if log_path.exists() else ""
        return [int(m) for m in re.findall(r"event=batch_written batch=\d+ messages=(\d+)", text)]

    proc = start_sink(env, log_path)
    try:
        wait_until(lambda: sum(batches()) == len(recs), 120, "the backlog written", log_path)
        backlog = batches()
        produce(settings, recs[:5])  # caught up: five redeliveries, written as one small batch
        wait_until(lambda: sum(batches()) == len(recs) + 5, 60, "the redeliveries written", log_path)
        assert stop_sink(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert max(backlog) == 1000 and len(backlog) <= len(recs) // 1000 + 3, backlog
    # the next batch was read while one was being written (the write runs in a thread)
    overlap = re.search(r"event=sink_stopped .* fetched_while_writing=(\d+)", log_path.read_text())
    assert overlap is not None and int(overlap.group(1)) > 0, log_path.read_text()[-2000:]
    assert read(db, "SELECT messages, duplicates_skipped FROM sink_batches ORDER BY batch_id DESC LIMIT 1") == [(5, 5)]
    assert read(db, "SELECT count(*) FROM account_decisions") == [(expected["decisions"],)]


READER = r"""
import sys, time, json, duckdb
from ledger.connection import connect
db, month, n_expected, stop_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import os
waits, seen, partial = [], [], 0
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    if not os.path.exists(db):
        time.sleep(0.05); continue
    t0 = time.monotonic()
    try:
        con = connect(db, read_only=True, timeout=30)
    except duckdb.Error:
        time.sleep(0.05); continue
    waits.append(time.monotonic() - t0)
    try:
        n = con.execute("SELECT count(*) FROM account_decisions WHERE month = ?", [month]).fetchall()[0][0]
        inv = con.execute("SELECT count(*) FROM invoices WHERE month = ?", [month]).fetchall()[0][0]
    except duckdb.CatalogException:
        n, inv = -1, -1
    finally:
        con.close()
    seen.append([n, inv])
    if n not in (-1, 0, n_expected):
        partial += 1
    if os.path.exists(stop_file):
        break
    time.sleep(0.02)
print(json.dumps({"waits": waits, "seen": seen, "partial": partial}))
"""


def test_readers_in_another_process_never_see_half_a_month(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=4)
    db, log_path, stop_file = tmp_path / "sink.duckdb", tmp_path / "sink.log", tmp_path / "stop"
    per_company = month_decisions(20, 6000, seed=5)
    recs, expected = close_records(per_company)
    n_dec = expected["decisions"]

    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db), MONTH, str(n_dec), str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = sink_env(
        settings,
        db,
        SEATLEDGER_SINK_BATCH_MESSAGES=1000,
        SEATLEDGER_SINK_BATCH_SECONDS=0.3,
        SEATLEDGER_SINK_METRICS_PORT=0,
    )
    t0 = time.monotonic()
    proc = start_sink(env, log_path)
    try:
        # the close trickles in over ~4 s, so the sink writes it in many batches while the reader reads
        chunks = 20
        step = -(-len(recs) // chunks)
        for i in range(0, len(recs), step):
            produce(settings, recs[i : i + step])
            time.sleep(0.2)
        wait_until(lambda: total_written(db) == len(recs), 180, "the close written", log_path)
        elapsed = time.monotonic() - t0
        stop_file.touch()
        out, err = reader.communicate(timeout=120)
        text = log_path.read_text()
        port = int(re.search(r"event=metrics_listening host=\S+ port=(\d+)", text).group(1))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert stop_sink(proc) == 0
    finally:
        kill_if_running(proc, reader)
    res = orjson.loads(out)
    assert res["partial"] == 0, res["seen"]
    assert [n_dec, expected["companies"]] in res["seen"]
    waits = sorted(res["waits"])
    assert waits and max(waits) < 5.0
    rows = read(db, "SELECT sum(rows_written), count(*) FROM sink_batches")[0]
    batch_lines = [float(x) for x in re.findall(r"event=batch_written .* seconds=([\d.]+)", text)]
    report = (
        f"reader: {len(waits)} opens, wait p50={statistics.median(waits) * 1000:.1f}ms "
        f"p95={waits[int(len(waits) * 0.95) - 1] * 1000:.1f}ms max={waits[-1] * 1000:.1f}ms; "
        f"sink: {rows[0]} rows in {rows[1]} batches, {elapsed:.1f}s wall incl. start, "
        f"{rows[0] / sum(batch_lines):.0f} rows/s while writing"
    )
    print(report)
    (tmp_path.parent / "sink-reader-report.txt").write_text(report + "\n")
    assert "seatledger_sink_batches_total" in metrics and "seatledger_sink_db_lock_waits_total" in metrics
    assert "seatledger_sink_lag" in metrics


PATIENT_READER = r"""
import json, os, sys, time
from datetime import datetime, UTC
import duckdb
from ledger.connection import connect
db, stop_file = sys.argv[1], sys.argv[2]
passed = []  # per open: batches the sink committed while this reader waited for the file
while not os.path.exists(stop_file):
    if not os.path.exists(db):
        time.sleep(0.05); continue
    since = datetime.now(UTC)
    try:
        con = connect(db, read_only=True, timeout=60)
    except duckdb.Error:
        time.sleep(0.05); continue
    try:
        passed.append(con.execute("SELECT count(*) FROM sink_batches WHERE written_at > ?", [since]).fetchall()[0][0])
    except duckdb.CatalogException:
        pass
    finally:
        con.close()
    time.sleep(0.3)
print(json.dumps(passed))
"""


def test_a_reader_gets_the_file_between_the_batches_of_a_backlog(kafka_topics, tmp_path):
    """The sink writes a backlog batch after batch (the next one read while one is written), yet
    leaves the file free between two: a reader retrying to open it never waits past one batch."""
    settings = kafka_topics(partitions=4)
    db, log_path, stop_file = tmp_path / "sink.duckdb", tmp_path / "sink.log", tmp_path / "stop"
    recs, expected = close_records(month_decisions(20, 6000, seed=5))
    produce(settings, recs)
    env = sink_env(
        settings,
        db,
        SEATLEDGER_SINK_BATCH_MESSAGES=100,
        SEATLEDGER_SINK_BATCH_SECONDS=0.2,
        SEATLEDGER_SINK_BATCH_MAX_MESSAGES=300,
        SEATLEDGER_SINK_BUFFER_MESSAGES=600,  # a batch stays small even after waiting for the reader
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", PATIENT_READER, str(db), str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = start_sink(env, log_path)
    try:
        wait_until(lambda: total_written(db) == len(recs), 120, "the backlog written", log_path)
        stop_file.touch()
        out, err = reader.communicate(timeout=120)
        assert stop_sink(proc) == 0
    finally:
        kill_if_running(proc, reader)
    passed = orjson.loads(out)
    assert batches_in_log(log_path) >= 8 and len(passed) >= 5, (batches_in_log(log_path), passed, err)
    assert max(passed) <= 1, passed
    assert read(db, "SELECT count(*) FROM account_decisions") == [(expected["decisions"],)]
