"""The console after `seatledger demo`: `seatledger serve` left running on the demo's database,
archive and keys, and a one-time admin key, so the demo ends with the month in a browser.

The key is made the way `seatledger api-key create` makes it (api.keys.KeyStore, under the run's
data dir, which `serve` reads) and printed once; only its hash is stored. `serve` runs in its own
session, like the broker the demo may leave running: stop it with `kill PID`.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from api.keys import KeyStore
from devtools.local_broker import port_free

DEFAULT_PORT = 8710


@dataclass(frozen=True)
class DemoConsole:
    url: str  # the month's overview
    key: str  # the one-time admin key
    pid: int
    log: Path


def pick_port(host: str, preferred: int = DEFAULT_PORT) -> int:
    """`preferred` when free, else any free port."""
    import socket

    if port_free(host, preferred):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (503: Kafka or the file not ready yet)
    except OSError:
        return False


def start_console(
    command: list[str], env: dict[str, str], run_dir: Path, month: str, timeout: float = 60
) -> DemoConsole:
    """`command` (seatledger serve's argv without --port) on a free port with `env`; a new admin key."""
    host = "127.0.0.1"
    port = pick_port(host)
    _, key = KeyStore(Path(env["SEATLEDGER_DATA_DIR"]) / "api-keys.json").create(f"demo-{run_dir.name}", "admin")
    log = run_dir / "serve.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*command, "--host", host, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while not _answers(base):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"seatledger serve did not start; see {log}")
        time.sleep(0.2)
    return DemoConsole(f"{base}/months/{month}", key, proc.pid, log)
