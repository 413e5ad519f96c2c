"""The Kafka side of the DuckDB sink: `seatledger sink`.

Reads every partition of the snapshots topic by manual assignment (no consumer group, nothing
committed to Kafka): the positions live in DuckDB (`sink_offsets`), written in the same
transaction as the rows, so a restart seeks to them and neither loses nor duplicates a message.

Messages are buffered and written in batches (`settings.sink_batch_messages` or
`settings.sink_batch_seconds`, whichever comes first) by `ledger.writer.write_batch`. While the
sink is behind (a close streaming in: Kafka held more than the last fetch took), a batch grows to
`settings.sink_batch_max_messages` instead (`batch_due`): each transaction's fixed costs, above
all DuckDB's checkpoint when the file is closed, are paid for more rows. The DuckDB
file is opened for each batch and closed right after, so analysts can open it read-only between
batches. When a reader holds the file, the batch waits (retried with backoff) and consumption
continues into memory up to `settings.sink_buffer_messages`.

A batch is written in a thread while the event loop fetches and parses the next one: DuckDB
releases the GIL while it inserts and checkpoints, so a backlog costs about the larger of the two
instead of their sum. One batch is written at a time, in consumption order; the loop alone keeps
the books (buffer, positions, metrics), the thread only writes. After each batch the file stays
free for `READER_GAP_S` (the loop goes on fetching meanwhile), so readers retrying to open it get
their turn even while a backlog is written batch after batch.

Metrics (Prometheus, settings.metrics_host:settings.sink_metrics_port; port 0: a free port, -1:
none) and key=value log lines on the `seatledger.sink` logger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as TallyCounter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ledger.batch import BatchResult
from ledger.connection import MAX_RETRY_DELAY_S, DatabaseBusy, connect, run, write_connection
from ledger.records import Item, parse_record
from ledger.tables import ensure_schema
from ledger.writer import read_positions, write_batch
from streams.settings import Settings

log = logging.getLogger("seatledger.sink")

FETCH_TIMEOUT_MS = 200
TOPIC_WAIT_S = 60.0
MAX_BACKOFF_S = 2.0
FINAL_FLUSH_TIMEOUT_S = 60.0
WRITING_FETCH_TIMEOUT_MS = 50  # while a batch is written: back soon to start the next one
# A fetch answers once the broker holds this much for the sink, or after the wait: while a close
# streams in, a few of its records per fetch instead of one, so fewer requests and wakeups.
FETCH_MIN_BYTES = 1024 * 1024
FETCH_MAX_WAIT_MS = 100
READER_GAP_S = MAX_RETRY_DELAY_S + 0.05  # between two batches: longer than a reader's longest pause
_KIND_LABEL = {"decision_block": "decision"}  # messages_in counts a block's decisions


_Written = tuple[BatchResult | None, float, float]  # a write's result (None: busy), start, seconds


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "seatledger_sink_messages_in", "snapshot messages read from Kafka", ["kind"], registry=r
        )
        self.rows_written = Counter("seatledger_sink_rows_written", "rows inserted into DuckDB", ["table"], registry=r)
        self.duplicates = Counter(
            "seatledger_sink_duplicates_skipped", "redelivered messages not stored again", ["kind"], registry=r
        )
        self.rejects = Counter("seatledger_sink_rejects", "unreadable messages kept in sink_rejects", registry=r)
        self.batches = Counter("seatledger_sink_batches", "transactions committed", registry=r)
        self.lock_waits = Counter(
            "seatledger_sink_db_lock_waits", "write attempts refused because a reader held the DuckDB file", registry=r
        )
        self.lock_wait_seconds = Histogram(
            "seatledger_sink_db_lock_wait_seconds",
            "time a ready batch waited for the DuckDB file",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "seatledger_sink_batch_seconds",
            "open + write + commit + close of one batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.buffered = Gauge("seatledger_sink_buffered_messages", "messages consumed, not yet written", registry=r)
        self.lag = Gauge(
            "seatledger_sink_lag",
            "highwater - written position (messages not yet in DuckDB)",
            ["partition"],
            registry=r,
        )
        self.months_completed = Counter("seatledger_sink_months_completed", "months that became complete", registry=r)
        self.invoices = Counter("seatledger_sink_invoices_issued", "invoices issued", registry=r)

    def serve(self, host: str, port: int) -> int:
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = server.server_address[1]
        log.info("event=metrics_listening host=%s port=%d", host, bound)
        return bound


def batch_due(settings: Settings, buffered: int, age_s: float, behind: bool) -> bool:
    """Whether the buffer is written now. Caught up: at `sink_batch_messages` or once the oldest
    message is `sink_batch_seconds` old (latency). Behind: at `sink_batch_max_messages` only, as
    more is waiting anyway (fewer, larger transactions; a reader waits longer for the file), or
    at `sink_buffer_messages`, where fetching stops."""
    if behind:
        return buffered >= min(settings.sink_batch_max_messages, settings.sink_buffer_messages)
    return buffered >= settings.sink_batch_messages or (buffered > 0 and age_s >= settings.sink_batch_seconds)


@dataclass
class SinkStats:
    """What a run did (returned by `run_sink`, for tests and the command's last line)."""

    messages: int = 0
    batches: int = 0
    rows: TallyCounter = field(default_factory=TallyCounter)
    duplicates: int = 0
    lock_waits: int = 0
    fetched_while_writing: int = 0  # messages read while a batch was being written (the overlap)
    months_completed: list[str] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)


class Sink:
    def __init__(self, settings: Settings, metrics: SinkMetrics | None = None):
        self.settings = settings
        self.db = Path(settings.db)
        self.topic = settings.topic_snapshots
        self.metrics = metrics or SinkMetrics()
        self.stats = SinkStats()
        self.buffer: list[Item] = []
        self.buffered = 0  # messages in the buffer (a decision_block's Item stands for its accounts)
        self.writing: asyncio.Future[_Written] | None = None  # the batch being written, in a thread
        self.in_flight: tuple[list[Item], int, float | None] = ([], 0, None)  # its items, messages, age
        self.buffer_since: float | None = None
        self.written: dict[int, int] = {}  # next offset stored in DuckDB, per partition
        self.behind = False  # the last fetch left records in Kafka (a partition's highwater beyond it)
        self.ready_since: float | None = None  # a batch has been ready (and refused) since
        self.next_try = 0.0
        self.backoff = 0.05
        self.consumer: AIOKafkaConsumer | None = None
        self.tps: list[TopicPartition] = []

    @property
    def unwritten(self) -> int:
        """Messages consumed and not yet written: the buffer's and the batch being written."""
        return self.buffered + self.in_flight[1]

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        """The consumer, once `start` created it."""
        if self.consumer is None:
            raise RuntimeError("the sink's consumer is not started")
        return self.consumer

    # ---- start -----------------------------------------------------------------------------------

    def _prepare_db(self) -> dict[int, int]:
        with write_connection(self.db, timeout=60.0) as con:
            ensure_schema(con)
            return read_positions(con, self.topic)

    async def start(self) -> None:
        self.written = await asyncio.to_thread(self._prepare_db)
        self.consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await self.consumer.start()
        partitions = await self._partitions()
        self.tps = [TopicPartition(self.topic, p) for p in partitions]
        self.consumer.assign(self.tps)
        for tp in self.tps:
            pos = self.written.get(tp.partition)
            if pos is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, pos)
        log.info(
            "event=sink_started db=%s topic=%s partitions=%d resume=%s",
            self.db, self.topic, len(self.tps),
            ",".join(f"{p}:{o}" for p, o in sorted(self.written.items())) or "beginning",
        )  # fmt: skip

    async def _partitions(self) -> list[int]:
        deadline = time.monotonic() + TOPIC_WAIT_S
        while True:
            # The consumer's own metadata only covers assigned topics; ask the cluster (aiokafka 0.14).
            cluster = await self._consumer._client.fetch_all_metadata()
            parts = cluster.partitions_for_topic(self.topic)
            if parts:
                return sorted(parts)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"topic {self.topic!r} does not exist on {self.settings.bootstrap}: create it first "
                    "(seatledger topics create)"
                )
            log.warning("event=waiting_for_topic topic=%s", self.topic)
            await asyncio.sleep(1.0)

    # ---- loop ------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> SinkStats:
        await self.start()
        try:
            while not stop.is_set():
                self._collect()
                if self.writing is None and self._due():
                    self._start_write()
                full = self.unwritten >= self.settings.sink_buffer_messages
                ready = full or self.buffered >= self._target()  # the next batch has its size
                if ready and self.writing is not None:
                    await asyncio.wait([self.writing])
                elif ready:  # the pause after a batch, or a reader holds the file
                    await asyncio.sleep(min(0.05, max(0.001, self.next_try - time.monotonic())))
                else:
                    await self._fetch(FETCH_TIMEOUT_MS if self.writing is None else WRITING_FETCH_TIMEOUT_MS)
            await self._final_flush()
        finally:
            if self.writing is not None:  # an error elsewhere: let the write finish, then stop
                await asyncio.wait([self.writing])
            await self._consumer.stop()
        self.stats.positions = dict(self.written)
        log.info(
            "event=sink_stopped messages=%d batches=%d rows=%d duplicates=%d lock_waits=%d fetched_while_writing=%d",
            self.stats.messages, self.stats.batches, sum(self.stats.rows.values()),
            self.stats.duplicates, self.stats.lock_waits, self.stats.fetched_while_writing,
        )  # fmt: skip
        return self.stats

    async def _fetch(self, timeout_ms: int) -> None:
        # Records, not messages: a packed record (streams.close.packed) holds up to 256 KiB of
        # messages, so while a close streams in, one fetch (at most fetch_max_bytes) makes a batch
        # of tens of thousands of messages: fewer transactions, each opening the file once.
        room = max(1, self.settings.sink_buffer_messages - self.unwritten)
        want = max(1, self._target() - self.buffered)
        batches = await self._consumer.getmany(*self.tps, timeout_ms=timeout_ms, max_records=min(room, want))
        kinds: TallyCounter[str] = TallyCounter()  # counted per fetch: a metric label lookup per message costs
        self.behind = False
        for tp, records in batches.items():
            # only partitions this fetch read from: a partition whose first offsets were deleted
            # (retention) has a highwater no record of it will ever reach
            hw = self._consumer.highwater(tp)
            self.behind |= bool(records) and hw is not None and hw > records[-1].offset + 1
            for rec in records:
                items = parse_record(tp.partition, rec.offset, rec.value)
                for it in items:  # a decision_block counts as the decisions it holds
                    kind = "unreadable" if it.msg is None else _KIND_LABEL.get(it.msg["kind"], it.msg["kind"])
                    kinds[kind] += it.count
                    self.buffered += it.count
                    self.stats.messages += it.count
                self.buffer.extend(items)
        if self.writing is not None:
            self.stats.fetched_while_writing += sum(kinds.values())
        for kind, n in kinds.items():
            self.metrics.messages_in.labels(kind).inc(n)
        if self.buffer and self.buffer_since is None:
            self.buffer_since = time.monotonic()
        self.metrics.buffered.set(self.unwritten)
        self._update_lag()

    def _target(self) -> int:
        """How many messages the next batch gathers before it is written (or fetching pauses)."""
        if self.ready_since is not None:  # a reader holds the file: consume into memory meanwhile
            return self.settings.sink_buffer_messages
        if self.behind or self.writing is not None:  # while one batch is written, the next grows
            return self.settings.sink_batch_max_messages
        return self.settings.sink_batch_messages

    def _update_lag(self) -> None:
        for tp in self.tps:
            hw = self._consumer.highwater(tp)
            if hw is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, hw - self.written.get(tp.partition, 0)))

    def _due(self) -> bool:
        if not self.buffer or time.monotonic() < self.next_try:
            return False
        age = time.monotonic() - (self.buffer_since or 0)
        return batch_due(self.settings, self.buffered, age, self.behind)

    def _start_write(self) -> asyncio.Future[_Written]:
        """Hand the whole buffer to a thread that writes it; the loop goes on fetching."""
        self.in_flight = (self.buffer, self.buffered, self.buffer_since)
        self.buffer, self.buffered, self.buffer_since = [], 0, None
        self.writing = asyncio.ensure_future(asyncio.to_thread(self._write, self.in_flight[0]))
        return self.writing

    def _write(self, items: list[Item]) -> _Written:
        """In the thread: one attempt to write `items`; (None, ...) when a reader holds the file."""
        t0 = time.monotonic()
        try:
            con = connect(self.db, timeout=0)
        except DatabaseBusy:
            return None, t0, 0.0
        try:
            run(con, f"SET threads = {self.settings.sink_db_threads}")
            res = write_batch(con, items, topic=self.topic)
        finally:
            con.close()
        return res, t0, time.monotonic() - t0

    def _collect(self) -> None:
        """The books for a finished write: its result, or its items back in front of the buffer
        when the file was busy. A write's error is raised here, in the loop, as it was in the thread."""
        if self.writing is None or not self.writing.done():
            return
        writing, (items, messages, since) = self.writing, self.in_flight
        self.writing, self.in_flight = None, ([], 0, None)
        res, t0, elapsed = writing.result()
        if res is None:
            self.buffer, self.buffered = items + self.buffer, messages + self.buffered
            self.buffer_since = since
            self._busy(t0)
            return
        if self.ready_since is not None:
            self.metrics.lock_wait_seconds.observe(t0 - self.ready_since)
        self.ready_since = None
        self.backoff = 0.05
        # the file stays free a moment, or back-to-back batches would starve readers retrying to open it
        self.next_try = time.monotonic() + READER_GAP_S
        self.written = res.positions
        self._account(res, elapsed)

    def _busy(self, t0: float) -> None:
        self.metrics.lock_waits.inc()
        self.stats.lock_waits += 1
        if self.ready_since is None:
            self.ready_since = t0
        elif t0 - self.ready_since > 10 and self.backoff >= MAX_BACKOFF_S:
            log.warning(
                "event=db_busy waited_s=%.1f buffered=%d hint=%s", t0 - self.ready_since, self.buffered,
                "a reader holds the DuckDB file; hold read connections briefly",
            )  # fmt: skip
        self.next_try = t0 + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)

    def _account(self, res: BatchResult, elapsed: float) -> None:
        m, s = self.metrics, self.stats
        m.batches.inc()
        m.batch_seconds.observe(elapsed)
        for table, n in res.stored.items():
            m.rows_written.labels(table).inc(n)
            s.rows[table] += n
        for kind, n in res.duplicates.items():
            m.duplicates.labels(kind).inc(n)
        if res.rejects:
            m.rejects.inc(res.rejects)
        m.months_completed.inc(len(res.months_completed))
        m.invoices.inc(res.invoices_issued)
        m.buffered.set(self.unwritten)
        s.batches += 1
        s.duplicates += sum(res.duplicates.values())
        s.months_completed.extend(res.months_completed)
        log.info(
            "event=batch_written batch=%s messages=%d rows=%d duplicates=%d rejects=%d seconds=%.3f rows_per_s=%.0f",
            res.batch_id, res.messages, res.rows_written, sum(res.duplicates.values()), res.rejects, elapsed,
            res.rows_written / elapsed if elapsed > 0 else 0,
        )  # fmt: skip
        if res.digest_mismatches:
            log.warning("event=digest_mismatch batch=%s count=%d", res.batch_id, res.digest_mismatches)
        for month in res.months_completed:
            log.info("event=month_complete month=%s batch=%s", month, res.batch_id)
        if res.invoices_issued or res.adjustments_created or res.adjustments_applied:
            log.info(
                "event=invoices batch=%s issued=%d adjustments_created=%d adjustments_applied=%d",
                res.batch_id, res.invoices_issued, res.adjustments_created, res.adjustments_applied,
            )  # fmt: skip

    async def _final_flush(self) -> None:
        """The write in flight, then the rest of the buffer, retried while a reader holds the file."""
        deadline = time.monotonic() + FINAL_FLUSH_TIMEOUT_S
        while self.writing is not None or self.buffer:
            await asyncio.wait([self.writing or self._start_write()])
            self._collect()
            if not self.buffer or self.ready_since is None:
                continue
            if time.monotonic() > deadline:
                log.error(
                    "event=final_flush_failed buffered=%d note=%s", self.buffered,
                    "not written; they will be read again from Kafka at the next start",
                )  # fmt: skip
                return
            await asyncio.sleep(max(0.0, self.next_try - time.monotonic()))


async def run_sink(settings: Settings, stop: asyncio.Event | None = None, *, serve_metrics: bool = True) -> SinkStats:
    """Run until `stop` is set (the command sets it on SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    metrics = SinkMetrics()
    if serve_metrics and settings.sink_metrics_port >= 0:
        metrics.serve(settings.metrics_host, settings.sink_metrics_port)
    return await Sink(settings, metrics).run(stop)
