"""Compaction: merge the committed small files of one archive directory into one, keeping the rows.

`compact` writes the merged file under a temporary name, records a journal, renames the file into
place, deletes the inputs and then the journal; an interrupted compaction is rolled forward (output
in place) or back (not yet) by the next `compact` or writer start. Between the rename and the
deletes a reader may briefly see rows twice, which the read-time dedup by (`company_id`, `event_id`) absorbs.
Only files a manifest has committed are merged (a higher seq may still be deleted by recovery).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from replay.archive.durable import fsync_dir, fsync_file, write_json_durably
from replay.archive.layout import MANIFEST_DIR, PART_NAME, committed_seqs, leaf_dirs


@contextlib.contextmanager
def compaction_lock(root: Path, blocking: bool) -> Iterator[bool]:
    """Held by one compaction (or recovery) at a time; yields False when not blocking and taken."""
    path = Path(root) / MANIFEST_DIR / "compact.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def recover_compactions(root: Path) -> int:
    """Finish or undo compactions a crash interrupted (see the module docstring); returns how many.
    Call with the compaction lock held."""
    root = Path(root)
    journals = sorted((root / MANIFEST_DIR).glob("compact-*.json"))
    for j in journals:
        info = orjson.loads(j.read_bytes())
        d = root / info["dir"]
        out = d / info["output"]
        if out.exists():  # roll forward: the merged file is in place, the inputs must go
            for name in info["inputs"]:
                (d / name).unlink(missing_ok=True)
        else:  # roll back: the inputs are intact
            (d / (info["output"] + ".tmp")).unlink(missing_ok=True)
        if d.exists():
            fsync_dir(d)
        j.unlink()
    if journals:
        fsync_dir(root / MANIFEST_DIR)
    for d in leaf_dirs(root):  # a merge that crashed before its journal: its output never counted
        for f in d.glob("compact-*.parquet.tmp"):
            f.unlink()
    return len(journals)


@dataclass(frozen=True)
class Compaction:
    dir: str
    inputs: int
    rows: int
    output: str


def _committed_files(d: Path, seqs: dict[tuple[str, int], int], max_bytes: int) -> list[Path]:
    out = []
    for f in sorted(d.glob("*.parquet")):
        if f.stat().st_size > max_bytes:
            continue
        if f.name.startswith("compact-"):
            out.append(f)
            continue
        info = PART_NAME.match(f.name)
        if info and int(info["seq"]) <= seqs.get((info["topic"], int(info["partition"])), -1):
            out.append(f)
    return out


def compact(
    root: Path | str,
    *,
    min_files: int = 2,
    max_file_bytes: int = 64 << 20,
    blocking: bool = True,
    dirs: Iterable[Path] | None = None,
) -> list[Compaction]:
    """Merge the committed files under `max_file_bytes` of each archive directory holding at least
    `min_files` of them into one file, keeping every row. Returns what was merged ([] when another
    compaction holds the lock and `blocking` is False)."""
    root = Path(root)
    done: list[Compaction] = []
    with compaction_lock(root, blocking) as locked:
        if not locked:
            return done
        recover_compactions(root)
        seqs = committed_seqs(root)
        for d in dirs if dirs is not None else list(leaf_dirs(root)):
            inputs = _committed_files(d, seqs, max_file_bytes)
            if len(inputs) < min_files:
                continue
            done.append(_merge(root, d, inputs))
    return done


def _merge(root: Path, d: Path, inputs: list[Path]) -> Compaction:
    tables = [pq.read_table(f) for f in inputs]
    table = pa.concat_tables(tables, promote_options="none")
    if "company_id" in table.schema.names:
        table = table.sort_by([("company_id", "ascending"), ("occurred_at_us", "ascending"), ("event_id", "ascending")])
    name = f"compact-{uuid.uuid4().hex}.parquet"
    tmp = d / (name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    fsync_file(tmp)
    journal = root / MANIFEST_DIR / f"compact-{name[8:-8]}.json"
    write_json_durably({"dir": str(d.relative_to(root)), "output": name, "inputs": [f.name for f in inputs]}, journal)
    os.replace(tmp, d / name)
    fsync_dir(d)
    for f in inputs:
        f.unlink()
    fsync_dir(d)
    journal.unlink()
    fsync_dir(journal.parent)
    return Compaction(str(d.relative_to(root)), len(inputs), table.num_rows, name)


def small_file_dirs(root: Path | str, threshold: int) -> list[Path]:
    """Directories with at least `threshold` Parquet files (candidates for automatic compaction)."""
    return [d for d in leaf_dirs(Path(root)) if sum(1 for _ in d.glob("*.parquet")) >= threshold]
