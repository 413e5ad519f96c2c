"""A small producer API for upstream services and `seatledger publish`.

Every event is validated against the contract before anything is sent, so a publisher learns about
a bad event from us (line number and reason), not from the dead-letter topic. Messages are keyed by
`company_id`; the value is the event's own JSON object again (extras kept), or, with packing, a JSON
array of consecutive events of one company. The partition is aiokafka's default (murmur2 of the
key); the worker does not trust it and routes each company to its home partition itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from schemas.decode import accept, parse_message
from streams.settings import Settings

# Well below the broker's default message.max.bytes (1 MiB): a pack is cut before it gets bigger.
MAX_MESSAGE_BYTES = 512 * 1024
# Delivery futures awaited every this many messages: bounds memory, keeps batching effective.
INFLIGHT_WINDOW = 5000


# --------------------------------------------------------------------------------------------------
# Pure logic: validate lines, pack events into messages


@dataclass(frozen=True, slots=True)
class Accepted:
    line_no: int
    company_id: str
    obj: dict  # the event's JSON object as published (extra fields included)


@dataclass(frozen=True, slots=True)
class Rejected:
    line_no: int
    reason: str


def check_line(line_no: int, raw: bytes | str) -> list[Accepted | Rejected]:
    """One NDJSON line to its accepted events and rejections, judged as the worker will judge it
    (`schemas.decode`): a line holds one event object, or a JSON array of one company's events,
    each element judged on its own."""
    parsed = parse_message(raw)
    good, bad = accept(parsed.items)
    out: list[tuple[int, Accepted | Rejected]] = [(i, Accepted(line_no, cid, item)) for i, item, _, cid in good]
    for r in parsed.rejected + bad:
        where = f"element {r.index}: " if parsed.packed and r.raw is not raw else ""
        out.append((r.index, Rejected(line_no, where + r.reason)))
    return [x for _, x in sorted(out, key=lambda p: p[0])]


def check_lines(lines: Iterable[tuple[int, bytes | str]]) -> Iterator[Accepted | Rejected]:
    """Validate a stream of (line number, raw line); blank lines are skipped, nothing is held."""
    for line_no, raw in lines:
        if not raw.strip():
            continue
        yield from check_line(line_no, raw)


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes
    value: bytes
    events: int


@dataclass
class _Pending:
    parts: list[bytes] = field(default_factory=list)
    size: int = 2  # the brackets of an array


@dataclass
class Packer:
    """Groups events of one company into messages of up to `pack` events.

    Events are held per company for a window of at most `window` events, so time-ordered input in
    which companies interleave still packs well. Order is kept within a company, which is all the
    contract needs: a company's events share a key, and facts do not depend on order anyway.
    A company's pending pack is flushed when it holds `pack` events, when the next event would
    make it exceed `max_bytes`, when the window is full (all packs), and at the end (`flush`).
    A message of one event is the bare JSON object; of several, a JSON array.
    """

    pack: int = 1
    max_bytes: int = MAX_MESSAGE_BYTES
    window: int = 20_000
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _held: int = 0

    def __post_init__(self) -> None:
        if self.pack < 1:
            raise ValueError("pack must be at least 1")

    def add(self, company_id: str, obj: dict) -> list[Message]:
        encoded = orjson.dumps(obj)
        if self.pack == 1:
            return [Message(company_id.encode(), encoded, 1)]
        out: list[Message] = []
        pending = self._pending.get(company_id)
        if pending is not None and pending.size + len(encoded) + 1 > self.max_bytes:
            out.append(self._flush_one(company_id))
            pending = None
        if pending is None:
            pending = self._pending[company_id] = _Pending()
        pending.parts.append(encoded)
        pending.size += len(encoded) + 1
        self._held += 1
        if len(pending.parts) >= self.pack:
            out.append(self._flush_one(company_id))
        elif self._held >= self.window:
            out += self.flush()
        return out

    def _flush_one(self, company_id: str) -> Message:
        parts = self._pending.pop(company_id).parts
        self._held -= len(parts)
        value = parts[0] if len(parts) == 1 else b"[" + b",".join(parts) + b"]"
        return Message(company_id.encode(), value, len(parts))

    def flush(self) -> list[Message]:
        return [self._flush_one(c) for c in list(self._pending)]


def default_partition(company_id: str, partitions: int) -> int:
    """The partition aiokafka's (and the Java client's) default partitioner picks for a key.

    Not ours to rely on: other publishers hash differently (librdkafka: CRC32) and the worker
    re-routes. Useful to tests and to explain where a message landed.
    """
    return (murmur2(company_id.encode()) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------------------------------
# I/O: the producer


@dataclass
class PublishSummary:
    sent_events: int = 0
    sent_messages: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def ok(self) -> bool:
        return not self.rejected


class Publisher:
    """`async with Publisher(settings) as pub: summary = await pub.send_events(lines)`.

    Idempotent producer (no duplicates from its own retries), batched (linger, large batches).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        pack: int = 1,
        linger_ms: int = 20,
        max_batch_size: int = 256 * 1024,
        **producer_kwargs: Any,
    ):
        self.settings = settings
        self.topic = topic or settings.topic_events
        self.pack = pack
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_kwargs(),
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=max_batch_size,
            max_request_size=max(MAX_MESSAGE_BYTES * 2, max_batch_size),
            **producer_kwargs,
        )

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except BaseException:
            # a start that failed (no broker) leaves the producer's client open: closed here, or
            # Python reports "Unclosed AIOKafkaProducer" on stderr after the user's error message
            await self._producer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()  # flushes what is still buffered

    async def topic_partitions(self) -> int:
        """Ask the broker now (not the cached metadata) how many partitions the topic has: 0 when it
        does not exist. A health check: raises when the broker does not answer."""
        metadata = await self._producer.client.fetch_all_metadata()
        return len(metadata.partitions_for_topic(self.topic) or ())

    async def send_message(self, message: Message) -> asyncio.Future:
        """Queue one message; the returned future resolves when the broker acknowledged it."""
        return await self._producer.send(self.topic, message.value, key=message.key)

    async def send_events(
        self,
        lines: Iterable[tuple[int, bytes | str]],
        *,
        on_lines: Callable[[int], None] | None = None,
    ) -> PublishSummary:
        """Validate and send every line; invalid ones are reported in the summary, not sent.

        `on_lines(n)` is called as lines are consumed (for a progress bar). Returns after every
        sent message was acknowledged.
        """
        summary = PublishSummary()
        packer = Packer(self.pack)
        pending: list[asyncio.Future] = []

        async def emit(messages: list[Message]) -> None:
            for m in messages:
                pending.append(await self.send_message(m))
                summary.sent_messages += 1
                summary.sent_events += m.events
            if len(pending) >= INFLIGHT_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()

        for item in check_lines(_counting(lines, on_lines)):
            if isinstance(item, Rejected):
                summary.rejected.append((item.line_no, item.reason))
            else:
                await emit(packer.add(item.company_id, item.obj))
        await emit(packer.flush())
        await asyncio.gather(*pending)
        return summary


def _counting(
    lines: Iterable[tuple[int, bytes | str]], on_lines: Callable[[int], None] | None, every: int = 1000
) -> Iterator[tuple[int, bytes | str]]:
    if on_lines is None:
        yield from lines
        return
    n = 0
    for line in lines:
        yield line
        n += 1
        if n == every:
            on_lines(n)
            n = 0
    if n:
        on_lines(n)


def numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for a binary file, streamed."""
    for i, line in enumerate(stream, start=1):
        yield i, line.rstrip(b"\r\n")
