"""Publishing round trips through the real broker: intact JSON, keys, one partition per company,
packing, and rejected lines with their line numbers and exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from devtools.local_broker import free_port_pair
from seatledger.cli import app
from streams.publisher import Publisher, default_partition
from streams.topics import run_sync
from tests.support.kafka_readback import end_offsets, read_all

REPO = Path(__file__).resolve().parents[2]


def sample_events(companies: int = 6, users: int = 4) -> list[dict]:
    """Valid events per the contract: a company block (registration, plan, trial, billing profile,
    accounts) then interleaved activity, so consecutive runs of one company vary in length."""
    out: list[dict] = []
    n = 0

    def add(company: str, kind: str, **fields) -> None:
        nonlocal n
        n += 1
        out.append({"event_id": f"ev-{n:06d}", "type": kind, "occurred_at": f"2026-10-{1 + n % 28:02d}T08:{n % 60:02d}:00Z",
                    "company_id": company, **fields})  # fmt: skip

    for c in range(companies):
        company = f"co-{c}"
        add(company, "company_registered", timezone="Europe/Berlin", name=f"Company {c}")
        add(company, "plan_changed", plan="premium")
        add(company, "billing_profile_updated", payment_method="card", card_brand="visa", billing_country="DE")
        for u in range(users):
            add(company, "account_provisioned", user_id=f"u-{u}", employment="employee")
    for u in range(users):
        for c in range(companies):
            add(f"co-{c}", "login", user_id=f"u-{u}", source="test")
            add(f"co-{c}", "visit", user_id=f"u-{u}", channel="web")
            if c % 2:
                add(f"co-{c}", "chat_use", user_id=f"u-{u}", custom_extra={"kept": True})
    return out


def write_ndjson(path: Path, events: list[dict], extra_lines: dict[int, bytes] | None = None) -> Path:
    """Events one per line; `extra_lines` {line number: raw} are inserted at those line numbers."""
    lines = [orjson.dumps(e) for e in events]
    for line_no, raw in sorted((extra_lines or {}).items()):
        lines.insert(line_no - 1, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def decode_events(value: bytes) -> list[dict]:
    data = orjson.loads(value)
    return data if isinstance(data, list) else [data]


def topic_env(settings) -> dict[str, str]:
    return {"SEATLEDGER_BOOTSTRAP": settings.bootstrap, "SEATLEDGER_TOPIC_EVENTS": settings.topic_events}


@pytest.mark.kafka
async def test_published_events_come_back_intact_keyed_by_company_on_one_partition_each(kafka_topics):
    settings = kafka_topics(partitions=4)
    events = sample_events()
    async with Publisher(settings) as pub:
        summary = await pub.send_events((i, orjson.dumps(e)) for i, e in enumerate(events, 1))
    assert (summary.sent_events, summary.sent_messages, summary.rejected) == (len(events), len(events), [])

    records = await read_all(settings, settings.topic_events)
    assert len(records) == len(events)
    assert sorted(r.value for r in records) == sorted(orjson.dumps(e) for e in events)  # byte for byte
    partitions = defaultdict(set)
    for r in records:
        assert r.key == orjson.loads(r.value)["company_id"].encode()
        partitions[r.key.decode()].add(r.partition)
    assert dict(partitions) == {c: {default_partition(c, 4)} for c in partitions}
    # Within a partition a company's events keep the order they were published in.
    for company in partitions:
        got = [orjson.loads(r.value)["event_id"] for r in records if r.key == company.encode()]
        assert got == [e["event_id"] for e in events if e["company_id"] == company]


@pytest.mark.kafka
def test_pack_sends_arrays_of_up_to_n_consecutive_events_of_one_company(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=3)
    events = sample_events()
    src = write_ndjson(tmp_path / "events.ndjson", events)
    result = CliRunner().invoke(app, ["publish", str(src), "--pack", "5", "--no-progress"], env=topic_env(settings))
    assert result.exit_code == 0, result.output

    records = run_sync(read_all(settings, settings.topic_events))
    assert f"sent {len(events)} event(s) in {len(records)} message(s)" in result.output
    assert len(records) < len(events)
    unpacked = []
    for r in records:
        batch = decode_events(r.value)
        assert 1 <= len(batch) <= 5
        assert {e["company_id"] for e in batch} == {r.key.decode()}
        unpacked.extend(batch)
    assert sorted(orjson.dumps(e) for e in unpacked) == sorted(orjson.dumps(e) for e in events)
    assert max(len(decode_events(r.value)) for r in records) == 5


@pytest.mark.kafka
def test_invalid_lines_are_listed_by_line_number_and_nothing_is_sent(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=2)
    bad = {3: b"{not json", 6: orjson.dumps({"event_id": "x", "type": "login", "occurred_at": "2026-10-02T08:00:00",
                                             "company_id": "co-1", "user_id": "u"})}  # fmt: skip
    src = write_ndjson(tmp_path / "events.ndjson", sample_events(2, 2), bad)
    result = CliRunner().invoke(app, ["publish", str(src)], env=topic_env(settings))
    assert result.exit_code == 1
    assert "rejected 2 event(s); nothing was sent" in result.output
    assert "line 3: not valid JSON" in result.output
    assert "line 6: field 'occurred_at'" in result.output and "offset" in result.output
    assert sum(run_sync(end_offsets(settings, settings.topic_events)).values()) == 0


@pytest.mark.kafka
def test_skip_invalid_sends_the_valid_lines_lists_the_rest_and_exits_0(kafka_topics, tmp_path):
    settings = kafka_topics(partitions=2)
    events = sample_events(2, 2)
    src = write_ndjson(tmp_path / "events.ndjson", events, {1: b'{"type": "teleport"}'})
    result = CliRunner().invoke(app, ["publish", str(src), "--skip-invalid"], env=topic_env(settings))
    assert result.exit_code == 0, result.output
    assert f"sent {len(events)} event(s) in {len(events)} message(s)" in result.output
    assert "rejected 1" in result.output and "line 1: unknown event type 'teleport'" in result.output
    assert sum(run_sync(end_offsets(settings, settings.topic_events)).values()) == len(events)


@pytest.mark.kafka
def test_publish_reads_stdin_in_a_real_process_with_its_exit_codes(kafka_topics, kafka_env):
    settings = kafka_topics(partitions=2)
    env = {**kafka_env, **topic_env(settings)}
    good = b"\n".join(orjson.dumps(e) for e in sample_events(2, 1)) + b"\n"
    cmd = [sys.executable, "-m", "seatledger.cli", "publish", "-"]
    ok = subprocess.run(cmd, input=good, env=env, capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr.decode()
    bad_line = good.count(b"\n") + 1
    bad = subprocess.run(cmd, input=good + b"[]\n", env=env, capture_output=True, timeout=60)
    assert bad.returncode == 1
    assert f"line {bad_line}: empty JSON array" in bad.stderr.decode()


def test_an_unreachable_broker_exits_3_after_validation(tmp_path):
    src = write_ndjson(tmp_path / "events.ndjson", sample_events(1, 1))
    port = free_port_pair()
    result = CliRunner().invoke(app, ["publish", str(src), "--bootstrap", f"127.0.0.1:{port}"])
    assert result.exit_code == 3
    assert "publishing to 127.0.0.1" in result.output


@pytest.mark.parametrize("command", ["publish", "close"])
def test_an_unreachable_broker_leaves_no_unclosed_producer_warning(tmp_path, command):
    """The user's error message is the last word, not aiokafka's "Unclosed AIOKafkaProducer"."""
    src = write_ndjson(tmp_path / "events.ndjson", sample_events(1, 1))
    args = [str(src), "--no-progress"] if command == "publish" else ["--month", "2026-10"]
    cmd = [sys.executable, "-m", "seatledger.cli", command, *args, "--bootstrap", f"127.0.0.1:{free_port_pair()}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "127.0.0.1" in done.stderr.splitlines()[-1]
    assert "Unclosed" not in done.stderr, done.stderr


def test_a_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["publish", str(tmp_path / "nope.ndjson")])
    assert result.exit_code == 2 and "no such file" in result.output


@pytest.mark.kafka
@pytest.mark.slow
def test_generated_workload_piped_into_publish_comes_back_one_partition_per_company(kafka_topics, kafka_env, tmp_path):
    settings = kafka_topics(partitions=8)
    generated = tmp_path / "generated.ndjson"
    seatledger = [sys.executable, "-m", "seatledger.cli"]
    pipeline = (
        f"{' '.join(seatledger)} generate --companies 50 --accounts 5000 --month 2026-10 --seed 1 "
        f"| tee {generated} | {' '.join(seatledger)} publish - --no-progress"
    )
    done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], env={**kafka_env, **topic_env(settings)},
                          cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    lines = [orjson.loads(line) for line in generated.read_bytes().splitlines() if line.strip()]
    records = run_sync(read_all(settings, settings.topic_events, timeout=120))
    assert len(records) == len(lines)
    partitions = defaultdict(set)
    for r in records:
        assert r.key == orjson.loads(r.value)["company_id"].encode()
        partitions[r.key].add(r.partition)
    assert len(partitions) == len({e["company_id"] for e in lines})
    assert all(len(p) == 1 for p in partitions.values())
