"""What every command shares: exit codes, options, and the one place where a
user's mistake becomes one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from provision.errors import ProvisionError

if TYPE_CHECKING:
    from provision.inventory.ansible_cfg import AnsibleConfig

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2


def friendly_errors(function: F) -> F:
    """A user's mistake is one clear line on stderr and exit 1, never a traceback;
    and never a value decrypted from a vault, whichever message quotes it."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ProvisionError as exc:
            from provision.engine.diffs import mask
            from provision.inventory.vault import revealed

            click.echo(f"error: {mask(str(exc), revealed())}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


# --- ansible.cfg -----------------------------------------------------------------

_CONFIG = "provision.ansible_config"


def ansible_config(ctx: click.Context | None = None) -> AnsibleConfig:
    """The run's ansible.cfg settings, read once per command line."""
    from provision.inventory.ansible_cfg import load_ansible_config

    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return load_ansible_config()
    root = ctx.find_root()
    if _CONFIG not in root.meta:
        try:
            root.meta[_CONFIG] = config = load_ansible_config()
        except ProvisionError as exc:
            raise click.ClickException(str(exc)) from None
        for warning in config.warnings:
            click.echo(f"warning: {warning}", err=True)
    found: AnsibleConfig = root.meta[_CONFIG]
    return found


class ConfigDefault(click.Option):
    """An option whose default comes from ansible.cfg (or the setting's ANSIBLE_* variable)."""

    def __init__(self, *args: Any, config_key: str, from_config: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config_key = config_key
        self.from_config = from_config

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        value = ansible_config(ctx).get(self.config_key)
        if value is not None:
            return self.from_config(value) if self.from_config else value
        return super().get_default(ctx, call)


inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory",
    cls=ConfigDefault,
    config_key="inventory",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Inventory: a file, a folder (every inventory file in it), a script, or a host list 'a,b,'; "
    "repeat to merge several, later ones win. Default: 'inventory' of ansible.cfg.",
)
limit_option = click.option("-l", "--limit", default=None, help="Host pattern, as Ansible's (web:&prod:!mx01).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document and nothing else on stdout.")
forks_option = click.option(
    "-f",
    "--forks",
    cls=ConfigDefault,
    config_key="forks",
    default=10,
    show_default=True,
    type=click.IntRange(1, 500),
    help="Hosts at once (default: 'forks' of ansible.cfg, else 10).",
)
accept_new_host_keys_option = click.option(
    "--accept-new-host-keys",
    cls=ConfigDefault,
    config_key="host_key_checking",
    from_config=lambda checking: not checking,
    is_flag=True,
    help="Record unknown SSH host keys (a changed key is still refused). Default: on when ansible.cfg sets host_key_checking = False.",
)


# --- Ansible's options for a run: vault, -e, connection defaults ------------------


def _vault_options(function: F) -> F:
    for option in reversed(
        [
            click.option(
                "-e",
                "--extra-vars",
                "extra_vars",
                multiple=True,
                metavar="VARS",
                help="key=value, a YAML/JSON mapping, or @FILE; highest precedence, as Ansible's (repeat to add more).",
            ),
            click.option(
                "--vault-id",
                "vault_ids",
                multiple=True,
                metavar="LABEL@SOURCE",
                help="A vault password: LABEL@FILE, LABEL@SCRIPT or LABEL@prompt (repeat for several).",
            ),
            click.option(
                "--vault-password-file",
                "--vault-pass-file",
                "vault_password_files",
                multiple=True,
                metavar="FILE",
                help="File holding the vault password, or an executable printing it (repeatable).",
            ),
            click.option(
                "-J", "--ask-vault-pass", "--ask-vault-password", "ask_vault_pass", is_flag=True, help="Ask for the vault password."
            ),
        ]
    ):
        function = option(function)
    return function


def _connection_options(function: F) -> F:
    for option in reversed(
        [
            click.option(
                "-u",
                "--user",
                "remote_user",
                cls=ConfigDefault,
                config_key="remote_user",
                default=None,
                help="SSH user where a host sets none (ansible_user wins, as in Ansible). Default: remote_user of ansible.cfg.",
            ),
            click.option(
                "--private-key",
                "--key-file",
                "private_key",
                cls=ConfigDefault,
                config_key="private_key_file",
                default=None,
                help="SSH private key where a host sets none. Default: private_key_file of ansible.cfg.",
            ),
            click.option(
                "-b",
                "--become",
                "become",
                cls=ConfigDefault,
                config_key="become",
                is_flag=True,
                default=False,
                help="Run as root through sudo where a host does not say (ansible_become wins).",
            ),
        ]
    ):
        function = option(function)
    return function


def ansible_options(connect: bool = True) -> Callable[[F], F]:
    """Ansible's options for loading an inventory (vault, -e) and, with
    ``connect``, for reaching hosts (-u, --private-key, -b). The command
    receives them as one ``load_options`` argument (a LoadOptions)."""

    def decorate(function: F) -> F:
        @wraps(function)
        def wrapper(
            *args: Any,
            extra_vars: tuple[str, ...],
            vault_ids: tuple[str, ...],
            vault_password_files: tuple[str, ...],
            ask_vault_pass: bool,
            remote_user: str | None = None,
            private_key: str | None = None,
            become: bool = False,
            **kwargs: Any,
        ) -> Any:
            from provision.inventory.extra_vars import parse_extra_vars
            from provision.inventory.options import LoadOptions

            vault = make_vault(vault_ids, vault_password_files, ask_vault_pass)
            values, locations = parse_extra_vars(extra_vars, vault)
            defaults: dict[str, Any] = {}
            if remote_user:
                defaults["ansible_user"] = remote_user
            if private_key:
                defaults["ansible_ssh_private_key_file"] = private_key
            if become:
                defaults["ansible_become"] = True
            kwargs["load_options"] = LoadOptions(vault, values, locations, defaults)
            return function(*args, **kwargs)

        decorated: F = _vault_options(friendly_errors(cast(F, wrapper)))
        return _connection_options(decorated) if connect else decorated

    return decorate


def make_vault(vault_ids: tuple[str, ...], password_files: tuple[str, ...], ask: bool) -> Any:
    """The run's vault: ansible.cfg's vault ids first, then the command line's,
    then the password files (the command line's and ansible.cfg's), then a prompt."""
    from provision.inventory.vault import build_vault

    config = ansible_config()
    configured_file = config.get("vault_password_file")
    return build_vault(
        [*config.get("vault_identity_list", []), *vault_ids],
        [*password_files, *([configured_file] if configured_file else [])],
        ask or bool(config.get("ask_vault_pass", False)),
        prompt=lambda text: str(click.prompt(text, hide_input=True, err=True, prompt_suffix="")),
        match_label_only=bool(config.get("vault_id_match", False)),
    )


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
    wrapper = accept_new_host_keys_option(wrapper)
    return wrapper  # type: ignore[return-value]
