"""What the commands print: decisions as JSON lines or CSV, the invoice text, the MAU and
reconciliation reports, an applied dispute ticket, publish's rejections, generate's counts.

Output only; the values come from `replay`, `projections` and `devtools`. Every output escapes
what it prints: text through `projections.text.escape_text` (no value can add a line or reorder
what a reader sees), every CSV cell through `projections.exports.safe_cell` (safe to open in a
spreadsheet, OWASP CSV injection), and JSON through the encoder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from projections.exports import billed_users_csv, csv_text, plain, safe_cell  # noqa: F401 - re-exported for the commands
from projections.text import escape_text as esc
from projections.text import md_cell

SHOW_REJECTIONS = 20


def json_line(obj: Any) -> str:
    return orjson.dumps(obj).decode() + "\n"


# --------------------------------------------------------------------------------------------------
# Decisions (replay, export)


def decisions_jsonl(decisions: Iterable) -> str:
    from projections.snapshots import decision_row

    return "".join(json_line(decision_row(d)) for d in decisions)


def decisions_csv(decisions: Iterable) -> str:
    from projections.decide import DECISION_COLUMNS

    return csv_text(DECISION_COLUMNS, ([plain(v) for v in d.row().values()] for d in decisions))


# --------------------------------------------------------------------------------------------------
# Invoices


def invoices_json(invoices: Sequence) -> str:
    return orjson.dumps([i.to_json() for i in invoices], option=orjson.OPT_INDENT_2).decode() + "\n"


def invoices_text(invoices: Sequence) -> str:
    return "\n".join(invoice_text(inv) for inv in invoices)


def invoice_text(inv) -> str:
    """One invoice: lines, total, accounts, PO, payment, R12 eligibility and notices."""
    lines = [f"Invoice {esc(inv.company_id)} {esc(inv.month)} (plan in force: {esc(inv.plan)})"]
    for ln in inv.lines:
        lines.append(
            f"  {esc(ln.plan):<10} {esc(ln.tier):<9} {ln.count:>7} x USD {ln.unit_price_usd:>8} = USD {ln.amount_usd:>10}"
        )
    if not inv.lines:
        why = (
            f": {esc(inv.free_reason)}"
            if inv.free_reason
            else (": no billable account" if not inv.billable_accounts else "")
        )
        lines.append(f"  (zero invoice{why})")
    lines.append(f"  total USD {inv.total_usd} (taxes excluded)")
    lines.append(f"  billable accounts {inv.billable_accounts}, charged {inv.charged_accounts}")
    if inv.free_reason:
        lines.append(f"  free: {esc(inv.free_reason)}")
    lines.append(f"  PO number: {esc(inv.po_number) if inv.po_number else '-'}")
    lines.append(f"  payment: {_payment(inv)}")
    lines.append(
        "  qualifies for payment by invoice (R12, above USD 5,000): "
        + ("yes" if inv.qualifies_for_invoice_payment else "no")
    )
    lines += [f"  notice: {esc(n)}" for n in inv.notices]
    return "\n".join(lines) + "\n"


def _payment(inv) -> str:
    pay = esc(inv.payment_method) if inv.payment_method else "-"
    if inv.card_brand:
        pay += f" ({esc(inv.card_brand)})"
    if inv.billing_country:
        pay += f", billing country {esc(inv.billing_country)}"
    return pay


# --------------------------------------------------------------------------------------------------
# MAU and reconciliation (R14)


def mau_report(company: str, month: str, days: Sequence, fmt: str) -> str:
    """Monthly-active users per day as text, csv or json."""
    if fmt == "json":
        return json_line(
            {"company_id": company, "month": month, "days": [{"date": d.isoformat(), "mau": n} for d, n in days]}
        )
    if fmt == "csv":
        return csv_text(("date", "mau"), ([d.isoformat(), n] for d, n in days))
    return f"MAU {esc(company)} {esc(month)} (rolling 30 days)\n" + "".join(
        f"{d.isoformat()} {n:>8}\n" for d, n in days
    )


def reconcile_report(company: str, month: str, recs: Sequence, fmt: str) -> str:
    """Report versus invoice per account, with a summary per explanation, as text, csv or json."""
    counts = Counter(r.explanation for r in recs)
    reported = sum(r.in_report for r in recs)
    billed = sum(r.billable for r in recs)
    summary = reconcile_summary(counts, reported, billed)
    if fmt == "json":
        return json_line(
            {
                "company_id": company,
                "month": month,
                "in_report": reported,
                "on_invoice": billed,
                "summary": summary,
                "counts": dict(sorted(counts.items())),
                "accounts": [r.row() for r in recs],
            }
        )
    if fmt == "csv":
        return csv_text(
            ("user_id", "in_report", "on_invoice", "explanation"),
            ([r.user_id, plain(r.in_report), plain(r.billable), r.explanation] for r in recs),
        )
    lines = [f"{'user_id':<24} {'report':<6} {'invoice':<7} explanation"]
    lines += [
        f"{esc(r.user_id):<24} {'yes' if r.in_report else 'no':<6} {'yes' if r.billable else 'no':<7} {esc(r.explanation)}"
        for r in recs
    ]
    lines += ["", esc(summary)]
    lines += [f"  {n:>7} {esc(c)}" for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    return "\n".join(lines) + "\n"


def reconcile_summary(counts: Counter, reported: int, billed: int) -> str:
    """'the report says N, the invoice M: <the differences, most frequent first>'."""
    diffs = sorted(
        ((n, c) for c, n in counts.items() if c.startswith(("report_only", "invoice_only"))),
        key=lambda x: (-x[0], x[1]),
    )
    summary = f"the report says {reported}, the invoice {billed}"
    if diffs:
        summary += ": " + ", ".join(f"{n} {explain(c)}" for n, c in diffs)
    return summary


def explain(code: str) -> str:
    """A reconciliation code in words, e.g. 'report_only:never_invited' -> 'never invited (in
    report, not on invoice)'."""
    side, _, reason = code.partition(":")
    reason = reason.replace("_", " ")
    return {
        "report_only": f"{reason} (in report, not on invoice)",
        "invoice_only": f"{reason} (on invoice, not in report)",
    }.get(side, f"{reason} (in neither)" if side == "neither" else code)


# --------------------------------------------------------------------------------------------------
# Disputes, publish, generate


def applied_ticket(reference: str, result) -> list[str]:
    """What `dispute --apply` published and what the sink stored for it."""
    ref = md_cell(reference)
    if result.already is not None:
        return [
            f"ticket {ref} was already applied (at {md_cell(result.already.get('applied_at'))}, by "
            f"{md_cell(result.already.get('requested_by') or 'unknown')}); nothing published"
        ]
    if not result.published:
        return [f"ticket {ref}: no differences, nothing to apply"]
    out = [
        f"\n## Applied ticket {ref}\n",
        f"published {result.published - 1} amendment(s) and the dispute record; the sink stored:",
    ]
    out += [
        f"- {md_cell(v['user_id'])}: v{v['version']} (corrects v{v['corrects_version']}): "
        f"{'charged' if v['charged'] else 'not charged'}, {md_cell(v['rule'])} {md_cell(v['reason'])}, "
        f"USD {v['unit_price_usd']}"
        for v in result.stored_versions
    ]
    out += [
        f"- adjustment {md_cell(a['user_id'])}: USD {a['amount_usd']} on "
        f"{md_cell(a.get('applied_to_invoice_month') or 'the next invoice')}"
        for a in result.adjustments
    ]
    if not result.adjustments:
        out.append("- no invoice adjustment (no charged amount changed, or the month was not invoiced yet)")
    return out


def rejections(rejected: Sequence[tuple[int, str]], total: int, limit: int = SHOW_REJECTIONS) -> list[str]:
    """Human lines for the rejected input lines, capped at `limit` with a count of the rest."""
    out = [f"  line {line_no}: {esc(reason)}" for line_no, reason in rejected[:limit]]
    if total > limit:
        out.append(f"  ... and {total - limit} more")
    return out


def event_counts(counts: Counter, n: int, elapsed: float, accounts: int, size: int | None) -> list[str]:
    """generate --stats: events per type, then the total, rate and size."""
    width = max(len(k) for k in counts) if counts else 0
    out = [f"{kind.decode():<{width}}  {counts[kind]:>12,}" for kind in sorted(counts)]
    rate = n / elapsed if elapsed > 0 else float("inf")
    extra = f", {size / 1e6:,.1f} MB" if size is not None else ""
    out.append(
        f"{'total':<{width}}  {n:>12,} events in {elapsed:.2f}s ({rate:,.0f}/s), {n / accounts:.1f} per account{extra}"
    )
    return out
