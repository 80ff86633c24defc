"""SSH through Fabric/Paramiko, with host keys verified (``connection: paramiko``).

The fallback where no OpenSSH client is installed (see ``openssh.py``, the
default): one connection per run, made in-process.

Fabric accepts unknown host keys silently by default; here an unknown key
is refused unless the user asked for ``--accept-new-host-keys``, and a
changed key is always refused. Commands run on a raw Paramiko channel so
binary standard input streams at full speed (Fabric's ``run`` feeds stdin
in small sleeps, which would make every upload slow).
"""

from __future__ import annotations

import getpass
import threading
from pathlib import Path
from typing import Any

import paramiko
from fabric import Connection

from provision.connectors.base import CommandResult, ConnectionSettings
from provision.errors import ConnectionFailure, HostKeyError

_known_hosts_lock = threading.Lock()


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"host key of {hostname} is not in {self.known_hosts} ({key.get_name()} {key.fingerprint}); "
            "refusing to connect (add it to known_hosts, or run with --accept-new-host-keys)"
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust on first use: record an unknown key, still refuse a changed one."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        with _known_hosts_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            with self.known_hosts.open("a", encoding="ascii") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


class SshConnector:
    def __init__(self, settings: ConnectionSettings, connect_timeout: float = 10.0) -> None:
        self.settings = settings
        self.known_hosts = Path(settings.options.get("known_hosts") or default_known_hosts())
        self.connection = self._connect(connect_timeout)

    def _connection(self, target: str, port: int, user: str | None, timeout: float, gateway: Connection | None) -> Connection:
        connect_kwargs: dict[str, Any] = {}
        if self.settings.ssh_key:
            connect_kwargs["key_filename"] = self.settings.ssh_key
        connection = Connection(target, user=user, port=port, connect_timeout=int(timeout), connect_kwargs=connect_kwargs, gateway=gateway)
        client = connection.client
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        accept = self.settings.options.get("accept_new_host_keys") == "yes"
        client.set_missing_host_key_policy(_AcceptNew(self.known_hosts) if accept else _RefuseUnknown(self.known_hosts))
        return connection

    def _connect(self, timeout: float) -> Connection:
        gateway = None
        if self.settings.proxy_jump:
            jump_user, _, jump_host = self.settings.proxy_jump.rpartition("@")
            jump_name, _, jump_port = jump_host.partition(":")
            gateway = self._connection(jump_name, int(jump_port or 22), jump_user or self.settings.user, timeout, None)
        port = self.settings.port or 22
        connection = self._connection(self.settings.host, port, self.settings.user, timeout, gateway)
        target = f"{self.settings.host}:{port}"
        try:
            connection.open()
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"host key of {target} has CHANGED (expected {exc.expected_key.fingerprint}, got {exc.key.fingerprint}); "
                f"refusing to connect: if the change is legitimate, remove the old key from {self.known_hosts}"
            ) from None
        except paramiko.PasswordRequiredException:
            raise ConnectionFailure(
                f"the key {self.settings.ssh_key} is encrypted: load it into ssh-agent, or give a key without a passphrase"
            ) from None
        except paramiko.AuthenticationException as exc:
            tried = f"the key {self.settings.ssh_key}" if self.settings.ssh_key else "the SSH agent's keys and ~/.ssh/id_* (no ssh_key set)"
            raise ConnectionFailure(
                f"authentication to {target} as {self.settings.user or getpass.getuser()} failed with {tried}: {exc}"
            ) from None
        except TimeoutError:
            raise ConnectionFailure(f"connection to {target} timed out after {timeout:g}s") from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            reason = "; ".join(sorted({getattr(e, "strerror", None) or str(e) for e in exc.errors.values()}))
            raise ConnectionFailure(f"cannot connect to {target}: {reason}") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            key = self.settings.ssh_key
            about_key = f" (key file {key})" if key and isinstance(exc, paramiko.SSHException) and "key" in str(exc).lower() else ""
            raise ConnectionFailure(f"cannot connect to {target}: {exc or type(exc).__name__}{about_key}") from None
        return connection

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        transport = self.connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionFailure(f"connection to {self.settings.host} was lost")
        try:
            channel = transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            errors: list[bytes] = []
            reader = threading.Thread(target=lambda: errors.append(channel.makefile_stderr("rb").read()), daemon=True)
            reader.start()
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            output = channel.makefile("rb").read()
            reader.join(timeout)
            code = channel.recv_exit_status()
            channel.close()
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionFailure(f"connection to {self.settings.host} failed during a command: {exc}") from None
        return CommandResult(code, output, b"".join(errors))

    def close(self) -> None:
        self.connection.close()
