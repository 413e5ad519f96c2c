"""The ledger's tables and views, each defined once: in ledger/sql/<name>.sql.

The SQL file is the only place a table's columns are written down. The Arrow schemas the writer
builds its batches with are read back from DuckDB (the table created in memory from the same
file), and every insert names its columns (`INSERT ... BY NAME`), so a column added, dropped or
moved in the SQL file cannot shift a value into a neighbouring column of the same type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ledger.connection import run

SQL_DIR = Path(__file__).parent / "sql"
# Creation order (views after the tables they read). One model per file, grain at its top.
TABLES = (
    "sink_batches",
    "sink_offsets",
    "sink_rejects",
    "snapshot_versions",
    "company_month_versions",
    "company_month_mau",
    "partition_reports",
    "month_completions",
    "invoices",
    "invoice_lines",
    "invoice_adjustments",
    "invoice_annotations",
    "disputes",
    "estimates",
    "estimate_invoices",
)
VIEWS = (
    "latest_decisions",
    "account_decisions",
    "billable_users",
    "month_closes",
    "mau_daily",
    "reconciliation",
    "close_certificates",
)
MODELS = TABLES + VIEWS

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DATE": pa.date32(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")


def model_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (if missing) and (re)create every view. Idempotent."""
    for name in MODELS:
        run(con, model_sql(name))


def _arrow_type(duckdb_type: str) -> pa.DataType:
    m = _DECIMAL.match(duckdb_type)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    try:
        return _ARROW_TYPES[duckdb_type]
    except KeyError:
        raise TypeError(f"no Arrow type for DuckDB column type {duckdb_type}: add it to ledger.tables") from None


def arrow_schema(table: str) -> pa.Schema:
    """The table's columns (names, order, types) as ledger/sql/<table>.sql declares them."""
    if table not in TABLES:
        raise KeyError(f"{table} is not a ledger table")
    return _arrow_schemas()[table]


@cache
def _arrow_schemas() -> dict[str, pa.Schema]:
    """Every table's Arrow schema, read from one in-memory DuckDB (opening one costs ~30 ms, so
    not one per table: the sink's first batch paid 0.4 CPU s for them)."""
    con = duckdb.connect(":memory:")
    try:
        schemas = {}
        for table in TABLES:
            run(con, model_sql(table))
            columns = run(con, f"DESCRIBE {table}")
            schemas[table] = pa.schema([(name, _arrow_type(type_)) for name, type_, *_ in columns])
    finally:
        con.close()
    return schemas


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, *, or_replace: bool = False) -> None:
    """Insert an Arrow table, matching its columns to the table's by name (order is irrelevant)."""
    verb = "INSERT OR REPLACE" if or_replace else "INSERT"
    con.register("_ledger_rows", rows)
    try:
        run(con, f"{verb} INTO {table} BY NAME SELECT * FROM _ledger_rows")
    finally:
        con.unregister("_ledger_rows")


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], *, or_replace: bool = False) -> int:
    """Insert dicts keyed by column name, as one Arrow batch (never row by row). Every row must
    name exactly the table's columns: a misspelt or forgotten key is an error, not a NULL."""
    if not rows:
        return 0
    schema = arrow_schema(table)
    names = set(schema.names)
    for row in rows:
        if row.keys() != names:
            raise ValueError(
                f"{table} row columns differ from ledger/sql/{table}.sql: "
                f"unknown {sorted(row.keys() - names)}, missing {sorted(names - row.keys())}"
            )
    insert_arrow(con, table, pa.Table.from_pylist(rows, schema=schema), or_replace=or_replace)
    return len(rows)


def insert_tuples(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], rows: list[tuple]) -> int:
    """Insert row tuples whose values are in `columns`' order, as one Arrow batch built column by
    column (no dict per row: the sink's decisions). `columns` must be exactly the table's columns."""
    if not rows:
        return 0
    schema = arrow_schema(table)
    if set(columns) != set(schema.names) or len(columns) != len(schema.names):
        raise ValueError(
            f"{table} columns differ from ledger/sql/{table}.sql: "
            f"unknown {sorted(set(columns) - set(schema.names))}, missing {sorted(set(schema.names) - set(columns))}"
        )
    values = zip(*rows, strict=True)
    arrays = [pa.array(v, type=schema.field(c).type) for c, v in zip(columns, values, strict=True)]
    insert_arrow(con, table, pa.Table.from_arrays(arrays, names=list(columns)))
    return len(rows)


def insert_columns(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, Sequence[Any] | pa.Array | pa.ChunkedArray],
    constants: dict[str, Any],
) -> int:
    """Insert rows given by column (name -> values: a list, or an Arrow array of the column's
    type) and `constants` (name -> every row's value), as one Arrow batch: the sink's columnar
    decisions. Together they must name exactly the table's columns."""
    n = len(next(iter(columns.values()), []))
    if not n:
        return 0
    schema = arrow_schema(table)
    names = columns.keys() | constants.keys()
    if names != set(schema.names) or len(columns) + len(constants) != len(schema.names):
        raise ValueError(
            f"{table} columns differ from ledger/sql/{table}.sql: "
            f"unknown {sorted(names - set(schema.names))}, missing {sorted(set(schema.names) - names)}"
        )
    arrays = {c: _arrow_column(v, schema.field(c).type) for c, v in columns.items()}
    arrays |= {c: pa.repeat(pa.scalar(v, type=schema.field(c).type), n) for c, v in constants.items()}
    insert_arrow(con, table, pa.Table.from_pydict(arrays))
    return n


def _arrow_column(values: Sequence[Any] | pa.Array | pa.ChunkedArray, type_: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """`values` as an Arrow column of `type_`; an Arrow column must already be of that type (a
    cast could change a value silently)."""
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        return pa.array(values, type=type_)
    if values.type != type_:
        raise TypeError(f"column of {values.type}, the table's is {type_}")
    return values


@contextmanager
def arrow_view(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """An Arrow table registered as the view `name` for the `with` block (to join on, or to check)."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


@contextmanager
def key_table(
    con: duckdb.DuckDBPyConnection, name: str, keys: Sequence[tuple[str, ...]], columns: Sequence[str]
) -> Iterator[None]:
    """`keys` registered as the string-columned view `name` for the `with` block, to join on."""
    values = list(zip(*keys, strict=True)) if keys else [() for _ in columns]
    with arrow_view(con, name, pa.table({c: pa.array(v, pa.string()) for c, v in zip(columns, values, strict=True)})):
        yield
