"""Helpers shared by the tests: given/when/then worlds, the worker oracle, the worker process harness, Kafka read-back."""
