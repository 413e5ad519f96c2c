"""Topic creation against the real broker: idempotent, right partition counts, clear mismatches."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from typer.testing import CliRunner

from seatledger.cli import app
from streams.topics import TopicError, create_topics_sync, run_sync

pytestmark = pytest.mark.kafka


def unique(settings, partitions):
    stem = f"t.topics.{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={"topic_events": f"{stem}.events", "topic_routed": f"{stem}.routed", "topic_dlq": f"{stem}.dlq",
                "topic_snapshots": f"{stem}.snapshots", "partitions": partitions}
    )  # fmt: skip


async def partition_counts(settings, names):
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()


def test_create_topics_is_idempotent_with_the_configured_partitions(kafka_settings):
    s = unique(kafka_settings, 3)
    names = [s.topic_events, s.topic_routed, s.topic_dlq, s.topic_snapshots]
    assert create_topics_sync(s) == dict.fromkeys(names, "created")
    assert create_topics_sync(s) == dict.fromkeys(names, "exists")
    assert run_sync(partition_counts(s, names)) == dict.fromkeys(names, 3)


def test_an_existing_topic_with_other_partitions_is_an_error_naming_it(kafka_settings):
    s = unique(kafka_settings, 2)
    create_topics_sync(s)
    with pytest.raises(TopicError, match=rf"'{s.topic_events}' exists with 2 partitions but 4 are configured"):
        create_topics_sync(s.model_copy(update={"partitions": 4}))


def test_topics_create_command_reports_created_then_exists(kafka_settings):
    s = unique(kafka_settings, 2)
    env = {"SEATLEDGER_BOOTSTRAP": s.bootstrap, "SEATLEDGER_TOPIC_EVENTS": s.topic_events,
           "SEATLEDGER_TOPIC_ROUTED": s.topic_routed, "SEATLEDGER_TOPIC_DLQ": s.topic_dlq,
           "SEATLEDGER_TOPIC_SNAPSHOTS": s.topic_snapshots}  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(app, ["topics", "create", "--partitions", "2"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 4
    second = runner.invoke(app, ["topics", "create", "--partitions", "2"], env=env)
    assert second.exit_code == 0 and second.output.count("exists") == 4
    clash = runner.invoke(app, ["topics", "create", "--partitions", "5"], env=env)
    assert clash.exit_code == 1 and "exists with 2 partitions but 5 are configured" in clash.output
