"""streams.close.packed: consecutive snapshot messages of one key and partition as one record."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.close import packed

_MESSAGES = st.lists(
    st.tuples(st.sampled_from([b"c1", b"c2", b"0"]), st.integers(0, 1), st.integers(0, 300)), max_size=40
)


def _emissions(spec: list[tuple[bytes, int, int]]) -> list[tuple[bytes, bytes, int]]:
    return [
        (k, orjson.dumps({"kind": "decision", "n": i, "pad": "x" * size}), p) for i, (k, p, size) in enumerate(spec)
    ]


def _elements(value: bytes) -> list[dict]:
    v = orjson.loads(value)
    return v if isinstance(v, list) else [v]


@given(spec=_MESSAGES, limit=st.integers(50, 2000))
def test_packing_keeps_every_message_in_order_on_its_key_and_partition_within_the_limit(spec, limit):
    ems = _emissions(spec)
    recs = list(packed(ems, limit))
    flat = [(k, orjson.dumps(m), p) for k, v, p, _ in recs for m in _elements(v)]
    assert flat == ems  # nothing lost, reordered or moved to another key or partition
    for _, v, _, count in recs:
        assert count == len(_elements(v))
        assert count == 1 or len(v) <= limit  # one message longer than the limit goes alone
        assert (count > 1) == v.startswith(b"[")  # a single message stays a JSON object
    runs = sum(1 for i, e in enumerate(ems) if i == 0 or e[0::2] != ems[i - 1][0::2])
    assert len(recs) >= runs  # never two keys or partitions in one record


def test_a_close_of_one_company_is_one_record_and_its_done_marker_another():
    ems = [(b"c1", orjson.dumps({"kind": "decision", "n": i}), 3) for i in range(500)]
    ems += [(b"c1", b'{"kind":"company_month"}', 3), (b"3", b'{"kind":"partition_done"}', 3)]
    recs = list(packed(ems))
    assert [(k, p, n) for k, _, p, n in recs] == [(b"c1", 3, 501), (b"3", 3, 1)]
