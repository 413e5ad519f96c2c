"""API keys for the HTTP API: `api-key create|list|revoke` (api/keys.py).

Keys are stored hashed (argon2id) under the data dir; `create` prints the secret once, as the last
line of stdout, so `seatledger api-key create ... | tail -1` captures it.
Exit codes (seatledger.errors): 0 done; 2 a bad name, role or company, no such key, or a key file
that is not one (edited by hand, cut short: nothing is written over it).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from seatledger import options
from seatledger.errors import fail
from streams.settings import load_settings

FORMATS = ("text", "json")
KEYS_DATA_DIR = options.data_dir("keys under DATA_DIR/api-keys.json (default: SEATLEDGER_DATA_DIR)")


def _store(data_dir: Path | None):
    from api.config import keys_path, load_api_settings
    from api.keys import KeyStore

    return KeyStore(keys_path(load_settings(data_dir=data_dir), load_api_settings()))


def create(
    name: str = typer.Option(..., "--name", metavar="NAME", help="a name to list and revoke it by"),
    role: str = typer.Option(..., "--role", metavar="publisher|reader|admin", help="publisher, reader or admin"),
    company: list[str] | None = typer.Option(
        None, "--company", metavar="COMPANY", help="limit the key to this company_id (repeat for more; default: all)"
    ),
    data_dir: Path | None = KEYS_DATA_DIR,
) -> None:
    """Make a key; its secret is printed once, as the last line (only a hash is stored)."""
    from api.keys import KeyStoreError

    try:
        key, token = _store(data_dir).create(name, role, company or None)
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    scope = ", ".join(key.companies) if key.companies else "all companies"
    typer.echo(f"created API key {key.name!r}: role {key.role}, {scope}; store the secret now, it is not shown again:")
    typer.echo(token)


def list_keys(
    data_dir: Path | None = KEYS_DATA_DIR,
    fmt: str = options.output_format("text", FORMATS),
) -> None:
    """Every key: name, role, companies, created and revoked times (never secrets)."""
    from api.keys import KeyStoreError

    options.check_format(fmt, FORMATS)
    try:
        keys = _store(data_dir).list()
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    if fmt == "json":
        public = [{k: v for k, v in key.to_json().items() if k != "secret_hash"} for key in keys]
        typer.echo(orjson.dumps(public, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(f"{'NAME':24} {'ROLE':10} {'STATUS':8} {'CREATED':21} COMPANIES")
    for key in keys:
        status = "active" if key.active else "revoked"
        scope = ",".join(key.companies) if key.companies else "*"
        typer.echo(f"{key.name:24} {key.role:10} {status:8} {key.created_at:21} {scope}")


def revoke(
    name: str = typer.Argument(..., metavar="NAME", help="the key's name"),
    data_dir: Path | None = KEYS_DATA_DIR,
) -> None:
    """Revoke a key: the API refuses it from its next request."""
    from api.keys import KeyStoreError

    try:
        key = _store(data_dir).revoke(name)
    except KeyStoreError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"revoked API key {key.name!r} at {key.revoked_at}")


COMMANDS: dict = {}
GROUPS = {"api-key": ("API keys for `seatledger serve`.", {"create": create, "list": list_keys, "revoke": revoke})}
