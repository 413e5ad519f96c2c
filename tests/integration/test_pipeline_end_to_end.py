"""The whole pipeline as an operator runs it, on the real broker: two workers in one group, two
sinks writing the same DuckDB file, the archive; events published with `seatledger publish`, one
worker and one sink killed with kill -9 half-way, the month closed with `seatledger close`.

What DuckDB holds at the end must be what `seatledger replay` and `seatledger invoice` compute from
the same file, column by column, with each account-month stored once; `seatledger verify` (the
archive against DuckDB) must be clean. Then events about the closed month arrive late while a
third worker joins: the amendments reach DuckDB, the ledger equals the replay of every event again,
and the adjustments carried to the next invoices add up to the change of each company's subtotal.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from devtools.workload import iter_events, write_ndjson
from ledger.connection import read_connection
from projections.decide import DECISION_COLUMNS
from tests.support.kafka_readback import archive_caught_up
from tests.support.ledger_file import db_rows
from tests.support.services import ROOT, Service, wait_for
from tests.support.worker_harness import WorkerProcess, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-10"
PARTITIONS = 6


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "seatledger.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"seatledger {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def write(path: Path, events: list[dict]) -> Path:
    with open(path, "wb") as fp:
        write_ndjson(events, fp)
    return path


def stored_decisions(db: Path) -> list[dict]:
    with read_connection(db) as con:
        cur = con.execute("SELECT * FROM account_decisions WHERE month = ? ORDER BY company_id, user_id", [MONTH])
        assert tuple(d[0] for d in cur.description) == DECISION_COLUMNS
        rows = [dict(zip(DECISION_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["unit_price_usd"] = str(r["unit_price_usd"])
    return rows


def replayed_decisions(env: dict[str, str], events: Path) -> list[dict]:
    out = cli(env, "replay", "--events", str(events), "--month", MONTH, "--format", "jsonl").stdout
    rows = [orjson.loads(line) for line in out.splitlines() if line]
    return sorted(rows, key=lambda r: (r["company_id"], r["user_id"]))


def late_events(decisions: list[dict]) -> list[dict]:
    """Events about the closed month that arrive after its close, per company: a billed account
    deactivated before the month began, an unbilled one active mid-month, a new account."""
    out: list[dict] = []
    for cid in sorted({d["company_id"] for d in decisions}):
        own = [d for d in decisions if d["company_id"] == cid]
        charged = [d["user_id"] for d in own if d["charged"]]
        idle = [d["user_id"] for d in own if not d["billable"]]
        late = {"company_id": cid, "source": "admin-console"}
        if charged:
            out.append({**late, "type": "deactivate", "user_id": charged[0], "occurred_at": "2026-09-20T12:00:00Z"})
        if idle:
            out.append({"company_id": cid, "type": "login", "user_id": idle[0], "occurred_at": "2026-10-15T12:00:00Z"})
        new = {"user_id": f"u-late-{cid}", "employment": "employee", "occurred_at": "2026-09-10T12:00:00Z"}
        out.append({**late, "type": "account_provisioned", **new, "source": "hris-sync"})
    return [{"event_id": f"late-{i}", **e} for i, e in enumerate(out)]


def test_two_workers_two_sinks_and_kills_store_exactly_what_the_replay_computes(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=PARTITIONS)
    db, root = tmp_path / "seatledger.duckdb", tmp_path / "archive"
    env = {
        **worker_env(settings, tmp_path / "data", "e2e"),
        "SEATLEDGER_DB": str(db),
        "SEATLEDGER_ARCHIVE_ROOT": str(root),
        "SEATLEDGER_SINK_METRICS_PORT": "-1",
        "SEATLEDGER_ARCHIVE_METRICS_PORT": "-1",
        "SEATLEDGER_SINK_BATCH_MESSAGES": "150",  # many small transactions, so the two sinks interleave
    }
    events = list(iter_events(6, 1200, MONTH, seed=23, activity=0.3))
    half = len(events) // 2
    whole = write(tmp_path / "events.ndjson", events)
    first, second = write(tmp_path / "first.ndjson", events[:half]), write(tmp_path / "second.ndjson", events[half:])

    a = WorkerProcess(env, tmp_path / "worker-a.log").start()
    b = WorkerProcess(env, tmp_path / "worker-b.log").start()
    workers = [a, b]
    sinks = [Service(["sink"], env, tmp_path / f"sink-{i}.log").start() for i in (1, 2)]
    archive = Service(["archive", "--flush-seconds", "0.2"], env, tmp_path / "archive.log").start()
    services = [*sinks, archive]
    try:
        cli(env, "publish", "--pack", "50", "--no-progress", str(first))
        b.kill9()  # one worker dies half-way: A takes its partitions once B's session expires
        cli(env, "publish", "--pack", "50", "--no-progress", str(second))
        cli(env, "close", "--month", MONTH)
        batches = "SELECT count(*) >= 1 FROM sink_batches"
        wait_for(lambda: db_rows(db, batches) == [(True,)], 300, "the sinks writing the close", *services)
        sinks[1].proc.kill()  # one sink dies (kill -9) while the close streams in, and comes back
        sinks[1].proc.wait(10)
        sinks[1] = Service(["sink"], env, tmp_path / "sink-2b.log").start()
        services = [*sinks, archive]
        complete = f"SELECT complete FROM month_closes WHERE month = '{MONTH}'"
        wait_for(lambda: db_rows(db, complete) == [(True,)], 300, "the month complete in DuckDB", *services)
        wait_for(lambda: archive_caught_up(settings, root), 120, "the archive", archive)
        assert a.alive(), a.tail()

        # Every account-month stored once, and equal to the replay of the same file.
        assert stored_decisions(db) == replayed_decisions(env, whole)
        assert (
            db_rows(db, "SELECT count(*), count(DISTINCT (company_id, user_id, month)) FROM snapshot_versions")[0]
            == (len(stored_decisions(db)),) * 2
        )
        assert db_rows(db, "SELECT count(*) FROM sink_rejects") == [(0,)]

        # The invoices DuckDB issued are those `seatledger invoice` computes from the file.
        computed = orjson.loads(
            cli(env, "invoice", "--events", str(whole), "--month", MONTH, "--format", "json").stdout
        )
        issued = db_rows(db, f"SELECT company_id, subtotal_usd, total_usd FROM invoices WHERE month = '{MONTH}'")
        assert sorted(issued) == sorted(
            (i["company_id"], Decimal(i["subtotal_usd"]), Decimal(i["total_usd"])) for i in computed
        )

        # The archive holds every event, and recomputing the month from it matches DuckDB.
        verified = cli(env, "verify", "--month", MONTH)
        assert "clean" in verified.stdout, verified.stdout

        # Late events while a third worker joins: the amendments reach DuckDB as new versions, and
        # the ledger equals the replay of every event again; each change becomes an adjustment.
        late = late_events(stored_decisions(db))
        c = WorkerProcess(env, tmp_path / "worker-c.log").start()
        workers.append(c)
        cli(env, "publish", "--no-progress", str(write(tmp_path / "late.ndjson", late)))
        everything = write(tmp_path / "everything.ndjson", [*events, *late])
        want = replayed_decisions(env, everything)
        assert want != replayed_decisions(env, whole), "the late events change nothing: a weak test"
        wait_for(lambda: stored_decisions(db) == want, 240, "the amendments in DuckDB", a, c, *services)
        assert db_rows(db, "SELECT count(*) FROM snapshot_versions WHERE corrects_version IS NOT NULL")[0][0] > 0
        recomputed = orjson.loads(
            cli(env, "invoice", "--events", str(everything), "--month", MONTH, "--format", "json").stdout
        )
        adjusted = dict(
            db_rows(
                db,
                f"SELECT company_id, sum(amount_usd) FROM invoice_adjustments WHERE corrected_month = '{MONTH}' GROUP BY ALL",
            )
        )
        moved = f"SELECT count(*) FROM invoice_adjustments WHERE corrected_month = '{MONTH}' AND amount_usd <> 0"
        assert db_rows(db, moved)[0][0] > 0, "no adjustment moved money: a weak test"
        for now, (cid, subtotal, _) in zip(
            sorted(recomputed, key=lambda i: i["company_id"]), sorted(issued), strict=True
        ):
            assert Decimal(now["subtotal_usd"]) - subtotal == adjusted.get(cid, Decimal("0.00")), cid
    finally:
        for s in services:
            s.stop()
        for w in workers:
            w.stop()
