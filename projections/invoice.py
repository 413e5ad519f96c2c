"""R11, R12: one invoice per company per billed month, built from that month's decisions.

An invoice is a value computed once when the month closes; it is never edited. Later corrections
are adjustment lines on a later invoice (see `adjustments`), each naming the snapshot version it
corrects. `build_invoice` computes it from the decisions (replay, the worker's close);
`issue_from_close` is the same invoice as the ledger issues it once the month is complete: lines
counted from the stored decisions, the company's profile as the close computed it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from projections.decide import CompanyMonth, Decision
from projections.money import total
from projections.rules import INVOICE_PAYMENT_THRESHOLD_USD

CURRENCY = "USD"
TAXES = "excluded"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    plan: str
    tier: str
    count: int
    unit_price_usd: Decimal

    @property
    def amount_usd(self) -> Decimal:
        return self.unit_price_usd * self.count


@dataclass(frozen=True, slots=True)
class AdjustmentLine:
    """A correction of an earlier month, carried on this invoice: signed count and amount."""

    corrected_month: str
    user_id: str
    corrects_version: int | None  # None: an account the corrected month's invoice did not have
    new_version: int
    reason: str
    amount_usd: Decimal


@dataclass(slots=True)
class Invoice:
    company_id: str
    month: str
    plan: str | None  # None only when issued from a close whose JSON names no plan
    lines: list[InvoiceLine]
    billable_accounts: int
    charged_accounts: int
    free_reason: str | None  # "trial", "nonprofit" or None
    po_number: str | None
    payment_method: str | None
    card_brand: str | None
    billing_country: str | None
    qualifies_for_invoice_payment: bool  # R12: monthly cost above USD 5,000
    notices: list[str] = field(default_factory=list)
    adjustments: list[AdjustmentLine] = field(default_factory=list)

    @property
    def subtotal_usd(self) -> Decimal:
        return total(line.amount_usd for line in self.lines)

    @property
    def adjustments_usd(self) -> Decimal:
        return total(a.amount_usd for a in self.adjustments)

    @property
    def total_usd(self) -> Decimal:
        return self.subtotal_usd + self.adjustments_usd

    def to_json(self) -> dict:
        return {
            "company_id": self.company_id,
            "month": self.month,
            "plan": self.plan,
            "lines": [
                {
                    "plan": line.plan,
                    "tier": line.tier,
                    "count": line.count,
                    "unit_price_usd": str(line.unit_price_usd),
                    "amount_usd": str(line.amount_usd),
                }
                for line in self.lines
            ],
            "billable_accounts": self.billable_accounts,
            "charged_accounts": self.charged_accounts,
            "free_reason": self.free_reason,
            "subtotal_usd": str(self.subtotal_usd),
            "adjustments": [
                {
                    "corrected_month": a.corrected_month,
                    "user_id": a.user_id,
                    "corrects_version": a.corrects_version,
                    "new_version": a.new_version,
                    "reason": a.reason,
                    "amount_usd": str(a.amount_usd),
                }
                for a in self.adjustments
            ],
            "total_usd": str(self.total_usd),
            "currency": CURRENCY,
            "taxes": TAXES,
            "po_number": self.po_number,
            "payment_method": self.payment_method,
            "card_brand": self.card_brand,
            "billing_country": self.billing_country,
            "qualifies_for_invoice_payment": self.qualifies_for_invoice_payment,
            "notices": self.notices,
        }


def invoice_lines(charged: Mapping[tuple[str, str, Decimal], int]) -> list[InvoiceLine]:
    """R11: one line per plan x tier x unit price (sorted by them), from the charged accounts' counts."""
    return [InvoiceLine(plan, tier_, n, price) for (plan, tier_, price), n in sorted(charged.items())]


def qualifies_for_invoice_payment(subtotal_usd: Decimal) -> bool:
    """R12: invoice payment is for months costing more than the threshold."""
    return subtotal_usd > INVOICE_PAYMENT_THRESHOLD_USD


def build_invoice(cm: CompanyMonth, decisions: list[Decision]) -> Invoice:
    lines = invoice_lines(Counter((d.plan, d.tier, d.unit_price_usd) for d in decisions if d.charged))
    billable = sum(d.billable for d in decisions)
    charged = sum(d.charged for d in decisions)
    free_reason = None
    if cm.trial is not None:
        free_reason = "trial"
    elif cm.nonprofit is not None and cm.nonprofit.free:
        free_reason = "nonprofit"
    subtotal = total(line.amount_usd for line in lines)
    notices = [f"{r.type} {r.event_id}: {why}" for r, why in cm.notices]
    if cm.payment.payment_method == "invoice" and subtotal <= INVOICE_PAYMENT_THRESHOLD_USD:
        notices.append(
            f"pays by invoice but the month's cost (USD {subtotal}) is not above USD {INVOICE_PAYMENT_THRESHOLD_USD}"
        )
    return Invoice(
        cm.company_id,
        str(cm.month),
        cm.plan,
        lines,
        billable,
        charged,
        free_reason,
        cm.payment.po_number,
        cm.payment.payment_method,
        cm.payment.card_brand,
        cm.payment.billing_country,
        qualifies_for_invoice_payment(subtotal),
        notices,
    )


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    """The invoice the ledger issues, and how it compares with the one the close computed."""

    invoice: Invoice
    close_subtotal_usd: Decimal | None  # the close's subtotal (None when the close sent none)
    matches_close: bool  # the lines equal the close's lines


def issue_from_close(
    close: dict,
    company_id: str,
    month: str,
    lines: list[InvoiceLine],
    *,
    billable: int,
    charged: int,
    adjustments: list[AdjustmentLine],
) -> IssuedInvoice:
    """R11/R12: the invoice issued once the month is complete: `lines` and the counts come from the
    decisions stored by then (corrections that arrived after the close included), the profile (PO
    number, payment, notices, free reason) from the close's invoice JSON (`Invoice.to_json`)."""
    subtotal = total(line.amount_usd for line in lines)
    close_lines = sorted(
        (line["plan"], line["tier"], int(line["count"]), Decimal(str(line["unit_price_usd"])))
        for line in close.get("lines", [])
    )
    matches = close_lines == sorted((line.plan, line.tier, line.count, line.unit_price_usd) for line in lines)
    close_subtotal = close.get("subtotal_usd")
    notices = list(close.get("notices") or [])
    if not matches:
        notices.append(
            f"lines counted from the stored decisions (USD {subtotal}) differ from the close's "
            f"(USD {close_subtotal}): a correction arrived before the invoice was issued"
        )
    invoice = Invoice(
        company_id,
        month,
        close.get("plan"),
        lines,
        billable,
        charged,
        close.get("free_reason"),
        close.get("po_number"),
        close.get("payment_method"),
        close.get("card_brand"),
        close.get("billing_country"),
        qualifies_for_invoice_payment(subtotal),
        notices,
        adjustments,
    )
    return IssuedInvoice(invoice, Decimal(str(close_subtotal)) if close_subtotal is not None else None, matches)
