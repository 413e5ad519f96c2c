"""`seatledger serve`: the app on uvicorn until SIGTERM (or Ctrl-C), which uvicorn handles: it stops
accepting connections, finishes the requests in flight, then the app's shutdown stops the producer."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.config import ApiConfig


def serve(config: ApiConfig, *, log_level: str = "info") -> None:
    uvicorn.run(
        create_app(config),
        host=config.api.host,
        port=config.api.port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
    )
