"""State written under an older contract, brought up to today's as the changelogs are read back.

The fold validates every event before it touches state, so state only breaks a rule when it was
written before the rule existed. One such rule matters to a worker: the billing zone of a
`company_registered` must be a canonical name of the shipped tzdata (schemas.timezones). A
registration recorded earlier with a host alias (`right/Europe/Amsterdam`, `localtime`) made every
later activity event of the company fail to fold, and the month's close of its partition raise,
again after every restart. The batch path leaves such an archived row out (replay, verify and
dispute report it); recovery leaves the record out the same way, so the worker and a replay of
the archive bill the company alike. Activity bucketed under the old zone stays as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.timezones import zone_problem

log = logging.getLogger("seatledger.worker")


def _refused_zone(record: list) -> str | None:
    """Why a company record's zone is refused today, or None (records: [ts, event_id, type, attrs])."""
    if record[2] != "company_registered" or not record[3]:
        return None
    zone = dict(record[3]).get("timezone")
    return zone_problem(zone) if isinstance(zone, str) else None


def company_value(key: str, value: dict[str, Any]) -> dict[str, Any]:
    """A `companies` value without the registrations whose zone today's contract refuses."""
    records = value.get("r") or []
    kept = [r for r in records if _refused_zone(r) is None]
    if len(kept) == len(records):
        return value
    for r in records:
        if (why := _refused_zone(r)) is not None:
            log.warning("event=state_record_left_out table=companies company=%s event_id=%s reason=%r", key, r[1], why)
    return {**value, "r": kept}


def migrate(table: str, key: Any, value: Any) -> Any:
    """A recovered table value as today's contract allows it."""
    if table == "companies" and isinstance(value, dict):
        return company_value(key, value)
    return value
