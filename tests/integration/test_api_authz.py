"""The authorisation matrix over a real `seatledger serve` (uvicorn on a free port), a real DuckDB
file and the real broker: every route x every role x an in-scope and an out-of-scope company, a
revoked key and no key. Also: /healthz answers 200 when both are up, and SIGTERM stops the server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from api.keys import KeyStore
from streams.settings import Settings
from tests.support.api_server import ApiServer, api_env, make_keys
from tests.support.kafka_readback import read_all
from tests.support.ledger_file import sample_ledger

pytestmark = [pytest.mark.kafka]

IN, OUT = "acme", "globex"  # every role's key covers acme only
USER = {"acme": "ann", "globex": "g1"}
ROLES = ("publisher", "reader", "admin")
# (method, path template, action): {c} is the company, {u} one of its users
ROUTES = (
    ("POST", "/v1/events", "publish"),
    ("GET", "/v1/months/2026-10/invoices", "read"),
    ("GET", "/v1/companies/{c}/months/2026-10/invoice", "read"),
    ("GET", "/v1/companies/{c}/months/2026-10/accounts", "read"),
    ("GET", "/v1/companies/{c}/months/2026-10/accounts/{u}", "read"),
    ("GET", "/v1/companies/{c}/months/2026-12/estimate", "read"),
)
GRANTS = {"publisher": {"publish"}, "reader": {"read"}, "admin": {"publish", "read"}}


@dataclass
class Served:
    server: ApiServer
    tokens: dict[str, str]
    settings: Settings


@pytest.fixture(scope="module")
def served(kafka_module_topics, tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("api-authz")
    settings = kafka_module_topics(partitions=2)
    ledger, _world = sample_ledger(root / "ledger.duckdb")
    tokens = make_keys(root, {role: (role, [IN]) for role in ROLES} | {"revoked": ("admin", None)})
    KeyStore(root / "api-keys.json").revoke("revoked")
    server = ApiServer(api_env(settings, ledger.path, root), root / "api.log").start()
    try:
        yield Served(server, tokens, settings)
    finally:
        assert server.stop() == 0, server.tail()  # SIGTERM: a clean exit


def call(served: Served, method: str, path: str, company: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = served.server.url + path.format(c=company, u=USER[company])
    if method == "POST":
        event = {"event_id": f"authz-{uuid.uuid4().hex}", "type": "login", "occurred_at": "2026-10-02T08:00:00Z",
                 "company_id": company, "user_id": USER[company]}  # fmt: skip
        return httpx.post(url, content=orjson.dumps([event]), headers=headers | {"Content-Type": "application/json"})
    return httpx.get(url, headers=headers)


@pytest.mark.parametrize(("method", "path", "action"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("company", [IN, OUT], ids=["in-scope", "out-of-scope"])
@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_do_what_it_grants_for_the_companies_it_covers(served, role, company, method, path, action):
    r = call(served, method, path, company, served.tokens[role])
    if action not in GRANTS[role]:
        assert (r.status_code, r.json()["type"]) == (403, "urn:seatledger:problem:forbidden"), r.text
    elif method == "POST":  # an event of another company is not sent: rejected with the reason
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["rejected"]) == ((1, 0) if company == IN else (0, 1))
        if company == OUT:
            assert body["rejections"][0]["reason"] == "company 'globex' is outside this API key's scope"
    elif "{c}" not in path:  # the month's invoices: only the covered companies'
        assert r.status_code == 200, r.text
        assert [i["company_id"] for i in r.json()["invoices"]] == [IN]
    elif company == IN:
        assert r.status_code == 200, r.text
    else:
        assert (r.status_code, r.json()["type"]) == (403, "urn:seatledger:problem:out-of-scope"), r.text


@pytest.mark.parametrize(("method", "path", "action"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("who", ["revoked", None], ids=["revoked-key", "no-key"])
def test_a_revoked_key_or_no_key_is_401_on_every_route(served, who, method, path, action):
    r = call(served, method, path, IN, served.tokens[who] if who else None)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_accepted_events_are_in_kafka_when_answered_and_healthz_and_metrics_need_no_key(served):
    r = call(served, "POST", "/v1/events", IN, served.tokens["admin"])
    assert r.json()["accepted"] == 1
    records = asyncio.run(read_all(served.settings, served.settings.topic_events))
    sent = [e["event_id"] for rec in records for e in _events(rec.value)]
    assert sent and all(e.startswith("authz-") for e in sent)
    health = httpx.get(served.server.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "db": "ok", "kafka": "ok"}
    metrics = httpx.get(served.server.url + "/metrics").text
    assert 'seatledger_api_requests_total{method="POST",route="/v1/events",status="200"}' in metrics
    assert "seatledger_api_events_accepted_total" in metrics and "seatledger_api_request_seconds_bucket" in metrics


def _events(value: bytes) -> list[dict]:
    data = orjson.loads(value)
    return data if isinstance(data, list) else [data]
