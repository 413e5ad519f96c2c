"""`seatledger serve` as an operator starts it: bound to loopback unless told otherwise, /healthz
saying what is missing (no ledger file yet, no broker), and a clean exit on SIGTERM."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from devtools.local_broker import free_port_pair
from streams.settings import load_settings
from tests.support.api_server import ApiServer, api_env

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp{,6}


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel prints them) with a socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == LISTEN:
                found.add(addr)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's socket table")
def test_serve_listens_on_loopback_only_by_default_and_healthz_names_what_is_missing(tmp_path):
    settings = load_settings(bootstrap=f"127.0.0.1:{free_port_pair()}", data_dir=tmp_path)  # no broker there
    db = tmp_path / "not-yet.duckdb"
    server = ApiServer(api_env(settings, db, tmp_path), tmp_path / "api.log").start()
    try:
        assert listening_addresses(server.port) == {socket.inet_aton("127.0.0.1")[::-1].hex().upper()}
        health = httpx.get(server.url + "/healthz", timeout=30)
        assert health.status_code == 503, health.text
        body = health.json()
        assert body["status"] == "unavailable"
        assert str(db) in body["db"] and body["kafka"] != "ok"
    finally:
        assert server.stop() == 0, server.tail()
