"""`packflow kafka start | stop | status | fetch`: the local Apache Kafka cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from ..broker import LocalCluster
from ..broker_security import ADMIN, APP_USER
from ..broker_settings import BrokerSettings
from ..errors import BrokerError, TopicError
from ..jars import ensure_jars
from ..settings import validation_problems
from ..topics import describe_topics
from .options import parse_pairs

app = typer.Typer(
    help="The local Apache Kafka cluster: KRaft nodes on 127.0.0.1, jars from Maven Central.",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="cluster state, storage and logs (env PACKFLOW_BROKER_DATA_DIR)"
    ),
]


def broker_settings(**flags: Any) -> BrokerSettings:
    """Flags over `PACKFLOW_BROKER_*` environment over defaults; a bad value names its field."""
    try:
        return BrokerSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise BrokerError(f"invalid broker settings: {validation_problems(exc)}") from None


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
    secure: Annotated[
        bool | None,
        typer.Option(
            "--secure",
            help="clients on SASL_SSL with SCRAM-SHA-512 users admin and packflow, ACLs "
            "enforced (env PACKFLOW_BROKER_SECURE; docs/SECURITY.md)",
        ),
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
        secure=secure,
    )
    cluster = LocalCluster(settings)
    result = cluster.start()
    if result.already_running:
        typer.echo(f"Kafka is already running at {result.bootstrap} ({settings.data_dir})")
    else:
        typer.echo(
            f"Kafka {settings.version} ready at {result.bootstrap} "
            f"({len(result.started)} node(s) started in {result.seconds:.1f}s; "
            f"logs in {settings.data_dir})"
        )
    if cluster.secure:
        _client_settings(cluster)
    typer.echo(result.bootstrap)


def _client_settings(cluster: LocalCluster) -> None:
    """How clients log in to a secured cluster; the passwords stay in their files."""
    security = cluster.security
    config = cluster.client_config(APP_USER)
    typer.echo(
        f"Secured: SASL_SSL with SCRAM-SHA-512, ACLs enforced. Client settings of user "
        f"{APP_USER} (no rights until granted: packflow acls --apply, as {ADMIN}):"
    )
    for key, value in config.items():
        if key != "sasl.password":
            typer.echo(f"  {key}={value}")
    typer.echo(f"  sasl.password: in {security.password_file(APP_USER)}")
    typer.echo(
        f"User {ADMIN} (a super user): sasl.username={ADMIN}, password in "
        f"{security.password_file(ADMIN)}"
    )
    typer.echo(
        "For example: PACKFLOW_KAFKA__SASL_PASSWORD=$(cat "
        f"{security.password_file(APP_USER)}) packflow run --kafka security.protocol=SASL_SSL ..."
    )


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
        topics = describe_topics(cluster.bootstrap, timeout=5, config=cluster.client_config())
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
