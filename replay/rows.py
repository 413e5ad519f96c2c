"""Accepted events as flat rows: the archive's Parquet schema and the batch path's input.

One row per accepted event. `attrs` holds the kind-specific contract fields the publisher set
(JSON object, or null when none), `extras` the unknown fields kept for the archive (JSON object or
null). Instants are integer microseconds since the epoch (UTC); the original text is not needed
because every rule reads local dates in the company's zone.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pyarrow as pa

from projections.calendar import to_us
from schemas.events import EVENT_MODELS, Envelope

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
