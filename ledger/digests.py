"""The sink's digest check of a close's decisions, one verdict's accounts at a time.

`verdict_digests` gives what `projections.snapshots.DecisionEncoder.digests` gives (the same
strings: tests/unit/ledger/test_digests.py holds them equal), from the same shared pieces, but
each step runs over the whole column in C (`map` over the hash type's own methods) instead of a
Python function call and a few bytecodes per account. The sink recomputes every decision's digest
of a close (one per account), so what is per account here is most of its Python.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter

import orjson

from projections.decide import Decision
from projections.snapshots import DecisionEncoder

_dumps = orjson.dumps
_SHORT = itemgetter(slice(None, 16))  # a digest is the first 16 hex digits of the sha256


def verdict_digests(
    encoder: DecisionEncoder, verdict: Decision, evidence: Sequence[str], user_ids: Sequence[str]
) -> list[str]:
    """`encoder.digests(verdict, evidence, user_ids)`: each account's digest, its evidence and
    user id in place of the verdict's own (a copy of the verdict's hashed head, then its evidence,
    the verdict's middle, its user id and the closing brace)."""
    if len(evidence) != len(user_ids):
        raise ValueError(f"{len(evidence)} evidence texts for {len(user_ids)} user ids")
    head, mid = encoder.pieces(verdict)[:2]
    hash_type = type(head)
    hashes = list(map(hash_type.copy, repeat(head, len(evidence))))
    rests = map(b"".join, zip(map(_dumps, evidence), repeat(mid), map(_dumps, user_ids), repeat(b"}")))
    deque(map(hash_type.update, hashes, rests), maxlen=0)  # consumed for the updates alone
    return list(map(_SHORT, map(hash_type.hexdigest, hashes)))
