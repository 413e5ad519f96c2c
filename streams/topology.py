"""The worker's Faust app: the process the router and the fold run in as tasks, with its timers.

Faust runs the worker (start-up, signals, tasks, timers, graceful stop). The router and the fold
consume with their own aiokafka clients (streams.router, streams.fold_runner), and the fold keeps
its tables itself (streams.store): Faust's consumer, agents and tables are not used.
"""

from __future__ import annotations

import faust
from faust.app.base import BootStrategy

from streams.settings import Settings


class NoKafkaBoot(BootStrategy):
    """Start none of Faust's Kafka services (consumer, producer, tables, topic conductor): the
    router and the fold run their own aiokafka clients. Faust's consumer would otherwise join a
    group with no topics (aiokafka refuses an empty subscription)."""

    enable_kafka = False


class WorkerApp(faust.App):
    BootStrategy = NoKafkaBoot


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


def faust_app(settings: Settings) -> WorkerApp:
    """The Faust app. Settings may be overridden through SEATLEDGER_FAUST_* environment variables."""
    return WorkerApp(
        settings.worker_app_id,
        broker=broker_urls(settings),
        broker_credentials=credentials(settings),
        datadir=str((settings.data_dir / "worker").resolve()),
        env_prefix="SEATLEDGER_FAUST_",  # so WEB_PORT, BROKER_URL, APP_STORE ... do not leak in
        web_enabled=False,
        autodiscover=False,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        # A restarted worker (after kill -9) waits for the dead member's session to expire.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 5,
    )
