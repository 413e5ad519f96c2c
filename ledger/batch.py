"""One batch of snapshot-topic records: where and when it is stored, and what storing it did."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Batch:
    """The transaction a batch is written in: every row it stores carries `now` and `batch_id`."""

    topic: str
    now: datetime
    batch_id: int


class Rows(defaultdict[str, list[dict]]):
    """The rows a batch will insert, per table (ledger.tables.insert_rows), in arrival order;
    `versions`: the snapshot_versions rows as tuples in `ledger.versions.VERSION_COLUMNS` order
    (ledger.tables.insert_tuples), the bulk of a close; or, from the columnar path, the same rows
    as `version_columns` (column -> values) and `version_constants` (column -> the value of every
    row) (ledger.tables.insert_columns)."""

    def __init__(self) -> None:
        super().__init__(list)
        self.versions: list[tuple] = []
        self.version_columns: dict[str, Any] = {}  # lists or Arrow arrays
        self.version_constants: dict[str, Any] = {}


@dataclass
class BatchResult:
    batch_id: int | None = None
    messages: int = 0  # Items handed in
    already_written: int = 0  # below the stored position (written before)
    stored: Counter[str] = field(default_factory=Counter)  # rows per table
    duplicates: Counter[str] = field(default_factory=Counter)  # skipped redeliveries per kind
    rejects: int = 0
    digest_mismatches: int = 0
    months_completed: list[str] = field(default_factory=list)
    invoices_issued: int = 0
    adjustments_created: int = 0
    adjustments_applied: int = 0
    positions: dict[int, int] = field(default_factory=dict)  # stored next offsets after the batch

    @property
    def rows_written(self) -> int:
        return sum(self.stored.values())
