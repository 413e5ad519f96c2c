"""The HTTP API as a service: `serve` (api/, FastAPI on uvicorn) until SIGTERM.

Exit codes (seatledger.errors): 0 stopped; 2 unusable settings.
"""

from __future__ import annotations

from pathlib import Path

import typer

from seatledger import options
from streams.settings import load_settings

SERVE_DATA_DIR = options.data_dir("API keys under DATA_DIR/api-keys.json (default: SEATLEDGER_DATA_DIR)")


def serve(
    host: str | None = typer.Option(
        None, "--host", metavar="HOST", help="address to listen on (default: SEATLEDGER_API_HOST or 127.0.0.1)"
    ),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, metavar="PORT", help="default: SEATLEDGER_API_PORT or 8710; 0: any free port"
    ),
    db: Path | None = options.DB,
    data_dir: Path | None = SERVE_DATA_DIR,
    bootstrap: str | None = options.BOOTSTRAP,
    loglevel: str = options.LOGLEVEL,
) -> None:
    """Serve the HTTP API until SIGTERM: POST /v1/events, invoices, decisions, the bill so far.

    It reads the DuckDB file in short read-only connections (like any reader of the sink's file) and publishes events through Kafka's idempotent producer. Keys: `seatledger api-key create`. Docs at /docs, the OpenAPI document at /openapi.json.
    """
    from api.config import ApiConfig, load_api_settings
    from api.server import serve as run

    config = ApiConfig(
        load_settings(db=db, data_dir=data_dir, bootstrap=bootstrap), load_api_settings(host=host, port=port)
    )
    typer.echo(
        f"serving the seatledger API on http://{config.api.host}:{config.api.port} "
        f"(database {config.db}, keys {config.keys_file}, Kafka {config.settings.bootstrap})",
        err=True,
    )
    run(config, log_level=loglevel.lower())


COMMANDS = {"serve": serve}
