"""Which topics to create, and which existing ones disagree with the configuration."""

from streams.settings import Settings
from streams.topics import plan, topic_specs


def test_specs_give_events_and_routed_the_same_partition_count():
    specs = {s.name: s for s in topic_specs(Settings(partitions=5))}
    assert specs["seatledger.events"].partitions == specs["seatledger.events.routed"].partitions == 5
    assert set(specs) == {
        "seatledger.events",
        "seatledger.events.routed",
        "seatledger.events.dlq",
        "seatledger.snapshots",
    }


def test_plan_creates_only_missing_topics():
    specs = topic_specs(Settings(partitions=4))
    to_create, mismatches = plan(specs, {"seatledger.events": 4})
    assert [s.name for s in to_create] == ["seatledger.events.routed", "seatledger.events.dlq", "seatledger.snapshots"]
    assert mismatches == []


def test_plan_reports_a_partition_mismatch_by_name_and_counts():
    _, mismatches = plan(topic_specs(Settings(partitions=8)), {"seatledger.events": 3})
    assert len(mismatches) == 1
    assert "'seatledger.events' exists with 3 partitions but 8 are configured" in mismatches[0]
