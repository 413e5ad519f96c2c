"""However the snapshot topic reaches the writer (batches of any size, re-read from an older
position after a crash, two sinks taking turns on one file with their own positions), the ledger
stores what one clean pass stores: every version once, the month complete, and no money lost or
counted twice between invoices and their adjustments."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import Item
from ledger.tables import ensure_schema
from ledger.writer import read_positions, write_batch
from projections.snapshots import decision_message
from tests.unit.ledger.closes import MONTH, TOPIC, Stream, close_msgs, dec, q

KAFKA_PARTITIONS = 2


def the_stream() -> list[list[Item]]:
    """Per Kafka partition of the snapshot topic, its Items in offset order: a close of two worker
    partitions (one per Kafka partition), then amendments (a late event, an account new to the month)."""
    by_partition = {p: [dec(company=f"c{p}", user=f"u{i}", charged=i % 3 > 0) for i in range(6)] for p in (0, 1)}
    msgs, dones = close_msgs(MONTH, by_partition)
    late = dataclasses.replace(by_partition[0][1], charged=False, billable=False, reason="deactivated")
    late = dataclasses.replace(late, unit_price_usd=Decimal("0.00"))
    amendments = [
        decision_message(late, version=2, corrects_version=1, amend_reason="late_event", partition=0),
        decision_message(dec(company="c1", user="u-new"), version=1, amend_reason="late_event", partition=1),
    ]
    stream, out = Stream(), []
    for kp in range(KAFKA_PARTITIONS):
        own = [m for m in [*msgs, dones[kp], *amendments] if m.get("partition") == kp]
        out.append(stream.items(own, kp=kp))
    return out


STREAM = the_stream()


def ledger_state(con: duckdb.DuckDBPyConnection) -> dict:
    billed = q(
        con,
        "SELECT (SELECT coalesce(sum(subtotal_usd), 0) FROM invoices WHERE month = ?)"
        " + (SELECT coalesce(sum(amount_usd), 0) FROM invoice_adjustments WHERE corrected_month = ?)",
        MONTH,
        MONTH,
    )[0][0]
    return {
        "versions": q(con, "SELECT company_id, user_id, month, version, corrects_version, digest FROM snapshot_versions ORDER BY ALL"),
        "company_months": q(con, "SELECT company_id, month, version, content_digest FROM company_month_versions ORDER BY ALL"),
        "complete": q(con, "SELECT month FROM month_completions"),
        "invoiced_companies": q(con, "SELECT company_id FROM invoices ORDER BY ALL"),
        "billed": billed,
        "positions": read_positions(con, TOPIC),
    }  # fmt: skip


def fresh() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    ensure_schema(con)
    return con


def one_pass() -> dict:
    con = fresh()
    write_batch(con, [it for part in STREAM for it in part], topic=TOPIC)
    return ledger_state(con)


EXPECTED = one_pass()

# A delivery: per batch, for each Kafka partition, how far back before the stored position the
# reader starts (a restarted or lagging sink) and how many records it brings.
deliveries = st.lists(
    st.tuples(*[st.tuples(st.integers(0, 12), st.integers(0, 8)) for _ in range(KAFKA_PARTITIONS)]),
    max_size=12,
)


@settings(max_examples=50, deadline=None)
@given(deliveries)
def test_any_batching_and_redelivery_store_what_one_pass_stores(delivery):
    con = fresh()
    for batch in delivery:
        stored = read_positions(con, TOPIC)
        items = []
        for kp, (back, count) in enumerate(batch):
            start = max(0, stored.get(kp, 0) - back)
            items += [it for it in STREAM[kp] if start <= it.kafka_offset < start + count]
        if items:
            write_batch(con, items, topic=TOPIC)
    stored = read_positions(con, TOPIC)  # the last reader catches up to the end
    write_batch(
        con, [it for kp, part in enumerate(STREAM) for it in part if it.kafka_offset >= stored.get(kp, 0)], topic=TOPIC
    )
    assert ledger_state(con) == EXPECTED


def test_the_stream_completes_the_month_and_bills_the_amendments():
    assert EXPECTED["complete"] == [(MONTH,)]
    assert len(EXPECTED["invoiced_companies"]) == 2
    assert any(v[4] == 1 for v in EXPECTED["versions"]), "the late event's version 2 corrects version 1"
