"""`seatledger serve` as a real process on a free port, for the API's integration tests and bench.

server = ApiServer(env, tmp_path / "api.log").start()   # waits until /healthz answers
httpx.get(server.url + "/healthz")
server.stop()                                            # SIGTERM; returns the exit code
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx

from api.keys import KeyStore
from streams.settings import Settings
from tests.support.services import ROOT, Service

__all__ = ["ROOT", "ApiServer", "api_env", "free_port", "make_keys"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_env(settings: Settings, db: Path, data_dir: Path, **api: str) -> dict[str, str]:
    """Environment for `seatledger serve` on `settings`' broker and topics; SEATLEDGER_API_* from `api`."""
    return {
        **os.environ,
        "SEATLEDGER_BOOTSTRAP": settings.bootstrap,
        "SEATLEDGER_TOPIC_EVENTS": settings.topic_events,
        "SEATLEDGER_DB": str(db),
        "SEATLEDGER_DATA_DIR": str(data_dir),
        "SEATLEDGER_API_BURST": "100000",
        **{f"SEATLEDGER_API_{k.upper()}": v for k, v in api.items()},
    }


def make_keys(data_dir: Path, spec: dict[str, tuple[str, list[str] | None]]) -> dict[str, str]:
    """name -> token for keys made in DATA_DIR/api-keys.json, as `seatledger api-key create` makes them."""
    store = KeyStore(data_dir / "api-keys.json")
    return {name: store.create(name, role, companies)[1] for name, (role, companies) in spec.items()}


class ApiServer(Service):
    """`seatledger serve` on a free port; `start` returns once /healthz answers (whatever it says)."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["serve", "--port", str(self.port), "--loglevel", "warning"], env, log)

    def start(self, timeout: float = 60) -> ApiServer:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"seatledger serve exited:\n{self.tail()}")
            try:
                httpx.get(self.url + "/healthz", timeout=10)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"seatledger serve did not answer within {timeout}s:\n{self.tail()}")
