"""`replay` (and every batch command) over a Parquet file that was not written by the archive: rows
the contract refuses are left out and reported with a reason, a file of another schema is refused
with the column that differs; neither may end in a traceback or change the bill of the good rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from projections.calendar import to_us
from replay.rows import ARROW_SCHEMA
from schemas.events import parse_rfc3339


def us(ts: str) -> int:
    return to_us(parse_rfc3339(ts))


# A premium company with one member active all October: billed once whatever else the file holds.
GOOD = [
    ("r", "company_registered", us("2026-08-01T00:00:00Z"), "acme", None, None, None, None),
    ("p", "plan_changed", us("2026-08-01T00:00:00Z"), "acme", None, '{"plan":"premium"}', None, None),
    ("a1", "account_provisioned", us("2026-08-01T00:00:00Z"), "acme", "ann", None, None, None),
    ("l1", "login", us("2026-10-02T08:00:00Z"), "acme", "ann", None, None, None),
]
SEPT = us("2026-09-15T00:00:00Z")
HOSTILE = {  # name -> (row, the reason reported)
    "no_event_id": ((None, "login", SEPT, "acme", "bob", None, None, None), "event_id, type and company_id are required"),
    "no_company": (("x1", "login", SEPT, None, "bob", None, None, None), "event_id, type and company_id are required"),
    "no_type": (("x2", None, SEPT, "acme", "bob", None, None, None), "event_id, type and company_id are required"),
    "no_user": (("x3", "login", SEPT, "acme", None, None, None, None), "user_id is required for account and activity kinds"),
    "unknown_type": (("x4", "teleport", SEPT, "acme", "bob", None, None, None), "unknown event type"),
    "user_on_company": (("x5", "plan_changed", SEPT, "acme", "bob", '{"plan":"advanced"}', None, None), "user_id is forbidden on company kinds"),
    "attrs_not_json": (("x6", "company_registered", SEPT, "acme", None, "not json", None, None), "attrs and extras must be JSON objects"),
    "attrs_an_array": (("x7", "profile_update", SEPT, "acme", "ann", "[1]", None, None), "attrs and extras must be JSON objects"),
    "attrs_past_double": (("x8", "profile_update", SEPT, "acme", "ann", '{"away_from_desk_pct":1e400}', None, None), "attrs and extras must be JSON objects"),
    "plan_unknown": (("x9", "plan_changed", SEPT, "acme", None, '{"plan":"gold"}', None, None), "field 'plan': 'gold' is not allowed"),
    "trial_day_impossible": (("xa", "trial_started", SEPT, "acme", None, '{"last_trial_day":"2026-02-30"}', None, None), "field 'last_trial_day'"),
    "percent_a_string": (("xb", "profile_update", SEPT, "acme", "ann", '{"away_from_desk_pct":"lots"}', None, None), "field 'away_from_desk_pct'"),
    "home_company_a_number": (("xc", "invite", SEPT, "acme", "gus", '{"guest_home_company_id":7}', None, None), "field 'guest_home_company_id'"),
    "token_a_number": (("xd", "nonprofit_verified", SEPT, "acme", None, '{"techsoup_token":5,"organization_type":"ngo"}', None, None), "field 'techsoup_token'"),
}  # fmt: skip


def write(path, rows) -> str:
    pq.write_table(
        pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True)) for r in rows], ARROW_SCHEMA), path
    )
    return str(path)


def billed(result) -> list[tuple[str, bool]]:
    return [(d["user_id"], d["charged"]) for d in map(json.loads, result.stdout.splitlines())]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_row_the_contract_refuses_is_left_out_with_its_reason_and_the_good_rows_bill_as_alone(cli, tmp_path, name):
    row, reason = HOSTILE[name]
    alone = cli("replay", "--events", write(tmp_path / "good.parquet", GOOD), "--month", "2026-10")
    r = cli("replay", "--events", write(tmp_path / "hostile.parquet", [*GOOD, row]), "--month", "2026-10")
    assert r.exit_code == 0, r.stderr or repr(r.exception)
    assert r.stdout == alone.stdout and billed(r) == [("ann", True)]
    assert f"invalid: <parquet archive>: 1 row(s): {reason}" in r.stderr
    assert "1 invalid event(s) skipped" in r.stderr
    strict = cli("replay", "--events", tmp_path / "hostile.parquet", "--month", "2026-10", "--strict")
    assert strict.exit_code == 1


def test_every_hostile_row_at_once_is_left_out_and_counted(cli, tmp_path):
    rows = [row for row, _ in HOSTILE.values()]
    r = cli("invoice", "--events", write(tmp_path / "all.parquet", [*GOOD, *rows]), "--month", "2026-10")
    assert r.exit_code == 0, r.stderr or repr(r.exception)
    assert f"{len(rows)} invalid event(s) skipped" in r.stderr
    assert "Invoice acme 2026-10" in r.stdout


@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [("occurred_at_us", ["2026-10-02"] * 4, "VARCHAR"), ("user_id", [1, 2, 3, 4], "BIGINT")],
)
def test_a_parquet_file_with_a_column_of_another_type_exits_2_naming_it(cli, tmp_path, column, values, kind):
    table = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True)) for r in GOOD], ARROW_SCHEMA)
    table = table.set_column(ARROW_SCHEMA.names.index(column), column, pa.array(values))
    pq.write_table(table, tmp_path / "other.parquet")
    r = cli("replay", "--events", tmp_path / "other.parquet", "--month", "2026-10")
    assert (r.exit_code, r.stdout) == (2, ""), r.stderr or repr(r.exception)
    want = "BIGINT" if column == "occurred_at_us" else "VARCHAR"
    assert r.stderr.strip().startswith(
        f"error: cannot read Parquet events: column {column} is {kind}; event rows have {want}"
    )
