"""Hostile input for the tests: one poison message per class the contract refuses, and a seeded
mutator that turns good events into the messages a hostile publisher or a broken client sends.

`poison(event)` gives the classes as named messages built around one good event (so each is "the
same event, broken one way"); `Mutator(events, seed)` yields endless mutated messages: broken
bytes, fields set to hostile values, fields removed, deep or huge extras, duplicate keys
(spelled alike or through \\u escapes), packs mixing good, bad and foreign events, and messages
that are not events at all. Nothing here validates: the code under test judges.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

# Values a hostile publisher puts into fields: wrong types, edges, controls, host zones, extremes.
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63 - 1, -(2**63), 1e308, -0.0, 3.5, "", " ", "x" * 200, "e" * 129,
    [], {}, [[[]]], {"a": {"b": [1]}}, ["login"], {"type": "login"}, "\n", "a\nb", "\u202e", "\x00", "\x1b[2J",
    "\ufeff", "\u2028", "2026-10-02T08:14:03", "2026-10-02T08:14:03+25:00", "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2099-12-31T23:59:59Z",
    "2026-1０-02T08:14:03Z", "localtime", "right/Europe/Amsterdam", "posix/Europe/Amsterdam", "Factory",
    "Europe/Amsterdam", "Mars/Base", "NaN", "Infinity", "-8.00", "=HYPERLINK(\"x\")", "evil", "c-00001",
    "ac me", "a" * 65, "premium", "card", "visa", "0000-01", "9999-12-31", "2000-01-01", "web", "fax",
]  # fmt: skip
FIELDS = [
    "event_id", "type", "occurred_at", "company_id", "user_id", "schema_version", "source", "channel",
    "employment", "timezone", "plan", "last_trial_day", "guest_home_company_id", "po_number", "payment_method",
    "card_brand", "billing_country", "away_from_desk_pct", "hourly_paid", "techsoup_token", "organization_type",
    "name", "extra",
]  # fmt: skip
TYPES = ["login", "visit", "company_registered", "invite", "teleport", "", "LOGIN", "trial_started", "deactivate"]


def nested(depth: int) -> bytes:
    """A JSON value `depth` levels of objects deep (as bytes: orjson writes at most 254 levels)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def with_extra(ev: dict, value: bytes) -> bytes:
    """The event's JSON with one more member, `"extra": <value>` (value as raw JSON bytes)."""
    return orjson.dumps(ev)[:-1] + b',"extra":' + value + b"}"


def _pack_of_two(ev: dict, other: str) -> bytes:
    return orjson.dumps([ev, ev | {"company_id": other, "event_id": f"{ev.get('event_id')}-x"}])


def _host_zone(ev: dict, other: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{ev.get('event_id')}-tz",
            "type": "company_registered",
            "occurred_at": ev.get("occurred_at", "2026-10-02T08:14:03Z"),
            "company_id": ev.get("company_id", "acme"),
            "timezone": "right/Europe/Amsterdam",
        }
    )


def _appended(member: bytes):
    """A class: the event's JSON with one more raw member (for duplicate keys)."""
    return lambda ev, other: orjson.dumps(ev)[:-1] + b"," + member.replace(b"OTHER", other.encode()) + b"}"


def _with(**fields):
    return lambda ev, other: orjson.dumps(ev | fields)


# class name -> how to build it around a good event (and another company's id)
POISON_CLASSES = {
    "not_json": lambda ev, other: orjson.dumps(ev)[:30],
    "empty_message": lambda ev, other: b"",
    "null": lambda ev, other: b"null",
    "not_an_object": lambda ev, other: b'"login"',
    "empty_array": lambda ev, other: b"[]",
    "unknown_type": _with(type="teleport"),
    "unhashable_type": _with(type=["login"]),
    "object_type": _with(type={"login": 1}),
    "missing_field": lambda ev, other: orjson.dumps({k: v for k, v in ev.items() if k != "occurred_at"}),
    "naive_timestamp": _with(occurred_at="2026-10-02T08:14:03"),
    "out_of_range_late": _with(occurred_at="9999-12-31T23:59:59-05:00"),
    "out_of_range_early": _with(occurred_at="0001-01-01T00:00:00+05:00"),
    "control_character": _with(event_id="x\ntotal USD 0.00"),
    "bidi_override": _with(event_id="abc\u202edef"),
    "event_id_too_long": _with(event_id="e" * 129),
    "duplicate_key": _appended(b'"company_id":"OTHER"'),
    "escaped_duplicate_key": _appended(b'"\\u0063ompany_id":"OTHER"'),
    "too_deep": lambda ev, other: with_extra(ev, nested(300)),
    "deeper_than_orjson": lambda ev, other: with_extra(ev, b"[" * 1100 + b"]" * 1100),
    "too_large": _with(extra="x" * 70_000),
    "mixed_pack": _pack_of_two,
    "host_zone": _host_zone,
    "bad_close_marker": lambda ev, other: orjson.dumps({"seatledger_control": "close_month", "month": "9999-12"}),
    "unknown_control": lambda ev, other: orjson.dumps({"seatledger_control": ["close_month"]}),
}


def poison(ev: dict, other_company: str = "evil") -> dict[str, bytes]:
    """One message per class of "What bad input gets", each built around the good event `ev`."""
    return {name: make(ev, other_company) for name, make in POISON_CLASSES.items()}


class Mutator:
    """Seeded, endless hostile messages made from `events` (good messages, as JSON objects: the
    contract's events by default; `fields` names the fields worth breaking, e.g. a snapshot's)."""

    def __init__(self, events: list[dict], seed: int, fields: list[str] | None = None):
        self.events = events
        self.rng = random.Random(seed)
        self.by_company: dict[Any, list[dict]] = {}
        for e in events:
            self.by_company.setdefault(e.get("company_id"), []).append(e)
        self.companies = sorted(str(c) for c in self.by_company)
        self.fields = fields or FIELDS

    def __iter__(self) -> Iterator[bytes]:
        kinds = [
            self.flip_bytes, self.set_field, self.set_field, self.drop_field, self.set_type, self.poison_class,
            self.duplicate_key, self.deep_extra, self.pack, self.pack, self.not_an_event, self.foreign_id,
        ]  # fmt: skip
        while True:
            raw = self.rng.choice(kinds)()
            yield raw.replace(b"\n", b" ")  # one message per NDJSON line for the batch reader too

    def event(self) -> dict:
        return dict(self.rng.choice(self.events))

    def mutated(self) -> dict:
        """An event with one field set to a hostile value (or removed)."""
        ev = self.event()
        field = self.rng.choice(self.fields)
        if self.rng.random() < 0.2:
            ev.pop(field, None)
        else:
            ev[field] = self.rng.choice(HOSTILE_VALUES)
        return ev

    def flip_bytes(self) -> bytes:
        raw = bytearray(orjson.dumps(self.event()))
        for _ in range(self.rng.randint(1, 3)):
            if not raw:
                break
            op = self.rng.random()
            i = self.rng.randrange(len(raw))
            if op < 0.4:
                raw[i] = self.rng.randrange(256)
            elif op < 0.7:
                raw[i:i] = bytes([self.rng.randrange(256)])
            elif op < 0.85:
                del raw[i : i + self.rng.randint(1, 8)]
            else:
                del raw[i:]
        return bytes(raw)

    def set_field(self) -> bytes:
        return orjson.dumps(self.mutated())

    def drop_field(self) -> bytes:
        ev = self.event()
        ev.pop(self.rng.choice(list(ev)), None)
        return orjson.dumps(ev)

    def set_type(self) -> bytes:
        return orjson.dumps(self.event() | {"type": self.rng.choice(TYPES + [["login"], {"t": 1}, 7, None])})

    def poison_class(self) -> bytes:
        make = self.rng.choice(list(POISON_CLASSES.values()))
        return make(self.event(), self.rng.choice(self.companies))

    def duplicate_key(self) -> bytes:
        ev = self.event()
        key = self.rng.choice(list(ev))
        spelled = key if self.rng.random() < 0.5 else "\\u00" + format(ord(key[0]), "02x") + key[1:]
        value = orjson.dumps(self.rng.choice(HOSTILE_VALUES + [ev[key]]))
        return orjson.dumps(ev)[:-1] + b',"' + spelled.encode() + b'":' + value + b"}"

    def deep_extra(self) -> bytes:
        depth = self.rng.choice([30, 31, 32, 33, 64, 253, 300])
        return with_extra(self.event(), nested(depth))

    def pack(self) -> bytes:
        """A JSON array of 1-6 elements: good events of one company, mutated ones, foreign ones."""
        first = self.event()
        same = self.by_company[first.get("company_id")]
        items: list[Any] = [first]
        for _ in range(self.rng.randint(0, 5)):
            r = self.rng.random()
            if r < 0.5:
                items.append(dict(self.rng.choice(same)))
            elif r < 0.8:
                items.append(self.mutated())
            elif r < 0.9:
                items.append(self.event())  # perhaps another company: a mixed pack
            else:
                items.append(self.rng.choice(HOSTILE_VALUES))
        self.rng.shuffle(items)
        return orjson.dumps(items)

    def not_an_event(self) -> bytes:
        return self.rng.choice(
            [b"", b" ", b"null", b"[]", b"[[]]", b"{}", b"7", b'"x"', b"\xef\xbb\xbf{}", b"[null, 1]", b'{"a":1,}']
            + [orjson.dumps({"seatledger_control": self.rng.choice(HOSTILE_VALUES), "month": "2026-1O"})]
        )

    def foreign_id(self) -> bytes:
        """The same message for a company nobody registered (for events: reusing another company's
        event_id, perhaps at the first instant the contract accepts)."""
        ev = self.event() | {"company_id": "evil"}
        if "occurred_at" in ev and self.rng.random() < 0.5:
            ev["occurred_at"] = "2000-01-01T00:00:00Z"
        return orjson.dumps(ev)
