"""Accepted events as flat rows: the archive's Parquet schema and the batch path's input.

One row per accepted event. `attrs` holds the kind-specific contract fields the publisher set
(JSON object, or null when none), `extras` the unknown fields kept for the archive (JSON object or
null). Instants are integer microseconds since the epoch (UTC); the original text is not needed
because every rule reads local dates in the company's zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from projections.calendar import to_us
from replay.facts_sql import RECORD_EVENTS, _sql_list
from schemas.events import COMPANY_TYPES, EARLIEST, EVENT_MODELS, LATEST, RANGE_TEXT, Envelope
from schemas.fast import fast_ts_us
from schemas.timezones import ZONE_NAMES

ENVELOPE_FIELDS = frozenset({"event_id", "type", "occurred_at", "company_id", "user_id", "schema_version", "source"})

ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at_us", pa.int64()),
        ("company_id", pa.string()),
        ("user_id", pa.string()),
        ("attrs", pa.string()),
        ("extras", pa.string()),
        ("source", pa.string()),
    ]
)
COLUMNS = tuple(ARROW_SCHEMA.names)


def _json_value(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def event_row(ev: Envelope) -> tuple:
    """A validated event as a row tuple in `COLUMNS` order."""
    extras = ev.__pydantic_extra__ or None
    attrs = {
        k: _json_value(getattr(ev, k))
        for k in ev.model_fields_set
        if k not in ENVELOPE_FIELDS and k in type(ev).model_fields
    }
    return (
        ev.event_id,
        ev.type,
        to_us(ev.occurred_at),
        ev.company_id,
        getattr(ev, "user_id", None),
        orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS).decode() if attrs else None,
        orjson.dumps(extras, option=orjson.OPT_SORT_KEYS).decode() if extras else None,
        ev.source,
    )


def contract_violation_sql(untrusted: bool = False) -> str:
    """A SQL expression over an archive row (`COLUMNS`): why today's contract refuses it, or NULL.

    Archive rows were validated when they were archived, by the rules of that day. The rules that
    have held since the archive exists (types, id alphabets and lengths, `user_id` per kind) need
    no second look; these are the rules added since that a run depends on: an instant far outside
    the range, a host-only zone, a trial day past 9999 would slow it down or crash it. (An old id
    with a control character is kept: it changes no bill, and every output escapes it.) Cheap: a
    range test on every row, a JSON lookup on the few company rows only.

    `untrusted`: the rows come from a Parquet file anyone may have written (`replay --events
    FILE.parquet`), not only from the archive: the envelope is checked too (the ids and the type
    present, a known type, `user_id` per kind), and the JSON columns of the account and company
    rows, which the rules parse (`replay.events_source` judges their values by the contract)."""
    zones = _sql_list(sorted(ZONE_NAMES))
    lo, hi = to_us(EARLIEST), to_us(LATEST)
    return f"""CASE{_envelope_violations() if untrusted else ""}
        WHEN occurred_at_us IS NULL OR occurred_at_us < {lo} OR occurred_at_us >= {hi}
            THEN 'occurred_at is outside the accepted range {RANGE_TEXT}'
        WHEN type = 'company_registered' AND coalesce(json_extract_string(attrs, '$.timezone'), 'UTC') NOT IN ({zones})
            THEN 'timezone is not a zone of the shipped tzdata'
        WHEN type = 'trial_started' AND json_extract_string(attrs, '$.last_trial_day') NOT BETWEEN '2000-01-01' AND '2099-12-31'
            THEN 'last_trial_day is outside [2000-01-01, 2099-12-31]'
    END"""


def _envelope_violations() -> str:
    """The WHEN branches of `contract_violation_sql(untrusted=True)`: rules an archive row always
    meets (it was validated), which a row of any other Parquet file may break."""
    company, records = _sql_list(sorted(COMPANY_TYPES)), _sql_list(RECORD_EVENTS)

    def not_object(col: str) -> str:
        # (valid JSON that starts with a brace is an object; json_type would raise on invalid JSON)
        return f"{col} IS NOT NULL AND NOT (json_valid({col}) AND starts_with(ltrim({col}), '{{'))"

    return f"""
        WHEN event_id IS NULL OR type IS NULL OR company_id IS NULL
            THEN 'event_id, type and company_id are required'
        WHEN type NOT IN ({_sql_list(sorted(EVENT_MODELS))}) THEN 'unknown event type'
        WHEN user_id IS NULL AND type NOT IN ({company}) THEN 'user_id is required for account and activity kinds'
        WHEN user_id IS NOT NULL AND type IN ({company}) THEN 'user_id is forbidden on company kinds'
        WHEN type IN ({records}) AND ({not_object("attrs")} OR {not_object("extras")})
            THEN 'attrs and extras must be JSON objects'"""


# Fields of the fast-path kinds (schemas.fast) that are contract fields, not extras, beyond the envelope.
_ACTIVITY_FIELDS = {"visit": ("channel",), "notification_view": ("channel",)}


def activity_row(item: dict) -> tuple:
    """The row of an activity event `schemas.fast.fast_accept` vouched for, built from its JSON
    object without pydantic: equal to `event_row(validate_event(item))` (the fuzz test and
    tests/unit/replay/test_rows.py hold it to that)."""
    kind = item["type"]
    own = _ACTIVITY_FIELDS.get(kind, ())
    attrs = {k: item[k] for k in own if k in item}
    extras = {k: v for k, v in item.items() if k not in ENVELOPE_FIELDS and k not in own}
    ts = fast_ts_us(item["occurred_at"])
    assert ts is not None  # fast_accept parsed it
    return (
        item["event_id"],
        kind,
        ts,
        item["company_id"],
        item["user_id"],
        orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS).decode() if attrs else None,
        orjson.dumps(extras, option=orjson.OPT_SORT_KEYS).decode() if extras else None,
        item.get("source"),
    )


def element_row(item: Any, ev: Envelope | None) -> tuple:
    """The row of an element `schemas.decode.accept` accepted: from its model, or (fast path) its JSON."""
    return event_row(ev) if ev is not None else activity_row(item)


def rows_to_table(rows: list[tuple], schema: pa.Schema = ARROW_SCHEMA) -> pa.Table:
    """Row tuples (one value per field of `schema`, in order) as an Arrow table of `schema`."""
    cols: list[Sequence] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(c), type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
    )


def row_to_event_json(row: dict) -> dict:
    """A row back to the event's JSON object (occurred_at in UTC), e.g. to re-publish or display."""
    from projections.calendar import from_us

    out = {
        "event_id": row["event_id"],
        "type": row["type"],
        "occurred_at": from_us(row["occurred_at_us"]).isoformat().replace("+00:00", "Z"),
        "company_id": row["company_id"],
    }
    if row.get("user_id") is not None:
        out["user_id"] = row["user_id"]
    if row.get("source") is not None:
        out["source"] = row["source"]
    if row.get("attrs"):
        out.update(orjson.loads(row["attrs"]))
    if row.get("extras"):
        out.update(orjson.loads(row["extras"]))
    return out


def row_to_event(row: dict) -> Envelope:
    return EVENT_MODELS[row["type"]].model_validate(row_to_event_json(row))
