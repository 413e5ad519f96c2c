"""The batch oracle for the streaming worker's tests, and an in-process model of the worker.

`oracle(events, month)`: projections.facts.fold_all + decide_month for every company, the
reference every streaming result must equal. `simulate(...)`: the worker's router and fold logic
(streams.routing, streams.state, streams.close) driven in-process over dict stores, no Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable

from projections.calendar import Month
from projections.decide import decide_month
from projections.facts import fold_all
from projections.prices import PriceBook
from schemas.decode import validate_event
from tests.support.snapshot_messages import snapshot_messages

Key = tuple[str, str, str]  # (company, user, month)


def oracle(events: Iterable[dict], month: str, prices: PriceBook | None = None) -> dict[Key, dict]:
    """(company, user, month) -> decision row with unit_price_usd as a string (as published)."""
    prices = prices or PriceBook.load(None)
    models = [validate_event(e) for e in events]
    facts = fold_all(models)
    out: dict[Key, dict] = {}
    for _, _, decisions in decide_month(facts, Month.parse(month), prices):
        for d in decisions:
            row = d.row()
            row["unit_price_usd"] = str(d.unit_price_usd)
            out[(d.company_id, d.user_id, d.month)] = row
    return out


DECISION_FIELDS = (
    "company_id", "user_id", "month", "billable", "charged", "tier", "rule", "reason", "evidence",
    "unit_price_usd", "ruleset_version",
)  # fmt: skip


def latest_decisions(messages: Iterable[dict]) -> dict[Key, dict]:
    """The highest version per (company, user, month) among `decision` snapshot messages."""
    best: dict[Key, dict] = {}
    for msg in messages:
        if msg.get("kind") != "decision":
            continue
        k = (msg["company_id"], msg["user_id"], msg["month"])
        if k not in best or msg["version"] > best[k]["version"]:
            best[k] = msg
    return {k: {f: v[f] for f in DECISION_FIELDS} for k, v in best.items()}


def diff(expected: dict[Key, dict], got: dict[Key, dict], limit: int = 10) -> list[str]:
    """Human-readable differences; empty when equal."""
    out = []
    for k in sorted(set(expected) - set(got))[:limit]:
        out.append(f"missing {k}: {expected[k]}")
    for k in sorted(set(got) - set(expected))[:limit]:
        out.append(f"unexpected {k}: {got[k]}")
    for k in sorted(set(expected) & set(got)):
        if expected[k] != got[k]:
            cols = {c: (expected[k][c], got[k][c]) for c in expected[k] if expected[k][c] != got[k][c]}
            out.append(f"differs {k}: {cols}")
            if len(out) >= limit * 3:
                break
    return out


def assert_equal_to_the_oracle(expected: dict[Key, dict], got: list[dict]) -> None:
    """The latest decision of every account equals the oracle's; no decision was amended (nothing
    arrived late), and one emitted twice (by a restarted or a second owner) has the same content."""
    assert diff(expected, latest_decisions(got)) == []
    seen: dict = {}
    for m in got:
        if m["kind"] == "decision":
            k = (m["company_id"], m["user_id"], m["month"], m["version"])
            assert seen.setdefault(k, m["digest"]) == m["digest"], f"{k} emitted with two contents"
    assert {m["version"] for m in got if m["kind"] == "decision"} == {1}, "no amendment without a late event"


def simulate(messages: Iterable[bytes], month: str, partitions: int = 4, prices: PriceBook | None = None):
    """Route and fold raw messages in-process, close `month` on every partition, then return
    (snapshot messages, dead letters, state). Close markers inside `messages` are honoured too."""
    from streams.close import Closer
    from streams.routing import home_partition, route_message
    from streams.state import FoldState, Stores

    state = FoldState(Stores(), partitions)
    closer = Closer(state, prices or PriceBook.load(None))
    state.on_new_account = closer.account_seen
    out: list[dict] = []
    dead: list[dict] = []

    def fold(cid: str, items: list[dict]) -> None:
        p = home_partition(cid, partitions)
        res = state.fold_items(items, p)
        for aff in res.affected.values():
            out.extend(m for e in closer.recompute(p, aff) for m in snapshot_messages(e[1]))

    def close(m: str) -> None:
        for p in range(partitions):
            for sp in range(partitions):
                ctl = {"month": m, "partitions": partitions, "source_partition": sp, "close_id": "sim"}
                todo = closer.on_marker(ctl, p)
                if todo:
                    out.extend(m for e in closer.close(p, todo) for m in snapshot_messages(e[1]))

    for i, raw in enumerate(messages):
        r = route_message(raw, topic="sim", partition=0, offset=i)
        dead.extend(r.dead)
        if r.control is not None:
            close(r.control["month"])
        if r.events:
            fold(r.company_id, r.events)
        for home, d in r.derived:
            fold(home, [d])
    if not any(m.get("kind") == "partition_done" and m["month"] == month for m in out):
        close(month)
    return out, dead, state
