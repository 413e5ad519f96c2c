"""What the API answers with: the pydantic models its OpenAPI document is generated from.

Money is a decimal string with two decimals ("4.00", USD, never a float); instants are RFC 3339
strings with an offset (UTC with `Z` for the system's own times, the company's zone for evidence,
as support reads it). Estimates have their own models, all marked `provisional`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

Money = Annotated[
    str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", examples=["4.00"], description="USD, decimal string, 2 decimals")
]
Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-11-01T00:00:05.123Z"], description="RFC 3339")
]
MonthText = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", examples=["2026-10"])]


# Ingestion ------------------------------------------------------------------------------------


class Rejection(BaseModel):
    index: int = Field(description="0-based position of the event in the body (array element or NDJSON line)")
    event_id: str | None = Field(description="the event's event_id, when it had a string one")
    reason: str = Field(description="why it was rejected (the contract's error texts, or the key's scope)")


class IngestResult(BaseModel):
    accepted: int = Field(description="events acknowledged by Kafka")
    rejected: int = Field(description="events not sent")
    rejections: list[Rejection]


# Invoices (billed) ----------------------------------------------------------------------------


class InvoiceLine(BaseModel):
    plan: str
    tier: str
    count: int
    unit_price_usd: Money
    amount_usd: Money


class Adjustment(BaseModel):
    """A correction of an earlier month (decision version) carried by an invoice."""

    corrected_month: MonthText
    user_id: str
    corrects_version: int | None
    new_version: int
    reason: str = Field(description="late_event or dispute:TICKET")
    amount_usd: Money
    created_at: Timestamp
    applied_to_invoice_month: MonthText | None = Field(description="the invoice carrying it; null: pending")


class Annotation(BaseModel):
    po_number: str
    annotated_at: Timestamp
    annotated_by: str | None


class InvoiceSummary(BaseModel):
    company_id: str
    month: MonthText
    plan: str | None
    billable_accounts: int
    charged_accounts: int
    subtotal_usd: Money
    adjustments_usd: Money
    total_usd: Money
    currency: str
    taxes: str
    free_reason: str | None = Field(description="trial, nonprofit or null")
    po_number: str | None = Field(description="the PO number in force when the invoice was issued")
    latest_annotated_po_number: str | None = Field(description="a PO number added after issue (R11), if any")
    issued_at: Timestamp


class MonthInvoices(BaseModel):
    month: MonthText
    complete: bool = Field(description="every partition reported and everything is stored: invoices are issued")
    completed_at: Timestamp | None
    invoices: list[InvoiceSummary]


class Invoice(InvoiceSummary):
    payment_method: str | None
    card_brand: str | None
    billing_country: str | None
    qualifies_for_invoice_payment: bool
    notices: list[str]
    matches_close: bool = Field(description="its lines equal the ones the close computed")
    lines: list[InvoiceLine]
    adjustments: list[Adjustment] = Field(description="corrections of earlier months carried by this invoice")
    corrections: list[Adjustment] = Field(description="later corrections of this month, on later invoices")
    annotations: list[Annotation]


# Decisions (billed) ---------------------------------------------------------------------------


class Evidence(BaseModel):
    event_id: str
    type: str
    occurred_at: Timestamp = Field(description="in the company's billing time zone")


class DecisionFields(BaseModel):
    user_id: str
    billable: bool
    charged: bool
    tier: str
    rule: str = Field(description="R1-R14")
    reason: str
    evidence: list[Evidence]
    unit_price_usd: Money
    ruleset_version: str
    plan: str


class AccountDecision(DecisionFields):
    version: int
    corrects_version: int | None
    amend_reason: str | None = Field(description="null: the close; late_event or dispute:TICKET: an amendment")
    in_report: bool | None = Field(description="R14: monthly-active on the month's last day")


class AccountPage(BaseModel):
    company_id: str
    month: MonthText
    accounts: list[AccountDecision]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last page")


class Dispute(BaseModel):
    ticket: str
    requested_by: str | None
    applied_at: str | None


class AccountVersion(AccountDecision):
    why: str = Field(description="why this version exists, in words")
    changed: list[str] = Field(description="the published columns that differ from the previous version")
    received_at: Timestamp
    dispute: Dispute | None
    adjustment: Adjustment | None = Field(description="what the change did to a later invoice, if invoiced")


class AccountHistory(BaseModel):
    company_id: str
    month: MonthText
    user_id: str
    current: AccountVersion
    versions: list[AccountVersion] = Field(description="every version, oldest first")


# The bill so far (provisional) ------------------------------------------------------------------

Status = Literal["on_track", "at_risk", "not_billed"]


class AccountEstimate(DecisionFields):
    status: Status
    status_reason: str = Field(
        description="billable_so_far, awaiting_billing_activity, may_start_on_day_1, cannot_become_billable, month_ended"
    )


class EstimateCounts(BaseModel):
    on_track: int
    at_risk: int
    not_billed: int


class EstimatedInvoice(BaseModel):
    plan: str | None
    lines: list[InvoiceLine]
    billable_accounts: int
    charged_accounts: int
    subtotal_usd: Money
    currency: str
    taxes: str
    free_reason: str | None
    po_number: str | None
    payment_method: str | None
    card_brand: str | None
    billing_country: str | None
    qualifies_for_invoice_payment: bool
    notices: list[str]


class Estimate(BaseModel):
    provisional: Literal[True] = Field(description="always true: an estimate is never a bill")
    company_id: str
    month: MonthText
    estimate_id: str
    as_of: Timestamp = Field(description="every event published before it is counted")
    counts: EstimateCounts
    estimate: EstimatedInvoice = Field(description="the invoice if the month ended at as_of")
    accounts: list[AccountEstimate]
    next_cursor: str | None


# Operations ---------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    db: str = Field(description="ok, or why the ledger cannot be read")
    kafka: str = Field(description="ok, or why Kafka does not answer")
