"""The batch commands end to end through Typer's CliRunner on small generated data (conftest.py)."""

from __future__ import annotations

import csv
import io
import json

import orjson
import pytest

from projections.decide import DECISION_COLUMNS


def test_replay_jsonl_has_exactly_the_decision_columns_and_typed_values(cli, events):
    r = cli("replay", "--events", str(events), "--month", "2026-10")
    assert r.exit_code == 0, r.stderr
    rows = [orjson.loads(line) for line in r.stdout.splitlines()]
    assert all(tuple(row) == DECISION_COLUMNS for row in rows)
    assert [(x["company_id"], x["user_id"]) for x in rows] == sorted((x["company_id"], x["user_id"]) for x in rows)
    ann = next(x for x in rows if x["user_id"] == "ann")
    assert ann["billable"] is True and ann["unit_price_usd"] == "6.00"
    tri = next(x for x in rows if x["company_id"] == "tri")
    assert (tri["reason"], tri["charged"], tri["unit_price_usd"]) == ("trial", False, "0.00")


def test_replay_reports_invalid_lines_with_line_numbers_and_a_count(cli, events):
    r = cli("replay", "--events", str(events), "--month", "2026-10")
    assert r.exit_code == 0
    assert f"{events}:4: not valid JSON" in r.stderr
    assert f"{events}:6:" in r.stderr and "offset" in r.stderr
    assert "2 invalid event(s) skipped" in r.stderr


def test_replay_strict_exits_1_on_invalid_lines(cli, events):
    assert cli("replay", "--events", str(events), "--month", "2026-10", "--strict").exit_code == 1


def test_replay_is_byte_identical_across_runs_and_csv_has_a_header(cli, events, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        assert (
            cli("replay", "--events", str(events), "--month", "2026-10", "--format", "csv", "--out", str(out)).exit_code
            == 0
        )
    assert a.read_bytes() == b.read_bytes()
    rows = list(csv.DictReader(io.StringIO(a.read_text())))
    assert tuple(rows[0]) == DECISION_COLUMNS and {r["billable"] for r in rows} == {"true", "false"}


def test_replay_one_company(cli, events):
    r = cli("replay", "--events", str(events), "--month", "2026-10", "--company", "prem")
    assert {orjson.loads(x)["company_id"] for x in r.stdout.splitlines()} == {"prem"}


def test_invoice_text_shows_lines_total_po_payment_and_notices(cli, events):
    r = cli("invoice", "--events", str(events), "--month", "2026-10", "--company", "acme")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "advanced" in out and "frontline" in out and "total USD" in out and "taxes excluded" in out
    assert "PO number: =HYPERLINK" in out
    assert "American Express is not accepted for billing country Brazil" in out
    assert "qualifies for payment by invoice" in out


def test_invoice_json_and_zero_invoice_with_reason_trial(cli, events):
    r = cli("invoice", "--events", str(events), "--month", "2026-10", "--format", "json")
    invs = {i["company_id"]: i for i in json.loads(r.stdout)}
    assert invs["tri"]["free_reason"] == "trial" and invs["tri"]["total_usd"] == "0.00"
    assert invs["prem"]["total_usd"] == "4.00"


def test_export_lists_billable_accounts_and_defuses_formulas(cli, events):
    r = cli("export", "--events", str(events), "--month", "2026-10", "--company", "acme")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["user_id", "tier", "rule", "reason", "unit_price_usd", "charged"]
    users = [row[0] for row in rows[1:]]
    assert "'-minus" in users and "'-2.3" in users
    assert "gus" not in users and "late" not in users  # guests and mid-month accounts are not billed
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


def test_mau_formats(cli, events):
    r = cli("mau", "--events", str(events), "--month", "2026-10", "--company", "acme", "--format", "json")
    days = json.loads(r.stdout)["days"]
    assert len(days) == 31 and days[-1] == {"date": "2026-10-31", "mau": 2}
    r = cli("mau", "--events", str(events), "--month", "2026-10", "--company", "acme", "--format", "csv")
    assert r.stdout.splitlines()[0] == "date,mau"


def test_reconcile_explains_each_account_and_summarises(cli, events):
    r = cli("reconcile", "--events", str(events), "--month", "2026-10", "--company", "acme", "--format", "json")
    data = json.loads(r.stdout)
    why = {a["user_id"]: a["explanation"] for a in data["accounts"]}
    assert why["late"] == "report_only:never_invited"  # advanced: provisioned, never invited
    assert why["ann"] == "invoice_only:invited_full_month"
    assert data["summary"].startswith("the report says 2, the invoice ")
    text = cli("reconcile", "--events", str(events), "--month", "2026-10", "--company", "acme").stdout
    assert "never invited" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["replay", "--events", "/no/such/file", "--month", "2026-10"], "not found"),
        (["replay", "--events", "EVENTS", "--month", "2026-13"], "invalid month"),
        (["invoice", "--events", "EVENTS", "--month", "2026-10", "--company", "nobody"], "unknown company"),
        (
            ["replay", "--events", "EVENTS", "--month", "2026-10", "--prices", "/no/prices.toml"],
            "cannot read price book",
        ),
        (["replay", "--events", "EVENTS", "--month", "2026-10", "--ruleset", "1999.01"], "unknown ruleset"),
    ],
)
def test_unusable_input_exits_2_with_a_message_and_no_traceback(cli, events, args, message):
    r = cli(*[str(events) if a == "EVENTS" else a for a in args])
    assert r.exit_code == 2
    assert message in r.stderr and "Traceback" not in r.stderr + r.stdout


@pytest.mark.parametrize(
    "cell, safe",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ok", "ok"),
        ("4.00", "4.00"),
    ],
)
def test_safe_cell_prefixes_formula_starters(cell, safe):
    from seatledger.render import safe_cell

    assert safe_cell(cell) == safe
