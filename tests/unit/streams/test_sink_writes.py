"""The sink's writes: a batch goes to a thread while the loop reads on, and after it the file stays
free long enough for a reader retrying to open it (ledger.connection) to get in. A real DuckDB
file; no Kafka (the consumer is not involved in writing)."""

from __future__ import annotations

import asyncio
import time

import orjson

from ledger.connection import MAX_RETRY_DELAY_S, read_connection
from ledger.records import Item, parse_record
from projections.snapshots import partition_done_message
from streams.settings import Settings
from streams.sink_consumer import Sink


def report(offset: int, partition: int = 0) -> list[Item]:
    msg = partition_done_message(
        "2026-10", offset, 8, close_id="c1", companies=0, accounts=0, checksum_="0" * 64, counts={}
    )
    return parse_record(partition, offset, orjson.dumps(msg))


def test_a_batch_is_written_while_the_next_one_fills(tmp_path):
    sink = Sink(Settings(db=tmp_path / "ledger.duckdb", sink_batch_messages=1))
    sink.written = sink._prepare_db()
    sink.buffer, sink.buffered = report(0) + report(1), 2

    async def write_while_reading_on() -> None:
        writing = sink._start_write()
        assert (sink.buffer, sink.buffered, sink.in_flight[1]) == ([], 0, 2)
        sink.buffer, sink.buffered = report(2), 1  # read meanwhile: not part of the batch in flight
        await writing
        sink._collect()

    asyncio.run(write_while_reading_on())
    assert sink.written == {0: 2} and sink.writing is None and sink.in_flight[1] == 0
    assert (len(sink.buffer), sink.buffered) == (1, 1)
    with read_connection(sink.db) as con:
        assert con.execute("SELECT count(*) FROM partition_reports").fetchall() == [(2,)]


def test_after_a_batch_the_file_stays_free_longer_than_a_reader_pauses_between_attempts(tmp_path):
    sink = Sink(Settings(db=tmp_path / "ledger.duckdb", sink_batch_messages=1))
    sink.written = sink._prepare_db()
    sink.buffer, sink.buffered = report(0), 1

    async def one_batch() -> float:
        await sink._start_write()
        sink.buffer, sink.buffered = report(1), 1  # the next batch is due by its size...
        sink._collect()
        return time.monotonic()

    done = asyncio.run(one_batch())
    assert not sink._due()  # ...but waits, so that a reader's next attempt finds the file free
    assert sink.next_try - done > MAX_RETRY_DELAY_S
