"""For billing: the batch commands over an events file, directory or Parquet archive (replay,
invoice, export, mau, reconcile), and `invoice-annotate` on the ledger.

The batch commands recompute a month with `replay.month.run_month` and print it (seatledger.render).
Exit codes (seatledger.errors): 0 done; 1 `replay --strict` found invalid or conflicting events,
or no issued invoice to annotate; 2 unusable input (missing file, an input without a single valid
event, bad month, unknown company or ruleset, bad price book); 3 the database is busy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from seatledger import options, render
from seatledger.errors import FOUND, expected_errors, fail
from streams.settings import load_settings

if TYPE_CHECKING:
    from replay.month import MonthResult

MONTH = options.month("billing month YYYY-MM (local to each company's zone)")
COMPANY = options.company(required=True)
DECISION_FORMATS = ("jsonl", "csv")
INVOICE_FORMATS = ("text", "json")
REPORT_FORMATS = ("text", "csv", "json")  # mau, reconcile


def replay(
    events: str = options.EVENTS,
    month: str = MONTH,
    company: str | None = options.company("only this company"),
    fmt: str = options.output_format("jsonl", DECISION_FORMATS),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="write here instead of stdout"),
    prices: Path | None = options.PRICES,
    ruleset: str | None = options.ruleset(),
    strict: bool = typer.Option(
        False, "--strict", help="exit 1 when any input event is invalid or conflicts with an earlier one"
    ),
) -> None:
    """One decision per account known in each company at the end of the month."""
    options.check_format(fmt, DECISION_FORMATS)
    res = run(events, month, company, prices, ruleset, with_mau=False)
    write(render.decisions_jsonl(res.decisions) if fmt == "jsonl" else render.decisions_csv(res.decisions), out)
    if strict and res.loaded is not None and (res.loaded.invalid_count or res.loaded.conflict_count):
        raise typer.Exit(FOUND)


def invoice(
    events: str = options.EVENTS,
    month: str = MONTH,
    company: str | None = options.company(),
    fmt: str = options.output_format("text", INVOICE_FORMATS),
    prices: Path | None = options.PRICES,
) -> None:
    """The month's invoice per company: lines, total (USD, taxes excluded), PO, payment, notices."""
    options.check_format(fmt, INVOICE_FORMATS)
    res = run(events, month, company, prices, with_mau=False)
    invoices = [res.invoices[c] for c in sorted(res.invoices)]
    write(render.invoices_json(invoices) if fmt == "json" else render.invoices_text(invoices))


def export(
    events: str = options.EVENTS,
    company: str = COMPANY,
    month: str = MONTH,
    out: Path | None = typer.Option(None, "--out", metavar="FILE"),
    prices: Path | None = options.PRICES,
) -> None:
    """R13: the billed users of a company and month as CSV (safe to open in a spreadsheet)."""
    res = run(events, month, company, prices, with_mau=False)
    write(render.billed_users_csv(res.decisions), out)


def mau(
    events: str = options.EVENTS,
    company: str = COMPANY,
    month: str = MONTH,
    fmt: str = options.output_format("text", REPORT_FORMATS),
) -> None:
    """R14: monthly-active users per day (rolling 30 local days), the reports' metric."""
    options.check_format(fmt, REPORT_FORMATS)
    res = run(events, month, company, None)
    write(render.mau_report(company, month, res.mau.get(company, []), fmt))


def reconcile(
    events: str = options.EVENTS,
    company: str = COMPANY,
    month: str = MONTH,
    fmt: str = options.output_format("text", REPORT_FORMATS),
    prices: Path | None = options.PRICES,
) -> None:
    """Report (R14) versus invoice, account by account, with a summary per explanation."""
    options.check_format(fmt, REPORT_FORMATS)
    res = run(events, month, company, prices)
    write(render.reconcile_report(company, month, res.reconciliation_of(company), fmt))


def invoice_annotate(
    company: str = options.company("company_id", required=True),
    month: str = options.month("YYYY-MM of the issued invoice"),
    po: str = typer.Option(..., "--po", help="the PO number to add"),
    by: str | None = typer.Option(None, "--by", metavar="NAME", help="who added it (recorded)"),
    db: Path | None = options.DB,
) -> None:
    """R11's one exception: record a PO number on an already issued invoice (no amount changes)."""
    from ledger.invoicing import annotate_invoice
    from projections.calendar import utc_iso
    from projections.text import escape_text
    from schemas.events import MAX_PO_NUMBER

    m = options.parse_month(month)
    check_text("--po", po, MAX_PO_NUMBER)
    if by is not None:
        check_text("--by", by, MAX_BY)
    settings = load_settings(db=db)
    if not Path(settings.db).exists():
        raise fail(f"no database at {settings.db}")
    with expected_errors():
        at = annotate_invoice(settings.db, company, str(m), po, annotated_by=by)
    typer.echo(f"invoice {escape_text(company)} {month}: PO number {po} recorded at {utc_iso(at)}")


MAX_BY = 128  # characters of `--by`, as a `source` of the contract


def check_text(option: str, value: str, limit: int) -> None:
    """Exit 2 unless a free-text option is printable text of 1 to `limit` characters: a PO number
    is printed on invoices and reports, where a newline or a bidirectional override would forge
    the lines around it (the contract's PO limit is 64 characters)."""
    from projections.text import escape_text
    from schemas.events import control_character

    problem = control_character(value)
    if not value.strip():
        problem = "it is empty"
    elif len(value) > limit:
        problem = f"it is {len(value):,} characters; at most {limit}"
    if problem is not None:
        raise fail(f"{option} '{escape_text(value)[:80]}': {problem}")


def run(
    events: str, month: str, company: str | None, prices: Path | None, ruleset: str | None = None, with_mau: bool = True
) -> MonthResult:
    """Recompute the month from the events, with the price book of `options.price_book`."""
    from replay.events_source import report
    from replay.month import run_month

    m = options.parse_month(month)
    book = options.price_book(prices)
    with expected_errors():
        res = run_month(events, m, company, book, ruleset, with_mau=with_mau)
    assert res.loaded is not None  # run_month always records what it loaded
    report(res.loaded)
    return res


def write(text: str, out: Path | None = None) -> None:
    """To stdout, or to the --out file."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with expected_errors():
            out.write_text(text)


COMMANDS = {
    "replay": replay,
    "invoice": invoice,
    "export": export,
    "mau": mau,
    "reconcile": reconcile,
    "invoice-annotate": invoice_annotate,
}
