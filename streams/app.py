"""The worker process of `seatledger worker`, assembled: router -> routed topic -> fold -> snapshots.

- router (streams.router): events topic -> each company's home partition of the routed topic, a
  plain aiokafka consumer and producer run as a Faust task, off Faust's per-message path;
- fold (streams.fold): the Faust agent of the routed topic (concurrency 1, tables co-partitioned
  with it, streams.topology): merges facts into the tables (streams.state), closes months and
  emits amendments (streams.close) to the snapshots topic;
- timers: the consumer-lag gauges, and giving the heap back to the OS when quiet (streams.heap).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust
from faust.types import AgentT, StreamT, TableT

from projections.prices import PriceBook
from projections.rulesets import CURRENT, get_ruleset
from streams.close import Closer
from streams.fold import Fold
from streams.heap import TRIM_INTERVAL, HeapTrimmer, malloc_trim
from streams.metrics import WorkerMetrics
from streams.router import Router
from streams.sender import BatchSender
from streams.settings import Settings
from streams.state import FoldState
from streams.topology import build_topology

log = logging.getLogger("seatledger.worker")

LAG_INTERVAL = 5.0  # seconds between updates of the consumer-lag gauges


@dataclass
class Worker:
    """The app and the objects its agents, tasks and timers share (exposed for tests and tools)."""

    app: faust.App
    settings: Settings
    metrics: WorkerMetrics
    tables: dict[str, TableT]
    router: Router
    fold: Fold
    fold_agent: AgentT

    @property
    def state(self) -> FoldState:
        return self.fold.state

    @property
    def closer(self) -> Closer:
        return self.fold.closer


def create_app(settings: Settings, metrics: WorkerMetrics | None = None) -> Worker:
    """The worker's Faust app with its router task, fold agent and timers (not started)."""
    metrics = metrics or WorkerMetrics()
    topo = build_topology(settings)
    app = topo.app
    prices = PriceBook.load(settings.prices)
    fold = Fold(settings, metrics, topo.tables, BatchSender(app), prices, get_ruleset(CURRENT.version))
    router = Router(settings, metrics, app)

    @app.task
    async def run_router() -> None:
        await router.run_restarting()

    @app.agent(topo.routed_topic, name="fold", concurrency=1)
    async def fold_agent(stream: StreamT) -> None:
        await fold.run(stream)

    install_timers(app, metrics, router, fold)

    @app.task
    async def started() -> None:
        log.info(
            "event=worker_started app_id=%s bootstrap=%s partitions=%d events=%s routed=%s snapshots=%s",
            settings.worker_app_id, settings.bootstrap, settings.partitions, settings.topic_events,
            settings.topic_routed, settings.topic_snapshots,
        )  # fmt: skip

    return Worker(app, settings, metrics, topo.tables, router, fold, fold_agent)


def install_timers(app: faust.App, metrics: WorkerMetrics, router: Router, fold: Fold) -> None:
    trimmer = HeapTrimmer(metrics.progress, malloc_trim())

    @app.timer(TRIM_INTERVAL)
    async def release_memory() -> None:
        """Give freed heap pages back to the OS once the worker goes quiet (streams.heap)."""
        trimmer.tick()

    @app.timer(LAG_INTERVAL)
    async def lag_gauge() -> None:
        await router.update_lag()
        fold.update_lag(app.consumer)
