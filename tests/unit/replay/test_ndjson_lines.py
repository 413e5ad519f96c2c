"""Splitting NDJSON into windows of lines for DuckDB (replay.ndjson_lines): every line once, in
order, with its position and file, whatever the chunk and window sizes; errors reach the caller."""

from __future__ import annotations

import duckdb
import orjson
import pytest

import replay.ndjson_lines as nl
from devtools.workload import iter_events
from replay.events_source import load_ndjson
from replay.rows import COLUMNS


def _lines(windows) -> list[tuple[int, str | None, bytes | None]]:
    out = []
    for table in windows:
        out += zip(table["pos"].to_pylist(), table["line"].to_pylist(), table["raw"].to_pylist(), strict=True)
    return out


def test_windows_hold_every_line_once_in_order_across_files_and_chunk_sizes(tmp_path, monkeypatch):
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    a.write_bytes(b'{"x":1}\n\n' + b"y" * 300 + b"\nlast without newline")
    b.write_bytes(b"\xff broken utf-8\nok\n")
    monkeypatch.setattr(nl, "CHUNK_BYTES", 7)  # lines longer than a chunk, chunks of one line
    monkeypatch.setattr(nl, "WINDOW_CHUNKS", 2)
    located = nl.LineFiles()
    got = _lines(nl.line_windows([a, b], located))
    assert [p for p, _, _ in got] == list(range(6))
    assert got[0][1] == '{"x":1}\n' and got[1][1] == "\n" and got[2][1] == "y" * 300 + "\n"
    assert got[3][1] == "last without newline\n"
    assert got[4][1] is None and got[4][2] == b"\xff broken utf-8\n"  # its chunk is not UTF-8
    assert got[5][1] == "ok\n" or got[5][2] == b"ok\n"  # in the broken chunk or not: its bytes either way
    assert located.where(4) == (str(b), 1) and located.where(3) == (str(a), 4)


def test_an_error_while_reading_ahead_reaches_the_reader(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(nl.line_windows([tmp_path / "missing.ndjson"], nl.LineFiles()))


def test_the_reader_gives_the_same_rows_with_small_windows(tmp_path, monkeypatch):
    path = tmp_path / "month.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in iter_events(4, 80, "2026-10", seed=2)) + b"\n")

    def rows():
        con = duckdb.connect()
        got = load_ndjson(con, [path])
        return sorted(con.execute(f"SELECT {', '.join(COLUMNS)} FROM {got.view}").fetchall(), key=repr), got.lines

    whole = rows()
    monkeypatch.setattr(nl, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(nl, "WINDOW_CHUNKS", 3)
    assert rows() == whole
    assert whole[1] > 1000
