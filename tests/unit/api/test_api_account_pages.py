"""The accounts pages read a few users at a time (keyset on user_id) instead of the whole company:
walking them must still give exactly the ledger's own latest decisions (the `latest_decisions`
view), each once, in user_id order, whatever the page size, the filter and the versions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.readmodel import accounts_page
from ledger.tables import ensure_schema, insert_rows

MONTH = "2026-10"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def version_row(company: str, user: str, version: int, billable: bool) -> dict:
    return {
        "company_id": company, "user_id": user, "month": MONTH, "billable": billable, "charged": billable,
        "tier": "standard", "rule": "R2", "reason": "r", "evidence": "[]",
        "unit_price_usd": Decimal("4.00") if billable else Decimal("0.00"), "ruleset_version": "2026.11",
        "plan": "premium", "version": version, "corrects_version": version - 1 or None,
        "amend_reason": "late_event" if version > 1 else None, "emitted_version": version, "in_report": True,
        "digest": f"{user}-{version}", "close_id": "c", "partition": 0, "emitted_at": None, "received_at": NOW,
        "batch_id": version, "kafka_partition": 0, "kafka_offset": 0,
    }  # fmt: skip


# Each account: its billable flag per version (1 to 3 versions, as the sink numbers them).
accounts = st.dictionaries(
    st.text(alphabet="abcxyz019-", min_size=1, max_size=4), st.lists(st.booleans(), min_size=1, max_size=3), max_size=60
)


def walk(con: duckdb.DuckDBPyConnection, company: str, billable: bool | None, limit: int) -> list[tuple]:
    seen, after = [], None
    while True:
        page, after = accounts_page(con, company, MONTH, billable, after, limit)
        assert len(page) <= limit
        assert page or after is None, "an empty page must be the last"
        seen += [(a["user_id"], a["version"], a["billable"]) for a in page]
        if after is None:
            return seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts=accounts, other=accounts, limit=st.integers(1, 7), billable=st.sampled_from([None, True, False]))
def test_walking_the_pages_gives_every_latest_decision_once(accounts, other, limit, billable):
    con = duckdb.connect(":memory:")
    ensure_schema(con)
    rows = [
        version_row(company, user, v, flag)
        for company, users in (("acme", accounts), ("other", other))
        for user, flags in users.items()
        for v, flag in enumerate(flags, start=1)
    ]
    insert_rows(con, "snapshot_versions", rows[::-1])  # storage order is not user order
    insert_rows(con, "month_completions", [{"month": MONTH, "partitions": 1, "completed_at": NOW, "batch_id": 1}])
    expected = con.execute(
        "SELECT user_id, version, billable FROM latest_decisions WHERE company_id = 'acme' AND month = ?"
        " AND (? IS NULL OR billable = ?) ORDER BY user_id",
        [MONTH, billable, billable],
    ).fetchall()
    assert walk(con, "acme", billable, limit) == expected
