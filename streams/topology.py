"""The worker's Faust app: its settings, the routed topic the fold reads, and the fold's tables.

The tables are Faust memory-store tables with changelogs on the broker, co-partitioned with the
routed topic (same partition count): Faust recovers them from their changelogs on start-up and on
every rebalance; the fold writes their changelog records itself (streams.changelog).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT, TopicT

from streams.settings import Settings
from streams.state import TABLES


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{h.strip()}" for h in settings.bootstrap.split(",") if h.strip()]


def credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust credentials from the same settings every other client uses (SASL and/or SSL)."""
    ctx = settings.ssl_context()
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.secret("sasl_password"),
            mechanism=settings.sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def faust_app(settings: Settings) -> faust.App:
    """The Faust app. Settings may be overridden through SEATLEDGER_FAUST_* environment variables."""
    return faust.App(
        settings.worker_app_id,
        broker=broker_urls(settings),
        broker_credentials=credentials(settings),
        store="memory://",
        datadir=str((settings.data_dir / "worker").resolve()),
        env_prefix="SEATLEDGER_FAUST_",  # so WEB_PORT, BROKER_URL, APP_STORE ... do not leak in
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
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


@dataclass(frozen=True)
class Topology:
    """The app, the routed topic (raw bytes: the fold decodes), and the tables by name (TABLES)."""

    app: faust.App
    routed_topic: TopicT
    tables: dict[str, TableT]


def build_topology(settings: Settings) -> Topology:
    app = faust_app(settings)
    n = settings.partitions
    routed_topic = app.topic(settings.topic_routed, key_serializer="raw", value_serializer="raw", partitions=n)
    tables = {name: app.Table(name, default=None, partitions=n, key_type=str, value_type=None) for name in TABLES}
    return Topology(app, routed_topic, tables)
