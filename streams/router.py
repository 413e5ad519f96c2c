"""The router: events topic -> each company's home partition of the routed topic.

Off Faust's per-message path: a plain aiokafka consumer of the events topic (its own group
`<app_id>-router`, no auto-commit) and an idempotent aiokafka producer, run as a task in the
worker's event loop. Per `getmany()` batch: route every message (streams.routing, pure), send the
accepted events re-packed per company to their home partitions, the DLQ records and the rejection
counts, wait for every send of the batch to be acknowledged, then commit the batch's offsets
(at-least-once: a crash before the commit re-routes the batch; the fold deduplicates). A close
marker of source partition p is forwarded to every routed partition after everything read before
it was acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from schemas.control import (
    CONTROL_KEY,
    ESTIMATE_MONTH,
    rejected_control,
    routed_close_marker,
    routed_estimate_marker,
)
from streams.kafka_task import batch_producer, run_restarting, set_lag
from streams.metrics import WorkerMetrics
from streams.routing import Packer, Routed, Source, failed, home_partition, route_message
from streams.settings import Settings

log = logging.getLogger("seatledger.worker")

ROUTER_BATCH = 5000  # messages per router batch (getmany max_records)
ROUTER_WITHIN = 0.05  # seconds getmany waits for a first record
ROUTER_COMMIT_INTERVAL = 0.5  # seconds between router commits (each after all acks) while busy

# source partition -> [(offset, rejected elements)] of the messages of a batch with rejections
Rejections = dict[int, list[tuple[int, int]]]


class Router:
    def __init__(self, settings: Settings, metrics: WorkerMetrics, app: faust.App):
        self.settings = settings
        self.metrics = metrics
        self.app = app
        self.n = settings.partitions
        self.consumer: Any = None  # AIOKafkaConsumer once running
        self.producer: Any = None  # AIOKafkaProducer once running
        self.committed: dict[Any, int] = {}  # TopicPartition -> offset committed last
        self._futs: list[asyncio.Future] = []  # sends not yet known to be acknowledged

    async def run_restarting(self) -> None:
        """Run until cancelled; a broken connection or a failed send: restart from the last commit."""
        await run_restarting(self.run, "router_restart")

    async def run(self) -> None:
        self.producer, self.consumer = self._clients()
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                s = self.settings
                log.info("event=router_started group=%s-router topic=%s", s.worker_app_id, s.topic_events)
                await self._loop()
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    def _clients(self) -> tuple[Any, Any]:
        """(producer, consumer), not started."""
        s = self.settings
        conf = self.app.conf
        kw = s.kafka_client_kwargs()
        producer = batch_producer(s, f"{s.worker_app_id}-router")
        consumer = AIOKafkaConsumer(
            s.topic_events, **kw, group_id=f"{s.worker_app_id}-router", enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20,
            session_timeout_ms=int(float(conf.broker_session_timeout) * 1000),
            heartbeat_interval_ms=int(float(conf.broker_heartbeat_interval) * 1000),
            client_id=f"{s.worker_app_id}-router",
        )  # fmt: skip
        return producer, consumer

    async def _loop(self) -> None:
        """Route batch after batch; commit at most every ROUTER_COMMIT_INTERVAL while busy, and
        when idle. Batches are pipelined in between (no round trip per batch)."""
        offsets: dict[Any, int] = {}  # routed, sends not yet all acknowledged / not committed
        last_commit = time.monotonic()
        while True:
            batches = await self.consumer.getmany(timeout_ms=int(ROUTER_WITHIN * 1000), max_records=ROUTER_BATCH)
            if batches:
                await self.route_batch(batches)
                offsets.update({tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs})
            if offsets and (not batches or time.monotonic() - last_commit >= ROUTER_COMMIT_INTERVAL):
                await self._commit(offsets)
                offsets = {}
                last_commit = time.monotonic()

    async def _commit(self, offsets: dict[Any, int]) -> None:
        """Commit only what every send was acknowledged for (at-least-once)."""
        await self._acked()
        try:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)
        except (CommitFailedError, KafkaError) as exc:  # rebalanced: the new owner re-routes
            log.warning("event=router_commit_failed error=%r", exc)

    async def _send(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        self._futs.append(await self.producer.send(topic, value, key=key, partition=partition))

    async def _acked(self) -> None:
        futs, self._futs = self._futs, []
        if futs:
            await asyncio.gather(*futs)

    async def route_batch(self, batches: dict[Any, list[Any]]) -> None:
        """One `getmany()` result: TopicPartition -> ConsumerRecords."""
        packer = Packer()
        rej: Rejections = defaultdict(list)
        n_events = n_derived = n_msgs = 0
        for tp, recs in batches.items():
            n_msgs += len(recs)
            part = tp.partition
            for msg in recs:
                try:  # route_message never raises; should it all the same, the message is a dead letter
                    r = route_message(msg.value, topic=tp.topic, partition=part, offset=msg.offset)
                except Exception as exc:
                    log.exception("event=router_error partition=%d offset=%d error=%r", part, msg.offset, exc)
                    r = failed(msg.value or b"", exc, Source(tp.topic, part, msg.offset))
                n_events += len(r.events)
                n_derived += len(r.derived)
                await self._dispatch(r, part, msg.offset, packer, rej)
        await self._flush_forwards(packer)
        await self._flush_rejections(rej)
        self.metrics.messages_in.inc(n_msgs)
        if n_events:
            self.metrics.events_in.inc(n_events)
        if n_derived:
            self.metrics.derived.inc(n_derived)

    async def _dispatch(self, r: Routed, part: int, offset: int, packer: Packer, rej: Rejections) -> None:
        """One routed message: dead letters now, events into the packer, a close marker after
        everything before it."""
        if r.dead:
            await self._dead_letters(r.dead)
            rej[part].append((offset, len(r.dead)))
        if r.company_id is not None:  # set with the accepted events
            if r.raw_elements is not None:
                packer.add_raw(r.company_id, r.raw_elements, len(r.events))
            else:
                packer.add(r.company_id, r.events)
        for home, d in r.derived:
            packer.add(home, [d])
        if r.control is not None:
            await self._forward_marker(r.control, part, packer, rej)

    async def _dead_letters(self, dead: list[dict]) -> None:
        for dl in dead:
            self.metrics.rejected.labels(dl["reason_class"]).inc()
            key = None
            if isinstance(dl["original"], dict) and isinstance(dl["original"].get("company_id"), str):
                key = dl["original"]["company_id"].encode()
            await self._send(self.settings.topic_dlq, key, orjson.dumps(dl), None)

    async def _forward_marker(self, ctl: dict, part: int, packer: Packer, rej: Rejections) -> None:
        """A close or estimate marker: send what was read before it, wait until the broker has it,
        then the marker to every routed partition, and wait again."""
        await self._flush_forwards(packer)
        await self._flush_rejections(rej)
        await self._acked()  # every event read before the marker is on the broker
        parts = int(ctl.get("partitions") or self.n)
        if ctl[CONTROL_KEY] == ESTIMATE_MONTH:
            routed = routed_estimate_marker(ctl["month"], ctl["estimate_id"], ctl["as_of"], part, parts)
        else:
            routed = routed_close_marker(ctl["month"], str(ctl.get("close_id", "")), part, parts)
        marker = orjson.dumps(routed)
        for q in range(self.n):
            await self._send(self.settings.topic_routed, None, marker, q)
        await self._acked()
        log.info(
            "event=marker_forwarded kind=%s month=%s source_partition=%d id=%s",
            ctl[CONTROL_KEY], ctl["month"], part, ctl.get("close_id") or ctl.get("estimate_id"),
        )  # fmt: skip

    async def _flush_forwards(self, packer: Packer) -> None:
        topic = self.settings.topic_routed
        for cid, value in packer.drain():
            await self._send(topic, cid.encode(), value, home_partition(cid, self.n))

    async def _flush_rejections(self, rej: Rejections) -> None:
        for sp, items in rej.items():
            await self._send(self.settings.topic_routed, None, orjson.dumps(rejected_control(sp, items)), sp % self.n)
        rej.clear()

    async def update_lag(self) -> None:
        """The consumer-lag gauge of the events topic: highwater - last committed offset."""
        set_lag(self.metrics.lag, self.consumer, lambda tp: self.committed.get(tp, 0))
