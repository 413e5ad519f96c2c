"""POST /v1/events' body: NDJSON or a JSON array, each event judged like `seatledger publish` does."""

from __future__ import annotations

import orjson
import pytest

from api.ingest import read_events
from api.problems import ApiProblem


def ev(eid: str, company: str = "acme", **kw) -> dict:
    return {"event_id": eid, "type": "login", "occurred_at": "2026-10-02T08:00:00Z", "company_id": company,
            "user_id": "u1", **kw}  # fmt: skip


def everyone(_company: str) -> bool:
    return True


def test_ndjson_and_json_array_give_the_same_events_and_rejections_with_index_and_event_id():
    events = [ev("e1"), {"event_id": "e2", "type": "page_view"}, ev("e3", occurred_at="yesterday"), ev("e4")]
    ndjson = b"\n".join(orjson.dumps(e) for e in events) + b"\n\n"
    a = read_events(ndjson, "application/x-ndjson", everyone, 100)
    b = read_events(orjson.dumps(events), "application/json; charset=utf-8", everyone, 100)
    assert a == b
    assert [e["event_id"] for _, e in a.accepted] == ["e1", "e4"]
    assert a.rejections == [
        {"index": 1, "event_id": "e2", "reason": "unknown event type 'page_view'"},
        {"index": 2, "event_id": "e3", "reason": "field 'occurred_at': unparsable timestamp 'yesterday'; expected RFC 3339 such as 2026-10-02T08:14:03Z"},
    ]  # fmt: skip


def test_events_outside_the_keys_companies_are_rejected_with_a_reason():
    batch = read_events(orjson.dumps([ev("e1"), ev("e2", "globex")]), "application/json", lambda c: c == "acme", 10)
    assert [e["event_id"] for _, e in batch.accepted] == ["e1"]
    assert batch.rejections == [
        {"index": 1, "event_id": "e2", "reason": "company 'globex' is outside this API key's scope"}
    ]


def test_an_ndjson_line_that_is_not_json_or_holds_an_array_is_rejected_on_its_own():
    body = b'{"event_id": 7}\nnot json\n[' + orjson.dumps(ev("e9")) + b"]\n" + orjson.dumps(ev("e10"))
    batch = read_events(body, "application/x-ndjson", everyone, 10)
    assert [e["event_id"] for _, e in batch.accepted] == ["e10"]
    assert [(r["index"], r["event_id"]) for r in batch.rejections] == [(0, None), (1, None), (2, None)]
    assert batch.rejections[1]["reason"].startswith("not valid JSON")
    assert batch.rejections[2]["reason"] == "one event object per NDJSON line, not an array"


@pytest.mark.parametrize(("body", "ctype", "kind"), [
    (b"[" + b",".join([orjson.dumps(ev("e"))] * 3) + b"]", "application/json", "payload-too-large"),
    (b"\n".join([orjson.dumps(ev("e"))] * 3), "application/x-ndjson", "payload-too-large"),
    (b'{"event_id": "e1"}', "application/json", "bad-request"),
    (b"[1, 2", "application/json", "bad-request"),
    (b"[]", "text/plain", "unsupported-media-type"),
    (b"[]", None, "unsupported-media-type"),
])  # fmt: skip
def test_a_body_that_cannot_be_taken_as_a_whole_is_a_problem(body, ctype, kind):
    with pytest.raises(ApiProblem) as err:
        read_events(body, ctype, everyone, max_events=2)
    assert err.value.kind == kind


@pytest.mark.parametrize(("body", "says"), [
    (b"[1, 2", "the body cannot be read: not valid JSON"),
    (orjson.dumps(ev("e1")), "a JSON body must be an array of events, got an object; send one event as [event] or as NDJSON"),
    (b"null", "a JSON body must be an array of events, got null;"),  # JSON's words, not Python's (dict, NoneType)
    (b'"e1"', "a JSON body must be an array of events, got a string;"),
    (b'["caf\xe9"]', "the body cannot be read: not valid JSON: not UTF-8: byte(s) E9 at byte offset 5"),
    (b"[" * 2000 + b"]" * 2000, "the body cannot be read: the event nests more than 32 levels"),
])  # fmt: skip
def test_an_unreadable_json_body_says_why_in_a_sentence(body, says):
    with pytest.raises(ApiProblem) as err:
        read_events(body, "application/json", everyone, max_events=2)
    assert str(err.value.detail).startswith(says)
