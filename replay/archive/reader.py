"""Reading the archive back as event rows: one company's or every company's, deduplicated.

A publisher may send an event twice and a compaction may briefly leave rows in two files, so every
read keeps one row per (`company_id`, `event_id`) (`_DEDUP`), chosen independently of file names
and compaction. The key is the contract's: the same id in two companies names two events, so one
tenant can never hide another tenant's event by reusing its id.
"""

from __future__ import annotations

from pathlib import Path

from projections.calendar import Month
from replay.archive.layout import REJECTED_DIR, bucket_of
from replay.rows import COLUMNS, contract_violation_sql

# The first of several rows of one event: earliest to reach Kafka, then a content order, so the
# choice does not depend on file names or compaction.
DEDUP_KEY = ("company_id", "event_id")
_DEDUP = (
    f"QUALIFY row_number() OVER (PARTITION BY {', '.join(DEDUP_KEY)} ORDER BY published_at_us, archived_at_us, "
    "occurred_at_us, type, user_id, attrs, extras, source) = 1"
)
READ_COLUMNS = (*COLUMNS, "published_at_us", "archived_at_us")


def months_upto(root: Path | str, upto: Month | None) -> list[str]:
    """The UTC months present in the archive, up to and including `upto` (all when None)."""
    names = sorted(p.name[len("month=") :] for p in Path(root).glob("month=*") if p.is_dir())
    return [m for m in names if upto is None or m <= str(upto)]


def _files(root: Path, months: list[str], bucket: int | None) -> list[str]:
    pat = "*" if bucket is None else f"{bucket:02d}"
    out: list[str] = []
    for m in months:
        out.extend(str(f) for f in sorted((Path(root) / f"month={m}").glob(f"bucket={pat}/*.parquet")))
    return out


def _query_rows(sql: str, params: list | None = None) -> list[dict]:
    import duckdb

    con = duckdb.connect()
    try:
        cur = con.execute(sql, params or [])
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_files(files: list[str]) -> str:
    return "[" + ", ".join(_sql_str(f) for f in files) + "]"


def rows_sql(
    root: Path | str,
    upto: Month | None = None,
    *,
    company_id: str | None = None,
    published_upto_us: int | None = None,
) -> str | None:
    """SQL (no parameters, so it can define a view) selecting `READ_COLUMNS` of the archived events
    in UTC months up to `upto`, deduplicated by (company_id, event_id); None when there are none.

    With `company_id`: that company's events (from its bucket only) and the other companies'
    invites naming it as a guest's home company (they make its derived trial, R5). With
    `published_upto_us`: only events that had reached Kafka by then (what a close could know).
    Rows that today's contract refuses (archived under older rules: `contract_violation_sql`) are
    left out, as the batch replay leaves them out."""
    root = Path(root)
    months = months_upto(root, upto)
    every = _files(root, months, None)
    if not every:
        return None
    cols = ", ".join(READ_COLUMNS)
    known = "" if published_upto_us is None else f" AND published_at_us <= {int(published_upto_us)}"
    known += f" AND ({contract_violation_sql()}) IS NULL"  # rows archived under older, looser rules
    if company_id is None:
        parts = [f"SELECT {cols} FROM read_parquet({_sql_files(every)}, hive_partitioning=false) WHERE true{known}"]
    else:
        own = _files(root, months, bucket_of(company_id))
        cid = _sql_str(company_id)
        parts = [
            f"SELECT {cols} FROM read_parquet({_sql_files(every)}, hive_partitioning=false) WHERE type = 'invite' "
            f"AND company_id <> {cid} AND json_extract_string(attrs, '$.guest_home_company_id') = {cid}{known}"
        ]
        if own:
            parts.insert(
                0,
                f"SELECT {cols} FROM read_parquet({_sql_files(own)}, hive_partitioning=false) WHERE company_id = {cid}{known}",
            )
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) {_DEDUP}"


def read_company_rows(root: Path | str, company_id: str, upto: Month | None = None) -> list[dict]:
    """A company's archived events in UTC months up to `upto` (inclusive) with the guest invites
    naming it (see `rows_sql`), deduplicated by (company_id, event_id), ordered by (occurred_at, event_id)."""
    sql = rows_sql(root, upto, company_id=company_id)
    return _query_rows(sql + " ORDER BY occurred_at_us, company_id, event_id") if sql else []


def read_all_rows(root: Path | str, upto: Month | None = None) -> list[dict]:
    """Every archived event in UTC months up to `upto`, deduplicated by (company_id, event_id), ordered by
    (company_id, occurred_at, event_id)."""
    sql = rows_sql(root, upto)
    return _query_rows(sql + " ORDER BY company_id, occurred_at_us, event_id") if sql else []


def read_rejected(root: Path | str) -> list[dict]:
    files = sorted(str(f) for f in (Path(root) / REJECTED_DIR).glob("month=*/*.parquet"))
    if not files:
        return []
    return _query_rows(f'SELECT * FROM read_parquet({_sql_files(files)}) ORDER BY topic, partition, "offset", "index"')
