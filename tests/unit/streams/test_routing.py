"""streams.routing: home partitions, control messages, dead letters, one message's split."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import orjson
import pytest

from schemas.control import close_marker, parse_control
from schemas.decode import decode_message
from streams.routing import derived_trial, home_partition, pack, reason_class, route_message

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


def test_fast_timestamp_equals_the_contract_parser():
    import random as _r

    from projections.calendar import to_us
    from schemas.events import parse_rfc3339
    from streams.routing import fast_ts_us

    rng = _r.Random(4)
    values = [
        "2026-10-02T08:14:03Z", "2026-10-02t08:14:03z", "2026-10-02 08:14:03Z", "2024-02-29T23:59:59Z",
        "2023-02-29T10:00:00Z", "2026-13-01T00:00:00Z", "2026-10-02T24:00:00Z", "2026-10-02T23:60:00Z",
        "2026-10-02T23:59:60Z", "2026-10-02T08:14:03+00:00", "2026-10-02T08:14:03.5Z", "2026-10-0２T08:14:03Z",
        "2026-10-02T08:14:0３Z", "2026-10-02T08:14:03", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
        "2026-1O-02T08:14:03Z", "+026-10-02T08:14:03Z", "2026-10-02T 8:14:03Z", "2026-10-02T08:14:03+02:00",
        "2026-10-02T08:14:03-07:00", "2026-10-02T08:14:03-00:00", "2026-10-02T08:14:03+23:59",
        "2026-10-02T08:14:03+24:00", "2026-10-02T08:14:03+05:60", "2026-10-02T08:14:03+0530", "2026-10-02T08:14:03*05:30",
        "2026-10-02T08:14:03+0５:30", "2026-01-01T00:30:00+05:45", "2026-12-31T23:30:00-12:00",
    ]  # fmt: skip
    values += [
        f"{rng.randrange(1900, 2100):04d}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 33):02d}T"
        f"{rng.randrange(0, 26):02d}:{rng.randrange(0, 62):02d}:{rng.randrange(0, 62):02d}"
        + rng.choice(["Z", "z", f"{rng.choice('+-')}{rng.randrange(0, 26):02d}:{rng.randrange(0, 62):02d}"])
        for _ in range(6000)
    ]
    fast_hits = 0
    for v in values:
        got = fast_ts_us(v)
        try:
            want = to_us(parse_rfc3339(v))
        except ValueError:
            want = None
        if got is not None:
            fast_hits += 1
            assert got == want, v  # the fast path never accepts what the contract refuses
    assert fast_hits > 1000


def test_fast_accept_is_a_subset_of_the_contract():
    from devtools.workload import iter_events
    from schemas.decode import EventRejected, validate_event
    from streams.routing import fast_accept

    base = ev(1, kind="visit", channel="web")
    variants = [
        base, {**base, "channel": "fax"}, {**base, "channel": None}, {k: v for k, v in base.items() if k != "channel"},
        {**base, "type": "notification_view", "channel": None}, {**base, "type": "notification_view"},
        {**base, "type": "notification_view", "channel": "pager"}, {**base, "type": "login", "channel": "fax"},
        {**base, "schema_version": 1}, {**base, "schema_version": True}, {**base, "schema_version": 2},
        {**base, "schema_version": "1"}, {**base, "source": None}, {**base, "source": 3}, {**base, "extra": [1]},
        {**base, "user_id": ""}, {**base, "user_id": "u" * 65}, {**base, "user_id": "u" * 64}, {**base, "user_id": "a b"},
        {**base, "user_id": "a\n"}, {**base, "company_id": 5}, {**base, "event_id": ""}, {**base, "event_id": "e" * 129},
        {**base, "event_id": "e" * 128}, {**base, "occurred_at": "2026-10-02T08:14:03"}, {**base, "type": "teleport"},
        {**base, "type": "deactivate"}, {k: v for k, v in base.items() if k != "user_id"}, ["not", "a", "dict"],
    ]  # fmt: skip
    variants += list(iter_events(3, 60, "2026-10", seed=2))
    fast = 0
    for item in variants:
        cid = fast_accept(item)
        try:
            model = validate_event(item)
        except EventRejected:
            model = None
        if cid is not None:
            fast += 1
            assert model is not None and model.company_id == cid, item
    assert fast > 50


def test_route_fast_and_slow_paths_agree_and_forward_the_bytes_as_published():
    from streams.routing import Packer

    acts = [ev(i, kind="visit", channel="web", note=" spaced ") for i in range(5)]
    raw = b"  [ " + b" , ".join(orjson.dumps(e) for e in acts) + b" ]\n"
    r = route(raw)
    assert r.events == acts and r.company_id == "acme" and not r.dead
    assert orjson.loads(b"[" + r.raw_elements + b"]") == acts
    mixed = [*acts, ev(9, kind="deactivate")]  # not all activity: the pydantic path
    r2 = route(orjson.dumps(mixed))
    assert r2.events == mixed and orjson.loads(b"[" + r2.raw_elements + b"]") == mixed
    r3 = route(orjson.dumps([acts[0], ev(1, company="other")]))  # partly rejected: no raw bytes
    assert r3.raw_elements is None and r3.events == [acts[0]]
    p = Packer(max_events=4, max_bytes=10_000)
    p.add_raw("acme", r.raw_elements, 5)
    p.add("acme", r3.events)
    p.add("zeta", [ev(1, company="zeta")])
    out = p.drain()
    assert [c for c, _ in out] == ["acme", "acme", "zeta"]
    assert [e for c, v in out if c == "acme" for e in orjson.loads(v)] == [*acts, acts[0]]
    assert all(len(orjson.loads(v)) <= 4 for _, v in out)
    assert p.drain() == []


# Hostile input (issue 10) ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [["login"], {"login": 1}, 7, None, True])
def test_fast_accept_never_raises_on_a_type_that_is_not_a_string(kind):
    from streams.routing import fast_accept

    assert fast_accept(ev(1) | {"type": kind}) is None


def test_an_element_with_an_object_type_is_a_dead_letter_and_its_neighbours_go_on():
    bad = ev(2) | {"type": {"login": 1}}
    r = route(orjson.dumps([ev(1), bad, ev(3)]))
    assert r.events == [ev(1), ev(3)]
    assert [(d["index"], d["error"], d["reason_class"]) for d in r.dead] == [
        (1, "unknown event type {'login': 1}", "unknown_type")
    ]


def test_fast_accept_refuses_what_the_new_rules_refuse():
    from streams.routing import fast_accept, fast_ts_us

    assert fast_accept(ev(1)) == "acme"
    for hostile in (
        {"event_id": "a\nb"}, {"event_id": "a\u202eb"}, {"occurred_at": "1999-12-31T23:59:59Z"},
        {"occurred_at": "2100-01-01T00:00:00Z"}, {"occurred_at": "9999-12-31T23:59:59-05:00"}, {"source": "s" * 129},
    ):  # fmt: skip
        assert fast_accept(ev(1) | hostile) is None, hostile
    assert fast_ts_us("1999-12-31T23:59:59Z") is None and fast_ts_us("2099-12-31T23:59:59Z") is not None


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("too_large", "too_large"), ("too_deep", "too_deep"), ("deeper_than_orjson", "too_deep"),
        ("duplicate_key", "duplicate_key"), ("escaped_duplicate_key", "duplicate_key"),
        ("control_character", "control_character"), ("out_of_range_late", "out_of_range"),
        ("out_of_range_early", "out_of_range"), ("host_zone", "invalid_value"), ("unhashable_type", "unknown_type"),
        ("bad_close_marker", "bad_control"), ("unknown_control", "missing_field"), ("null", "not_an_object"),
    ],
)  # fmt: skip
def test_each_poison_class_is_one_dead_letter_with_its_class(name, cls):
    from tests.support.hostile import poison

    r = route(poison(ev(1))[name])
    assert not r.events and r.control is None and len(r.dead) == 1
    assert r.dead[0]["reason_class"] == cls, r.dead[0]["error"]


def test_a_dead_letter_keeps_at_most_64_kib_of_a_huge_message():
    raw = b"{" + b"x" * 2_000_000
    d = route(raw).dead[0]
    assert d["reason_class"] == "not_json" and d["original_size"] == len(raw)
    assert len(d["original"]) == 64 * 1024 and len(__import__("base64").b64decode(d["original_b64"])) == 64 * 1024


def test_a_single_event_refused_by_a_limit_keeps_its_bytes_in_the_dead_letter():
    raw = orjson.dumps(ev(1))[:-1] + b',"company_id":"evil"}'
    d = route(raw).dead[0]
    assert d["reason_class"] == "duplicate_key" and d["original"] == raw.decode()
    assert __import__("base64").b64decode(d["original_b64"]) == raw


def test_a_message_whose_routing_fails_is_a_dead_letter_not_a_lost_message(monkeypatch):
    import streams.routing as routing

    def broken(raw, src):
        raise RuntimeError("boom")

    monkeypatch.setattr(routing, "_route", broken)
    r = route(orjson.dumps(ev(1)))
    assert not r.events and [d["error"] for d in r.dead] == ["could not be validated: RuntimeError: boom"]
