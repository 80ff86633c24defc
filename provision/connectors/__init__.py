"""Connectors: SSH (Fabric), local, Docker, and an in-memory fake for tests."""

from __future__ import annotations

from typing import Any

from provision.connectors.base import CommandResult, ConnectionSettings, Connector, CountingConnector
from provision.errors import ProvisionError

__all__ = ["CommandResult", "ConnectionSettings", "Connector", "CountingConnector", "connect", "settings_from_vars"]

# Ansible's names are accepted so that an existing inventory works unchanged;
# provision's own short name wins where both are set.
ALIASES = {
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "ssh_key": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "connection": ("ansible_connection",),
    "become": ("ansible_become",),
    "python": ("ansible_python_interpreter",),
}
CONNECTIONS = ("ssh", "local", "docker")


def _lookup(values: dict[str, Any], name: str) -> Any:
    if name in values:
        return values[name]
    for alias in ALIASES.get(name, ()):
        if alias in values:
            return values[alias]
    return None


def settings_from_vars(name: str, values: dict[str, Any], options: dict[str, str] | None = None) -> ConnectionSettings:
    connection = str(_lookup(values, "connection") or "ssh")
    if connection == "paramiko":
        connection = "ssh"
    if connection not in CONNECTIONS:
        raise ProvisionError(f"host {name}: unknown connection {connection!r} (expected one of {', '.join(CONNECTIONS)})")
    port = _lookup(values, "port") or 22
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ProvisionError(f"host {name}: port must be a number, got {port!r}") from None
    key = _lookup(values, "ssh_key")
    return ConnectionSettings(
        name=name,
        connection=connection,
        host=str(_lookup(values, "host") or name),
        port=port,
        user=str(_lookup(values, "user")) if _lookup(values, "user") else None,
        ssh_key=str(key) if key else None,
        proxy_jump=values.get("proxy_jump"),
        become=bool(_lookup(values, "become")),
        root=str(values.get("provision_root") or "/"),
        python=str(_lookup(values, "python") or "python3"),
        container=values.get("container"),
        options=dict(options or {}, **({"known_hosts": str(values["known_hosts"])} if values.get("known_hosts") else {})),
    )


def connect(settings: ConnectionSettings) -> Connector:
    """Open the connection; raises ConnectionFailure (or HostKeyError)."""
    if settings.connection == "local":
        from provision.connectors.local import LocalConnector

        return LocalConnector(settings)
    if settings.connection == "docker":
        from provision.connectors.docker import DockerConnector

        return DockerConnector(settings)
    from provision.connectors.ssh import SshConnector

    return SshConnector(settings)
