"""The local broker: idempotent start, status, and stopping only what it started."""

from __future__ import annotations

import base64
import socket
import tempfile
import time

import pytest

from devtools import local_broker
from streams.settings import load_settings

pytestmark = pytest.mark.kafka


def test_start_returns_at_once_when_a_broker_already_answers(kafka_settings):
    t0 = time.monotonic()
    st = local_broker.start(kafka_settings)
    assert st.answering and not st.started_now
    assert time.monotonic() - t0 < 1.0


def test_status_sees_the_running_broker(kafka_broker):
    st = local_broker.status(kafka_broker.settings)
    assert st.answering
    assert st.managed == kafka_broker.owned


def test_stop_leaves_alone_a_broker_started_from_another_data_dir(kafka_settings, tmp_path):
    other = kafka_settings.model_copy(update={"data_dir": tmp_path})
    assert local_broker.stop(other).startswith("not stopped")
    assert local_broker.status(kafka_settings).answering


def test_start_refuses_when_the_controller_port_is_taken(tmp_path):
    port = local_broker.free_port_pair()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port + 1))
        blocker.listen()
        settings = load_settings(bootstrap=f"127.0.0.1:{port}", data_dir=tmp_path)
        with pytest.raises(local_broker.BrokerError, match=r"in use"):
            local_broker.start(settings)


@pytest.mark.slow
def test_a_second_broker_starts_stops_and_restarts_on_its_own_ports_and_data(tmp_path):
    port = local_broker.free_port_pair()
    settings = load_settings(bootstrap=f"127.0.0.1:{port}", data_dir=tmp_path)
    try:
        first = local_broker.start(settings)
        assert first.started_now and first.pid and local_broker.status(settings).managed
        assert local_broker.stop(settings).startswith(f"stopped pid {first.pid}")
        assert not local_broker.status(settings).answering
        again = local_broker.start(settings)  # same data dir: its cluster id is reused
        assert again.started_now and again.pid != first.pid
    finally:
        local_broker.stop(settings)
    assert not (tmp_path / "kafka" / "broker.pid").exists()


@pytest.mark.slow
def test_a_session_broker_in_a_temporary_directory_leaves_no_directory_behind(tmp_path, monkeypatch):
    """A benchmark's broker keeps gigabytes of log: what session_broker made, it removes."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts the broker's dir
    unused = load_settings(bootstrap=f"127.0.0.1:{local_broker.free_port_pair()}")
    with local_broker.session_broker(unused) as (settings, owned):
        assert owned and local_broker.status(settings).answering
        assert settings.data_dir.parent == tmp_path
        assert any(settings.data_dir.iterdir())
    assert not local_broker.status(settings).answering
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("first_byte", [0xFC, 0xF8], ids=["underscore", "dash"])
def test_the_storage_tool_formats_with_an_id_starting_with_underscore_or_dash(tmp_path, first_byte):
    """`--cluster-id=ID` reaches the tool whole even when ID looks like an option."""
    cluster_id = base64.urlsafe_b64encode(bytes([first_byte]) + bytes(range(15))).decode().rstrip("=")
    assert cluster_id[0] in "_-"
    p = local_broker.BrokerPaths(tmp_path / "kafka")
    p.root.mkdir()
    p.config.write_text(local_broker.render_server_properties("127.0.0.1", local_broker.free_port_pair(), p.data))
    libs = local_broker.ensure_jars(load_settings().kafka_version)
    local_broker.format_storage(local_broker.java_executable(), str(libs / "*"), p, cluster_id)
    assert local_broker.cluster_id_from_meta((p.data / "meta.properties").read_text()) == cluster_id
