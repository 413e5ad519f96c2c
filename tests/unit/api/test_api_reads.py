"""The read endpoints over a ledger with a closed, amended and disputed October, a closed November
and an estimate of December (tests.support.ledger_file.sample_ledger)."""

from __future__ import annotations

import re

import pytest

from api.models import Estimate

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MONEY = re.compile(r"^-?\d+\.\d\d$")


async def test_month_invoices_are_the_issued_ones_of_the_keys_companies(client, setup):
    r = await client.get("/v1/months/2026-11/invoices", headers=setup.auth("reader"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True and RFC3339.match(body["completed_at"])
    got = {i["company_id"]: (i["subtotal_usd"], i["adjustments_usd"], i["total_usd"]) for i in body["invoices"]}
    assert got == {
        "acme": ("16.00", "-4.00", "12.00"),
        "globex": ("18.00", "0.00", "18.00"),
        "initech": ("8.00", "0.00", "8.00"),
    }
    scoped = (await client.get("/v1/months/2026-11/invoices", headers=setup.auth("globex-reader"))).json()
    assert [i["company_id"] for i in scoped["invoices"]] == ["globex"]
    open_month = (await client.get("/v1/months/2026-12/invoices", headers=setup.auth("reader"))).json()
    assert open_month == {"month": "2026-12", "complete": False, "completed_at": None, "invoices": []}


async def test_a_company_invoice_has_lines_adjustments_corrections_and_annotations(client, setup):
    oct_ = (await client.get("/v1/companies/acme/months/2026-10/invoice", headers=setup.auth("admin"))).json()
    assert oct_["lines"] == [
        {"plan": "premium", "tier": "standard", "count": 3, "unit_price_usd": "4.00", "amount_usd": "12.00"}
    ]
    assert (oct_["po_number"], oct_["latest_annotated_po_number"]) == ("PO-1", "PO-ADDED")
    assert [a["po_number"] for a in oct_["annotations"]] == ["PO-ADDED"]
    assert sorted((c["user_id"], c["amount_usd"], c["applied_to_invoice_month"]) for c in oct_["corrections"]) == [
        ("bob", "4.00", "2026-11"), ("dan", "-4.00", "2026-11"), ("eve", "-4.00", "2026-11"),
    ]  # fmt: skip
    nov = (await client.get("/v1/companies/acme/months/2026-11/invoice", headers=setup.auth("admin"))).json()
    assert sorted((a["user_id"], a["reason"]) for a in nov["adjustments"]) == [
        ("bob", "dispute:SUP-1"), ("dan", "late_event"), ("eve", "late_event"),
    ]  # fmt: skip
    assert nov["total_usd"] == "12.00" and nov["currency"] == "USD" and nov["taxes"] == "excluded"
    for a in nov["adjustments"]:
        assert MONEY.match(a["amount_usd"]) and RFC3339.match(a["created_at"])


async def test_accounts_come_in_pages_until_next_cursor_is_null_and_filter_by_billable(client, setup):
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/v1/companies/acme/months/2026-10/accounts", params=params, headers=setup.auth("reader"))
        page = r.json()
        assert len(page["accounts"]) <= 2
        seen += [(a["user_id"], a["version"], a["billable"]) for a in page["accounts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [("ann", 1, True), ("bob", 2, True), ("cat", 1, False), ("dan", 2, False), ("eve", 2, False)]
    r = await client.get(
        "/v1/companies/acme/months/2026-10/accounts", params={"billable": "false"}, headers=setup.auth("reader")
    )
    unbilled = r.json()["accounts"]
    assert [(a["user_id"], a["rule"], a["reason"]) for a in unbilled] == [
        ("cat", "R1", "created_mid_month"), ("dan", "R1", "deactivated_in_month"), ("eve", "R1", "deactivated_in_month"),
    ]  # fmt: skip
    assert unbilled[1]["evidence"][1] == {
        "event_id": unbilled[1]["evidence"][1]["event_id"], "type": "deactivate", "occurred_at": "2026-10-20T12:00:00+02:00",
    }  # fmt: skip


async def test_an_account_shows_every_version_why_it_changed_and_what_it_did_to_an_invoice(client, setup):
    dan = (await client.get("/v1/companies/acme/months/2026-10/accounts/dan", headers=setup.auth("reader"))).json()
    assert [v["version"] for v in dan["versions"]] == [1, 2] and dan["current"]["version"] == 2
    v1, v2 = dan["versions"]
    assert (v1["why"], v1["changed"], v1["adjustment"]) == ("the month's close", [], None)
    assert v2["amend_reason"] == "late_event" and v2["corrects_version"] == 1
    assert v2["changed"] == ["billable", "charged", "rule", "reason", "evidence", "unit_price_usd"]
    assert (v2["adjustment"]["amount_usd"], v2["adjustment"]["applied_to_invoice_month"]) == ("-4.00", "2026-11")
    bob = (await client.get("/v1/companies/acme/months/2026-10/accounts/bob", headers=setup.auth("reader"))).json()
    assert bob["current"]["dispute"] == {
        "ticket": "SUP-1",
        "requested_by": "support",
        "applied_at": "2026-12-02T10:00:00Z",
    }
    assert bob["current"]["why"] == "a dispute correction, ticket SUP-1"


async def test_the_estimate_is_provisional_and_pages_through_its_accounts_by_status(client, setup):
    r = await client.get("/v1/companies/acme/months/2026-12/estimate", headers=setup.auth("reader"))
    body = Estimate.model_validate(r.json())
    assert body.provisional is True and body.as_of == "2026-12-10T12:00:00.000Z"
    assert body.counts.model_dump() == {"on_track": 1, "at_risk": 4, "not_billed": 0}
    assert body.estimate.subtotal_usd == "4.00" and body.estimate.lines[0].count == 1
    assert [(a.user_id, a.status) for a in body.accounts][:2] == [("ann", "on_track"), ("bob", "at_risk")]
    risky, cursor = [], None
    while True:
        params = {"status": "at_risk", "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (
            await client.get("/v1/companies/acme/months/2026-12/estimate", params=params, headers=setup.auth("reader"))
        ).json()
        risky += [(a["user_id"], a["status_reason"]) for a in page["accounts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert risky == [(u, "awaiting_billing_activity") for u in ("bob", "cat", "dan", "eve")]


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/v1/companies/acme/months/2026-09/invoice", 404, "not-found"),
        ("/v1/companies/acme/months/2026-12/accounts", 404, "not-found"),  # the month is not complete
        ("/v1/companies/acme/months/2026-10/accounts/nobody", 404, "not-found"),
        ("/v1/companies/acme/months/2026-10/estimate", 404, "not-found"),
        ("/v1/companies/acme/months/2026-10/accounts?cursor=%25%25", 400, "bad-request"),
        ("/v1/companies/acme/months/2026-10/accounts?limit=0", 422, "invalid-request"),
        ("/v1/months/2026-13/invoices", 422, "invalid-request"),
        ("/v1/companies/a%20b/months/2026-10/invoice", 422, "invalid-request"),
        ("/v1/nothing-here", 404, "not-found"),
    ],
)
async def test_errors_are_problem_details(client, setup, path, status, kind):
    r = await client.get(path, headers=setup.auth("admin"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == f"urn:seatledger:problem:{kind}" and problem["status"] == status
    assert problem["title"] and problem["instance"] == path.split("?")[0].replace("%20", " ")


async def test_a_missing_database_is_503_with_retry_after(setup, client_with, tmp_path):
    setup_missing = type(setup)(setup.root, type(setup.ledger)(tmp_path / "x.duckdb"), setup.keys, setup.tokens)
    (tmp_path / "x.duckdb").unlink()
    from tests.unit.api.conftest import make_client

    async with make_client(setup_missing) as c:
        r = await c.get("/v1/months/2026-10/invoices", headers=setup.auth("reader"))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["type"] == "urn:seatledger:problem:database-unavailable"
