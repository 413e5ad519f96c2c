"""`seatledger kafka start|stop|status|jars` and `seatledger topics create`.

The local broker is a real single-node KRaft Kafka assembled from Maven Central jars (for machines
without Docker; see docs/running.md). Flags override SEATLEDGER_* environment settings.
"""

from __future__ import annotations

from pathlib import Path

import typer

from streams.settings import load_settings

BOOTSTRAP = typer.Option(None, "--bootstrap", help="host:port (default: SEATLEDGER_BOOTSTRAP or 127.0.0.1:9092)")
DATA_DIR = typer.Option(None, "--data-dir", help="broker data goes to DATA_DIR/kafka (default: SEATLEDGER_DATA_DIR)")


def register(app: typer.Typer) -> None:
    kafka = typer.Typer(help="A local single-node Kafka broker (no Docker needed).", no_args_is_help=True)
    topics = typer.Typer(help="The project's Kafka topics.", no_args_is_help=True)

    @kafka.command("start")
    def start(
        bootstrap: str | None = BOOTSTRAP,
        data_dir: Path | None = DATA_DIR,
        kafka_version: str | None = typer.Option(None, help="Kafka version of the jars (default 4.1.2)"),
        fresh: bool = typer.Option(False, "--fresh", help="wipe the broker's data before starting"),
    ) -> None:
        """Start the broker in the background; returns at once when one already answers."""
        from devtools import local_broker

        settings = load_settings(bootstrap=bootstrap, data_dir=data_dir, kafka_version=kafka_version)
        try:
            st = local_broker.start(settings, fresh=fresh)
        except local_broker.BrokerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if st.started_now:
            typer.echo(
                f"started Kafka {settings.kafka_version} on {st.bootstrap} in {st.seconds:.1f}s "
                f"(pid {st.pid}, log {st.log})"
            )
        else:
            typer.echo(f"already running: {st.describe()}")

    @kafka.command("stop")
    def stop(bootstrap: str | None = BOOTSTRAP, data_dir: Path | None = DATA_DIR) -> None:
        """Stop the broker started from this data dir (SIGTERM, SIGKILL after 30 s)."""
        from devtools import local_broker

        typer.echo(local_broker.stop(load_settings(bootstrap=bootstrap, data_dir=data_dir)))

    @kafka.command("status")
    def status(bootstrap: str | None = BOOTSTRAP, data_dir: Path | None = DATA_DIR) -> None:
        """Say whether a broker answers; exit 1 when none does."""
        from devtools import local_broker

        st = local_broker.status(load_settings(bootstrap=bootstrap, data_dir=data_dir))
        typer.echo(st.describe())
        if not st.answering:
            raise typer.Exit(1)

    @kafka.command("jars")
    def jars(kafka_version: str | None = typer.Option(None, help="Kafka version (default 4.1.2)")) -> None:
        """Resolve the broker's jars with Maven into the cache (once per version) and print where."""
        from devtools import local_broker

        settings = load_settings(kafka_version=kafka_version)
        try:
            typer.echo(local_broker.ensure_jars(settings.kafka_version))
        except local_broker.BrokerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    @topics.command("create")
    def create(
        bootstrap: str | None = BOOTSTRAP,
        partitions: int | None = typer.Option(
            None, min=1, help="partitions per topic (default: SEATLEDGER_PARTITIONS or 8)"
        ),
    ) -> None:
        """Create the events, routed, dead-letter and snapshot topics; idempotent."""
        from streams.topics import TopicError, create_topics_sync

        settings = load_settings(bootstrap=bootstrap, partitions=partitions)
        try:
            result = create_topics_sync(settings)
        except TopicError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            typer.echo(f"error: cannot create topics on {settings.bootstrap}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
        for name, outcome in result.items():
            typer.echo(f"{outcome:8} {name} ({settings.partitions} partitions)")

    app.add_typer(kafka, name="kafka")
    app.add_typer(topics, name="topics")
