"""A worker whose changelogs were written before zone names were validated: a registration with a
host alias (`right/Europe/Amsterdam`) is left out as the changelogs are read back, so later events
fold, the close runs, and the bill is the batch path's (which leaves the archived row out)."""

from __future__ import annotations

import orjson

from projections.prices import PriceBook
from streams.close import Closer
from streams.routing import route_message
from streams.state import KV, FoldState, Stores
from streams.store import TableStore
from tests.support.given import World
from tests.support.snapshot_messages import snapshot_messages
from tests.support.worker_oracle import diff, latest_decisions, oracle

OCT = "2026-10"


def fold(state: FoldState, events: list[dict]) -> None:
    for i, e in enumerate(events):
        r = route_message(orjson.dumps(e), topic="t", partition=0, offset=i)
        assert r.events and not r.dead, r.dead
        res = state.fold_items(r.events, 0)
        assert res.errors == 0


def old_changelogs(events: list[dict]) -> dict[str, list[tuple[bytes, bytes]]]:
    """The changelog records a worker wrote for `events`, with c1 registered in a host alias, as a
    worker wrote it before the names were checked."""
    state = FoldState(Stores(), 1)
    fold(state, events)
    out = {}
    for name in ("companies", "accounts", "activity", "pending"):
        records = [(orjson.dumps(k), orjson.dumps(v)) for k, v in getattr(state.s, name).raw.items()]
        out[name] = [
            (k, v.replace(b'"Europe/Amsterdam"', b'"right/Europe/Amsterdam"') if k == b'"c1"' else v)
            for k, v in records
        ]
    assert any(b"right/Europe/Amsterdam" in v for _, v in out["companies"])
    return out


def test_a_host_alias_zone_in_old_state_is_left_out_on_recovery_and_the_close_bills_like_batch():
    w = World().company("c1", tz="Europe/Amsterdam", plan="advanced").member("c1", "ann")
    w.company("c2", tz="Europe/Amsterdam", plan="advanced").member("c2", "bob")
    before = list(w.raw)
    w.do("login", "c1", "ann", "2026-10-05").do("login", "c2", "bob", "2026-10-06")
    later = w.raw[len(before) :]

    store = TableStore("w", 1)
    for table, records in old_changelogs(before).items():
        for k, v in records:
            store.apply(table, k, v)
    assert b"right/" not in orjson.dumps(store.raw["companies"])
    assert store.raw["companies"]["c2"]["r"][0][3] == [["timezone", "Europe/Amsterdam"]]  # others untouched

    state = FoldState(Stores(**{name: KV(raw) for name, raw in store.raw.items()}), 1)
    closer = Closer(state, PriceBook.load(None))
    state.on_new_account = closer.account_seen
    fold(state, later)  # c1's later activity folds (it failed with the alias in state)
    todo = closer.on_marker({"month": OCT, "partitions": 1, "source_partition": 0, "close_id": "x"}, 0)
    streamed = latest_decisions(m for e in closer.close(0, todo) for m in snapshot_messages(e[1]))

    left_out = [e for e in w.raw if not (e["company_id"] == "c1" and e["type"] == "company_registered")]
    assert diff(oracle(left_out, OCT), streamed) == []
    assert streamed[("c2", "bob", OCT)]["billable"]


def test_state_within_todays_contract_reads_back_unchanged():
    w = World().company("c1", tz="America/New_York", plan="advanced").member("c1", "ann")
    state = FoldState(Stores(), 1)
    fold(state, list(w.raw))
    store = TableStore("w", 1)
    for k, v in state.s.companies.raw.items():
        store.apply("companies", orjson.dumps(k), orjson.dumps(v))
    assert store.raw["companies"] == orjson.loads(orjson.dumps(state.s.companies.raw))
