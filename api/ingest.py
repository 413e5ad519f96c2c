"""POST /v1/events without the HTTP: a body to the events to send and the ones rejected.

The body is NDJSON (one event object per line) or a JSON array of event objects. Each event is
validated by `schemas.decode.validate_event`, the function `seatledger publish` validates with, and
must belong to a company the key covers. A rejection names the event's index (its 0-based array
position or line), its event_id when it has one, and the reason. A line holding a JSON array is
rejected: packing events into messages is the API's job (streams.publisher.Packer), and an index
must name one event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from api.problems import ApiProblem
from schemas.decode import EventRejected, json_type, parse_json, parse_message, unexpected, validate_event

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines"})
JSON_TYPE = "application/json"


@dataclass(slots=True)
class Batch:
    """The events of one request: (company_id, event object as sent) to send, and the rejections."""

    accepted: list[tuple[str, dict]] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)

    def reject(self, index: int, item: Any, reason: str) -> None:
        eid = item.get("event_id") if isinstance(item, dict) else None
        self.rejections.append({"index": index, "event_id": eid if isinstance(eid, str) else None, "reason": reason})


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _items(body: bytes, kind: str, max_events: int) -> Iterator[tuple[int, Any, str | None]]:
    """(index, decoded item or raw line, why it is refused before validation) of every event in the
    body. The limits that need an event's bytes (size, depth, a key given twice) are applied by
    `schemas.decode.parse_message`, as `seatledger publish` and the router apply them."""
    if kind == JSON_TYPE:
        try:
            data = parse_json(body)
        except EventRejected as exc:
            raise ApiProblem("bad-request", f"the body cannot be read: {exc.reason}") from None
        if not isinstance(data, list):
            raise ApiProblem(
                "bad-request",
                f"a JSON body must be an array of events, got {json_type(data)}; send one event as [event] or as NDJSON",
            )
        _check_count(len(data), max_events)
        if not data:
            return
        refused = {r.index: r.reason for r in parse_message(body).rejected}  # the array read as a pack
        for i, item in enumerate(data):
            yield i, item, refused.get(i)
        return
    lines = body.split(b"\n")
    _check_count(sum(1 for line in lines if line.strip()), max_events)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parsed = parse_message(line)
        if parsed.packed:
            yield i, None, "one event object per NDJSON line, not an array"
        elif parsed.rejected:  # the element when it decoded, so the rejection names its event_id
            yield i, parsed.rejected[0].raw, parsed.rejected[0].reason
        else:
            yield i, parsed.items[0][1], None


def _check_count(n: int, max_events: int) -> None:
    if n > max_events:
        raise ApiProblem("payload-too-large", f"{n} events in one request; at most {max_events}")


def read_events(body: bytes, content_type: str | None, covers: Callable[[str], bool], max_events: int) -> Batch:
    """Validate every event of the body; raises ApiProblem for a body that cannot be read at all."""
    kind = media_type(content_type)
    if kind != JSON_TYPE and kind not in NDJSON_TYPES:
        raise ApiProblem(
            "unsupported-media-type",
            f"Content-Type {kind or 'missing'!r}; send application/x-ndjson or application/json",
        )
    out = Batch()
    for i, item, problem in _items(body, kind, max_events):
        if problem is not None:
            out.reject(i, item, problem)
            continue
        try:
            ev = validate_event(item)
        except EventRejected as exc:
            out.reject(i, item, exc.reason)
            continue
        except Exception as exc:  # a bug refuses its event, never the request (as schemas.decode.accept)
            out.reject(i, item, unexpected(exc))
            continue
        if not covers(ev.company_id):
            out.reject(i, item, f"company {ev.company_id!r} is outside this API key's scope")
            continue
        out.accepted.append((ev.company_id, item))
    return out
