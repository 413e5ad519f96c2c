"""A `seatledger <command>` service as a real process (its own process group, log to a file),
stopped with SIGTERM like an operator stops it. For the worker, see worker_harness.WorkerProcess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]


class Service:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Self:
        with open(self.log, "ab") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seatledger.cli", *self.args],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM; SIGKILL after `timeout` (then None)."""
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
            return f"--- {self.log.name}\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return f"--- {self.log.name}: (no log)"


def wait_for(pred: Callable[[], object], timeout: float, what: str, *services) -> object:
    """Poll `pred` until it returns something truthy; fail with the services' log tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    tails = "\n".join(s.tail() for s in services)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")
