"""The SASL password is a secret: it reaches the Kafka clients and nothing else, not the settings'
repr or dumps, not a log line, not `--help`, not an error message, not the metrics."""

from __future__ import annotations

import asyncio
import logging
import urllib.request

import pytest
from typer.testing import CliRunner

from seatledger.cli import app
from streams.settings import load_settings
from tests.unit.seatledger.test_help import command_paths

SECRET = "s3cr3t-Pa55w0rd-never-print-me"


@pytest.fixture(autouse=True)
def sasl(monkeypatch):
    monkeypatch.setenv("SEATLEDGER_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SEATLEDGER_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("SEATLEDGER_SASL_USERNAME", "billing")
    monkeypatch.setenv("SEATLEDGER_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("SEATLEDGER_BOOTSTRAP", "127.0.0.1:1")  # nothing listens: every client fails fast


def test_the_settings_never_show_the_password_but_the_clients_get_it():
    s = load_settings()
    for text in (repr(s), str(s), f"{s}", s.model_dump_json(), str(s.model_dump())):
        assert SECRET not in text and "**********" in text
    assert s.secret("sasl_password") == SECRET
    assert s.kafka_client_kwargs()["sasl_plain_password"] == SECRET


def test_no_help_text_shows_it():
    runner = CliRunner()
    for path in [(), *command_paths()]:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0 and SECRET not in r.output, path


def test_a_command_that_fails_to_reach_kafka_shows_neither_it_in_its_error_nor_its_logs(caplog):
    with caplog.at_level(logging.DEBUG):
        r = CliRunner().invoke(app, ["close", "--month", "2026-10"])
    assert r.exit_code == 3 and "cannot send close markers to 127.0.0.1:1" in r.output
    assert SECRET not in r.output and SECRET not in caplog.text
    assert caplog.records  # the clients did log their failure


def test_a_service_that_fails_to_reach_kafka_logs_no_secret(tmp_path, caplog):
    from streams.sink_consumer import run_sink

    settings = load_settings(db=tmp_path / "db.duckdb")
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as exc:
        asyncio.run(run_sink(settings, serve_metrics=False))
    assert SECRET not in str(exc.value) and SECRET not in repr(exc.value) and SECRET not in caplog.text


def test_the_metrics_endpoints_show_no_secret():
    from streams.metrics import WorkerMetrics
    from streams.sink_consumer import SinkMetrics

    for metrics in (WorkerMetrics(), SinkMetrics()):
        port = metrics.serve("127.0.0.1", 0)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "seatledger_" in body and SECRET not in body
