"""Fault injection for the crash tests: `SEATLEDGER_FAULT=<point>:<n>` kills the worker with
SIGKILL the n-th time it passes `point` (points: `changelog_sent`, after a batch's changelog
records were handed to the producer and before they are acknowledged; `close_started`, when a
partition starts closing a month). Unset in production: `reached` is then a dict lookup."""

from __future__ import annotations

import os
import signal

_spec = os.environ.get("SEATLEDGER_FAULT", "")
_point, _, _n = _spec.partition(":")
_count = {"left": int(_n) if _n.isdigit() else 1}


def reached(point: str) -> None:
    if not _spec or point != _point:
        return
    _count["left"] -= 1
    if _count["left"] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
