"""The event contract: what publishers may send and the exact words a rejection gives them."""

from __future__ import annotations

import json

import pytest

from schemas import decode_message, validate_event
from schemas.decode import EventRejected
from schemas.jsonschema import SCHEMA_DIR, render_schemas


def event(**overrides) -> dict:
    base = {
        "event_id": "e-1",
        "type": "login",
        "occurred_at": "2026-10-02T08:14:03Z",
        "company_id": "acme",
        "user_id": "u-17",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def reason_for(data) -> str:
    raw = data if isinstance(data, (bytes, str)) else json.dumps(data).encode()
    good, bad = decode_message(raw)
    assert not good, f"expected a rejection, got {good}"
    assert len(bad) == 1
    return bad[0].reason


# The rejection classes of events.md "What bad input gets" ------------------------------------


def test_a_message_that_is_not_json_is_rejected_as_such():
    assert reason_for(b"{not json").startswith("not valid JSON:")


def test_a_missing_required_field_is_named():
    assert reason_for(event(event_id=None)) == "missing required field 'event_id'"
    assert reason_for(event(type="visit")) == "missing required field 'channel'"


def test_an_unknown_type_is_rejected_with_the_type_named():
    assert reason_for(event(type="page_view")) == "unknown event type 'page_view'"


def test_a_missing_type_is_named():
    data = event()
    del data["type"]
    assert reason_for(data) == "missing required field 'type'"


def test_a_naive_timestamp_is_rejected_not_guessed():
    assert reason_for(event(occurred_at="2026-10-02T08:14:03")) == (
        "field 'occurred_at': timestamp '2026-10-02T08:14:03' has no UTC offset; use RFC 3339 with 'Z' or '+HH:MM'"
    )


def test_an_unparsable_timestamp_is_rejected():
    assert reason_for(event(occurred_at="yesterday")) == (
        "field 'occurred_at': unparsable timestamp 'yesterday'; expected RFC 3339 such as 2026-10-02T08:14:03Z"
    )


def test_a_user_id_on_a_company_kind_is_forbidden():
    assert reason_for(event(type="plan_changed", plan="advanced")) == (
        "user_id is forbidden on company event type 'plan_changed'"
    )


def test_an_account_kind_without_user_id_is_rejected():
    assert reason_for(event(user_id=None)) == "missing required field 'user_id' (required for event type 'login')"


def test_a_value_outside_its_allowed_set_is_rejected_with_the_allowed_values():
    assert reason_for(event(type="visit", channel="tv")) == (
        "field 'channel': 'tv' is not allowed; input should be 'web' or 'mobile'"
    )
    assert "input should be 'premium', 'advanced' or 'enterprise'" in reason_for(
        event(type="plan_changed", user_id=None, plan="gold")
    )


def test_identifiers_outside_the_alphabet_are_rejected():
    assert reason_for(event(company_id="ac me")).startswith("field 'company_id': String should match pattern")


def test_an_unknown_time_zone_is_rejected():
    assert reason_for(event(type="company_registered", user_id=None, timezone="Mars/Base")) == (
        "field 'timezone': unknown IANA time zone 'Mars/Base'"
    )


def test_a_card_payment_needs_a_brand_and_unknown_brands_are_rejected():
    billing = {"type": "billing_profile_updated", "user_id": None}
    assert reason_for(event(**billing, payment_method="card")) == "card_brand is required when payment_method is 'card'"
    assert "input should be 'amex', 'visa', 'discover' or 'mastercard'" in reason_for(
        event(**billing, payment_method="card", card_brand="diners")
    )


def test_profile_fields_are_strictly_typed():
    assert reason_for(event(type="profile_update", hourly_paid="yes")) == (
        "field 'hourly_paid': Input should be a valid boolean"
    )
    assert reason_for(event(type="profile_update", away_from_desk_pct=120)) == (
        "field 'away_from_desk_pct': Input should be less than or equal to 100"
    )


def test_an_offset_beyond_a_day_is_rejected_by_name():
    assert reason_for(event(occurred_at="2026-10-02T10:14:03+25:00")) == (
        "field 'occurred_at': timestamp '2026-10-02T10:14:03+25:00' has UTC offset +25:00, out of range (-23:59 to +23:59)"
    )
    assert "out of range" in reason_for(event(occurred_at="2026-10-02T10:14:03-01:60"))
    assert validate_event(event(occurred_at="2026-10-02T10:14:03-23:59")).occurred_at.utcoffset() is not None


def test_an_unsupported_schema_version_is_rejected():
    assert reason_for(event(schema_version=2)) == "field 'schema_version': 2 is not allowed; input should be 1"


@pytest.mark.parametrize(("raw", "shown"), [(b"true", "True"), (b"1.0", "1.0"), (b"1e0", "1.0")])
def test_schema_version_is_a_strict_integer_as_the_json_schema_says(raw, shown):
    # Literal[1] alone took `true` and `1.0` (equal to 1 in Python); the JSON Schema says integer 1
    msg = json.dumps(event()).encode()[:-1] + b', "schema_version": ' + raw + b"}"
    assert reason_for(msg) == f"field 'schema_version': {shown} is not allowed; input should be 1"
    assert validate_event(event(schema_version=1)).schema_version == 1


@pytest.mark.parametrize(
    "day", [1790035200, 1790035200.5, "1790035200", "2026-10-01T00:00:00+05:00", "20261001", "2026-10-1", True]
)
def test_a_trial_day_is_written_yyyy_mm_dd_not_a_number_or_a_datetime(day):
    # pydantic's date took Unix seconds (1790035200 became 2026-09-22) and dropped a datetime's
    # offset; the contract and the JSON Schema say a date string YYYY-MM-DD
    trial = event(type="trial_started", user_id=None, last_trial_day=day)
    assert reason_for(trial) == f"field 'last_trial_day': expected a date written YYYY-MM-DD, got {day!r}"
    assert validate_event(trial | {"last_trial_day": "2026-10-01"}).last_trial_day.isoformat() == "2026-10-01"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"event_id": "caf\xe9"}', "not UTF-8: byte(s) E9 at byte offset 17 (invalid continuation byte)"),
        (b'{"event_id": "\xff"}', "not UTF-8: byte(s) FF at byte offset 14 (invalid start byte)"),
        (b'{"event_id": "\xc3("}', "not UTF-8: byte(s) C3 at byte offset 14 (invalid continuation byte)"),
        ('{"a": 1}'.encode("utf-16"), "the text is UTF-16 (it starts with a UTF-16 byte-order mark)"),
    ],
)
def test_bytes_that_are_not_utf8_are_named_with_their_offset(raw, says):
    # orjson says "str is not valid UTF-8: surrogates not allowed ... (char 0)" for any of them
    assert reason_for(raw) == f"not valid JSON: {says}; events are UTF-8 text"


@pytest.mark.parametrize("line", [b"[", b"{", b"  [\r", "{"])
def test_a_lone_bracket_is_named_as_the_start_of_a_json_document_spread_over_lines(line):
    # a pretty-printed JSON file given as NDJSON: orjson said "unexpected end of data" on each line
    opening = line.strip() if isinstance(line, str) else line.strip().decode()
    assert reason_for(line) == (
        f"not valid JSON: a lone '{opening}' opens a JSON document spread over several lines; NDJSON holds one "
        "whole event (or array of one company's events) per line, as `jq -c` writes them"
    )


# What is accepted -----------------------------------------------------------------------------


def test_unknown_extra_fields_are_kept_for_the_archive():
    ev = validate_event(event(tenant_region="eu"))
    assert ev.extras == {"tenant_region": "eu"}


def test_offsets_other_than_utc_are_accepted_and_keep_the_instant():
    a = validate_event(event(occurred_at="2026-10-02T10:14:03+02:00"))
    b = validate_event(event(occurred_at="2026-10-02T08:14:03Z"))
    assert a.occurred_at == b.occurred_at


def test_partial_profile_updates_remember_which_fields_were_set():
    ev = validate_event(event(type="profile_update", has_email=False))
    assert ev.has_email is False
    assert "hourly_paid" not in ev.model_fields_set


def test_a_malformed_techsoup_token_is_a_valid_event_the_rules_reject_later():
    ev = validate_event(
        event(type="nonprofit_verified", user_id=None, techsoup_token="12 34", organization_type="charity")
    )
    assert ev.techsoup_token == "12 34"


def test_a_packed_message_judges_each_event_on_its_own():
    msg = json.dumps([event(event_id="a"), event(event_id="b", type="nope"), event(event_id="c")]).encode()
    good, bad = decode_message(msg)
    assert [e.event_id for e in good] == ["a", "c"]
    assert [(r.index, r.reason) for r in bad] == [(1, "unknown event type 'nope'")]


def test_a_packed_message_of_two_companies_keeps_the_first_company_only():
    msg = json.dumps([event(event_id="x", type="nope"), event(event_id="a"), event(event_id="b", company_id="globex")])
    good, bad = decode_message(msg.encode())
    assert [e.event_id for e in good] == ["a"]
    assert [(r.index, r.reason[:30]) for r in bad] == [
        (0, "unknown event type 'nope'"[:30]),
        (2, "packed message mixes companies"),
    ]


def test_an_empty_array_is_rejected():
    assert reason_for(b"[]") == "empty JSON array: a packed message needs at least one event"


def test_validate_event_raises_a_typed_error():
    with pytest.raises(EventRejected) as exc:
        validate_event({"type": "login"})
    assert exc.value.reason == "missing required field 'user_id' (required for event type 'login')"


# The published JSON Schema ------------------------------------------------------------------


def test_checked_in_json_schemas_match_the_models():
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == rendered, "JSON Schema files are stale: run `seatledger schemas export`"
