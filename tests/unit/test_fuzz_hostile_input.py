"""Fuzz: 100,000 hostile messages (tests/support/hostile.Mutator, seeded) through every reader of
events (the router's `route_message`, the archive writer's row building, the batch reader) and
100,000 hostile snapshot messages through the sink's record parser (and 10,000 of them into a
real DuckDB ledger).

For each: no exception escapes, every rejection carries a reason, and the rejected messages change
nothing: what is billed from the good events with the hostile ones between them equals what is
billed from the good events with only the accepted elements between them. The readers also judge
alike: the archive keeps what the router forwards, the batch reader bills what the worker bills.
"""

from __future__ import annotations

import random
from itertools import islice

import orjson
import pytest

from devtools.workload import iter_events
from ledger.connection import connect
from ledger.records import parse_record
from ledger.tables import ensure_schema
from ledger.writer import write_batch
from replay.archive.layout import read_manifest
from replay.archive.writer import ArchiveWriter, message_rows
from replay.month import run_month
from replay.rows import event_row
from schemas.control import parse_control
from schemas.decode import validate_event
from streams.routing import route_message
from tests.support.hostile import Mutator
from tests.support.worker_oracle import diff, latest_decisions, oracle, simulate

MUTANTS = 100_000
ARCHIVED = 10_000  # messages the archive writer also makes durable (Parquet)
SINK_WRITTEN = 10_000  # snapshot items the sink also writes to DuckDB
MONTH = "2026-10"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def good_events() -> list[dict]:
    return list(iter_events(3, 30, MONTH, months=1, seed=5))


@pytest.fixture(scope="module")
def stream(good_events) -> list[bytes]:
    """The good events in order, with the mutants spread between them."""
    mutants = list(islice(Mutator(good_events, seed=2026), MUTANTS))
    rng = random.Random(7)
    slots = sorted(rng.randrange(len(good_events) + 1) for _ in mutants)
    out: list[bytes] = []
    j = 0
    for i, ev in enumerate(good_events):
        while j < len(slots) and slots[j] == i:
            out.append(mutants[j])
            j += 1
        out.append(orjson.dumps(ev))
    out += mutants[j:]
    return out


@pytest.fixture(scope="module")
def routed(stream):
    """The router's verdict on every message: (accepted elements, dead letters)."""
    out = []
    for i, raw in enumerate(stream):
        r = route_message(raw, topic="fuzz", partition=0, offset=i)  # must not raise
        assert r.control is None, raw  # the mutator makes no valid close marker
        out.append((r.events, r.dead))
    return out


def accepted_only(routed) -> list[bytes]:
    """The stream as if the hostile publisher had sent only what was accepted: one message per
    accepted element, in the same order."""
    return [orjson.dumps(e) for events, _ in routed for e in events]


def test_router_rejects_every_hostile_message_with_a_reason_and_forwards_the_rest(stream, routed):
    dead = [d for _, ds in routed for d in ds]
    assert len(dead) > MUTANTS // 2  # most mutants are refused ...
    assert sum(len(e) for e, _ in routed) > len(stream) - MUTANTS  # ... some are valid events
    for d in dead:
        assert d["error"] and d["reason_class"], d
        assert len(orjson.dumps(d)) < 256 * 1024  # every dead letter is a sendable Kafka message
    classes = {d["reason_class"] for d in dead}
    for expected in ("not_json", "too_deep", "too_large", "duplicate_key", "control_character", "out_of_range",
                     "mixed_companies", "unknown_type", "bad_value", "bad_control"):  # fmt: skip
        assert expected in classes, sorted(classes)
    assert "internal_error" not in classes  # nothing made the validation itself fail


def test_the_archive_keeps_exactly_what_the_router_accepts(stream, routed):
    for raw, (events, dead) in zip(stream, routed, strict=True):
        if parse_control(raw) is not None:
            continue  # the archive files control messages as controls, the router dead-letters malformed ones
        rows, bad = message_rows(raw)  # must not raise
        assert rows == [event_row(validate_event(e)) for e in events], raw
        assert len(bad) == len(dead) and all(r.reason for r in bad)


def test_the_archive_writer_makes_hostile_messages_durable(tmp_path, stream, routed):
    part = slice(0, ARCHIVED)  # the row building is the part above; this is the Parquet writing
    writer = ArchiveWriter(tmp_path, "fuzz", clock=lambda: 1_790_000_000_000_000)
    writer.open_partition(0)
    for offset, raw in enumerate(stream[part]):
        assert writer.add(0, offset, raw)
        if offset % 5_000 == 0:
            writer.flush()
    writer.flush()
    m = read_manifest(tmp_path, "fuzz", 0)
    assert m is not None and m.next_offset == len(stream[part])
    assert m.events == sum(len(e) for e, _ in routed[part])
    controls = sum(parse_control(raw) is not None for raw in stream[part])
    assert m.rejected == sum(len(d) for _, d in routed[part]) - controls


@pytest.fixture(scope="module")
def simulated(stream):
    return simulate(stream, MONTH)


def test_rejected_messages_change_no_streamed_bill(simulated, routed):
    with_hostile, dead, _ = simulated
    without, _, _ = simulate(accepted_only(routed), MONTH)
    assert diff(latest_decisions(without), latest_decisions(with_hostile)) == []
    assert len(dead) == sum(len(d) for _, d in routed)
    # and the worker bills what the reference fold of the accepted events gives
    expected = oracle([e for events, _ in routed for e in events], MONTH)
    assert diff(expected, latest_decisions(with_hostile)) == []


@pytest.fixture(scope="module")
def batch(tmp_path_factory, stream):
    """The batch path over the hostile stream as an NDJSON file."""
    hostile = tmp_path_factory.mktemp("batch") / "hostile.ndjson"
    hostile.write_bytes(b"\n".join(stream) + b"\n")
    return run_month(str(hostile), MONTH, with_mau=False)  # must not raise


def test_the_batch_reader_judges_like_the_worker_and_bills_the_same(tmp_path, stream, routed, batch):
    clean = tmp_path / "accepted.ndjson"
    clean.write_bytes(b"\n".join(accepted_only(routed)) + b"\n")
    a = batch
    b = run_month(str(clean), MONTH, with_mau=False)
    assert a.loaded is not None and b.loaded is not None
    assert (a.loaded.rows, a.loaded.duplicates, a.loaded.conflict_count) == (
        b.loaded.rows,
        b.loaded.duplicates,
        b.loaded.conflict_count,
    )
    assert b.loaded.invalid_count == 0
    # one invalid report per dead letter, except for blank lines (the router refuses an empty message)
    assert a.loaded.invalid_count == sum(len(d) for raw, (_, d) in zip(stream, routed, strict=True) if raw.strip())
    assert all(i.reason for i in a.loaded.invalid)
    assert [d.row() for d in a.decisions] == [d.row() for d in b.decisions]


def test_streaming_and_batch_bill_the_accepted_events_alike(routed, batch):
    """The worker on the first occurrence of each (company_id, event_id) bills what the batch
    path bills from the whole hostile stream. (The batch path keeps the first of conflicting
    duplicates; the worker folds a conflicting activity event of another user as that user's:
    docs/contract.md, known limits. Cross-company reuse of ids is no conflict on either path.)"""
    firsts: dict[tuple, dict] = {}
    for events, _ in routed:
        for e in events:
            firsts.setdefault((e["company_id"], e["event_id"]), e)
    streamed, _, _ = simulate([orjson.dumps(e) for e in firsts.values()], MONTH)
    billed = {
        (d.company_id, d.user_id, d.month): d.row() | {"unit_price_usd": str(d.unit_price_usd)} for d in batch.decisions
    }
    assert diff(latest_decisions(streamed), billed) == []


# The sink ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshots(good_events) -> list[dict]:
    msgs, _, _ = simulate([orjson.dumps(e) for e in good_events], MONTH)
    return msgs


def snapshot_fields(snapshots) -> list[str]:
    fields = sorted({k for m in snapshots for k in m} | {k for m in snapshots for k in m.get("invoice", {})})
    return [*fields, "kind", "kind", "invoice", "mau", "evidence", "unit_price_usd", "version", "partition"]


def test_the_sink_parser_and_writer_survive_hostile_snapshots(tmp_path, snapshots):
    mutants = islice(Mutator(snapshots, seed=11, fields=snapshot_fields(snapshots)), MUTANTS)
    items = []
    for offset, raw in enumerate(mutants):
        items += parse_record(0, offset, raw)  # must not raise
    unreadable = [it for it in items if it.msg is None]
    assert len(unreadable) > MUTANTS // 4
    assert all(it.error for it in unreadable)

    def ledger(name: str, batch: list) -> list[tuple]:
        con = connect(tmp_path / name)
        ensure_schema(con)
        for i in range(0, len(batch), 5_000):
            write_batch(con, batch[i : i + 5_000], topic="snapshots")  # must not raise
        errors = con.execute("SELECT count(*), count(*) FILTER (WHERE error = '') FROM sink_rejects").fetchall()[0]
        rows = con.execute("SELECT * FROM account_decisions ORDER BY ALL").fetchall()
        versions = con.execute(
            "SELECT * EXCLUDE (received_at, batch_id, kafka_partition, kafka_offset) FROM snapshot_versions ORDER BY ALL"
        ).fetchall()
        con.close()
        assert errors[1] == 0
        return [errors[0], rows, versions]

    written = items[:SINK_WRITTEN]
    with_hostile = ledger("hostile.duckdb", written)
    readable = ledger("readable.duckdb", [it for it in written if it.msg is not None])
    assert with_hostile[0] >= sum(it.msg is None for it in written)  # each unreadable one is a sink_rejects row
    assert with_hostile[1:] == readable[1:]  # and changes nothing else
