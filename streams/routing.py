"""Routing: which partition is a company's home, and what the router does with one raw message.

Pure functions, no Faust, no Kafka: the router (streams/router.py) calls `route_message` for
every message of the events topic and only does the I/O.

Why re-route at all: publishers partition differently (librdkafka hashes the key with CRC32, the
Java client and aiokafka with murmur2, some send no key), so the partition a message arrives on
says nothing reliable about the company. The worker forwards every accepted event to the
company's one HOME partition of the routed topic, a stable function of `company_id` only, and all
state lives behind that topic.

Control messages (`{"seatledger_control": ...}`) share the events topic with the events so that a
close marker is ordered after the events published before it on each partition. They have no
`type` field, so `schemas.decode_message` would reject them, never accept them as events; the
router recognises them before decoding.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from projections.calendar import Month, utc_iso
from projections.facts import DERIVED_TRIAL_SOURCE, derived_trial_id, guest_home
from schemas.control import CLOSE_MONTH, CONTROL_KEY, ESTIMATE_MONTH, parse_control
from schemas.decode import MAX_EVENT_BYTES, accept, parse_message, unexpected
from schemas.fast import fast_accept, fast_ts_us  # noqa: F401  fast_ts_us: re-exported for streams.state

# A forwarded (routed) message holds at most this many events / about this many bytes.
MAX_PACK_EVENTS = 1000
MAX_PACK_BYTES = 512 * 1024


def home_partition(company_id: str, partitions: int) -> int:
    """The company's home partition: CRC32 of its UTF-8 id modulo the partition count.

    Stable across processes, machines and Python versions (unlike `hash()`), and independent of
    how the publisher partitioned. Changing the partition count moves companies: see
    docs/streaming.md (known limits).
    """
    return zlib.crc32(company_id.encode()) % partitions


# --------------------------------------------------------------------------------------------------
# Dead letters

MAX_DLQ_BYTES = 64 * 1024  # of a rejected message's bytes kept in its dead letter

REASON_CLASSES = (
    ("not valid JSON", "not_json"),
    ("bytes of JSON", "too_large"),
    ("levels of JSON", "too_deep"),
    ("duplicate key", "duplicate_key"),
    ("control character", "control_character"),
    ("outside the accepted range", "out_of_range"),
    ("could not be validated", "internal_error"),
    ("empty JSON array", "empty_array"),
    ("mixes companies", "mixed_companies"),
    ("unknown event type", "unknown_type"),
    ("user_id is forbidden", "user_id_forbidden"),
    ("missing required field 'user_id'", "user_id_missing"),
    ("timestamp", "bad_timestamp"),
    ("missing required field", "missing_field"),
    ("is not allowed", "bad_value"),
    ("must be a JSON object", "not_an_object"),
    ("control message", "bad_control"),
    ("late_past_window", "late_past_window"),
)


def reason_class(reason: str) -> str:
    """A small, stable label for a rejection reason (the metrics' `reason` label)."""
    for needle, label in REASON_CLASSES:
        if needle in reason:
            return label
    return "invalid_value"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


def dead_letter(
    original: Any,
    error: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    index: int,
    raw_message: bytes | None = None,
    now: datetime | None = None,
) -> dict:
    """The DLQ record of one rejected element.

    `original` is the element's JSON value when it is kept as JSON, else the message's text; then
    `original_b64` also carries its exact bytes. Bytes beyond `MAX_DLQ_BYTES` are cut (and
    `original_size` says how many there were), so that a dead letter always fits in a Kafka
    message: an oversized poison message must not become an unsendable dead letter.
    """
    if raw_message is not None and len(raw_message) > MAX_DLQ_BYTES:
        size = len(raw_message)
        raw_message = raw_message[:MAX_DLQ_BYTES]
        if isinstance(original, (bytes, str)):
            original = original[:MAX_DLQ_BYTES]
    else:
        size = None
    rec = {
        "original": _text(original) if isinstance(original, (bytes, str)) and raw_message is not None else original,
        "error": error,
        "reason_class": reason_class(error),
        "rejected_at": utc_iso(now or datetime.now(UTC)),
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "index": index,
    }
    if raw_message is not None:
        rec["original_b64"] = base64.b64encode(raw_message).decode()
    if size is not None:
        rec["original_size"] = size
    return rec


# --------------------------------------------------------------------------------------------------
# One message


@dataclass(slots=True)
class Routed:
    """What the router does with one message of the events topic."""

    company_id: str | None = None
    events: list[dict] = field(default_factory=list)  # accepted elements, as published
    derived: list[tuple[str, dict]] = field(default_factory=list)  # (home company, derived trial)
    dead: list[dict] = field(default_factory=list)  # DLQ records
    control: dict | None = None  # a close marker
    # When every element was accepted: the message's bytes as the inside of a JSON array
    # (`elem` or `elem,elem,...`), forwarded as they are instead of re-encoding `events`.
    raw_elements: bytes | None = None


def derived_trial(invite: dict, home: str) -> dict:
    """R5: the `trial_started` event a guest invite implies for the guest's home company."""
    return {
        "event_id": derived_trial_id(invite["event_id"]),
        "type": "trial_started",
        "occurred_at": invite["occurred_at"],
        "company_id": home,
        "source": DERIVED_TRIAL_SOURCE,
        "guest_of": invite["company_id"],
    }


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more per message to build
class Source:
    """Where a message was read (and when it is judged): what every dead letter of it records."""

    topic: str
    partition: int
    offset: int
    now: datetime | None = None

    def dead(self, original: Any, error: str, *, index: int = 0, raw_message: bytes | None = None) -> dict:
        return dead_letter(
            original, error, topic=self.topic, partition=self.partition, offset=self.offset,
            index=index, raw_message=raw_message, now=self.now,
        )  # fmt: skip


def route_message(raw: bytes | None, *, topic: str, partition: int, offset: int, now: datetime | None = None) -> Routed:
    """Split one raw message into accepted events, derived events, dead letters or a control.

    The judgement of `schemas.decode_message` (`parse_message`'s limits, then `accept`, with
    `fast_accept` vouching for the bulk of the activity events): each element on its own, a pack
    is one company's. Every accepted model stays paired with its element as published and every
    rejection carries its index in the message. Never raises: an element the validation itself
    fails on is a dead letter with that reason.
    """
    src = Source(topic, partition, offset, now)
    if raw is None:
        return Routed(dead=[src.dead(None, "empty message (null value)", raw_message=b"")])
    try:
        return _route(raw, src)
    except Exception as exc:  # a bug: the message goes to the DLQ with it, the router goes on
        return failed(raw, exc, src)


def failed(raw: bytes, exc: BaseException, src: Source) -> Routed:
    """A message whose routing raised: one dead letter with its bytes and the error."""
    return Routed(dead=[src.dead(raw, unexpected(exc), raw_message=raw)])


def _route(raw: bytes, src: Source) -> Routed:
    ctl = parse_control(raw)
    if ctl is not None:
        return _route_control(ctl, src)
    parsed = parse_message(raw)
    out = Routed()
    with_bytes = True  # the message's bytes go with its first limit rejection only
    for rej in parsed.rejected:
        if rej.raw is raw or not parsed.packed:  # the message as a whole: its bytes
            out.dead.append(src.dead(raw, rej.reason, raw_message=raw))
        elif _encodable(rej.raw):
            out.dead.append(src.dead(rej.raw, rej.reason, index=rej.index))
        else:
            out.dead.append(src.dead(None, rej.reason, index=rej.index, raw_message=raw if with_bytes else None))
            with_bytes = False
    good, bad = accept(parsed.items, fast_accept)
    out.dead += [src.dead(r.raw, r.reason, index=r.index) for r in bad]
    if len(out.dead) > 1:
        out.dead.sort(key=lambda d: d["index"])
    if not good:
        return out
    out.company_id = good[0][3]
    out.events = [item for _, item, _, _ in good]
    if not out.dead:
        body = raw.strip()
        out.raw_elements = body[1:-1] if parsed.packed else body
    for _, item, ev, _ in good:
        home = guest_home(ev) if ev is not None else None  # fast-accepted: activity, never an invite
        if home is not None:
            out.derived.append((home, derived_trial(item, home)))
    return out


def _encodable(value: Any) -> bool:
    """Whether a rejected element can be kept in its dead letter as JSON (at most an event's size)."""
    try:
        return len(orjson.dumps(value)) <= MAX_EVENT_BYTES
    except (TypeError, orjson.JSONEncodeError):
        return False


def _route_control(ctl: dict, src: Source) -> Routed:
    """A close or estimate marker of a month in the accepted range, or a dead letter for any other
    control message."""
    kind = ctl.get(CONTROL_KEY)
    if kind in (CLOSE_MONTH, ESTIMATE_MONTH):
        try:
            Month.parse(ctl.get("month"))
        except ValueError as exc:
            return Routed(dead=[src.dead(ctl, f"malformed {kind} control message: {exc}")])
        if kind == CLOSE_MONTH:
            return Routed(control=ctl)
        if all(isinstance(ctl.get(k), str) for k in ("estimate_id", "as_of")):
            return Routed(control=ctl)
    return Routed(dead=[src.dead(ctl, f"unknown or malformed control message {str(ctl.get(CONTROL_KEY))[:80]!r}")])


def pack(events: list[dict], max_events: int = MAX_PACK_EVENTS, max_bytes: int = MAX_PACK_BYTES) -> list[bytes]:
    """One company's events as JSON arrays of bounded size."""
    out: list[bytes] = []
    if not events:
        return out
    if len(events) <= max_events:
        value = orjson.dumps(events)
        if len(value) <= max_bytes:
            return [value]
    chunk: list[bytes] = []
    size = 2
    for ev in events:
        enc = orjson.dumps(ev)
        if chunk and (len(chunk) >= max_events or size + len(enc) + 1 > max_bytes):
            out.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 2
        chunk.append(enc)
        size += len(enc) + 1
    if chunk:
        out.append(b"[" + b",".join(chunk) + b"]")
    return out


class Packer:
    """Accepted events of one batch, per company, as routed messages: JSON arrays of bounded size.

    `add_raw` takes a message's accepted elements as bytes (`Routed.raw_elements`): no re-encoding;
    `add` takes decoded elements (derived events, partly rejected messages)."""

    __slots__ = ("max_events", "max_bytes", "groups")

    def __init__(self, max_events: int = MAX_PACK_EVENTS, max_bytes: int = MAX_PACK_BYTES):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.groups: dict[str, list] = {}  # company -> [[parts], events, bytes] of the open chunk, done chunks...

    def add_raw(self, company_id: str, elements: bytes, count: int) -> None:
        if count > 1 and (count > self.max_events or len(elements) + 2 > self.max_bytes):
            self.add(company_id, orjson.loads(b"[" + elements + b"]"))  # split element by element
            return
        chunks = self.groups.get(company_id)
        if chunks is None:
            chunks = self.groups[company_id] = [[[], 0, 2]]
        cur = chunks[-1]
        if cur[1] and (cur[1] + count > self.max_events or cur[2] + len(elements) + 1 > self.max_bytes):
            cur = [[], 0, 2]
            chunks.append(cur)
        cur[0].append(elements)
        cur[1] += count
        cur[2] += len(elements) + 1

    def add(self, company_id: str, events: list[dict]) -> None:
        for ev in events:
            self.add_raw(company_id, orjson.dumps(ev), 1)

    def drain(self) -> list[tuple[str, bytes]]:
        """(company, routed message) in order of first appearance; empties the packer."""
        out = [(cid, b"[" + b",".join(c[0]) + b"]") for cid, chunks in self.groups.items() for c in chunks if c[1]]
        self.groups = {}
        return out
