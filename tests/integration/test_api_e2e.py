"""End to end over HTTP: events POSTed to `seatledger serve`, folded by the worker, estimated on the
month's last day, closed, stored by the sink, and read back through the API.

- Every account's decision and every invoice the API shows equal the batch replay of the events.
- The worker's estimate, asked for on the last day (after the events that happened before it, and
  before the rest), equals the batch path's estimate of the same events, and the close's decision
  for every account whose facts do not change afterwards; where they change, it differs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import orjson
import pytest

from devtools.workload import iter_events
from projections.calendar import Month, to_us
from projections.prices import PriceBook
from replay.estimate import estimates_from_events
from replay.month import run_month
from streams.markers import send_estimate_markers
from tests.support.api_server import ApiServer, api_env, make_keys
from tests.support.services import Service, wait_for
from tests.support.worker_harness import WorkerProcess, close_month, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-10"
AS_OF = "2026-10-31T12:00:00+00:00"
CO = "c-lastday"


def ev(eid: str, kind: str, at: str, user: str | None = None, **extra) -> dict:
    out = {"event_id": eid, "type": kind, "occurred_at": at, "company_id": CO, **extra}
    return out | ({"user_id": user} if user else {})


# A company whose last day matters: late-login logs in after the estimate, leaver is deactivated after it.
OWN = [
    ev("reg", "company_registered", "2026-01-01T00:00:00Z", timezone="America/Los_Angeles"),
    *(ev(f"p-{u}", "account_provisioned", "2026-09-01T08:00:00Z", u) for u in ("steady", "late-login", "leaver")),
    ev("l-steady", "login", "2026-10-02T17:00:00Z", "steady"),
    ev("l-leaver", "login", "2026-10-03T17:00:00Z", "leaver"),
    ev("l-late", "login", "2026-10-31T18:00:00Z", "late-login"),  # 11:00 local on the 31st, after AS_OF
    ev("d-leaver", "deactivate", "2026-10-31T19:00:00Z", "leaver"),
]


def pages(client: httpx.Client, path: str, **params) -> list[dict]:
    """Every account of a paginated resource."""
    out, cursor = [], None
    while True:
        r = client.get(path, params=params | ({"cursor": cursor} if cursor else {}) | {"limit": 50})
        assert r.status_code == 200, r.text
        out += r.json()["accounts"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def as_row(company: str, a: dict) -> dict:
    """An API account back as a published decision row (evidence as its JSON text)."""
    keep = ("user_id", "billable", "charged", "tier", "rule", "reason", "unit_price_usd", "ruleset_version")
    return {k: a[k] for k in keep} | {"company_id": company, "evidence": orjson.dumps(a["evidence"]).decode()}


def test_events_over_http_closed_by_the_worker_read_back_over_http_and_the_last_days_estimate(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=3)
    data, db = tmp_path / "data", tmp_path / "ledger.duckdb"
    env = {**worker_env(settings, data), **api_env(settings, db, data), "SEATLEDGER_SINK_METRICS_PORT": "0"}
    tokens = make_keys(data, {"ci": ("admin", None)})
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    sink = Service(["sink", "--metrics-port", "-1"], env, tmp_path / "sink.log").start()
    api = ApiServer(env, tmp_path / "api.log").start()
    services = (worker, sink, api)
    bulk = [
        e
        for e in iter_events(companies=3, accounts=30, month=MONTH, seed=3, activity=0.3)
        if e["occurred_at"] < "2026-11"
    ]
    events = bulk + OWN
    src = tmp_path / "events.ndjson"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    client = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tokens['ci']}"}, timeout=60)
    as_of = datetime.fromisoformat(AS_OF)
    before = [e for e in events if not happened_since(e, as_of)]
    try:
        post(client, before)
        asyncio.run(send_estimate_markers(settings, MONTH, estimate_id="last-day", as_of=as_of))
        # A routed partition estimates once it has the marker from every source partition; events
        # published after the marker on one source can reach it before another source's marker.
        # So the rest is published once the estimate is out: it is then of exactly `before`.
        batch = estimates_from_events(str(src), Month.parse(MONTH), as_of, PriceBook.load())
        wait_for(
            lambda: all(client.get(f"/v1/companies/{e.company_id}/months/{MONTH}/estimate").status_code == 200 for e in batch),
            120, "the worker's estimates over HTTP", *services,
        )  # fmt: skip
        post(client, [e for e in events if happened_since(e, as_of)])
        asyncio.run(close_month(settings, MONTH))
        month = wait_for(
            lambda: (m := client.get(f"/v1/months/{MONTH}/invoices").json())["complete"] and m, 240,
            "the month complete over HTTP", *services,
        )  # fmt: skip

        replay = run_month(str(src), MONTH, with_mau=False)
        expected = {
            (d.company_id, d.user_id): {c: v for c, v in d.row().items() if c != "month"}
            | {"unit_price_usd": f"{d.unit_price_usd:.2f}"}
            for d in replay.decisions
        }
        closed = {}
        for company in sorted(replay.invoices):
            for a in pages(client, f"/v1/companies/{company}/months/{MONTH}/accounts"):
                closed[(company, a["user_id"])] = as_row(company, a)
        assert closed == expected
        assert {i["company_id"]: i["subtotal_usd"] for i in month["invoices"]} == {
            c: f"{inv.subtotal_usd:.2f}" for c, inv in replay.invoices.items()
        }

        compared, differ = 0, {}
        for est in batch:
            company = est.company_id
            body = client.get(f"/v1/companies/{company}/months/{MONTH}/estimate").json()
            assert body["provisional"] is True and body["as_of"] == "2026-10-31T12:00:00.000Z"
            assert body["estimate_id"] == "last-day" and body["counts"] == est.counts()
            assert body["estimate"]["subtotal_usd"] == f"{est.invoice.subtotal_usd:.2f}"
            served = {a["user_id"]: a for a in pages(client, f"/v1/companies/{company}/months/{MONTH}/estimate")}
            want = {a.decision.user_id: a for a in est.accounts}
            assert served.keys() == want.keys()
            for user, a in served.items():
                assert a["status"] == want[user].status
                assert as_row(company, a) == {c: v for c, v in want[user].decision.row().items() if c != "month"} | {
                    "unit_price_usd": f"{want[user].decision.unit_price_usd:.2f}"
                }
                if changes_after(events, company, user):
                    differ[user] = (a["status"], closed[(company, user)]["billable"])
                else:
                    assert as_row(company, a) == closed[(company, user)], (company, user)
                    compared += 1
        print(f"the worker's estimate equals the close for {compared} accounts; {len(differ)} changed after it")
        assert compared >= 20 and "steady" not in differ
        assert differ["late-login"] == ("at_risk", True) and differ["leaver"] == ("on_track", False)
    finally:
        client.close()
        rcs = [s.stop() for s in services]
    assert rcs == [0, 0, 0], "\n".join(s.tail() for s in services)


def happened_since(e: dict, as_of: datetime) -> bool:
    return to_us(datetime.fromisoformat(e["occurred_at"])) >= to_us(as_of)


def post(client: httpx.Client, events: list[dict]) -> None:
    for i in range(0, len(events), 1000):
        r = client.post("/v1/events", json=events[i : i + 1000])
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def changes_after(events: list[dict], company: str, user: str) -> bool:
    """Does an event at or after AS_OF touch this account's facts or its company's?"""
    cut = to_us(datetime.fromisoformat(AS_OF))
    for e in events:
        if to_us(datetime.fromisoformat(e["occurred_at"])) < cut:
            continue
        if e["company_id"] == company and e.get("user_id") in (None, user):
            return True
        if e.get("guest_home_company_id") == company:
            return True
    return False
