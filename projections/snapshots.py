"""The messages on `seatledger.snapshots`: what the month projector emits and the sink stores.

Six kinds, all JSON objects keyed by company (the done marker by partition):

- `decision`: one account-month decision, versioned. Version 1 is the close; every later version
  is an amendment that names the version it corrects and why (`late_event`, `dispute:TICKET`).
- `company_month`: the company's invoice for the month as computed at close (lines, PO number,
  payment profile, notices) and its daily reports MAU.
- `partition_done`: a partition finished the month: counts and the checksum of its decisions.
- `dispute_applied`: the dispute tool corrected a company-month (the amendments themselves are
  `decision` messages with amend_reason `dispute:TICKET`).
- `estimate` and `company_estimate`: the bill so far (projections.estimate), provisional. One
  `estimate` per account, then one `company_estimate` with the estimated invoice, all of one run
  named by its `estimate_id` and `as_of`. The sink keeps them apart from billed data.
"""

from __future__ import annotations

import hashlib

import orjson

from projections.decide import DECISION_COLUMNS, Decision
from projections.estimate import AccountEstimate, CompanyEstimate
from projections.money import cents

SNAPSHOT_FORMAT = 1
KINDS = ("decision", "company_month", "partition_done", "dispute_applied", "estimate", "company_estimate")


def decision_row(d: Decision) -> dict:
    row = d.row()
    row["unit_price_usd"] = str(d.unit_price_usd)
    return row


def decision_from_row(row: dict, plan: str = "") -> Decision:
    vals = {c: row[c] for c in DECISION_COLUMNS}
    vals["unit_price_usd"] = cents(vals["unit_price_usd"])
    vals["billable"] = bool(vals["billable"])
    vals["charged"] = bool(vals["charged"])
    return Decision(**vals, plan=plan or row.get("plan", ""))


def row_digest(row: dict) -> str:
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def digest(d: Decision) -> str:
    """A short fingerprint of the published values: an amendment is due when it changes."""
    return row_digest(decision_row(d))


def checksum_of_digests(digests) -> str:
    """Order-independent checksum of a set of decision digests (sha256 of the sorted digests)."""
    h = hashlib.sha256()
    for dg in sorted(digests):
        h.update(dg.encode())
    return h.hexdigest()


def checksum(decisions) -> str:
    """Order-independent checksum of a set of decision rows."""
    return checksum_of_digests(digest(d) for d in decisions)


def decision_message(
    d: Decision,
    *,
    version: int,
    corrects_version: int | None = None,
    amend_reason: str | None = None,
    in_report: bool | None = None,
    close_id: str = "",
    partition: int | None = None,
    emitted_at: str | None = None,
) -> dict:
    row = decision_row(d)
    return {
        "kind": "decision",
        "format": SNAPSHOT_FORMAT,
        **row,
        "plan": d.plan,
        "version": version,
        "corrects_version": corrects_version,
        "amend_reason": amend_reason,
        "in_report": in_report,
        "digest": row_digest(row),
        "close_id": close_id,
        "partition": partition,
        "emitted_at": emitted_at,
    }


def company_month_message(
    invoice_json: dict,
    mau: list[tuple],
    *,
    version: int = 1,
    close_id: str = "",
    partition: int | None = None,
    emitted_at: str | None = None,
) -> dict:
    return {
        "kind": "company_month",
        "format": SNAPSHOT_FORMAT,
        "company_id": invoice_json["company_id"],
        "month": invoice_json["month"],
        "version": version,
        "invoice": invoice_json,
        "mau": [[d.isoformat(), n] for d, n in mau],
        "close_id": close_id,
        "partition": partition,
        "emitted_at": emitted_at,
    }


def partition_done_message(
    month: str,
    partition: int,
    partitions: int,
    *,
    close_id: str,
    companies: int,
    accounts: int,
    checksum_: str,
    counts: dict,
    emitted_at: str | None = None,
) -> dict:
    return {
        "kind": "partition_done",
        "format": SNAPSHOT_FORMAT,
        "month": month,
        "partition": partition,
        "partitions": partitions,
        "close_id": close_id,
        "companies": companies,
        "accounts": accounts,
        "checksum": checksum_,
        "counts": counts,  # events_counted, rejected, duplicates_ignored, late_since_close
        "emitted_at": emitted_at,
    }


def dispute_applied_message(
    ticket: str, company_id: str, month: str, *, requested_by: str | None, applied_at: str, changes: list[dict]
) -> dict:
    """Produced by the dispute tool, stored once per ticket. `changes`: one object per changed
    account, e.g. {user_id, from, to}: stored as sent."""
    return {
        "kind": "dispute_applied",
        "format": SNAPSHOT_FORMAT,
        "ticket": ticket,
        "company_id": company_id,
        "month": month,
        "requested_by": requested_by,
        "applied_at": applied_at,
        "changes": changes,
    }


def estimate_message(
    est: AccountEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> dict:
    """One account's provisional decision in an estimate run (`as_of`: RFC 3339, the run's time)."""
    return {
        "kind": "estimate",
        "format": SNAPSHOT_FORMAT,
        "provisional": True,
        **decision_row(est.decision),
        "plan": est.decision.plan,
        "status": est.status,
        "status_reason": est.status_reason,
        "estimate_id": estimate_id,
        "as_of": as_of,
        "partition": partition,
        "emitted_at": emitted_at,
    }


def company_estimate_message(
    est: CompanyEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> dict:
    """A company's estimated invoice and status counts; sent after its accounts' `estimate`s."""
    return {
        "kind": "company_estimate",
        "format": SNAPSHOT_FORMAT,
        "provisional": True,
        "company_id": est.company_id,
        "month": est.month,
        "estimate_id": estimate_id,
        "as_of": as_of,
        "accounts": len(est.accounts),
        "counts": est.counts(),
        "invoice": est.invoice.to_json(),
        "partition": partition,
        "emitted_at": emitted_at,
    }


def estimate_messages(
    est: CompanyEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> list[dict]:
    """Every message of one company's estimate, in the order the sink needs: accounts, then company."""
    out = [
        estimate_message(a, estimate_id=estimate_id, as_of=as_of, partition=partition, emitted_at=emitted_at)
        for a in est.accounts
    ]
    out.append(
        company_estimate_message(est, estimate_id=estimate_id, as_of=as_of, partition=partition, emitted_at=emitted_at)
    )
    return out


def encode(msg: dict) -> bytes:
    return orjson.dumps(msg)


def decode(raw: bytes) -> dict:
    return orjson.loads(raw)
