"""What a worker's close puts on the snapshot topic, as Items for the ledger's writer (no Kafka)."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from ledger.records import Item, parse_record
from projections.decide import Decision
from projections.snapshots import checksum, company_month_message, decision_message, encode, partition_done_message

MONTH = "2026-03"
NEXT = "2026-04"
TOPIC = "snap"


def dec(company="c1", user="u1", month=MONTH, charged=True, price="10.00", reason="active_full_month", plan="pro"):
    return Decision(
        company,
        user,
        month,
        charged,
        charged,
        "full",
        "R2",
        reason if charged else "no_billing_activity",
        "[]",
        Decimal(price) if charged else Decimal("0.00"),
        "2026.1",
        plan,
    )


def invoice_json(company, month, decisions, po="PO-1"):
    lines: dict[tuple[str, str, str], int] = {}
    for d in decisions:
        if d.charged:
            k = (d.plan, d.tier, str(d.unit_price_usd))
            lines[k] = lines.get(k, 0) + 1
    sub = sum((Decimal(p) * n for (_, _, p), n in lines.items()), Decimal("0.00"))
    return {
        "company_id": company,
        "month": month,
        "plan": "pro",
        "lines": [
            {"plan": a, "tier": b, "count": n, "unit_price_usd": p, "amount_usd": str(Decimal(p) * n)}
            for (a, b, p), n in sorted(lines.items())
        ],
        "billable_accounts": sum(d.billable for d in decisions),
        "charged_accounts": sum(d.charged for d in decisions),
        "free_reason": None,
        "subtotal_usd": str(sub),
        "adjustments": [],
        "total_usd": str(sub),
        "currency": "USD",
        "taxes": "excluded",
        "po_number": po,
        "payment_method": "card",
        "card_brand": "visa",
        "billing_country": "NL",
        "qualifies_for_invoice_payment": False,
        "notices": [],
    }


class Stream:
    """Builds Items with increasing offsets on one Kafka partition (or several)."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}

    def items(self, msgs, kp=0) -> list[Item]:
        out = []
        for m in msgs:
            off = self.next.get(kp, 0)
            self.next[kp] = off + 1
            out.extend(parse_record(kp, off, encode(m)))
        return out


def close_msgs(month, decisions_by_partition: dict[int, list[Decision]], partitions=None, close_id="close-1"):
    """Everything a close emits: decisions, company_months, then partition_done per partition."""
    partitions = partitions or len(decisions_by_partition)
    msgs, dones = [], []
    for p, decs in sorted(decisions_by_partition.items()):
        companies = sorted({d.company_id for d in decs})
        for d in decs:
            msgs.append(decision_message(d, version=1, in_report=True, close_id=close_id, partition=p))
        for c in companies:
            cd = [d for d in decs if d.company_id == c]
            msgs.append(company_month_message(invoice_json(c, month, cd), [], close_id=close_id, partition=p))
        dones.append(
            partition_done_message(
                month,
                p,
                partitions,
                close_id=close_id,
                companies=len(companies),
                accounts=len(decs),
                checksum_=checksum(decs),
                counts={"events_counted": 100, "rejected": 1, "duplicates_ignored": 2, "late_since_close": 0},
            )
        )
    return msgs, dones


def q(con: duckdb.DuckDBPyConnection, sql: str, *args) -> list[tuple]:
    return con.execute(sql, list(args)).fetchall()
