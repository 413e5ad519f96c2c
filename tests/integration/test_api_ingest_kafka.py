"""POST /v1/events over a real `seatledger serve` into the real broker.

- Events POSTed over HTTP are billed exactly like the same file sent by `seatledger publish`: both
  topics are read back and replayed (the batch path bills what reached Kafka).
- Kafka stopped: 503; Kafka back: the retry, and a second retry of the same body, bill once.
- `seatledger estimate` puts its marker on every partition.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from devtools import local_broker
from devtools.workload import iter_events
from replay.events_source import load_events
from replay.month import run_month
from streams.settings import Settings, load_settings
from streams.topics import create_topics_sync
from tests.support.api_server import ROOT, ApiServer, api_env, make_keys
from tests.support.kafka_readback import read_all

pytestmark = [pytest.mark.kafka]

MONTH = "2026-10"
NDJSON = {"Content-Type": "application/x-ndjson"}


def write_ndjson(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def dump_topic(settings: Settings, path: Path) -> tuple[Path, int]:
    """Every message of the events topic, one per line (a packed message stays an array), and how
    many events they hold."""
    records = asyncio.run(read_all(settings, settings.topic_events))
    path.write_bytes(b"".join(r.value + b"\n" for r in records))
    return path, sum(len(v) if isinstance(v := orjson.loads(r.value), list) else 1 for r in records)


def billed(source: Path) -> tuple[list[dict], dict]:
    """The month's decisions and invoices as the batch path bills `source`."""
    res = run_month(str(source), MONTH, with_mau=False)
    return [d.row() for d in res.decisions], {c: i.to_json() for c, i in res.invoices.items()}


def post_lines(url: str, token: str, lines: list[bytes], batch: int = 500) -> list[httpx.Response]:
    headers = NDJSON | {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60) as c:
        return [c.post(url + "/v1/events", content=b"\n".join(lines[i : i + batch]), headers=headers)
                for i in range(0, len(lines), batch)]  # fmt: skip


def test_events_posted_over_http_are_billed_exactly_like_seatledger_publish_of_the_same_file(kafka_topics, tmp_path):
    events = list(iter_events(companies=4, accounts=40, month=MONTH, seed=5))  # duplicates and late arrivals too
    src = write_ndjson(tmp_path / "events.ndjson", events)
    over_http, by_publish = kafka_topics(partitions=3), kafka_topics(partitions=3)
    tokens = make_keys(tmp_path, {"ci": ("publisher", None)})
    server = ApiServer(api_env(over_http, tmp_path / "none.duckdb", tmp_path), tmp_path / "api.log").start()
    try:
        answers = post_lines(server.url, tokens["ci"], src.read_bytes().splitlines())
    finally:
        server.stop()
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    accepted = sum(r.json()["accepted"] for r in answers)
    assert accepted == len(events) and not any(r.json()["rejections"] for r in answers)

    env = api_env(by_publish, tmp_path / "none.duckdb", tmp_path)
    pub = subprocess.run([sys.executable, "-m", "seatledger.cli", "publish", str(src)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert pub.returncode == 0, pub.stderr

    http_dump, http_events = dump_topic(over_http, tmp_path / "http.ndjson")
    publish_dump, publish_events = dump_topic(by_publish, tmp_path / "publish.ndjson")
    assert http_events == publish_events == len(events)
    assert sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in _all(http_dump)) == sorted(
        orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in _all(publish_dump)
    )
    expected = billed(src)
    assert expected[0] and billed(http_dump) == expected == billed(publish_dump)


def _all(path: Path) -> list[dict]:
    out: list[dict] = []
    for line in path.read_bytes().splitlines():
        v = orjson.loads(line)
        out.extend(v if isinstance(v, list) else [v])
    return out


@pytest.fixture
def own_broker(tmp_path) -> Settings:
    """A broker for this test alone, on free ports: it is stopped and started again mid-test."""
    port = local_broker.free_port_pair()
    settings = load_settings(bootstrap=f"127.0.0.1:{port}", data_dir=tmp_path / "broker", partitions=2)
    local_broker.start(settings)
    try:
        create_topics_sync(settings)
        yield settings
    finally:
        local_broker.stop(settings)


def test_a_503_while_kafka_is_down_then_retries_of_the_same_body_bill_once(own_broker, tmp_path):
    events = list(iter_events(companies=2, accounts=12, month=MONTH, seed=11))
    lines = [orjson.dumps(e) for e in events]
    third = len(lines) // 3
    first, second, last = lines[:third], lines[third : 2 * third], lines[2 * third :]
    tokens = make_keys(tmp_path, {"ci": ("publisher", None)})
    env = api_env(own_broker, tmp_path / "none.duckdb", tmp_path, kafka_timeout_seconds="3")
    server = ApiServer(env, tmp_path / "api.log").start()
    try:
        assert [r.status_code for r in post_lines(server.url, tokens["ci"], first)] == [200]
        local_broker.stop(own_broker)
        down = post_lines(server.url, tokens["ci"], second, batch=len(second))[0]
        assert down.status_code == 503, down.text
        assert down.json()["type"] == "urn:seatledger:problem:kafka-unavailable" and down.headers["retry-after"]
        local_broker.start(own_broker)
        retried = retry_until_accepted(server.url, tokens["ci"], second, timeout=90)
        assert retried.json()["accepted"] == len(second)
        again = post_lines(server.url, tokens["ci"], second, batch=len(second))[0]  # the answer was lost: again
        assert again.status_code == 200
        assert [r.status_code for r in post_lines(server.url, tokens["ci"], last)] == [200]
    finally:
        server.stop()
    dump, n = dump_topic(own_broker, tmp_path / "topic.ndjson")
    assert n >= len(events) + len(second)  # the retried body is in Kafka at least twice
    loaded = load_events(duckdb.connect(), str(dump))
    assert loaded.duplicates >= len(second)
    src = write_ndjson(tmp_path / "events.ndjson", events)
    assert billed(dump) == billed(src)  # ... and billed once


def retry_until_accepted(url: str, token: str, lines: list[bytes], timeout: float) -> httpx.Response:
    """What a client does after a 503: wait Retry-After, send the same body again, until accepted."""
    deadline = time.monotonic() + timeout
    while True:
        r = post_lines(url, token, lines, batch=len(lines))[0]
        if r.status_code != 503 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r
        time.sleep(float(r.headers.get("retry-after", "1")))


def test_seatledger_estimate_puts_a_marker_on_every_partition(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=3)
    env = api_env(settings, tmp_path / "none.duckdb", tmp_path)
    r = subprocess.run([sys.executable, "-m", "seatledger.cli", "estimate", "--month", MONTH], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    records = asyncio.run(read_all(settings, settings.topic_events))
    markers = {rec.partition: orjson.loads(rec.value) for rec in records}
    assert sorted(markers) == [0, 1, 2] and len(records) == 3
    ids = {m["estimate_id"] for m in markers.values()}
    assert len(ids) == 1 and ids.pop() in r.stdout
    for m in markers.values():
        assert (m["seatledger_control"], m["month"], m["partitions"]) == ("estimate_month", MONTH, 3)
        assert m["as_of"].endswith("Z")
