"""replay.rows: the fast path's rows equal the models' rows, field for field."""

from __future__ import annotations

from devtools.workload import iter_events
from replay.rows import activity_row, event_row
from schemas.decode import validate_event
from schemas.fast import fast_accept


def test_activity_rows_built_without_pydantic_equal_the_model_rows():
    base = {"event_id": "e", "type": "visit", "occurred_at": "2026-10-02T08:14:03+02:00", "company_id": "c", "user_id": "u", "channel": "web"}  # fmt: skip
    variants = [
        base, base | {"source": "app", "schema_version": 1}, base | {"source": None}, base | {"z": [1, {"b": None}], "a": "x"},
        base | {"type": "notification_view", "channel": None}, base | {"type": "notification_view"},
        base | {"type": "login", "channel": "fax"}, base | {"type": "chat_use", "source": ""},
    ]  # fmt: skip
    events = variants + list(iter_events(3, 60, "2026-10", seed=2))
    fast = [e for e in events if fast_accept(e) is not None]
    assert len(fast) > 1000 and all(v in fast for v in variants)
    for e in fast:
        assert activity_row(e) == event_row(validate_event(e)), e
