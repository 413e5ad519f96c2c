"""Shared pytest fixtures, one section per subject. Add new sections at the end, with a header.

Kafka: tests that need a broker are marked `@pytest.mark.kafka` and use `kafka_settings` (the
session's broker) or `kafka_topics` (a Settings copy with this test's own, freshly created topics,
so tests never see each other's messages).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from streams.settings import Settings, load_settings

# ==================================================================================================
# Kafka


@dataclass(frozen=True)
class KafkaBroker:
    settings: Settings
    owned: bool  # started by this session (and stopped at its end), not a broker that was running


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The broker at SEATLEDGER_BOOTSTRAP when one answers; else a local one on free ports,
    started for this session and stopped after it (devtools.local_broker.session_broker)."""
    from devtools import local_broker

    data_dir = tmp_path_factory.mktemp("kafka-broker")
    with local_broker.session_broker(load_settings(data_dir=data_dir), data_dir) as (settings, owned):
        yield KafkaBroker(settings, owned=owned)


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: KafkaBroker) -> Settings:
    """Settings pointing at the session's broker (default topic names: prefer `kafka_topics`)."""
    return kafka_broker.settings


@pytest.fixture
def kafka_env(kafka_settings: Settings) -> dict[str, str]:
    """Environment for a `seatledger ...` subprocess that should use the session's broker."""
    return {**os.environ, "SEATLEDGER_BOOTSTRAP": kafka_settings.bootstrap}


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:limit].strip("-.") or "test"


@contextmanager
def _fresh_topics(kafka_broker: KafkaBroker, name: str) -> Iterator[Callable[..., Settings]]:
    """Factory of Settings with four topics uniquely named after `name`, created at once; deleted
    afterwards when the broker is shared."""
    from streams.topics import create_topics_sync, delete_topics, run_sync

    made: list[Settings] = []

    def make(partitions: int | None = None, **overrides) -> Settings:
        stem = f"t.{_slug(name)}.{uuid.uuid4().hex[:8]}"
        settings = kafka_broker.settings.model_copy(
            update={
                "topic_events": f"{stem}.events",
                "topic_routed": f"{stem}.routed",
                "topic_dlq": f"{stem}.dlq",
                "topic_snapshots": f"{stem}.snapshots",
                "partitions": partitions or kafka_broker.settings.partitions,
                **overrides,
            }
        )
        create_topics_sync(settings)
        made.append(settings)
        return settings

    yield make
    if not kafka_broker.owned:
        for s in made:
            run_sync(delete_topics(s, [s.topic_events, s.topic_routed, s.topic_dlq, s.topic_snapshots]))


@pytest.fixture
def kafka_topics(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> Iterator[Callable[..., Settings]]:
    """Factory: `kafka_topics(partitions=3)` -> Settings whose four topics are uniquely named for
    this test and already created. Topics are deleted afterwards when the broker is shared."""
    with _fresh_topics(kafka_broker, request.node.name) as make:
        yield make


@pytest.fixture(scope="module")
def kafka_module_topics(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> Iterator[Callable[..., Settings]]:
    """`kafka_topics` for module-scoped fixtures: the topics are the module's, deleted after it."""
    with _fresh_topics(kafka_broker, request.module.__name__.rpartition(".")[2]) as make:
        yield make
