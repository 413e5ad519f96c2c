"""Create the project's topics explicitly, idempotently, with their intended partition counts.

Faust does not create source topics, and a broker that auto-creates them gives one partition,
which mismatches the tables' changelogs. So `seatledger topics create` (and the test fixtures)
create every topic up front, and refuse to go on when an existing topic has another partition
count: the worker's routing and its tables depend on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import Settings

TOPIC_ALREADY_EXISTS = 36
T = TypeVar("T")


class TopicError(RuntimeError):
    """A topic could not be created, or exists with another partition count."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    purpose: str
    config: tuple[tuple[str, str], ...] = ()


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the system needs. `routed` must match `events`: the worker re-keys each
    company's events to its home partition there, and its tables are co-partitioned with it."""
    n, rf = settings.partitions, settings.replication_factor
    return [
        TopicSpec(settings.topic_events, n, rf, "events from upstream, keyed by company_id"),
        TopicSpec(settings.topic_routed, n, rf, "events re-keyed to each company's home partition"),
        TopicSpec(settings.topic_dlq, n, rf, "rejected events: original bytes + error"),
        TopicSpec(settings.topic_snapshots, n, rf, "billing snapshots for the sink"),
    ]


def plan(specs: list[TopicSpec], existing: dict[str, int]) -> tuple[list[TopicSpec], list[str]]:
    """Which topics to create, and a sentence for each existing topic with the wrong partitions."""
    to_create, mismatches = [], []
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            to_create.append(spec)
        elif have != spec.partitions:
            mismatches.append(
                f"topic {spec.name!r} exists with {have} partitions but {spec.partitions} are configured "
                f"(SEATLEDGER_PARTITIONS); delete and recreate it, or configure {have}"
            )
    return to_create, mismatches


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # Describe only topics that exist: a metadata request for a missing topic may auto-create it
    # on brokers that allow that.
    present = set(await admin.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(wanted) if t["error_code"] == 0}


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 15.0) -> None:
    """Until every partition of `names` has a leader, so a producer right after does not race it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(
            t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        if loop.time() > deadline:
            raise TopicError(f"topics {names} have no leader after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> dict[str, str]:
    """Create the missing ones of `specs`; {name: "created" | "exists"}. Raises TopicError on
    partition mismatches (before creating anything) or on a failed creation."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        names = [s.name for s in specs]
        to_create, mismatches = plan(specs, await _partition_counts(admin, names))
        if mismatches:
            raise TopicError("\n".join(mismatches))
        result = dict.fromkeys(names, "exists")
        if to_create:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config)) for s in to_create]
            )
            errors = []
            for topic, code, message in ((e[0], e[1], e[2] if len(e) > 2 else None) for e in response.topic_errors):
                if code == 0:
                    result[topic] = "created"
                elif code != TOPIC_ALREADY_EXISTS:  # another process won the race: fine if it matches
                    errors.append(f"{topic}: error {code} {message or ''}".strip())
            if errors:
                raise TopicError("could not create topics: " + "; ".join(errors))
            _, mismatches = plan(specs, await _partition_counts(admin, names))
            if mismatches:
                raise TopicError("\n".join(mismatches))
            await _wait_for_leaders(admin, names)
        return result
    finally:
        await admin.close()


async def create_topics(settings: Settings) -> dict[str, str]:
    """Create every topic of `topic_specs(settings)`; {name: "created" | "exists"}."""
    return await ensure_topics(settings, topic_specs(settings))


def changelog_specs(names: list[str], settings: Settings) -> list[TopicSpec]:
    """The worker's table changelogs, compacted, co-partitioned with the routed topic.

    The worker creates them before Faust starts: when Faust creates them itself it can subscribe
    before the broker's metadata lists them ("Ignoring missing topic"), and then the tables of
    those partitions are never assigned and the fold agent stalls (seen under load on Kafka 4.1).
    """
    return [
        TopicSpec(
            name, settings.partitions, settings.replication_factor, "table changelog", (("cleanup.policy", "compact"),)
        )
        for name in names
    ]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is already running
    in this thread (e.g. a sync helper called from an async test): then it runs in a new thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="run_sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def create_topics_sync(settings: Settings) -> dict[str, str]:
    return run_sync(create_topics(settings))


async def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete `names` (those that exist); for tests that share an external broker."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        present = set(await admin.list_topics())
        doomed = [n for n in names if n in present]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
