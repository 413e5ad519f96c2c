"""API keys: who may call the HTTP API, for what, and for which companies.

A key is `sl_<key id>_<secret>`. The file (DATA_DIR/api-keys.json, mode 0600) keeps, per key, its
name, id, role, companies, creation and revocation times and an argon2id hash of the secret, never
the secret itself: `create` returns it once. The id finds the stored key without trying every
hash; the secret is checked with argon2's verify, which compares in constant time, and a token
with an unknown id is verified against a dummy hash so that both take as long (a token that is
not of that shape at all is refused at once: its shape is no secret, and it costs no argon2).

argon2 is slow on purpose (~0.1-0.3 s here), too slow for every request: a verified token is
remembered as its SHA-256 digest (compared with `hmac.compare_digest`) until the file changes, so
`api-key revoke` in another process takes effect at the next request (the file is stat-ed on each).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("publisher", "reader", "admin")
PUBLISH, READ = "publish", "read"
GRANTS = {"publisher": frozenset({PUBLISH}), "reader": frozenset({READ}), "admin": frozenset({PUBLISH, READ})}
PREFIX = "sl"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_COMPANY = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # the contract's company_id alphabet
_HASHER = PasswordHasher()


class KeyStoreError(ValueError):
    """A key cannot be created or revoked as asked (bad name, role or company, unknown name)."""


class KeyFileUnreadable(KeyStoreError):
    """The key file is not one `KeyStore` wrote (edited by hand, cut short): no key can be checked,
    and none is written over it."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    name: str
    key_id: str
    role: str
    companies: tuple[str, ...] | None  # None: every company
    created_at: str
    revoked_at: str | None = None
    secret_hash: str = ""

    def can(self, action: str) -> bool:
        return action in GRANTS.get(self.role, frozenset())

    def covers(self, company_id: str) -> bool:
        return self.companies is None or company_id in self.companies

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict:
        out = asdict(self)
        out["companies"] = list(self.companies) if self.companies is not None else None
        return out

    @classmethod
    def from_json(cls, v: dict) -> ApiKey:
        companies = v.get("companies")
        return cls(
            v["name"], v["key_id"], v["role"], tuple(companies) if companies is not None else None,
            v["created_at"], v.get("revoked_at"), v["secret_hash"],
        )  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def check_new_key(name: str, role: str, companies: list[str] | None) -> None:
    if not _NAME.fullmatch(name):  # not match: its $ also matches before a final newline
        raise KeyStoreError(f"invalid key name {name!r}: 1-64 of A-Z a-z 0-9 . _ -")
    if role not in ROLES:
        raise KeyStoreError(f"unknown role {role!r}; use publisher, reader or admin")
    for c in companies or []:
        if not _COMPANY.fullmatch(c):
            raise KeyStoreError(f"invalid company id {c!r}: 1-64 of A-Z a-z 0-9 . _ : -")


class KeyStore:
    """The key file, read again whenever it changed on disk; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._by_id: dict[str, ApiKey] = {}
        self._verified: dict[str, bytes] = {}  # key id -> sha256 of the token last verified

    # ---- file --------------------------------------------------------------------------------

    def _read(self) -> list[ApiKey]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except orjson.JSONDecodeError as exc:
            raise KeyFileUnreadable(f"the API key file {self.path} is not JSON ({exc}); restore it") from None
        try:
            return [ApiKey.from_json(v) for v in data.get("keys", [])]
        except (AttributeError, KeyError, TypeError) as exc:
            raise KeyFileUnreadable(
                f"the API key file {self.path} is not a key file ({type(exc).__name__}: {exc}); restore it"
            ) from None

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"keys": [k.to_json() for k in keys]}, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)

    @contextmanager
    def _editing(self) -> Iterator[list[ApiKey]]:
        """The keys, under an exclusive lock between processes; written back after the block."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self._read()
            yield keys
            self._write(keys)

    # ---- commands ------------------------------------------------------------------------------

    def create(self, name: str, role: str, companies: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only its hash is stored)."""
        check_new_key(name, role, companies)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        scope = tuple(sorted(set(companies))) if companies else None
        key = ApiKey(name, key_id, role, scope, _now(), None, _HASHER.hash(secret))
        with self._editing() as keys:
            if any(k.name == name and k.active for k in keys):
                raise KeyStoreError(f"an active key named {name!r} exists; revoke it first")
            keys.append(key)
        return key, f"{PREFIX}_{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        return sorted(self._read(), key=lambda k: (k.created_at, k.name))

    def revoke(self, name: str) -> ApiKey:
        with self._editing() as keys:
            for i, k in enumerate(keys):
                if k.name == name and k.active:
                    keys[i] = replace(k, revoked_at=_now())
                    return keys[i]
        raise KeyStoreError(f"no active key named {name!r}")

    # ---- requests ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._by_id = {k.key_id: k for k in self._read()}
            self._verified.clear()
            self._stamp = stamp

    @cached_property
    def _dummy(self) -> str:
        """A hash to verify a token with an unknown id against (made on first need: ~0.2 s)."""
        return _HASHER.hash(secrets.token_urlsafe(32))

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` names, or None (unknown, malformed, wrong secret or revoked).

        A token that is not `sl_<id>_<secret>` is refused at once (its shape is no secret); one
        with an unknown id costs an argon2 verify like a known one."""
        parts = split_token(token)
        if parts is None:
            return None
        with self._lock:
            self._refresh()
            key = self._by_id.get(parts[0])
            digest = hashlib.sha256(token.encode()).digest()
            known = self._verified.get(key.key_id) if key is not None else None
            if key is not None and known is not None and hmac.compare_digest(known, digest):
                return key if key.active else None
        ok = _verify(key.secret_hash if key is not None else self._dummy, parts[1])
        if key is None or not ok:
            return None
        with self._lock:
            self._verified[key.key_id] = digest
        return key if key.active else None


def _verify(secret_hash: str, secret: str) -> bool:
    try:
        return _HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False
