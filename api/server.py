"""`seatledger serve`: the app on uvicorn until SIGTERM (or Ctrl-C), which uvicorn handles: it stops
accepting connections, finishes the requests in flight, then the app's shutdown stops the producer.

uvicorn then raises the signal again for the handler that was installed before it started, so the
exit status says what stopped it. Like the other services (`worker`, `sink`), `serve` exits 0 when
stopped on purpose: its handlers for SIGTERM and SIGINT end the process with status 0.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from api.app import create_app
from api.config import ApiConfig


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(config: ApiConfig, *, log_level: str = "info") -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    uvicorn.run(
        create_app(config),
        host=config.api.host,
        port=config.api.port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )
