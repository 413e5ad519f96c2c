"""`seatledger serve` as a real process on a free port, for the API's integration tests and bench.

server = ApiServer(env, tmp_path / "api.log").start()   # waits until /healthz answers
httpx.get(server.url + "/healthz")
server.stop()                                            # SIGTERM; returns the exit code
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.keys import KeyStore
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


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


class ApiServer:
    def __init__(self, env: dict[str, str], log: Path, port: int | None = None):
        self.env = env
        self.log = log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ApiServer:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seatledger.cli", "serve", "--port", str(self.port), "--loglevel", "warning"],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"seatledger serve exited {self.proc.returncode}:\n{self.tail()}")
            try:
                httpx.get(self.url + "/healthz", timeout=10)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"seatledger serve did not answer within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as an operator stops it; SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return None

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
