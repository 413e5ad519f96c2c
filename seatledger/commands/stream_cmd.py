"""`seatledger worker` and `seatledger close`: the streaming worker and the month-close marker.

Thin: flags override SEATLEDGER_* settings, the work is in streams/worker.py (see docs/streaming.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from streams.settings import load_settings

BOOTSTRAP = typer.Option(None, "--bootstrap", help="host:port (default: SEATLEDGER_BOOTSTRAP or 127.0.0.1:9092)")


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        bootstrap: str | None = BOOTSTRAP,
        partitions: int | None = typer.Option(None, min=1, help="partitions of the events/routed topics"),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="worker state under DATA_DIR/worker"),
        prices: Path | None = typer.Option(None, "--prices", help="price book TOML"),
        metrics_port: int | None = typer.Option(None, "--metrics-port", help="Prometheus port (0: any free)"),
        app_id: str | None = typer.Option(None, "--app-id", help="Faust app id (consumer group, changelog prefix)"),
        auto_close: bool = typer.Option(
            False,
            "--auto-close",
            help="close each month automatically once it ended in every zone, plus a grace period",
        ),
        grace_hours: float | None = typer.Option(
            None,
            "--grace-hours",
            min=0,
            help="grace period of --auto-close (default 72; SEATLEDGER_AUTO_CLOSE_GRACE_HOURS)",
        ),
        loglevel: str = typer.Option("INFO", "--loglevel"),
    ) -> None:
        """Run the streaming worker until SIGTERM: route, validate, fold, close months, amend."""
        from streams.autoclose import DEFAULT_GRACE_HOURS
        from streams.worker import run_worker

        if auto_close and grace_hours is None:
            grace_hours = DEFAULT_GRACE_HOURS
        settings = load_settings(
            bootstrap=bootstrap, partitions=partitions, data_dir=data_dir, prices=prices,
            worker_metrics_port=metrics_port, worker_app_id=app_id, auto_close_grace_hours=grace_hours,
        )  # fmt: skip
        run_worker(settings, loglevel=loglevel.upper())

    @app.command("close")
    def close(
        month: str = typer.Option(..., "--month", help="YYYY-MM"),
        bootstrap: str | None = BOOTSTRAP,
        close_id: str | None = typer.Option(None, "--close-id", help="an id for this close (default: generated)"),
    ) -> None:
        """Put a close marker for MONTH on every partition of the events topic.

        Each worker partition closes the month once markers from every source partition arrived,
        i.e. after every event published before this command; late events then become amendments.
        """
        from streams.topics import run_sync
        from streams.worker import send_close_markers

        settings = load_settings(bootstrap=bootstrap)
        try:
            cid, n = run_sync(send_close_markers(settings, month, close_id))
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except Exception as exc:
            typer.echo(
                f"error: cannot send close markers to {settings.bootstrap}: {type(exc).__name__}: {exc}", err=True
            )
            raise typer.Exit(3) from None
        typer.echo(f"close {month}: markers sent to {n} partitions of {settings.topic_events} (close_id {cid})")
