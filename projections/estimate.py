"""The bill so far: each account's decision if the month ended now, and whether it can still change.

An estimate is `decide()` over the facts known at its as-of time, exactly as the close would run it
if the month ended then and nothing else happened. On top of each decision it says how settled it
is, because a decision made mid-month can only move one way for most accounts:

- `on_track`: billable now (it would be billed, charged or, in a trial or nonprofit month, free);
- `at_risk`: not billable yet, but something that can still happen before the month ends would make
  it billable: a billing activity for a full-month account on the activity model (R2), or, while
  day 1 lasts, the start (provisioning, invite, claim, reactivation) that makes it full-month (R1/R3);
- `not_billed`: nothing left in the month can make it billable (deactivated in the month, started
  after day 1, a guest), or the month is over.

Pure: the as-of instant is an argument. The worker calls `estimate_company` with the decisions it
computes from its tables; the batch path (replay.estimate) with decisions from the archive.
Estimates are provisional: they never become decisions, invoices or adjustments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from projections.calendar import Month, MonthBounds
from projections.decide import CompanyMonth, Decision, decide_month
from projections.facts import FactSet
from projections.invoice import Invoice, build_invoice
from projections.prices import PriceBook
from projections.rulesets import CURRENT, RuleSet

ON_TRACK = "on_track"
AT_RISK = "at_risk"
NOT_BILLED = "not_billed"
STATUSES = (ON_TRACK, AT_RISK, NOT_BILLED)

# Why a status holds (the `status_reason` column), one code each.
BILLABLE_SO_FAR = "billable_so_far"
AWAITING_BILLING_ACTIVITY = "awaiting_billing_activity"
MAY_START_ON_DAY_1 = "may_start_on_day_1"
CANNOT_BECOME_BILLABLE = "cannot_become_billable"
MONTH_ENDED = "month_ended"

# R2: a full-month account without billing activity becomes billable with its first one.
_AWAITING_ACTIVITY = frozenset({("R2", "no_billing_activity"), ("R2", "notification_only")})
# R1/R3: an account that is not (or no longer) active becomes full-month if it starts on day 1.
_STARTS_LATER = frozenset({("R1", "no_account"), ("R3", "never_invited"), ("R1", "deactivated")})


def account_status(d: Decision, bounds: MonthBounds, as_of_us: int) -> tuple[str, str]:
    """(status, status_reason) of a decision computed with the facts known at `as_of_us`."""
    if d.billable:
        return ON_TRACK, BILLABLE_SO_FAR
    if as_of_us >= bounds.end_us:
        return NOT_BILLED, MONTH_ENDED
    if (d.rule, d.reason) in _AWAITING_ACTIVITY:
        return AT_RISK, AWAITING_BILLING_ACTIVITY
    if as_of_us < bounds.day1_cutoff_us and (d.rule, d.reason) in _STARTS_LATER:
        return AT_RISK, MAY_START_ON_DAY_1
    return NOT_BILLED, CANNOT_BECOME_BILLABLE


@dataclass(frozen=True, slots=True)
class AccountEstimate:
    decision: Decision  # what the close would decide if the month ended at the as-of time
    status: str
    status_reason: str


@dataclass(slots=True)
class CompanyEstimate:
    """One company's bill so far: every account's provisional decision and the invoice they make."""

    company_id: str
    month: str
    as_of_us: int
    accounts: list[AccountEstimate]
    invoice: Invoice  # provisional: build_invoice over the provisional decisions

    def counts(self) -> dict[str, int]:
        """Accounts per status, every status present (0 when none)."""
        tally = Counter(a.status for a in self.accounts)
        return {s: tally[s] for s in STATUSES}


def estimate_company(cm: CompanyMonth, decisions: list[Decision], as_of_us: int) -> CompanyEstimate:
    """The estimate of one company-month from the decisions `decide_company` made at `as_of_us`."""
    accounts = [AccountEstimate(d, *account_status(d, cm.bounds, as_of_us)) for d in decisions]
    return CompanyEstimate(cm.company_id, str(cm.month), as_of_us, accounts, build_invoice(cm, decisions))


def estimate_month(
    facts: FactSet,
    month: Month,
    as_of_us: int,
    prices: PriceBook,
    companies: Iterable[str],
    ruleset: RuleSet | str = CURRENT,
) -> Iterator[CompanyEstimate]:
    """Estimates of `companies` for `month` from `facts` (the facts known at `as_of_us`)."""
    for _cid, cm, decisions in decide_month(facts, month, prices, ruleset, companies):
        yield estimate_company(cm, decisions, as_of_us)
