"""What a careless operator or a hostile publisher can do to the batch commands, and what they get:
months out of range, an empty input, conflicting duplicates under --strict, a broken price book,
and values that would forge the output of every format (text, Markdown, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
from itertools import chain

import orjson
import pytest

from devtools.local_broker import free_port_pair
from tests.support.given import World
from tests.support.ledger_file import db_rows, sample_ledger

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


@pytest.mark.parametrize("content", [b"", b"\n  \r\n\t\n"])
@pytest.mark.parametrize("skip_invalid", [[], ["--skip-invalid"]])
def test_publish_of_an_empty_input_exits_2_saying_so_before_any_kafka(
    cli, tmp_path, monkeypatch, content, skip_invalid
):
    # It used to connect and "send 0 event(s)" with exit 0 (or 3 without a broker): the batch
    # commands call the same input an error. Nothing listens on the bootstrap address here.
    monkeypatch.setenv("SEATLEDGER_BOOTSTRAP", f"127.0.0.1:{free_port_pair()}")
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(content)
    r = cli("publish", empty, *skip_invalid)
    assert (r.exit_code, r.stdout) == (2, ""), r.stderr or repr(r.exception)
    assert r.stderr.strip() == f"error: no events in {empty}: the input is empty"


@pytest.mark.parametrize("command", [["replay", "--month", "2026-10", "--events"], ["publish"]])
def test_a_pretty_printed_json_file_is_named_as_such_not_as_broken_lines(cli, tmp_path, monkeypatch, command):
    monkeypatch.setenv("SEATLEDGER_BOOTSTRAP", f"127.0.0.1:{free_port_pair()}")  # publish refuses before Kafka
    w = World().company("acme").member("acme", "ann")
    pretty = tmp_path / "events.json"
    pretty.write_text(json.dumps(w.raw, indent=2))
    r = cli(*command, pretty)
    assert r.exit_code == (2 if command[0] == "replay" else 1) and r.stdout == ""
    assert "1: not valid JSON: a lone '[' opens a JSON document spread over several lines" in r.stderr


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


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """A ledger where acme's October invoice is issued (with one PO number added already)."""
    path = tmp_path_factory.mktemp("annotate") / "ledger.duckdb"
    sample_ledger(path)
    return path


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--po", "PO-1\n  total USD 0.00 (taxes excluded)", "'PO-1\\n  total USD 0.00 (taxes excluded)': control character U+000A at position 4"),
        ("--po", "PO\u202e1", "'PO\\u202e1': control character U+202E at position 2"),
        ("--po", "x" * 65, f"'{'x' * 65}': it is 65 characters; at most 64"),
        ("--po", "  ", "'  ': it is empty"),
        ("--by", "ann\x1b[2J", "'ann\\x1b[2J': control character U+001B at position 3"),
    ],
)  # fmt: skip
def test_invoice_annotate_refuses_a_po_or_name_that_would_forge_output_and_records_nothing(
    cli, issued, option, value, problem
):
    # It recorded any text (a 5,000-character PO, a newline that printed a line of its own) and
    # echoed it raw; the contract's PO number is at most 64 characters.
    before = db_rows(issued, "SELECT count(*) FROM invoice_annotations")
    args = {"--po": "PO-2", "--by": "ann"} | {option: value}
    r = cli("invoice-annotate", "--company", "acme", "--month", "2026-10", "--db", issued, *chain(*args.items()))
    assert (r.exit_code, r.stdout) == (2, ""), r.stdout
    assert r.stderr.strip() == f"error: {option} {problem}"
    assert db_rows(issued, "SELECT count(*) FROM invoice_annotations") == before


def test_invoice_annotate_records_a_po_of_64_characters(cli, issued):
    po = "P" * 64
    r = cli("invoice-annotate", "--company", "acme", "--month", "2026-10", "--po", po, "--db", issued)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"invoice acme 2026-10: PO number {po} recorded at ")
    assert db_rows(issued, "SELECT po_number FROM invoice_annotations WHERE po_number = ?", [po]) == [(po,)]


@pytest.mark.parametrize("token", ["123a4567@MyOrgName\n", "123a4567\n"])
def test_a_techsoup_token_with_a_final_newline_verifies_nothing(cli, tmp_path, token):
    # R8's pattern was applied with re.match, whose $ also matches before a final newline: the
    # company went free on a malformed token (the contract accepts the event, R8 must refuse it).
    w = World().company("acme").member("acme", "ann").do("login", "acme", "ann", "2026-10-03")
    w.nonprofit("acme", "2026-10-01", token=token)
    f = tmp_path / "events.ndjson"
    f.write_text("".join(json.dumps(e) + "\n" for e in w.raw))
    r = cli("invoice", "--events", f, "--month", "2026-10", "--format", "json")
    assert r.exit_code == 0, r.stderr
    (invoice,) = json.loads(r.stdout)
    assert invoice["free_reason"] is None and invoice["total_usd"] != "0.00"
    assert any("malformed TechSoup token" in n for n in invoice["notices"])


@pytest.mark.parametrize(
    ("ticket", "shown"), [("SUP-1\ntotal USD 0.00", "SUP-1\\ntotal USD 0.00"), ("SUP 1", "SUP 1"), ("S" * 65, "S" * 65)]
)
def test_dispute_apply_refuses_a_ticket_the_console_refuses_before_reading_anything(cli, tmp_path, ticket, shown):
    # It took any text as the ticket (recorded in the ledger's reasons as dispute:<ticket>)
    args = ["dispute", "--company", "acme", "--month", "2026-10", "--apply", "--reference", ticket]
    r = cli(*args, "--archive", tmp_path / "none", "--db", tmp_path / "none.duckdb")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr.strip() == (
        f"error: --reference '{shown}': a ticket reference is 1-64 of A-Z a-z 0-9 . _ : - (e.g. SUP-1234)"
    )


def test_publish_rejections_print_one_line_each():
    from seatledger import render

    assert render.rejections([(3, "bad\nline 4: fake")], 1) == ["  line 3: bad\\nline 4: fake"]


def test_verify_drift_lines_print_stored_values_on_one_line():
    from replay.verify import Drift

    d = Drift("differs", "acme", "ann", ("rule",), {"rule": "R1\nclean: all good"}, {"rule": "R2"})
    assert d.line() == "differs  acme/ann: rule: stored R1\\nclean: all good != recomputed R2"
