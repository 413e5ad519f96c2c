"""Accounts pages (api.readmodel.accounts_page, used by the API's accounts route and the console):
whatever the page size, filter and search, walking the pages gives exactly the latest decision of
every matching account, in user_id order, once each. The page reads users a window at a time, so
this is checked against one plain query over the ledger's own `latest_decisions` view."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.readmodel import accounts_page
from ledger.connection import read_connection
from tests.support.given import World
from tests.support.ledger_file import LedgerFile

MONTH = "2026-10"
USERS = [f"u{i:02d}" for i in range(30)] + ["U_x", "u-y", "a.b"]  # "_" is a LIKE wildcard; case to ignore


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One company: every third user active (billed), then a late event bills a few more (version 2)."""
    w = World().company("co", plan="premium")
    for i, u in enumerate(USERS):
        w.member("co", u)
        if i % 3 == 0:
            w.do("login", "co", u, "2026-10-05")
    lf = LedgerFile(tmp_path_factory.mktemp("pages") / "ledger.duckdb")
    lf.close_month(w, MONTH)
    for u in USERS[1:12:4]:
        w.do("login", "co", u, "2026-10-09")
    lf.amend(w, MONTH, "late_event")
    return lf.path


def expected(con, billable: bool | None, search: str | None) -> list[tuple[str, int]]:
    rows = con.execute(
        "SELECT user_id, version, billable FROM latest_decisions WHERE company_id = 'co' AND month = ? ORDER BY user_id",
        [MONTH],
    ).fetchall()
    return [
        (u, v)
        for u, v, b in rows
        if (billable is None or b == billable) and (not search or search.lower() in u.lower())
    ]


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 8),
    billable=st.sampled_from([None, True, False]),
    search=st.sampled_from([None, "", "u0", "U1", "%", "_", "x", "nobody"]),
)
def test_walking_the_pages_gives_every_matching_latest_decision_once_in_order(ledger, limit, billable, search):
    with read_connection(ledger) as con:
        want = expected(con, billable, search)
        got: list[tuple[str, int]] = []
        after = None
        for _ in range(len(USERS) + 2):
            page, after = accounts_page(con, "co", MONTH, billable, after, limit, search)
            assert len(page) <= limit
            assert after is None or page, "a next position after an empty page"
            got += [(a["user_id"], a["version"]) for a in page]
            if after is None:
                break
    assert got == want


def test_the_ledger_has_billed_and_unbilled_accounts_and_amendments(ledger):
    with read_connection(ledger) as con:
        every = expected(con, None, None)
        billed = expected(con, True, None)
    assert len(every) == len(USERS) and 0 < len(billed) < len(every)
    assert any(v == 2 for _, v in every)
