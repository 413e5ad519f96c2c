"""The worker process of `seatledger worker`: router -> routed topic -> fold agent -> snapshots.

- router (`Router`, events topic; a plain aiokafka consumer in group `<app_id>-router` and an
  idempotent aiokafka producer, run as a Faust task in the same event loop, off Faust's
  per-message path): validates every element (dead letters to the DLQ), forwards the accepted
  events of each company, re-packed as JSON arrays, to the company's HOME partition of the routed
  topic (`streams.routing.home_partition`), plus derived R5 trial events to the guest's home
  company; forwards close markers to every routed partition after the events; commits its
  offsets only after the sends were acknowledged.
- fold (routed topic, concurrency 1, tables co-partitioned with it): merges facts into the tables
  (streams/state.py), closes months and emits amendments (streams/close.py).

The tables are Faust memory-store tables with changelogs on the broker. The agents read the store's
dict directly and send their changelog records themselves (coalesced per message, same JSON bytes
as Faust's serializer) on the current routed partition, only when
a merged value changed (no per-read Faust overhead, and writes work inside `take_events`, where
`table[k] = v` raises TypeError: faust issue 497).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from projections.prices import PriceBook
from projections.rulesets import CURRENT, get_ruleset
from schemas.control import CLOSE_MONTH, CONTROL_KEY, REJECTED, control_of, rejected_control, routed_close_marker
from streams.close import Closer
from streams.metrics import WorkerMetrics
from streams.routing import Packer, home_partition
from streams.settings import Settings
from streams.state import KV, TABLES, FoldState, Stores, new_stats

log = logging.getLogger("seatledger.worker")

ROUTER_BATCH = 5000  # messages per router batch (getmany max_records)
ROUTER_WITHIN = 0.05  # seconds getmany waits for a first record
ROUTER_COMMIT_INTERVAL = 0.5  # seconds between router commits (each after all acks) while busy
FOLD_BATCH = 500  # routed messages per fold batch (their changelog writes are coalesced)
FOLD_WITHIN = 0.1  # seconds a partial fold batch waits: fewer, larger changelog flushes
SEND_YIELD_EVERY = 2000  # snapshot sends between yields to the event loop during a close
LAG_INTERVAL = 5.0


class BatchSender:
    """Many records to aiokafka record batches per (topic, partition), one `send_batch` each.

    Per-record `send()` (aiokafka's or Faust's) costs tens of microseconds in Python; a changelog or
    snapshot record appended to a BatchBuilder costs a few. Uses the aiokafka producer inside Faust's
    producer (`Producer._producer`, private), so Faust's commit-time `producer.flush()` still waits
    for these batches before offsets are committed.
    """

    def __init__(self, app: faust.App):
        self.app = app

    @property
    def _aiokafka(self):
        inner = getattr(self.app.producer, "_producer", None)
        if inner is None:
            raise RuntimeError("Faust's producer has no aiokafka producer (not started?)")
        return inner

    async def send(self, records: list[tuple[str, int, bytes | None, bytes | None]]) -> None:
        """(topic, partition, key, value) records; per (topic, partition) order is kept."""
        if not records:
            return
        producer = self._aiokafka
        by_tp: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, partition, key, value in records:
            by_tp.setdefault((topic, partition), []).append((key, value))
        for (topic, partition), recs in by_tp.items():
            batch = producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await producer.send_batch(batch, topic, partition=partition)
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"record of {len(value or b'')} bytes does not fit a batch for {topic}")
            await producer.send_batch(batch, topic, partition=partition)


class Router:
    """The router, off Faust's per-message path: a plain aiokafka consumer of the events topic (its
    own group `<app_id>-router`, no auto-commit) and an idempotent aiokafka producer, run as a task
    in the worker's event loop. Per `getmany()` batch: route every message (streams.routing), send
    the accepted events re-packed per company to their home partitions, the DLQ records and the
    rejection counts, wait for every send of the batch to be acknowledged, then commit the batch's
    offsets (at-least-once: a crash before the commit re-routes the batch; the fold deduplicates).
    A close marker of source partition p is forwarded to every routed partition after everything
    read before it was acknowledged by the broker."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics, app: faust.App):
        self.settings = settings
        self.metrics = metrics
        self.app = app
        self.n = settings.partitions
        self.consumer: Any = None
        self.producer: Any = None
        self.committed: dict[Any, int] = {}
        self._futs: list = []

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.errors import CommitFailedError, KafkaError

        s = self.settings
        conf = self.app.conf
        kw = s.kafka_client_kwargs()
        self.producer = AIOKafkaProducer(
            **kw, enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024, client_id=f"{s.worker_app_id}-router",
        )  # fmt: skip
        self.consumer = AIOKafkaConsumer(
            s.topic_events, **kw, group_id=f"{s.worker_app_id}-router", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20,
            session_timeout_ms=int(float(conf.broker_session_timeout) * 1000),
            heartbeat_interval_ms=int(float(conf.broker_heartbeat_interval) * 1000),
            client_id=f"{s.worker_app_id}-router",
        )  # fmt: skip
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                log.info("event=router_started group=%s-router topic=%s", s.worker_app_id, s.topic_events)
                offsets: dict = {}  # routed, sends not yet all acknowledged / not committed
                last_commit = time.monotonic()
                while True:
                    batches = await self.consumer.getmany(
                        timeout_ms=int(ROUTER_WITHIN * 1000), max_records=ROUTER_BATCH
                    )
                    if batches:
                        await self.route_batch(batches)
                        offsets.update({tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs})
                    if offsets and (not batches or time.monotonic() - last_commit >= ROUTER_COMMIT_INTERVAL):
                        # Commit only what every send was acknowledged for (at-least-once); batches
                        # are pipelined in between (no round trip per batch).
                        await self._acked()
                        try:
                            await self.consumer.commit(offsets)
                            self.committed.update(offsets)
                        except (CommitFailedError, KafkaError) as exc:  # rebalanced: the new owner re-routes
                            log.warning("event=router_commit_failed error=%r", exc)
                        offsets = {}
                        last_commit = time.monotonic()
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    async def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        self._futs.append(await self.producer.send(topic, value, key=key, partition=partition))

    async def _acked(self) -> None:
        futs, self._futs = self._futs, []
        if futs:
            await asyncio.gather(*futs)

    async def _flush_forwards(self, packer: Packer) -> None:
        topic = self.settings.topic_routed
        for cid, value in packer.drain():
            await self._send(topic, cid.encode(), value, home_partition(cid, self.n))

    async def _flush_rejections(self, rej: dict[int, list[tuple[int, int]]]) -> None:
        for sp, items in rej.items():
            await self._send(self.settings.topic_routed, None, orjson.dumps(rejected_control(sp, items)), sp % self.n)
        rej.clear()

    async def route_batch(self, batches: dict) -> None:
        from streams.routing import route_message

        metrics = self.metrics
        s = self.settings
        n = self.n
        packer = Packer()
        rej: dict[int, list[tuple[int, int]]] = defaultdict(list)
        n_events = n_derived = n_msgs = 0
        for tp, recs in batches.items():
            n_msgs += len(recs)
            topic, part = tp.topic, tp.partition
            for msg in recs:
                try:
                    r = route_message(msg.value, topic=topic, partition=part, offset=msg.offset)
                except Exception as exc:  # never let one message stop the router
                    log.exception("event=router_error partition=%d offset=%d error=%r", part, msg.offset, exc)
                    continue
                if r.dead:
                    for dl in r.dead:
                        metrics.rejected.labels(dl["reason_class"]).inc()
                        key = None
                        if isinstance(dl["original"], dict) and isinstance(dl["original"].get("company_id"), str):
                            key = dl["original"]["company_id"].encode()
                        await self._send(s.topic_dlq, key, orjson.dumps(dl), None)
                    rej[part].append((msg.offset, len(r.dead)))
                if r.events:
                    if r.raw_elements is not None:
                        packer.add_raw(r.company_id, r.raw_elements, len(r.events))
                    else:
                        packer.add(r.company_id, r.events)
                    n_events += len(r.events)
                for home, d in r.derived:
                    packer.add(home, [d])
                    n_derived += 1
                if r.control is not None:
                    await self._flush_forwards(packer)
                    await self._flush_rejections(rej)
                    await self._acked()  # every event read before the marker is on the broker
                    ctl = r.control
                    parts = int(ctl.get("partitions") or n)
                    marker = orjson.dumps(routed_close_marker(ctl["month"], str(ctl.get("close_id", "")), part, parts))
                    for q in range(n):
                        await self._send(s.topic_routed, None, marker, q)
                    await self._acked()
                    log.info(
                        "event=close_marker_forwarded month=%s source_partition=%d close_id=%s",
                        ctl["month"], part, ctl.get("close_id"),
                    )  # fmt: skip
        await self._flush_forwards(packer)
        await self._flush_rejections(rej)
        metrics.messages_in.inc(n_msgs)
        if n_events:
            metrics.events_in.inc(n_events)
        if n_derived:
            metrics.derived.inc(n_derived)

    async def update_lag(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        try:
            tps = consumer.assignment()
        except Exception:
            return
        for tp in tps:
            try:
                hw = consumer.highwater(tp)
            except Exception:
                continue
            if hw is not None:
                committed = self.committed.get(tp, 0)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - committed))


TRIM_INTERVAL = 0.5  # seconds between checks whether the worker went quiet (then trim the heap)
TRIM_BUSY_INTERVAL = 30.0  # seconds between trims while messages keep flowing


def malloc_trim():
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def metrics_total(metrics: WorkerMetrics) -> float:
    """Messages routed + events folded so far (changes while the worker is busy)."""
    return metrics.messages_in._value.get() + metrics.folded._value.get()


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{h.strip()}" for h in settings.bootstrap.split(",") if h.strip()]


def credentials(settings: Settings) -> Any:
    """Faust credentials from the same settings every other client uses (SASL and/or SSL)."""
    ctx = settings.ssl_context()
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


@dataclass
class Worker:
    """The app and the objects its agents share (exposed for tests and the benchmark)."""

    app: faust.App
    settings: Settings
    state: FoldState
    closer: Closer
    metrics: WorkerMetrics
    tables: dict[str, Any]


def create_app(settings: Settings, metrics: WorkerMetrics | None = None) -> Worker:
    n = settings.partitions
    app = faust.App(
        settings.worker_app_id,
        broker=broker_urls(settings),
        broker_credentials=credentials(settings),
        store="memory://",
        datadir=str((settings.data_dir / "worker").resolve()),
        env_prefix="SEATLEDGER_FAUST_",  # so WEB_PORT, BROKER_URL, APP_STORE ... do not leak in
        web_enabled=False,
        autodiscover=False,
        topic_partitions=n,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_max_request_size=4 * 1024 * 1024,
        producer_linger_ms=5,
        producer_max_batch_size=512 * 1024,
        stream_buffer_maxsize=4096,
        consumer_max_fetch_size=16 * 1024 * 1024,  # routed messages are packed (up to 512 KiB)
        stream_wait_empty=False,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # A restarted worker (after kill -9) waits for the dead member's session to expire.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        key_serializer="json",  # table keys are str; JSON keeps them str after recovery
        value_serializer="json",
    )
    metrics = metrics or WorkerMetrics()
    routed_topic = app.topic(settings.topic_routed, key_serializer="raw", value_serializer="raw", partitions=n)

    tables = {name: app.Table(name, default=None, partitions=n, key_type=str, value_type=None) for name in TABLES}
    current = {"partition": 0}
    # Changelog writes of the message being processed, coalesced per key (the last value wins) and
    # sent straight to the producer after the message: no Faust FutureMessage per write, and no
    # "producer buffer full" stalls. Same bytes as Faust's json serializer, so recovery reads them.
    pending_writes: dict[tuple[str, str, int], Any] = {}

    def bind(table) -> KV:
        name = table.changelog_topic.get_topic_name()

        def write(key: str, value: Any) -> None:
            pending_writes[(name, key, current["partition"])] = value

        def delete(key: str) -> None:
            pending_writes[(name, key, current["partition"])] = None

        return KV({}, write, delete)

    stores = Stores(**{name: bind(t) for name, t in tables.items()})
    state = FoldState(stores, n)
    prices = PriceBook.load(settings.prices)
    closer = Closer(state, prices, get_ruleset(CURRENT.version))
    state.on_new_account = closer.account_seen
    worker = Worker(app, settings, state, closer, metrics, tables)

    def attach_stores() -> None:
        """Point the KV objects at the memory stores' dicts (after recovery, before processing)."""
        for name, t in tables.items():
            getattr(stores, name).raw = t.data.data
        state.reset_caches()
        closer.reset()

    sender = BatchSender(app)

    async def flush_writes() -> int:
        n_w = len(pending_writes)
        if n_w:
            items = list(pending_writes.items())
            pending_writes.clear()
            await sender.send(
                [
                    (topic, partition, orjson.dumps(key), None if value is None else orjson.dumps(value))
                    for (topic, key, partition), value in items
                ]
            )
        return n_w

    router = Router(settings, metrics, app)

    @app.task
    async def run_router() -> None:
        while True:  # a broken connection or a failed send: restart from the last commit
            try:
                await router.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("event=router_restart error=%r", exc)
                await asyncio.sleep(1.0)

    # ---- fold --------------------------------------------------------------------------------------

    snapshots_topic = settings.topic_snapshots

    async def emit(emissions) -> int:
        """Snapshot messages, keyed by company (partition_done: by partition number); a company's
        messages all go to its home partition of the snapshots topic, in order."""
        sent = 0
        chunk: list = []
        for key, value, part in emissions:
            if part is None:
                part = home_partition(key.decode(), n)
            chunk.append((snapshots_topic, part % n, key, value))
            sent += 1
            if len(chunk) >= SEND_YIELD_EVERY:
                await sender.send(chunk)
                chunk = []
                await flush_writes()
        await sender.send(chunk)
        await flush_writes()
        return sent

    def count_stats(partition: int, offset: int, res) -> None:
        key = str(partition)
        st = stores.stats.get(key) or new_stats()
        if offset <= st["off"]:
            return  # redelivered after a restart: already counted
        stores.stats.put(
            key,
            {
                **st,
                "events": st["events"] + res.events,
                "duplicates": st["duplicates"] + res.duplicates,
                "late": st["late"] + res.late,
                "off": offset,
            },
        )

    def count_rejections(partition: int, ctl: dict) -> None:
        key = str(partition)
        st = stores.stats.get(key) or new_stats()
        sp = str(ctl["source_partition"])
        last = st["rej_off"].get(sp, -1)
        fresh = [(o, c) for o, c in ctl["items"] if o > last]
        if not fresh:
            return
        stores.stats.put(
            key,
            {
                **st,
                "rejected": st["rejected"] + sum(c for _, c in fresh),
                "rej_off": {**st["rej_off"], sp: max(o for o, _ in fresh)},
            },
        )

    def update_close_gauges() -> None:
        for month, (seen, expected, closed) in closer.progress().items():
            metrics.close_markers.labels(month).set(seen)
            metrics.close_expected.labels(month).set(expected)
            metrics.partitions_closed.labels(month).set(closed)

    async def fold_one(event) -> None:
        msg = event.message
        p = msg.partition
        current["partition"] = p
        try:
            data = orjson.loads(event.value)
        except orjson.JSONDecodeError as exc:
            log.error("event=routed_not_json partition=%d offset=%d error=%r", p, msg.offset, exc)
            return
        ctl = control_of(data)
        if ctl is not None:
            kind = ctl.get(CONTROL_KEY)
            if kind == REJECTED:
                count_rejections(p, ctl)
            elif kind == CLOSE_MONTH:
                month = closer.on_marker(ctl, p)
                if month is not None:
                    t0 = time.monotonic()
                    before = (closer.counts.decisions, closer.counts.company_months)
                    sent = await emit(closer.close(p, month))
                    dt = time.monotonic() - t0
                    metrics.close_seconds.set(dt)
                    metrics.snapshots.labels("decision").inc(closer.counts.decisions - before[0])
                    metrics.snapshots.labels("company_month").inc(closer.counts.company_months - before[1])
                    metrics.snapshots.labels("partition_done").inc()
                    log.info("event=close_emitted month=%s partition=%d messages=%d seconds=%.3f", month, p, sent, dt)
                update_close_gauges()
            return
        items = data if isinstance(data, list) else [data]
        res = state.fold_items(items, p)
        count_stats(p, msg.offset, res)
        metrics.folded.inc(res.events)
        if res.changed:
            metrics.fact_changes.inc(res.changed)
        if res.duplicates:
            metrics.duplicates.inc(res.duplicates)
        if res.late:
            metrics.late.inc(res.late)
        if res.errors:
            metrics.fold_errors.inc(res.errors)
        for aff in res.affected.values():
            before = (closer.counts.decisions, closer.counts.amendments, closer.counts.company_months)
            await emit(closer.recompute(p, aff))
            metrics.amendments.inc(closer.counts.amendments - before[1])
            metrics.snapshots.labels("decision").inc(
                closer.counts.decisions - before[0] + closer.counts.amendments - before[1]
            )
            metrics.snapshots.labels("company_month").inc(closer.counts.company_months - before[2])

    @app.agent(routed_topic, name="fold", concurrency=1)
    async def fold(stream):
        """Batches of routed messages: the changelog records of a whole batch are coalesced per key
        and sent once, before the batch is acknowledged (take_events acks after the body ran)."""
        attach_stores()
        async for batch in stream.take_events(FOLD_BATCH, FOLD_WITHIN):
            for event in batch:
                await fold_one(event)
            await flush_writes()

    trim = malloc_trim()

    @app.timer(TRIM_INTERVAL)
    async def release_memory() -> None:
        """Give freed heap pages back to the OS (glibc malloc_trim) once the worker goes quiet after
        work, and at most every TRIM_BUSY_INTERVAL while busy: the transient fetch buffers, routed
        messages and changelog batches otherwise stay in the process's RSS (close bench: ~5.4 KB
        per account-month without, ~1 KB with). Trimming every second while busy cost 40 % of the
        packed throughput (freed pages are faulted in again), hence only when quiet."""
        if trim is None:
            return
        seen = metrics_total(metrics)
        now = time.monotonic()
        if seen != busy["seen"]:
            busy["seen"] = seen
            busy["dirty"] = True
            if now - busy["last"] < TRIM_BUSY_INTERVAL:
                return
        elif not busy["dirty"]:
            return
        trim(0)
        busy["dirty"] = False
        busy["last"] = now

    busy = {"seen": -1.0, "dirty": False, "last": time.monotonic()}

    @app.timer(LAG_INTERVAL)
    async def lag_gauge() -> None:
        await router.update_lag()
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != settings.topic_routed:
                continue
            try:
                hw = consumer.highwater(tp)
                committed = consumer._committed_offset.get(tp)
            except Exception:
                continue
            if hw is not None:
                metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - (committed or 0)))

    @app.task
    async def started() -> None:
        log.info(
            "event=worker_started app_id=%s bootstrap=%s partitions=%d events=%s routed=%s snapshots=%s",
            settings.worker_app_id, settings.bootstrap, n, settings.topic_events,
            settings.topic_routed, settings.topic_snapshots,
        )  # fmt: skip

    worker.router = router  # type: ignore[attr-defined]  # the Router (plain aiokafka)
    worker.fold = fold  # type: ignore[attr-defined]
    return worker
