"""The fold's table writes as changelog records, coalesced per key until they are sent.

The fold reads and writes the tables' dicts directly (streams.state.KV over streams.store) and
records each write here. A key written twice before the next `drain` is sent once, with its last
value: a batch's changelog records grow with the facts it changed, not with its events. The
records carry JSON key and value bytes (Faust's json serializer's format, so changelogs written by
earlier versions read back), on the changelog partition of the routed partition being folded.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.sender import Record
from streams.state import KV, Stores
from streams.store import TableStore


class ChangelogWrites:
    """Table writes not yet handed to the producer: (changelog topic, key, partition) -> value
    (None: a deletion). `partition` is the routed partition being folded; set it before folding a
    message (the tables are co-partitioned with the routed topic)."""

    __slots__ = ("partition", "pending")

    def __init__(self) -> None:
        self.partition = 0
        self.pending: dict[tuple[str, str, int], Any] = {}

    def kv(self, raw: dict, changelog_topic: str) -> KV:
        """A KV over `raw` whose writes and deletions are recorded here for `changelog_topic`."""

        def write(key: str, value: Any) -> None:
            self.pending[(changelog_topic, key, self.partition)] = value

        def delete(key: str) -> None:
            self.pending[(changelog_topic, key, self.partition)] = None

        return KV(raw, write, delete)

    def stores(self, store: TableStore) -> Stores:
        """The fold's stores, one KV per table of `store`, writing to the table's changelog."""
        return Stores(**{name: self.kv(raw, store.changelog(name)) for name, raw in store.raw.items()})

    def drain(self) -> list[Record]:
        """The pending writes as changelog records (JSON key and value; None: a tombstone); empties."""
        items = list(self.pending.items())
        self.pending.clear()
        return [
            (topic, partition, orjson.dumps(key), None if value is None else orjson.dumps(value))
            for (topic, key, partition), value in items
        ]

    def __len__(self) -> int:
        return len(self.pending)
