"""The contract's limits, each refused with the exact words docs/contract.md promises: size,
depth, duplicate keys, control characters in ids, the occurred_at range, canonical zones from the
shipped tzdata, mixed packs. Every reader judges through these functions (schemas.decode)."""

from __future__ import annotations

import orjson
import pytest

from schemas.decode import MAX_EVENT_BYTES, TOO_DEEP, decode_message, parse_message
from schemas.timezones import ZONE_NAMES, load_zone
from tests.support.hostile import nested, with_extra
from tests.unit.schemas.test_contract import event


def reasons(raw: bytes) -> list[tuple[int, str]]:
    good, bad = decode_message(raw)
    return [(r.index, r.reason) for r in bad]


def reason_for(raw: bytes | dict) -> str:
    raw = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    good, bad = decode_message(raw)
    assert not good and len(bad) == 1, (good, bad)
    return bad[0].reason


# Size -------------------------------------------------------------------------------------------


def test_an_event_over_64_kib_of_json_is_refused_with_its_size():
    ev = event(note="")
    room = MAX_EVENT_BYTES - len(orjson.dumps(ev))
    assert decode_message(orjson.dumps(event(note="x" * room)))[0]  # exactly 65,536 bytes: accepted
    raw = orjson.dumps(event(note="x" * (room + 1)))
    assert reason_for(raw) == "the event is 65,537 bytes of JSON; an event is at most 65,536 bytes (64 KiB)"


def test_a_large_pack_of_small_events_is_fine_and_a_large_element_goes_alone():
    small = [event(event_id=f"e{i}", note="y" * 500) for i in range(300)]  # ~170 KB in all
    big = event(event_id="big", note="x" * 70_000)
    good, bad = decode_message(orjson.dumps([*small[:150], big, *small[150:]]))
    assert len(good) == 300
    size = len(orjson.dumps(big))
    assert [(r.index, r.reason.split(";")[0]) for r in bad] == [(150, f"the event is {size:,} bytes of JSON")]


# Depth ------------------------------------------------------------------------------------------


def test_32_levels_are_accepted_and_33_refused():
    assert decode_message(with_extra(event(), nested(31)))[0]  # the event is level 1
    assert reason_for(with_extra(event(), nested(32))) == TOO_DEEP
    assert TOO_DEEP == "the event nests more than 32 levels of JSON objects and arrays; the limit is 32"


def test_300_levels_are_refused_not_a_crash_and_deeper_than_the_parser_too():
    assert reason_for(with_extra(event(), nested(300))) == TOO_DEEP  # orjson parses it, cannot write it back
    assert reason_for(with_extra(event(), b"[" * 1100 + b"]" * 1100)) == TOO_DEEP  # orjson refuses to parse


def test_a_deep_element_of_a_pack_takes_no_neighbour_with_it():
    raw = b"[" + orjson.dumps(event(event_id="a")) + b"," + with_extra(event(event_id="b"), nested(40)) + b"]"
    good, bad = decode_message(raw)
    assert [e.event_id for e in good] == ["a"] and [(r.index, r.reason) for r in bad] == [(1, TOO_DEEP)]


# Duplicate keys ---------------------------------------------------------------------------------


def test_a_key_given_twice_is_refused_wherever_it_is():
    body = orjson.dumps(event())[:-1]
    assert reason_for(body + b',"company_id":"evil"}') == (
        "duplicate key 'company_id' in a JSON object; each key may appear only once"
    )
    assert (
        reason_for(body + b',"x":{"a":1,"a":2}}') == "duplicate key 'a' in a JSON object; each key may appear only once"
    )


def test_a_key_spelled_with_escapes_is_the_same_key():
    body = orjson.dumps(event())[:-1]
    assert "duplicate key 'company_id'" in reason_for(body + b',"\\u0063ompany_id":"evil"}')


def test_the_same_key_in_two_objects_or_two_elements_is_no_duplicate():
    assert decode_message(orjson.dumps(event(a={"x": 1}, b={"x": 2})))[0]
    pack = (
        b"[" + orjson.dumps(event(event_id="a")) + b"," + orjson.dumps(event(event_id="b"))[:-1] + b',"user_id":"v"}]'
    )
    good, bad = decode_message(pack)
    assert [e.event_id for e in good] == ["a"] and [r.index for r in bad] == [1]


def test_colons_in_strings_do_not_fool_the_fast_duplicate_check():
    ev = event(event_id="a:b:c", note='":"', user_id="x:y")
    assert decode_message(orjson.dumps(ev))[0]
    assert decode_message(orjson.dumps(ev)[:-1] + b',"note":"z"}')[1]


# Ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_id", "reason"),
    [
        ("x\ntotal USD 0.00", "control character U+000A at position 1"),
        ("abc\u202edef", "control character U+202E at position 3"),
        ("\x1b[2J", "control character U+001B at position 0"),
        ("a\u2028b", "control character U+2028 at position 1"),
        ("zero\u200bwidth", "control character U+200B at position 4"),
        ("\ufeffbom", "control character U+FEFF at position 0"),
        ("del\x7f", "control character U+007F at position 3"),
    ],
)
def test_control_characters_in_an_event_id_are_refused_and_located(event_id, reason):
    assert (
        reason_for(event(event_id=event_id)) == f"field 'event_id': {reason}; an event_id is 1-128 printable characters"
    )


def test_event_ids_are_1_to_128_printable_characters_of_any_script():
    for ok in ("e" * 128, "événement-1", "事件 7", "a b", "a\u00a0b"):
        assert decode_message(orjson.dumps(event(event_id=ok)))[0], ok
    assert reason_for(event(event_id="e" * 129)) == "field 'event_id': String should have at most 128 characters"
    assert reason_for(event(event_id="")) == "field 'event_id': String should have at least 1 character"


def test_source_is_at_most_128_characters():
    assert reason_for(event(source="s" * 129)) == "field 'source': String should have at most 128 characters"


# occurred_at ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
           "2099-12-31T23:00:00-01:00"],
)  # fmt: skip
def test_instants_outside_2000_to_2100_are_refused(ts):
    assert reason_for(event(occurred_at=ts)) == (
        f"field 'occurred_at': timestamp '{ts}' is outside the accepted range "
        "[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
    )


@pytest.mark.parametrize("ts", ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z", "1999-12-31T23:30:00-01:00"])
def test_the_range_is_of_instants_whatever_the_offset(ts):
    assert decode_message(orjson.dumps(event(occurred_at=ts)))[0]


def test_a_trial_day_outside_the_range_is_refused():
    ev = event(type="trial_started", user_id=None, last_trial_day="9999-12-31")
    assert (
        reason_for(ev)
        == "field 'last_trial_day': date 9999-12-31 is outside the accepted range [2000-01-01, 2099-12-31]"
    )


def test_timestamps_take_ascii_digits_only_and_no_trailing_newline():
    assert "unparsable timestamp" in reason_for(event(occurred_at="2026-1０-02T08:14:03Z"))
    assert "unparsable timestamp" in reason_for(event(occurred_at="2026-10-02T08:14:03Z\n"))


# Zones ------------------------------------------------------------------------------------------


def registered(tz: str) -> dict:
    return event(type="company_registered", user_id=None, timezone=tz)


@pytest.mark.parametrize("tz", ["localtime", "right/Europe/Amsterdam", "posix/Europe/Amsterdam", "posixrules"])
def test_host_aliases_of_zones_are_refused(tz):
    assert reason_for(registered(tz)) == (
        f"field 'timezone': time zone '{tz}' is a host alias, not a canonical IANA name; use a name such as "
        "'Europe/Amsterdam' (localtime, posix/ and right/ are refused)"
    )


@pytest.mark.parametrize("tz", ["Factory", "Mars/Base", "/etc/localtime", "europe/amsterdam", "Europe/Amsterdam "])
def test_names_the_shipped_tzdata_lacks_are_unknown(tz):
    assert "time zone" in reason_for(registered(tz))


@pytest.mark.parametrize(
    "tz", ["UTC", "Europe/Amsterdam", "America/Argentina/Buenos_Aires", "Asia/Kathmandu", "US/Eastern"]
)
def test_zones_of_the_shipped_tzdata_are_accepted_and_loaded_from_it(tz):
    assert decode_message(orjson.dumps(registered(tz)))[0]
    assert tz in ZONE_NAMES and load_zone(tz).key == tz


def test_the_zone_list_is_the_package_s_not_the_host_s():
    assert "localtime" not in ZONE_NAMES and not any(n.startswith(("posix/", "right/")) for n in ZONE_NAMES)
    assert len(ZONE_NAMES) > 500
    with pytest.raises(ValueError):
        load_zone("right/Europe/Amsterdam")


# Whole messages ---------------------------------------------------------------------------------


def test_mixed_packs_keep_the_first_company_only():
    raw = orjson.dumps([event(event_id="a"), event(event_id="b", company_id="evil"), event(event_id="c")])
    assert reasons(raw) == [
        (1, "packed message mixes companies: 'evil' after 'acme'; pack one company's events per message")
    ]


def test_parse_message_reports_which_elements_pass_the_limits():
    raw = b"[" + orjson.dumps(event(event_id="a")) + b"," + with_extra(event(event_id="b"), nested(33)) + b"]"
    parsed = parse_message(raw)
    assert parsed.packed and [i for i, _ in parsed.items] == [0] and [r.index for r in parsed.rejected] == [1]


def test_a_type_that_is_a_list_or_an_object_is_an_unknown_type():
    assert reason_for(event(type=["login"])) == "unknown event type ['login']"
    assert reason_for(event(type={"login": 1})) == "unknown event type {'login': 1}"
