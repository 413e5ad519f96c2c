"""Each table's columns are written once, in ledger/sql/<table>.sql, and rows land by column name."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from ledger.tables import (
    MODELS,
    TABLES,
    VIEWS,
    arrow_schema,
    ensure_schema,
    insert_arrow,
    insert_columns,
    insert_rows,
)
from ledger.writer import write_batch
from projections.decide import DECISION_COLUMNS
from tests.unit.ledger.closes import MONTH, TOPIC, Stream, close_msgs, dec, q

LINE = {
    "company_id": "c1",
    "month": MONTH,
    "line_no": 1,
    "plan": "pro",
    "tier": "full",
    "count": 3,
    "unit_price_usd": Decimal("10.00"),
    "amount_usd": Decimal("30.00"),
}


def test_views_have_exactly_the_decision_columns(db):
    cols = tuple(r[0] for r in db.execute("DESCRIBE account_decisions").fetchall())
    assert cols == DECISION_COLUMNS
    types = {r[0]: r[1] for r in db.execute("DESCRIBE account_decisions").fetchall()}
    assert types["unit_price_usd"] == "DECIMAL(12,2)"
    assert types["billable"] == types["charged"] == "BOOLEAN"
    assert types["evidence"] == "VARCHAR"
    assert tuple(r[0] for r in db.execute("DESCRIBE billable_users").fetchall()) == DECISION_COLUMNS


def test_schema_is_idempotent_and_keeps_the_rows(db):
    msgs, dones = close_msgs(MONTH, {0: [dec("c1", "u1"), dec("c1", "u2")]})
    write_batch(db, Stream().items(msgs + dones), topic=TOPIC)
    counts = {t: q(db, f"SELECT count(*) FROM {t}")[0][0] for t in MODELS}
    columns = {t: q(db, f"DESCRIBE {t}") for t in MODELS}
    ensure_schema(db)
    ensure_schema(db)
    assert {t: q(db, f"SELECT count(*) FROM {t}")[0][0] for t in MODELS} == counts
    assert {t: q(db, f"DESCRIBE {t}") for t in MODELS} == columns
    assert counts["snapshot_versions"] == 2 and counts["invoices"] == 1 and counts["account_decisions"] == 2
    tables = {r[0] for r in q(db, "SELECT table_name FROM duckdb_tables()")}
    views = {r[0] for r in q(db, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert (tables, views) == (set(TABLES), set(VIEWS))


def test_arrow_schemas_are_read_from_the_sql_files(db):
    for table in TABLES:
        assert arrow_schema(table).names == [r[0] for r in q(db, f"DESCRIBE {table}")], table
    s = arrow_schema("snapshot_versions")
    assert s.field("unit_price_usd").type == pa.decimal128(12, 2)
    assert s.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert (s.field("version").type, s.field("kafka_offset").type) == (pa.int32(), pa.int64())
    assert arrow_schema("company_month_mau").field("day").type == pa.date32()
    with pytest.raises(KeyError):
        arrow_schema("account_decisions")  # a view: nothing is inserted into it


def test_columns_are_matched_by_name_not_by_position(db):
    """Reversed, every pair of same-typed neighbours (plan/tier, the two amounts, line_no/count)
    would swap silently under a positional INSERT ... SELECT *."""
    schema = arrow_schema("invoice_lines")
    reversed_schema = pa.schema(list(reversed(schema)))
    insert_arrow(db, "invoice_lines", pa.Table.from_pylist([LINE], schema=reversed_schema))
    insert_rows(db, "invoice_lines", [dict(reversed(list((LINE | {"line_no": 2}).items())))])
    got = q(db, "SELECT * FROM invoice_lines ORDER BY line_no")
    assert got == [tuple(LINE.values()), tuple((LINE | {"line_no": 2}).values())]


def test_a_row_must_name_exactly_the_tables_columns(db):
    with pytest.raises(ValueError, match=r"unknown \['plan_name'\], missing \['plan'\]"):
        insert_rows(db, "invoice_lines", [{("plan_name" if k == "plan" else k): v for k, v in LINE.items()}])
    with pytest.raises(ValueError, match=r"missing \['amount_usd'\]"):
        insert_rows(db, "invoice_lines", [{k: v for k, v in LINE.items() if k != "amount_usd"}])
    assert q(db, "SELECT count(*) FROM invoice_lines") == [(0,)]


def test_or_replace_by_name_updates_the_keyed_row(db):
    row = {"topic": TOPIC, "partition": 0, "next_offset": 5, "updated_at": datetime(2026, 4, 1, tzinfo=UTC)}
    insert_rows(db, "sink_offsets", [row], or_replace=True)
    insert_rows(db, "sink_offsets", [dict(reversed(list((row | {"next_offset": 9}).items())))], or_replace=True)
    assert q(db, "SELECT topic, partition, next_offset FROM sink_offsets") == [(TOPIC, 0, 9)]


def test_columns_may_be_lists_or_arrow_arrays_of_the_tables_types_but_never_cast(db):
    """The sink's columnar decisions hand Arrow arrays over as they are: one of another type is an
    error (a cast could change a value), not a silent conversion."""
    lists = {k: [v] for k, v in LINE.items()}
    arrays = lists | {
        "count": pa.array([3], pa.int32()),
        "unit_price_usd": pa.chunked_array([pa.array([Decimal("10.00")], pa.decimal128(12, 2))]),
    }
    assert insert_columns(db, "invoice_lines", {k: v for k, v in arrays.items() if k != "plan"}, {"plan": "pro"}) == 1
    assert q(db, "SELECT * FROM invoice_lines") == [tuple(LINE.values())]
    with pytest.raises(TypeError, match="column of int64, the table's is int32"):
        insert_columns(db, "invoice_lines", lists | {"line_no": pa.array([2], pa.int64())}, {})
    assert q(db, "SELECT count(*) FROM invoice_lines") == [(1,)]
