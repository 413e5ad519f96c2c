"""What the HTTP service runs with: the limits and timeouts of `seatledger serve`.

Every value has a SEATLEDGER_API_* environment variable; `seatledger serve` flags override them.
The Kafka, database and data-dir settings are the project's own (streams.settings.Settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.settings import Settings

MIB = 1024 * 1024


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEATLEDGER_API_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on (loopback by default)")
    port: int = Field(8710, ge=0, le=65535, description="port to listen on (0: any free port)")
    max_body_bytes: int = Field(5 * MIB, ge=1, description="POST /v1/events: larger bodies get 413")
    max_events: int = Field(10_000, ge=1, description="POST /v1/events: more events get 413")
    rate_per_second: float = Field(50.0, gt=0, description="requests per second per API key (token bucket)")
    burst: int = Field(100, ge=1, description="requests a key may make at once before the rate applies")
    kafka_timeout_seconds: float = Field(10.0, gt=0, description="wait for Kafka's acks this long, then 503")
    db_timeout_seconds: float = Field(10.0, ge=0, description="wait for the DuckDB file this long, then 503")
    pack: int = Field(500, ge=1, description="events of one company per Kafka message")
    keys_file: Path | None = Field(None, description="API keys (default: DATA_DIR/api-keys.json)")


class ConsoleSettings(BaseSettings):
    """The web console's (api/console, docs/console.md): its sessions and pages."""

    model_config = SettingsConfigDict(env_prefix="SEATLEDGER_CONSOLE_", extra="ignore")

    secure_cookie: bool = Field(
        True,
        description="mark the session cookie Secure (off only for plain-HTTP tests on a host that is not localhost)",
    )
    session_secret: str | None = Field(
        None, description="signs session ids (default: random per process, so a restart logs everyone out)"
    )
    session_minutes: int = Field(480, ge=1, description="a session ends after this many minutes without a request")
    page_size: int = Field(50, ge=1, le=1000, description="accounts per page")
    top_companies: int = Field(10, ge=1, description="companies drawn one by one in the seats chart; the rest as one")
    apply_timeout_seconds: float = Field(120.0, gt=0, description="wait this long for the sink to record a dispute")


@dataclass(frozen=True)
class ApiConfig:
    """Everything `create_app` needs: the project's settings, the API's own and the console's."""

    settings: Settings
    api: ApiSettings
    console: ConsoleSettings = field(default_factory=lambda: load_console_settings())

    @property
    def db(self) -> Path:
        return Path(self.settings.db)

    @property
    def keys_file(self) -> Path:
        return keys_path(self.settings, self.api)


def keys_path(settings: Settings, api: ApiSettings | None = None) -> Path:
    """Where the API keys are stored: SEATLEDGER_API_KEYS_FILE, else DATA_DIR/api-keys.json."""
    chosen = api.keys_file if api is not None else None
    return chosen or Path(settings.data_dir) / "api-keys.json"


def load_api_settings(**overrides) -> ApiSettings:
    """Environment first, then explicit (non-None) overrides from command-line flags."""
    return ApiSettings(**{k: v for k, v in overrides.items() if v is not None})


def load_console_settings(**overrides) -> ConsoleSettings:
    """Environment (SEATLEDGER_CONSOLE_*) first, then explicit (non-None) overrides."""
    return ConsoleSettings(**{k: v for k, v in overrides.items() if v is not None})
