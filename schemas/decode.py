"""Bytes to events, with one specific, human-readable error per rejected event.

A Kafka message (or an NDJSON line) holds one event object or a JSON array of events of one
company. Each element is judged on its own: one bad event never takes its neighbours with it.

The judgement has two steps, used by every path that reads events (publisher, router, archive,
batch reader): `parse_message` applies the limits that need the message's bytes (JSON, size,
depth, duplicate keys), `accept` the contract's models and the one-company rule of a pack.
`decode_message` is the two together. No exception escapes them: an element that makes anything
raise is rejected with that as its reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import COMPANY_TYPES, EVENT_MODELS, Envelope, Event

_ADAPTER: TypeAdapter = TypeAdapter(Event)

MAX_EVENT_BYTES: Final = 64 * 1024  # an event's compact JSON encoding
MAX_DEPTH: Final = 32  # levels of JSON objects and arrays in one event (the event object is level 1)

EMPTY_ARRAY = "empty JSON array: a packed message needs at least one event"
TOO_DEEP = f"the event nests more than {MAX_DEPTH} levels of JSON objects and arrays; the limit is {MAX_DEPTH}"


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


def too_large(size: int) -> str:
    return f"the event is {size:,} bytes of JSON; an event is at most {MAX_EVENT_BYTES:,} bytes (64 KiB)"


def duplicate_key(key: str) -> str:
    return f"duplicate key {key!r} in a JSON object; each key may appear only once"


def mixed_companies(company_id: str, first: str) -> str:
    return f"packed message mixes companies: {company_id!r} after {first!r}; pack one company's events per message"


def unexpected(exc: BaseException) -> str:
    """The reason given for an element that made the validation itself fail (a bug, not a rule)."""
    return f"could not be validated: {type(exc).__name__}: {exc}"[:500]


# One event -------------------------------------------------------------------------------------


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
    """One decoded JSON value to an event model, or `EventRejected` with a specific reason.

    The contract's field rules only: the limits that need the message's bytes (size, depth,
    duplicate keys) are `parse_message`'s."""
    if not isinstance(data, dict):
        raise EventRejected(f"an event must be a JSON object, got {json_type(data)}", data)
    kind = data.get("type")
    if kind is None:
        raise EventRejected("missing required field 'type'", data)
    if not isinstance(kind, str) or kind not in EVENT_MODELS:
        raise EventRejected(f"unknown event type {_short_repr(kind)}", data)
    if kind not in COMPANY_TYPES and "user_id" not in data:
        raise EventRejected(f"missing required field 'user_id' (required for event type {kind!r})", data)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EventRejected(_describe(exc, data), data) from None


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def json_type(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (for messages to publishers in any language)."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# One message: the limits -----------------------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    """A message's elements that are within the limits, and the rejections of the others."""

    packed: bool
    items: list[tuple[int, Any]]  # (index in the message, the element's JSON value)
    rejected: list[Rejection]


def parse_json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1024 levels: far beyond the contract's limit
            raise EventRejected(TOO_DEEP, raw) from None
        if "not valid UTF-8" in str(exc):  # orjson says "surrogates not allowed" at char 0 for any bad byte
            raise EventRejected(not_utf8(raw), raw) from None
        opening = raw.strip()
        if opening in (b"[", b"{", "[", "{"):  # the first line of a pretty-printed JSON file
            raise EventRejected(
                SPREAD_OVER_LINES.format(opening if isinstance(opening, str) else opening.decode()), raw
            ) from None
        raise EventRejected(f"not valid JSON: {exc}", raw) from None


SPREAD_OVER_LINES = (
    "not valid JSON: a lone '{}' opens a JSON document spread over several lines; NDJSON holds one whole "
    "event (or array of one company's events) per line, as `jq -c` writes them"
)


def not_utf8(raw: bytes | str) -> str:
    """Where text that should be UTF-8 is not (a Latin-1 or UTF-16 export, a cut multibyte
    character, a lone surrogate escaped in a str), in a publisher's words."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not valid JSON: the text is UTF-16 (it starts with a UTF-16 byte-order mark); events are UTF-8 text"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex(" ").upper()
        return (
            f"not valid JSON: not UTF-8: byte(s) {bad} at byte offset {exc.start} ({exc.reason}); events are UTF-8 text"
        )
    return "not valid JSON: not UTF-8"


def parse_message(raw: bytes | str) -> Parsed:
    """Parse a message and apply the limits of the contract that need its bytes, element by element:
    at most `MAX_EVENT_BYTES` of compact JSON, `MAX_DEPTH` levels, no key twice in an object."""
    data_raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        data = parse_json(data_raw)
    except EventRejected as exc:
        return Parsed(False, [], [Rejection(0, exc.reason, raw)])
    if type(data) is dict and data_raw.count(b"{") + data_raw.count(b"[") <= MAX_DEPTH:
        # One event within the limits, the common case, checked in as few steps as possible (the
        # same checks as below: few brackets, small, as many colons as its re-encoding)
        compact = orjson.dumps(data)
        if len(compact) <= MAX_EVENT_BYTES and b"\\u" not in data_raw and data_raw.count(b":") == compact.count(b":"):
            return Parsed(False, [(0, data)], [])
    packed = type(data) is list
    if packed and not data:
        return Parsed(True, [], [Rejection(0, EMPTY_ARRAY, raw)])
    elements: list = data if packed else [data]
    bad: dict[int, str] = {}
    # Every container opens with a bracket: when the message has few, no element can be too deep.
    if data_raw.count(b"{") + data_raw.count(b"[") > MAX_DEPTH + packed:
        bad.update((i, TOO_DEEP) for i, el in enumerate(elements) if deeper_than(el, MAX_DEPTH))
    ok = elements if not bad else [el for i, el in enumerate(elements) if i not in bad]
    encoded = _encode(ok)
    if encoded is None or len(encoded) > MAX_EVENT_BYTES:  # then some element may be too large
        for i, el in enumerate(elements):
            if i not in bad:
                size = _encoded_size(el)
                if size is None or size > MAX_EVENT_BYTES:
                    bad[i] = too_large(size) if size is not None else TOO_DEEP
    # A key given twice leaves one key less in the decoded objects than colons between them in the
    # bytes: compare the colons of the message with those of its compact re-encoding (where every
    # colon is a key's or inside a string). Exact unless \u escapes hide colons in strings or an
    # element was cut: then the slower scan decides.
    suspect = bad or encoded is None or b"\\u" in data_raw or data_raw.count(b":") != encoded.count(b":")
    if suspect and len(bad) < len(elements):  # (an element already refused needs no third reason)
        for i, key in duplicate_keys(data_raw, packed).items():
            bad.setdefault(i, duplicate_key(key))
    if not bad:
        return Parsed(packed, list(enumerate(elements)), [])
    items = [(i, el) for i, el in enumerate(elements) if i not in bad]
    rejected = [Rejection(i, bad[i], elements[i]) for i in sorted(bad)]
    return Parsed(packed, items, rejected)


def _encode(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _encoded_size(value: Any) -> int | None:
    enc = _encode(value)
    return None if enc is None else len(enc)


def deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels of objects and arrays (itself counted)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is dict or t is list:
            if depth > limit:
                return True
            children = v.values() if t is dict else v
            stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


# A JSON string, unrolled for speed, or one structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]', re.DOTALL)


def duplicate_keys(raw: bytes, packed: bool) -> dict[int, str]:
    """Element index -> the first key that appears twice in one of its objects.

    A scan of the message's bytes (valid JSON: orjson parsed it), so any depth is fine."""
    found: dict[int, str] = {}
    stack: list[set[str] | None] = []  # per open container: the keys of an object, None for an array
    index = 0
    last: bytes | None = None
    for m in _TOKEN.finditer(raw):
        tok = m.group()
        c = tok[0]
        if c == 0x22:  # '"'
            last = tok
            continue
        if c == 0x3A:  # ':' ends a key
            keys = stack[-1] if stack else None
            if keys is not None and last is not None:
                key = orjson.loads(last)
                if key in keys:
                    found.setdefault(index, key)
                keys.add(key)
        elif c == 0x7B:  # '{'
            stack.append(set())
        elif c == 0x5B:  # '['
            stack.append(None)
        elif c in (0x7D, 0x5D):  # '}' ']'
            stack.pop()
        elif c == 0x2C and packed and len(stack) == 1:  # ',' between the elements of a pack
            index += 1
        last = None
    return found


# One message: the contract ---------------------------------------------------------------------

# (index, the element as published, its model when pydantic validated it, its company)
Accepted = tuple[int, Any, Envelope | None, str]


def accept(
    items: list[tuple[int, Any]], fast: Callable[[Any], str | None] | None = None
) -> tuple[list[Accepted], list[Rejection]]:
    """Judge each element against the contract (`fast(element)` may vouch for one and return its
    company, see streams.routing.fast_accept); a pack is one company's: elements of another company
    than the first accepted one are rejected."""
    good: list[Accepted] = []
    bad: list[Rejection] = []
    first: str | None = None
    for i, item in items:
        ev: Envelope | None = None
        try:
            cid = fast(item) if fast is not None else None
            if cid is None:
                ev = validate_event(item)
                cid = ev.company_id
        except EventRejected as exc:
            bad.append(Rejection(i, exc.reason, item))
            continue
        except Exception as exc:  # a bug must not take the process, or the message, with it
            bad.append(Rejection(i, unexpected(exc), item))
            continue
        if first is None:
            first = cid
        elif cid != first:
            # A packed message is one company's events; mixing would defeat keyed partitioning.
            bad.append(Rejection(i, mixed_companies(cid, first), item))
            continue
        good.append((i, item, ev, cid))
    return good, bad


def decode_message(raw: bytes | str) -> tuple[list[Envelope], list[Rejection]]:
    """A message's bytes to its good events and its rejections (in message order)."""
    parsed = parse_message(raw)
    good, bad = accept(parsed.items)
    events = [ev for _, _, ev, _ in good if ev is not None]
    rejected = sorted(parsed.rejected + bad, key=lambda r: r.index)
    return events, rejected


def event_to_json(ev: Envelope) -> dict:
    """The event as its JSON object again (extras included), for the archive and re-publishing."""
    return ev.model_dump(mode="json", exclude_none=False, exclude_unset=True) | {"type": ev.type}
