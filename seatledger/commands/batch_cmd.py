"""Batch commands over an events file, directory or Parquet archive: replay, invoice, export, mau,
reconcile. Thin: parse flags, call `replay.month.run_month`, format.

Exit codes: 0 done; 1 `replay --strict` found invalid events; 2 unusable input (missing file, bad
month, unknown company or ruleset, bad price book), with a one-line message and no traceback.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import orjson
import typer

EVENTS = typer.Option(..., "--events", help="NDJSON file ('-' for stdin), directory of NDJSON, or Parquet file/archive")
MONTH = typer.Option(..., "--month", help="billing month YYYY-MM (local to each company's zone)")
PRICES = typer.Option(None, "--prices", help="price book TOML (default: the shipped EXAMPLE prices)")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _fail(msg: str) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(2)


@contextmanager
def _user_errors():
    """Turn every expected input problem into a clear message and exit 2."""
    from projections.prices import PriceBookError
    from projections.rulesets import UnknownRuleset
    from replay.events_source import SourceError
    from replay.month import UnknownCompany

    try:
        yield
    except (SourceError, PriceBookError, UnknownCompany) as exc:
        raise _fail(str(exc)) from None
    except UnknownRuleset as exc:
        raise _fail(exc.args[0]) from None
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None


def _run(events: str, month: str, company: str | None, prices: Path | None, ruleset: str | None = None, with_mau=True):
    from projections.calendar import Month
    from replay.events_source import report
    from replay.month import run_month

    try:
        m = Month.parse(month)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with _user_errors():
        res = run_month(events, m, company, str(prices) if prices else None, ruleset, with_mau=with_mau)
    report(res.loaded)
    return res


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with _user_errors():
            out.write_text(text)


def safe_cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s.startswith(FORMULA_PREFIXES) else s


def _csv(header, rows, safe=False) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([safe_cell(v) if safe else v for v in r])
    return buf.getvalue()


def _plain(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def decision_json(d) -> dict:
    row = d.row()
    row["unit_price_usd"] = str(row["unit_price_usd"])
    return row


def _explain(code: str) -> str:
    side, _, reason = code.partition(":")
    reason = reason.replace("_", " ")
    return {
        "report_only": f"{reason} (in report, not on invoice)",
        "invoice_only": f"{reason} (on invoice, not in report)",
    }.get(side, f"{reason} (in neither)" if side == "neither" else code)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        events: str = EVENTS,
        month: str = MONTH,
        company: str = typer.Option(None, "--company", help="only this company"),
        fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
        out: Path = typer.Option(None, "--out", help="write here instead of stdout"),
        prices: Path = PRICES,
        ruleset: str = typer.Option(None, "--ruleset", help="rule-set version (default: current)"),
        strict: bool = typer.Option(False, "--strict", help="exit 1 when any input event is invalid"),
    ) -> None:
        """One decision per account known in each company at the end of the month."""
        from projections.decide import DECISION_COLUMNS

        if fmt not in ("jsonl", "csv"):
            raise _fail(f"unknown --format {fmt!r}; use jsonl or csv")
        res = _run(events, month, company, prices, ruleset, with_mau=False)
        if fmt == "jsonl":
            text = "".join(orjson.dumps(decision_json(d)).decode() + "\n" for d in res.decisions)
        else:
            text = _csv(DECISION_COLUMNS, ([_plain(v) for v in d.row().values()] for d in res.decisions))
        _write(text, out)
        if strict and res.loaded.invalid_count:
            raise typer.Exit(1)

    @app.command("invoice")
    def invoice_cmd(
        events: str = EVENTS,
        month: str = MONTH,
        company: str = typer.Option(None, "--company"),
        fmt: str = typer.Option("text", "--format", help="text or json"),
        prices: Path = PRICES,
    ) -> None:
        """The month's invoice per company: lines, total (USD, taxes excluded), PO, payment, notices."""
        if fmt not in ("text", "json"):
            raise _fail(f"unknown --format {fmt!r}; use text or json")
        res = _run(events, month, company, prices, with_mau=False)
        invoices = [res.invoices[c] for c in sorted(res.invoices)]
        if fmt == "json":
            _write(orjson.dumps([i.to_json() for i in invoices], option=orjson.OPT_INDENT_2).decode() + "\n", None)
            return
        parts = []
        for inv in invoices:
            lines = [f"Invoice {inv.company_id} {inv.month} (plan in force: {inv.plan})"]
            for ln in inv.lines:
                lines.append(
                    f"  {ln.plan:<10} {ln.tier:<9} {ln.count:>7} x USD {ln.unit_price_usd:>8} = USD {ln.amount_usd:>10}"
                )
            if not inv.lines:
                why = (
                    f": {inv.free_reason}"
                    if inv.free_reason
                    else (": no billable account" if not inv.billable_accounts else "")
                )
                lines.append(f"  (zero invoice{why})")
            lines.append(f"  total USD {inv.total_usd} (taxes excluded)")
            lines.append(f"  billable accounts {inv.billable_accounts}, charged {inv.charged_accounts}")
            if inv.free_reason:
                lines.append(f"  free: {inv.free_reason}")
            lines.append(f"  PO number: {inv.po_number or '-'}")
            pay = inv.payment_method or "-"
            if inv.card_brand:
                pay += f" ({inv.card_brand})"
            if inv.billing_country:
                pay += f", billing country {inv.billing_country}"
            lines.append(f"  payment: {pay}")
            lines.append(
                "  qualifies for payment by invoice (R12, above USD 5,000): "
                + ("yes" if inv.qualifies_for_invoice_payment else "no")
            )
            for n in inv.notices:
                lines.append(f"  notice: {n}")
            parts.append("\n".join(lines) + "\n")
        _write("\n".join(parts), None)

    @app.command("export")
    def export_cmd(
        events: str = EVENTS,
        company: str = typer.Option(..., "--company"),
        month: str = MONTH,
        out: Path = typer.Option(None, "--out"),
        prices: Path = PRICES,
    ) -> None:
        """R13: the billed users of a company and month as CSV (safe to open in a spreadsheet)."""
        res = _run(events, month, company, prices, with_mau=False)
        header = ("user_id", "tier", "rule", "reason", "unit_price_usd", "charged")
        rows = (
            [d.user_id, d.tier, d.rule, d.reason, str(d.unit_price_usd), _plain(d.charged)]
            for d in res.decisions
            if d.billable
        )
        _write(_csv(header, rows, safe=True), out)

    @app.command("mau")
    def mau_cmd(
        events: str = EVENTS,
        company: str = typer.Option(..., "--company"),
        month: str = MONTH,
        fmt: str = typer.Option("text", "--format", help="text, csv or json"),
    ) -> None:
        """R14: monthly-active users per day (rolling 30 local days), the reports' metric."""
        if fmt not in ("text", "csv", "json"):
            raise _fail(f"unknown --format {fmt!r}; use text, csv or json")
        res = _run(events, month, company, None)
        days = res.mau.get(company, [])
        if fmt == "json":
            text = (
                orjson.dumps(
                    {
                        "company_id": company,
                        "month": month,
                        "days": [{"date": d.isoformat(), "mau": n} for d, n in days],
                    }
                ).decode()
                + "\n"
            )
        elif fmt == "csv":
            text = _csv(("date", "mau"), ([d.isoformat(), n] for d, n in days))
        else:
            text = f"MAU {company} {month} (rolling 30 days)\n" + "".join(f"{d.isoformat()} {n:>8}\n" for d, n in days)
        _write(text, None)

    @app.command("reconcile")
    def reconcile_cmd(
        events: str = EVENTS,
        company: str = typer.Option(..., "--company"),
        month: str = MONTH,
        fmt: str = typer.Option("text", "--format", help="text, csv or json"),
        prices: Path = PRICES,
    ) -> None:
        """Report (R14) versus invoice, account by account, with a summary per explanation."""
        if fmt not in ("text", "csv", "json"):
            raise _fail(f"unknown --format {fmt!r}; use text, csv or json")
        res = _run(events, month, company, prices)
        recs = res.reconciliation_of(company)
        counts = Counter(r.explanation for r in recs)
        reported = sum(r.in_report for r in recs)
        billed = sum(r.billable for r in recs)
        diffs = sorted(
            ((n, c) for c, n in counts.items() if c.startswith(("report_only", "invoice_only"))),
            key=lambda x: (-x[0], x[1]),
        )
        summary = f"the report says {reported}, the invoice {billed}"
        if diffs:
            summary += ": " + ", ".join(f"{n} {_explain(c)}" for n, c in diffs)
        if fmt == "json":
            text = (
                orjson.dumps(
                    {
                        "company_id": company,
                        "month": month,
                        "in_report": reported,
                        "on_invoice": billed,
                        "summary": summary,
                        "counts": dict(sorted(counts.items())),
                        "accounts": [r.row() for r in recs],
                    }
                ).decode()
                + "\n"
            )
        elif fmt == "csv":
            text = _csv(
                ("user_id", "in_report", "on_invoice", "explanation"),
                ([r.user_id, _plain(r.in_report), _plain(r.billable), r.explanation] for r in recs),
                safe=True,
            )
        else:
            lines = [f"{'user_id':<24} {'report':<6} {'invoice':<7} explanation"]
            lines += [
                f"{r.user_id:<24} {'yes' if r.in_report else 'no':<6} {'yes' if r.billable else 'no':<7} {r.explanation}"
                for r in recs
            ]
            lines.append("")
            lines.append(summary)
            lines += [f"  {n:>7} {c}" for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
            text = "\n".join(lines) + "\n"
        _write(text, None)
