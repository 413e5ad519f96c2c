"""The API's unit tests: the app in-process (httpx's ASGI transport) over a real DuckDB file built
by the sink's writer (tests.support.ledger_file), with keys made once per module (argon2 is slow)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.config import ApiConfig, load_api_settings
from api.keys import KeyStore
from devtools.local_broker import free_port_pair
from streams.settings import load_settings
from tests.support.ledger_file import LedgerFile, sample_ledger

KEYS = {  # name -> (role, companies)
    "admin": ("admin", None),
    "reader": ("reader", None),
    "globex-reader": ("reader", ["globex"]),
    "publisher": ("publisher", None),
    "acme-publisher": ("publisher", ["acme"]),
    "gone": ("reader", None),
}


@dataclass
class ApiSetup:
    root: Path
    ledger: LedgerFile
    keys: KeyStore
    tokens: dict[str, str]

    def config(self, **api) -> ApiConfig:
        dead = f"127.0.0.1:{free_port_pair()}"  # nothing listens: unit tests never reach Kafka
        settings = load_settings(db=self.ledger.path, data_dir=self.root, bootstrap=dead)
        return ApiConfig(settings, load_api_settings(**{"kafka_timeout_seconds": 2, "burst": 1000, **api}))

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> ApiSetup:
    root = tmp_path_factory.mktemp("api")
    ledger, _world = sample_ledger(root / "ledger.duckdb")
    store = KeyStore(root / "api-keys.json")
    tokens = {name: store.create(name, role, companies)[1] for name, (role, companies) in KEYS.items()}
    store.revoke("gone")
    return ApiSetup(root, ledger, store, tokens)


@pytest.fixture
async def client(setup: ApiSetup) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(setup) as c:
        yield c


def make_client(setup: ApiSetup, **api) -> httpx.AsyncClient:
    app = create_app(setup.config(**api), keys=setup.keys)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
def client_with(setup: ApiSetup) -> Callable[..., httpx.AsyncClient]:
    """A client of an app with other API settings: `client_with(max_events=2)`."""
    return lambda **api: make_client(setup, **api)
