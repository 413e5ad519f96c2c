"""Bytes to events, with one specific, human-readable error per rejected event.

A Kafka message (or an NDJSON line) holds one event object or a JSON array of events of one
company. Each element is judged on its own: one bad event never takes its neighbours with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import COMPANY_TYPES, EVENT_MODELS, Envelope, Event

_ADAPTER: TypeAdapter = TypeAdapter(Event)


class SchemaError(Exception):
    """Base class of this package's errors."""


class EventRejected(SchemaError):
    """An event broke the contract; `reason` is what the publisher is told."""

    def __init__(self, reason: str, raw: Any = None):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected element of a message: `index` within a packed array (0 for a single event)."""

    index: int
    reason: str
    raw: Any


def _describe(exc: ValidationError, data: dict) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] == data.get("type"):
            loc = loc[1:]  # the discriminator's branch name repeats the type
        field = ".".join(loc)
        kind = err["type"]
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "missing":
            parts.append(f"missing required field '{field}'")
        elif kind == "extra_forbidden":
            parts.append(f"field '{field}' is not allowed")
        elif kind in ("literal_error", "enum"):
            got = err.get("input")
            parts.append(f"field '{field}': {got!r} is not allowed; {msg[0].lower() + msg[1:]}")
        elif field:
            parts.append(f"field '{field}': {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts)


def validate_event(data: Any) -> Envelope:
    """One decoded JSON value to an event model, or `EventRejected` with a specific reason."""
    if not isinstance(data, dict):
        raise EventRejected(f"an event must be a JSON object, got {type(data).__name__}", data)
    kind = data.get("type")
    if kind is None:
        raise EventRejected("missing required field 'type'", data)
    if not isinstance(kind, str) or kind not in EVENT_MODELS:
        raise EventRejected(f"unknown event type {kind!r}", data)
    if kind not in COMPANY_TYPES and "user_id" not in data:
        raise EventRejected(f"missing required field 'user_id' (required for event type {kind!r})", data)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EventRejected(_describe(exc, data), data) from None


def parse_json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"not valid JSON: {exc}", raw) from None


def decode_message(raw: bytes | str) -> tuple[list[Envelope], list[Rejection]]:
    """A message's bytes to its good events and its rejections, in message order."""
    try:
        data = parse_json(raw)
    except EventRejected as exc:
        return [], [Rejection(0, exc.reason, raw)]
    items = data if isinstance(data, list) else [data]
    if isinstance(data, list) and not data:
        return [], [Rejection(0, "empty JSON array: a packed message needs at least one event", raw)]
    good: list[Envelope] = []
    bad: list[Rejection] = []
    first: str | None = None
    for i, item in enumerate(items):
        try:
            ev = validate_event(item)
        except EventRejected as exc:
            bad.append(Rejection(i, exc.reason, item))
            continue
        if first is None:
            first = ev.company_id
        elif ev.company_id != first:
            # A packed message is one company's events; mixing would defeat keyed partitioning.
            reason = f"packed message mixes companies: {ev.company_id!r} after {first!r}; pack one company's events per message"
            bad.append(Rejection(i, reason, item))
            continue
        good.append(ev)
    bad.sort(key=lambda r: r.index)
    return good, bad


def event_to_json(ev: Envelope) -> dict:
    """The event as its JSON object again (extras included), for the archive and re-publishing."""
    return ev.model_dump(mode="json", exclude_none=False, exclude_unset=True) | {"type": ev.type}
