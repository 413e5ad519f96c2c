"""The worker process's operations: two workers on one host do not collide on the metrics port."""

from __future__ import annotations

import logging
import socket
import urllib.request

from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.worker import serve_metrics


def test_a_taken_metrics_port_falls_back_to_a_free_one_and_logs_it(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = WorkerMetrics()
        with caplog.at_level(logging.INFO, logger="seatledger.worker"):
            serve_metrics(metrics, Settings(metrics_host="127.0.0.1", worker_metrics_port=port))
    assert "event=metrics_port_taken" in caplog.text
    bound = int(caplog.text.split("event=metrics_listening host=127.0.0.1 port=")[1].split()[0])
    assert bound != port
    body = urllib.request.urlopen(f"http://127.0.0.1:{bound}/metrics", timeout=5).read().decode()
    assert "seatledger_worker_owned_partitions" in body
