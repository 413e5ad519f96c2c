"""Running the worker process, and sending close markers (`seatledger worker`, `seatledger close`)."""

from __future__ import annotations

import logging
import sys
import uuid
from typing import TYPE_CHECKING

from projections.calendar import Month
from schemas.control import close_marker
from streams.markers import send_to_every_partition
from streams.metrics import WorkerMetrics
from streams.settings import Settings

if TYPE_CHECKING:
    import faust  # imported when the worker runs: `seatledger close` does not need it

log = logging.getLogger("seatledger.worker")

LOG_HANDLER = "seatledger"  # the name of the handler configure_logging adds (once)


def configure_logging(level: str = "INFO") -> None:
    """key=value lines on stderr: `ts level logger event=... k=v ...`."""
    root = logging.getLogger()
    if not any(h.name == LOG_HANDLER for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.set_name(LOG_HANDLER)
        h.setFormatter(logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
        root.addHandler(h)
    root.setLevel(level)


def run_worker(settings: Settings, *, loglevel: str = "INFO") -> None:
    """Create the topics, serve metrics, run the Faust worker until SIGTERM/SIGINT. Exits the process."""
    import faust

    from streams.app import create_app
    from streams.topics import changelog_specs, create_topics_sync, ensure_topics, run_sync

    configure_logging(loglevel)
    result = create_topics_sync(settings)  # Faust must not auto-create source topics
    log.info("event=topics %s", " ".join(f"{k}={v}" for k, v in result.items()))
    metrics = WorkerMetrics()
    serve_metrics(metrics, settings)
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)  # Faust's mkdir is not recursive
    w = create_app(settings, metrics)
    run_sync(ensure_topics(settings, changelog_specs(w.store.changelogs(), settings)))
    if settings.auto_close_grace_hours is not None:
        install_auto_close(w.app, settings, settings.auto_close_grace_hours)
    if settings.estimate_every_minutes > 0:
        install_estimates(w.app, settings, settings.estimate_every_minutes)
    faust.Worker(w.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()


def serve_metrics(metrics: WorkerMetrics, settings: Settings) -> None:
    """On WORKER_METRICS_PORT, or, when another worker on this host holds it, on a free port (the
    bound port is logged as `event=metrics_listening`)."""
    try:
        metrics.serve(settings.metrics_host, settings.worker_metrics_port)
        return
    except OSError as exc:
        log.warning("event=metrics_port_taken port=%d error=%r", settings.worker_metrics_port, exc)
    try:
        metrics.serve(settings.metrics_host, 0)
    except OSError as exc:
        log.error("event=metrics_unavailable host=%s error=%r", settings.metrics_host, exc)


def install_estimates(app: faust.App, settings: Settings, minutes: float) -> None:
    """A timer asking for the bill so far of the current (UTC) month every `minutes`. Every worker
    runs it; the estimate id names the month and the period, so the markers of several workers
    make one estimate run (the fold acts once per id and partition)."""
    from datetime import UTC, datetime

    from streams.markers import send_estimate_markers

    @app.timer(interval=minutes * 60)
    async def estimate_now() -> None:
        now = datetime.now(UTC)
        period = int(now.timestamp() // (minutes * 60))
        month = f"{now.year:04d}-{now.month:02d}"
        await send_estimate_markers(settings, month, estimate_id=f"{month}-auto-{period}", as_of=now)

    log.info("event=estimates_enabled every_minutes=%s", minutes)


def install_auto_close(app: faust.App, settings: Settings, grace_hours: float) -> None:
    """A timer that sends the close markers of each month once it has ended in every zone plus the
    grace period (streams.autoclose). Every worker runs it (Faust's `on_leader` never fired on our
    broker: its leader topic was not assigned); markers for a month already closed, or seen twice,
    are ignored by the fold agent, so several workers or a restart re-sending them is harmless."""
    from datetime import UTC, datetime

    from streams.autoclose import month_to_close

    sent: dict[str, str] = {}

    @app.timer(interval=settings.auto_close_check_seconds)
    async def auto_close() -> None:
        month = str(month_to_close(datetime.now(UTC), grace_hours))
        if sent.get("month") != month:
            await send_close_markers(settings, month, close_id=f"auto-{month}")
            sent["month"] = month
            log.info("event=auto_close month=%s grace_hours=%s", month, grace_hours)

    log.info("event=auto_close_enabled grace_hours=%s", grace_hours)


async def send_close_markers(settings: Settings, month: str, close_id: str | None = None) -> tuple[str, int]:
    """Put a close marker for `month` on every partition of the events topic; (close_id, partitions)."""
    month = str(Month.parse(month))
    close_id = close_id or f"{month}-{uuid.uuid4().hex[:12]}"
    n = await send_to_every_partition(settings, close_marker(month, close_id, 0))
    log.info("event=close_requested month=%s close_id=%s partitions=%d", month, close_id, n)
    return close_id, n
