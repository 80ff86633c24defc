"""``provision config``: which ansible.cfg this run reads, and what it takes from it."""

from __future__ import annotations

import json

import click

from provision.cli.common import ansible_config, friendly_errors


@click.command(name="config")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@friendly_errors
def config(as_json: bool) -> None:
    """Show the ansible.cfg in use (ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg,
    /etc/ansible/ansible.cfg: the first found) and each setting provision honours,
    with where it came from (the file, or its ANSIBLE_* variable)."""
    from provision.inventory.ansible_cfg import SPECS

    settings = ansible_config()
    if as_json:
        document = {
            "config_file": str(settings.path) if settings.path else None,
            "settings": {name: {"value": s.value, "origin": s.origin} for name, s in settings.settings.items()},
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"config file = {settings.path or 'none found'}")
    for name, spec in SPECS.items():
        setting = settings.settings.get(name)
        if setting is None:
            click.echo(f"{name} = (not set: {spec.description})")
        else:
            value = ",".join(setting.value) if isinstance(setting.value, list) else setting.value
            click.echo(f"{name} = {value}  ({setting.origin})")


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """--version, with the ansible.cfg in use, as 'ansible --version' shows it."""
    if not value or ctx.resilient_parsing:
        return
    from provision import __version__

    settings = ansible_config(ctx)
    click.echo(f"provision, version {__version__}")
    click.echo(f"  config file = {settings.path or 'none found'}")
    ctx.exit()
