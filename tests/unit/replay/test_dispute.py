"""Dispute report, verify and rule-set versions on fixture data: a small archive and a small DuckDB
file built here with the sink's own schema (ledger.tables.ensure_schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from ledger.tables import ensure_schema
from projections.calendar import Month, to_us
from projections.decide import decide_month
from projections.prices import PriceBook
from projections.snapshots import decision_row, digest
from replay import dispute, verify
from replay.archive.writer import ArchiveWriter
from seatledger.cli import app

OCT = Month(2026, 10)
CLOSE = "2026-11-01T02:00:00Z"


def us(text: str) -> int:
    return to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))


def ev(eid, kind, at, user="u-1", company="c-1", **extra):
    out = {"event_id": eid, "type": kind, "occurred_at": at, "company_id": company, **extra}
    if user is not None:
        out["user_id"] = user
    return out


# (event, published at): everything reached Kafka by the close, except the late deactivation.
EVENTS = [
    (
        ev("reg", "company_registered", "2026-08-01T08:00:00Z", None, timezone="Europe/Amsterdam"),
        "2026-08-01T08:00:01Z",
    ),
    (ev("p1", "account_provisioned", "2026-09-01T08:00:00Z", "u-1"), "2026-09-01T08:00:01Z"),
    (ev("p2", "account_provisioned", "2026-09-01T08:00:00Z", "u-2"), "2026-09-01T08:00:01Z"),
    (ev("p3", "account_provisioned", "2026-09-01T08:00:00Z", "u-3"), "2026-09-01T08:00:01Z"),
    (ev("p4", "account_provisioned", "2026-10-03T08:00:00Z", "u-4"), "2026-10-03T08:00:01Z"),
    (ev("l1", "login", "2026-10-02T07:00:00Z", "u-1"), "2026-10-02T07:00:01Z"),
    (ev("l1", "login", "2026-10-02T07:00:00Z", "u-1"), "2026-10-02T07:00:09Z"),  # redelivered
    (ev("n2", "notification_view", "2026-10-04T07:00:00Z", "u-2", channel="mobile"), "2026-10-04T07:00:01Z"),
    (ev("v3", "visit", "2026-10-05T07:00:00Z", "u-3", channel="web"), "2026-10-05T07:00:01Z"),
    (ev("x", "login", "2026-10-05T07:00:00Z", "u-9", company="c-2"), "2026-10-05T07:00:01Z"),
    (ev("d3", "deactivate", "2026-10-20T09:00:00Z", "u-3"), "2026-11-05T10:00:00Z"),  # late
]


def build_archive(root: Path, events=EVENTS) -> Path:
    w = ArchiveWriter(root, "t.events", clock=lambda: us("2026-11-06T00:00:00Z"))
    w.open_partition(0)
    for i, (e, pub) in enumerate(events):
        w.add(0, i, orjson.dumps(e), us(pub))
    w.flush()
    return root


def decisions_at(archive_root: Path, published_before: str, ruleset: str, company: str = "c-1"):
    """What a close at `published_before` would have billed (the worker's job, done here by hand)."""
    facts, _ = verify.archive_facts(
        archive_root, OCT.next(), company_id=company, published_upto_us=us(published_before)
    )
    ((_, _, decisions),) = decide_month(facts, OCT, PriceBook.load(), ruleset, [company])
    return decisions


def build_db(path: Path, decisions, emitted_at: str = CLOSE, complete: bool = True) -> Path:
    con = duckdb.connect(str(path))
    ensure_schema(con)
    for i, d in enumerate(decisions):
        r = decision_row(d)
        con.execute(
            "INSERT INTO snapshot_versions (company_id, user_id, month, billable, charged, tier, rule, reason, evidence, "
            "unit_price_usd, ruleset_version, plan, version, corrects_version, amend_reason, emitted_version, in_report, "
            "digest, close_id, partition, emitted_at, received_at, batch_id, kafka_partition, kafka_offset) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, 1, NULL, ?, 'close-1', 0, ?, ?, 1, 0, ?)",
            [*(r[c] for c in ("company_id", "user_id", "month", "billable", "charged", "tier", "rule", "reason",
                              "evidence", "unit_price_usd", "ruleset_version")),
             d.plan, digest(d), emitted_at, datetime(2026, 11, 1, 2, 0, 5, tzinfo=UTC), i],
        )  # fmt: skip
    if complete:
        con.execute("INSERT INTO month_completions VALUES ('2026-10', 1, TIMESTAMPTZ '2026-11-01 02:00:06+00', 1)")
    con.close()
    return path


@pytest.fixture
def billed(tmp_path):
    """The archive, and a database billed at close (2026.11) from the events known then."""
    root = build_archive(tmp_path / "archive")
    db = build_db(tmp_path / "db.duckdb", decisions_at(root, CLOSE, "2026.11"))
    return root, db


def test_report_explains_the_late_deactivation(billed):
    root, db = billed
    rep = dispute.build_report(root, db, "c-1", OCT)
    by = {a.user_id: a for a in rep.accounts}
    assert sorted(by) == ["u-1", "u-2", "u-3", "u-4"]
    assert {u: a.status for u, a in by.items()} == {"u-1": "same", "u-2": "same", "u-3": "differs", "u-4": "same"}
    u3 = by["u-3"]
    assert u3.latest["charged"] and not u3.now.billable
    assert (u3.now.rule, u3.now.reason) == ("R1", "deactivated_in_month")
    assert {"billable", "charged", "rule", "reason", "evidence", "unit_price_usd"} <= set(u3.differs)
    assert [e["event_id"] for e in u3.late_events] == ["d3"]
    assert [e["event_id"] for e in u3.evidence_added] == ["d3"] and [e["event_id"] for e in u3.evidence_removed] == [
        "v3"
    ]
    assert u3.at_close == "reproduces_billed"
    j = rep.to_json()
    late = j["accounts"][2]["causes"]["late_events"][0]
    assert late["occurred_at"] == "2026-10-20T11:00:00+02:00"  # the company's zone
    assert late["published_at"] == "2026-11-05T11:00:00+01:00"
    assert j["summary"]["differences"] == 1 and j["summary"]["billed_charged"] == 2 and j["summary"]["now_charged"] == 1
    md = rep.to_markdown()
    assert "### u-3" in md and "`d3`" in md and "reproduces v1 exactly" in md
    # u-2 is notification-only under the current rules; u-4 was created mid-month
    assert (by["u-2"].now.rule, by["u-2"].now.reason) == ("R2", "notification_only")
    assert by["u-4"].now.reason == "created_mid_month"


def test_report_is_deterministic_and_the_cli_prints_it(billed):
    root, db = billed
    runs = [dispute.build_report(root, db, "c-1", OCT) for _ in range(2)]
    assert runs[0].to_markdown() == runs[1].to_markdown()
    assert runs[0].to_json_text() == runs[1].to_json_text()
    runner = CliRunner()
    args = [
        "dispute",
        "--company",
        "c-1",
        "--month",
        "2026-10",
        "--archive",
        str(root),
        "--db",
        str(db),
        "--no-progress",
    ]
    md = [runner.invoke(app, args) for _ in range(2)]
    assert md[0].exit_code == 0, md[0].output
    assert md[0].stdout == md[1].stdout == runs[0].to_markdown()
    js = runner.invoke(app, [*args, "--format", "json"])
    assert js.exit_code == 0 and js.stdout == runs[0].to_json_text()
    one = runner.invoke(app, [*args, "--user", "u-3", "--format", "json"])
    assert [a["user_id"] for a in orjson.loads(one.stdout)["accounts"]] == ["u-3"]
    bad = runner.invoke(app, [*args[:-1], "--ruleset", "1999.01"])
    assert bad.exit_code == 2 and "unknown ruleset" in bad.stderr


def test_amendments_one_per_changed_account(billed):
    root, db = billed
    rep = dispute.build_report(root, db, "c-1", OCT)
    decisions, applied = dispute.amendment_messages(rep, "SUP-1", "ann", "2026-11-10T00:00:00Z")
    assert [(m["user_id"], m["version"], m["corrects_version"], m["amend_reason"]) for m in decisions] == [
        ("u-3", 2, 1, "dispute:SUP-1")
    ]
    assert decisions[0]["kind"] == "decision" and decisions[0]["reason"] == "deactivated_in_month"
    assert applied["kind"] == "dispute_applied" and applied["ticket"] == "SUP-1" and applied["requested_by"] == "ann"
    (change,) = applied["changes"]
    assert change["user_id"] == "u-3" and change["from"]["charged"] is True and change["to"]["charged"] is False
    assert change["from"]["version"] == 1 and change["to"]["version"] == 2


def test_applied_ticket_is_not_applied_again(billed):
    root, db = billed
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO disputes VALUES ('SUP-1', 'c-1', '2026-10', 'ann', '2026-11-10T00:00:00Z', '[]', now(), 2)"
    )
    con.close()
    rep = dispute.build_report(root, db, "c-1", OCT)
    res = dispute.apply_report(rep, lambda *a: pytest.fail("published twice"), db, "SUP-1", "bob")
    assert res.already is not None and res.published == 0


def test_rulesets_differ_on_notification_only_and_old_snapshot_is_reproduced(tmp_path):
    events = [e for e in EVENTS if e[0]["event_id"] != "d3"]
    root = build_archive(tmp_path / "archive", events)
    old = decisions_at(root, "2026-12-01T00:00:00Z", "2026.10")
    new = decisions_at(root, "2026-12-01T00:00:00Z", "2026.11")
    o2 = next(d for d in old if d.user_id == "u-2")
    n2 = next(d for d in new if d.user_id == "u-2")
    assert (o2.billable, o2.charged, o2.ruleset_version) == (True, True, "2026.10")
    assert (n2.billable, n2.reason, n2.ruleset_version) == (False, "notification_only", "2026.11")
    assert {d.ruleset_version for d in old} == {"2026.10"} and {d.ruleset_version for d in new} == {"2026.11"}
    db = build_db(tmp_path / "db.duckdb", old)
    same = dispute.build_report(root, db, "c-1", OCT, ruleset="2026.10")
    assert [a.status for a in same.accounts] == ["same"] * 4
    assert "None: every billed decision" in same.to_markdown()
    now = dispute.build_report(root, db, "c-1", OCT)
    changed = {a.user_id: a for a in now.accounts if a.status != "same"}
    assert set(changed) == {"u-1", "u-2", "u-3", "u-4"}  # every row records the new version
    assert set(changed["u-2"].differs) >= {"billable", "charged", "reason", "ruleset_version"}
    assert changed["u-1"].differs == ["ruleset_version"]
    assert changed["u-2"].at_close == "reproduces_billed"
    assert "ruleset changed from 2026.10 to 2026.11" in now.to_markdown()
    # the batch replay reads the archive directory and reproduces the old snapshot with --ruleset 2026.10
    out = CliRunner().invoke(
        app, ["replay", "--events", str(root), "--month", "2026-10", "--company", "c-1", "--ruleset", "2026.10"]
    )
    assert out.exit_code == 0, out.output
    replayed = [verify.normalize(orjson.loads(line)) for line in out.stdout.splitlines() if line.strip()]
    assert replayed == [verify.normalize(d.row()) for d in old]
    # verify compares each row under the ruleset it recorded: clean
    assert verify.verify_month(root, db, OCT, company_id="c-1").clean
    # c-2 was never billed in this database: the whole-month check finds it missing
    whole = verify.verify_month(root, db, OCT)
    assert [(d.kind, d.company_id, d.user_id) for d in whole.drift] == [("missing", "c-2", "u-9")]


def test_verify_clean_then_drift_on_a_tampered_row(tmp_path):
    root = build_archive(tmp_path / "archive")
    later = "2026-12-01T00:00:00Z"
    db = build_db(
        tmp_path / "db.duckdb", decisions_at(root, later, "2026.11") + decisions_at(root, later, "2026.11", "c-2")
    )
    runner = CliRunner()
    args = ["verify", "--month", "2026-10", "--archive", str(root), "--db", str(db), "--no-progress"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "clean" in ok.stdout and "5 stored row(s), 5 recomputed" in ok.stdout
    con = duckdb.connect(str(db))
    con.execute("UPDATE snapshot_versions SET tier = 'frontline' WHERE user_id = 'u-1'")
    con.execute("DELETE FROM snapshot_versions WHERE user_id = 'u-4'")
    con.execute(
        "INSERT INTO snapshot_versions SELECT * REPLACE ('u-77' AS user_id) FROM snapshot_versions WHERE user_id = 'u-2'"
    )
    con.close()
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1
    assert "DRIFT: 1 missing, 1 extra, 1 differs" in bad.stdout
    assert "differs  c-1/u-1: tier: stored frontline != recomputed standard" in bad.stdout
    assert "missing  c-1/u-4" in bad.stdout and "extra    c-1/u-77" in bad.stdout
    js = runner.invoke(app, [*args, "--format", "json", "--company", "c-1"])
    assert js.exit_code == 1 and not orjson.loads(js.stdout)["clean"]
    missing = runner.invoke(
        app, ["verify", "--month", "2026-10", "--archive", str(root), "--db", str(tmp_path / "nope.duckdb")]
    )
    assert missing.exit_code == 2 and "no DuckDB file" in missing.stderr


def _cells(line: str) -> int:
    """The cells of a Markdown table line: pipes not escaped with a backslash, minus one."""
    return sum(1 for i, c in enumerate(line) if c == "|" and (i == 0 or line[i - 1] != "\\")) - 1


def test_ids_that_hold_markdown_cannot_break_the_report(tmp_path):
    """Event ids are printable text of any kind: a pipe would split a table cell, a backquote end a
    code span. The report keeps every table row's cells and every id inside its span."""
    hostile = "d|3`` | x"
    events = [
        (e | {"event_id": hostile} if e["event_id"] == "d3" else e, pub) for e, pub in EVENTS if e["event_id"] != "v3"
    ] + [(ev("v|3`", "visit", "2026-10-05T07:00:00Z", "u-3", channel="web"), "2026-10-05T07:00:01Z")]
    root = build_archive(tmp_path / "archive", events)
    db = build_db(tmp_path / "db.duckdb", decisions_at(root, CLOSE, "2026.11"))
    md = dispute.build_report(root, db, "c-1", OCT).to_markdown()
    tables = [line for line in md.splitlines() if line.startswith("|")]
    header_cells = {_cells(t) for t in tables if t.startswith("| user |")} | {10}
    assert all(_cells(t) in header_cells for t in tables), [t for t in tables if _cells(t) not in header_cells]
    assert "```d|3`` | x```" in md  # in a list line: a fence longer than any backquote run inside
    assert "```d\\|3`` \\| x```" in md  # in a table cell: the pipes escaped as well
    assert "`` v|3` ``" in md  # an id ending in a backquote is padded inside its fence
