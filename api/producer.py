"""The API's way into Kafka: the idempotent producer of `streams.publisher`, started on first use.

`publish` returns only when the broker acknowledged every message of the request. When Kafka does
not answer within the timeout (or the producer cannot start), it raises KafkaUnavailable and the
API answers 503: the client retries the whole request. Messages of a failed request may still
reach Kafka later; the retry then sends them again and they count once, because the worker keeps
one fact per (company_id, event_id). After a failure the producer is replaced, so a broker that
comes back is used at the next request.
"""

from __future__ import annotations

import asyncio
import logging

from streams.publisher import Message, Packer, Publisher
from streams.settings import Settings

log = logging.getLogger("seatledger.api")

LINGER_MS = 5  # a request's messages go out together; no need to wait for more
STOP_TIMEOUT_S = 30.0


class KafkaUnavailable(RuntimeError):
    pass


class EventProducer:
    def __init__(self, settings: Settings, *, pack: int, timeout: float):
        self.settings = settings
        self.pack = pack
        self.timeout = timeout
        self._publisher: Publisher | None = None
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task] = set()

    async def _started(self) -> Publisher:
        async with self._lock:
            if self._publisher is None:
                pub = Publisher(
                    self.settings, pack=self.pack, linger_ms=LINGER_MS, request_timeout_ms=int(self.timeout * 1000)
                )
                try:
                    await asyncio.wait_for(pub.__aenter__(), self.timeout)
                except BaseException:
                    self._discard(pub)
                    raise
                self._publisher = pub
            return self._publisher

    def _discard(self, pub: Publisher) -> None:
        """Stop `pub` in the background (stopping flushes; it must not hold up the request)."""
        if self._publisher is pub:
            self._publisher = None
        task = asyncio.create_task(_stop(pub))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def publish(self, events: list[tuple[str, dict]]) -> int:
        """Send the events packed per company; the number of messages, once all are acknowledged."""
        packer = Packer(self.pack)
        messages: list[Message] = [m for cid, obj in events for m in packer.add(cid, obj)]
        messages += packer.flush()
        pub = None
        try:
            pub = await self._started()
            await asyncio.wait_for(self._send(pub, messages), self.timeout)
        except Exception as exc:
            if pub is not None:
                self._discard(pub)
            log.warning("event=kafka_unavailable bootstrap=%s error=%s", self.settings.bootstrap, type(exc).__name__)
            raise KafkaUnavailable(
                f"Kafka at {self.settings.bootstrap} did not acknowledge: {str(exc) or type(exc).__name__}"
            ) from None
        return len(messages)

    @staticmethod
    async def _send(pub: Publisher, messages: list[Message]) -> None:
        futures = [await pub.send_message(m) for m in messages]
        await asyncio.gather(*futures)

    async def check(self) -> str:
        """'ok' when the broker answers and the events topic exists; else why not."""
        try:
            pub = await self._started()
            n = await asyncio.wait_for(pub.topic_partitions(), min(self.timeout, 5.0))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok" if n else f"topic {self.settings.topic_events!r} does not exist"

    async def close(self) -> None:
        if self._publisher is not None:
            self._discard(self._publisher)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


async def _stop(pub: Publisher) -> None:
    try:
        await asyncio.wait_for(pub.__aexit__(None, None, None), STOP_TIMEOUT_S)
    except Exception as exc:  # a producer that never started, or a broker that stays away
        log.info("event=producer_stopped error=%s", type(exc).__name__)
