"""POST /v1/events in-process (no Kafka reachable): who may post, limits, and what is answered
when Kafka does not acknowledge. Publishing for real is in tests/integration/test_api_ingest.py."""

from __future__ import annotations

import orjson

NDJSON = {"Content-Type": "application/x-ndjson"}


def login(eid: str, company: str = "acme") -> dict:
    return {
        "event_id": eid,
        "type": "login",
        "occurred_at": "2026-10-02T08:00:00Z",
        "company_id": company,
        "user_id": "u1",
    }


async def test_a_body_of_only_rejected_events_is_answered_without_kafka(client, setup):
    body = b"\n".join([b"{}", orjson.dumps(login("g1", "globex"))])
    r = await client.post("/v1/events", content=body, headers=NDJSON | setup.auth("acme-publisher"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accepted": 0,
        "rejected": 2,
        "rejections": [
            {"index": 0, "event_id": None, "reason": "missing required field 'type'"},
            {"index": 1, "event_id": "g1", "reason": "company 'globex' is outside this API key's scope"},
        ],
    }
    metrics = (await client.get("/metrics")).text
    assert "seatledger_api_events_rejected_total 2.0" in metrics


async def test_valid_events_kafka_does_not_acknowledge_get_503_with_retry_after(client, setup):
    r = await client.post("/v1/events", json=[login("e1")], headers=setup.auth("publisher"))
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5" and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:seatledger:problem:kafka-unavailable"
    health = await client.get("/healthz")
    assert health.status_code == 503 and health.json()["db"] == "ok" and health.json()["kafka"] != "ok"


async def test_no_key_an_unknown_or_revoked_key_is_401_and_a_reader_may_not_publish(client, setup):
    body = orjson.dumps([login("e1")])
    r = await client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for headers in (setup.auth("gone"), {"Authorization": "Bearer sl_0_0"}, {"Authorization": "Basic eDp5"}):
        r = await client.post("/v1/events", content=body, headers={"Content-Type": "application/json"} | headers)
        assert r.status_code == 401, headers
    r = await client.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"} | setup.auth("reader")
    )
    assert r.status_code == 403 and r.json()["type"] == "urn:seatledger:problem:forbidden"


async def test_bodies_over_the_byte_or_event_limit_get_413(client_with, setup):
    async with client_with(max_body_bytes=200, max_events=2) as c:
        big = orjson.dumps([login("e1")] * 2) + b" " * 200
        r = await c.post("/v1/events", content=big, headers={"Content-Type": "application/json"} | setup.auth("admin"))
        assert r.status_code == 413 and "at most 200" in r.json()["detail"]
        many = b"\n".join(b"{}" for _ in range(3))
        r = await c.post("/v1/events", content=many, headers=NDJSON | setup.auth("admin"))
        assert r.status_code == 413 and r.json()["detail"] == "3 events in one request; at most 2"


async def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(client_with, setup):
    async with client_with(burst=2, rate_per_second=0.5) as c:
        statuses = [
            (await c.get("/v1/months/2026-10/invoices", headers=setup.auth("reader"))).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        r = await c.get("/v1/months/2026-10/invoices", headers=setup.auth("reader"))
        assert r.headers["retry-after"] == "2" and r.json()["type"] == "urn:seatledger:problem:rate-limited"
        assert (await c.get("/v1/months/2026-10/invoices", headers=setup.auth("admin"))).status_code == 200


async def test_the_default_limits_are_5_mib_and_10000_events(client, setup):
    """The issue's figures, with the settings a deployment gets when it sets none."""
    headers = NDJSON | setup.auth("acme-publisher")
    foreign = [orjson.dumps(login(f"g{i}", "globex")) for i in range(10_001)]  # refused without Kafka
    r = await client.post("/v1/events", content=b"\n".join(foreign[:10_000]), headers=headers)
    assert r.status_code == 200 and r.json()["rejected"] == 10_000, r.text[:300]
    r = await client.post("/v1/events", content=b"\n".join(foreign), headers=headers)
    assert r.status_code == 413 and r.json()["detail"] == "10001 events in one request; at most 10000"
    r = await client.post("/v1/events", content=b" " * (5 * 1024 * 1024 + 1), headers=headers)
    assert r.status_code == 413 and r.json()["type"] == "urn:seatledger:problem:payload-too-large"
