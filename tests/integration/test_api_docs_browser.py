"""/docs in a real browser: headless Chromium opens the page of `seatledger serve` (uvicorn on a free
port) with every host but loopback unresolvable, renders every route of the API, and its network
log shows that the page fetched nothing from anywhere but the server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from devtools.local_broker import free_port_pair
from streams.settings import load_settings
from tests.support.api_server import ApiServer, api_env

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PATH_ATTR = re.compile(r'class="opblock-summary-path" data-path="([^"]+)"')


def browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip(f"no browser found (tried {', '.join(BROWSERS)})")


def render(url: str, work: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the URLs the page requested (Chromium's net log)."""
    netlog = work / "net.json"
    args = [
        browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={work / 'profile'}",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--log-net-log={netlog}",
        "--virtual-time-budget=15000", "--dump-dom", url,
    ]  # fmt: skip
    dom = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    events = json.loads(netlog.read_text())["events"]
    # The page's own requests carry its site as network isolation key; the browser's background
    # requests (updates, accounts) carry none and are not the page's doing.
    requested = [
        e["params"]["url"]
        for e in events
        if "url" in e.get("params", {}) and "127.0.0.1" in e["params"].get("network_isolation_key", "")
    ]
    return dom, requested


def test_docs_render_every_route_from_the_server_alone(tmp_path):
    settings = load_settings(bootstrap=f"127.0.0.1:{free_port_pair()}", data_dir=tmp_path)  # /docs needs no Kafka
    server = ApiServer(api_env(settings, tmp_path / "ledger.duckdb", tmp_path), tmp_path / "api.log").start()
    try:
        dom, requested = render(server.url + "/docs", tmp_path)
        paths = set(server_paths(server.url))
    finally:
        server.stop()
    assert set(PATH_ATTR.findall(dom)) == paths, "Swagger UI did not render every route of /openapi.json"
    assert requested, "the net log holds none of the page's requests"
    outside = [u for u in requested if not u.startswith(server.url + "/")]
    assert outside == [], f"/docs fetched from other hosts: {outside}"
    assert {u.removeprefix(server.url) for u in requested} >= {
        "/docs",
        "/openapi.json",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    }


def server_paths(url: str) -> list[str]:
    return list(httpx.get(url + "/openapi.json", timeout=10).json()["paths"])
