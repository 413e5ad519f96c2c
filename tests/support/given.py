"""A small given/when/then helper: build a company's events tersely, decide a month, read results.

    w = World()
    w.company("acme", tz="Europe/Amsterdam", plan="advanced")      # registered long before
    w.provision("acme", "ann", "2026-10-01")                       # date only: local noon
    w.invite("acme", "ann", "2026-10-01T00:10:00+02:00")           # or an exact RFC 3339 instant
    d = w.decide("acme", "2026-10")["ann"]                         # projections.decide.Decision

Every event goes through `schemas.decode.validate_event`, so the tests feed the rules exactly what
production feeds them. Event ids are e1, e2, ... in creation order unless given.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from projections.calendar import Month
from projections.decide import CompanyMonth, Decision, decide_company
from projections.facts import FactSet, fold_all
from projections.invoice import Invoice, build_invoice
from projections.prices import PriceBook
from schemas.decode import validate_event

PRICES = PriceBook.load()
LONG_AGO = "2025-01-01T00:00:00Z"


class World:
    def __init__(self):
        self.raw: list[dict] = []
        self.zones: dict[str, str] = {}
        self._n = 0

    # time ---------------------------------------------------------------------------------------

    def when(self, company: str, at: str) -> str:
        """'2026-10-01' -> local noon of that date in the company's zone; anything else verbatim."""
        if len(at) == 10:
            tz = ZoneInfo(self.zones.get(company, "UTC"))
            d = datetime.fromisoformat(at).date()
            return datetime.combine(d, time(12), tz).isoformat()
        return at

    # events -------------------------------------------------------------------------------------

    def event(self, kind: str, company: str, at: str, user: str | None = None, event_id: str | None = None, **fields):
        self._n += 1
        ev = {
            "event_id": event_id or f"e{self._n}",
            "type": kind,
            "occurred_at": self.when(company, at),
            "company_id": company,
        }
        if user is not None:
            ev["user_id"] = user
        ev.update(fields)
        validate_event(ev)  # fail loudly if a test builds an event the contract rejects
        self.raw.append(ev)
        return self

    def company(self, cid: str, tz: str = "UTC", at: str = LONG_AGO, plan: str | None = None, **kw):
        self.zones[cid] = tz
        self.event("company_registered", cid, at, timezone=tz, **kw)
        if plan is not None:
            self.event("plan_changed", cid, at, plan=plan)
        return self

    def plan(self, cid, plan, at):
        return self.event("plan_changed", cid, at, plan=plan)

    def trial(self, cid, at, **kw):
        return self.event("trial_started", cid, at, **kw)

    def nonprofit(self, cid, at, token="123a4567@MyOrgName", org="charity"):
        return self.event("nonprofit_verified", cid, at, techsoup_token=token, organization_type=org)

    def revoke(self, cid, at):
        return self.event("nonprofit_revoked", cid, at)

    def billing(self, cid, at, **kw):
        return self.event("billing_profile_updated", cid, at, **kw)

    def provision(self, cid, uid, at, **kw):
        return self.event("account_provisioned", cid, at, uid, **kw)

    def invite(self, cid, uid, at, **kw):
        return self.event("invite", cid, at, uid, **kw)

    def claim(self, cid, uid, at):
        return self.event("claim", cid, at, uid)

    def deactivate(self, cid, uid, at):
        return self.event("deactivate", cid, at, uid)

    def reactivate(self, cid, uid, at):
        return self.event("reactivate", cid, at, uid)

    def profile(self, cid, uid, at, **kw):
        return self.event("profile_update", cid, at, uid, **kw)

    def do(self, kind, cid, uid, at, **kw):
        if kind in ("visit",) and "channel" not in kw:
            kw["channel"] = "web"
        return self.event(kind, cid, at, uid, **kw)

    def member(self, cid, uid, at=LONG_AGO, **kw):
        """An account provisioned, invited and claimed long ago: full-month under both models."""
        return self.provision(cid, uid, at, **kw).invite(cid, uid, at).claim(cid, uid, at)

    # when / then --------------------------------------------------------------------------------

    @property
    def events(self):
        return [validate_event(e) for e in self.raw]

    def facts(self) -> FactSet:
        return fold_all(self.events)

    def decide_all(
        self, cid: str, month: str, prices: PriceBook = PRICES, ruleset=None
    ) -> tuple[CompanyMonth, list[Decision]]:
        facts = self.facts()
        m = Month.parse(month)
        accounts = {u: a for (c, u), a in facts.accounts.items() if c == cid}
        activity = {u: act for (c, u, mo), act in facts.activity.items() if c == cid and mo == m}
        kwargs = {"ruleset": ruleset} if ruleset else {}
        return decide_company(cid, m, facts.company(cid), accounts, activity, prices, **kwargs)

    def decide(self, cid: str, month: str, **kw) -> dict[str, Decision]:
        return {d.user_id: d for d in self.decide_all(cid, month, **kw)[1]}

    def invoice(self, cid: str, month: str, **kw) -> Invoice:
        cm, decisions = self.decide_all(cid, month, **kw)
        return build_invoice(cm, decisions)
