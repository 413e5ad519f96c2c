"""End to end with the real broker: worker, sink and archive as processes; a month closed; a late
deactivation the worker never saw; `seatledger dispute` shows it, `--apply` corrects it through the
sink (one amendment, one adjustment line), a second apply changes nothing; `seatledger verify` is
clean on the normal run and exits 1 on a tampered DuckDB row."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from devtools.workload import iter_events
from tests.support.kafka_readback import archive_caught_up
from tests.support.ledger_file import db_rows
from tests.support.worker_harness import (
    WorkerProcess,
    close_month,
    done_for,
    one_per_message,
    publish,
    wait_snapshots,
    worker_env,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MONTH = "2026-10"
CO = "c-dispute"


def ev(eid, kind, at, user=None, **extra):
    out = {"event_id": eid, "type": kind, "occurred_at": at, "company_id": CO, **extra}
    if user is not None:
        out["user_id"] = user
    return out


OWN = [
    ev("reg", "company_registered", "2026-08-01T08:00:00Z", timezone="Europe/Amsterdam"),
    *(ev(f"p{u}", "account_provisioned", "2026-09-01T08:00:00Z", f"u-{u}") for u in range(1, 4)),
    ev("l1", "login", "2026-10-02T07:00:00Z", "u-1"),
    ev("n2", "notification_view", "2026-10-04T07:00:00Z", "u-2", channel="mobile"),
    ev("v3", "visit", "2026-10-05T07:00:00Z", "u-3", channel="web"),
]
LATE = ev("late-d3", "deactivate", "2026-10-20T09:00:00Z", "u-3")


def run(env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seatledger.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(env, log: Path, *args) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    p = subprocess.Popen([sys.executable, "-m", "seatledger.cli", *args], env=env, cwd=ROOT, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    out.close()
    return p


def stop(p: subprocess.Popen) -> int | None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            return p.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    return p.returncode


def wait(pred, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    tails = "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:]) for p in logs if p.exists()
    )
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def test_dispute_end_to_end(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=3)
    data = tmp_path / "data"
    root = tmp_path / "archive"
    db = tmp_path / "seatledger.duckdb"
    env = {
        **worker_env(settings, data),
        "SEATLEDGER_DB": str(db),
        "SEATLEDGER_ARCHIVE_ROOT": str(root),
        "SEATLEDGER_SINK_METRICS_PORT": "0",
    }
    logs = {n: tmp_path / f"{n}.log" for n in ("worker", "sink", "archive")}
    worker = WorkerProcess(env, logs["worker"]).start()
    sink = spawn(env, logs["sink"], "sink", "--metrics-port", "-1")
    arch = spawn(env, logs["archive"], "archive", "--flush-seconds", "0.2")
    try:
        bulk = list(iter_events(companies=3, accounts=30, month=MONTH, seed=3, activity=0.3))
        events = [e for e in bulk if e["occurred_at"] < "2026-11"] + OWN
        asyncio.run(publish(settings, one_per_message(events)))
        asyncio.run(close_month(settings, MONTH))
        asyncio.run(wait_snapshots(settings, worker, done_for(MONTH, settings.partitions), timeout=240))
        wait(
            lambda: db_rows(db, "SELECT 1 FROM month_completions WHERE month = ?", [MONTH]),
            120,
            "the month complete in DuckDB",
            list(logs.values()),
        )
        wait(lambda: archive_caught_up(settings, root), 120, "the archive", list(logs.values()))

        ok = run(env, "verify", "--month", MONTH)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "clean" in ok.stdout
        stored = int(ok.stdout.split(" stored row(s)")[0].rsplit(" ", 1)[1])
        assert stored > 30, ok.stdout  # the workload's accounts and ours
        print(ok.stdout)

        # The worker is down when the late deactivation arrives: the bill does not know it.
        assert worker.stop() == 0
        asyncio.run(publish(settings, [(CO.encode(), orjson.dumps(LATE), None)]))
        wait(lambda: archive_caught_up(settings, root), 60, "the archive", list(logs.values()))

        rep = run(env, "dispute", "--company", CO, "--month", MONTH)
        assert rep.returncode == 0, rep.stderr
        assert "differences: 1." in rep.stdout and "### u-3: v1: charged" in rep.stdout
        assert "`late-d3` at 2026-10-20T11:00:00+02:00" in rep.stdout
        assert "reproduces v1 exactly" in rep.stdout
        print(rep.stdout)
        assert run(env, "dispute", "--company", CO, "--month", MONTH).stdout == rep.stdout  # deterministic

        versions_before = db_rows(db, "SELECT count(*) FROM snapshot_versions")[0][0]
        applied = run(env, "dispute", "--company", CO, "--month", MONTH, "--apply", "--reference", "SUP-42",
                      "--requested-by", "ann", "--timeout", "90")  # fmt: skip
        assert applied.returncode == 0, applied.stdout + applied.stderr
        print(applied.stdout[applied.stdout.index("## Applied") :])
        assert "## Applied ticket SUP-42" in applied.stdout and "- u-3: v2 (corrects v1)" in applied.stdout
        amended = db_rows(
            db, "SELECT user_id, version, charged FROM snapshot_versions WHERE amend_reason = 'dispute:SUP-42'"
        )
        assert amended == [("u-3", 2, False)]
        adj = db_rows(
            db,
            "SELECT user_id, corrects_version, new_version, amount_usd FROM invoice_adjustments WHERE reason = 'dispute:SUP-42'",
        )
        assert len(adj) == 1 and adj[0][:3] == ("u-3", 1, 2) and adj[0][3] < 0
        assert db_rows(db, "SELECT count(*) FROM disputes WHERE ticket = 'SUP-42'") == [(1,)]
        assert db_rows(db, "SELECT count(*) FROM snapshot_versions")[0][0] == versions_before + 1

        again = run(
            env, "dispute", "--company", CO, "--month", MONTH, "--apply", "--reference", "SUP-42", "--timeout", "30"
        )
        assert again.returncode == 0 and "already applied" in again.stdout
        assert "None: every billed decision" in again.stdout
        time.sleep(2)  # give a (wrongly) published message time to reach DuckDB
        assert db_rows(db, "SELECT count(*) FROM snapshot_versions")[0][0] == versions_before + 1
        assert len(db_rows(db, "SELECT 1 FROM invoice_adjustments WHERE reason = 'dispute:SUP-42'")) == 1

        clean = run(env, "verify", "--month", MONTH, "--company", CO)
        assert clean.returncode == 0, clean.stdout + clean.stderr
    finally:
        worker.stop()
        sink_rc = stop(sink)
        stop(arch)
    assert sink_rc == 0

    con = duckdb.connect(str(db))
    con.execute(
        "UPDATE snapshot_versions SET reason = 'tampered' WHERE company_id = ? AND user_id = 'u-1' AND month = ?",
        [CO, MONTH],
    )
    con.close()
    bad = run(env, "verify", "--month", MONTH)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"differs  {CO}/u-1: reason: stored tampered != recomputed active_full_month" in bad.stdout
