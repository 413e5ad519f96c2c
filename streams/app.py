"""The worker process of `seatledger worker`, assembled: router -> routed topic -> fold -> snapshots.

- router (streams.router): events topic -> each company's home partition of the routed topic;
- fold (streams.fold_runner + streams.fold): the routed partitions this worker owns -> facts in
  its tables (streams.store, streams.state), month closes and amendments (streams.close) -> the
  snapshots topic; offsets committed only once the changelog and snapshot records are durable;
- timers: the consumer-lag and state-size gauges, giving the heap back to the OS when quiet
  (streams.heap), and refreshing the on-disk standby snapshots (streams.local_state).
Both consumers run as tasks of a Faust app (streams.topology), which runs the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from projections.prices import PriceBook
from projections.rulesets import CURRENT, get_ruleset
from streams.close import Closer
from streams.fold import Fold
from streams.fold_runner import FoldRunner
from streams.heap import TRIM_INTERVAL, HeapTrimmer, malloc_trim
from streams.metrics import WorkerMetrics
from streams.router import Router
from streams.sender import BatchSender
from streams.settings import Settings
from streams.state import FoldState
from streams.store import TableStore
from streams.topology import faust_app

log = logging.getLogger("seatledger.worker")

LAG_INTERVAL = 5.0  # seconds between updates of the consumer-lag gauges


@dataclass
class Worker:
    """The app and the objects its tasks and timers share (exposed for tests and tools)."""

    app: faust.App
    settings: Settings
    metrics: WorkerMetrics
    store: TableStore
    router: Router
    fold: Fold
    runner: FoldRunner

    @property
    def state(self) -> FoldState:
        return self.fold.state

    @property
    def closer(self) -> Closer:
        return self.fold.closer


def create_app(settings: Settings, metrics: WorkerMetrics | None = None) -> Worker:
    """The worker's Faust app with its router and fold tasks and timers (not started)."""
    metrics = metrics or WorkerMetrics()
    app = faust_app(settings)
    store = TableStore(settings.worker_app_id, settings.partitions)
    sender = BatchSender()
    prices = PriceBook.load(settings.prices)
    fold = Fold(settings, metrics, store, sender, prices, get_ruleset(CURRENT.version))
    runner = FoldRunner(settings, metrics, store, fold, sender)
    router = Router(settings, metrics, app)

    @app.task
    async def run_router() -> None:
        await router.run_restarting()

    @app.task
    async def run_fold() -> None:
        await runner.run_restarting()

    install_timers(app, metrics, router, runner)

    @app.task
    async def started() -> None:
        log.info(
            "event=worker_started worker_id=%s app_id=%s bootstrap=%s partitions=%d events=%s routed=%s snapshots=%s",
            settings.worker_id, settings.worker_app_id, settings.bootstrap, settings.partitions,
            settings.topic_events, settings.topic_routed, settings.topic_snapshots,
        )  # fmt: skip

    return Worker(app, settings, metrics, store, router, fold, runner)


def install_timers(app: faust.App, metrics: WorkerMetrics, router: Router, runner: FoldRunner) -> None:
    trimmer = HeapTrimmer(metrics.progress, malloc_trim())

    @app.timer(TRIM_INTERVAL)
    async def release_memory() -> None:
        """Give freed heap pages back to the OS once the worker goes quiet (streams.heap)."""
        trimmer.tick()

    @app.timer(LAG_INTERVAL)
    async def lag_gauge() -> None:
        await router.update_lag()
        runner.update_lag()

    if runner.local is not None and runner.settings.standby_refresh_seconds > 0:

        @app.timer(runner.settings.standby_refresh_seconds)
        async def standby_refresh() -> None:
            """Keep the snapshots of other workers' partitions near their changelogs' end, so a
            takeover reads only the tail (streams.local_state)."""
            try:
                await runner.refresh_standbys()
            except Exception as exc:
                log.warning("event=standby_refresh_failed error=%r", exc)
