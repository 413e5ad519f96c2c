"""Control messages: the close and estimate markers and the router's rejection counts.

They share the events topic with the events so that a close marker is ordered after the events
published before it on each partition. They have no `type` field, so `schemas.decode` would
reject them, never accept them as events; readers recognise them with `parse_control` first.
"""

from __future__ import annotations

from typing import Any

import orjson

CONTROL_KEY = "seatledger_control"
CLOSE_MONTH = "close_month"
ESTIMATE_MONTH = "estimate_month"  # emit provisional decisions of the month so far (projections.estimate)
REJECTED = "rejected"  # router -> fold agent: how many elements a source message lost to the DLQ
_CONTROL_NEEDLE = CONTROL_KEY.encode()


def close_marker(month: str, close_id: str, partitions: int) -> dict:
    """What `seatledger close` puts on every partition of the events topic."""
    return {CONTROL_KEY: CLOSE_MONTH, "month": month, "close_id": close_id, "partitions": partitions}


def routed_close_marker(month: str, close_id: str, source_partition: int, partitions: int) -> dict:
    """What the router forwards to every routed partition when it reads a close marker."""
    return {
        CONTROL_KEY: CLOSE_MONTH,
        "month": month,
        "close_id": close_id,
        "source_partition": source_partition,
        "partitions": partitions,
    }


def estimate_marker(month: str, estimate_id: str, as_of: str, partitions: int) -> dict:
    """What `seatledger estimate` puts on every partition of the events topic: like a close marker,
    it follows the events published before it; `as_of` (RFC 3339) is when it was sent. A partition
    that has seen it from every source partition estimates the month with the facts it holds."""
    return {
        CONTROL_KEY: ESTIMATE_MONTH,
        "month": month,
        "estimate_id": estimate_id,
        "as_of": as_of,
        "partitions": partitions,
    }


def routed_estimate_marker(month: str, estimate_id: str, as_of: str, source_partition: int, partitions: int) -> dict:
    """What the router forwards to every routed partition when it reads an estimate marker."""
    return {**estimate_marker(month, estimate_id, as_of, partitions), "source_partition": source_partition}


def rejected_control(source_partition: int, items: list[tuple[int, int]]) -> dict:
    """Rejection counts of source messages: [(source offset, rejected elements)], for exact counts."""
    return {CONTROL_KEY: REJECTED, "source_partition": source_partition, "items": [list(i) for i in items]}


def parse_control(raw: bytes) -> dict | None:
    """The control object of a message, or None for anything else (events, arrays, garbage)."""
    if _CONTROL_NEEDLE not in raw:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get(CONTROL_KEY), str):
        return data
    return None


def control_of(data: Any) -> dict | None:
    """For an already decoded routed value: its control object, if it is one."""
    if isinstance(data, dict) and CONTROL_KEY in data:
        return data
    return None
