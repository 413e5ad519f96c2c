"""Settings from flags and environment, one place for every client.

Every Kafka client (Faust, aiokafka producers and consumers, admin) gets its security settings from
`Settings.kafka_client_kwargs()` so SASL/SSL passes through uniformly.

Secrets are `SecretStr`: `repr`, `str`, logs, `--help`, error messages and JSON dumps show
`**********`; only `secret()` reads the value, where a client needs it.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEATLEDGER_", extra="ignore")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    db: Path = Field(Path("var/seatledger.duckdb"), description="DuckDB file written by the sink")
    data_dir: Path = Field(Path("var"), description="worker state, local broker, archive root")
    archive_root: Path | None = Field(None, description="Parquet event archive (default DATA_DIR/archive)")

    # Kafka security, passed through to every client.
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # Topics.
    topic_events: str = "seatledger.events"
    topic_routed: str = "seatledger.events.routed"
    topic_dlq: str = "seatledger.events.dlq"
    topic_snapshots: str = "seatledger.snapshots"
    partitions: int = Field(8, ge=1, description="partitions of the events and routed topics")
    replication_factor: int = Field(1, ge=1)

    # Local broker (seatledger kafka start).
    kafka_version: str = "4.1.2"

    # Operations.
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464
    sink_metrics_port: int = 9465
    archive_metrics_port: int = 9466
    auto_close_grace_hours: float | None = Field(
        None, description="close a month automatically this long after it ended in every zone (worker --auto-close: 72)"
    )
    auto_close_check_seconds: float = Field(
        60.0, gt=0, description="how often the worker checks for a month to auto-close"
    )

    # Streaming worker (streams/app.py).
    worker_app_id: str = Field(
        "seatledger-worker", description="Faust app id: consumer group and prefix of the changelog topics"
    )
    prices: Path | None = Field(None, description="price book TOML (default: projections/config/prices.example.toml)")
    estimate_every_minutes: float = Field(
        60.0, ge=0, description="how often the worker asks for the bill so far of the current month (0: never)"
    )
    late_window_months: int = Field(
        3, ge=1, description="months after a month's close during which late events still amend it; then its facts go"
    )
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="this worker's name in Kafka client ids and logs (default HOST-PID: unique per process)",
    )
    session_timeout_seconds: float = Field(
        10.0, gt=0, description="a worker silent this long is taken for dead and its partitions move"
    )
    state_dir: Path | None = Field(
        None,
        description="local snapshots of the fold's tables, so a restart reads only the changelog tail (default DATA_DIR/state)",
    )
    state_snapshot_seconds: float = Field(
        300.0, ge=0, description="how often the fold snapshots the tables of its partitions to STATE_DIR (0: never)"
    )
    state_max_age_hours: float = Field(
        12.0, gt=0, description="older snapshots are not used: keep below the changelogs' delete.retention.ms (24 h)"
    )
    standby_refresh_seconds: float = Field(
        120.0,
        ge=0,
        description="how often the worker brings its snapshots of partitions it does not own up to date (0: never)",
    )
    close_blocks: bool = Field(
        True,
        description="a close sends its decisions as decision_block messages (false: one decision message each, "
        "for sinks older than that kind: upgrade sinks first)",
    )
    max_poll_interval_seconds: float = Field(
        600.0, gt=0, description="longest a fold batch (a large close, a recovery) may hold the fold's consumer"
    )

    # DuckDB sink (streams/sink_consumer.py): one transaction per batch, the file held only while writing.
    sink_batch_messages: int = Field(5000, ge=1, description="write a batch once this many messages are buffered")
    sink_batch_seconds: float = Field(1.0, gt=0, description="... or once the oldest buffered message is this old")
    sink_batch_max_messages: int = Field(
        100_000,
        ge=1,
        description="while behind (Kafka holds more than the sink has fetched: a close streaming in), "
        "write up to this many messages per transaction instead",
    )
    sink_buffer_messages: int = Field(
        200_000, ge=1, description="stop fetching while this many messages wait (DuckDB file held by a reader)"
    )
    sink_db_threads: int = Field(
        1,
        ge=1,
        description="DuckDB threads of the sink's write connection: one spends the least CPU per row (a "
        "close's sink shares the machine's cores with the worker and the broker)",
    )

    @property
    def local_state_dir(self) -> Path:
        return self.state_dir or (self.data_dir / "state")

    @property
    def archive_dir(self) -> Path:
        return self.archive_root or (self.data_dir / "archive")

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.ssl_certfile:
            ctx.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
        return ctx

    def secret(self, name: str) -> str | None:
        """The plain value of a secret setting (e.g. "sasl_password"), for the client that needs it."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def kafka_client_kwargs(self) -> dict:
        """Keyword arguments shared by every aiokafka client."""
        kw: dict = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.secret("sasl_password"),
            )
        ctx = self.ssl_context()
        if ctx is not None:
            kw["ssl_context"] = ctx
        return kw


def load_settings(**overrides) -> Settings:
    """Environment first, then explicit (non-None) overrides from command-line flags."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
