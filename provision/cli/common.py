"""What every command shares: exit codes, options, and the one place where a
user's mistake becomes one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from provision.errors import ProvisionError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2


def friendly_errors(function: F) -> F:
    """A user's mistake is one clear line on stderr and exit 1, never a traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ProvisionError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Inventory file or folder (hosts.yml, hosts.ini or hosts inside it); repeat to merge several, later ones win.",
)
limit_option = click.option("-l", "--limit", default=None, help="Host pattern, as Ansible's (web:&prod:!mx01).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document and nothing else on stdout.")
forks_option = click.option("-f", "--forks", default=10, show_default=True, type=click.IntRange(1, 500), help="Hosts at once.")


def nameservers(texts: tuple[str, ...]) -> list[tuple[str, int]]:
    """--dns-server values as (address, port); a bad one is the user's mistake, one line."""
    from provision_mta.nameserver import NameserverError, parse_nameserver

    try:
        return [parse_nameserver(text) for text in texts]
    except NameserverError as exc:
        raise ProvisionError(str(exc)) from None


def connection_options(function: F) -> F:
    """--known-hosts, --accept-new-host-keys and -v, given to the command as one ``connection`` argument."""

    @wraps(function)
    def wrapper(*args: Any, known_hosts: str | None, accept_new_host_keys: bool, verbose: int, **kwargs: Any) -> Any:
        from provision.engine.hosts import ConnectionOptions

        observer = None
        if verbose:
            from provision.views.progress import RoundTripPrinter, stderr_line

            observer = RoundTripPrinter(verbose, stderr_line)
        return function(*args, connection=ConnectionOptions(known_hosts, accept_new_host_keys, observer), **kwargs)

    wrapper = click.option(
        "-v", "--verbose", count=True, help="On stderr: -v each round trip and its timing, -vv also what was sent (contents elided)."
    )(wrapper)
    wrapper = click.option("--known-hosts", default=None, help="known_hosts file for SSH host keys (default ~/.ssh/known_hosts).")(wrapper)
    wrapper = click.option("--accept-new-host-keys", is_flag=True, help="Record unknown SSH host keys (a changed key is still refused).")(
        wrapper
    )
    return wrapper  # type: ignore[return-value]
