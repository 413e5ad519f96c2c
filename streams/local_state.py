"""Snapshots of the fold's tables on local disk, one file per routed partition, each with the
changelog offsets it covers, so that a worker taking a partition reads only the changelog's tail.

The changelogs stay the source of truth; a snapshot only says "replaying each changelog up to
these offsets gives these keys". Replaying from a snapshot's offsets instead of from the start
gives the same tables, because a compacted changelog only removes a record when a later record of
the same key exists (that one is replayed), with one exception: the cleaner drops a tombstone
once it is older than the topic's `delete.retention.ms` (24 h by default). A snapshot older than
that could still hold a key whose deletion is gone from the log, so snapshots older than
`max_age` (12 h by default) are not used.

Every snapshot is valid for every worker of the same app id, whoever wrote it and whenever, as
long as its offsets are not past the changelog's end (a topic deleted and created again) and it is
young enough. So the files need no coordination: each is written whole to a temporary name and
renamed over the old one, and a file that cannot be read, is for another app or partition, or
fails either check is ignored (logged) and the partition is read from the start of its changelogs.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("seatledger.worker")

FORMAT = 1


@dataclass(frozen=True)
class Snapshot:
    """The keys of one routed partition's tables as of `offsets` (table -> next changelog offset)."""

    partition: int
    offsets: dict[str, int]
    tables: dict[str, dict[str, Any]]
    written_at: float

    def keys(self) -> int:
        return sum(len(d) for d in self.tables.values())


class LocalState:
    """The snapshot files of one app id under `directory`."""

    def __init__(self, directory: Path, app_id: str, max_age_seconds: float, writer: str = ""):
        self.directory = directory / app_id
        self.app_id = app_id
        self.max_age = max_age_seconds
        self.writer = writer or str(os.getpid())

    def path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition}.json"

    def save(self, partition: int, offsets: Mapping[str, int], tables: Mapping[str, Mapping[str, Any]]) -> int:
        """Write the snapshot (atomically: whole or not at all); its size in bytes."""
        doc = {
            "format": FORMAT,
            "app_id": self.app_id,
            "partition": partition,
            "written_at": time.time(),
            "offsets": dict(offsets),
            "tables": {t: dict(d) for t, d in tables.items()},
        }
        data = orjson.dumps(doc)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(partition)
        tmp = target.with_name(f".{target.name}.{self.writer}.{uuid.uuid4().hex[:8]}.tmp")  # one per write
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return len(data)

    def load(self, partition: int, ends: Mapping[str, int]) -> Snapshot | None:
        """The partition's snapshot if it can be used with changelogs ending at `ends`, else None."""
        path = self.path(partition)
        if not path.exists():
            return None
        try:
            doc = orjson.loads(path.read_bytes())
            snap = Snapshot(
                int(doc["partition"]), {t: int(o) for t, o in doc["offsets"].items()}, doc["tables"],
                float(doc["written_at"]),
            )  # fmt: skip
            why = self._unusable(doc, snap, partition, ends)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            why = f"unreadable ({type(exc).__name__})"
        if why:
            log.warning("event=state_snapshot_ignored partition=%d path=%s why=%s", partition, path, why)
            return None
        return snap

    def _unusable(self, doc: dict, snap: Snapshot, partition: int, ends: Mapping[str, int]) -> str:
        if doc.get("format") != FORMAT or doc.get("app_id") != self.app_id:
            return "another format or app id"
        if snap.partition != partition:
            return "another partition"
        if set(snap.offsets) != set(ends) or set(snap.tables) - set(ends):
            return "other tables"
        age = time.time() - snap.written_at
        if not 0 <= age <= self.max_age:
            return f"age {age:.0f} s outside 0..{self.max_age:.0f} s"
        ahead = [t for t, off in snap.offsets.items() if off > ends[t]]
        if ahead:
            return f"offsets past the changelog's end for {','.join(sorted(ahead))} (topic recreated?)"
        return ""
