"""Named rule-set versions, so an old invoice can be reproduced exactly after the rules change.

A rule set is the small set of choices that have changed over time. Every decision records the
version that made it; `replay --ruleset` and `dispute --ruleset` run an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.facts import Evidence, MonthActivity


class UnknownRuleset(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    description: str
    notification_view_bills: bool = False  # 2026.10 counted viewing notifications as billing activity

    def billing_proof(self, activity: MonthActivity | None) -> Evidence | None:
        """R2: the earliest event that makes the account billing-active this month, or None."""
        if activity is None:
            return None
        return self.proof_of(activity.first_bill, activity.first_report)

    def proof_of(self, first_bill: Evidence | None, first_report: Evidence | None) -> Evidence | None:
        """`billing_proof` from the month's first billing and first report evidence: one of the
        two (the same object), or None. The worker's close reads them from its stored values
        without building a `MonthActivity` per account."""
        if not self.notification_view_bills:
            return first_bill
        # report kinds = visit, login, notification_view, chat_use: with bill kinds, that adds
        # notification_view and nothing else.
        if first_report is None:
            return first_bill
        return first_report if first_bill is None or first_report < first_bill else first_bill


RULESETS: dict[str, RuleSet] = {
    "2026.10": RuleSet(
        "2026.10",
        "First release: notification_view counted as billing activity (the reports' definition).",
        notification_view_bills=True,
    ),
    "2026.11": RuleSet(
        "2026.11",
        "R2 as the help pages state it: only login, visit, admin panel and Work Chat make an account "
        "billing-active; viewing notifications does not.",
    ),
}
CURRENT = RULESETS["2026.11"]


def get_ruleset(version: str | None) -> RuleSet:
    if version is None:
        return CURRENT
    try:
        return RULESETS[version]
    except KeyError:
        raise UnknownRuleset(f"unknown ruleset {version!r}; known: {', '.join(sorted(RULESETS))}") from None
