"""Connectors: SSH (OpenSSH's client, or Paramiko where there is none), local, Docker.

``connection: ssh`` (the default) uses OpenSSH's ``ssh`` when one is on PATH,
else Paramiko; ``connection: paramiko`` asks for Paramiko, as in Ansible.
"""

from __future__ import annotations

import getpass
from typing import Any

from provision.connectors.base import CommandResult, ConnectionSettings, Connector, CountingConnector
from provision.connectors.openssh import DEFAULT_PERSIST, ssh_client
from provision.connectors.variables import ALIASES, lookup, overlay
from provision.errors import ProvisionError

__all__ = [
    "ALIASES",
    "CommandResult",
    "ConnectionSettings",
    "Connector",
    "CountingConnector",
    "connect",
    "login_user",
    "overlay",
    "settings_from_vars",
]

CONNECTIONS = ("ssh", "paramiko", "local", "docker")


def _number(host: str, name: str, value: Any, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or str(value).strip().isdigit()):
        raise ProvisionError(f"host {host}: {name} must be a number, got {value!r}")
    return int(value)


def settings_from_vars(name: str, values: dict[str, Any], options: dict[str, str] | None = None) -> ConnectionSettings:
    connection = str(lookup(values, "connection") or "ssh")
    if connection not in CONNECTIONS:
        raise ProvisionError(f"host {name}: unknown connection {connection!r} (expected one of {', '.join(CONNECTIONS)})")
    port = _number(name, "port", lookup(values, "port"), None)
    if port is not None and not 0 < port < 65536:
        raise ProvisionError(f"host {name}: port must be between 1 and 65535, got {port}")
    persist = _number(name, "ssh_control_persist", values.get("ssh_control_persist"), DEFAULT_PERSIST)
    if persist is None or persist < 0:
        raise ProvisionError(f"host {name}: ssh_control_persist must be a number of seconds (0: no shared connection)")
    key = lookup(values, "ssh_key")
    return ConnectionSettings(
        name=name,
        connection=connection,
        host=str(lookup(values, "host") or name),
        port=port,
        user=str(lookup(values, "user")) if lookup(values, "user") else None,
        ssh_key=str(key) if key else None,
        proxy_jump=str(values["proxy_jump"]) if values.get("proxy_jump") else None,
        become=bool(lookup(values, "become")),
        root=str(values.get("provision_root") or "/"),
        python=str(lookup(values, "python") or "python3"),
        container=values.get("container"),
        ssh_config=str(values["ssh_config"]) if values.get("ssh_config") else None,
        control_persist=persist,
        # The command line (--known-hosts) wins over the inventory's known_hosts.
        options={**({"known_hosts": str(values["known_hosts"])} if values.get("known_hosts") else {}), **(options or {})},
    )


def login_user(settings: ConnectionSettings) -> str:
    """The account a connection logs in as: the inventory's user, else what the connector uses by default.

    (A connector that reads ssh_config may learn a User there; it is the
    place to say so, for roles that must not lock that user out.)
    """
    if settings.connection == "local":
        return getpass.getuser()
    if settings.user:
        return settings.user
    return "root" if settings.connection == "docker" else getpass.getuser()


def connect(settings: ConnectionSettings) -> Connector:
    """Open the connection; raises ConnectionFailure (or HostKeyError)."""
    if settings.connection == "local":
        from provision.connectors.local import LocalConnector

        return LocalConnector(settings)
    if settings.connection == "docker":
        from provision.connectors.docker import DockerConnector

        return DockerConnector(settings)
    if settings.connection == "ssh" and ssh_client() is not None:
        from provision.connectors.openssh import OpenSshConnector

        return OpenSshConnector(settings)
    from provision.connectors.ssh import SshConnector

    return SshConnector(settings)
