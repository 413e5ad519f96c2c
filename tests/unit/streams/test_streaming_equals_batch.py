"""Streaming equals batch: the worker's logic, driven in-process over shuffled input with a close
landing mid-stream (so part of the month arrives late and is amended), ends at exactly the batch
oracle's decisions. Companies whose registration never arrives are included (default zone)."""

from __future__ import annotations

import random

import orjson
import pytest

from devtools.workload import iter_events
from schemas.control import close_marker
from tests.support.worker_oracle import diff, latest_decisions, oracle, simulate


@pytest.mark.parametrize("seed", [3, 7])
def test_shuffled_stream_with_a_mid_stream_close_ends_equal_to_the_batch(seed):
    rng = random.Random(seed)
    events = list(iter_events(rng.randint(2, 4), rng.randint(20, 40), "2026-10", months=2, seed=seed))
    registered = sorted({e["company_id"] for e in events if e["type"] == "company_registered"})
    never = set(rng.sample(registered, k=max(1, len(registered) // 3)))
    events = [e for e in events if not (e["type"] == "company_registered" and e["company_id"] in never)]
    rng.shuffle(events)
    messages = [orjson.dumps(e) for e in events]
    cut = rng.randrange(len(messages))
    messages.insert(cut, orjson.dumps(close_marker("2026-10", "mid-stream", 4)))

    snapshots, _, _ = simulate(messages, "2026-10")

    assert diff(oracle(events, "2026-10"), latest_decisions(snapshots)) == []
    versions = [m for m in snapshots if m.get("kind") == "decision"]
    assert all(m["amend_reason"] == "late_event" for m in versions if m["version"] > 1)
