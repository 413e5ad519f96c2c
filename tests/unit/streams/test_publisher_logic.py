"""Validating NDJSON lines and packing events into messages: pure, no Kafka."""

import orjson
import pytest

from streams.publisher import Accepted, Packer, Rejected, check_lines, default_partition


def ev(company: str, n: int, **extra) -> dict:
    return {"event_id": f"{company}-{n}", "type": "login", "occurred_at": "2026-10-02T08:14:03Z",
            "company_id": company, "user_id": f"u-{n}", **extra}  # fmt: skip


def test_valid_lines_are_accepted_with_their_original_object_including_extras():
    line = orjson.dumps(ev("acme", 1, custom="kept"))
    [item] = check_lines([(7, line)])
    assert isinstance(item, Accepted)
    assert (item.line_no, item.company_id, item.obj["custom"]) == (7, "acme", "kept")


def test_invalid_lines_are_rejected_with_line_number_and_reason_and_blank_lines_skipped():
    naive = ev("acme", 2, occurred_at="2026-10-02T08:14:03")
    lines = [(1, b"not json"), (2, b"   "), (3, orjson.dumps(naive)), (4, b'{"type": "nope"}')]
    items = list(check_lines(lines))
    assert [type(i) for i in items] == [Rejected, Rejected, Rejected]
    assert [i.line_no for i in items] == [1, 3, 4]
    assert "not valid JSON" in items[0].reason
    assert "offset" in items[1].reason
    assert "unknown event type 'nope'" in items[2].reason


def test_an_array_line_is_judged_element_by_element():
    items = list(check_lines([(5, orjson.dumps([ev("a", 1), {"type": "login"}]))]))
    assert isinstance(items[0], Accepted)
    assert isinstance(items[1], Rejected) and items[1].reason.startswith("element 1: ")


def test_pack_of_one_sends_each_event_as_its_bare_object():
    p = Packer(1)
    [m] = p.add("acme", ev("acme", 1))
    assert m.key == b"acme" and orjson.loads(m.value) == ev("acme", 1) and m.events == 1
    assert p.flush() == []


def test_packer_packs_interleaved_companies_separately_keeping_each_companys_order():
    p = Packer(3)
    out = []
    for company, n in [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 5), ("a", 6)]:
        out += p.add(company, ev(company, n))
    out += p.flush()
    shapes = [(m.key, m.events) for m in out]
    assert shapes == [(b"a", 3), (b"a", 2), (b"b", 1)]
    assert [e["event_id"] for e in orjson.loads(out[0].value)] == ["a-1", "a-2", "a-3"]
    assert [e["event_id"] for e in orjson.loads(out[1].value)] == ["a-4", "a-6"]
    assert isinstance(orjson.loads(out[2].value), dict)


def test_packer_flushes_every_company_when_its_window_is_full():
    p = Packer(100, window=4)
    out = []
    for company, n in [("a", 1), ("b", 2), ("c", 3)]:
        out += p.add(company, ev(company, n))
    assert out == []
    out += p.add("a", ev("a", 4))
    assert [(m.key, m.events) for m in out] == [(b"a", 2), (b"b", 1), (b"c", 1)]
    assert p.flush() == []


def test_packer_cuts_before_a_message_would_grow_past_max_bytes():
    p = Packer(100, max_bytes=400)
    out = []
    for n in range(10):
        out += p.add("a", ev("a", n))
    out += p.flush()
    assert sum(m.events for m in out) == 10
    assert all(len(m.value) <= 400 for m in out) and len(out) > 1


def test_pack_must_be_positive():
    with pytest.raises(ValueError):
        Packer(0)


def test_default_partition_is_stable_and_in_range():
    assert default_partition("acme", 8) == default_partition("acme", 8)
    assert all(0 <= default_partition(f"c{i}", 8) < 8 for i in range(100))


def test_the_publisher_judges_a_line_as_the_worker_judges_a_message():
    """The limits and the one-company rule refuse before anything is sent, naming the element."""
    dup = orjson.dumps(ev("acme", 1))[:-1] + b',"company_id":"globex"}'
    pack = orjson.dumps([ev("acme", 2), ev("globex", 3), ev("acme", 4)])
    items = list(check_lines([(1, dup), (2, pack)]))
    assert [(type(i).__name__, i.line_no) for i in items] == [
        ("Rejected", 1), ("Accepted", 2), ("Rejected", 2), ("Accepted", 2),
    ]  # fmt: skip
    assert items[0].reason == "duplicate key 'company_id' in a JSON object; each key may appear only once"
    assert items[2].reason.startswith("element 1: packed message mixes companies: 'globex' after 'acme'")
