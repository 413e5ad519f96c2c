"""The worker's Prometheus metrics and its structured (key=value) log lines.

Served by prometheus_client's HTTP server on settings.metrics_host:settings.worker_metrics_port
(loopback by default; port 0 picks a free port, logged at start).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger("seatledger.worker")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("seatledger_worker_messages_in", "messages read from the events topic", registry=r)
        self.events_in = Counter("seatledger_worker_events_in", "accepted events forwarded by the router", registry=r)
        self.rejected = Counter(
            "seatledger_worker_rejected", "rejected elements sent to the dead-letter topic", ["reason"], registry=r
        )
        self.derived = Counter("seatledger_worker_derived_events", "derived R5 trial events forwarded", registry=r)
        self.folded = Counter("seatledger_worker_events_folded", "events folded into state", registry=r)
        self.fact_changes = Counter("seatledger_worker_fact_changes", "events that changed a fact", registry=r)
        self.duplicates = Counter("seatledger_worker_duplicates", "events that changed no fact", registry=r)
        self.late = Counter("seatledger_worker_late_events", "events folding into an already closed month", registry=r)
        self.late_past_window = Counter(
            "seatledger_worker_late_past_window",
            "events for a month past its late window, sent to the DLQ instead of amending",
            registry=r,
        )
        self.amendments = Counter("seatledger_worker_amendments", "decision amendments emitted", registry=r)
        self.snapshots = Counter(
            "seatledger_worker_snapshots_emitted", "messages sent to the snapshots topic", ["kind"], registry=r
        )
        self.fold_errors = Counter("seatledger_worker_fold_errors", "routed elements that failed to fold", registry=r)
        self.lag = Gauge(
            "seatledger_worker_consumer_lag", "highwater - committed offset", ["topic", "partition"], registry=r
        )
        self.close_markers = Gauge(
            "seatledger_worker_close_markers_seen",
            "routed close markers recorded, summed over partitions",
            ["month"],
            registry=r,
        )
        self.close_expected = Gauge(
            "seatledger_worker_close_markers_expected",
            "routed close markers needed to close the month",
            ["month"],
            registry=r,
        )
        self.partitions_closed = Gauge(
            "seatledger_worker_partitions_closed", "routed partitions that closed the month here", ["month"], registry=r
        )
        self.owned_partitions = Gauge(
            "seatledger_worker_owned_partitions", "routed partitions this worker folds", registry=r
        )
        self.rebalances = Counter("seatledger_worker_rebalances", "partition revocations seen by the fold", registry=r)
        self.recovered_records = Counter(
            "seatledger_worker_recovered_records", "changelog records read back into the tables", registry=r
        )
        self.recovery_seconds = Gauge(
            "seatledger_worker_last_recovery_seconds", "duration of the last changelog recovery", registry=r
        )
        self.state_keys = Gauge("seatledger_worker_state_keys", "keys held per table", ["table"], registry=r)
        self.recovery_remaining = Gauge(
            "seatledger_worker_recovery_remaining_records",
            "changelog records the recovery in progress has still to read (at most; 0 when none runs)",
            registry=r,
        )
        self.snapshot_keys = Counter(
            "seatledger_worker_recovered_snapshot_keys", "keys read back from local snapshots", registry=r
        )
        self.snapshots_written = Counter(
            "seatledger_worker_state_snapshots", "partition snapshots written to the state dir", ["kind"], registry=r
        )
        self.close_seconds = Gauge(
            "seatledger_worker_last_close_seconds", "duration of the last partition close", registry=r
        )

    def progress(self) -> float:
        """Messages routed + events folded so far: changes while the worker is busy. Reads the
        counters' values directly (`_value`, private to prometheus_client: the public
        `registry.get_sample_value` walks every metric of the registry)."""
        return float(self.messages_in._value.get() + self.folded._value.get())

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port (useful when `port` is 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = server.server_address[1]
        log.info("event=metrics_listening host=%s port=%d", host, bound)
        return bound
