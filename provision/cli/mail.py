"""``provision mail``: queue and maintenance commands across the inventory."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provision.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    ansible_options,
    connection_options,
    forks_option,
    inventory_option,
    json_option,
    limit_option,
)
from provision.errors import ProvisionError

if TYPE_CHECKING:
    from provision.agent.protocol import MailAction
    from provision.engine.hosts import ConnectionOptions
    from provision.inventory.options import LoadOptions

instance_option = click.option("--instance", default=None, help="Only this instance (name such as postfix-out, or config folder).")


@click.group()
def mail() -> None:
    """Mail queues and maintenance on every host and instance (Postfix, or provision-mta where it runs instead)."""


def _run(
    inventory: tuple[Path, ...],
    limit: str | None,
    action: MailAction,
    instance: str | None,
    forks: int,
    as_json: bool,
    connection: ConnectionOptions,
    load_options: LoadOptions,
) -> None:
    from rich.console import Console
    from rich.text import Text

    from provision.engine.interrupt import EXIT_INTERRUPTED, sigint_stops
    from provision.mail.queues import run_mail
    from provision.roles.compiler import Project
    from provision.views.mail import print_mail

    project = Project.load(list(inventory), options=load_options)
    with sigint_stops(lambda text: Console(stderr=True).print(Text(text, style="bold yellow"))) as stop:
        results = run_mail(project, project.select(limit), action, instance, forks, connection)
    if as_json:
        click.echo(json.dumps({"action": action, "hosts": {r.host: asdict(r) for r in results}}, indent=2))
    else:
        print_mail(Console(), action, results)
    if stop.requested():
        sys.exit(EXIT_INTERRUPTED)
    if results and all(r.status == "skipped" for r in results):
        what = f"instance {instance!r}" if instance else "Postfix instance or provision-mta"
        click.echo(f"error: no {what} on any of the {len(results)} selected host(s)", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_ERROR if any(r.status.is_error for r in results) else EXIT_OK)


def _command(action: MailAction, help_text: str) -> None:
    @mail.command(name=action, help=help_text)
    @inventory_option
    @limit_option
    @instance_option
    @forks_option
    @json_option
    @connection_options
    @ansible_options()
    def command(
        inventory: tuple[Path, ...],
        limit: str | None,
        instance: str | None,
        forks: int,
        as_json: bool,
        connection: ConnectionOptions,
        load_options: LoadOptions,
    ) -> None:
        _run(inventory, limit, action, instance, forks, as_json, connection, load_options)


_command("queue", "Summarise each queue: messages, deferred, oldest, top destinations (postqueue -j).")
_command("flush", "Attempt delivery of all queued mail now (postqueue -f).")
_command("requeue", "Requeue all mail so it is processed again with the current config (postsuper -r ALL).")
_command("hold", "Put all queued mail on hold: kept, not delivered, until released (postsuper -h ALL).")
_command("release", "Release all mail on hold (postsuper -H ALL).")
_command("check", "postfix check on each instance, and the lookup table types it supports (postconf -m).")


@mail.command(name="delete")
@inventory_option
@limit_option
@instance_option
@forks_option
@json_option
@connection_options
@click.option("--all", "all_messages", is_flag=True, help="Delete every message in the queue.")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@ansible_options()
def delete(
    inventory: tuple[Path, ...],
    limit: str | None,
    instance: str | None,
    forks: int,
    as_json: bool,
    connection: ConnectionOptions,
    all_messages: bool,
    yes: bool,
    load_options: LoadOptions,
) -> None:
    """Delete all queued mail (postsuper -d ALL); needs --all and --yes."""
    if not all_messages or not yes:
        raise ProvisionError("refusing to delete queued mail without --all --yes (postsuper -d ALL cannot be undone)")
    _run(inventory, limit, "delete", instance, forks, as_json, connection, load_options)
