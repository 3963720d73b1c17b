"""`packflow kafka start | stop | status | fetch`: the local Apache Kafka cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from consumer.broker import BrokerSettings, LocalCluster
from consumer.cli.options import parse_pairs
from consumer.errors import BrokerError, TopicError
from consumer.jars import ensure_jars
from consumer.topics import describe_topics

app = typer.Typer(
    help="The local Apache Kafka cluster: KRaft nodes on 127.0.0.1, jars from Maven Central.",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="cluster state, storage and logs [env PACKFLOW_KAFKA_DATA_DIR]"
    ),
]


def broker_settings(**flags: Any) -> BrokerSettings:
    """Flags over `PACKFLOW_KAFKA_*` environment over defaults; a bad value names its field."""
    try:
        return BrokerSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise BrokerError(f"invalid broker settings: {problems}") from None


@app.command()
def start(
    nodes: Annotated[int | None, typer.Option(help="1, or 3 for failover tests")] = None,
    port: Annotated[int | None, typer.Option(help="first broker port (node i: port+i)")] = None,
    controller_port: Annotated[int | None, typer.Option(help="first controller port")] = None,
    data_dir: DataDir = None,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait until ready")] = None,
    broker_config: Annotated[
        list[str] | None, typer.Option(help="extra server property KEY=VALUE, repeatable")
    ] = None,
) -> None:
    """Start the cluster (fetching Kafka once) and wait until it serves metadata."""
    settings = broker_settings(
        nodes=nodes,
        port=port,
        controller_port=controller_port,
        data_dir=data_dir,
        start_timeout_s=timeout,
        broker_config=parse_pairs(broker_config, "--broker-config"),
    )
    result = LocalCluster(settings).start()
    if result.already_running:
        typer.echo(f"Kafka is already running at {result.bootstrap} ({settings.data_dir})")
    else:
        typer.echo(
            f"Kafka {settings.version} ready at {result.bootstrap} "
            f"({len(result.started)} node(s) started in {result.seconds:.1f}s; "
            f"logs in {settings.data_dir})"
        )
    typer.echo(result.bootstrap)


@app.command()
def stop(
    data_dir: DataDir = None,
    delete_data: Annotated[bool, typer.Option(help="also delete storage and logs")] = False,
) -> None:
    """Stop the processes `start` recorded (TERM, then KILL after a grace period)."""
    cluster = LocalCluster(broker_settings(data_dir=data_dir))
    pids = cluster.stop(delete_data=delete_data)
    if pids:
        typer.echo(f"stopped Kafka (pids {', '.join(map(str, pids))})")
    else:
        typer.echo(f"Kafka is not running ({cluster.data_dir})")


@app.command()
def status(data_dir: DataDir = None) -> None:
    """Show the nodes, their pids and the topics. Exits 1 when no node is running."""
    cluster = LocalCluster(broker_settings(data_dir=data_dir))
    if not cluster.exists():
        typer.echo(f"no Kafka cluster in {cluster.data_dir} (start one: packflow kafka start)")
        raise typer.Exit(1)
    states = cluster.status()
    console = Console()
    nodes = Table("node", "address", "pid", "state", title=f"Kafka in {cluster.data_dir}")
    for s in states:
        state = "running" if s.alive else "stopped"
        nodes.add_row(str(s.node.node_id), s.node.address, str(s.pid or "-"), state)
    console.print(nodes)
    if not any(s.alive for s in states):
        raise typer.Exit(1)
    try:
        topics = describe_topics(cluster.bootstrap, timeout=5)
    except TopicError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    table = Table("topic", "partitions", "replication", title="topics")
    for t in topics:
        table.add_row(t.name, str(t.partitions), str(t.replication_factor))
    console.print(table)


@app.command()
def fetch() -> None:
    """Resolve the pinned Kafka jars from Maven Central into the cache (once)."""
    settings = broker_settings()
    typer.echo(ensure_jars(settings.home, settings.version, settings.mvn))
