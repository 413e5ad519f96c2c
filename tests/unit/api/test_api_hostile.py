"""POST /v1/events judges hostile events exactly like `seatledger publish` and the router do
(`schemas.decode.decode_message`): the limits that need an event's bytes (size, depth, a key given
twice) included, with the same reason; and no event, however broken, fails the request."""

from __future__ import annotations

from itertools import islice

import orjson
import pytest

from api.ingest import read_events
from api.problems import ApiProblem
from devtools.workload import iter_events
from schemas.decode import decode_message
from tests.support.hostile import Mutator, poison

GOOD = {"event_id": "e1", "type": "login", "occurred_at": "2026-10-02T08:00:00Z", "company_id": "acme", "user_id": "u1"}
# The classes one event of a request can be: a JSON object each. Packs, empty messages and bytes
# that do not parse are about the request's framing (test_api_ingest: a JSON body that does not
# parse is refused whole, an NDJSON line on its own).
FRAMING = {"not_json", "deeper_than_orjson"}
SINGLE = {name: msg for name, msg in poison(GOOD).items() if msg[:1] == b"{" and name not in FRAMING}


def everyone(_company: str) -> bool:
    return True


def publish_verdict(msg: bytes) -> tuple[int, list[str]]:
    good, bad = decode_message(msg)
    return len(good), [r.reason for r in bad]


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_each_poison_class_is_refused_over_http_with_publishs_reason(name):
    msg = SINGLE[name]
    assert publish_verdict(msg)[0] == 0, "a poison class publish accepts"
    for body, ctype in ((msg + b"\n", "application/x-ndjson"), (b"[" + msg + b"]", "application/json")):
        batch = read_events(body, ctype, everyone, 10)
        assert not batch.accepted, (name, ctype)
        assert [r["reason"] for r in batch.rejections] == publish_verdict(msg)[1], (name, ctype)


def test_a_rejection_names_the_event_id_of_an_event_refused_for_its_bytes():
    body = SINGLE["too_large"] + b"\n" + orjson.dumps(GOOD)
    batch = read_events(body, "application/x-ndjson", everyone, 10)
    assert [e["event_id"] for _, e in batch.accepted] == ["e1"]
    assert [(r["index"], r["event_id"]) for r in batch.rejections] == [(0, "e1")]


def test_mutated_events_never_fail_the_request_and_are_judged_like_publish():
    events = list(iter_events(3, 30, "2026-10", seed=4))
    mutants = [m for m in islice(Mutator(events, seed=12), 4000) if m.strip()[:1] == b"{"]
    body = b"\n".join(mutants)
    try:
        batch = read_events(body, "application/x-ndjson", everyone, len(mutants))
    except ApiProblem as exc:  # only a body that cannot be read at all may be refused whole
        pytest.fail(f"the request was refused whole: {exc.detail}")
    rejected = {r["index"]: r["reason"] for r in batch.rejections}
    assert len(batch.accepted) + len(rejected) == len(mutants)
    assert all(rejected.values())
    for i, msg in enumerate(mutants):
        accepted, reasons = publish_verdict(msg)
        assert (i not in rejected) == (accepted == 1), (msg[:200], rejected.get(i))
        if i in rejected:
            assert [rejected[i]] == reasons, msg[:200]
