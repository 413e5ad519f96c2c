"""What a careless operator or a hostile publisher can do to the batch commands, and what they get:
months out of range, an empty input, conflicting duplicates under --strict, a broken price book,
and values that would forge the output of every format (text, Markdown, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json

import orjson
import pytest

from tests.support.given import World

PO = "PO-1\n  total USD 0.00 (taxes excluded)\n  notice: paid in full\u202e"


# Months -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("9999-12", "month '9999-12' is outside the supported range 2000-01 .. 2099-12"),
        ("0000-01", "month '0000-01' is outside the supported range 2000-01 .. 2099-12"),
        ("1999-12", "month '1999-12' is outside the supported range 2000-01 .. 2099-12"),
        ("2100-01", "month '2100-01' is outside the supported range 2000-01 .. 2099-12"),
        ("２０２６-１０", "invalid month '２０２６-１０'; expected YYYY-MM"),
        ("2026-1O", "invalid month '2026-1O'; expected YYYY-MM"),
        ("2026-10-01", "invalid month '2026-10-01'; expected YYYY-MM"),
    ],
)
@pytest.mark.parametrize(
    "command", [["replay"], ["invoice"], ["mau", "--company", "acme"], ["dispute", "--company", "acme"]]
)
def test_months_outside_2000_to_2099_or_not_ascii_exit_2_with_a_message(cli, events, command, month, message):
    args = [*command, "--month", month] + ([] if command[0] == "dispute" else ["--events", events])
    r = cli(*args)
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {message}" and r.stdout == ""


@pytest.mark.parametrize("month", ["2000-01", "2099-12"])
def test_the_first_and_last_months_are_accepted(cli, events, month):
    r = cli("replay", "--events", events, "--month", month)
    assert r.exit_code == 0, r.stderr


# Input ------------------------------------------------------------------------------------------


def test_an_empty_input_exits_2_saying_so(cli, tmp_path):
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n  \n")
    r = cli("replay", "--events", empty, "--month", "2026-10")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.strip() == f"error: no events in {empty}: the input is empty"


def test_an_input_without_one_valid_event_exits_2_with_the_first_reason(cli, tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"nope": 1}\n[]\n')
    r = cli("invoice", "--events", bad, "--month", "2026-10")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.strip() == (
        f"error: no valid event in {bad}: 2 invalid, the first at {bad}:1: missing required field 'type'"
    )


def test_strict_fails_on_conflicting_duplicates_too(cli, tmp_path):
    w = World().company("acme").member("acme", "ann")
    first = w.raw[-1]
    path = tmp_path / "e.ndjson"
    lines = [json.dumps(e) for e in w.raw] + [json.dumps(first), json.dumps(first | {"user_id": "bob"})]
    path.write_text("\n".join(lines) + "\n")
    r = cli("replay", "--events", path, "--month", "2026-10")
    assert r.exit_code == 0
    assert f"event_id '{first['event_id']}' of company acme at {path}:{len(lines)} differs" in r.stderr
    assert cli("replay", "--events", path, "--month", "2026-10", "--strict").exit_code == 1
    path.write_text("\n".join(lines[:-1]) + "\n")  # an identical duplicate is no conflict
    assert cli("replay", "--events", path, "--month", "2026-10", "--strict").exit_code == 0


def test_a_broken_price_book_exits_2_in_every_pricing_command(cli, events, tmp_path):
    from projections.prices import DEFAULT_PRICES

    book = tmp_path / "prices.toml"
    book.write_text(DEFAULT_PRICES.read_text().replace('usd = "4.00"', 'usd = "NaN"', 1))
    for command in (["replay"], ["invoice"], ["export", "--company", "acme"], ["reconcile", "--company", "acme"]):
        r = cli(*command, "--events", events, "--month", "2026-10", "--prices", book)
        assert (r.exit_code, r.stdout) == (2, ""), command
        assert r.stderr.strip() == f"error: {book}: price #1: usd 'NaN' is not a plain decimal amount such as \"4.00\""


# Output -----------------------------------------------------------------------------------------


@pytest.fixture
def forged(tmp_path):
    """acme (advanced) with a PO number that tries to add lines to its invoice, and accounts whose
    ids would start a formula in a spreadsheet (the id alphabet allows a leading "-")."""
    w = World().company("acme", plan="advanced").billing("acme", "2026-09-02", po_number=PO)
    w.member("acme", "-cmd").member("acme", "-2.3").member("acme", "ann")
    path = tmp_path / "forged.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in w.raw))
    return path


def test_the_text_invoice_prints_a_forged_po_number_on_its_one_line(cli, forged):
    r = cli("invoice", "--events", forged, "--month", "2026-10")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum(line.strip().startswith("total USD") for line in lines) == 1
    assert not any(line.strip().startswith("notice:") for line in lines)
    assert r"  PO number: PO-1\n  total USD 0.00 (taxes excluded)\n  notice: paid in full\u202e" in lines


def test_json_output_keeps_the_value_exactly(cli, forged):
    r = cli("invoice", "--events", forged, "--month", "2026-10", "--format", "json")
    assert json.loads(r.stdout)[0]["po_number"] == PO
    r = cli("replay", "--events", forged, "--month", "2026-10")
    assert {orjson.loads(line)["user_id"] for line in r.stdout.splitlines()} == {"-cmd", "-2.3", "ann"}


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "--format", "csv"],
        ["export", "--company", "acme"],
        ["reconcile", "--company", "acme", "--format", "csv"],
        ["mau", "--company", "acme", "--format", "csv"],
    ],
)
def test_every_csv_defuses_formulas(cli, forged, command):
    r = cli(*command, "--events", forged, "--month", "2026-10")
    assert r.exit_code == 0, r.stderr
    cells = [cell for row in csv.reader(io.StringIO(r.stdout)) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    if command[0] != "mau":
        assert {"'-cmd", "'-2.3"} <= set(cells)


def test_reconcile_and_mau_text_print_one_line_per_account():
    from projections.mau import Reconciliation
    from seatledger import render

    rec = Reconciliation("acme", "a\nb\u202e", "2026-10", True, False, "report_only:never_invited")
    text = render.reconcile_report("acme", "2026-10", [rec], "text")
    assert "a\\nb\\u202e" in text and len(text.splitlines()) == 5


def test_publish_rejections_print_one_line_each():
    from seatledger import render

    assert render.rejections([(3, "bad\nline 4: fake")], 1) == ["  line 3: bad\\nline 4: fake"]


def test_verify_drift_lines_print_stored_values_on_one_line():
    from replay.verify import Drift

    d = Drift("differs", "acme", "ann", ("rule",), {"rule": "R1\nclean: all good"}, {"rule": "R2"})
    assert d.line() == "differs  acme/ann: rule: stored R1\\nclean: all good != recomputed R2"
