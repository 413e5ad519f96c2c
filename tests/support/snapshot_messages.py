"""Reading the snapshots topic's records back as the messages they carry."""

from __future__ import annotations

import orjson

from projections.snapshots import expand_block


def snapshot_messages(value: bytes) -> list[dict]:
    """A record's messages in order: each element of a packed record (a JSON array), and each
    `decision_block` as the `decision` messages it stands for (`expand_block`)."""
    obj = orjson.loads(value)
    out: list[dict] = []
    for msg in obj if isinstance(obj, list) else [obj]:
        out.extend(expand_block(msg) if msg.get("kind") == "decision_block" else [msg])
    return out
