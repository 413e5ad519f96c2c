"""The fast path for the bulk of the traffic (activity events), exact by construction.

`fast_accept` vouches for an activity event the contract certainly accepts without pydantic, and
`fast_ts_us` parses its timestamp; both are a strict subset of `schemas.decode.validate_event` and
`schemas.events.parse_rfc3339` (anything they are unsure of goes the slow way, which gives the
verdict and the error text), pinned to them by tests/unit/streams/test_routing.py. The router and
the batch reader and archive writer use them through `schemas.decode.accept(items, fast_accept)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, get_args

from schemas.events import EARLIEST, LATEST, Employment, RoleCategory

_EPOCH = date(1970, 1, 1)
EARLIEST_US = ((EARLIEST.date() - _EPOCH).days) * 86_400_000_000
LATEST_US = ((LATEST.date() - _EPOCH).days) * 86_400_000_000


# The rules of the fast path, as data: `fast_accept` applies them in Python and the batch reader's
# SQL lane (replay.ndjson_sql) in DuckDB, so the two cannot drift.
IDENT_CHARS = "A-Za-z0-9._:-"  # company_id, user_id (schemas.events.Identifier)
MAX_IDENT = 64
IDENT_PATTERN = f"[{IDENT_CHARS}]{{1,{MAX_IDENT}}}"
MAX_EVENT_ID = 128  # characters of an event_id (schemas.events.EventId)
MAX_SOURCE = 128  # characters of `source`
# The two forms `fast_ts_us` reads: YYYY-MM-DDTHH:MM:SSZ and YYYY-MM-DDTHH:MM:SS+HH:MM (ASCII digits),
# with the clock and the offset in range (hours to 23, minutes and seconds to 59); the date's own
# validity (a 30 February) is left to the parser.
_HOUR, _SIXTY = "(?:[01][0-9]|2[0-3])", "[0-5][0-9]"
FAST_TS_PATTERN = rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[Tt ]{_HOUR}:{_SIXTY}:{_SIXTY}(?:[Zz]|[+-]{_HOUR}:{_SIXTY})"

_ASCII_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ASCII_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_IDENT = re.compile(IDENT_PATTERN)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS: dict[str, int] = {}
_SECS: dict[str, int] = {}


def fast_ts_us(value: str) -> int | None:
    """`to_us(parse_rfc3339(value))` for the common forms `YYYY-MM-DDTHH:MM:SSZ` and
    `YYYY-MM-DDTHH:MM:SS+HH:MM` (ASCII digits) within the accepted range, or None when the value
    has any other form or lies outside the range; then the
    caller uses the full parser (same judgement, same value: this only accepts what `parse_rfc3339`
    accepts, checked in tests/unit/streams/test_routing.py)."""
    if value is _LAST[0]:  # the same string again (fast_accept, then the row built from the event)
        return _LAST[1]
    us = _parse_us(value)
    _LAST[0], _LAST[1] = value, us
    return us


_LAST: list[Any] = [None, None]


def _parse_us(value: str) -> int | None:
    n = len(value)
    if n == 20:
        if value[19] not in "Zz":
            return None
        off = 0
    elif n == 25:
        sign = value[19]
        if (sign != "+" and sign != "-") or value[22] != ":":
            return None
        oh, om = value[20:22], value[23:25]
        if not (oh.isascii() and oh.isdigit() and om.isascii() and om.isdigit()):
            return None
        h, m = int(oh), int(om)
        if h > 23 or m > 59:
            return None
        off = (h * 3600 + m * 60) * (1 if sign == "+" else -1)
    else:
        return None
    if value[10] not in "Tt ":
        return None
    day = value[:10]
    d = _DAYS.get(day)
    if d is None:
        if not _ASCII_DATE.fullmatch(day):
            return None
        try:
            d = date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        _DAYS[day] = d
    hms = value[11:19]
    s = _SECS.get(hms)
    if s is None:
        if not _ASCII_TIME.fullmatch(hms):
            return None
        h, m, sec = int(hms[0:2]), int(hms[3:5]), int(hms[6:8])
        if h > 23 or m > 59 or sec > 59:
            return None
        s = _SECS[hms] = h * 3600 + m * 60 + sec
    us = (d * 86_400 + s - off) * 1_000_000
    return us if EARLIEST_US <= us < LATEST_US else None


# kind -> how its `channel` field is checked: None (not a field of the kind: an extra, any value),
# "required" (Visit) or "optional" (NotificationView: may be null or absent).
FAST_KINDS: dict[str, str | None] = {
    "login": None,
    "chat_use": None,
    "admin_panel_use": None,
    "push_notification_received": None,
    "email_notification_received": None,
    "visit": "required",
    "notification_view": "optional",
}
CHANNELS = ("web", "mobile")


@dataclass(frozen=True, slots=True)
class FieldForm:
    """The JSON form of a kind's own field that the batch reader's SQL lane accepts: "enum" (one of
    `values`), "ident" (an identifier string), "percent" (an integer 0..100 written plainly), "bool".
    A field set to JSON null is left to the Python path (DuckDB's `from_json` reads it as absent,
    so the line's length gives it away)."""

    form: str
    values: tuple[str, ...] = ()


# Account kinds the SQL lane reads too (the bulk of the non-activity lines): kind -> its own fields
# beyond the envelope and their forms, as in schemas.events (tests/unit/schemas/test_fast_rules.py
# holds the two together; the enum values come from the contract's Literal types). Every field is
# optional; anything else on such a line (company kinds, packs, extras) goes the Python way.
ACCOUNT_KINDS: dict[str, dict[str, FieldForm]] = {
    "account_provisioned": {"employment": FieldForm("enum", get_args(Employment))},
    "invite": {"guest_home_company_id": FieldForm("ident")},
    "claim": {},
    "deactivate": {},
    "reactivate": {},
    "profile_update": {
        "employment": FieldForm("enum", get_args(Employment)),
        "away_from_desk_pct": FieldForm("percent"),
        "hourly_paid": FieldForm("bool"),
        "has_email": FieldForm("bool"),
        "role_category": FieldForm("enum", get_args(RoleCategory)),
    },
}


def fast_accept(item: Any) -> str | None:
    """The company id of an activity event that `validate_event` certainly accepts, else None.

    A strict subset of the contract, checked field by field like the pydantic models do (StrictStr,
    lengths, printable event ids, the identifier pattern, RFC 3339 within the accepted range via
    `fast_ts_us`, `schema_version` 1, `source` length, channels); extra fields are allowed by the
    contract. None means only "not sure": the caller validates with pydantic, which gives the
    verdict and the error text. Never raises, whatever the JSON value.
    """
    if type(item) is not dict:
        return None
    kind = item.get("type")
    if type(kind) is not str:  # a list or an object is unhashable: no dict lookup with it
        return None
    chan = FAST_KINDS.get(kind, "-")
    if chan == "-":
        return None
    eid = item.get("event_id")
    # isprintable() refuses every character of the contract's control class (and more: then pydantic decides)
    if type(eid) is not str or not 0 < len(eid) <= MAX_EVENT_ID or not eid.isprintable():
        return None
    ts = item.get("occurred_at")
    if type(ts) is not str or fast_ts_us(ts) is None:
        return None
    cid = item.get("company_id")
    uid = item.get("user_id")
    if type(cid) is not str or type(uid) is not str or not _IDENT.fullmatch(cid) or not _IDENT.fullmatch(uid):
        return None
    if len(item) > 5:
        if "schema_version" in item:
            v = item["schema_version"]
            if type(v) is not int or v != 1:
                return None
        if "source" in item:
            v = item["source"]
            if v is not None and (type(v) is not str or len(v) > MAX_SOURCE):
                return None
        if chan is not None and "channel" in item:
            v = item["channel"]
            if not ((type(v) is str and v in CHANNELS) or (v is None and chan == "optional")):
                return None
    if chan == "required" and "channel" not in item:
        return None
    return cid
