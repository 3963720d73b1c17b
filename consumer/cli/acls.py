"""`packflow acls`: the ACLs a replica's principal needs; `--apply` creates them."""

from __future__ import annotations

from typing import Annotated

import typer

from ..acls import create_acls, principal_of, replica_acls
from ..settings import load_settings
from .options import SettingsFlags, settings_options


@settings_options(
    "bootstrap_servers",
    "input_topic",
    "results_topic",
    "dead_letter_topic",
    "group_id",
    "guarantee",
    "kafka",
    "project",
)
def acls(
    principal: Annotated[
        str,
        typer.Option(help="who runs the replicas: User:NAME (a bare NAME means User:NAME)"),
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="create them (as the --kafka login, an admin)")
    ] = False,
    *,
    flags: SettingsFlags,
) -> None:
    """Print the ACLs one replica needs (docs/SECURITY.md), for the pipeline's topics, group
    and guarantee, read like `packflow run`'s. With --apply, create them: `--kafka` and
    PACKFLOW_KAFKA__* are the admin client's settings (security.protocol, sasl.*, ssl.*)."""
    settings = load_settings(**flags)
    wanted = replica_acls(
        input_topic=settings.input_topic,
        results_topic=settings.results_topic,
        dead_letter_topic=settings.dead_letter_topic,
        group=settings.group_id,
        guarantee=settings.guarantee,
        principal=principal,
    )
    for acl in wanted:
        typer.echo(str(acl))
    if apply:
        create_acls(settings.bootstrap_servers, wanted, settings.kafka)
        typer.echo(
            f"created {len(wanted)} ACLs for {principal_of(principal)} "
            f"at {settings.bootstrap_servers}"
        )
