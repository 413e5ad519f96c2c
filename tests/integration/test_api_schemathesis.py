"""Schemathesis: requests generated from the API's own OpenAPI document, against `seatledger serve`
(uvicorn on a free port) over a real ledger file and the real broker. Every route; no 5xx; every
response's status code, content type, headers and body as the document declares them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.support.api_server import ApiServer, api_env, make_keys
from tests.support.ledger_file import sample_ledger

pytestmark = [pytest.mark.kafka]

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 40  # per route: ~8 routes, well under a minute on the 2-core machine


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value) -> bytes:
    """The document describes an NDJSON body as an array of events: one per line."""
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item) for item in items).encode()  # json: integers of any size


@pytest.fixture(scope="module")
def served(kafka_module_topics, tmp_path_factory) -> Iterator[tuple[ApiServer, str]]:
    root = tmp_path_factory.mktemp("api-schemathesis")
    topics = kafka_module_topics(partitions=2)
    ledger, _world = sample_ledger(root / "ledger.duckdb")
    token = make_keys(root, {"admin": ("admin", None)})["admin"]
    server = ApiServer(api_env(topics, ledger.path, root), root / "api.log").start()
    try:
        yield server, token
    finally:
        server.stop()


def document() -> dict:
    """The OpenAPI document the app serves (built without serving: its routes and models only).

    Loaded when the module is collected, because schemathesis' lazy loader from a fixture does not
    run on pytest 9.2 (it renames the test through `request.node._nodeid`, gone from pytest);
    `test_the_served_document_is_the_one_tested` checks the served one is the same."""
    from api.app import create_app
    from api.config import ApiConfig, ApiSettings
    from streams.settings import Settings

    return create_app(ApiConfig(Settings(), ApiSettings())).openapi()


schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_as_its_openapi_document_says(case, served):
    server, token = served
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def test_the_served_document_is_the_one_tested_and_covers_every_route(served):
    server, _token = served
    assert httpx.get(server.url + "/openapi.json").json() == schema.raw_schema
    assert set(schema.raw_schema["paths"]) == {
        "/v1/events",
        "/v1/months/{month}/invoices",
        "/v1/companies/{company}/months/{month}/invoice",
        "/v1/companies/{company}/months/{month}/accounts",
        "/v1/companies/{company}/months/{month}/accounts/{user}",
        "/v1/companies/{company}/months/{month}/estimate",
        "/healthz",
        "/metrics",
    }
