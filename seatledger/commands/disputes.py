"""For support: `dispute`, a company-month recomputed from the archive and compared with every
billed version, each difference explained; `--apply` corrects them through the sink.

Exit codes (seatledger.errors): 0 done; 2 unusable input (no archive, no database, bad month,
unknown ruleset, bad price book); 3 Kafka or the sink failed (--apply).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from seatledger import options, render
from seatledger.errors import SERVICE, expected_errors, fail
from seatledger.progress import StepBar
from streams.settings import Settings, load_settings

FORMATS = ("md", "json")


def dispute(
    company: str = options.company("company_id", required=True),
    month: str = options.month("YYYY-MM, in the company's time zone"),
    user: str | None = typer.Option(None, "--user", help="only this user_id"),
    fmt: str = options.output_format("md", FORMATS),
    archive: Path | None = options.ARCHIVE,
    db: Path | None = options.DB,
    data_dir: Path | None = options.DATA_DIR,
    ruleset: str | None = options.ruleset("rule-set version to recompute with (default: current)"),
    prices: Path | None = options.PRICES,
    apply: bool = typer.Option(False, "--apply", help="publish the corrections (needs --reference)"),
    reference: str | None = typer.Option(
        None, "--reference", metavar="TICKET", help="the dispute ticket, e.g. SUP-1234"
    ),
    requested_by: str | None = typer.Option(
        None, "--requested-by", metavar="NAME", help="who asked for the correction"
    ),
    bootstrap: str | None = options.BOOTSTRAP,
    timeout: float = typer.Option(
        120.0, "--timeout", metavar="SECONDS", help="seconds to wait for the sink to record the ticket"
    ),
    progress: bool | None = options.progress(),
) -> None:
    """Recompute a company-month from the archive and explain every difference with what was billed.

    Prints, per account: the billed decision (latest version; every version where they differ), what the rules say now, rule, reason and the events that explain it; for each difference the events that cause it (late arrivals, changed evidence). Same archive and database: byte-identical report.

    With --apply --reference TICKET: publish one amendment per changed account and a dispute record; the sink versions them and books adjustments on the next invoice, issued invoices stay as they are. Applying a ticket twice changes nothing.
    """
    from replay.dispute import build_report

    options.check_format(fmt, FORMATS)
    if apply and not reference:
        raise fail("--apply needs --reference TICKET")
    if reference is not None:
        check_ticket(reference)
    m = options.parse_month(month)
    rs = options.parse_ruleset(ruleset)
    settings = load_settings(bootstrap=bootstrap, archive_root=archive, db=db, data_dir=data_dir)
    book = options.price_book(prices)
    show = progress if progress is not None else sys.stderr.isatty()
    with expected_errors(), StepBar(show) as bar:
        report = build_report(
            settings.archive_dir, settings.db, company, m, user_id=user, ruleset=rs, prices=book, progress=bar
        )
    typer.echo(report.to_markdown() if fmt == "md" else report.to_json_text(), nl=False)
    if apply and reference:
        apply_ticket(report, settings, reference, requested_by, timeout, to_stderr=fmt == "json")


def check_ticket(reference: str) -> None:
    """Exit 2 unless `reference` has the console's ticket form: it was recorded as given (a
    newline, 10 KB) where the console refuses anything else."""
    from api.console.disputes import TICKET, TICKET_RULE
    from projections.text import escape_text

    if not TICKET.fullmatch(reference):
        raise fail(f"--reference '{escape_text(reference)[:80]}': {TICKET_RULE}")


def apply_ticket(
    report, settings: Settings, reference: str, requested_by: str | None, timeout: float, to_stderr: bool
) -> None:
    """Publish the report's corrections and print what the sink stored (on stderr when stdout
    carries the JSON report)."""
    from functools import partial

    from replay.dispute import apply_report
    from streams.corrections import send_corrections

    with expected_errors(SERVICE):
        send = partial(send_corrections, settings)
        result = apply_report(report, send, settings.db, reference, requested_by, timeout=timeout)
    for line in render.applied_ticket(reference, result):
        typer.echo(line, err=to_stderr)


COMMANDS = {"dispute": dispute}
