"""The ``provision`` group: every command group registered from its own module."""

from __future__ import annotations

import click

from provision.cli.config import config, print_version
from provision.cli.converge import apply, check
from provision.cli.history import history
from provision.cli.inventory import inventory
from provision.cli.lab import lab, test_role
from provision.cli.mail import mail
from provision.cli.onboard import onboard
from provision.cli.render import render
from provision.cli.report import report
from provision.cli.roles import roles
from provision.cli.rollback import rollback
from provision.cli.ssh import ssh


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and ansible.cfg.",
)
def main() -> None:
    """Declarative provisioning of mail and web servers over SSH."""


for _command in (apply, check, history, rollback, render, inventory, roles, lab, test_role, mail, onboard, report, config, ssh):
    main.add_command(_command)

if __name__ == "__main__":
    main()
