"""The sink's batching policy (streams.sink_consumer.batch_due): small, prompt batches when caught
up; larger transactions while a backlog streams in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.settings import Settings
from streams.sink_consumer import batch_due

SETTINGS = Settings(sink_batch_messages=5000, sink_batch_seconds=1.0, sink_batch_max_messages=100_000)


@given(buffered=st.integers(0, 300_000), age=st.floats(0, 100))
def test_caught_up_writes_at_the_batch_size_or_the_age_limit(buffered, age):
    expected = buffered >= 5000 or (buffered > 0 and age >= 1.0)
    assert batch_due(SETTINGS, buffered, age, behind=False) == expected


def test_behind_waits_for_the_larger_transaction_whatever_the_age():
    assert not batch_due(SETTINGS, 5000, 30.0, behind=True)
    assert not batch_due(SETTINGS, 99_999, 30.0, behind=True)
    assert batch_due(SETTINGS, 100_000, 0.0, behind=True)


def test_behind_never_waits_past_the_buffer_limit_where_fetching_stops():
    settings = Settings(sink_batch_max_messages=500_000, sink_buffer_messages=200_000)
    assert not batch_due(settings, 199_999, 0.0, behind=True)
    assert batch_due(settings, 200_000, 0.0, behind=True)


def test_an_empty_buffer_is_never_due():
    assert not batch_due(SETTINGS, 0, 100.0, behind=False)
