"""The batch path: events + month (+ company) -> decisions, invoices, MAU and reconciliation.

Facts come from DuckDB (`replay.facts_sql.build_facts`), decisions from the same pure
`projections.decide.decide_company` the streaming worker calls (through `decide_month`), so both
paths bill alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from projections.calendar import Month
from projections.collector import no_gc
from projections.decide import CompanyMonth, Decision, company_has_month, decide_month
from projections.facts import FactSet, MonthActivity
from projections.invoice import Invoice, build_invoice
from projections.mau import Reconciliation, in_report, mau_daily, months_needed, reconcile
from projections.prices import PriceBook
from projections.rulesets import CURRENT, RuleSet, get_ruleset
from replay.duck import batch_connection
from replay.events_source import LoadedEvents, load_events
from replay.facts_sql import build_facts


class UnknownCompany(LookupError):
    pass


@dataclass(slots=True)
class MonthResult:
    """One month of the batch path: decisions, invoices, MAU and reconciliation (and timings)."""

    month: Month
    decisions: list[Decision] = field(default_factory=list)  # sorted by (company, user)
    company_months: dict[str, CompanyMonth] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    mau: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    reconciliation: list[Reconciliation] = field(default_factory=list)  # sorted by (company, user)
    loaded: LoadedEvents | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def decisions_of(self, company_id: str) -> list[Decision]:
        return [d for d in self.decisions if d.company_id == company_id]

    def reconciliation_of(self, company_id: str) -> list[Reconciliation]:
        return [r for r in self.reconciliation if r.company_id == company_id]


def companies_for_month(facts: FactSet, month: Month) -> list[str]:
    """Every company that exists by the end of the month (`projections.decide.company_has_month`)."""
    return sorted(cid for cid, cf in facts.companies.items() if company_has_month(cf, month))


History = dict[str, dict[Month, MonthActivity | None]]  # per user: activity by month


def _mau_history(facts: FactSet, month: Month) -> dict[str, History]:
    """Per company, per user: the activity of the months the month's MAU report looks at."""
    wanted = set(months_needed(month))
    history: dict[str, History] = {}
    for (cid, uid, mo), act in facts.activity.items():
        if mo in wanted:
            history.setdefault(cid, {}).setdefault(uid, {})[mo] = act
    return history


def month_from_facts(
    facts: FactSet,
    month: Month,
    company: str | None = None,
    prices: PriceBook | None = None,
    ruleset: RuleSet | str | None = None,
    with_mau: bool = True,
) -> MonthResult:
    """Decide every company (or one) of `facts` for `month`, with invoices and MAU; pure given the facts."""
    prices = prices or PriceBook.load()
    rs = get_ruleset(ruleset) if isinstance(ruleset, str) or ruleset is None else ruleset
    if company is not None and company not in facts.companies:
        raise UnknownCompany(f"unknown company {company!r}: no event of it in the input")
    with no_gc():  # ~1M decisions, invoices and their lines: acyclic objects
        return _decide(facts, month, company, prices, rs, with_mau)


def _decide(
    facts: FactSet, month: Month, company: str | None, prices: PriceBook, rs: RuleSet, with_mau: bool
) -> MonthResult:
    cids = companies_for_month(facts, month)
    if company is not None:  # one company: only if it exists by the month's end, as in the full run
        cids = [company] if company in cids else []
    history = _mau_history(facts, month) if with_mau else {}
    res = MonthResult(month)
    for cid, cm, decisions in decide_month(facts, month, prices, rs, cids):
        res.company_months[cid] = cm
        res.decisions.extend(decisions)
        res.invoices[cid] = build_invoice(cm, decisions)
        if with_mau:
            hist = history.get(cid, {})
            res.mau[cid] = mau_daily(month, hist)
            for d in decisions:
                res.reconciliation.append(reconcile(d, in_report(month, hist.get(d.user_id, {}))))
    return res


def run_month(
    source: str | LoadedEvents,
    month: Month | str,
    company: str | None = None,
    prices: PriceBook | str | None = None,
    ruleset: RuleSet | str | None = None,
    with_mau: bool = True,
    con=None,
    progress: bool | None = None,
) -> MonthResult:
    """Read events (a path, or events already loaded into a connection), build facts, decide."""
    month = Month.parse(month) if isinstance(month, str) else month
    if prices is None or isinstance(prices, str):
        prices = PriceBook.load(prices)
    rs = get_ruleset(ruleset) if isinstance(ruleset, str) or ruleset is None else ruleset
    t0 = time.perf_counter()
    if isinstance(source, LoadedEvents):
        loaded = source
    else:
        con = con or batch_connection()
        loaded = load_events(con, str(source), progress=progress)
    t1 = time.perf_counter()
    facts = build_facts(loaded.con, loaded.view, companies=[company] if company else None)
    t2 = time.perf_counter()
    res = month_from_facts(facts, month, company, prices, rs, with_mau)
    t3 = time.perf_counter()
    res.loaded = loaded
    res.timings = {"load_s": t1 - t0, "facts_s": t2 - t1, "decide_s": t3 - t2}
    return res


__all__ = ["run_month", "month_from_facts", "companies_for_month", "MonthResult", "UnknownCompany", "CURRENT"]
