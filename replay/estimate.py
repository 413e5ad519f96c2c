"""The bill so far from the batch path: events that happened before an instant -> estimates.

The worker estimates a month from the facts it holds when an estimate marker arrives; this is the
same computation over an events file or the archive, for tests, benchmarks and anyone without a
running worker. "Known at as_of" is read as "happened before as_of" (`occurred_at < as_of`): the
archive does not say when an event arrived. Facts come from `replay.facts_sql.build_facts`,
decisions from the same `decide()`, statuses from `projections.estimate`, and the messages from
`projections.snapshots.estimate_messages`, so the sink stores them exactly as it stores a worker's.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import duckdb

from projections.calendar import Month, to_us, utc_iso
from projections.estimate import CompanyEstimate, estimate_month
from projections.prices import PriceBook
from projections.rulesets import CURRENT, RuleSet
from projections.snapshots import estimate_messages
from replay.duck import batch_connection
from replay.events_source import LoadedEvents, load_events
from replay.facts_sql import build_facts
from replay.month import companies_for_month


def estimates_from_events(
    source: str | LoadedEvents,
    month: Month,
    as_of: datetime,
    prices: PriceBook,
    ruleset: RuleSet | str = CURRENT,
) -> list[CompanyEstimate]:
    """Every company's estimate of `month` from the events at `source` that happened before `as_of`."""
    loaded = source if isinstance(source, LoadedEvents) else load_events(batch_connection(), source)
    con = cast(duckdb.DuckDBPyConnection, loaded.con)
    as_of_us = to_us(as_of)
    known = con.sql(f"SELECT * FROM {loaded.view} WHERE occurred_at_us < {as_of_us}")
    facts = build_facts(con, known)
    return list(estimate_month(facts, month, as_of_us, prices, companies_for_month(facts, month), ruleset))


def estimate_run_messages(estimates: list[CompanyEstimate], estimate_id: str, as_of: datetime) -> list[dict]:
    """The snapshot messages of an estimate run, company after company (each: accounts, then company)."""
    stamp = utc_iso(as_of)
    out: list[dict] = []
    for est in estimates:
        out.extend(estimate_messages(est, estimate_id=estimate_id, as_of=stamp, emitted_at=stamp))
    return out
