"""streams.routing: home partitions, control messages, dead letters, one message's split."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import orjson
import pytest

from schemas.decode import decode_message
from streams.routing import (
    close_marker,
    derived_trial,
    home_partition,
    pack,
    parse_control,
    reason_class,
    route_message,
)

NOW = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)


def ev(i: int, company: str = "acme", kind: str = "login", **extra) -> dict:
    base = {"event_id": f"e-{company}-{i}", "type": kind, "occurred_at": "2026-10-02T08:14:03Z", "company_id": company}
    if kind not in ("company_registered", "plan_changed", "trial_started"):
        base["user_id"] = f"u-{i}"
    return base | extra


def route(raw: bytes):
    return route_message(raw, topic="t", partition=2, offset=41, now=NOW)


def test_home_partition_is_crc32_and_stable():
    assert home_partition("acme", 8) == zlib.crc32(b"acme") % 8
    assert [home_partition(f"c-{i:05d}", 4) for i in range(6)] == [home_partition(f"c-{i:05d}", 4) for i in range(6)]
    assert {home_partition(f"c-{i:05d}", 4) for i in range(200)} == {0, 1, 2, 3}


def test_close_marker_is_control_and_never_an_event():
    raw = orjson.dumps(close_marker("2026-10", "abc", 4))
    assert parse_control(raw)["month"] == "2026-10"
    good, bad = decode_message(raw)
    assert good == [] and bad  # no `type`: never mistaken for an event
    r = route(raw)
    assert r.control is not None and not r.events and not r.dead


def test_event_is_not_control():
    assert parse_control(orjson.dumps(ev(1))) is None
    assert parse_control(b"not json seatledger_control") is None


def test_good_single_and_packed():
    r = route(orjson.dumps(ev(1)))
    assert r.company_id == "acme" and r.events == [ev(1)] and not r.dead
    r = route(orjson.dumps([ev(1), ev(2)]))
    assert r.events == [ev(1), ev(2)]


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        (b"{nope", "not_json"),
        (b"[]", "empty_array"),
        (orjson.dumps({k: v for k, v in ev(1).items() if k != "event_id"}), "missing_field"),
        (orjson.dumps(ev(1, kind="teleport")), "unknown_type"),
        (orjson.dumps(ev(1, occurred_at="2026-10-02T08:14:03")), "bad_timestamp"),
        (orjson.dumps(ev(1, kind="plan_changed", plan="premium") | {"user_id": "u"}), "user_id_forbidden"),
        (orjson.dumps({k: v for k, v in ev(1).items() if k != "user_id"}), "user_id_missing"),
        (orjson.dumps(ev(1, kind="visit", channel="fax")), "bad_value"),
    ],
)
def test_each_rejection_class(raw, cls):
    r = route(raw)
    assert not r.events and len(r.dead) == 1
    d = r.dead[0]
    assert d["reason_class"] == cls, d["error"]
    assert reason_class(d["error"]) == cls
    assert d["rejected_at"].startswith("2026-11-02T03:04:05")
    assert d["source"] == {"topic": "t", "partition": 2, "offset": 41}
    if cls in ("not_json", "empty_array"):
        assert d["original"] == raw.decode() and d["original_b64"]
    else:
        assert d["original"] == orjson.loads(raw)


def test_bad_element_does_not_take_its_neighbours():
    bad = ev(2, occurred_at="yesterday")
    r = route(orjson.dumps([ev(1), bad, ev(3)]))
    assert r.events == [ev(1), ev(3)]
    assert [(d["index"], d["original"]) for d in r.dead] == [(1, bad)]


def test_mixed_companies_rejects_the_later_company_with_its_index():
    other = ev(3, company="globex")
    r = route(orjson.dumps([ev(1, occurred_at="bad"), ev(2), other, ev(4)]))
    assert r.company_id == "acme" and r.events == [ev(2), ev(4)]
    assert sorted((d["index"], d["reason_class"]) for d in r.dead) == [(0, "bad_timestamp"), (2, "mixed_companies")]
    assert next(d for d in r.dead if d["index"] == 2)["original"] == other


def test_guest_invite_derives_a_trial_for_the_home_company():
    inv = ev(5, kind="invite", guest_home_company_id="globex")
    r = route(orjson.dumps(inv))
    assert r.events == [inv]
    assert r.derived == [("globex", derived_trial(inv, "globex"))]
    d = r.derived[0][1]
    assert d["event_id"] == f"derived-trial:{inv['event_id']}" and d["source"] == "seatledger.R5"
    assert d["guest_of"] == "acme" and d["occurred_at"] == inv["occurred_at"] and "user_id" not in d
    from schemas.decode import validate_event

    validate_event(d)  # a valid contract event
    # an invite naming its own company is no guest
    assert route(orjson.dumps(ev(6, kind="invite", guest_home_company_id="acme"))).derived == []


def test_pack_bounds():
    evs = [ev(i) for i in range(25)]
    assert pack(evs) == [orjson.dumps(evs)]
    chunks = pack(evs, max_events=10)
    assert [len(orjson.loads(c)) for c in chunks] == [10, 10, 5]
    assert [e for c in chunks for e in orjson.loads(c)] == evs
    small = pack(evs, max_bytes=400)
    assert all(len(c) <= 400 for c in small) and [e for c in small for e in orjson.loads(c)] == evs
