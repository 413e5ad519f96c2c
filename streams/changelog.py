"""The fold's table writes as changelog records, coalesced per key until they are sent.

The fold reads and writes the memory stores' dicts directly (streams.state.KV) and records each
write here instead of assigning to the Faust table: no Faust FutureMessage per write, no "producer
buffer full" stalls, and writes work inside `take_events`, where `table[k] = v` raises TypeError
(faust issue 497). A key written twice before the next `drain` is sent once, with its last value.
The records carry the same JSON bytes as Faust's json serializer, on the changelog partition of the
routed partition being folded, so Faust's recovery reads them back like its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from faust.stores.memory import Store as MemoryStore
from faust.types import TableT

from streams.sender import Record
from streams.state import KV, Stores


def store_dict(table: TableT) -> dict:
    """The dict behind a Faust memory-store table (the memory store's `data`, not part of Faust's
    table interface): what the fold reads and writes, and what Faust's recovery fills."""
    store = table.data
    assert isinstance(store, MemoryStore), "the worker's tables are on the memory store (streams.topology)"
    return cast(dict, store.data)  # a plain dict, typed as a MutableMapping by Faust


class ChangelogWrites:
    """Table writes not yet handed to the producer: (changelog topic, key, partition) -> value
    (None: a deletion). `partition` is the routed partition being folded; set it before folding a
    message (the tables are co-partitioned with the routed topic)."""

    __slots__ = ("partition", "pending")

    def __init__(self) -> None:
        self.partition = 0
        self.pending: dict[tuple[str, str, int], Any] = {}

    def kv(self, changelog_topic: str) -> KV:
        """A KV whose writes and deletions are recorded here for `changelog_topic`."""

        def write(key: str, value: Any) -> None:
            self.pending[(changelog_topic, key, self.partition)] = value

        def delete(key: str) -> None:
            self.pending[(changelog_topic, key, self.partition)] = None

        return KV({}, write, delete)

    def stores(self, tables: Mapping[str, TableT]) -> Stores:
        """The fold's stores, one KV per table, writing to the table's changelog."""
        return Stores(**{name: self.kv(t.changelog_topic.get_topic_name()) for name, t in tables.items()})

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
