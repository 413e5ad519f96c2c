"""Console sessions: an API key entered once, remembered server-side behind a signed session id.

The cookie carries only a random session id signed with itsdangerous (a forged or altered id is
refused before any lookup). The key itself stays in this process's memory, so every request
authenticates it again through the key store (cheap once verified: a SHA-256 comparison) and
`seatledger api-key revoke` ends the session at its next request. Each session has its own CSRF
token for the forms that change something. Sessions end after `session_minutes` without a
request, on logout, and when the process restarts (unless SEATLEDGER_CONSOLE_SESSION_SECRET is set,
they are unreadable by the next process anyway; they are not persisted either way).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, Signer

COOKIE = "seatledger_session"


@dataclass
class Session:
    token: str  # the API key, never sent back to the browser
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf.encode(), sent.encode())


class Sessions:
    """Session id -> Session, in memory; ids travel signed."""

    def __init__(self, secret: str | None, idle_seconds: float):
        self._signer = Signer(secret or secrets.token_urlsafe(32), salt="seatledger.console.session")
        self._idle = idle_seconds
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def open(self, token: str) -> str:
        """A new session for `token`; returns the signed id to put in the cookie."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_idle()
            self._by_id[sid] = Session(token)
        return self._signer.sign(sid).decode()

    def get(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, touched; None for no, a forged or an expired cookie."""
        sid = self._unsign(cookie)
        if sid is None:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is None or time.monotonic() - session.seen > self._idle:
                self._by_id.pop(sid, None)
                return None
            session.seen = time.monotonic()
            return session

    def close(self, cookie: str | None) -> None:
        sid = self._unsign(cookie)
        if sid is not None:
            with self._lock:
                self._by_id.pop(sid, None)

    def _unsign(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie).decode()
        except BadSignature:
            return None

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._by_id.items() if now - v.seen > self._idle]:
            del self._by_id[sid]
